//! Who may get what: the operator's access policy, written in Cedar (`cedar-policy`), beside
//! `latch.toml`.
//!
//! Defends against a caller of Latch getting access the operator never meant to give: every
//! ask — `request` access, `approve` someone's request, `revoke` a grant, `read-audit` —
//! is a Cedar decision over
//! - the **principal**: an `Identity` (its `email`, its `kind`: `person` or `token`) in its
//!   `Group`s;
//! - the **resource**: a `Resource` (an integration's server, `integration/name`) in its
//!   `Integration`, with the tags its guest discovered (`resource.getTag("env")`), or the
//!   `Integration` itself for `read-audit`;
//! - the **context**: the permission asked for, the duration in seconds, the justification;
//!   for `approve` the requester, for `revoke` the grant's owner.
//!
//! Cedar denies by default and a `forbid` always wins. The schema ([`schema_text`]) is Latch's;
//! a policy file is validated against it strictly, and every policy it names an integration in
//! (`resource in Integration::"prod-ssh"`) must name one `latch.toml` has. Every policy carries
//! an `@id`, so a decision says which policies decided it ([`Decision::why`]).
//!
//! What Cedar does not say, annotations on a `request` permit say: `@approvals("2")` (how many
//! approvals the request needs; `"0"` grants it at once; default 1) and `@approval_window("8h")`
//! (how long it may wait; default 24h). Where several permits allow a request, the strictest
//! holds: the most approvals, the shortest window. Beside the policy, one rule is Latch's own and
//! no policy can lift it: no one approves their own request.
//!
//! Speed: Cedar evaluates every policy it is given (about 1 µs each). [`Access`] indexes the
//! policies by their principal, action and resource scope and hands Cedar only those whose
//! scope can match the ask — the same answer (a test compares it with the full evaluation on
//! generated cases), in time that grows with the policies that *could* apply, not with all of
//! them.

mod cases;
mod index;

pub use cases::{CaseOutcome, run_cases};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityUid, PolicyId, PolicySet, Request,
    RestrictedExpression, Schema, ValidationMode, Validator,
};

/// What a principal asks to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Act {
    /// Ask for access to a resource.
    Request,
    /// Approve someone's request.
    Approve,
    /// Revoke a grant.
    Revoke,
    /// Read an integration's audit records.
    ReadAudit,
}

impl Act {
    /// Its Cedar action name.
    pub fn name(self) -> &'static str {
        match self {
            Act::Request => "request",
            Act::Approve => "approve",
            Act::Revoke => "revoke",
            Act::ReadAudit => "read-audit",
        }
    }

    /// The action named `name`.
    pub fn parse(name: &str) -> anyhow::Result<Act> {
        Ok(match name {
            "request" => Act::Request,
            "approve" => Act::Approve,
            "revoke" => Act::Revoke,
            "read-audit" => Act::ReadAudit,
            other => bail!("action {other:?}: use request, approve, revoke or read-audit"),
        })
    }

    fn uid(self) -> EntityUid {
        static UIDS: std::sync::OnceLock<[EntityUid; 4]> = std::sync::OnceLock::new();
        let uids = UIDS.get_or_init(|| {
            [Act::Request, Act::Approve, Act::Revoke, Act::ReadAudit].map(|a| {
                EntityUid::from_str(&format!("Action::{:?}", a.name())).expect("an action uid")
            })
        });
        uids[self as usize].clone()
    }
}

/// Who asks: an identity Latch knows (a person signed in, or a machine's token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Its id (the identity provider's subject, or `token:NAME`).
    pub id: String,
    /// Its e-mail, if it has one.
    pub email: Option<String>,
    /// The groups it is in.
    pub groups: Vec<String>,
    /// `person` or `token`.
    pub kind: &'static str,
}

/// What is asked about.
#[derive(Clone, Debug, Default)]
pub struct Ask {
    /// The integration.
    pub integration: String,
    /// The resource (a server) in it; empty for `read-audit`.
    pub resource: String,
    /// The tags its guest discovered for the resource.
    pub tags: BTreeMap<String, String>,
    /// The permission asked for.
    pub permission: String,
    /// How long.
    pub duration: Duration,
    /// Why, in the requester's words.
    pub justification: String,
    /// For `approve`: who made the request; for `revoke`: whose grant it is.
    pub other: Option<Principal>,
}

/// A decision, and what made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Allowed?
    pub allowed: bool,
    /// The `@id`s of the policies that decided it: the permits that allowed it, or the forbids
    /// that denied it; none when nothing permitted it (Cedar's default deny), or Latch's own
    /// rule (`latch:no-self-approval`).
    pub why: Vec<String>,
    /// Policies that could not be evaluated for this ask (each skipped, as Cedar does).
    pub errors: Vec<String>,
    /// For an allowed `request`: the approvals it needs (0: granted at once).
    pub approvals: u32,
    /// For an allowed `request`: how long it may wait for them.
    pub window: Duration,
}

/// Approvals a request needs when its policy says nothing.
pub const DEFAULT_APPROVALS: u32 = 1;
/// How long a request may wait for approval when its policy says nothing.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// The most approvals a policy may ask for.
pub const MAX_APPROVALS: u32 = 10;

/// Latch's access schema, in Cedar's schema syntax.
pub fn schema_text() -> String {
    r#"// Latch's access schema (generated; `latch policy schema` prints it).
entity Group;
entity Identity in [Group] {
  email?: String,
  kind: String,
};
entity Integration;
entity Resource in [Integration] {
  integration: String,
  name: String,
} tags String;

type Asked = {
  permission: String,
  duration_seconds: Long,
  justification: String,
};

action request appliesTo {
  principal: Identity,
  resource: Resource,
  context: Asked,
};
action approve appliesTo {
  principal: Identity,
  resource: Resource,
  context: {
    permission: String,
    duration_seconds: Long,
    justification: String,
    requester: Identity,
  },
};
action revoke appliesTo {
  principal: Identity,
  resource: Resource,
  context: { permission: String, owner: Identity },
};
action "read-audit" appliesTo {
  principal: Identity,
  resource: Integration,
  context: {},
};
"#
    .to_string()
}

/// The operator's access policy, parsed, validated and indexed.
pub struct Access {
    schema: Schema,
    policies: PolicySet,
    index: index::Index,
    /// Per policy id: (approvals, window) from its annotations.
    terms: BTreeMap<String, (u32, Duration)>,
    source: PathBuf,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("source", &self.source)
            .field("policies", &self.terms.len())
            .finish()
    }
}

impl Access {
    /// Read, parse and validate the policy file `path` for a connector whose integrations are
    /// `integrations`.
    pub fn load(path: &Path, integrations: &[&str]) -> anyhow::Result<Access> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read access policy {}", path.display()))?;
        Access::parse(&text, path, integrations)
    }

    /// Parse and validate `text` as if read from `path`. Errors name the file, line and
    /// column.
    pub fn parse(text: &str, path: &Path, integrations: &[&str]) -> anyhow::Result<Access> {
        let (schema, _) = Schema::from_cedarschema_str(&schema_text())
            .map_err(|e| anyhow::anyhow!("Latch's own access schema: {e}"))?;
        let parsed = PolicySet::from_str(text).map_err(|e| located(path, text, &e))?;
        if parsed.templates().next().is_some() {
            bail!(
                "{}: templates (?principal, ?resource) are not used by Latch; write each \
                 policy whole",
                path.display()
            );
        }
        let mut policies = PolicySet::new();
        let mut terms = BTreeMap::new();
        for (n, p) in parsed.policies().enumerate() {
            let shown = || {
                let s = p.to_string();
                let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
                one_line.chars().take(70).collect::<String>()
            };
            let Some(id) = p.annotation("id") else {
                bail!(
                    "{}: policy {} (`{}…`) has no @id(\"…\"): every policy is named, so a \
                     decision can say which policies made it",
                    path.display(),
                    n + 1,
                    shown()
                );
            };
            check_id(id).with_context(|| format!("{}: policy {}", path.display(), n + 1))?;
            if terms.contains_key(id) {
                bail!("{}: two policies have @id({id:?})", path.display());
            }
            let term = terms_of(p).with_context(|| format!("{}: policy {id:?}", path.display()))?;
            check_integrations(p, integrations)
                .with_context(|| format!("{}: policy {id:?}", path.display()))?;
            terms.insert(id.to_string(), term);
            policies
                .add(p.new_id(PolicyId::new(id)))
                .map_err(|e| anyhow::anyhow!("{}: policy {id:?}: {e}", path.display()))?;
        }
        let validated = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
        if !validated.validation_passed() {
            let errors: Vec<String> = validated
                .validation_errors()
                .map(|e| located_one(path, text, e))
                .collect();
            bail!(
                "{} does not hold to Latch's access schema (`latch policy schema`):\n{}",
                path.display(),
                errors.join("\n")
            );
        }
        let index = index::Index::new(&policies);
        Ok(Access {
            schema,
            policies,
            index,
            terms,
            source: path.to_path_buf(),
        })
    }

    /// The file it was read from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// How many policies it has.
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    /// Whether it has none (which denies everything).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Decide whether `who` may `act` on `ask`, evaluating only the policies whose scope can
    /// match (see the module docs).
    pub fn decide(&self, who: &Principal, act: Act, ask: &Ask) -> Decision {
        let candidates =
            self.index
                .candidates(&self.policies, act, &ask.integration, &ask.resource, who);
        self.decide_over(&candidates, who, act, ask)
    }

    /// The same decision, evaluating every policy (what [`Access::decide`] is checked against).
    pub fn decide_unindexed(&self, who: &Principal, act: Act, ask: &Ask) -> Decision {
        self.decide_over(&self.policies, who, act, ask)
    }

    fn decide_over(&self, set: &PolicySet, who: &Principal, act: Act, ask: &Ask) -> Decision {
        let refused = |why: &str, error: String| Decision {
            allowed: false,
            why: vec![why.to_string()],
            errors: vec![error],
            approvals: 0,
            window: Duration::ZERO,
        };
        if act == Act::Approve
            && let Some(requester) = &ask.other
            && requester.id == who.id
        {
            return refused(
                "latch:no-self-approval",
                "no one approves their own request".into(),
            );
        }
        let (request, entities) = match self.request_of(who, act, ask) {
            Ok(x) => x,
            Err(e) => return refused("latch:bad-ask", format!("{e:#}")),
        };
        let response = Authorizer::new().is_authorized(&request, set, &entities);
        let mut why: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect();
        why.sort();
        let errors = response
            .diagnostics()
            .errors()
            .map(|e| e.to_string())
            .collect();
        let allowed = response.decision() == cedar_policy::Decision::Allow;
        let (mut approvals, mut window) = (0, Duration::ZERO);
        if allowed && act == Act::Request {
            let terms: Vec<&(u32, Duration)> =
                why.iter().filter_map(|id| self.terms.get(id)).collect();
            approvals = terms.iter().map(|t| t.0).max().unwrap_or(DEFAULT_APPROVALS);
            window = terms.iter().map(|t| t.1).min().unwrap_or(DEFAULT_WINDOW);
        }
        Decision {
            allowed,
            why,
            errors,
            approvals,
            window,
        }
    }

    fn request_of(
        &self,
        who: &Principal,
        act: Act,
        ask: &Ask,
    ) -> anyhow::Result<(Request, Entities)> {
        let mut entities = Vec::new();
        let principal = identity(who, &mut entities)?;
        let integration = uid("Integration", &ask.integration)?;
        entities.push(Entity::with_uid(integration.clone()));
        let resource = if act == Act::ReadAudit {
            integration
        } else {
            let r = uid("Resource", &format!("{}/{}", ask.integration, ask.resource))?;
            entities.push(
                Entity::new_with_tags(
                    r.clone(),
                    [
                        (
                            "integration".to_string(),
                            RestrictedExpression::new_string(ask.integration.clone()),
                        ),
                        (
                            "name".to_string(),
                            RestrictedExpression::new_string(ask.resource.clone()),
                        ),
                    ],
                    [integration],
                    ask.tags
                        .iter()
                        .map(|(k, v)| (k.clone(), RestrictedExpression::new_string(v.clone()))),
                )
                .map_err(|e| anyhow::anyhow!("the resource: {e}"))?,
            );
            r
        };
        let seconds = i64::try_from(ask.duration.as_secs()).unwrap_or(i64::MAX);
        let text = |s: &str| RestrictedExpression::new_string(s.to_string());
        let mut context: Vec<(String, RestrictedExpression)> = Vec::new();
        match act {
            Act::Request | Act::Approve => {
                context.push(("permission".into(), text(&ask.permission)));
                context.push((
                    "duration_seconds".into(),
                    RestrictedExpression::new_long(seconds),
                ));
                context.push(("justification".into(), text(&ask.justification)));
            }
            Act::Revoke => context.push(("permission".into(), text(&ask.permission))),
            Act::ReadAudit => {}
        }
        if matches!(act, Act::Approve | Act::Revoke) {
            let other = ask
                .other
                .as_ref()
                .context("an approval names the requester, a revoke the grant's owner")?;
            let other_uid = if other.id == who.id {
                principal.clone()
            } else {
                identity(other, &mut entities)?
            };
            let field = if act == Act::Approve {
                "requester"
            } else {
                "owner"
            };
            context.push((
                field.into(),
                RestrictedExpression::new_entity_uid(other_uid),
            ));
        }
        let action = act.uid();
        let context =
            Context::from_pairs(context).map_err(|e| anyhow::anyhow!("the context: {e}"))?;
        let entities = dedup(entities);
        let entities = Entities::from_entities(entities, Some(&self.schema))
            .map_err(|e| anyhow::anyhow!("the entities: {e}"))?;
        let request = Request::new(principal, action, resource, context, Some(&self.schema))
            .map_err(|e| anyhow::anyhow!("the request: {e}"))?;
        Ok((request, entities))
    }
}

/// The uid of entity `id` of type `kind` (one of the schema's four).
fn uid(kind: &str, id: &str) -> anyhow::Result<EntityUid> {
    // Parsing a type name runs Cedar's parser: done once per type, not per decision.
    static TYPES: std::sync::OnceLock<Vec<(&'static str, cedar_policy::EntityTypeName)>> =
        std::sync::OnceLock::new();
    let types = TYPES.get_or_init(|| {
        ["Group", "Identity", "Integration", "Resource"]
            .into_iter()
            .map(|k| {
                (
                    k,
                    cedar_policy::EntityTypeName::from_str(k).expect("a type name"),
                )
            })
            .collect()
    });
    let type_name = types
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, t)| t.clone())
        .with_context(|| format!("no entity type {kind} in Latch's access schema"))?;
    Ok(EntityUid::from_type_name_and_id(
        type_name,
        cedar_policy::EntityId::new(id),
    ))
}

/// The identity entity of `who` and its groups, added to `entities`.
fn identity(who: &Principal, entities: &mut Vec<Entity>) -> anyhow::Result<EntityUid> {
    let me = uid("Identity", &who.id)?;
    let mut groups = Vec::new();
    for g in &who.groups {
        let g = uid("Group", g)?;
        entities.push(Entity::with_uid(g.clone()));
        groups.push(g);
    }
    let mut attrs = vec![(
        "kind".to_string(),
        RestrictedExpression::new_string(who.kind.to_string()),
    )];
    if let Some(email) = &who.email {
        attrs.push((
            "email".into(),
            RestrictedExpression::new_string(email.clone()),
        ));
    }
    entities.push(
        Entity::new(
            me.clone(),
            attrs
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
            groups.into_iter().collect(),
        )
        .map_err(|e| anyhow::anyhow!("the identity {:?}: {e}", who.id))?,
    );
    Ok(me)
}

/// Each entity once (groups shared by the principal and the requester).
fn dedup(entities: Vec<Entity>) -> Vec<Entity> {
    let mut seen = std::collections::HashSet::new();
    entities
        .into_iter()
        .filter(|e| seen.insert(e.uid().to_string()))
        .collect()
}

/// A policy id: short, printable, safe in logs and audit records.
fn check_id(id: &str) -> anyhow::Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b));
    if !ok || id.starts_with("latch:") {
        bail!("@id({id:?}): use 1 to 128 of [A-Za-z0-9-_.:/], not starting with `latch:`");
    }
    Ok(())
}

/// The approvals and window a policy's annotations ask for.
fn terms_of(p: &cedar_policy::Policy) -> anyhow::Result<(u32, Duration)> {
    let approvals = p.annotation("approvals");
    let window = p.annotation("approval_window");
    for key in p.annotations().map(|(k, _)| k) {
        if !["id", "approvals", "approval_window"].contains(&key) {
            bail!("unknown annotation @{key}: Latch reads @id, @approvals and @approval_window");
        }
    }
    if (approvals.is_some() || window.is_some())
        && (p.effect() != cedar_policy::Effect::Permit || !covers(p, Act::Request))
    {
        bail!("@approvals and @approval_window belong on a `permit` of Action::\"request\"");
    }
    let approvals = match approvals {
        None => DEFAULT_APPROVALS,
        Some(n) => match n.parse::<u32>() {
            Ok(n) if n <= MAX_APPROVALS => n,
            _ => bail!("@approvals({n:?}): a whole number from 0 to {MAX_APPROVALS}"),
        },
    };
    let window = match window {
        None => DEFAULT_WINDOW,
        Some(w) => {
            let d = humantime::parse_duration(w)
                .map_err(|e| anyhow::anyhow!("@approval_window({w:?}): {e}"))?;
            if d < Duration::from_secs(60) || d > Duration::from_secs(30 * 24 * 3600) {
                bail!("@approval_window({w:?}): from 1m to 30 days");
            }
            d
        }
    };
    Ok((approvals, window))
}

/// Whether `p`'s action scope can match `act`.
fn covers(p: &cedar_policy::Policy, act: Act) -> bool {
    match p.action_constraint() {
        cedar_policy::ActionConstraint::Any => true,
        cedar_policy::ActionConstraint::Eq(a) => a == act.uid(),
        cedar_policy::ActionConstraint::In(list) => list.contains(&act.uid()),
    }
}

/// Every integration a policy's scope names must be one of `integrations`: a typo would
/// otherwise silently never match.
fn check_integrations(p: &cedar_policy::Policy, integrations: &[&str]) -> anyhow::Result<()> {
    use cedar_policy::ResourceConstraint as R;
    let named = match p.resource_constraint() {
        R::Eq(u) | R::In(u) | R::IsIn(_, u) => Some(u),
        R::Any | R::Is(_) => None,
    };
    let Some(u) = named else { return Ok(()) };
    let kind = u.type_name().to_string();
    let id: &str = u.id().unescaped();
    let integration = match kind.as_str() {
        "Integration" => id,
        "Resource" => id.split('/').next().unwrap_or(id),
        _ => return Ok(()),
    };
    if !integrations.contains(&integration) {
        bail!(
            "it names integration {integration:?}, which latch.toml does not have (it has: {})",
            integrations.join(", ")
        );
    }
    Ok(())
}

/// A parse error, with the file, line and column of each place it points at.
fn located(
    path: &Path,
    text: &str,
    e: &(dyn miette::Diagnostic + Send + Sync + 'static),
) -> anyhow::Error {
    anyhow::anyhow!("{}", located_one(path, text, e))
}

fn located_one(path: &Path, text: &str, e: &dyn miette::Diagnostic) -> String {
    let at = e
        .labels()
        .and_then(|mut l| l.next())
        .map(|l| line_col(text, l.offset()));
    let mut out = match at {
        Some((line, col)) => format!("{}:{line}:{col}: {e}", path.display()),
        None => format!("{}: {e}", path.display()),
    };
    if let Some(related) = e.related() {
        for r in related {
            out.push('\n');
            out.push_str(&located_one(path, text, r));
        }
    }
    if let Some(help) = e.help() {
        out.push_str(&format!(" ({help})"));
    }
    out
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests;
