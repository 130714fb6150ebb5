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
    /// `Email/set` requests seen (mode `throttledset`).
    pub sets: Arc<AtomicU64>,
}

/// Mode `throttledset`: `Email/get` answers every id as unread; the first `Email/set` is an
/// HTTP 429 with `Retry-After: 1`, the second a `rateLimit` SetError for every id, the third
/// and later update everything.
fn throttled_set(body: &str, hits: &Hits) -> Response {
    let request: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let call = &request["methodCalls"][0];
    let json = |v: serde_json::Value| {
        Response::builder()
            .content_type("application/json")
            .body(v.to_string())
    };
    match call[0].as_str() {
        Some("Email/get") => {
            let list: Vec<_> = call[1]["ids"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|id| json!({"id": id, "keywords": {}, "mailboxIds": {"I": true}}))
                .collect();
            json(
                json!({"methodResponses": [["Email/get", {"accountId": "A1", "list": list, "notFound": []}, "before"]], "sessionState": "s1"}),
            )
        }
        Some("Email/set") => {
            let ids: Vec<String> = call[1]["update"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            match hits.sets.fetch_add(1, Ordering::SeqCst) {
                0 => Response::builder()
                    .status(StatusCode::TOO_MANY_REQUESTS)
                    .header("Retry-After", "1")
                    .body(""),
                1 => {
                    let not_updated: serde_json::Map<String, serde_json::Value> = ids
                        .iter()
                        .map(|id| (id.clone(), json!({"type": "rateLimit"})))
                        .collect();
                    json(
                        json!({"methodResponses": [["Email/set", {"accountId": "A1", "notUpdated": not_updated}, "set"]], "sessionState": "s1"}),
                    )
                }
                _ => {
                    let updated: serde_json::Map<String, serde_json::Value> = ids
                        .iter()
                        .map(|id| (id.clone(), serde_json::Value::Null))
                        .collect();
                    json(
                        json!({"methodResponses": [["Email/set", {"accountId": "A1", "updated": updated}, "set"]], "sessionState": "s1"}),
                    )
                }
            }
        }
        _ => json(json!({"methodResponses": [], "sessionState": "s1"})),
    }
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
async fn api(Path(mode): Path<String>, hits: Data<&Hits>, body: String) -> Response {
    hits.api.fetch_add(1, Ordering::SeqCst);
    if mode == "throttledset" {
        return throttled_set(&body, &hits);
    }
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
