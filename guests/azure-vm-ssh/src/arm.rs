//! Azure Resource Manager as this integration reads it: lists followed through every
//! `nextLink`, several at once (the host carries one call's requests out concurrently), and
//! single GETs. Shapes as the published examples of azure-rest-api-specs show them
//! (Compute 2024-07-01, Network 2024-05-01; scale-set NICs 2018-10-01, the version Azure's
//! SDKs use for them).

use latch_guest_sdk::cloud::{self, AzureRequest};
use latch_guest_sdk::{Error, invalid_request};
use serde_json::Value;

/// Compute's api-version.
pub const COMPUTE: &str = "2024-07-01";
/// Network's api-version.
pub const NETWORK: &str = "2024-05-01";
/// The api-version of scale-set VMs' network interfaces (served on Compute's path).
pub const VMSS_NETWORK: &str = "2018-10-01";
/// Most pages followed for one list.
pub const MAX_PAGES: usize = 500;
/// Most items of all lists of one call.
pub const MAX_ITEMS: usize = 50_000;
/// Most requests in one `cloud.azure` call.
const BATCH: usize = 64;

fn request(path: &str, query: Vec<(String, String)>) -> AzureRequest {
    AzureRequest {
        path: path.to_string(),
        query,
    }
}

fn api(version: &str) -> Vec<(String, String)> {
    vec![("api-version".into(), version.into())]
}

fn decode(s: &str) -> Result<String, Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 3 <= bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
                let b = u8::from_str_radix(hex, 16)
                    .map_err(|_| Error::Failed("a nextLink has a bad % escape".into()))?;
                out.push(b);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| Error::Failed("a nextLink is not UTF-8".into()))
}

/// A `nextLink` (an absolute URL) as a request: its path from `/subscriptions/` on, and its
/// query, decoded (the host encodes them again).
pub fn from_link(link: &str) -> Result<AzureRequest, Error> {
    let start = link
        .find("/subscriptions/")
        .ok_or_else(|| Error::Failed("a nextLink is not a Resource Manager link".into()))?;
    let rest = &link[start..];
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut pairs = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        pairs.push((decode(k)?, decode(v)?));
    }
    Ok(request(&decode(path)?, pairs))
}

/// Every item of each list (`value[]`, following `nextLink`), for all `lists` at once.
pub fn list_all(lists: &[(String, Vec<(String, String)>)]) -> Result<Vec<Vec<Value>>, Error> {
    let mut items: Vec<Vec<Value>> = vec![Vec::new(); lists.len()];
    let mut pending: Vec<(usize, AzureRequest)> = lists
        .iter()
        .enumerate()
        .map(|(i, (path, query))| (i, request(path, query.clone())))
        .collect();
    let mut total = 0;
    let mut pages = 0;
    while !pending.is_empty() {
        pages += 1;
        if pages > MAX_PAGES {
            return Err(Error::Failed(format!(
                "a list has more than {MAX_PAGES} pages; refused"
            )));
        }
        let mut next = Vec::new();
        for chunk in pending.chunks(BATCH) {
            let requests: Vec<AzureRequest> = chunk.iter().map(|(_, r)| r.clone()).collect();
            for ((i, r), answer) in chunk.iter().zip(cloud::azure(&requests)) {
                let body = answer?;
                let page: Value = serde_json::from_str(&body).map_err(|e| {
                    Error::Failed(format!("GET {}: the answer is not JSON: {e}", r.path))
                })?;
                let value = page["value"].as_array().ok_or_else(|| {
                    Error::Failed(format!("GET {}: the answer has no value list", r.path))
                })?;
                total += value.len();
                if total > MAX_ITEMS {
                    return Err(Error::Failed(format!(
                        "the lists hold more than {MAX_ITEMS} items; refused"
                    )));
                }
                items[*i].extend(value.iter().cloned());
                if let Some(link) = page["nextLink"].as_str().filter(|l| !l.is_empty()) {
                    next.push((*i, from_link(link)?));
                }
            }
        }
        pending = next;
    }
    Ok(items)
}

/// One GET each (in batches); a 404 is `Ok(None)`.
pub fn get_all(gets: &[(String, Vec<(String, String)>)]) -> Result<Vec<Option<Value>>, Error> {
    let mut out = Vec::with_capacity(gets.len());
    for chunk in gets.chunks(BATCH) {
        let requests: Vec<AzureRequest> =
            chunk.iter().map(|(p, q)| request(p, q.clone())).collect();
        for (r, answer) in requests.iter().zip(cloud::azure(&requests)) {
            match answer {
                Ok(body) => out.push(Some(serde_json::from_str(&body).map_err(|e| {
                    Error::Failed(format!("GET {}: the answer is not JSON: {e}", r.path))
                })?)),
                Err(Error::NotFound(_)) => out.push(None),
                Err(e) => return Err(e),
            }
        }
    }
    Ok(out)
}

/// `(path, [api-version])`.
pub fn at(path: String, version: &str) -> (String, Vec<(String, String)>) {
    (path, api(version))
}

/// Is the VM (or scale-set VM) running, by its instance view's `PowerState/…` status?
pub fn running(instance_view: &Value) -> bool {
    instance_view["statuses"]
        .as_array()
        .is_some_and(|statuses| {
            statuses.iter().any(|s| {
                s["code"]
                    .as_str()
                    .is_some_and(|c| c.eq_ignore_ascii_case("PowerState/running"))
            })
        })
}

/// The primary NIC id among a VM's `networkProfile.networkInterfaces` (the one marked
/// primary, else the only/first).
pub fn primary_nic(vm: &Value) -> Option<String> {
    let nics = vm["properties"]["networkProfile"]["networkInterfaces"].as_array()?;
    nics.iter()
        .find(|n| n["properties"]["primary"].as_bool() == Some(true))
        .or_else(|| nics.first())
        .and_then(|n| n["id"].as_str())
        .map(str::to_string)
}

/// The address of public IP resource `id` (`None` while unallocated or gone).
pub fn public_address(id: String, version: &str) -> Result<Option<String>, Error> {
    Ok(get_all(&[at(id, version)])?
        .pop()
        .flatten()
        .and_then(|p| p["properties"]["ipAddress"].as_str().map(str::to_string)))
}

/// The primary IP configuration's private address (a prefix `a.b.c.d/28` loses its length)
/// and its public address id.
pub fn nic_addresses(nic: &Value) -> (Option<String>, Option<String>) {
    let Some(configs) = nic["properties"]["ipConfigurations"].as_array() else {
        return (None, None);
    };
    let primary = configs
        .iter()
        .find(|c| c["properties"]["primary"].as_bool() == Some(true))
        .or_else(|| configs.first());
    let Some(c) = primary else {
        return (None, None);
    };
    let private = c["properties"]["privateIPAddress"]
        .as_str()
        .map(|a| a.split('/').next().unwrap_or(a).to_string());
    let public = c["properties"]["publicIPAddress"]["id"]
        .as_str()
        .map(str::to_string);
    (private, public)
}

/// The tags of a resource, as pairs.
pub fn tags(resource: &Value) -> Vec<(String, String)> {
    resource["tags"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// A VM, or a scale set's VM, by its resource id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmId {
    Vm {
        subscription: String,
        group: String,
        name: String,
    },
    ScaleSetVm {
        subscription: String,
        group: String,
        scale_set: String,
        instance: String,
    },
}

impl VmId {
    /// Parse an id this integration issued; anything else is an invalid request.
    pub fn parse(id: &str) -> Result<VmId, Error> {
        let bad = || {
            let shown: String = id.chars().take(80).collect();
            invalid_request(format!(
                "{shown:?} is not the resource id of an Azure VM or scale-set VM"
            ))
        };
        if id.len() > 512 {
            return Err(bad());
        }
        let segs: Vec<&str> = id.strip_prefix('/').ok_or_else(bad)?.split('/').collect();
        if !segs.iter().all(|s| crate::config::is_name(s)) {
            return Err(bad());
        }
        let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        match segs.as_slice() {
            [s, sub, r, g, p, c, v, name]
                if eq(s, "subscriptions")
                    && eq(r, "resourceGroups")
                    && eq(p, "providers")
                    && eq(c, "Microsoft.Compute")
                    && eq(v, "virtualMachines")
                    && crate::config::is_guid(sub) =>
            {
                Ok(VmId::Vm {
                    subscription: sub.to_string(),
                    group: g.to_string(),
                    name: name.to_string(),
                })
            }
            [s, sub, r, g, p, c, ss, set, v, i]
                if eq(s, "subscriptions")
                    && eq(r, "resourceGroups")
                    && eq(p, "providers")
                    && eq(c, "Microsoft.Compute")
                    && eq(ss, "virtualMachineScaleSets")
                    && eq(v, "virtualMachines")
                    && crate::config::is_guid(sub)
                    && i.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Ok(VmId::ScaleSetVm {
                    subscription: sub.to_string(),
                    group: g.to_string(),
                    scale_set: set.to_string(),
                    instance: i.to_string(),
                })
            }
            _ => Err(bad()),
        }
    }

    /// Is `id` a Microsoft.Network network interface id (what a VM's NIC reference must be)?
    pub fn parse_nic(id: &str) -> Option<()> {
        let segs: Vec<&str> = id.strip_prefix('/')?.split('/').collect();
        let ok = segs.len() == 8
            && segs.iter().all(|s| crate::config::is_name(s))
            && segs[0].eq_ignore_ascii_case("subscriptions")
            && segs[2].eq_ignore_ascii_case("resourceGroups")
            && segs[4].eq_ignore_ascii_case("providers")
            && segs[5].eq_ignore_ascii_case("Microsoft.Network")
            && segs[6].eq_ignore_ascii_case("networkInterfaces");
        ok.then_some(())
    }

    /// Is `pip` the id of a public address of scale-set VM `vm`'s own NIC:
    /// `{vm}/networkInterfaces/{nic}/ipConfigurations/{ip}/publicIPAddresses/{name}`?
    pub fn is_scale_set_vm_pip(pip: &str, vm: &str) -> bool {
        let Some(rest) = pip
            .get(..vm.len())
            .filter(|head| head.eq_ignore_ascii_case(vm))
            .and_then(|_| pip[vm.len()..].strip_prefix('/'))
        else {
            return false;
        };
        let segs: Vec<&str> = rest.split('/').collect();
        segs.len() == 6
            && segs.iter().all(|s| crate::config::is_name(s))
            && segs[0].eq_ignore_ascii_case("networkInterfaces")
            && segs[2].eq_ignore_ascii_case("ipConfigurations")
            && segs[4].eq_ignore_ascii_case("publicIPAddresses")
    }

    /// Its subscription and resource group.
    pub fn scope(&self) -> (&str, &str) {
        match self {
            VmId::Vm {
                subscription,
                group,
                ..
            }
            | VmId::ScaleSetVm {
                subscription,
                group,
                ..
            } => (subscription, group),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_become_requests() {
        let r = from_link("https://management.azure.com/subscriptions/s/resourceGroups/rg%281%29/providers/Microsoft.Compute/virtualMachines?api-version=2024-07-01&%24skiptoken=a%26b").unwrap();
        assert_eq!(
            r.path,
            "/subscriptions/s/resourceGroups/rg(1)/providers/Microsoft.Compute/virtualMachines"
        );
        assert_eq!(
            r.query,
            vec![
                ("api-version".to_string(), "2024-07-01".to_string()),
                ("$skiptoken".into(), "a&b".into())
            ]
        );
        assert!(from_link("https://evil.example/x").is_err());
    }

    #[test]
    fn ids_are_parsed_strictly() {
        let sub = "00000000-0000-0000-0000-000000000001";
        assert!(matches!(
            VmId::parse(&format!(
                "/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
            )),
            Ok(VmId::Vm { .. })
        ));
        assert!(matches!(
            VmId::parse(&format!(
                "/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/3"
            )),
            Ok(VmId::ScaleSetVm { .. })
        ));
        for bad in [
            format!(
                "/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/../x"
            ),
            format!(
                "/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Storage/virtualMachines/vm"
            ),
            format!(
                "/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/$(id)"
            ),
            "vm1".to_string(),
            "-oProxyCommand=x".to_string(),
        ] {
            assert!(VmId::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_scale_set_vms_public_address_must_be_its_own() {
        let vm = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/3";
        let own =
            format!("{vm}/networkInterfaces/nic0/ipConfigurations/ip1/publicIPAddresses/pub1");
        assert!(VmId::is_scale_set_vm_pip(&own, vm));
        assert!(VmId::is_scale_set_vm_pip(&own.to_ascii_lowercase(), vm));
        for bad in [
            own.replace("virtualMachines/3", "virtualMachines/4"),
            format!("{vm}/networkInterfaces/nic0/ipConfigurations/ip1/publicIPAddresses/../x"),
            format!("{vm}/networkInterfaces/nic0/publicIPAddresses/pub1"),
            format!("{vm}/networkInterfaces/nic0/ipConfigurations/ip1/publicIPAddresses/pub1/x/y"),
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/publicIPAddresses/p"
                .to_string(),
            format!("{vm}3/networkInterfaces/nic0/ipConfigurations/ip1/publicIPAddresses/pub1"),
        ] {
            assert!(!VmId::is_scale_set_vm_pip(&bad, vm), "{bad}");
        }
    }

    #[test]
    fn addresses_and_power() {
        let nic: Value = serde_json::from_str(
            r#"{"properties":{"ipConfigurations":[
            {"properties":{"privateIPAddress":"172.20.2.16/28","primary":false}},
            {"properties":{"privateIPAddress":"172.20.2.4","primary":true,
              "publicIPAddress":{"id":"/subscriptions/s/x/publicIPAddresses/p"}}}]}}"#,
        )
        .unwrap();
        assert_eq!(
            nic_addresses(&nic),
            (
                Some("172.20.2.4".into()),
                Some("/subscriptions/s/x/publicIPAddresses/p".into())
            )
        );
        let iv: Value = serde_json::from_str(r#"{"statuses":[{"code":"ProvisioningState/succeeded"},{"code":"PowerState/running"}]}"#).unwrap();
        assert!(running(&iv));
        let iv: Value =
            serde_json::from_str(r#"{"statuses":[{"code":"PowerState/deallocated"}]}"#).unwrap();
        assert!(!running(&iv));
    }
}
