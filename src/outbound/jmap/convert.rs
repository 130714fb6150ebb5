//! JMAP wire objects to domain types, once, at the edge. Objects a server sends half-formed
//! (an email without an id) are dropped rather than failing the whole answer.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    session::{CORE, MAIL, Session},
    wire::{AddressWire, BodyPartWire, EmailWire, IdentityWire, MailboxWire, SubmissionWire},
};
use crate::domain::{
    mail::body,
    mail::ids::{BlobId, EmailId, MailboxId, ThreadId},
    mail::{
        AccountInfo, Address, Attachment, Email, EmailSummary, Keywords, Mailbox, MailboxRole,
        RawBody, ServerLimits,
    },
    sending::compose::Identity,
    sending::submission::{SubmissionStatus, UndoStatus},
};

pub fn mailbox(w: MailboxWire) -> Option<Mailbox> {
    Some(Mailbox {
        id: MailboxId::parse(w.id).ok()?,
        name: w.name,
        parent_id: w.parent_id.and_then(|p| MailboxId::parse(p).ok()),
        role: w.role.as_deref().map(MailboxRole::parse),
        sort_order: w.sort_order,
        total_emails: w.total_emails,
        unread_emails: w.unread_emails,
    })
}

fn addresses(list: Option<Vec<AddressWire>>) -> Vec<Address> {
    list.unwrap_or_default()
        .into_iter()
        .filter_map(|a| {
            Some(Address {
                email: a.email.filter(|e| !e.is_empty())?,
                name: a.name.filter(|n| !n.trim().is_empty()),
            })
        })
        .collect()
}

fn flags(map: std::collections::HashMap<String, bool>) -> Vec<String> {
    map.into_iter()
        .filter(|(_, on)| *on)
        .map(|(k, _)| k)
        .collect()
}

pub fn summary(w: EmailWire) -> Option<EmailSummary> {
    summary_parts(w).map(|(s, _)| s)
}

fn summary_parts(mut w: EmailWire) -> Option<(EmailSummary, EmailWire)> {
    let received_at = w
        .received_at
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or(DateTime::<Utc>::UNIX_EPOCH, |t| t.with_timezone(&Utc));
    let mut mailbox_ids: Vec<MailboxId> = flags(std::mem::take(&mut w.mailbox_ids))
        .into_iter()
        .filter_map(|id| MailboxId::parse(id).ok())
        .collect();
    mailbox_ids.sort();
    let s = EmailSummary {
        id: EmailId::parse(w.id.clone()).ok()?,
        thread_id: ThreadId::parse(w.thread_id.clone().unwrap_or_default()).ok()?,
        received_at,
        sent_at: w.sent_at.take(),
        from: addresses(w.from.take()),
        to: addresses(w.to.take()),
        subject: w.subject.take().unwrap_or_default(),
        preview: body::clean_preview(w.preview.as_deref().unwrap_or_default()),
        keywords: Keywords::new(flags(std::mem::take(&mut w.keywords))),
        has_attachment: w.has_attachment,
        mailbox_ids,
        sender_verified: None,
    };
    let from = s.from.first().map(|a| a.email.clone());
    let s = EmailSummary {
        sender_verified: dmarc_verdict(
            w.authentication_results
                .as_ref()
                .and_then(|all| all.first())
                .and_then(Option::as_deref),
            from.as_deref(),
        ),
        ..s
    };
    Some((s, w))
}

/// The DMARC verdict of the receiving server (the topmost `Authentication-Results`, which a
/// sender can't forge above it) on `from`'s domain: `Some(false)` when it failed, `Some(true)`
/// when it passed, `None` otherwise (no verdict, `none` for a domain without a policy, errors):
/// only a failure takes a VIP's standing away.
fn dmarc_verdict(results: Option<&str>, from: Option<&str>) -> Option<bool> {
    let mut results = results?.to_ascii_lowercase();
    // `dmarc = fail` is `dmarc=fail`.
    while results.contains(" =") || results.contains("= ") {
        results = results.replace(" =", "=").replace("= ", "=");
    }
    let domain = from?.rsplit_once('@')?.1.to_ascii_lowercase();
    let mut verdict = None;
    for r in results.split(';').map(str::trim) {
        let Some(rest) = r.strip_prefix("dmarc=") else {
            continue;
        };
        let judged = r
            .split_whitespace()
            .find_map(|t| t.strip_prefix("header.from="))
            .map(|d| d.trim_end_matches([')', ',']));
        // A verdict on another domain says nothing about this From.
        if judged.is_some_and(|d| d != domain) {
            continue;
        }
        if rest.starts_with("fail") {
            return Some(false);
        }
        if rest.starts_with("pass") {
            verdict = Some(true);
        }
    }
    verdict
}

pub fn attachment(p: BodyPartWire) -> Option<Attachment> {
    let mime_type = p
        .mime_type
        .unwrap_or_else(|| "application/octet-stream".into())
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    Some(Attachment {
        blob_id: BlobId::parse(p.blob_id?).ok()?,
        name: p.name.filter(|n| !n.is_empty()),
        mime_type,
        charset: p.charset,
        size: p.size,
    })
}

fn part_type(p: &BodyPartWire) -> String {
    p.mime_type
        .as_deref()
        .unwrap_or("text/plain")
        .to_ascii_lowercase()
}

/// The readable body: the text/plain parts, else the text/html parts (RFC 8621 §4.1.4).
fn raw_body(w: &mut EmailWire) -> RawBody {
    let mut joined = |parts: &[BodyPartWire], wanted: &str| -> Option<String> {
        let texts: Vec<String> = parts
            .iter()
            .filter(|p| part_type(p) == wanted)
            .filter_map(|p| p.part_id.as_ref())
            .filter_map(|id| w.body_values.remove(id).map(|v| v.value))
            .collect();
        (!texts.is_empty()).then(|| texts.join("\n\n"))
    };
    let text_parts = w.text_body.take().unwrap_or_default();
    if let Some(text) = joined(&text_parts, "text/plain") {
        return RawBody::Text(text);
    }
    let html_parts = w.html_body.take().unwrap_or_default();
    joined(&html_parts, "text/html")
        .or_else(|| joined(&text_parts, "text/html"))
        .map_or(RawBody::None, RawBody::Html)
}

fn bare_ids(ids: Option<Vec<String>>) -> Vec<String> {
    ids.unwrap_or_default()
        .into_iter()
        .map(|id| {
            id.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
        .collect()
}

pub fn email(w: EmailWire) -> Option<Email> {
    let (summary, mut w) = summary_parts(w)?;
    let body = raw_body(&mut w);
    Some(Email {
        summary,
        sender: addresses(w.sender),
        cc: addresses(w.cc),
        bcc: addresses(w.bcc),
        reply_to: addresses(w.reply_to),
        message_id: bare_ids(w.message_id).into_iter().next(),
        in_reply_to: bare_ids(w.in_reply_to),
        references: bare_ids(w.references),
        attachments: w
            .attachments
            .unwrap_or_default()
            .into_iter()
            .filter_map(attachment)
            .collect(),
        body,
    })
}

fn limit(caps: Option<&Value>, key: &str) -> Option<u64> {
    caps.and_then(|c| c.get(key)).and_then(Value::as_u64)
}

pub fn account_info(session: &Session, identities: Vec<AddressWire>) -> AccountInfo {
    let account = session.wire.accounts.get(&session.account_id);
    let mail_caps = account.and_then(|a| a.account_capabilities.get(MAIL));
    let core_caps = session.wire.capabilities.get(CORE);
    let mut capabilities: Vec<String> = session.wire.capabilities.keys().cloned().collect();
    capabilities.sort();
    AccountInfo {
        username: session.wire.username.clone(),
        account_id: session.account_id.clone(),
        account_name: account.map(|a| a.name.clone()).unwrap_or_default(),
        is_personal: account.is_some_and(|a| a.is_personal),
        is_read_only: account.is_some_and(|a| a.is_read_only),
        capabilities,
        limits: ServerLimits {
            max_mailboxes_per_email: limit(mail_caps, "maxMailboxesPerEmail"),
            max_size_attachments_per_email: limit(mail_caps, "maxSizeAttachmentsPerEmail"),
            max_objects_in_get: limit(core_caps, "maxObjectsInGet"),
        },
        identities: addresses(Some(identities)),
    }
}

pub fn identity(w: IdentityWire) -> Identity {
    Identity {
        id: w.id,
        email: w.email,
        name: w.name.filter(|n| !n.is_empty()),
    }
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
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc)),
        delivery,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_receiving_servers_dmarc_verdict_for_the_from_domain() {
        let ar = |s: &str| dmarc_verdict(Some(s), Some("Ana@Corp.Example"));
        assert_eq!(
            ar(
                "mx.fastmail.com; dkim=pass header.d=corp.example; dmarc=pass (p=reject,d=none) header.from=corp.example"
            ),
            Some(true)
        );
        assert_eq!(
            ar("mx.fastmail.com; spf=pass; dmarc=fail (p=none) header.from=corp.example"),
            Some(false)
        );
        assert_eq!(
            ar("mx; dmarc = FAIL header.from = corp.example"),
            Some(false)
        );
        // A verdict on another domain says nothing; a domain without a policy is no failure.
        assert_eq!(
            ar("mx.fastmail.com; dmarc=fail header.from=evil.example"),
            None
        );
        assert_eq!(
            ar("mx.fastmail.com; dmarc=none header.from=corp.example"),
            None
        );
        assert_eq!(
            ar("mx.fastmail.com; spf=pass smtp.mailfrom=corp.example"),
            None
        );
        assert_eq!(dmarc_verdict(None, Some("a@b.example")), None);
        // Only the topmost header (the receiving server's) counts: a forged one below is ignored.
        let w: EmailWire = serde_json::from_value(json!({
            "id": "M1", "threadId": "T1",
            "from": [{"email": "ana@corp.example"}],
            "header:Authentication-Results:asText:all": [
                "mx.fastmail.com; dmarc=fail header.from=corp.example",
                "forged.example; dmarc=pass header.from=corp.example"
            ]
        }))
        .unwrap();
        assert_eq!(summary(w).unwrap().sender_verified, Some(false));
    }

    #[test]
    fn lenient_about_missing_and_unknown_fields() {
        let w: EmailWire = serde_json::from_value(json!({
            "id": "M1", "threadId": "T1", "weird": [1, 2],
            "keywords": {"$seen": true, "$flagged": false},
            "from": [{"name": "", "email": "bob@example.com"}, {"name": "No address"}]
        }))
        .unwrap();
        let s = summary(w).unwrap();
        assert_eq!(
            s.from,
            [Address {
                name: None,
                email: "bob@example.com".into()
            }]
        );
        assert!(!s.keywords.is_unread() && !s.keywords.is_flagged());
        assert_eq!(s.subject, "");
    }

    #[test]
    fn an_email_without_a_valid_id_is_dropped() {
        let w: EmailWire =
            serde_json::from_value(json!({"id": "bad id", "threadId": "T"})).unwrap();
        assert!(summary(w).is_none());
    }

    #[test]
    fn html_only_mail_gives_the_html_part() {
        let w: EmailWire = serde_json::from_value(json!({
            "id": "M1", "threadId": "T1",
            "textBody": [{"partId": "1", "type": "text/html"}],
            "htmlBody": [{"partId": "1", "type": "text/html"}],
            "bodyValues": {"1": {"value": "<p>Hi</p>"}}
        }))
        .unwrap();
        assert_eq!(email(w).unwrap().body, RawBody::Html("<p>Hi</p>".into()));
    }
}
