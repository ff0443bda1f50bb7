//! Latch integration `azure-vm-ssh`: just-in-time access to Azure virtual machines — and
//! the VMs of (Uniform) scale sets — over SSH.
//!
//! Finds VMs with the `cloud` capability (`cloud.azure`: the host holds the token; this
//! guest never sees it): in each configured subscription (or each listed resource group),
//! the VMs, network interfaces, public addresses and scale sets, every `nextLink` followed,
//! all lists at once; then each candidate's instance view (running only). A VM is a
//! resource: id = its resource id, name = its name, tags kept (plus `subscription`,
//! `resource_group`, `address`). Tags filter exactly (Azure lists have no tag filter).
//!
//! What happens on a VM is `ssh-servers`' logic, `latch_guest_sdk::linux::runbook`, at its
//! primary NIC's private address (or its public one); the grant keeps the address, so its
//! revoke reaches the VM after it left discovery or changed address.

mod arm;
mod config;

use std::collections::BTreeMap;

use arm::{COMPUTE, NETWORK, VMSS_NETWORK, VmId, at};
use config::Config;
use latch_guest_sdk::linux::runbook::{self, Place};
use latch_guest_sdk::{
    CredentialKind, Error, GrantRequest, Granted, Integration, Lifecycle, Metadata, Page, Resource,
    ServiceCredential, Target, invalid_request,
};
use serde_json::Value;

struct AzureVmSsh;

/// A VM found, with what a grant needs.
struct Found {
    id: String,
    name: String,
    subscription: String,
    group: String,
    tags: Vec<(String, String)>,
    address: Option<String>,
}

impl Integration for AzureVmSsh {
    fn describe() -> Metadata {
        Metadata {
            name: "azure-vm-ssh".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Just-in-time access to Azure VMs and scale-set VMs over SSH, with \
                          short-lived certificates"
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
        if cursor.is_some() {
            return Err(invalid_request("not a cursor of this integration"));
        }
        let found = discover_all(&config)?;
        let permissions = config.account.permissions();
        Ok(Page {
            resources: found
                .into_iter()
                .map(|f| {
                    let mut tags = f.tags;
                    tags.push(("subscription".into(), f.subscription));
                    tags.push(("resource_group".into(), f.group));
                    if let Some(a) = f.address {
                        tags.push(("address".into(), a));
                    }
                    Resource {
                        id: f.id,
                        name: f.name,
                        kind: "linux-server".into(),
                        tags,
                        permissions: permissions.clone(),
                    }
                })
                .collect(),
            next: None,
        })
    }

    fn grant(config: String, request: GrantRequest) -> Result<Granted, Error> {
        let config = Config::parse(&config)?;
        runbook::grant_found(&config.account, &request, || {
            find(&config, &request.resource_id)
        })
    }

    fn revoke(config: String, request: GrantRequest) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        runbook::revoke_found(&request, || match find(&config, &request.resource_id) {
            Ok(at) => Ok(Some(at)),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        })
    }

    fn cleanup(config: String, request: GrantRequest, username: String) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        runbook::cleanup_found(&request, &username, || find(&config, &request.resource_id))
    }

    fn add_service_credential(
        config: String,
        resource_id: String,
        credential: ServiceCredential,
    ) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        runbook::add_service_key(&find(&config, &resource_id)?, &credential)
    }

    fn remove_service_credential(
        config: String,
        resource_id: String,
        credential: ServiceCredential,
    ) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        runbook::remove_service_key(&find(&config, &resource_id)?, &credential)
    }
}

fn has_tags(config: &Config, tags: &[(String, String)]) -> bool {
    config
        .tags
        .iter()
        .all(|(k, v)| tags.iter().any(|(tk, tv)| tk == k && tv == v))
}

/// The subscription and resource group of a resource id.
fn scope_of(id: &str) -> Option<(String, String)> {
    let segs: Vec<&str> = id.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        [s, sub, r, g, ..]
            if s.eq_ignore_ascii_case("subscriptions")
                && r.eq_ignore_ascii_case("resourceGroups") =>
        {
            Some((sub.to_string(), g.to_string()))
        }
        _ => None,
    }
}

/// Every running VM (and scale-set VM) with the tags, in scope.
fn discover_all(config: &Config) -> Result<Vec<Found>, Error> {
    let public = config.address == "public_ip";
    let mut lists = Vec::new();
    for scope in config.scopes() {
        lists.push(at(
            format!("{scope}/providers/Microsoft.Compute/virtualMachines"),
            COMPUTE,
        ));
        lists.push(at(
            format!("{scope}/providers/Microsoft.Network/networkInterfaces"),
            NETWORK,
        ));
        lists.push(at(
            format!("{scope}/providers/Microsoft.Network/publicIPAddresses"),
            NETWORK,
        ));
        lists.push(at(
            format!("{scope}/providers/Microsoft.Compute/virtualMachineScaleSets"),
            COMPUTE,
        ));
    }
    if !public {
        lists.retain(|(p, _)| !p.ends_with("/publicIPAddresses"));
    }
    if !config.scale_sets {
        lists.retain(|(p, _)| !p.ends_with("/virtualMachineScaleSets"));
    }
    let answers = arm::list_all(&lists)?;
    let mut vms = Vec::new();
    let mut nics: BTreeMap<String, Value> = BTreeMap::new();
    let mut pips: BTreeMap<String, String> = BTreeMap::new();
    let mut sets = Vec::new();
    for ((path, _), items) in lists.iter().zip(answers) {
        for item in items {
            let id = item["id"].as_str().unwrap_or_default().to_ascii_lowercase();
            if path.ends_with("/virtualMachines") {
                vms.push(item);
            } else if path.ends_with("/networkInterfaces") {
                nics.insert(id, item);
            } else if path.ends_with("/publicIPAddresses") {
                if let Some(ip) = item["properties"]["ipAddress"].as_str() {
                    pips.insert(id, ip.to_string());
                }
            } else {
                sets.push(item);
            }
        }
    }
    let address_of = |nic: Option<&Value>| -> Option<String> {
        let (private, public_id) = arm::nic_addresses(nic?);
        if public {
            pips.get(&public_id?.to_ascii_lowercase()).cloned()
        } else {
            private
        }
    };

    // Plain VMs: tags, then the instance view of each candidate (one GET each, batched).
    let candidates: Vec<Value> = vms
        .into_iter()
        .filter(|vm| has_tags(config, &arm::tags(vm)))
        .filter(|vm| {
            vm["id"]
                .as_str()
                .and_then(scope_of)
                .is_some_and(|(s, g)| config.in_scope(&s, &g))
        })
        .collect();
    let views = arm::get_all(
        &candidates
            .iter()
            .map(|vm| {
                at(
                    format!("{}/instanceView", vm["id"].as_str().unwrap_or("")),
                    COMPUTE,
                )
            })
            .collect::<Vec<_>>(),
    )?;
    let mut found = Vec::new();
    for (vm, view) in candidates.iter().zip(views) {
        if !view.as_ref().is_some_and(arm::running) {
            continue;
        }
        let id = vm["id"].as_str().unwrap_or_default().to_string();
        let (subscription, group) = scope_of(&id).unwrap_or_default();
        let nic = arm::primary_nic(vm).and_then(|n| nics.get(&n.to_ascii_lowercase()));
        found.push(Found {
            name: vm["name"].as_str().unwrap_or(&id).to_string(),
            address: address_of(nic),
            tags: arm::tags(vm),
            id,
            subscription,
            group,
        });
    }

    // Scale sets: their VMs (instance view expanded), NICs and public IPs, all sets at once.
    let sets: Vec<Value> = sets
        .into_iter()
        .filter(|s| has_tags(config, &arm::tags(s)))
        .collect();
    if sets.is_empty() {
        return Ok(found);
    }
    // Per set: its VMs, their NICs, and (for public_ip) their public addresses, which live
    // under Compute as the set's own list.
    let per_set = if public { 3 } else { 2 };
    let mut set_lists = Vec::new();
    for s in &sets {
        let id = s["id"].as_str().unwrap_or_default();
        let mut vms = at(format!("{id}/virtualMachines"), COMPUTE);
        vms.1.push(("$expand".into(), "instanceView".into()));
        set_lists.push(vms);
        set_lists.push(at(format!("{id}/networkInterfaces"), VMSS_NETWORK));
        if public {
            set_lists.push(at(format!("{id}/publicipaddresses"), VMSS_NETWORK));
        }
    }
    let answers = arm::list_all(&set_lists)?;
    for (s, lists) in sets.iter().zip(answers.chunks(per_set)) {
        let set_nics: BTreeMap<String, &Value> = lists[1]
            .iter()
            .map(|n| (n["id"].as_str().unwrap_or_default().to_ascii_lowercase(), n))
            .collect();
        let set_pips: BTreeMap<String, &str> = lists
            .get(2)
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let ip = p["properties"]["ipAddress"].as_str()?;
                Some((p["id"].as_str()?.to_ascii_lowercase(), ip))
            })
            .collect();
        for vm in &lists[0] {
            if !arm::running(&vm["properties"]["instanceView"]) {
                continue;
            }
            let id = vm["id"].as_str().unwrap_or_default().to_string();
            let (subscription, group) = scope_of(&id).unwrap_or_default();
            if !config.in_scope(&subscription, &group) {
                continue;
            }
            let nic =
                arm::primary_nic(vm).and_then(|n| set_nics.get(&n.to_ascii_lowercase()).copied());
            let mut tags = arm::tags(s);
            tags.extend(arm::tags(vm));
            let (private, public_id) = nic.map(arm::nic_addresses).unwrap_or_default();
            found.push(Found {
                name: vm["name"].as_str().unwrap_or(&id).to_string(),
                address: if public {
                    public_id
                        .and_then(|p| set_pips.get(&p.to_ascii_lowercase()))
                        .map(|ip| ip.to_string())
                } else {
                    private
                },
                tags,
                id,
                subscription,
                group,
            });
        }
    }
    Ok(found)
}

/// The running VM `id` in scope, with the configured tags, and where to reach it. Anything
/// else is unknown to this integration.
fn find(config: &Config, id: &str) -> Result<Place, Error> {
    let vm_id = VmId::parse(id)?;
    let (sub, group) = vm_id.scope();
    if !config.in_scope(sub, group) {
        return Err(invalid_request(format!(
            "{id} is outside this integration's subscriptions and resource groups"
        )));
    }
    let unknown = || Error::NotFound(format!("no running VM {id} with this integration's tags"));
    let public = config.address == "public_ip";
    let address = match &vm_id {
        VmId::Vm { .. } => {
            let got = arm::get_all(&[
                at(id.to_string(), COMPUTE),
                at(format!("{id}/instanceView"), COMPUTE),
            ])?;
            let (Some(vm), Some(view)) = (&got[0], &got[1]) else {
                return Err(unknown());
            };
            if !has_tags(config, &arm::tags(vm)) || !arm::running(view) {
                return Err(unknown());
            }
            let nic_id = arm::primary_nic(vm)
                .ok_or_else(|| invalid_request(format!("VM {id} has no network interface")))?;
            if VmId::parse_nic(&nic_id).is_none() {
                return Err(Error::Failed(format!(
                    "VM {id}: its NIC id is not a Network one"
                )));
            }
            let nic = arm::get_all(&[at(nic_id.clone(), NETWORK)])?
                .pop()
                .flatten()
                .ok_or_else(|| Error::Failed(format!("VM {id}: its NIC {nic_id} is gone")))?;
            let (private, public_id) = arm::nic_addresses(&nic);
            if public {
                let pip_id = public_id
                    .ok_or_else(|| invalid_request(format!("VM {id} has no public IP address")))?;
                arm::public_address(pip_id, NETWORK)?
            } else {
                private
            }
        }
        VmId::ScaleSetVm { .. } => {
            let set_id = id.rsplitn(3, '/').nth(2).unwrap_or_default().to_string();
            let mut vm_get = at(id.to_string(), COMPUTE);
            vm_get.1.push(("$expand".into(), "instanceView".into()));
            let got = arm::get_all(&[at(set_id, COMPUTE), vm_get])?;
            let (Some(set), Some(vm)) = (&got[0], &got[1]) else {
                return Err(unknown());
            };
            let mut tags = arm::tags(set);
            tags.extend(arm::tags(vm));
            if !has_tags(config, &tags) || !arm::running(&vm["properties"]["instanceView"]) {
                return Err(unknown());
            }
            let nics = arm::list_all(&[at(format!("{id}/networkInterfaces"), VMSS_NETWORK)])?
                .pop()
                .unwrap_or_default();
            let nic = nics
                .iter()
                .find(|n| n["properties"]["primary"].as_bool() == Some(true))
                .or_else(|| nics.first());
            let (private, public_id) = nic.map(arm::nic_addresses).unwrap_or_default();
            if public {
                // A scale-set VM's public address is a child of its own NIC, under Compute.
                let pip_id = public_id
                    .filter(|p| VmId::is_scale_set_vm_pip(p, id))
                    .ok_or_else(|| invalid_request(format!("VM {id} has no public IP address")))?;
                arm::public_address(pip_id, VMSS_NETWORK)?
            } else {
                private
            }
        }
    };
    let host = address
        .filter(|a| {
            !a.is_empty()
                && a.len() <= 64
                && a.bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':')
        })
        .ok_or_else(|| invalid_request(format!("VM {id} has no usable address to connect to")))?;
    Ok(Place {
        name: id.rsplit('/').next().unwrap_or(id).to_string(),
        target: Target {
            host,
            port: config.port,
            user: Some(config.user.clone()),
        },
    })
}

latch_guest_sdk::export!(AzureVmSsh);
