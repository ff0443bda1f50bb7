//! Active Directory helpers for guests: names, DN values, filter values and times.
//!
//! The host checks and escapes again on its side (it parses every DN and assembles every
//! `ldap` filter itself); these let a guest build what it sends correctly in the first place,
//! and check names against Windows' own limits before anything is sent.

use crate::{Error, ServiceCredential, invalid_config, invalid_request, names};

/// Longest `sAMAccountName` (and local account name) Windows accepts.
pub const MAX_ACCOUNT: usize = 20;

/// An account name for Windows: Latch's portable set (`[a-z_][a-z0-9_-]*`, which has none of
/// the characters Windows forbids) and at most 20 characters.
pub fn check_account<'a>(what: &str, name: &'a str) -> Result<&'a str, Error> {
    names::check(what, name)?;
    if name.len() > MAX_ACCOUNT {
        return Err(invalid_request(format!(
            "{what} {name:?} is {} characters; Windows account names have at most {MAX_ACCOUNT}",
            name.len()
        )));
    }
    Ok(name)
}

/// The settings both Windows integrations have (`rdp-servers`, `windows-dc`), checked the
/// same way in both.
///
/// `username_prefix`: at most 8 of `[a-z0-9_]`, not starting with a digit.
pub fn check_username_prefix(prefix: &str) -> Result<(), Error> {
    let ok = prefix.len() <= 8
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !prefix.starts_with(|ch: char| ch.is_ascii_digit());
    if !ok {
        return Err(invalid_config(
            "username_prefix must be at most 8 of [a-z0-9_], not starting with a digit",
        ));
    }
    Ok(())
}

/// `user`, the service account: `user`, `DOMAIN\user` or `user@domain`, printable, none of
/// the characters Windows forbids, at most 256 bytes.
pub fn check_service_user(user: &str) -> Result<(), Error> {
    let ok = !user.is_empty()
        && user.len() <= 256
        && !user
            .chars()
            .any(|ch| ch.is_control() || "\"/[]:;|=,+*?<>".contains(ch));
    if !ok {
        return Err(invalid_config(format!(
            "user {user:?} is not an account name (user, DOMAIN\\user or user@domain)"
        )));
    }
    Ok(())
}

/// `password_secret`: a plain secret name (`[A-Za-z0-9._-]`, not starting with `.`).
pub fn check_password_secret(name: &str) -> Result<(), Error> {
    if !names::is_secret_name(name) {
        return Err(invalid_config(format!(
            "password_secret {name:?} must be a plain secret name ([A-Za-z0-9._-])"
        )));
    }
    Ok(())
}

/// `remove-service-credential` of an integration that logs in with a password: setting the
/// new password replaced the old one, so nothing is left to remove; it has no SSH key.
pub fn password_replaced(guest: &str, credential: &ServiceCredential) -> Result<(), Error> {
    match credential {
        ServiceCredential::Password => Ok(()),
        ServiceCredential::SshKey(_) => Err(invalid_request(format!(
            "{guest} logs in with a password; it has no SSH key to remove"
        ))),
    }
}

/// A value escaped for a DN's RDN (RFC 4514): `"+,;<=>\` and NUL, a leading space or `#`,
/// a trailing space.
pub fn dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '=' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\0' => out.push_str("\\00"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '#' if i == 0 => out.push_str("\\#"),
            _ => out.push(c),
        }
    }
    out
}

/// The RDNs of `dn` with escapes undone and case folded, to compare DNs as names: Active
/// Directory and Samba write the same DN with different escapes (`\;` or `\3B`). `None` if
/// it does not parse.
pub fn dn_key(dn: &str) -> Option<Vec<(String, String)>> {
    let mut rdns = Vec::new();
    let bytes = dn.as_bytes();
    let mut i = 0;
    loop {
        let eq = dn[i..].find('=')? + i;
        let kind = dn[i..eq].trim().to_ascii_lowercase();
        if kind.is_empty() {
            return None;
        }
        i = eq + 1;
        let mut value = Vec::new();
        while i < bytes.len() && bytes[i] != b',' {
            if bytes[i] == b'\\' {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        value.push(b);
                        i += 3;
                    }
                    None => {
                        value.push(*bytes.get(i + 1)?);
                        i += 2;
                    }
                }
            } else {
                value.push(bytes[i]);
                i += 1;
            }
        }
        rdns.push((kind, String::from_utf8(value).ok()?.to_lowercase()));
        if i >= bytes.len() {
            return Some(rdns);
        }
        i += 1;
    }
}

/// Do `a` and `b` name the same entry (parsed, escapes and case aside)?
pub fn same_dn(a: &str, b: &str) -> bool {
    match (dn_key(a), dn_key(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// A value escaped for an LDAP filter (RFC 4515): `*()\` and NUL as `\hh`.
pub fn filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            _ => out.push(c),
        }
    }
    out
}

/// Seconds between 1601-01-01 and 1970-01-01.
const EPOCH_DIFF: u64 = 11_644_473_600;

/// `accountExpires` for a Unix time: 100-ns intervals since 1601-01-01 UTC.
pub fn filetime(unix: u64) -> u64 {
    (unix + EPOCH_DIFF) * 10_000_000
}

/// The Unix time of an `accountExpires` value; `None` for "never" (0 or `i64::MAX`).
pub fn from_filetime(ft: u64) -> Option<u64> {
    if ft == 0 || ft >= i64::MAX as u64 {
        return None;
    }
    Some((ft / 10_000_000).saturating_sub(EPOCH_DIFF))
}

/// A Unix time as ISO 8601 UTC, `2026-11-30T14:05:00Z` (how a `DateTime` parameter is given
/// to a cmdlet: PowerShell reads it culture-independently, as UTC).
pub fn iso8601(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_796_054_400), "2026-11-30T16:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(filetime(0), 116_444_736_000_000_000);
        assert_eq!(from_filetime(filetime(1_796_054_400)), Some(1_796_054_400));
        assert_eq!(from_filetime(0), None);
        assert_eq!(from_filetime(9_223_372_036_854_775_807), None);
    }

    #[test]
    fn escaping() {
        assert_eq!(
            dn_value("JIT (ops), R&D + \"x\"; a=b"),
            "JIT (ops)\\, R&D \\+ \\\"x\\\"\\; a\\=b"
        );
        assert_eq!(dn_value(" #a "), "\\ #a\\ ");
        assert_eq!(dn_value("#a"), "\\#a");
        assert_eq!(filter_value("*)(|(cn=*"), "\\2a\\29\\28|\\28cn=\\2a");
        assert_eq!(filter_value("a\\b"), "a\\5cb");
    }

    #[test]
    fn dns_compare_as_names() {
        let samba =
            "CN=JIT (ops)\\, R&D \\+ \\\"east\\\"\\3B x\\3Dy,OU=JIT Groups,DC=latch,DC=test";
        let latch = format!(
            "CN={},ou=jit groups,dc=LATCH,dc=test",
            dn_value("JIT (ops), R&D + \"east\"; x=y")
        );
        assert!(same_dn(samba, &latch), "{samba} vs {latch}");
        assert!(!same_dn("CN=a\\,OU=b,DC=c", "CN=a,OU=b,DC=c"));
        assert!(!same_dn("garbage", "garbage"));
    }

    #[test]
    fn account_names() {
        assert!(check_account("u", "jit_alice").is_ok());
        assert!(check_account("u", &"a".repeat(20)).is_ok());
        assert!(check_account("u", &"a".repeat(21)).is_err());
        for bad in ["alice;rm", "$(id)", "a'b", "ä", "-oProxy", "a*", "a(b)"] {
            assert!(check_account("u", bad).is_err(), "{bad}");
        }
    }
}
