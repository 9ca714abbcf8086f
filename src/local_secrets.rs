//! Secrets the embedded default generates once and keeps in `WARD_DATA_DIR/secrets.json`
//! (mode 0600): the JWT signing secret and the embedded cluster's passwords.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};

use crate::config::Secret;

#[derive(Serialize, Deserialize)]
struct Stored {
    jwt_secret: String,
    postgres_password: String,
    authenticator_password: String,
}

/// The local secrets.
pub struct LocalSecrets {
    pub jwt_secret: Secret,
    pub postgres_password: Secret,
    pub authenticator_password: Secret,
}

impl std::fmt::Debug for LocalSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalSecrets([redacted])")
    }
}

fn random(len: usize) -> String {
    rand::rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

impl LocalSecrets {
    /// Reads the secrets of `data_dir`, creating them on first use.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join("secrets.json");
        let stored = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Stored>(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not readable ({e}); remove the data directory to start over", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir)?;
                let stored = Stored {
                    jwt_secret: random(48),
                    postgres_password: random(32),
                    authenticator_password: random(32),
                };
                let tmp = data_dir.join(format!(".secrets.json.{}", std::process::id()));
                let mut file =
                    std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
                file.write_all(&serde_json::to_vec_pretty(&stored)?)?;
                file.sync_all()?;
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
                // Two first runs at once: the first link wins and both read the same file.
                match std::fs::hard_link(&tmp, &path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
                let _ = std::fs::remove_file(&tmp);
                return Self::load_or_create(data_dir);
            }
            Err(e) => return Err(e),
        };
        Ok(LocalSecrets {
            jwt_secret: Secret::new(stored.jwt_secret),
            postgres_password: Secret::new(stored.postgres_password),
            authenticator_password: Secret::new(stored.authenticator_password),
        })
    }
}
