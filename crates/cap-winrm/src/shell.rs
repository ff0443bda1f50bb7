//! One command over WinRM's remote shell: Create → Command → Receive until done → Signal
//! terminate → Delete, over any [`Exchange`] (the HTTP transport, with NTLM message
//! encryption or TLS, is one; a test replaying recorded Windows answers is another).
//!
//! Defends against a server that never finishes and against leaving shells behind: the
//! whole run has a deadline; Receive is repeated only while the server answers
//! OperationTimeout, at most until that deadline; the command is terminated and the shell
//! deleted whatever happened once they exist (best effort: a failure there is logged, the
//! command's own result is what is returned).

use std::time::{Duration, Instant};

use crate::wsman::{self, Context, Received, WsmanError};
use latch_cap::BoxFuture;

/// Why an exchange failed below WS-Management (the transport's errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// The server could not be reached, or the connection broke.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The server refused the credentials.
    #[error("authentication failed: {0}")]
    Authentication(String),
    /// The server's certificate was not accepted (names the certificate and the host).
    #[error("{0}")]
    Tls(String),
    /// Anything else (TLS, an HTTP status without a SOAP body).
    #[error("{0}")]
    Other(String),
}

/// Sends one envelope and returns the answer's body: a SOAP answer or a SOAP fault (a
/// fault comes with HTTP 500; it is still a body, and the caller reads it).
pub trait Exchange: Send + Sync {
    /// Send `envelope`; the answer's body.
    fn send<'a>(&'a mut self, envelope: String) -> BoxFuture<'a, Result<String, ExchangeError>>;
}

/// Why a command could not be run to its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    /// The transport failed.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    /// The server answered with a fault, or something the protocol does not allow.
    #[error(transparent)]
    Wsman(#[from] WsmanError),
    /// The Command request was refused because the shell no longer exists (fault
    /// 2150858843): the command never started.
    #[error("the shell is gone: {0}")]
    ShellGone(WsmanError),
    /// The command did not finish within the deadline (it was terminated).
    #[error("the command did not finish within {0:?}")]
    Deadline(Duration),
}

/// What one command runs: a program, its arguments, and what its standard input gets (sent
/// once, then closed; `None`: no `Send` at all, a console stdin).
#[derive(Clone, Copy, Debug)]
pub struct Run<'a> {
    /// The program, e.g. `powershell.exe`.
    pub program: &'a str,
    /// Its arguments.
    pub arguments: &'a [String],
    /// Its standard input (secret: never logged).
    pub stdin: Option<&'a [u8]>,
}

/// Run `run` through `exchange` and collect its output and exit code.
pub async fn run(
    exchange: &mut dyn Exchange,
    ctx: &Context,
    run: Run<'_>,
    deadline: Duration,
) -> Result<Received, ShellError> {
    let started = Instant::now();
    let shell = wsman::shell_id(&exchange.send(wsman::create_shell(ctx)).await?)?;
    let result = run_in_shell(exchange, ctx, &shell, run, started, deadline).await;
    let deleted = exchange
        .send(wsman::delete_shell(ctx, &shell))
        .await
        .map_err(ShellError::from)
        .and_then(|answer| match wsman::fault(&answer) {
            Some(f) => Err(f.into()),
            None => Ok(()),
        });
    if let Err(e) = deleted {
        tracing::warn!("could not delete WinRM shell {shell}: {e}");
    }
    result
}

/// Run `run` in the existing shell `shell` (terminating the command afterwards, leaving the
/// shell open for the next one). Its stdin, if any, is sent in one `Send` right after the
/// command starts, and closed.
pub async fn run_in_shell(
    exchange: &mut dyn Exchange,
    ctx: &Context,
    shell: &str,
    run: Run<'_>,
    started: Instant,
    deadline: Duration,
) -> Result<Received, ShellError> {
    let answer = exchange
        .send(wsman::command(
            ctx,
            shell,
            run.program,
            run.arguments,
            run.stdin.is_some(),
        ))
        .await?;
    let command = match wsman::command_id(&answer) {
        Ok(c) => c,
        Err(
            e @ WsmanError::Fault {
                code: Some(wsman::INVALID_SELECTORS),
                ..
            },
        ) => return Err(ShellError::ShellGone(e)),
        Err(e) => return Err(e.into()),
    };
    let sent = match run.stdin {
        None => Ok(()),
        Some(data) => match exchange.send(wsman::send(ctx, shell, &command, data)).await {
            Ok(answer) => match wsman::fault(&answer) {
                Some(f) => Err(ShellError::Wsman(f)),
                None => Ok(()),
            },
            Err(e) => Err(e.into()),
        },
    };
    let mut received = Received::default();
    let outcome = loop {
        if let Err(e) = &sent {
            break Err(e.clone());
        }
        if started.elapsed() >= deadline {
            break Err(ShellError::Deadline(deadline));
        }
        let answer = match exchange.send(wsman::receive(ctx, shell, &command)).await {
            Ok(a) => a,
            Err(e) => break Err(e.into()),
        };
        match wsman::receive_response(&answer, &command, &mut received) {
            Ok(()) if received.done => break Ok(()),
            Ok(()) => {}
            Err(e) if e.is_operation_timeout() => {}
            Err(e) => break Err(e.into()),
        }
    };
    // Terminate it: releases a finished command, stops one that ran past the deadline.
    match exchange
        .send(wsman::signal_terminate(ctx, shell, &command))
        .await
    {
        Ok(answer) => {
            if let Some(f) = wsman::fault(&answer) {
                tracing::debug!("signal terminate of {command}: {f}");
            }
        }
        Err(e) => tracing::debug!("signal terminate of {command}: {e}"),
    }
    outcome.map(|()| received)
}
