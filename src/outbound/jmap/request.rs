//! Method calls as the JMAP API takes them (RFC 8620 §3.2), built once here instead of as a
//! `json!` literal at every use: a call naming its account, back-references to an earlier
//! call's result (§3.7), email patches (§5.3) and dates (§1.4).
//!
//! Arguments are a JSON object whose keys serialise sorted, so the order in which a builder
//! adds them never shows on the wire.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

/// One method call, `[name, arguments, call id]`, its arguments naming the account.
#[derive(Debug, Clone)]
#[must_use]
pub struct Call {
    name: &'static str,
    args: Map<String, Value>,
    id: String,
}

impl Call {
    /// The method `name` on `account`, answered under the call id `id`.
    pub fn new(name: &'static str, account: &str, id: impl Into<String>) -> Self {
        let mut args = Map::new();
        args.insert("accountId".into(), account.into());
        Self {
            name,
            args,
            id: id.into(),
        }
    }

    /// Sets the argument `key`.
    pub fn arg(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.args.insert(key.to_owned(), value.into());
        self
    }

    /// The objects `ids`.
    pub fn ids<'a>(self, ids: impl IntoIterator<Item = &'a str>) -> Self {
        self.arg("ids", ids.into_iter().collect::<Vec<_>>())
    }

    /// The objects an earlier call of the same request found (`#ids`, RFC 8620 §3.7).
    pub fn ids_from(self, call: &str, name: &str, path: &str) -> Self {
        self.arg(
            "#ids",
            json!({"resultOf": call, "name": name, "path": path}),
        )
    }

    /// Only these `properties` of each object.
    pub fn properties(self, properties: &[&str]) -> Self {
        self.arg("properties", properties)
    }
}

impl From<Call> for Value {
    fn from(call: Call) -> Self {
        json!([call.name, call.args, call.id])
    }
}

/// A patch of an email (RFC 8620 §5.3): mailboxes entered or left, keywords set or cleared.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct Patch(Map<String, Value>);

impl Patch {
    /// Enters (`true`) or leaves the mailbox `id`.
    pub fn mailbox(self, id: &str, member: bool) -> Self {
        self.set(format!("mailboxIds/{id}"), member)
    }

    /// Sets or clears the keyword `name`.
    pub fn keyword(self, name: &str, on: bool) -> Self {
        self.set(format!("keywords/{name}"), on)
    }

    // A member of a JMAP set is `true`; leaving it removes the key, which a patch says as null.
    fn set(mut self, path: String, on: bool) -> Self {
        self.0
            .insert(path, if on { Value::Bool(true) } else { Value::Null });
        self
    }
}

impl From<Patch> for Value {
    fn from(patch: Patch) -> Self {
        Value::Object(patch.0)
    }
}

/// A `UTCDate` (RFC 8620 §1.4): whole seconds, `Z`.
#[must_use]
pub fn utc_date(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The sort of every listing: most recently received first (RFC 8621 §4.4.2).
#[must_use]
pub fn newest_first() -> Value {
    json!([{"property": "receivedAt", "isAscending": false}])
}
