//! sea-orm entities for ward's tables: the storage shape of each row, as migrated by the
//! `migration` crate. The GraphQL layer has its own types; these never reach a client.

pub mod enums;
pub mod media;
pub mod municipality;
pub mod photo;
pub mod profile;
pub mod ticket;
pub mod ticket_counter;
pub mod ticket_event;
pub mod upload_intent;
pub mod ward;

pub mod prelude {
    //! The entities under short names.
    pub use super::media::Entity as Media;
    pub use super::municipality::Entity as Municipality;
    pub use super::photo::Entity as Photo;
    pub use super::profile::Entity as Profile;
    pub use super::ticket::Entity as Ticket;
    pub use super::ticket_counter::Entity as TicketCounter;
    pub use super::ticket_event::Entity as TicketEvent;
    pub use super::upload_intent::Entity as UploadIntent;
    pub use super::ward::Entity as Ward;
}
