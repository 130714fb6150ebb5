//! The service on PostgreSQL storage (`--storage postgres://…`), end to end: the connect flow,
//! tool calls, client refresh rotation and revocation; and two instances sharing one database,
//! where a grant made through one works on the other and ends on both.

use mailconnect::outbound::postgres::testing::{as_superuser, fresh_database};
use serde_json::json;

use crate::support::oauth::{
    Browser, Client, Standin, call_tool_at, oauth_app_toward, oauth_app_with_client,
    spawn_oauth_app, tokens,
};

const CALLBACK: &str = "http://127.0.0.1:41999/callback";

async fn on_postgres() -> Vec<String> {
    vec!["--storage".into(), fresh_database().await]
}

#[tokio::test]
async fn the_connect_flow_refresh_and_a_restart_work_on_postgres() {
    let storage = on_postgres().await;
    let flags: Vec<&str> = storage.iter().map(String::as_str).collect();
    let (_standin, app, client) = oauth_app_toward(Standin::start(), &flags, CALLBACK).await;
    let mut browser = Browser::default();
    let returned = client.authorize(&mut browser).await;
    let t1 = client.exchange(&returned).await;
    let (status, body) = call_tool_at(&app.base(), &t1.access, "get_identity", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let t2 = tokens(client.refresh(&t1.refresh).await).await;
    assert_ne!(t2.refresh, t1.refresh);
    // A restart on the same database keeps every grant.
    let app = app.restart().await;
    let (status, body) = call_tool_at(&app.base(), &t2.access, "list_mailboxes", json!({})).await;
    assert_eq!(status, 200, "{body}");
    // The refresh token two generations back is a reuse: the grant ends.
    assert_eq!(client.refresh(&t1.refresh).await.status(), 400);
    let (status, _) = call_tool_at(&app.base(), &t2.access, "get_identity", json!({})).await;
    assert_eq!(
        status, 401,
        "a grant ended by reuse detection still answers"
    );
}

#[tokio::test]
async fn a_grant_made_on_one_instance_works_and_ends_on_another() {
    let storage = on_postgres().await;
    let standin = Standin::start();
    let flags: Vec<&str> = storage.iter().map(String::as_str).collect();
    let a = spawn_oauth_app(&standin, &flags).await;
    // Both instances stand behind one public URL, as behind a load balancer.
    let mut b_flags = flags.clone();
    let public = a.base();
    b_flags.extend(["--public-url", public.as_str()]);
    let b = spawn_oauth_app(&standin, &b_flags).await;
    let client_a = Client::register(&a, CALLBACK).await;
    let t1 = client_a.connect().await;
    let (status, body) = call_tool_at(&b.base(), &t1.access, "get_identity", json!({})).await;
    assert_eq!(status, 200, "instance B does not know A's grant: {body}");
    // The client refreshes at B, then uses the new pair at A.
    let client_b = Client {
        base: b.base(),
        ..client_a.clone()
    };
    let t2 = tokens(client_b.refresh(&t1.refresh).await).await;
    let (status, body) = call_tool_at(&a.base(), &t2.access, "list_mailboxes", json!({})).await;
    assert_eq!(status, 200, "{body}");
    // Revoked at A: B refuses at once (no instance caches a grant).
    assert!(client_a.revoke(&t2.refresh).await.status().is_success());
    let (status, _) = call_tool_at(&b.base(), &t2.access, "get_identity", json!({})).await;
    assert_eq!(status, 401, "instance B still serves a revoked grant");
}

/// `mailconnect storage copy` (the real binary) moves a redb vault to PostgreSQL: the client's
/// tokens keep working there without a new consent, and the redb file is left as it was.
#[tokio::test]
async fn a_vault_moved_by_storage_copy_keeps_its_grants() {
    let (_standin, app, client) = oauth_app_with_client(&[], CALLBACK).await;
    let t1 = client.connect().await;
    let url = fresh_database().await;
    let mut said = String::new();
    let app = app
        .restart_with(&["--storage", &url], |data| {
            let file = data.join(mailconnect::app::VAULT_FILE);
            let before = std::fs::read(&file).unwrap();
            // The stopped server's session workers may hold the file a moment longer.
            for _ in 0..100 {
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailconnect"))
                    .args(["storage", "copy", "--from"])
                    .arg(&file)
                    .args(["--to", &url])
                    .output()
                    .unwrap();
                said = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                if out.status.success() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            assert_eq!(std::fs::read(&file).unwrap(), before, "the source changed");
        })
        .await;
    assert!(said.contains("grants"), "{said}");
    assert!(!said.contains("password"), "{said}");
    let (status, body) = call_tool_at(&app.base(), &t1.access, "get_identity", json!({})).await;
    assert_eq!(
        status, 200,
        "the copied grant does not open: {body}; copy said {said}"
    );
    let t2 = tokens(client.refresh(&t1.refresh).await).await;
    let (status, body) = call_tool_at(&app.base(), &t2.access, "list_mailboxes", json!({})).await;
    assert_eq!(status, 200, "{body}");
}

/// The database going away mid-load (its connections cut, new ones refused): a tool call is
/// a 503 — never a 401 that would make the client drop its tokens, never a 500 — and the
/// same tokens work again once it is back.
#[tokio::test]
async fn a_lost_database_fails_closed_and_recovers() {
    let url = fresh_database().await;
    let db = url.rsplit('/').next().unwrap().to_owned();
    let (_standin, app, client) =
        oauth_app_toward(Standin::start(), &["--storage", &url], CALLBACK).await;
    let t = client.connect().await;
    let (status, body) = call_tool_at(&app.base(), &t.access, "get_identity", json!({})).await;
    assert_eq!(status, 200, "{body}");
    as_superuser(&format!(
        "ALTER DATABASE {db} ALLOW_CONNECTIONS false; \
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
    ))
    .await;
    let (status, body) = call_tool_at(&app.base(), &t.access, "get_identity", json!({})).await;
    assert_eq!(status, 503, "{body}");
    assert!(!body.to_string().contains("postgres://"), "{body}");
    let refresh = client.refresh(&t.refresh).await;
    assert!(
        refresh.status().is_server_error() && refresh.status() != 500,
        "a refresh without storage: {}",
        refresh.status()
    );
    as_superuser(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true")).await;
    let (status, body) = call_tool_at(&app.base(), &t.access, "get_identity", json!({})).await;
    assert_eq!(status, 200, "not recovered: {body}");
    let t2 = tokens(client.refresh(&t.refresh).await).await;
    assert_ne!(t2.refresh, t.refresh);
}
