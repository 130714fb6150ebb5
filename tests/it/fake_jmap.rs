//! A misbehaving JMAP server for failures real servers won't produce on demand
//! (5xx, invalid JSON, silence, 429, a session state that changes).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use poem::{
    EndpointExt, Response, Route, Server, handler,
    http::StatusCode,
    listener::{Acceptor, Listener, TcpListener},
    web::{Data, Path},
};
use serde_json::json;

#[derive(Clone, Default)]
pub struct Hits {
    pub session: Arc<AtomicU64>,
    pub api: Arc<AtomicU64>,
}

#[handler]
fn session(Path(mode): Path<String>, hits: Data<&Hits>) -> Response {
    hits.session.fetch_add(1, Ordering::SeqCst);
    let body = json!({
        "capabilities": {"urn:ietf:params:jmap:core": {}, "urn:ietf:params:jmap:mail": {}},
        "accounts": {"A1": {"name": "fake", "isPersonal": true, "isReadOnly": false, "accountCapabilities": {}}},
        "primaryAccounts": {"urn:ietf:params:jmap:mail": "A1"},
        "username": "fake@example.test",
        "apiUrl": format!("/{mode}/api"),
        "downloadUrl": format!("/{mode}/download/{{accountId}}/{{blobId}}/{{name}}?type={{type}}"),
        "uploadUrl": "/upload", "eventSourceUrl": "/events",
        "state": "s1"
    });
    Response::builder()
        .content_type("application/json")
        .body(body.to_string())
}

#[handler]
async fn api(Path(mode): Path<String>, hits: Data<&Hits>) -> Response {
    hits.api.fetch_add(1, Ordering::SeqCst);
    let ok_mailboxes = || {
        json!({"methodResponses": [["Mailbox/get", {"accountId": "A1", "list": [
            {"id": "I", "name": "Inbox", "role": "inbox", "totalEmails": 1, "unreadEmails": 0}
        ], "state": "1"}, "mailboxes"]], "sessionState": if mode == "statechange" { "s2" } else { "s1" }})
    };
    match mode.as_str() {
        "error500" => Response::builder().status(StatusCode::INTERNAL_SERVER_ERROR).body("boom"),
        "garbage" => Response::builder().content_type("application/json").body("{not json"),
        "ratelimit" => Response::builder()
            .status(StatusCode::TOO_MANY_REQUESTS)
            .header("Retry-After", "7")
            .body(""),
        "unauthorized" => Response::builder().status(StatusCode::UNAUTHORIZED).body(""),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Response::builder().content_type("application/json").body(ok_mailboxes().to_string())
        }
        "methoderror" => Response::builder().content_type("application/json").body(
            json!({"methodResponses": [["error", {"type": "serverFail", "description": "disk on fire"}, "mailboxes"]], "sessionState": "s1"}).to_string(),
        ),
        _ => Response::builder().content_type("application/json").body(ok_mailboxes().to_string()),
    }
}

/// Starts the fake server; its session URL for a mode is `http://ADDR/MODE/session`.
pub async fn start() -> (SocketAddr, Hits) {
    let hits = Hits::default();
    let app = Route::new()
        .at("/:mode/session", session)
        .at("/:mode/api", poem::post(api))
        .data(hits.clone());
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .expect("bind");
    let addr = *acceptor.local_addr()[0].as_socket_addr().expect("tcp");
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    (addr, hits)
}
