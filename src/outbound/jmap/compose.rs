//! Drafts and submissions in JMAP (RFC 8621 §4.6, §7). Emails are immutable apart from
//! keywords and mailboxes, so an edited draft is a new email created and the old one destroyed
//! in the same request, and a draft is copied rather than changed (without its Bcc header for
//! sending, with it again after a cancel): each of those emails is built by [`DraftEmail`].

mod drafts;
mod submission;

use serde_json::{Map, Value, json};

pub use self::{
    drafts::{create_draft, delete_draft, draft},
    submission::{cancel_submission, check_envelope, submission, submit},
};
use super::request::Call;
use crate::domain::{
    mail::{Address, Attachment},
    sending::approval::DraftSnapshot,
    sending::compose::NewDraft,
};

/// A draft email as `Email/set` creates it, in Drafts, marked `$draft` and `$seen`.
#[derive(Debug, Clone, Copy)]
struct DraftEmail<'a> {
    from: &'a [Address],
    to: &'a [Address],
    cc: &'a [Address],
    bcc: &'a [Address],
    reply_to: &'a [Address],
    subject: &'a str,
    in_reply_to: &'a [String],
    references: &'a [String],
    text: &'a str,
    html: Option<&'a str>,
    attachments: &'a [Attachment],
}

impl<'a> DraftEmail<'a> {
    /// A new draft, as planned.
    fn new(draft: &'a NewDraft) -> Self {
        Self {
            from: std::slice::from_ref(&draft.from),
            to: &draft.to,
            cc: &draft.cc,
            bcc: &draft.bcc,
            reply_to: &[],
            subject: &draft.subject,
            in_reply_to: &draft.in_reply_to,
            references: &draft.references,
            text: &draft.text,
            html: None,
            attachments: &draft.attachments,
        }
    }

    /// A copy of `d`, same body text and attachment blobs, with `bcc` as its Bcc.
    fn copy(d: &'a DraftSnapshot, bcc: &'a [Address]) -> Self {
        Self {
            from: &d.from,
            to: &d.to,
            cc: &d.cc,
            bcc,
            reply_to: &d.reply_to,
            subject: &d.subject,
            in_reply_to: &d.in_reply_to,
            references: &d.references,
            text: &d.text,
            html: d.html.as_deref(),
            attachments: &d.attachments,
        }
    }

    /// The `Email/set` (answered as `call_id`) that creates it under `key` in `drafts`.
    fn create(self, account: &str, drafts: &str, key: &str, call_id: &str) -> Call {
        let email = self.into_object(drafts);
        Call::new("Email/set", account, call_id).arg("create", json!({ key: email }))
    }

    /// The `Email` object, in the mailbox `drafts`.
    fn into_object(self, drafts: &str) -> Map<String, Value> {
        let mut email = Map::new();
        email.insert("mailboxIds".into(), json!({ drafts: true }));
        email.insert("keywords".into(), json!({"$draft": true, "$seen": true}));
        for (key, list) in [
            ("from", self.from),
            ("to", self.to),
            ("cc", self.cc),
            ("bcc", self.bcc),
            ("replyTo", self.reply_to),
        ] {
            if !list.is_empty() {
                email.insert(key.into(), list.iter().map(address).collect());
            }
        }
        email.insert("subject".into(), json!(self.subject));
        if !self.in_reply_to.is_empty() {
            email.insert("inReplyTo".into(), json!(self.in_reply_to));
        }
        if !self.references.is_empty() {
            email.insert("references".into(), json!(self.references));
        }
        let mut values = json!({"text": {"value": self.text}});
        email.insert(
            "textBody".into(),
            json!([{"partId": "text", "type": "text/plain"}]),
        );
        if let Some(html) = self.html {
            values["html"] = json!({"value": html});
            email.insert(
                "htmlBody".into(),
                json!([{"partId": "html", "type": "text/html"}]),
            );
        }
        email.insert("bodyValues".into(), values);
        if !self.attachments.is_empty() {
            let parts = self.attachments.iter().map(|a| {
                json!({"blobId": a.blob_id.as_str(), "type": a.mime_type,
                       "name": a.name, "disposition": "attachment"})
            });
            email.insert("attachments".into(), parts.collect());
        }
        email
    }
}

fn address(a: &Address) -> Value {
    match &a.name {
        Some(name) => json!({"name": name, "email": a.email}),
        None => json!({"email": a.email}),
    }
}
