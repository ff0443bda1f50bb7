//! Temporary credentials and tokens, kept in memory while they are valid: AWS credentials
//! from web identity, containers or instance metadata; Resource Manager's tokens (per
//! integration); the tokens of Vault (AppRole), Key Vault and GCP Secret Manager.
//! Never written anywhere. A value is kept until 5 minutes before it expires (half its life
//! if shorter); a failure for [`FAILURE_KEPT`], so the calls of one discovery (one per
//! region) meet one refusal or one time-out, not one each. One fetch at a time per memo:
//! concurrent callers wait for it rather than each asking.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a failure is answered from memory.
pub const FAILURE_KEPT: Duration = Duration::from_secs(5);

/// A value or the failure to get it, and until when it is kept.
type Kept<T> = (Result<T, String>, Instant);

/// Values of type `T` by source (a key naming where they come from, never a secret).
pub struct Memo<T>(tokio::sync::Mutex<HashMap<String, Kept<T>>>);

impl<T: Clone> Default for Memo<T> {
    fn default() -> Self {
        Memo(Default::default())
    }
}

impl<T: Clone> Memo<T> {
    /// The kept value of `key`, or `fetch`'s, which gives the value and how long it lives.
    pub async fn get<F, Fut>(&self, key: &str, fetch: F) -> Result<T, String>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(T, Duration), String>>,
    {
        let mut kept = self.0.lock().await;
        if let Some((value, until)) = kept.get(key)
            && Instant::now() < *until
        {
            return value.clone();
        }
        let (value, until) = match fetch().await {
            Ok((value, life)) => (Ok(value), Instant::now() + keep_for(life)),
            Err(e) => (Err(e), Instant::now() + FAILURE_KEPT),
        };
        kept.insert(key.to_string(), (value.clone(), until));
        value
    }
}

impl<T> Memo<T> {
    /// Drop what is kept for `key` (a token the service called expired before its time).
    pub async fn forget(&self, key: &str) {
        self.0.lock().await.remove(key);
    }
}

/// How long a value that lives `life` is kept.
pub fn keep_for(life: Duration) -> Duration {
    life - Duration::from_secs(300).min(life / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn kept_until_five_minutes_before_expiry_or_half_a_short_life() {
        let hour = Duration::from_secs(3600);
        assert_eq!(keep_for(hour), hour - Duration::from_secs(300));
        assert_eq!(keep_for(Duration::from_secs(240)), Duration::from_secs(120));
        assert_eq!(keep_for(Duration::ZERO), Duration::ZERO);
    }

    #[tokio::test]
    async fn one_fetch_for_concurrent_callers_and_failures_kept_briefly() {
        let memo: Memo<u32> = Memo::default();
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok((7, Duration::from_secs(3600)))
        };
        let (a, b, c) = tokio::join!(
            memo.get("k", fetch),
            memo.get("k", fetch),
            memo.get("k", fetch)
        );
        assert_eq!((a, b, c), (Ok(7), Ok(7), Ok(7)));
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // Another source is its own.
        assert_eq!(memo.get("other", fetch).await, Ok(7));
        assert_eq!(fetches.load(Ordering::SeqCst), 2);

        // Expired at once: fetched again each time.
        let short = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            Ok((1, Duration::ZERO))
        };
        memo.get("short", short).await.unwrap();
        memo.get("short", short).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 4);

        let refused = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            Err::<(u32, Duration), _>("refused".to_string())
        };
        assert!(memo.get("bad", refused).await.is_err());
        assert!(memo.get("bad", refused).await.is_err());
        assert_eq!(fetches.load(Ordering::SeqCst), 5, "a failure is kept");
    }
}
