//! Drafts and sends to the wire, and the review page's copy of a draft.

use std::fmt::Write as _;

use serde_json::json;

use super::{address, addresses, out, show_addresses, untrusted_block};
use crate::domain::{
    mail::body,
    mail::ids::EmailId,
    mail::{Address, Attachment},
    sending::approval::{ApprovalRecord, DraftSnapshot, Schedule},
    sending::submission::{SubmissionStatus, UndoStatus},
    service::{ApprovalAsk, DraftView, SearchResult},
};

/// Characters of a draft's body shown in a preview or a confirmation dialog.
pub const PREVIEW_CHARS: usize = 2_000;

fn rfc3339(at: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(at, 0).unwrap_or_default()
}

fn attachment_items(list: &[Attachment]) -> Vec<out::DraftSummaryAttachmentsItem> {
    list.iter()
        .map(|a| out::DraftSummaryAttachmentsItem {
            name: a.name.clone(),
            type_: a.mime_type.clone(),
            size: a.size,
        })
        .collect()
}

fn summary(
    from: &Address,
    to: &[Address],
    cc: &[Address],
    bcc: &[Address],
    subject: &str,
    attachments: &[Attachment],
) -> out::DraftSummary {
    out::DraftSummary {
        from: address(from),
        to: addresses(to),
        cc: addresses(cc),
        bcc: addresses(bcc),
        subject: subject.to_owned(),
        attachments: attachment_items(attachments),
    }
}

fn snapshot_summary(d: &DraftSnapshot) -> out::DraftSummary {
    let from = d.from.first().cloned().unwrap_or(Address {
        name: None,
        email: String::new(),
    });
    summary(&from, &d.to, &d.cc, &d.bcc, &d.subject, &d.attachments)
}

fn summary_text(s: &out::DraftSummary, text: &mut String) {
    let _ = writeln!(
        text,
        "From: {}\nTo: {}\nCc: {}\nBcc: {}\nSubject: {:?}",
        show_addresses(std::slice::from_ref(&s.from)),
        show_addresses(&s.to),
        show_addresses(&s.cc),
        show_addresses(&s.bcc),
        s.subject
    );
    if !s.attachments.is_empty() {
        let names: Vec<String> = s
            .attachments
            .iter()
            .map(|a| {
                format!(
                    "{} ({}, {} bytes)",
                    a.name.as_deref().unwrap_or("unnamed"),
                    a.type_,
                    a.size
                )
            })
            .collect();
        let _ = writeln!(text, "Attachments: {}", names.join(", "));
    }
}

fn preview(text: &str) -> String {
    let mut out: String = text.chars().take(PREVIEW_CHARS).collect();
    if text.chars().count() > PREVIEW_CHARS {
        out.push('…');
    }
    out
}

/// `draft_email`.
pub fn draft(view: &DraftView) -> (out::DraftEmailOutput, String) {
    let d = &view.draft;
    let s = summary(&d.from, &d.to, &d.cc, &d.bcc, &d.subject, &d.attachments);
    let body_preview = preview(&d.text);
    let mut text = format!(
        "Draft saved in Drafts (nothing was sent): {} in thread {}\n",
        view.created.id, view.created.thread_id
    );
    summary_text(&s, &mut text);
    if let Some(old) = &d.replaces {
        let _ = writeln!(text, "It replaces draft {old}, which was deleted.");
    }
    // The body may quote mail from others: marked as such.
    let _ = write!(
        text,
        "{}",
        untrusted_block(
            "draft body (may quote others' mail)",
            &body_preview,
            &super::nonce()
        )
    );
    let output = out::DraftEmailOutput {
        draft_id: view.created.id.to_string(),
        thread_id: view.created.thread_id.to_string(),
        identity_id: d.identity.id.clone(),
        draft: s,
        body_preview,
        in_reply_to: d.in_reply_to.clone(),
        replaced_draft_id: d.replaces.as_ref().map(ToString::to_string),
    };
    (output, text)
}

/// `list_drafts`, from the Drafts mailbox's search result.
pub fn drafts(result: &SearchResult) -> (out::ListDraftsOutput, String) {
    let (found, text) = super::search(result);
    (
        out::ListDraftsOutput {
            drafts: found.emails,
            next_cursor: found.next_cursor,
        },
        text.replacen("emails", "drafts", 1),
    )
}

/// `delete_draft`.
pub fn deleted(id: &EmailId) -> (out::DeleteDraftOutput, String) {
    (
        out::DeleteDraftOutput {
            deleted_draft_id: id.to_string(),
        },
        format!("Draft {id} deleted."),
    )
}

/// `send_draft` once submitted.
pub fn sent(draft: &EmailId, status: &SubmissionStatus) -> (out::SendDraftOutput, String) {
    let held = status.undo_status == UndoStatus::Pending;
    let message = if held {
        format!(
            "Approved and scheduled: it leaves at {}. Until then cancel_send with submission_id {} stops it.",
            status
                .send_at
                .map_or_else(|| "the set time".into(), |t| t.to_rfc3339()),
            status.id
        )
    } else {
        "Approved and sent. It is in the Sent folder.".to_owned()
    };
    let output = out::SendDraftOutput {
        status: if held {
            out::SendDraftOutputStatus::Scheduled
        } else {
            out::SendDraftOutputStatus::Sent
        },
        draft_id: draft.to_string(),
        message: message.clone(),
        submission_id: Some(status.id.clone()),
        send_at: status.send_at,
        approval_url: None,
        approval_expires_at: None,
        draft: None,
    };
    (output, message)
}

/// `send_draft` before approval: the link (when the review page can be used) and a summary.
pub fn needs_approval(
    draft: &EmailId,
    ask: &ApprovalAsk,
    url: Option<&str>,
) -> (out::SendDraftOutput, String) {
    let s = snapshot_summary(&ask.draft);
    let message = match url {
        Some(url) => format!(
            "Not sent yet: the person must approve this exact draft. Show them this link: {url} — after they approve it there, call send_draft again with the same arguments. The approval expires at {}.",
            rfc3339(ask.expires_at).to_rfc3339()
        ),
        None => "Not sent: this connection has no review page (no Fastmail sign-in), and the client offered no confirmation dialog, so the person can't approve it here. They can send it from Drafts themselves.".to_owned(),
    };
    let mut text = format!("{message}\n");
    summary_text(&s, &mut text);
    let output = out::SendDraftOutput {
        status: out::SendDraftOutputStatus::NeedsApproval,
        draft_id: draft.to_string(),
        message,
        submission_id: None,
        send_at: None,
        approval_url: url.map(str::to_owned),
        approval_expires_at: url.map(|_| rfc3339(ask.expires_at)),
        draft: Some(s),
    };
    (output, text)
}

/// `cancel_send`.
pub fn canceled(draft: &EmailId) -> (out::CancelSendOutput, String) {
    (
        out::CancelSendOutput {
            status: out::CancelSendOutputStatus::Canceled,
            draft_id: draft.to_string(),
        },
        format!("Cancelled: nothing was sent. The message is back in Drafts as draft {draft}."),
    )
}

/// `get_send_status`.
pub fn status(
    submission: Option<&SubmissionStatus>,
    approval: Option<&ApprovalRecord>,
) -> (out::GetSendStatusOutput, String) {
    let mut text = String::new();
    let submission = submission.map(|s| {
        let _ = writeln!(
            text,
            "Submission {}: {}{}",
            s.id,
            s.undo_status.as_str(),
            s.send_at
                .map(|t| format!(", leaves at {}", t.to_rfc3339()))
                .unwrap_or_default()
        );
        for (rcpt, delivered) in &s.delivery {
            let _ = writeln!(text, "  {rcpt}: delivered {delivered}");
        }
        out::GetSendStatusOutputSubmission {
            id: s.id.clone(),
            email_id: s.email.as_ref().map(ToString::to_string),
            undo_status: match s.undo_status {
                UndoStatus::Pending => out::GetSendStatusOutputSubmissionUndoStatus::Pending,
                UndoStatus::Final => out::GetSendStatusOutputSubmissionUndoStatus::Final,
                UndoStatus::Canceled => out::GetSendStatusOutputSubmissionUndoStatus::Canceled,
            },
            send_at: s.send_at,
            delivery: s
                .delivery
                .iter()
                .map(|(r, d)| out::GetSendStatusOutputSubmissionDeliveryItem {
                    recipient: r.clone(),
                    delivered: d.clone(),
                })
                .collect(),
        }
    });
    let approval = approval.map(|a| {
        let status = match a.status {
            crate::domain::sending::approval::Status::Pending => {
                out::GetSendStatusOutputApprovalStatus::Pending
            }
            crate::domain::sending::approval::Status::Approved => {
                out::GetSendStatusOutputApprovalStatus::Approved
            }
            crate::domain::sending::approval::Status::Declined => {
                out::GetSendStatusOutputApprovalStatus::Declined
            }
            crate::domain::sending::approval::Status::Claimed => {
                out::GetSendStatusOutputApprovalStatus::Claimed
            }
            crate::domain::sending::approval::Status::Sent => {
                out::GetSendStatusOutputApprovalStatus::Sent
            }
        };
        let _ = writeln!(
            text,
            "Approval for draft {}: {} (expires {})",
            a.draft,
            a.status.as_str(),
            rfc3339(a.expires_at).to_rfc3339()
        );
        out::GetSendStatusOutputApproval {
            status,
            expires_at: rfc3339(a.expires_at),
            submission_id: a.submission.clone(),
        }
    });
    if text.is_empty() {
        text.push_str("Nothing is known about that send.");
    }
    (
        out::GetSendStatusOutput {
            submission,
            approval,
        },
        text,
    )
}

fn when(schedule: &Schedule) -> String {
    match schedule {
        Schedule::Now { undo_secs: 0 } => "now".into(),
        Schedule::Now { undo_secs } => format!("now, after a {undo_secs}-second undo window"),
        Schedule::At(at) => at.format("%Y-%m-%d %H:%M UTC").to_string(),
    }
}

/// The review page's copy of a draft (sealed before it is stored; opened in the browser).
pub fn review_copy(d: &DraftSnapshot, schedule: &Schedule) -> Vec<u8> {
    let list = |l: &[Address]| {
        l.iter()
            .map(|a| json!({"name": a.name, "email": a.email}))
            .collect::<Vec<_>>()
    };
    let copy = json!({
        "from": list(&d.from),
        "to": list(&d.to),
        "cc": list(&d.cc),
        "bcc": list(&d.bcc),
        "reply_to": list(&d.reply_to),
        "subject": d.subject,
        "text": d.text,
        "html_as_text": d.html.as_deref().map(body::html_to_text),
        "attachments": d.attachments.iter().map(|a| json!({"name": a.name, "type": a.mime_type, "size": a.size})).collect::<Vec<_>>(),
        "send": when(schedule),
    });
    serde_json::to_vec(&copy).unwrap_or_default()
}

/// Whether a dialog can show all of the draft: a text body up to [`PREVIEW_CHARS`] and no
/// HTML version (which a dialog can't show).
#[must_use]
pub fn fits_a_dialog(d: &DraftSnapshot) -> bool {
    d.text.chars().count() <= PREVIEW_CHARS && d.html.is_none()
}

/// The confirmation dialog's words: everything that leaves, the body up to
/// [`PREVIEW_CHARS`] (the review link has the rest and the HTML version).
pub fn confirmation(d: &DraftSnapshot, schedule: &Schedule, url: Option<&str>) -> String {
    let mut text = String::from("Send this email?\n\n");
    summary_text(&snapshot_summary(d), &mut text);
    if !d.reply_to.is_empty() {
        let _ = writeln!(
            text,
            "Reply-To: {}",
            show_addresses(&addresses(&d.reply_to))
        );
    }
    let _ = writeln!(text, "Sends: {}\n", when(schedule));
    text.push_str(&preview(&d.text));
    if !fits_a_dialog(d)
        && let Some(url) = url
    {
        let _ = write!(
            text,
            "\n\nThis shows only part of it{}. All of it: {url}",
            if d.html.is_some() {
                " (it also has an HTML version)"
            } else {
                ""
            }
        );
    }
    text
}
