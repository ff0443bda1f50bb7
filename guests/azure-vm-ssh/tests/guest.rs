//! The azure-vm-ssh guest against scripted capabilities: the exact Resource Manager reads it
//! makes (lists at once, every `nextLink`, instance views), what it makes of the answers,
//! where a grant acts, and every refusal before anything is asked. What happens on the VM
//! is `linux::runbook`, scripted command by command in ssh-servers' kit tests.

use latch::caps::CapError;
use latch::caps::cloud::kit::ExpectAzure;
use latch::runtime::{Export, GuestError};
use latch_testkit::{Kit, Script, grant_request};
use serde_json::json;

const SUB: &str = "00000000-1111-2222-3333-444444444444";
const EXPIRES: u64 = 4_000_000_000;
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHv7fFq0n1o3p5r7t9v1x3z5B7D9F1H3J5L7N9P1R3T5 alice";
const COMPUTE: &str = "2024-07-01";
const NETWORK: &str = "2024-05-01";
const VMSS_NETWORK: &str = "2018-10-01";

fn kit() -> Kit {
    Kit::built("azure_vm_ssh")
}

fn config(extra: serde_json::Value) -> String {
    let mut c = json!({"subscriptions": [SUB], "resource_groups": ["rg"], "tags": {"env": "prod"}});
    c.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    c.to_string()
}

fn group() -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg")
}

fn vm_id(name: &str) -> String {
    format!(
        "{}/providers/Microsoft.Compute/virtualMachines/{name}",
        group()
    )
}

fn nic_id(name: &str) -> String {
    format!(
        "{}/providers/Microsoft.Network/networkInterfaces/{name}",
        group()
    )
}

fn get(path: &str, version: &str) -> ExpectAzure {
    ExpectAzure {
        path: path.to_string(),
        query: Some(vec![("api-version".into(), version.into())]),
    }
}

fn vm(name: &str, env: &str, nic: &str) -> serde_json::Value {
    json!({"id": vm_id(name), "name": name, "type": "Microsoft.Compute/virtualMachines",
           "location": "eastus", "tags": {"env": env},
           "properties": {"networkProfile": {"networkInterfaces": [
               {"id": nic_id(nic), "properties": {"primary": true}}]},
               "provisioningState": "Succeeded"}})
}

fn nic(name: &str, private: &str, public: Option<&str>) -> serde_json::Value {
    let mut ip = json!({"privateIPAddress": private, "primary": true});
    if let Some(p) = public {
        ip["publicIPAddress"] = json!({"id": p});
    }
    json!({"id": nic_id(name), "name": name,
           "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": ip}]}})
}

fn view(power: &str) -> String {
    json!({"statuses": [
        {"code": "ProvisioningState/succeeded", "level": "Info"},
        {"code": format!("PowerState/{power}"), "level": "Info"}]})
    .to_string()
}

#[test]
fn discovery_follows_every_next_link_and_keeps_running_vms_with_the_tags() {
    let vms = format!("{}/providers/Microsoft.Compute/virtualMachines", group());
    let nics = format!("{}/providers/Microsoft.Network/networkInterfaces", group());
    let mut s = Script::new();
    // The lists of the group at once (scale sets off here).
    s.on(get(&vms, COMPUTE)).text(
        &json!({"value": [vm("web-1", "prod", "nic-1")],
                "nextLink": format!("https://management.azure.com{vms}?api-version={COMPUTE}&%24skiptoken=abc%2B1")})
        .to_string(),
    );
    s.on(get(&nics, NETWORK)).text(
        &json!({"value": [nic("nic-1", "10.0.0.4", None), nic("nic-3", "10.0.0.6/28", None)]})
            .to_string(),
    );
    // The next page, its query decoded as the link meant it.
    s.on(ExpectAzure {
        path: vms.clone(),
        query: Some(vec![
            ("api-version".into(), COMPUTE.into()),
            ("$skiptoken".into(), "abc+1".into()),
        ]),
    })
    .text(
        &json!({"value": [vm("dev-1", "dev", "nic-2"), vm("web-3", "prod", "nic-3")]}).to_string(),
    );
    // Instance views of the tagged ones only.
    s.on(get(&format!("{}/instanceView", vm_id("web-1")), COMPUTE))
        .text(&view("running"));
    s.on(get(&format!("{}/instanceView", vm_id("web-3")), COMPUTE))
        .text(&view("running"));
    let run = kit().run(
        &s,
        Export::Discover {
            config: config(json!({"scale_sets": false})),
            cursor: None,
        },
    );
    run.assert_script_done();
    let found: Vec<(&str, Option<&str>)> = run
        .resources()
        .iter()
        .map(|r| {
            let address = r.tags.iter().find(|(k, _)| k == "address");
            (r.name.as_str(), address.map(|(_, v)| v.as_str()))
        })
        .collect();
    // A prefix "a.b.c.d/28" is an address, not a place to connect to with its length.
    assert_eq!(
        found,
        [("web-1", Some("10.0.0.4")), ("web-3", Some("10.0.0.6"))]
    );
    assert_eq!(run.resources()[0].id, vm_id("web-1"));
}

fn grant(resource: &str, extra: serde_json::Value) -> Export {
    let mut request = grant_request("g-1", resource, "Default", "alice@corp.example", EXPIRES);
    request.public_key = Some(KEY.into());
    Export::Grant {
        config: config(extra),
        request,
    }
}

fn probe_refused(s: &mut Script, target: &str) {
    s.on_linux_probe(target, "alice", &[])
        .exit(1, "sudo: a password is required\n");
}

#[test]
fn a_grant_reads_the_vm_again_then_acts_at_its_nic() {
    let mut s = Script::new();
    s.on(get(&vm_id("web-1"), COMPUTE))
        .text(&vm("web-1", "prod", "nic-1").to_string());
    s.on(get(&format!("{}/instanceView", vm_id("web-1")), COMPUTE))
        .text(&view("running"));
    s.on(get(&nic_id("nic-1"), NETWORK))
        .text(&nic("nic-1", "10.0.0.4", None).to_string());
    probe_refused(&mut s, "apono@10.0.0.4:22");
    let run = kit().run(&s, grant(&vm_id("web-1"), json!({})));
    run.assert_script_done();
    assert_eq!(run.changes(), Vec::<String>::new());
    assert!(matches!(run.guest_error(), GuestError::Failed(m) if m.contains("NOPASSWD")));

    // Deallocated, or gone (404): unknown to this integration; no host is reached.
    let mut s = Script::new();
    s.on(get(&vm_id("web-1"), COMPUTE))
        .text(&vm("web-1", "prod", "nic-1").to_string());
    s.on(get(&format!("{}/instanceView", vm_id("web-1")), COMPUTE))
        .text(&view("deallocated"));
    let run = kit().run(&s, grant(&vm_id("web-1"), json!({})));
    run.assert_script_done();
    assert!(matches!(run.guest_error(), GuestError::NotFound(m) if m.contains("no running VM")));

    let mut s = Script::new();
    s.on(get(&vm_id("web-1"), COMPUTE))
        .error(CapError::NotFound(
            "GET …: HTTP 404 ResourceNotFound: gone".into(),
        ));
    s.on(get(&format!("{}/instanceView", vm_id("web-1")), COMPUTE))
        .error(CapError::NotFound(
            "GET …: HTTP 404 ResourceNotFound: gone".into(),
        ));
    let run = kit().run(&s, grant(&vm_id("web-1"), json!({})));
    run.assert_script_done();
    assert!(matches!(run.guest_error(), GuestError::NotFound(_)));

    // Any other failure of the read is not "gone": it is the guest's error as it came.
    let mut s = Script::new();
    s.on(get(&vm_id("web-1"), COMPUTE)).error(CapError::Failed(
        "GET …: HTTP 500 InternalError: busy".into(),
    ));
    s.on(get(&format!("{}/instanceView", vm_id("web-1")), COMPUTE))
        .text(&view("running"));
    let run = kit().run(&s, grant(&vm_id("web-1"), json!({})));
    assert!(matches!(run.guest_error(), GuestError::Failed(m) if m.contains("HTTP 500")));
}

#[test]
fn a_scale_set_vms_public_address_must_be_a_child_of_its_own_nic() {
    let set = format!(
        "{}/providers/Microsoft.Compute/virtualMachineScaleSets/ss",
        group()
    );
    let vm3 = format!("{set}/virtualMachines/3");
    let nic = format!("{vm3}/networkInterfaces/nic0");
    let own = format!("{nic}/ipConfigurations/ipconfig1/publicIPAddresses/pub1");
    let other = own.replace("virtualMachines/3", "virtualMachines/4");
    let answers = |s: &mut Script, public: &str| {
        s.on(get(&set, COMPUTE))
            .text(&json!({"id": set, "name": "ss", "tags": {"env": "prod"}}).to_string());
        s.on(ExpectAzure {
            path: vm3.clone(),
            query: Some(vec![
                ("api-version".into(), COMPUTE.into()),
                ("$expand".into(), "instanceView".into()),
            ]),
        })
        .text(
            &json!({"id": vm3, "name": "ss_3", "instanceId": "3",
                    "properties": {"instanceView": serde_json::from_str::<serde_json::Value>(&view("running")).unwrap(),
                                   "networkProfile": {"networkInterfaces": [{"id": nic, "properties": {"primary": true}}]}}})
            .to_string(),
        );
        s.on(get(&format!("{vm3}/networkInterfaces"), VMSS_NETWORK))
            .text(
                &json!({"value": [{"id": nic, "name": "nic0", "properties": {"primary": true,
                "ipConfigurations": [{"name": "ipconfig1", "properties": {
                    "privateIPAddress": "10.0.0.9", "primary": true,
                    "publicIPAddress": {"id": public}}}]}}]})
                .to_string(),
            );
    };
    let mut s = Script::new();
    answers(&mut s, &own);
    s.on(get(&own, VMSS_NETWORK)).text(
        &json!({"id": own, "name": "pub1", "properties": {"ipAddress": "203.0.113.9"}}).to_string(),
    );
    probe_refused(&mut s, "apono@203.0.113.9:22");
    let run = kit().run(&s, grant(&vm3, json!({"address": "public_ip"})));
    run.assert_script_done();

    // An answer pointing the NIC at another VM's address: not followed.
    let mut s = Script::new();
    answers(&mut s, &other);
    let run = kit().run(&s, grant(&vm3, json!({"address": "public_ip"})));
    run.assert_script_done();
    assert!(
        matches!(run.guest_error(), GuestError::InvalidRequest(m) if m.contains("no public IP"))
    );
}

#[test]
fn hostile_and_out_of_scope_ids_reach_nothing() {
    let other_group = format!(
        "/subscriptions/{SUB}/resourceGroups/other/providers/Microsoft.Compute/virtualMachines/x"
    );
    let other_sub = vm_id("x").replace(SUB, "99999999-1111-2222-3333-444444444444");
    for bad in [
        format!("{}/../../other/x", vm_id("web-1")),
        vm_id("$(id)"),
        vm_id("web-1;rm -rf /"),
        vm_id("-oProxyCommand=x"),
        vm_id("wéb"),
        vm_id(&"a".repeat(300)),
        format!(
            "{}/providers/Microsoft.Network/networkInterfaces/nic-1",
            group()
        ),
        other_group,
        other_sub,
        String::new(),
    ] {
        let run = kit().run(&Script::new(), grant(&bad, json!({})));
        run.assert_nothing_carried_out();
        assert!(run.report.records.is_empty(), "{bad:?}: nothing attempted");
        assert!(
            matches!(run.guest_error(), GuestError::InvalidRequest(_)),
            "{bad:?}: {:?}",
            run.guest_error()
        );
    }
}

/// A revoke that has no grant state to go by reads the VM again: only a VM that is not
/// there (HTTP 404, or no longer running with the tags) is "nothing to do". One that is
/// there without the address the integration connects to fails the revoke, so the service
/// retries it and says so — before 0.3 it was skipped as if the VM were gone.
#[test]
fn a_revoke_skips_only_a_vm_that_is_not_found() {
    let revoke = |extra: serde_json::Value| Export::Revoke {
        config: config(extra),
        request: grant_request(
            "g-1",
            &vm_id("web-1"),
            "Default",
            "alice@corp.example",
            EXPIRES,
        ),
    };
    let gone = || CapError::NotFound("GET …: HTTP 404 ResourceNotFound: gone".into());

    let mut s = Script::new();
    s.on(get(&vm_id("web-1"), COMPUTE)).error(gone());
    s.on(get(&format!("{}/instanceView", vm_id("web-1")), COMPUTE))
        .error(gone());
    let run = kit().run(&s, revoke(json!({})));
    run.assert_script_done();
    run.assert_ok();

    let mut s = Script::new();
    s.on(get(&vm_id("web-1"), COMPUTE))
        .text(&vm("web-1", "prod", "nic-1").to_string());
    s.on(get(&format!("{}/instanceView", vm_id("web-1")), COMPUTE))
        .text(&view("running"));
    s.on(get(&nic_id("nic-1"), NETWORK))
        .text(&nic("nic-1", "10.0.0.4", None).to_string());
    let run = kit().run(&s, revoke(json!({"address": "public_ip"})));
    run.assert_script_done();
    match run.guest_error() {
        GuestError::InvalidRequest(m) => assert!(m.contains("no public IP"), "{m}"),
        other => panic!("{other:?}"),
    }

    // A read that failed otherwise fails the revoke as it came.
    let mut s = Script::new();
    s.on(get(&vm_id("web-1"), COMPUTE)).error(CapError::Failed(
        "GET …: HTTP 500 InternalError: busy".into(),
    ));
    s.on(get(&format!("{}/instanceView", vm_id("web-1")), COMPUTE))
        .text(&view("running"));
    let run = kit().run(&s, revoke(json!({})));
    assert!(matches!(run.guest_error(), GuestError::Failed(m) if m.contains("HTTP 500")));
}
