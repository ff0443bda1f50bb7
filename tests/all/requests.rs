//! Access requests on the real sshd fleet: an approved request grants exactly once, by the
//! durable grant path; every refused path grants nothing and records no request.

use std::time::Duration;

use latch::access::{Access, Principal};
use latch::config::Config;
use latch::connector::live_connector;
use latch::ledger::{Ledger, RequestState, State};
use latch::service::requests::{self, RequestArgs};
use latch::service::{ErrorKind, ServiceError};

use crate::fleet::Env;

const POLICY: &str = r#"
@id("devs-request")
permit(principal in Group::"devs", action == Action::"request", resource in Integration::"linux")
when { context.duration_seconds <= 7200 };

@id("approvers-approve")
permit(principal in Group::"approvers", action == Action::"approve", resource);
"#;

/// A public key whose private half nobody needs here: the test checks the account and the
/// grant, not a login (the e2e tests log in).
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHv7fFq0n1o3p5r7t9v1x3z5B7D9F1H3J5L7N9P1R3T5 t";

fn person(id: &str, groups: &[&str]) -> Principal {
    Principal {
        id: id.into(),
        email: Some(format!("{id}@corp.example")),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        kind: "person",
    }
}

fn args(resource: &str, hours: u64, justification: &str) -> RequestArgs {
    RequestArgs {
        integration: "linux".into(),
        resource: resource.into(),
        permission: None,
        duration: Duration::from_secs(hours * 3600),
        justification: justification.into(),
        public_key: Some(KEY.into()),
        user: None,
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn kind(e: &ServiceError) -> ErrorKind {
    e.kind()
}

#[test]
fn an_approved_request_grants_exactly_once_on_a_real_server() {
    let _g = crate::e2e::shared();
    let env = Env::new();
    let config = Config::load(&env.config).unwrap();
    let connector = live_connector(&config).unwrap();
    let ledger = Ledger::open(env.tmp.path()).unwrap();
    let access = Access::parse(POLICY, std::path::Path::new("access.cedar"), &["linux"]).unwrap();
    // A name of this run's own: the fleet may outlive one run (the account stays, locked).
    let name = format!("rq-{}", std::process::id());
    let (alice, bob, carol) = (
        person(&name, &["devs"]),
        person("rq-bob", &["approvers", "devs"]),
        person("rq-carol", &[]),
    );
    let account = || {
        env.fleet
            .admin(2, &format!("getent passwd {name}"))
            .status
            .code()
    };
    let rt = rt();
    let asked = rt
        .block_on(requests::request(
            &connector,
            &ledger,
            &access,
            &alice,
            args("web-2", 1, "INC-1"),
        ))
        .unwrap();
    assert_eq!(asked.request.state, RequestState::Pending);
    assert_eq!(asked.approvals_needed, 1);
    assert!(
        ledger.list(None).unwrap().is_empty(),
        "nothing granted while pending"
    );
    assert_eq!(account(), Some(2), "the server is untouched");
    let id = asked.request.request_id.clone();

    // Not her own; not someone outside the approvers.
    for who in [&alice, &carol] {
        let e = rt
            .block_on(requests::approve(&connector, &ledger, &access, who, &id))
            .unwrap_err();
        assert!(matches!(kind(&e), ErrorKind::Denied), "{e}");
    }
    assert!(ledger.list(None).unwrap().is_empty());

    let approved = rt
        .block_on(requests::approve(&connector, &ledger, &access, &bob, &id))
        .unwrap();
    assert_eq!(approved.request.state, RequestState::Granted);
    assert!(
        approved.granted.is_none(),
        "the approver is shown no credential"
    );
    let grants = ledger.list(None).unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].state, State::Active);
    assert_eq!(
        Some(&grants[0].grant_id),
        approved.request.grant_id.as_ref()
    );
    assert_eq!(account(), Some(0), "the account exists");

    // Again, by anyone, any way: nothing more is granted.
    let again = rt.block_on(requests::approve(&connector, &ledger, &access, &bob, &id));
    assert!(matches!(
        again.map_err(|e| kind(&e)),
        Err(ErrorKind::Conflict)
    ));
    let stored = ledger.request(&id).unwrap();
    let twice = rt.block_on(requests::grant_approved(&connector, &ledger, &stored));
    assert!(matches!(
        twice.map_err(|e| kind(&e)),
        Err(ErrorKind::Conflict)
    ));
    assert_eq!(ledger.list(None).unwrap().len(), 1);

    // The audit chain names each identity and the policies that decided.
    let audit = ledger.audit_all().unwrap();
    let line = |event: &str| {
        audit
            .iter()
            .find(|r| r.event == event)
            .unwrap_or_else(|| panic!("no {event}"))
            .clone()
    };
    assert_eq!(
        line("request.created").actor,
        format!("{name} <{name}@corp.example>")
    );
    let by = line("request.approved_by");
    assert_eq!(by.actor, "rq-bob <rq-bob@corp.example>");
    assert!(
        by.detail.to_string().contains("approvers-approve"),
        "{}",
        by.detail
    );
    assert!(audit.iter().any(|r| r.event == "request.approval_refused"));
    line("request.granted");
    assert!(ledger.audit_verify().unwrap().is_ok());

    let grant_id = grants[0].grant_id.clone();
    rt.block_on(latch::service::revoke(
        &connector, &ledger, &grant_id, "test",
    ))
    .unwrap();
}

#[test]
fn refused_requests_record_nothing_and_grant_nothing() {
    // Alone on the fleet: it counts the servers' logins.
    let _q = crate::e2e::quiet();
    let env = Env::new();
    let config = Config::load(&env.config).unwrap();
    let connector = live_connector(&config).unwrap();
    let ledger = Ledger::open(env.tmp.path()).unwrap();
    let access = Access::parse(POLICY, std::path::Path::new("access.cedar"), &["linux"]).unwrap();
    let alice = person("rq-alice2", &["devs"]);
    let rt = rt();
    let logins = env.fleet.all_accepted_logins();
    let ask = |who: &Principal, a: RequestArgs| {
        rt.block_on(requests::request(&connector, &ledger, &access, who, a))
            .unwrap_err()
    };
    let mut unknown = args("web-1", 1, "x");
    unknown.integration = "nope".into();
    let mut no_key = args("web-1", 1, "x");
    no_key.public_key = None;
    let mut root = args("web-1", 1, "x");
    root.permission = Some("root".into());
    let check = |what: &str, e: ServiceError, expected: ErrorKind| {
        assert!(
            std::mem::discriminant(&kind(&e)) == std::mem::discriminant(&expected),
            "{what}: {e} ({:?})",
            kind(&e)
        );
    };
    // Refused before anything runs: no server sees a login.
    for (what, e, expected) in [
        (
            "over the integration's 8h",
            ask(&alice, args("web-1", 9, "x")),
            ErrorKind::BadRequest,
        ),
        (
            "unknown integration",
            ask(&alice, unknown),
            ErrorKind::NotFound,
        ),
        (
            "control characters",
            ask(&alice, args("web-1", 1, "ok\u{1b}[31m")),
            ErrorKind::BadRequest,
        ),
        (
            "10 MB justification",
            ask(&alice, args("web-1", 1, &"x".repeat(10 << 20))),
            ErrorKind::BadRequest,
        ),
    ] {
        check(what, e, expected);
    }
    assert_eq!(
        env.fleet.all_accepted_logins(),
        logins,
        "a request refused before discovery reached a server"
    );
    // Refused after the guest's discovery, which reads each server's groups (its logins are
    // reads, `getent group`): nothing is recorded, nothing granted, no account made.
    for (what, e, expected) in [
        (
            "not a dev",
            ask(&person("rq-carol2", &[]), args("web-1", 1, "x")),
            ErrorKind::Denied,
        ),
        (
            "over the policy's 2h",
            ask(&alice, args("web-1", 3, "x")),
            ErrorKind::Denied,
        ),
        (
            "unknown resource",
            ask(&alice, args("web-99", 1, "x")),
            ErrorKind::NotFound,
        ),
        (
            "a permission the server lacks",
            ask(&alice, root),
            ErrorKind::BadRequest,
        ),
        (
            "no key while waiting for approval",
            ask(&alice, no_key),
            ErrorKind::BadRequest,
        ),
    ] {
        check(what, e, expected);
    }
    assert!(ledger.requests(None).unwrap().is_empty());
    assert!(ledger.list(None).unwrap().is_empty());
    assert_eq!(
        env.fleet.admin(1, "getent passwd rq-alice2").status.code(),
        Some(2),
        "no account was made"
    );
    let refusals = ledger
        .audit_all()
        .unwrap()
        .iter()
        .filter(|r| r.event == "request.refused")
        .count();
    assert_eq!(refusals, 2, "each policy refusal is audited");

    // Cancel: the requester only; then nobody approves it.
    let asked = rt
        .block_on(requests::request(
            &connector,
            &ledger,
            &access,
            &alice,
            args("web-1", 1, "x"),
        ))
        .unwrap();
    let id = asked.request.request_id;
    let bob = person("rq-bob2", &["approvers"]);
    assert!(matches!(
        requests::cancel(&ledger, &bob, &id).map_err(|e| kind(&e)),
        Err(ErrorKind::Denied)
    ));
    assert_eq!(
        requests::cancel(&ledger, &alice, &id).unwrap().state,
        RequestState::Canceled
    );
    let late = rt.block_on(requests::approve(&connector, &ledger, &access, &bob, &id));
    assert!(matches!(
        late.map_err(|e| kind(&e)),
        Err(ErrorKind::Conflict)
    ));
    assert!(ledger.list(None).unwrap().is_empty());
}

/// Through `latch serve`: tokens in groups ask and approve over `/v1/requests`; the policy,
/// not the token's integration scope alone, decides.
#[test]
fn requests_through_the_api_are_decided_by_the_policy() {
    use crate::api::http;
    use crate::fleet::{Serve, latch};
    let _g = crate::e2e::shared();
    let env = Env::new();
    std::fs::write(env.tmp.path().join("access.cedar"), POLICY).unwrap();
    let mut text = std::fs::read_to_string(&env.config).unwrap();
    text.push_str("\n[access]\npolicy = \"access.cedar\"\n");
    std::fs::write(&env.config, text).unwrap();
    let config = env.config.to_str().unwrap();
    let token = |name: &str, groups: &[&str]| {
        let mut args = vec![
            "token",
            "create",
            "--config",
            config,
            name,
            "--all-integrations",
        ];
        for g in groups {
            args.extend(["--group", g]);
        }
        let out = latch(&args);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let (alice, bob, carol) = (
        token("alice", &["devs"]),
        token("bob", &["approvers"]),
        token("carol", &[]),
    );
    let serve = Serve::start(&env);
    let port = serve.port();
    let user = format!("rqa-{}@corp.example", std::process::id());
    let body = |resource: &str, justification: &str| {
        serde_json::json!({
            "integration": "linux", "resource": resource, "duration": 3600,
            "justification": justification, "public_key": KEY, "user": user,
        })
        .to_string()
    };

    // Refused: by the policy (carol is in no group), for bad input, for a huge body.
    let (s, b) = http(
        port,
        "POST",
        "/v1/requests",
        Some(&carol),
        Some(&body("web-3", "x")),
    );
    assert_eq!(s, 403, "{b}");
    let (s, b) = http(
        port,
        "POST",
        "/v1/requests",
        Some(&alice),
        Some(&body("web-3", "a\u{7}b")),
    );
    assert_eq!(s, 400, "{b}");
    // Over the API's 64 KiB body limit (a 10 MB one is cut off the same way, mid-upload).
    let huge = body("web-3", &"x".repeat(100 * 1024));
    assert_eq!(
        http(port, "POST", "/v1/requests", Some(&alice), Some(&huge)).0,
        413
    );

    let (s, b) = http(
        port,
        "POST",
        "/v1/requests",
        Some(&alice),
        Some(&body("web-3", "INC-7")),
    );
    assert_eq!(s, 201, "{b}");
    let asked: serde_json::Value = serde_json::from_str(&b).unwrap();
    let id = asked["request"]["request_id"].as_str().unwrap().to_string();
    assert_eq!(asked["request"]["state"], "pending");

    // Carol may not even see it; bob (an approver) may.
    let path = format!("/v1/requests/{id}");
    assert_eq!(http(port, "GET", &path, Some(&carol), None).0, 404);
    assert_eq!(http(port, "GET", &path, Some(&bob), None).0, 200);
    let (_, mine) = http(port, "GET", "/v1/requests", Some(&carol), None);
    assert_eq!(mine, "[]");

    let approve = format!("{path}/approve");
    let (s, b) = http(port, "POST", &approve, Some(&alice), None);
    assert_eq!(s, 403, "her own: {b}");
    let (s, b) = http(port, "POST", &approve, Some(&carol), None);
    assert_eq!(s, 403, "not an approver: {b}");
    let (s, b) = http(port, "POST", &approve, Some(&bob), None);
    assert_eq!(s, 200, "{b}");
    let approved: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(approved["request"]["state"], "granted");
    let grant_id = approved["request"]["grant_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, b) = http(port, "POST", &approve, Some(&bob), None);
    assert_eq!(s, 409, "approved once: {b}");

    let (s, b) = http(
        port,
        "GET",
        &format!("/v1/grants/{grant_id}"),
        Some(&alice),
        None,
    );
    assert_eq!(s, 200, "{b}");
    assert!(b.contains("\"state\":\"active\""), "{b}");
    drop(serve);
    let out = env.revoke(&grant_id);
    assert!(out.status.success(), "{out:?}");
}
