//! The storage contract: Background delivery's sealed records.

use super::{connected, upstream};
use crate::domain::{
    grant::GrantId,
    notify::background::LastDelivery,
    notify::delivery::{Destination, WebhookSecret, WebhookUrl},
    ports::{BackgroundStore, NotifierKeyring, TokenVault},
};

fn webhook() -> (Destination, String) {
    let secret = WebhookSecret::generate();
    let whsec = secret.to_whsec().expose_secret().to_owned();
    let url = WebhookUrl::parse("https://hooks.example.net/mail", false).unwrap();
    (Destination::Webhook { url, secret }, whsec)
}

/// Turns on delivery to a webhook for `grant` of the person `acct`.
async fn turned_on<F: BackgroundStore>(front: &F, grant: &GrantId) {
    front
        .seal_destination(grant, "acct", &webhook().0)
        .await
        .unwrap();
}

async fn has_notifier<N: NotifierKeyring>(notifier: &N, account: &str) -> bool {
    notifier
        .notifier_accounts()
        .await
        .unwrap()
        .iter()
        .any(|a| a == account)
}

/// What is sealed to the notifier opens with the notifier's key only: `thief` holds another
/// key over the same records.
pub async fn only_the_notifier_key_opens_background_records<
    S: TokenVault,
    F: BackgroundStore,
    N: NotifierKeyring,
>(
    store: &S,
    front: &F,
    notifier: &N,
    thief: &N,
) {
    let (grant, _) = connected(store, "client-upstream-secret").await;
    front
        .seal_notifier("acct", &upstream("notifier-upstream-secret"))
        .await
        .unwrap();
    let (destination, whsec) = webhook();
    front
        .seal_destination(&grant, "acct", &destination)
        .await
        .unwrap();
    assert!(thief.open_notifier("acct").await.is_err());
    assert!(thief.open_destination(&grant).await.is_err());
    let opened = notifier.open_notifier("acct").await.unwrap().unwrap();
    assert_eq!(opened.access.expose_secret(), "notifier-upstream-secret");
    let Some(Destination::Webhook { secret, .. }) =
        notifier.open_destination(&grant).await.unwrap()
    else {
        panic!("no webhook");
    };
    assert_eq!(secret.to_whsec().expose_secret(), whsec);
    assert!(notifier.open_notifier("nobody").await.unwrap().is_none());
}

/// Turning off removes the destination and says whether the person's notifier is still
/// needed; where the notifier left off survives a refresh of its tokens.
pub async fn turning_off_says_whether_the_notifier_is_still_needed<
    F: BackgroundStore,
    N: NotifierKeyring,
>(
    front: &F,
    notifier: &N,
) {
    let (a, b) = (GrantId::new("ga"), GrantId::new("gb"));
    for g in [&a, &b] {
        turned_on(front, g).await;
    }
    front
        .record_delivery(
            &a,
            &LastDelivery {
                at: chrono::Utc::now(),
                delivered: true,
                detail: "delivered (HTTP 200) after 1 attempt".into(),
            },
        )
        .await
        .unwrap();
    let shown = front.background(&a).await.unwrap().unwrap();
    assert_eq!(
        (
            shown.kind.as_str(),
            shown.target.as_str(),
            shown.account.as_str()
        ),
        ("webhook", "hooks.example.net", "acct")
    );
    assert!(shown.last.unwrap().delivered);
    assert_eq!(front.backgrounds().await.unwrap().len(), 2);
    assert!(
        front.remove_destination(&a).await.unwrap(),
        "b still delivers"
    );
    assert!(!front.remove_destination(&b).await.unwrap(), "none left");
    assert!(front.background(&a).await.unwrap().is_none());
    front.seal_notifier("acct", &upstream("t")).await.unwrap();
    assert!(has_notifier(notifier, "acct").await);
    front.save_cursor("acct", "cursor-1").await.unwrap();
    front.seal_notifier("acct", &upstream("t2")).await.unwrap();
    assert_eq!(
        front.cursor("acct").await.unwrap().as_deref(),
        Some("cursor-1")
    );
    notifier.remove_notifier("acct").await.unwrap();
    assert!(!has_notifier(notifier, "acct").await);
    assert_eq!(front.cursor("acct").await.unwrap(), None);
}

/// However a connection ends, its destination goes with it.
pub async fn a_connection_ending_takes_its_destination_with_it<
    S: TokenVault,
    F: BackgroundStore,
>(
    store: &S,
    front: &F,
) {
    let (grant, _) = connected(store, "s").await;
    turned_on(front, &grant).await;
    store.remove_grant(&grant).await.unwrap();
    assert!(front.background(&grant).await.unwrap().is_none());
    assert!(front.backgrounds().await.unwrap().is_empty());
}

/// Turning on needs the person's notifier grant (checked with the write); the notifier ends
/// only a grant no destination uses, taking its cursor along.
pub async fn the_notifier_ends_only_an_unused_grant_and_turning_on_needs_one<
    S: TokenVault,
    F: BackgroundStore,
    N: NotifierKeyring,
>(
    store: &S,
    front: &F,
    notifier: &N,
) {
    let (grant, _) = connected(store, "s").await;
    assert!(
        !front
            .seal_destination_if_notifier(&grant, "acct", &webhook().0)
            .await
            .unwrap()
    );
    assert!(front.background(&grant).await.unwrap().is_none());
    front.seal_notifier("acct", &upstream("n")).await.unwrap();
    assert!(
        front
            .seal_destination_if_notifier(&grant, "acct", &webhook().0)
            .await
            .unwrap()
    );
    front.save_cursor("acct", "c1").await.unwrap();
    assert!(
        notifier.take_unused("acct").await.unwrap().is_none(),
        "in use"
    );
    assert!(has_notifier(notifier, "acct").await);
    // A delivery recorded after turning off brings nothing back.
    front.remove_destination(&grant).await.unwrap();
    front
        .record_delivery(
            &grant,
            &LastDelivery {
                at: chrono::Utc::now(),
                delivered: true,
                detail: "late".into(),
            },
        )
        .await
        .unwrap();
    assert!(front.background(&grant).await.unwrap().is_none());
    let taken = notifier.take_unused("acct").await.unwrap().unwrap();
    assert_eq!(taken.refresh.unwrap().expose_secret(), "n-refresh");
    assert!(!has_notifier(notifier, "acct").await);
    assert_eq!(front.cursor("acct").await.unwrap(), None);
    front.save_cursor("acct", "c2").await.unwrap();
    assert_eq!(
        front.cursor("acct").await.unwrap(),
        None,
        "no cursor without a notifier"
    );
}

/// Destinations of connections that no longer exist are removed.
pub async fn destinations_of_ended_connections_are_removed<S: TokenVault, F: BackgroundStore>(
    store: &S,
    front: &F,
) {
    let (grant, _) = connected(store, "s").await;
    turned_on(front, &grant).await;
    turned_on(front, &GrantId::new("gone")).await;
    assert_eq!(front.remove_orphans().await.unwrap(), 1);
    let left: Vec<GrantId> = front
        .backgrounds()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.grant)
        .collect();
    assert_eq!(left, vec![grant]);
}
