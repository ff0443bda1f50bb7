//! Latch integration `ec2-ssh`: just-in-time access to AWS EC2 instances over SSH.
//!
//! Finds instances with the `cloud` capability (the host signs; this guest never sees a
//! credential): running instances of the configured regions — all at once, the host carries
//! out one call's requests concurrently — that carry every configured tag. An instance is a
//! resource: id = instance id, name = its `Name` tag, tags kept (plus `region`).
//!
//! What happens on an instance is exactly what `ssh-servers` does on a server:
//! `latch_guest_sdk::linux::runbook` (grant, revoke, cleanup, service-key rotation), over the
//! `ssh` capability, at the address the config names (private IP, public IP, or a tag's
//! value). A grant keeps that address in its state, so its revoke reaches the instance even
//! after discovery stops listing it or its public IP changes.

mod config;
mod ec2;

use config::{Address, Config, Regions};
use ec2::Instance;
use latch_guest_sdk::linux::runbook::{self, Place};
use latch_guest_sdk::{
    CredentialKind, Error, GrantRequest, Granted, Integration, Lifecycle, Metadata, Page, Resource,
    ServiceCredential, Target, invalid_request,
};

struct Ec2Ssh;

/// Regions whose accounts are another partition's (China, GovCloud): never listed by "all".
const OTHER_PARTITIONS: &[&str] = &["cn-", "us-gov-", "us-iso"];

impl Integration for Ec2Ssh {
    fn describe() -> Metadata {
        Metadata {
            name: "ec2-ssh".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Just-in-time access to AWS EC2 instances over SSH, with short-lived \
                          certificates"
                .into(),
            config_schema: include_str!("../schema.json").into(),
            credential: CredentialKind::SshCertificate,
        }
    }

    fn validate(config: String) -> Result<Lifecycle, Error> {
        let config = Config::parse(&config)?;
        Ok(config.account.lifecycle(Some(config.user.clone())))
    }

    fn discover(config: String, cursor: Option<String>) -> Result<Page, Error> {
        let config = Config::parse(&config)?;
        let tags: Vec<(String, String)> = config.tags.clone().into_iter().collect();
        // The cursor: the regions with more pages, and their tokens.
        let pending: Vec<(String, Option<String>)> = match cursor {
            None => regions(&config)?.into_iter().map(|r| (r, None)).collect(),
            Some(c) => serde_json::from_str::<Vec<(String, String)>>(&c)
                .ok()
                .filter(|v| !v.is_empty() && v.iter().all(|(r, _)| config::is_region(r)))
                .ok_or_else(|| invalid_request("not a cursor of this integration"))?
                .into_iter()
                .map(|(r, t)| (r, Some(t)))
                .collect(),
        };
        let requests: Vec<_> = pending
            .iter()
            .map(|(r, t)| ec2::describe_instances(r, &tags, None, t.as_deref()))
            .collect();
        let answers = ec2::call_all(&requests);
        let address = config.address()?;
        let mut resources = Vec::new();
        let mut next = Vec::new();
        for ((region, _), answer) in pending.iter().zip(answers) {
            let what = format!("ec2 DescribeInstances in {region}");
            let page = ec2::parse_instances(&answer?, &what)?;
            for instance in &page.instances {
                if instance.state == "running" {
                    resources.push(resource(&config, region, instance, &address));
                }
            }
            if let Some(token) = page.next {
                next.push((region.clone(), token));
            }
        }
        Ok(Page {
            resources,
            next: (!next.is_empty())
                .then(|| serde_json::to_string(&next).expect("strings serialize")),
        })
    }

    fn grant(config: String, request: GrantRequest) -> Result<Granted, Error> {
        let config = Config::parse(&config)?;
        runbook::grant_found(&config.account, &request, || {
            Ok(find(&config, &request.resource_id)?.0)
        })
    }

    fn revoke(config: String, request: GrantRequest) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        // Only an instance that is gone (or no longer running, or no longer tagged for this
        // integration) is "nothing to do"; one found without an address to reach is an
        // error, so the revoke is retried and seen, never skipped.
        runbook::revoke_found(&request, || match find(&config, &request.resource_id) {
            Ok((at, _)) => Ok(Some(at)),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        })
    }

    fn cleanup(config: String, request: GrantRequest, username: String) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        runbook::cleanup_found(&request, &username, || {
            Ok(find(&config, &request.resource_id)?.0)
        })
    }

    fn add_service_credential(
        config: String,
        resource_id: String,
        credential: ServiceCredential,
    ) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        runbook::add_service_key(&find(&config, &resource_id)?.0, &credential)
    }

    fn remove_service_credential(
        config: String,
        resource_id: String,
        credential: ServiceCredential,
    ) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        runbook::remove_service_key(&find(&config, &resource_id)?.0, &credential)
    }
}

/// The regions to look in: the list, or every enabled region of the account's partition.
fn regions(config: &Config) -> Result<Vec<String>, Error> {
    match &config.regions {
        Regions::List(list) => Ok(list.clone()),
        Regions::All(_) => {
            let what = format!("ec2 DescribeRegions in {}", config.home_region);
            let answer = ec2::call_all(&[ec2::describe_regions(&config.home_region)])
                .pop()
                .expect("one request, one answer")?;
            let mut all = ec2::parse_regions(&answer, &what)?;
            all.retain(|r| {
                config::is_region(r) && !OTHER_PARTITIONS.iter().any(|p| r.starts_with(p))
            });
            all.sort();
            all.dedup();
            if all.is_empty() {
                return Err(Error::Failed(format!("{what}: no region is enabled")));
            }
            Ok(all)
        }
    }
}

/// An instance id as EC2 makes them: `i-` and 8 or 17 hex digits. Checked before any call,
/// so a hostile resource id never reaches AWS.
fn check_instance_id(id: &str) -> Result<(), Error> {
    let ok = id.strip_prefix("i-").is_some_and(|hex| {
        (8..=17).contains(&hex.len())
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if !ok {
        let shown: String = id.chars().take(64).collect();
        return Err(invalid_request(format!(
            "{shown:?} is not an EC2 instance id (i- and 8 to 17 hex digits)"
        )));
    }
    Ok(())
}

/// The running instance `id` among the configured regions and tags, and where to reach it.
/// An instance outside them is unknown to this integration.
fn find(config: &Config, id: &str) -> Result<(Place, Instance), Error> {
    check_instance_id(id)?;
    let tags: Vec<(String, String)> = config.tags.clone().into_iter().collect();
    let regions = regions(config)?;
    let requests: Vec<_> = regions
        .iter()
        .map(|r| ec2::describe_instances(r, &tags, Some(id), None))
        .collect();
    let mut found = Vec::new();
    for (region, answer) in regions.iter().zip(ec2::call_all(&requests)) {
        let what = format!("ec2 DescribeInstances in {region}");
        let body = match answer {
            Ok(body) => body,
            // Not in this region (EC2's own "no such instance"): look on in the others.
            Err(Error::NotFound(_)) => continue,
            Err(e) => return Err(e),
        };
        let page = ec2::parse_instances(&body, &what)?;
        found.extend(
            page.instances
                .into_iter()
                .filter(|i| i.id == id && i.state == "running"),
        );
    }
    let Some(instance) = found.pop() else {
        return Err(Error::NotFound(format!(
            "no running instance {id} in regions [{}] with this integration's tags",
            regions.join(", ")
        )));
    };
    let host = address_of(&instance, &config.address()?)?;
    let place = Place {
        name: instance.id.clone(),
        target: Target {
            host,
            port: config.port,
            user: Some(config.user.clone()),
        },
    };
    Ok((place, instance))
}

/// The address of `instance` the config asks for, checked as an address or host name.
fn address_of(instance: &Instance, address: &Address) -> Result<String, Error> {
    let (value, what) = match address {
        Address::PrivateIp => (instance.private_ip.as_deref(), "private IP".to_string()),
        Address::PublicIp => (instance.public_ip.as_deref(), "public IP".to_string()),
        Address::Tag(key) => (instance.tag(key), format!("tag {key:?}")),
    };
    let value = value.filter(|v| !v.is_empty()).ok_or_else(|| {
        invalid_request(format!(
            "instance {} has no {what} to connect to",
            instance.id
        ))
    })?;
    let host_like = value.len() <= 253
        && !value.starts_with(['-', '.'])
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b));
    if !host_like {
        let shown: String = value.chars().take(64).collect();
        return Err(invalid_request(format!(
            "instance {}: its {what} {shown:?} is not an address or host name",
            instance.id
        )));
    }
    Ok(value.to_string())
}

/// One resource per running instance. Permissions are the configured groups: discovery
/// does not log in to thousands of instances to check each; a grant's probe refuses a group
/// an instance lacks, before changing anything.
fn resource(config: &Config, region: &str, instance: &Instance, address: &Address) -> Resource {
    let mut tags = instance.tags.clone();
    tags.push(("region".into(), region.into()));
    if let Ok(host) = address_of(instance, address) {
        tags.push(("address".into(), host));
    }
    let permissions = config.account.permissions();
    Resource {
        id: instance.id.clone(),
        name: instance.tag("Name").unwrap_or(&instance.id).to_string(),
        kind: "linux-server".into(),
        tags,
        permissions,
    }
}

latch_guest_sdk::export!(Ec2Ssh);
