//! The mutation root, merged from one object per resource. Each mutation runs in a savepoint
//! of the request's transaction (`context::run_mutation`).

use async_graphql::MergedObject;

use super::media::MediaMutation;
use super::photo::PhotoMutation;
use super::profile::ProfileMutation;
use super::ticket::TicketMutation;

// The mutation root: one part per resource, merged.
#[derive(MergedObject, Default)]
pub struct Mutation(ProfileMutation, PhotoMutation, TicketMutation, MediaMutation);
