//! The policies indexed by their principal, action and resource scope: which could apply to
//! an ask.
//!
//! A superset is always safe (Cedar still evaluates each candidate's scope and conditions);
//! leaving out a policy that could apply is never: a policy is left out only when its action
//! scope names other actions, its resource scope another resource or integration, or its
//! principal scope an identity or group the principal is not (groups hold identities only, so
//! membership is direct).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use cedar_policy::{ActionConstraint, PolicySet, PrincipalConstraint, ResourceConstraint};

use crate::Act;

/// Most (action, resource) candidate sets kept; the cache is emptied when it is full.
const CACHE: usize = 4096;

/// An ask's action, integration and resource.
type AskKey = (Act, String, String);

pub(crate) struct Index {
    /// Policies whose action scope is `any`.
    any_action: BTreeSet<usize>,
    /// Per action name, the policies whose action scope names it.
    by_action: HashMap<String, BTreeSet<usize>>,
    /// Policies whose resource scope names no entity (`any`, `is T`).
    any_resource: BTreeSet<usize>,
    /// Per entity (`Integration::"x"`, `Resource::"x/y"`), the policies whose resource scope
    /// is `==` or `in` it.
    by_resource: HashMap<String, BTreeSet<usize>>,
    /// Policies whose principal scope names no entity.
    any_principal: BTreeSet<usize>,
    /// Per entity (`Identity::"x"`, `Group::"g"`), the policies whose principal scope is `==`
    /// or `in` it.
    by_principal: HashMap<String, BTreeSet<usize>>,
    ids: Vec<cedar_policy::PolicyId>,
    /// Per (action, integration, resource): the policies its action and resource scopes allow.
    cache: Mutex<HashMap<AskKey, Arc<Vec<usize>>>>,
}

impl Index {
    pub(crate) fn new(policies: &PolicySet) -> Index {
        let mut index = Index {
            any_action: BTreeSet::new(),
            by_action: HashMap::new(),
            any_resource: BTreeSet::new(),
            by_resource: HashMap::new(),
            any_principal: BTreeSet::new(),
            by_principal: HashMap::new(),
            ids: Vec::new(),
            cache: Mutex::new(HashMap::new()),
        };
        for (n, p) in policies.policies().enumerate() {
            index.ids.push(p.id().clone());
            match p.action_constraint() {
                ActionConstraint::Any => {
                    index.any_action.insert(n);
                }
                ActionConstraint::Eq(a) => {
                    index
                        .by_action
                        .entry(action_name(&a))
                        .or_default()
                        .insert(n);
                }
                ActionConstraint::In(list) => {
                    for a in list {
                        index
                            .by_action
                            .entry(action_name(&a))
                            .or_default()
                            .insert(n);
                    }
                }
            }
            match p.principal_constraint() {
                PrincipalConstraint::Any | PrincipalConstraint::Is(_) => {
                    index.any_principal.insert(n);
                }
                PrincipalConstraint::Eq(u)
                | PrincipalConstraint::In(u)
                | PrincipalConstraint::IsIn(_, u) => {
                    index
                        .by_principal
                        .entry(u.to_string())
                        .or_default()
                        .insert(n);
                }
            }
            match p.resource_constraint() {
                ResourceConstraint::Any | ResourceConstraint::Is(_) => {
                    index.any_resource.insert(n);
                }
                ResourceConstraint::Eq(u)
                | ResourceConstraint::In(u)
                | ResourceConstraint::IsIn(_, u) => {
                    index
                        .by_resource
                        .entry(u.to_string())
                        .or_default()
                        .insert(n);
                }
            }
        }
        index
    }

    /// The policies that could apply to `who` asking `act` on `resource` of `integration`
    /// (the integration itself for `read-audit`), as a policy set of their own.
    pub(crate) fn candidates(
        &self,
        all: &PolicySet,
        act: Act,
        integration: &str,
        resource: &str,
        who: &crate::Principal,
    ) -> PolicySet {
        let scoped = self.scoped(act, integration, resource);
        // The principal's own entity and its groups: a scope `==`/`in` another names none.
        let mine: Vec<&BTreeSet<usize>> = std::iter::once(crate::uid("Identity", &who.id))
            .chain(who.groups.iter().map(|g| crate::uid("Group", g)))
            .flatten()
            .filter_map(|u| self.by_principal.get(&u.to_string()))
            .collect();
        let chosen = scoped
            .iter()
            .filter(|n| self.any_principal.contains(n) || mine.iter().any(|s| s.contains(n)))
            .filter_map(|n| all.policy(&self.ids[*n]).cloned());
        PolicySet::from_policies(chosen).expect("policies of one valid set")
    }

    /// The policies whose action and resource scopes can match, kept per ask.
    fn scoped(&self, act: Act, integration: &str, resource: &str) -> Arc<Vec<usize>> {
        let key = (act, integration.to_string(), resource.to_string());
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = cache.get(&key) {
            return set.clone();
        }
        let mut by_action = self.any_action.clone();
        if let Some(s) = self.by_action.get(act.name()) {
            by_action.extend(s);
        }
        let mut by_resource = self.any_resource.clone();
        // The same uids, printed the same way, as the policies' scopes were indexed by.
        let mut entities = vec![crate::uid("Integration", integration)];
        if act != Act::ReadAudit {
            entities.push(crate::uid("Resource", &format!("{integration}/{resource}")));
        }
        for e in entities.into_iter().flatten().map(|u| u.to_string()) {
            if let Some(s) = self.by_resource.get(&e) {
                by_resource.extend(s);
            }
        }
        let set = Arc::new(
            by_action
                .intersection(&by_resource)
                .copied()
                .collect::<Vec<_>>(),
        );
        if cache.len() >= CACHE {
            cache.clear();
        }
        cache.insert(key, set.clone());
        set
    }
}

fn action_name(a: &cedar_policy::EntityUid) -> String {
    a.id().unescaped().to_string()
}
