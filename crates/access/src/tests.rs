use super::*;

const INTEGRATIONS: &[&str] = &["prod-ssh", "dev-ssh", "corp-dc"];

const POLICY: &str = r#"
// Developers may ask for up to 4 hours on dev servers; one approver.
@id("devs-request-dev")
permit(principal in Group::"devs", action == Action::"request", resource in Integration::"dev-ssh")
when { context.duration_seconds <= 14400 };

// Anyone in sre may ask for prod servers tagged env=prod, two approvals within 8h.
@id("sre-request-prod")
@approvals("2")
@approval_window("8h")
permit(principal in Group::"sre", action == Action::"request", resource in Integration::"prod-ssh")
when { resource.hasTag("env") && resource.getTag("env") == "prod" && context.duration_seconds <= 3600 };

// On-call gets web-1 at once.
@id("oncall-web-1")
@approvals("0")
permit(principal in Group::"oncall", action == Action::"request", resource == Resource::"prod-ssh/web-1");

@id("approvers-approve")
permit(principal in Group::"approvers", action == Action::"approve", resource);

// Nobody gets root on prod, whatever else says.
@id("no-root-on-prod")
forbid(principal, action == Action::"request", resource in Integration::"prod-ssh")
when { context.permission == "root" };

@id("owners-revoke")
permit(principal, action == Action::"revoke", resource) when { context.owner == principal };

@id("auditors-read")
permit(principal in Group::"auditors", action == Action::"read-audit", resource);
"#;

fn access() -> Access {
    Access::parse(POLICY, Path::new("/etc/latch/access.cedar"), INTEGRATIONS).unwrap()
}

fn who(id: &str, groups: &[&str]) -> Principal {
    Principal {
        id: id.into(),
        email: Some(format!("{id}@example.test")),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        kind: "person",
    }
}

fn ask(integration: &str, resource: &str, permission: &str, hours: u64) -> Ask {
    Ask {
        integration: integration.into(),
        resource: resource.into(),
        tags: BTreeMap::new(),
        permission: permission.into(),
        duration: Duration::from_secs(hours * 3600),
        justification: "ticket 42".into(),
        other: None,
    }
}

#[test]
fn requests_are_decided_with_the_policies_that_decided_them() {
    let a = access();
    let alice = who("alice", &["devs"]);
    let d = a.decide(&alice, Act::Request, &ask("dev-ssh", "db-1", "admin", 4));
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.why, ["devs-request-dev"]);
    assert_eq!((d.approvals, d.window), (DEFAULT_APPROVALS, DEFAULT_WINDOW));
    // Over the policy's 4 hours: Cedar's default deny, no policy named.
    let d = a.decide(&alice, Act::Request, &ask("dev-ssh", "db-1", "admin", 5));
    assert!(!d.allowed && d.why.is_empty(), "{d:?}");
    // Not her integration.
    assert!(
        !a.decide(&alice, Act::Request, &ask("prod-ssh", "web-2", "admin", 1))
            .allowed
    );
}

#[test]
fn tags_the_guest_discovered_are_the_resources_tags() {
    let a = access();
    let sam = who("sam", &["sre"]);
    let mut prod = ask("prod-ssh", "web-2", "admin", 1);
    assert!(
        !a.decide(&sam, Act::Request, &prod).allowed,
        "no tag: no match"
    );
    prod.tags.insert("env".into(), "prod".into());
    let d = a.decide(&sam, Act::Request, &prod);
    assert!(d.allowed, "{d:?}");
    assert_eq!((d.approvals, d.window), (2, Duration::from_secs(8 * 3600)));
}

#[test]
fn a_forbid_wins_and_says_so() {
    let a = access();
    let mut root = ask("prod-ssh", "web-1", "root", 1);
    root.tags.insert("env".into(), "prod".into());
    let d = a.decide(&who("sam", &["sre", "oncall"]), Act::Request, &root);
    assert!(!d.allowed);
    assert_eq!(d.why, ["no-root-on-prod"]);
}

#[test]
fn where_several_permits_allow_the_strictest_terms_hold() {
    let a = access();
    let mut web1 = ask("prod-ssh", "web-1", "admin", 1);
    web1.tags.insert("env".into(), "prod".into());
    // on-call alone: at once.
    let d = a.decide(&who("olga", &["oncall"]), Act::Request, &web1);
    assert_eq!((d.allowed, d.approvals), (true, 0), "{d:?}");
    // on-call and sre: both permit; the stricter (2 approvals, 8h) holds.
    let d = a.decide(&who("olga", &["oncall", "sre"]), Act::Request, &web1);
    assert_eq!(d.why, ["oncall-web-1", "sre-request-prod"]);
    assert_eq!((d.approvals, d.window), (2, Duration::from_secs(8 * 3600)));
}

#[test]
fn no_one_approves_their_own_request_whatever_the_policy() {
    let a = access();
    let bob = who("bob", &["approvers", "devs"]);
    let mut req = ask("dev-ssh", "db-1", "admin", 1);
    req.other = Some(who("alice", &["devs"]));
    let d = a.decide(&bob, Act::Approve, &req);
    assert!(d.allowed, "{d:?}");
    req.other = Some(bob.clone());
    let d = a.decide(&bob, Act::Approve, &req);
    assert!(!d.allowed);
    assert_eq!(d.why, ["latch:no-self-approval"]);
    // Outside the approvers: default deny.
    req.other = Some(who("alice", &["devs"]));
    assert!(!a.decide(&who("carol", &[]), Act::Approve, &req).allowed);
}

#[test]
fn revoke_and_audit_reads_follow_their_policies() {
    let a = access();
    let alice = who("alice", &["devs"]);
    let mut own = ask("dev-ssh", "db-1", "admin", 0);
    own.other = Some(alice.clone());
    assert!(a.decide(&alice, Act::Revoke, &own).allowed);
    own.other = Some(who("bob", &[]));
    assert!(!a.decide(&alice, Act::Revoke, &own).allowed);
    let audit = ask("corp-dc", "", "", 0);
    assert!(
        a.decide(&who("ada", &["auditors"]), Act::ReadAudit, &audit)
            .allowed
    );
    assert!(!a.decide(&alice, Act::ReadAudit, &audit).allowed);
}

#[test]
fn hostile_names_are_data_not_policy() {
    let a = access();
    let alice = who("alice", &["devs"]);
    for name in [
        "db-1\" || true || \"",
        "$(id)",
        "alice;rm -rf /",
        "‘quoted’",
        "x/../../etc",
        "-oProxyCommand=x",
        "*()\\",
    ] {
        let d = a.decide(&alice, Act::Request, &ask("dev-ssh", name, name, 1));
        assert_eq!(
            d,
            a.decide_unindexed(&alice, Act::Request, &ask("dev-ssh", name, name, 1))
        );
        assert!(d.allowed, "{name}: {d:?}");
        let d = a.decide(
            &who(name, &[name]),
            Act::Request,
            &ask("prod-ssh", name, "admin", 1),
        );
        assert!(!d.allowed, "{name}: {d:?}");
    }
}

fn err(text: &str) -> String {
    format!(
        "{:#}",
        Access::parse(text, Path::new("/etc/latch/access.cedar"), INTEGRATIONS).unwrap_err()
    )
}

#[test]
fn mistakes_are_errors_naming_file_line_and_column() {
    // A syntax error on line 3.
    let e = err(
        "@id(\"a\")\npermit(principal, action, resource);\npermit(principal action, resource);\n",
    );
    assert!(e.starts_with("/etc/latch/access.cedar:3:"), "{e}");
    // A misspelt attribute: the schema says where.
    let e = err(
        "@id(\"a\")\npermit(principal, action == Action::\"request\", resource)\n  when { context.duration <= 5 };\n",
    );
    assert!(e.contains("/etc/latch/access.cedar:3:"), "{e}");
    assert!(e.contains("duration"), "{e}");
    // An unknown action.
    let e = err("@id(\"a\")\npermit(principal, action == Action::\"grant\", resource);\n");
    assert!(e.contains("access.cedar:2:"), "{e}");
    for (text, says) in [
        ("permit(principal, action, resource);", "has no @id"),
        (
            "@id(\"a\") permit(principal, action, resource);\n@id(\"a\") forbid(principal, action, resource);",
            "two policies have @id(\"a\")",
        ),
        (
            "@id(\"a\") permit(principal, action, resource in Integration::\"prod-sshh\");",
            "does not have",
        ),
        (
            "@id(\"a b\") permit(principal, action, resource);",
            "@id(\"a b\")",
        ),
        (
            "@id(\"latch:x\") permit(principal, action, resource);",
            "latch:",
        ),
        (
            "@id(\"a\") permit(principal == ?principal, action, resource);",
            "templates",
        ),
        (
            "@id(\"a\") @approvals(\"11\") permit(principal, action == Action::\"request\", resource);",
            "0 to 10",
        ),
        (
            "@id(\"a\") @approvals(\"0\") forbid(principal, action == Action::\"request\", resource);",
            "belong on a `permit`",
        ),
        (
            "@id(\"a\") @approval_window(\"5s\") permit(principal, action == Action::\"request\", resource);",
            "1m to 30 days",
        ),
        (
            "@id(\"a\") @owner(\"x\") permit(principal, action, resource);",
            "@owner",
        ),
    ] {
        let e = err(text);
        assert!(e.contains(says), "{text}\n=> {e}");
    }
}

#[test]
fn an_empty_policy_denies_everything() {
    let a = Access::parse("", Path::new("p"), INTEGRATIONS).unwrap();
    assert!(a.is_empty());
    let d = a.decide(
        &who("alice", &["devs"]),
        Act::Request,
        &ask("dev-ssh", "db", "a", 1),
    );
    assert!(!d.allowed && d.why.is_empty());
}

/// The index hands Cedar only the policies whose scope can match: the decisions (and the
/// policies named) must be the full evaluation's, on generated policies and asks.
#[test]
fn the_indexed_answer_is_the_full_evaluations() {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    let integrations = ["prod-ssh", "dev-ssh", "corp-dc"];
    let actions = ["request", "approve", "revoke", "read-audit"];
    let mut text = String::new();
    for n in 0..300 {
        let effect = if rng.random_range(0..6) == 0 {
            "forbid"
        } else {
            "permit"
        };
        let group = format!("g{}", rng.random_range(0..8));
        let action = match rng.random_range(0..4) {
            0 => "action".to_string(),
            1 => format!("action == Action::\"{}\"", actions[rng.random_range(0..4)]),
            2 => format!(
                "action in [Action::\"{}\", Action::\"{}\"]",
                actions[rng.random_range(0..4)],
                actions[rng.random_range(0..4)]
            ),
            _ => "action == Action::\"request\"".to_string(),
        };
        let integration = integrations[rng.random_range(0..3)];
        let resource = match rng.random_range(0..5) {
            0 => "resource".to_string(),
            1 => format!("resource in Integration::\"{integration}\""),
            2 => format!(
                "resource == Resource::\"{integration}/s{}\"",
                rng.random_range(0..6)
            ),
            3 => "resource is Resource".to_string(),
            _ => format!("resource == Integration::\"{integration}\""),
        };
        let one = format!(
            "@id(\"p{n}\")\n{effect}(principal in Group::\"{group}\", {action}, {resource});\n"
        );
        // Scopes the schema calls impossible (an Integration resource for `request`) are
        // refused by strict validation; keep the valid ones.
        if Access::parse(&one, Path::new("one.cedar"), &integrations).is_ok() {
            text.push_str(&one);
        }
    }
    let a = Access::parse(&text, Path::new("gen.cedar"), &integrations).unwrap();
    assert!(a.len() > 150, "{} policies kept", a.len());
    let (mut allowed, mut denied) = (0, 0);
    for _ in 0..3000 {
        let groups: Vec<String> = (0..rng.random_range(0..3))
            .map(|_| format!("g{}", rng.random_range(0..8)))
            .collect();
        let p = Principal {
            id: format!("u{}", rng.random_range(0..20)),
            email: None,
            groups,
            kind: "person",
        };
        let act = Act::parse(actions[rng.random_range(0..4)]).unwrap();
        let mut q = ask(
            integrations[rng.random_range(0..3)],
            &format!("s{}", rng.random_range(0..6)),
            "admin",
            rng.random_range(1..10),
        );
        if matches!(act, Act::Approve | Act::Revoke) {
            q.other = Some(who(&format!("u{}", rng.random_range(0..20)), &["g1"]));
        }
        let indexed = a.decide(&p, act, &q);
        let full = a.decide_unindexed(&p, act, &q);
        assert_eq!(indexed, full, "{p:?} {act:?} {q:?}");
        if full.allowed {
            allowed += 1
        } else {
            denied += 1
        }
    }
    // The generated cases exercise both answers.
    assert!(
        allowed > 300 && denied > 300,
        "{allowed} allowed, {denied} denied"
    );
}

#[test]
fn case_files_run_and_say_what_differed() {
    let a = access();
    let cases = r#"
[[case]]
name = "alice, 4h on dev"
who = { id = "alice", groups = ["devs"] }
action = "request"
integration = "dev-ssh"
resource = "db-1"
permission = "admin"
duration = "4h"
expect = "allow"
why = ["devs-request-dev"]
approvals = 1

[[case]]
name = "bob approves his own"
who = { id = "bob", groups = ["approvers"] }
requester = { id = "bob" }
action = "approve"
integration = "dev-ssh"
resource = "db-1"
expect = "allow"
"#;
    let out = run_cases(&a, cases, Path::new("cases.toml")).unwrap();
    assert!(out[0].failure.is_none(), "{out:?}");
    assert_eq!(out[1].failure.as_deref(), Some("expected allow"));
    assert!(out[1].decision.contains("latch:no-self-approval"));
    let bad = run_cases(&a, "[[case]]\nname=\"x\"\n", Path::new("c.toml")).unwrap_err();
    assert!(format!("{bad:#}").contains("missing field"), "{bad:#}");
}
