//! The HTTP API of `latch serve`, spoken to over a plain TCP socket.

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::{Value, json};

use crate::fleet::{Env, Serve, eventually, latch};

/// One HTTP/1.1 request; returns the status and the body.
pub(crate) fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to latch serve");
    let body = body.unwrap_or("");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// An env whose `latch serve` listens on a free port, with a token.
fn serving() -> (Env, Serve, u16, String) {
    serving_with(None)
}

/// [`serving`], with `[access] policy` = `policy` if given.
fn serving_with(policy: Option<&str>) -> (Env, Serve, u16, String) {
    let env = Env::new();
    if let Some(policy) = policy {
        std::fs::write(env.tmp.path().join("access.cedar"), policy).unwrap();
        let mut text = std::fs::read_to_string(&env.config).unwrap();
        text.push_str("\n[access]\npolicy = \"access.cedar\"\n");
        std::fs::write(&env.config, text).unwrap();
    }
    let out = latch(&[
        "token",
        "create",
        "--config",
        env.config.to_str().unwrap(),
        "tests",
        "--all-integrations",
        "--revoke-others",
        "--read-audit",
    ]);
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(token.starts_with("latch_"));
    let serve = Serve::start(&env);
    let port = serve.port();
    (env, serve, port, token)
}

#[test]
fn bad_tokens_and_bad_input_get_clear_4xx_and_change_nothing() {
    let _q = crate::e2e::quiet();
    let (env, _serve, port, token) = serving();
    let before = env.fleet.all_accepted_logins();

    assert_eq!(http(port, "GET", "/v1/openapi.json", None, None).0, 200);
    let (status, body) = http(port, "GET", "/v1/grants", None, None);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("bearer token"), "{body}");
    let garbled = format!("{}x", &token[..token.len() - 1]);
    assert_eq!(http(port, "GET", "/v1/grants", Some(&garbled), None).0, 401);
    assert_eq!(http(port, "GET", "/v1/grants", Some("latch_"), None).0, 401);
    assert_eq!(http(port, "GET", "/v1/grants", Some(&token), None).0, 200);

    let grant = |body: &str| http(port, "POST", "/v1/grants", Some(&token), Some(body));
    let good = json!({"integration": "linux", "resource": "web-1", "user": "api-x@corp.example", "duration": "5m"});
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b.to_string()
    };
    let cases: Vec<(String, u16, &str)> = vec![
        ("{not json".into(), 400, "invalid grant request"),
        (
            json!({"integration": "linux"}).to_string(),
            400,
            "missing field",
        ),
        (with("extra", json!(1)), 400, "unknown field"),
        (with("integration", json!("nope")), 404, "no integration"),
        (with("duration", json!(0)), 400, "duration"),
        (with("duration", json!(-60)), 400, "duration"),
        (with("duration", json!("soon")), 400, "duration"),
        (with("duration", json!("9h")), 400, "maximum"),
        (
            with("public_key", json!("ssh-ed25519 garbage")),
            400,
            "public_key",
        ),
        (
            with("user", json!("$(id)@corp.example")),
            400,
            "invalid-request",
        ),
        (with("resource", json!("web-9;id")), 400, "invalid-request"),
        (
            with("permission", json!("-oProxyCommand=x")),
            400,
            "invalid-request",
        ),
        ("x".repeat(100 * 1024), 413, ""),
    ];
    for (body, status, expect) in cases {
        let (got, text) = grant(&body);
        assert_eq!(got, status, "{}: {text}", &body[..body.len().min(80)]);
        if status != 413 {
            let v: Value =
                serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON error body: {text}"));
            assert!(v["error"].as_str().unwrap().contains(expect), "{text}");
        }
    }
    assert_eq!(
        http(port, "GET", "/v1/grants/not-an-id", Some(&token), None).0,
        400
    );
    assert_eq!(
        http(
            port,
            "GET",
            "/v1/grants/g-000000000000000000000000",
            Some(&token),
            None
        )
        .0,
        404
    );
    assert_eq!(
        http(
            port,
            "POST",
            "/v1/grants/g-000000000000000000000000/revoke",
            Some(&token),
            None
        )
        .0,
        404
    );
    assert_eq!(
        http(port, "GET", "/v1/grants?state=bogus", Some(&token), None).0,
        400
    );

    let (_, list) = http(port, "GET", "/v1/grants", Some(&token), None);
    assert_eq!(list.trim(), "[]", "no grant was recorded");
    assert_eq!(
        env.fleet.all_accepted_logins(),
        before,
        "nothing reached any server"
    );
}

#[test]
fn grant_login_and_revoke_through_the_api() {
    let _g = crate::e2e::shared();
    let (env, _serve, port, token) = serving();
    let (status, body) = http(port, "GET", "/v1/integrations", Some(&token), None);
    assert_eq!(status, 200);
    assert!(body.contains("\"linux\""), "{body}");

    let req = json!({"integration": "linux", "resource": "web-2", "permission": "adm",
                     "user": "api-mia@corp.example", "duration": 600});
    let (status, body) = http(
        port,
        "POST",
        "/v1/grants",
        Some(&token),
        Some(&req.to_string()),
    );
    assert_eq!(status, 201, "{body}");
    let granted: Value = serde_json::from_str(&body).unwrap();
    for field in [
        "grant_id",
        "username",
        "host",
        "port",
        "certificate",
        "expires_at",
        "private_key",
    ] {
        assert!(!granted[field].is_null(), "{field} missing: {body}");
    }
    let id = granted["grant_id"].as_str().unwrap();
    let dir = env.tmp.path();
    std::fs::write(dir.join("k"), granted["private_key"].as_str().unwrap()).unwrap();
    std::fs::set_permissions(
        dir.join("k"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(
        dir.join("k-cert.pub"),
        granted["certificate"].as_str().unwrap(),
    )
    .unwrap();
    let mut as_json = granted.clone();
    as_json["private_key_file"] = json!(dir.join("k").display().to_string());
    as_json["certificate_file"] = json!(dir.join("k-cert.pub").display().to_string());
    let out = env.login(&as_json, "id -nG");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("adm"),
        "{out:?}"
    );

    let (status, body) = http(port, "GET", &format!("/v1/grants/{id}"), Some(&token), None);
    assert_eq!(status, 200);
    assert!(body.contains("\"active\""), "{body}");
    let (status, body) = http(
        port,
        "POST",
        &format!("/v1/grants/{id}/revoke"),
        Some(&token),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"revoked\""), "{body}");
    assert!(!env.login(&as_json, "true").status.success());

    let (_, audit) = http(port, "GET", "/v1/audit?n=1000", Some(&token), None);
    let audit: Vec<Value> = serde_json::from_str(&audit).unwrap();
    let of_grant: Vec<&Value> = audit.iter().filter(|r| r["grant_id"] == id).collect();
    let requested = of_grant
        .iter()
        .find(|r| r["event"] == "grant.requested")
        .expect("grant.requested is audited");
    // The token is the actor of everything it did; the requester is only the subject.
    assert_eq!(requested["actor"], "token:tests", "{requested}");
    assert_eq!(
        requested["detail"]["requester"], "api-mia@corp.example",
        "{requested}"
    );
    assert!(of_grant.len() > 3, "{of_grant:?}");
    for r in &of_grant {
        assert_eq!(r["actor"], "token:tests", "{r}");
    }
    let (status, metrics) = http(port, "GET", "/metrics", Some(&token), None);
    assert_eq!(status, 200);
    assert!(
        metrics.contains("latch_grants{state=\"revoked\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("latch_capability_calls_total{outcome=\"ok\"}"),
        "{metrics}"
    );
}

/// The OpenAPI document is generated from the handlers (utoipa), and the router is built
/// from the same handlers. This checks the result: the document lists exactly the served
/// routes, each error status a grant can end with is documented, and every documented
/// route, called on a running connector, answers one of the statuses documented for it.
#[test]
fn every_served_route_and_status_is_in_the_openapi_document() {
    let doc = serde_json::to_value(latch::api::openapi_document()).unwrap();
    let mut ops = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item[method].is_object() {
                ops.insert((method.to_string(), path.clone()));
            }
        }
    }
    let expected: std::collections::BTreeSet<(String, String)> = [
        ("get", "/v1/integrations"),
        ("get", "/v1/integrations/{name}/resources"),
        ("post", "/v1/grants"),
        ("get", "/v1/grants"),
        ("post", "/v1/grants/plan"),
        ("get", "/v1/grants/{id}"),
        ("post", "/v1/grants/{id}/revoke"),
        ("post", "/v1/grants/{id}/extend"),
        ("get", "/v1/audit"),
        ("get", "/metrics"),
        ("post", "/v1/requests"),
        ("get", "/v1/requests"),
        ("get", "/v1/requests/{id}"),
        ("post", "/v1/requests/{id}/approve"),
        ("post", "/v1/requests/{id}/deny"),
        ("post", "/v1/requests/{id}/cancel"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(ops, expected);
    let statuses = |method: &str, path: &str| -> Vec<u16> {
        doc["paths"][path][method]["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.parse().unwrap())
            .collect()
    };
    for code in [201, 400, 401, 403, 404, 409, 413, 500, 502, 504] {
        assert!(statuses("post", "/v1/grants").contains(&code), "{code}");
    }
    assert!(doc["components"]["schemas"]["Granted"]["properties"]["password"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    let _g = crate::e2e::shared();
    let (_env, _serve, port, token) = serving();
    let (status, served) = http(port, "GET", "/v1/openapi.json", None, None);
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&served).unwrap(), doc);
    for (method, path) in &ops {
        let url = path
            .replace("{name}", "linux")
            .replace("{id}", "g-000000000000000000000000");
        let body = (method == "post").then_some("{}");
        let (status, text) = http(port, &method.to_uppercase(), &url, Some(&token), body);
        assert!(
            statuses(method, path).contains(&status),
            "{method} {url} answered {status}, not documented: {text}"
        );
        assert!(!text.contains("no such route"), "{method} {url}");
    }
}

/// `latch … --url` with the token in `LATCH_TOKEN`; parses `--json` output.
fn remote(port: u16, token: &str, args: &[&str]) -> Result<Value, String> {
    let url = format!("http://127.0.0.1:{port}");
    let mut all = args.to_vec();
    all.extend(["--url", &url]);
    let out = crate::fleet::latch_env(&all, &[("LATCH_TOKEN", token)]);
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&out.stdout).into())))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn extend_through_the_cli_url_mode_outlives_the_first_expiry() {
    let _g = crate::e2e::shared();
    let (env, _serve, port, token) = serving();
    let out = env.tmp.path().join("out");
    let out_s = out.to_str().unwrap();
    let granted = remote(
        port,
        &token,
        &[
            "grant",
            "--integration",
            "linux",
            "--resource",
            "web-1",
            "--user",
            "api-ext@corp.example",
            "--for",
            "8s",
            "--out",
            out_s,
            "--json",
        ],
    )
    .expect("grant over --url");
    let id = granted["grant_id"].as_str().unwrap().to_string();
    let first_expiry = granted["expires_at"].as_u64().unwrap();
    assert!(env.login(&granted, "true").status.success());

    // Bad extensions change nothing.
    for (args, why) in [
        (vec!["--for", "1s"], "must end later"),
        (vec!["--for", "9h"], "maximum"),
        (vec!["--for", "0s"], "duration"),
        (vec!["--for", "soon"], "--for"),
    ] {
        let mut a = vec!["extend", id.as_str(), "--json"];
        a.extend(args);
        let err = remote(port, &token, &a).expect_err("a bad extension");
        assert!(err.contains(why), "{a:?}: {err}");
    }
    let bad_token = remote(port, "latch_wrong", &["grants", "--json"]).unwrap_err();
    assert!(bad_token.contains("401"), "{bad_token}");

    let extended = remote(
        port,
        &token,
        &["extend", &id, "--for", "10m", "--out", out_s, "--json"],
    )
    .expect("extend over --url");
    assert!(extended["expires_at"].as_u64().unwrap() >= first_expiry + 500);
    assert!(
        extended["private_key"].is_null(),
        "no new key pair on extend"
    );
    let mut login = granted.clone();
    login["certificate_file"] = extended["certificate_file"].clone();

    // Past the first expiry (plus the scheduler's tick and slack) access still works with
    // the re-issued certificate, and the ledger says active.
    while crate::fleet::now() < first_expiry + 4 {
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let o = env.login(&login, "true");
    assert!(
        o.status.success(),
        "the extended grant still logs in: {o:?}"
    );
    let active = remote(port, &token, &["grants", "--state", "active", "--json"]).unwrap();
    assert!(
        active
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["grant_id"] == id.as_str()),
        "{active}"
    );
    let table = remote(port, &token, &["grants"]).unwrap();
    assert!(table.as_str().unwrap().contains(&id), "{table}");

    let revoked = remote(port, &token, &["revoke", &id, "--json"]).expect("revoke over --url");
    assert_eq!(revoked["state"], "revoked");
    assert!(!env.login(&login, "true").status.success());
    let err = remote(port, &token, &["extend", &id, "--for", "10m"]).unwrap_err();
    assert!(err.contains("409") && err.contains("revoked"), "{err}");

    let audit = remote(port, &token, &["audit", "tail", "-n", "1000", "--json"]).unwrap();
    let text = audit.to_string();
    assert!(text.contains("grant.extended"), "{text}");
}

#[test]
fn revoked_accounts_are_deleted_after_user_cleanup_days() {
    let _g = crate::e2e::shared();
    let env = crate::fleet::Env::new();
    let config = std::fs::read_to_string(&env.config).unwrap();
    let old = "user_groups = [\"Default\", \"adm\"]";
    assert!(config.contains(old));
    std::fs::write(
        &env.config,
        config.replace(old, &format!("{old}\nuser_cleanup_days = 0")),
    )
    .unwrap();
    let granted = env.grant("web-3", "api-gone@corp.example", &[]).unwrap();
    let user = granted["username"].as_str().unwrap().to_string();
    let id = granted["grant_id"].as_str().unwrap();
    let again = env
        .grant("web-3", "api-gone@corp.example", &[])
        .unwrap_err();
    assert!(again.contains("already has grant"), "{again}");
    let exists = || {
        env.fleet
            .admin(3, &format!("getent passwd {user}"))
            .status
            .success()
    };
    assert!(exists());
    // Revoked with nobody serving: its cleanup is due at once (0 days) but waits for the
    // scheduler; meanwhile the same person is granted the same account again.
    assert!(env.revoke(id).status.success());
    let second = env.grant("web-3", "api-gone@corp.example", &[]).unwrap();
    assert_eq!(second["username"].as_str().unwrap(), user);
    let _serve = Serve::start(&env);
    let audit = || {
        let out = latch(&[
            "audit",
            "tail",
            "-n",
            "1000",
            "--json",
            "--config",
            env.config.to_str().unwrap(),
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        eventually(20, || audit().contains("\"skipped\"")),
        "{}",
        audit()
    );
    assert!(exists(), "an account in use by a live grant is kept");
    assert!(env.login(&second, "true").status.success());
    assert!(
        env.revoke(second["grant_id"].as_str().unwrap())
            .status
            .success()
    );
    assert!(
        eventually(20, || !exists()),
        "the scheduler deleted the account of the revoked grant"
    );
    // The account is gone from the server a moment before the scheduler records the
    // cleanup (it records when the guest's call returns): wait for the ledger too.
    let grants = || -> Value {
        let out = latch(&["grants", "--config", env.config.to_str().unwrap(), "--json"]);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let all_cleaned = || {
        grants()
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["cleaned_up_at"].is_u64())
    };
    assert!(eventually(20, all_cleaned), "{}", grants());
    let out = latch(&["audit", "verify", "--config", env.config.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
}

/// Each type of error has its own status, decided by the error's type: a request the guest
/// refuses with `denied` after it ran commands is 403 (it was 502), revoking a grant that is
/// still being granted is 409 (it was 502), a server that cannot be reached is 502.
#[test]
fn each_error_type_answers_its_own_status() {
    let _g = crate::e2e::shared();
    let (env, _serve, port, token) = serving();
    let post = |path: &str, body: Option<Value>| {
        let body = body.map(|b| b.to_string());
        http(port, "POST", path, Some(&token), body.as_deref())
    };
    let grant = |resource: &str, user: &str, username: Option<&str>| {
        let mut req = json!({"integration": "linux", "resource": resource,
                             "user": user, "duration": 600});
        if let Some(u) = username {
            req["username"] = json!(u);
        }
        post("/v1/grants", Some(req))
    };

    // 403: the account exists and is not Latch's (the fleet's service account). The guest
    // read the server before it refused, so this is the guest's `denied`, not the policy's.
    let (status, body) = grant("web-3", "mallory@corp.example", Some("apono"));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not created by Latch"), "{body}");

    // 502: the server cannot be reached.
    let (status, body) = grant("web-down", "status-ua@corp.example", None);
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("unreachable"), "{body}");

    // 409: revoking a grant that is still being granted (a row as a crashed or concurrent
    // grant leaves it), and a second live grant for the same person on the same server.
    let ledger = latch::ledger::Ledger::open(env.tmp.path()).unwrap();
    let mut pending = crate::ledger::record();
    pending.resource_id = "web-3".into();
    pending.email = "status-pending@corp.example".into();
    pending.created_at = crate::fleet::now();
    pending.expires_at = pending.created_at + 600;
    ledger
        .create(&pending, latch::ledger::Event::default())
        .unwrap();
    let (status, body) = post(&format!("/v1/grants/{}/revoke", pending.grant_id), None);
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("still being granted"), "{body}");
    let (status, body) = grant("web-3", "status-pending@corp.example", None);
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("already has grant"), "{body}");

    // 404 and 400 for ids: unknown, and malformed.
    let (status, _) = post(
        "/v1/grants/g-000000000000000000000000/extend",
        Some(json!({"duration": 60})),
    );
    assert_eq!(status, 404);
    let (status, _) = post("/v1/grants/g-nope/revoke", None);
    assert_eq!(status, 400);
}

/// `POST /v1/grants/plan`: what the grant would do, from the server's real state; nothing
/// is granted, and the plan is audited under the token.
#[test]
fn a_plan_through_the_api_changes_nothing() {
    let _g = crate::e2e::shared();
    let (env, _serve, port, token) = serving();
    let req = json!({"integration": "linux", "resource": "web-1", "permission": "adm",
                     "user": "api-plan@corp.example", "duration": 600});
    let (status, body) = http(
        port,
        "POST",
        "/v1/grants/plan",
        Some(&token),
        Some(&req.to_string()),
    );
    assert_eq!(status, 200, "{body}");
    let plan: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(plan["outcome"], "would grant", "{plan}");
    let changes = plan["changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c.as_str().unwrap().contains("useradd")
                && c.as_str().unwrap().ends_with("api-plan")),
        "{changes:?}"
    );
    assert!(
        body.find("private_key").is_none(),
        "a plan hands out no credential"
    );
    let (_, grants) = http(port, "GET", "/v1/grants", Some(&token), None);
    assert!(!grants.contains("api-plan@corp.example"), "{grants}");
    assert_eq!(
        env.fleet.admin(1, "getent passwd api-plan").status.code(),
        Some(2)
    );
    let (_, audit) = http(port, "GET", "/v1/audit?n=1000", Some(&token), None);
    let audit: Vec<Value> = serde_json::from_str(&audit).unwrap();
    let requested = audit
        .iter()
        .find(|r| {
            r["event"] == "plan.requested" && r["detail"]["requester"] == "api-plan@corp.example"
        })
        .expect("the plan is audited");
    assert_eq!(requested["actor"], "token:tests");
}

/// Schemathesis (a third-party OpenAPI fuzzer) against a served API on the real fleet: every
/// check it has, its boundary and fuzzing phases, a fixed seed. Half of the generated
/// integration names, resources and grant ids are real ones, so requests get past the 404s
/// into the guest and the ledger; the resource is the server nothing listens on, so no
/// fuzzed grant changes a real server. Afterwards no grant is left half-done and the audit
/// chain still verifies.
#[test]
fn schemathesis_finds_no_failure_in_the_served_api() {
    let _g = crate::e2e::shared();
    // A policy that lets the token ask for anything and decide anything (but its own
    // requests, which Latch refuses whatever the policy): /v1/requests is fuzzed past its
    // 404s, and no fuzzed request is ever granted (each waits for another's approval).
    let (env, _serve, port, token) = serving_with(Some(
        "@id(\"fuzz\")\n@approvals(\"1\")\npermit(principal, action == Action::\"request\", resource);\n\
         @id(\"fuzz-decide\")\npermit(principal, action == Action::\"approve\", resource);\n",
    ));
    let req = json!({"integration": "linux", "resource": "web-1", "user": "st-fuzz@corp.example",
                     "duration": 900});
    let (status, body) = http(
        port,
        "POST",
        "/v1/grants",
        Some(&token),
        Some(&req.to_string()),
    );
    assert_eq!(status, 201, "{body}");
    let granted: Value = serde_json::from_str(&body).unwrap();
    let id = granted["grant_id"].as_str().unwrap().to_string();

    let scratch = env.tmp.path().join("schemathesis");
    std::fs::create_dir_all(&scratch).unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut config = std::fs::read_to_string(repo.join("tests/api/schemathesis.toml")).unwrap();
    config.push_str(&format!(
        "\n[dictionaries.resource]\nvalues = [\"web-down\"]\n\
         [dictionaries.grant]\nvalues = [\"{id}\"]\n"
    ));
    let config_path = scratch.join("schemathesis.toml");
    std::fs::write(&config_path, config).unwrap();
    let st = repo.join("target/py/bin/schemathesis");
    assert!(
        st.exists(),
        "{} is missing: run `make setup` (tests/winrm/requirements.txt)",
        st.display()
    );
    let url = format!("http://127.0.0.1:{port}");
    let out = std::process::Command::new("timeout")
        .args(["--signal=INT", "--kill-after=30", "600"])
        .arg(&st)
        .arg("--config-file")
        .arg(&config_path)
        .args(["run", &format!("{url}/v1/openapi.json"), "--url", &url])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "all", "--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "25", "--seed", "42"])
        .args(["--generation-database", "none", "--workers", "1"])
        .args(["--no-color"])
        .current_dir(&scratch)
        .env("HYPOTHESIS_STORAGE_DIRECTORY", scratch.join("hypothesis"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis failed ({:?}):\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Tested: 16"), "{text}");
    assert!(
        !text.contains(&token),
        "the token must be filtered from schemathesis' output"
    );

    let (status, body) = http(port, "GET", "/v1/grants", Some(&token), None);
    assert_eq!(status, 200, "{body}");
    let grants: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert!(
        grants.iter().any(|g| g["resource_id"] == "web-down"),
        "no fuzzed grant got past the 404s to the guest: {body}"
    );
    for g in &grants {
        let state = g["state"].as_str().unwrap();
        assert!(
            ["active", "revoked", "failed"].contains(&state),
            "a fuzzed request left a grant half-done: {g}"
        );
    }
    // The real grant was fuzzed at too: revoke it if it is still active, so web-1 is clean.
    http(
        port,
        "POST",
        &format!("/v1/grants/{id}/revoke"),
        Some(&token),
        Some("{}"),
    );
    assert!(
        eventually(30, || {
            let (_, body) = http(port, "GET", &format!("/v1/grants/{id}"), Some(&token), None);
            body.contains("\"revoked\"")
        }),
        "the fuzz grant was not revoked"
    );
    let out = latch(&["audit", "verify", "--config", env.config.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
}
