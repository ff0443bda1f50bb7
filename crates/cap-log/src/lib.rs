//! `log.write`: a guest's structured messages, into the connector's log. The smallest
//! capability, and the worked example of `docs/CAPABILITIES.md`: a crate on the capability
//! core (`latch-cap`) and the contract (`latch-contract`), listed in the host's registry by
//! one line.
//!
//! Defends the log against a guest: messages are tagged with the integration (a guest cannot
//! pose as the host), cut at [`MAX_MESSAGE_BYTES`], and control characters are escaped so a
//! message cannot forge extra log lines. Logging is not an action on the world, so it is not
//! recorded as a capability call.

pub mod wit;

pub use wit::link;

/// Messages are cut and escaped by the host's one text sanitizer, shared with the other
/// capabilities that pass on a server's or a guest's text.
pub use latch_cap::text::{MAX_MESSAGE_BYTES, sanitize};

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn messages_cannot_forge_lines_or_flood() {
        assert_eq!(sanitize("a\nFAKE host line"), "a\\nFAKE host line");
        assert_eq!(sanitize("ünïcödé"), "ünïcödé");
        // Cut at 4096 bytes, on a character boundary: 2048 two-byte characters, then the mark.
        let long = "é".repeat(5000);
        assert_eq!(sanitize(&long), format!("{}…[cut]", "é".repeat(2048)));
        // An odd cut point falls back to the previous boundary.
        let odd = format!("a{}", "é".repeat(5000));
        assert_eq!(sanitize(&odd), format!("a{}…[cut]", "é".repeat(2047)));
        // Escaping happens after the cut: at most 4096 input bytes are kept, never more.
        assert_eq!(
            sanitize(&"\n".repeat(4097)),
            format!("{}…[cut]", "\\n".repeat(4096))
        );
    }
}
