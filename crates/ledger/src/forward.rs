//! Audit forwarding: every audit record, in order, as one JSON line in a file outside the
//! ledger (`[audit] forward_file`), for a log shipper or a write-once store to pick up.
//!
//! Defends against the one tampering the hash chain cannot see from inside — cutting records
//! off its end — and against losing the ledger file: `latch audit verify --against FILE`
//! checks the ledger against the forwarded copy. The forwarder keeps no state of its own: the
//! last complete line of the file says how far it got, so a crash between a write and anything
//! else forwards nothing twice and skips nothing (a torn last line is cut off and rewritten).
//! It runs in `latch serve` and forwards records written by any process (CLI grants too).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::audit::{Broken, Record, verify};
use super::sqlite::Ledger;

/// At most this many records are written per call (the scheduler calls again next tick).
pub const BATCH: usize = 10_000;

/// Appends audit records to a JSON-lines file.
pub struct Forwarder {
    path: PathBuf,
    /// The `seq` of the last record in the file (0 when empty).
    last_seq: i64,
    file: File,
}

impl Forwarder {
    /// Open (or create, mode 0600) `path` and find where it ends.
    pub fn open(path: &Path) -> anyhow::Result<Forwarder> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot open the audit forward file {}", path.display()))?;
        let (last_seq, good_len) =
            scan(&mut file).with_context(|| format!("audit forward file {}", path.display()))?;
        if good_len < file.metadata()?.len() {
            tracing::warn!(file = %path.display(), "cutting off a torn last line");
            file.set_len(good_len)?;
        }
        Ok(Forwarder {
            path: path.to_path_buf(),
            last_seq,
            file,
        })
    }

    /// Append every record the file does not have yet (up to [`BATCH`]), then fsync.
    /// Returns how many were written.
    pub fn forward(&mut self, ledger: &Ledger) -> anyhow::Result<usize> {
        let records = ledger.audit_after(self.last_seq, BATCH)?;
        if records.is_empty() {
            return Ok(0);
        }
        if records[0].seq != self.last_seq + 1 {
            bail!(
                "{} ends at record {} but the ledger's next record is {}: the ledger lost records",
                self.path.display(),
                self.last_seq,
                records[0].seq
            );
        }
        let mut buf = Vec::new();
        for r in &records {
            serde_json::to_writer(&mut buf, r)?;
            buf.push(b'\n');
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.last_seq = records.last().map_or(self.last_seq, |r| r.seq);
        Ok(records.len())
    }
}

/// The `seq` of the last complete record and the length of the file up to its end.
fn scan(file: &mut File) -> anyhow::Result<(i64, u64)> {
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::new(&*file);
    let (mut last_seq, mut good_len, mut line) = (0, 0u64, String::new());
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        let r: Record = serde_json::from_str(&line)
            .with_context(|| format!("line after record {last_seq} is not an audit record"))?;
        last_seq = r.seq;
        good_len += n as u64;
    }
    Ok((last_seq, good_len))
}

/// Read a forwarded file's records (ignoring a torn last line).
pub fn read(path: &Path) -> anyhow::Result<Vec<Record>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let complete = text.rfind('\n').map_or("", |i| &text[..i]);
    complete
        .lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{} line {}: not an audit record", path.display(), i + 1))
        })
        .collect()
}

/// Check the ledger's chain against a forwarded copy: the copy must be an intact chain
/// itself, and every record in it must be in the ledger, unchanged. `Ok(Ok(n))`: `n` records
/// matched.
pub fn verify_against(ledger_records: &[Record], forwarded: Vec<Record>) -> Result<u64, Broken> {
    let n = verify(forwarded.iter().cloned()).map_err(|b| Broken {
        seq: b.seq,
        reason: format!("in the forwarded copy: {}", b.reason),
    })?;
    for f in &forwarded {
        match ledger_records.get((f.seq - 1) as usize) {
            Some(l) if l == f => {}
            Some(_) => {
                return Err(Broken {
                    seq: f.seq,
                    reason: "differs from the forwarded copy: edited?".into(),
                });
            }
            None => {
                return Err(Broken {
                    seq: f.seq,
                    reason: "is in the forwarded copy but no longer in the ledger: cut off?".into(),
                });
            }
        }
    }
    Ok(n)
}
