//! Secret values out of every text that leaves a guest call — in every form Latch itself may
//! have put them in on the way.
//!
//! Defends against a secret reaching an error, a record, an answer or a log by being echoed:
//! a PowerShell error record quoting the script line that held it, a server's message
//! quoting a parameter, a guest returning or printing it. A [`Scrubber`] holds the secret
//! values one guest call had (the password the host made for the grant, the next service
//! password, every value `secrets.get` handed the guest, every secret the host read to carry
//! a call out) and finds each in its **plain** form and in the forms Latch produces: JSON
//! string escaping, PowerShell single-quoted (quotes doubled), URL encoding (`+` and `%20`),
//! UTF-16LE (what `-EncodedCommand` and `unicodePwd` carry), and base64 of the value and of
//! its UTF-16LE bytes at each of the three alignments it can have inside a longer base64 text
//! (the part of the encoding that depends on the value alone).
//!
//! What it cannot see: a value a guest encoded its own way (reversed, hex, XOR). The guest is
//! pinned and read by the customer for that; what the host guarantees is that a secret never
//! leaves a call in a form the host itself made. Values shorter than 4 bytes are not looked
//! for (they would redact ordinary text); derived forms shorter than 8 bytes neither.

use base64::Engine;
use zeroize::Zeroizing;

use crate::Secret;

/// Shortest value looked for as it is.
const MIN_PLAIN: usize = 4;
/// Shortest derived form (an encoding, or the inner part of a base64 text) looked for.
const MIN_DERIVED: usize = 8;

/// What a found secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// The secret values of one guest call, to find and redact in what leaves it.
#[derive(Clone, Default)]
pub struct Scrubber {
    values: Vec<Secret>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scrubber({} values)", self.values.len())
    }
}

impl Scrubber {
    /// A scrubber with no values (scrubs nothing).
    pub fn new() -> Self {
        Scrubber::default()
    }

    /// Also look for `secret`.
    pub fn add(&mut self, secret: &Secret) {
        if secret.expose().len() >= MIN_PLAIN && !self.values.contains(secret) {
            self.values.push(secret.clone());
        }
    }

    /// Also look for each of `secrets`.
    pub fn extend<'a>(&mut self, secrets: impl IntoIterator<Item = &'a Secret>) {
        for s in secrets {
            self.add(s);
        }
    }

    /// Does it look for anything?
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Every form of every value, longest first.
    fn needles(&self) -> Vec<Zeroizing<Vec<u8>>> {
        let mut all: Vec<Zeroizing<Vec<u8>>> =
            self.values.iter().flat_map(|v| forms(v.expose())).collect();
        all.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.as_slice().cmp(b)));
        all.dedup_by(|a, b| a.as_slice() == b.as_slice());
        all
    }

    /// Where in `bytes` a form of a value lies, merged and in order.
    fn spans(&self, bytes: &[u8]) -> Vec<(usize, usize)> {
        if self.values.is_empty() {
            return Vec::new();
        }
        let mut spans = Vec::new();
        for needle in self.needles() {
            let finder = memchr::memmem::Finder::new(needle.as_slice());
            spans.extend(
                finder
                    .find_iter(bytes)
                    .map(|start| (start, start + needle.len())),
            );
        }
        spans.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
        for (start, end) in spans {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }

    /// `bytes` with every form of every value replaced by `[redacted]`.
    pub fn scrub_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let spans = self.spans(bytes);
        if spans.is_empty() {
            return bytes.to_vec();
        }
        let mut out = Vec::with_capacity(bytes.len());
        let mut at = 0;
        for (start, end) in spans {
            out.extend_from_slice(&bytes[at..start]);
            out.extend_from_slice(REDACTED.as_bytes());
            at = end;
        }
        out.extend_from_slice(&bytes[at..]);
        out
    }

    /// `text` with every form of every value replaced by `[redacted]`.
    pub fn scrub(&self, text: &str) -> String {
        if self.values.is_empty() {
            return text.to_string();
        }
        match String::from_utf8(self.scrub_bytes(text.as_bytes())) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }

    /// Does `text` hold a form of a value?
    pub fn finds(&self, text: &str) -> bool {
        !self.spans(text.as_bytes()).is_empty()
    }
}

/// The forms of `value` to look for (see the module docs).
fn forms(value: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    let mut out = Vec::new();
    let mut push = |form: Vec<u8>, min: usize| {
        if form.len() >= min {
            out.push(Zeroizing::new(form));
        }
    };
    push(value.to_vec(), MIN_PLAIN);
    let mut encoded_from = vec![Zeroizing::new(value.to_vec())];
    if let Ok(text) = std::str::from_utf8(value) {
        let json = Zeroizing::new(serde_json::to_string(text).unwrap_or_default());
        if json.len() >= 2 {
            push(json.as_bytes()[1..json.len() - 1].to_vec(), MIN_PLAIN);
        }
        let quoted = Zeroizing::new(crate::encoding::powershell_literal(text));
        push(quoted.as_bytes()[1..quoted.len() - 1].to_vec(), MIN_PLAIN);
        let form = Zeroizing::new(url::form_urlencoded::byte_serialize(value).collect::<String>());
        push(form.as_bytes().to_vec(), MIN_PLAIN);
        push(form.replace('+', "%20").into_bytes(), MIN_PLAIN);
        let utf16: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        push(utf16.clone(), MIN_DERIVED);
        encoded_from.push(Zeroizing::new(utf16));
    }
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
    ];
    for bytes in &encoded_from {
        for engine in engines {
            push(engine.encode(bytes.as_slice()).into_bytes(), MIN_DERIVED);
            // Inside a longer base64 text the value may start at any of three offsets of a
            // 3-byte group; the characters of the whole groups it fills are its own.
            for skip in 0..3.min(bytes.len()) {
                let rest = &bytes[skip..];
                let whole = rest.len() / 3 * 3;
                push(engine.encode(&rest[..whole]).into_bytes(), MIN_DERIVED);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "Canary'1-\u{2019}x\"y/z+w &q";

    fn scrubber() -> Scrubber {
        let mut s = Scrubber::new();
        s.add(&Secret::new(CANARY.as_bytes().to_vec()));
        s
    }

    #[test]
    fn every_form_latch_makes_is_found_and_redacted() {
        let s = scrubber();
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let utf16: Vec<u8> = CANARY.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let cases = [
            format!("plain {CANARY} text"),
            format!("json {}", serde_json::to_string(CANARY).unwrap()),
            format!(
                "At line:1 char:9 ConvertTo-SecureString {} -AsPlainText",
                crate::encoding::powershell_literal(CANARY)
            ),
            format!(
                "Action=X&Value={}",
                url::form_urlencoded::byte_serialize(CANARY.as_bytes()).collect::<String>()
            ),
            String::from_utf8_lossy(&[b"utf16 ".as_slice(), &utf16].concat()).into_owned(),
        ];
        for text in &cases {
            assert!(s.finds(text), "{text:?}");
            let out = s.scrub(text);
            assert!(
                out.contains(REDACTED) && !s.finds(&out),
                "{text:?} -> {out:?}"
            );
        }
        // Inside a longer base64 text, at every alignment, of the value and of its UTF-16LE.
        for prefix in ["", "a", "ab", "abc", "abcd"] {
            for inner in [CANARY.as_bytes().to_vec(), utf16.clone()] {
                let text = b64(&[prefix.as_bytes(), &inner, b" tail"].concat());
                assert!(s.finds(&text), "{prefix:?} {text}");
                assert!(!s.scrub(&text).contains(&b64(&inner)[4..12]), "{text}");
            }
        }
    }

    #[test]
    fn ordinary_text_and_short_values_are_left_alone() {
        let mut s = scrubber();
        s.add(&Secret::new(b"abc".to_vec()));
        let text = "abc: nothing secret here, 0123456789";
        assert_eq!(s.scrub(text), text);
        assert!(!s.finds(text));
        assert_eq!(Scrubber::new().scrub(CANARY), CANARY);
        let bytes = [b"\xff\xfe".as_slice(), CANARY.as_bytes(), b"\xff"].concat();
        let out = s.scrub_bytes(&bytes);
        assert_eq!(
            out,
            [b"\xff\xfe".as_slice(), REDACTED.as_bytes(), b"\xff"].concat()
        );
    }
}
