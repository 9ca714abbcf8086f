//! `schema.graphql` is the schema the server serves: regenerate it with
//! `cargo run -- schema > schema.graphql` when this fails.

#[test]
fn schema_graphql_matches_the_server() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).expect("schema.graphql exists");
    let served = ward::graphql::sdl();
    assert!(committed == served, "schema.graphql is out of date: run `cargo run -- schema > schema.graphql`");
}
