//! A person's photos: the upload intent (a promise of one file at one path, with a signed
//! upload URL), confirming it once the bytes are there (checked, measured, thumbnailed),
//! listing, signed download URLs, and deleting a photo with both of its objects.
//!
//! Paths are `{profile_id}/{photo_id}/{filename}` in `user-photos`; the photo id is the upload
//! intent's id, so one intent can only ever become one photo. Thumbnails go to
//! `{profile_id}/{photo_id}/thumbnail.jpg` in the public `user-photos-thumbnails`. Uploads
//! never overwrite (the storage layer refuses), so a reused or misdirected token can never
//! replace a stored photo.
//!
//! One file for one flow, read top to bottom: intent, confirmation, listing, links, deletion
//! (a seventh of it is tests).

use std::io::Cursor as IoCursor;
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::enums::{UploadPurpose, UploadStatus};
use entity::prelude::*;
use entity::{photo, upload_intent};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use uuid::Uuid;

use super::DomainError;
use super::profiles;
use crate::auth::Caller;
use crate::storage::{ObjectPath, ObjectStore, SignedUpload, StorageError, Transform, UploadRules, sanitize_filename};

/// The private bucket of photos.
pub const PHOTO_BUCKET: &str = "user-photos";
/// The public bucket of their thumbnails.
pub const THUMBNAIL_BUCKET: &str = "user-photos-thumbnails";
/// The largest photo, in bytes (the `user-photos` bucket's own limit).
pub const MAX_PHOTO_BYTES: u64 = 10 * 1024 * 1024;
/// How long an upload URL works.
pub const UPLOAD_TTL: Duration = Duration::from_secs(15 * 60);
/// The longest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIDE: u32 = 320;
/// The most uploads one `createPhotoUploads` may ask for.
pub const MAX_BATCH: usize = 10;
/// The longest file name a client may send, in characters (it is then sanitised and cut).
pub const MAX_FILENAME_INPUT: usize = 255;
/// Photos larger than this many pixels on a side are refused (decompression bombs).
const MAX_SIDE_PIXELS: u32 = 12_000;
/// The most memory decoding one photo may take.
const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;

/// The image types a photo may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    Jpeg,
    Png,
    Webp,
    Gif,
}

impl ImageType {
    /// Parses a content type (parameters and case ignored).
    pub fn parse(content_type: &str) -> Result<Self, DomainError> {
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "image/jpeg" | "image/jpg" => Ok(ImageType::Jpeg),
            "image/png" => Ok(ImageType::Png),
            "image/webp" => Ok(ImageType::Webp),
            "image/gif" => Ok(ImageType::Gif),
            _ => {
                Err(DomainError::BadInput("contentType must be image/jpeg, image/png, image/webp or image/gif".into()))
            }
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            ImageType::Jpeg => "image/jpeg",
            ImageType::Png => "image/png",
            ImageType::Webp => "image/webp",
            ImageType::Gif => "image/gif",
        }
    }

    fn format(self) -> image::ImageFormat {
        match self {
            ImageType::Jpeg => image::ImageFormat::Jpeg,
            ImageType::Png => image::ImageFormat::Png,
            ImageType::Webp => image::ImageFormat::WebP,
            ImageType::Gif => image::ImageFormat::Gif,
        }
    }
}

/// A client's file name, checked and sanitised: names that try to leave their folder (`/`,
/// `\`, `..`) or carry control characters are refused outright rather than quietly rewritten,
/// so the client learns what was wrong; other odd characters become `_`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoFilename(String);

impl PhotoFilename {
    pub fn parse(name: &str) -> Result<Self, DomainError> {
        let bad = |why: &str| Err(DomainError::BadInput(format!("filename {why}")));
        let len = name.chars().count();
        if name.trim().is_empty() {
            return bad("must not be empty");
        }
        if len > MAX_FILENAME_INPUT {
            return bad(&format!("must be at most {MAX_FILENAME_INPUT} characters"));
        }
        if name.chars().any(char::is_control) {
            return bad("must not contain control characters");
        }
        if name.contains(['/', '\\']) || name.trim() == "." || name.trim().starts_with("..") {
            return bad("must be a plain file name, without folders or `..`");
        }
        let clean =
            sanitize_filename(name).map_err(|_| DomainError::BadInput("filename has no usable characters".into()))?;
        Ok(PhotoFilename(clean))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One photo upload a client asks for, parsed.
#[derive(Debug, Clone)]
pub struct NewPhotoUpload {
    pub filename: PhotoFilename,
    pub content_type: ImageType,
    pub size_bytes: u64,
}

impl NewPhotoUpload {
    pub fn parse(filename: &str, content_type: &str, size_bytes: i64) -> Result<Self, DomainError> {
        let filename = PhotoFilename::parse(filename)?;
        let content_type = ImageType::parse(content_type)?;
        if size_bytes <= 0 {
            return Err(DomainError::BadInput("sizeBytes must be positive".into()));
        }
        if size_bytes as u64 > MAX_PHOTO_BYTES {
            return Err(DomainError::BadInput(format!("a photo may be at most {MAX_PHOTO_BYTES} bytes")));
        }
        Ok(NewPhotoUpload { filename, content_type, size_bytes: size_bytes as u64 })
    }
}

/// An upload intent with the URL to upload to.
#[derive(Debug, Clone)]
pub struct PhotoUpload {
    pub intent: upload_intent::Model,
    pub signed: SignedUpload,
}

fn object_path(path: &str) -> Result<ObjectPath, DomainError> {
    ObjectPath::parse(path).map_err(DomainError::from)
}

// Each flow below is split where it meets object storage: what reads the database, what
// calls storage or decodes (run by the resolver outside the request's transaction, see
// `RlsSession::outside`), and what writes. No storage call or decoding holds a connection.

/// The profile that uploads photos: the caller's.
pub async fn uploader(db: &impl ConnectionTrait, caller: &Caller) -> Result<entity::profile::Model, DomainError> {
    profiles::acting(db, caller, "uploading photos").await
}

/// A photo upload with its place decided: the intent's (and the photo's) id and its path.
#[derive(Debug, Clone)]
pub struct PlannedUpload {
    pub id: Uuid,
    pub path: ObjectPath,
    pub upload: NewPhotoUpload,
}

/// Decides where each upload goes; at most [`MAX_BATCH`] at once.
pub fn plan(me: &entity::profile::Model, uploads: Vec<NewPhotoUpload>) -> Result<Vec<PlannedUpload>, DomainError> {
    if uploads.is_empty() || uploads.len() > MAX_BATCH {
        return Err(DomainError::BadInput(format!("inputs must hold 1 to {MAX_BATCH} uploads")));
    }
    uploads
        .into_iter()
        .map(|upload| {
            let id = Uuid::new_v4();
            let path = object_path(&format!("{}/{}/{}", me.id, id, upload.filename.as_str()))?;
            Ok(PlannedUpload { id, path, upload })
        })
        .collect()
}

/// The signed upload URLs of planned uploads (storage only). A URL whose intent is then not
/// recorded is never handed out, and leads nowhere: confirmation needs the intent.
pub async fn sign(storage: &dyn ObjectStore, planned: &[PlannedUpload]) -> Result<Vec<SignedUpload>, DomainError> {
    let mut signed = Vec::with_capacity(planned.len());
    for p in planned {
        // The URL takes the promised type and size only (where the backend can bind them).
        let rules = UploadRules {
            content_type: Some(p.upload.content_type.mime().to_string()),
            max_bytes: Some(p.upload.size_bytes),
        };
        signed.push(storage.create_signed_upload(PHOTO_BUCKET, &p.path, UPLOAD_TTL, &rules).await?);
    }
    Ok(signed)
}

/// Records the intents of signed uploads: all of them, or none.
#[tracing::instrument(skip_all, fields(count = planned.len()))]
pub async fn record_intents(
    db: &impl ConnectionTrait,
    me: &entity::profile::Model,
    planned: Vec<PlannedUpload>,
    signed: Vec<SignedUpload>,
) -> Result<Vec<PhotoUpload>, DomainError> {
    let mut created = Vec::with_capacity(planned.len());
    for (p, signed) in planned.into_iter().zip(signed) {
        let model = upload_intent::ActiveModel {
            id: Set(p.id),
            municipality_id: Set(me.municipality_id),
            created_by: Set(me.id),
            purpose: Set(UploadPurpose::Photo),
            ticket_id: Set(None),
            bucket: Set(PHOTO_BUCKET.into()),
            object_path: Set(p.path.as_str().into()),
            filename: Set(p.upload.filename.as_str().into()),
            content_type: Set(p.upload.content_type.mime().into()),
            max_size_bytes: Set(p.upload.size_bytes as i64),
            status: Set(UploadStatus::Pending),
            expires_at: Set(signed.expires_at.into()),
            ..Default::default()
        };
        let intent = UploadIntent::insert(model).exec_with_returning(db).await?;
        created.push(PhotoUpload { intent, signed });
    }
    Ok(created)
}

/// Removes an object that was refused, so it cannot linger unconfirmed (best effort).
async fn discard(storage: &dyn ObjectStore, path: &ObjectPath) {
    if let Err(error) = storage.delete(PHOTO_BUCKET, path).await {
        tracing::warn!(error = %error, "removing a refused upload failed");
    }
}

/// A photo intent of the caller's that may be confirmed.
#[derive(Debug, Clone)]
pub struct Confirmable {
    pub intent: upload_intent::Model,
    pub path: ObjectPath,
    pub declared: ImageType,
}

/// Finds the caller's pending photo intent (reads only).
#[tracing::instrument(skip_all, fields(%intent_id))]
pub async fn confirmable(
    db: &impl ConnectionTrait,
    caller: &Caller,
    intent_id: Uuid,
) -> Result<Confirmable, DomainError> {
    let me = profiles::acting(db, caller, "uploading photos").await?;
    // Under RLS a person sees only their own intents: anyone else's is not found.
    let intent = UploadIntent::find_by_id(intent_id).one(db).await?.ok_or(DomainError::NotFound("upload"))?;
    if intent.purpose != UploadPurpose::Photo || intent.created_by != me.id {
        return Err(DomainError::BadInput("this upload is not one of your photo uploads".into()));
    }
    match intent.status {
        UploadStatus::Confirmed => {
            return Err(DomainError::BadInput("this upload has already been confirmed".into()));
        }
        UploadStatus::Expired => {
            return Err(DomainError::BadInput("this upload has expired; create a new one".into()));
        }
        UploadStatus::Pending => {}
    }
    let path = object_path(&intent.object_path)?;
    let declared = ImageType::parse(&intent.content_type)?;
    Ok(Confirmable { intent, path, declared })
}

/// What the uploaded bytes turned out to be, with the thumbnail stored.
#[derive(Debug, Clone)]
pub struct Checked {
    pub size: u64,
    pub width: u32,
    pub height: u32,
    pub thumbnail_path: ObjectPath,
}

/// Checks the uploaded object (there, of the declared image type, no larger than declared),
/// decodes it off the async executor, and stores its thumbnail (storage and CPU only). A file
/// that breaks its promise is removed.
#[tracing::instrument(skip_all, fields(intent_id = %c.intent.id))]
pub async fn check_and_thumbnail(storage: &dyn ObjectStore, c: &Confirmable) -> Result<Checked, DomainError> {
    let (intent, path, declared) = (&c.intent, &c.path, c.declared);
    let Some(info) = storage.info(PHOTO_BUCKET, path).await? else {
        return Err(DomainError::BadInput(if intent.expires_at.to_utc() < Utc::now() {
            "this upload has expired; create a new one".into()
        } else {
            "nothing has been uploaded yet: PUT the file to the uploadUrl first".into()
        }));
    };
    let stored_type = ImageType::parse(&info.content_type).ok();
    if stored_type != Some(declared) {
        discard(storage, path).await;
        return Err(DomainError::BadInput(format!(
            "the uploaded file is not {} (it was stored as {}); it has been removed",
            declared.mime(),
            info.content_type.split(';').next().unwrap_or("").trim()
        )));
    }
    if info.size > intent.max_size_bytes as u64 || info.size > MAX_PHOTO_BYTES {
        discard(storage, path).await;
        return Err(DomainError::BadInput(format!(
            "the uploaded file is {} bytes, more than the {} declared; it has been removed",
            info.size, intent.max_size_bytes
        )));
    }
    let bytes = storage.download(PHOTO_BUCKET, path, MAX_PHOTO_BYTES).await?;
    let size = bytes.len() as u64;
    let processed = tokio::task::spawn_blocking(move || process_image(&bytes, declared))
        .await
        .map_err(|e| DomainError::Storage(StorageError::other("making a thumbnail", e)))?;
    let processed = match processed {
        Ok(processed) => processed,
        Err(why) => {
            discard(storage, path).await;
            return Err(DomainError::BadInput(format!("{why}; the upload has been removed")));
        }
    };
    let thumbnail_path = object_path(&format!("{}/{}/thumbnail.jpg", intent.created_by, intent.id))?;
    match storage.upload(THUMBNAIL_BUCKET, &thumbnail_path, "image/jpeg", processed.thumbnail.into()).await {
        // Left by an earlier or concurrent confirmation of this very photo.
        Ok(()) | Err(StorageError::AlreadyExists) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Checked { size, width: processed.width, height: processed.height, thumbnail_path })
}

/// Turns the checked upload into a photo: claims the intent (of two concurrent
/// confirmations, the second finds nothing left to claim) and records the photo.
#[tracing::instrument(skip_all, fields(intent_id = %c.intent.id))]
pub async fn record_photo(
    db: &impl ConnectionTrait,
    c: &Confirmable,
    checked: Checked,
) -> Result<photo::Model, DomainError> {
    let claimed = UploadIntent::update_many()
        .col_expr(upload_intent::Column::Status, Expr::value(UploadStatus::Confirmed))
        .filter(upload_intent::Column::Id.eq(c.intent.id))
        .filter(upload_intent::Column::Status.eq(UploadStatus::Pending))
        .exec(db)
        .await?;
    if claimed.rows_affected == 0 {
        return Err(DomainError::BadInput("this upload has already been confirmed, or has expired".into()));
    }
    let model = photo::ActiveModel {
        id: Set(c.intent.id),
        profile_id: Set(c.intent.created_by),
        bucket: Set(PHOTO_BUCKET.into()),
        object_path: Set(c.path.as_str().into()),
        thumbnail_path: Set(Some(checked.thumbnail_path.as_str().into())),
        content_type: Set(c.declared.mime().into()),
        size_bytes: Set(checked.size as i64),
        width: Set(i32::try_from(checked.width).ok()),
        height: Set(i32::try_from(checked.height).ok()),
        ..Default::default()
    };
    let created = Photo::insert(model).exec_with_returning(db).await?;
    tracing::info!(photo_id = %created.id, size = checked.size, "photo confirmed");
    Ok(created)
}

/// What decoding a photo yields.
struct Processed {
    width: u32,
    height: u32,
    thumbnail: Vec<u8>,
}

/// Decodes the bytes as the declared type (within size limits) and encodes a JPEG thumbnail.
/// CPU-bound: runs on the blocking pool.
fn process_image(bytes: &[u8], declared: ImageType) -> Result<Processed, String> {
    let mut reader = image::ImageReader::new(IoCursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| "the uploaded file could not be read".to_string())?;
    if reader.format() != Some(declared.format()) {
        return Err(format!("the uploaded file is not a {} image", declared.mime()));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE_PIXELS);
    limits.max_image_height = Some(MAX_SIDE_PIXELS);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => format!("the image is larger than {MAX_SIDE_PIXELS} pixels on a side"),
        _ => format!("the uploaded file is not a readable {} image", declared.mime()),
    })?;
    let (width, height) = (image.width(), image.height());
    let thumbnail = image::DynamicImage::ImageRgb8(image.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE).to_rgb8());
    let mut out = IoCursor::new(Vec::new());
    thumbnail
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .map_err(|_| "the thumbnail could not be made".to_string())?;
    Ok(Processed { width, height, thumbnail: out.into_inner() })
}

/// A place in a list of photos (newest first). Opaque to clients.
pub type PhotoCursor = super::cursor::Place<photo::Model>;

impl super::cursor::Listed for photo::Model {
    const TAG: &'static str = "ph1";
    fn place(&self) -> (DateTime<Utc>, Uuid) {
        (self.created_at.to_utc(), self.id)
    }
}

/// One page of photos.
#[derive(Debug, Clone)]
pub struct PhotoPage {
    pub photos: Vec<photo::Model>,
    pub has_next_page: bool,
}

/// One page of a person's photos, newest first (the caller sees only their own).
#[tracing::instrument(skip_all, fields(%profile_id))]
pub async fn list(
    db: &impl ConnectionTrait,
    profile_id: Uuid,
    first: u64,
    after: Option<PhotoCursor>,
) -> Result<PhotoPage, DomainError> {
    let mut query = Photo::find().filter(photo::Column::ProfileId.eq(profile_id));
    if let Some(after) = after {
        query = query.filter(after.after(photo::Column::CreatedAt, photo::Column::Id, true));
    }
    let mut rows =
        query.order_by_desc(photo::Column::CreatedAt).order_by_desc(photo::Column::Id).limit(first + 1).all(db).await?;
    let has_next_page = rows.len() as u64 > first;
    rows.truncate(first as usize);
    Ok(PhotoPage { photos: rows, has_next_page })
}

/// How many photos of this person the caller may see.
pub async fn count(db: &impl ConnectionTrait, profile_id: Uuid) -> Result<u64, DomainError> {
    use sea_orm::PaginatorTrait;
    Ok(Photo::find().filter(photo::Column::ProfileId.eq(profile_id)).count(db).await?)
}

/// A signed URL to download a photo, valid for `expires_in_seconds`; with a `transform`, of
/// the photo rendered that way.
pub async fn download_url(
    storage: &dyn ObjectStore,
    photo: &photo::Model,
    expires_in_seconds: i32,
    transform: Option<&Transform>,
) -> Result<String, DomainError> {
    let ttl = crate::storage::ttl_from_seconds(i64::from(expires_in_seconds))?;
    let path = object_path(&photo.object_path)?;
    Ok(storage.create_signed_download(&photo.bucket, &path, ttl, transform).await?)
}

/// The public URL of a photo's thumbnail.
pub fn thumbnail_url(storage: &dyn ObjectStore, photo: &photo::Model) -> Option<String> {
    let path = ObjectPath::parse(photo.thumbnail_path.as_deref()?).ok()?;
    Some(storage.public_url(THUMBNAIL_BUCKET, &path))
}

/// Deletes one of the caller's photo rows; its objects go once that has committed
/// ([`remove_objects`]), so a rolled-back request never loses a photo's files.
#[tracing::instrument(skip_all, fields(%id))]
pub async fn delete(db: &impl ConnectionTrait, caller: &Caller, id: Uuid) -> Result<photo::Model, DomainError> {
    let me = profiles::acting(db, caller, "deleting photos").await?;
    // Someone else's photo is invisible under RLS, hence not found.
    let photo = Photo::find_by_id(id).one(db).await?.ok_or(DomainError::NotFound("photo"))?;
    if photo.profile_id != me.id {
        return Err(DomainError::NotFound("photo"));
    }
    let deleted = Photo::delete_by_id(id).exec(db).await?;
    if deleted.rows_affected == 0 {
        return Err(DomainError::NotFound("photo"));
    }
    tracing::info!(photo_id = %id, "photo deleted");
    Ok(photo)
}

/// Removes a deleted photo's objects, the photo and its thumbnail (best effort: a failure is
/// logged, and leaves an object no row refers to, which nothing signs a link to).
pub async fn remove_objects(storage: &dyn ObjectStore, photo: &photo::Model) {
    let objects = [
        (photo.bucket.as_str(), Some(photo.object_path.as_str())),
        (THUMBNAIL_BUCKET, photo.thumbnail_path.as_deref()),
    ];
    for (bucket, path) in objects {
        let Some(Ok(path)) = path.map(ObjectPath::parse) else { continue };
        match storage.delete(bucket, &path).await {
            Ok(()) | Err(StorageError::NotFound) => {}
            Err(error) => {
                tracing::warn!(%error, photo_id = %photo.id, bucket, "removing a deleted photo's object failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_that_try_to_escape_are_refused_and_others_sanitised() {
        assert_eq!(PhotoFilename::parse("My Photo (1).JPG").unwrap().as_str(), "My_Photo_1_.JPG");
        for bad in ["../../etc/passwd", "a/b.jpg", "a\\b.jpg", "..", "..jpg", "a\u{0}.jpg", "a\n.jpg", "", "  "] {
            assert!(PhotoFilename::parse(bad).is_err(), "{bad:?}");
        }
        assert!(PhotoFilename::parse(&"x".repeat(256)).is_err());
        assert!(PhotoFilename::parse(&format!("{}.png", "x".repeat(200))).is_ok());
    }

    #[test]
    fn content_types_and_sizes() {
        assert_eq!(ImageType::parse("IMAGE/PNG; q=1").unwrap(), ImageType::Png);
        assert!(ImageType::parse("image/svg+xml").is_err());
        assert!(NewPhotoUpload::parse("a.jpg", "image/jpeg", 0).is_err());
        assert!(NewPhotoUpload::parse("a.jpg", "image/jpeg", MAX_PHOTO_BYTES as i64 + 1).is_err());
        assert!(NewPhotoUpload::parse("a.jpg", "image/jpeg", 1).is_ok());
    }

    #[test]
    fn thumbnails_are_small_jpegs() {
        let image = image::DynamicImage::new_rgb8(640, 480);
        let mut png = IoCursor::new(Vec::new());
        image.write_to(&mut png, image::ImageFormat::Png).unwrap();
        let processed = process_image(png.get_ref(), ImageType::Png).unwrap();
        assert_eq!((processed.width, processed.height), (640, 480));
        let thumb = image::load_from_memory(&processed.thumbnail).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (THUMBNAIL_SIDE, 240));
        assert!(process_image(png.get_ref(), ImageType::Jpeg).is_err());
        assert!(process_image(b"not an image", ImageType::Png).is_err());
    }
}
