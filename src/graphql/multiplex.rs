//! Live updates executed once and sent to many: which `ticketUpdates` documents give every
//! subscriber who receives an event the same answer, and that answer rendered once per
//! (document, variables, event) for all of them.
//!
//! Who receives an event is decided per subscriber by the realtime hub, under each one's
//! current rights (docs/POLICY.md, P-LIVE-RIGHTS), and every subscriber who receives it gets
//! the same event row and the same ticket row. What can still differ between them is a nested
//! field read under the subscriber's own policies (`ticket { reporter }`, `evidence`, …): a
//! document that selects one is never shared ([`PERSONAL_TICKET_FIELDS`]) and runs per
//! subscriber as before. A document that selects only fields of the rows themselves is
//! rendered by the schema once per event, with the event handed to the resolver
//! ([`Rendering`]), and its JSON text is sent as it is to each subscriber of the group.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use async_graphql::Request;
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet};
use futures_util::StreamExt;
use tokio::sync::OnceCell;

use super::WardSchema;
use crate::realtime::{Delivery, Realtime, SubscriptionError};

/// Fields of `TicketUpdate` that are the event's own: the same for everyone who receives it.
/// `ticket` is shared when its own selection is.
pub const SHARED_UPDATE_FIELDS: &[&str] = &["eventId", "kind", "status", "noticeKind", "notice", "occurredAt"];
/// Fields of `Ticket` that are columns of the ticket's row, the same for everyone who may see
/// the ticket.
pub const SHARED_TICKET_FIELDS: &[&str] = &[
    "id",
    "trackingNumber",
    "title",
    "description",
    "category",
    "status",
    "priority",
    "isSensitive",
    "slaDueAt",
    "createdAt",
    "updatedAt",
    "version",
];
/// Fields of `Ticket` read under the subscriber's own policies: a document selecting one is
/// executed per subscriber. (A test checks that every field of `Ticket` is in one list.)
pub const PERSONAL_TICKET_FIELDS: &[&str] = &["ward", "reporter", "assignee", "evidence", "media", "events"];

/// Nested fragment spreads followed before a document counts as not shareable.
const MAX_FRAGMENT_DEPTH: usize = 8;

/// Request data that makes `ticketUpdates` yield this one delivery (and not subscribe): how a
/// group's document is rendered for an event.
pub struct Rendering(pub Delivery);

/// Request data of a subscription in a group: `ticketUpdates` yields its first update and any
/// replayed ones for execution like any subscription's (so it is counted, and its errors are
/// coded, the usual way), then, from the first live update after that, hands its deliveries
/// to the websocket, tagged with `operation`. The websocket sends each the group's payload.
pub struct Forward {
    pub operation: u64,
    pub to: tokio::sync::mpsc::Sender<Handover>,
}

/// A subscriber's deliveries, from the realtime hub.
pub type Deliveries = futures_util::stream::BoxStream<'static, Result<Delivery, SubscriptionError>>;

/// A grouped subscription's live deliveries, handed to its websocket. The error that ends
/// them goes back through `ended`, to be answered as the subscription's error; dropping
/// `ended` completes the subscription.
pub struct Handover {
    pub operation: u64,
    pub deliveries: Deliveries,
    pub ended: tokio::sync::oneshot::Sender<SubscriptionError>,
}

/// The live-update groups of this process, and how often one rendered an event.
pub struct Multiplexer {
    /// Renders with the HTTP schema: no websocket extensions, so a render is not counted as
    /// an operation (the subscriptions are, when they start).
    schema: WardSchema,
    groups: Mutex<HashMap<String, Weak<Group>>>,
    next_group: AtomicU64,
    /// Where renders and shared deliveries are counted.
    realtime: Realtime,
}

/// The subscribers of one document with the same variables: their answers are the same bytes.
pub struct Group {
    /// Its key among an event's renders (`Delivery::renders`).
    id: u64,
    query: String,
    operation_name: Option<String>,
    variables: async_graphql::Variables,
}

impl Multiplexer {
    pub fn new(schema: WardSchema, realtime: Realtime) -> Self {
        Multiplexer { schema, groups: Mutex::default(), next_group: AtomicU64::new(1), realtime }
    }

    /// The group of `request` when its answers can be shared, or `None` when it must run per
    /// subscriber.
    pub fn group(&self, request: &mut Request) -> Option<Arc<Group>> {
        if !shareable(request) {
            return None;
        }
        let key = serde_json::to_string(&(&request.query, &request.operation_name, &request.variables)).ok()?;
        let mut groups = self.groups.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(group) = groups.get(&key).and_then(Weak::upgrade) {
            return Some(group);
        }
        let group = Arc::new(Group {
            id: self.next_group.fetch_add(1, Ordering::Relaxed),
            query: request.query.clone(),
            operation_name: request.operation_name.clone(),
            variables: request.variables.clone(),
        });
        // Groups of documents nobody runs any more go when the map has doubled.
        if groups.len() >= 64 && groups.len().is_power_of_two() {
            groups.retain(|_, group| group.strong_count() > 0);
        }
        groups.insert(key, Arc::downgrade(&group));
        Some(group)
    }

    /// The `payload` of a `next` message for this delivery to the group: rendered by the
    /// first of the group's subscribers to send the event, shared by the others. The render is
    /// kept with the event's live deliveries, so a subscriber that lags behind still finds it.
    pub async fn payload(&self, group: &Group, delivery: &Delivery) -> Arc<str> {
        self.realtime.stats().group_deliveries.fetch_add(1, Ordering::Relaxed);
        // Boxed: a render is once per event and group, and would otherwise size every
        // subscriber's socket task for a schema execution.
        let Some(renders) = &delivery.renders else { return Box::pin(self.render(group, delivery)).await };
        let cell = {
            let mut renders = renders.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            match renders.iter().find(|(id, _)| *id == group.id) {
                Some((_, cell)) => cell.clone(),
                None => {
                    let cell = Arc::new(OnceCell::new());
                    renders.push((group.id, cell.clone()));
                    cell
                }
            }
        };
        cell.get_or_init(|| Box::pin(self.render(group, delivery))).await.clone()
    }

    async fn render(&self, group: &Group, delivery: &Delivery) -> Arc<str> {
        self.realtime.stats().group_renders.fetch_add(1, Ordering::Relaxed);
        let mut request =
            Request::new(group.query.clone()).variables(group.variables.clone()).data(Rendering(delivery.clone()));
        request.operation_name = group.operation_name.clone();
        let response = self.schema.execute_stream(request).next().await.unwrap_or_default();
        serde_json::to_string(&response).unwrap_or_else(|_| r#"{"data":null}"#.to_string()).into()
    }
}

/// Whether the request is a `ticketUpdates` subscription selecting only shared fields. Any
/// construct this does not recognise makes it not shareable: it then runs per subscriber,
/// which is always correct.
/// The document is parsed into the request, where its execution finds it (one parse).
pub fn shareable(request: &mut Request) -> bool {
    if request.query.is_empty() {
        return false;
    }
    let operation_name = request.operation_name.clone();
    let Ok(document) = request.parsed_query() else { return false };
    let operation = match (&document.operations, operation_name.as_deref()) {
        (DocumentOperations::Single(operation), _) => &operation.node,
        (DocumentOperations::Multiple(operations), Some(name)) => match operations.get(name) {
            Some(operation) => &operation.node,
            None => return false,
        },
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => match operations.values().next() {
            Some(operation) => &operation.node,
            None => return false,
        },
        (DocumentOperations::Multiple(_), None) => return false,
    };
    if operation.ty != OperationType::Subscription {
        return false;
    }
    let mut roots = 0;
    let root_ok = walk(document, &operation.selection_set.node, 0, &mut |field, set| match field {
        "__typename" => true,
        "ticketUpdates" => {
            roots += 1;
            set.is_some_and(|set| update_shared(document, set))
        }
        _ => false,
    });
    root_ok && roots == 1
}

fn update_shared(document: &ExecutableDocument, set: &SelectionSet) -> bool {
    walk(document, set, 0, &mut |field, nested| match field {
        "__typename" => true,
        "ticket" => nested.is_some_and(|set| {
            walk(document, set, 0, &mut |field, _| field == "__typename" || SHARED_TICKET_FIELDS.contains(&field))
        }),
        _ => SHARED_UPDATE_FIELDS.contains(&field),
    })
}

/// Calls `field` with each field name of the selection set (fragments followed) and its own
/// selection set when it has one; true when every call is.
fn walk(
    document: &ExecutableDocument,
    set: &SelectionSet,
    depth: usize,
    field: &mut dyn FnMut(&str, Option<&SelectionSet>) -> bool,
) -> bool {
    if depth > MAX_FRAGMENT_DEPTH {
        return false;
    }
    set.items.iter().all(|selection| match &selection.node {
        Selection::Field(f) => {
            let f = &f.node;
            // Only the root field takes arguments: anything else with some is not recognised.
            if !f.arguments.is_empty() && f.name.node != "ticketUpdates" {
                return false;
            }
            let nested = &f.selection_set.node;
            field(&f.name.node, (!nested.items.is_empty()).then_some(nested))
        }
        Selection::InlineFragment(fragment) => walk(document, &fragment.node.selection_set.node, depth + 1, field),
        Selection::FragmentSpread(spread) => match document.fragments.get(&spread.node.fragment_name.node) {
            Some(definition) => walk(document, &definition.node.selection_set.node, depth + 1, field),
            None => false,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(query: &str) -> bool {
        shareable(&mut Request::new(query))
    }

    #[test]
    fn documents_of_the_rows_own_fields_are_shared() {
        assert!(shared("subscription { ticketUpdates { eventId kind status ticket { id title status version } } }"));
        assert!(shared("subscription S($t: ID) { u: ticketUpdates(ticketId: $t) { __typename eventId } }"));
        assert!(shared(
            "subscription { ticketUpdates { ...F ticket { ... on Ticket { trackingNumber } } } } \
             fragment F on TicketUpdate { notice occurredAt }"
        ));
    }

    #[test]
    fn documents_reaching_per_person_data_are_not() {
        for field in PERSONAL_TICKET_FIELDS {
            assert!(!shared(&format!(
                "subscription {{ ticketUpdates {{ ticket {{ id {field} {{ __typename }} }} }} }}"
            )));
        }
        assert!(!shared(
            "subscription { ticketUpdates { ...F } } fragment F on TicketUpdate { ticket { reporter { id } } }"
        ));
        // Not a subscription, two roots, an unknown field, a missing fragment, no text.
        assert!(!shared("query { ticketUpdates { eventId } }"));
        assert!(!shared("subscription { a: ticketUpdates { eventId } b: ticketUpdates { kind } }"));
        assert!(!shared("subscription { ticketUpdates { eventId somethingNew } }"));
        assert!(!shared("subscription { ticketUpdates { ...Missing } }"));
        assert!(!shared(""));
        assert!(!shared("subscription { ticketUpdates { "));
        // With several operations, the one named; none named: not shared.
        let two =
            "subscription A { ticketUpdates { eventId } } subscription B { ticketUpdates { ticket { media { id } } } }";
        assert!(!shared(two));
        assert!(shareable(&mut Request::new(two).operation_name("A")));
        assert!(!shareable(&mut Request::new(two).operation_name("B")));
    }

    #[tokio::test]
    async fn every_ticket_field_is_classified() {
        let response =
            super::super::build_schema(None).execute("{ __type(name: \"Ticket\") { fields { name } } }").await;
        let data = response.data.into_json().expect("json");
        let fields = data["__type"]["fields"].as_array().expect("Ticket's fields");
        let update =
            super::super::build_schema(None).execute("{ __type(name: \"TicketUpdate\") { fields { name } } }").await;
        let update = update.data.into_json().expect("json");
        for name in update["__type"]["fields"].as_array().expect("fields").iter().filter_map(|f| f["name"].as_str()) {
            assert!(name == "ticket" || SHARED_UPDATE_FIELDS.contains(&name), "TicketUpdate.{name} is not classified");
        }
        assert!(fields.len() > 10);
        for name in fields.iter().filter_map(|f| f["name"].as_str()) {
            assert!(
                SHARED_TICKET_FIELDS.contains(&name) != PERSONAL_TICKET_FIELDS.contains(&name),
                "Ticket.{name} must be in exactly one of SHARED_TICKET_FIELDS and PERSONAL_TICKET_FIELDS"
            );
        }
    }
}
