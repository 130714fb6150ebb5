//! What a client hears without asking: its tool list changed (when the person changes the
//! connection's capabilities), and new mail arrived (the `mail://new` resource). Legacy sessions
//! hear it on their stream and through `resources/subscribe`; 2026-07-28 clients on a
//! `subscriptions/listen` stream.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard, PoisonError},
};

use rmcp::{
    ErrorData, Peer, RoleServer,
    model::{
        ListResourcesResult, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
        RequestId, Resource, ResourceContents, ResourceUpdatedNotificationParam,
        ServerNotification, SubscribeRequestParams, SubscriptionFilter,
        ToolListChangedNotification,
    },
    service::{NotificationContext, RequestContext, SubscriptionContext, SubscriptionSink},
};

use super::{McpHandler, caller, render};
use crate::domain::{
    grant::{Caller, Capability, GrantId},
    ports::{MailStore, Policy, TokenVault},
    service::{Fittings, NewMailRequest},
};

/// The resource that says "new mail arrived".
const NEW_MAIL_URI: &str = "mail://new";

/// The legacy (2025-11-25) sessions of each grant, to tell them when the grant's tool list
/// changes (`notifications/tools/list_changed` on their stream). Clients that cache the list
/// and ignore the notification still get a clear tool error for a tool that is now off.
#[derive(Debug, Default)]
pub struct ToolListWatchers(Mutex<HashMap<GrantId, Vec<Listener>>>);

/// Where a grant's client listens: a legacy session, or a 2026-07-28 `subscriptions/listen`
/// stream.
#[derive(Debug, Clone)]
enum Listener {
    Session(Peer<RoleServer>),
    /// Removed by `listen` when the subscription ends.
    Subscription(SubscriptionSink),
}

impl Listener {
    fn closed(&self) -> bool {
        match self {
            Self::Session(peer) => peer.is_transport_closed(),
            Self::Subscription(_) => false,
        }
    }
}

impl ToolListWatchers {
    fn remove_subscription(&self, grant: &GrantId, id: &RequestId) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(listeners) = map.get_mut(grant) {
            listeners.retain(|l| !matches!(l, Listener::Subscription(sink) if sink.id() == id));
        }
    }

    fn add(&self, grant: GrantId, listener: Listener) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let listeners = map.entry(grant).or_default();
        listeners.retain(|l| !l.closed());
        listeners.push(listener);
    }

    /// Tells every live session and subscription of `grant` that its tool list changed.
    pub async fn notify(&self, grant: &GrantId) {
        let listeners = {
            let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(listeners) = map.get_mut(grant) else {
                return;
            };
            listeners.retain(|l| !l.closed());
            listeners.clone()
        };
        for listener in listeners {
            // A session without a listening stream can't be told; it sees the change on its next
            // tools/list.
            let _ = match listener {
                Listener::Session(peer) => peer
                    .notify_tool_list_changed()
                    .await
                    .map_err(|e| e.to_string()),
                Listener::Subscription(sink) => sink
                    .send(ServerNotification::ToolListChangedNotification(
                        ToolListChangedNotification::default(),
                    ))
                    .await
                    .map_err(|e| e.to_string()),
            };
        }
    }
}

/// Where a watcher says "new mail": a 2026-07-28 listen stream, or a legacy session that
/// subscribed with `resources/subscribe`.
enum Announce {
    Listen(SubscriptionSink),
    Session(Peer<RoleServer>),
}

impl Announce {
    /// Sends `resources/updated mail://new`; false once the client is gone.
    async fn send(&self) -> bool {
        match self {
            Self::Listen(sink) => sink.notify_resource_updated(NEW_MAIL_URI).await.is_ok(),
            Self::Session(peer) => peer
                .notify_resource_updated(ResourceUpdatedNotificationParam::new(NEW_MAIL_URI))
                .await
                .is_ok(),
        }
    }
}

/// Legacy sessions' `resources/subscribe` watchers, by MCP session id.
#[derive(Debug, Default)]
pub struct LegacyWatchers(Mutex<HashMap<String, tokio::task::AbortHandle>>);

impl LegacyWatchers {
    fn map(&self) -> MutexGuard<'_, HashMap<String, tokio::task::AbortHandle>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The MCP session a legacy request belongs to.
fn session_id(ctx: &RequestContext<RoleServer>) -> Option<String> {
    ctx.extensions
        .get::<http::request::Parts>()
        .and_then(|p| p.headers.get("mcp-session-id"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The new-mail resource, if that is what `uri` names and `caller` may hear about new mail;
/// any other URI is not found, whatever it is.
fn new_mail_resource(uri: &str, caller: &Caller) -> Result<(), ErrorData> {
    if uri == NEW_MAIL_URI && caller.capabilities.allows(Capability::Notify) {
        Ok(())
    } else {
        Err(ErrorData::resource_not_found(
            format!("no resource {uri:?}"),
            Some(serde_json::json!({ "uri": uri })),
        ))
    }
}

/// Of what a listen stream asks for, what we serve: tool list changes, and new mail (the SDK
/// would accept any URI; we serve one).
pub(super) fn accepted_filter(requested: &SubscriptionFilter) -> SubscriptionFilter {
    let mut accepted = SubscriptionFilter::default();
    accepted.tools_list_changed = requested.tools_list_changed.filter(|on| *on);
    accepted.resource_subscriptions = requested.resource_subscriptions.as_ref().map(|uris| {
        uris.iter()
            .filter(|u| *u == NEW_MAIL_URI)
            .cloned()
            .collect()
    });
    accepted
}

/// `resources/list`: the new-mail resource, to those who may hear about new mail.
pub(super) fn resource_list(
    ctx: &RequestContext<RoleServer>,
) -> Result<ListResourcesResult, ErrorData> {
    let caller = caller(ctx)?;
    let resources = if caller.capabilities.allows(Capability::Notify) {
        vec![
                Resource::new(NEW_MAIL_URI, "new-mail")
                    .with_title("New mail")
                    .with_description(
                        "Unread mail that arrived in the Inbox in the last 24 hours, as check_new_mail lists it. Subscribe to hear when more arrives.",
                    )
                    .with_mime_type("application/json"),
            ]
    } else {
        Vec::new()
    };
    Ok(ListResourcesResult::with_all_items(resources))
}

impl<M: MailStore, V: TokenVault, P: Policy, F: Fittings> McpHandler<M, V, P, F> {
    /// A legacy session, once initialized, hears when its grant's tool list changes.
    pub(super) fn watch_tool_list(&self, ctx: NotificationContext<RoleServer>) {
        let caller = ctx
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Caller>());
        if let Some(caller) = caller {
            self.watchers
                .add(caller.grant.clone(), Listener::Session(ctx.peer));
        }
    }

    /// `subscriptions/listen`: holds the stream open until the client ends it, telling it of
    /// tool list changes and, if it asked and may hear of it, of new mail.
    pub(super) async fn listen_stream(
        &self,
        context: SubscriptionContext,
    ) -> Result<(), ErrorData> {
        let caller = caller(context.request_context())?;
        self.watchers.add(
            caller.grant.clone(),
            Listener::Subscription(context.sink().clone()),
        );
        let wants_mail = context
            .accepted()
            .resource_subscriptions
            .as_ref()
            .is_some_and(|uris| uris.iter().any(|u| u == NEW_MAIL_URI))
            && caller.capabilities.allows(Capability::Notify);
        if wants_mail {
            // Ends when the client goes, or when the grant can no longer hear about new mail.
            let to = Announce::Listen(context.sink().clone());
            tokio::select! {
                () = context.cancelled() => {}
                () = self.watch_new_mail(caller.clone(), &to) => {}
            }
        } else {
            context.cancelled().await;
        }
        self.watchers
            .remove_subscription(&caller.grant, context.sink().id());
        Ok(())
    }

    /// Legacy `resources/subscribe mail://new`: watches for the session until it unsubscribes
    /// (or subscribes again, which replaces the watcher).
    pub(super) fn subscribe_session(
        &self,
        request: &SubscribeRequestParams,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let caller = caller(ctx)?;
        new_mail_resource(&request.uri, &caller)?;
        let session = session_id(ctx).ok_or_else(|| {
            ErrorData::invalid_request("resources/subscribe needs a session", None)
        })?;
        let handler = self.clone();
        let to = Announce::Session(ctx.peer.clone());
        let task = tokio::spawn(async move { handler.watch_new_mail(caller, &to).await });
        if let Some(old) = self.legacy.map().insert(session, task.abort_handle()) {
            old.abort();
        }
        Ok(())
    }

    /// Legacy `resources/unsubscribe`: stops the session's watcher, if any.
    pub(super) fn unsubscribe_session(&self, ctx: &RequestContext<RoleServer>) {
        if let Some(task) = session_id(ctx).and_then(|s| self.legacy.map().remove(&s)) {
            task.abort();
        }
    }

    /// `resources/read mail://new`: what `check_new_mail` would list now.
    pub(super) async fn read_new_mail(
        &self,
        request: &ReadResourceRequestParams,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let caller = caller(ctx)?;
        new_mail_resource(&request.uri, &caller)?;
        let found = self
            .service
            .check_new_mail(&caller, &NewMailRequest::default())
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        let (out, _) = render::new_mail(&found);
        let json = serde_json::to_string(&out)
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(json, NEW_MAIL_URI).with_mime_type("application/json"),
        ])
        .into())
    }

    /// Tells `to` of new mail in the caller's account while the caller may hear of it: each
    /// announcement of its account's watcher (after its own rules and pacing) becomes
    /// `resources/updated mail://new`. Returns when the grant ends, its token expires, it may
    /// no longer hear about new mail, or the client is gone.
    async fn watch_new_mail(&self, caller: Caller, to: &Announce) {
        let mut subscription = self.new_mail.subscribe(caller);
        while subscription.next().await.is_some() {
            if !to.send().await {
                return;
            }
        }
    }
}
