//! How the host proves who it is to cloud APIs, below both the `cloud` capability (which
//! calls AWS and Azure for a guest) and the secret stores (AWS Secrets Manager, Azure Key
//! Vault): AWS Signature Version 4 ([`sigv4`]) and the AWS credentials chain ([`creds`]),
//! Azure tokens ([`azure`]), one memo for every temporary credential and token ([`memo`]),
//! reading one answer within bounds ([`answer`]), and the host's one HTTP client builder
//! ([`http`]). It imports nothing of the host but [`latch_secret`].

pub mod answer;
pub mod aws;
pub mod azure;
pub mod creds;
pub mod http;
pub mod memo;
pub mod sigv4;
