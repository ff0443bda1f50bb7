//! Compiled guests kept between runs: each `latch` CLI start would otherwise compile its
//! guest with Cranelift (0.23 s in release for `ssh-servers`).
//!
//! A cached file is native code that wasmtime maps and runs, so it is used only when all of
//! these hold, else the guest is compiled afresh (and the file rewritten):
//! - its name is the guest's sha256 (already checked against the pin in `latch.toml`) and
//!   a hash of the engine's settings and wasmtime's version
//!   ([`Engine::precompile_compatibility_hash`]), so another guest's or another engine's code
//!   is never picked;
//! - the directory and the file belong to this process's user and no one else may write them
//!   (directory 0700, file 0600, as Latch creates them) — the same trust as the ledger and
//!   the secrets beside them;
//! - the file starts with a magic string and the sha256 of the rest, which must match
//!   (a truncated or corrupted file is not used);
//! - wasmtime's own check of the header ([`Component::deserialize`]) accepts it.
//!
//! Writing is best effort (a full disk only costs the next start a compile), atomic (a
//! temporary file renamed over the entry), and never fatal.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 8] = b"LATCHCW1";

/// One guest's entry in the compile cache.
pub struct CompileCache {
    dir: PathBuf,
    file: PathBuf,
}

fn engine_key(engine: &Engine) -> String {
    // SipHash with fixed keys: the same engine settings give the same name in every run.
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Is `path` ours and writable by no one else?
fn private(path: &Path, dir: bool) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc_geteuid() };
    let kind_ok = if dir { meta.is_dir() } else { meta.is_file() };
    kind_ok && meta.uid() == me && meta.permissions().mode() & 0o022 == 0
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

impl CompileCache {
    /// The entry for the guest with `sha256` under `dir` (created when first written).
    pub fn new(dir: &Path, sha256: &str, engine: &Engine) -> CompileCache {
        CompileCache {
            dir: dir.to_path_buf(),
            file: dir.join(format!("{sha256}-{}.cwasm", engine_key(engine))),
        }
    }

    /// Where the entry lives.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// The cached component, if there is one that passes every check.
    pub fn get(&self, engine: &Engine) -> Option<Component> {
        if !private(&self.dir, true) || !private(&self.file, false) {
            return None;
        }
        let bytes = std::fs::read(&self.file).ok()?;
        let body = bytes.strip_prefix(MAGIC.as_slice())?;
        let (sum, code) = body.split_at_checked(32)?;
        if Sha256::digest(code).as_slice() != sum {
            tracing::warn!(file = %self.file.display(), "compiled guest in the cache is damaged; compiling afresh");
            return None;
        }
        // SAFETY: the file is this user's own, unaltered since Latch wrote it (checksum), from
        // `Component::serialize` of the guest with this sha256 on an engine with these
        // settings; wasmtime checks its header again.
        match unsafe { Component::deserialize(engine, code) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::debug!(error = %e, "cached guest not usable; compiling afresh");
                None
            }
        }
    }

    /// Keep `component` for the next start (best effort).
    pub fn put(&self, component: &Component) {
        if let Err(e) = self.try_put(component) {
            tracing::debug!(error = %e, dir = %self.dir.display(), "could not cache the compiled guest");
        }
    }

    fn try_put(&self, component: &Component) -> anyhow::Result<()> {
        let code = component.serialize()?;
        std::fs::create_dir_all(&self.dir)?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))?;
        let tmp = self.dir.join(format!(".tmp-{}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(MAGIC)?;
        f.write_all(&Sha256::digest(&code))?;
        f.write_all(&code)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.file)?;
        Ok(())
    }
}
