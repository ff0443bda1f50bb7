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
    let _g = crate::e2e::shared();
    let env = Env::new();
    let config = Config::load(&env.config).unwrap();
    let connector = live_connector(&config).unwrap();
    let ledger = Ledger::open(env.tmp.path()).unwrap();
    let access = Access::parse(POLICY, std::path::Path::new("access.cedar"), &["linux"]).unwrap();
    let alice = person("rq-alice2", &["devs"]);
    let rt = rt();
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
            "control characters",
            ask(&alice, args("web-1", 1, "ok\u{1b}[31m")),
            ErrorKind::BadRequest,
        ),
        (
            "10 MB justification",
            ask(&alice, args("web-1", 1, &"x".repeat(10 << 20))),
            ErrorKind::BadRequest,
        ),
        (
            "no key while waiting for approval",
            ask(&alice, no_key),
            ErrorKind::BadRequest,
        ),
    ] {
        assert!(
            std::mem::discriminant(&kind(&e)) == std::mem::discriminant(&expected),
            "{what}: {e} ({:?})",
            kind(&e)
        );
    }
    assert!(ledger.requests(None).unwrap().is_empty());
    assert!(ledger.list(None).unwrap().is_empty());
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
