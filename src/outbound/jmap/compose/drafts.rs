//! Drafts: created in Drafts (replacing an earlier version in the same request), read back as
//! they would be sent, and destroyed only while still drafts.

use serde_json::{Value, json};

use super::DraftEmail;
use crate::{
    domain::{
        mail::Address,
        mail::ids::{BlobId, EmailId, ThreadId},
        ports::MailStoreError,
        sending::approval::DraftSnapshot,
        sending::compose::{CreatedDraft, NewDraft},
        sending::submission::Refusal,
    },
    outbound::jmap::{
        connection::Conn,
        convert,
        mailboxes::role_id,
        read::{MAX_BODY_VALUE_BYTES, THREADING_AND_BODY_PROPERTIES, no_email},
        request::Call,
        session::{CORE, MAIL},
        set::{CreatedWire, SetResponse},
        wire::{AddressWire, BodyPartWire, EmailWire, GetResponse, take_as, take_list},
    },
};

/// Properties read for a draft about to be reviewed or sent, besides its threading headers
/// and body.
const DRAFT_HEADER_PROPERTIES: &[&str] = &[
    "id",
    "blobId",
    "threadId",
    "mailboxIds",
    "keywords",
    "from",
    "to",
    "cc",
    "bcc",
    "replyTo",
    "subject",
];

/// Creates `draft` in Drafts (destroying the draft it replaces).
///
/// # Errors
/// See [`MailStoreError`]; [`MailStoreError::NotFound`] when there is no Drafts mailbox.
pub async fn create_draft(
    conn: &Conn<'_>,
    draft: &NewDraft,
) -> Result<CreatedDraft, MailStoreError> {
    let (drafts, _) = conn.drafts_and_sent().await?;
    let mut call = DraftEmail::new(draft).create(conn.account(), &drafts, "draft", "create");
    if let Some(old) = &draft.replaces {
        call = call.arg("destroy", json!([old.as_str()]));
    }
    let mut responses = conn.call(&[CORE, MAIL], [call]).await?;
    let mut set: SetResponse<CreatedWire> = take_as(&mut responses, "Email/set")?;
    let created = set.created("draft")?;
    if let Some(old) = &draft.replaces
        && let Err(e) = set.destroyed(old.as_str())
    {
        tracing::warn!(error = %e, "the replaced draft was not destroyed");
    }
    Ok(CreatedDraft {
        id: EmailId::parse(created.id).map_err(|e| MailStoreError::Protocol(e.to_string()))?,
        thread_id: ThreadId::parse(created.thread_id.unwrap_or_default())
            .map_err(|e| MailStoreError::Protocol(e.to_string()))?,
    })
}

/// The draft `id` as it would be sent.
///
/// # Errors
/// See [`MailStoreError`]; [`MailStoreError::NotFound`] when there is no such email.
pub async fn draft(conn: &Conn<'_>, id: &EmailId) -> Result<DraftSnapshot, MailStoreError> {
    let call = Call::new("Email/get", conn.account(), "draft")
        .ids([id.as_str()])
        .properties(&[DRAFT_HEADER_PROPERTIES, THREADING_AND_BODY_PROPERTIES].concat())
        .arg("fetchAllBodyValues", true)
        .arg("maxBodyValueBytes", MAX_BODY_VALUE_BYTES);
    let (mut responses, mailboxes) = conn.call_with_mailboxes(vec![call]).await?;
    let drafts = role_id(&mailboxes, "drafts");
    let wire = take_list::<EmailWire>(&mut responses, "Email/get")?
        .into_iter()
        .next()
        .ok_or_else(|| no_email(id))?;
    snapshot(wire, drafts.as_deref())
}

/// Destroys the draft `id`, if it still is one and nothing changed since it was checked.
///
/// # Errors
/// [`MailStoreError::Refused`] when it is not a draft in Drafts; see [`MailStoreError`].
pub async fn delete_draft(conn: &Conn<'_>, id: &EmailId) -> Result<(), MailStoreError> {
    let (drafts, _) = conn.drafts_and_sent().await?;
    let call = Call::new("Email/get", conn.account(), "check")
        .ids([id.as_str()])
        .properties(&["id", "mailboxIds", "keywords"]);
    let mut responses = conn.call(&[CORE, MAIL], [call]).await?;
    let checked: GetResponse<EmailWire> = take_as(&mut responses, "Email/get")?;
    let state = checked.state;
    let found = checked
        .list
        .into_iter()
        .next()
        .ok_or_else(|| no_email(id))?;
    if found.mailbox_ids.get(&drafts) != Some(&true) || found.keywords.get("$draft") != Some(&true)
    {
        return Err(MailStoreError::Refused(Refusal::NotADraft));
    }
    // Destroyed only if nothing changed since the check (ifInState).
    let call = Call::new("Email/set", conn.account(), "destroy")
        .arg("ifInState", state)
        .arg("destroy", json!([id.as_str()]));
    let mut responses = conn
        .call(&[CORE, MAIL], [call])
        .await
        .map_err(|e| match e {
            MailStoreError::Rejected { kind, .. } if kind == "stateMismatch" => {
                MailStoreError::Rejected {
                    kind,
                    description: Some("the mailbox changed meanwhile; try again".into()),
                }
            }
            other => other,
        })?;
    take_as::<SetResponse<Value>>(&mut responses, "Email/set")?.destroyed(id.as_str())
}

fn plain(list: Option<Vec<AddressWire>>) -> Vec<Address> {
    list.unwrap_or_default()
        .into_iter()
        .filter_map(|a| {
            a.email.filter(|e| !e.is_empty()).map(|email| Address {
                name: a.name.filter(|n| !n.is_empty()),
                email,
            })
        })
        .collect()
}
/// The draft as it would be sent; `drafts` is the Drafts mailbox id.
pub fn snapshot(mut w: EmailWire, drafts: Option<&str>) -> Result<DraftSnapshot, MailStoreError> {
    let invalid = |what: &str| MailStoreError::Protocol(format!("draft {what}"));
    let id = EmailId::parse(w.id.clone()).map_err(|_| invalid("id"))?;
    let blob_id =
        BlobId::parse(w.blob_id.take().unwrap_or_default()).map_err(|_| invalid("blobId"))?;
    let mut truncated = false;
    let mut join = |parts: &Option<Vec<BodyPartWire>>, html: bool| {
        let mut out: Option<String> = None;
        for p in parts.iter().flatten() {
            let is_html = p.mime_type.as_deref() == Some("text/html");
            if is_html != html {
                continue;
            }
            let value = p.part_id.as_ref().and_then(|id| w.body_values.get(id));
            if let Some(v) = value {
                truncated |= v.is_truncated;
                let text = out.get_or_insert_with(String::new);
                text.push_str(&v.value);
            }
        }
        out
    };
    let text = join(&w.text_body, false).unwrap_or_default();
    let html = join(&w.html_body, true);
    Ok(DraftSnapshot {
        id,
        blob_id,
        in_drafts: drafts.is_some_and(|d| w.mailbox_ids.get(d) == Some(&true)),
        is_draft: w.keywords.get("$draft") == Some(&true),
        from: plain(w.from.take()),
        to: plain(w.to.take()),
        cc: plain(w.cc.take()),
        bcc: plain(w.bcc.take()),
        reply_to: plain(w.reply_to.take()),
        subject: w.subject.take().unwrap_or_default(),
        text,
        html,
        attachments: w
            .attachments
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter_map(convert::attachment)
            .collect(),
        in_reply_to: w.in_reply_to.take().unwrap_or_default(),
        references: w.references.take().unwrap_or_default(),
        truncated,
    })
}
