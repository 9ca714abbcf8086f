//! Object storage behind one trait with two backends: Supabase Storage over its REST API
//! ([`SupabaseStore`]) and the embedded default's folder on disk ([`LocalStore`]), which ward
//! serves itself on Supabase's REST paths (`src/http/storage.rs`) so the same clients work
//! against both. Paths and file names are parsed here, once, into values that are safe.

mod error;
pub mod local;
pub mod supabase;
pub mod transform;

pub use error::StorageError;
pub use local::LocalStore;
pub use supabase::SupabaseStore;
pub use transform::{Resize, Transform};

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::config::{Config, StorageBackend};

/// The longest object path, in bytes (Supabase's limit on object names).
pub const MAX_PATH_BYTES: usize = 1024;
/// The longest path segment, in bytes (a file name on common file systems).
pub const MAX_SEGMENT_BYTES: usize = 255;
/// The longest file name [`sanitize_filename`] returns, in characters.
pub const MAX_FILENAME_CHARS: usize = 100;
/// The shortest and longest lifetimes of signed URLs.
pub const MIN_URL_TTL: Duration = Duration::from_secs(1);
pub const MAX_URL_TTL: Duration = Duration::from_secs(7 * 86_400);

/// A URL a client uploads one object to, without other credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedUpload {
    /// The absolute URL the client PUTs to, including `?token=`.
    pub url: String,
    /// The token alone (what `@supabase/storage-js`'s `uploadToSignedUrl` takes).
    pub token: String,
    /// When the URL stops working.
    pub expires_at: DateTime<Utc>,
    /// Where a TUS client creates a resumable upload with the same token (sent as the
    /// `x-signature` header), when the backend offers resumable uploads.
    pub resumable_url: Option<String>,
}

/// What one signed upload may carry, beyond its bucket's own rules: an upload intent's
/// promised content type and size. Backends that can bind them to the URL do (the local
/// backend checks both while the bytes arrive); every backend's confirmation checks them again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadRules {
    /// The one content type accepted (its essence; parameters may differ).
    pub content_type: Option<String>,
    /// The most bytes accepted.
    pub max_bytes: Option<u64>,
}

/// What storage knows about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    pub content_type: String,
    pub created_at: Option<DateTime<Utc>>,
}

/// A place objects are kept. Every method takes a bucket id and a parsed [`ObjectPath`];
/// nothing ever overwrites an existing object.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// A URL that lets a client upload one object at `path`, once, until `expires_in` passes,
    /// within `rules` where the backend can bind them.
    async fn create_signed_upload(
        &self,
        bucket: &str,
        path: &ObjectPath,
        expires_in: Duration,
        rules: &UploadRules,
    ) -> Result<SignedUpload, StorageError>;

    /// An absolute URL that lets anyone holding it download the object until `expires_in`
    /// passes; with a `transform`, the URL serves the image rendered that way.
    async fn create_signed_download(
        &self,
        bucket: &str,
        path: &ObjectPath,
        expires_in: Duration,
        transform: Option<&Transform>,
    ) -> Result<String, StorageError>;

    /// The object's size, content type and creation time; `None` when it does not exist.
    async fn info(&self, bucket: &str, path: &ObjectPath) -> Result<Option<ObjectInfo>, StorageError>;

    /// Stores an object from the server side. An existing object is never replaced:
    /// [`StorageError::AlreadyExists`].
    async fn upload(
        &self,
        bucket: &str,
        path: &ObjectPath,
        content_type: &str,
        body: Bytes,
    ) -> Result<(), StorageError>;

    /// Reads a whole object, refusing one larger than `max_bytes` ([`StorageError::TooLarge`]).
    async fn download(&self, bucket: &str, path: &ObjectPath, max_bytes: u64) -> Result<Bytes, StorageError>;

    /// Removes an object ([`StorageError::NotFound`] when there is none).
    async fn delete(&self, bucket: &str, path: &ObjectPath) -> Result<(), StorageError>;

    /// The URL of an object in a public bucket (it works only when the bucket is public).
    fn public_url(&self, bucket: &str, path: &ObjectPath) -> String;

    /// Removes partial uploads abandoned past their expiry (and the uploads' grace): how many.
    /// Backends whose service expires them itself (Supabase) do nothing.
    async fn sweep_abandoned(&self) -> Result<usize, StorageError> {
        Ok(0)
    }

    /// Whether calls go to another service over the network (and may take seconds): then no
    /// database transaction should wait on them, not even a read's.
    fn calls_out(&self) -> bool {
        true
    }
}

/// The store in use, and the local backend again when it is that one (ward serves its REST paths).
pub type Stores = (Arc<dyn ObjectStore>, Option<Arc<LocalStore>>);

/// The storage backend the configuration asks for. The local backend connects a pool of its
/// own (see [`local::POOL_SIZE`]) at `request_url`.
pub async fn build(
    config: &Config,
    request_url: &crate::config::Secret,
    jwt_secret: &crate::config::Secret,
    public_url: &str,
) -> anyhow::Result<Stores> {
    match config.storage {
        StorageBackend::Local | StorageBackend::S3 => {
            let db = crate::db::connect_pool(request_url, local::POOL_SIZE, config.db_acquire_timeout).await?;
            let mut local =
                LocalStore::new(config.data_dir.join("storage"), db, local::derive_token_key(jwt_secret), public_url)?;
            if let Some(settings) = &config.s3 {
                local = local.with_s3(local::s3::S3Blobs::new(settings)?);
            }
            let local = Arc::new(local);
            Ok((local.clone(), Some(local)))
        }
        StorageBackend::Supabase => {
            let (Some(url), Some(key)) = (&config.supabase_url, &config.supabase_service_role_key) else {
                anyhow::bail!("WARD_STORAGE=supabase needs SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY");
            };
            Ok((Arc::new(SupabaseStore::new(url, key.clone())?), None))
        }
    }
}

/// Checks a bucket id: lower-case ASCII letters, digits, `-` and `_`, at most 63 characters.
pub fn validate_bucket(bucket: &str) -> Result<(), StorageError> {
    let ok = !bucket.is_empty()
        && bucket.len() <= 63
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !bucket.starts_with(['-', '_']);
    if ok { Ok(()) } else { Err(StorageError::InvalidPath("not a bucket name".into())) }
}

/// Checks a signed URL's lifetime.
pub fn validate_ttl(expires_in: Duration) -> Result<(), StorageError> {
    if (MIN_URL_TTL..=MAX_URL_TTL).contains(&expires_in) {
        Ok(())
    } else {
        Err(StorageError::InvalidInput(format!(
            "a signed URL must live between {} second and {} seconds",
            MIN_URL_TTL.as_secs(),
            MAX_URL_TTL.as_secs()
        )))
    }
}

/// A signed URL's lifetime from a client's `expiresIn` seconds, within the bounds above.
pub fn ttl_from_seconds(seconds: i64) -> Result<Duration, StorageError> {
    let ttl = u64::try_from(seconds).map(Duration::from_secs).unwrap_or(Duration::ZERO);
    validate_ttl(ttl)?;
    Ok(ttl)
}

/// An object's path inside its bucket: `/`-separated segments, none empty, `.` or `..`, made
/// of the characters Supabase accepts in object names (ASCII letters and digits, space and
/// `_ - . ! * ' ( ) & $ @ = ; : + ,`; not `?`, which would end a URL's path), at most
/// [`MAX_PATH_BYTES`] long with segments of at most [`MAX_SEGMENT_BYTES`]. Control
/// characters, backslashes and anything else that could escape a folder are refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectPath(String);

impl ObjectPath {
    pub fn parse(path: &str) -> Result<Self, StorageError> {
        let invalid = |why: &str| Err(StorageError::InvalidPath(why.to_string()));
        if path.is_empty() {
            return invalid("the path is empty");
        }
        if path.len() > MAX_PATH_BYTES {
            return invalid("the path is too long");
        }
        if let Some(c) = path.chars().find(|c| !allowed_path_char(*c)) {
            return if c.is_control() {
                invalid("the path contains a control character")
            } else if c == '\\' {
                invalid("the path contains a backslash")
            } else {
                invalid("the path contains a character that is not allowed")
            };
        }
        for segment in path.split('/') {
            if segment.is_empty() {
                return invalid("the path has an empty segment");
            }
            if segment == "." || segment == ".." {
                return invalid("the path contains `.` or `..`");
            }
            if segment.len() > MAX_SEGMENT_BYTES {
                return invalid("a segment of the path is too long");
            }
            if segment.starts_with(' ') || segment.ends_with(' ') {
                return invalid("a segment of the path starts or ends with a space");
            }
        }
        Ok(ObjectPath(path.to_string()))
    }

    /// The path as stored (`storage.objects.name`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The last segment.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl std::fmt::Display for ObjectPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ObjectPath {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ObjectPath::parse(s)
    }
}

fn allowed_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "/_-.!*'() &$@=;:+,".contains(c)
}

/// Turns a user-supplied file name into one segment that is safe in an [`ObjectPath`]: any
/// folders are dropped (`/` and `\`), characters other than ASCII letters, digits, `.`, `-`
/// and `_` become `_` (runs collapsed), leading dots and dashes go (no hidden files, no `..`),
/// and the result is cut to [`MAX_FILENAME_CHARS`] keeping a short extension. A name with
/// nothing usable left is refused.
pub fn sanitize_filename(name: &str) -> Result<String, StorageError> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name).trim();
    let mut out = String::with_capacity(base.len());
    for c in base.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    let out = out.trim_start_matches(['.', '-', '_']).trim_end_matches(['.', ' ']);
    if out.is_empty() || out.chars().all(|c| c == '_' || c == '.') {
        return Err(StorageError::InvalidPath("the file name has no usable characters".into()));
    }
    if out.len() <= MAX_FILENAME_CHARS {
        return Ok(out.to_string());
    }
    // Keep an extension of up to 16 characters, cut the stem.
    let (stem, ext) = match out.rfind('.') {
        Some(i) if i > 0 && out.len() - i <= 17 => (&out[..i], &out[i..]),
        _ => (out, ""),
    };
    let keep = MAX_FILENAME_CHARS - ext.len();
    Ok(format!("{}{}", &stem[..keep.min(stem.len())], ext))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_paths_that_parse() {
        for ok in ["a", "a/b/c.txt", "0b6c/3f1e/photo (1).jpg", "x-y_z/A.B!*'()&$@=;:+,"] {
            assert_eq!(ObjectPath::parse(ok).unwrap().as_str(), ok);
        }
        let p = ObjectPath::parse("m/f/name.pdf").unwrap();
        assert_eq!(p.file_name(), "name.pdf");
        assert_eq!(p.segments().collect::<Vec<_>>(), ["m", "f", "name.pdf"]);
    }

    #[test]
    fn object_paths_that_are_refused() {
        let long_segment = "a".repeat(MAX_SEGMENT_BYTES + 1);
        let long_path = vec!["abcdefghij"; 100].join("/") + "/abcdefghijklmnopqrstuvwxyz";
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            ".",
            "..",
            "a/../b",
            "../etc/passwd",
            "a/./b",
            "a\\b",
            "a\u{0}b",
            "a\nb",
            "a\tb",
            "a\u{7f}b",
            "a?b",
            "a#b",
            "a%2e",
            "ä",
            "a/ b",
            "a /b",
            &long_segment,
            &long_path,
        ] {
            assert!(matches!(ObjectPath::parse(bad), Err(StorageError::InvalidPath(_))), "{bad:?} should be refused");
        }
    }

    #[test]
    fn filenames_are_sanitised() {
        let s = |n: &str| sanitize_filename(n).unwrap();
        assert_eq!(s("photo.jpg"), "photo.jpg");
        assert_eq!(s("../../etc/passwd"), "passwd");
        assert_eq!(s("C:\\Users\\me\\My Report (final).pdf"), "My_Report_final_.pdf");
        assert_eq!(s(".bashrc"), "bashrc");
        assert_eq!(s("a\u{0}b\nc.txt"), "a_b_c.txt");
        assert_eq!(s("résumé.doc"), "r_sum_.doc");
        let long = format!("{}.jpeg", "x".repeat(300));
        let cut = s(&long);
        assert_eq!(cut.len(), MAX_FILENAME_CHARS);
        assert!(cut.ends_with(".jpeg"));
        assert!(ObjectPath::parse(&cut).is_ok());
        for bad in ["", "   ", "..", "dir/", "/", "日本語", "..."] {
            assert!(sanitize_filename(bad).is_err(), "{bad:?} should be refused");
        }
    }

    proptest::proptest! {
        #[test]
        fn an_accepted_path_cannot_leave_its_bucket(path in "(\\PC|[/.\\\\\\x00-\\x1f]){0,300}|[a-z./ ]{0,60}") {
            if let Ok(parsed) = ObjectPath::parse(&path) {
                proptest::prop_assert!(parsed.as_str().len() <= MAX_PATH_BYTES);
                for segment in parsed.segments() {
                    proptest::prop_assert!(!segment.is_empty() && segment != "." && segment != "..");
                    proptest::prop_assert!(segment.chars().all(allowed_path_char) && !segment.contains('\\'));
                }
            }
        }

        #[test]
        fn a_sanitised_name_is_one_safe_segment(name in "\\PC{0,400}|[./\\\\ a-z\\x00-\\x1f]{0,60}") {
            if let Ok(clean) = sanitize_filename(&name) {
                proptest::prop_assert!(clean.chars().count() <= MAX_FILENAME_CHARS);
                proptest::prop_assert!(!clean.contains('/') && !clean.starts_with('.'));
                let path = ObjectPath::parse(&format!("folder/{clean}"));
                proptest::prop_assert!(path.is_ok(), "{clean:?}");
                proptest::prop_assert_eq!(path.unwrap().segments().count(), 2);
            }
        }
    }

    #[test]
    fn bucket_names() {
        assert!(validate_bucket("user-photos-thumbnails").is_ok());
        for bad in ["", "..", "a/b", "A", "-x", "x y", &"a".repeat(64)] {
            assert!(validate_bucket(bad).is_err(), "{bad:?}");
        }
    }
}
