//! A person's photos in the schema: the `Photo` type, its connection, and the mutations that
//! upload and delete photos.

use async_graphql::{ComplexObject, Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::photo;
use uuid::Uuid;

use super::connection::PageInfo;
use super::context::{
    after_commit, caller, outside, parse_id, run, run_mutation, storage, storage_handle, storage_read,
};
use super::image::{ImageResize, ImageTransform};
use super::uploads::UploadIntent;
use crate::domain::photos::{self, NewPhotoUpload, PhotoCursor, PhotoPage};
use crate::error::ApiError;

/// One of a person's photos (only its owner ever sees it; its thumbnail is public).
pub struct Photo {
    pub row: photo::Model,
}

impl Photo {
    pub fn new(row: photo::Model) -> Self {
        Photo { row }
    }
}

#[Object]
impl Photo {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    /// A signed URL to download the photo, valid for `expiresIn` seconds (at most a week).
    /// With a `width` and/or `height` (1 to 2500), the URL serves the photo resized that way
    /// (`resize`: cover by default; never enlarged).
    async fn url(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 3600)] expires_in: Option<i32>,
        width: Option<i32>,
        height: Option<i32>,
        resize: Option<ImageResize>,
    ) -> async_graphql::Result<String> {
        let storage = storage(ctx)?;
        let expires_in = expires_in.unwrap_or(3600);
        let transform = match (width, height) {
            (None, None) if resize.is_none() => None,
            _ => Some(
                ImageTransform { width, height, resize: resize.unwrap_or_default(), ..Default::default() }
                    .to_storage()?,
            ),
        };
        // Signing may call Supabase Storage: no connection is held meanwhile.
        let session = &super::context::request(ctx)?.session;
        let signing = photos::download_url(storage, &self.row, expires_in, transform.as_ref());
        let url = storage_read(session, storage, signing).await?;
        Ok(url.map_err(ApiError::from)?)
    }

    /// The public URL of a small JPEG thumbnail.
    async fn thumbnail_url(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        Ok(photos::thumbnail_url(storage(ctx)?, &self.row))
    }

    async fn content_type(&self) -> &str {
        &self.row.content_type
    }

    async fn size_bytes(&self) -> i64 {
        self.row.size_bytes
    }

    /// In pixels.
    async fn width(&self) -> Option<i32> {
        self.row.width
    }

    /// In pixels.
    async fn height(&self) -> Option<i32> {
        self.row.height
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at.to_utc()
    }
}

/// A page of photos, newest first.
pub struct PhotoConnection {
    pub page: PhotoPage,
    pub profile_id: Uuid,
    pub after: bool,
}

/// One photo of a page, with its cursor.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct PhotoEdge {
    pub cursor: String,
    #[graphql(skip)]
    pub photo: photo::Model,
}

#[ComplexObject]
impl PhotoEdge {
    async fn node(&self) -> Photo {
        Photo::new(self.photo.clone())
    }
}

#[Object]
impl PhotoConnection {
    async fn edges(&self) -> Vec<PhotoEdge> {
        self.page.photos.iter().map(|p| PhotoEdge { cursor: PhotoCursor::of(p).encode(), photo: p.clone() }).collect()
    }

    async fn nodes(&self) -> Vec<Photo> {
        self.page.photos.iter().cloned().map(Photo::new).collect()
    }

    async fn page_info(&self) -> PageInfo {
        let cursor = |p: &photo::Model| PhotoCursor::of(p).encode();
        PageInfo {
            has_next_page: self.page.has_next_page,
            has_previous_page: self.after,
            start_cursor: self.page.photos.first().map(cursor),
            end_cursor: self.page.photos.last().map(cursor),
        }
    }

    /// How many photos there are (all pages).
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        let n = run(ctx, async |tx| photos::count(tx, self.profile_id).await).await?;
        Ok(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

/// A photo to upload.
#[derive(InputObject)]
pub struct PhotoUploadInput {
    /// The file's name; folders, `..` and control characters are refused, other unusual
    /// characters become `_`.
    pub filename: String,
    /// image/jpeg, image/png, image/webp or image/gif.
    pub content_type: String,
    /// The file's size in bytes (at most 10 MiB); the upload may not be larger.
    pub size_bytes: i32,
}

/// Mutations of the caller's own photos.
#[derive(Default)]
pub struct PhotoMutation;

#[Object]
impl PhotoMutation {
    /// Starts a photo upload: PUT the file to the intent's `uploadUrl`, then
    /// `confirmPhotoUpload`.
    async fn create_photo_upload(
        &self,
        ctx: &Context<'_>,
        input: PhotoUploadInput,
    ) -> async_graphql::Result<UploadIntent> {
        let upload = NewPhotoUpload::parse(&input.filename, &input.content_type, input.size_bytes.into())
            .map_err(ApiError::from)?;
        let mut created = create_photo_uploads(ctx, vec![upload]).await?;
        Ok(created.remove(0))
    }

    /// Starts several photo uploads at once (at most 10): all, or none on any bad input.
    async fn create_photo_uploads(
        &self,
        ctx: &Context<'_>,
        inputs: Vec<PhotoUploadInput>,
    ) -> async_graphql::Result<Vec<UploadIntent>> {
        let uploads = inputs
            .iter()
            .enumerate()
            .map(|(i, input)| {
                NewPhotoUpload::parse(&input.filename, &input.content_type, input.size_bytes.into()).map_err(|e| {
                    let mut error = ApiError::from(e);
                    error.message = format!("inputs[{i}]: {}", error.message);
                    error
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok(create_photo_uploads(ctx, uploads).await?)
    }

    /// Turns an uploaded file into a photo (checked, measured, with a thumbnail).
    async fn confirm_photo_upload(&self, ctx: &Context<'_>, intent_id: ID) -> async_graphql::Result<Photo> {
        let intent_id = parse_id(&intent_id, "intentId")?;
        let (caller, storage) = (caller(ctx)?, storage(ctx)?);
        let pending = run(ctx, async |tx| photos::confirmable(tx, caller, intent_id).await).await?;
        let checked = outside(ctx, photos::check_and_thumbnail(storage, &pending)).await?.map_err(ApiError::from)?;
        let photo = run_mutation(ctx, async |tx| photos::record_photo(tx, &pending, checked).await).await?;
        Ok(Photo::new(photo))
    }

    /// Deletes one of your photos and its thumbnail; returns its id. The files go once the
    /// deletion has committed.
    async fn delete_photo(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        let id = parse_id(&id, "id")?;
        let caller = caller(ctx)?;
        let deleted = run_mutation(ctx, async |tx| photos::delete(tx, caller, id).await).await?;
        let storage = storage_handle(ctx)?;
        let photo_id = deleted.id;
        after_commit(ctx, async move { photos::remove_objects(storage.as_ref(), &deleted).await })?;
        Ok(ID(photo_id.to_string()))
    }
}

/// Plans the uploads (reads), signs their URLs outside the transaction, and records the
/// intents.
async fn create_photo_uploads(ctx: &Context<'_>, uploads: Vec<NewPhotoUpload>) -> Result<Vec<UploadIntent>, ApiError> {
    let (caller, storage) = (caller(ctx)?, storage(ctx)?);
    let me = run(ctx, async |tx| photos::uploader(tx, caller).await).await?;
    let planned = photos::plan(&me, uploads)?;
    let signed = outside(ctx, photos::sign(storage, &planned)).await??;
    let created = run_mutation(ctx, async |tx| photos::record_intents(tx, &me, planned, signed).await).await?;
    Ok(created.into_iter().map(|c| UploadIntent::new(c.intent, c.signed)).collect())
}
