//! Drafts and submissions in JMAP (RFC 8621 §4.6, §7): the requests and what their answers
//! mean. Emails are immutable apart from keywords and mailboxes, so an edited draft is a new
//! email created and the old one destroyed in the same request.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::wire::{AddressWire, EmailWire};
use crate::domain::{
    approval::DraftSnapshot,
    compose::{Identity, NewDraft},
    ids::{BlobId, EmailId},
    mail::Address,
    ports::MailStoreError,
    submission::{Refusal, Submission, SubmissionStatus, UndoStatus},
};

/// Properties read for a draft about to be reviewed or sent.
pub const DRAFT_PROPERTIES: &[&str] = &[
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
    "inReplyTo",
    "references",
    "attachments",
    "textBody",
    "htmlBody",
    "bodyValues",
];

#[derive(Debug, Deserialize)]
pub struct IdentityWire {
    pub id: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub name: Option<String>,
}

pub fn identity(w: IdentityWire) -> Identity {
    Identity {
        id: w.id,
        email: w.email,
        name: w.name.filter(|n| !n.is_empty()),
    }
}

fn address(a: &Address) -> Value {
    match &a.name {
        Some(name) => json!({"name": name, "email": a.email}),
        None => json!({"email": a.email}),
    }
}

fn addresses(list: &[Address]) -> Value {
    Value::Array(list.iter().map(address).collect())
}

/// The `Email/set` that creates `draft` in `drafts` (and destroys the one it replaces).
pub fn create_call(account: &str, drafts: &str, draft: &NewDraft) -> Value {
    let mut email = Map::new();
    email.insert("mailboxIds".into(), json!({ drafts: true }));
    email.insert("keywords".into(), json!({"$draft": true, "$seen": true}));
    email.insert("from".into(), json!([address(&draft.from)]));
    for (key, list) in [("to", &draft.to), ("cc", &draft.cc), ("bcc", &draft.bcc)] {
        if !list.is_empty() {
            email.insert(key.into(), addresses(list));
        }
    }
    email.insert("subject".into(), json!(draft.subject));
    if !draft.in_reply_to.is_empty() {
        email.insert("inReplyTo".into(), json!(draft.in_reply_to));
    }
    if !draft.references.is_empty() {
        email.insert("references".into(), json!(draft.references));
    }
    email.insert("bodyValues".into(), json!({"text": {"value": draft.text}}));
    email.insert(
        "textBody".into(),
        json!([{"partId": "text", "type": "text/plain"}]),
    );
    if !draft.attachments.is_empty() {
        email.insert(
            "attachments".into(),
            Value::Array(
                draft
                    .attachments
                    .iter()
                    .map(|a| {
                        json!({"blobId": a.blob_id.as_str(), "type": a.mime_type,
                               "name": a.name, "disposition": "attachment"})
                    })
                    .collect(),
            ),
        );
    }
    let mut args = json!({"accountId": account, "create": {"draft": email}});
    if let Some(old) = &draft.replaces {
        args["destroy"] = json!([old.as_str()]);
    }
    json!(["Email/set", args, "create"])
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetErrorWire {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub max_recipients: Option<u64>,
    #[serde(default)]
    pub invalid_recipients: Option<Vec<String>>,
    #[serde(default)]
    pub max_size: Option<u64>,
    #[serde(default)]
    pub properties: Option<Vec<String>>,
}

/// A SetError as the domain knows it: throttling goes to the one retry path, refusals get
/// their stable code, the rest is the server rejecting the request.
pub fn set_error(e: SetErrorWire) -> MailStoreError {
    let refused = |r| MailStoreError::Refused(r);
    match e.kind.as_str() {
        "rateLimit" | "tooManyRequests" => MailStoreError::RateLimited { retry_after: None },
        "forbiddenFrom" => refused(Refusal::ForbiddenFrom),
        "forbiddenMailFrom" => refused(Refusal::ForbiddenMailFrom),
        "forbiddenToSend" => refused(Refusal::ForbiddenToSend),
        "tooManyRecipients" => refused(Refusal::TooManyRecipients(
            e.max_recipients.filter(|m| *m > 0),
        )),
        "invalidRecipients" => refused(Refusal::InvalidRecipients(
            e.invalid_recipients.unwrap_or_default(),
        )),
        "noRecipients" => refused(Refusal::NoRecipients),
        "tooLarge" => refused(Refusal::TooLarge(e.max_size)),
        "cannotUnsend" => refused(Refusal::CannotUnsend),
        "notFound" => MailStoreError::NotFound("the mail server has no such object".into()),
        "blobNotFound" => MailStoreError::NotFound(
            "an attachment to re-use is no longer on the mail server".into(),
        ),
        _ => MailStoreError::Rejected {
            description: e.description.or_else(|| e.properties.map(|p| p.join(", "))),
            kind: e.kind,
        },
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetResponse<T> {
    #[serde(default = "Option::default")]
    pub created: Option<std::collections::HashMap<String, T>>,
    #[serde(default)]
    pub not_created: Option<std::collections::HashMap<String, SetErrorWire>>,
    #[serde(default)]
    pub updated: Option<std::collections::HashMap<String, Option<Value>>>,
    #[serde(default)]
    pub not_updated: Option<std::collections::HashMap<String, SetErrorWire>>,
    #[serde(default)]
    pub destroyed: Option<Vec<String>>,
    #[serde(default)]
    pub not_destroyed: Option<std::collections::HashMap<String, SetErrorWire>>,
}

impl<T> SetResponse<T> {
    /// The object created under `key`, or the server's reason.
    pub fn created(&mut self, key: &str) -> Result<T, MailStoreError> {
        if let Some(found) = self.created.as_mut().and_then(|c| c.remove(key)) {
            return Ok(found);
        }
        match self.not_created.as_mut().and_then(|n| n.remove(key)) {
            Some(e) => Err(set_error(e)),
            None => Err(MailStoreError::Protocol(format!(
                "the server reported nothing about creating {key}"
            ))),
        }
    }

    /// Whether `id` was updated, or the server's reason.
    pub fn updated(&mut self, id: &str) -> Result<(), MailStoreError> {
        if self.updated.as_ref().is_some_and(|u| u.contains_key(id)) {
            return Ok(());
        }
        match self.not_updated.as_mut().and_then(|n| n.remove(id)) {
            Some(e) => Err(set_error(e)),
            None => Err(MailStoreError::Protocol(format!(
                "the server reported nothing about updating {id}"
            ))),
        }
    }

    /// Whether `id` was destroyed, or the server's reason.
    pub fn destroyed(&mut self, id: &str) -> Result<(), MailStoreError> {
        if self
            .destroyed
            .as_ref()
            .is_some_and(|d| d.iter().any(|x| x == id))
        {
            return Ok(());
        }
        match self.not_destroyed.as_mut().and_then(|n| n.remove(id)) {
            Some(e) => Err(set_error(e)),
            None => Err(MailStoreError::Protocol(format!(
                "the server reported nothing about destroying {id}"
            ))),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWire {
    pub id: String,
    #[serde(default)]
    pub thread_id: Option<String>,
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
    let mut join = |parts: &Option<Vec<super::wire::BodyPartWire>>, html: bool| {
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
            .filter_map(super::convert::attachment)
            .collect(),
        in_reply_to: w.in_reply_to.take().unwrap_or_default(),
        references: w.references.take().unwrap_or_default(),
        truncated,
    })
}

/// The `Email/set` that creates `copy`: the draft without its Bcc header, from the same body
/// text and attachment blobs, for a submission whose Bcc recipients are in the envelope only.
pub fn copy_call(account: &str, drafts: &str, d: &DraftSnapshot) -> Value {
    json!(["Email/set", {"accountId": account, "create": {"copy": draft_copy(drafts, d, &[])}}, "copy"])
}

/// The `Email/set` that puts back a draft whose held Bcc-less copy was cancelled: a copy of
/// `d` with `bcc` again (JMAP emails can't be changed); `d` goes once it exists.
pub fn restore_bcc_call(account: &str, drafts: &str, d: &DraftSnapshot, bcc: &[Address]) -> Value {
    json!(["Email/set", {"accountId": account,
        "create": {"restored": draft_copy(drafts, d, bcc)}}, "restore"])
}

/// `d` as a new draft in Drafts, with `bcc`.
fn draft_copy(drafts: &str, d: &DraftSnapshot, bcc: &[Address]) -> Map<String, Value> {
    let mut email = Map::new();
    email.insert("mailboxIds".into(), json!({ drafts: true }));
    email.insert("keywords".into(), json!({"$draft": true, "$seen": true}));
    let bcc = bcc.to_vec();
    for (key, list) in [
        ("from", &d.from),
        ("to", &d.to),
        ("cc", &d.cc),
        ("bcc", &bcc),
        ("replyTo", &d.reply_to),
    ] {
        if !list.is_empty() {
            email.insert(key.into(), addresses(list));
        }
    }
    email.insert("subject".into(), json!(d.subject));
    if !d.in_reply_to.is_empty() {
        email.insert("inReplyTo".into(), json!(d.in_reply_to));
    }
    if !d.references.is_empty() {
        email.insert("references".into(), json!(d.references));
    }
    let mut values = json!({"text": {"value": d.text}});
    email.insert(
        "textBody".into(),
        json!([{"partId": "text", "type": "text/plain"}]),
    );
    if let Some(html) = &d.html {
        values["html"] = json!({"value": html});
        email.insert(
            "htmlBody".into(),
            json!([{"partId": "html", "type": "text/html"}]),
        );
    }
    email.insert("bodyValues".into(), values);
    if !d.attachments.is_empty() {
        email.insert(
            "attachments".into(),
            Value::Array(
                d.attachments
                    .iter()
                    .map(|a| {
                        json!({"blobId": a.blob_id.as_str(), "type": a.mime_type,
                               "name": a.name, "disposition": "attachment"})
                    })
                    .collect(),
            ),
        );
    }
    email
}

/// The `EmailSubmission/set` that sends `s`: an explicit envelope (Bcc only there; `HOLDFOR`
/// for an undo window or a scheduled send), and on success the email leaves Drafts for Sent
/// without `$draft`.
pub fn submit_call(
    account: &str,
    s: &Submission,
    email: &str,
    drafts: &str,
    sent: Option<&str>,
) -> Value {
    let mut on_success = Map::new();
    on_success.insert(format!("mailboxIds/{drafts}"), Value::Null);
    if let Some(sent) = sent {
        on_success.insert(format!("mailboxIds/{sent}"), json!(true));
    }
    on_success.insert("keywords/$draft".into(), Value::Null);
    let parameters = s
        .hold_secs
        .map_or(Value::Null, |secs| json!({"HOLDFOR": secs.to_string()}));
    json!(["EmailSubmission/set", {
        "accountId": account,
        "create": {"send": {
            "identityId": s.identity,
            "emailId": email,
            "envelope": {
                "mailFrom": {"email": s.mail_from, "parameters": parameters},
                "rcptTo": s.rcpt_to.iter().map(|r| json!({"email": r})).collect::<Vec<_>>(),
            },
        }},
        "onSuccessUpdateEmail": {"#send": on_success},
    }, "submit"])
}

/// The patch that puts a cancelled submission's email back in Drafts as a draft.
pub fn back_to_drafts(drafts: &str, sent: Option<&str>) -> Value {
    let mut patch = Map::new();
    if let Some(sent) = sent {
        patch.insert(format!("mailboxIds/{sent}"), Value::Null);
    }
    patch.insert(format!("mailboxIds/{drafts}"), json!(true));
    patch.insert("keywords/$draft".into(), json!(true));
    Value::Object(patch)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmissionWire {
    pub id: String,
    #[serde(default)]
    pub email_id: Option<String>,
    #[serde(default)]
    pub envelope: Option<EnvelopeWire>,
    #[serde(default)]
    pub undo_status: Option<String>,
    #[serde(default)]
    pub send_at: Option<String>,
    #[serde(default)]
    pub delivery_status: Option<std::collections::HashMap<String, DeliveryWire>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvelopeWire {
    #[serde(default)]
    pub rcpt_to: Vec<EnvelopeAddressWire>,
}

#[derive(Debug, Deserialize)]
pub struct EnvelopeAddressWire {
    #[serde(default)]
    pub email: String,
}

#[derive(Debug, Deserialize)]
pub struct DeliveryWire {
    #[serde(default)]
    pub delivered: Option<String>,
}

pub fn submission(w: SubmissionWire, email: Option<&EmailId>) -> SubmissionStatus {
    let mut delivery: Vec<(String, String)> = w
        .delivery_status
        .unwrap_or_default()
        .into_iter()
        .map(|(rcpt, d)| (rcpt, d.delivered.unwrap_or_else(|| "unknown".into())))
        .collect();
    delivery.sort();
    SubmissionStatus {
        id: w.id,
        email: w
            .email_id
            .and_then(|e| EmailId::parse(e).ok())
            .or_else(|| email.cloned()),
        undo_status: match w.undo_status.as_deref() {
            Some("pending") => UndoStatus::Pending,
            Some("canceled") => UndoStatus::Canceled,
            _ => UndoStatus::Final,
        },
        send_at: w
            .send_at
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&chrono::Utc)),
        delivery,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_errors_get_stable_codes_and_throttling_retries() {
        let e = |v: Value| set_error(serde_json::from_value(v).unwrap());
        assert!(matches!(
            e(json!({"type": "rateLimit"})),
            MailStoreError::RateLimited { .. }
        ));
        for (wire, code) in [
            (json!({"type": "forbiddenFrom"}), "forbidden_from"),
            (json!({"type": "forbiddenMailFrom"}), "forbidden_mail_from"),
            (json!({"type": "forbiddenToSend"}), "forbidden_to_send"),
            (
                json!({"type": "tooManyRecipients", "maxRecipients": 0}),
                "too_many_recipients",
            ),
            (
                json!({"type": "invalidRecipients", "invalidRecipients": ["a@b.c"]}),
                "invalid_recipients",
            ),
            (json!({"type": "noRecipients"}), "no_recipients"),
            (json!({"type": "tooLarge", "maxSize": 5}), "too_large"),
            (json!({"type": "cannotUnsend"}), "cannot_unsend"),
        ] {
            match e(wire.clone()) {
                MailStoreError::Refused(r) => assert_eq!(r.code(), code, "{wire}"),
                other => panic!("{wire}: {other:?}"),
            }
        }
        assert!(matches!(
            e(json!({"type": "tooManyRecipients", "maxRecipients": 0})),
            MailStoreError::Refused(Refusal::TooManyRecipients(None))
        ));
        assert!(matches!(
            e(json!({"type": "invalidProperties", "properties": ["from"]})),
            MailStoreError::Rejected { description: Some(d), .. } if d == "from"
        ));
    }
}
