//! Files attached to tickets: upload intents for evidence, documents and GBV evidence (the
//! bucket follows the purpose and the ticket's sensitivity), their confirmation into `media`,
//! and signed links to read them.

use std::time::Duration;

use chrono::Utc;
use entity::enums::{AppRole, UploadPurpose, UploadStatus};
use entity::prelude::*;
use entity::{media, upload_intent};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use super::{DomainError, profiles, tickets};
use crate::auth::Caller;
use crate::storage::{ObjectPath, ObjectStore, SignedUpload, Transform, UploadRules, sanitize_filename};

/// How long an upload intent (and its URL) lasts.
pub const INTENT_TTL: Duration = Duration::from_secs(2 * 3600);
/// The largest evidence file: video from a phone (migration 0010's `app.max_upload_bytes`).
pub const MAX_EVIDENCE_BYTES: i64 = 500 * 1024 * 1024;
/// The largest document.
pub const MAX_DOCUMENT_BYTES: i64 = 50 * 1024 * 1024;
/// The largest file the relay ingests (it is held in memory while it is checked and stored).
pub const MAX_INGEST_BYTES: u64 = 50 * 1024 * 1024;

/// The largest file of a purpose, as the database's intent guard allows it.
pub fn max_file_bytes(purpose: UploadPurpose) -> i64 {
    match purpose {
        UploadPurpose::Evidence | UploadPurpose::GbvEvidence => MAX_EVIDENCE_BYTES,
        UploadPurpose::Document => MAX_DOCUMENT_BYTES,
        UploadPurpose::Photo => super::photos::MAX_PHOTO_BYTES as i64,
    }
}

/// The content types a ticket file may have: photos, documents, and the voice notes and videos
/// that reach the relay from WhatsApp.
pub const TICKET_FILE_TYPES: [&str; 11] = [
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "application/pdf",
    "audio/mpeg",
    "audio/ogg",
    "audio/mp4",
    "audio/aac",
    "audio/amr",
    "video/mp4",
];

/// A ticket file's content type, from the allow-list (parameters such as `; codecs=opus` are
/// dropped).
pub fn ticket_file_type(value: &str) -> Result<&'static str, DomainError> {
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    TICKET_FILE_TYPES.iter().find(|t| **t == essence).copied().ok_or_else(|| {
        DomainError::BadInput(format!(
            "content type `{}` is not accepted for ticket files",
            essence.chars().take(60).collect::<String>()
        ))
    })
}

/// Which bucket a file of `purpose` on `ticket` goes to, and the purpose recorded.
pub fn destination(purpose: UploadPurpose, sensitive: bool) -> Result<(&'static str, UploadPurpose), DomainError> {
    match (purpose, sensitive) {
        // Evidence of a gender-based-violence case is always kept behind the GBV firewall.
        (UploadPurpose::Evidence | UploadPurpose::GbvEvidence, true) => {
            Ok(("gbv-evidence", UploadPurpose::GbvEvidence))
        }
        (UploadPurpose::Evidence, false) => Ok(("evidence", UploadPurpose::Evidence)),
        (UploadPurpose::GbvEvidence, false) => {
            Err(DomainError::BadInput("GBV evidence belongs to sensitive tickets".into()))
        }
        (UploadPurpose::Document, _) => Ok(("documents", UploadPurpose::Document)),
        (UploadPurpose::Photo, _) => Err(DomainError::BadInput("photos are uploaded with createPhotoUpload".into())),
    }
}

/// A file to upload to a ticket.
#[derive(Debug, Clone)]
pub struct NewTicketUpload {
    pub purpose: UploadPurpose,
    pub ticket_id: Uuid,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: i64,
}

/// A ticket file's intent with its place decided, before its URL is signed.
#[derive(Debug, Clone)]
pub struct PlannedIntent {
    pub model: upload_intent::ActiveModel,
    pub bucket: &'static str,
    pub path: ObjectPath,
}

/// Decides where a ticket file goes and whether the caller may put it there (reads only).
/// The bucket follows the purpose and the ticket's sensitivity; GBV evidence is accepted
/// from managers, SAPS liaisons and admins only.
#[tracing::instrument(skip_all, fields(ticket_id = %new.ticket_id))]
pub async fn plan_intent(
    db: &impl ConnectionTrait,
    caller: &Caller,
    new: NewTicketUpload,
) -> Result<PlannedIntent, DomainError> {
    let me = match caller {
        Caller::User(_) => profiles::me(db, caller)
            .await?
            .ok_or_else(|| DomainError::Forbidden("register a profile before uploading".into()))?,
        Caller::Anonymous => return Err(DomainError::Unauthenticated("sign in to upload files".into())),
        Caller::Service => return Err(DomainError::Forbidden("the relay uses ingestTicketMedia".into())),
    };
    let ticket = tickets::get(db, new.ticket_id).await?.ok_or(DomainError::NotFound("ticket"))?;
    let (bucket, purpose) = destination(new.purpose, ticket.is_sensitive)?;
    if bucket == "gbv-evidence" && !matches!(me.role, AppRole::Manager | AppRole::SapsLiaison | AppRole::Admin) {
        return Err(DomainError::Forbidden(
            "only managers, SAPS liaisons and admins upload evidence of sensitive tickets".into(),
        ));
    }
    let content_type = ticket_file_type(&new.content_type)?;
    let max = max_file_bytes(purpose);
    if !(1..=max).contains(&new.size_bytes) {
        return Err(DomainError::BadInput(format!("sizeBytes must be between 1 and {max} for this purpose")));
    }
    let filename = sanitize_filename(&new.filename)?;
    let path = ObjectPath::parse(&format!("{}/{}/{}", ticket.municipality_id, Uuid::new_v4(), filename))?;
    let model = upload_intent::ActiveModel {
        id: Set(Uuid::new_v4()),
        municipality_id: Set(ticket.municipality_id),
        created_by: Set(me.id),
        purpose: Set(purpose),
        ticket_id: Set(Some(ticket.id)),
        bucket: Set(bucket.to_string()),
        object_path: Set(path.as_str().to_string()),
        filename: Set(filename),
        content_type: Set(content_type.to_string()),
        max_size_bytes: Set(new.size_bytes),
        status: Set(UploadStatus::Pending),
        ..Default::default()
    };
    Ok(PlannedIntent { model, bucket, path })
}

/// The signed upload URL of a planned intent (storage only).
pub async fn sign_intent(storage: &dyn ObjectStore, planned: &PlannedIntent) -> Result<SignedUpload, DomainError> {
    let rules = UploadRules {
        content_type: planned.model.content_type.clone().take(),
        max_bytes: planned.model.max_size_bytes.clone().take().and_then(|max| u64::try_from(max).ok()),
    };
    Ok(storage.create_signed_upload(planned.bucket, &planned.path, INTENT_TTL, &rules).await?)
}

/// Records a signed intent; it lasts as long as its URL.
pub async fn record_intent(
    db: &impl ConnectionTrait,
    planned: PlannedIntent,
    signed: &SignedUpload,
) -> Result<upload_intent::Model, DomainError> {
    let mut model = planned.model;
    model.expires_at = Set(signed.expires_at.into());
    Ok(UploadIntent::insert(model).exec_with_returning(db).await?)
}

/// A ticket-file intent of the caller's that may be confirmed.
#[derive(Debug, Clone)]
pub struct Confirmable {
    pub me: Uuid,
    pub ticket_id: Uuid,
    pub intent: upload_intent::Model,
    pub path: ObjectPath,
}

/// Finds the caller's pending, unexpired ticket-file intent (reads only).
#[tracing::instrument(skip_all, fields(%intent_id))]
pub async fn confirmable(
    db: &impl ConnectionTrait,
    caller: &Caller,
    intent_id: Uuid,
) -> Result<Confirmable, DomainError> {
    let me = profiles::me(db, caller).await?.ok_or(DomainError::NotFound("upload intent"))?;
    let intent = UploadIntent::find_by_id(intent_id).one(db).await?.ok_or(DomainError::NotFound("upload intent"))?;
    let Some(ticket_id) = intent.ticket_id else {
        return Err(DomainError::BadInput("photo uploads are confirmed with confirmPhotoUpload".into()));
    };
    match intent.status {
        UploadStatus::Pending => {}
        UploadStatus::Confirmed => return Err(DomainError::Conflict("this upload was already confirmed".into())),
        UploadStatus::Expired => return Err(DomainError::BadInput("this upload intent has expired".into())),
    }
    if intent.expires_at.to_utc() < Utc::now() {
        return Err(DomainError::BadInput("this upload intent has expired; create a new one".into()));
    }
    let path = ObjectPath::parse(&intent.object_path)?;
    Ok(Confirmable { me: me.id, ticket_id, intent, path })
}

/// What arrived for an intent: its size and content type, checked against the promise
/// (storage only).
pub async fn check_arrival(storage: &dyn ObjectStore, c: &Confirmable) -> Result<(u64, &'static str), DomainError> {
    let intent = &c.intent;
    let info = storage
        .info(&intent.bucket, &c.path)
        .await?
        .ok_or_else(|| DomainError::BadInput("nothing was uploaded for this intent yet".into()))?;
    if info.size > intent.max_size_bytes as u64 {
        return Err(DomainError::BadInput(format!(
            "the uploaded file has {} bytes, more than the {} declared",
            info.size, intent.max_size_bytes
        )));
    }
    let stored_type = ticket_file_type(&info.content_type)?;
    if stored_type != intent.content_type {
        return Err(DomainError::BadInput(format!(
            "the uploaded file is {stored_type}, not the {} declared",
            intent.content_type
        )));
    }
    Ok((info.size, stored_type))
}

/// Attaches the arrived file to its ticket and marks the intent confirmed. Returns the
/// media row, and whether the caller may read it back (a manager may add GBV evidence but
/// not read it).
#[tracing::instrument(skip_all, fields(intent_id = %c.intent.id))]
pub async fn record_media(
    db: &impl ConnectionTrait,
    c: &Confirmable,
    (size, stored_type): (u64, &'static str),
) -> Result<(media::Model, bool), DomainError> {
    let intent = &c.intent;
    let id = Uuid::new_v4();
    let now = Utc::now();
    let row = media::Model {
        id,
        ticket_id: c.ticket_id,
        municipality_id: intent.municipality_id,
        purpose: intent.purpose,
        bucket: intent.bucket.clone(),
        object_path: intent.object_path.clone(),
        content_type: stored_type.to_string(),
        size_bytes: size as i64,
        uploaded_by: Some(c.me),
        upload_intent_id: Some(intent.id),
        created_at: now.into(),
        updated_at: now.into(),
    };
    let mut active: media::ActiveModel = row.clone().into();
    active.created_at = sea_orm::ActiveValue::NotSet;
    active.updated_at = sea_orm::ActiveValue::NotSet;
    Media::insert(active).exec_without_returning(db).await?;
    UploadIntent::update_many()
        .col_expr(upload_intent::Column::Status, Expr::value(sea_orm::ActiveEnum::to_value(&UploadStatus::Confirmed)))
        .filter(upload_intent::Column::Id.eq(intent.id))
        .exec(db)
        .await?;
    let readable = Media::find_by_id(id).one(db).await?;
    Ok((readable.clone().unwrap_or(row), readable.is_some()))
}

/// A file the caller may read, re-read under the caller's policies (a manager adds GBV
/// evidence but may not read it back), for signing a link to it.
pub async fn readable_file(db: &impl ConnectionTrait, media_id: Uuid) -> Result<media::Model, DomainError> {
    Media::find_by_id(media_id)
        .one(db)
        .await?
        .ok_or_else(|| DomainError::Forbidden("you may not read this file".into()))
}

/// A signed link to a readable file, valid for `expires_in_seconds` (storage only); with a
/// `transform`, to the image rendered that way (images only).
pub async fn sign_file(
    storage: &dyn ObjectStore,
    file: &media::Model,
    expires_in_seconds: i64,
    transform: Option<&Transform>,
) -> Result<String, DomainError> {
    let ttl = crate::storage::ttl_from_seconds(expires_in_seconds)?;
    let path = ObjectPath::parse(&file.object_path)?;
    if transform.is_some() && !file.content_type.starts_with("image/") {
        return Err(DomainError::BadInput("only images can be transformed".into()));
    }
    Ok(storage.create_signed_download(&file.bucket, &path, ttl, transform).await?)
}

/// How long past its expiry an intent is left alone: an upload that began just before the
/// expiry may still be arriving.
pub const EXPIRY_GRACE: Duration = Duration::from_secs(15 * 60);
/// The most intents one sweep expires (the next sweep takes the rest).
pub const EXPIRY_BATCH: u64 = 200;

/// Marks the pending intents past their expiry (and [`EXPIRY_GRACE`]) `EXPIRED`, at most
/// [`EXPIRY_BATCH`]: how many, and where their objects would be (a photo's thumbnail too). Run as the service role. Rows
/// another server is expiring, or a confirmation holds, are skipped (`SKIP LOCKED`), and the
/// update re-checks `PENDING`: each intent expires once, and never after its confirmation.
pub async fn expire_due(db: &impl ConnectionTrait) -> Result<(usize, Vec<(String, String)>), DomainError> {
    let grace = EXPIRY_GRACE.as_secs() as i64;
    let rows = db
        .query_all_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "update public.upload_intents set status = 'EXPIRED', updated_at = now() \
             where id in (select id from public.upload_intents \
                          where status = 'PENDING' and expires_at < now() - make_interval(secs => $1) \
                          order by expires_at limit $2 for update skip locked) \
               and status = 'PENDING' \
             returning bucket, object_path, purpose, created_by, id",
            [grace.into(), (EXPIRY_BATCH as i64).into()],
        ))
        .await?;
    let mut objects = Vec::with_capacity(rows.len());
    for row in &rows {
        objects.push((row.try_get::<String>("", "bucket")?, row.try_get::<String>("", "object_path")?));
        // A photo's confirmation stores the thumbnail before it claims the intent; one that
        // lost the intent to this sweep leaves it behind.
        if row.try_get::<String>("", "purpose")? == "PHOTO" {
            let (owner, id) = (row.try_get::<Uuid>("", "created_by")?, row.try_get::<Uuid>("", "id")?);
            objects.push((super::photos::THUMBNAIL_BUCKET.to_string(), format!("{owner}/{id}/thumbnail.jpg")));
        }
    }
    Ok((rows.len(), objects))
}

/// Where an ingested file goes: the ticket's evidence (GBV evidence when it is sensitive).
#[derive(Debug, Clone)]
pub struct PlannedIngest {
    pub ticket: entity::ticket::Model,
    pub bucket: &'static str,
    pub purpose: UploadPurpose,
    pub path: ObjectPath,
    pub content_type: &'static str,
}

/// Checks a file the relay fetched and decides where it goes (reads only; relay only).
#[tracing::instrument(skip_all, fields(%ticket_id))]
pub async fn plan_ingest(
    db: &impl ConnectionTrait,
    caller: &Caller,
    ticket_id: Uuid,
    file: &crate::fetch::Fetched,
    declared_type: Option<&str>,
) -> Result<PlannedIngest, DomainError> {
    if !matches!(caller, Caller::Service) {
        return Err(DomainError::Forbidden("only the relay (service role) ingests media".into()));
    }
    let ticket = Ticket::find_by_id(ticket_id).one(db).await?.ok_or(DomainError::NotFound("ticket"))?;
    let served = file
        .content_type
        .as_deref()
        .ok_or_else(|| DomainError::BadInput("the media URL sent no content type".into()))?;
    let content_type = ticket_file_type(served)?;
    if let Some(declared) = declared_type
        && ticket_file_type(declared)? != content_type
    {
        return Err(DomainError::BadInput(format!("the media URL served {content_type}, not {declared}")));
    }
    if file.bytes.is_empty() {
        return Err(DomainError::BadInput("the media URL served an empty file".into()));
    }
    let (bucket, purpose) = destination(UploadPurpose::Evidence, ticket.is_sensitive)?;
    let name = file.filename.as_deref().and_then(|n| sanitize_filename(n).ok()).unwrap_or_else(|| "media".to_string());
    let path = ObjectPath::parse(&format!("{}/{}/{}", ticket.municipality_id, Uuid::new_v4(), name))?;
    Ok(PlannedIngest { ticket, bucket, purpose, path, content_type })
}

/// Records an ingested file that storage now holds.
pub async fn record_ingest(
    db: &impl ConnectionTrait,
    plan: &PlannedIngest,
    size: usize,
) -> Result<media::Model, DomainError> {
    let row = media::ActiveModel {
        id: Set(Uuid::new_v4()),
        ticket_id: Set(plan.ticket.id),
        municipality_id: Set(plan.ticket.municipality_id),
        purpose: Set(plan.purpose),
        bucket: Set(plan.bucket.to_string()),
        object_path: Set(plan.path.as_str().to_string()),
        content_type: Set(plan.content_type.to_string()),
        size_bytes: Set(size as i64),
        uploaded_by: Set(None),
        upload_intent_id: Set(None),
        ..Default::default()
    };
    Ok(Media::insert(row).exec_with_returning(db).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_evidence_goes_behind_the_firewall() {
        assert_eq!(destination(UploadPurpose::Evidence, true).unwrap(), ("gbv-evidence", UploadPurpose::GbvEvidence));
        assert_eq!(destination(UploadPurpose::Evidence, false).unwrap(), ("evidence", UploadPurpose::Evidence));
        assert_eq!(destination(UploadPurpose::Document, true).unwrap(), ("documents", UploadPurpose::Document));
        assert!(destination(UploadPurpose::GbvEvidence, false).is_err());
        assert!(destination(UploadPurpose::Photo, false).is_err());
    }

    #[test]
    fn content_types_come_from_the_list() {
        assert_eq!(ticket_file_type("Audio/OGG; codecs=opus").unwrap(), "audio/ogg");
        assert!(ticket_file_type("text/html").is_err());
        assert!(ticket_file_type("").is_err());
    }
}
