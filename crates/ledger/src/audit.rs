//! The audit log: append-only, hash-chained records of requests, capability calls and outcomes.
//!
//! Defends the record of what happened against later editing: each record's hash covers its
//! own fields and the previous record's hash, so `latch audit verify` finds the first record
//! that was edited (its hash no longer matches), deleted (a gap in `seq`) or moved (it no
//! longer follows its predecessor). Records never hold secrets: argv is free of them by design
//! (the SSH key is bound by the host, stdin is recorded by length only), secret reads are
//! recorded by name. Limit: cutting records off the *end* leaves a valid shorter chain; forward
//! the log (or its last hash) elsewhere to detect that.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash before the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What to append.
#[derive(Clone, Debug, Default)]
pub struct Event {
    /// Who asked: a requester's e-mail, `cli`, `scheduler`.
    pub actor: String,
    /// What happened: `grant.requested`, `capability`, `grant.active`, …
    pub event: String,
    pub grant_id: Option<String>,
    pub integration: Option<String>,
    pub guest_sha256: Option<String>,
    /// Where a capability acted, as `user@host:port`.
    pub target: Option<String>,
    /// Details (argv, error message, …) as JSON; never a secret.
    pub detail: serde_json::Value,
    /// `ok`, `refused`, `failed`, …
    pub outcome: String,
}

/// One stored record.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Record {
    pub seq: i64,
    /// Unix milliseconds.
    pub time: i64,
    pub actor: String,
    pub event: String,
    pub grant_id: Option<String>,
    pub integration: Option<String>,
    pub guest_sha256: Option<String>,
    pub target: Option<String>,
    /// What the event says beyond its columns: an object, or null when it says nothing.
    #[schema(value_type = Option<Object>)]
    pub detail: serde_json::Value,
    pub outcome: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The fields a hash covers, in a fixed order.
#[derive(Serialize)]
struct Hashed<'a> {
    seq: i64,
    time: i64,
    actor: &'a str,
    event: &'a str,
    grant_id: &'a Option<String>,
    integration: &'a Option<String>,
    guest_sha256: &'a Option<String>,
    target: &'a Option<String>,
    detail: &'a serde_json::Value,
    outcome: &'a str,
    prev_hash: &'a str,
}

impl Record {
    /// The hash this record should carry.
    pub fn compute_hash(&self) -> String {
        let hashed = Hashed {
            seq: self.seq,
            time: self.time,
            actor: &self.actor,
            event: &self.event,
            grant_id: &self.grant_id,
            integration: &self.integration,
            guest_sha256: &self.guest_sha256,
            target: &self.target,
            detail: &self.detail,
            outcome: &self.outcome,
            prev_hash: &self.prev_hash,
        };
        // serde_json writes struct fields in order and JSON objects with sorted keys.
        let bytes = serde_json::to_vec(&hashed).expect("audit fields serialize");
        hex::encode(Sha256::digest(bytes))
    }

    /// Build the record that follows `prev` (or starts the chain).
    pub fn next(prev: Option<(i64, &str)>, time: i64, e: Event) -> Record {
        let (seq, prev_hash) = match prev {
            Some((seq, hash)) => (seq + 1, hash.to_string()),
            None => (1, GENESIS.to_string()),
        };
        let mut r = Record {
            seq,
            time,
            actor: e.actor,
            event: e.event,
            grant_id: e.grant_id,
            integration: e.integration,
            guest_sha256: e.guest_sha256,
            target: e.target,
            detail: e.detail,
            outcome: e.outcome,
            prev_hash,
            hash: String::new(),
        };
        r.hash = r.compute_hash();
        r
    }
}

/// Where the chain breaks.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("audit record {seq}: {reason}")]
pub struct Broken {
    /// The first bad record's `seq`.
    pub seq: i64,
    /// What is wrong with it.
    pub reason: String,
}

/// Check a chain, in `seq` order; `Ok(n)` is the number of records verified.
pub fn verify(records: impl IntoIterator<Item = Record>) -> Result<u64, Broken> {
    let mut prev: Option<Record> = None;
    let mut n = 0;
    for r in records {
        let expected_seq = prev.as_ref().map_or(1, |p| p.seq + 1);
        if r.seq != expected_seq {
            return Err(Broken {
                seq: expected_seq,
                reason: format!("missing (the next record is {}): deleted?", r.seq),
            });
        }
        let expected_prev = prev.as_ref().map_or(GENESIS, |p| p.hash.as_str());
        if r.prev_hash != expected_prev {
            return Err(Broken {
                seq: r.seq,
                reason:
                    "does not follow the record before it: reordered, or the chain was rewritten"
                        .into(),
            });
        }
        if r.compute_hash() != r.hash {
            return Err(Broken {
                seq: r.seq,
                reason: "its content does not match its hash: edited".into(),
            });
        }
        n += 1;
        prev = Some(r);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<Record> {
        let mut out: Vec<Record> = Vec::new();
        for i in 0..n {
            let prev = out.last().map(|r| (r.seq, r.hash.as_str()));
            let e = Event {
                actor: "alice@corp.example".into(),
                event: "capability".into(),
                detail: serde_json::json!({"argv": ["id", i.to_string()]}),
                outcome: "ok".into(),
                ..Event::default()
            };
            let r = Record::next(prev, 1_000 + i, e);
            out.push(r);
        }
        out
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(chain(5)), Ok(5));
        assert_eq!(verify(Vec::new()), Ok(0));
    }

    #[test]
    fn edits_deletions_and_reorders_name_the_first_bad_record() {
        let mut edited = chain(5);
        edited[2].outcome = "failed".into();
        assert_eq!(verify(edited).unwrap_err().seq, 3);

        let mut deleted = chain(5);
        deleted.remove(1);
        assert_eq!(verify(deleted).unwrap_err().seq, 2);

        let mut reordered = chain(5);
        reordered.swap(1, 2);
        let (a, b) = (reordered[1].seq, reordered[2].seq);
        reordered[1].seq = b;
        reordered[2].seq = a;
        assert_eq!(verify(reordered).unwrap_err().seq, 2);

        let mut rehashed = chain(5);
        rehashed[3].outcome = "failed".into();
        rehashed[3].hash = rehashed[3].compute_hash();
        assert_eq!(
            verify(rehashed).unwrap_err().seq,
            5,
            "a rewritten record breaks the next link"
        );
    }
}
