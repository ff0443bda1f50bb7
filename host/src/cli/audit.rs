//! `latch audit verify` and `latch audit tail`: the audit log, checked and read.
//!
//! `tail` prints one line a record: a command as it ran, each script sent to a server as
//! its line count and the start of its sha256 (the same script, the same digest: runs can
//! be compared at a glance; `sh -c`'s next word is the script's name), and how it ended;
//! `--json` prints each record whole, as it is hashed, the scripts' text included.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::access::{Target, Where};
use crate::config::Config;
use crate::ledger::Ledger;
use crate::ledger::audit::Record;

/// `latch audit verify`: check the hash chain (and, with `against`, that no record of a
/// forwarded copy is missing or different); exit 1 naming the first bad record.
pub fn audit_verify(config: &Path, against: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let ledger = Ledger::open(&config.data_dir)?;
    let mut result = ledger.audit_verify()?;
    if let (Ok(_), Some(copy)) = (&result, against) {
        let forwarded = crate::ledger::forward::read(copy)?;
        let n = forwarded.len();
        result =
            crate::ledger::forward::verify_against(&ledger.audit_all()?, forwarded).and(result);
        if result.is_ok() {
            println!(
                "ok: all {n} records of {} are in the ledger, unchanged",
                copy.display()
            );
        }
    }
    match result {
        Ok(n) => {
            println!(
                "ok: {n} audit records, chain intact ({})",
                ledger.path().display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(broken) => {
            println!("TAMPERED: {broken}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `latch audit tail`: the last records.
pub async fn audit_tail(at: &Where, n: usize, json: bool) -> anyhow::Result<ExitCode> {
    let records: Vec<Record> = match at.target()? {
        Target::Local(config) => Ledger::open(&config.data_dir)?.audit_tail(n)?,
        Target::Remote(api) => serde_json::from_value(api.get(&format!("/v1/audit?n={n}")).await?)?,
    };
    for r in records {
        if json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            let when =
                humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(r.time as u64));
            println!(
                "{:>6} {when} {:<18} {:<9} {} {} {}",
                r.seq,
                r.event,
                r.outcome,
                r.grant_id.as_deref().unwrap_or("-"),
                r.target.as_deref().unwrap_or(""),
                summary(&r.detail)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A record's detail on one line: a command as its argv (each script as its line count and
/// sha256), then its status or error; any other detail as compact JSON with every
/// multi-line text shortened the same way.
pub(crate) fn summary(detail: &Value) -> String {
    let Some(object) = detail.as_object() else {
        return if detail.is_null() {
            String::new()
        } else {
            detail.to_string()
        };
    };
    let Some(argv) = object.get("argv").and_then(Value::as_array) else {
        return shortened(detail).to_string();
    };
    let mut line = String::new();
    if let Some(c) = object.get("capability").and_then(Value::as_str) {
        line.push_str(c);
        line.push(' ');
    }
    let words: Vec<String> = argv
        .iter()
        .map(|a| match a.as_str() {
            Some(text) if text.contains('\n') => script(text),
            Some(text) if text.is_empty() || text.contains([' ', '\'', '"']) => {
                format!("{text:?}")
            }
            Some(text) => text.to_string(),
            None => a.to_string(),
        })
        .collect();
    line.push_str(&words.join(" "));
    if let Some(n) = object
        .get("stdin_bytes")
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)
    {
        line.push_str(&format!(" <stdin {n} bytes>"));
    }
    match (object.get("status"), object.get("message")) {
        (Some(status), _) if !status.is_null() => line.push_str(&format!(" → status {status}")),
        (_, Some(Value::String(m))) => line.push_str(&format!(" → {m}")),
        _ => {}
    }
    line
}

/// A script as `<script, N lines, sha256 PREFIX>`.
fn script(text: &str) -> String {
    let digest = hex::encode(Sha256::digest(text.as_bytes()));
    let lines = text.lines().count();
    let plural = if lines == 1 { "" } else { "s" };
    format!("<script, {lines} line{plural}, sha256 {}>", &digest[..16])
}

/// `value` with every multi-line string replaced by [`script`]'s summary of it.
fn shortened(value: &Value) -> Value {
    match value {
        Value::String(s) if s.contains('\n') => Value::String(script(s)),
        Value::Array(items) => Value::Array(items.iter().map(shortened).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shortened(v))).collect())
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_is_one_line_with_its_digest_and_status() {
        let text = "set -eu\necho hi\n";
        let detail = serde_json::json!({
            "capability": "ssh.exec",
            "argv": ["sudo", "-n", "/bin/sh", "-c", text, "latch-probe", "alice", ""],
            "status": 0,
            "stdin_bytes": 0,
        });
        let digest = hex::encode(Sha256::digest(text.as_bytes()));
        assert_eq!(
            summary(&detail),
            format!(
                "ssh.exec sudo -n /bin/sh -c <script, 2 lines, sha256 {}> latch-probe alice \"\" → status 0",
                &digest[..16]
            )
        );
        let other = serde_json::json!({"capability": "log.write", "text": "a\nb"});
        assert!(!summary(&other).contains('\n'));
        assert!(summary(&other).contains("<script, 2 lines, sha256 "));
        assert_eq!(summary(&Value::Null), "");
    }
}
