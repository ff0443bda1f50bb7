//! The test kit's half of `cloud`: an expected AWS call.

use crate::AwsCall;
use latch_cap::Policy;
use latch_cap::kit::{Expectation, Implied, ImpliedPart, Names};
use latch_cap::{CapCall, CapReply};

/// An expected `cloud.aws` request.
#[derive(Clone, Debug)]
pub struct ExpectAws {
    /// `service:Action`, e.g. `ec2:DescribeInstances`.
    pub action: String,
    /// The region.
    pub region: String,
    /// The parameters it must carry, in order; `None` accepts any.
    pub parameters: Option<Vec<(String, String)>>,
}

impl Expectation for ExpectAws {
    fn matches(&self, actual: &CapCall, _: &mut Names) -> bool {
        actual.get::<AwsCall>().is_some_and(|a| {
            a.qualified() == self.action
                && a.region == self.region
                && self.parameters.as_ref().is_none_or(|p| *p == a.parameters)
        })
    }
    fn default_reply(&self) -> CapReply {
        CapReply::new(String::new())
    }
    fn implies(&self, policy: &mut Implied) {
        let lent = policy.part::<ImpliedAws>();
        lent.read.push(self.action.clone());
        lent.regions.push(self.region.clone());
    }
    fn clone_box(&self) -> Box<dyn Expectation> {
        Box::new(self.clone())
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl std::fmt::Display for ExpectAws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cloud.aws {} {}", self.region, self.action)
    }
}

/// An expected `cloud.azure` read.
#[derive(Clone, Debug)]
pub struct ExpectAzure {
    /// The resource path.
    pub path: String,
    /// The query it must carry, in order; `None` accepts any.
    pub query: Option<Vec<(String, String)>>,
}

impl Expectation for ExpectAzure {
    fn matches(&self, actual: &CapCall, _: &mut Names) -> bool {
        actual.get::<crate::AzureCall>().is_some_and(|a| {
            a.path.eq_ignore_ascii_case(&self.path)
                && self.query.as_ref().is_none_or(|q| *q == a.query)
        })
    }
    fn default_reply(&self) -> CapReply {
        CapReply::new(String::from(r#"{"value":[]}"#))
    }
    fn implies(&self, policy: &mut Implied) {
        let lent = policy.part::<ImpliedAzure>();
        let segs: Vec<&str> = self.path.trim_start_matches('/').split('/').collect();
        if let Some(sub) = segs.get(1) {
            lent.subscriptions.push(sub.to_string());
        }
        if let Some(i) = segs
            .iter()
            .position(|s| s.eq_ignore_ascii_case("providers"))
            && let Some(p) = segs.get(i + 1)
        {
            lent.providers.push(p.to_string());
        }
        for (name, value) in self.query.iter().flatten() {
            if name.eq_ignore_ascii_case("$expand") {
                lent.expand
                    .extend(value.split(',').map(|v| v.trim().to_string()));
            }
        }
    }
    fn clone_box(&self) -> Box<dyn Expectation> {
        Box::new(self.clone())
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl std::fmt::Display for ExpectAzure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cloud.azure GET {}", self.path)
    }
}

/// The AWS actions and regions a script's expectations call, lent as `[integration.aws]`
/// `read` and `regions`.
#[derive(Debug, Default)]
pub struct ImpliedAws {
    /// `service:Action`s, as reads.
    pub read: Vec<String>,
    /// Regions.
    pub regions: Vec<String>,
}

impl ImpliedPart for ImpliedAws {
    fn lend(self, policy: Policy) -> Result<Policy, String> {
        Ok(policy.with(crate::AwsPolicy::parse(&self.read, &[], &self.regions)?))
    }
}

/// The Azure scopes a script's expectations read, lent as `[integration.azure]`.
#[derive(Debug, Default)]
pub struct ImpliedAzure {
    /// Subscriptions read.
    pub subscriptions: Vec<String>,
    /// Resource providers read.
    pub providers: Vec<String>,
    /// `$expand` values asked for.
    pub expand: Vec<String>,
}

impl ImpliedPart for ImpliedAzure {
    fn lend(self, policy: Policy) -> Result<Policy, String> {
        let bounds = crate::AzurePolicy::parse(&self.subscriptions, &[], &self.providers)?
            .with_expand(&self.expand)?;
        Ok(policy.with(bounds))
    }
}
