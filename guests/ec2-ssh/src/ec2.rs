//! EC2's query API as this integration uses it: DescribeInstances (running instances, tag
//! filters, pages) and DescribeRegions, read as a stream of XML events.
//!
//! Read by element *position*, not by name alone: `<item>` nests at several levels and
//! `privateIpAddress` appears under the instance and under each network interface; only the
//! instance's own children count. Element order is not relied on (moto's differs from AWS's).

use latch_guest_sdk::Error;
use latch_guest_sdk::cloud::{self, AwsRequest};
use quick_xml::Reader;
use quick_xml::events::Event;

/// Instances per DescribeInstances page the integration asks for (AWS's most).
pub const PAGE_SIZE: &str = "1000";
/// The most instances one answer may list: AWS pages at 1,000; more is not an answer
/// from EC2, and is refused rather than held in the guest's memory.
pub const MAX_PAGE_INSTANCES: usize = 5000;
/// Most tags kept per instance (EC2 allows 50).
pub const MAX_TAGS: usize = 50;

/// One instance, as DescribeInstances lists it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub state: String,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    pub tags: Vec<(String, String)>,
}

impl Instance {
    /// The value of tag `key`.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// One page of DescribeInstances.
#[derive(Debug, Default)]
pub struct InstancePage {
    pub instances: Vec<Instance>,
    pub next: Option<String>,
}

/// The DescribeInstances request for running instances of `region` with all of `tags`
/// (and, if given, the one instance `id`), from `token`.
pub fn describe_instances(
    region: &str,
    tags: &[(String, String)],
    id: Option<&str>,
    token: Option<&str>,
) -> AwsRequest {
    let mut parameters = Vec::new();
    let mut filter = |name: String, value: &str| {
        let n = parameters.len() / 2 + 1;
        parameters.push((format!("Filter.{n}.Name"), name));
        parameters.push((format!("Filter.{n}.Value.1"), value.to_string()));
    };
    filter("instance-state-name".into(), "running");
    for (k, v) in tags {
        filter(format!("tag:{k}"), v);
    }
    if let Some(id) = id {
        filter("instance-id".into(), id);
    }
    if id.is_none() {
        parameters.push(("MaxResults".into(), PAGE_SIZE.into()));
    }
    if let Some(t) = token {
        parameters.push(("NextToken".into(), t.to_string()));
    }
    AwsRequest {
        service: "ec2".into(),
        region: region.into(),
        action: "DescribeInstances".into(),
        parameters,
    }
}

/// The DescribeRegions request (regions enabled for the account).
pub fn describe_regions(home: &str) -> AwsRequest {
    AwsRequest {
        service: "ec2".into(),
        region: home.into(),
        action: "DescribeRegions".into(),
        parameters: Vec::new(),
    }
}

/// Carry out `requests` together (the host runs them concurrently).
pub fn call_all(requests: &[AwsRequest]) -> Vec<Result<String, Error>> {
    cloud::aws(requests)
}

fn malformed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Failed(format!("{what}: the answer is not EC2's XML: {e}"))
}

/// Walk `xml`, calling `on_end(path, text)` at the end of each element with the path of
/// local names from the root and the element's own text (entities resolved).
fn walk(
    xml: &str,
    what: &str,
    mut on_end: impl FnMut(&[String], &str) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut reader = Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    loop {
        match reader.read_event().map_err(|e| malformed(what, e))? {
            Event::Start(e) => {
                if path.len() >= 32 {
                    return Err(malformed(what, "nested deeper than EC2 nests"));
                }
                path.push(e.local_name().as_ref().to_string());
                text.clear();
            }
            Event::Empty(e) => {
                path.push(e.local_name().as_ref().to_string());
                on_end(&path, "")?;
                path.pop();
            }
            Event::Text(t) => {
                text.push_str(&t.html_content());
            }
            Event::CData(t) => {
                text.push_str(&t.html_content());
            }
            Event::GeneralRef(r) => {
                if let Some(c) = r.resolve_char_ref().map_err(|e| malformed(what, e))? {
                    text.push(c);
                } else {
                    let name: &str = &r;
                    let value = quick_xml::escape::resolve_xml_entity(name)
                        .ok_or_else(|| malformed(what, format!("unknown entity &{name};")))?;
                    text.push_str(value);
                }
            }
            Event::End(_) => {
                on_end(&path, &text)?;
                text.clear();
                path.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !path.is_empty() {
        return Err(malformed(what, "the document ends inside an element"));
    }
    Ok(())
}

/// Read one DescribeInstances page.
pub fn parse_instances(xml: &str, what: &str) -> Result<InstancePage, Error> {
    let mut page = InstancePage::default();
    let mut current = Instance::default();
    let mut tag_key: Option<String> = None;
    let mut tag_value: Option<String> = None;
    let mut root_seen = false;
    walk(xml, what, |path, text| {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        match p.as_slice() {
            ["DescribeInstancesResponse"] => root_seen = true,
            [_, "nextToken"] => page.next = Some(text.to_string()).filter(|t| !t.is_empty()),
            [
                _,
                "reservationSet",
                "item",
                "instancesSet",
                "item",
                rest @ ..,
            ] => match rest {
                [] => {
                    if current.id.is_empty() {
                        return Err(malformed(what, "an instance without instanceId"));
                    }
                    if page.instances.len() >= MAX_PAGE_INSTANCES {
                        return Err(Error::Failed(format!(
                            "{what}: the answer lists more than {MAX_PAGE_INSTANCES} instances \
                             on one page (EC2 pages at 1,000); refused"
                        )));
                    }
                    page.instances.push(std::mem::take(&mut current));
                }
                ["instanceId"] => current.id = text.to_string(),
                ["privateIpAddress"] => current.private_ip = Some(text.to_string()),
                ["ipAddress"] => current.public_ip = Some(text.to_string()),
                ["instanceState", "name"] => current.state = text.to_string(),
                ["tagSet", "item", "key"] => tag_key = Some(text.to_string()),
                ["tagSet", "item", "value"] => tag_value = Some(text.to_string()),
                ["tagSet", "item"] => {
                    if let Some(k) = tag_key.take()
                        && current.tags.len() < MAX_TAGS
                    {
                        current.tags.push((k, tag_value.take().unwrap_or_default()));
                    }
                    tag_value = None;
                }
                _ => {}
            },
            _ => {}
        }
        Ok(())
    })?;
    if !root_seen {
        return Err(malformed(what, "no DescribeInstancesResponse"));
    }
    Ok(page)
}

/// Read DescribeRegions: the region names.
pub fn parse_regions(xml: &str, what: &str) -> Result<Vec<String>, Error> {
    let mut regions = Vec::new();
    let mut root_seen = false;
    walk(xml, what, |path, text| {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        match p.as_slice() {
            ["DescribeRegionsResponse"] => root_seen = true,
            [_, "regionInfo", "item", "regionName"] => regions.push(text.to_string()),
            _ => {}
        }
        Ok(())
    })?;
    if !root_seen {
        return Err(malformed(what, "no DescribeRegionsResponse"));
    }
    Ok(regions)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped as moto 5.2.5 answered (docs/research/cloud-peers.md §4), with an EIP, an ENI
    /// whose privateIpAddress must not be taken, and an escaped tag.
    const PAGE: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15"><nextToken>r-2</nextToken><reservationSet><item><reservationId>r-1</reservationId><instancesSet><item><networkInterfaceSet><item><privateIpAddress>10.9.9.9</privateIpAddress></item></networkInterfaceSet><tagSet><item><key>Name</key><value>web &amp; &lt;db&gt; &#39;1&#39;</value></item><item><key>env</key><value>prod</value></item></tagSet><instanceId>i-8387e5dfb1c132895</instanceId><instanceState><code>16</code><name>running</name></instanceState><privateIpAddress>127.0.12.2</privateIpAddress><ipAddress>127.0.13.2</ipAddress><kernelId>None</kernelId></item><item><instanceId>i-2</instanceId><instanceState><code>16</code><name>running</name></instanceState><privateIpAddress>127.0.12.4</privateIpAddress><tagSet/></item></instancesSet></item></reservationSet></DescribeInstancesResponse>"#;

    #[test]
    fn reads_instances_by_position() {
        let page = parse_instances(PAGE, "t").unwrap();
        assert_eq!(page.next.as_deref(), Some("r-2"));
        assert_eq!(page.instances.len(), 2);
        let a = &page.instances[0];
        assert_eq!(a.id, "i-8387e5dfb1c132895");
        assert_eq!(a.private_ip.as_deref(), Some("127.0.12.2"));
        assert_eq!(a.public_ip.as_deref(), Some("127.0.13.2"));
        assert_eq!(a.tag("Name"), Some("web & <db> '1'"));
        assert_eq!(a.state, "running");
        assert_eq!(page.instances[1].public_ip, None);
    }

    #[test]
    fn malformed_answers_are_errors() {
        for bad in [
            "",
            "not xml",
            "<DescribeInstancesResponse><reservationSet>",
            "<Other/>",
            "<DescribeInstancesResponse><reservationSet><item><instancesSet><item><instanceState/></item></instancesSet></item></reservationSet></DescribeInstancesResponse>",
        ] {
            assert!(parse_instances(bad, "t").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn filters_are_parameters() {
        let r = describe_instances(
            "eu-west-1",
            &[("team".into(), "a&b=c".into())],
            None,
            Some("tok"),
        );
        assert_eq!(
            r.parameters,
            vec![
                (
                    "Filter.1.Name".to_string(),
                    "instance-state-name".to_string()
                ),
                ("Filter.1.Value.1".into(), "running".into()),
                ("Filter.2.Name".into(), "tag:team".into()),
                ("Filter.2.Value.1".into(), "a&b=c".into()),
                ("MaxResults".into(), "1000".into()),
                ("NextToken".into(), "tok".into()),
            ]
        );
    }
}
