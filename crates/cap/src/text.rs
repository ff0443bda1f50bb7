//! Text a guest or a server wrote, made safe to log and record: cut at a bound, control
//! characters escaped (so it cannot forge extra log lines). Used by `log.write`, by the
//! per-call state for a guest's stdout and stderr, and by `ssh` and `winrm` for servers'
//! messages.

/// Most bytes of one message kept; the rest is cut.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// `message`, cut to [`MAX_MESSAGE_BYTES`] and with control characters escaped.
pub fn sanitize(message: &str) -> String {
    let mut end = message.len().min(MAX_MESSAGE_BYTES);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end);
    for c in message[..end].chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if end < message.len() {
        out.push_str("…[cut]");
    }
    out
}
