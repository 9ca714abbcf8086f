//! The query root.

use async_graphql::{Context, Object};

use super::context::{request, run};
use super::profile::Profile;
use crate::domain::profiles;

pub struct Query;

#[Object]
impl Query {
    /// The signed-in person's profile: null for anonymous callers and for people who have not
    /// registered yet.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Profile>> {
        let caller = request(ctx)?.session.caller().clone();
        let me = run(ctx, async |tx| profiles::me(tx, &caller).await).await?;
        Ok(me.map(Profile))
    }
}
