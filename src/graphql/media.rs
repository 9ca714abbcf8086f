//! A ticket's files (`Media`), and the mutations that attach them: upload intents and their
//! confirmation, and the relay's ingest.

use async_graphql::{Context, Enum, ID, InputObject, Object};
use chrono::{DateTime, Utc};
use entity::enums::UploadPurpose as DomainPurpose;
use entity::media;

use super::context::{Scope, caller, outside, parse_id, run, run_mutation, storage, storage_read};
use super::image::ImageTransform;
use super::ticket::MediaPurpose;
use super::uploads::UploadIntent;
use crate::domain::uploads::{self, NewTicketUpload};
use crate::error::{ApiError, ErrorCode};
use crate::fetch::{FetchError, Fetcher};

/// A file attached to a ticket.
pub struct Media {
    pub row: media::Model,
    /// Where its nested fields are read: the request's session, or a subscriber's own.
    pub scope: Scope,
}

impl Media {
    pub fn new(row: media::Model, scope: Scope) -> Self {
        Media { row, scope }
    }
}

#[Object]
impl Media {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    async fn purpose(&self) -> MediaPurpose {
        self.row.purpose.into()
    }

    async fn bucket(&self) -> &str {
        &self.row.bucket
    }

    /// The object path in its bucket: `{municipality_id}/{file_id}/{filename}`.
    async fn path(&self) -> &str {
        &self.row.object_path
    }

    async fn content_type(&self) -> &str {
        &self.row.content_type
    }

    async fn size_bytes(&self) -> i64 {
        self.row.size_bytes
    }

    /// A link to download the file, valid for `expiresIn` seconds (1 to 604800, 7 days).
    /// Only for those who may read the file: managers upload GBV evidence but get no link.
    /// With a `transform`, the link serves the image rendered that way (images only).
    async fn signed_url(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 3600)] expires_in: i32,
        transform: Option<ImageTransform>,
    ) -> async_graphql::Result<String> {
        let transform = transform.map(|t| t.to_storage()).transpose()?;
        let storage = storage(ctx)?;
        let session = &self.scope.data(ctx)?.session;
        let id = self.row.id;
        let file = session.run(async |tx| uploads::readable_file(tx, id).await).await.map_err(ApiError::from)?;
        // Signing may call Supabase Storage: no connection is held meanwhile.
        let signing = uploads::sign_file(storage, &file, i64::from(expires_in), transform.as_ref());
        let url = storage_read(session, storage, signing).await?;
        Ok(url.map_err(ApiError::from)?)
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at.to_utc()
    }
}

/// Why a file is attached to a ticket.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum UploadPurpose {
    /// Evidence (photos, voice notes…); on a sensitive ticket it becomes GBV evidence.
    Evidence,
    /// Documents (forms, reports).
    Document,
    /// Evidence of a gender-based-violence case (sensitive tickets only).
    GbvEvidence,
}

impl From<UploadPurpose> for DomainPurpose {
    fn from(p: UploadPurpose) -> Self {
        match p {
            UploadPurpose::Evidence => DomainPurpose::Evidence,
            UploadPurpose::Document => DomainPurpose::Document,
            UploadPurpose::GbvEvidence => DomainPurpose::GbvEvidence,
        }
    }
}

/// A file to attach to a ticket.
#[derive(InputObject)]
pub struct CreateUploadIntentInput {
    pub purpose: UploadPurpose,
    pub ticket_id: ID,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: i64,
}

impl From<FetchError> for ApiError {
    fn from(e: FetchError) -> Self {
        let code = match e {
            FetchError::PrivateAddress => ErrorCode::Forbidden,
            FetchError::BadUrl | FetchError::TooLarge(_) | FetchError::Status(_) | FetchError::TooManyRedirects => {
                ErrorCode::BadUserInput
            }
            FetchError::Timeout | FetchError::Unreachable => ErrorCode::Unavailable,
        };
        ApiError::new(code, format!("the media could not be fetched: {e}"))
    }
}

/// Mutations of ticket files.
#[derive(Default)]
pub struct MediaMutation;

#[Object]
impl MediaMutation {
    /// Promises one file for a ticket: PUT it to `uploadUrl`, then call `confirmUpload`.
    async fn create_upload_intent(
        &self,
        ctx: &Context<'_>,
        input: CreateUploadIntentInput,
    ) -> async_graphql::Result<UploadIntent> {
        let new = NewTicketUpload {
            purpose: input.purpose.into(),
            ticket_id: parse_id(&input.ticket_id, "ticketId")?,
            filename: input.filename,
            content_type: input.content_type,
            size_bytes: input.size_bytes,
        };
        let (caller, storage) = (caller(ctx)?, storage(ctx)?);
        let planned = run(ctx, async |tx| uploads::plan_intent(tx, caller, new).await).await?;
        let signed = outside(ctx, uploads::sign_intent(storage, &planned)).await?.map_err(ApiError::from)?;
        let intent = run_mutation(ctx, async |tx| uploads::record_intent(tx, planned, &signed).await).await?;
        Ok(UploadIntent::new(intent, signed))
    }

    /// Checks that the promised file arrived as declared and attaches it to its ticket.
    async fn confirm_upload(&self, ctx: &Context<'_>, intent_id: ID) -> async_graphql::Result<Media> {
        let intent_id = parse_id(&intent_id, "intentId")?;
        let (caller, storage) = (caller(ctx)?, storage(ctx)?);
        let pending = run(ctx, async |tx| uploads::confirmable(tx, caller, intent_id).await).await?;
        let arrived = outside(ctx, uploads::check_arrival(storage, &pending)).await?.map_err(ApiError::from)?;
        let (media, _readable) =
            run_mutation(ctx, async |tx| uploads::record_media(tx, &pending, arrived).await).await?;
        Ok(Media::new(media, Scope::default()))
    }

    /// The relay's (service role's) way in: downloads the media at `url` and attaches it to
    /// the ticket — into GBV evidence when the ticket is sensitive.
    async fn ingest_ticket_media(
        &self,
        ctx: &Context<'_>,
        ticket_id: ID,
        url: String,
        content_type: Option<String>,
    ) -> async_graphql::Result<Media> {
        let ticket_id = parse_id(&ticket_id, "ticketId")?;
        let caller = caller(ctx)?;
        if !matches!(caller, crate::auth::Caller::Service) {
            return Err(ApiError::new(ErrorCode::Forbidden, "only the relay (service role) ingests media").into());
        }
        let fetcher = ctx
            .data::<Fetcher>()
            .map_err(|_| ApiError::new(ErrorCode::Internal, "internal error: no media fetcher"))?;
        // The download, and then the upload to storage, hold no connection.
        let file = outside(ctx, fetcher.fetch(&url)).await?.map_err(ApiError::from)?;
        let storage = storage(ctx)?;
        let plan =
            run(ctx, async |tx| uploads::plan_ingest(tx, caller, ticket_id, &file, content_type.as_deref()).await)
                .await?;
        let size = file.bytes.len();
        outside(ctx, storage.upload(plan.bucket, &plan.path, plan.content_type, file.bytes))
            .await?
            .map_err(ApiError::from)?;
        match run_mutation(ctx, async |tx| uploads::record_ingest(tx, &plan, size).await).await {
            Ok(media) => Ok(Media::new(media, Scope::default())),
            Err(error) => {
                // Nothing refers to the stored file: remove it (best effort).
                if let Err(e) = storage.delete(plan.bucket, &plan.path).await {
                    tracing::warn!(error = %e, "removing an ingested file that was not recorded failed");
                }
                Err(error.into())
            }
        }
    }
}
