//! The read use cases through mocked ports: paging, re-checking what the server returned,
//! arguments refused before the mail server, authentication and the policy per request.

use chrono::{TimeZone as _, Utc};

use super::*;
use crate::domain::{
    grant::{GrantId, UpstreamCredential},
    mail::{Attachment, Keywords},
    ports::{
        MockApprovalStore, MockMailStore, MockPolicy, MockTokenVault, OpenedGrant, SearchPage,
    },
    search::query::PageSize,
    secret::SecretString,
};

fn caller() -> Caller {
    Caller {
        account: None,
        grant: GrantId::new("g1"),
        credential: UpstreamCredential::Bearer(SecretString::new("t")),
        capabilities: CapabilitySet::read_only(),
        token: AccessToken::new("g1.t"),
        renewable: false,
    }
}

fn summary(id: &str, hour: u32) -> EmailSummary {
    EmailSummary {
        id: EmailId::parse(id).unwrap(),
        thread_id: ThreadId::parse("T1").unwrap(),
        received_at: Utc.with_ymd_and_hms(2024, 3, 1, hour, 0, 0).unwrap(),
        sent_at: None,
        from: vec![],
        to: vec![],
        subject: String::new(),
        preview: String::new(),
        keywords: Keywords::default(),
        has_attachment: false,
        mailbox_ids: vec![],
        sender_verified: None,
    }
}

type Mocked = MailService<
    MockMailStore,
    MockTokenVault,
    MockPolicy,
    Fitted<NoRenewal, NoDocuments, MockApprovalStore>,
>;

fn service(store: MockMailStore) -> Mocked {
    MailService::new(
        store,
        MockTokenVault::new(),
        MockPolicy::new(),
        MockApprovalStore::new(),
        ServiceLimits::default(),
    )
}

fn page(ids: &[(&str, u32)], total: Option<u64>, position: u64) -> SearchPage {
    SearchPage {
        emails: ids.iter().map(|(id, h)| summary(id, *h)).collect(),
        mailboxes: vec![],
        total,
        position,
    }
}

#[tokio::test]
async fn a_full_page_with_more_matches_gets_a_cursor_that_resumes_after_its_last_email() {
    let mut store = MockMailStore::new();
    // Size 2: the store is asked for one more, which says that more follow.
    store
        .expect_search()
        .withf(|_, _, size, start| size.size == 2 && *start == PageStart::First)
        .returning(|_, _, _, _| {
            Box::pin(async { Ok(page(&[("M3", 3), ("M2", 2), ("M1", 1)], Some(3), 0)) })
        });
    // The next page: at or before M2's time, with room for the one seen at that second.
    let at = summary("M2", 2).received_at;
    store
        .expect_search()
        .withf(move |_, _, _, start| {
            *start
                == PageStart::AtOrBefore {
                    at,
                    extra: 1 + BOUNDARY_SLACK,
                }
        })
        .returning(|_, _, _, _| Box::pin(async { Ok(page(&[("M2", 2), ("M1", 1)], Some(2), 0)) }));
    let svc = service(store);
    let mut request = SearchRequest {
        limit: Some(2),
        ..SearchRequest::default()
    };
    let first = svc.search(&caller(), &request).await.unwrap();
    assert_eq!(first.emails.len(), 2);
    request.cursor = first.next_cursor;
    let second = svc.search(&caller(), &request).await.unwrap();
    assert_eq!(
        second
            .emails
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        ["M1"],
        "M2 is not repeated"
    );
    assert_eq!(second.total, Some(3));
    assert_eq!(second.next_cursor, None, "the last page has no cursor");
}

/// Two emails received in the same second that swap places between requests are still each
/// returned exactly once.
#[tokio::test]
async fn emails_of_the_same_second_are_returned_once_even_when_their_order_changes() {
    let mut store = MockMailStore::new();
    store
        .expect_search()
        .withf(|_, _, _, start| *start == PageStart::First)
        .returning(|_, _, _, _| {
            Box::pin(async { Ok(page(&[("MA", 5), ("MB", 5), ("MC", 5)], Some(3), 0)) })
        });
    store
        .expect_search()
        .withf(|_, _, _, start| matches!(start, PageStart::AtOrBefore { .. }))
        .returning(|_, _, _, _| {
            Box::pin(async { Ok(page(&[("MC", 5), ("MB", 5), ("MA", 5)], Some(3), 0)) })
        });
    let svc = service(store);
    let mut request = SearchRequest {
        limit: Some(1),
        ..SearchRequest::default()
    };
    let mut ids = Vec::new();
    for _ in 0..5 {
        let page = svc.search(&caller(), &request).await.unwrap();
        ids.extend(page.emails.iter().map(|e| e.id.as_str().to_owned()));
        match page.next_cursor {
            Some(c) => request.cursor = Some(c),
            None => break,
        }
    }
    ids.sort();
    assert_eq!(ids, ["MA", "MB", "MC"]);
}

#[tokio::test]
async fn results_outside_the_window_are_dropped_even_when_the_server_returns_them() {
    let mut store = MockMailStore::new();
    store.expect_search().returning(|_, _, _, _| {
        Box::pin(async { Ok(page(&[("M10", 10), ("M9", 9), ("M8", 8)], Some(3), 0)) })
    });
    let request = SearchRequest {
        query: EmailQuery {
            after: Some(Utc.with_ymd_and_hms(2024, 3, 1, 8, 30, 0).unwrap()),
            before: Some(Utc.with_ymd_and_hms(2024, 3, 1, 10, 0, 0).unwrap()),
            ..EmailQuery::default()
        },
        ..SearchRequest::default()
    };
    let result = service(store).search(&caller(), &request).await.unwrap();
    let ids: Vec<&str> = result.emails.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["M9"]);
}

#[tokio::test]
async fn what_the_query_certainly_excludes_is_dropped_even_when_the_server_returns_it() {
    let mut store = MockMailStore::new();
    store.expect_search().returning(|_, _, _, _| {
        let mut from_acme = summary("M8", 8);
        from_acme.from = vec![crate::domain::mail::Address {
            name: None,
            email: "billing@acme.example".into(),
        }];
        Box::pin(async move {
            let mut p = page(&[("M10", 10), ("M9", 9)], Some(3), 0);
            p.emails.push(from_acme);
            Ok(p)
        })
    });
    let source = "before:2024-03-01T10:00:00Z -from:acme.example".to_owned();
    let request = SearchRequest {
        query: EmailQuery {
            expression: Some(crate::domain::search::query::SearchExpression {
                expr: search_syntax::parse(&source, Utc::now()).unwrap(),
                source,
            }),
            ..EmailQuery::default()
        },
        ..SearchRequest::default()
    };
    let result = service(store).search(&caller(), &request).await.unwrap();
    let ids: Vec<&str> = result.emails.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["M9"], "10:00 is not before 10:00; acme is excluded");
}

#[tokio::test]
async fn bad_arguments_never_reach_the_mail_server() {
    let svc = service(MockMailStore::new());
    for request in [
        SearchRequest {
            limit: Some(0),
            ..SearchRequest::default()
        },
        SearchRequest {
            cursor: Some("garbage".into()),
            ..SearchRequest::default()
        },
    ] {
        let err = svc.search(&caller(), &request).await.unwrap_err();
        assert!(matches!(err, ServiceError::InvalidArgument(_)), "{err}");
    }
}

#[tokio::test]
async fn an_oversized_limit_is_clamped_before_the_store_sees_it() {
    let mut store = MockMailStore::new();
    store
        .expect_search()
        .withf(|_, _, size, _| {
            *size
                == PageSize {
                    size: 50,
                    clamped_from: Some(999),
                }
        })
        .returning(|_, _, _, _| Box::pin(async { Ok(page(&[], Some(0), 0)) }));
    let request = SearchRequest {
        limit: Some(999),
        ..SearchRequest::default()
    };
    let result = service(store).search(&caller(), &request).await.unwrap();
    assert_eq!(result.size.clamped_from, Some(999));
}

#[tokio::test]
async fn an_unknown_token_is_unauthenticated_and_the_policy_is_read_per_request() {
    let mut vault = MockTokenVault::new();
    vault.expect_open().returning(|t| {
        let ok = t.expose_secret() == "good";
        Box::pin(async move {
            if ok {
                Ok(OpenedGrant {
                    account: None,
                    grant: GrantId::new("g1"),
                    credential: UpstreamCredential::Bearer(SecretString::new("u")),
                    upstream_refresh: None,
                    upstream_expires_at: None,
                    upstream_issued_at: None,
                    resource: None,
                })
            } else {
                Err(VaultError::InvalidToken)
            }
        })
    });
    let mut policy = MockPolicy::new();
    policy
        .expect_capabilities()
        .times(1)
        .returning(|_| Box::pin(async { Ok(CapabilitySet::with([Capability::Organize])) }));
    let svc = MailService::new(
        MockMailStore::new(),
        vault,
        policy,
        MockApprovalStore::new(),
        ServiceLimits::default(),
    );
    let err = svc
        .authenticate(&AccessToken::new("bad"))
        .await
        .unwrap_err();
    assert_eq!(err, ServiceError::Unauthenticated(VaultError::InvalidToken));
    let caller = svc.authenticate(&AccessToken::new("good")).await.unwrap();
    assert!(caller.capabilities.allows(Capability::Organize));
}

#[tokio::test]
async fn attachment_text_is_extracted_for_text_types() {
    let mut store = MockMailStore::new();
    store.expect_attachment().returning(|_, _, blob, max| {
        let blob = blob.clone();
        Box::pin(async move {
            assert_eq!(max, ServiceLimits::default().max_attachment_bytes);
            Ok(AttachmentContent {
                attachment: Attachment {
                    blob_id: blob,
                    name: Some("notes.txt".into()),
                    mime_type: "text/plain".into(),
                    charset: None,
                    size: 5,
                },
                bytes: b"hello".to_vec(),
            })
        })
    });
    let view = service(store)
        .attachment(
            &caller(),
            &EmailId::parse("M1").unwrap(),
            &BlobId::parse("B1").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(view.text.unwrap().text, "hello");
}
