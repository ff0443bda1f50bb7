//! The AWS credentials chain's keyless links, end to end: **web identity** (a token file and
//! a role, exchanged by STS `AssumeRoleWithWebIdentity`, as EKS pods get theirs),
//! **container credentials** (as ECS tasks and EKS Pod Identity get theirs) and **instance
//! metadata, IMDSv2** (as an EC2 instance gets its role's). Both are served by
//! `tests/cloud/aws_identity_peer.py`, which checks what AWS checks first (the token, the
//! role, an unsigned call; IMDSv2's session token) and hands out **moto's** own temporary
//! credentials for the role `latch-connector`: moto then checks their signature, session
//! token and the role's policy on every EC2 and Secrets Manager call.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::ec2::{
    cloud, endpoint, grant_env, key_in_secrets_manager, repo, resources, revoke, run, serial,
};
use crate::fleet::cert_login;

const PORT: u16 = 25200;
const ROLE: &str = "arn:aws:iam::123456789012:role/latch-connector";

/// The peer's directory: `fixture.json`, `token` (the identity provider's token), and
/// `requests.log` (one line per request).
fn identity() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let c = cloud();
        let dir = repo().join("target/aws-identity-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let token = format!("eyJhbGciOiJSUzI1NiJ9.{}", rand_hex());
        std::fs::write(dir.join("token"), &token).unwrap();
        std::fs::write(dir.join("container-token"), rand_hex()).unwrap();
        let fixture = serde_json::json!({
            "moto": endpoint(),
            "credentials": c.moto.join("credentials"),
            "role_arn": ROLE,
            "token_file": dir.join("token"),
            "container_token_file": dir.join("container-token"),
        });
        std::fs::write(dir.join("fixture.json"), fixture.to_string()).unwrap();
        run(
            Command::new("bash")
                .arg(repo().join("tests/cloud/peer.sh"))
                .arg("up")
                .arg(&dir)
                .arg(PORT.to_string())
                .arg(repo().join("tests/cloud/aws_identity_peer.py"))
                .arg(dir.join("fixture.json")),
            "peer.sh up aws_identity_peer.py",
        );
        dir
    })
}

fn rand_hex() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The peer's log since `from` lines.
fn log_since(from: usize) -> Vec<String> {
    let text = std::fs::read_to_string(identity().join("requests.log")).unwrap();
    text.lines().skip(from).map(str::to_string).collect()
}

fn log_len() -> usize {
    log_since(0).len()
}

fn peer_url() -> String {
    format!("http://127.0.0.1:{PORT}")
}

/// `[integration.aws]` with no profile: the chain decides.
const AWS: &str = "read = [\"ec2:DescribeInstances\"]\nregions = [\"us-east-1\", \"eu-west-1\"]";

#[test]
fn web_identity_is_exchanged_once_per_process_and_its_credentials_grant() {
    let _one = serial();
    let c = cloud();
    let dir = identity();
    let token_file = dir.join("token");
    let (_tmp, config) = c.env_with(AWS, "fleet-key", "");
    let nowhere = dir.join("no-such-credentials");
    let env = [
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()),
        ("AWS_ROLE_ARN", ROLE),
        ("AWS_ROLE_SESSION_NAME", "latch-tests"),
        ("AWS_ENDPOINT_URL_STS", &peer_url()),
        // No key on disk to fall back on.
        ("AWS_SHARED_CREDENTIALS_FILE", nowhere.to_str().unwrap()),
    ];

    // Two regions asked concurrently: one exchange.
    let from = log_len();
    let listed = resources(&config, &env).unwrap();
    assert!(listed.contains(c.id("web-1")) && listed.contains(c.id("web-2")));
    assert_eq!(log_since(from), ["STS AssumeRoleWithWebIdentity ok"]);

    let granted = grant_env(&config, c.id("web-1"), "wendy.ec2@example.com", &env).unwrap();
    let login = cert_login(&c.fleet.join("known_hosts"), &granted, "id -un");
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    revoke(&config, &granted, &env);
    assert!(
        !cert_login(&c.fleet.join("known_hosts"), &granted, "true")
            .status
            .success()
    );
}

#[test]
fn a_refused_web_identity_is_a_clear_error_that_quotes_no_token() {
    let _one = serial();
    let c = cloud();
    let dir = identity();
    let before = c.snapshots();
    let (_tmp, config) = c.env_with(AWS, "fleet-key", "");
    let wrong = dir.join("wrong-token");
    let secret = format!("eyJ.{}", rand_hex());
    std::fs::write(&wrong, &secret).unwrap();
    let url = peer_url();
    let base = [
        ("AWS_ROLE_ARN", ROLE),
        ("AWS_ENDPOINT_URL_STS", url.as_str()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
    ];
    let with = |extra: &[(&'static str, &str)]| {
        let mut env: Vec<(&str, &str)> = base.to_vec();
        env.extend_from_slice(extra);
        grant_env(&config, c.id("web-1"), "mallory.ec2@example.com", &env).unwrap_err()
    };

    let from = log_len();
    let err = with(&[("AWS_WEB_IDENTITY_TOKEN_FILE", wrong.to_str().unwrap())]);
    assert!(
        err.contains("web identity") && err.contains("InvalidIdentityToken"),
        "{err}"
    );
    assert!(!err.contains(&secret), "the token leaked: {err}");
    assert_eq!(
        log_since(from),
        ["STS AssumeRoleWithWebIdentity token"],
        "asked once: a refused token is neither retried nor asked again at once"
    );

    let token = dir.join("token");
    let token = token.to_str().unwrap();
    let err = with(&[
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token),
        (
            "AWS_ROLE_ARN",
            "arn:aws:iam::123456789012:role/someone-else",
        ),
    ]);
    assert!(err.contains("AccessDenied"), "{err}");

    // Checked before anything is sent.
    let from = log_len();
    for (var, value, says) in [
        (
            "AWS_ROLE_ARN",
            "arn:aws:iam::1:role/$(id)",
            "not a role ARN",
        ),
        (
            "AWS_ROLE_SESSION_NAME",
            "a;rm -rf /",
            "AWS_ROLE_SESSION_NAME",
        ),
        (
            "AWS_ENDPOINT_URL_STS",
            "http://sts.example.com",
            "AWS_ENDPOINT_URL_STS",
        ),
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "/nonexistent/token",
            "cannot read the token file",
        ),
    ] {
        let mut extra = vec![("AWS_WEB_IDENTITY_TOKEN_FILE", token)];
        extra.push((var, value));
        let err = with(&extra);
        assert!(err.contains(says), "{var}={value}: {err}");
    }
    assert!(log_since(from).is_empty(), "{:?}", log_since(from));
    assert_eq!(c.snapshots(), before, "a host changed");
}

#[test]
fn instance_metadata_v2_credentials_sign_ec2_and_secrets_manager() {
    let _one = serial();
    let c = cloud();
    identity();
    // The service key in Secrets Manager: read with the instance role's credentials too.
    let name = format!("latch/ssh/imds-{}", rand_hex());
    let stores = key_in_secrets_manager(c, &name);
    let (tmp, config) = c.env_with(AWS, &format!("aws:{name}"), &stores);
    std::fs::remove_file(tmp.path().join("secrets/fleet-key")).unwrap();
    let url = peer_url();
    let env = [
        ("AWS_EC2_METADATA_DISABLED", "false"),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", url.as_str()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
    ];

    let from = log_len();
    let granted = grant_env(&config, c.id("web-1"), "ingrid.ec2@example.com", &env).unwrap();
    // One session token, the role, its credentials, once for the process; never a GET
    // without the token (IMDSv1).
    assert_eq!(
        log_since(from),
        [
            "IMDS token ttl=21600",
            "IMDS GET role",
            "IMDS GET credentials"
        ]
    );
    assert!(
        cert_login(&c.fleet.join("known_hosts"), &granted, "true")
            .status
            .success()
    );
    revoke(&config, &granted, &env);

    // No metadata service, or one that is not the link-local address: a clear error, and
    // nothing reached a host.
    let before = c.snapshots();
    for (endpoint, says) in [
        (
            "http://127.0.0.1:1",
            "instance metadata at http://127.0.0.1:1/",
        ),
        (
            "http://metadata.example.com",
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        ),
    ] {
        let env = [
            ("AWS_EC2_METADATA_DISABLED", "false"),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
        ];
        let err = grant_env(&config, c.id("web-1"), "ingrid.ec2@example.com", &env).unwrap_err();
        assert!(err.contains(says), "{endpoint}: {err}");
    }
    let err = grant_env(
        &config,
        c.id("web-1"),
        "ingrid.ec2@example.com",
        &[("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")],
    )
    .unwrap_err();
    assert!(
        err.contains("no AWS credentials") && err.contains("AWS_EC2_METADATA_DISABLED"),
        "{err}"
    );
    assert_eq!(c.snapshots(), before, "a host changed");
}

#[test]
fn container_credentials_come_with_the_agents_token() {
    let _one = serial();
    let c = cloud();
    let dir = identity();
    let (_tmp, config) = c.env_with(AWS, "fleet-key", "");
    let url = format!("{}/v1/credentials", peer_url());
    let good = dir.join("container-token");
    let env = |token: &std::path::Path| {
        vec![
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", url.clone()),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                token.to_str().unwrap().to_string(),
            ),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".to_string()),
        ]
    };
    let run = |v: Vec<(&'static str, String)>| {
        let pairs: Vec<(&str, &str)> = v.iter().map(|(k, v)| (*k, v.as_str())).collect();
        resources(&config, &pairs)
    };

    let from = log_len();
    let listed = run(env(&good)).unwrap();
    assert!(listed.contains(c.id("web-1")), "{listed}");
    assert_eq!(
        log_since(from),
        ["CONTAINER credentials"],
        "one fetch for two regions"
    );

    // Another token: refused by the agent, the token quoted nowhere, no host reached.
    let before = c.snapshots();
    let wrong = dir.join("wrong-container-token");
    let secret = rand_hex();
    std::fs::write(&wrong, &secret).unwrap();
    let err = run(env(&wrong)).unwrap_err();
    assert!(
        err.contains("container credentials") && err.contains("HTTP 401"),
        "{err}"
    );
    assert!(!err.contains(&secret), "the token leaked: {err}");
    // Plain http to anything but the agents or loopback is refused before sending.
    let mut far = env(&good);
    far[0].1 = "http://creds.example.com/v1/credentials".into();
    let err = run(far).unwrap_err();
    assert!(err.contains("AWS_CONTAINER_CREDENTIALS_FULL_URI"), "{err}");
    assert_eq!(c.snapshots(), before, "a host changed");
}
