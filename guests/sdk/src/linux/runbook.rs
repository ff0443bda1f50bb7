//! **The Linux runbook**: what a grant, a revoke and a cleanup do on a server, step by step,
//! written once for every integration that reaches Linux servers over SSH (`ssh-servers`,
//! `ec2-ssh`, `azure-vm-ssh`): they differ only in how they find a server. Each step below
//! is one function; each function of [`super`] (`linux.rs`) shows the exact command it runs.
//!
//! **grant** ([`grant`]):
//! 1. *probe* — one read of the server: its user tools, Latch's CA, KRL and sshd drop-in, the
//!    account and the group asked for;
//! 2. *refuse what Latch may not touch* — an account that exists and Latch did not create
//!    ([`refuse_unmanaged`]), a group the server lacks ([`refuse_missing_group`]): before
//!    any change;
//! 3. *trust the CA* ([`trust_ca`]) — the connector's user CA key, the KRL and the sshd
//!    drop-in naming both, written only if they differ; sshd reloaded only then;
//! 4. *open the account* — created marked `latch-managed`, or unlocked; its shell, the
//!    group, no expiry;
//! 5. *sign* ([`sign`]) — the requester's key, for the account, until the grant expires.
//!
//! **revoke** ([`revoke`]):
//! 1. *probe*;
//! 2. *distrust the grant's certificates* — its key id onto the KRL, whatever else happens;
//! 3. *leave alone what is not Latch's* ([`is_latchs`]) — an account gone is fine, one Latch
//!    did not create is left untouched (with a warning);
//! 4. *take the group away*; 5. *lock and expire the account*; 6. *end its sessions*.
//!
//! **cleanup** ([`cleanup`]): delete a `latch-managed` account and its home — never any
//! other. **Service keys** (rotation): the service account's own `authorized_keys`, never
//! the last key.
//!
//! A grant leaves a [`State`]: the address and account it used, so its revoke and cleanup
//! reach the same server after it was renamed, removed from the config, no longer
//! discovered, or given another address.

use serde::{Deserialize, Serialize};

use super::{
    Server, apply_trust, delete_user, key_blob, kill_sessions, lock_account, open_account, probe,
    read_service_keys, remove_from_group, revoke_key_id, service_keys_path, with_key, without_key,
    write_service_keys,
};
use crate::{
    AccessDetails, Error, GrantRequest, Level, ServiceCredential, Target, certs, invalid_request,
    log, names,
};

/// The permission that means "the user's own group", i.e. no extra group.
pub const DEFAULT_GROUP: &str = "Default";

/// A server as an integration found it: a name for messages, and where to reach it.
pub struct Place {
    /// The resource's name (server name, instance id).
    pub name: String,
    /// Where the capability calls go, as the service account.
    pub target: Target,
}

/// What a grant leaves for its revoke and cleanup: where it acted, and on which account.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// The resource's name.
    pub server: String,
    /// The address used.
    pub host: String,
    /// The port used.
    pub port: u16,
    /// The service account used.
    pub service_user: String,
    /// The requester's account.
    pub account: String,
    /// The group the grant added the account to (none for `Default`).
    #[serde(default)]
    pub group: Option<String>,
}

impl State {
    /// The state a grant left, if any (a grant that failed before it answered left none).
    pub fn stored(request: &GrantRequest) -> Result<Option<State>, Error> {
        match request.state.as_deref() {
            None | Some("") => Ok(None),
            Some(text) => serde_json::from_str(text).map(Some).map_err(|e| {
                invalid_request(format!("the grant's state is not this guest's: {e}"))
            }),
        }
    }

    /// Where it acted, checked like a config's server: the account names are checked again.
    pub fn place(&self) -> Result<Place, Error> {
        names::check("service user", &self.service_user)?;
        names::check("username", &self.account)?;
        if let Some(group) = &self.group {
            names::check("group", group)?;
        }
        Ok(Place {
            name: self.server.clone(),
            target: Target {
                host: self.host.clone(),
                port: self.port,
                user: Some(self.service_user.clone()),
            },
        })
    }
}

/// The account a request is for: its explicit username, else one derived from the e-mail.
pub fn account_of(request: &GrantRequest) -> Result<String, Error> {
    match &request.identity.username {
        Some(name) => Ok(names::check("username", name)?.to_string()),
        None => names::username_from_email(&request.identity.email),
    }
}

/// The group a permission names (`None` for [`DEFAULT_GROUP`]), checked.
pub fn group_of(permission: &str) -> Result<Option<&str>, Error> {
    (permission != DEFAULT_GROUP)
        .then(|| names::check("group", permission))
        .transpose()
}

/// A grant id: 1 to 64 of `[A-Za-z0-9_-]` (it becomes a certificate's key id).
pub fn check_grant_id(id: &str) -> Result<(), Error> {
    let id_ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !id_ok {
        return Err(invalid_request("grant id must be 1 to 64 of [A-Za-z0-9_-]"));
    }
    Ok(())
}

/// Give `user` access to `at` (creating or opening the account, in `group`), and sign the
/// requester's key for it until the grant expires: the grant's steps, in order (see the
/// module's docs). Every refusal comes before any change. Returns the certificate and the
/// state to keep.
pub fn grant(
    at: &Place,
    user: &str,
    group: Option<&str>,
    shell: &str,
    request: &GrantRequest,
) -> Result<(String, State), Error> {
    check_grant_id(&request.grant_id)?;
    let public_key = requester_key(request)?;
    let on = probe(&at.target, user, group.as_slice())?; // 1
    refuse_unmanaged(at, &on, user)?; // 2
    refuse_missing_group(at, &on, group)?;
    trust_ca(&on)?; // 3
    open_account(&on, user, shell, group)?; // 4
    let certificate = sign(at, user, public_key, request)?; // 5
    Ok((certificate, State::of(at, user, group)))
}

/// The requester's public key: a grant needs one (the host makes a pair when they bring
/// none).
pub fn requester_key(request: &GrantRequest) -> Result<&str, Error> {
    request
        .public_key
        .as_deref()
        .ok_or_else(|| invalid_request("a grant needs the requester's public key"))
}

/// Grant step 2: refuse an account that exists on the server and was not created by Latch.
pub fn refuse_unmanaged(at: &Place, on: &Server, user: &str) -> Result<(), Error> {
    match &on.account {
        Some(account) if !account.is_managed() => Err(Error::Denied(format!(
            "account {user:?} on {} exists and was not created by Latch; refusing to touch it",
            at.name
        ))),
        _ => Ok(()),
    }
}

/// Grant step 2: refuse a group the server does not have.
pub fn refuse_missing_group(at: &Place, on: &Server, group: Option<&str>) -> Result<(), Error> {
    match group {
        Some(group) if !on.has_group(group) => Err(invalid_request(format!(
            "group {group:?} does not exist on {}",
            at.name
        ))),
        _ => Ok(()),
    }
}

/// Grant step 3: trust the connector's user CA — its key, the KRL and the sshd drop-in, each
/// written only if it differs, sshd reloaded only then. Needs the server's user tools.
pub fn trust_ca(on: &Server) -> Result<(), Error> {
    on.user_tools()?;
    if let Some(plan) = on.trust_plan(&certs::ca_public_key()?)? {
        apply_trust(on, &plan)?;
    }
    Ok(())
}

/// Grant step 5: sign `public_key` for `user`, valid until the grant expires, its key id
/// the grant's (what a revoke puts on the KRL).
pub fn sign(
    at: &Place,
    user: &str,
    public_key: &str,
    request: &GrantRequest,
) -> Result<String, Error> {
    let certificate = certs::sign_ssh_user(
        public_key,
        &[user.to_string()],
        request.expires_at,
        &request.grant_id,
    )?;
    log(
        Level::Info,
        &format!("granted {user} on {} until {}", at.name, request.expires_at),
    );
    Ok(certificate)
}

impl State {
    /// What a grant of `user` (in `group`) on `at` leaves.
    pub fn of(at: &Place, user: &str, group: Option<&str>) -> State {
        State {
            server: at.name.clone(),
            host: at.target.host.clone(),
            port: at.target.port,
            service_user: at.target.user.clone().unwrap_or_default(),
            account: user.to_string(),
            group: group.map(str::to_string),
        }
    }
}

/// Take `user`'s access on `at` away; what is already gone is fine: the revoke's steps, in
/// order (see the module's docs).
pub fn revoke(at: &Place, user: &str, group: Option<&str>, grant_id: &str) -> Result<(), Error> {
    check_grant_id(grant_id)?;
    let on = probe(&at.target, user, &[])?; // 1
    revoke_key_id(&on, grant_id)?; // 2
    if !is_latchs(at, &on, user) {
        return Ok(()); // 3
    }
    if let Some(group) = group {
        remove_from_group(&on, user, group)?; // 4
    }
    lock_account(&on, user)?; // 5
    kill_sessions(&on, user)?; // 6
    log(Level::Info, &format!("revoked {user} on {}", at.name));
    Ok(())
}

/// Revoke step 3: is there an account `user` on the server that Latch created? One that is
/// gone needs nothing more; one Latch did not create is left untouched, with a warning.
pub fn is_latchs(at: &Place, on: &Server, user: &str) -> bool {
    match &on.account {
        None => false,
        Some(account) if !account.is_managed() => {
            log(
                Level::Warn,
                &format!("{user} on {} is not Latch's; left untouched", at.name),
            );
            false
        }
        Some(_) => true,
    }
}

/// Delete `user` on `at` if Latch created it; refuse any other account.
pub fn cleanup(at: &Place, user: &str) -> Result<(), Error> {
    let on = probe(&at.target, user, &[])?;
    let Some(account) = &on.account else {
        return Ok(());
    };
    if !account.is_managed() {
        return Err(Error::Denied(format!(
            "account {user:?} on {} was not created by Latch; refusing to delete it",
            at.name
        )));
    }
    kill_sessions(&on, user)?;
    delete_user(&on, user)
}

/// The SSH key of a service credential; these integrations rotate no password.
fn ssh_key_of(credential: &ServiceCredential) -> Result<String, Error> {
    match credential {
        ServiceCredential::SshKey(key) => Ok(key.clone()),
        ServiceCredential::Password => Err(invalid_request(
            "this integration logs in with an SSH key; it has no service password to rotate",
        )),
    }
}

/// A service key for `authorized_keys`: one plain OpenSSH public key line, no options.
pub fn check_service_key(line: &str) -> Result<&str, Error> {
    let line = line.trim();
    let plain = line.len() <= 8192
        && !line.contains(['\n', '\r'])
        && line.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
        && key_blob(line).is_some_and(|(kind, _)| line.starts_with(kind));
    if !plain {
        return Err(invalid_request(
            "the service key must be one OpenSSH public key line (type, base64, comment)",
        ));
    }
    Ok(line)
}

/// Authorize `credential` for the service account on `at` (idempotent).
pub fn add_service_key(at: &Place, credential: &ServiceCredential) -> Result<(), Error> {
    let key = ssh_key_of(credential)?;
    let key = check_service_key(&key)?;
    let t = &at.target;
    let path = service_keys_path(t)?;
    let current = read_service_keys(t, &path)?;
    if let Some(content) = with_key(&current, key) {
        write_service_keys(t, &path, &content)?;
        log(Level::Info, &format!("service key added on {}", at.name));
    }
    Ok(())
}

/// Remove `credential` from the service account on `at` (idempotent); never the last key.
pub fn remove_service_key(at: &Place, credential: &ServiceCredential) -> Result<(), Error> {
    let key = ssh_key_of(credential)?;
    let key = check_service_key(&key)?;
    let t = &at.target;
    let path = service_keys_path(t)?;
    let current = read_service_keys(t, &path)?;
    match without_key(&current, key) {
        None => Ok(()),
        Some((_, 0)) => Err(Error::Denied(format!(
            "{path} on {} has no other key; refusing to remove the last one",
            at.name
        ))),
        Some((content, _)) => {
            write_service_keys(t, &path, &content)?;
            log(
                Level::Info,
                &format!("old service key removed on {}", at.name),
            );
            Ok(())
        }
    }
}

/// What the requester gets: the account, where to connect, the certificate, how to use it.
pub fn access_details(
    host: &str,
    port: u16,
    user: &str,
    certificate: String,
    custom: Option<&str>,
) -> AccessDetails {
    let port_flag = if port == 22 {
        String::new()
    } else {
        format!(" -p {port}")
    };
    let mut instructions = format!(
        "ssh -i KEY -o CertificateFile=CERT{port_flag} {user}@{host}\n(KEY is your private key, CERT this certificate saved to a file)"
    );
    if let Some(extra) = custom {
        instructions.push('\n');
        instructions.push_str(extra);
    }
    AccessDetails {
        username: user.to_string(),
        host: host.to_string(),
        port,
        certificate: Some(certificate),
        deliver_password: false,
        instructions,
        extras: Vec::new(),
    }
}

/// Longest `custom_access_details`.
pub const MAX_CUSTOM_DETAILS: usize = 400;

/// The account settings every Linux integration has, as the product we mirror names them.
/// A guest's config holds them beside its own fields; [`parse_config`] splits the two.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `user_groups`: the permissions offered (`Default` = no extra group).
    #[serde(default = "default_groups")]
    pub user_groups: Vec<String>,
    /// `login_shell`.
    #[serde(default = "default_shell")]
    pub login_shell: String,
    /// `user_key_name`: the secret holding the service key (overrides the host's
    /// `key_secret`; the host learns it from `validate`'s lifecycle).
    #[serde(default)]
    pub user_key_name: Option<String>,
    /// `credential_rotation_days`.
    #[serde(default)]
    pub credential_rotation_days: Option<u32>,
    /// `user_cleanup_days`.
    #[serde(default)]
    pub user_cleanup_days: Option<u32>,
    /// `custom_access_details`.
    #[serde(default)]
    pub custom_access_details: Option<String>,
}

fn default_groups() -> Vec<String> {
    vec![DEFAULT_GROUP.to_string()]
}
fn default_shell() -> String {
    "/bin/bash".to_string()
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            user_groups: default_groups(),
            login_shell: default_shell(),
            user_key_name: None,
            credential_rotation_days: None,
            user_cleanup_days: None,
            custom_access_details: None,
        }
    }
}

/// The config keys that are [`Settings`].
pub const SETTINGS_FIELDS: &[&str] = &[
    "user_groups",
    "login_shell",
    "user_key_name",
    "credential_rotation_days",
    "user_cleanup_days",
    "custom_access_details",
];

/// Parse a Linux integration's `config`: the [`SETTINGS_FIELDS`] into [`Settings`] (checked),
/// every other key into the guest's own `T`. Both refuse unknown fields, so a typo stays an
/// error; errors name the field. (serde's `flatten` would lose `deny_unknown_fields`.)
pub fn parse_config<T: serde::de::DeserializeOwned>(json: &str) -> Result<(T, Settings), Error> {
    use crate::invalid_config;
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| invalid_config(format!("the config is not JSON: {e}")))?;
    let serde_json::Value::Object(mut own) = value else {
        return Err(invalid_config("the config must be a JSON object"));
    };
    let mut shared = serde_json::Map::new();
    for key in SETTINGS_FIELDS {
        if let Some(v) = own.remove(*key) {
            shared.insert(key.to_string(), v);
        }
    }
    let text = |m: serde_json::Map<String, serde_json::Value>| {
        serde_json::to_string(&serde_json::Value::Object(m)).expect("JSON values serialize")
    };
    let settings: Settings = crate::config::parse(&text(shared))?;
    let own: T = crate::config::parse(&text(own)).map_err(|e| match e {
        Error::InvalidConfig(m) if m.contains("unknown field") => invalid_config(format!(
            "{m}, or one of the account settings {}",
            SETTINGS_FIELDS.join(", ")
        )),
        e => e,
    })?;
    settings.check()?;
    Ok((own, settings))
}

fn is_shell(s: &str) -> bool {
    s.starts_with('/')
        && s.len() <= 64
        && !s.contains("..")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
}

impl Settings {
    /// Check them; every error names the field.
    pub fn check(&self) -> Result<(), Error> {
        use crate::invalid_config;
        for (i, g) in self.user_groups.iter().enumerate() {
            if g != DEFAULT_GROUP && !names::is_valid(g) {
                return Err(invalid_config(format!(
                    "user_groups[{i}] {g:?} is not a valid group name (or \"Default\")"
                )));
            }
        }
        if !is_shell(&self.login_shell) {
            return Err(invalid_config(format!(
                "login_shell {:?} must be an absolute path of [A-Za-z0-9/._-]",
                self.login_shell
            )));
        }
        if let Some(days) = self.credential_rotation_days
            && !(1..=3650).contains(&days)
        {
            return Err(invalid_config(format!(
                "credential_rotation_days must be 1 to 3650, not {days}"
            )));
        }
        if let Some(days) = self.user_cleanup_days
            && days > 3650
        {
            return Err(invalid_config(format!(
                "user_cleanup_days must be 0 to 3650, not {days}"
            )));
        }
        if let Some(name) = &self.user_key_name
            && !names::is_secret_name(name)
        {
            return Err(invalid_config(format!(
                "user_key_name {name:?} must be a plain secret name ([A-Za-z0-9._-], not \
                 starting with '.')"
            )));
        }
        if let Some(d) = &self.custom_access_details
            && d.chars().count() > MAX_CUSTOM_DETAILS
        {
            return Err(invalid_config(format!(
                "custom_access_details is {} characters, more than {MAX_CUSTOM_DETAILS}",
                d.chars().count()
            )));
        }
        Ok(())
    }

    /// What the host needs to know of these settings (`validate`'s answer); `service_user`:
    /// the integration's one service account, if it has one.
    pub fn lifecycle(&self, service_user: Option<String>) -> crate::Lifecycle {
        crate::Lifecycle {
            cleanup_after_days: self.user_cleanup_days,
            rotate_after_days: self.credential_rotation_days,
            service_key_secret: self.user_key_name.clone(),
            service_user,
            default_permission: DEFAULT_GROUP.into(),
        }
    }

    /// The permissions a resource offers: `Default`, then the other `user_groups`.
    pub fn permissions(&self) -> Vec<String> {
        let mut out = vec![DEFAULT_GROUP.to_string()];
        out.extend(
            self.user_groups
                .iter()
                .filter(|g| *g != DEFAULT_GROUP)
                .cloned(),
        );
        out
    }

    /// Check that `permission` is one of `user_groups`.
    pub fn permission<'p>(&self, permission: &'p str) -> Result<&'p str, Error> {
        if self.user_groups.iter().any(|g| g == permission)
            || (permission == DEFAULT_GROUP && self.user_groups.is_empty())
        {
            return Ok(permission);
        }
        let shown: String = permission.chars().take(64).collect();
        Err(invalid_request(format!(
            "permission {shown:?} is not one of user_groups [{}]",
            self.user_groups.join(", ")
        )))
    }
}

/// A whole grant as every Linux integration answers it: the request's account, group and
/// grant id checked, then the server `find` locates (it may ask a cloud API), then
/// [`grant`], then the access details and the state to keep.
pub fn grant_found(
    settings: &Settings,
    request: &GrantRequest,
    find: impl FnOnce() -> Result<Place, Error>,
) -> Result<crate::Granted, Error> {
    let user = account_of(request)?;
    let group = group_of(settings.permission(&request.permission)?)?;
    check_grant_id(&request.grant_id)?;
    let at = find()?;
    let (certificate, state) = grant(&at, &user, group, &settings.login_shell, request)?;
    Ok(crate::Granted {
        access: access_details(
            &at.target.host,
            at.target.port,
            &user,
            certificate,
            settings.custom_access_details.as_deref(),
        ),
        state: serde_json::to_string(&state).map_err(|e| Error::Failed(e.to_string()))?,
    })
}

/// A whole revoke: where the grant's state says it acted, or — for a grant that left no
/// state (it failed before answering) — where `find` says; `None` from `find` means the
/// server is gone and there is nothing to reach (logged).
pub fn revoke_found(
    request: &GrantRequest,
    find: impl FnOnce() -> Result<Option<Place>, Error>,
) -> Result<(), Error> {
    check_grant_id(&request.grant_id)?;
    let (at, user, group) = match State::stored(request)? {
        Some(state) => (state.place()?, state.account, state.group),
        None => {
            let user = account_of(request)?;
            let group = group_of(&request.permission)?.map(str::to_string);
            match find()? {
                Some(at) => (at, user, group),
                None => {
                    log(
                        Level::Warn,
                        &format!(
                            "revoke of a grant that left no state: {} is not found; nothing to do",
                            request.resource_id
                        ),
                    );
                    return Ok(());
                }
            }
        }
    };
    revoke(&at, &user, group.as_deref(), &request.grant_id)
}

/// A whole cleanup: where the grant's state says, else where `find` says.
pub fn cleanup_found(
    request: &GrantRequest,
    username: &str,
    find: impl FnOnce() -> Result<Place, Error>,
) -> Result<(), Error> {
    let user = names::check("username", username)?;
    let at = match State::stored(request)? {
        Some(state) => state.place()?,
        None => find()?,
    };
    cleanup(&at, user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Own {
        servers: Vec<String>,
    }

    fn err(json: &str) -> String {
        match parse_config::<Own>(json).unwrap_err() {
            Error::InvalidConfig(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_config_is_split_between_the_guest_and_the_shared_settings() {
        let (own, s) = parse_config::<Own>(
            r#"{"servers":["a"],"user_groups":["Default","dev"],"user_cleanup_days":7}"#,
        )
        .unwrap();
        assert_eq!(own.servers, ["a"]);
        assert_eq!(s.user_groups, ["Default", "dev"]);
        assert_eq!(s.login_shell, "/bin/bash");
        assert_eq!(s.user_cleanup_days, Some(7));
        let (_, s) = parse_config::<Own>(r#"{"servers":[]}"#).unwrap();
        assert_eq!(s.user_groups, [DEFAULT_GROUP]);

        // A typo of either half is still an error, and names both halves' fields.
        let e = err(r#"{"servers":[],"user_grops":["dev"]}"#);
        assert!(
            e.contains("user_grops") && e.contains("servers") && e.contains("user_groups"),
            "{e}"
        );
        let e = err(r#"{"servers":[],"user_groups":[5]}"#);
        assert!(e.starts_with("user_groups[0]"), "{e}");
        let e = err(r#"{"servers":[],"login_shell":"bash"}"#);
        assert!(e.contains("login_shell"), "{e}");
        assert!(err(r#"["servers"]"#).contains("JSON object"));
        assert!(err("{").contains("not JSON"));
    }
}
