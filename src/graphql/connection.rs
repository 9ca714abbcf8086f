//! What every Relay connection of the schema shares.

use async_graphql::SimpleObject;

/// Where a page sits in its list.
#[derive(SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}
