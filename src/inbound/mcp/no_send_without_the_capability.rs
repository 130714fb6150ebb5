//! The property for sending: over every tool and every capability set, with a mail
//! store on which everything succeeds and an approval already given, a submission happens only
//! through `send_draft` and only with `send`.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use super::{
    contract::CATALOG,
    send_confirmation::Confirm,
    tests::{call, caller_with, capability_sets, handler_for},
};
use crate::domain::{
    grant::{Capability, GrantId},
    mail::Address,
    mail::ids::{BlobId, EmailId, ThreadId},
    ports::{
        MailStoreError, MockApprovalStore, MockMailStore, MockPolicy, MockTokenVault, SearchPage,
    },
    sending::approval::{ApprovalRecord, DraftDigest, DraftSnapshot, Schedule, Status},
    sending::compose::{CreatedDraft, Identity},
    sending::recipients::RecipientRule,
    sending::submission::{SubmissionStatus, UndoStatus},
    service::{MailService, ServiceLimits},
};

fn snapshot() -> DraftSnapshot {
    DraftSnapshot {
        id: EmailId::parse("M1").unwrap(),
        blob_id: BlobId::parse("G1").unwrap(),
        from: vec![Address {
            name: None,
            email: "me@example.test".into(),
        }],
        to: vec![Address {
            name: None,
            email: "you@example.org".into(),
        }],
        cc: vec![],
        bcc: vec![],
        reply_to: vec![],
        subject: "s".into(),
        text: "t".into(),
        html: None,
        attachments: vec![],
        in_reply_to: vec![],
        references: vec![],
        in_drafts: true,
        is_draft: true,
        truncated: false,
    }
}

fn identity() -> Identity {
    Identity {
        id: "I1".into(),
        email: "me@example.test".into(),
        name: None,
    }
}

fn status() -> SubmissionStatus {
    SubmissionStatus {
        id: "S1".into(),
        email: Some(EmailId::parse("M1").unwrap()),
        undo_status: UndoStatus::Final,
        send_at: None,
        delivery: vec![],
    }
}

/// Every store call succeeds; submissions are counted.
fn willing_store(submissions: &Arc<AtomicUsize>) -> MockMailStore {
    let mut s = MockMailStore::new();
    s.expect_draft()
        .returning(|_, _| Box::pin(async { Ok(snapshot()) }));
    s.expect_identities()
        .returning(|_| Box::pin(async { Ok(vec![identity()]) }));
    s.expect_written_to().returning(|_, a| {
        let a = a.to_vec();
        Box::pin(async move { Ok(a) })
    });
    s.expect_create_draft().returning(|_, _| {
        Box::pin(async {
            Ok(CreatedDraft {
                id: EmailId::parse("M2").unwrap(),
                thread_id: ThreadId::parse("T1").unwrap(),
            })
        })
    });
    s.expect_delete_draft()
        .returning(|_, _| Box::pin(async { Ok(()) }));
    s.expect_cancel_submission()
        .returning(|_, _| Box::pin(async { Ok(EmailId::parse("M1").unwrap()) }));
    s.expect_submission()
        .returning(|_, _| Box::pin(async { Ok(status()) }));
    s.expect_search().returning(|_, _, _, _| {
        Box::pin(async {
            Ok(SearchPage {
                emails: vec![],
                mailboxes: vec![],
                total: Some(0),
                position: 0,
            })
        })
    });
    let counted = Arc::clone(submissions);
    s.expect_submit().returning(move |_, _| {
        counted.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(status()) })
    });
    let fail = || MailStoreError::Unavailable("not needed here".into());
    s.expect_account()
        .returning(move |_| Box::pin(async move { Err(fail()) }));
    s.expect_mailboxes()
        .returning(move |_| Box::pin(async move { Err(fail()) }));
    s.expect_email()
        .returning(move |_, _| Box::pin(async move { Err(fail()) }));
    s.expect_thread()
        .returning(move |_, _| Box::pin(async move { Err(fail()) }));
    s.expect_attachment()
        .returning(move |_, _, _, _| Box::pin(async move { Err(fail()) }));
    s.expect_set_keyword()
        .returning(move |_, _, _, _| Box::pin(async move { Err(fail()) }));
    s.expect_move_emails()
        .returning(move |_, _, _| Box::pin(async move { Err(fail()) }));
    s.expect_changes_since()
        .returning(move |_, _, _| Box::pin(async move { Err(fail()) }));
    s
}

/// An approval of exactly that draft, given and in time.
fn approved_store() -> MockApprovalStore {
    let record = ApprovalRecord {
        id: crate::domain::sending::approval::ApprovalId::generate(),
        grant: GrantId::new("g1"),
        account: "a".into(),
        draft: EmailId::parse("M1").unwrap(),
        digest: DraftDigest::of(&snapshot(), "I1", &Schedule::Now { undo_secs: 0 }),
        status: Status::Approved,
        created_at: chrono::Utc::now().timestamp(),
        expires_at: chrono::Utc::now().timestamp() + 600,
        review: vec![],
        submission: None,
    };
    let mut a = MockApprovalStore::new();
    let found = record.clone();
    a.expect_find().returning(move |_, _| {
        let found = found.clone();
        Box::pin(async move { Ok(Some(found)) })
    });
    let got = record.clone();
    a.expect_get().returning(move |_| {
        let got = got.clone();
        Box::pin(async move { Ok(Some(got)) })
    });
    a.expect_by_submission()
        .returning(|_, _| Box::pin(async { Ok(None) }));
    a.expect_transition()
        .returning(|_, _, _, _| Box::pin(async { Ok(()) }));
    a.expect_insert().returning(|_| Box::pin(async { Ok(()) }));
    a.expect_remove().returning(|_| Box::pin(async { Ok(()) }));
    a
}

#[tokio::test]
async fn only_send_draft_with_send_submits() {
    for capabilities in capability_sets() {
        for (spec, _) in CATALOG.iter() {
            let submissions = Arc::new(AtomicUsize::new(0));
            let mut policy = MockPolicy::new();
            policy
                .expect_recipients()
                .returning(|_| Box::pin(async { Ok(RecipientRule::Anyone) }));
            policy
                .expect_review_only()
                .returning(|_| Box::pin(async { Ok(false) }));
            policy
                .expect_notify_settings()
                .returning(|_| Box::pin(async { Ok(Default::default()) }));
            policy
                .expect_set_notify_settings()
                .returning(|_, _| Box::pin(async { Ok(()) }));
            let vault = MockTokenVault::new();
            let service = Arc::new(MailService::new(
                willing_store(&submissions),
                vault,
                policy,
                approved_store(),
                ServiceLimits::default(),
            ));
            let handler = handler_for(service);
            let caller = caller_with(&capabilities, Some("a"));
            let _ = handler
                .dispatch(call(spec.name), &caller, &Confirm::default())
                .await;
            let sent = submissions.load(Ordering::SeqCst);
            let may = spec.name == "send_draft" && capabilities.allows(Capability::Send);
            assert_eq!(
                sent,
                usize::from(may),
                "{} with {capabilities:?}: {sent} submissions",
                spec.name
            );
        }
    }
}
