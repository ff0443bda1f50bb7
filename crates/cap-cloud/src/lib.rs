//! `cloud.aws` (and `cloud.azure`, in [`azure`]): a cloud API called with credentials the
//! host holds.
//!
//! Defends against a guest reaching further into a cloud account than it was lent, and
//! against the connector's cloud credentials leaving the host:
//! - a call names a service, region, action and parameters, never a URL or a header: the
//!   host builds the request (query protocol, form body), so a parameter value is always
//!   data, whatever it holds (URL, XML or shell syntax is percent-encoded);
//! - `[integration.aws]` lists the actions a guest may call (`read`: carried out in a plan
//!   too; `change`: recorded in a plan) and the regions; anything else is refused before
//!   anything is signed or sent, and recorded;
//! - the host signs (SigV4, [`sigv4`]) with credentials resolved at each call ([`creds`]);
//!   the guest gets the answer's body only, never a credential, token or signature; records
//!   hold the call (service, region, action, parameters), which carries no secret;
//! - TLS is verified (rustls); an `endpoint` override (tests, VPC endpoints) may be plain
//!   HTTP only on a loopback address; no proxy from the environment, no redirects;
//! - answers are bounded ([`MAX_ANSWER`]), so a hostile or broken endpoint cannot exhaust
//!   the host; throttling and server errors are retried with backoff inside a budget.

pub mod azure;
pub mod kit;
pub mod live;
pub mod table;
pub mod wit;

use std::collections::BTreeSet;

use serde::Serialize;

pub use azure::{AzureCall, AzurePolicy};
/// The largest answer body the host accepts (a DescribeInstances page of 1,000 instances
/// is about 3 MB).
pub use latch_cloud_auth::answer::MAX_ANSWER;
/// AWS signing, credentials and the token memo: below this capability and the secret stores.
pub use latch_cloud_auth::{creds, memo, sigv4};

use latch_cap::CallState;
use latch_cap::{Answered, Call, CapError, CapReply, Effect, check_text, record_of};

/// Most parameters of one call.
pub const MAX_PARAMETERS: usize = 200;
/// Most bytes of one parameter value.
pub const MAX_VALUE: usize = 4096;
/// Most requests in one `cloud.aws` call.
pub const MAX_REQUESTS: usize = 64;

/// The query-protocol version of each service `cloud.aws` speaks.
pub const SERVICES: &[(&str, &str)] = &[
    ("ec2", "2016-11-15"),
    ("sts", "2011-06-15"),
    ("iam", "2010-05-08"),
];

/// `cloud.aws`: one call of an AWS query-protocol API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AwsCall {
    /// Signing name, e.g. `ec2`.
    pub service: String,
    /// Region, e.g. `eu-west-1`.
    pub region: String,
    /// Action, e.g. `DescribeInstances`.
    pub action: String,
    /// Parameters in the query protocol's names.
    pub parameters: Vec<(String, String)>,
    /// Read or change, as `[integration.aws]` lists the action (a change until checked).
    #[serde(skip)]
    pub effect: Effect,
}

impl AwsCall {
    /// `service:Action`, as policies name it.
    pub fn qualified(&self) -> String {
        format!("{}:{}", self.service, self.action)
    }

    /// The form body: `Action`, `Version`, then the parameters, percent-encoded.
    pub fn body(&self) -> String {
        let version = SERVICES
            .iter()
            .find(|(s, _)| *s == self.service)
            .map_or("", |(_, v)| v);
        let mut body = format!(
            "Action={}&Version={version}",
            sigv4::uri_encode(&self.action)
        );
        for (name, value) in &self.parameters {
            body.push('&');
            body.push_str(&sigv4::uri_encode(name));
            body.push('=');
            body.push_str(&sigv4::uri_encode(value));
        }
        body
    }
}

fn is_word(s: &str, max: usize, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

/// A region name: lower-case letters, digits and `-` (`us-east-1`, `eu-central-2`).
pub fn is_region(s: &str) -> bool {
    is_word(s, 32, b"-") && s.bytes().all(|b| !b.is_ascii_uppercase())
}

/// The answer's body.
impl Answered for AwsCall {
    type Reply = String;
}

impl Call for AwsCall {
    fn capability(&self) -> &'static str {
        "cloud.aws"
    }
    fn effect(&self) -> Effect {
        self.effect
    }
    fn authorize(&mut self, state: &CallState) -> Result<(), CapError> {
        let bad = |m: String| Err(CapError::InvalidRequest(m));
        if !SERVICES.iter().any(|(s, _)| *s == self.service) {
            return bad(format!(
                "service {:?}: cloud.aws speaks the query protocol of {}",
                self.service,
                SERVICES
                    .iter()
                    .map(|(s, _)| *s)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !is_region(&self.region) {
            return bad(format!("region {:?} is not a region name", self.region));
        }
        if !is_word(&self.action, 64, b"") {
            return bad(format!("action {:?} is not an action name", self.action));
        }
        if self.parameters.len() > MAX_PARAMETERS {
            return bad(format!(
                "{} parameters, more than the {MAX_PARAMETERS} allowed",
                self.parameters.len()
            ));
        }
        for (name, value) in &self.parameters {
            // The host writes Action and Version, and signs: a parameter of those names, in
            // any case, or of SigV4's own (X-Amz-…), is not a guest's.
            let reserved = ["Action", "Version"]
                .iter()
                .any(|r| name.eq_ignore_ascii_case(r))
                || name
                    .get(..6)
                    .is_some_and(|p| p.eq_ignore_ascii_case("X-Amz-"));
            if !is_word(name, 128, b".-") || reserved {
                return bad(format!("parameter name {name:?} is not a query parameter"));
            }
            check_text(&format!("parameter {name}"), value, MAX_VALUE)?;
        }
        self.effect = state
            .policy()
            .get_or_default::<AwsPolicy>()
            .check(&self.qualified(), &self.region)
            .map_err(CapError::Denied)?;
        Ok(())
    }
    fn record(&self) -> serde_json::Map<String, serde_json::Value> {
        record_of(self)
    }
    fn empty_reply(&self) -> CapReply {
        CapReply::new(String::new())
    }
    fn clone_call(&self) -> Box<dyn Call> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl std::fmt::Display for AwsCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cloud.aws {} {}", self.region, self.qualified())?;
        for (name, value) in &self.parameters {
            write!(f, " {name}={value:?}")?;
        }
        Ok(())
    }
}

/// Actions that answer with credentials or secrets: never lent to a guest, whatever
/// `[integration.aws]` lists (the guest would hold them; the host alone holds credentials).
/// Matched case-insensitively.
pub const CREDENTIAL_ACTIONS: &[&str] = &[
    "sts:AssumeRole",
    "sts:AssumeRoleWithSAML",
    "sts:AssumeRoleWithWebIdentity",
    "sts:AssumeRoot",
    "sts:GetSessionToken",
    "sts:GetFederationToken",
    "iam:CreateAccessKey",
    "iam:CreateServiceSpecificCredential",
    "iam:ResetServiceSpecificCredential",
    "iam:CreateLoginProfile",
    "iam:UpdateLoginProfile",
    "ec2:GetPasswordData",
    // Not spoken by `cloud.aws` (JSON protocols), listed so they never become lendable.
    "secretsmanager:GetSecretValue",
    "secretsmanager:BatchGetSecretValue",
    "ssm:GetParameter",
    "ssm:GetParameters",
    "ssm:GetParametersByPath",
    "kms:Decrypt",
];

/// `[integration.aws]`'s bounds: the actions (as `service:Action`) and regions a guest may
/// call. Empty: nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AwsPolicy {
    read: BTreeSet<String>,
    change: BTreeSet<String>,
    /// `None`: any region (`regions = ["*"]`).
    regions: Option<BTreeSet<String>>,
}

impl latch_cap::policy::Slice for AwsPolicy {}

impl AwsPolicy {
    /// Parse the lists of `[integration.aws]`; every error names the list and the entry.
    pub fn parse(read: &[String], change: &[String], regions: &[String]) -> Result<Self, String> {
        let action = |list: &str, a: &String| -> Result<String, String> {
            if CREDENTIAL_ACTIONS.iter().any(|c| c.eq_ignore_ascii_case(a)) {
                return Err(format!(
                    "aws.{list}: {a} answers with credentials or secrets; Latch never lends it \
                     to a guest (the host alone holds credentials)"
                ));
            }
            let ok = a.split_once(':').is_some_and(|(s, act)| {
                SERVICES.iter().any(|(known, _)| *known == s) && is_word(act, 64, b"")
            });
            if !ok {
                return Err(format!(
                    "aws.{list}: {a:?} is not service:Action of a service Latch speaks ({})",
                    SERVICES
                        .iter()
                        .map(|(s, _)| *s)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            Ok(a.clone())
        };
        let read = read
            .iter()
            .map(|a| action("read", a))
            .collect::<Result<_, _>>()?;
        let change = change
            .iter()
            .map(|a| action("change", a))
            .collect::<Result<_, _>>()?;
        let regions = if regions.iter().any(|r| r == "*") {
            None
        } else {
            let mut set = BTreeSet::new();
            for r in regions {
                if !is_region(r) {
                    return Err(format!(
                        "aws.regions: {r:?} is not a region name (or \"*\")"
                    ));
                }
                set.insert(r.clone());
            }
            if set.is_empty() {
                return Err("aws.regions: name at least one region, or \"*\" for any".into());
            }
            Some(set)
        };
        Ok(AwsPolicy {
            read,
            change,
            regions,
        })
    }

    /// May `action` (`service:Action`) be called in `region`, and is it a read or a change?
    pub fn check(&self, action: &str, region: &str) -> Result<Effect, String> {
        let effect = if self.read.contains(action) {
            Effect::Read
        } else if self.change.contains(action) {
            Effect::Change
        } else {
            return Err(format!(
                "{action} is not in the integration's [integration.aws] read or change list"
            ));
        };
        match &self.regions {
            Some(regions) if !regions.contains(region) => Err(format!(
                "region {region} is not in the integration's [integration.aws] regions"
            )),
            _ => Ok(effect),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(params: &[(&str, &str)]) -> AwsCall {
        AwsCall {
            service: "ec2".into(),
            region: "us-east-1".into(),
            action: "DescribeInstances".into(),
            parameters: params
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            effect: Effect::Change,
        }
    }

    #[test]
    fn values_stay_data_in_the_body() {
        let c = call(&[
            ("Filter.1.Name", "tag:Name"),
            ("Filter.1.Value.1", "a&Action=RunInstances $(id) ' \"<x/>"),
        ]);
        assert_eq!(
            c.body(),
            "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag%3AName\
             &Filter.1.Value.1=a%26Action%3DRunInstances%20%24%28id%29%20%27%20%22%3Cx%2F%3E"
        );
    }

    #[test]
    fn policy_bounds_actions_and_regions() {
        let p = AwsPolicy::parse(
            &["ec2:DescribeInstances".into()],
            &["ec2:CreateTags".into()],
            &["us-east-1".into()],
        )
        .unwrap();
        assert_eq!(
            p.check("ec2:DescribeInstances", "us-east-1"),
            Ok(Effect::Read)
        );
        assert_eq!(p.check("ec2:CreateTags", "us-east-1"), Ok(Effect::Change));
        assert!(p.check("ec2:RunInstances", "us-east-1").is_err());
        assert!(p.check("ec2:DescribeInstances", "eu-west-1").is_err());
        assert!(
            AwsPolicy::default()
                .check("ec2:DescribeInstances", "x")
                .is_err()
        );
        let any = AwsPolicy::parse(&["ec2:DescribeRegions".into()], &[], &["*".into()]).unwrap();
        assert!(any.check("ec2:DescribeRegions", "ap-south-2").is_ok());
        for bad in ["ec2", "s3:GetObject", "ec2:Describe Instances", "ec2:"] {
            assert!(
                AwsPolicy::parse(&[bad.into()], &[], &["*".into()]).is_err(),
                "{bad}"
            );
        }
        assert!(AwsPolicy::parse(&[], &[], &["US-EAST-1".into()]).is_err());
        assert!(AwsPolicy::parse(&[], &[], &[]).is_err());
        for credentials in ["sts:AssumeRole", "STS:assumerole", "iam:CreateAccessKey"] {
            let e = AwsPolicy::parse(&[], &[credentials.into()], &["*".into()]).unwrap_err();
            assert!(e.contains("never lends it"), "{credentials}: {e}");
        }
    }

    #[test]
    fn reserved_parameters_are_refused_in_any_case() {
        let policy = latch_cap::Policy::default()
            .with(AwsPolicy::parse(&["ec2:DescribeInstances".into()], &[], &["*".into()]).unwrap());
        let state = latch_cap::CallState::new(
            "t".into(),
            std::sync::Arc::new(policy),
            std::sync::Arc::new(latch_cap::Recorder),
            None,
            Default::default(),
            false,
            1 << 20,
        );
        for name in [
            "Action",
            "action",
            "ACTION",
            "Version",
            "version",
            "X-Amz-Security-Token",
            "x-amz-date",
        ] {
            let mut c = call(&[(name, "RunInstances")]);
            let e = c.authorize(&state).unwrap_err();
            assert!(
                e.to_string().contains("not a query parameter"),
                "{name}: {e}"
            );
        }
        assert!(
            call(&[("Filter.1.Name", "tag:env")])
                .authorize(&state)
                .is_ok()
        );
    }
}
