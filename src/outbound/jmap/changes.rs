//! Changing mail over JMAP: keywords and mailboxes by `Email/set` patches, each email's state
//! before the change read in the same batch (so the report says what was already so), and one
//! bounded, jittered retry path for throttling (HTTP 429/503 with `Retry-After`, and `rateLimit`
//! SetErrors for single records).

use std::{collections::HashMap, future::Future, time::Duration};

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{
    request::Call,
    retry::{ATTEMPTS, MAX_WAIT, delay},
    session::MethodResponse,
    set::SetResponse,
    wire::decode,
};
use crate::domain::{
    mail::changes::{ChangeOutcome, ChangeReport},
    mail::ids::EmailId,
    ports::MailStoreError,
};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StateWire {
    id: String,
    #[serde(default)]
    keywords: HashMap<String, bool>,
    #[serde(default)]
    mailbox_ids: HashMap<String, bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatesWire {
    #[serde(default)]
    list: Vec<StateWire>,
}

/// A JMAP set of names (`keywords`, `mailboxIds`): name → true.
type NameSet = HashMap<String, bool>;

/// The state of each email before a change: its keywords and mailboxes.
#[derive(Debug, Clone, Default)]
pub struct States {
    by_id: HashMap<String, (NameSet, NameSet)>,
}

impl States {
    /// Decodes an `Email/get` response for `keywords` and `mailboxIds`.
    ///
    /// # Errors
    /// [`MailStoreError::Protocol`] when it isn't one.
    pub fn decode(args: &serde_json::value::RawValue) -> Result<Self, MailStoreError> {
        let wire: StatesWire = decode("Email/get", args)?;
        Ok(Self {
            by_id: wire
                .list
                .into_iter()
                .map(|s| (s.id, (s.keywords, s.mailbox_ids)))
                .collect(),
        })
    }

    /// Whether `id` has `keyword`; `None` when the email doesn't exist.
    #[must_use]
    pub fn has_keyword(&self, id: &EmailId, keyword: &str) -> Option<bool> {
        self.by_id
            .get(id.as_str())
            .map(|(k, _)| k.get(keyword).copied().unwrap_or(false))
    }

    /// The mailboxes `id` is in; `None` when the email doesn't exist.
    #[must_use]
    pub fn mailboxes(&self, id: &EmailId) -> Option<Vec<String>> {
        self.by_id.get(id.as_str()).map(|(_, m)| {
            m.iter()
                .filter(|(_, on)| **on)
                .map(|(id, _)| id.clone())
                .collect()
        })
    }
}

/// What an `Email/set` did: per id, `Ok(())` or the SetError; rate-limited ids separately.
#[derive(Debug, Default)]
pub struct SetOutcome {
    /// Ids the server updated.
    pub updated: Vec<String>,
    /// Ids it refused, with a sentence.
    pub failed: HashMap<String, String>,
    /// Ids it throttled (`rateLimit`): worth another try.
    pub throttled: Vec<String>,
}

/// Decodes an `Email/set` response.
///
/// # Errors
/// [`MailStoreError::Protocol`] when it isn't one.
pub fn set_outcome(args: &serde_json::value::RawValue) -> Result<SetOutcome, MailStoreError> {
    let wire: SetResponse<Value> = decode("Email/set", args)?;
    let mut out = SetOutcome {
        updated: wire.updated.unwrap_or_default().into_keys().collect(),
        ..SetOutcome::default()
    };
    for (id, err) in wire.not_updated.unwrap_or_default() {
        if err.kind == "rateLimit" {
            out.throttled.push(id);
        } else {
            let why = match err.kind.as_str() {
                "notFound" => "no such email".to_owned(),
                kind => format!(
                    "the mail server refused: {kind}{}",
                    err.description
                        .map(|d| format!(" ({})", d.chars().take(200).collect::<String>()))
                        .unwrap_or_default()
                ),
            };
            out.failed.insert(id, why);
        }
    }
    Ok(out)
}

/// The `Email/get` call that reads the state before a change.
pub fn state_call(account: &str, ids: &[EmailId]) -> Call {
    Call::new("Email/get", account, "before")
        .ids(ids.iter().map(EmailId::as_str))
        .properties(&["id", "keywords", "mailboxIds"])
}

/// The `Email/set` call for `patches` (id → patch object).
pub fn set_call(account: &str, patches: &Map<String, Value>) -> Call {
    Call::new("Email/set", account, "set").arg("update", patches.clone())
}

/// Applies `patches` with `send` (one `Email/set` per attempt), retrying throttled ids; returns
/// the outcome per id. `send` gets the patches still to apply.
///
/// # Errors
/// A transport or method error that retries didn't cure.
pub async fn apply<F, Fut>(
    mut patches: Map<String, Value>,
    mut send: F,
) -> Result<HashMap<String, ChangeOutcome>, MailStoreError>
where
    F: FnMut(Map<String, Value>) -> Fut,
    Fut: Future<Output = Result<Vec<MethodResponse>, MailStoreError>>,
{
    let mut outcomes = HashMap::new();
    let mut waited = Duration::ZERO;
    for attempt in 1..=ATTEMPTS {
        if patches.is_empty() {
            break;
        }
        let batch = patches.clone();
        let mut responses = send(batch.clone()).await?;
        let (_, args) = responses
            .pop()
            .ok_or_else(|| MailStoreError::Protocol("missing Email/set response".into()))?;
        let outcome = set_outcome(&args)?;
        for id in outcome.updated {
            patches.remove(&id);
            outcomes.insert(id, ChangeOutcome::Changed);
        }
        for (id, why) in outcome.failed {
            patches.remove(&id);
            outcomes.insert(id, ChangeOutcome::Failed(why));
        }
        if outcome.throttled.is_empty() {
            break;
        }
        patches.retain(|id, _| outcome.throttled.contains(id));
        let pause = delay(attempt, None);
        if attempt == ATTEMPTS || waited + pause > MAX_WAIT {
            break;
        }
        tokio::time::sleep(pause).await;
        waited += pause;
    }
    for id in patches.keys() {
        outcomes.insert(
            id.clone(),
            ChangeOutcome::Failed(
                "the mail server is throttling changes; try again in a minute".into(),
            ),
        );
    }
    Ok(outcomes)
}

/// The report in the order asked: emails that don't exist failed, those already so are
/// unchanged, the rest as the server said.
#[must_use]
pub fn report(
    ids: &[EmailId],
    exists: impl Fn(&EmailId) -> bool,
    already: impl Fn(&EmailId) -> bool,
    mut applied: HashMap<String, ChangeOutcome>,
) -> ChangeReport {
    ChangeReport {
        outcomes: ids
            .iter()
            .map(|id| {
                let outcome = if !exists(id) {
                    ChangeOutcome::Failed("no such email".into())
                } else if already(id) {
                    ChangeOutcome::Unchanged
                } else {
                    applied.remove(id.as_str()).unwrap_or_else(|| {
                        ChangeOutcome::Failed("the mail server did not report on it".into())
                    })
                };
                (id.clone(), outcome)
            })
            .collect(),
    }
}
