//! What happens around a GraphQL request over HTTP, outside async-graphql's executor: Apollo's
//! Automatic Persisted Queries, parsing the document once, which operation runs and whether
//! it writes, and a stable `extensions.code` on every error async-graphql raises itself.
//!
//! These are not schema extensions on purpose: with any extension registered, async-graphql
//! runs every field of every response through the extension chain (two boxed futures and a
//! registry lookup per field), a large share of the cost of a page of tickets.

use async_graphql::extensions::apollo_persisted_queries::{CacheStorage, LruCacheStorage};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{Request, Response, ServerError};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::ErrorCode;

/// What the HTTP layer needs to know about a parsed request before it runs.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// `query`, `mutation`, `subscription`, or `unknown` (for metrics).
    pub kind: &'static str,
    /// Whether the document holds a mutation: it needs a read-write transaction, and never
    /// runs from a GET.
    pub writes: bool,
}

/// A prepared request: its operation, and a newly parsed document to remember once it has
/// passed validation.
pub struct Prepared {
    pub operation: Operation,
    learn: Option<Learn>,
}

enum Learn {
    /// A persisted query registered with its text, by its hash.
    Persisted(String, ExecutableDocument),
    /// A document parsed from its text, by the text.
    Parsed(String, ExecutableDocument),
}

/// The caches hold documents a client chose, so each entry is bounded: its text and its number
/// of selections (a parsed selection is a few hundred bytes). At these bounds the two caches
/// hold at most a few tens of MiB whatever is sent; real clients send a few dozen documents of
/// a few dozen selections.
const MAX_CACHED_SELECTIONS: usize = 500;
/// The most selections a document may spell out: complexity counts what a query costs, but
/// not `__typename` or repeated aliases of cheap fields, which still cost a response.
pub const MAX_SELECTIONS: usize = 2000;
/// Persisted queries remembered (per process), and the longest text remembered.
const APQ_ENTRIES: usize = 512;
const APQ_MAX_QUERY: usize = 16 * 1024;
/// Parsed documents remembered by their text, and the longest text remembered.
const PARSED_ENTRIES: usize = 256;
const PARSED_MAX_QUERY: usize = 4 * 1024;

/// The persisted-query cache of one server, its parsed documents, and the preparation of its
/// requests.
#[derive(Clone)]
pub struct Preparer {
    persisted: LruCacheStorage,
    /// Clients send the same few documents over and over; async-graphql's parser was ~5% of
    /// ward's CPU answering `me`, a clone of the parsed document a fraction of that.
    parsed: LruCacheStorage,
}

impl Default for Preparer {
    fn default() -> Self {
        Preparer { persisted: LruCacheStorage::new(APQ_ENTRIES), parsed: LruCacheStorage::new(PARSED_ENTRIES) }
    }
}

#[derive(Deserialize)]
struct PersistedQuery {
    version: i32,
    #[serde(rename = "sha256Hash")]
    sha256_hash: String,
}

impl Preparer {
    /// Resolves a persisted query and parses the document (kept in the request, so
    /// async-graphql does not parse it again). Errors carry their code.
    pub async fn prepare(&self, request: &mut Request) -> Result<Prepared, ServerError> {
        let learn = match request.extensions.remove("persistedQuery") {
            Some(value) => self.persisted_query(request, value).await?,
            None => self.parse(request).await?,
        };
        let operation_name = request.operation_name.clone();
        let document = request.parsed_query().map_err(parse_failed)?;
        let operation = Operation {
            kind: operation_kind(document, operation_name.as_deref()),
            writes: document.operations.iter().any(|(_, op)| op.node.ty == OperationType::Mutation),
        };
        Ok(Prepared { operation, learn })
    }

    /// After execution: remembers the request's newly parsed document if it passed
    /// validation (errors before execution have no path), so nothing invalid is kept.
    pub async fn learn(&self, prepared: Prepared, response: &Response) {
        if response.errors.iter().any(|e| e.path.is_empty()) {
            return;
        }
        match prepared.learn {
            Some(Learn::Persisted(hash, document)) => self.persisted.set(hash, document).await,
            Some(Learn::Parsed(text, document)) => self.parsed.set(text, document).await,
            None => {}
        }
    }

    /// Apollo's Automatic Persisted Queries: the hash alone runs a remembered document; the
    /// hash with the text (checked against it) runs it and has it remembered.
    async fn persisted_query(
        &self,
        request: &mut Request,
        value: async_graphql::Value,
    ) -> Result<Option<Learn>, ServerError> {
        let persisted: PersistedQuery = async_graphql::from_value(value)
            .map_err(|_| coded("the persistedQuery extension is malformed", "BAD_REQUEST"))?;
        if persisted.version != 1 {
            return Err(coded("only version 1 of persisted queries is supported", "BAD_REQUEST"));
        }
        if request.query.is_empty() {
            // Apollo clients resend the text when they see this message or code.
            let document = self
                .persisted
                .get(persisted.sha256_hash)
                .await
                .ok_or_else(|| coded("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND"))?;
            request.set_parsed_query(document);
            return Ok(None);
        }
        let hash = format!("{:x}", Sha256::digest(request.query.as_bytes()));
        if persisted.sha256_hash != hash {
            return Err(coded("the persisted query's sha256Hash does not match its text", "BAD_REQUEST"));
        }
        let short = request.query.len() <= APQ_MAX_QUERY;
        let document = request.parsed_query().map_err(parse_failed)?;
        let keep = short && within_bounds(document)? <= MAX_CACHED_SELECTIONS;
        Ok(keep.then(|| Learn::Persisted(hash, document.clone())))
    }

    /// Parses the document, or takes it from the documents parsed before.
    async fn parse(&self, request: &mut Request) -> Result<Option<Learn>, ServerError> {
        if request.query.len() > PARSED_MAX_QUERY {
            within_bounds(request.parsed_query().map_err(parse_failed)?)?;
            return Ok(None);
        }
        if let Some(document) = self.parsed.get(request.query.clone()).await {
            request.set_parsed_query(document);
            return Ok(None);
        }
        let text = request.query.clone();
        let document = request.parsed_query().map_err(parse_failed)?;
        let keep = within_bounds(document)? <= MAX_CACHED_SELECTIONS;
        Ok(keep.then(|| Learn::Parsed(text, document.clone())))
    }
}

/// The type of the operation a request runs (`query`, `mutation`, `subscription`): the
/// document's only one, or the one named; `unknown` when that is not determined.
pub fn operation_kind(document: &ExecutableDocument, operation_name: Option<&str>) -> &'static str {
    let chosen = match (&document.operations, operation_name) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(map), Some(name)) => {
            map.iter().find(|(n, _)| n.as_str() == name).map(|(_, op)| op.node.ty)
        }
        // One named operation runs without its name being given.
        (DocumentOperations::Multiple(map), None) if map.len() == 1 => map.values().next().map(|op| op.node.ty),
        (DocumentOperations::Multiple(_), None) => None,
    };
    match chosen {
        Some(OperationType::Query) => "query",
        Some(OperationType::Mutation) => "mutation",
        Some(OperationType::Subscription) => "subscription",
        None => "unknown",
    }
}

/// A document's number of selections, refused (`QUERY_TOO_COMPLEX`) over [`MAX_SELECTIONS`].
pub fn within_bounds(document: &ExecutableDocument) -> Result<usize, ServerError> {
    let n = selections(document);
    if n > MAX_SELECTIONS {
        return Err(coded(
            &format!("the document spells out more than {MAX_SELECTIONS} selections"),
            "QUERY_TOO_COMPLEX",
        ));
    }
    Ok(n)
}

/// How many selections (fields, fragment spreads, inline fragments) a document spells out.
fn selections(document: &ExecutableDocument) -> usize {
    fn count(set: &SelectionSet) -> usize {
        set.items
            .iter()
            .map(|item| {
                1 + match &item.node {
                    Selection::Field(field) => count(&field.node.selection_set.node),
                    Selection::FragmentSpread(_) => 0,
                    Selection::InlineFragment(fragment) => count(&fragment.node.selection_set.node),
                }
            })
            .sum()
    }
    let operations: usize = document.operations.iter().map(|(_, op)| count(&op.node.selection_set.node)).sum();
    operations + document.fragments.values().map(|f| count(&f.node.selection_set.node)).sum::<usize>()
}

/// Gives every error of `response` without a code one: ward's own errors carry theirs, so
/// these are async-graphql's — before execution (no path) validation, during it the input.
pub fn code_errors(response: &mut Response) {
    for error in &mut response.errors {
        let code = if error.path.is_empty() { validation_code(error) } else { ErrorCode::BadUserInput.as_str() };
        set_code(error, code);
    }
}

/// The code of an error async-graphql raised before execution, from its (fixed) message.
/// Unknown or missing operation names count as validation failures, as in the spec.
pub fn validation_code(error: &ServerError) -> &'static str {
    match error.message.as_str() {
        "Query is nested too deep." => "QUERY_TOO_DEEP",
        "Query is too complex." => "QUERY_TOO_COMPLEX",
        m if m.starts_with(RECURSION_LIMIT) => "QUERY_TOO_DEEP",
        _ => ErrorCode::ValidationFailed.as_str(),
    }
}

/// The code of an error from parsing a document: nesting past async-graphql's recursion
/// limit (checked while parsing) is "too deep", like nesting past ours.
pub fn parse_code(error: &ServerError) -> &'static str {
    if error.message.starts_with(RECURSION_LIMIT) { "QUERY_TOO_DEEP" } else { ErrorCode::ParseFailed.as_str() }
}

/// How async-graphql's message for a document nested past its recursion limit begins.
const RECURSION_LIMIT: &str = "The recursion depth of the query cannot be greater than";

/// Sets `code` unless the error has one.
pub fn set_code(error: &mut ServerError, code: &str) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", code);
    }
}

fn coded(message: &str, code: &str) -> ServerError {
    let mut error = ServerError::new(message, None);
    set_code(&mut error, code);
    error
}

fn parse_failed(error: ServerError) -> ServerError {
    let mut error = error;
    let code = parse_code(&error);
    set_code(&mut error, code);
    error
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;

    use super::operation_kind;

    #[test]
    fn the_operation_that_runs_is_the_only_one_or_the_named_one() {
        let kind = |query: &str, name: Option<&str>| operation_kind(&parse_query(query).unwrap(), name);
        assert_eq!(kind("{ me { id } }", None), "query");
        assert_eq!(kind("mutation M { a }", None), "mutation");
        assert_eq!(kind("query A { a } mutation B { b }", Some("B")), "mutation");
        assert_eq!(kind("query A { a } mutation B { b }", Some("C")), "unknown");
        assert_eq!(kind("query A { a } subscription B { b }", None), "unknown");
        assert_eq!(kind("subscription { ticketUpdates { eventId } }", Some("X")), "subscription");
    }
}
