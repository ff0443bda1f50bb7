//! The `azure-vm-ssh` integration (and the Key Vault secret store) against the Azure
//! stand-in (`tests/cloud/azure_peer.py`:
//! Entra ID's token endpoint, the metadata identity endpoint, Resource Manager reads, in the
//! shapes of the published examples, with paging, 429/500 faults and expiring tokens) and
//! the real sshd hosts of the EC2 tests (127.0.14.x), which stand for the VMs' addresses.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::ec2::{cloud, repo, run, serial};
use crate::fleet::{cert_login, cli_grant_with, cli_resources_with, cli_revoke_with, data_dir_for};
use latch::runtime::sha256_hex;

const PORT: u16 = 25160;
const SUB: &str = "3b5d1a9c-7e2f-4c1a-9d3b-5e6f7a8b9c0d";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "535fb089-9ff3-47b6-9bfb-4f1264799865";
const CLIENT_SECRET: &str = "sp-s3cret~value.Azure";
const FEDERATED: &str = "eyJhbGciOiJSUzI1NiJ9.federated.token";

fn dir() -> PathBuf {
    repo().join("target/azure-tests")
}

fn id(rg: &str, name: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"
    )
}

fn ss_vm(i: u32) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachineScaleSets/web-ss/virtualMachines/{i}"
    )
}

/// The stand-in, started once with its fixture.
fn peer() {
    static PEER: OnceLock<()> = OnceLock::new();
    PEER.get_or_init(|| {
        let _ = cloud(); // the sshd hosts
        std::fs::create_dir_all(dir()).unwrap();
        let vm = |name: &str, rg: &str, env: &str, power: &str, private: &str, public: Option<&str>| {
            serde_json::json!({"sub": SUB, "rg": rg, "name": name, "tags": {"env": env, "owner": "$(id);'\"<x>&"},
                               "power": power, "private": private, "public": public})
        };
        let key = {
            use base64::Engine;
            let key = std::fs::read(cloud().fleet.join("service_key")).unwrap();
            serde_json::json!({"base64_private_key": base64::engine::general_purpose::STANDARD.encode(key)})
                .to_string()
        };
        let fixture = serde_json::json!({
            "key_vault": {"fleet-key": key},
            "tenant": TENANT, "client_id": CLIENT, "client_secret": CLIENT_SECRET,
            "federated_token": FEDERATED, "token_uses": 6, "page_size": 2,
            "faults": {"vm-list": [429], "nic-list": [500]},
            "vms": [
                vm("vm-web-1", "rg-web", "prod", "running", "127.0.14.2", Some("127.0.14.4")),
                vm("vm-web-2", "rg-web", "prod", "running", "127.0.14.3", None),
                vm("vm-web-3", "rg-web", "prod", "running", "127.0.14.4", None),
                vm("vm-dev", "rg-web", "dev", "running", "127.0.14.3", None),
                vm("vm-stopped", "rg-web", "prod", "deallocated", "127.0.14.3", None),
                vm("vm-other", "rg-other", "prod", "running", "127.0.14.2", None),
            ],
            "scale_sets": [{"sub": SUB, "rg": "rg-web", "name": "web-ss", "tags": {"env": "prod"},
                            "vms": [{"instance": "0", "power": "running", "private": "127.0.14.3", "public": "127.0.14.2"},
                                    {"instance": "1", "power": "deallocated", "private": "127.0.14.4"}]}],
        });
        let path = dir().join("fixture.json");
        std::fs::write(&path, fixture.to_string()).unwrap();
        run(
            Command::new("bash").arg(repo().join("tests/cloud/peer.sh")).args([
                "up",
                dir().to_str().unwrap(),
                &PORT.to_string(),
                repo().join("tests/cloud/azure_peer.py").to_str().unwrap(),
                path.to_str().unwrap(),
            ]),
            "peer.sh up (the Azure stand-in)",
        );
    });
}

fn endpoint() -> String {
    format!("http://127.0.0.1:{PORT}")
}

/// A data dir and latch.toml with an `azure-vm-ssh` integration `az`: `azure` is the
/// `[integration.azure]` table's credential lines, `config` extra lines of its config.
fn env(azure: &str, config: &str) -> (tempfile::TempDir, PathBuf) {
    let c = cloud();
    let tmp = data_dir_for(&c.fleet);
    std::fs::write(tmp.path().join("secrets/azure-sp"), CLIENT_SECRET).unwrap();
    let guest = crate::guest("azure_vm_ssh");
    let sha = sha256_hex(&std::fs::read(&guest).unwrap());
    let config_path = tmp.path().join("latch.toml");
    std::fs::write(
        &config_path,
        format!(
            r#"
listen = "127.0.0.1:0"
[[integration]]
name = "az"
guest = "{}"
sha256 = "{sha}"
allow = ["127.0.14.0/24:22"]
[integration.ssh]
key_secret = "fleet-key"
known_hosts = "{}"
[integration.azure]
subscriptions = ["{SUB}"]
resource_groups = ["rg-web"]
providers = ["Microsoft.Compute", "Microsoft.Network"]
expand = ["instanceView"]
endpoint = "{ep}"
authority = "{ep}"
{azure}
[integration.config]
subscriptions = ["{SUB}"]
resource_groups = ["rg-web"]
tags = {{ env = "prod" }}
{config}
"#,
            guest.display(),
            c.fleet.join("known_hosts").display(),
            ep = endpoint(),
        ),
    )
    .unwrap();
    (tmp, config_path)
}

const SECRET: &str = "credential = \"client-secret\"\ntenant_id = \"72f988bf-86f1-41af-91ab-2d7cd011db47\"\nclient_id = \"535fb089-9ff3-47b6-9bfb-4f1264799865\"\nclient_secret = \"azure-sp\"";

fn latch_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_latch"))
        .args(args)
        .env_remove("AZURE_TENANT_ID")
        .env_remove("AZURE_CLIENT_ID")
        .env_remove("AZURE_FEDERATED_TOKEN_FILE")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn resources(config: &Path, env: &[(&str, &str)]) -> Result<String, String> {
    cli_resources_with(&|a| latch_env(a, env), config, "az")
}

fn grant(config: &Path, resource: &str, email: &str) -> Result<serde_json::Value, String> {
    cli_grant_with(&|a| latch_env(a, &[]), config, "az", resource, email, &[])
}

fn revoke(config: &Path, granted: &serde_json::Value) {
    cli_revoke_with(&|a| latch_env(a, &[]), config, granted)
}

fn requests_log() -> String {
    std::fs::read_to_string(dir().join("requests.log")).unwrap_or_default()
}

#[test]
fn vms_and_scale_set_vms_are_discovered_granted_logged_in_to_and_revoked() {
    let _one = serial();
    peer();
    let (_tmp, config) = env(SECRET, "");
    let listed = resources(&config, &[]).unwrap();
    for want in [
        id("rg-web", "vm-web-1"),
        id("rg-web", "vm-web-2"),
        id("rg-web", "vm-web-3"),
        ss_vm(0),
    ] {
        assert!(listed.contains(&want), "{want} not discovered: {listed}");
    }
    for not in [
        id("rg-web", "vm-dev"),
        id("rg-web", "vm-stopped"),
        id("rg-other", "vm-other"),
        ss_vm(1),
    ] {
        assert!(!listed.contains(&not), "{not} listed: {listed}");
    }
    let log = requests_log();
    // Paging, the faults and an expired token were met on the way, and got through.
    assert!(log.contains("skiptoken"), "no second page was asked: {log}");
    assert!(
        log.contains("fault 429") && log.contains("fault 500"),
        "{log}"
    );
    assert!(log.contains("expired-token"), "{log}");
    assert!(
        log.matches("TOKEN client-secret issued").count() >= 2,
        "{log}"
    );
    assert!(!log.contains(CLIENT_SECRET));

    let known = cloud().fleet.join("known_hosts");
    for (resource, host) in [
        (id("rg-web", "vm-web-1"), "127.0.14.2"),
        (ss_vm(0), "127.0.14.3"),
    ] {
        let granted = grant(&config, &resource, "gina.az@example.com").unwrap();
        assert_eq!(granted["host"], host, "{resource}");
        let login = cert_login(&known, &granted, "id -un");
        assert!(
            login.status.success(),
            "{}",
            String::from_utf8_lossy(&login.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&login.stdout).trim(), "gina_az");
        revoke(&config, &granted);
        assert!(!cert_login(&known, &granted, "true").status.success());
    }
}

#[test]
fn the_public_address_is_used_when_asked() {
    let _one = serial();
    peer();
    let (_tmp, config) = env(SECRET, "address = \"public_ip\"");
    let granted = grant(&config, &id("rg-web", "vm-web-1"), "hank.az@example.com").unwrap();
    assert_eq!(granted["host"], "127.0.14.4");
    let known = cloud().fleet.join("known_hosts");
    assert!(cert_login(&known, &granted, "true").status.success());
    revoke(&config, &granted);

    // A scale-set VM's public address (under Compute, a child of its NIC), not its private
    // one (127.0.14.3): listed by discovery, used by the grant.
    let listed = resources(&config, &[]).unwrap();
    assert!(listed.contains(&ss_vm(0)), "{listed}");
    let granted = grant(&config, &ss_vm(0), "hank.az@example.com").unwrap();
    assert_eq!(granted["host"], "127.0.14.2");
    assert!(cert_login(&known, &granted, "true").status.success());
    revoke(&config, &granted);
    let log = requests_log();
    assert!(
        log.contains("/virtualMachineScaleSets/web-ss/publicipaddresses api-version=2018-10-01")
            && log.contains(
                "/ipConfigurations/ipconfig1/publicIPAddresses/pub1 api-version=2018-10-01"
            ),
        "{log}"
    );
}

#[test]
fn workload_and_managed_identities_get_tokens_too() {
    let _one = serial();
    peer();
    let token_file = dir().join("federated-token");
    std::fs::write(&token_file, FEDERATED).unwrap();
    let (_tmp, config) = env("credential = \"workload-identity\"", "");
    let env = [
        ("AZURE_TENANT_ID", TENANT),
        ("AZURE_CLIENT_ID", CLIENT),
        ("AZURE_FEDERATED_TOKEN_FILE", token_file.to_str().unwrap()),
    ];
    let listed = resources(&config, &env).unwrap();
    assert!(listed.contains(&id("rg-web", "vm-web-1")), "{listed}");
    assert!(requests_log().contains("TOKEN workload-identity issued"));

    let (_tmp, config) = env_with_identity();
    let listed = resources(&config, &[]).unwrap();
    assert!(listed.contains(&id("rg-web", "vm-web-1")), "{listed}");
    assert!(requests_log().contains("TOKEN managed-identity issued"));
}

fn env_with_identity() -> (tempfile::TempDir, PathBuf) {
    env(
        &format!(
            "credential = \"managed-identity\"\nidentity_endpoint = \"{}\"",
            endpoint()
        ),
        "",
    )
}

#[test]
fn refused_credentials_out_of_scope_and_hostile_ids_change_nothing() {
    let _one = serial();
    peer();
    let c = cloud();
    let before = c.snapshots();
    let (tmp, config) = env(SECRET, "");
    std::fs::write(tmp.path().join("secrets/azure-sp"), "not-the-secret-value").unwrap();
    let err = grant(&config, &id("rg-web", "vm-web-1"), "ivy.az@example.com").unwrap_err();
    assert!(
        err.contains("no Azure token") && err.contains("AADSTS7000215"),
        "{err}"
    );
    assert!(
        !err.contains("not-the-secret-value"),
        "the secret leaked: {err}"
    );

    let (_tmp, config) = env(SECRET, "");
    for (resource, want) in [
        (id("rg-other", "vm-other"), "outside this integration"),
        (id("rg-web", "vm-dev"), "no running VM"),
        (id("rg-web", "vm-stopped"), "no running VM"),
        (ss_vm(1), "no running VM"),
        (
            format!(
                "/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/../x"
            ),
            "not the resource id",
        ),
        ("$(id)".to_string(), "not the resource id"),
        ("-oProxyCommand=x".to_string(), "not the resource id"),
        (
            format!(
                "/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/vm'1"
            ),
            "not the resource id",
        ),
    ] {
        let err = grant(&config, &resource, "ivy.az@example.com").unwrap_err();
        assert!(err.contains(want), "{resource}: {err}");
    }
    // The host's policy bounds the guest: a config asking for every group of the
    // subscription is refused by [integration.azure] resource_groups, before any request.
    let wide = config.parent().unwrap().join("wide.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(
            "[integration.config]\nsubscriptions",
            "[integration.config]\nscale_sets = false\nsubscriptions",
        )
        .replace("resource_groups = [\"rg-web\"]\ntags", "tags");
    std::fs::write(&wide, text).unwrap();
    let err = resources(&wide, &[]).unwrap_err();
    assert!(err.contains("subscription-wide read"), "{err}");
    assert_eq!(c.snapshots(), before, "a host changed");
}

#[test]
fn the_service_key_comes_from_key_vault() {
    let _one = serial();
    peer();
    let (tmp, config) = env(SECRET, "");
    let text = std::fs::read_to_string(&config).unwrap();
    let stores = format!(
        "[secrets.stores.kv]\nkind = \"azure-key-vault\"\nvault = \"{ep}\"\nauthority = \"{ep}\"\n\
         credential = \"client-secret\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT}\"\n\
         client_secret = \"azure-sp\"\n",
        ep = endpoint()
    );
    let text = text
        .replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:0\"\n{stores}"),
        )
        .replace(
            "key_secret = \"fleet-key\"",
            "key_secret = \"kv:fleet-key\"",
        );
    std::fs::write(&config, &text).unwrap();
    std::fs::remove_file(tmp.path().join("secrets/fleet-key")).unwrap();
    let granted = grant(&config, &id("rg-web", "vm-web-2"), "jack.az@example.com").unwrap();
    assert!(
        cert_login(&cloud().fleet.join("known_hosts"), &granted, "true")
            .status
            .success()
    );
    revoke(&config, &granted);
    assert!(requests_log().contains("KV /secrets/fleet-key ok"));

    std::fs::write(&config, text.replace("kv:fleet-key", "kv:no-such-key")).unwrap();
    let err = grant(&config, &id("rg-web", "vm-web-2"), "jack.az@example.com").unwrap_err();
    assert!(
        err.contains("kv:no-such-key") && err.contains("not in the secret store"),
        "{err}"
    );
}
