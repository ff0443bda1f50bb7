//! The `ssh` capability's live backend against a real sshd of the fleet.

use std::time::Duration;

use latch::caps::ssh::client::{SshPool, SshSettings};
use latch::caps::{CapError, SecretStore, Target};

use crate::fleet::Env;

fn settings(env: &Env) -> SshSettings {
    SshSettings {
        key_secret: "fleet-key".into(),
        default_user: Some("apono".into()),
        known_hosts: env.fleet.known_hosts(),
        trust_on_first_use: false,
        connect_timeout: Duration::from_secs(10),
        command_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(60),
    }
}

/// A command whose connection dies after the exec request was sent is reported as lost and
/// is **not** run again on a fresh connection: it may have run (here it did, once). Only a
/// command that cannot have started (no channel could be opened) is retried.
#[test]
fn a_command_whose_connection_dies_is_reported_and_never_run_twice() {
    let _g = crate::e2e::shared();
    let env = Env::new();
    let secrets = SecretStore::new(Some(&env.tmp.path().join("secrets")), None).unwrap();
    let settings = settings(&env);
    let target = Target {
        host: env.fleet.addr(1),
        port: 22,
        user: None,
    };
    // A directory the service account on the fleet host (which shares this /tmp) can write.
    use std::os::unix::fs::PermissionsExt;
    let shared = env.tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(env.tmp.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let marker = shared.join("ran");
    // Record that it ran, then kill this connection's own sshd session process (found by
    // walking up from the shell; never another connection's), while stdin is still coming.
    let script = r#"echo ran >> "$1"
p=$PPID
while [ "$p" -gt 1 ]; do
  case "$(ps -o comm= -p "$p")" in sshd*) kill -KILL "$p"; sleep 5; exit 0;; esac
  p=$(ps -o ppid= -p "$p" | tr -d ' ')
done
exit 3"#;
    let argv: Vec<String> = ["sh", "-c", script, "sh", marker.to_str().unwrap()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let pool = SshPool::default();
    let result = tokio::runtime::Runtime::new().unwrap().block_on(async {
        // A pooled connection first, as a grant's earlier commands leave one.
        let warm = ["true".to_string()];
        let out = pool
            .exec("t", &settings, &secrets, &target, &warm, &[])
            .await
            .unwrap();
        assert_eq!(out.status, 0);
        pool.exec(
            "t",
            &settings,
            &secrets,
            &target,
            &argv,
            &vec![b'x'; 256 * 1024],
        )
        .await
    });
    let ran = std::fs::read_to_string(&marker).unwrap_or_default();
    assert_eq!(ran.lines().count(), 1, "the command ran {ran:?}");
    match result {
        Err(CapError::Unreachable(why)) => {
            assert!(why.contains("not run again"), "{why}");
        }
        other => panic!("a lost connection must be an error, not {other:?}"),
    }
}

/// A service account whose login shell is not POSIX (tcsh here) is refused before its first
/// command: sshd would hand Latch's POSIX quoting to that shell. The command never runs.
#[test]
fn a_service_account_with_a_non_posix_shell_is_refused_before_any_command() {
    let _g = crate::e2e::shared();
    let env = Env::new();
    // svctcsh on host 3: the fleet's service key, tcsh as its login shell.
    let setup = env.fleet.admin(
        3,
        "id svctcsh >/dev/null 2>&1 || { sudo -n useradd -m -s /usr/bin/tcsh svctcsh && \
         sudo -n install -d -m 0700 -o svctcsh /home/svctcsh/.ssh && \
         sudo -n install -m 0600 -o svctcsh /home/apono/.ssh/authorized_keys \
         /home/svctcsh/.ssh/authorized_keys; }",
    );
    assert!(setup.status.success(), "{setup:?}");
    let secrets = SecretStore::new(Some(&env.tmp.path().join("secrets")), None).unwrap();
    let settings = settings(&env);
    let target = Target {
        host: env.fleet.addr(3),
        port: 22,
        user: Some("svctcsh".into()),
    };
    use std::os::unix::fs::PermissionsExt;
    let shared = env.tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(env.tmp.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let marker = shared.join("ran");
    let argv = vec!["touch".to_string(), marker.display().to_string()];
    let result = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(SshPool::default().exec("t", &settings, &secrets, &target, &argv, &[]));
    match result {
        Err(CapError::Denied(why)) => {
            assert!(why.contains("POSIX") && why.contains("svctcsh"), "{why}")
        }
        other => panic!("a non-POSIX login shell must be refused, not {other:?}"),
    }
    assert!(!marker.exists(), "the command ran");
    // The same command as the POSIX service account runs (the refusal is the shell's).
    let apono = Target {
        user: None,
        ..target
    };
    let out = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(SshPool::default().exec("t", &settings, &secrets, &apono, &argv, &[]))
        .unwrap();
    assert_eq!(out.status, 0, "{out:?}");
    assert!(marker.exists());
}
