//! JMAP JSON as servers send it (RFC 8620/8621), decoded leniently: unknown fields are ignored,
//! missing optional fields default, so one odd server field never fails a whole tool call.

use std::collections::HashMap;

use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, value::RawValue};

use super::session::MethodResponse;
use crate::domain::ports::MailStoreError;

/// The session resource (RFC 8620 §2).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionWire {
    #[serde(default)]
    pub capabilities: HashMap<String, Value>,
    #[serde(default)]
    pub accounts: HashMap<String, AccountWire>,
    #[serde(default)]
    pub primary_accounts: HashMap<String, String>,
    #[serde(default)]
    pub username: String,
    pub api_url: String,
    pub download_url: String,
    #[serde(default)]
    pub event_source_url: Option<String>,
    #[serde(default)]
    pub state: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AccountWire {
    pub name: String,
    pub is_personal: bool,
    pub is_read_only: bool,
    pub account_capabilities: HashMap<String, Value>,
}

/// A JMAP API response (RFC 8620 §3.4).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseWire {
    /// Arguments stay raw until their typed decoding: no intermediate `Value` trees.
    pub method_responses: Vec<(String, Box<RawValue>, String)>,
    #[serde(default)]
    pub session_state: Option<String>,
}

/// A request-level error (RFC 8620 §3.6.1, RFC 7807).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ProblemWire {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub detail: Option<String>,
}

/// A method-level error (RFC 8620 §3.6.2).
#[derive(Debug, Deserialize)]
pub struct MethodErrorWire {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// The answer of a `/get` (RFC 8620 §5.1).
#[derive(Debug, Deserialize)]
pub struct GetResponse<T> {
    #[serde(default = "Vec::new")]
    pub list: Vec<T>,
    #[serde(default)]
    pub state: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QueryResponse {
    pub position: u64,
    pub total: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailboxWire {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub parent_id: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub sort_order: u32,
    #[serde(default)]
    pub total_emails: u64,
    #[serde(default)]
    pub unread_emails: u64,
}

/// An address (RFC 8621 `EmailAddress`); also decodes `Identity` objects, of which only the
/// name and address are used.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AddressWire {
    pub name: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailWire {
    pub id: String,
    /// Every `Authentication-Results` header, top (the receiving server's) first.
    #[serde(rename = "header:Authentication-Results:asText:all", default)]
    pub authentication_results: Option<Vec<Option<String>>>,
    #[serde(default)]
    pub blob_id: Option<String>,
    #[serde(default)]
    pub thread_id: Option<String>,
    #[serde(default)]
    pub mailbox_ids: HashMap<String, bool>,
    #[serde(default)]
    pub keywords: HashMap<String, bool>,
    #[serde(default)]
    pub received_at: Option<String>,
    #[serde(default)]
    pub sent_at: Option<String>,
    #[serde(default)]
    pub from: Option<Vec<AddressWire>>,
    #[serde(default)]
    pub to: Option<Vec<AddressWire>>,
    #[serde(default)]
    pub cc: Option<Vec<AddressWire>>,
    #[serde(default)]
    pub bcc: Option<Vec<AddressWire>>,
    #[serde(default)]
    pub sender: Option<Vec<AddressWire>>,
    #[serde(default)]
    pub reply_to: Option<Vec<AddressWire>>,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub preview: Option<String>,
    #[serde(default)]
    pub has_attachment: bool,
    #[serde(default)]
    pub message_id: Option<Vec<String>>,
    #[serde(default)]
    pub in_reply_to: Option<Vec<String>>,
    #[serde(default)]
    pub references: Option<Vec<String>>,
    #[serde(default)]
    pub attachments: Option<Vec<BodyPartWire>>,
    #[serde(default)]
    pub text_body: Option<Vec<BodyPartWire>>,
    #[serde(default)]
    pub html_body: Option<Vec<BodyPartWire>>,
    #[serde(default)]
    pub body_values: HashMap<String, BodyValueWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BodyPartWire {
    pub part_id: Option<String>,
    pub blob_id: Option<String>,
    pub size: u64,
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub mime_type: Option<String>,
    pub charset: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BodyValueWire {
    pub value: String,
    pub is_truncated: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ThreadWire {
    pub id: String,
    pub email_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct IdentityWire {
    pub id: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmissionWire {
    pub id: String,
    #[serde(default)]
    pub email_id: Option<String>,
    #[serde(default)]
    pub envelope: Option<EnvelopeWire>,
    #[serde(default)]
    pub undo_status: Option<String>,
    #[serde(default)]
    pub send_at: Option<String>,
    #[serde(default)]
    pub delivery_status: Option<HashMap<String, DeliveryWire>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvelopeWire {
    pub rcpt_to: Vec<EnvelopeAddressWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EnvelopeAddressWire {
    pub email: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeliveryWire {
    pub delivered: Option<String>,
}

/// Decodes the arguments of a `method` response.
///
/// # Errors
/// [`MailStoreError::Protocol`] when they aren't what `method` answers.
pub fn decode<T: DeserializeOwned>(method: &str, args: &RawValue) -> Result<T, MailStoreError> {
    serde_json::from_str(args.get()).map_err(|e| MailStoreError::Protocol(format!("{method}: {e}")))
}

/// Takes the first `method` response out of `responses`.
///
/// # Errors
/// [`MailStoreError::Protocol`] when there is none.
pub fn take(
    responses: &mut Vec<MethodResponse>,
    method: &str,
) -> Result<Box<RawValue>, MailStoreError> {
    let index = responses
        .iter()
        .position(|(name, _)| name == method)
        .ok_or_else(|| MailStoreError::Protocol(format!("missing {method} response")))?;
    Ok(responses.remove(index).1)
}

/// Takes the first `method` response out of `responses`, decoded.
///
/// # Errors
/// [`MailStoreError::Protocol`] when there is none or it doesn't decode.
pub fn take_as<T: DeserializeOwned>(
    responses: &mut Vec<MethodResponse>,
    method: &str,
) -> Result<T, MailStoreError> {
    decode(method, &take(responses, method)?)
}

/// The objects of the first `method` response (a `/get`) in `responses`.
///
/// # Errors
/// [`MailStoreError::Protocol`] when there is none or it doesn't decode.
pub fn take_list<T: DeserializeOwned>(
    responses: &mut Vec<MethodResponse>,
    method: &str,
) -> Result<Vec<T>, MailStoreError> {
    Ok(take_as::<GetResponse<T>>(responses, method)?.list)
}
