//! Where secret values come from: a directory (through cap-std) and the environment
//! ([`SecretStore`]), and secret managers ([`remote`]: AWS Secrets Manager, Vault KV v2 /
//! OpenBao, Azure Key Vault, GCP Secret Manager, a file each). Below the capabilities, above
//! [`latch_secret`] and [`latch_cloud_auth`].

pub mod remote;
mod store;

pub use remote::RemoteStore;
pub use store::SecretStore;

/// Most bytes of a secret name.
pub const MAX_NAME_BYTES: usize = 128;

/// Check that `name` is a plain secret name, or `STORE:PATH` (a secret of a configured
/// remote store: a plain store name, then a path as [`remote::check_path`] allows).
pub fn check_name(name: &str) -> Result<(), String> {
    if let Some((store, path)) = name.split_once(':') {
        check_plain(store).map_err(|e| format!("store of {name:?}: {e}"))?;
        return remote::check_path(path);
    }
    check_plain(name)
}

/// The environment variable a plain secret name is also read from, less its prefix: the
/// name upper-cased with `-` and `.` as `_` (`prod-key.1` → `PROD_KEY_1`). `None` for a
/// store's secret (`STORE:PATH`), which the environment never holds.
pub fn environment_form(name: &str) -> Option<String> {
    (!name.contains(':')).then(|| name.to_ascii_uppercase().replace(['-', '.'], "_"))
}

/// Do `a` and `b` name the same secret: the same name, or two plain names the environment
/// reads from one variable?
pub fn same_secret(a: &str, b: &str) -> bool {
    a == b || matches!((environment_form(a), environment_form(b)), (Some(x), Some(y)) if x == y)
}

fn check_plain(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "secret name must be 1 to {MAX_NAME_BYTES} bytes long"
        ));
    }
    if name.starts_with('.')
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(format!(
            "secret name {name:?} may hold only letters, digits, '.', '_' and '-', and not start with '.'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_be_paths() {
        for bad in ["", "../etc/shadow", "a/b", ".hidden", "a b", "x\0y"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("prod-ssh.key_1").is_ok());
        assert!(check_name(&"a".repeat(129)).is_err());
        assert!(check_name("vault:ssh/prod").is_ok());
        for bad in [
            "vault:",
            ":x",
            "a/b:c",
            "vault:../x",
            "vault:a b",
            "vault:/x",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
