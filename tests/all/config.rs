//! `latch.toml` and pins: a mismatched pin refuses to start and prints both hashes.

use std::sync::Arc;

use latch::caps::Recorder;
use latch::config::Config;
use latch::connector::Connector;
use latch::runtime::{Export, Returned, sha256_hex};

fn write_config(dir: &std::path::Path, sha256: &str, extra: &str) -> std::path::PathBuf {
    let guest = crate::guest("bench_guest");
    let path = dir.join("latch.toml");
    std::fs::write(
        &path,
        format!(
            "[[integration]]\nname = \"bench\"\nguest = {:?}\nsha256 = \"{sha256}\"\nallow = [\"127.0.0.2:22\"]\n{extra}",
            guest.display().to_string()
        ),
    )
    .unwrap();
    path
}

fn pin() -> String {
    sha256_hex(&std::fs::read(crate::guest("bench_guest")).unwrap())
}

#[test]
fn a_correct_pin_starts_and_the_config_reaches_the_guest() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &pin(), "[integration.config]\ncalls = 2\n");
    let config = Config::load(&path).unwrap();
    let connector = Connector::start(&config, Arc::new(Recorder)).unwrap();
    let (integration, ic) = connector.integration("bench").unwrap();
    assert_eq!(ic.config_json, r#"{"calls":2}"#);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = rt.block_on(integration.call(
        connector.runtime(),
        Export::Discover {
            config: ic.config_json.clone(),
            cursor: None,
        },
    ));
    match report.result {
        Ok(Returned::Page(p)) => assert_eq!(p.resources[0].name, "2"),
        other => panic!("{other:?}"),
    }
    assert_eq!(report.records.len(), 2);
    assert!(connector.integration("nope").is_err());
}

#[test]
fn a_mismatched_pin_refuses_to_start_naming_both_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = "0".repeat(64);
    let path = write_config(dir.path(), &wrong, "");
    let config = Config::load(&path).unwrap();
    let err = format!(
        "{:#}",
        Connector::start(&config, Arc::new(Recorder)).err().unwrap()
    );
    assert!(err.contains(&pin()), "{err}");
    assert!(err.contains(&wrong), "{err}");
    assert!(err.contains("refusing to start"), "{err}");
}

#[test]
fn a_missing_guest_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latch.toml");
    std::fs::write(
        &path,
        format!(
            "[[integration]]\nname = \"x\"\nguest = \"missing.wasm\"\nsha256 = \"{}\"\n",
            "0".repeat(64)
        ),
    )
    .unwrap();
    let config = Config::load(&path).unwrap();
    let err = format!(
        "{:#}",
        Connector::start(&config, Arc::new(Recorder)).err().unwrap()
    );
    assert!(err.contains("missing.wasm"), "{err}");
}

#[test]
fn bad_winrm_settings_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.pem"), "").unwrap();
    for (extra, want) in [
        ("[integration.winrm]\nauth = \"kerberos\"\n", "auth"),
        (
            "[integration.winrm]\nca_file = \"missing.pem\"\n",
            "ca_file",
        ),
        (
            "[integration.winrm]\nca_file = \"empty.pem\"\n",
            "no certificate",
        ),
        ("[integration.winrm]\nuser = \"alice;rm -rf /\"\n", "user"),
        ("[integration.winrm]\nuser = \"a\\\\b\\\\c\"\n", "user"),
        ("[integration.winrm]\nuser = \"x\\u0000\"\n", "user"),
        (
            "[integration.winrm]\npassword_secret = \"../etc/shadow\"\n",
            "password_secret",
        ),
        ("[integration.winrm]\nhttps_ports = [0]\n", "https_ports"),
        (
            "[integration.winrm]\ncommand_timeout = \"soon\"\n",
            "command_timeout",
        ),
        (
            "[integration.winrm]\nallow_unencrypted = \"yes\"\n",
            "allow_unencrypted",
        ),
        ("[integration.winrm]\nproxy = \"http://x\"\n", "proxy"),
    ] {
        let path = write_config(dir.path(), &pin(), extra);
        let err = format!("{:#}", Config::load(&path).unwrap_err());
        assert!(err.contains(want), "{extra:?}: {err}");
    }
    let path = write_config(
        dir.path(),
        &pin(),
        "[integration.winrm]\nuser = 'LAB\\latch-svc'\npassword_secret = \"w\"\nhttps_ports = [5986, 443]\n",
    );
    let config = Config::load(&path).unwrap();
    let w = config.integrations[0]
        .settings
        .get::<latch::caps::winrm::pool::WinrmSettings>()
        .unwrap();
    assert_eq!(w.default_user.as_deref(), Some("LAB\\latch-svc"));
    assert!(w.endpoint("h", 443).tls && !w.endpoint("h", 5985).tls);
}
