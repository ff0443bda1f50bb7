//! Latch's integration tests: one binary (fewer link steps on 2 cores).
//!
//! Guests must be built first (`make guests`); the helpers say so if they are not.

mod ad_bounds;
mod api;
mod api_auth;
mod aws_creds;
mod azure;
mod canary;
mod cli;
mod config;
mod contract;
mod crash;
mod denials;
mod distros;
mod e2e;
mod ec2;
mod fleet;
mod guest_secrets;
mod ledger;
mod policy;
mod rdp;
mod requests;
mod rotation;
mod serve;
mod ssh;
mod testkit;
mod windows_dc;
mod winrm;
mod wsman;

use std::path::PathBuf;

/// Path of built guest `name` (crate name, `-` or `_`).
pub fn guest(name: &str) -> PathBuf {
    let path = latch_testkit::guest_path(name);
    assert!(
        path.exists(),
        "{} is not built; run `make guests` first",
        path.display()
    );
    path
}
