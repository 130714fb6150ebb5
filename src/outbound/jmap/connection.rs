//! One operation's hold on the server: the credential, its session and the store it runs in,
//! so each operation sends its method calls without repeating the plumbing.

use std::sync::Arc;

use serde_json::Value;

use super::{
    JmapMailStore,
    session::{MethodResponse, SUBMISSION, Session, Transport},
};
use crate::domain::{grant::UpstreamCredential, ports::MailStoreError};

/// A credential's session with the server, for one operation of [`JmapMailStore`].
#[derive(Debug)]
pub struct Conn<'a> {
    pub store: &'a JmapMailStore,
    pub cred: &'a UpstreamCredential,
    pub session: Arc<Session>,
}

impl<'a> Conn<'a> {
    /// The session of `cred` (cached, or discovered now).
    ///
    /// # Errors
    /// See [`MailStoreError`].
    pub async fn open(
        store: &'a JmapMailStore,
        cred: &'a UpstreamCredential,
    ) -> Result<Self, MailStoreError> {
        Ok(Self {
            store,
            cred,
            session: store.transport.session(cred).await?,
        })
    }

    /// The account every call is made on.
    pub fn account(&self) -> &str {
        &self.session.account_id
    }

    pub fn transport(&self) -> &'a Transport {
        &self.store.transport
    }

    /// Whether the server sends mail (and so knows identities).
    pub fn offers_submission(&self) -> bool {
        self.session.wire.capabilities.contains_key(SUBMISSION)
    }

    /// Sends `calls` in one request (see [`Transport::call`]).
    ///
    /// # Errors
    /// See [`MailStoreError`].
    pub async fn call<C: Into<Value>>(
        &self,
        using: &[&str],
        calls: impl IntoIterator<Item = C>,
    ) -> Result<Vec<MethodResponse>, MailStoreError> {
        let calls = calls.into_iter().map(Into::into).collect();
        self.transport()
            .call(self.cred, &self.session, using, calls)
            .await
    }
}
