//! The storage contract: browser flow steps.

use super::now;
use crate::domain::{
    auth::sessions::SettingsSession,
    grant::GrantId,
    notify::{
        background::NotifierConsent,
        delivery::{Destination, WebhookSecret, WebhookUrl},
    },
    ports::{FlowStore, FlowStoreError, Parked, Step, StepKind, Sweeper},
    secret::SecretString,
};

/// What [`park_secrets`] parks.
pub const POKE_KEY_SECRET: &str = "poke-api-key-secret-value";
pub const VERIFIER_SECRET: &str = "pkce-verifier-secret-value";
pub const SESSION_ACCOUNT: &str = "person-account@example.com";
pub const SESSION_CSRF: &str = "session-csrf-secret-value";

fn session(account: &str, csrf: &str, expires_at: i64) -> Parked {
    Parked {
        step: Step::Session(SettingsSession {
            account_digest: "ab".into(),
            account: account.into(),
            csrf: SecretString::new(csrf),
        }),
        browser: [0; 32],
        csrf: [0; 32],
        expires_at,
    }
}

fn notifier_consent(destination: Destination) -> Parked {
    Parked {
        step: Step::NotifierConsent(NotifierConsent {
            grant: GrantId::new("g-1"),
            account: "ab".into(),
            destination,
            verifier: SecretString::new(VERIFIER_SECRET),
        }),
        browser: [3; 32],
        csrf: [0; 32],
        expires_at: now() + 600,
    }
}

/// Parks a sign-in (its PKCE verifier), a settings session and a notifier consent (a Poke
/// key) under `handle`.
pub async fn park_secrets<S: FlowStore>(store: &S, handle: &str) {
    store
        .park(handle, sign_in(VERIFIER_SECRET, now() + 600))
        .await
        .unwrap();
    store
        .park(handle, session(SESSION_ACCOUNT, SESSION_CSRF, now() + 600))
        .await
        .unwrap();
    store
        .park(
            handle,
            notifier_consent(Destination::Poke {
                api_key: SecretString::new(POKE_KEY_SECRET),
            }),
        )
        .await
        .unwrap();
}

fn sign_in(verifier: &str, expires_at: i64) -> Parked {
    Parked {
        step: Step::SignIn(SecretString::new(verifier)),
        browser: [1; 32],
        csrf: [2; 32],
        expires_at,
    }
}

/// A parked step opens with its handle only, for its kind only, and is taken once.
pub async fn a_flow_step_opens_with_its_handle_and_is_taken_once<S: FlowStore>(store: &S) {
    store
        .park("handle-1", sign_in("verifier-1", now() + 600))
        .await
        .unwrap();
    let parked = store
        .peek(StepKind::SignIn, "handle-1")
        .await
        .unwrap()
        .unwrap();
    let Step::SignIn(verifier) = &parked.step else {
        panic!("another step came back: {parked:?}");
    };
    assert_eq!(verifier.expose_secret(), "verifier-1");
    assert_eq!((parked.browser, parked.csrf), ([1; 32], [2; 32]));
    assert!(
        store
            .peek(StepKind::SignIn, "handle-2")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .peek(StepKind::Upstream, "handle-1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(!store.remove(StepKind::Upstream, "handle-1").await.unwrap());
    assert!(store.remove(StepKind::SignIn, "handle-1").await.unwrap());
    assert!(!store.remove(StepKind::SignIn, "handle-1").await.unwrap());
    assert!(
        store
            .peek(StepKind::SignIn, "handle-1")
            .await
            .unwrap()
            .is_none()
    );
    // A notifier consent keeps its destination's secret.
    let secret = WebhookSecret::generate();
    let whsec = secret.to_whsec().expose_secret().to_owned();
    let url = WebhookUrl::parse("https://hooks.example.net/m", false).unwrap();
    store
        .park(
            "handle-3",
            notifier_consent(Destination::Webhook { url, secret }),
        )
        .await
        .unwrap();
    let Some(Parked {
        step: Step::NotifierConsent(consent),
        browser,
        ..
    }) = store
        .peek(StepKind::NotifierConsent, "handle-3")
        .await
        .unwrap()
    else {
        panic!("the notifier consent is gone");
    };
    assert_eq!((consent.grant.as_str(), browser), ("g-1", [3; 32]));
    let Destination::Webhook { url, secret } = consent.destination else {
        panic!("another destination came back");
    };
    assert_eq!(url.as_url().as_str(), "https://hooks.example.net/m");
    assert_eq!(secret.to_whsec().expose_secret(), whsec);
}

/// Of many takers of one step at once, exactly one gets it.
pub async fn a_flow_step_taken_at_once_by_many_goes_to_one<S: FlowStore + Clone>(store: &S) {
    store
        .park("contested", sign_in("v", now() + 600))
        .await
        .unwrap();
    let takers = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.remove(StepKind::SignIn, "contested").await.unwrap() })
    });
    let mut won = 0;
    for taker in takers {
        won += usize::from(taker.await.unwrap());
    }
    assert_eq!(won, 1);
}

/// An expired step is gone for peeking and taking, and a sweep removes it; a session keeps
/// what it was opened with.
pub async fn an_expired_flow_step_is_gone<S: FlowStore + Sweeper>(store: &S) {
    store.park("old", sign_in("v", now() - 1)).await.unwrap();
    assert!(store.peek(StepKind::SignIn, "old").await.unwrap().is_none());
    assert!(!store.remove(StepKind::SignIn, "old").await.unwrap());
    store
        .park(
            "cookie",
            session("person@example.com", "csrf-1", now() + 60),
        )
        .await
        .unwrap();
    let Some(Parked {
        step: Step::Session(back),
        ..
    }) = store.peek(StepKind::Session, "cookie").await.unwrap()
    else {
        panic!("the session is gone");
    };
    assert_eq!(back.account, "person@example.com");
    assert_eq!(back.csrf.expose_secret(), "csrf-1");
    // The sweep counts the expired step among what it removed.
    store.park("old-2", sign_in("v", now() - 1)).await.unwrap();
    let rules = crate::domain::ports::SweepRules {
        unused_client_secs: i64::MAX / 2,
        retention: crate::domain::ports::Retention {
            max_age_secs: i64::MAX / 4,
            max_events: usize::MAX,
        },
    };
    assert!(store.sweep(rules).await.unwrap() >= 1);
    assert!(matches!(
        store.park("x", sign_in("v", now() + 1)).await,
        Ok(()) | Err(FlowStoreError::Busy)
    ));
}
