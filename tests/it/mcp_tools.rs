//! Every tool over HTTP against the seeded Cyrus mailbox: snapshots of the wire shapes, each
//! result validated against the tool's `outputSchema`, and bad input answered as tool errors.

use serde_json::{Value, json};

use crate::support::{RawMcp, spawn_app, spawn_app_with, testbed, text};

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("../../snapshots");
    s.set_prepend_module_to_snapshot(false);
    // The nonce of the untrusted-content delimiters changes with every response.
    s.add_filter(r"\b[0-9a-f]{16}\b", "[nonce]");
    s
}

/// Mailbox ids are random per testbed start: name them by path so snapshots are stable.
struct Normalizer(Vec<(String, String)>);

impl Normalizer {
    async fn new(mcp: &mut RawMcp) -> Self {
        let listed = mcp.call("list_mailboxes", json!({})).await;
        Self(
            listed["structuredContent"]["mailboxes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    (
                        m["id"].as_str().unwrap().to_owned(),
                        format!("[mailbox:{}]", m["path"].as_str().unwrap()),
                    )
                })
                .collect(),
        )
    }

    fn apply(&self, s: &str) -> String {
        self.0
            .iter()
            .fold(s.to_owned(), |acc, (id, name)| acc.replace(id, name))
    }

    fn json(&self, v: &Value) -> Value {
        serde_json::from_str(&self.apply(&v.to_string())).unwrap()
    }
}

async fn output_schemas(mcp: &mut RawMcp) -> Vec<(String, Value)> {
    let listed = mcp.request("tools/list", json!({})).await;
    listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["outputSchema"].clone(),
            )
        })
        .collect()
}

fn assert_matches_output_schema(schemas: &[(String, Value)], tool: &str, result: &Value) {
    let schema = &schemas.iter().find(|(n, _)| n == tool).unwrap().1;
    let validator = jsonschema::validator_for(schema).expect("outputSchema compiles");
    let structured = &result["structuredContent"];
    let errors: Vec<String> = validator
        .iter_errors(structured)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{tool}: structuredContent violates its outputSchema: {errors:#?}"
    );
    assert_eq!(result["isError"], false, "{tool}: {result}");
    assert!(
        !text(result).is_empty(),
        "{tool}: the text rendering is empty"
    );
}

#[tokio::test]
async fn tools_list_is_the_contract() {
    let app = spawn_app().await;
    let mut mcp = RawMcp::legacy(app.mcp_url()).await;
    let listed = mcp.request("tools/list", json!({})).await;
    settings().bind(|| insta::assert_json_snapshot!("tools_list", listed["result"]));
    for tool in listed["result"]["tools"].as_array().unwrap() {
        assert_eq!(
            tool["inputSchema"]["additionalProperties"], false,
            "{}",
            tool["name"]
        );
        assert_eq!(
            tool["annotations"]["readOnlyHint"], true,
            "{}",
            tool["name"]
        );
        assert!(
            !tool.to_string().contains("$ref"),
            "schemas are served self-contained"
        );
    }
}

/// Looks an email up by subject through search_email.
async fn email_id(mcp: &mut RawMcp, subject: &str) -> String {
    let found = mcp
        .call("search_email", json!({"subject": subject, "limit": 5}))
        .await;
    found["structuredContent"]["emails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subject"] == subject)
        .unwrap_or_else(|| panic!("no email with subject {subject:?}: {found}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn every_tool_answers_from_the_seeded_mailbox() {
    let app = spawn_app().await;
    let mut mcp = RawMcp::legacy(app.mcp_url()).await;
    let schemas = output_schemas(&mut mcp).await;
    let norm = Normalizer::new(&mut mcp).await;
    let report = email_id(&mut mcp, "Quarterly report Q1").await;
    let newsletter = email_id(&mut mcp, "Your weekly newsletter").await;
    let invoice = email_id(&mut mcp, "Invoice notes 2024").await;
    let gruesse = email_id(&mut mcp, "Grüße aus München – Überraschung 🎉").await;
    let report_email = mcp.call("get_email", json!({"email_id": report})).await;
    let pdf = report_email["structuredContent"]["attachments"][0]["blob_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let thread = report_email["structuredContent"]["thread_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let invoice_email = mcp.call("get_email", json!({"email_id": invoice})).await;
    let notes = invoice_email["structuredContent"]["attachments"][0]["blob_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let cases: Vec<(&str, &str, Value)> = vec![
        ("get_identity", "get_identity", json!({})),
        ("list_mailboxes", "list_mailboxes", json!({})),
        (
            "search_email_text",
            "search_email",
            json!({"text": "budget"}),
        ),
        (
            "search_email_mailbox_with_space",
            "search_email",
            json!({"mailbox": "Project Alpha/Invoices 2024"}),
        ),
        (
            "search_email_clamped",
            "search_email",
            json!({"mailbox": "Bulk", "unread": true, "limit": 500}),
        ),
        (
            "search_email_window",
            "search_email",
            json!({"after": "2024-03-02", "before": "2024-03-04T00:00:00Z", "mailbox": "inbox"}),
        ),
        (
            "get_email_html_only",
            "get_email",
            json!({"email_id": newsletter}),
        ),
        (
            "get_email_non_ascii",
            "get_email",
            json!({"email_id": gruesse}),
        ),
        (
            "get_email_truncated",
            "get_email",
            json!({"email_id": report, "max_body_chars": 200, "body_offset": 10}),
        ),
        ("get_thread", "get_thread", json!({"thread_id": thread})),
        (
            "get_attachment_pdf",
            "get_attachment",
            json!({"email_id": report, "blob_id": pdf}),
        ),
        (
            "get_attachment_text",
            "get_attachment",
            json!({"email_id": invoice, "blob_id": notes}),
        ),
    ];
    for (snapshot, tool, args) in cases {
        let result = mcp.call(tool, args).await;
        assert_matches_output_schema(&schemas, tool, &result);
        let mut result = norm.json(&result);
        // The embedded file is checked below, not snapshotted as base64.
        if let Some(blob) = result.pointer_mut("/content/1/resource/blob") {
            *blob = json!("[base64]");
        }
        settings().bind(|| insta::assert_json_snapshot!(snapshot, result));
    }

    let pdf_result = mcp
        .call(
            "get_attachment",
            json!({"email_id": report, "blob_id": pdf}),
        )
        .await;
    let resource = &pdf_result["content"][1]["resource"];
    assert_eq!(resource["mimeType"], "application/pdf");
    let bytes = base64_decode(resource["blob"].as_str().unwrap());
    assert!(
        bytes.starts_with(b"%PDF-1.4"),
        "the PDF bytes arrive intact"
    );
    assert_eq!(bytes.len(), 589);
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}

#[tokio::test]
async fn paging_returns_every_match_exactly_once() {
    let app = spawn_app().await;
    let mut mcp = RawMcp::legacy(app.mcp_url()).await;
    let args = json!({"mailbox": "Bulk", "limit": 7});
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let mut a = args.clone();
        if let Some(c) = &cursor {
            a["cursor"] = json!(c);
        }
        let page = mcp.call("search_email", a).await["structuredContent"].clone();
        seen.extend(
            page["emails"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (60, 60));
}

#[tokio::test]
async fn bad_input_gets_a_tool_error_that_says_what_to_fix() {
    let app = spawn_app().await;
    let mut mcp = RawMcp::legacy(app.mcp_url()).await;
    let other_cursor = {
        let r = mcp
            .call("search_email", json!({"text": "budget", "limit": 1}))
            .await;
        r["structuredContent"]["next_cursor"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        ("search_email", json!({"bogus": 1}), "unknown field `bogus`"),
        ("search_email", json!({"limit": 0}), "limit"),
        ("search_email", json!({"limit": "ten"}), "limit"),
        (
            "search_email",
            json!({"after": "yesterday"}),
            "after: \"yesterday\" is not a date",
        ),
        (
            "search_email",
            json!({"after": "2024-03-05", "before": "2024-03-01"}),
            "nothing can match",
        ),
        (
            "search_email",
            json!({"mailbox": "Needs action"}),
            "no mailbox is called \"Needs action\"",
        ),
        ("search_email", json!({"cursor": "not-a-cursor"}), "cursor"),
        (
            "search_email",
            json!({"text": "holiday", "cursor": other_cursor}),
            "different search",
        ),
        ("get_email", json!({}), "missing field `email_id`"),
        ("get_email", json!({"email_id": "has spaces"}), "email_id"),
        (
            "get_email",
            json!({"email_id": "Mdoesnotexist"}),
            "no email with id Mdoesnotexist",
        ),
        (
            "get_thread",
            json!({"thread_id": "Tdoesnotexist"}),
            "no thread with id Tdoesnotexist",
        ),
        (
            "get_attachment",
            json!({"email_id": "Mdoesnotexist", "blob_id": "Gx"}),
            "no email with id",
        ),
    ];
    for (tool, args, expected) in cases {
        let result = mcp.call(tool, args.clone()).await;
        assert_eq!(result["isError"], true, "{tool} {args}: {result}");
        assert!(
            text(&result).contains(expected),
            "{tool} {args}: expected {expected:?} in {:?}",
            text(&result)
        );
        assert!(
            result.get("structuredContent").is_none(),
            "errors carry everything in the text"
        );
    }
}

#[tokio::test]
async fn an_attachment_over_the_cap_names_its_size_and_the_cap() {
    let app = spawn_app_with(
        testbed().get("JMAP_SESSION_URL"),
        &["--max-attachment-bytes", "100"],
    )
    .await;
    let mut mcp = RawMcp::legacy(app.mcp_url()).await;
    let report = email_id(&mut mcp, "Quarterly report Q1").await;
    let email = mcp.call("get_email", json!({"email_id": report})).await;
    let blob = email["structuredContent"]["attachments"][0]["blob_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let result = mcp
        .call(
            "get_attachment",
            json!({"email_id": report, "blob_id": blob}),
        )
        .await;
    assert_eq!(result["isError"], true);
    assert_eq!(
        text(&result),
        "the attachment is 589 bytes, over the 100-byte limit."
    );
}

/// `collapse_quotes` reaches the body cleaning (the corpus tests in `bodies` show what it
/// hides); a reply without quoted history reads the same either way.
#[tokio::test]
async fn get_email_takes_collapse_quotes() {
    let app = spawn_app().await;
    let mut mcp = RawMcp::legacy(app.mcp_url()).await;
    let plain = mcp
        .call(
            "get_email",
            json!({"email_id": "M47384aa8ccacb3422a6df556"}),
        )
        .await;
    let collapsed = mcp
        .call(
            "get_email",
            json!({"email_id": "M47384aa8ccacb3422a6df556", "collapse_quotes": true}),
        )
        .await;
    assert_eq!(collapsed["isError"], false, "{}", text(&collapsed));
    assert_eq!(
        plain["structuredContent"]["body"]["text"],
        collapsed["structuredContent"]["body"]["text"]
    );
    assert!(
        collapsed["structuredContent"]["body"]["text"]
            .as_str()
            .unwrap()
            .contains("moved to")
    );
}
