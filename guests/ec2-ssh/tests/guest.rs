//! The ec2-ssh guest against scripted capabilities: the exact EC2 requests it makes (regions
//! at once, filters, pages by token, "all" regions), what it makes of the answers, where a
//! grant acts, and every refusal before anything is asked. What happens on the instance is
//! `linux::runbook`, scripted command by command in ssh-servers' kit tests.

use latch::caps::CapError;
use latch::caps::cloud::kit::ExpectAws;
use latch::runtime::{Export, GuestError};
use latch_testkit::{Kit, Script, grant_request};

const EXPIRES: u64 = 4_000_000_000;
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHv7fFq0n1o3p5r7t9v1x3z5B7D9F1H3J5L7N9P1R3T5 alice";

fn kit() -> Kit {
    Kit::built("ec2_ssh")
}

fn config(regions: serde_json::Value) -> String {
    serde_json::json!({"regions": regions, "tags": {"env": "prod"}, "user_groups": ["Default", "dev"]})
        .to_string()
}

fn two_regions() -> String {
    config(serde_json::json!(["us-east-1", "eu-west-1"]))
}

/// DescribeInstances in `region`: running, `tag:env=prod`, then `extra`.
fn describe(region: &str, extra: &[(&str, &str)]) -> ExpectAws {
    let mut parameters = vec![
        ("Filter.1.Name", "instance-state-name"),
        ("Filter.1.Value.1", "running"),
        ("Filter.2.Name", "tag:env"),
        ("Filter.2.Value.1", "prod"),
    ];
    parameters.extend_from_slice(extra);
    ExpectAws {
        action: "ec2:DescribeInstances".into(),
        region: region.into(),
        parameters: Some(
            parameters
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
    }
}

/// An instance of a page: id, state, private IP, Name tag.
type Inst<'a> = (&'a str, &'a str, &'a str, &'a str);

/// A DescribeInstancesResponse as EC2 writes it (one reservation per instance; each
/// instance also has a network interface whose own `privateIpAddress` must not be taken
/// for the instance's).
fn page(instances: &[Inst], next: Option<&str>) -> String {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeInstancesResponse \
         xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>59dbff89-35bd-4eac-99ed-\
         be587EXAMPLE</requestId><reservationSet>",
    );
    for (i, (id, state, ip, name)) in instances.iter().enumerate() {
        xml += &format!(
            "<item><reservationId>r-{i:017x}</reservationId><ownerId>123456789012</ownerId>\
             <groupSet/><instancesSet><item><instanceId>{id}</instanceId><imageId>\
             ami-0abcdef1234567890</imageId><instanceState><code>16</code><name>{state}</name>\
             </instanceState><privateIpAddress>{ip}</privateIpAddress><ipAddress>203.0.113.{i}\
             </ipAddress><networkInterfaceSet><item><privateIpAddress>10.99.99.99\
             </privateIpAddress></item></networkInterfaceSet><tagSet><item><key>Name</key>\
             <value>{name}</value></item><item><key>env</key><value>prod</value></item>\
             </tagSet></item></instancesSet></item>"
        );
    }
    xml += "</reservationSet>";
    if let Some(t) = next {
        xml += &format!("<nextToken>{t}</nextToken>");
    }
    xml + "</DescribeInstancesResponse>"
}

fn discover(config: String, cursor: Option<&str>) -> Export {
    Export::Discover {
        config,
        cursor: cursor.map(str::to_string),
    }
}

#[test]
fn discovery_asks_every_region_at_once_and_pages_by_token() {
    let mut s = Script::new();
    s.on(describe("us-east-1", &[("MaxResults", "1000")]))
        .text(&page(
            &[
                ("i-0a1b2c3d4e5f60718", "running", "10.0.0.5", "web-1"),
                ("i-0a1b2c3d4e5f60719", "stopping", "10.0.0.6", "web-x"),
            ],
            Some("tok/1+=="),
        ));
    s.on(describe("eu-west-1", &[("MaxResults", "1000")]))
        .text(&page(
            &[("i-0bbbbbbbbbbbbbbb1", "running", "10.0.1.7", "web-2")],
            None,
        ));
    let run = kit().run(&s, discover(two_regions(), None));
    run.assert_script_done();
    let ids: Vec<&str> = run.resources().iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["i-0a1b2c3d4e5f60718", "i-0bbbbbbbbbbbbbbb1"]);
    let web1 = &run.resources()[0];
    assert_eq!(web1.name, "web-1");
    assert_eq!(web1.permissions, ["Default", "dev"]);
    for tag in [
        ("region", "us-east-1"),
        ("address", "10.0.0.5"),
        ("env", "prod"),
    ] {
        assert!(
            web1.tags.contains(&(tag.0.to_string(), tag.1.to_string())),
            "{tag:?} in {:?}",
            web1.tags
        );
    }
    // Only the region with more pages, and its token as EC2 gave it.
    let next = run.page().next.clone().expect("a next page");
    let cursor: Vec<(String, String)> = serde_json::from_str(&next).unwrap();
    assert_eq!(cursor, [("us-east-1".to_string(), "tok/1+==".to_string())]);

    let mut s = Script::new();
    s.on(describe(
        "us-east-1",
        &[("MaxResults", "1000"), ("NextToken", "tok/1+==")],
    ))
    .text(&page(
        &[("i-0a1b2c3d4e5f6071a", "running", "10.0.0.8", "web-3")],
        None,
    ));
    let run = kit().run(&s, discover(two_regions(), Some(&next)));
    run.assert_script_done();
    assert_eq!(run.resources().len(), 1);
    assert_eq!(run.page().next, None);
}

#[test]
fn all_regions_are_the_enabled_ones_of_the_account_partition() {
    let mut s = Script::new();
    s.on(ExpectAws {
        action: "ec2:DescribeRegions".into(),
        region: "us-east-1".into(),
        parameters: Some(vec![]),
    })
    .text(
        "<DescribeRegionsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
         <requestId>r</requestId><regionInfo>\
         <item><regionName>eu-west-1</regionName><regionEndpoint>ec2.eu-west-1.amazonaws.com\
         </regionEndpoint><optInStatus>opt-in-not-required</optInStatus></item>\
         <item><regionName>cn-north-1</regionName></item>\
         <item><regionName>us-gov-west-1</regionName></item>\
         <item><regionName>ap-south-1</regionName></item>\
         </regionInfo></DescribeRegionsResponse>",
    );
    s.on(describe("ap-south-1", &[("MaxResults", "1000")]))
        .text(&page(&[], None));
    s.on(describe("eu-west-1", &[("MaxResults", "1000")]))
        .text(&page(&[], None));
    let run = kit().run(&s, discover(config(serde_json::json!("all")), None));
    run.assert_script_done();
    assert!(run.resources().is_empty());
}

fn grant(resource: &str) -> Export {
    let mut request = grant_request("g-1", resource, "Default", "alice@corp.example", EXPIRES);
    request.public_key = Some(KEY.into());
    Export::Grant {
        config: two_regions(),
        request,
    }
}

#[test]
fn a_grant_looks_the_instance_up_everywhere_then_acts_at_its_private_ip() {
    const ID: &str = "i-0a1b2c3d4e5f60718";
    let lookup = [("Filter.3.Name", "instance-id"), ("Filter.3.Value.1", ID)];
    let mut s = Script::new();
    s.on(describe("us-east-1", &lookup)).text(&page(&[], None));
    s.on(describe("eu-west-1", &lookup))
        .text(&page(&[(ID, "running", "10.0.1.7", "web-2")], None));
    // The first command of linux::runbook, as the service user at the instance's private
    // IP (not the public one, not its interface's): refused here, so nothing else runs.
    s.on_linux_probe("apono@10.0.1.7:22", "alice", &[])
        .exit(1, "sudo: a password is required\n");
    let run = kit().run(&s, grant(ID));
    run.assert_script_done();
    assert_eq!(run.changes(), Vec::<String>::new());
    match run.guest_error() {
        GuestError::Failed(m) => assert!(m.contains("NOPASSWD"), "{m}"),
        other => panic!("{other:?}"),
    }

    // Listed nowhere (or not running): unknown to this integration, nothing on any host.
    let mut s = Script::new();
    s.on(describe("us-east-1", &lookup)).text(&page(&[], None));
    s.on(describe("eu-west-1", &lookup))
        .text(&page(&[(ID, "stopped", "10.0.1.7", "web-2")], None));
    let run = kit().run(&s, grant(ID));
    run.assert_script_done();
    match run.guest_error() {
        GuestError::NotFound(m) => assert!(m.contains("no running instance"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn hostile_ids_and_cursors_reach_nothing() {
    let long = format!("i-{}", "a".repeat(1000));
    for bad in [
        "i-$(id)",
        "-oProxyCommand=x",
        "i-０１２３４５６７",
        "i-0a1b2c3d;rm -rf /",
        "i-0A1B2C3D",
        "i-0a1b",
        long.as_str(),
        "",
    ] {
        let run = kit().run(&Script::new(), grant(bad));
        run.assert_nothing_carried_out();
        assert!(run.report.records.is_empty(), "{bad:?}: nothing attempted");
        match run.guest_error() {
            GuestError::InvalidRequest(m) => assert!(m.len() < 300, "{m}"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    for cursor in [
        "not json",
        "[]",
        r#"[["us-east-1;x","t"]]"#,
        r#"[["../eu","t"]]"#,
    ] {
        let run = kit().run(&Script::new(), discover(two_regions(), Some(cursor)));
        run.assert_nothing_carried_out();
        assert!(
            matches!(run.guest_error(), GuestError::InvalidRequest(_)),
            "{cursor}"
        );
    }
}

#[test]
fn malformed_answers_are_clear_errors() {
    for (answer, says) in [
        ("<html>nope</html>", "DescribeInstancesResponse"),
        (
            "<DescribeInstancesResponse><reservationSet><item>",
            "ec2 DescribeInstances in",
        ),
    ] {
        let mut s = Script::new();
        s.on(describe("us-east-1", &[("MaxResults", "1000")]))
            .text(answer);
        s.on(describe("eu-west-1", &[("MaxResults", "1000")]))
            .text(&page(&[], None));
        let run = kit().run(&s, discover(two_regions(), None));
        run.assert_script_done();
        match run.guest_error() {
            GuestError::Failed(m) => assert!(m.contains(says), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}

/// A revoke that has no grant state to go by looks the instance up: only an instance that
/// is not there is "nothing to do". One that is there without an address to reach, or a
/// lookup that failed, fails the revoke (the service retries it and says so) — it is
/// never skipped as if the instance were gone.
#[test]
fn a_revoke_skips_only_an_instance_that_is_not_found() {
    const ID: &str = "i-0a1b2c3d4e5f60718";
    let lookup = [("Filter.3.Name", "instance-id"), ("Filter.3.Value.1", ID)];
    let revoke = || Export::Revoke {
        config: two_regions(),
        request: grant_request("g-1", ID, "Default", "alice@corp.example", EXPIRES),
    };

    // Listed in no region: gone; nothing else is asked.
    let mut s = Script::new();
    s.on(describe("us-east-1", &lookup)).text(&page(&[], None));
    s.on(describe("eu-west-1", &lookup)).text(&page(&[], None));
    let run = kit().run(&s, revoke());
    run.assert_script_done();
    run.assert_ok();

    // There, but with no private IP to reach it at: an error, not a skipped revoke.
    let mut s = Script::new();
    s.on(describe("us-east-1", &lookup)).text(&page(&[], None));
    s.on(describe("eu-west-1", &lookup))
        .text(&page(&[(ID, "running", "", "web-2")], None));
    let run = kit().run(&s, revoke());
    run.assert_script_done();
    match run.guest_error() {
        GuestError::InvalidRequest(m) => assert!(m.contains("no private IP"), "{m}"),
        other => panic!("{other:?}"),
    }

    // A region that did not answer: the revoke fails; it does not guess.
    let mut s = Script::new();
    s.on(describe("us-east-1", &lookup))
        .error(CapError::Unreachable(
            "ec2 DescribeInstances in us-east-1: no answer".into(),
        ));
    s.on(describe("eu-west-1", &lookup)).text(&page(&[], None));
    let run = kit().run(&s, revoke());
    assert!(matches!(run.guest_error(), GuestError::Unreachable(_)));

    // EC2's own "no such instance" in one region says nothing of the others: the lookup goes
    // on there (and here finds the instance without an address).
    let not_found = || {
        CapError::NotFound("ec2 DescribeInstances: HTTP 400 InvalidInstanceID.NotFound: x".into())
    };
    let mut s = Script::new();
    s.on(describe("us-east-1", &lookup)).error(not_found());
    s.on(describe("eu-west-1", &lookup))
        .text(&page(&[(ID, "running", "", "web-2")], None));
    let run = kit().run(&s, revoke());
    assert!(matches!(run.guest_error(), GuestError::InvalidRequest(_)));
    let mut s = Script::new();
    s.on(describe("us-east-1", &lookup)).error(not_found());
    s.on(describe("eu-west-1", &lookup)).error(not_found());
    let run = kit().run(&s, revoke());
    run.assert_script_done();
    run.assert_ok();
}
