//! Per-database keys in the collector's state directory: an HMAC-SHA256 key
//! and an Ed25519 signing key, 32 random bytes each, generated on first use.
//!
//! Layout: `<state_dir>/keys/` (mode 0700) holds `<database>.hmac` and
//! `<database>.ed25519` (the 32-byte seed), mode 0600, raw bytes. They are
//! never in the source and never in the database Odoo can read.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;

use crate::error::{Error, Result};

/// Whether `name` may name a database's key files: proto's one rule for
/// database names (never `.`, `..` or a hidden file).
pub fn validate_database(name: &str) -> Result<()> {
    if egress_proto::database::valid_database_name(name) {
        Ok(())
    } else {
        Err(Error::DatabaseName { name: name.into() })
    }
}

/// The keys of one database.
#[derive(Clone)]
pub struct Keys {
    hmac_key: [u8; 32],
    signing: SigningKey,
}

impl Keys {
    /// Keys from their secret bytes (tests, vectors, a restored backup).
    pub fn from_secrets(hmac_key: [u8; 32], ed25519_seed: [u8; 32]) -> Keys {
        Keys {
            hmac_key,
            signing: SigningKey::from_bytes(&ed25519_seed),
        }
    }

    pub fn hmac_key(&self) -> &[u8; 32] {
        &self.hmac_key
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.signing
    }
}

impl std::fmt::Debug for Keys {
    // Never print a secret, even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("public_key", &hex::encode(self.public_key()))
            .finish_non_exhaustive()
    }
}

/// The key directory of a collector.
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
}

impl KeyStore {
    /// Opens (creating, mode 0700) `<state_dir>/keys`.
    pub fn open(state_dir: impl AsRef<Path>) -> Result<KeyStore> {
        let dir = state_dir.as_ref().join("keys");
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| Error::Keys {
                path: dir.clone(),
                source,
            })?;
        Ok(KeyStore { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The keys of `database`, generated on first use.
    pub fn keys(&self, database: &str) -> Result<Keys> {
        validate_database(database)?;
        let hmac_key = self.load_or_create(&format!("{database}.hmac"))?;
        let seed = self.load_or_create(&format!("{database}.ed25519"))?;
        Ok(Keys::from_secrets(hmac_key, seed))
    }

    /// The Ed25519 public key of `database` (generating its keys on first use).
    pub fn public_key(&self, database: &str) -> Result<[u8; 32]> {
        Ok(self.keys(database)?.public_key())
    }

    fn load_or_create(&self, name: &str) -> Result<[u8; 32]> {
        let path = self.dir.join(name);
        match read_key(&path) {
            Err(Error::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            other => return other,
        }
        // The key is written in full to a private temporary file (create_new),
        // then published with link(), which fails if the name exists: two
        // processes cannot both create a key, and no reader ever sees a
        // half-written one.
        let key = random_bytes().map_err(|source| Error::Keys {
            path: "/dev/urandom".into(),
            source,
        })?;
        let tmp = self.dir.join(format!(
            ".{name}.tmp-{}-{}",
            std::process::id(),
            hex::encode(&random_bytes().unwrap_or_default()[..8])
        ));
        let err = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Keys { path, source }
        };
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut file| {
                file.write_all(&key)?;
                file.sync_all()
            });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(err(&tmp)(e));
        }
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                File::open(&self.dir)
                    .and_then(|d| d.sync_all())
                    .map_err(err(&self.dir))?;
                Ok(key)
            }
            // Another process won the race: use its key.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key(&path),
            Err(e) => Err(err(&path)(e)),
        }
    }
}

/// Reads a 32-byte key file, refusing one that others can read.
fn read_key(path: &Path) -> Result<[u8; 32]> {
    let read_err = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::KeyMode {
            path: path.to_owned(),
            mode,
        });
    }
    if meta.len() != 32 {
        return Err(Error::KeyLength {
            path: path.to_owned(),
            len: meta.len(),
        });
    }
    let mut key = [0u8; 32];
    file.read_exact(&mut key).map_err(read_err)?;
    Ok(key)
}

/// 32 bytes from the kernel's CSPRNG.
pub fn random_bytes() -> std::io::Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("egress-keys-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_database_whose_name_starts_with_an_underscore_gets_keys() {
        // Ingest journals `_odoo`: its heads must be signable too.
        let state = temp_dir("underscore");
        let store = KeyStore::open(&state).unwrap();
        let keys = store.keys("_odoo").unwrap();
        assert_eq!(store.keys("_odoo").unwrap().public_key(), keys.public_key());
        assert!(state.join("keys/_odoo.hmac").is_file());
        for bad in ["..", ".hidden", "-x", "a/b"] {
            assert!(store.keys(bad).is_err(), "{bad:?}");
        }
        std::fs::remove_dir_all(&state).unwrap();
    }

    #[test]
    fn keys_are_generated_once_private_and_per_database() {
        let state = temp_dir("gen");
        let store = KeyStore::open(&state).unwrap();
        let a = store.keys("a").unwrap();
        let b = store.keys("b").unwrap();
        assert_ne!(a.public_key(), b.public_key());
        assert_ne!(a.hmac_key(), b.hmac_key());
        let again = KeyStore::open(&state).unwrap().keys("a").unwrap();
        assert_eq!(again.public_key(), a.public_key());
        assert_eq!(again.hmac_key(), a.hmac_key());
        let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(state.join("keys")), 0o700);
        assert_eq!(mode(state.join("keys/a.hmac")), 0o600);
        assert_eq!(mode(state.join("keys/a.ed25519")), 0o600);
        // Only the two key files per database: no temporary file left over.
        assert_eq!(std::fs::read_dir(state.join("keys")).unwrap().count(), 4);
        assert!(format!("{a:?}").contains("public_key"));
        assert!(!format!("{a:?}").contains(&hex::encode(a.hmac_key())));
        std::fs::remove_dir_all(state).unwrap();
    }

    #[test]
    fn racing_processes_agree_on_one_key() {
        let state = temp_dir("race");
        let keys: Vec<[u8; 32]> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| KeyStore::open(&state).unwrap().public_key("db").unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.windows(2).all(|w| w[0] == w[1]));
        std::fs::remove_dir_all(state).unwrap();
    }

    #[test]
    fn damaged_or_exposed_key_files_are_refused() {
        let state = temp_dir("bad");
        let store = KeyStore::open(&state).unwrap();
        store.keys("db").unwrap();
        let path = state.join("keys/db.hmac");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(store.keys("db"), Err(Error::KeyMode { .. })));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(
            store.keys("db"),
            Err(Error::KeyLength { len: 5, .. })
        ));
        assert!(matches!(
            store.keys("../x"),
            Err(Error::DatabaseName { .. })
        ));
        std::fs::remove_dir_all(state).unwrap();
    }
}
