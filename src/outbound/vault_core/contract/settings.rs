//! The storage contract: Grant settings and the audit log.

use super::{ACCOUNT, connected, event};
use crate::domain::{
    auth::token::new_grant_id,
    grant::{Capability, CapabilitySet},
    notify::settings::NotifySettings,
    ports::{AuditKind, AuditLog, Policy, PolicyError, TokenVault},
    sending::recipients::RecipientRule,
};

/// Grant settings: every part reads back what was written, a capability change applies on
/// the next request, and a grant that ended has none.
pub async fn grant_settings_round_trip<S: TokenVault + Policy>(store: &S) {
    let (grant, _) = connected(store, "up").await;
    assert_eq!(
        store.capabilities(&grant).await.unwrap(),
        CapabilitySet::read_only()
    );
    let organize = CapabilitySet::with([Capability::Organize, Capability::Send]);
    store
        .set_capabilities(&grant, organize.clone())
        .await
        .unwrap();
    assert_eq!(store.capabilities(&grant).await.unwrap(), organize);
    let rules = NotifySettings {
        deny: vec!["@news.example".into()],
        allow: vec!["boss@example.com".into()],
        only_allowed: true,
        zone: "Europe/Berlin".into(),
        ..NotifySettings::default()
    };
    assert_eq!(
        store.notify_settings(&grant).await.unwrap(),
        NotifySettings::default()
    );
    store
        .set_notify_settings(&grant, rules.clone())
        .await
        .unwrap();
    assert_eq!(store.notify_settings(&grant).await.unwrap(), rules);
    assert_eq!(
        store.recipients(&grant).await.unwrap(),
        RecipientRule::Anyone
    );
    store
        .set_recipients(&grant, RecipientRule::WrittenTo)
        .await
        .unwrap();
    assert_eq!(
        store.recipients(&grant).await.unwrap(),
        RecipientRule::WrittenTo
    );
    assert!(!store.review_only(&grant).await.unwrap());
    store.set_review_only(&grant, true).await.unwrap();
    assert!(store.review_only(&grant).await.unwrap());
    let listed = store.grants_of(ACCOUNT).await.unwrap();
    assert_eq!(
        (
            &listed[0].capabilities,
            &listed[0].notify,
            &listed[0].recipients,
            listed[0].review_only
        ),
        (&organize, &rules, &RecipientRule::WrittenTo, true)
    );
    let gone = new_grant_id();
    assert_eq!(
        store
            .set_capabilities(&gone, CapabilitySet::read_only())
            .await
            .unwrap_err(),
        PolicyError::UnknownGrant(gone.clone())
    );
    assert_eq!(
        store.review_only(&gone).await.unwrap_err(),
        PolicyError::UnknownGrant(gone.clone())
    );
}

/// The audit log reads back a grant's events newest first, up to the limit, and settings
/// show the last tool call as "last used".
pub async fn audit_events_read_back_newest_first<S: TokenVault + AuditLog>(store: &S) {
    let (grant, _) = connected(store, "up").await;
    let (other, _) = connected(store, "up").await;
    assert_eq!(
        store.grants_of(ACCOUNT).await.unwrap()[0].last_used_at,
        None
    );
    for tool in ["first", "second", "third"] {
        store.record(event(&grant, tool)).await;
    }
    store.record(event(&other, "elsewhere")).await;
    let tools: Vec<String> = store
        .events(&grant, 2)
        .await
        .unwrap()
        .into_iter()
        .map(|e| match e.kind {
            AuditKind::ToolCall { tool, .. } => tool,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(tools, ["third", "second"]);
    assert_eq!(store.events(&other, 10).await.unwrap().len(), 1);
    let used = store
        .grants_of(ACCOUNT)
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.grant == grant)
        .unwrap();
    assert!(used.last_used_at.is_some());
}
