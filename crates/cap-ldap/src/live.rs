//! The live part of `ldap`: a TLS connection to the directory, bound as the service account,
//! reused per (integration, server, account) while it stays open and idle less than
//! `idle_timeout`.
//!
//! - Always TLS: `ldaps://` (the default), or `ldap://` with StartTLS when
//!   `[integration.ldap] starttls = true`; the certificate is checked against `ca_file` (or
//!   the system roots) and the target's name. No setting turns verification off.
//! - The bind is a simple bind with the password from the secret store; an empty password
//!   is refused here (RFC 4513 makes it an *unauthenticated* bind that "succeeds").
//! - `unicodePwd` values are built from the secret only here, as AD takes them (UTF-16LE of
//!   the password in double quotes), and wiped once sent.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Mod, SearchEntry};
use zeroize::Zeroizing;

use crate::{Attribute, Change, Entry, LdapCall, Op, Scope, Value};
use latch_cap::live::LivePart;
use latch_cap::{BoxFuture, CallContext, CapCall, CapError, CapReply, Secret, SecretStore, Target};
use latch_contract::SecretRef;

/// `[integration.ldap]`'s connection settings.
#[derive(Clone)]
pub struct LdapSettings {
    /// The account to bind as (`svc@corp.example`, `CORP\svc` or a DN).
    pub default_user: Option<String>,
    /// The secret holding its password.
    pub password_secret: Option<String>,
    /// TLS: the roots (`ca_file`, else the system's).
    pub tls: Arc<rustls::ClientConfig>,
    /// The CA file, if one was configured.
    pub ca_file: Option<std::path::PathBuf>,
    /// `ldap://` + StartTLS instead of `ldaps://`.
    pub starttls: bool,
    /// TCP connect and TLS handshake.
    pub connect_timeout: Duration,
    /// One operation.
    pub operation_timeout: Duration,
    /// How long an unused connection is kept.
    pub idle_timeout: Duration,
}

impl std::fmt::Debug for LdapSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapSettings")
            .field("default_user", &self.default_user)
            .field("password_secret", &self.password_secret)
            .field("ca_file", &self.ca_file)
            .field("starttls", &self.starttls)
            .field("connect_timeout", &self.connect_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

impl LdapSettings {
    /// The defaults, verifying against `tls`.
    pub fn with_tls(tls: Arc<rustls::ClientConfig>) -> Self {
        LdapSettings {
            default_user: None,
            password_secret: None,
            tls,
            ca_file: None,
            starttls: false,
            connect_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
        }
    }

    /// The URL for `target`.
    pub fn url(&self, target: &Target) -> String {
        let scheme = if self.starttls { "ldap" } else { "ldaps" };
        if target.host.contains(':') {
            format!("{scheme}://[{}]:{}", target.host, target.port)
        } else {
            format!("{scheme}://{}:{}", target.host, target.port)
        }
    }
}

type Key = (String, String, u16, String);

/// Carries out `ldap` calls.
pub struct Part {
    settings: HashMap<String, LdapSettings>,
    secrets: Arc<SecretStore>,
    idle: Mutex<HashMap<Key, (Ldap, Instant)>>,
}

impl Part {
    /// The part, with `[integration.ldap]` per integration name.
    pub fn new(settings: HashMap<String, LdapSettings>, secrets: &Arc<SecretStore>) -> Self {
        Part {
            settings,
            secrets: secrets.clone(),
            idle: Mutex::new(HashMap::new()),
        }
    }

    fn account(
        &self,
        integration: &str,
        settings: &LdapSettings,
        target: &Target,
    ) -> Result<String, CapError> {
        match (&target.user, &settings.default_user) {
            (Some(asked), Some(configured)) if !asked.eq_ignore_ascii_case(configured) => {
                Err(CapError::Denied(format!(
                    "integration {integration:?} holds a directory password for {configured:?} \
                     only, not for {asked:?}"
                )))
            }
            (_, Some(configured)) => Ok(configured.clone()),
            _ => Err(CapError::Failed(format!(
                "integration {integration:?} names no directory account: set \
                 [integration.ldap] user"
            ))),
        }
    }

    fn password(&self, integration: &str, settings: &LdapSettings) -> Result<Secret, CapError> {
        let name = settings.password_secret.as_deref().ok_or_else(|| {
            CapError::Failed(format!(
                "integration {integration:?} names no secret with the directory password: set \
                 [integration.ldap] password_secret"
            ))
        })?;
        let secret = self
            .secrets
            .get(name)
            .map_err(CapError::Failed)?
            .ok_or_else(|| {
                CapError::Failed(format!(
                    "the directory password secret {name:?} is not in the secret store"
                ))
            })?;
        if secret.expose().is_empty() {
            return Err(CapError::Failed(format!(
                "the directory password secret {name:?} is empty (an empty password would be \
                 an unauthenticated bind)"
            )));
        }
        Ok(secret)
    }

    async fn connection(
        &self,
        ctx: &CallContext<'_>,
        settings: &LdapSettings,
        target: &Target,
    ) -> Result<(Key, Ldap), CapError> {
        let integration = ctx.integration;
        let user = self.account(integration, settings, target)?;
        let key = (
            integration.to_string(),
            target.host.to_ascii_lowercase(),
            target.port,
            user.clone(),
        );
        let reused = {
            let mut idle = self.idle.lock().expect("ldap pool");
            idle.retain(|_, (_, used)| used.elapsed() < settings.idle_timeout);
            idle.remove(&key)
        };
        if let Some((mut ldap, _)) = reused
            && !ldap.is_closed()
        {
            return Ok((key, ldap));
        }
        let password = self.password(integration, settings)?;
        ctx.reveal(&password);
        let ldap = connect(settings, target, &user, &password).await?;
        Ok((key, ldap))
    }

    fn put_back(&self, key: Key, ldap: Ldap) {
        let mut idle = self.idle.lock().expect("ldap pool");
        idle.insert(key, (ldap, Instant::now()));
    }
}

/// Open a TLS connection to `target` and bind as `user`.
pub async fn connect(
    settings: &LdapSettings,
    target: &Target,
    user: &str,
    password: &Secret,
) -> Result<Ldap, CapError> {
    open(settings, target, user, password)
        .await
        .map_err(|f| f.error)
}

/// A connection that could not be opened: the error a capability call answers, and whether
/// it failed the TLS check (the server was reached, and is not the one it must be).
pub struct Failed {
    pub tls: bool,
    pub error: CapError,
}

impl From<CapError> for Failed {
    fn from(error: CapError) -> Self {
        Failed { tls: false, error }
    }
}

/// [`connect`], telling a TLS verification failure apart by type.
pub async fn open(
    settings: &LdapSettings,
    target: &Target,
    user: &str,
    password: &Secret,
) -> Result<Ldap, Failed> {
    let url = settings.url(target);
    // Our own socket, with Nagle off: ldap3 leaves it on, and each small LDAP request then
    // waits out the server's delayed ACK (≈ 40 ms per operation, measured).
    let addr = if target.host.contains(':') {
        format!("[{}]:{}", target.host, target.port)
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let tcp = tokio::time::timeout(
        settings.connect_timeout,
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .map_err(|_| CapError::Unreachable(format!("{url}: no connection in time")))?
    .map_err(|e| CapError::Unreachable(format!("{url}: {e}")))?;
    let std = tcp
        .set_nodelay(true)
        .and_then(|()| tcp.into_std())
        .map_err(|e| CapError::Unreachable(format!("{url}: {e}")))?;
    let conn = LdapConnSettings::new()
        .set_config(settings.tls.clone())
        .set_starttls(settings.starttls)
        .set_conn_timeout(settings.connect_timeout)
        .set_std_stream(ldap3::StdStream::Tcp(std));
    let (conn, mut ldap) = LdapConnAsync::with_settings(conn, &url)
        .await
        .map_err(|e| connect_error(&url, e))?;
    ldap3::drive!(conn);
    let password = std::str::from_utf8(password.expose())
        .map_err(|_| CapError::Failed("the directory password is not UTF-8".to_string()))?;
    let bound = ldap
        .with_timeout(settings.operation_timeout)
        .simple_bind(user, password)
        .await
        .map_err(|e| op_error(&url, "bind", e))?;
    if bound.rc != 0 {
        let reason = if bound.rc == 49 {
            "invalid credentials"
        } else {
            result_name(bound.rc)
        };
        return Err(CapError::Denied(format!(
            "{url} refused the bind as {user:?}: {reason} ({}){}",
            bound.rc,
            diagnostic(&bound.text)
        ))
        .into());
    }
    Ok(ldap)
}

fn diagnostic(text: &str) -> String {
    let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    if text.is_empty() {
        String::new()
    } else {
        format!(": {}", text.chars().take(300).collect::<String>())
    }
}

fn connect_error(url: &str, e: LdapError) -> Failed {
    let tls = |source: &dyn std::fmt::Display| Failed {
        tls: true,
        error: CapError::Unreachable(format!("{url}: TLS verification failed: {source}")),
    };
    match e {
        LdapError::Rustls { source } => tls(&source),
        // rustls' verification error, as the stream's I/O error it is wrapped in.
        LdapError::Io { source }
            if source
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(|e| {
                    matches!(
                        e,
                        rustls::Error::InvalidCertificate(_)
                            | rustls::Error::NoCertificatesPresented
                            | rustls::Error::InvalidCertRevocationList(_)
                    )
                }) =>
        {
            tls(&source)
        }
        other => CapError::Unreachable(format!("{url}: {other}")).into(),
    }
}

fn op_error(url: &str, what: &str, e: LdapError) -> CapError {
    match e {
        LdapError::LdapResult { result } => result_error(url, what, result.rc, &result.text),
        LdapError::Timeout { .. } => {
            CapError::Unreachable(format!("{url}: the {what} got no answer in time"))
        }
        other => CapError::Unreachable(format!("{url}: {what}: {other}")),
    }
}

fn result_error(url: &str, what: &str, rc: u32, text: &str) -> CapError {
    let message = format!(
        "{url}: {what}: {} ({rc}){}",
        result_name(rc),
        diagnostic(text)
    );
    match rc {
        8 | 13 | 48 | 49 | 50 | 53 => CapError::Denied(message),
        51 | 52 => CapError::Unreachable(message),
        32 => CapError::NotFound(message),
        _ => CapError::Failed(message),
    }
}

/// RFC 4511's name of a result code.
pub fn result_name(rc: u32) -> &'static str {
    match rc {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        13 => "confidentialityRequired",
        16 => "noSuchAttribute",
        17 => "undefinedAttributeType",
        19 => "constraintViolation",
        20 => "attributeOrValueExists",
        21 => "invalidAttributeSyntax",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        64 => "namingViolation",
        65 => "objectClassViolation",
        66 => "notAllowedOnNonLeaf",
        67 => "notAllowedOnRDN",
        68 => "entryAlreadyExists",
        69 => "objectClassModsProhibited",
        80 => "other",
        _ => "error",
    }
}

/// A value as sent: text as UTF-8; a password as `"password"` in UTF-16LE.
fn bytes(ctx: &CallContext<'_>, value: &Value) -> Result<Zeroizing<Vec<u8>>, CapError> {
    match value {
        Value::Text(t) => Ok(Zeroizing::new(t.as_bytes().to_vec())),
        Value::Password(r) => {
            let missing = || CapError::Failed(format!("{r} is not available here"));
            let secret = match r {
                SecretRef::GrantPassword => {
                    ctx.secrets.grant_password.clone().ok_or_else(missing)?
                }
                SecretRef::NewServicePassword => ctx
                    .secrets
                    .new_service_password
                    .clone()
                    .ok_or_else(missing)?,
                SecretRef::Named(_) => {
                    return Err(CapError::Failed(
                        "named secrets are resolved by the live part's caller".to_string(),
                    ));
                }
            };
            let text = Zeroizing::new(
                String::from_utf8(secret.expose().to_vec())
                    .map_err(|_| CapError::Failed(format!("{r} is not UTF-8")))?,
            );
            let mut out = Zeroizing::new(Vec::with_capacity(text.len() * 2 + 4));
            for unit in std::iter::once('"')
                .chain(text.chars())
                .chain(std::iter::once('"'))
                .collect::<String>()
                .encode_utf16()
            {
                out.extend_from_slice(&unit.to_le_bytes());
            }
            Ok(out)
        }
    }
}

fn values(
    ctx: &CallContext<'_>,
    secrets: &SecretStore,
    a: &Attribute,
) -> Result<HashSet<Vec<u8>>, CapError> {
    let mut set = HashSet::new();
    for v in &a.values {
        let b = match v {
            Value::Password(SecretRef::Named(name)) => {
                let s = secrets
                    .get(name)
                    .map_err(CapError::Failed)?
                    .ok_or_else(|| {
                        CapError::Failed(format!("secret {name:?} is not in the store"))
                    })?;
                ctx.reveal(&s);
                let text = String::from_utf8(s.expose().to_vec())
                    .map_err(|_| CapError::Failed(format!("secret {name:?} is not UTF-8")))?;
                let quoted: Vec<u8> = format!("\"{text}\"")
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes)
                    .collect();
                Zeroizing::new(quoted)
            }
            other => bytes(ctx, other)?,
        };
        set.insert(b.to_vec());
    }
    Ok(set)
}

/// Most entries one search may answer (the server is asked for one more, to tell).
pub const MAX_ENTRIES: usize = 10_000;
/// Most bytes of DNs, attribute names and values one search may answer.
pub const MAX_RESULT_BYTES: usize = 16 << 20;

fn entry(raw: ldap3::ResultEntry) -> Result<Entry, CapError> {
    let parsed = std::panic::catch_unwind(|| SearchEntry::construct(raw))
        .map_err(|_| CapError::Failed("the directory sent a malformed entry".to_string()))?;
    // Never handed out, asked for or not.
    let secret = |name: &String| latch_cap::directory::is_secret_attribute(name);
    let mut attributes: Vec<(String, Vec<String>)> = parsed
        .attrs
        .into_iter()
        .filter(|(name, _)| !secret(name))
        .collect();
    for (name, vals) in parsed
        .bin_attrs
        .into_iter()
        .filter(|(name, _)| !secret(name))
    {
        let b64 = base64::engine::general_purpose::STANDARD;
        attributes.push((
            format!("{name};binary"),
            vals.iter().map(|v| b64.encode(v)).collect(),
        ));
    }
    attributes.sort();
    Ok(Entry {
        dn: parsed.dn,
        attributes,
    })
}

async fn carry_out(
    ctx: &CallContext<'_>,
    secrets: &SecretStore,
    settings: &LdapSettings,
    ldap: &mut Ldap,
    call: &LdapCall,
) -> Result<CapReply, CapError> {
    let url = settings.url(&call.target);
    let check = |what: &str, r: Result<ldap3::LdapResult, LdapError>| -> Result<(), CapError> {
        let r = r.map_err(|e| op_error(&url, what, e))?;
        if r.rc != 0 {
            return Err(result_error(&url, what, r.rc, &r.text));
        }
        Ok(())
    };
    let timeout = settings.operation_timeout;
    match &call.op {
        Op::Search {
            base,
            scope,
            filter,
            attributes,
        } => {
            let scope = match scope {
                Scope::Base => ldap3::Scope::Base,
                Scope::OneLevel => ldap3::Scope::OneLevel,
                Scope::Subtree => ldap3::Scope::Subtree,
            };
            let text = crate::filter_text(filter);
            let attrs: Vec<&str> = if attributes.is_empty() {
                vec!["1.1"]
            } else {
                attributes.iter().map(String::as_str).collect()
            };
            let too_many = || {
                CapError::Failed(format!(
                    "the search under {base:?} answers more than {MAX_ENTRIES} entries or \
                     {MAX_RESULT_BYTES} bytes: narrow it (base, scope, filter)"
                ))
            };
            let result = ldap
                .with_timeout(timeout)
                .with_search_options(ldap3::SearchOptions::new().sizelimit(MAX_ENTRIES as i32 + 1))
                .search(base, scope, &text, attrs)
                .await
                .map_err(|e| op_error(&url, "search", e))?;
            let ldap3::SearchResult(found, res) = result;
            // noSuchObject for the base is "nothing there", not a failure.
            if res.rc == 32 {
                return Ok(CapReply::new(Vec::<Entry>::new()));
            }
            // sizeLimitExceeded: more than asked for.
            if res.rc == 4 || found.len() > MAX_ENTRIES {
                return Err(too_many());
            }
            if res.rc != 0 {
                return Err(result_error(&url, "search", res.rc, &res.text));
            }
            let entries: Vec<Entry> = found.into_iter().map(entry).collect::<Result<_, _>>()?;
            let bytes: usize = entries
                .iter()
                .map(|e| {
                    e.dn.len()
                        + e.attributes
                            .iter()
                            .map(|(n, vs)| n.len() + vs.iter().map(String::len).sum::<usize>())
                            .sum::<usize>()
                })
                .sum();
            if bytes > MAX_RESULT_BYTES {
                return Err(too_many());
            }
            Ok(CapReply::new(entries))
        }
        Op::Add { dn, attributes } => {
            let mut attrs = Vec::new();
            for a in attributes {
                attrs.push((a.name.as_bytes().to_vec(), values(ctx, secrets, a)?));
            }
            check("add", ldap.with_timeout(timeout).add(dn, attrs).await)?;
            Ok(CapReply::new(Vec::<Entry>::new()))
        }
        Op::Modify { dn, changes } => {
            if call.own_entry_only {
                check_own_entry(ldap, settings, &url, dn).await?;
            }
            let mut mods = Vec::new();
            for c in changes {
                let a = c.attribute();
                let name = a.name.as_bytes().to_vec();
                let vals = values(ctx, secrets, a)?;
                mods.push(match c {
                    Change::Add(_) => Mod::Add(name, vals),
                    Change::Delete(_) => Mod::Delete(name, vals),
                    Change::Replace(_) => Mod::Replace(name, vals),
                });
            }
            let result = ldap.with_timeout(timeout).modify(dn, mods).await;
            check("modify", result)?;
            Ok(CapReply::new(Vec::<Entry>::new()))
        }
        Op::Delete { dn } => {
            check("delete", ldap.with_timeout(timeout).delete(dn).await)?;
            Ok(CapReply::new(Vec::<Entry>::new()))
        }
    }
}

/// Is `dn` the entry of the account this connection is bound as? (Searched on the entry
/// itself: its `userPrincipalName` or `sAMAccountName` must be the configured account's.)
async fn check_own_entry(
    ldap: &mut Ldap,
    settings: &LdapSettings,
    url: &str,
    dn: &str,
) -> Result<(), CapError> {
    let user = settings.default_user.as_deref().unwrap_or_default();
    let refused = || {
        CapError::Denied(format!(
            "the new service password may be set only on the service account's own entry, \
             and {dn:?} is not {user:?}'s"
        ))
    };
    if let Ok(own) = latch_cap::directory::dn::Dn::parse(user) {
        let target = latch_cap::directory::dn::Dn::parse(dn).map_err(|_| refused())?;
        return if own.same_as(&target) {
            Ok(())
        } else {
            Err(refused())
        };
    }
    let sam = user
        .rsplit('\\')
        .next()
        .unwrap_or(user)
        .split('@')
        .next()
        .unwrap_or(user);
    let filter = format!(
        "(|(userPrincipalName={})(sAMAccountName={}))",
        ldap3::ldap_escape(user),
        ldap3::ldap_escape(sam)
    );
    let result = ldap
        .with_timeout(settings.operation_timeout)
        .search(dn, ldap3::Scope::Base, &filter, vec!["1.1"])
        .await
        .map_err(|e| op_error(url, "search", e))?;
    match result.0.len() {
        1 => Ok(()),
        _ => Err(refused()),
    }
}

impl LivePart for Part {
    fn carry_out<'a>(
        &'a self,
        ctx: CallContext<'a>,
        call: &'a CapCall,
    ) -> Option<BoxFuture<'a, Result<CapReply, CapError>>> {
        let call = call.get::<LdapCall>()?;
        Some(Box::pin(async move {
            let Some(settings) = self.settings.get(ctx.integration) else {
                return Err(CapError::Failed(format!(
                    "integration {:?} has no [integration.ldap] settings",
                    ctx.integration
                )));
            };
            let (key, mut ldap) = self.connection(&ctx, settings, &call.target).await?;
            let result = carry_out(&ctx, &self.secrets, settings, &mut ldap, call).await;
            // A connection that failed below LDAP (timeout, I/O) is not reused.
            if !matches!(result, Err(CapError::Unreachable(_))) && !ldap.is_closed() {
                self.put_back(key, ldap);
            }
            result
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_verification_failure_is_told_apart_by_type_not_text() {
        let url = "ldaps://dc.example:636";
        let untrusted = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let failed = connect_error(url, LdapError::Io { source: untrusted });
        assert!(failed.tls);
        assert!(matches!(failed.error, CapError::Unreachable(_)));
        // A message that merely mentions certificates is not a TLS failure.
        let refused = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused (no certificate involved)",
        );
        assert!(!connect_error(url, LdapError::Io { source: refused }).tls);
        // Nor is a TLS protocol error that is not about the server's identity.
        let garbled =
            std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        assert!(!connect_error(url, LdapError::Io { source: garbled }).tls);
    }
}
