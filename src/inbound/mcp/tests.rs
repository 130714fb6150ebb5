//! The adapter's unit tests over mocked ports: which tools run for which capabilities.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde_json::{Value, json};

use super::{
    McpHandler,
    contract::{CATALOG, ToolCall},
    failure::ToolFailure,
    send_confirmation::Confirm,
};
use crate::domain::{
    auth::upstream_refresh::NoRenewal,
    grant::{AccessToken, Caller, Capability, CapabilitySet, GrantId, UpstreamCredential},
    mail::ids::EmailId,
    ports::{
        MailStoreError, MockApprovalStore, MockAuditLog, MockMailStore, MockPolicy, MockTokenVault,
        NoDocuments,
    },
    secret::SecretString,
    service::{Fitted, MailService, ServiceError, ServiceLimits},
};

/// A mail store whose every method counts the call and fails: reaching it is what
/// "the tool ran" means here.
fn counting_store(calls: &Arc<AtomicUsize>) -> MockMailStore {
    let mut store = MockMailStore::new();
    let fail = || MailStoreError::Unavailable("reached the store".into());
    macro_rules! counted {
        ($expect:ident, $($arg:pat),*) => {{
            let calls = Arc::clone(calls);
            store.$expect().returning(move |$($arg),*| {
                calls.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move { Err(fail()) })
            });
        }};
    }
    counted!(expect_account, _);
    counted!(expect_mailboxes, _);
    counted!(expect_search, _, _, _, _);
    counted!(expect_email, _, _);
    counted!(expect_thread, _, _);
    counted!(expect_attachment, _, _, _, _);
    counted!(expect_set_keyword, _, _, _, _);
    counted!(expect_move_emails, _, _, _);
    counted!(expect_identities, _);
    counted!(expect_create_draft, _, _);
    counted!(expect_draft, _, _);
    counted!(expect_delete_draft, _, _);
    counted!(expect_submit, _, _);
    counted!(expect_cancel_submission, _, _);
    counted!(expect_submission, _, _);
    counted!(expect_changes_since, _, _, _);
    store
}

fn arguments(tool: &str) -> Value {
    match tool {
        "get_identity" | "list_mailboxes" => json!({}),
        "search_email" => json!({"text": "x"}),
        "get_email" => json!({"email_id": "M1"}),
        "get_thread" => json!({"thread_id": "T1"}),
        "get_attachment" => json!({"email_id": "M1", "blob_id": "B1"}),
        "move_email" => json!({"email_ids": ["M1", "M2"], "mailbox": "archive"}),
        "mark_email_read" => json!({"email_ids": ["M1"], "read": false}),
        "flag_email" => json!({"email_ids": ["M1"]}),
        "draft_email" => json!({"to": ["bob@example.com"], "body_text": "hi"}),
        "list_drafts" => json!({}),
        "delete_draft" | "send_draft" => json!({"draft_id": "M1"}),
        "cancel_send" => json!({"submission_id": "S1"}),
        "get_send_status" => json!({"submission_id": "S1"}),
        "check_new_mail" | "get_notify_settings" => json!({}),
        "mute_notifications" => json!({"sender": "@news.example", "for": "8h"}),
        other => panic!("no arguments for {other}: add them here"),
    }
}

/// A call of `tool` with arguments that decode.
pub(super) fn call(tool: &str) -> ToolCall {
    ToolCall::parse(tool, arguments(tool)).unwrap()
}

/// Approvals where every submission asked about is one this grant sent (so cancel_send
/// goes on to the mail store).
fn sent_by_this_grant() -> MockApprovalStore {
    let mut approvals = MockApprovalStore::new();
    approvals.expect_by_submission().returning(|grant, id| {
        let sent = Ok(Some(crate::domain::sending::approval::ApprovalRecord {
            id: crate::domain::sending::approval::ApprovalId::generate(),
            grant: grant.clone(),
            account: String::new(),
            draft: EmailId::parse("M1").unwrap(),
            digest: crate::domain::sending::approval::DraftDigest([0; 32]),
            status: crate::domain::sending::approval::Status::Sent,
            created_at: 0,
            expires_at: 0,
            review: vec![],
            submission: Some(id.to_owned()),
        }));
        Box::pin(async move { sent })
    });
    approvals
        .expect_remove()
        .returning(|_| Box::pin(async { Ok(()) }));
    approvals
}

/// A policy whose per-grant rules count as "the tool ran" (the notification settings
/// tools read and write rules, not mail).
fn reaching_policy(calls: &Arc<AtomicUsize>) -> MockPolicy {
    let mut policy = MockPolicy::new();
    policy
        .expect_review_only()
        .returning(|_| Box::pin(async { Ok(false) }));
    let calls = Arc::clone(calls);
    policy.expect_notify_settings().returning(move |_| {
        calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {
            Err(crate::domain::ports::PolicyError::Unexpected(
                "reached the policy".into(),
            ))
        })
    });
    policy
}

/// The fittings of the mocked mail use cases.
type MockFittings = Fitted<NoRenewal, NoDocuments, MockApprovalStore>;

/// The handler over `service`, auditing into a mock.
pub(super) fn handler_for(
    service: Arc<MailService<MockMailStore, MockTokenVault, MockPolicy, MockFittings>>,
) -> McpHandler<MockMailStore, MockTokenVault, MockPolicy, MockFittings> {
    let mut audit = MockAuditLog::new();
    audit.expect_record().returning(|_| Box::pin(async {}));
    McpHandler::new(
        service,
        Duration::from_secs(5),
        Arc::new(audit),
        Arc::default(),
    )
}

/// A caller of grant `g1` holding `capabilities`.
pub(super) fn caller_with(capabilities: &CapabilitySet, account: Option<&str>) -> Caller {
    Caller {
        account: account.map(str::to_owned),
        grant: GrantId::new("g1"),
        credential: UpstreamCredential::Bearer(SecretString::new("t")),
        capabilities: capabilities.clone(),
        token: AccessToken::new("g1.t"),
        renewable: false,
    }
}

/// Every subset of the capabilities a grant can hold (`read` is always in).
pub(super) fn capability_sets() -> Vec<CapabilitySet> {
    let optional = [
        Capability::Organize,
        Capability::Draft,
        Capability::Send,
        Capability::Notify,
    ];
    (0..1u32 << optional.len())
        .map(|mask| {
            CapabilitySet::with(
                optional
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, c)| *c),
            )
        })
        .collect()
}

/// The property: for every tool and every capability set, a tool reaches the mail
/// store if and only if the grant's policy holds the tool's capability; otherwise it is
/// refused with a sentence that says how to enable it.
#[tokio::test]
async fn a_tool_runs_iff_the_policy_allows_it() {
    for (spec, _) in CATALOG.iter() {
        let needed = spec.capability;
        assert_eq!(call(spec.name).capability(), needed, "{}", spec.name);
        for capabilities in capability_sets() {
            let calls = Arc::new(AtomicUsize::new(0));
            let service = Arc::new(MailService::new(
                counting_store(&calls),
                MockTokenVault::new(),
                reaching_policy(&calls),
                sent_by_this_grant(),
                ServiceLimits::default(),
            ));
            let handler = handler_for(service);
            let caller = caller_with(&capabilities, None);
            let outcome = handler
                .dispatch(call(spec.name), &caller, &Confirm::default())
                .await;
            let allowed = capabilities.allows(needed);
            let ran = calls.load(Ordering::SeqCst) > 0;
            assert_eq!(
                ran, allowed,
                "{} with {capabilities:?}: ran = {ran}",
                spec.name
            );
            match outcome {
                Err(ToolFailure::Service(ServiceError::NotPermitted { capability, .. })) => {
                    assert!(!allowed);
                    assert_eq!(capability, needed);
                }
                Err(ToolFailure::Service(
                    ServiceError::Store(MailStoreError::Unavailable(_)) | ServiceError::Policy(_),
                )) => assert!(allowed),
                other => panic!("{}: unexpected {:?}", spec.name, other.err()),
            }
        }
    }
}
