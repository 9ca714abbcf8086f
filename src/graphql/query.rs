//! The query root, merged from one object per resource (profiles, tickets).

use async_graphql::MergedObject;

use super::profile::ProfileQuery;
use super::ticket::TicketQuery;

// The query root: one part per resource, merged.
#[derive(MergedObject, Default)]
pub struct Query(ProfileQuery, TicketQuery);
