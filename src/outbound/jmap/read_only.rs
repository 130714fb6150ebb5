//! The change feed of new-mail detection, built only from read calls — and the notifier's
//! whole view of a mailbox, which can build nothing else.
//!
//! The background notifier holds tokens for a connection that Fastmail can't restrict to
//! reading (it has no read-only scope), so the restriction lives here, in the types:
//! [`ReadCall`] is the only way [`NotifierMail`] makes a request, its variants are the only
//! methods it can name, and `Email/get` fetches a fixed list of header properties — never a
//! body, never a blob.
//!
//! [`NotifierMail`] is the change feed and no other mail port: it can't read (search, bodies),
//! change or send mail.
//!
//! ```compile_fail
//! fn reader<T: mailconnect::domain::ports::MailReader>(_: &T) {}
//! fn check(n: &mailconnect::outbound::jmap::NotifierMail) { reader(n) }
//! ```
//!
//! ```compile_fail
//! fn writer<T: mailconnect::domain::ports::MailWriter>(_: &T) {}
//! fn check(n: &mailconnect::outbound::jmap::NotifierMail) { writer(n) }
//! ```
//!
//! ```compile_fail
//! fn sender<T: mailconnect::domain::ports::MailSender>(_: &T) {}
//! fn check(n: &mailconnect::outbound::jmap::NotifierMail) { sender(n) }
//! ```
//!
//! ```compile_fail
//! // An Email/get can't be asked for other properties (a body) than its fixed lists.
//! let call = mailconnect::outbound::jmap::ReadCall::EmailGetFound { properties: &["bodyValues"] };
//! ```

mod feed;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

pub use self::feed::{change_feed, tools_feed};
use super::{
    mailboxes::mailbox_get,
    push,
    read::identity_get,
    request::{Call, newest_first, utc_date},
    session::{EventSource, Transport, TransportConfig},
};
use crate::domain::{
    grant::UpstreamCredential,
    notify::ChangeFeed,
    ports::{MailFeed, MailStoreError, PushChannel},
};

/// Most changes one look asks for.
pub const MAX_CHANGES: u32 = 256;

/// What the notifier may know of an email: enough to say who wrote about what, and when.
pub const HEADER_PROPERTIES: &[&str] = &[
    "id",
    "threadId",
    "mailboxIds",
    "keywords",
    "receivedAt",
    "from",
    "subject",
];

/// What the feed knows of the other emails in a new email's thread.
pub const MEMBER_PROPERTIES: &[&str] = &["id", "mailboxIds", "keywords", "from"];

/// What an `Email/get` of new mail fetches: one of two fixed lists, never a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// The notifier's: [`HEADER_PROPERTIES`].
    Headers,
    /// The tools' summaries, with the server's preview ([`super::SUMMARY_PROPERTIES`]).
    Summaries,
}

/// The receiving server's verdicts on the sender, for VIPs (see `EmailSummary::sender_verified`).
pub const AUTHENTICATION_RESULTS: &str = "header:Authentication-Results:asText:all";

impl Fetched {
    fn properties(self) -> Vec<&'static str> {
        let base = match self {
            Self::Headers => HEADER_PROPERTIES,
            Self::Summaries => super::SUMMARY_PROPERTIES,
        };
        [base, &[AUTHENTICATION_RESULTS]].concat()
    }
}

/// One read call: every method the change feed (and so the notifier) can send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadCall {
    /// `Email/changes` since a state.
    EmailChanges {
        /// The state.
        since: String,
    },
    /// `Email/query`: mail received after an instant, newest first.
    EmailQueryRecent {
        /// The instant.
        after: DateTime<Utc>,
    },
    /// `Email/get` of the ids the previous call found.
    EmailGetFound {
        /// Which properties.
        properties: Fetched,
    },
    /// `Thread/get` of the threads of the emails the previous call got.
    ThreadGetFound,
    /// `Email/get` of every email of the threads the previous call got: where each is and who
    /// wrote it (`MEMBER_PROPERTIES`), to tell the threads the person wrote in.
    EmailGetMembers,
    /// `Identity/get`: the person's own addresses.
    IdentityGet,
    /// `Mailbox/get`: roles and names.
    MailboxGet,
}

impl ReadCall {
    /// The JMAP method name.
    #[must_use]
    pub fn method(&self) -> &'static str {
        match self {
            Self::EmailChanges { .. } => "Email/changes",
            Self::EmailQueryRecent { .. } => "Email/query",
            Self::EmailGetFound { .. } | Self::EmailGetMembers => "Email/get",
            Self::ThreadGetFound => "Thread/get",
            Self::IdentityGet => "Identity/get",
            Self::MailboxGet => "Mailbox/get",
        }
    }

    /// The invocation at `index`, after `previous` (the call whose ids it reads, if any).
    fn wire(&self, account: &str, index: usize, previous: Option<&Self>) -> Value {
        let id = index.to_string();
        let before = index.saturating_sub(1).to_string();
        let call = Call::new(self.method(), account, id.as_str());
        match self {
            Self::EmailChanges { since } => call
                .arg("sinceState", since.as_str())
                .arg("maxChanges", MAX_CHANGES),
            Self::EmailQueryRecent { after } => call
                .arg("filter", json!({"after": utc_date(after)}))
                .arg("sort", newest_first())
                .arg("limit", MAX_CHANGES),
            Self::EmailGetFound { properties } => {
                let call = call.properties(&properties.properties());
                match previous {
                    Some(Self::EmailChanges { .. }) => {
                        call.ids_from(&before, "Email/changes", "/created")
                    }
                    _ => call.ids_from(&before, "Email/query", "/ids"),
                }
            }
            Self::ThreadGetFound => call.ids_from(&before, "Email/get", "/list/*/threadId"),
            Self::EmailGetMembers => call.properties(MEMBER_PROPERTIES).ids_from(
                &before,
                "Thread/get",
                "/list/*/emailIds",
            ),
            Self::IdentityGet => identity_get(account, id),
            Self::MailboxGet => mailbox_get(account, id),
        }
        .into()
    }
}

/// `calls` as a request's method calls, each with its index as call id.
fn invocations(calls: &[ReadCall], account: &str) -> Vec<Value> {
    calls
        .iter()
        .enumerate()
        .map(|(i, call)| {
            let previous = i.checked_sub(1).and_then(|p| calls.get(p));
            call.wire(account, i, previous)
        })
        .collect()
}

/// Opens the account's EventSource for delivery wake-ups (`Email` where the server doesn't
/// know `EmailDelivery`); `None` without push.
///
/// # Errors
/// See [`MailStoreError`].
pub async fn open_push(
    transport: &Transport,
    cred: &UpstreamCredential,
    ping: std::time::Duration,
) -> Result<Option<PushChannel>, MailStoreError> {
    let session = transport.session(cred).await?;
    // EmailDelivery changes only when mail is delivered (RFC 8621 §1.5), not on a flag or a
    // move; a server that doesn't know the type gets Email.
    for types in ["EmailDelivery", "Email"] {
        match transport.event_source(cred, &session, types, ping).await? {
            EventSource::Open(stream) => return Ok(Some(push::pump(stream))),
            EventSource::Refused => {}
            EventSource::NotOffered => return Ok(None),
        }
    }
    Ok(None)
}

/// The notifier's mailbox: new mail's headers and the push channel, nothing else.
#[derive(Debug)]
pub struct NotifierMail {
    transport: Transport,
}

impl NotifierMail {
    /// The notifier's view of the server at `config.session_url`.
    ///
    /// # Errors
    /// [`MailStoreError::Unavailable`] when the HTTP client can't be built.
    pub fn new(config: TransportConfig) -> Result<Self, MailStoreError> {
        Ok(Self {
            transport: Transport::new(config)?,
        })
    }
}

impl MailFeed for NotifierMail {
    async fn changes_since(
        &self,
        cred: &UpstreamCredential,
        state: Option<String>,
        since: DateTime<Utc>,
    ) -> Result<ChangeFeed, MailStoreError> {
        let session = self.transport.session(cred).await?;
        change_feed(
            &self.transport,
            cred,
            &session,
            state.as_deref(),
            since,
            Fetched::Headers,
        )
        .await
    }

    async fn open_push(
        &self,
        cred: &UpstreamCredential,
        ping: std::time::Duration,
    ) -> Result<Option<PushChannel>, MailStoreError> {
        open_push(&self.transport, cred, ping).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every call the notifier can build, with every argument shape.
    fn every_call() -> Vec<ReadCall> {
        vec![
            ReadCall::EmailChanges { since: "s".into() },
            ReadCall::EmailQueryRecent { after: Utc::now() },
            ReadCall::EmailGetFound {
                properties: Fetched::Headers,
            },
            ReadCall::ThreadGetFound,
            ReadCall::EmailGetMembers,
            ReadCall::IdentityGet,
            ReadCall::MailboxGet,
        ]
    }

    #[test]
    fn the_notifier_can_only_read_and_never_a_body() {
        let allowed = [
            "Email/changes",
            "Email/query",
            "Email/get",
            "Thread/get",
            "Identity/get",
            "Mailbox/get",
        ];
        for call in every_call() {
            let wire = &invocations(std::slice::from_ref(&call), "a")[0];
            let method = wire[0].as_str().unwrap_or_default();
            assert!(allowed.contains(&method), "{method}");
            assert!(!method.ends_with("/set") && !method.starts_with("EmailSubmission"));
            let properties: Vec<&str> = wire[1]["properties"]
                .as_array()
                .map(|p| p.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for body in [
                "bodyValues",
                "textBody",
                "htmlBody",
                "bodyStructure",
                "preview",
                "attachments",
                "blobId",
            ] {
                assert!(!properties.contains(&body), "{method} fetches {body}");
            }
        }
    }

    #[test]
    fn email_get_reads_the_ids_of_the_call_before_it() {
        let calls = [
            ReadCall::EmailChanges { since: "s".into() },
            ReadCall::EmailGetFound {
                properties: Fetched::Headers,
            },
        ];
        let wire = invocations(&calls, "acc");
        assert_eq!(
            wire[1][1]["#ids"],
            json!({"resultOf": "0", "name": "Email/changes", "path": "/created"})
        );
        let calls = [
            ReadCall::EmailQueryRecent { after: Utc::now() },
            ReadCall::EmailGetFound {
                properties: Fetched::Headers,
            },
        ];
        assert_eq!(invocations(&calls, "acc")[1][1]["#ids"]["path"], "/ids");
    }
}
