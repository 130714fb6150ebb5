//! Driving adapters: the HTTP surface (poem) and the MCP endpoint (rmcp) mounted in it.

pub mod approve;
pub mod background_work;
mod browser;
mod html;
pub mod http;
pub mod listener;
pub mod mcp;
pub mod oauth;
pub mod pages;
pub mod settings;

use std::{future::Future, pin::Pin};

use crate::domain::{
    grant::GrantId,
    notify::{
        background::{Background, NotifierControl, TurnOffError},
        delivery::Destination,
    },
    ports::{
        AuditError, AuditEvent, AuditLog, BackgroundStore, FlowStore, MailStore, UpstreamAuth,
    },
    service::{BackgroundSetup, SetupError, TurnOn},
};

/// What a `dyn` seam of the adapters returns.
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Background delivery's use cases as the settings page, the sign-in pages and the MCP
/// endpoint reach them: [`BackgroundSetup`] behind `dyn`, because the operator offers
/// background delivery or not at run time (and which adapters it runs on is the composition
/// root's business).
pub trait BackgroundDesk: Send + Sync {
    /// See [`BackgroundSetup::status`].
    fn status<'a>(&'a self, grant: &'a GrantId) -> BoxFuture<'a, Option<Background>>;
    /// See [`BackgroundSetup::turn_on`].
    fn turn_on<'a>(
        &'a self,
        account: &'a str,
        grant: &'a GrantId,
        destination: Destination,
        browser: &'a str,
    ) -> BoxFuture<'a, Result<TurnOn, SetupError>>;
    /// See [`BackgroundSetup::finish`].
    fn finish<'a>(
        &'a self,
        state: &'a str,
        browser: &'a str,
        code: Option<&'a str>,
        iss: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<GrantId>, SetupError>>;
    /// See [`BackgroundSetup::connection_ended`].
    fn connection_ended<'a>(&'a self, account: &'a str) -> BoxFuture<'a, Result<(), TurnOffError>>;
    /// See [`BackgroundSetup::turn_off`].
    fn turn_off<'a>(&'a self, grant: &'a GrantId) -> BoxFuture<'a, Result<(), SetupError>>;
}

impl<U, M, S, C, F> BackgroundDesk for BackgroundSetup<U, M, S, C, F>
where
    U: UpstreamAuth,
    M: MailStore,
    S: BackgroundStore,
    C: NotifierControl,
    F: FlowStore,
{
    fn status<'a>(&'a self, grant: &'a GrantId) -> BoxFuture<'a, Option<Background>> {
        Box::pin(Self::status(self, grant))
    }

    fn turn_on<'a>(
        &'a self,
        account: &'a str,
        grant: &'a GrantId,
        destination: Destination,
        browser: &'a str,
    ) -> BoxFuture<'a, Result<TurnOn, SetupError>> {
        Box::pin(Self::turn_on(self, account, grant, destination, browser))
    }

    fn finish<'a>(
        &'a self,
        state: &'a str,
        browser: &'a str,
        code: Option<&'a str>,
        iss: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<GrantId>, SetupError>> {
        Box::pin(Self::finish(self, state, browser, code, iss))
    }

    fn connection_ended<'a>(&'a self, account: &'a str) -> BoxFuture<'a, Result<(), TurnOffError>> {
        Box::pin(Self::connection_ended(self, account))
    }

    fn turn_off<'a>(&'a self, grant: &'a GrantId) -> BoxFuture<'a, Result<(), SetupError>> {
        Box::pin(Self::turn_off(self, grant))
    }
}

/// [`AuditLog`] behind `Arc<dyn …>`: the MCP handler records tool calls from tasks of their
/// own, and stays generic over the mail use cases' ports only.
pub trait DynAuditLog: Send + Sync + 'static {
    /// See [`AuditLog::record`].
    fn record(&self, event: AuditEvent) -> BoxFuture<'_, ()>;
    /// See [`AuditLog::events`].
    fn events<'a>(
        &'a self,
        grant: &'a GrantId,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<AuditEvent>, AuditError>>;
}

impl<T: AuditLog> DynAuditLog for T {
    fn record(&self, event: AuditEvent) -> BoxFuture<'_, ()> {
        Box::pin(AuditLog::record(self, event))
    }

    fn events<'a>(
        &'a self,
        grant: &'a GrantId,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<AuditEvent>, AuditError>> {
        Box::pin(AuditLog::events(self, grant, limit))
    }
}

/// Records `event` from a task of its own: an answer to a client never waits on the log.
fn record_in_background(log: &std::sync::Arc<dyn DynAuditLog>, event: AuditEvent) {
    let log = std::sync::Arc::clone(log);
    tokio::spawn(async move { log.record(event).await });
}
