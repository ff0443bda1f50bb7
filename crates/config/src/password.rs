//! `[integration.password]`: the passwords the host generates for password integrations.

use super::*;

/// `[integration.password]`: the passwords the host generates for integrations whose
/// credential is a password. Always upper- and lower-case letters, digits and symbols, at
/// least one of each (Active Directory's complexity rule asks for three of the four).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordRules {
    /// Characters, 16 to 128 (default 24).
    pub length: usize,
    /// The symbols it may use (default `!#%+-.:=?@_~`: none that a shell, a PowerShell
    /// string or an `.rdp` file would treat specially).
    pub symbols: String,
}

impl Default for PasswordRules {
    fn default() -> Self {
        PasswordRules {
            length: 24,
            symbols: "!#%+-.:=?@_~".into(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct PasswordSection {
    pub(super) length: Option<usize>,
    pub(super) symbols: Option<String>,
}

pub(super) fn check_password(p: PasswordSection) -> anyhow::Result<PasswordRules> {
    let mut rules = PasswordRules::default();
    if let Some(length) = p.length {
        if !(16..=128).contains(&length) {
            bail!("length must be 16 to 128, not {length}");
        }
        rules.length = length;
    }
    if let Some(symbols) = p.symbols {
        let ok = !symbols.is_empty()
            && symbols.len() <= 32
            && symbols
                .bytes()
                .all(|b| b.is_ascii_punctuation() && !b"'\"`$\\".contains(&b));
        if !ok {
            bail!(
                "symbols must be 1 to 32 ASCII punctuation characters, none of ' \" ` $ \\, \
                 not {symbols:?}"
            );
        }
        rules.symbols = symbols;
    }
    Ok(rules)
}
