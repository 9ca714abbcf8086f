//! The `Photo` type, its connection, and the inputs of photo uploads.

use async_graphql::{ComplexObject, Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::photo;
use uuid::Uuid;

use super::context::{run, storage, storage_read};
use super::image::{ImageResize, ImageTransform};
use super::ticket::PageInfo;
use crate::domain::photos::{self, PhotoCursor, PhotoPage};
use crate::error::ApiError;

/// One of a person's photos (only its owner ever sees it; its thumbnail is public).
pub struct Photo(pub photo::Model);

#[Object]
impl Photo {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
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
            _ => Some(ImageTransform { width, height, resize: resize.unwrap_or_default(), ..Default::default() }.to_storage()?),
        };
        // Signing may call Supabase Storage: no connection is held meanwhile.
        let session = &super::context::request(ctx)?.session;
        let signing = photos::download_url(storage, &self.0, expires_in, transform.as_ref());
        let url = storage_read(session, storage, signing).await?;
        Ok(url.map_err(ApiError::from)?)
    }

    /// The public URL of a small JPEG thumbnail.
    async fn thumbnail_url(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        Ok(photos::thumbnail_url(storage(ctx)?, &self.0))
    }

    async fn content_type(&self) -> &str {
        &self.0.content_type
    }

    async fn size_bytes(&self) -> i64 {
        self.0.size_bytes
    }

    /// In pixels.
    async fn width(&self) -> Option<i32> {
        self.0.width
    }

    /// In pixels.
    async fn height(&self) -> Option<i32> {
        self.0.height
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at.to_utc()
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
        Photo(self.photo.clone())
    }
}

#[Object]
impl PhotoConnection {
    async fn edges(&self) -> Vec<PhotoEdge> {
        self.page
            .photos
            .iter()
            .map(|p| PhotoEdge { cursor: PhotoCursor::of(p).encode(), photo: p.clone() })
            .collect()
    }

    async fn nodes(&self) -> Vec<Photo> {
        self.page.photos.iter().cloned().map(Photo).collect()
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
