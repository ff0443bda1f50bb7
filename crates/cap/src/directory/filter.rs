//! LDAP search filters (RFC 4515) as a guest writes them for an AD cmdlet's `-LDAPFilter`:
//! read, checked, and sent as written.
//!
//! Defends against a filter reading what a search may not return: Active Directory evaluates
//! a filter against every attribute the account can read, so `(ms-Mcs-AdmPwd=a*)`, then
//! `(ms-Mcs-AdmPwd=ab*)`, … reads a LAPS password one character at a time even when the
//! attribute is never returned. So every attribute a filter names is checked
//! ([`super::check_attribute_name`]), an extensible match must name its attribute (one
//! without applies its rule to every attribute of the entry), and the filter is bounded in
//! size and depth. (The `ldap` capability needs none of this: its guests give equality pairs
//! the host assembles.)

/// Longest filter accepted, in bytes.
pub const MAX_FILTER: usize = 4096;
/// Deepest nesting of `&`, `|` and `!`.
pub const MAX_DEPTH: usize = 16;
/// Most items (comparisons) in one filter.
pub const MAX_ITEMS: usize = 64;

/// Read `text` as an RFC 4515 filter; the attribute names it compares, or why it is refused.
pub fn attributes(text: &str) -> Result<Vec<String>, String> {
    if text.len() > MAX_FILTER {
        return Err(format!(
            "the filter is {} bytes, more than the {MAX_FILTER} allowed",
            text.len()
        ));
    }
    let mut p = Parser {
        s: text.as_bytes(),
        at: 0,
        names: Vec::new(),
    };
    p.filter(0)?;
    if p.at != p.s.len() {
        return Err(format!(
            "the filter goes on after its end (at byte {})",
            p.at
        ));
    }
    for name in &p.names {
        super::check_attribute_name("filter attribute", name)?;
    }
    Ok(p.names)
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
    names: Vec<String>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!(
                "expected {:?} at byte {} of the filter",
                c as char, self.at
            ))
        }
    }

    fn filter(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("the filter nests deeper than {MAX_DEPTH}"));
        }
        self.expect(b'(')?;
        match self.peek() {
            Some(b'&') | Some(b'|') => {
                self.at += 1;
                let mut n = 0;
                while self.peek() == Some(b'(') {
                    self.filter(depth + 1)?;
                    n += 1;
                }
                if n == 0 {
                    return Err("an empty & or | in the filter".into());
                }
            }
            Some(b'!') => {
                self.at += 1;
                self.filter(depth + 1)?;
            }
            _ => self.item()?,
        }
        self.expect(b')')
    }

    /// `attr op value`, `attr=*`, substrings, or an extensible match (which must name its
    /// attribute).
    fn item(&mut self) -> Result<(), String> {
        if self.names.len() >= MAX_ITEMS {
            return Err(format!("the filter compares more than {MAX_ITEMS} items"));
        }
        let start = self.at;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b';')
        {
            self.at += 1;
        }
        let name = std::str::from_utf8(&self.s[start..self.at])
            .expect("ASCII")
            .to_string();
        if name.is_empty() {
            return Err(format!(
                "an item without an attribute at byte {start} of the filter (an extensible \
                 match must name its attribute)"
            ));
        }
        // The operator: =, ~=, >=, <=, or an extensible match's :rule:= / :dn:=.
        match self.peek() {
            Some(b'=') => self.at += 1,
            Some(b'~') | Some(b'>') | Some(b'<') => {
                self.at += 1;
                self.expect(b'=')?;
            }
            Some(b':') => {
                while self.peek().is_some_and(|b| b != b'=') {
                    let b = self.peek().expect("some");
                    if !(b.is_ascii_alphanumeric() || b == b':' || b == b'.' || b == b'-') {
                        return Err(format!("a malformed extensible match at byte {}", self.at));
                    }
                    self.at += 1;
                }
                if self.s.get(self.at - 1) != Some(&b':') {
                    return Err(format!("a malformed extensible match at byte {}", self.at));
                }
                self.expect(b'=')?;
            }
            _ => {
                return Err(format!(
                    "expected a comparison after {name:?} at byte {}",
                    self.at
                ));
            }
        }
        self.names.push(name);
        self.value()
    }

    /// An assertion value up to `)`: escapes `\XX` only; `*` (substrings, presence) allowed;
    /// an unescaped `(`, `\` or NUL refused.
    fn value(&mut self) -> Result<(), String> {
        while let Some(b) = self.peek() {
            match b {
                b')' => return Ok(()),
                b'(' | 0 => {
                    return Err(format!(
                        "an unescaped {:?} in a filter value at byte {}",
                        b as char, self.at
                    ));
                }
                b'\\' => {
                    let hex = self.s.get(self.at + 1..self.at + 3);
                    if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                        return Err(format!(
                            "a bad escape in a filter value at byte {}",
                            self.at
                        ));
                    }
                    self.at += 3;
                }
                _ => self.at += 1,
            }
        }
        Err("the filter ends inside a value".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_a_guest_writes_are_read_for_their_attributes() {
        assert_eq!(
            attributes("(&(objectClass=user)(sAMAccountName=jit_alice))").unwrap(),
            ["objectClass", "sAMAccountName"]
        );
        assert_eq!(
            attributes("(|(cn=a\\2a\\28x)(!(description=*)))").unwrap(),
            ["cn", "description"]
        );
        assert_eq!(
            attributes("(userAccountControl:1.2.840.113556.1.4.803:=2)").unwrap(),
            ["userAccountControl"]
        );
        assert!(attributes("(cn>=a)").is_ok() && attributes("(cn~=a)").is_ok());
    }

    #[test]
    fn secrets_oracles_and_malformed_filters_are_refused() {
        for (filter, says) in [
            ("(ms-Mcs-AdmPwd=a*)", "holds secrets"),
            (
                "(&(objectClass=computer)(msLAPS-Password=x*))",
                "holds secrets",
            ),
            ("(|(cn=x)(!(unicodePwd=*)))", "holds secrets"),
            ("(:dn:2.4.6.8.10:=a)", "must name its attribute"),
            ("(:1.2.840.113556.1.4.803:=2)", "must name its attribute"),
            ("cn=x", "expected '('"),
            ("(cn=x))", "goes on after its end"),
            ("(cn=x", "ends inside a value"),
            ("(cn=a(b)", "unescaped '('"),
            ("(cn=a\\zz)", "bad escape"),
            ("(&)", "empty & or |"),
            ("(cn)", "expected a comparison"),
        ] {
            let e = attributes(filter).unwrap_err();
            assert!(e.contains(says), "{filter}: {e}");
        }
        let deep = format!("{}(cn=x){}", "(!".repeat(20), ")".repeat(20));
        assert!(attributes(&deep).unwrap_err().contains("deeper"));
        let many = format!("(&{})", "(cn=x)".repeat(65));
        assert!(attributes(&many).unwrap_err().contains("more than 64"));
        assert!(
            attributes(&"(cn=".repeat(2000))
                .unwrap_err()
                .contains("bytes")
        );
    }
}
