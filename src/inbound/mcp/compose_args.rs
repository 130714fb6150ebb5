//! Tool arguments of the compose tools to domain requests: recipients as the model writes them
//! ("Bob <bob@example.com>", a bare address, or an object), modes, schedules.

use super::{
    contract::types as input,
    failure::{ToolFailure, parsed},
};
use crate::domain::{
    mail::Address,
    mail::ids::{BlobId, EmailId},
    search::query::parse_instant,
    sending::approval::Schedule,
    sending::compose::{ComposeMode, DraftRequest},
    service::ServiceError,
};

/// "Name <addr>", "\"Name\" <addr>" or "addr".
fn recipient(r: input::Recipient) -> Address {
    match r {
        input::Recipient::String(s) => {
            let s = s.to_string();
            let s = s.trim();
            match (s.rfind('<'), s.ends_with('>')) {
                (Some(open), true) => {
                    let name = s[..open].trim().trim_matches('"').trim();
                    Address {
                        name: (!name.is_empty()).then(|| name.to_owned()),
                        email: s[open + 1..s.len() - 1].trim().to_owned(),
                    }
                }
                _ => Address {
                    name: None,
                    email: s.to_owned(),
                },
            }
        }
        input::Recipient::Object { email, name } => Address {
            name: name.map(|n| n.to_string()).filter(|n| !n.trim().is_empty()),
            email: email.to_string().trim().to_owned(),
        },
    }
}

fn recipients(list: Option<input::Recipients>) -> Vec<Address> {
    list.map(|l| l.0.into_iter().map(recipient).collect())
        .unwrap_or_default()
}

/// `draft_email`'s arguments.
pub fn draft_request(a: input::DraftEmailInput) -> Result<DraftRequest, ToolFailure> {
    let id = |what: &str, raw: Option<input::EmailId>| {
        raw.map(|v| parsed(what, EmailId::parse(v.to_string())))
            .transpose()
    };
    let mut attach = Vec::new();
    for item in a.attach {
        attach.push((
            parsed("attach", EmailId::parse(item.email_id.to_string()))?,
            parsed("attach", BlobId::parse(item.blob_id.to_string()))?,
        ));
    }
    Ok(DraftRequest {
        mode: match a.mode {
            input::DraftEmailInputMode::New => ComposeMode::New,
            input::DraftEmailInputMode::Reply => ComposeMode::Reply,
            input::DraftEmailInputMode::ReplyAll => ComposeMode::ReplyAll,
            input::DraftEmailInputMode::Forward => ComposeMode::Forward,
        },
        source: id("source_email_id", a.source_email_id)?,
        to: recipients(a.to),
        cc: recipients(a.cc),
        bcc: recipients(a.bcc),
        subject: a.subject.map(|s| s.to_string()),
        body_text: a.body_text.to_string(),
        quote_original: a.quote_original,
        forward_attachments: a.forward_attachments,
        attach,
        identity: a.identity_id.map(|i| i.to_string()),
        replaces: id("replaces_draft_id", a.replaces_draft_id)?,
    })
}

/// `send_draft`'s schedule: a time in the future, or an undo window, or neither.
pub fn schedule(
    send_at: Option<String>,
    undo_window_s: Option<i64>,
) -> Result<Option<Schedule>, ToolFailure> {
    match (send_at, undo_window_s) {
        (Some(_), Some(_)) => Err(ToolFailure::Arguments(
            "give send_at or undo_window_s, not both".into(),
        )),
        (Some(raw), None) => {
            let at = parse_instant("send_at", &raw).map_err(ServiceError::InvalidArgument)?;
            if at <= chrono::Utc::now() {
                return Err(ToolFailure::Arguments(
                    "send_at: must be in the future (leave it out to send now)".into(),
                ));
            }
            Ok(Some(Schedule::At(at)))
        }
        (None, Some(secs)) => Ok(Some(Schedule::Now {
            undo_secs: u32::try_from(secs.clamp(0, 600)).unwrap_or(0),
        })),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> input::Recipient {
        serde_json::from_value(serde_json::json!(v)).unwrap()
    }

    #[test]
    fn recipients_as_models_write_them() {
        assert_eq!(
            recipient(s("Bob Smith <bob@example.com>")),
            Address {
                name: Some("Bob Smith".into()),
                email: "bob@example.com".into()
            }
        );
        assert_eq!(
            recipient(s("\"Smith, Bob\" <bob@example.com>"))
                .name
                .as_deref(),
            Some("Smith, Bob")
        );
        assert_eq!(
            recipient(s(" bob@example.com ")),
            Address {
                name: None,
                email: "bob@example.com".into()
            }
        );
        let o: input::Recipient =
            serde_json::from_value(serde_json::json!({"email": "a@b.c", "name": " "})).unwrap();
        assert_eq!(recipient(o).name, None);
    }

    #[test]
    fn schedules() {
        assert!(schedule(Some("2020-01-01T00:00:00Z".into()), None).is_err());
        assert!(schedule(Some("2999-01-01T00:00:00Z".into()), Some(5)).is_err());
        assert_eq!(
            schedule(None, Some(30)).unwrap(),
            Some(Schedule::Now { undo_secs: 30 })
        );
        assert!(matches!(
            schedule(Some("2999-01-01T00:00:00Z".into()), None).unwrap(),
            Some(Schedule::At(_))
        ));
        assert_eq!(schedule(None, None).unwrap(), None);
    }
}
