//! The storage contract: Send approvals: compare-and-swap, replacing, keeping a claim.

use super::{ACCOUNT, now};
use crate::domain::{
    grant::GrantId,
    mail::ids::EmailId,
    ports::ApprovalStore,
    sending::approval::{Approval, ApprovalError, DraftDigest, Pending, Status},
};

fn ask(draft: &str, at: i64) -> Approval<Pending> {
    Approval::ask(
        GrantId::new("g1"),
        ACCOUNT.into(),
        EmailId::parse(draft).unwrap(),
        DraftDigest([7; 32]),
        vec![1, 2, 3],
        at,
        600,
    )
}

/// Approvals round-trip, a decision empties the review copy, and of several concurrent
/// claims of one approval exactly one wins (compare-and-swap).
pub async fn approvals_compare_and_swap<S: ApprovalStore>(store: &S) {
    let at = now();
    let a = ask("M1", at);
    ApprovalStore::insert(store, a.record()).await.unwrap();
    assert_eq!(
        ApprovalStore::get(store, &a.record().id)
            .await
            .unwrap()
            .as_ref(),
        Some(a.record())
    );
    assert_eq!(
        ApprovalStore::find(store, &GrantId::new("g1"), &EmailId::parse("M1").unwrap())
            .await
            .unwrap()
            .as_ref(),
        Some(a.record())
    );
    let approved = a.approve(store, at).await.unwrap();
    let stored = ApprovalStore::get(store, &approved.record().id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.review.is_empty(),
        "the review copy goes with the decision"
    );
    let claim = || approved.clone().claim(store, at);
    let (c1, c2, c3, c4) = tokio::join!(claim(), claim(), claim(), claim());
    let wins = [c1, c2, c3, c4]
        .into_iter()
        .filter(|c| match c {
            Ok(_) => true,
            Err(ApprovalError::Conflict) => false,
            Err(e) => panic!("unexpected {e:?}"),
        })
        .count();
    assert_eq!(wins, 1);
    assert_eq!(
        ApprovalStore::transition(
            store,
            &approved.record().id,
            Status::Approved,
            Status::Claimed,
            None
        )
        .await
        .unwrap_err(),
        ApprovalError::Conflict
    );
}

/// A new ask for a draft replaces the older ones, never a claimed one (a send in flight
/// settles it, and a stale read can't remove it either); a claim decides the draft.
pub async fn a_new_ask_replaces_older_ones_but_never_a_claim<S: ApprovalStore>(store: &S) {
    let at = now();
    let grant = GrantId::new("g1");
    let m1 = EmailId::parse("M1").unwrap();
    let first = ask("M1", at);
    ApprovalStore::insert(store, first.record()).await.unwrap();
    let claimed = first
        .approve(store, at)
        .await
        .unwrap()
        .claim(store, at)
        .await
        .unwrap();
    let again = ask("M1", at + 1);
    ApprovalStore::insert(store, again.record()).await.unwrap();
    let found = ApprovalStore::find(store, &grant, &m1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.status, Status::Claimed, "a claim blocks the draft");
    let claimed_id = claimed.record().id.clone();
    ApprovalStore::remove(store, &claimed_id).await.unwrap();
    assert!(
        ApprovalStore::get(store, &claimed_id)
            .await
            .unwrap()
            .is_some(),
        "claimed: kept"
    );
    let sent = claimed.sent(store, "S1".into()).await.unwrap();
    assert_eq!(sent.submission.as_deref(), Some("S1"));
    assert_eq!(
        ApprovalStore::by_submission(store, &grant, "S1")
            .await
            .unwrap()
            .map(|r| r.id),
        Some(claimed_id.clone())
    );
    assert!(
        ApprovalStore::by_submission(store, &GrantId::new("g2"), "S1")
            .await
            .unwrap()
            .is_none(),
        "another grant's submission"
    );
    ApprovalStore::remove(store, &claimed_id).await.unwrap();
    assert!(
        ApprovalStore::get(store, &claimed_id)
            .await
            .unwrap()
            .is_none()
    );
    let newer = ask("M1", at + 2);
    ApprovalStore::insert(store, newer.record()).await.unwrap();
    assert!(
        ApprovalStore::get(store, &again.record().id)
            .await
            .unwrap()
            .is_none(),
        "the older pending one went"
    );
    assert_eq!(
        ApprovalStore::find(store, &grant, &m1)
            .await
            .unwrap()
            .map(|r| r.id),
        Some(newer.record().id.clone())
    );
}
