//! Drafts from what the model wrote: recipients, subject, threading headers, quoting and
//! forwarded attachments are computed here, so every mail store builds the same message.
//! The words come from the client's model; nothing here writes text of its own beyond the
//! conventional attribution and forward header lines.

use chrono::{DateTime, Utc};

use crate::domain::{
    mail::ids::{BlobId, EmailId},
    mail::{Address, Attachment, Email},
    search::query::InvalidArgument,
};

/// Most recipients (To, Cc and Bcc together) one draft may have.
pub const MAX_RECIPIENTS: usize = 50;
/// Longest body the model may write, in characters.
pub const MAX_BODY_CHARS: usize = 200_000;
/// Longest subject, in characters.
pub const MAX_SUBJECT_CHARS: usize = 500;
/// Most attachments re-used from other emails.
pub const MAX_ATTACHMENTS: usize = 20;

/// What kind of draft.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComposeMode {
    /// A new message.
    New,
    /// A reply to the sender (or `Reply-To`).
    Reply,
    /// A reply to the sender and every other recipient, except the person's own addresses.
    ReplyAll,
    /// A forward, with the original's attachments by default.
    Forward,
}

/// A sender identity of the account (JMAP `Identity`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The server's id (for submission).
    pub id: String,
    /// The address, or `*@domain` for a wildcard identity.
    pub email: String,
    /// The display name, if set.
    pub name: Option<String>,
}

impl Identity {
    /// Whether `email` may be sent from this identity (exactly, or under its wildcard domain).
    #[must_use]
    pub fn covers(&self, email: &str) -> bool {
        match self.email.strip_prefix("*@") {
            Some(domain) => email
                .rsplit_once('@')
                .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain)),
            None => self.email.eq_ignore_ascii_case(email),
        }
    }
}

/// What the client asked for (`draft_email`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftRequest {
    /// New, reply, reply-all or forward.
    pub mode: ComposeMode,
    /// The email replied to or forwarded.
    pub source: Option<EmailId>,
    /// Recipients (added to the computed ones for replies).
    pub to: Vec<Address>,
    /// Cc recipients.
    pub cc: Vec<Address>,
    /// Bcc recipients (in the envelope only once sent).
    pub bcc: Vec<Address>,
    /// The subject; for replies and forwards, the original's with `Re:`/`Fwd:` when absent.
    pub subject: Option<String>,
    /// The text the model wrote.
    pub body_text: String,
    /// Quote the original below the text (replies) or include it (forwards).
    pub quote_original: bool,
    /// Forwards: attach the original's attachments.
    pub forward_attachments: bool,
    /// Attachments of other emails of the person's, re-used by blob id.
    pub attach: Vec<(EmailId, BlobId)>,
    /// The identity to send from; by default the one the original was sent to, else the first.
    pub identity: Option<String>,
    /// A draft this one replaces (destroyed in the same request).
    pub replaces: Option<EmailId>,
}

/// The original email of a reply or forward, with its text as the person would read it.
#[derive(Debug, Clone)]
pub struct Original<'a> {
    /// The email.
    pub email: &'a Email,
    /// Its body as plain text.
    pub text: &'a str,
}

/// The draft to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDraft {
    /// The identity it will be sent from.
    pub identity: Identity,
    /// The `From` address (the identity's; a wildcard identity sends as the address the
    /// original was sent to).
    pub from: Address,
    /// To.
    pub to: Vec<Address>,
    /// Cc.
    pub cc: Vec<Address>,
    /// Bcc.
    pub bcc: Vec<Address>,
    /// Subject.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// `In-Reply-To` message ids.
    pub in_reply_to: Vec<String>,
    /// `References` message ids.
    pub references: Vec<String>,
    /// Attachments, by blob id (never re-uploaded).
    pub attachments: Vec<Attachment>,
    /// A draft this one replaces.
    pub replaces: Option<EmailId>,
}

/// A draft the mail store created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedDraft {
    /// Its id (content-derived on some servers: an edit is a new id).
    pub id: EmailId,
    /// Its thread (a reply lands in the original's).
    pub thread_id: crate::domain::mail::ids::ThreadId,
}

fn invalid(argument: &'static str, reason: impl Into<String>) -> InvalidArgument {
    InvalidArgument::new(argument, reason)
}

/// Plans the draft for `request`: `original` is the email replied to or forwarded (fetched by
/// the caller from `request.source`), `extra` the attachments named in `request.attach`, each
/// already proven to belong to its email.
///
/// # Errors
/// An [`InvalidArgument`] naming the argument: a reply without its source, an address that
/// isn't one, no identity, too many recipients, an over-long body.
pub fn plan(
    request: &DraftRequest,
    original: Option<&Original<'_>>,
    identities: &[Identity],
    extra: Vec<Attachment>,
) -> Result<NewDraft, InvalidArgument> {
    for (argument, list) in [
        ("to", &request.to),
        ("cc", &request.cc),
        ("bcc", &request.bcc),
    ] {
        for a in list {
            check_address(argument, a)?;
        }
    }
    if request.body_text.chars().count() > MAX_BODY_CHARS {
        return Err(invalid(
            "body_text",
            format!("at most {MAX_BODY_CHARS} characters"),
        ));
    }
    if let Some(s) = &request.subject {
        if s.chars().count() > MAX_SUBJECT_CHARS {
            return Err(invalid(
                "subject",
                format!("at most {MAX_SUBJECT_CHARS} characters"),
            ));
        }
        if s.chars().any(char::is_control) {
            return Err(invalid("subject", "one line, without control characters"));
        }
    }
    let original = match (request.mode, original) {
        (ComposeMode::New, _) => None,
        (_, Some(o)) => Some(o),
        (_, None) => {
            return Err(invalid(
                "source_email_id",
                "replies and forwards need the email they answer or forward",
            ));
        }
    };
    let (identity, from) = choose_identity(request.identity.as_deref(), original, identities)?;

    let (mut to, mut cc) = match (request.mode, original) {
        (ComposeMode::Reply, Some(o)) => (reply_to_of(o.email), Vec::new()),
        (ComposeMode::ReplyAll, Some(o)) => {
            let mut to = reply_to_of(o.email);
            to.extend(o.email.summary.to.iter().cloned());
            (to, o.email.cc.clone())
        }
        _ => (Vec::new(), Vec::new()),
    };
    to.extend(request.to.iter().cloned());
    cc.extend(request.cc.iter().cloned());
    let own = |a: &Address| identities.iter().any(|i| i.covers(&a.email));
    let mut seen = Vec::<String>::new();
    let mut keep = |a: &Address, is_reply: bool| {
        let key = a.email.to_lowercase();
        // The person's own addresses are dropped from computed reply recipients, never from
        // ones the model named explicitly.
        if seen.contains(&key) || (is_reply && own(a)) {
            return false;
        }
        seen.push(key);
        true
    };
    let computed_to = to.len() - request.to.len();
    let computed_cc = cc.len() - request.cc.len();
    let to: Vec<Address> = to
        .into_iter()
        .enumerate()
        .filter(|(i, a)| keep(a, *i < computed_to))
        .map(|(_, a)| a)
        .collect();
    let cc: Vec<Address> = cc
        .into_iter()
        .enumerate()
        .filter(|(i, a)| keep(a, *i < computed_cc))
        .map(|(_, a)| a)
        .collect();
    let bcc: Vec<Address> = request
        .bcc
        .iter()
        .filter(|a| keep(a, false))
        .cloned()
        .collect();
    if to.len() + cc.len() + bcc.len() > MAX_RECIPIENTS {
        return Err(invalid(
            "to",
            format!("at most {MAX_RECIPIENTS} recipients in all"),
        ));
    }

    let subject = match (&request.subject, request.mode, original) {
        (Some(s), _, _) => s.trim().to_owned(),
        (None, ComposeMode::Reply | ComposeMode::ReplyAll, Some(o)) => {
            prefixed("Re:", &o.email.summary.subject)
        }
        (None, ComposeMode::Forward, Some(o)) => prefixed("Fwd:", &o.email.summary.subject),
        (None, _, _) => String::new(),
    };

    let mut text = request.body_text.trim_end().to_owned();
    let mut in_reply_to = Vec::new();
    let mut references = Vec::new();
    let mut attachments = Vec::new();
    if let Some(o) = original {
        match request.mode {
            ComposeMode::Reply | ComposeMode::ReplyAll => {
                if let Some(id) = &o.email.message_id {
                    in_reply_to.push(id.clone());
                    references = if o.email.references.is_empty() {
                        o.email.in_reply_to.clone()
                    } else {
                        o.email.references.clone()
                    };
                    references.push(id.clone());
                }
                if request.quote_original {
                    text.push_str("\n\n");
                    text.push_str(&quoted(o));
                }
            }
            ComposeMode::Forward => {
                if request.quote_original {
                    text.push_str("\n\n");
                    text.push_str(&forwarded(o));
                }
                if request.forward_attachments {
                    attachments.extend(o.email.attachments.iter().cloned());
                }
            }
            ComposeMode::New => {}
        }
    }
    for a in extra {
        if !attachments.iter().any(|b| b.blob_id == a.blob_id) {
            attachments.push(a);
        }
    }
    if attachments.len() > MAX_ATTACHMENTS {
        return Err(invalid(
            "attach",
            format!("at most {MAX_ATTACHMENTS} attachments"),
        ));
    }
    Ok(NewDraft {
        identity,
        from,
        to,
        cc,
        bcc,
        subject,
        text,
        in_reply_to,
        references,
        attachments,
        replaces: request.replaces.clone(),
    })
}

/// Who a reply goes to: `Reply-To` when the original has one, else its senders.
fn reply_to_of(email: &Email) -> Vec<Address> {
    if email.reply_to.is_empty() {
        email.summary.from.clone()
    } else {
        email.reply_to.clone()
    }
}

/// The identity to send from and the `From` address: the one asked for; else, for replies and
/// forwards, the identity the original was addressed to; else the first.
fn choose_identity(
    asked: Option<&str>,
    original: Option<&Original<'_>>,
    identities: &[Identity],
) -> Result<(Identity, Address), InvalidArgument> {
    let as_from = |identity: &Identity, email: &str| {
        (
            identity.clone(),
            Address {
                name: identity.name.clone().filter(|n| !n.is_empty()),
                email: email.to_owned(),
            },
        )
    };
    if let Some(asked) = asked {
        return identities
            .iter()
            .find(|i| i.id == asked)
            .filter(|i| !i.email.starts_with("*@"))
            .map(|i| as_from(i, &i.email))
            .ok_or_else(|| {
                invalid(
                    "identity_id",
                    format!(
                        "no sending identity {asked:?}; get_identity lists them: {}",
                        identities
                            .iter()
                            .map(|i| format!("{} ({})", i.id, i.email))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            });
    }
    if let Some(o) = original {
        let addressed = o.email.summary.to.iter().chain(&o.email.cc);
        for a in addressed {
            if let Some(i) = identities.iter().find(|i| i.covers(&a.email)) {
                return Ok(as_from(i, &a.email));
            }
        }
    }
    identities
        .iter()
        .find(|i| !i.email.starts_with("*@"))
        .map(|i| as_from(i, &i.email))
        .ok_or_else(|| {
            invalid(
                "identity_id",
                "the account has no sending identity, so it cannot send mail",
            )
        })
}

/// `Re:`/`Fwd:` once: a subject that already starts with the prefix (any case, or `Fw:`) keeps
/// its own.
#[must_use]
pub fn prefixed(prefix: &str, subject: &str) -> String {
    let subject = subject.trim();
    let lower = subject.to_lowercase();
    let has = match prefix {
        "Re:" => lower.starts_with("re:"),
        _ => lower.starts_with("fwd:") || lower.starts_with("fw:"),
    };
    if has {
        subject.to_owned()
    } else if subject.is_empty() {
        prefix.to_owned()
    } else {
        format!("{prefix} {subject}")
    }
}

fn show(a: &Address) -> String {
    match &a.name {
        Some(n) => format!("{n} <{}>", a.email),
        None => a.email.clone(),
    }
}

fn show_all(list: &[Address]) -> String {
    list.iter().map(show).collect::<Vec<_>>().join(", ")
}

fn when(email: &Email) -> DateTime<Utc> {
    email
        .summary
        .sent_at
        .as_deref()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map_or(email.summary.received_at, |t| t.with_timezone(&Utc))
}

/// "On {date}, {sender} wrote:" and the original's text, each line prefixed `> `.
fn quoted(o: &Original<'_>) -> String {
    let sender = o
        .email
        .summary
        .from
        .first()
        .map_or_else(|| "the sender".to_owned(), show);
    let mut out = format!(
        "On {}, {sender} wrote:\n",
        when(o.email).format("%a, %-d %b %Y at %H:%M UTC")
    );
    for line in o.text.trim_end().lines() {
        if line.is_empty() {
            out.push_str(">\n");
        } else {
            out.push_str("> ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The conventional forwarded-message block: its headers, then its text.
fn forwarded(o: &Original<'_>) -> String {
    let e = o.email;
    let mut out = String::from("---------- Forwarded message ----------\n");
    out.push_str(&format!("From: {}\n", show_all(&e.summary.from)));
    out.push_str(&format!(
        "Date: {}\n",
        when(e).format("%a, %-d %b %Y at %H:%M UTC")
    ));
    out.push_str(&format!("Subject: {}\n", e.summary.subject));
    out.push_str(&format!("To: {}\n", show_all(&e.summary.to)));
    if !e.cc.is_empty() {
        out.push_str(&format!("Cc: {}\n", show_all(&e.cc)));
    }
    out.push('\n');
    out.push_str(o.text.trim_end());
    out.push('\n');
    out
}

/// An address a person could send to: one `@`, a dot-free-or-not domain, no spaces, angle
/// brackets, quotes or control characters (header injection), and a one-line name.
fn check_address(argument: &'static str, a: &Address) -> Result<(), InvalidArgument> {
    let e = &a.email;
    let ok = e.len() <= 254
        && e.split('@').count() == 2
        && e.split('@').all(|p| !p.is_empty())
        && !e
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>()[]\\,;:\"".contains(c));
    if !ok {
        return Err(invalid(argument, format!("{e:?} is not an email address")));
    }
    if a.name
        .as_deref()
        .is_some_and(|n| n.chars().any(char::is_control))
    {
        return Err(invalid(argument, "a name must be one line"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
