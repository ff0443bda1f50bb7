//! The connector's SSH user CA: signs grant certificates, generates requester key pairs.
//!
//! Defends against over-long or over-broad access: a certificate is valid from 60 s before
//! now (clock skew) until the grant's expiry and never longer, names exactly the principals
//! the (already checked) call names, permits only a pty by default (no agent, port or X11
//! forwarding, no user rc), and carries a random 64-bit serial and the grant id as key id, so
//! a revoke can put it on a server's KRL by id. The CA key is read from the secret store at
//! each use and never leaves the host.

use std::time::{SystemTime, UNIX_EPOCH};

use ssh_key::certificate::{Builder, CertType};
use ssh_key::{Algorithm, LineEnding, PrivateKey, PublicKey};

use latch_cap::SecretStore;
use latch_cap::{CapError, Secret};

/// The secret name of the CA's private key (`latch init` creates it).
pub const CA_SECRET: &str = "latch-user-ca";

/// Clock skew allowed before "now" in a certificate's validity.
pub const BACKDATE_SECS: u64 = 60;

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A new Ed25519 key pair in OpenSSH format: (private PEM, public line).
pub fn generate_key_pair(comment: &str) -> Result<(Secret, String), CapError> {
    let mut key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
        .map_err(|e| CapError::Failed(format!("cannot generate a key pair: {e}")))?;
    key.set_comment(comment);
    let private = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| CapError::Failed(format!("cannot encode a key pair: {e}")))?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| CapError::Failed(format!("cannot encode a public key: {e}")))?;
    Ok((Secret::new(private.as_bytes().to_vec()), public))
}

fn load(secrets: &SecretStore) -> Result<PrivateKey, CapError> {
    let secret = secrets
        .get(CA_SECRET)
        .map_err(CapError::Failed)?
        .ok_or_else(|| {
            CapError::Failed(format!(
                "the user CA secret {CA_SECRET:?} is missing; run `latch init` to create it"
            ))
        })?;
    PrivateKey::from_openssh(secret.expose()).map_err(|_| {
        CapError::Failed(format!(
            "secret {CA_SECRET:?} is not an OpenSSH private key"
        ))
    })
}

/// The CA's public key, one OpenSSH line.
pub fn public_key(secrets: &SecretStore) -> Result<String, CapError> {
    load(secrets)?
        .public_key()
        .to_openssh()
        .map_err(|e| CapError::Failed(format!("cannot encode the CA public key: {e}")))
}

/// Sign `public_key` as a user certificate. The call was authorized (principals checked,
/// validity clamped to the grant) before it gets here.
pub fn sign(
    secrets: &SecretStore,
    public_key: &str,
    principals: &[String],
    valid_before: u64,
    key_id: &str,
) -> Result<String, CapError> {
    let subject = PublicKey::from_openssh(public_key.trim()).map_err(|_| {
        CapError::InvalidRequest("the public key is not an OpenSSH public key line".into())
    })?;
    let now = unix_now();
    if valid_before <= now {
        return Err(CapError::InvalidRequest(format!(
            "valid_before {valid_before} is not in the future (now {now})"
        )));
    }
    let ca = load(secrets)?;
    let fail = |e: ssh_key::Error| CapError::Failed(format!("cannot build the certificate: {e}"));
    let mut rng = rand::rng();
    let mut builder = Builder::new_with_random_nonce(
        &mut rng,
        subject.key_data().clone(),
        now - BACKDATE_SECS,
        valid_before,
    )
    .map_err(fail)?;
    builder
        .serial(rand::RngExt::random(&mut rng))
        .map_err(fail)?
        .key_id(key_id)
        .map_err(fail)?
        .cert_type(CertType::User)
        .map_err(fail)?
        .extension("permit-pty", "")
        .map_err(fail)?;
    for principal in principals {
        builder.valid_principal(principal.as_str()).map_err(fail)?;
    }
    let cert = builder.sign(&ca).map_err(fail)?;
    cert.to_openssh()
        .map_err(|e| CapError::Failed(format!("cannot encode the certificate: {e}")))
}

/// Create a new CA private key (OpenSSH PEM).
pub fn new_ca() -> Result<Secret, CapError> {
    generate_key_pair("latch-user-ca").map(|(private, _)| private)
}
