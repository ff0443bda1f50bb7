//! Conformance of Latch's WS-Management messages with exchanges recorded against a real
//! Windows host (`../shared/fixtures/winrm`, from pypsrp's and pywinrm's test suites; see its
//! README). Every recorded response is read to the right shell id, command id, output, exit
//! code or fault; every request Latch writes has the structure Windows accepted: action,
//! resource URI, selectors, option names, body elements (all by namespace).

use std::collections::BTreeSet;
use std::path::PathBuf;

use latch::caps::winrm::wsman::{self, Context, Received, WsmanError};

fn fixtures() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/winrm");
    assert!(
        dir.join("README.md").exists(),
        "the recorded WinRM exchanges are not at {} (shared/ beside the checkout)",
        dir.display()
    );
    dir
}

/// One recorded exchange.
struct Message {
    request: String,
    response: String,
    http_status: u16,
}

#[derive(serde::Deserialize)]
struct File {
    messages: Vec<Recorded>,
}

/// pypsrp's format (`_template.yml`); `overrides` (what its runner ignores when comparing
/// requests) and the other keys are not needed here.
#[derive(serde::Deserialize)]
struct Recorded {
    request: String,
    response: String,
    #[serde(default)]
    transport_error: Option<TransportError>,
}

#[derive(serde::Deserialize)]
struct TransportError {
    code: u16,
}

/// The messages of a pypsrp recording.
fn recording(name: &str) -> Vec<Message> {
    let text = std::fs::read_to_string(fixtures().join("pypsrp").join(name)).unwrap();
    let file: File = serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(!file.messages.is_empty(), "{name}: no messages");
    file.messages
        .into_iter()
        .map(|m| Message {
            request: m.request,
            response: m.response,
            http_status: m.transport_error.map_or(200, |t| t.code),
        })
        .collect()
}

fn action(request: &str) -> String {
    let doc = roxmltree::Document::parse(request).unwrap();
    doc.descendants()
        .find(|n| n.has_tag_name((wsman::NS_ADDRESSING, "Action")))
        .and_then(|n| n.text())
        .unwrap()
        .to_string()
}

/// Read a whole recorded command run: shell id, command id, output, exit code, and the
/// faults, each response by the action of its request.
#[derive(Default)]
struct Run {
    shell: Option<String>,
    command: Option<String>,
    received: Received,
    faults: Vec<WsmanError>,
}

fn play(name: &str) -> Run {
    let mut run = Run::default();
    for m in recording(name) {
        let act = action(&m.request);
        // A fault is a fault whatever the HTTP status it came with (pypsrp recorded some of
        // them with 200); every HTTP 500 of the recordings is one.
        if let Some(fault) = wsman::fault(&m.response) {
            run.faults.push(fault);
            continue;
        }
        assert_ne!(
            m.http_status, 500,
            "{name}: {act}: a 500 that is not a fault"
        );
        match act.rsplit('/').next().unwrap() {
            "Create" if m.request.contains("windows/shell/cmd") => {
                run.shell = Some(wsman::shell_id(&m.response).unwrap())
            }
            "Command" => run.command = Some(wsman::command_id(&m.response).unwrap()),
            "Receive" if m.request.contains("windows/shell/cmd") => {
                let id = run.command.clone().unwrap();
                wsman::receive_response(&m.response, &id, &mut run.received).unwrap();
            }
            _ => {}
        }
    }
    run
}

#[test]
fn every_recorded_command_run_reads_back_right() {
    let standard = play("test_winrs_standard.yml");
    assert_eq!(
        standard.shell.as_deref(),
        Some("4283CBDC-3706-415B-88BD-B385F3E51A53")
    );
    assert_eq!(standard.received.stdout, b"hi\r\n");
    assert_eq!(standard.received.exit_code, Some(0));
    assert!(standard.received.done);

    let rc = play("test_winrs_stderr_rc.yml");
    assert_eq!(rc.received.stdout, b"out \r\n");
    assert_eq!(rc.received.stderr, b"err \r\n");
    assert_eq!(rc.received.exit_code, Some(1));

    let unicode = play("test_winrs_unicode.yml");
    assert_eq!(
        String::from_utf8(unicode.received.stdout).unwrap().trim(),
        "こんにちは"
    );

    // OperationTimeout: a fault that only means "receive again", then the output.
    let timeout = play("test_winrs_operation_timeout.yml");
    assert!(!timeout.faults.is_empty());
    assert!(timeout.faults.iter().all(WsmanError::is_operation_timeout));
    assert!(timeout.received.done, "output after the timeouts");

    for name in [
        "test_winrs_environment.yml",
        "test_winrs_noprofile.yml",
        "test_winrs_extra_opts.yml",
        "test_winrs_send.yml",
    ] {
        let run = play(name);
        assert!(
            run.received.done && run.received.exit_code.is_some(),
            "{name}"
        );
        assert!(run.faults.is_empty(), "{name}");
    }
    let opened = play("test_winrs_open_already_opened.yml");
    assert!(opened.shell.is_some());
}

#[test]
fn every_recorded_fault_becomes_one_error_with_its_code() {
    let cases = [
        (
            "test_winrs_bad_cmd_id.yml",
            2_150_858_843,
            "w:InvalidSelectors",
        ),
        ("test_winrs_fail_poll_process.yml", 87, "w:InvalidParameter"),
        (
            "test_winrs_no_cmd_shell.yml",
            2_147_942_402,
            "w:InternalError",
        ),
        (
            "test_winrs_operation_timeout.yml",
            wsman::OPERATION_TIMEOUT,
            "w:TimedOut",
        ),
        (
            "test_psrp_long_running_cmdlet.yml",
            wsman::OPERATION_TIMEOUT,
            "w:TimedOut",
        ),
        ("test_psrp_receive_failure.yml", 2_150_858_843, ""),
        (
            "test_psrp_is_alive_invalid_selectors.yml",
            2_150_858_843,
            "",
        ),
        (
            "test_psrp_is_alive_other_wsman_error.yml",
            2_150_858_767,
            "",
        ),
    ];
    for (name, code, subcode) in cases {
        let run = play(name);
        let fault = run
            .faults
            .first()
            .unwrap_or_else(|| panic!("{name}: no fault"));
        match fault {
            WsmanError::Fault {
                code: Some(c),
                subcode: s,
                message,
            } => {
                assert_eq!(*c, code, "{name}");
                if !subcode.is_empty() {
                    assert_eq!(s, subcode, "{name}");
                }
                assert!(
                    !message.is_empty() && message.len() < 1000,
                    "{name}: {message}"
                );
                let shown = fault.to_string();
                assert!(
                    shown.contains(&code.to_string()) && shown.contains(message.as_str()),
                    "{shown}"
                );
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    // The provider's message is the one shown (not the generic reason).
    let run = play("test_winrs_no_cmd_shell.yml");
    assert!(run.faults[0].to_string().contains("cannot find the file"));
}

#[test]
fn pywinrm_fixtures_read_back_right() {
    let dir = fixtures().join("pywinrm");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    assert_eq!(
        wsman::shell_id(&read("open_shell_response.xml")).unwrap(),
        "11111111-1111-1111-1111-111111111113"
    );
    let command = read("run_cmd_ps_response.xml").replace("%s", "2");
    let id = wsman::command_id(&command).unwrap();
    assert_eq!(id, "11111111-1111-1111-1111-111111111124");
    // PowerShell's error stream, CLIXML, exit 1: one readable message.
    let mut ps = Received::default();
    wsman::receive_response(&read("get_ps_output_response.xml"), &id, &mut ps).unwrap();
    assert_eq!(ps.exit_code, Some(1));
    let messages = wsman::error_messages(&ps.stderr);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].starts_with("Write-Error \"Error\" : Error"),
        "{messages:?}"
    );
    assert!(!messages[0].contains("_x000D_"), "{messages:?}");
    // cmd's output.
    let mut cmd = Received::default();
    wsman::receive_response(
        &read("get_cmd_output_response.xml"),
        "11111111-1111-1111-1111-111111111114",
        &mut cmd,
    )
    .unwrap();
    assert_eq!(cmd.exit_code, Some(0));
    assert!(String::from_utf8_lossy(&cmd.stdout).contains("Windows IP Configuration"));
}

/// The structure of a request: action, resource URI, selector names, option names, and the
/// body's elements (namespace, name, attribute names), in document order.
fn shape(
    request: &str,
) -> (
    String,
    String,
    BTreeSet<String>,
    BTreeSet<String>,
    Vec<String>,
) {
    let doc = roxmltree::Document::parse(request).unwrap();
    let find = |ns: &str, name: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name((ns, name)))
            .and_then(|n| n.text())
            .unwrap_or_default()
            .to_string()
    };
    let names = |name: &str| -> BTreeSet<String> {
        doc.descendants()
            .filter(|n| n.has_tag_name((wsman::NS_WSMAN, name)))
            .filter_map(|n| n.attribute("Name").map(str::to_string))
            .collect()
    };
    let body = doc
        .descendants()
        .find(|n| n.has_tag_name((wsman::NS_SOAP, "Body")))
        .unwrap();
    let mut elements: Vec<String> = body
        .descendants()
        .skip(1)
        .filter(|n| n.is_element())
        .map(|n| {
            // Attribute order means nothing in XML.
            let mut attrs: Vec<&str> = n.attributes().map(|a| a.name()).collect();
            attrs.sort_unstable();
            format!(
                "{}:{}[{}]",
                n.tag_name().namespace().unwrap_or(""),
                n.tag_name().name(),
                attrs.join(",")
            )
        })
        .collect();
    elements.dedup(); // repeated Arguments
    (
        find(wsman::NS_ADDRESSING, "Action"),
        find(wsman::NS_WSMAN, "ResourceURI"),
        names("Selector"),
        names("Option"),
        elements,
    )
}

#[test]
fn every_request_has_the_structure_windows_accepted() {
    let ctx = Context {
        to: "http://192.168.56.11:5985/wsman".into(),
        max_envelope: 153_600,
        operation_timeout: 20,
    };
    let shell = "4283CBDC-3706-415B-88BD-B385F3E51A53";
    let command = "CF84C20A-0A35-43FA-AF78-0B4711DA5F30";
    let ours = [
        wsman::create_shell(&ctx),
        wsman::command(
            &ctx,
            shell,
            "cmd.exe",
            &["/c".into(), "echo".into(), "hi".into()],
            false,
        ),
        wsman::receive(&ctx, shell, command),
        wsman::signal_terminate(&ctx, shell, command),
        wsman::delete_shell(&ctx, shell),
    ];
    let recorded: Vec<String> = recording("test_winrs_standard.yml")
        .into_iter()
        .map(|m| m.request)
        .collect();
    // Every option name Latch sends was sent to, and accepted by, Windows in a recording.
    let mut accepted_options = BTreeSet::new();
    for entry in std::fs::read_dir(fixtures().join("pypsrp")).unwrap() {
        for m in recording(&entry.unwrap().file_name().to_string_lossy())
            .iter()
            .filter(|m| m.http_status == 200)
        {
            accepted_options.extend(shape(&m.request).3);
        }
    }
    for f in ["open_shell_request.xml", "run_cmd_with_args_request.xml"] {
        let text = std::fs::read_to_string(fixtures().join("pywinrm").join(f)).unwrap();
        accepted_options.extend(shape(&text).3);
    }
    // With stdin: the Command (stdin a pipe) and the one Send that carries it and closes it,
    // against the Command and the last Send of the recording where Windows read stdin.
    let sent = recording("test_winrs_send.yml");
    let ours_stdin = [
        wsman::command(&ctx, shell, "powershell.exe", &["-".into()], true),
        wsman::send(&ctx, shell, command, b"secret line\r\n"),
    ];
    let theirs_stdin = [sent[1].request.clone(), sent[3].request.clone()];
    assert!(theirs_stdin[1].contains("End=\"True\""));
    let ours: Vec<String> = ours.into_iter().chain(ours_stdin).collect();
    let recorded: Vec<String> = recorded.into_iter().chain(theirs_stdin).collect();
    for (ours, theirs) in ours.iter().zip(&recorded) {
        let (a, b) = (shape(ours), shape(theirs));
        assert_eq!(a.0, b.0, "action");
        assert_eq!(a.1, b.1, "{}: resource URI", a.0);
        assert_eq!(a.2, b.2, "{}: selectors", a.0);
        assert_eq!(a.4, b.4, "{}: body", a.0);
        assert!(
            a.3.is_subset(&accepted_options),
            "{}: options {:?}",
            a.0,
            a.3
        );
        // And it is well-formed SOAP 1.2 with a MessageID of its own.
        assert!(ours.contains("<wsa:MessageID>uuid:"));
    }
}

/// Answers with the recorded responses, in order, and keeps what Latch sent.
struct Replay {
    answers: std::sync::Mutex<std::collections::VecDeque<String>>,
    sent: std::sync::Mutex<Vec<String>>,
}

impl Replay {
    fn of(name: &str) -> Replay {
        Replay {
            answers: std::sync::Mutex::new(
                recording(name).into_iter().map(|m| m.response).collect(),
            ),
            sent: std::sync::Mutex::new(Vec::new()),
        }
    }
    fn actions(&self) -> Vec<String> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|r| action(r))
            .collect()
    }
}

impl latch::caps::winrm::shell::Exchange for Replay {
    fn send<'a>(
        &'a mut self,
        envelope: String,
    ) -> latch::caps::BoxFuture<'a, Result<String, latch::caps::winrm::shell::ExchangeError>> {
        self.sent.lock().unwrap().push(envelope);
        let answer = self.answers.lock().unwrap().pop_front();
        Box::pin(async move {
            answer.ok_or_else(|| {
                latch::caps::winrm::shell::ExchangeError::Other("no more answers".into())
            })
        })
    }
}

fn run_replay(
    name: &str,
) -> (
    Replay,
    Result<Received, latch::caps::winrm::shell::ShellError>,
) {
    let mut replay = Replay::of(name);
    let ctx = Context {
        to: "http://192.168.56.11:5985/wsman".into(),
        max_envelope: 153_600,
        operation_timeout: 20,
    };
    let result = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(latch::caps::winrm::shell::run(
            &mut replay,
            &ctx,
            latch::caps::winrm::shell::Run {
                program: "cmd.exe",
                arguments: &["/c".into(), "echo".into(), "hi".into()],
                stdin: None,
            },
            std::time::Duration::from_secs(60),
        ));
    (replay, result)
}

/// The whole protocol, against Windows' recorded answers: Latch sends the same sequence of
/// actions Windows was sent, carries the shell and command ids it was given, receives again
/// after OperationTimeout, and always terminates the command and deletes the shell.
#[test]
fn a_command_run_replays_against_recorded_windows_answers() {
    let (replay, result) = run_replay("test_winrs_standard.yml");
    let received = result.unwrap();
    assert_eq!(received.stdout, b"hi\r\n");
    assert_eq!(received.exit_code, Some(0));
    let recorded: Vec<String> = recording("test_winrs_standard.yml")
        .iter()
        .map(|m| action(&m.request))
        .collect();
    assert_eq!(replay.actions(), recorded);
    let sent = replay.sent.lock().unwrap().clone();
    assert!(
        sent[1..]
            .iter()
            .all(|r| r.contains("4283CBDC-3706-415B-88BD-B385F3E51A53"))
    );
    assert!(sent[2].contains("CF84C20A-0A35-43FA-AF78-0B4711DA5F30"));

    // OperationTimeout faults: receive again, then the output.
    let (replay, result) = run_replay("test_winrs_operation_timeout.yml");
    assert!(result.unwrap().done);
    let actions = replay.actions();
    assert_eq!(
        actions.iter().filter(|a| a.ends_with("/Receive")).count(),
        4,
        "{actions:?}"
    );
    assert!(actions.last().unwrap().ends_with("/Delete"));

    // A fault that is not a timeout ends the run with it — and the shell is still deleted.
    let (replay, result) = run_replay("test_winrs_bad_cmd_id.yml");
    match result {
        Err(latch::caps::winrm::shell::ShellError::Wsman(WsmanError::Fault { code, .. })) => {
            assert_eq!(code, Some(2_150_858_843))
        }
        other => panic!("{other:?}"),
    }
    assert!(
        replay.actions().last().unwrap().ends_with("/Delete"),
        "{:?}",
        replay.actions()
    );
}

/// A command with stdin, against Windows' recorded answers (`powershell.exe -` read two lines
/// of stdin there): Latch sends Create, Command, one Send that closes stdin, Receive until
/// done, Signal, Delete — the recording's actions with its two Sends as one — and reads back
/// what Windows answered.
#[test]
fn a_command_with_stdin_replays_against_recorded_windows_answers() {
    let recorded = recording("test_winrs_send.yml");
    // The recording sent stdin in two Sends; Latch sends it in one: drop the first's answer.
    let mut replay = Replay::of("test_winrs_send.yml");
    replay.answers.lock().unwrap().remove(2);
    let ctx = Context {
        to: "http://192.168.56.11:5985/wsman".into(),
        max_envelope: 153_600,
        operation_timeout: 20,
    };
    let stdin = b"Write-Host \"output 1\";\r\nWrite-Host \"output 2\";\r\n";
    let received = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(latch::caps::winrm::shell::run(
            &mut replay,
            &ctx,
            latch::caps::winrm::shell::Run {
                program: "powershell.exe",
                arguments: &["-".into()],
                stdin: Some(stdin),
            },
            std::time::Duration::from_secs(60),
        ))
        .unwrap();
    assert_eq!(received.stdout, b"output 1\noutput 2\n");
    let mut expected: Vec<String> = recorded.iter().map(|m| action(&m.request)).collect();
    expected.remove(2);
    assert_eq!(replay.actions(), expected);
    let sent = replay.sent.lock().unwrap().clone();
    // The Command made stdin a pipe; the Send carried all of it and closed it.
    assert!(
        sent[1].contains("WINRS_CONSOLEMODE_STDIN\">FALSE"),
        "{}",
        sent[1]
    );
    assert!(sent[2].contains("End=\"true\""), "{}", sent[2]);
    assert!(sent[2].contains("B0973E54-434E-4D99-B4BE-ADE584CE3BFB"));
    use base64::Engine;
    assert!(sent[2].contains(&base64::engine::general_purpose::STANDARD.encode(stdin)));
}
