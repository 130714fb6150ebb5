//! The change feed: what arrived since a state (or an instant), with the threads the person
//! wrote in, in one request of [`ReadCall`]s — for the notifier, and for the tools' own look.

use chrono::{DateTime, Utc};

use super::{Fetched, ReadCall, invocations};
use crate::{
    domain::{
        grant::UpstreamCredential, mail::Mailbox, mail::ids::ThreadId, notify::ChangeFeed,
        ports::MailStoreError, sending::compose::Identity,
    },
    outbound::jmap::{
        connection::Conn,
        convert::{mailbox, summary},
        read::identities_in,
        session::{CORE, MAIL, MethodResponse, SUBMISSION, Session, Transport},
        wire::{AddressWire, EmailWire, GetResponse, MailboxWire, ThreadWire, take_as, take_list},
    },
};

/// What was created since `state` (or received since `since`, on a fresh start or when the
/// server no longer knows the state), in one request per attempt: the changes, the created
/// emails with `properties`, the mailboxes and the identities.
///
/// # Errors
/// See [`MailStoreError`].
pub async fn change_feed(
    transport: &Transport,
    cred: &UpstreamCredential,
    session: &Session,
    state: Option<&str>,
    since: DateTime<Utc>,
    properties: Fetched,
) -> Result<ChangeFeed, MailStoreError> {
    if let Some(state) = state {
        let calls = [
            ReadCall::EmailChanges {
                since: state.to_owned(),
            },
            ReadCall::EmailGetFound { properties },
            ReadCall::ThreadGetFound,
            ReadCall::EmailGetMembers,
        ];
        match feed(transport, cred, session, &calls).await {
            Ok((mut responses, feed)) => {
                #[derive(serde::Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Changes {
                    new_state: String,
                    #[serde(default)]
                    has_more_changes: bool,
                }
                let changes: Changes = take_as(&mut responses, "Email/changes")?;
                return Ok(ChangeFeed {
                    state: changes.new_state,
                    more: changes.has_more_changes,
                    ..feed
                });
            }
            // A state the server can't answer from (too old, garbage): a fresh look.
            Err(MailStoreError::Rejected { kind, .. })
                if kind == "cannotCalculateChanges" || kind == "invalidArguments" => {}
            Err(other) => return Err(other),
        }
    }
    let calls = [
        ReadCall::EmailQueryRecent { after: since },
        ReadCall::EmailGetFound { properties },
        ReadCall::ThreadGetFound,
        ReadCall::EmailGetMembers,
    ];
    let (_, feed) = feed(transport, cred, session, &calls).await?;
    Ok(ChangeFeed {
        reset: state.is_some(),
        ..feed
    })
}

async fn feed(
    transport: &Transport,
    cred: &UpstreamCredential,
    session: &Session,
    calls: &[ReadCall],
) -> Result<(Vec<MethodResponse>, ChangeFeed), MailStoreError> {
    let submission = session.wire.capabilities.contains_key(SUBMISSION);
    let mut calls = calls.to_vec();
    if submission {
        calls.push(ReadCall::IdentityGet);
    }
    calls.push(ReadCall::MailboxGet);
    let using: &[&str] = if submission {
        &[CORE, MAIL, SUBMISSION]
    } else {
        &[CORE, MAIL]
    };
    // Which threads the person wrote in is a best-effort extra: a server that refuses it (a
    // burst of long threads can exceed maxObjectsInGet) must not stop new mail.
    let optional: Vec<String> = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c, ReadCall::ThreadGetFound | ReadCall::EmailGetMembers))
        .map(|(i, _)| i.to_string())
        .collect();
    let optional: Vec<&str> = optional.iter().map(String::as_str).collect();
    let mut responses = transport
        .call_with_optional(
            cred,
            session,
            using,
            invocations(&calls, &session.account_id),
            &optional,
        )
        .await?;
    let mailboxes: Vec<Mailbox> = take_list::<MailboxWire>(&mut responses, "Mailbox/get")?
        .into_iter()
        .filter_map(mailbox)
        .collect();
    let identities = if submission {
        identities_in(&mut responses)?
    } else {
        Vec::new()
    };
    let created: GetResponse<EmailWire> = take_as(&mut responses, "Email/get")?;
    let threads = take_list::<ThreadWire>(&mut responses, "Thread/get");
    let members = take_list::<MemberWire>(&mut responses, "Email/get");
    let my_threads = match (threads, members) {
        (Ok(threads), Ok(members)) => {
            threads_written_in(&threads, &members, &mailboxes, &identities)
        }
        _ => Vec::new(),
    };
    let feed = ChangeFeed {
        state: created.state.clone().unwrap_or_default(),
        created: created.list.into_iter().filter_map(summary).collect(),
        more: false,
        reset: false,
        mailboxes,
        identities,
        my_threads,
    };
    Ok((responses, feed))
}

/// An email of a new email's thread, as [`super::MEMBER_PROPERTIES`] fetch it.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct MemberWire {
    id: String,
    mailbox_ids: std::collections::HashMap<String, bool>,
    keywords: std::collections::HashMap<String, bool>,
    from: Option<Vec<AddressWire>>,
}

/// The threads with mail the person wrote that is not a draft: in Sent, or from one of
/// their identities.
fn threads_written_in(
    threads: &[ThreadWire],
    members: &[MemberWire],
    mailboxes: &[Mailbox],
    identities: &[Identity],
) -> Vec<ThreadId> {
    let sent: Vec<&str> = mailboxes
        .iter()
        .filter(|m| m.role.as_ref().is_some_and(|r| r.as_str() == "sent"))
        .map(|m| m.id.as_str())
        .collect();
    let written = |m: &MemberWire| {
        let draft = m.keywords.get("$draft").copied().unwrap_or(false);
        let in_sent = m
            .mailbox_ids
            .iter()
            .any(|(id, on)| *on && sent.contains(&id.as_str()));
        let from_me = m.from.iter().flatten().any(|a| {
            a.email
                .as_deref()
                .is_some_and(|e| identities.iter().any(|i| i.covers(e)))
        });
        !draft && (in_sent || from_me)
    };
    threads
        .iter()
        .filter(|t| {
            t.email_ids
                .iter()
                .any(|id| members.iter().any(|m| &m.id == id && written(m)))
        })
        .filter_map(|t| ThreadId::parse(t.id.clone()).ok())
        .collect()
}

/// The tools' change feed ([`Fetched::Summaries`]), whose mailbox list refreshes the store's.
///
/// # Errors
/// See [`MailStoreError`].
pub async fn tools_feed(
    conn: &Conn<'_>,
    state: Option<&str>,
    since: DateTime<Utc>,
) -> Result<ChangeFeed, MailStoreError> {
    let feed = change_feed(
        conn.transport(),
        conn.cred,
        &conn.session,
        state,
        since,
        Fetched::Summaries,
    )
    .await?;
    conn.remember_mailboxes(&feed.mailboxes);
    Ok(feed)
}
