//! Operations on a Linux server, as a runbook: one function per thing done on the server,
//! each showing the exact command it runs (always argv, always `sudo -n` as the service user).
//!
//! Names reaching these functions were checked with [`crate::names`]; the host quotes argv
//! regardless. Functions are idempotent: running one twice changes nothing the second time.
//!
//! Each command is a **read** (`read`, `read_ok`: carried out in a plan too) or a **change**
//! (`run`, `exec`: only recorded in a plan, answered exit 0 with no output). Decisions rest
//! on reads, so a plan lists every change a grant would make.

use std::collections::BTreeMap;

/// A grant, a revoke and a cleanup on a Linux server, step by step: read it first.
pub mod runbook;

use crate::{Error, Output, Target, exec, exec_with_stdin, read, read_ok, run};

/// The group that marks an account as created by Latch; nothing else is ever deleted.
pub const MANAGED_GROUP: &str = "latch-managed";
/// Where the connector's user CA public key is installed.
pub const CA_PATH: &str = "/etc/ssh/latch/user_ca.pub";
/// The OpenSSH key revocation list (KRL) Latch maintains.
pub const KRL_PATH: &str = "/etc/ssh/latch/revoked_keys";
/// The sshd drop-in that trusts the CA and checks the KRL.
pub const DROPIN_PATH: &str = "/etc/ssh/sshd_config.d/latch.conf";

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

/// The probe (a read): everything a grant, revoke or cleanup decides on, in one command.
pub const PROBE_SCRIPT: &str = include_str!("linux/probe.sh");
/// Writes the CA key, a new KRL and the drop-in (a change).
pub const TRUST_SCRIPT: &str = include_str!("linux/trust.sh");
/// Adds a key id to the KRL (a change).
pub const REVOKE_SCRIPT: &str = include_str!("linux/revoke.sh");

/// A script as it is sent: without its comment lines and indentation (they are in the
/// guest's source for people; the audit record keeps the command short).
pub fn compact(script: &str) -> String {
    script
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The drop-in Latch installs.
pub fn dropin() -> String {
    format!(
        "# Managed by Latch: trust the connector's user CA, honour its revocations.\n\
         TrustedUserCAKeys {CA_PATH}\nRevokedKeys {KRL_PATH}\n"
    )
}

/// Which tools manage accounts on a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserTools {
    /// shadow-utils: `useradd`, `usermod`, `gpasswd`, `userdel`, `groupadd`.
    Shadow,
    /// BusyBox (Alpine): `adduser`, `addgroup`, `delgroup`, `deluser`, `passwd`, `chpasswd`;
    /// no `usermod`, no account expiry.
    BusyBox,
}

/// How sshd learns a new configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reload {
    /// `systemctl reload UNIT`: systemd runs the sshd serving this session.
    Systemd(String),
    /// `kill -HUP PID`: the sshd listening for this session (its pid file agrees, or it has
    /// none).
    Signal(u32),
    /// Every connection starts its own sshd (inetd, systemd `Accept=yes`): nothing to reload.
    PerConnection,
}

/// An existing account, as the probe saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Its login shell.
    pub shell: String,
    /// The groups it belongs to.
    pub groups: Vec<String>,
    /// Is its password field exactly `*` (no password, not locked)?
    pub password_star: bool,
    /// Is its password locked (the field starts with `!`)?
    pub password_locked: bool,
    /// Does it have an expiry date?
    pub expires: bool,
}

impl Account {
    /// Was it created by Latch (a member of [`MANAGED_GROUP`])?
    pub fn is_managed(&self) -> bool {
        self.in_group(MANAGED_GROUP)
    }
    /// Is it a member of `group`?
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// What one probe learned about a server.
#[derive(Clone, Debug)]
pub struct Server {
    /// Where.
    pub target: Target,
    tools: BTreeMap<String, (String, String)>,
    ca: Option<String>,
    krl: bool,
    dropin: Option<String>,
    includes: Vec<String>,
    sshd: Result<BTreeMap<String, String>, String>,
    systemd: Option<Vec<(String, u32)>>,
    procs: Vec<Proc>,
    /// The account asked about, if it exists.
    pub account: Option<Account>,
    groups: Vec<String>,
}

/// One process above the probe: pid, parent, name, command line.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Proc {
    pid: u32,
    ppid: u32,
    comm: String,
    cmdline: String,
}

fn sections(text: &str) -> BTreeMap<&str, &str> {
    text.split('\u{1e}')
        .skip(1)
        .map(|s| s.split_once('\n').unwrap_or((s, "")))
        .collect()
}

/// Why `sudo -n` did not run the probe, in words a person can act on.
fn sudo_refusal(t: &Target, out: &Output) -> Error {
    let err = String::from_utf8_lossy(&out.stderr);
    let user = t.user.as_deref().unwrap_or("the service user");
    let at = format!("{}:{}", t.host, t.port);
    let why = if err.contains("password is required") {
        format!(
            "sudo asks {user} for a password; Latch runs `sudo -n` and needs \
             `{user} ALL=(root) NOPASSWD: ALL` (a sudoers.d file) — nothing was changed"
        )
    } else if err.contains("tty") {
        format!(
            "sudo requires a terminal (`Defaults requiretty`); add \
             `Defaults:{user} !requiretty` to sudoers — nothing was changed"
        )
    } else if err.contains("not in the sudoers") || err.contains("not allowed to") {
        format!("{user} may not run commands as root with sudo — nothing was changed")
    } else if out.status == 127 {
        format!("sudo is not installed (or not on {user}'s PATH) — nothing was changed")
    } else {
        format!(
            "`sudo -n /bin/sh` failed with status {}: {} — nothing was changed",
            out.status,
            err.trim()
        )
    };
    Error::Failed(format!("{at}: {why}"))
}

/// Learn, in one read as root, what the server has: its user tools, Latch's files, how sshd
/// is configured and run, `account` (may be empty) and which of `groups` exist.
pub fn probe(t: &Target, account: &str, groups: &[&str]) -> Result<Server, Error> {
    let script = compact(PROBE_SCRIPT);
    let mut argv = vec![
        "sudo",
        "-n",
        "/bin/sh",
        "-c",
        &script,
        "latch-probe",
        account,
    ];
    argv.extend_from_slice(groups);
    let out = read(t, &argv)?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.starts_with("\u{1e}probe\n") {
        return Err(sudo_refusal(t, &out));
    }
    parse_probe(t, &text)
}

fn parse_probe(t: &Target, text: &str) -> Result<Server, Error> {
    let s = sections(text);
    let bad = |what: &str| {
        Error::Failed(format!(
            "{}:{}: the probe's answer is malformed ({what})",
            t.host, t.port
        ))
    };
    let mut tools = BTreeMap::new();
    for line in s.get("tools").copied().unwrap_or("").lines() {
        let mut w = line.splitn(3, ' ');
        if let (Some(name), Some(path), Some(real)) = (w.next(), w.next(), w.next()) {
            tools.insert(name.to_string(), (path.to_string(), real.to_string()));
        }
    }
    let sshd = match (s.get("sshd"), s.get("sshd-failed")) {
        (Some(lines), _) => Ok(keywords(lines)),
        (None, Some(err)) => Err(err.trim().to_string()),
        (None, None) => Err("the probe did not run `sshd -T`".to_string()),
    };
    let systemd = s.get("systemd").map(|lines| {
        lines
            .lines()
            .filter_map(|l| {
                let (unit, pid) = l.split_once(' ')?;
                Some((unit.to_string(), pid.trim().parse().unwrap_or(0)))
            })
            .collect()
    });
    let mut procs = Vec::new();
    for line in s.get("procs").copied().unwrap_or("").lines() {
        let (head, cmdline) = line.split_once('\t').unwrap_or((line, ""));
        let mut w = head.splitn(3, ' ');
        let (Some(pid), Some(ppid), Some(comm)) = (w.next(), w.next(), w.next()) else {
            return Err(bad("a process line"));
        };
        procs.push(Proc {
            pid: pid.parse().map_err(|_| bad("a pid"))?,
            ppid: ppid.parse().map_err(|_| bad("a pid"))?,
            comm: comm.to_string(),
            cmdline: cmdline.trim().to_string(),
        });
    }
    let account = match s.get("account") {
        None => None,
        Some(lines) => {
            let mut l = lines.lines();
            let passwd = l.next().ok_or_else(|| bad("the account's passwd line"))?;
            let groups = l.next().unwrap_or("");
            let facts = l.next().unwrap_or("");
            Some(Account {
                shell: passwd.rsplit(':').next().unwrap_or("").to_string(),
                groups: groups.split_whitespace().map(str::to_string).collect(),
                password_star: facts.contains("password=star"),
                password_locked: facts.contains("password=locked"),
                expires: facts.contains("expire=set"),
            })
        }
    };
    Ok(Server {
        target: t.clone(),
        tools,
        ca: s.get("ca").map(|c| c.to_string()),
        krl: s.contains_key("krl"),
        dropin: s.get("dropin").map(|c| c.to_string()),
        includes: s
            .get("include")
            .copied()
            .unwrap_or("")
            .lines()
            .map(str::to_string)
            .collect(),
        sshd,
        systemd,
        procs,
        account,
        groups: s
            .get("groups")
            .copied()
            .unwrap_or("")
            .lines()
            .map(str::to_string)
            .collect(),
    })
}

/// `sshd -T` lines as keyword → value (lower-case keyword, first value wins as in sshd).
fn keywords(lines: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for line in lines.lines() {
        if let Some((k, v)) = line.trim().split_once(' ') {
            map.entry(k.to_ascii_lowercase())
                .or_insert_with(|| v.trim().to_string());
        }
    }
    map
}

/// Does an `Include` pattern of sshd_config (relative ones are under /etc/ssh) take in
/// [`DROPIN_PATH`]? `*` and `?` match within one path element, as glob(3) does.
fn includes_dropin(line: &str) -> bool {
    let mut words = line.split_whitespace();
    words.next(); // the keyword
    words.any(|w| {
        let w = w.trim_matches('"');
        let path = if w.starts_with('/') {
            w.to_string()
        } else {
            format!("/etc/ssh/{w}")
        };
        glob_match(&path, DROPIN_PATH)
    })
}

fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => {
                go(&p[1..], t) || (t.first().is_some_and(|&c| c != b'/') && go(p, &t[1..]))
            }
            (Some(b'?'), Some(&c)) => c != b'/' && go(&p[1..], &t[1..]),
            (Some(a), Some(b)) => a == b && go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

impl Server {
    fn at(&self) -> String {
        format!("{}:{}", self.target.host, self.target.port)
    }

    /// The absolute path of `tool` on the server (so a restrictive sudo `secure_path` does
    /// not matter), or a clear error.
    pub fn tool(&self, tool: &str) -> Result<&str, Error> {
        self.tools
            .get(tool)
            .map(|(path, _)| path.as_str())
            .ok_or_else(|| {
                Error::Failed(format!(
                    "{}: `{tool}` was not found on the server (searched /usr/local/sbin, \
                     /usr/local/bin, /usr/sbin, /usr/bin, /sbin, /bin)",
                    self.at()
                ))
            })
    }

    /// The account tools the server has: shadow-utils, else BusyBox's.
    pub fn user_tools(&self) -> Result<UserTools, Error> {
        let has = |t: &str| self.tools.contains_key(t);
        if ["useradd", "usermod", "userdel", "groupadd", "gpasswd"]
            .iter()
            .all(|t| has(t))
        {
            return Ok(UserTools::Shadow);
        }
        let busybox = self
            .tools
            .get("adduser")
            .is_some_and(|(_, real)| real.ends_with("/busybox"));
        if busybox
            && ["addgroup", "deluser", "delgroup", "passwd", "chpasswd"]
                .iter()
                .all(|t| has(t))
        {
            return Ok(UserTools::BusyBox);
        }
        Err(Error::Failed(format!(
            "{}: found neither shadow-utils (useradd, usermod, userdel, groupadd, gpasswd) nor \
             BusyBox's adduser/addgroup/deluser/delgroup/chpasswd; install one — nothing was \
             changed",
            self.at()
        )))
    }

    /// Does `group` exist (one of those the probe was asked about, or [`MANAGED_GROUP`])?
    pub fn has_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// Is Latch's KRL installed?
    pub fn has_krl(&self) -> bool {
        self.krl
    }

    /// How to make the sshd serving this session re-read its configuration, found from the
    /// session's own ancestors: the topmost `sshd` above it is the listener, unless it is a
    /// per-connection one (its title says `[priv]` or it runs with `-i`).
    pub fn reload(&self) -> Result<Reload, Error> {
        let by_pid: BTreeMap<u32, &Proc> = self.procs.iter().map(|p| (p.pid, p)).collect();
        let is_sshd = |p: &Proc| p.comm == "sshd" || p.comm == "sshd-session";
        let Some(mut top) = self.procs.iter().find(|p| is_sshd(p)) else {
            return Err(Error::Failed(format!(
                "{}: cannot tell how sshd runs: no sshd process among this session's ancestors \
                 ({}); Latch needs OpenSSH's sshd — nothing was changed",
                self.at(),
                self.procs
                    .iter()
                    .map(|p| p.comm.as_str())
                    .collect::<Vec<_>>()
                    .join(" < ")
            )));
        };
        while let Some(parent) = by_pid.get(&top.ppid).filter(|p| is_sshd(p)) {
            top = parent;
        }
        let per_connection = top.cmdline.contains("[priv]")
            || top.cmdline.contains('@')
            || top.cmdline.split_whitespace().any(|w| w == "-i");
        if per_connection {
            return Ok(Reload::PerConnection);
        }
        if let Some(units) = &self.systemd
            && let Some((unit, _)) = units.iter().find(|(_, pid)| *pid == top.pid)
        {
            return Ok(Reload::Systemd(unit.clone()));
        }
        Ok(Reload::Signal(top.pid))
    }

    /// Check, before anything changes, that sshd can be made to trust the CA here: `sshd -T`
    /// works, no other CA file or KRL is configured, sshd_config includes the drop-in
    /// directory, and sshd can be reloaded. `Ok(None)` when everything is in place already.
    pub fn trust_plan(&self, ca_public_key: &str) -> Result<Option<TrustPlan>, Error> {
        let at = self.at();
        let sshd = self.sshd.as_ref().map_err(|e| {
            Error::Failed(format!(
                "{at}: `sshd -T` fails, so Latch cannot check sshd's configuration: {e} — \
                 nothing was changed"
            ))
        })?;
        let ca_line = format!("{}\n", ca_public_key.trim());
        let dropin = dropin();
        let ca_ok = self.ca.as_deref() == Some(ca_line.as_str());
        let dropin_ok = self.dropin.as_deref() == Some(dropin.as_str());
        let effective = |k: &str| sshd.get(k).map(String::as_str).unwrap_or("none");
        for (keyword, ours) in [("trustedusercakeys", CA_PATH), ("revokedkeys", KRL_PATH)] {
            let now = effective(keyword);
            if now != "none" && now != ours {
                return Err(Error::Failed(format!(
                    "{at}: sshd already uses `{keyword} {now}`, set outside Latch's drop-in; \
                     Latch will not override it: remove it, or make it {ours} — nothing was \
                     changed"
                )));
            }
        }
        // Certificates are then accepted only for principals that file or command lists,
        // which Latch does not maintain: its grants would "succeed" and never log in.
        for keyword in ["authorizedprincipalsfile", "authorizedprincipalscommand"] {
            let now = effective(keyword);
            if now != "none" {
                return Err(Error::Failed(format!(
                    "{at}: sshd uses `{keyword} {now}`, so it accepts a certificate only for \
                     principals listed there, which Latch does not manage; remove it (or \
                     scope it with a Match block that excludes Latch's users) — nothing was \
                     changed"
                )));
            }
        }
        let in_effect =
            effective("trustedusercakeys") == CA_PATH && effective("revokedkeys") == KRL_PATH;
        let group_tool = if self.has_group(MANAGED_GROUP) {
            None
        } else {
            Some(match self.user_tools()? {
                UserTools::Shadow => self.tool("groupadd")?,
                UserTools::BusyBox => self.tool("addgroup")?,
            })
        };
        if ca_ok && self.krl && dropin_ok && in_effect && group_tool.is_none() {
            return Ok(None);
        }
        // sshd reads the CA file and the KRL at each login; only a new drop-in needs a reload.
        let reload = if dropin_ok && in_effect {
            None
        } else {
            if !self.includes.iter().any(|l| includes_dropin(l)) {
                return Err(Error::Failed(format!(
                    "{at}: /etc/ssh/sshd_config does not include {DROPIN_PATH}; add \
                     `Include /etc/ssh/sshd_config.d/*.conf` as its first line (or set \
                     `TrustedUserCAKeys {CA_PATH}` and `RevokedKeys {KRL_PATH}` there \
                     yourself) — nothing was changed"
                )));
            }
            Some(self.reload()?)
        };
        Ok(Some(TrustPlan {
            ca: (!ca_ok).then_some(ca_line),
            krl: !self.krl,
            dropin: reload.is_some().then_some(dropin),
            group_tool: group_tool.map(str::to_string),
            reload,
        }))
    }
}

/// What [`Server::trust_plan`] found to do.
#[derive(Clone, Debug)]
pub struct TrustPlan {
    ca: Option<String>,
    krl: bool,
    /// The drop-in, when it must be (re)written and sshd reloaded.
    dropin: Option<String>,
    /// `groupadd` or `addgroup`, when [`MANAGED_GROUP`] does not exist yet.
    group_tool: Option<String>,
    reload: Option<Reload>,
}

/// Carry out a [`TrustPlan`] in one command as root ([`TRUST_SCRIPT`]): the CA key, a new
/// KRL, the drop-in, [`MANAGED_GROUP`]; when the drop-in changed, the script checks that sshd
/// applies it (else removes it again and exits 3) and reloads sshd the way it runs.
pub fn apply_trust(server: &Server, plan: &TrustPlan) -> Result<(), Error> {
    let t = &server.target;
    let script = compact(TRUST_SCRIPT);
    let krl = if plan.krl { "new" } else { "" };
    let pid;
    let (reload, target) = match &plan.reload {
        None | Some(Reload::PerConnection) => ("", ""),
        Some(Reload::Systemd(unit)) => ("systemd", unit.as_str()),
        Some(Reload::Signal(p)) => {
            pid = p.to_string();
            ("signal", pid.as_str())
        }
    };
    let out = exec(
        t,
        &[
            "sudo",
            "-n",
            "/bin/sh",
            "-c",
            &script,
            "latch-trust",
            plan.ca.as_deref().unwrap_or(""),
            krl,
            plan.dropin.as_deref().unwrap_or(""),
            plan.group_tool.as_deref().unwrap_or(""),
            reload,
            target,
        ],
    )?;
    match out.status {
        0 => Ok(()),
        3 => {
            let text = String::from_utf8_lossy(&out.stdout);
            let said = sections(&text)
                .get("sshd")
                .map_or("", |l| l.trim())
                .replace('\n', "; ");
            Err(Error::Failed(format!(
                "{}:{}: sshd does not apply {DROPIN_PATH} (`sshd -T` says `{said}`: an earlier \
                 setting wins); the drop-in was removed again — make sshd_config `Include \
                 /etc/ssh/sshd_config.d/*.conf` before its own settings",
                t.host, t.port
            )))
        }
        _ => Err(failed("setting up the CA, KRL, drop-in and group", t, &out)),
    }
}

/// Does `group` exist? (A plain read, no sudo: for listing resources.)
pub fn group_exists(t: &Target, group: &str) -> Result<bool, Error> {
    let out = read(t, &["getent", "group", "--", group])?;
    match out.status {
        0 => Ok(true),
        2 => Ok(false),
        _ => Err(failed("getent group", t, &out)),
    }
}

/// Create `user` with a home and `shell`, marked as Latch's own (the group exists: see
/// [`apply_trust`]), member of `group` too (if any), with the password field `*` (no password, not locked: certificate logins work with
/// or without PAM) and no expiry.
#[rustfmt::skip]
pub fn create_user(s: &Server, user: &str, shell: &str, group: Option<&str>) -> Result<(), Error> {
    let t = &s.target;
    match s.user_tools()? {
        UserTools::Shadow => {
            let groups = match group {
                Some(g) => format!("{MANAGED_GROUP},{g}"),
                None => MANAGED_GROUP.to_string(),
            };
            run(t, &["sudo", "-n", s.tool("useradd")?, "-m", "-s", shell, "-G", &groups, "-c", "Latch just-in-time user", "-p", "*", "-e", "", "--", user])?;
        }
        UserTools::BusyBox => {
            run(t, &["sudo", "-n", s.tool("adduser")?, "-D", "-s", shell, "-g", "Latch just-in-time user", user])?;
            run(t, &["sudo", "-n", s.tool("addgroup")?, user, MANAGED_GROUP])?;
            if let Some(g) = group {
                run(t, &["sudo", "-n", s.tool("addgroup")?, user, g])?;
            }
            set_password_star(s, user)?;
        }
    }
    Ok(())
}

fn set_password_star(s: &Server, user: &str) -> Result<(), Error> {
    let line = format!("{user}:*\n");
    let t = &s.target;
    let argv = ["sudo", "-n", s.tool("chpasswd")?, "-e"];
    let out = exec_with_stdin(t, &argv, line.as_bytes())?;
    if out.status != 0 {
        return Err(failed("chpasswd -e", t, &out));
    }
    Ok(())
}

/// Open Latch's existing account `user` for certificate logins: login shell, `group` (if
/// any), password field `*`, no expiry — only what is not so already.
pub fn open_account(s: &Server, user: &str, shell: &str, group: Option<&str>) -> Result<(), Error> {
    let t = &s.target;
    let Some(account) = &s.account else {
        return create_user(s, user, shell, group);
    };
    let needs_group = group.filter(|g| !account.in_group(g));
    let ready = account.shell == shell && account.password_star && !account.expires;
    if ready && needs_group.is_none() {
        return Ok(());
    }
    match s.user_tools()? {
        UserTools::Shadow => {
            let mut argv = vec!["sudo", "-n", s.tool("usermod")?, "-s", shell];
            if let Some(g) = needs_group {
                argv.extend(["-a", "-G", g]);
            }
            argv.extend(["-p", "*", "-e", "", "--", user]);
            run(t, &argv).map(|_| ())
        }
        UserTools::BusyBox => {
            if account.shell != shell {
                return Err(Error::Failed(format!(
                    "{}:{}: {user}'s login shell is {}, not {shell}, and BusyBox has no \
                     `usermod` to change it; change it by hand or delete the account",
                    t.host, t.port, account.shell
                )));
            }
            if let Some(g) = needs_group {
                run(t, &["sudo", "-n", s.tool("addgroup")?, user, g])?;
            }
            if !account.password_star {
                set_password_star(s, user)?;
            }
            Ok(())
        }
    }
}

/// Remove `user` from `group` if it is a member.
pub fn remove_from_group(s: &Server, user: &str, group: &str) -> Result<(), Error> {
    if !s.account.as_ref().is_some_and(|a| a.in_group(group)) {
        return Ok(());
    }
    let t = &s.target;
    let argv = match s.user_tools()? {
        UserTools::Shadow => ["sudo", "-n", s.tool("gpasswd")?, "-d", user, group],
        UserTools::BusyBox => ["sudo", "-n", s.tool("delgroup")?, user, group, ""],
    };
    let argv: Vec<&str> = argv.into_iter().filter(|a| !a.is_empty()).collect();
    let out = exec(t, &argv)?;
    match out.status {
        0 | 3 => Ok(()),
        _ => Err(failed("removing the group", t, &out)),
    }
}

/// Stop `user` logging in: lock the password *and* expire the account (`usermod -L` alone
/// does not stop key or certificate logins under PAM). BusyBox has no expiry: its
/// `passwd -l` lock is what sshd without PAM checks (Alpine's); the KRL stops the
/// certificate either way.
pub fn lock_account(s: &Server, user: &str) -> Result<(), Error> {
    let t = &s.target;
    match s.user_tools()? {
        UserTools::Shadow => run(
            t,
            &[
                "sudo",
                "-n",
                s.tool("usermod")?,
                "-L",
                "-e",
                "1",
                "--",
                user,
            ],
        ),
        // BusyBox's `passwd -l` fails on a password that is locked already.
        UserTools::BusyBox if s.account.as_ref().is_some_and(|a| a.password_locked) => {
            return Ok(());
        }
        UserTools::BusyBox => run(t, &["sudo", "-n", s.tool("passwd")?, "-l", user]),
    }
    .map(|_| ())
}

/// End every process of `user`, sessions included (none running is fine).
pub fn kill_sessions(s: &Server, user: &str) -> Result<(), Error> {
    let t = &s.target;
    let out = exec(t, &["sudo", "-n", s.tool("pkill")?, "-KILL", "-u", user])?;
    match out.status {
        0 | 1 => Ok(()),
        _ => Err(failed("pkill", t, &out)),
    }
}

/// Put every certificate with key id `key_id` (the grant id) on the server's KRL, in one
/// command as root ([`REVOKE_SCRIPT`]); a server without Latch's KRL never trusted its CA.
pub fn revoke_key_id(s: &Server, key_id: &str) -> Result<(), Error> {
    if !s.krl {
        return Ok(());
    }
    let t = &s.target;
    let script = compact(REVOKE_SCRIPT);
    let spec = format!("id: {key_id}\n");
    let argv = ["sudo", "-n", "/bin/sh", "-c", &script, "latch-revoke"];
    let out = exec_with_stdin(t, &argv, spec.as_bytes())?;
    if out.status != 0 {
        return Err(failed("updating the KRL", t, &out));
    }
    Ok(())
}

/// Delete `user` and its home.
pub fn delete_user(s: &Server, user: &str) -> Result<(), Error> {
    let t = &s.target;
    match s.user_tools()? {
        UserTools::Shadow => run(t, &["sudo", "-n", s.tool("userdel")?, "-r", "--", user]),
        UserTools::BusyBox => run(
            t,
            &["sudo", "-n", s.tool("deluser")?, "--remove-home", user],
        ),
    }
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            host: "h".into(),
            port: 22,
            user: Some("apono".into()),
        }
    }

    fn with_procs(procs: &str, systemd: &str) -> Server {
        let text = format!(
            "\u{1e}probe\n\u{1e}tools\nkill /usr/bin/kill /usr/bin/kill\n\u{1e}sshd\npidfile none\n{systemd}\u{1e}procs\n{procs}"
        );
        parse_probe(&target(), &text).unwrap()
    }

    #[test]
    fn the_sshd_serving_the_session_is_found_from_its_ancestors() {
        let chain = "40 31 sh\tsh -c x\n31 30 sudo\tsudo -n /bin/sh\n30 20 sshd\tsshd: apono@notty\n\
                     20 10 sshd\tsshd: apono [priv]\n10 1 sshd\t/usr/sbin/sshd -D\n1 0 init\t/sbin/init\n";
        assert_eq!(with_procs(chain, "").reload().unwrap(), Reload::Signal(10));
        let systemd = "\u{1e}systemd\nssh.service 10\nsshd.service 10\n";
        assert_eq!(
            with_procs(chain, systemd).reload().unwrap(),
            Reload::Systemd("ssh.service".into())
        );
        // systemd runs, but not this sshd: signal it.
        let other = "\u{1e}systemd\nssh.service 0\nsshd.service 0\n";
        assert_eq!(
            with_procs(chain, other).reload().unwrap(),
            Reload::Signal(10)
        );
        // OpenSSH 9.8+: sessions are `sshd-session`, the listener stays `sshd`.
        let split = "40 30 sh\tsh -c x\n30 20 sshd-session\tsshd-session: apono@notty\n\
                     20 10 sshd-session\tsshd-session: apono [priv]\n\
                     10 1 sshd\tsshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups\n1 0 systemd\t/sbin/init\n";
        assert_eq!(with_procs(split, "").reload().unwrap(), Reload::Signal(10));
        // inetd style: the topmost sshd is this connection's monitor.
        let inetd = "40 30 sh\tsh -c x\n30 20 sshd\tsshd: apono@notty\n20 5 sshd\tsshd: apono [priv]\n\
                     5 1 inetd\t/usr/sbin/inetd\n1 0 init\tinit\n";
        assert_eq!(
            with_procs(inetd, "").reload().unwrap(),
            Reload::PerConnection
        );
        // No sshd at all (another SSH server): refused, saying what was found.
        let dropbear = "40 30 sh\tsh -c x\n30 1 dropbear\tdropbear -R\n1 0 init\tinit\n";
        match with_procs(dropbear, "").reload() {
            Err(Error::Failed(m)) => assert!(m.contains("sh < dropbear < init"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    /// The scripts are POSIX sh: they parse in dash, BusyBox's ash and bash (where installed).
    #[test]
    fn the_scripts_parse_in_every_shell() {
        for script in [PROBE_SCRIPT, TRUST_SCRIPT, REVOKE_SCRIPT] {
            for shell in [&["dash"][..], &["bash", "--posix"], &["busybox", "sh"]] {
                let Ok(out) = std::process::Command::new(shell[0])
                    .args(&shell[1..])
                    .args(["-n", "-c", &compact(script)])
                    .output()
                else {
                    assert_ne!(shell[0], "dash", "dash is needed for this test");
                    continue;
                };
                assert!(
                    out.status.success(),
                    "{shell:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }

    #[test]
    fn include_patterns() {
        assert!(includes_dropin("Include /etc/ssh/sshd_config.d/*.conf"));
        assert!(includes_dropin("include sshd_config.d/*.conf"));
        assert!(includes_dropin(
            "  Include /etc/ssh/sshd_config.d/latch.conf"
        ));
        assert!(includes_dropin(
            "Include /etc/foo \"/etc/ssh/sshd_config.d/*\""
        ));
        assert!(!includes_dropin("Include /etc/ssh/sshd_config.d/*.cfg"));
        assert!(!includes_dropin("Include /etc/ssh/*.conf"));
        assert!(!includes_dropin("Include /etc/ssh/other.d/*.conf"));
    }
}
