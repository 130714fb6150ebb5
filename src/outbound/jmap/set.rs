//! The answer of a `/set` (RFC 8620 §5.3): what was created, updated and destroyed, and the
//! server's reasons (SetErrors) for what wasn't, as the domain's errors.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use crate::domain::{ports::MailStoreError, sending::submission::Refusal};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetErrorWire {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub max_recipients: Option<u64>,
    #[serde(default)]
    pub invalid_recipients: Option<Vec<String>>,
    #[serde(default)]
    pub max_size: Option<u64>,
    #[serde(default)]
    pub properties: Option<Vec<String>>,
}

/// A SetError as the domain knows it: throttling goes to the one retry path, refusals get
/// their stable code, the rest is the server rejecting the request.
pub fn set_error(e: SetErrorWire) -> MailStoreError {
    let refused = |r| MailStoreError::Refused(r);
    match e.kind.as_str() {
        "rateLimit" | "tooManyRequests" => MailStoreError::RateLimited { retry_after: None },
        "forbiddenFrom" => refused(Refusal::ForbiddenFrom),
        "forbiddenMailFrom" => refused(Refusal::ForbiddenMailFrom),
        "forbiddenToSend" => refused(Refusal::ForbiddenToSend),
        "tooManyRecipients" => refused(Refusal::TooManyRecipients(
            e.max_recipients.filter(|m| *m > 0),
        )),
        "invalidRecipients" => refused(Refusal::InvalidRecipients(
            e.invalid_recipients.unwrap_or_default(),
        )),
        "noRecipients" => refused(Refusal::NoRecipients),
        "tooLarge" => refused(Refusal::TooLarge(e.max_size)),
        "cannotUnsend" => refused(Refusal::CannotUnsend),
        "notFound" => MailStoreError::NotFound("the mail server has no such object".into()),
        "blobNotFound" => MailStoreError::NotFound(
            "an attachment to re-use is no longer on the mail server".into(),
        ),
        _ => MailStoreError::Rejected {
            description: e.description.or_else(|| e.properties.map(|p| p.join(", "))),
            kind: e.kind,
        },
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetResponse<T> {
    #[serde(default = "Option::default")]
    pub created: Option<HashMap<String, T>>,
    #[serde(default)]
    pub not_created: Option<HashMap<String, SetErrorWire>>,
    #[serde(default)]
    pub updated: Option<HashMap<String, Option<Value>>>,
    #[serde(default)]
    pub not_updated: Option<HashMap<String, SetErrorWire>>,
    #[serde(default)]
    pub destroyed: Option<Vec<String>>,
    #[serde(default)]
    pub not_destroyed: Option<HashMap<String, SetErrorWire>>,
}

impl<T> SetResponse<T> {
    /// The object created under `key`, or the server's reason.
    pub fn created(&mut self, key: &str) -> Result<T, MailStoreError> {
        if let Some(found) = self.created.as_mut().and_then(|c| c.remove(key)) {
            return Ok(found);
        }
        match self.not_created.as_mut().and_then(|n| n.remove(key)) {
            Some(e) => Err(set_error(e)),
            None => Err(MailStoreError::Protocol(format!(
                "the server reported nothing about creating {key}"
            ))),
        }
    }

    /// Whether `id` was updated, or the server's reason.
    pub fn updated(&mut self, id: &str) -> Result<(), MailStoreError> {
        if self.updated.as_ref().is_some_and(|u| u.contains_key(id)) {
            return Ok(());
        }
        match self.not_updated.as_mut().and_then(|n| n.remove(id)) {
            Some(e) => Err(set_error(e)),
            None => Err(MailStoreError::Protocol(format!(
                "the server reported nothing about updating {id}"
            ))),
        }
    }

    /// Whether `id` was destroyed, or the server's reason.
    pub fn destroyed(&mut self, id: &str) -> Result<(), MailStoreError> {
        if self
            .destroyed
            .as_ref()
            .is_some_and(|d| d.iter().any(|x| x == id))
        {
            return Ok(());
        }
        match self.not_destroyed.as_mut().and_then(|n| n.remove(id)) {
            Some(e) => Err(set_error(e)),
            None => Err(MailStoreError::Protocol(format!(
                "the server reported nothing about destroying {id}"
            ))),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWire {
    pub id: String,
    #[serde(default)]
    pub thread_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn set_errors_get_stable_codes_and_throttling_retries() {
        let e = |v: Value| set_error(serde_json::from_value(v).unwrap());
        assert!(matches!(
            e(json!({"type": "rateLimit"})),
            MailStoreError::RateLimited { .. }
        ));
        for (wire, code) in [
            (json!({"type": "forbiddenFrom"}), "forbidden_from"),
            (json!({"type": "forbiddenMailFrom"}), "forbidden_mail_from"),
            (json!({"type": "forbiddenToSend"}), "forbidden_to_send"),
            (
                json!({"type": "tooManyRecipients", "maxRecipients": 0}),
                "too_many_recipients",
            ),
            (
                json!({"type": "invalidRecipients", "invalidRecipients": ["a@b.c"]}),
                "invalid_recipients",
            ),
            (json!({"type": "noRecipients"}), "no_recipients"),
            (json!({"type": "tooLarge", "maxSize": 5}), "too_large"),
            (json!({"type": "cannotUnsend"}), "cannot_unsend"),
        ] {
            match e(wire.clone()) {
                MailStoreError::Refused(r) => assert_eq!(r.code(), code, "{wire}"),
                other => panic!("{wire}: {other:?}"),
            }
        }
        assert!(matches!(
            e(json!({"type": "tooManyRecipients", "maxRecipients": 0})),
            MailStoreError::Refused(Refusal::TooManyRecipients(None))
        ));
        assert!(matches!(
            e(json!({"type": "invalidProperties", "properties": ["from"]})),
            MailStoreError::Rejected { description: Some(d), .. } if d == "from"
        ));
    }
}
