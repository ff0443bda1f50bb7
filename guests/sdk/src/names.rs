//! Account and group names, checked before they can reach any command.
//!
//! Only `[a-z_][a-z0-9_-]{0,31}` is accepted: the POSIX portable set, lower-case, with no
//! leading `-` (which a tool would read as an option) and nothing a shell treats specially.
//! Checking here is the first line; the host quotes argv regardless.

use crate::{Error, invalid_request};

/// Longest account or group name.
pub const MAX_NAME: usize = 32;

/// Is `name` a valid account or group name?
pub fn is_valid(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && name.len() <= MAX_NAME
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `Ok(name)` if valid, else `invalid-request` naming `what` (e.g. "username").
pub fn check<'a>(what: &str, name: &'a str) -> Result<&'a str, Error> {
    if is_valid(name) {
        Ok(name)
    } else {
        Err(invalid_request(format!(
            "{what} {:?} is not a valid name: use 1 to {MAX_NAME} of [a-z0-9_-], starting with a letter or '_'",
            shorten(name)
        )))
    }
}

/// Derive an account name from an e-mail address: the local part, lower-cased, with `.`
/// turned into `_` and any `+tag` dropped (`Alice.Smith+ops@corp.example` → `alice_smith`).
///
/// Anything that would not give a valid name (non-ASCII, shell characters, a leading digit,
/// more than 32 characters) is an `invalid-request`, never silently rewritten further.
pub fn username_from_email(email: &str) -> Result<String, Error> {
    let bad = |why: &str| invalid_request(format!("e-mail {:?}: {why}", shorten(email)));
    let (local, domain) = email.rsplit_once('@').ok_or_else(|| bad("has no '@'"))?;
    let domain_ok = !domain.is_empty()
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if !domain_ok {
        return Err(bad("has an invalid domain"));
    }
    let local = local.split_once('+').map_or(local, |(l, _)| l);
    let name: String = local.to_ascii_lowercase().replace('.', "_");
    if name.is_empty() {
        return Err(bad("has an empty local part"));
    }
    if !is_valid(&name) {
        return Err(bad(
            "does not give a valid account name; pass an explicit username of [a-z0-9_-]",
        ));
    }
    Ok(name)
}

/// At most 64 characters of `s`, for error messages about hostile input.
fn shorten(s: &str) -> String {
    if s.chars().count() <= 64 {
        s.to_string()
    } else {
        let head: String = s.chars().take(64).collect();
        format!("{head}…")
    }
}

/// A plain secret name, as the host's store takes one: 1 to 128 of `[A-Za-z0-9._-]`, not
/// starting with `.` (so never a path).
pub fn is_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names() {
        for ok in ["alice", "_svc", "a-b_c9", "latch-managed"] {
            assert!(is_valid(ok), "{ok}");
        }
        let hostile = [
            "",
            "alice;rm -rf /",
            "$(id)",
            "`id`",
            "-oProxyCommand=x",
            "../../etc/passwd",
            "Alice",
            "9lives",
            "ünïcödé",
            "a b",
        ];
        for bad in hostile.iter().copied().chain([&*"a".repeat(300)]) {
            assert!(!is_valid(bad), "{bad}");
            assert!(matches!(
                check("username", bad),
                Err(Error::InvalidRequest(_))
            ));
        }
    }

    #[test]
    fn usernames_from_emails() {
        assert_eq!(username_from_email("alice@corp.example").unwrap(), "alice");
        assert_eq!(
            username_from_email("Alice.Smith+ops@corp.example").unwrap(),
            "alice_smith"
        );
        for bad in [
            "alice",
            "@corp.example",
            "alice;rm -rf /@corp.example",
            "$(id)@x.example",
            "-oProxyCommand=x@x.example",
            "ünï@x.example",
            "9lives@x.example",
            "alice@",
            "alice@bad domain",
        ] {
            assert!(
                matches!(username_from_email(bad), Err(Error::InvalidRequest(_))),
                "{bad}"
            );
        }
        let long = format!("{}@x.example", "a".repeat(300));
        let err = username_from_email(&long).unwrap_err();
        let Error::InvalidRequest(msg) = err else {
            panic!()
        };
        assert!(msg.len() < 300, "hostile input is shortened in errors");
    }
}
