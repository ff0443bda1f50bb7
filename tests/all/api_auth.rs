//! Who may call the API, and how: TLS beyond loopback (checked by `curl` and by the CLI's
//! reqwest client, certificate reloaded on change), tokens with a scope, an expiry and a
//! revocation — each refusal a 401 or 403 that changes nothing.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::api::http;
use crate::fleet::{Env, Serve, latch, latch_env};

/// A test CA and a certificate for `localhost` / 127.0.0.1 signed by it, in `dir`
/// (`ca.pem`, `api.pem`, `api-key.pem`), made with the real `openssl` CLI; `serial` tells
/// certificates apart.
fn certificates(dir: &Path, serial: u32) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    if !dir.join("ca.pem").exists() {
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=latch test CA",
        ]);
    }
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "new-key.pem",
        "-out",
        "api.csr",
        "-subj",
        &format!("/CN=latch api {serial}"),
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "api.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-out",
        "new.pem",
        "-days",
        "1",
        "-set_serial",
        &serial.to_string(),
        "-extfile",
        "ext.cnf",
    ]);
    std::fs::set_permissions(
        dir.join("new-key.pem"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    // Key first, then certificate, each renamed into place (as a certificate manager does).
    std::fs::rename(dir.join("new-key.pem"), dir.join("api-key.pem")).unwrap();
    std::fs::rename(dir.join("new.pem"), dir.join("api.pem")).unwrap();
}

/// `curl` with the test CA: (exit code, stdout, stderr).
fn curl(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(dir.join("ca.pem"))
        .args(args)
        .output()
        .expect("curl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn token(config: &Path, name: &str, scope: &[&str]) -> String {
    let mut args = vec![
        "token",
        "create",
        "--config",
        config.to_str().unwrap(),
        name,
    ];
    args.extend_from_slice(scope);
    let out = latch(&args);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn set_api(config: &Path, listen: &str, api: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let text = text.replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"{listen}\"\n{api}"),
    );
    std::fs::write(config, text).unwrap();
}

#[test]
fn the_api_speaks_tls_beyond_loopback_and_reloads_its_certificate() {
    let env = Env::new();
    let data = env.tmp.path();
    let tls = data.join("tls");
    std::fs::create_dir(&tls).unwrap();
    certificates(&tls, 1);
    let cfg = env.config.to_str().unwrap();

    // Beyond loopback without TLS: refused, unless insecure_http says so — then warned.
    set_api(&env.config, "0.0.0.0:0", "");
    let out = latch(&["check", "--config", cfg]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("is not a loopback address"),
        "{err}"
    );
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replace(
            "listen = \"0.0.0.0:0\"\n",
            "listen = \"0.0.0.0:0\"\n[api]\ninsecure_http = true\n",
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_latch"))
        .args(["serve", "--config", cfg])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut said = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !said.contains("WARNING: ") && std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(1)) {
            said.push_str(&line);
            said.push('\n');
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        said.contains("WARNING") && said.contains("PLAIN HTTP"),
        "{said}"
    );

    // TLS on loopback (any address works the same way).
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replace(
            "listen = \"0.0.0.0:0\"\n[api]\ninsecure_http = true\n",
            "listen = \"127.0.0.1:0\"\n[api]\ntls_cert = \"tls/api.pem\"\ntls_key = \"tls/api-key.pem\"\n",
        ),
    )
    .unwrap();
    let admin = token(
        &env.config,
        "admin",
        &["--all-integrations", "--read-audit"],
    );
    let serve = Serve::start(&env);
    let port = serve.port();
    let url = format!("https://localhost:{port}");

    // curl, verifying against the test CA: the document, and an authenticated route.
    let (code, body, err) = curl(&tls, &[&format!("{url}/v1/openapi.json")]);
    assert_eq!(code, 0, "{err}");
    assert!(body.contains("\"openapi\""), "{body}");
    let (code, body, err) = curl(
        &tls,
        &[
            "-H",
            &format!("Authorization: Bearer {admin}"),
            &format!("{url}/v1/integrations"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(body.contains("\"linux\""), "{body}");
    // Without the CA, curl refuses the certificate (exit 60); plain HTTP gets no answer.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", &format!("{url}/v1/openapi.json")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(60), "{out:?}");
    assert_eq!(
        plain_http_answer(port),
        "",
        "plain HTTP to the TLS port got an answer"
    );
    // The CLI's client (reqwest on rustls), verifying against LATCH_CA_FILE.
    let ca = tls.join("ca.pem");
    let out = latch_env(
        &["grants", "--url", &url, "--json"],
        &[
            ("LATCH_TOKEN", &admin),
            ("LATCH_CA_FILE", ca.to_str().unwrap()),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let out = latch_env(&["grants", "--url", &url], &[("LATCH_TOKEN", &admin)]);
    assert!(
        !out.status.success(),
        "the system's roots do not know the test CA: {out:?}"
    );

    // A new certificate: the next handshake gets it, without a restart.
    let serial = |tls: &Path| {
        let (_, _, err) = curl(
            tls,
            &["-v", "-o", "/dev/null", &format!("{url}/v1/openapi.json")],
        );
        err.lines()
            .find_map(|l| l.split_once("subject: ").map(|(_, s)| s.to_string()))
            .unwrap_or(err)
    };
    assert!(serial(&tls).contains("latch api 1"), "{}", serial(&tls));
    certificates(&tls, 2);
    assert!(
        crate::fleet::eventually(15, || serial(&tls).contains("latch api 2")),
        "{}",
        serial(&tls)
    );
    // A broken pair is not taken: the last good one stays.
    std::fs::write(tls.join("api.pem"), "not a certificate").unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(serial(&tls).contains("latch api 2"), "{}", serial(&tls));
    drop(serve);

    // A key file others can read stops the start.
    certificates(&tls, 3);
    std::fs::set_permissions(
        tls.join("api-key.pem"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let out = latch(&["serve", "--config", cfg]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("chmod 600"), "{err}");
}

#[test]
fn tokens_act_only_within_their_scope_and_expire_or_are_revoked() {
    let _q = crate::e2e::quiet();
    let env = Env::new();
    // A second integration beside `linux`, on the same servers.
    let text = std::fs::read_to_string(&env.config).unwrap();
    let second = text[text.find("[[integration]]").unwrap()..]
        .replace("name = \"linux\"", "name = \"linux2\"");
    std::fs::write(&env.config, format!("{text}\n{second}")).unwrap();
    let cfg = env.config.to_str().unwrap();
    let narrow = token(&env.config, "narrow", &["--integration", "linux"]);
    let other = token(&env.config, "other", &["--integration", "linux"]);
    let ops = token(
        &env.config,
        "ops",
        &["--all-integrations", "--revoke-others", "--read-audit"],
    );
    let short = token(&env.config, "short", &["--all-integrations", "--for", "1s"]);
    let gone = token(&env.config, "gone", &["--all-integrations"]);
    // A scope names real integrations, and something at all.
    for bad in [
        &["--integration", "nope"][..],
        &[][..],
        &["--all-integrations", "--for", "400d"][..],
    ] {
        let mut args = vec!["token", "create", "--config", cfg, "bad"];
        args.extend_from_slice(bad);
        assert!(!latch(&args).status.success(), "{bad:?}");
    }
    let serve = Serve::start(&env);
    let port = serve.port();
    let call = |t: &str, m: &str, p: &str, b: Option<&str>| http(port, m, p, Some(t), b);
    let before = env.fleet.all_accepted_logins();

    // Out of scope: another integration, the audit log, the metrics.
    let grant = |integration: &str, resource: &str| {
        json!({"integration": integration, "resource": resource,
            "user": "scoped@corp.example", "duration": "5m"})
        .to_string()
    };
    let (status, body) = call(
        &narrow,
        "POST",
        "/v1/grants",
        Some(&grant("linux2", "web-1")),
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("may not act on integration \\\"linux2\\\""),
        "{body}"
    );
    assert_eq!(
        call(
            &narrow,
            "POST",
            "/v1/grants/plan",
            Some(&grant("linux2", "web-1"))
        )
        .0,
        403
    );
    assert_eq!(
        call(&narrow, "GET", "/v1/integrations/linux2/resources", None).0,
        403
    );
    let (status, body) = call(&narrow, "GET", "/v1/audit", None);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("read-audit"), "{body}");
    assert_eq!(call(&narrow, "GET", "/metrics", None).0, 403);
    let listed: Value =
        serde_json::from_str(&call(&narrow, "GET", "/v1/integrations", None).1).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["linux"]);
    assert_eq!(
        env.fleet.all_accepted_logins(),
        before,
        "a refusal reached a server"
    );

    // In scope: a grant; another token of the same scope may not revoke or extend it, one
    // with revoke-others may; the one that asked may.
    let (status, body) = call(
        &narrow,
        "POST",
        "/v1/grants",
        Some(&grant("linux", "web-1")),
    );
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["grant_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = call(&other, "POST", &format!("/v1/grants/{id}/revoke"), None);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("only the grants it asked for"), "{body}");
    let (status, _) = call(
        &other,
        "POST",
        &format!("/v1/grants/{id}/extend"),
        Some(r#"{"duration":"6m"}"#),
    );
    assert_eq!(status, 403);
    let grants: Value = serde_json::from_str(&call(&narrow, "GET", "/v1/grants", None).1).unwrap();
    assert_eq!(grants[0]["state"], "active");
    let (status, body) = call(
        &narrow,
        "POST",
        &format!("/v1/grants/{id}/extend"),
        Some(r#"{"duration":"6m"}"#),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(&ops, "POST", &format!("/v1/grants/{id}/revoke"), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(call(&ops, "GET", "/v1/audit?n=5", None).0, 200);
    // The audit names each token by its name, never the token.
    let audit = call(&ops, "GET", "/v1/audit?n=100", None).1;
    assert!(
        audit.contains("token:narrow") && audit.contains("token:ops"),
        "{audit}"
    );
    for t in [&narrow, &other, &ops, &short, &gone] {
        assert!(!audit.contains(t.as_str()));
    }

    // Expired, revoked: 401 with the reason.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (status, body) = call(&short, "GET", "/v1/grants", None);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("expired"), "{body}");
    assert_eq!(call(&gone, "GET", "/v1/grants", None).0, 200);
    let out = latch(&["token", "revoke", "--config", cfg, "gone"]);
    assert!(out.status.success(), "{out:?}");
    let (status, body) = call(&gone, "GET", "/v1/grants", None);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("revoked"), "{body}");
    // The list says who may do what, and never a token.
    let out = latch(&["token", "list", "--config", cfg]);
    let list = String::from_utf8_lossy(&out.stdout);
    for (name, status) in [
        ("narrow", "active"),
        ("short", "expired"),
        ("gone", "revoked"),
    ] {
        let line = list
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{list}"));
        assert!(line.contains(status), "{line}");
    }
    assert!(
        list.contains("integrations=linux") && list.contains("revoke-others"),
        "{list}"
    );
    assert!(!list.contains("latch_"), "{list}");
}

/// What a plain-HTTP request to `port` gets back: the TLS listener may close the connection
/// while the request is still being written, so neither a failed write nor a failed read is
/// an error here; only an HTTP answer would be.
fn plain_http_answer(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let _ = s.write_all(
        b"GET /v1/openapi.json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    if text.starts_with("HTTP/") {
        text
    } else {
        String::new()
    }
}
