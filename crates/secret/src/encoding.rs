//! The encodings Latch itself puts values in that are not a standard crate's, kept beside
//! the [`crate::Scrubber`] so that it finds a secret in each of them.

/// A PowerShell single-quoted literal of `value`: nothing inside it is expanded.
pub fn powershell_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}') {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}
