//! Where the host's AWS credentials come from: the standard chain's first two links.
//!
//! 1. The environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`
//!    (skipped when `[integration.aws] profile` names a profile);
//! 2. the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else
//!    `~/.aws/credentials`), profile `[integration.aws] profile`, else `AWS_PROFILE`, else
//!    `default`.
//!
//! Web identity (`AWS_WEB_IDENTITY_TOKEN_FILE`) and instance metadata (IMDSv2) are **not
//! implemented yet**; a host that would need them gets an error saying so, never a call
//! made without a signature. Credentials are read at each call (a rotated key is used at
//! once), held in [`Secret`]s, and never printed.

use std::path::PathBuf;

use crate::caps::Secret;

/// An access key, its secret, and a session token when temporary.
pub struct Credentials {
    /// `AKIA…` / `ASIA…`: not secret; it appears in every signed request.
    pub access_key_id: String,
    /// The secret access key.
    pub secret: Secret,
    /// The session token of temporary credentials.
    pub session_token: Option<Secret>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, [redacted])", self.access_key_id)
    }
}

/// The host's credentials, by the chain above.
pub fn resolve(profile: Option<&str>) -> Result<Credentials, String> {
    if profile.is_none()
        && let Some(id) = std::env::var_os("AWS_ACCESS_KEY_ID")
    {
        let id = id
            .into_string()
            .map_err(|_| "AWS_ACCESS_KEY_ID is not UTF-8".to_string())?;
        let secret = std::env::var_os("AWS_SECRET_ACCESS_KEY")
            .ok_or("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".to_string())?;
        return Ok(Credentials {
            access_key_id: check_key_id(id.trim(), "AWS_ACCESS_KEY_ID")?,
            secret: Secret::new(secret.into_encoded_bytes()),
            session_token: std::env::var_os("AWS_SESSION_TOKEN")
                .filter(|t| !t.is_empty())
                .map(|t| Secret::new(t.into_encoded_bytes())),
        });
    }
    let name = match profile {
        Some(p) => p.to_string(),
        None => std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into()),
    };
    let path = match std::env::var_os("AWS_SHARED_CREDENTIALS_FILE") {
        Some(p) => PathBuf::from(p),
        None => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".aws/credentials"),
            None => return Err(no_credentials(&name)),
        },
    };
    let text = match std::fs::read(&path) {
        Ok(bytes) => zeroize::Zeroizing::new(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(no_credentials(&name));
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let text =
        std::str::from_utf8(&text).map_err(|_| format!("{} is not UTF-8", path.display()))?;
    from_profile(text, &name).map_err(|e| format!("{}: {e}", path.display()))
}

fn no_credentials(profile: &str) -> String {
    format!(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or profile \
         {profile:?} in the shared credentials file (web identity and instance metadata are \
         not supported yet)"
    )
}

fn check_key_id(id: &str, what: &str) -> Result<String, String> {
    if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("{what} is not an access key id"));
    }
    Ok(id.to_string())
}

/// The keys of `[profile]` in a shared credentials file (INI: `key = value`, `#`/`;`
/// comments). Errors never quote a line (it could hold a secret).
fn from_profile(text: &str, profile: &str) -> Result<Credentials, String> {
    let mut in_section = false;
    let mut found = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = section.trim() == profile;
            found |= in_section;
            continue;
        }
        if !in_section {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "aws_access_key_id" => id = Some(value.to_string()),
            "aws_secret_access_key" => secret = Some(Secret::new(value.as_bytes().to_vec())),
            "aws_session_token" => token = Some(Secret::new(value.as_bytes().to_vec())),
            _ => {}
        }
    }
    if !found {
        return Err(format!("has no profile {profile:?}"));
    }
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Credentials {
            access_key_id: check_key_id(&id, "aws_access_key_id")?,
            secret,
            session_token: token,
        }),
        _ => Err(format!(
            "profile {profile:?} lacks aws_access_key_id or aws_secret_access_key"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_profile_and_never_quotes_it() {
        let text = "[default]\naws_access_key_id = AKIA1\naws_secret_access_key = s3cr3t\n\
                    # comment\n[ops]\naws_access_key_id=AKIA2\naws_secret_access_key = x/y+z\n\
                    aws_session_token = tok\n";
        let c = from_profile(text, "ops").unwrap();
        assert_eq!(c.access_key_id, "AKIA2");
        assert_eq!(c.secret.expose(), b"x/y+z");
        assert_eq!(c.session_token.unwrap().expose(), b"tok");
        assert!(!format!("{:?}", from_profile(text, "default").unwrap()).contains("s3cr3t"));
        let e = from_profile(text, "nope").unwrap_err();
        assert!(e.contains("no profile"), "{e}");
        let e = from_profile("[p]\naws_secret_access_key = s3cr3t\n", "p").unwrap_err();
        assert!(!e.contains("s3cr3t"), "{e}");
        let e = from_profile(
            "[p]\naws_access_key_id = s3cr3t!\naws_secret_access_key=x\n",
            "p",
        )
        .unwrap_err();
        assert!(!e.contains("s3cr3t"), "{e}");
    }
}
