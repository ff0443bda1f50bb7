//! `cloud.azure`: reads of Azure Resource Manager with a token the host obtains.
//!
//! Defends like `cloud.aws`: the guest names a resource path and query, never a URL or a
//! header; the path is parsed into segments (no `.`/`..`, no empty segment, a small
//! character set; each segment percent-encoded on the way out) and bounded by
//! `[integration.azure]`: its `subscriptions`, its `resource_groups` (when listed, a
//! subscription-wide list is refused: it would show other groups' resources) and its
//! `providers` (`Microsoft.Compute`, `Microsoft.Network`) — every provider a path names, an
//! extension resource's too (`…/virtualMachines/vm1/providers/Microsoft.Authorization/…`);
//! `$expand` only with the values `[integration.azure] expand` lends (a VM's `userData`
//! holds bootstrap secrets). Only GET is lent.
//!
//! Tokens come from Microsoft Entra ID for a service principal's **client secret** (the
//! secret named in `[integration.azure] client_secret`, from the secret store, at each token
//! fetch), **workload identity** (a federated token file, `AZURE_FEDERATED_TOKEN_FILE`, as
//! AKS projects it) or a **managed identity** (the instance metadata endpoint). A token is
//! kept in memory (zeroized) until 5 minutes before it expires, never written, never given
//! to the guest; a 401 for an expired or invalid token drops it and fetches a new one once.

use std::collections::BTreeSet;
use std::time::Instant;

use serde::Serialize;

use latch_cap::CallState;
use latch_cap::{Answered, Call, CapError, CapReply, Effect, SecretStore, check_text, record_of};
use latch_cloud_auth::answer::{Failure, read, transport_error};
use latch_cloud_auth::azure::{ARM, fetch_token};
pub use latch_cloud_auth::azure::{AzureCredential, AzureSettings, TokenCache};
use latch_cloud_auth::sigv4::uri_encode;

/// Most segments of a resource path.
const MAX_SEGMENTS: usize = 16;

/// `cloud.azure`: one GET of Resource Manager.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AzureCall {
    /// `/subscriptions/{id}/…`.
    pub path: String,
    /// Query parameters.
    pub query: Vec<(String, String)>,
}

/// A path segment: letters, digits and `._()-` (Azure's resource names; Unicode names of
/// resource groups are not lent).
fn is_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._()-".contains(&b))
}

impl AzureCall {
    fn segments(&self) -> Result<Vec<&str>, String> {
        let rest = self
            .path
            .strip_prefix('/')
            .ok_or_else(|| format!("path {:?} must start with /subscriptions/", self.path))?;
        let segments: Vec<&str> = rest.split('/').collect();
        if segments.len() > MAX_SEGMENTS || !segments.iter().all(|s| is_segment(s)) {
            return Err(format!(
                "path {:?}: segments of letters, digits and ._()- only, no . or .., at most \
                 {MAX_SEGMENTS}",
                self.path
            ));
        }
        if !segments[0].eq_ignore_ascii_case("subscriptions") || segments.len() < 2 {
            return Err(format!(
                "path {:?} must start with /subscriptions/",
                self.path
            ));
        }
        Ok(segments)
    }

    /// The URL under `base`: each segment and query value percent-encoded.
    pub fn url(&self, base: &reqwest::Url) -> Result<reqwest::Url, String> {
        let segments = self.segments()?;
        let mut text = base.as_str().trim_end_matches('/').to_string();
        for s in segments {
            text.push('/');
            text.push_str(&uri_encode(s));
        }
        for (i, (name, value)) in self.query.iter().enumerate() {
            text.push(if i == 0 { '?' } else { '&' });
            text.push_str(&uri_encode(name));
            text.push('=');
            text.push_str(&uri_encode(value));
        }
        reqwest::Url::parse(&text).map_err(|e| format!("bad URL: {e}"))
    }
}

/// The answer's body.
impl Answered for AzureCall {
    type Reply = String;
}

impl Call for AzureCall {
    fn capability(&self) -> &'static str {
        "cloud.azure"
    }
    fn effect(&self) -> Effect {
        Effect::Read
    }
    fn authorize(&mut self, state: &CallState) -> Result<(), CapError> {
        check_text("path", &self.path, 2048)?;
        let segments = self.segments().map_err(CapError::InvalidRequest)?;
        if self.query.len() > 16 {
            return Err(CapError::InvalidRequest(
                "at most 16 query parameters".into(),
            ));
        }
        for (name, value) in &self.query {
            let ok = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"$-_.".contains(&b));
            if !ok {
                return Err(CapError::InvalidRequest(format!(
                    "query parameter name {name:?} is not one"
                )));
            }
            check_text(&format!("query parameter {name}"), value, 4096)?;
        }
        if !self.query.iter().any(|(n, _)| n == "api-version") {
            return Err(CapError::InvalidRequest(
                "an Azure request needs its api-version".into(),
            ));
        }
        let policy = state.policy().get_or_default::<AzurePolicy>();
        for (name, value) in &self.query {
            if name.eq_ignore_ascii_case("$expand") {
                policy.check_expand(value).map_err(CapError::Denied)?;
            }
        }
        policy.check(&segments).map_err(CapError::Denied)
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

impl std::fmt::Display for AzureCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cloud.azure GET {}", self.path)?;
        for (i, (n, v)) in self.query.iter().enumerate() {
            write!(f, "{}{n}={v}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

/// `[integration.azure]`'s bounds. Empty: nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AzurePolicy {
    subscriptions: BTreeSet<String>,
    /// `None`: every group of the subscriptions.
    resource_groups: Option<BTreeSet<String>>,
    providers: BTreeSet<String>,
    /// What `$expand` may name (lower-case); empty: no `$expand` at all.
    expand: BTreeSet<String>,
}

impl latch_cap::policy::Slice for AzurePolicy {}

fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

impl AzurePolicy {
    /// Parse the lists of `[integration.azure]`; errors name the list and the entry.
    pub fn parse(
        subscriptions: &[String],
        resource_groups: &[String],
        providers: &[String],
    ) -> Result<Self, String> {
        let mut subs = BTreeSet::new();
        for s in subscriptions {
            if !is_guid(s) {
                return Err(format!(
                    "azure.subscriptions: {s:?} is not a subscription id"
                ));
            }
            subs.insert(s.to_ascii_lowercase());
        }
        if subs.is_empty() {
            return Err("azure.subscriptions: name at least one subscription".into());
        }
        let mut groups = BTreeSet::new();
        for g in resource_groups {
            if !is_segment(g) || g.len() > 90 {
                return Err(format!(
                    "azure.resource_groups: {g:?} is not a resource group name"
                ));
            }
            groups.insert(g.to_ascii_lowercase());
        }
        let mut provs = BTreeSet::new();
        for p in providers {
            let ok = p.split_once('.').is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && p.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'.')
            });
            if !ok {
                return Err(format!(
                    "azure.providers: {p:?} is not a resource provider (e.g. Microsoft.Compute)"
                ));
            }
            provs.insert(p.to_ascii_lowercase());
        }
        if provs.is_empty() {
            return Err(
                "azure.providers: name the resource providers lent (e.g. Microsoft.Compute)".into(),
            );
        }
        Ok(AzurePolicy {
            subscriptions: subs,
            resource_groups: (!groups.is_empty()).then_some(groups),
            providers: provs,
            expand: BTreeSet::new(),
        })
    }

    /// Also lend `$expand` with these values (`[integration.azure] expand`, e.g.
    /// `instanceView`).
    pub fn with_expand(mut self, values: &[String]) -> Result<Self, String> {
        for v in values {
            if v.is_empty() || v.len() > 64 || !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!("azure.expand: {v:?} is not an expand value"));
            }
            self.expand.insert(v.to_ascii_lowercase());
        }
        Ok(self)
    }

    /// May `$expand` be `value` (comma-separated names)?
    pub fn check_expand(&self, value: &str) -> Result<(), String> {
        for v in value.split(',').map(str::trim) {
            if !self.expand.contains(&v.to_ascii_lowercase()) {
                return Err(format!(
                    "$expand={v} is not in the integration's [integration.azure] expand \
                     (a VM's userData, for one, holds bootstrap secrets)"
                ));
            }
        }
        Ok(())
    }

    /// May a GET of this path be made? `segments` starts with `subscriptions`.
    pub fn check(&self, segments: &[&str]) -> Result<(), String> {
        let sub = segments[1].to_ascii_lowercase();
        if !self.subscriptions.contains(&sub) {
            return Err(format!(
                "subscription {sub} is not in the integration's [integration.azure] subscriptions"
            ));
        }
        let rest = &segments[2..];
        let after_group = match rest {
            [rg, group, tail @ ..] if rg.eq_ignore_ascii_case("resourceGroups") => {
                let group = group.to_ascii_lowercase();
                if let Some(groups) = &self.resource_groups
                    && !groups.contains(&group)
                {
                    return Err(format!(
                        "resource group {group} is not in the integration's [integration.azure] \
                         resource_groups"
                    ));
                }
                tail
            }
            _ => {
                if self.resource_groups.is_some() {
                    return Err(
                        "a subscription-wide read would show other resource groups than \
                         [integration.azure] resource_groups lists"
                            .into(),
                    );
                }
                rest
            }
        };
        // `providers/{namespace}`, then `{type}/{name}` pairs; a `providers` where a type
        // belongs starts an extension resource of another provider, checked the same way.
        let mut at = after_group;
        let mut first = true;
        loop {
            match at {
                [p, provider, tail @ ..] if p.eq_ignore_ascii_case("providers") => {
                    if !self.providers.contains(&provider.to_ascii_lowercase()) {
                        return Err(format!(
                            "provider {provider} is not in the integration's [integration.azure] \
                             providers"
                        ));
                    }
                    let mut rest = tail;
                    loop {
                        match rest {
                            [p, ..] if p.eq_ignore_ascii_case("providers") => break,
                            [_kind, _name, more @ ..] => rest = more,
                            _ => return Ok(()),
                        }
                    }
                    at = rest;
                    first = false;
                }
                _ if first => {
                    return Err(
                        "only resources of a provider (…/providers/Microsoft.X/…) may be read"
                            .into(),
                    );
                }
                _ => return Ok(()),
            }
        }
    }
}

/// GET `call` with a token, retrying throttling and server errors, and once with a new token
/// after a 401 for an expired or invalid one.
pub async fn send(
    client: &reqwest::Client,
    settings: &AzureSettings,
    tokens: &TokenCache,
    secrets: &SecretStore,
    call: &AzureCall,
) -> Result<String, CapError> {
    let url = call
        .url(&settings.endpoint)
        .map_err(CapError::InvalidRequest)?;
    let what = format!("GET {}", call.path);
    let started = Instant::now();
    let mut attempt = 0;
    let mut renewed = false;
    loop {
        attempt += 1;
        let token = tokens
            .get(ARM, || fetch_token(client, settings, secrets))
            .await
            .map_err(|e| CapError::Denied(format!("no Azure token: {e}")))?;
        let bearer = format!("Bearer {}", String::from_utf8_lossy(token.expose()));
        let outcome = match client
            .get(url.clone())
            .header("authorization", bearer)
            .send()
            .await
        {
            Ok(response) => read(response).await,
            Err(e) => Err(Failure::Transport(transport_error(&e))),
        };
        let failure = match outcome {
            Ok(body) => return Ok(body),
            Err(f) => f,
        };
        if let Failure::Answer {
            status: 401, code, ..
        } = &failure
            && !renewed
            && (code.starts_with("ExpiredAuthenticationToken")
                || code.starts_with("InvalidAuthenticationToken"))
        {
            tokens.forget(ARM).await;
            renewed = true;
            continue;
        }
        let Some(wait) = failure.retry_after(attempt, started) else {
            return Err(match failure {
                Failure::Transport(e) => CapError::Unreachable(format!("{what}: no answer: {e}")),
                Failure::TooBig => CapError::Failed(format!("{what}: the answer is too large")),
                Failure::Answer {
                    status,
                    code,
                    message,
                    ..
                } => {
                    let text = format!("{what}: HTTP {status} {code}: {message}");
                    if status == 401 || status == 403 {
                        CapError::Denied(text)
                    } else if status == 404 {
                        CapError::NotFound(text)
                    } else {
                        CapError::Failed(text)
                    }
                }
            });
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "00000000-0000-0000-0000-000000000001";

    fn seg(path: &str) -> Result<Vec<String>, String> {
        let c = AzureCall {
            path: path.into(),
            query: vec![],
        };
        c.segments()
            .map(|v| v.into_iter().map(String::from).collect())
    }

    #[test]
    fn paths_are_parsed_and_bounded() {
        let p = AzurePolicy::parse(
            &[SUB.into()],
            &["rg-web".into()],
            &["Microsoft.Compute".into()],
        )
        .unwrap();
        let check = |path: &str| {
            let s = seg(path)?;
            let s: Vec<&str> = s.iter().map(String::as_str).collect();
            p.check(&s)
        };
        assert!(check(&format!("/subscriptions/{SUB}/resourceGroups/RG-web/providers/Microsoft.Compute/virtualMachines")).is_ok());
        for bad in [
            format!("/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines"),
            format!("/subscriptions/{SUB}/resourceGroups/other/providers/Microsoft.Compute/virtualMachines"),
            format!("/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Storage/x"),
            "/subscriptions/00000000-0000-0000-0000-000000000002/resourceGroups/rg-web/providers/Microsoft.Compute/x".to_string(),
            format!("/subscriptions/{SUB}/resourceGroups/rg-web"),
            format!("/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Compute/../../x"),
            format!("/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Compute/a%2Fb"),
            format!("/subscriptions/{SUB}//resourceGroups"),
            "subscriptions/x".to_string(),
            // An extension resource of a provider not lent, on a VM of one that is.
            format!("/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/vm1/providers/Microsoft.Authorization/roleAssignments"),
            format!("/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/vm1/extensions/e1/providers/Microsoft.KeyVault/vaults/v"),
        ] {
            assert!(check(&bad).is_err(), "{bad}");
        }
        // A resource merely *named* `providers` is a name, not an extension.
        assert!(check(&format!("/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/providers/instanceView")).is_ok());
        // An extension of a lent provider is fine.
        let both = AzurePolicy::parse(
            &[SUB.into()],
            &[],
            &["Microsoft.Compute".into(), "Microsoft.Authorization".into()],
        )
        .unwrap();
        let s = seg(&format!("/subscriptions/{SUB}/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm1/providers/Microsoft.Authorization/roleAssignments")).unwrap();
        let s: Vec<&str> = s.iter().map(String::as_str).collect();
        assert!(both.check(&s).is_ok());
        // $expand only with what is lent.
        assert!(p.check_expand("instanceView").is_err());
        let p = p.with_expand(&["instanceView".into()]).unwrap();
        assert!(p.check_expand("instanceView").is_ok());
        assert!(p.check_expand("InstanceView").is_ok());
        assert!(p.check_expand("userData").is_err());
        assert!(p.check_expand("instanceView,userData").is_err());
        assert!(AzurePolicy::default().with_expand(&["a,b".into()]).is_err());
    }

    #[test]
    fn a_call_expands_only_what_is_lent() {
        let policy = AzurePolicy::parse(&[SUB.into()], &[], &["Microsoft.Compute".into()])
            .and_then(|p| p.with_expand(&["instanceView".into()]))
            .unwrap();
        let state = latch_cap::CallState::new(
            "t".into(),
            std::sync::Arc::new(latch_cap::Policy::default().with(policy)),
            std::sync::Arc::new(latch_cap::Recorder),
            None,
            Default::default(),
            false,
            1 << 20,
        );
        let vm = format!(
            "/subscriptions/{SUB}/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm1"
        );
        let call = |expand: &str| AzureCall {
            path: vm.clone(),
            query: vec![
                ("api-version".into(), "2024-07-01".into()),
                ("$expand".into(), expand.into()),
            ],
        };
        assert!(call("instanceView").authorize(&state).is_ok());
        for bad in ["userData", "instanceView,userData", "UserData"] {
            let e = call(bad).authorize(&state).unwrap_err().to_string();
            assert!(
                e.contains("userData") || e.contains("UserData"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn urls_encode_every_part() {
        let c = AzureCall {
            path: format!(
                "/subscriptions/{SUB}/resourceGroups/rg(1)/providers/Microsoft.Compute/virtualMachines"
            ),
            query: vec![
                ("api-version".into(), "2024-07-01".into()),
                ("$skiptoken".into(), "a&b=c/d".into()),
            ],
        };
        let url = c
            .url(&reqwest::Url::parse("https://management.azure.com").unwrap())
            .unwrap();
        assert_eq!(
            url.as_str(),
            format!(
                "https://management.azure.com/subscriptions/{SUB}/resourceGroups/rg%281%29/providers/Microsoft.Compute/virtualMachines?api-version=2024-07-01&%24skiptoken=a%26b%3Dc%2Fd"
            )
        );
    }
}
