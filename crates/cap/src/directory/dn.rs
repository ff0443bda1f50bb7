//! Distinguished names (RFC 4514), parsed so that the policy compares names, not strings.
//!
//! A string suffix test is wrong for DNs: `CN=x\,OU=Latch,DC=corp` *ends with* `,OU=Latch,DC=corp`
//! but lies directly under `DC=corp`. So every DN a guest gives is parsed into its RDNs (escapes
//! undone), compared RDN by RDN (attribute types and values case-insensitively, as Active
//! Directory does), and what is sent to the server is the host's own re-serialization of the
//! parsed name (values escaped with `ldap3::dn_escape`), never the guest's string.

use std::fmt;

/// Longest DN accepted, in bytes.
pub const MAX_DN: usize = 2048;
/// Most RDNs in one DN.
pub const MAX_RDNS: usize = 32;

/// One relative distinguished name: `type=value` (multi-valued RDNs are refused).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rdn {
    /// The attribute type as written (`CN`, `OU`, `DC`, …).
    pub kind: String,
    /// The value, unescaped.
    pub value: String,
}

/// A parsed DN, the leaf RDN first.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dn(pub Vec<Rdn>);

impl Dn {
    /// Parse `text` (RFC 4514). Refuses the empty DN, multi-valued RDNs, bad escapes, values
    /// that are not UTF-8, control characters, and anything over [`MAX_DN`] bytes.
    pub fn parse(text: &str) -> Result<Dn, String> {
        let bad = |why: &str| {
            let shown: String = text.chars().take(80).collect();
            format!("DN {shown:?}: {why}")
        };
        if text.is_empty() {
            return Err(bad("is empty"));
        }
        if text.len() > MAX_DN {
            return Err(bad(&format!("is over {MAX_DN} bytes")));
        }
        if text.chars().any(char::is_control) {
            return Err(bad("holds a control character"));
        }
        let bytes = text.as_bytes();
        let mut rdns = Vec::new();
        let mut i = 0;
        loop {
            // attribute type: a letter, then letters, digits, '-'
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'-') {
                i += 1;
            }
            let kind = &text[start..i];
            if kind.is_empty() || !kind.as_bytes()[0].is_ascii_alphabetic() || kind.len() > 64 {
                return Err(bad("an attribute type must be a name like CN, OU or DC"));
            }
            if bytes.get(i) != Some(&b'=') {
                return Err(bad(&format!("expected '=' after {kind:?}")));
            }
            i += 1;
            let mut value = Vec::new();
            loop {
                match bytes.get(i) {
                    None | Some(b',') => break,
                    Some(b'+') => return Err(bad("multi-valued RDNs ('+') are not accepted")),
                    Some(b'\\') => {
                        let next = bytes.get(i + 1).copied();
                        let hex = |b: Option<u8>| b.filter(u8::is_ascii_hexdigit);
                        match (next, hex(next), hex(bytes.get(i + 2).copied())) {
                            (_, Some(h), Some(l)) => {
                                let pair = [h, l];
                                let s = std::str::from_utf8(&pair).expect("hex digits");
                                value.push(u8::from_str_radix(s, 16).expect("hex"));
                                i += 3;
                            }
                            (Some(c), _, _)
                                if matches!(
                                    c,
                                    b' ' | b'"'
                                        | b'#'
                                        | b'+'
                                        | b','
                                        | b';'
                                        | b'<'
                                        | b'='
                                        | b'>'
                                        | b'\\'
                                ) =>
                            {
                                value.push(c);
                                i += 2;
                            }
                            _ => {
                                return Err(bad(
                                    "a '\\' must escape a special character or two hex digits",
                                ));
                            }
                        }
                    }
                    // `=` needs no escape in a value (the type ends at the first one).
                    Some(b'"' | b';' | b'<' | b'>') => {
                        return Err(bad("an unescaped '\"', ';', '<' or '>' in a value"));
                    }
                    Some(&b) => {
                        value.push(b);
                        i += 1;
                    }
                }
            }
            let value = String::from_utf8(value).map_err(|_| bad("a value is not UTF-8"))?;
            if value.is_empty() {
                return Err(bad(&format!("{kind}= has an empty value")));
            }
            if value.chars().any(|c| c.is_control()) {
                return Err(bad("a value holds a control character"));
            }
            rdns.push(Rdn {
                kind: kind.to_string(),
                value,
            });
            if rdns.len() > MAX_RDNS {
                return Err(bad(&format!("more than {MAX_RDNS} RDNs")));
            }
            match bytes.get(i) {
                None => break,
                Some(b',') => i += 1,
                Some(_) => unreachable!("the value loop stops at ',' or the end"),
            }
        }
        Ok(Dn(rdns))
    }

    /// Is `self` equal to `base` or below it?
    pub fn is_at_or_under(&self, base: &Dn) -> bool {
        self.0.len() >= base.0.len()
            && self.0[self.0.len() - base.0.len()..]
                .iter()
                .zip(&base.0)
                .all(|(a, b)| same(a, b))
    }

    /// Is `self` strictly below `base`?
    pub fn is_under(&self, base: &Dn) -> bool {
        self.0.len() > base.0.len() && self.is_at_or_under(base)
    }

    /// The same name, case aside?
    pub fn same_as(&self, other: &Dn) -> bool {
        self.0.len() == other.0.len() && self.is_at_or_under(other)
    }
}

fn same(a: &Rdn, b: &Rdn) -> bool {
    a.kind.eq_ignore_ascii_case(&b.kind) && a.value.to_lowercase() == b.value.to_lowercase()
}

/// The host's own serialization: what goes to the server.
impl fmt::Display for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, rdn) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}={}", rdn.kind, ldap3::dn_escape(rdn.value.as_str()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap()
    }

    #[test]
    fn escaped_commas_do_not_make_a_dn_look_deeper() {
        let base = dn("OU=Latch,DC=corp,DC=example");
        let sneaky = dn("CN=x\\,OU=Latch,DC=corp,DC=example");
        assert_eq!(sneaky.0.len(), 3);
        assert!(!sneaky.is_under(&base));
        assert!(sneaky.is_under(&dn("DC=corp,DC=example")));
        let hex = dn("CN=x\\2COU=Latch,DC=corp,DC=example");
        assert_eq!(hex.0[0].value, "x,OU=Latch");
        assert!(!hex.is_under(&base));
        assert!(dn("cn=Alice,ou=LATCH,dc=Corp,dc=example").is_under(&base));
        assert!(!base.is_under(&base));
        assert!(base.is_at_or_under(&base));
    }

    #[test]
    fn values_round_trip_through_the_hosts_own_escaping() {
        for v in [
            "JIT (ops), R&D + \"east\"; x=y",
            " lead",
            "#hash",
            "trail ",
            "back\\slash",
            "ünïcødé",
            "a<b>c",
        ] {
            let d = Dn(vec![
                Rdn {
                    kind: "CN".into(),
                    value: v.into(),
                },
                Rdn {
                    kind: "DC".into(),
                    value: "corp".into(),
                },
            ]);
            let text = d.to_string();
            assert_eq!(Dn::parse(&text).unwrap(), d, "{text}");
        }
    }

    #[test]
    fn malformed_dns_are_refused() {
        for s in [
            "",
            "CN",
            "=x",
            "CN=",
            "CN=a+SN=b,DC=x",
            "CN=a\\",
            "CN=a\\zz",
            "CN=a;b",
            "CN=a\nb",
            "CN=a\0b",
            "1CN=a",
            "CN=a,,DC=b",
            "CN=\\ff\\fe",
        ] {
            assert!(Dn::parse(s).is_err(), "{s:?} parsed");
        }
        assert!(Dn::parse(&format!("CN={}", "a".repeat(MAX_DN))).is_err());
    }
}
