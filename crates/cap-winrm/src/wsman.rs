//! WS-Management's remote shell protocol (MS-WSMV), as messages: the envelopes Latch sends
//! and what it reads back. No transport here: the WinRM transport (NTLM message encryption,
//! HTTPS) carries these bodies.
//!
//! A command runs as: Create shell → Command → Receive (repeated until
//! `CommandState/Done`; an `OperationTimeout` fault, 2150858793, only means "receive again")
//! → Signal terminate → Delete. PowerShell runs as `powershell.exe -NoLogo -NoProfile
//! -NonInteractive -EncodedCommand <base64 of the UTF-16LE script>`, so the script reaches
//! PowerShell as one opaque argument that no command line parser on the way can split.
//!
//! Defends against a confused or hostile server: replies are read by **namespace**, never by
//! prefix (Windows and other servers use different prefixes); every value taken from a reply
//! (shell and command ids) is checked to be an id before it is sent back; output streams are
//! bounded; a fault becomes one error with its WS-Management code and message. Envelopes are
//! written with an XML writer that escapes every value.

use base64::Engine;
use quick_xml::Writer;
use quick_xml::events::BytesText;

/// SOAP 1.2.
pub const NS_SOAP: &str = "http://www.w3.org/2003/05/soap-envelope";
/// WS-Addressing.
pub const NS_ADDRESSING: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
/// DMTF WS-Management.
pub const NS_WSMAN: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd";
/// Microsoft's WS-Management extensions.
pub const NS_WSMV: &str = "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd";
/// The Windows remote shell.
pub const NS_SHELL: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell";
/// WS-Transfer.
pub const NS_TRANSFER: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer";
/// Microsoft's WS-Management fault detail.
pub const NS_WSMANFAULT: &str = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault";

/// The cmd shell's resource URI (PowerShell runs inside it, as `powershell.exe`).
pub const RESOURCE_CMD: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd";
const ANONYMOUS: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous";
const SIGNAL_TERMINATE: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate";
const STATE_DONE: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done";

/// The fault code that means "nothing yet within OperationTimeout; receive again".
pub const OPERATION_TIMEOUT: u64 = 2_150_858_793;

/// The fault code of an unknown shell or command id (`w:InvalidSelectors`).
pub const INVALID_SELECTORS: u64 = 2_150_858_843;

/// Most bytes of stdout, and of stderr, kept from one command.
pub const MAX_STREAM: usize = 4 << 20;

/// What every envelope of one exchange carries.
#[derive(Clone, Debug)]
pub struct Context {
    /// The endpoint, e.g. `https://dc1.corp.example:5986/wsman`.
    pub to: String,
    /// `MaxEnvelopeSize` in bytes (Windows' default is 153600, 150 KiB).
    pub max_envelope: usize,
    /// `OperationTimeout` in seconds: how long a Receive may wait for output.
    pub operation_timeout: u64,
}

/// An action of the shell protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// WS-Transfer Create: a shell.
    Create,
    /// Run a command in the shell.
    Command,
    /// Write to the command's stdin.
    Send,
    /// Read output.
    Receive,
    /// Signal the command (terminate).
    Signal,
    /// WS-Transfer Delete: the shell.
    Delete,
}

impl Action {
    /// The `wsa:Action` URI.
    pub fn uri(self) -> &'static str {
        match self {
            Action::Create => "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create",
            Action::Command => "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command",
            Action::Send => "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send",
            Action::Receive => "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive",
            Action::Signal => "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal",
            Action::Delete => "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete",
        }
    }
}

/// Why a reply could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsmanError {
    /// The server answered with a SOAP fault.
    #[error("WS-Management fault {}: {message}", code.map_or("(no code)".to_string(), |c| c.to_string()))]
    Fault {
        /// The WSManFault code (e.g. 2150858793), when the server gave one.
        code: Option<u64>,
        /// The SOAP subcode, e.g. `w:TimedOut`.
        subcode: String,
        /// The fault's message (the provider's, when there is one).
        message: String,
    },
    /// The reply is not what the protocol says it should be.
    #[error("malformed WS-Management reply: {0}")]
    Malformed(String),
}

impl WsmanError {
    /// Is this the OperationTimeout fault that only means "receive again"?
    pub fn is_operation_timeout(&self) -> bool {
        matches!(
            self,
            WsmanError::Fault {
                code: Some(OPERATION_TIMEOUT),
                ..
            }
        )
    }
}

/// A fresh `uuid:…` message id (random version-4 form, upper-case as Windows writes it).
pub fn message_id() -> String {
    let b: [u8; 16] = rand::random();
    let hex = hex::encode_upper(b);
    format!(
        "uuid:{}-{}-4{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[16..20],
        &hex[20..32]
    )
}

type W = Writer<Vec<u8>>;
type IoResult = std::io::Result<()>;

fn text(w: &mut W, name: &str, attrs: &[(&str, &str)], value: &str) -> IoResult {
    w.create_element(name)
        .with_attributes(attrs.iter().copied())
        .write_text_content(BytesText::new(value))?;
    Ok(())
}

/// One envelope: the header every action shares, then `body`.
fn envelope(
    ctx: &Context,
    action: Action,
    shell_id: Option<&str>,
    options: &[(&str, &str)],
    body: impl FnOnce(&mut W) -> IoResult,
) -> String {
    let mut w = Writer::new(Vec::new());
    let must = [("s:mustUnderstand", "true")];
    let result = w
        .create_element("s:Envelope")
        .with_attributes([
            ("xmlns:s", NS_SOAP),
            ("xmlns:wsa", NS_ADDRESSING),
            ("xmlns:wsman", NS_WSMAN),
            ("xmlns:wsmv", NS_WSMV),
            ("xmlns:rsp", NS_SHELL),
        ])
        .write_inner_content(|w| {
            w.create_element("s:Header").write_inner_content(|w| {
                text(w, "wsa:Action", &must, action.uri())?;
                w.create_element("wsmv:DataLocale")
                    .with_attributes([("s:mustUnderstand", "false"), ("xml:lang", "en-US")])
                    .write_empty()?;
                w.create_element("wsman:Locale")
                    .with_attributes([("s:mustUnderstand", "false"), ("xml:lang", "en-US")])
                    .write_empty()?;
                text(
                    w,
                    "wsman:MaxEnvelopeSize",
                    &must,
                    &ctx.max_envelope.to_string(),
                )?;
                text(w, "wsa:MessageID", &[], &message_id())?;
                text(
                    w,
                    "wsman:OperationTimeout",
                    &[],
                    &format!("PT{}S", ctx.operation_timeout),
                )?;
                w.create_element("wsa:ReplyTo")
                    .write_inner_content(|w| text(w, "wsa:Address", &must, ANONYMOUS))?;
                text(w, "wsman:ResourceURI", &must, RESOURCE_CMD)?;
                text(w, "wsa:To", &[], &ctx.to)?;
                if !options.is_empty() {
                    w.create_element("wsman:OptionSet")
                        .with_attributes(must)
                        .write_inner_content(|w| {
                            for (name, value) in options {
                                text(w, "wsman:Option", &[("Name", name)], value)?;
                            }
                            Ok(())
                        })?;
                }
                if let Some(id) = shell_id {
                    w.create_element("wsman:SelectorSet")
                        .write_inner_content(|w| {
                            text(w, "wsman:Selector", &[("Name", "ShellId")], id)
                        })?;
                }
                Ok(())
            })?;
            w.create_element("s:Body").write_inner_content(body)?;
            Ok(())
        });
    result.expect("writing XML into a Vec cannot fail");
    String::from_utf8(w.into_inner()).expect("the writer writes UTF-8")
}

/// Create a cmd shell: UTF-8 output (codepage 65001), no user profile loaded.
pub fn create_shell(ctx: &Context) -> String {
    let options = [("WINRS_NOPROFILE", "TRUE"), ("WINRS_CODEPAGE", "65001")];
    envelope(ctx, Action::Create, None, &options, |w| {
        w.create_element("rsp:Shell").write_inner_content(|w| {
            text(w, "rsp:InputStreams", &[], "stdin")?;
            text(w, "rsp:OutputStreams", &[], "stdout stderr")
        })?;
        Ok(())
    })
}

/// Run `program` with `arguments` in shell `shell_id`. With `stdin`, the command's standard
/// input is a pipe the client writes with [`send`] (`WINRS_CONSOLEMODE_STDIN` false, as
/// pywinrm and Ansible send it when they write stdin); without, a console, as Windows'
/// own `winrs` has it.
pub fn command(
    ctx: &Context,
    shell_id: &str,
    program: &str,
    arguments: &[String],
    stdin: bool,
) -> String {
    let options = [
        (
            "WINRS_CONSOLEMODE_STDIN",
            if stdin { "FALSE" } else { "TRUE" },
        ),
        ("WINRS_SKIP_CMD_SHELL", "FALSE"),
    ];
    envelope(ctx, Action::Command, Some(shell_id), &options, |w| {
        w.create_element("rsp:CommandLine")
            .write_inner_content(|w| {
                text(w, "rsp:Command", &[], program)?;
                for a in arguments {
                    text(w, "rsp:Arguments", &[], a)?;
                }
                Ok(())
            })?;
        Ok(())
    })
}

/// Write `data` to the standard input of `command_id`, and close it (`End="true"`): one
/// `Send`, as Windows was sent in the recording `test_winrs_send.yml`. The envelope holds the
/// data (base64): it is as secret as the data (the transport wipes it once sealed).
pub fn send(ctx: &Context, shell_id: &str, command_id: &str, data: &[u8]) -> String {
    let encoded = zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(data));
    envelope(ctx, Action::Send, Some(shell_id), &[], |w| {
        w.create_element("rsp:Send").write_inner_content(|w| {
            text(
                w,
                "rsp:Stream",
                &[
                    ("Name", "stdin"),
                    ("CommandId", command_id),
                    ("End", "true"),
                ],
                &encoded,
            )
        })?;
        Ok(())
    })
}

/// Read output of `command_id`.
pub fn receive(ctx: &Context, shell_id: &str, command_id: &str) -> String {
    let options = [("WSMAN_CMDSHELL_OPTION_KEEPALIVE", "TRUE")];
    envelope(ctx, Action::Receive, Some(shell_id), &options, |w| {
        w.create_element("rsp:Receive").write_inner_content(|w| {
            text(
                w,
                "rsp:DesiredStream",
                &[("CommandId", command_id)],
                "stdout stderr",
            )
        })?;
        Ok(())
    })
}

/// Terminate `command_id` (after it is done, this releases it on the server).
pub fn signal_terminate(ctx: &Context, shell_id: &str, command_id: &str) -> String {
    envelope(ctx, Action::Signal, Some(shell_id), &[], |w| {
        w.create_element("rsp:Signal")
            .with_attribute(("CommandId", command_id))
            .write_inner_content(|w| text(w, "rsp:Code", &[], SIGNAL_TERMINATE))?;
        Ok(())
    })
}

/// Delete shell `shell_id`.
pub fn delete_shell(ctx: &Context, shell_id: &str) -> String {
    envelope(ctx, Action::Delete, Some(shell_id), &[], |_| Ok(()))
}

/// The arguments of `powershell.exe` that run `script`: `-EncodedCommand` and the base64 of
/// its UTF-16LE bytes.
pub fn powershell_arguments(script: &str) -> Vec<String> {
    let utf16: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(utf16);
    [
        "-NoLogo",
        "-NoProfile",
        "-NonInteractive",
        "-EncodedCommand",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([encoded])
    .collect()
}

fn parse(xml: &str) -> Result<roxmltree::Document<'_>, WsmanError> {
    roxmltree::Document::parse(xml).map_err(|e| WsmanError::Malformed(format!("not XML: {e}")))
}

fn body<'a, 'i>(doc: &'a roxmltree::Document<'i>) -> Result<roxmltree::Node<'a, 'i>, WsmanError> {
    let root = doc.root_element();
    if !root.has_tag_name((NS_SOAP, "Envelope")) {
        return Err(WsmanError::Malformed("not a SOAP 1.2 envelope".into()));
    }
    root.children()
        .find(|n| n.has_tag_name((NS_SOAP, "Body")))
        .ok_or_else(|| WsmanError::Malformed("no SOAP Body".into()))
}

fn descendant<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
    ns: &str,
    name: &str,
) -> Option<roxmltree::Node<'a, 'i>> {
    node.descendants().find(|n| n.has_tag_name((ns, name)))
}

/// The fault in `xml`, if it is one.
pub fn fault(xml: &str) -> Option<WsmanError> {
    let doc = parse(xml).ok()?;
    let fault = descendant(body(&doc).ok()?, NS_SOAP, "Fault")?;
    let subcode = descendant(fault, NS_SOAP, "Subcode")
        .and_then(|s| descendant(s, NS_SOAP, "Value"))
        .and_then(|v| v.text())
        .unwrap_or("")
        .trim()
        .to_string();
    let reason = descendant(fault, NS_SOAP, "Text")
        .and_then(|t| t.text())
        .unwrap_or("")
        .trim()
        .to_string();
    let detail = descendant(fault, NS_WSMANFAULT, "WSManFault");
    let code = detail
        .and_then(|d| d.attribute("Code"))
        .and_then(|c| c.parse().ok());
    let message = detail
        .and_then(|d| descendant(d, NS_WSMANFAULT, "Message"))
        .map(|m| {
            m.descendants()
                .filter_map(|n| n.text())
                .collect::<String>()
                .trim()
                .to_string()
        })
        .filter(|m| !m.is_empty())
        .unwrap_or(reason);
    Some(WsmanError::Fault {
        code,
        subcode,
        message: latch_cap::text::sanitize(&message),
    })
}

fn check_fault(xml: &str) -> Result<(), WsmanError> {
    match fault(xml) {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

/// Shell and command ids are GUIDs; anything else from a server is refused before it is
/// sent back in a selector or attribute.
fn checked_id(value: &str, what: &str) -> Result<String, WsmanError> {
    let v = value.trim();
    let ok = (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    if !ok {
        return Err(WsmanError::Malformed(format!(
            "the {what} {:?} is not an id",
            v.chars().take(64).collect::<String>()
        )));
    }
    Ok(v.to_string())
}

/// The ShellId of a Create answer.
pub fn shell_id(xml: &str) -> Result<String, WsmanError> {
    check_fault(xml)?;
    let doc = parse(xml)?;
    let body = body(&doc)?;
    let id = descendant(body, NS_SHELL, "ShellId")
        .and_then(|n| n.text())
        .or_else(|| {
            body.descendants()
                .find(|n| {
                    n.has_tag_name((NS_WSMAN, "Selector")) && n.attribute("Name") == Some("ShellId")
                })
                .and_then(|n| n.text())
        })
        .ok_or_else(|| WsmanError::Malformed("a Create answer without a ShellId".into()))?;
    checked_id(id, "ShellId")
}

/// The CommandId of a Command answer.
pub fn command_id(xml: &str) -> Result<String, WsmanError> {
    check_fault(xml)?;
    let doc = parse(xml)?;
    let id = descendant(body(&doc)?, NS_SHELL, "CommandId")
        .and_then(|n| n.text())
        .ok_or_else(|| WsmanError::Malformed("a Command answer without a CommandId".into()))?;
    checked_id(id, "CommandId")
}

/// What one Receive brought.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// Bytes of stdout.
    pub stdout: Vec<u8>,
    /// Bytes of stderr.
    pub stderr: Vec<u8>,
    /// The exit code, once the command is done.
    pub exit_code: Option<i64>,
    /// Is the command done?
    pub done: bool,
}

/// The streams and state of a Receive answer for `command_id`, appended to `into` (bounded).
pub fn receive_response(
    xml: &str,
    command_id: &str,
    into: &mut Received,
) -> Result<(), WsmanError> {
    check_fault(xml)?;
    let doc = parse(xml)?;
    let body = body(&doc)?;
    let response = descendant(body, NS_SHELL, "ReceiveResponse")
        .ok_or_else(|| WsmanError::Malformed("no ReceiveResponse".into()))?;
    let ours = |n: &roxmltree::Node| {
        n.attribute("CommandId")
            .is_none_or(|id| id.eq_ignore_ascii_case(command_id))
    };
    for stream in response
        .children()
        .filter(|n| n.has_tag_name((NS_SHELL, "Stream")) && ours(n))
    {
        let data = stream.text().unwrap_or("").trim();
        if data.is_empty() {
            continue;
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|_| WsmanError::Malformed("a stream that is not base64".into()))?;
        let buf = match stream.attribute("Name") {
            Some("stdout") => &mut into.stdout,
            Some("stderr") => &mut into.stderr,
            other => {
                return Err(WsmanError::Malformed(format!(
                    "an unknown stream {other:?}"
                )));
            }
        };
        let room = MAX_STREAM.saturating_sub(buf.len());
        buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
    if let Some(state) = response
        .children()
        .find(|n| n.has_tag_name((NS_SHELL, "CommandState")) && ours(n))
        && state.attribute("State") == Some(STATE_DONE)
    {
        into.done = true;
        into.exit_code = descendant(state, NS_SHELL, "ExitCode")
            .and_then(|n| n.text())
            .and_then(|t| t.trim().parse().ok());
    }
    Ok(())
}

/// The messages of the error records in a PowerShell stderr that is CLIXML
/// (`#< CLIXML` then `<Objs>…<S S="Error">line</S>…</Objs>`): one message per error, its
/// lines joined, `_x000D__x000A_` escapes decoded. Plain text is returned as its lines.
pub fn error_messages(stderr: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(stderr);
    let Some(rest) = text.trim_start().strip_prefix("#< CLIXML") else {
        return text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
    };
    let mut messages = Vec::new();
    // Several <Objs> documents may follow one another.
    for chunk in rest.split("</Objs>").filter(|c| c.contains("<Objs")) {
        let xml = format!("{}</Objs>", &chunk[chunk.find("<Objs").unwrap_or(0)..]);
        let Ok(doc) = roxmltree::Document::parse(&xml) else {
            continue;
        };
        let mut current = String::new();
        for s in doc
            .descendants()
            .filter(|n| n.tag_name().name() == "S" && n.attribute("S") == Some("Error"))
        {
            let line = decode_clixml_escapes(s.text().unwrap_or(""));
            current.push_str(&line);
        }
        let joined: Vec<String> = current
            .split(['\r', '\n'])
            .map(str::trim_end)
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        if !joined.is_empty() {
            messages.push(joined.join("\n"));
        }
    }
    messages
}

/// `_xHHHH_` escapes of CLIXML strings (`_x000D__x000A_` is CR LF).
fn decode_clixml_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("_x") {
        let (before, tail) = rest.split_at(at);
        out.push_str(before);
        let code = tail
            .get(2..6)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .filter(|_| tail.as_bytes().get(6) == Some(&b'_'))
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(char::from_u32);
        match code {
            Some(c) => {
                out.push(c);
                rest = &tail[7..];
            }
            None => {
                out.push_str("_x");
                rest = &tail[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            to: "http://dc1.corp.example:5985/wsman".into(),
            max_envelope: 153_600,
            operation_timeout: 20,
        }
    }

    #[test]
    fn values_are_escaped_in_envelopes() {
        let xml = command(
            &ctx(),
            "4283CBDC-3706-415B-88BD-B385F3E51A53",
            "powershell.exe",
            &["</rsp:Arguments><evil/>&".to_string()],
            false,
        );
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let args: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name((NS_SHELL, "Arguments")))
            .filter_map(|n| n.text())
            .collect();
        assert_eq!(args, ["</rsp:Arguments><evil/>&"]);
        assert!(!doc.descendants().any(|n| n.tag_name().name() == "evil"));
    }

    #[test]
    fn the_script_is_one_utf16le_base64_argument() {
        let args = powershell_arguments("Get-LocalUser -Name 'ö'");
        assert_eq!(args.len(), 5);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&args[4])
            .unwrap();
        let units: Vec<u16> = bytes
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(
            String::from_utf16(&units).unwrap(),
            "Get-LocalUser -Name 'ö'"
        );
    }

    #[test]
    fn ids_from_a_server_are_checked() {
        let answer = |id: &str| {
            format!(
                r#"<s:Envelope xmlns:s="{NS_SOAP}" xmlns:rsp="{NS_SHELL}"><s:Body><rsp:CommandResponse><rsp:CommandId>{id}</rsp:CommandId></rsp:CommandResponse></s:Body></s:Envelope>"#
            )
        };
        assert_eq!(command_id(&answer("AB-12")).unwrap(), "AB-12");
        for bad in ["x\"/><a", "a b", "", "zz"] {
            assert!(command_id(&answer(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn clixml_escapes() {
        assert_eq!(decode_clixml_escapes("a_x000D__x000A_b"), "a\r\nb");
        assert_eq!(decode_clixml_escapes("_x_y_x00_"), "_x_y_x00_");
        assert_eq!(
            error_messages(b"plain error\r\n\r\nsecond"),
            ["plain error", "second"]
        );
    }
}
