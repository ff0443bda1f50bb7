//! The credential a requester gets, made by the host, never by a guest: an SSH key pair
//! (when they bring no public key) or a password. Each is returned once and stored nowhere;
//! the password reaches a server only as a `secret-ref` the host substitutes on the wire.

use rand::RngExt;
use rand::seq::SliceRandom;

use super::{Result, ServiceError, check_public_key};
use latch_caps::Secret;
use latch_caps::certs::ca::generate_key_pair;
use latch_config::{IntegrationConfig, PasswordRules};
use latch_runtime::CredentialKind;

/// What the host made (or checked) for one grant.
#[derive(Debug, Default)]
pub struct Issued {
    /// The OpenSSH public key to certify (the requester's, or the generated pair's).
    pub public_key: Option<String>,
    /// The private key of a pair the host generated; returned once.
    pub private_key: Option<Secret>,
    /// A password the host generated; a guest names it as `secret-ref::grant-password`.
    pub password: Option<Secret>,
}

/// The credential for a grant of `ic`: what its guest's `describe` asked for.
pub fn issue(ic: &IntegrationConfig, email: &str, public_key: Option<&str>) -> Result<Issued> {
    match ic.credential {
        CredentialKind::SshCertificate => match public_key {
            Some(k) => Ok(Issued {
                public_key: Some(check_public_key(k)?),
                ..Issued::default()
            }),
            None => {
                let (private, public) =
                    generate_key_pair(email).map_err(|e| anyhow::anyhow!("{e}"))?;
                Ok(Issued {
                    public_key: Some(public),
                    private_key: Some(private),
                    password: None,
                })
            }
        },
        CredentialKind::Password | CredentialKind::None if public_key.is_some() => {
            Err(ServiceError::BadRequest(format!(
                "integration {:?} gives no SSH certificate; a public key has no use here",
                ic.name
            )))
        }
        CredentialKind::Password => Ok(Issued {
            password: Some(password(&ic.password)),
            ..Issued::default()
        }),
        CredentialKind::None => Ok(Issued::default()),
    }
}

/// A random password by `rules`: at least one upper-case letter, lower-case letter, digit
/// and symbol (so it meets Active Directory's complexity rule), the rest drawn from all four,
/// shuffled. From the thread's cryptographically secure generator.
pub fn password(rules: &PasswordRules) -> Secret {
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const DIGITS: &[u8] = b"23456789";
    let symbols = rules.symbols.as_bytes();
    let all: Vec<u8> = [UPPER, LOWER, DIGITS, symbols].concat();
    let mut rng = rand::rng();
    let mut pick = |set: &[u8]| set[rng.random_range(0..set.len())];
    let mut bytes = vec![pick(UPPER), pick(LOWER), pick(DIGITS), pick(symbols)];
    while bytes.len() < rules.length {
        bytes.push(pick(&all));
    }
    bytes.shuffle(&mut rand::rng());
    Secret::new(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_follow_the_rules_and_differ() {
        let rules = PasswordRules::default();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let p = password(&rules);
            let p = std::str::from_utf8(p.expose()).unwrap().to_string();
            assert_eq!(p.len(), 24);
            assert!(p.bytes().any(|b| b.is_ascii_uppercase()), "{p}");
            assert!(p.bytes().any(|b| b.is_ascii_lowercase()), "{p}");
            assert!(p.bytes().any(|b| b.is_ascii_digit()), "{p}");
            assert!(
                p.bytes().any(|b| rules.symbols.as_bytes().contains(&b)),
                "{p}"
            );
            assert!(
                !p.contains(['\'', '"', '`', '$', '\\', ' ']),
                "no character a shell or PowerShell string treats specially: {p}"
            );
            assert!(seen.insert(p), "a repeated password");
        }
        let long = PasswordRules {
            length: 128,
            symbols: "#".into(),
        };
        let p = password(&long);
        assert_eq!(p.expose().len(), 128);
        assert!(p.expose().contains(&b'#'));
    }
}
