//! Access requests and their approvals (issue 22): `pending → approved → granted`, or
//! `denied`, `canceled` by the requester, `timed_out` when no approval came in time.
//!
//! The same rules as grants: each change is one `UPDATE … WHERE state = <from>` in the
//! transaction of its audit record, so two approvers, a timeout and a cancel racing each other
//! leave exactly one outcome. **A request grants at most once**: the grant's id is chosen in
//! the transaction that approves it (`approved` rows carry it) and the grant path records its
//! grant under that id — a second attempt, after a crash or from another connector, finds the
//! id taken and grants nothing. `approved → granted` then only notes that it happened.
//! An approver counts once (`approvals` is keyed by request and approver); who may approve,
//! and that no one approves their own request, is the access policy's and the service's to
//! decide before the ledger is asked.

use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use super::audit::Event;
use super::error::{LedgerError, Result};
use super::grant::new_grant_id;
use super::sqlite::{Ledger, append, blocking};

/// Where a request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Waiting for approvals.
    Pending,
    /// Approved: its grant (id chosen) is being made.
    Approved,
    /// Its grant was made (the grant's own state says whether it is still active).
    Granted,
    /// An approver said no.
    Denied,
    /// The requester withdrew it.
    Canceled,
    /// No decision within its window.
    TimedOut,
    /// Approved, but its grant failed.
    Failed,
}

impl RequestState {
    /// The name stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Approved => "approved",
            RequestState::Granted => "granted",
            RequestState::Denied => "denied",
            RequestState::Canceled => "canceled",
            RequestState::TimedOut => "timed_out",
            RequestState::Failed => "failed",
        }
    }

    /// Parse a stored name.
    pub fn parse(s: &str) -> Result<RequestState> {
        Ok(match s {
            "pending" => RequestState::Pending,
            "approved" => RequestState::Approved,
            "granted" => RequestState::Granted,
            "denied" => RequestState::Denied,
            "canceled" => RequestState::Canceled,
            "timed_out" => RequestState::TimedOut,
            "failed" => RequestState::Failed,
            other => {
                return Err(LedgerError::Invalid(format!(
                    "unknown request state {other:?}"
                )));
            }
        })
    }
}

/// One request.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RequestRecord {
    pub request_id: String,
    pub integration: String,
    pub resource_id: String,
    pub permission: String,
    /// The requester's identity id.
    pub requester: String,
    pub requester_email: Option<String>,
    /// The requester's groups when asking (an approval's policy may name them).
    pub requester_groups: Vec<String>,
    /// The requester's public key, where the integration issues certificates.
    pub public_key: String,
    pub duration_secs: u64,
    pub justification: String,
    /// Approvals needed (0: approved at once).
    pub approvals_needed: u32,
    /// The policies that allowed the request.
    pub policies: Vec<String>,
    pub created_at: u64,
    /// A pending request times out at this time.
    pub decide_by: u64,
    pub state: RequestState,
    /// Chosen when approved; the grant's id.
    pub grant_id: Option<String>,
    pub closed_at: Option<u64>,
    /// Who denied or canceled it (or `scheduler` for a timeout).
    pub closed_by: Option<String>,
    /// Why it was denied, or why its grant failed.
    pub reason: Option<String>,
}

/// One approval.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Approval {
    pub approver: String,
    pub email: Option<String>,
    /// The policies that allowed this approval.
    pub policies: Vec<String>,
    pub at: u64,
}

/// A new random request id.
pub fn new_request_id() -> String {
    super::grant::new_id("r-")
}

/// Request ids are `r-` and 24 hex digits.
pub fn check_request_id(id: &str) -> Result<()> {
    super::grant::check_id(id, "r-", "request")
}

/// What came of an approval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Approved {
    /// Counted; this many more are needed.
    Counted { more: u32 },
    /// That was the last one needed: make grant `grant_id`.
    Approved { grant_id: String },
}

impl Ledger {
    /// Record a new request with its audit event. One with no approvals needed is recorded
    /// `approved`, its grant id chosen, in the same transaction. Refused while the requester
    /// has another open request (pending or approved) for the same resource.
    pub fn create_request(&self, r: &RequestRecord, event: Event) -> Result<RequestRecord> {
        blocking(|| -> Result<RequestRecord> {
            check_request_id(&r.request_id)?;
            if r.state != RequestState::Pending {
                return Err(LedgerError::Invalid("a new request starts pending".into()));
            }
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let open: Option<String> = tx
                .query_row(
                    "SELECT request_id FROM requests WHERE integration = ?1 AND resource_id = ?2
                       AND requester = ?3 AND state IN ('pending', 'approved') LIMIT 1",
                    params![r.integration, r.resource_id, r.requester],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(id) = open {
                return Err(LedgerError::Conflict(format!(
                    "{} has request {id} open for {} already; cancel it first",
                    r.requester, r.resource_id
                )));
            }
            let mut stored = r.clone();
            if r.approvals_needed == 0 {
                stored.state = RequestState::Approved;
                stored.grant_id = Some(new_grant_id());
            }
            tx.execute(
                "INSERT INTO requests (request_id, integration, resource_id, permission, requester,
                    requester_email, public_key, duration_secs, justification, approvals_needed,
                    policies, created_at, decide_by, state, grant_id, requester_groups)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                params![
                    stored.request_id,
                    stored.integration,
                    stored.resource_id,
                    stored.permission,
                    stored.requester,
                    stored.requester_email,
                    stored.public_key,
                    stored.duration_secs as i64,
                    stored.justification,
                    stored.approvals_needed,
                    serde_json::to_string(&stored.policies)?,
                    stored.created_at as i64,
                    stored.decide_by as i64,
                    stored.state.as_str(),
                    stored.grant_id,
                    serde_json::to_string(&stored.requester_groups)?,
                ],
            )?;
            append(&tx, event)?;
            tx.commit()?;
            Ok(stored)
        })
    }

    /// The request `request_id`.
    pub fn request(&self, request_id: &str) -> Result<RequestRecord> {
        blocking(|| -> Result<RequestRecord> {
            check_request_id(request_id)?;
            self.conn()
                .query_row(
                    "SELECT * FROM requests WHERE request_id = ?1",
                    params![request_id],
                    request_of,
                )
                .optional()?
                .ok_or_else(|| LedgerError::NotFound(request_id.to_string()))
        })
    }

    /// Requests, newest first: in `state` if given.
    pub fn requests(&self, state: Option<RequestState>) -> Result<Vec<RequestRecord>> {
        blocking(|| -> Result<Vec<RequestRecord>> {
            let conn = self.conn();
            let mut stmt = conn.prepare(
                "SELECT * FROM requests WHERE ?1 IS NULL OR state = ?1
                 ORDER BY created_at DESC, request_id",
            )?;
            let rows = stmt.query_map(params![state.map(|s| s.as_str())], request_of)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// The approvals of `request_id`, oldest first.
    pub fn approvals(&self, request_id: &str) -> Result<Vec<Approval>> {
        blocking(|| -> Result<Vec<Approval>> {
            check_request_id(request_id)?;
            let conn = self.conn();
            let mut stmt = conn.prepare(
                "SELECT approver, email, policies, at FROM approvals WHERE request_id = ?1
                 ORDER BY at, approver",
            )?;
            let rows = stmt.query_map(params![request_id], |row| {
                let policies: String = row.get(2)?;
                Ok(Approval {
                    approver: row.get(0)?,
                    email: row.get(1)?,
                    policies: serde_json::from_str(&policies).unwrap_or_default(),
                    at: row.get::<_, i64>(3)? as u64,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Count `approval` of pending request `request_id` (before `now`, its deadline); the
    /// last one needed approves it and chooses its grant id, in the same transaction.
    /// An approver approves once; the requester never (refused here too, whatever the policy).
    pub fn approve_request(
        &self,
        request_id: &str,
        approval: &Approval,
        now: u64,
        event: Event,
    ) -> Result<Approved> {
        blocking(|| -> Result<Approved> {
            check_request_id(request_id)?;
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let (state, requester, needed, decide_by): (String, String, u32, i64) = tx
                .query_row(
                    "SELECT state, requester, approvals_needed, decide_by FROM requests
                     WHERE request_id = ?1",
                    params![request_id],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
                )
                .optional()?
                .ok_or_else(|| LedgerError::NotFound(request_id.to_string()))?;
            if state != "pending" {
                return Err(LedgerError::Conflict(format!(
                    "request {request_id} is {state}, not pending"
                )));
            }
            if now as i64 >= decide_by {
                return Err(LedgerError::Conflict(format!(
                    "request {request_id} waited past its approval window"
                )));
            }
            if requester == approval.approver {
                return Err(LedgerError::Conflict(
                    "no one approves their own request".into(),
                ));
            }
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO approvals (request_id, approver, email, policies, at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    request_id,
                    approval.approver,
                    approval.email,
                    serde_json::to_string(&approval.policies)?,
                    approval.at as i64
                ],
            )?;
            if inserted == 0 {
                return Err(LedgerError::Conflict(format!(
                    "{} approved request {request_id} already",
                    approval.approver
                )));
            }
            let count: u32 = tx.query_row(
                "SELECT COUNT(*) FROM approvals WHERE request_id = ?1",
                params![request_id],
                |row| row.get(0),
            )?;
            let outcome = if count >= needed {
                let grant_id = new_grant_id();
                let n = tx.execute(
                    "UPDATE requests SET state = 'approved', grant_id = ?2
                     WHERE request_id = ?1 AND state = 'pending'",
                    params![request_id, grant_id],
                )?;
                if n != 1 {
                    return Err(LedgerError::Conflict(format!(
                        "request {request_id} changed meanwhile"
                    )));
                }
                Approved::Approved { grant_id }
            } else {
                Approved::Counted {
                    more: needed - count,
                }
            };
            append(&tx, event)?;
            tx.commit()?;
            Ok(outcome)
        })
    }

    /// Close pending request `request_id` as `to` (`denied` or `canceled`) by `by`, with
    /// `reason`.
    pub fn close_request(
        &self,
        request_id: &str,
        to: RequestState,
        by: &str,
        reason: Option<&str>,
        now: u64,
        event: Event,
    ) -> Result<()> {
        if !matches!(to, RequestState::Denied | RequestState::Canceled) {
            return Err(LedgerError::Invalid(format!(
                "a request is closed as denied or canceled, not {}",
                to.as_str()
            )));
        }
        self.move_request(
            request_id,
            RequestState::Pending,
            to,
            Some(by),
            reason,
            now,
            event,
        )
    }

    /// Note that approved request `request_id`'s grant was made (`granted`) or failed
    /// (`failed`, with `reason`).
    pub fn finish_request(
        &self,
        request_id: &str,
        to: RequestState,
        reason: Option<&str>,
        now: u64,
        event: Event,
    ) -> Result<()> {
        if !matches!(to, RequestState::Granted | RequestState::Failed) {
            return Err(LedgerError::Invalid(format!(
                "an approved request ends granted or failed, not {}",
                to.as_str()
            )));
        }
        self.move_request(
            request_id,
            RequestState::Approved,
            to,
            None,
            reason,
            now,
            event,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn move_request(
        &self,
        request_id: &str,
        from: RequestState,
        to: RequestState,
        by: Option<&str>,
        reason: Option<&str>,
        now: u64,
        event: Event,
    ) -> Result<()> {
        blocking(|| -> Result<()> {
            check_request_id(request_id)?;
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let n = tx.execute(
                "UPDATE requests SET state = ?3, closed_at = ?4, closed_by = ?5, reason = ?6
                 WHERE request_id = ?1 AND state = ?2",
                params![
                    request_id,
                    from.as_str(),
                    to.as_str(),
                    now as i64,
                    by,
                    reason
                ],
            )?;
            if n != 1 {
                let state: Option<String> = tx
                    .query_row(
                        "SELECT state FROM requests WHERE request_id = ?1",
                        params![request_id],
                        |row| row.get(0),
                    )
                    .optional()?;
                return Err(match state {
                    None => LedgerError::NotFound(request_id.to_string()),
                    Some(s) => LedgerError::Conflict(format!(
                        "request {request_id} is {s}, not {}",
                        from.as_str()
                    )),
                });
            }
            append(&tx, event)?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Time out every pending request whose window ended by `now`, each with its audit
    /// record (made by `event_of`); returns them.
    pub fn time_out_requests(
        &self,
        now: u64,
        event_of: impl Fn(&RequestRecord) -> Event,
    ) -> Result<Vec<RequestRecord>> {
        blocking(|| -> Result<Vec<RequestRecord>> {
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let due: Vec<RequestRecord> = {
                let mut stmt = tx.prepare(
                    "SELECT * FROM requests WHERE state = 'pending' AND decide_by <= ?1",
                )?;
                let rows = stmt.query_map(params![now as i64], request_of)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            let mut out = Vec::new();
            for mut r in due {
                let n = tx.execute(
                    "UPDATE requests SET state = 'timed_out', closed_at = ?2,
                        closed_by = 'scheduler'
                     WHERE request_id = ?1 AND state = 'pending'",
                    params![r.request_id, now as i64],
                )?;
                if n == 1 {
                    r.state = RequestState::TimedOut;
                    r.closed_at = Some(now);
                    r.closed_by = Some("scheduler".into());
                    append(&tx, event_of(&r))?;
                    out.push(r);
                }
            }
            tx.commit()?;
            Ok(out)
        })
    }

    /// Approved requests whose grant is still to be made or noted: after a crash, the
    /// service looks each up by its grant id (made → `granted`; never made → make it).
    pub fn approved_requests(&self) -> Result<Vec<RequestRecord>> {
        self.requests(Some(RequestState::Approved))
    }
}

fn request_of(row: &Row<'_>) -> rusqlite::Result<RequestRecord> {
    let state: String = row.get("state")?;
    let policies: String = row.get("policies")?;
    Ok(RequestRecord {
        request_id: row.get("request_id")?,
        integration: row.get("integration")?,
        resource_id: row.get("resource_id")?,
        permission: row.get("permission")?,
        requester: row.get("requester")?,
        requester_email: row.get("requester_email")?,
        requester_groups: serde_json::from_str(&row.get::<_, String>("requester_groups")?)
            .unwrap_or_default(),
        public_key: row.get("public_key")?,
        duration_secs: row.get::<_, i64>("duration_secs")? as u64,
        justification: row.get("justification")?,
        approvals_needed: row.get("approvals_needed")?,
        policies: serde_json::from_str(&policies).unwrap_or_default(),
        created_at: row.get::<_, i64>("created_at")? as u64,
        decide_by: row.get::<_, i64>("decide_by")? as u64,
        state: RequestState::parse(&state).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
        })?,
        grant_id: row.get("grant_id")?,
        closed_at: row.get::<_, Option<i64>>("closed_at")?.map(|t| t as u64),
        closed_by: row.get("closed_by")?,
        reason: row.get("reason")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(what: &str) -> Event {
        Event {
            actor: "test".into(),
            event: what.into(),
            outcome: "ok".into(),
            ..Default::default()
        }
    }

    fn request(requester: &str, approvals: u32) -> RequestRecord {
        RequestRecord {
            request_id: new_request_id(),
            integration: "dev-ssh".into(),
            resource_id: "db-1".into(),
            permission: "admin".into(),
            requester: requester.into(),
            requester_email: Some(format!("{requester}@example.test")),
            requester_groups: vec!["devs".into()],
            public_key: String::new(),
            duration_secs: 3600,
            justification: "ticket 42".into(),
            approvals_needed: approvals,
            policies: vec!["devs-request-dev".into()],
            created_at: 1000,
            decide_by: 2000,
            state: RequestState::Pending,
            grant_id: None,
            closed_at: None,
            closed_by: None,
            reason: None,
        }
    }

    fn approval(who: &str) -> Approval {
        Approval {
            approver: who.into(),
            email: None,
            policies: vec!["approvers-approve".into()],
            at: 1500,
        }
    }

    #[test]
    fn two_approvals_approve_once_and_choose_one_grant_id() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let r = ledger
            .create_request(&request("alice", 2), event("request.created"))
            .unwrap();
        assert_eq!(r.state, RequestState::Pending);
        let ev = || event("request.approval");
        // The requester never approves; an approver counts once.
        assert!(matches!(
            ledger.approve_request(&r.request_id, &approval("alice"), 1500, ev()),
            Err(LedgerError::Conflict(_))
        ));
        assert_eq!(
            ledger
                .approve_request(&r.request_id, &approval("bob"), 1500, ev())
                .unwrap(),
            Approved::Counted { more: 1 }
        );
        assert!(matches!(
            ledger.approve_request(&r.request_id, &approval("bob"), 1500, ev()),
            Err(LedgerError::Conflict(_))
        ));
        let Approved::Approved { grant_id } = ledger
            .approve_request(&r.request_id, &approval("carol"), 1600, ev())
            .unwrap()
        else {
            panic!("the second approver approves")
        };
        crate::check_grant_id(&grant_id).unwrap();
        let stored = ledger.request(&r.request_id).unwrap();
        assert_eq!(
            (stored.state, stored.grant_id.as_deref()),
            (RequestState::Approved, Some(grant_id.as_str()))
        );
        // A third approval, a cancel or a deny after that change nothing.
        assert!(
            ledger
                .approve_request(&r.request_id, &approval("dave"), 1600, ev())
                .is_err()
        );
        assert!(
            ledger
                .close_request(
                    &r.request_id,
                    RequestState::Canceled,
                    "alice",
                    None,
                    1700,
                    ev()
                )
                .is_err()
        );
        assert_eq!(ledger.approvals(&r.request_id).unwrap().len(), 2);
        ledger
            .finish_request(&r.request_id, RequestState::Granted, None, 1700, ev())
            .unwrap();
        assert!(
            ledger
                .finish_request(&r.request_id, RequestState::Granted, None, 1700, ev())
                .is_err(),
            "noted once"
        );
        assert!(ledger.audit_verify().unwrap().is_ok());
    }

    #[test]
    fn a_request_needing_no_approval_is_approved_as_it_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let r = ledger
            .create_request(&request("olga", 0), event("request.created"))
            .unwrap();
        assert_eq!(r.state, RequestState::Approved);
        assert!(r.grant_id.is_some());
        assert_eq!(ledger.approved_requests().unwrap().len(), 1);
        // One open request per requester and resource.
        let again = ledger.create_request(&request("olga", 0), event("request.created"));
        assert!(matches!(again, Err(LedgerError::Conflict(_))));
    }

    #[test]
    fn pending_requests_time_out_deny_and_cancel_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let a = ledger
            .create_request(&request("alice", 1), event("request.created"))
            .unwrap();
        let mut b = request("bob", 1);
        b.decide_by = 5000;
        let b = ledger.create_request(&b, event("request.created")).unwrap();
        let out = ledger
            .time_out_requests(2000, |_| event("request.timed_out"))
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].request_id, a.request_id);
        assert!(
            ledger
                .time_out_requests(2000, |_| event("x"))
                .unwrap()
                .is_empty()
        );
        // A timed-out request is approved by no one.
        assert!(
            ledger
                .approve_request(&a.request_id, &approval("carol"), 1900, event("x"))
                .is_err()
        );
        // Past its window, an approval is refused even before the scheduler's tick.
        assert!(
            ledger
                .approve_request(&b.request_id, &approval("carol"), 6000, event("x"))
                .is_err()
        );
        ledger
            .close_request(
                &b.request_id,
                RequestState::Denied,
                "carol",
                Some("not now"),
                2100,
                event("request.denied"),
            )
            .unwrap();
        let stored = ledger.request(&b.request_id).unwrap();
        assert_eq!(stored.state, RequestState::Denied);
        assert_eq!(stored.reason.as_deref(), Some("not now"));
        assert!(
            ledger
                .close_request(
                    &b.request_id,
                    RequestState::Canceled,
                    "bob",
                    None,
                    2200,
                    event("x")
                )
                .is_err()
        );
        assert!(matches!(
            ledger.request("r-000000000000000000000000"),
            Err(LedgerError::NotFound(_))
        ));
        assert!(matches!(
            ledger.request("../x"),
            Err(LedgerError::Invalid(_))
        ));
        assert!(ledger.audit_verify().unwrap().is_ok());
        assert_eq!(
            ledger.requests(Some(RequestState::Denied)).unwrap().len(),
            1
        );
        assert_eq!(ledger.requests(None).unwrap().len(), 2);
    }

    #[test]
    fn approvals_racing_from_many_threads_approve_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = std::sync::Arc::new(Ledger::open(dir.path()).unwrap());
        let r = ledger
            .create_request(&request("alice", 3), event("request.created"))
            .unwrap();
        let approvers: Vec<String> = (0..12).map(|i| format!("approver{i}")).collect();
        let outcomes: Vec<Result<Approved>> = std::thread::scope(|s| {
            let handles: Vec<_> = approvers
                .iter()
                .map(|who| {
                    let ledger = ledger.clone();
                    let id = r.request_id.clone();
                    s.spawn(move || ledger.approve_request(&id, &approval(who), 1500, event("a")))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let approved: Vec<&Approved> = outcomes
            .iter()
            .filter_map(|o| o.as_ref().ok())
            .filter(|o| matches!(o, Approved::Approved { .. }))
            .collect();
        assert_eq!(approved.len(), 1, "{outcomes:?}");
        assert_eq!(ledger.approvals(&r.request_id).unwrap().len(), 3);
    }
}
