//! Per-database salts for payload fingerprints: 32 random bytes generated on
//! first use in the collector's state directory (mode 0600), never in the
//! database or the source. Odoo can read the journal, so a fingerprint must
//! not be checkable against a guessed payload without this salt.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};

pub struct Salts {
    dir: PathBuf,
    /// database → HMAC already keyed with its salt (cloned per use: keying
    /// costs as much as the MAC itself).
    cache: Mutex<HashMap<String, Hmac<Sha256>>>,
}

impl Salts {
    pub fn new(state_dir: PathBuf) -> Self {
        Salts {
            dir: state_dir.join("salts"),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// `HMAC-SHA256(salt of database, digest)`.
    pub fn fingerprint(&self, database: &str, digest: &[u8; 32]) -> Result<Vec<u8>> {
        let mut mac = self.keyed(database)?;
        mac.update(digest);
        Ok(mac.finalize().into_bytes().to_vec())
    }

    fn keyed(&self, database: &str) -> Result<Hmac<Sha256>> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mac) = cache.get(database) {
            return Ok(mac.clone());
        }
        let salt = self.load_or_create(database)?;
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(&salt).expect("any key length");
        cache.insert(database.to_owned(), mac.clone());
        Ok(mac)
    }

    fn load_or_create(&self, database: &str) -> Result<[u8; 32]> {
        secret_file(&self.dir, &format!("{database}.salt"))
    }
}

/// The 32 secret bytes in `dir/name`, generated on first use: the directory
/// is made 0700 and the file 0600, and two collectors racing cannot both
/// write one (salts, forensic keys).
pub fn secret_file(dir: &Path, name: &str) -> Result<[u8; 32]> {
    let path = dir.join(name);
    let err = |source| Error::State {
        path: path.clone(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(err)?;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut file) => {
            let secret = random_bytes().map_err(err)?;
            file.write_all(&secret)
                .and_then(|_| file.sync_all())
                .map_err(err)?;
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mut secret = [0u8; 32];
            std::fs::File::open(&path)
                .and_then(|mut f| f.read_exact(&mut secret))
                .map_err(err)?;
            Ok(secret)
        }
        Err(e) => Err(err(e)),
    }
}

use std::os::unix::fs::DirBuilderExt;

/// 32 bytes from the kernel's CSPRNG.
pub fn random_bytes() -> std::io::Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn one_stable_private_salt_per_database() {
        let dir = std::env::temp_dir().join(format!("egress-salts-{}", std::process::id()));
        let salts = Salts::new(dir.clone());
        let a1 = salts.fingerprint("a", &[1; 32]).unwrap();
        let b1 = salts.fingerprint("b", &[1; 32]).unwrap();
        assert_ne!(a1, b1, "databases must not share a salt");
        let reopened = Salts::new(dir.clone());
        assert_eq!(
            reopened.fingerprint("a", &[1; 32]).unwrap(),
            a1,
            "salt must persist"
        );
        let mode = std::fs::metadata(dir.join("salts/a.salt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
