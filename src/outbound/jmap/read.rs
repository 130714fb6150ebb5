//! Reading mail: the account, its identities and mailboxes, one email, one thread, one
//! attachment, and whether the person has written to an address. Each read is one request
//! (two for an attachment: see [`attachment`]), the mailbox list riding along for names.

mod filter;
mod search;

pub use search::{MAX_FETCH, search};

use serde_json::json;

use super::{
    connection::Conn,
    convert::{self, account_info, email as email_of, identity, summary},
    request::Call,
    session::{CORE, MAIL, MethodResponse, SUBMISSION},
    wire::{AddressWire, EmailWire, GetResponse, ThreadWire, decode, take_list},
};
use crate::domain::{
    mail::ids::{BlobId, EmailId, ThreadId},
    mail::{AccountInfo, AttachmentContent, Email, EmailSummary, Mailbox},
    ports::MailStoreError,
    sending::compose::Identity,
};

/// Properties fetched for each search hit or thread member.
pub const SUMMARY_PROPERTIES: &[&str] = &[
    "id",
    "threadId",
    "mailboxIds",
    "keywords",
    "receivedAt",
    "sentAt",
    "from",
    "to",
    "subject",
    "preview",
    "hasAttachment",
];
/// Properties `get_email` fetches besides [`SUMMARY_PROPERTIES`] and the body's.
const EMAIL_EXTRA_PROPERTIES: &[&str] = &["cc", "bcc", "sender", "replyTo", "messageId"];
/// The threading headers and the body: the last properties of a whole email and of a draft.
pub const THREADING_AND_BODY_PROPERTIES: &[&str] = &[
    "inReplyTo",
    "references",
    "attachments",
    "textBody",
    "htmlBody",
    "bodyValues",
];

/// Properties fetched for `get_email`: a summary's and the full headers and body.
#[must_use]
pub fn email_properties() -> Vec<&'static str> {
    [
        SUMMARY_PROPERTIES,
        EMAIL_EXTRA_PROPERTIES,
        THREADING_AND_BODY_PROPERTIES,
    ]
    .concat()
}
/// Largest body value fetched; the tool pages through it (get_email `body_offset`).
pub const MAX_BODY_VALUE_BYTES: u64 = 4 * 1024 * 1024;

/// The `Identity/get` of every identity, answered under `id`.
pub fn identity_get(account: &str, id: impl Into<String>) -> Call {
    Call::new("Identity/get", account, id)
}

/// The identities of the `Identity/get` response in `responses`.
///
/// # Errors
/// [`MailStoreError::Protocol`] when there is none or it doesn't decode.
pub fn identities_in(responses: &mut Vec<MethodResponse>) -> Result<Vec<Identity>, MailStoreError> {
    Ok(take_list(responses, "Identity/get")?
        .into_iter()
        .map(identity)
        .collect())
}

/// The error for an email the server doesn't have.
pub fn no_email(id: &EmailId) -> MailStoreError {
    MailStoreError::NotFound(format!("there is no email with id {id}"))
}

/// The person's identities (none where the server doesn't send mail).
///
/// # Errors
/// See [`MailStoreError`].
pub async fn identities(conn: &Conn<'_>) -> Result<Vec<Identity>, MailStoreError> {
    if !conn.offers_submission() {
        return Ok(Vec::new());
    }
    let call = identity_get(conn.account(), "identities");
    identities_in(&mut conn.call(&[CORE, MAIL, SUBMISSION], [call]).await?)
}

/// The account, its limits and addresses.
///
/// # Errors
/// See [`MailStoreError`].
pub async fn account(conn: &Conn<'_>) -> Result<AccountInfo, MailStoreError> {
    let identities = if conn.offers_submission() {
        let call = identity_get(conn.account(), "identities");
        let mut responses = conn.call(&[CORE, MAIL, SUBMISSION], [call]).await?;
        take_list::<AddressWire>(&mut responses, "Identity/get")?
    } else {
        Vec::new()
    };
    Ok(account_info(&conn.session, identities))
}

/// One email, whole, with the mailbox list.
///
/// # Errors
/// See [`MailStoreError`].
pub async fn email(conn: &Conn<'_>, id: &EmailId) -> Result<(Email, Vec<Mailbox>), MailStoreError> {
    let call = Call::new("Email/get", conn.account(), "email")
        .ids([id.as_str()])
        .arg("properties", email_properties())
        .arg("fetchTextBodyValues", true)
        .arg("fetchHTMLBodyValues", true)
        .arg("maxBodyValueBytes", MAX_BODY_VALUE_BYTES);
    let (mut responses, mailboxes) = conn.call_with_mailboxes(vec![call]).await?;
    let found = take_list::<EmailWire>(&mut responses, "Email/get")?
        .into_iter()
        .find_map(email_of)
        .ok_or_else(|| no_email(id))?;
    Ok((found, mailboxes))
}

/// A thread's emails, oldest first, with the mailbox list.
///
/// # Errors
/// See [`MailStoreError`].
pub async fn thread(
    conn: &Conn<'_>,
    id: &ThreadId,
) -> Result<(Vec<EmailSummary>, Vec<Mailbox>), MailStoreError> {
    let calls = vec![
        Call::new("Thread/get", conn.account(), "thread").ids([id.as_str()]),
        summaries_of(conn.account(), "thread", "Thread/get", "/list/*/emailIds"),
    ];
    let (mut responses, mailboxes) = conn.call_with_mailboxes(calls).await?;
    let threads = take_list::<ThreadWire>(&mut responses, "Thread/get")?;
    let Some(order) = threads.into_iter().next().map(|t| t.email_ids) else {
        return Err(MailStoreError::NotFound(format!(
            "there is no thread with id {id}"
        )));
    };
    let mut emails: Vec<EmailSummary> = take_list::<EmailWire>(&mut responses, "Email/get")?
        .into_iter()
        .filter_map(summary)
        .collect();
    // Thread/get lists ids oldest first (RFC 8620 §3 of 8621); keep that order.
    emails.sort_by_key(|e| {
        order
            .iter()
            .position(|id| id == e.id.as_str())
            .unwrap_or(usize::MAX)
    });
    Ok((emails, mailboxes))
}

/// The `Email/get` of the summaries of the emails the call `call` (a `name`) found at `path`.
fn summaries_of(account: &str, call: &str, name: &str, path: &str) -> Call {
    Call::new("Email/get", account, "emails")
        .ids_from(call, name, path)
        .properties(SUMMARY_PROPERTIES)
}

/// One attachment's bytes, at most `max_bytes` of them.
///
/// # Errors
/// [`MailStoreError::NotFound`] when the email has no such attachment,
/// [`MailStoreError::TooLarge`] when it is larger than `max_bytes`.
pub async fn attachment(
    conn: &Conn<'_>,
    email_id: &EmailId,
    blob: &BlobId,
    max_bytes: u64,
) -> Result<AttachmentContent, MailStoreError> {
    // Two requests by design: the metadata call proves the blob belongs to this email and
    // gives its size, so an oversized file is refused before any byte is downloaded.
    let call = Call::new("Email/get", conn.account(), "email")
        .ids([email_id.as_str()])
        .properties(&["id", "attachments"]);
    let mut responses = conn.call(&[CORE, MAIL], [call]).await?;
    let found = take_list::<EmailWire>(&mut responses, "Email/get")?
        .into_iter()
        .next()
        .ok_or_else(|| no_email(email_id))?;
    let attachment = found
        .attachments
        .unwrap_or_default()
        .into_iter()
        .filter_map(convert::attachment)
        .find(|a| &a.blob_id == blob)
        .ok_or_else(|| {
            MailStoreError::NotFound(format!(
                "email {email_id} has no attachment with blob id {blob}; get_email lists its attachments"
            ))
        })?;
    if attachment.size > max_bytes {
        return Err(MailStoreError::TooLarge {
            size: attachment.size,
            limit: max_bytes,
        });
    }
    let bytes = conn
        .transport()
        .download(
            conn.cred,
            &conn.session,
            blob.as_str(),
            attachment.name.as_deref().unwrap_or("attachment"),
            &attachment.mime_type,
            max_bytes,
        )
        .await?;
    Ok(AttachmentContent { attachment, bytes })
}

/// Which of `addresses` the person has sent mail to (from Sent).
///
/// # Errors
/// See [`MailStoreError`].
pub async fn written_to(
    conn: &Conn<'_>,
    addresses: &[String],
) -> Result<Vec<String>, MailStoreError> {
    let (_, sent) = conn.drafts_and_sent().await?;
    let Some(sent) = sent else {
        return Ok(Vec::new());
    };
    // One request: per address, the Sent mail whose To/Cc/Bcc text matches it (a search
    // matches words, so the hits are checked exactly below), with the identities.
    let mut calls = vec![identity_get(conn.account(), "identities")];
    for (i, a) in addresses.iter().enumerate() {
        let query = format!("q{i}");
        let filter = filter::and(vec![json!({"inMailbox": sent}), filter::addressed_to(a)]);
        calls.push(
            Call::new("Email/query", conn.account(), query.as_str())
                .arg("filter", filter)
                .arg("limit", 25),
        );
        calls.push(
            Call::new("Email/get", conn.account(), format!("g{i}"))
                .ids_from(&query, "Email/query", "/ids")
                .properties(&["id", "keywords", "from", "to", "cc", "bcc"]),
        );
    }
    if addresses.is_empty() {
        return Ok(Vec::new());
    }
    let mut responses = conn.call(&[CORE, MAIL, SUBMISSION], calls).await?;
    let identities = identities_in(&mut responses)?;
    let gets = responses.iter().filter(|(name, _)| name == "Email/get");
    let mut found = Vec::new();
    for ((_, args), address) in gets.zip(addresses) {
        let hits = decode::<GetResponse<EmailWire>>("Email/get", args)?.list;
        // Mail the person sent: from one of their identities, not a draft, and addressed
        // to exactly this address (a word match like john.smith@ for smith@ doesn't count).
        let wrote = hits.into_iter().any(|e| {
            let sent_by_them = e
                .from
                .iter()
                .flatten()
                .filter_map(|a| a.email.as_deref())
                .any(|f| identities.iter().any(|i| i.covers(f)));
            let to_them = [&e.to, &e.cc, &e.bcc]
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|a| a.email.as_deref())
                .any(|r| r.eq_ignore_ascii_case(address));
            sent_by_them && to_them && e.keywords.get("$draft") != Some(&true)
        });
        if wrote {
            found.push(address.clone());
        }
    }
    Ok(found)
}
