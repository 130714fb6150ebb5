//! The loopback HTTPS sink that background-delivery tests deliver to (a scripted Standard
//! Webhooks / Poke receiver counting every connection), the independent webhook-signature
//! check, and the flags that turn background notifications on delivering to a sink.

use std::{
    collections::VecDeque,
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use chrono::Utc;
use http_body_util::{BodyExt as _, Full};
use hyper::{Request, Response, body::Bytes, service::service_fn};
use hyper_util::rt::TokioIo;
use sha2::{Digest as _, Sha256};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        ServerConfig,
        crypto::aws_lc_rs,
        pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    },
};

use crate::support::tempdir;

/// One scripted answer.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    /// Waits this long before answering.
    pub(crate) delay: Duration,
}

/// Answers `status` at once, with no headers.
pub(crate) fn reply(status: u16) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        delay: Duration::ZERO,
    }
}

/// A request the sink received.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) at: Instant,
    pub(crate) path: String,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Vec<u8>,
}

#[derive(Default)]
struct State {
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    bearer: Option<String>,
}

/// An HTTPS server on 127.0.0.1 with a fresh self-signed certificate: answers its script in
/// order (then 200), records every request and counts every TCP connection.
pub(crate) struct Sink {
    addr: SocketAddr,
    pub(crate) cert_pem: Vec<u8>,
    connections: Arc<AtomicUsize>,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    pub(crate) async fn start(script: Vec<Reply>) -> Self {
        Self::start_with(script, None).await
    }

    /// A sink that answers 401 unless the request carries `Authorization: Bearer <bearer>`.
    pub(crate) async fn start_with(script: Vec<Reply>, bearer: Option<&str>) -> Self {
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let chain: Vec<CertificateDer<'static>> = vec![certified.cert.der().clone()];
        let mut tls = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(tls));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let state = Arc::new(State {
            script: Mutex::new(script.into()),
            bearer: bearer.map(str::to_owned),
            ..State::default()
        });
        let task = tokio::spawn({
            let connections = connections.clone();
            let state = state.clone();
            async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    connections.fetch_add(1, Ordering::SeqCst);
                    let acceptor = acceptor.clone();
                    let state = state.clone();
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let service = service_fn(move |req| answer(state.clone(), req));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    });
                }
            }
        });
        Self {
            addr,
            cert_pem: certified.cert.pem().into_bytes(),
            connections,
            state,
            task,
        }
    }

    /// The loopback port it listens on.
    pub(crate) fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Queues `reply` after the scripted answers still unanswered.
    pub(crate) fn then_answer(&self, reply: Reply) {
        self.state.script.lock().unwrap().push_back(reply);
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// TCP connections accepted so far.
    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    state: Arc<State>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let at = Instant::now();
    let path = req.uri().path().to_owned();
    let headers = req.headers().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let authorized = state.bearer.as_ref().is_none_or(|key| {
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {key}"))
    });
    state.requests.lock().unwrap().push(Recorded {
        at,
        path,
        headers,
        body,
    });
    let scripted = state.script.lock().unwrap().pop_front();
    let reply = match scripted {
        _ if !authorized => reply(401),
        Some(r) => r,
        None => reply(200),
    };
    tokio::time::sleep(reply.delay).await;
    let mut response = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(*name, value);
    }
    Ok(response.body(Full::new(Bytes::from_static(b"{}"))).unwrap())
}

// ---------------------------------------------------------------------------------------------
// An independent Standard Webhooks verifier
// ---------------------------------------------------------------------------------------------

/// HMAC-SHA256 written out from RFC 2104, so the check below shares no code with the signer.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a receiver does (Standard Webhooks, "Verifying webhook signatures"): the secret's
/// bytes are the base64 after `whsec_`; the signed content is `{id}.{timestamp}.{body}`; one of
/// the space-separated `v1,<base64>` signatures must match; the timestamp must be recent.
pub(crate) fn verify(whsec: &str, headers: &http::HeaderMap, body: &[u8]) -> Result<(), String> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(format!("no {name}"))
    };
    let id = get("webhook-id")?;
    let timestamp = get("webhook-timestamp")?;
    let signatures = get("webhook-signature")?;
    let sent: i64 = timestamp.parse().map_err(|_| "timestamp not a number")?;
    if (Utc::now().timestamp() - sent).abs() > 60 {
        return Err(format!("timestamp {sent} is not recent"));
    }
    let key = STANDARD
        .decode(whsec.strip_prefix("whsec_").ok_or("no whsec_")?)
        .map_err(|e| e.to_string())?;
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    let expected = STANDARD.encode(hmac_sha256(&key, &content));
    signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
        .then_some(())
        .ok_or_else(|| "no signature matches".into())
}

/// The flags that offer background notifications delivering to `sink` (its certificate
/// trusted, loopback allowed), with the directory holding the notifier key and the certificate.
pub(crate) fn background_flags(sink: &Sink) -> (tempdir::Dir, Vec<String>) {
    let keys = tempdir::Dir::new("notifier-key");
    let ca = keys.0.join("sink.pem");
    std::fs::write(&ca, &sink.cert_pem).unwrap();
    let key = keys.0.join("notifier.key");
    let flags = vec![
        "--notify-background".to_owned(),
        "--notifier-key-file".to_owned(),
        key.display().to_string(),
        "--test-allow-private-destinations".to_owned(),
        "--test-delivery-ca-file".to_owned(),
        ca.display().to_string(),
    ];
    (keys, flags)
}
