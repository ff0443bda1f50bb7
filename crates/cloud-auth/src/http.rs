//! The one HTTP client of the host: the CLI's, to a running connector, now; WinRM and cloud
//! APIs next. reqwest on rustls with the `ring` provider; certificates verified against the
//! system's roots (the platform verifier) unless a caller configures otherwise.
//!
//! Defends a credential in a request against going where it was not meant to: no proxy from
//! the environment (`HTTP_PROXY` would otherwise see every bearer token), no redirects (a
//! redirect would carry the `Authorization` header to another host), and time limits.

use std::time::Duration;

/// A client builder with Latch's defaults: rustls/ring, no environment proxy, no redirects,
/// connect and total timeouts.
pub fn builder(connect: Duration, total: Duration) -> reqwest::ClientBuilder {
    // Installing the process-wide provider fails harmlessly if one is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect)
        .timeout(total)
}
