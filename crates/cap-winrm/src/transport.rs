//! WinRM's HTTP transport: one TCP (or TLS) connection, authenticated once, carrying SOAP
//! envelopes. An [`Exchange`] for [`crate::shell`].
//!
//! Defends the service account's password and every envelope on the way:
//! - **NTLMv2 with message encryption** (the `sspi` crate; MS-WSMV's
//!   `multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted"`) on plain
//!   HTTP: every envelope, and every answer, is sealed with the session key; an answer that is
//!   not sealed, or fails its signature or sequence number, is refused.
//! - **HTTPS**: the server's certificate verified against the configured CA file or the
//!   system's roots, and its name checked against the host the guest named; NTLM inside it
//!   carries a channel binding (`tls-server-end-point`), so a relay with another certificate
//!   cannot forward the login.
//! - **Basic** only inside TLS, or on plain HTTP when `allow_unencrypted = true` says so
//!   (a warning each time it is used).
//! - The NTLM context belongs to the connection (as on Windows): this module owns its
//!   connection (hyper's HTTP/1.1 client over its own socket), so no pool can move a request
//!   onto another, unauthenticated connection. No proxy, no redirects.
//! - The password is held as a [`Secret`] and reaches only the NTLM computation or the Basic
//!   header; no error names it.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use sha2::Digest as _;
use sspi::{
    AuthIdentity, BufferType, ClientRequestFlags, CredentialUse, DataRepresentation,
    EncryptionFlags, Ntlm, SecurityBuffer, SecurityBufferRef, SecurityStatus, Sspi, SspiImpl,
    Username,
};

use crate::shell::{Exchange, ExchangeError};
use latch_cap::{BoxFuture, Secret};

/// How a connection authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// NTLMv2 (sealed messages on HTTP, channel binding on HTTPS).
    Ntlm,
    /// HTTP Basic (only inside TLS, unless plain HTTP is explicitly allowed).
    Basic,
}

/// Where to connect.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Host name or address, as the guest named it (and the certificate must name it).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// HTTPS (`true`) or HTTP.
    pub tls: bool,
}

impl Endpoint {
    /// The WS-Management URL, `http(s)://host:port/wsman`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}/wsman", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}/wsman", self.host, self.port)
        }
    }
}

/// How connections are made (from `[integration.winrm]`).
#[derive(Clone)]
pub struct TransportSettings {
    /// NTLM or Basic.
    pub auth: AuthMethod,
    /// The TLS client configuration (CA file or system roots).
    pub tls: Arc<rustls::ClientConfig>,
    /// Basic over plain HTTP, and NTLM without sealing, are refused unless this is set.
    pub allow_unencrypted: bool,
    /// Time to connect, shake hands and authenticate.
    pub connect_timeout: Duration,
    /// Time one request may take (longer than the WS-Management OperationTimeout).
    pub request_timeout: Duration,
}

/// The account a connection logs in as.
pub struct Credentials {
    /// `DOMAIN\user`, `user@domain` or a local `user`.
    pub user: String,
    /// Its password.
    pub password: Secret,
}

/// Most bytes of one answer (a Receive's streams are bounded by MaxEnvelopeSize; this is
/// a generous ceiling against a server that never stops).
const MAX_ANSWER: usize = 8 << 20;

const SOAP_TYPE: &str = "application/soap+xml;charset=UTF-8";
const ENCRYPTED_PROTOCOL: &str = "application/HTTP-SPNEGO-session-encrypted";
const ENCRYPTED_TYPE: &str = "multipart/encrypted;protocol=\"application/HTTP-SPNEGO-session-encrypted\";boundary=\"Encrypted Boundary\"";
const BOUNDARY: &[u8] = b"--Encrypted Boundary";

enum Mode {
    /// Every request carries this `Authorization` header (Basic).
    Basic(Secret),
    /// Authenticated by NTLM; `Some` seals every message (plain HTTP).
    Ntlm(Option<Box<Ntlm>>),
}

/// One authenticated WinRM connection.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    endpoint: Endpoint,
    mode: Mode,
    request_timeout: Duration,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Connection({})", self.endpoint.url())
    }
}

fn unreachable(endpoint: &Endpoint, what: impl std::fmt::Display) -> ExchangeError {
    ExchangeError::Unreachable(format!("{}: {what}", endpoint.url()))
}

/// The words for a TLS failure: which certificate, which name was expected.
fn tls_failure(endpoint: &Endpoint, e: &std::io::Error) -> ExchangeError {
    use rustls::CertificateError as C;
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    let host = &endpoint.host;
    let why = match inner {
        Some(rustls::Error::InvalidCertificate(C::NotValidForNameContext {
            presented, ..
        })) => {
            // rustls writes each name as `DnsName("x")` / `IpAddress(…)`: keep the name.
            let names: Vec<String> = presented
                .iter()
                .map(|p| {
                    p.split_once("(\"")
                        .and_then(|(_, rest)| rest.strip_suffix("\")"))
                        .unwrap_or(p)
                        .to_string()
                })
                .collect();
            format!(
                "the certificate is for {} and not for the expected host {host}",
                if names.is_empty() {
                    "no host name".to_string()
                } else {
                    names.join(", ")
                }
            )
        }
        Some(rustls::Error::InvalidCertificate(C::NotValidForName)) => {
            format!("the certificate does not name the expected host {host:?}")
        }
        Some(rustls::Error::InvalidCertificate(C::UnknownIssuer)) => format!(
            "the certificate of {host} is not signed by a trusted CA (configure \
             [integration.winrm] ca_file, or the system's roots)"
        ),
        Some(rustls::Error::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        )) => format!("the certificate of {host} is outside its validity period"),
        Some(other) => format!("{other}"),
        None => return unreachable(endpoint, format!("TLS handshake failed: {e}")),
    };
    ExchangeError::Tls(format!(
        "TLS verification of {} failed: {why}",
        endpoint.url()
    ))
}

impl Connection {
    /// Connect to `endpoint` and authenticate as `credentials`.
    pub async fn open(
        endpoint: &Endpoint,
        settings: &TransportSettings,
        credentials: &Credentials,
    ) -> Result<Connection, ExchangeError> {
        if !endpoint.tls && !settings.allow_unencrypted && settings.auth == AuthMethod::Basic {
            return Err(ExchangeError::Other(format!(
                "Basic authentication to {} would send the password in clear: use HTTPS, or \
                 NTLM, or set [integration.winrm] allow_unencrypted = true",
                endpoint.url()
            )));
        }
        tokio::time::timeout(
            settings.connect_timeout,
            Self::open_inner(endpoint, settings, credentials),
        )
        .await
        .unwrap_or_else(|_| {
            Err(unreachable(
                endpoint,
                format!(
                    "no connection and login within {:?}",
                    settings.connect_timeout
                ),
            ))
        })
    }

    async fn open_inner(
        endpoint: &Endpoint,
        settings: &TransportSettings,
        credentials: &Credentials,
    ) -> Result<Connection, ExchangeError> {
        let tcp = tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(|e| unreachable(endpoint, e))?;
        let _ = tcp.set_nodelay(true);
        let (sender, binding) = if endpoint.tls {
            let name =
                rustls::pki_types::ServerName::try_from(endpoint.host.clone()).map_err(|_| {
                    ExchangeError::Other(format!("{:?} is not a host name", endpoint.host))
                })?;
            let tls = tokio_rustls::TlsConnector::from(settings.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| tls_failure(endpoint, &e))?;
            let binding = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|cert| channel_binding(cert.as_ref()));
            (handshake(endpoint, tls).await?, binding)
        } else {
            (handshake(endpoint, tcp).await?, None)
        };
        let mut conn = Connection {
            sender,
            endpoint: endpoint.clone(),
            mode: Mode::Ntlm(None),
            request_timeout: settings.request_timeout,
        };
        match settings.auth {
            AuthMethod::Basic => {
                if !endpoint.tls {
                    tracing::warn!(
                        "WinRM to {} uses Basic authentication over plain HTTP: the password \
                         and every command cross the network in clear (allow_unencrypted = true)",
                        endpoint.url()
                    );
                }
                let mut pair = Vec::with_capacity(credentials.user.len() + 1 + 64);
                pair.extend_from_slice(credentials.user.as_bytes());
                pair.push(b':');
                pair.extend_from_slice(credentials.password.expose());
                let pair = Secret::new(pair);
                let header = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair.expose())
                );
                conn.mode = Mode::Basic(Secret::new(header.into_bytes()));
                // Basic is checked with the first envelope; nothing to send yet.
            }
            AuthMethod::Ntlm => {
                let seal = !endpoint.tls;
                let ntlm = conn.ntlm_login(credentials, binding).await?;
                conn.mode = Mode::Ntlm(seal.then(|| Box::new(ntlm)));
            }
        }
        Ok(conn)
    }

    /// NTLM's three messages, on empty POSTs (as Windows' clients do).
    async fn ntlm_login(
        &mut self,
        credentials: &Credentials,
        binding: Option<Vec<u8>>,
    ) -> Result<Ntlm, ExchangeError> {
        let url = self.endpoint.url();
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            ExchangeError::Authentication(format!(
                "NTLM login to {url} as {}: {what}: {e}",
                credentials.user
            ))
        };
        let mut ntlm = Ntlm::new();
        if let Some(token) = &binding {
            ntlm.set_channel_bindings(token);
        }
        let username = Username::parse(&credentials.user)
            .map_err(|e| failed("the user name is not DOMAIN\\user, user@domain or user", &e))?;
        let password = std::str::from_utf8(credentials.password.expose())
            .map_err(|_| failed("the password", &"is not UTF-8"))?;
        let identity = AuthIdentity {
            username,
            password: password.to_string().into(),
        };
        let mut handle = ntlm
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Outbound)
            .with_auth_data(&identity)
            .execute(&mut ntlm)
            .map_err(|e| failed("credentials", &e))?
            .credentials_handle;
        drop(identity);
        let flags = ClientRequestFlags::CONFIDENTIALITY
            | ClientRequestFlags::INTEGRITY
            | ClientRequestFlags::ALLOCATE_MEMORY;
        let target = format!("HTTP/{}", self.endpoint.host);

        // 1. NEGOTIATE
        let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let mut builder = ntlm
            .initialize_security_context()
            .with_credentials_handle(&mut handle)
            .with_context_requirements(flags)
            .with_target_data_representation(DataRepresentation::Native)
            .with_target_name(&target)
            .with_output(&mut output);
        ntlm.initialize_security_context_impl(&mut builder)
            .and_then(|mut g| g.resolve_to_result())
            .map_err(|e| failed("negotiate", &e))?;
        let answer = self
            .post(Some(negotiate_header(&output[0].buffer)), Vec::new(), None)
            .await?;
        if answer.status != 401 {
            return Err(failed(
                "the server did not answer the NTLM negotiation",
                &format!("HTTP {}", answer.status),
            ));
        }
        let challenge = answer
            .challenge
            .ok_or_else(|| failed("the server offered no NTLM challenge", &answer.offered))?;

        // 2. CHALLENGE -> AUTHENTICATE
        let mut input = vec![SecurityBuffer::new(challenge, BufferType::Token)];
        output[0].buffer.clear();
        let mut builder = ntlm
            .initialize_security_context()
            .with_credentials_handle(&mut handle)
            .with_context_requirements(flags)
            .with_target_data_representation(DataRepresentation::Native)
            .with_target_name(&target)
            .with_input(&mut input)
            .with_output(&mut output);
        let result = ntlm
            .initialize_security_context_impl(&mut builder)
            .and_then(|mut g| g.resolve_to_result())
            .map_err(|e| failed("the server's challenge", &e))?;
        if matches!(
            result.status,
            SecurityStatus::CompleteAndContinue | SecurityStatus::CompleteNeeded
        ) {
            ntlm.complete_auth_token(&mut output)
                .map_err(|e| failed("completing", &e))?;
        }
        let answer = self
            .post(Some(negotiate_header(&output[0].buffer)), Vec::new(), None)
            .await?;
        match answer.status {
            200 => Ok(ntlm),
            401 => Err(ExchangeError::Authentication(format!(
                "{} refused the login of {} (wrong user name or password, the account \
                 locked or not allowed WinRM, or the channel binding refused)",
                self.endpoint.url(),
                credentials.user
            ))),
            s => Err(failed(
                "the server's answer to the login",
                &format!("HTTP {s}"),
            )),
        }
    }

    async fn post(
        &mut self,
        authorization: Option<String>,
        body: Vec<u8>,
        content_type: Option<&str>,
    ) -> Result<Answer, ExchangeError> {
        let mut request = hyper::Request::post("/wsman")
            .header(hyper::header::HOST, host_header(&self.endpoint))
            .header(hyper::header::USER_AGENT, "Latch WinRM")
            .header(hyper::header::CONTENT_LENGTH, body.len());
        if let Some(t) = content_type {
            request = request.header(hyper::header::CONTENT_TYPE, t);
        }
        if let Some(a) = authorization {
            let mut value = hyper::header::HeaderValue::from_str(&a)
                .map_err(|_| ExchangeError::Other("unusable Authorization header".into()))?;
            value.set_sensitive(true);
            request = request.header(hyper::header::AUTHORIZATION, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ExchangeError::Other(format!("request: {e}")))?;
        let endpoint = self.endpoint.clone();
        let work = async {
            self.sender
                .ready()
                .await
                .map_err(|e| unreachable(&endpoint, format!("connection closed: {e}")))?;
            let response = self
                .sender
                .send_request(request)
                .await
                .map_err(|e| unreachable(&endpoint, format!("connection lost: {e}")))?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| unreachable(&endpoint, format!("reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, ExchangeError>(Answer::new(status, &headers, body))
        };
        tokio::time::timeout(self.request_timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(unreachable(
                    &endpoint,
                    format!("no answer within {:?}", self.request_timeout),
                ))
            })
    }

    /// Prove the login without running anything: NTLM already did at [`Connection::open`];
    /// Basic sends its header on an empty request, and only a 401 means refused.
    pub async fn prove_login(&mut self) -> Result<(), ExchangeError> {
        let Mode::Basic(header) = &self.mode else {
            return Ok(());
        };
        let header = String::from_utf8_lossy(header.expose()).into_owned();
        let answer = self.post(Some(header), Vec::new(), Some(SOAP_TYPE)).await?;
        if answer.status == 401 {
            return Err(ExchangeError::Authentication(format!(
                "{} refused the Basic login (HTTP 401)",
                self.endpoint.url()
            )));
        }
        Ok(())
    }

    /// Has the server closed this connection?
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// The endpoint's URL.
    pub fn url(&self) -> String {
        self.endpoint.url()
    }

    /// Send one envelope; the answer's body (a SOAP answer or fault).
    pub async fn send_envelope(&mut self, mut envelope: String) -> Result<String, ExchangeError> {
        use zeroize::Zeroize as _;
        let (authorization, body, content_type) = match &mut self.mode {
            Mode::Basic(header) => (
                Some(String::from_utf8_lossy(header.expose()).into_owned()),
                envelope.into_bytes(),
                SOAP_TYPE,
            ),
            Mode::Ntlm(None) => (None, envelope.into_bytes(), SOAP_TYPE),
            Mode::Ntlm(Some(ntlm)) => {
                // The plaintext (a script's secret may be in it) is wiped once sealed.
                let sealed = seal(ntlm, envelope.as_bytes());
                envelope.zeroize();
                (None, sealed?, ENCRYPTED_TYPE)
            }
        };
        let answer = self.post(authorization, body, Some(content_type)).await?;
        if answer.status == 401 {
            return Err(ExchangeError::Authentication(format!(
                "{} refused the credentials (HTTP 401)",
                self.endpoint.url()
            )));
        }
        let text = match &mut self.mode {
            Mode::Ntlm(Some(ntlm)) => {
                if answer.body.is_empty() && answer.status != 200 {
                    return Err(ExchangeError::Other(format!(
                        "{} answered HTTP {} with no body",
                        self.endpoint.url(),
                        answer.status
                    )));
                }
                if !answer.encrypted {
                    return Err(ExchangeError::Other(format!(
                        "{} answered HTTP {} without message encryption; refused",
                        self.endpoint.url(),
                        answer.status
                    )));
                }
                unseal(ntlm, &answer.body)?
            }
            _ => answer.body.to_vec(),
        };
        if !(answer.status == 200 || answer.status == 500) {
            return Err(ExchangeError::Other(format!(
                "{} answered HTTP {}",
                self.endpoint.url(),
                answer.status
            )));
        }
        String::from_utf8(text).map_err(|_| {
            ExchangeError::Other(format!(
                "{} answered with non-UTF-8 XML",
                self.endpoint.url()
            ))
        })
    }
}

impl Exchange for Connection {
    fn send<'a>(&'a mut self, envelope: String) -> BoxFuture<'a, Result<String, ExchangeError>> {
        Box::pin(self.send_envelope(envelope))
    }
}

async fn handshake<T>(endpoint: &Endpoint, io: T) -> Result<SendRequest<Full<Bytes>>, ExchangeError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| unreachable(endpoint, format!("HTTP: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("WinRM connection ended: {e}");
        }
    });
    Ok(sender)
}

fn host_header(endpoint: &Endpoint) -> String {
    if endpoint.host.contains(':') {
        format!("[{}]:{}", endpoint.host, endpoint.port)
    } else {
        format!("{}:{}", endpoint.host, endpoint.port)
    }
}

fn negotiate_header(token: &[u8]) -> String {
    format!(
        "Negotiate {}",
        base64::engine::general_purpose::STANDARD.encode(token)
    )
}

/// RFC 5929 `tls-server-end-point` for `cert`, as NTLM's channel binding application data:
/// the certificate hashed with its signature's hash — SHA-384 or SHA-512 when it is signed
/// with those, SHA-256 otherwise (also for MD5 and SHA-1, as the RFC says).
fn channel_binding(cert: &[u8]) -> Vec<u8> {
    let mut token = b"tls-server-end-point:".to_vec();
    match signature_hash(cert) {
        SignatureHash::Sha384 => token.extend_from_slice(&sha2::Sha384::digest(cert)),
        SignatureHash::Sha512 => token.extend_from_slice(&sha2::Sha512::digest(cert)),
        SignatureHash::Sha256 => token.extend_from_slice(&sha2::Sha256::digest(cert)),
    }
    token
}

#[derive(Debug, PartialEq, Eq)]
enum SignatureHash {
    Sha256,
    Sha384,
    Sha512,
}

/// The hash of a DER certificate's outer `signatureAlgorithm` (Certificate ::= SEQUENCE {
/// tbsCertificate, signatureAlgorithm, signatureValue }); SHA-256 when it cannot tell.
fn signature_hash(cert: &[u8]) -> SignatureHash {
    // One DER element at `at`: (tag, content start, content end).
    fn element(der: &[u8], at: usize) -> Option<(u8, usize, usize)> {
        let tag = *der.get(at)?;
        let first = *der.get(at + 1)? as usize;
        let (len, start) = if first < 0x80 {
            (first, at + 2)
        } else {
            let n = first & 0x7f;
            if n == 0 || n > 4 {
                return None;
            }
            let mut len = 0usize;
            for i in 0..n {
                len = (len << 8) | *der.get(at + 2 + i)? as usize;
            }
            (len, at + 2 + n)
        };
        let end = start.checked_add(len).filter(|&e| e <= der.len())?;
        Some((tag, start, end))
    }
    let oid = (|| {
        let (0x30, body, _) = element(cert, 0)? else {
            return None;
        };
        let (0x30, _, tbs_end) = element(cert, body)? else {
            return None;
        };
        let (0x30, alg, _) = element(cert, tbs_end)? else {
            return None;
        };
        let (0x06, oid_start, oid_end) = element(cert, alg)? else {
            return None;
        };
        Some(&cert[oid_start..oid_end])
    })();
    const SHA384_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
    const SHA512_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
    const SHA384_ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
    const SHA512_ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
    match oid {
        Some(SHA384_RSA | SHA384_ECDSA) => SignatureHash::Sha384,
        Some(SHA512_RSA | SHA512_ECDSA) => SignatureHash::Sha512,
        _ => SignatureHash::Sha256,
    }
}

struct Answer {
    status: u16,
    body: Bytes,
    encrypted: bool,
    challenge: Option<Vec<u8>>,
    offered: String,
}

impl Answer {
    fn new(status: u16, headers: &hyper::HeaderMap, body: Bytes) -> Answer {
        let encrypted = headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| {
                t.to_ascii_lowercase().starts_with("multipart/encrypted")
                    && t.contains(ENCRYPTED_PROTOCOL)
            });
        let mut offered = Vec::new();
        let mut challenge = None;
        for value in headers.get_all(hyper::header::WWW_AUTHENTICATE) {
            let Ok(value) = value.to_str() else { continue };
            let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
            offered.push(scheme.to_string());
            if (scheme.eq_ignore_ascii_case("Negotiate") || scheme.eq_ignore_ascii_case("NTLM"))
                && !token.trim().is_empty()
            {
                challenge = base64::engine::general_purpose::STANDARD
                    .decode(token.trim())
                    .ok();
            }
        }
        Answer {
            status,
            body,
            encrypted,
            challenge,
            offered: if offered.is_empty() {
                "(no WWW-Authenticate)".into()
            } else {
                offered.join(", ")
            },
        }
    }
}

/// Seal `plain` into MS-WSMV's encrypted multipart body.
fn seal(ntlm: &mut Ntlm, plain: &[u8]) -> Result<Vec<u8>, ExchangeError> {
    let mut signature = vec![0u8; 16];
    let mut data = plain.to_vec();
    let mut buffers = [
        SecurityBufferRef::token_buf(&mut signature),
        SecurityBufferRef::data_buf(&mut data),
    ];
    ntlm.encrypt_message(EncryptionFlags::empty(), &mut buffers)
        .map_err(|e| ExchangeError::Other(format!("NTLM sealing failed: {e}")))?;
    let mut body = Vec::with_capacity(plain.len() + 256);
    body.extend_from_slice(BOUNDARY);
    body.extend_from_slice(b"\r\n\tContent-Type: ");
    body.extend_from_slice(ENCRYPTED_PROTOCOL.as_bytes());
    body.extend_from_slice(
        format!(
            "\r\n\tOriginalContent: type={SOAP_TYPE};Length={}\r\n",
            plain.len()
        )
        .as_bytes(),
    );
    body.extend_from_slice(BOUNDARY);
    body.extend_from_slice(b"\r\n\tContent-Type: application/octet-stream\r\n");
    body.extend_from_slice(&16u32.to_le_bytes());
    body.extend_from_slice(&signature);
    body.extend_from_slice(&data);
    body.extend_from_slice(BOUNDARY);
    body.extend_from_slice(b"--\r\n");
    Ok(body)
}

/// Open MS-WSMV's encrypted multipart body: check its layout, signature, sequence number
/// and declared length.
fn unseal(ntlm: &mut Ntlm, body: &[u8]) -> Result<Vec<u8>, ExchangeError> {
    let bad = |why: &str| ExchangeError::Other(format!("encrypted answer refused: {why}"));
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay.get(from..)
            .and_then(|h| h.windows(needle.len()).position(|w| w == needle))
            .map(|p| p + from)
    };
    let length_at = find(body, b"Length=", 0).ok_or_else(|| bad("no OriginalContent length"))?;
    let length_end =
        find(body, b"\r\n", length_at).ok_or_else(|| bad("no end of OriginalContent"))?;
    let declared: usize = std::str::from_utf8(&body[length_at + 7..length_end])
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| bad("the OriginalContent length is not a number"))?;
    let marker = b"\tContent-Type: application/octet-stream\r\n";
    let start = find(body, marker, length_end)
        .ok_or_else(|| bad("no application/octet-stream part"))?
        + marker.len();
    let end = body
        .len()
        .checked_sub(BOUNDARY.len() + 4)
        .filter(|&e| e >= start + 4 && body[e..].starts_with(BOUNDARY))
        .ok_or_else(|| bad("no closing boundary"))?;
    let part = &body[start..end];
    let header_len = u32::from_le_bytes(part[..4].try_into().expect("4 bytes")) as usize;
    if header_len != 16 || part.len() < 4 + header_len {
        return Err(bad("the NTLM signature is not 16 bytes"));
    }
    let mut signature = part[4..4 + header_len].to_vec();
    let mut data = part[4 + header_len..].to_vec();
    let mut buffers = [
        SecurityBufferRef::token_buf(&mut signature),
        SecurityBufferRef::data_buf(&mut data),
    ];
    ntlm.decrypt_message(&mut buffers)
        .map_err(|e| bad(&format!("signature or sequence check failed ({e})")))?;
    let plain = buffers[1].data().to_vec();
    if plain.len() != declared {
        return Err(bad("the length differs from OriginalContent"));
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- Real sealed messages: an NTLMv2 login between two contexts in memory ----

    use sspi::ServerRequestFlags;

    const USER: &str = r"CORP\winrm";
    const PASSWORD: &str = "Tr0ub4dor&3";
    const ENVELOPE: &[u8] = b"<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\">\
        <s:Body><rsp:Stream Name=\"stdout\">c2VjcmV0</rsp:Stream></s:Body></s:Envelope>";

    /// A client context made as `ntlm_login` makes it, and a server context that accepted its
    /// NTLMv2 login knowing the password as `server_password` (sspi's own acceptor).
    fn login_pair(server_password: &str) -> Result<(Ntlm, Ntlm), sspi::Error> {
        let identity = |password: &str| AuthIdentity {
            username: Username::parse(USER).expect("a user name"),
            password: password.to_string().into(),
        };
        let (mut client, mut server) = (Ntlm::new(), Ntlm::new());
        let client_identity = identity(PASSWORD);
        let mut client_handle = client
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Outbound)
            .with_auth_data(&client_identity)
            .execute(&mut client)?
            .credentials_handle;
        let server_identity = identity(server_password);
        let mut server_handle = server
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Inbound)
            .with_auth_data(&server_identity)
            .execute(&mut server)?
            .credentials_handle;
        let flags = ClientRequestFlags::CONFIDENTIALITY
            | ClientRequestFlags::INTEGRITY
            | ClientRequestFlags::ALLOCATE_MEMORY;
        let target = "HTTP/winrm.test";
        let token = || vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];

        let mut negotiate = token();
        let mut builder = client
            .initialize_security_context()
            .with_credentials_handle(&mut client_handle)
            .with_context_requirements(flags)
            .with_target_data_representation(DataRepresentation::Native)
            .with_target_name(target)
            .with_output(&mut negotiate);
        let status = client
            .initialize_security_context_impl(&mut builder)
            .and_then(|mut g| g.resolve_to_result())?
            .status;
        assert_eq!(status, SecurityStatus::ContinueNeeded);

        let mut challenge = token();
        let builder = server
            .accept_security_context()
            .with_credentials_handle(&mut server_handle)
            .with_context_requirements(ServerRequestFlags::ALLOCATE_MEMORY)
            .with_target_data_representation(DataRepresentation::Native)
            .with_input(&mut negotiate)
            .with_output(&mut challenge);
        let status = server
            .accept_security_context_impl(builder)
            .and_then(|mut g| g.resolve_to_result())?
            .status;
        assert_eq!(status, SecurityStatus::ContinueNeeded);

        let mut authenticate = token();
        let mut builder = client
            .initialize_security_context()
            .with_credentials_handle(&mut client_handle)
            .with_context_requirements(flags)
            .with_target_data_representation(DataRepresentation::Native)
            .with_target_name(target)
            .with_input(&mut challenge)
            .with_output(&mut authenticate);
        let status = client
            .initialize_security_context_impl(&mut builder)
            .and_then(|mut g| g.resolve_to_result())?
            .status;
        assert_eq!(status, SecurityStatus::Ok);

        let mut nothing = token();
        let builder = server
            .accept_security_context()
            .with_credentials_handle(&mut server_handle)
            .with_context_requirements(ServerRequestFlags::ALLOCATE_MEMORY)
            .with_target_data_representation(DataRepresentation::Native)
            .with_input(&mut authenticate)
            .with_output(&mut nothing);
        let status = server
            .accept_security_context_impl(builder)
            .and_then(|mut g| g.resolve_to_result())?
            .status;
        assert_eq!(status, SecurityStatus::CompleteNeeded);
        assert_eq!(server.complete_auth_token(&mut [])?, SecurityStatus::Ok);
        Ok((client, server))
    }

    fn find(hay: &[u8], needle: &[u8]) -> usize {
        hay.windows(needle.len())
            .position(|w| w == needle)
            .expect("in the sealed body")
    }

    /// Where a sealed body's 16-byte signature starts; the ciphertext follows it.
    fn signature_at(body: &[u8]) -> usize {
        let marker = b"\tContent-Type: application/octet-stream\r\n";
        find(body, marker) + marker.len() + 4
    }

    fn refused(ntlm: &mut Ntlm, body: &[u8]) -> String {
        match unseal(ntlm, body) {
            Ok(plain) => panic!("accepted: {:?}", String::from_utf8_lossy(&plain)),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn answers_that_are_not_sealed_properly_are_refused() {
        let (mut a, _) = login_pair(PASSWORD).unwrap();
        for body in [
            &b""[..],
            b"--Encrypted Boundary\r\n",
            b"Length=12\r\n\tContent-Type: application/octet-stream\r\n\x10\x00\x00\x00short--Encrypted Boundary--\r\n",
            b"Length=x\r\n",
            ENVELOPE,
        ] {
            assert!(unseal(&mut a, body).is_err(), "{body:?}");
        }
    }

    #[test]
    fn the_in_memory_login_checks_the_password() {
        let e = login_pair("not the password").unwrap_err();
        assert_eq!(e.error_type, sspi::ErrorKind::LogonDenied, "{e}");
    }

    #[test]
    fn sealed_messages_are_opened_both_ways_in_order() {
        let (mut client, mut server) = login_pair(PASSWORD).expect("an NTLMv2 login in memory");
        let request = seal(&mut client, ENVELOPE).unwrap();
        assert!(request.windows(ENVELOPE.len()).all(|w| w != ENVELOPE));
        assert_eq!(unseal(&mut server, &request).unwrap(), ENVELOPE);
        for answer in [ENVELOPE, b"<s:Envelope/>".as_slice(), b"".as_slice()] {
            let body = seal(&mut server, answer).unwrap();
            assert_eq!(unseal(&mut client, &body).unwrap(), answer);
        }
    }

    #[test]
    fn a_tampered_answer_is_refused() {
        // A flipped ciphertext byte, at the start, middle and end.
        for offset in [0, ENVELOPE.len() / 2, ENVELOPE.len() - 1] {
            let (mut client, mut server) = login_pair(PASSWORD).unwrap();
            let mut body = seal(&mut server, ENVELOPE).unwrap();
            let at = signature_at(&body) + 16 + offset;
            body[at] ^= 0x01;
            let why = refused(&mut client, &body);
            assert!(why.contains("signature"), "{offset}: {why}");
        }
        // A flipped signature byte: version, checksum, sequence number.
        for byte in [0, 4, 11, 12] {
            let (mut client, mut server) = login_pair(PASSWORD).unwrap();
            let mut body = seal(&mut server, ENVELOPE).unwrap();
            let at = signature_at(&body) + byte;
            body[at] ^= 0x80;
            let why = refused(&mut client, &body);
            assert!(
                why.contains("signature or sequence check failed"),
                "byte {byte}: {why}"
            );
        }
        // A declared length that is not the sealed one.
        let sealed_length = format!("Length={}\r\n", ENVELOPE.len());
        for declared in [ENVELOPE.len() + 1, ENVELOPE.len() - 1, 0] {
            let (mut client, mut server) = login_pair(PASSWORD).unwrap();
            let body = seal(&mut server, ENVELOPE).unwrap();
            let at = find(&body, sealed_length.as_bytes());
            let body = [
                &body[..at],
                format!("Length={declared}\r\n").as_bytes(),
                &body[at + sealed_length.len()..],
            ]
            .concat();
            let why = refused(&mut client, &body);
            assert!(
                why.contains("differs from OriginalContent"),
                "{declared}: {why}"
            );
        }
    }

    #[test]
    fn a_replayed_reordered_reflected_or_foreign_answer_is_refused() {
        let (mut client, mut server) = login_pair(PASSWORD).unwrap();
        let answer = seal(&mut server, ENVELOPE).unwrap();
        assert_eq!(unseal(&mut client, &answer).unwrap(), ENVELOPE);
        assert!(refused(&mut client, &answer).contains("sequence"));

        let (mut client, mut server) = login_pair(PASSWORD).unwrap();
        let _first = seal(&mut server, b"<first/>").unwrap();
        let second = seal(&mut server, b"<second/>").unwrap();
        assert!(refused(&mut client, &second).contains("sequence"));

        // Plaintext in the ciphertext's place: unsealed, so refused.
        let (mut client, mut server) = login_pair(PASSWORD).unwrap();
        let mut body = seal(&mut server, ENVELOPE).unwrap();
        let at = signature_at(&body) + 16;
        body[at..at + ENVELOPE.len()].copy_from_slice(ENVELOPE);
        refused(&mut client, &body);

        // The client's own request sent back, and another session's answer.
        let (mut client, _server) = login_pair(PASSWORD).unwrap();
        let request = seal(&mut client, ENVELOPE).unwrap();
        refused(&mut client, &request);
        let (mut client, _server) = login_pair(PASSWORD).unwrap();
        let (_other, mut other_server) = login_pair(PASSWORD).unwrap();
        let foreign = seal(&mut other_server, ENVELOPE).unwrap();
        refused(&mut client, &foreign);
    }

    #[test]
    fn urls_and_bindings() {
        let e = Endpoint {
            host: "dc1.corp".into(),
            port: 5986,
            tls: true,
        };
        assert_eq!(e.url(), "https://dc1.corp:5986/wsman");
        let v6 = Endpoint {
            host: "::1".into(),
            port: 5985,
            tls: false,
        };
        assert_eq!(v6.url(), "http://[::1]:5985/wsman");
        assert_eq!(host_header(&v6), "[::1]:5985");
        let b = channel_binding(b"cert");
        assert!(b.starts_with(b"tls-server-end-point:"));
        assert_eq!(b.len(), 21 + 32);
        // Certificate = SEQUENCE { tbs SEQUENCE, AlgorithmIdentifier SEQUENCE { OID }, BIT STRING }
        let cert = |oid: &[u8]| {
            let mut alg = vec![0x30, oid.len() as u8 + 2, 0x06, oid.len() as u8];
            alg.extend_from_slice(oid);
            let mut body = vec![0x30, 0x02, 0x02, 0x00];
            body.extend_from_slice(&alg);
            body.extend_from_slice(&[0x03, 0x01, 0x00]);
            let mut der = vec![0x30, body.len() as u8];
            der.extend_from_slice(&body);
            der
        };
        let ecdsa = |last: u8| cert(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, last]);
        assert_eq!(signature_hash(&ecdsa(2)), SignatureHash::Sha256);
        assert_eq!(signature_hash(&ecdsa(3)), SignatureHash::Sha384);
        assert_eq!(signature_hash(&ecdsa(4)), SignatureHash::Sha512);
        let rsa = |last: u8| cert(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, last]);
        assert_eq!(signature_hash(&rsa(0x0b)), SignatureHash::Sha256);
        assert_eq!(signature_hash(&rsa(0x0c)), SignatureHash::Sha384);
        assert_eq!(signature_hash(&rsa(0x05)), SignatureHash::Sha256); // SHA-1: SHA-256
        assert_eq!(channel_binding(&ecdsa(3)).len(), 21 + 48);
        assert_eq!(signature_hash(b"\x30\x85garbage"), SignatureHash::Sha256);
    }
}
