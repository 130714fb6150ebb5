use std::{collections::HashMap, sync::Mutex};

use aes_gcm::aead::Aead as _;

use super::*;

fn addr(email: &str) -> Address {
    Address {
        name: None,
        email: email.into(),
    }
}

fn snapshot() -> DraftSnapshot {
    DraftSnapshot {
        id: EmailId::parse("M1").unwrap(),
        blob_id: BlobId::parse("G1").unwrap(),
        from: vec![addr("alice@example.test")],
        to: vec![addr("bob@example.com"), addr("carol@example.org")],
        cc: vec![],
        bcc: vec![addr("secret@example.net")],
        reply_to: vec![],
        subject: "Hi".into(),
        text: "Hello".into(),
        html: None,
        attachments: vec![
            Attachment {
                blob_id: BlobId::parse("Ga").unwrap(),
                name: Some("a.pdf".into()),
                mime_type: "application/pdf".into(),
                charset: None,
                size: 10,
            },
            Attachment {
                blob_id: BlobId::parse("Gb").unwrap(),
                name: None,
                mime_type: "text/plain".into(),
                charset: None,
                size: 3,
            },
        ],
        in_reply_to: vec![],
        references: vec![],
        in_drafts: true,
        is_draft: true,
        truncated: false,
    }
}

type Edit = Box<dyn Fn(&mut DraftSnapshot)>;

const NOW: Schedule = Schedule::Now { undo_secs: 0 };

#[test]
fn the_digest_ignores_order_and_sees_every_field() {
    let base = snapshot();
    let d = DraftDigest::of(&base, "I1", &NOW);
    let mut reordered = base.clone();
    reordered.to.reverse();
    reordered.attachments.reverse();
    reordered.to[0].email = reordered.to[0].email.to_uppercase();
    assert_eq!(DraftDigest::of(&reordered, "I1", &NOW), d);

    let changes: Vec<(&str, Edit)> = vec![
        (
            "blob",
            Box::new(|s| s.blob_id = BlobId::parse("G2").unwrap()),
        ),
        ("from", Box::new(|s| s.from[0].email = "ceo@x.org".into())),
        ("to", Box::new(|s| s.to.push(addr("eve@x.org")))),
        ("cc moved", Box::new(|s| s.cc.push(s.to.pop().unwrap()))),
        ("bcc", Box::new(|s| s.bcc.clear())),
        ("name", Box::new(|s| s.to[0].name = Some("Bob".into()))),
        ("reply_to", Box::new(|s| s.reply_to.push(addr("x@y.z")))),
        ("subject", Box::new(|s| s.subject.push('!'))),
        ("text", Box::new(|s| s.text.push(' '))),
        ("html", Box::new(|s| s.html = Some(String::new()))),
        ("attachment", Box::new(|s| s.attachments[0].size += 1)),
        ("dropped", Box::new(|s| drop(s.attachments.pop()))),
        (
            "in_reply_to",
            Box::new(|s| s.in_reply_to.push("x@y".into())),
        ),
        ("references", Box::new(|s| s.references.push("x@y".into()))),
    ];
    for (what, change) in changes {
        let mut s = base.clone();
        change(&mut s);
        assert_ne!(DraftDigest::of(&s, "I1", &NOW), d, "{what}");
    }
    assert_ne!(DraftDigest::of(&base, "I2", &NOW), d, "identity");
    assert_ne!(
        DraftDigest::of(&base, "I1", &Schedule::Now { undo_secs: 30 }),
        d,
        "schedule"
    );
    // Field boundaries are unambiguous: moving text between fields changes the digest.
    let mut a = base.clone();
    a.subject = "Hi\u{0}".into();
    a.text = "ello".into();
    let mut b = base.clone();
    b.subject = "Hi".into();
    b.text = "\u{0}ello".into();
    assert_ne!(
        DraftDigest::of(&a, "I1", &NOW),
        DraftDigest::of(&b, "I1", &NOW)
    );
}

/// An in-memory store with the same compare-and-swap semantics as the vault's.
#[derive(Default)]
struct Memory(Mutex<HashMap<String, ApprovalRecord>>);

impl crate::domain::ports::ApprovalStore for Memory {
    async fn insert(&self, record: &ApprovalRecord) -> Result<(), ApprovalError> {
        self.0
            .lock()
            .unwrap()
            .insert(record.id.as_str().into(), record.clone());
        Ok(())
    }
    async fn get(&self, id: &ApprovalId) -> Result<Option<ApprovalRecord>, ApprovalError> {
        Ok(self.0.lock().unwrap().get(id.as_str()).cloned())
    }
    async fn find(
        &self,
        grant: &GrantId,
        draft: &EmailId,
    ) -> Result<Option<ApprovalRecord>, ApprovalError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .values()
            .find(|r| r.grant == *grant && r.draft == *draft)
            .cloned())
    }
    async fn by_submission(
        &self,
        grant: &GrantId,
        submission: &str,
    ) -> Result<Option<ApprovalRecord>, ApprovalError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .values()
            .find(|r| r.grant == *grant && r.submission.as_deref() == Some(submission))
            .cloned())
    }
    async fn transition(
        &self,
        id: &ApprovalId,
        from: Status,
        to: Status,
        submission: Option<String>,
    ) -> Result<(), ApprovalError> {
        let mut map = self.0.lock().unwrap();
        match map.get_mut(id.as_str()) {
            Some(r) if r.status == from => {
                r.status = to;
                if submission.is_some() {
                    r.submission = submission;
                }
                Ok(())
            }
            _ => Err(ApprovalError::Conflict),
        }
    }
    async fn remove(&self, id: &ApprovalId) -> Result<(), ApprovalError> {
        self.0.lock().unwrap().remove(id.as_str());
        Ok(())
    }
}

async fn asked(store: &Memory, now: i64) -> Approval<Pending> {
    let a = Approval::ask(
        GrantId::new("g1"),
        "acct".into(),
        EmailId::parse("M1").unwrap(),
        DraftDigest::of(&snapshot(), "I1", &NOW),
        vec![],
        now,
        DEFAULT_TTL_SECS,
    );
    store.insert(a.record()).await.unwrap();
    a
}

#[tokio::test]
async fn an_approval_is_claimed_once_and_never_after_a_decline_or_expiry() {
    let store = Memory::default();
    let pending = asked(&store, 1000).await;
    let approved = pending.clone().approve(&store, 1001).await.unwrap();
    // The same pending approval can't be decided twice.
    assert_eq!(
        pending.decline(&store).await.unwrap_err(),
        ApprovalError::Conflict
    );
    let claimed = approved.clone().claim(&store, 1002).await.unwrap();
    assert_eq!(
        approved.claim(&store, 1002).await.unwrap_err(),
        ApprovalError::Conflict,
        "a second claim"
    );
    let sent = claimed.sent(&store, "S1".into()).await.unwrap();
    assert_eq!(sent.status, Status::Sent);
    assert!(matches!(
        store.get(&sent.id).await.unwrap().unwrap().typed(),
        Typed::Settled(r) if r.submission.as_deref() == Some("S1")
    ));

    let declined = asked(&store, 1000).await.decline(&store).await.unwrap();
    assert!(matches!(
        store.get(&declined.id).await.unwrap().unwrap().typed(),
        Typed::Settled(_)
    ));

    let late = asked(&store, 1000).await;
    assert_eq!(
        late.approve(&store, 1000 + DEFAULT_TTL_SECS)
            .await
            .unwrap_err(),
        ApprovalError::Expired
    );
    let approved = asked(&store, 1000)
        .await
        .approve(&store, 1001)
        .await
        .unwrap();
    assert_eq!(
        approved
            .claim(&store, 1000 + DEFAULT_TTL_SECS)
            .await
            .unwrap_err(),
        ApprovalError::Expired
    );

    // A refused submission gives the approval back; it can be claimed again.
    let claimed = asked(&store, 1000)
        .await
        .approve(&store, 1001)
        .await
        .unwrap()
        .claim(&store, 1002)
        .await
        .unwrap();
    let again = claimed.release(&store).await.unwrap();
    assert!(again.claim(&store, 1003).await.is_ok());
}

#[tokio::test]
async fn an_unknown_outcome_is_settled_only_once_no_send_can_be_in_flight() {
    let store = Memory::default();
    let claimed = asked(&store, 1000)
        .await
        .approve(&store, 1001)
        .await
        .unwrap()
        .claim(&store, 1002)
        .await
        .unwrap();
    let record = claimed.record().clone();
    let lapse = record.expires_at;
    assert!(
        record.clone().unsettled_claim(1003).is_none(),
        "maybe in flight"
    );
    assert!(
        record
            .clone()
            .unsettled_claim(lapse + CLAIM_SETTLES_AFTER - 1)
            .is_none()
    );
    let settle = record
        .clone()
        .unsettled_claim(lapse + CLAIM_SETTLES_AFTER)
        .unwrap();
    let left = settle.left(&store).await.unwrap();
    assert_eq!((left.status, left.submission), (Status::Sent, None));
    // Sent or with a known submission: nothing to settle.
    let known = store.get(&record.id).await.unwrap().unwrap();
    assert!(known.unsettled_claim(lapse + 10_000).is_none());
}

#[test]
fn ids_are_random_and_parse_strictly() {
    let a = ApprovalId::generate();
    assert_ne!(a, ApprovalId::generate());
    assert_eq!(ApprovalId::parse(a.as_str()), Some(a));
    assert_eq!(ApprovalId::parse("short"), None);
    assert_eq!(ApprovalId::parse("aaaaaaaaaaaaaaaaaaaa/+"), None);
}

#[test]
fn the_review_copy_opens_only_with_the_links_key() {
    let (key, sealed) = seal_review(b"the draft");
    let cipher = Aes256Gcm::new_from_slice(key.as_slice()).unwrap();
    let (nonce, body) = sealed.split_at(12);
    let opened = cipher
        .decrypt(aes_gcm::Nonce::from_slice(nonce), body)
        .unwrap();
    assert_eq!(opened, b"the draft");
    let other = Aes256Gcm::new_from_slice(&[7u8; 32]).unwrap();
    assert!(
        other
            .decrypt(aes_gcm::Nonce::from_slice(nonce), body)
            .is_err()
    );
    assert!(!sealed.windows(9).any(|w| w == b"the draft"));
}

#[test]
fn schedules_hold_for_the_right_time() {
    let now = Utc::now();
    assert_eq!(NOW.hold_secs(now), None);
    assert_eq!(Schedule::Now { undo_secs: 30 }.hold_secs(now), Some(30));
    assert_eq!(
        Schedule::At(now + chrono::Duration::seconds(90)).hold_secs(now),
        Some(90)
    );
    assert_eq!(
        Schedule::At(now - chrono::Duration::seconds(5)).hold_secs(now),
        None
    );
}

#[tokio::test]
async fn only_the_same_mailbox_decides_and_only_once() {
    let store = Memory::default();
    let a = asked(&store, 1000).await;
    let id = a.record().id.clone();
    assert_eq!(
        decide(&store, &id, "someone-else", true, 1001)
            .await
            .unwrap_err(),
        DecisionError::OtherAccount
    );
    assert_eq!(
        decide(&store, &ApprovalId::generate(), "acct", true, 1001)
            .await
            .unwrap_err(),
        DecisionError::Unknown
    );
    assert_eq!(
        decide(&store, &id, "acct", true, 1001)
            .await
            .unwrap()
            .status,
        Status::Approved
    );
    assert_eq!(
        decide(&store, &id, "acct", false, 1002).await.unwrap_err(),
        DecisionError::Decided(Status::Approved)
    );
    let late = asked(&store, 1000).await;
    assert_eq!(
        decide(
            &store,
            &late.record().id,
            "acct",
            true,
            1000 + DEFAULT_TTL_SECS
        )
        .await
        .unwrap_err(),
        DecisionError::Expired
    );
    // A grant without an account (self-hosted) can't be decided on the page at all.
    let mut blank = asked(&store, 1000).await.record().clone();
    blank.account = String::new();
    store.insert(&blank).await.unwrap();
    assert_eq!(
        decide(&store, &blank.id, "", true, 1001).await.unwrap_err(),
        DecisionError::OtherAccount
    );
}
