//! The log: one subscriber for the binary, with the level the operator asks for, rmcp's
//! message dumps held back, and the noise of clients that simply went away turned down.

use tracing::{Event, Level, Subscriber, field::Field};
use tracing_subscriber::{
    EnvFilter, Layer as _,
    filter::{LevelFilter, Targets},
    layer::{Context, Filter, SubscriberExt as _},
    util::SubscriberInitExt as _,
};

use crate::config::LogFormat;

/// rmcp logs whole JSON-RPC messages (mail content) at debug: whatever the operator asks
/// for, it is capped at info. A cap, not a level: asking for `warn` still quiets it.
fn no_content_logs(asked: LevelFilter) -> Targets {
    // The default is what was asked, so the cap raises no level hint (the `log` bridge and
    // every dependency's log calls follow the hint).
    Targets::new()
        .with_default(asked)
        .with_target("rmcp", asked.min(LevelFilter::INFO))
}

/// Installs the process's subscriber: `MAILCONNECT_LOG` (an `EnvFilter`, default `info`),
/// rmcp capped at info whatever is asked, in `format` on stderr (text) or stdout (JSON).
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("MAILCONNECT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let asked = filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(no_content_logs(asked));
    match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_filter(DisconnectNoise),
            )
            .init(),
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(DisconnectNoise),
            )
            .init(),
    }
}

/// rmcp's message when a request's answer finds its client gone.
const DRAIN_MESSAGE: &str = "failed to send pending response during drain";

/// Holds back rmcp's ERROR for an answer that could not be sent because the client closed
/// its stream — a laptop lid, a finished listening session — and says it at debug instead:
/// an operator who pages on ERROR must not be woken by every client that goes away. Any
/// other failure to send stays an error.
#[derive(Debug, Clone, Copy)]
pub struct DisconnectNoise;

impl<S: Subscriber> Filter<S> for DisconnectNoise {
    fn enabled(&self, _: &tracing::Metadata<'_>, _: &Context<'_, S>) -> bool {
        true
    }

    fn event_enabled(&self, event: &Event<'_>, _: &Context<'_, S>) -> bool {
        if !is_disconnect_noise(event) {
            return true;
        }
        // Said from a task of its own: an event inside the subscriber's own callback would be
        // dropped (tracing does not re-enter a dispatch).
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async {
                tracing::debug!("a client went away before an answer could be sent to it");
            });
        }
        false
    }
}

fn is_disconnect_noise(event: &Event<'_>) -> bool {
    let meta = event.metadata();
    if *meta.level() != Level::ERROR || meta.target() != "rmcp::service" {
        return false;
    }
    #[derive(Default)]
    struct Fields {
        message: String,
        error: String,
    }
    impl tracing::field::Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            match field.name() {
                "message" => self.message = format!("{value:?}"),
                "error" => self.error = format!("{value:?}"),
                _ => {}
            }
        }
    }
    let mut fields = Fields::default();
    event.record(&mut fields);
    fields.message == DRAIN_MESSAGE && fields.error == "channel closed"
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    #[test]
    fn a_client_gone_is_said_at_debug_and_other_send_failures_stay_errors() {
        let out = Captured::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(out.clone())
                .with_ansi(false)
                .with_filter(DisconnectNoise),
        );
        tracing::subscriber::with_default(subscriber, || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap_or_else(|e| panic!("{e}"));
            runtime.block_on(async {
                tracing::error!(target: "rmcp::service", error = %"channel closed", "{DRAIN_MESSAGE}");
                tracing::error!(target: "rmcp::service", error = %"broken pipe", "{DRAIN_MESSAGE}");
                tracing::error!(target: "elsewhere", error = %"channel closed", "{DRAIN_MESSAGE}");
                tokio::task::yield_now().await;
            });
        });
        let log = String::from_utf8(out.0.lock().map(|b| b.clone()).unwrap_or_default())
            .unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 3, "{log}");
        assert!(
            lines[0].contains("ERROR") && lines[0].contains("broken pipe"),
            "{log}"
        );
        assert!(
            lines[1].contains("ERROR") && lines[1].contains("elsewhere"),
            "{log}"
        );
        assert!(
            lines[2].contains("DEBUG") && lines[2].contains("a client went away"),
            "{log}"
        );
    }
}
