//! Operations on a Linux server, as a runbook: one function per thing done on the server,
//! each showing the exact command it runs (always argv, always `sudo -n` as the service user).
//!
//! Names reaching these functions were checked with [`crate::names`]; the host quotes argv
//! regardless. Functions are idempotent: running one twice changes nothing the second time.
//!
//! Each command is a **read** (`read`, `read_ok`: carried out in a plan too) or a **change**
//! (`run`, `exec`: only recorded in a plan, answered exit 0 with no output). Decisions rest
//! on reads, so a plan lists every change a grant would make.

use crate::{Error, Output, Target, exec, exec_with_stdin, read, read_ok, run};

/// The group that marks an account as created by Latch; nothing else is ever deleted.
pub const MANAGED_GROUP: &str = "latch-managed";
/// Where the connector's user CA public key is installed.
pub const CA_PATH: &str = "/etc/ssh/latch/user_ca.pub";
/// The OpenSSH key revocation list (KRL) Latch maintains.
pub const KRL_PATH: &str = "/etc/ssh/latch/revoked_keys";
/// The sshd drop-in that trusts the CA and checks the KRL.
pub const DROPIN_PATH: &str = "/etc/ssh/sshd_config.d/latch.conf";

fn sudo<'a>(argv: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["sudo", "-n"];
    v.extend_from_slice(argv);
    v
}

fn failed(what: &str, t: &Target, out: &Output) -> Error {
    Error::Failed(format!(
        "{what} on {}:{} failed with status {}: {}",
        t.host,
        t.port,
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// A fresh name for a temporary file next to `path` (same directory, so a rename is
/// atomic): `.latch.` and 16 random hex digits. Chosen here rather than by `mktemp` on the
/// server, so that no later step depends on a change's output (see the module docs). The
/// randomness is the WASI random source the host lends every guest (`RandomState`'s seed).
fn temp_beside(path: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let dir = path.rsplit_once('/').map_or("/", |(d, _)| d);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write(path.as_bytes());
    format!("{dir}/.latch.{:016x}", hasher.finish())
}

/// Move `tmp` over `path` with `mode`: readers see the old file or the new one, never a
/// partial one, even if Latch is killed half-way (sshd refuses every key when it cannot parse
/// its `RevokedKeys` file, and every certificate when its CA file is empty).
fn replace_with(t: &Target, tmp: &str, path: &str, mode: &str) -> Result<(), Error> {
    run(t, &sudo(&["chmod", mode, "--", tmp]))?;
    run(t, &sudo(&["mv", "-f", "--", tmp, path])).map(|_| ())
}

/// Make `path` hold exactly `content` with `mode`, replacing it atomically; `Ok(true)` if it
/// had to change.
pub fn ensure_file(t: &Target, path: &str, content: &str, mode: &str) -> Result<bool, Error> {
    let current = read(t, &sudo(&["cat", "--", path]))?;
    if current.status == 0 && current.stdout == content.as_bytes() {
        return Ok(false);
    }
    let dir = path.rsplit_once('/').map_or("/", |(d, _)| d);
    run(t, &sudo(&["install", "-d", "-m", "0755", "--", dir]))?;
    let tmp = temp_beside(path);
    let out = exec_with_stdin(t, &sudo(&["tee", "--", &tmp]), content.as_bytes())?;
    if out.status != 0 {
        return Err(failed(&format!("writing {path}"), t, &out));
    }
    replace_with(t, &tmp, path, mode)?;
    Ok(true)
}

/// Where the service account's own `authorized_keys` is: `$HOME/.ssh/authorized_keys` of the
/// account the connector logs in as (it owns the file, so no `sudo`: a root-owned file would
/// be unreadable to sshd's key check and lock the connector out).
pub fn service_keys_path(t: &Target) -> Result<String, Error> {
    let out = read_ok(t, &["printenv", "HOME"])?;
    let home = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let ok = home.starts_with('/')
        && home.len() < 256
        && !home.split('/').any(|p| p == "..")
        && home
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b));
    if !ok {
        return Err(Error::Failed(format!(
            "{}:{}: the service account's HOME {home:?} is not a plain absolute path",
            t.host, t.port
        )));
    }
    Ok(format!(
        "{}/.ssh/authorized_keys",
        home.trim_end_matches('/')
    ))
}

/// The service account's authorized keys (empty if the file does not exist).
pub fn read_service_keys(t: &Target, path: &str) -> Result<String, Error> {
    let out = read(t, &["cat", "--", path])?;
    if out.status == 0 {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    if read(t, &["test", "-e", path])?.status != 0 {
        return Ok(String::new());
    }
    Err(failed(&format!("reading {path}"), t, &out))
}

/// Replace the service account's authorized keys with `content` (mode 0600, atomically, as
/// the account itself).
pub fn write_service_keys(t: &Target, path: &str, content: &str) -> Result<(), Error> {
    let dir = path.rsplit_once('/').map_or("/", |(d, _)| d);
    run(t, &["install", "-d", "-m", "0700", "--", dir])?;
    let tmp = temp_beside(path);
    let out = exec_with_stdin(t, &["tee", "--", &tmp], content.as_bytes())?;
    if out.status != 0 {
        return Err(failed(&format!("writing {path}"), t, &out));
    }
    run(t, &["chmod", "0600", "--", &tmp])?;
    run(t, &["mv", "-f", "--", &tmp, path]).map(|_| ())
}

/// The (type, base64) of an OpenSSH public key line, options before the key allowed (as in
/// `authorized_keys`); `None` for comments, blank lines and anything else.
pub fn key_blob(line: &str) -> Option<(&str, &str)> {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    if tokens.first().is_none_or(|t| t.starts_with('#')) {
        return None;
    }
    tokens.windows(2).find_map(|w| {
        let is_type = ["ssh-", "ecdsa-sha2-", "sk-"]
            .iter()
            .any(|p| w[0].starts_with(p));
        let is_blob = w[1].len() >= 16
            && w[1]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
        (is_type && is_blob).then_some((w[0], w[1]))
    })
}

/// `content` with `key` added as a line of its own, or `None` if it is there already.
pub fn with_key(content: &str, key: &str) -> Option<String> {
    let wanted = key_blob(key)?;
    if content.lines().any(|l| key_blob(l) == Some(wanted)) {
        return None;
    }
    let mut out = content.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(key.trim());
    out.push('\n');
    Some(out)
}

/// `content` without the lines of `key`, and how many other keys remain; `None` if the key
/// is not there.
pub fn without_key(content: &str, key: &str) -> Option<(String, usize)> {
    let wanted = key_blob(key)?;
    if !content.lines().any(|l| key_blob(l) == Some(wanted)) {
        return None;
    }
    let kept: Vec<&str> = content
        .lines()
        .filter(|l| key_blob(l) != Some(wanted))
        .collect();
    let others = kept.iter().filter(|l| key_blob(l).is_some()).count();
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    Some((out, others))
}

/// Make sshd trust `ca_public_key` for user certificates and check Latch's KRL.
///
/// Installs the CA key, creates an empty KRL if none exists (sshd refuses every key if the
/// `RevokedKeys` file is missing), and the drop-in; when the drop-in changes, verifies with
/// `sshd -T` that it is in effect (sshd_config must `Include /etc/ssh/sshd_config.d/*.conf`
/// before setting these keywords itself), then reloads sshd.
pub fn ensure_ca_trust(t: &Target, ca_public_key: &str) -> Result<(), Error> {
    ensure_file(t, CA_PATH, &format!("{}\n", ca_public_key.trim()), "0644")?;
    if read(t, &sudo(&["test", "-f", KRL_PATH]))?.status != 0 {
        let tmp = temp_beside(KRL_PATH);
        run(t, &sudo(&["ssh-keygen", "-q", "-k", "-f", &tmp]))?;
        replace_with(t, &tmp, KRL_PATH, "0644")?;
    }
    let dropin = format!(
        "# Managed by Latch: trust the connector's user CA, honour its revocations.\n\
         TrustedUserCAKeys {CA_PATH}\nRevokedKeys {KRL_PATH}\n"
    );
    if ensure_file(t, DROPIN_PATH, &dropin, "0644")? {
        // Verifying what was just written is part of the change: in a plan the drop-in was
        // not written, `sshd -T` is not run and prints nothing, and there is nothing to
        // verify (a real `sshd -T` always prints the whole effective configuration).
        let effective = run(t, &sudo(&["sshd", "-T"]))?;
        if effective.stdout.is_empty() {
            return reload_sshd(t);
        }
        let effective = String::from_utf8_lossy(&effective.stdout).to_lowercase();
        let wanted = [
            format!("trustedusercakeys {CA_PATH}"),
            format!("revokedkeys {KRL_PATH}"),
        ];
        if let Some(missing) = wanted.iter().find(|w| !effective.contains(w.as_str())) {
            exec(t, &sudo(&["rm", "-f", "--", DROPIN_PATH]))?;
            return Err(Error::Failed(format!(
                "{}:{}: sshd does not apply {DROPIN_PATH} (`sshd -T` lacks `{missing}`); \
                 make sshd_config `Include /etc/ssh/sshd_config.d/*.conf` first",
                t.host, t.port
            )));
        }
        reload_sshd(t)?;
    }
    Ok(())
}

/// Ask the running sshd to re-read its configuration (SIGHUP via its pid file).
pub fn reload_sshd(t: &Target) -> Result<(), Error> {
    run(t, &sudo(&["pkill", "-HUP", "-F", "/run/sshd.pid"])).map(|_| ())
}

/// Does account `user` exist?
pub fn user_exists(t: &Target, user: &str) -> Result<bool, Error> {
    let out = read(t, &["getent", "passwd", "--", user])?;
    match out.status {
        0 => Ok(true),
        2 => Ok(false),
        _ => Err(failed("getent passwd", t, &out)),
    }
}

/// Does group `group` exist?
pub fn group_exists(t: &Target, group: &str) -> Result<bool, Error> {
    let out = read(t, &["getent", "group", "--", group])?;
    match out.status {
        0 => Ok(true),
        2 => Ok(false),
        _ => Err(failed("getent group", t, &out)),
    }
}

/// The groups `user` belongs to.
pub fn groups_of(t: &Target, user: &str) -> Result<Vec<String>, Error> {
    let out = read_ok(t, &["id", "-nG", "--", user])?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect())
}

/// Is `user` an account Latch created (a member of [`MANAGED_GROUP`])?
pub fn is_managed(t: &Target, user: &str) -> Result<bool, Error> {
    Ok(groups_of(t, user)?.iter().any(|g| g == MANAGED_GROUP))
}

/// Create `user` with a home and `shell`, marked as Latch's own.
#[rustfmt::skip]
pub fn create_user(t: &Target, user: &str, shell: &str) -> Result<(), Error> {
    run(t, &sudo(&["groupadd", "-f", MANAGED_GROUP]))?;
    run(t, &sudo(&["useradd", "-m", "-s", shell, "-G", MANAGED_GROUP, "-c", "Latch just-in-time user", "--", user]))?;
    Ok(())
}

/// Open `user` for certificate logins, in one `usermod`: set its login shell, add it to
/// `group` (if any), set the password field to `*` (no password, not locked — so it works
/// whether or not sshd uses PAM) and clear any expiry.
pub fn open_account(t: &Target, user: &str, shell: &str, group: Option<&str>) -> Result<(), Error> {
    let mut argv = vec!["usermod", "-s", shell];
    if let Some(group) = group {
        argv.extend(["-a", "-G", group]);
    }
    argv.extend(["-p", "*", "-e", "", "--", user]);
    run(t, &sudo(&argv)).map(|_| ())
}

/// Remove `user` from `group` (not being a member is fine).
pub fn remove_from_group(t: &Target, user: &str, group: &str) -> Result<(), Error> {
    let out = exec(t, &sudo(&["gpasswd", "-d", user, group]))?;
    match out.status {
        0 | 3 => Ok(()),
        _ => Err(failed("gpasswd -d", t, &out)),
    }
}

/// Stop `user` logging in: lock the password *and* expire the account (`usermod -L` alone
/// does not stop key or certificate logins under PAM).
pub fn lock_account(t: &Target, user: &str) -> Result<(), Error> {
    run(t, &sudo(&["usermod", "-L", "-e", "1", "--", user])).map(|_| ())
}

/// End every process of `user`, sessions included (none running is fine).
pub fn kill_sessions(t: &Target, user: &str) -> Result<(), Error> {
    let out = exec(t, &sudo(&["pkill", "-KILL", "-u", user]))?;
    match out.status {
        0 | 1 => Ok(()),
        _ => Err(failed("pkill", t, &out)),
    }
}

/// Put every certificate with key id `key_id` (the grant id) on the server's KRL: update a
/// copy, then move it over the KRL atomically.
#[rustfmt::skip]
pub fn revoke_key_id(t: &Target, key_id: &str) -> Result<(), Error> {
    if read(t, &sudo(&["test", "-f", KRL_PATH]))?.status != 0 {
        // No KRL means Latch never set this server up, so no certificate of ours works here.
        return Ok(());
    }
    let tmp = temp_beside(KRL_PATH);
    run(t, &sudo(&["cp", "--", KRL_PATH, &tmp]))?;
    let spec = format!("id: {key_id}\n");
    let out = exec_with_stdin(t, &sudo(&["ssh-keygen", "-q", "-k", "-u", "-f", &tmp, "-s", CA_PATH, "/dev/stdin"]), spec.as_bytes())?;
    if out.status != 0 {
        return Err(failed("ssh-keygen -k -u", t, &out));
    }
    replace_with(t, &tmp, KRL_PATH, "0644")
}

/// Delete `user` and its home.
pub fn delete_user(t: &Target, user: &str) -> Result<(), Error> {
    run(t, &sudo(&["userdel", "-r", "--", user])).map(|_| ())
}
