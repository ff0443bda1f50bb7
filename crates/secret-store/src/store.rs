//! Where secret values come from: a directory (through cap-std) and the environment.
//!
//! Defends against path escapes and stray copies: the directory is opened once as a
//! capability (`cap_std::fs::Dir`), so a name can never reach outside it (`..`, absolute
//! paths and symlinks out are refused by cap-std, and names are checked before that); values
//! are read at each use, never cached, never written anywhere by Latch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;

use latch_secret::Secret;

use crate::{RemoteStore, check_name};

/// The configured secret sources: for a plain name the directory, then the environment; for
/// `STORE:PATH` the remote store (secret manager) STORE.
pub struct SecretStore {
    dir: Option<(PathBuf, Dir)>,
    env_prefix: Option<String>,
    remote: BTreeMap<String, RemoteStore>,
}

impl latch_secret::SecretSource for SecretStore {
    fn secret(&self, name: &str) -> Result<Option<Secret>, String> {
        self.get(name)
    }
}

impl SecretStore {
    /// A store reading files of `dir` (if any) and variables `{env_prefix}{NAME}` (if any),
    /// where NAME is the secret name upper-cased with `-` and `.` as `_`.
    pub fn new(dir: Option<&Path>, env_prefix: Option<&str>) -> Result<Self, String> {
        let dir = match dir {
            Some(path) => {
                let opened = Dir::open_ambient_dir(path, ambient_authority()).map_err(|e| {
                    format!("cannot open secrets directory {}: {e}", path.display())
                })?;
                Some((path.to_path_buf(), opened))
            }
            None => None,
        };
        Ok(SecretStore {
            dir,
            env_prefix: env_prefix.map(str::to_string),
            remote: BTreeMap::new(),
        })
    }

    /// Also the remote stores of `[secrets.stores]`, by name.
    pub fn with_remote(mut self, remote: BTreeMap<String, RemoteStore>) -> Self {
        self.remote = remote;
        self
    }

    /// A store with no sources.
    pub fn empty() -> Self {
        SecretStore {
            dir: None,
            env_prefix: None,
            remote: BTreeMap::new(),
        }
    }

    /// The value of secret `name`, or `None` if no source has it.
    pub fn get(&self, name: &str) -> Result<Option<Secret>, String> {
        check_name(name)?;
        if let Some((store, path)) = name.split_once(':') {
            let remote = self.remote.get(store).ok_or_else(|| {
                format!(
                    "secret {name:?} names store {store:?}, which [secrets.stores] does not define"
                )
            })?;
            return remote.get(store, path, self);
        }
        if let Some((path, dir)) = &self.dir {
            match dir.read(name) {
                Ok(bytes) => return Ok(Some(Secret::new(bytes))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(format!(
                        "cannot read secret {name:?} from {}: {e}",
                        path.display()
                    ));
                }
            }
        }
        if let Some(prefix) = &self.env_prefix {
            let var = format!(
                "{prefix}{}",
                super::environment_form(name).unwrap_or_default()
            );
            if let Some(value) = std::env::var_os(&var) {
                return Ok(Some(Secret::new(value.into_encoded_bytes())));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files_and_cannot_escape() {
        let outer = tempfile::tempdir().unwrap();
        let dir = outer.path().join("secrets");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("db-password"), b"hunter2").unwrap();
        std::fs::write(outer.path().join("outside"), b"not yours").unwrap();
        std::os::unix::fs::symlink(outer.path().join("outside"), dir.join("link-out")).unwrap();
        let store = SecretStore::new(Some(&dir), None).unwrap();
        assert_eq!(
            store.get("db-password").unwrap().unwrap().expose(),
            b"hunter2"
        );
        assert!(store.get("missing").unwrap().is_none());
        assert!(store.get("../outside").is_err(), "a path is not a name");
        assert!(
            store.get("link-out").is_err(),
            "cap-std refuses a symlink out of the dir"
        );
    }

    #[test]
    fn reads_the_environment() {
        // SAFETY: this test alone uses this variable name.
        unsafe { std::env::set_var("LATCH_TEST_SECRET_API_TOKEN_1", "t0k3n") };
        let store = SecretStore::new(None, Some("LATCH_TEST_SECRET_")).unwrap();
        assert_eq!(
            store.get("api-token.1").unwrap().unwrap().expose(),
            b"t0k3n"
        );
        assert!(store.get("absent").unwrap().is_none());
    }
}
