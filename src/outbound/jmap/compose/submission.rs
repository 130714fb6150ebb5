//! Sending: a submission of a draft (through a Bcc-less copy when the Bcc must stay in the
//! envelope only), sent exactly once, its status, and cancelling one still held — which puts
//! the draft back, Bcc and all.

use std::time::Duration;

use serde_json::{Value, json};

use super::DraftEmail;
use crate::{
    domain::{
        mail::Address,
        mail::ids::EmailId,
        ports::MailStoreError,
        sending::submission::{Refusal, Submission, SubmissionStatus, UndoStatus},
    },
    outbound::jmap::{
        connection::Conn,
        convert,
        request::{Call, Patch},
        retry,
        session::{self, CORE, MAIL, SUBMISSION},
        set::{CreatedWire, SetResponse},
        wire::{SubmissionWire, decode, take_as, take_list},
    },
};

/// Refuses a submission without recipients before anything is asked of the server.
///
/// # Errors
/// [`Refusal::NoRecipients`] when the envelope names nobody.
pub fn check_envelope(submission: &Submission) -> Result<(), MailStoreError> {
    if submission.rcpt_to.is_empty() {
        // Servers answer an empty envelope with invalidProperties: it is this.
        return Err(MailStoreError::Refused(Refusal::NoRecipients));
    }
    Ok(())
}

/// Sends `submission`, exactly once; a throttled attempt (which sent nothing) is retried.
///
/// # Errors
/// [`MailStoreError::Refused`] for what the server won't send; `Unavailable` when whether it
/// was sent is unknown; see [`MailStoreError`].
pub async fn submit(
    conn: &Conn<'_>,
    submission: &Submission,
) -> Result<SubmissionStatus, MailStoreError> {
    if let (Some(hold), Some(max)) = (submission.hold_secs, max_delayed_send(conn))
        && hold > max
    {
        return Err(MailStoreError::Refused(Refusal::DelayTooLong(Some(max))));
    }
    let (drafts, sent) = conn.drafts_and_sent().await?;
    let account = conn.account();
    let mut waited = Duration::ZERO;
    for attempt in 1..=retry::ATTEMPTS {
        let mut calls = Vec::new();
        let email = match &submission.without_bcc {
            Some(draft) => {
                calls.push(DraftEmail::copy(draft, &[]).create(account, &drafts, "copy", "copy"));
                "#copy".to_owned()
            }
            None => submission.email.as_str().to_owned(),
        };
        calls.push(submit_call(
            account,
            submission,
            &email,
            &drafts,
            sent.as_deref(),
        ));
        // Exactly once: a 5xx or a lost answer may come after the server sent, so it is an
        // unknown outcome, never a retry.
        let responses = conn
            .transport()
            .call_exactly_once(
                conn.cred,
                &conn.session,
                &[CORE, MAIL, SUBMISSION],
                calls.into_iter().map(Value::from).collect(),
            )
            .await
            .map_err(|e| match e {
                e @ (MailStoreError::Unauthorized
                | MailStoreError::NotFound(_)
                | MailStoreError::Rejected { .. }) => e,
                other => {
                    MailStoreError::Unavailable(format!("{other}; whether it was sent is unknown"))
                }
            })?;
        let by_id = |id: &str| responses.iter().find(|(_, _, call)| call == id);
        let copy = match by_id("copy") {
            Some((name, args, _)) if name == "Email/set" => {
                decode::<SetResponse<CreatedWire>>("Email/set", args)?
                    .created("copy")
                    .ok()
                    .map(|c| c.id)
            }
            _ => None,
        };
        // The submission's own answer decides, whatever the calls around it said (the
        // implicit Email/set of onSuccessUpdateEmail may fail after the message left).
        let outcome = match by_id("submit") {
            Some((name, args, _)) if name == "EmailSubmission/set" => {
                decode::<SetResponse<SubmissionWire>>("EmailSubmission/set", args)?.created("send")
            }
            Some((name, args, _)) if name == "error" => Err(session::method_error_of(args)),
            _ => Err(MailStoreError::Unavailable(
                "the mail server did not answer the submission; whether it was sent is unknown"
                    .into(),
            )),
        };
        match outcome {
            Ok(sent) => {
                let sent_email = match copy {
                    // The copy went; the draft with the Bcc header is no longer needed.
                    Some(copy) => {
                        destroy_quietly(conn, submission.email.as_str()).await;
                        EmailId::parse(copy).ok()
                    }
                    None => Some(submission.email.clone()),
                };
                return Ok(convert::submission(sent, sent_email.as_ref()));
            }
            Err(e) => {
                if let Some(copy) = &copy {
                    destroy_quietly(conn, copy).await;
                }
                // Only a rateLimit SetError says for sure that nothing was sent: retried.
                let pause = retry::delay(attempt, None);
                match e {
                    MailStoreError::RateLimited { .. }
                        if attempt < retry::ATTEMPTS && waited + pause <= retry::MAX_WAIT =>
                    {
                        tokio::time::sleep(pause).await;
                        waited += pause;
                    }
                    other => return Err(other),
                }
            }
        }
    }
    Err(MailStoreError::RateLimited { retry_after: None })
}

/// The submission `id` as the server has it now.
///
/// # Errors
/// [`MailStoreError::NotFound`] when the server no longer has it; see [`MailStoreError`].
pub async fn submission(conn: &Conn<'_>, id: &str) -> Result<SubmissionStatus, MailStoreError> {
    Ok(convert::submission(submission_wire(conn, id).await?, None))
}

/// Cancels the held submission `id`; its email goes back to Drafts as a draft (with its Bcc
/// again). Returns that draft.
///
/// # Errors
/// [`Refusal::CannotUnsend`] when it is no longer held; see [`MailStoreError`].
pub async fn cancel_submission(conn: &Conn<'_>, id: &str) -> Result<EmailId, MailStoreError> {
    let wire = submission_wire(conn, id).await?;
    // Who the envelope named: a Bcc-less copy's Bcc recipients are only there.
    let envelope: Vec<String> = wire
        .envelope
        .as_ref()
        .map(|e| e.rcpt_to.iter().map(|a| a.email.clone()).collect())
        .unwrap_or_default();
    let status = convert::submission(wire, None);
    let email = status
        .email
        .clone()
        .ok_or_else(|| MailStoreError::Protocol("the submission does not name its email".into()))?;
    if status.undo_status != UndoStatus::Pending {
        return Err(MailStoreError::Refused(Refusal::CannotUnsend));
    }
    let (drafts, sent) = conn.drafts_and_sent().await?;
    let mut back = Patch::default();
    if let Some(sent) = &sent {
        back = back.mailbox(sent, false);
    }
    let back = back.mailbox(&drafts, true).keyword("$draft", true);
    let call = Call::new("EmailSubmission/set", conn.account(), "cancel")
        .arg("update", json!({id: {"undoStatus": "canceled"}}))
        .arg("onSuccessUpdateEmail", json!({id: Value::from(back)}));
    let mut responses = conn.call(&[CORE, MAIL, SUBMISSION], [call]).await?;
    take_as::<SetResponse<Value>>(&mut responses, "EmailSubmission/set")?.updated(id)?;
    // Cancelled: that stands whatever happens next. Putting the Bcc back is best effort
    // (the copy without it is then what comes back, as before).
    match restore_bcc(conn, &drafts, &email, &envelope).await {
        Ok(restored) => Ok(restored),
        Err(e) => {
            tracing::warn!(error = %e, "the Bcc of a cancelled send was not restored");
            Ok(email)
        }
    }
}

/// A submission as the server has it.
async fn submission_wire(conn: &Conn<'_>, id: &str) -> Result<SubmissionWire, MailStoreError> {
    let call = Call::new("EmailSubmission/get", conn.account(), "status").ids([id]);
    let mut responses = conn.call(&[CORE, MAIL, SUBMISSION], [call]).await?;
    take_list::<SubmissionWire>(&mut responses, "EmailSubmission/get")?
        .into_iter()
        .next()
        .ok_or_else(|| {
            MailStoreError::NotFound(format!(
                "there is no pending or recent submission {id} (cancelled submissions are gone)"
            ))
        })
}

/// After a cancel: when the draft back in Drafts was a Bcc-less copy (its envelope named
/// people its headers don't), puts the Bcc back — as a new draft, since JMAP emails can't
/// change — so sending it again reaches everyone it was meant to. Returns the draft.
async fn restore_bcc(
    conn: &Conn<'_>,
    drafts: &str,
    email: &EmailId,
    envelope: &[String],
) -> Result<EmailId, MailStoreError> {
    let snapshot = super::draft(conn, email).await?;
    let mut known: Vec<String> = snapshot
        .to
        .iter()
        .chain(&snapshot.cc)
        .chain(&snapshot.bcc)
        .map(|a| a.email.to_ascii_lowercase())
        .collect();
    let mut bcc: Vec<Address> = Vec::new();
    for e in envelope {
        let lower = e.to_ascii_lowercase();
        if !known.contains(&lower) {
            known.push(lower);
            bcc.push(Address {
                name: None,
                email: e.clone(),
            });
        }
    }
    if bcc.is_empty() {
        return Ok(email.clone());
    }
    let copy = DraftEmail::copy(&snapshot, &bcc);
    let call = copy.create(conn.account(), drafts, "restored", "restore");
    let mut responses = conn.call(&[CORE, MAIL], [call]).await?;
    let restored =
        take_as::<SetResponse<CreatedWire>>(&mut responses, "Email/set")?.created("restored")?;
    let restored = EmailId::parse(restored.id)
        .map_err(|e| MailStoreError::Protocol(format!("restored draft id: {e}")))?;
    // Only once the draft with the Bcc exists does the copy go.
    destroy_quietly(conn, email.as_str()).await;
    Ok(restored)
}

/// Destroys an email, logging (not failing) when the server won't: used to tidy up.
async fn destroy_quietly(conn: &Conn<'_>, id: &str) {
    let call = Call::new("Email/set", conn.account(), "tidy").arg("destroy", json!([id]));
    let outcome = match conn.call(&[CORE, MAIL], [call]).await {
        Ok(mut responses) => take_as::<SetResponse<Value>>(&mut responses, "Email/set")
            .and_then(|mut set| set.destroyed(id)),
        Err(e) => Err(e),
    };
    if let Err(e) = outcome {
        tracing::warn!(error = %e, "could not remove an email left over from sending");
    }
}

/// The longest the server holds a submission (`maxDelayedSend`), if it says.
fn max_delayed_send(conn: &Conn<'_>) -> Option<u64> {
    conn.session
        .wire
        .accounts
        .get(conn.account())
        .and_then(|a| a.account_capabilities.get(SUBMISSION))
        .and_then(|c| c.get("maxDelayedSend"))
        .and_then(Value::as_u64)
}

/// The `EmailSubmission/set` that sends `s`: an explicit envelope (Bcc only there; `HOLDFOR`
/// for an undo window or a scheduled send), and on success the email leaves Drafts for Sent
/// without `$draft`.
fn submit_call(
    account: &str,
    s: &Submission,
    email: &str,
    drafts: &str,
    sent: Option<&str>,
) -> Call {
    let mut on_success = Patch::default().mailbox(drafts, false);
    if let Some(sent) = sent {
        on_success = on_success.mailbox(sent, true);
    }
    let on_success = on_success.keyword("$draft", false);
    let parameters = s
        .hold_secs
        .map_or(Value::Null, |secs| json!({"HOLDFOR": secs.to_string()}));
    let send = json!({
        "identityId": s.identity,
        "emailId": email,
        "envelope": {
            "mailFrom": {"email": s.mail_from, "parameters": parameters},
            "rcptTo": s.rcpt_to.iter().map(|r| json!({"email": r})).collect::<Vec<_>>(),
        },
    });
    Call::new("EmailSubmission/set", account, "submit")
        .arg("create", json!({"send": send}))
        .arg(
            "onSuccessUpdateEmail",
            json!({"#send": Value::from(on_success)}),
        )
}
