//! Drafts and sending through the JMAP adapter against the real Cyrus testbed, whose
//! submission stub records every message in an outbox and refuses on script
//! (scripts/testbed.d/fake-sendmail.py). The writer user's mailbox, one test at a time.

use std::time::Duration;

use mailconnect::{
    domain::{
        mail::body,
        mail::ids::EmailId,
        mail::{Address, Email},
        ports::{MailReader, MailSender, MailStoreError, PageStart},
        search::query::{EmailQuery, PageSize},
        sending::compose::{self, ComposeMode, DraftRequest, Original},
        sending::submission::{Refusal, Submission, UndoStatus},
    },
    outbound::jmap::JmapMailStore,
};

use crate::support::{
    compose::{Refusing, released, sent_with},
    fault_proxy::Proxy,
    mail::{store, writer},
    testbed,
};

/// The writer's copy of a seed email, found by subject.
pub(crate) async fn seed_email(s: &JmapMailStore, subject: &str) -> Email {
    let query = EmailQuery {
        subject: Some(subject.into()),
        mailbox: Some("inbox".into()),
        ..EmailQuery::default()
    };
    let page = s
        .search(
            &writer(),
            &query,
            PageSize::new(Some(5)).unwrap(),
            &PageStart::First,
        )
        .await
        .unwrap();
    let id = page
        .emails
        .iter()
        .find(|e| e.subject == subject)
        .unwrap_or_else(|| panic!("no seed email {subject:?}"))
        .id
        .clone();
    s.email(&writer(), &id).await.unwrap().0
}

fn marker() -> String {
    format!("mc-{:016x}", rand::random::<u64>())
}

fn addr(email: &str) -> Address {
    Address {
        name: None,
        email: email.into(),
    }
}

fn request(mode: ComposeMode, source: Option<&Email>, body: &str) -> DraftRequest {
    DraftRequest {
        mode,
        source: source.map(|e| e.summary.id.clone()),
        to: vec![],
        cc: vec![],
        bcc: vec![],
        subject: None,
        body_text: body.into(),
        quote_original: true,
        forward_attachments: true,
        attach: vec![],
        identity: None,
        replaces: None,
    }
}

async fn create(
    s: &JmapMailStore,
    r: &DraftRequest,
    original: Option<&Email>,
) -> (compose::NewDraft, compose::CreatedDraft) {
    let identities = s.identities(&writer()).await.unwrap();
    let text = original.map(|e| body::body_text(&e.body, body::TextOptions::default()).1);
    let o = original
        .zip(text.as_deref())
        .map(|(email, text)| Original { email, text });
    let planned = compose::plan(r, o.as_ref(), &identities, vec![]).unwrap();
    let created = s.create_draft(&writer(), &planned).await.unwrap();
    (planned, created)
}

fn submission(d: &compose::NewDraft, id: &EmailId, hold: Option<u64>) -> Submission {
    Submission {
        email: id.clone(),
        identity: d.identity.id.clone(),
        mail_from: d.from.email.clone(),
        rcpt_to: d
            .to
            .iter()
            .chain(&d.cc)
            .chain(&d.bcc)
            .map(|a| a.email.clone())
            .collect(),
        hold_secs: hold,
        without_bcc: None,
    }
}

async fn mailbox_roles(s: &JmapMailStore, id: &EmailId) -> (Vec<String>, bool) {
    let (email, boxes) = s.email(&writer(), id).await.unwrap();
    let roles = email
        .summary
        .mailbox_ids
        .iter()
        .filter_map(|m| boxes.iter().find(|b| b.id == *m))
        .map(|b| {
            b.role
                .as_ref()
                .map_or(b.name.clone(), |r| r.as_str().to_owned())
        })
        .collect();
    let is_draft = email
        .summary
        .keywords
        .as_slice()
        .iter()
        .any(|k| k == "$draft");
    (roles, is_draft)
}

#[tokio::test]
async fn compose_a_reply_threads_sends_with_bcc_in_the_envelope_only_and_lands_in_sent() {
    let s = store(testbed().get("JMAP_SESSION_URL"));
    let original = seed_email(&s, "Quarterly report Q1").await;
    let mark = marker();
    let mut r = request(
        ComposeMode::Reply,
        Some(&original),
        &format!("Thanks. {mark}"),
    );
    r.bcc = vec![addr("hidden@example.org")];
    let (planned, created) = create(&s, &r, Some(&original)).await;
    assert_eq!(
        created.thread_id, original.summary.thread_id,
        "the reply threads"
    );

    let snap = s.draft(&writer(), &created.id).await.unwrap();
    assert!(snap.in_drafts && snap.is_draft && !snap.truncated);
    assert_eq!(
        snap.in_reply_to,
        original.message_id.iter().cloned().collect::<Vec<_>>()
    );
    assert_eq!(snap.bcc, [addr("hidden@example.org")]);
    assert!(
        snap.text.contains(&mark) && snap.text.contains("> "),
        "{}",
        snap.text
    );

    let mut sub = submission(&planned, &created.id, None);
    sub.without_bcc = Some(snap.clone());
    let status = s.submit(&writer(), &sub).await.unwrap();
    assert_eq!(status.undo_status, UndoStatus::Final);
    let sent = sent_with(&mark);
    assert_eq!(sent.len(), 1, "exactly one message left");
    let m = &sent[0];
    assert_eq!(
        m.header("In-Reply-To"),
        original
            .message_id
            .as_deref()
            .map(|id| format!("<{id}>"))
            .as_deref()
    );
    assert_eq!(m.header("Bcc"), None, "Bcc is not in the headers");
    assert!(!m.raw.contains("hidden@example.org"));
    let rcpts = m.envelope["rcptTo"].to_string();
    assert!(
        rcpts.contains("hidden@example.org") && rcpts.contains("bob@example.com"),
        "{rcpts}"
    );
    // The copy without Bcc went to Sent; the draft is gone.
    let copy = status.email.expect("the sent email");
    assert_ne!(copy, created.id);
    let (roles, is_draft) = mailbox_roles(&s, &copy).await;
    assert_eq!((roles, is_draft), (vec!["sent".to_owned()], false));
    assert!(matches!(
        s.draft(&writer(), &created.id).await,
        Err(MailStoreError::NotFound(_))
    ));
    let thread = s.email(&writer(), &copy).await.unwrap().0.summary.thread_id;
    assert_eq!(
        thread, original.summary.thread_id,
        "the sent copy threads too"
    );

    // Without Bcc the draft itself is sent.
    let mark = marker();
    let r = request(
        ComposeMode::Reply,
        Some(&original),
        &format!("Again. {mark}"),
    );
    let (planned, created) = create(&s, &r, Some(&original)).await;
    let status = s
        .submit(&writer(), &submission(&planned, &created.id, None))
        .await
        .unwrap();
    assert_eq!(status.email.as_ref(), Some(&created.id));
    assert_eq!(
        mailbox_roles(&s, &created.id).await,
        (vec!["sent".to_owned()], false)
    );
    assert_eq!(sent_with(&mark).len(), 1);
}

#[tokio::test]
async fn compose_a_forward_reuses_attachments_without_an_upload() {
    let proxy = Proxy::start([]).await;
    let s = store(&proxy.session_url());
    let original = seed_email(&s, "Quarterly report Q1").await;
    assert!(!original.attachments.is_empty());
    let mut r = request(ComposeMode::Forward, Some(&original), "FYI");
    r.to = vec![addr("frank@example.org")];
    let (_, created) = create(&s, &r, Some(&original)).await;
    let snap = s.draft(&writer(), &created.id).await.unwrap();
    assert_eq!(snap.subject, "Fwd: Quarterly report Q1");
    let blobs = |list: &[mailconnect::domain::mail::Attachment]| {
        list.iter().map(|a| a.blob_id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(blobs(&snap.attachments), blobs(&original.attachments));
    let requests = proxy.requests();
    assert!(
        requests.iter().all(|(_, path)| !path.contains("upload")),
        "{requests:?}"
    );
    s.delete_draft(&writer(), &created.id).await.unwrap();
}

#[tokio::test]
async fn compose_undo_restores_the_draft_and_a_held_message_leaves_on_release() {
    let s = store(testbed().get("JMAP_SESSION_URL"));
    let mark = marker();
    let mut r = request(ComposeMode::New, None, &format!("Later. {mark}"));
    r.to = vec![addr("carol@example.org")];
    r.subject = Some(format!("held {mark}"));
    let (planned, created) = create(&s, &r, None).await;

    // Held for 10 minutes, then cancelled: nothing left, and it is a draft in Drafts again.
    let held = s
        .submit(&writer(), &submission(&planned, &created.id, Some(600)))
        .await
        .unwrap();
    assert_eq!(held.undo_status, UndoStatus::Pending);
    assert!(held.send_at.is_some());
    assert!(sent_with(&mark).is_empty());
    let back = s.cancel_submission(&writer(), &held.id).await.unwrap();
    assert_eq!(back, created.id);
    assert_eq!(
        mailbox_roles(&s, &created.id).await,
        (vec!["drafts".to_owned()], true)
    );
    let again = s.cancel_submission(&writer(), &held.id).await.unwrap_err();
    assert!(matches!(again, MailStoreError::NotFound(_)), "{again:?}");

    // Held for a minute and released by time travel: it leaves exactly once.
    let held = s
        .submit(&writer(), &submission(&planned, &created.id, Some(60)))
        .await
        .unwrap();
    assert!(sent_with(&mark).is_empty());
    let sent = released(chrono::Utc::now().timestamp() + 120, &mark).await;
    assert_eq!(sent.len(), 1, "released once");
    let late = s.cancel_submission(&writer(), &held.id).await;
    assert!(
        matches!(
            late,
            Err(MailStoreError::Refused(Refusal::CannotUnsend) | MailStoreError::NotFound(_))
        ),
        "{late:?}"
    );
}

#[tokio::test]
async fn compose_undo_of_a_bcc_send_gives_back_the_draft_with_its_bcc() {
    let s = store(testbed().get("JMAP_SESSION_URL"));
    let mark = marker();
    let mut r = request(ComposeMode::New, None, &format!("Quietly. {mark}"));
    r.to = vec![addr("carol@example.org")];
    r.bcc = vec![addr("hidden@example.org")];
    r.subject = Some(format!("held bcc {mark}"));
    let (planned, created) = create(&s, &r, None).await;
    let snap = s.draft(&writer(), &created.id).await.unwrap();
    let mut sub = submission(&planned, &created.id, Some(600));
    sub.without_bcc = Some(snap);
    let held = s.submit(&writer(), &sub).await.unwrap();
    assert_eq!(held.undo_status, UndoStatus::Pending);

    // The held message is the copy without the Bcc header; cancelled, the draft that comes
    // back has its Bcc again, so sending it again reaches everyone.
    let back = s.cancel_submission(&writer(), &held.id).await.unwrap();
    let restored = s.draft(&writer(), &back).await.unwrap();
    assert!(restored.in_drafts && restored.is_draft);
    assert_eq!(restored.bcc, [addr("hidden@example.org")]);
    assert_eq!(restored.to, [addr("carol@example.org")]);
    assert!(restored.text.contains(&mark));
    assert!(sent_with(&mark).is_empty());
    // The Bcc-less copy is gone (not left beside it), as is the original.
    let copy = held.email.clone().expect("the held copy");
    assert_ne!(copy, back);
    for gone in [&copy, &created.id] {
        assert!(matches!(
            s.draft(&writer(), gone).await,
            Err(MailStoreError::NotFound(_))
        ));
    }
    s.delete_draft(&writer(), &back).await.unwrap();
}

#[tokio::test]
async fn compose_every_refusal_maps_to_its_code() {
    let s = store(testbed().get("JMAP_SESSION_URL"));
    let mut r = request(ComposeMode::New, None, "x");
    r.to = vec![addr("carol@example.org")];
    let (planned, created) = create(&s, &r, None).await;
    let sub = submission(&planned, &created.id, None);
    for (line, code) in [
        (
            "MAIL 550 5.3.0 [jmapError:forbiddenFrom] not yours",
            "forbidden_from",
        ),
        (
            "MAIL 550 5.3.0 [jmapError:forbiddenMailFrom] no",
            "forbidden_mail_from",
        ),
        ("DATA 554 5.3.0 refused by policy", "forbidden_to_send"),
        ("RCPT 452 4.5.3 Too many recipients", "too_many_recipients"),
        ("RCPT 550 5.1.1 No such user", "invalid_recipients"),
        ("DATA 552 5.3.4 Message too big", "too_large"),
    ] {
        let _refusing = Refusing::with(line);
        match s.submit(&writer(), &sub).await {
            Err(MailStoreError::Refused(r)) => assert_eq!(r.code(), code, "{line}"),
            other => panic!("{line}: {other:?}"),
        }
    }
    {
        let _refusing = Refusing::with("DATA 451 4.3.0 [jmapError:rateLimit] slow down");
        let started = std::time::Instant::now();
        let err = s.submit(&writer(), &sub).await.unwrap_err();
        assert!(matches!(err, MailStoreError::RateLimited { .. }), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "bounded retries"
        );
    }
    match s
        .submit(
            &writer(),
            &submission(&planned, &created.id, Some(99_999_999)),
        )
        .await
    {
        Err(MailStoreError::Refused(Refusal::DelayTooLong(Some(max)))) => {
            assert_eq!(max, 44_236_800)
        }
        other => panic!("{other:?}"),
    }
    // A draft without recipients.
    let nobody = request(ComposeMode::New, None, "to nobody");
    let (planned_nobody, created_nobody) = create(&s, &nobody, None).await;
    match s
        .submit(
            &writer(),
            &submission(&planned_nobody, &created_nobody.id, None),
        )
        .await
    {
        Err(MailStoreError::Refused(r)) => assert_eq!(r.code(), "no_recipients"),
        other => panic!("no recipients: {other:?}"),
    }
    s.delete_draft(&writer(), &created_nobody.id).await.unwrap();
    // The draft is intact after every refusal, and can be deleted; a non-draft can't.
    assert_eq!(
        mailbox_roles(&s, &created.id).await,
        (vec!["drafts".to_owned()], true)
    );
    s.delete_draft(&writer(), &created.id).await.unwrap();
    let inbox = seed_email(&s, "Quarterly report Q1").await;
    assert!(matches!(
        s.delete_draft(&writer(), &inbox.summary.id).await,
        Err(MailStoreError::Refused(Refusal::NotADraft))
    ));
    assert!(matches!(
        s.draft(&writer(), &created.id).await,
        Err(MailStoreError::NotFound(_))
    ));
}
