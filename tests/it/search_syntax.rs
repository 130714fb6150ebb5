//! The search-box `query` of `search_email` against the real Cyrus testbed: each operator
//! returns exactly the expected seeded messages (docs/testbed.md), combinations with the
//! structured arguments, and errors that point at the token.

use serde_json::{Value, json};

use crate::support::{RawMcp, spawn_app, text};

async fn subjects(mcp: &mut RawMcp, args: Value) -> Vec<String> {
    let result = mcp.call("search_email", args.clone()).await;
    assert_eq!(result["isError"], false, "{args}: {}", text(&result));
    let mut subjects: Vec<String> = result["structuredContent"]["emails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap().to_owned())
        .collect();
    subjects.sort();
    subjects
}

async fn count(mcp: &mut RawMcp, query: &str) -> u64 {
    let result = mcp
        .call("search_email", json!({"query": query, "limit": 50}))
        .await;
    assert_eq!(result["isError"], false, "{query}: {}", text(&result));
    result["structuredContent"]["total"].as_u64().unwrap()
}

#[tokio::test]
async fn each_operator_returns_exactly_the_seeded_messages() {
    let app = spawn_app().await;
    let mut mcp = RawMcp::legacy(app.mcp_url()).await;
    let q = |query: &str| json!({"query": query});
    let cases: &[(&str, &[&str])] = &[
        ("budget", &["Project Alpha kickoff", "Quarterly report Q1"]),
        ("\"weekly newsletter\"", &["Your weekly newsletter"]),
        (
            "from:carol@example.de",
            &[
                "Grüße aus München – Überraschung 🎉",
                "Project Alpha kickoff",
            ],
        ),
        (
            "subject:Überraschung",
            &["Grüße aus München – Überraschung 🎉"],
        ),
        ("in:\"Invoices 2024\"", &["Invoice notes 2024"]),
        (
            "in:\"Project Alpha/Invoices 2024\"",
            &["Invoice notes 2024"],
        ),
        ("in:archive", &["Holiday plans"]),
        ("in:sent", &["Re: Quarterly report Q1"]),
        ("is:flagged", &["Project Alpha kickoff"]),
        (
            "has:attachment",
            &["Invoice notes 2024", "Quarterly report Q1"],
        ),
        (
            "in:inbox is:unread",
            &[
                "Quarterly report Q1",
                "Re: Quarterly report Q1",
                "Your weekly newsletter",
            ],
        ),
        ("in:inbox is:read", &["Grüße aus München – Überraschung 🎉"]),
        (
            "in:inbox -from:bob@example.com",
            &[
                "Grüße aus München – Überraschung 🎉",
                "Your weekly newsletter",
            ],
        ),
        (
            "in:inbox (from:carol OR from:news)",
            &[
                "Grüße aus München – Überraschung 🎉",
                "Your weekly newsletter",
            ],
        ),
        (
            "after:2024-03-02 before:2024-03-04",
            &[
                "Grüße aus München – Überraschung 🎉",
                "Your weekly newsletter",
            ],
        ),
        ("-in:bulk before:2024-01-01", &["Holiday plans"]),
        // A field over a group, as the Gmail and Fastmail search boxes take it.
        (
            "subject:(newsletter OR invoice)",
            &["Invoice notes 2024", "Your weekly newsletter"],
        ),
        (
            "subject:(quarterly report)",
            &[
                "Quarterly report Q1",
                "Re: Quarterly report Q1",
                "Re: Quarterly report Q1",
            ],
        ),
        (
            "in:inbox -subject:(quarterly OR newsletter)",
            &["Grüße aus München – Überraschung 🎉"],
        ),
        (
            "to:alice@example.test subject:Quarterly",
            &["Quarterly report Q1", "Re: Quarterly report Q1"],
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(subjects(&mut mcp, q(query)).await, *expected, "{query}");
    }
    // Bulk: 60 messages, odd ones read.
    assert_eq!(count(&mut mcp, "in:bulk").await, 60);
    assert_eq!(count(&mut mcp, "in:bulk is:unread").await, 30);
    assert_eq!(count(&mut mcp, "in:bulk -is:unread").await, 30);
    // Structured arguments and the query combine with AND.
    assert_eq!(
        subjects(
            &mut mcp,
            json!({"query": "from:bob@example.com", "mailbox": "archive"})
        )
        .await,
        ["Holiday plans"]
    );
}

/// Fastmail ignores a negated domain in `from:`; whatever the server does, the answer excludes
/// the whole domain because the results are re-checked.
#[tokio::test]
async fn a_negated_sender_domain_is_exact() {
    let app = spawn_app().await;
    let mut mcp = RawMcp::legacy(app.mcp_url()).await;
    let got = subjects(&mut mcp, json!({"query": "in:inbox -from:example.com"})).await;
    assert_eq!(
        got,
        [
            "Grüße aus München – Überraschung 🎉",
            "Your weekly newsletter"
        ]
    );
}

#[tokio::test]
async fn a_query_that_does_not_parse_is_a_tool_error_pointing_at_the_token() {
    let app = spawn_app().await;
    let mut mcp = RawMcp::legacy(app.mcp_url()).await;
    for (query, needle) in [
        ("in:\"Needs action", "quote is not closed"),
        ("foo:bar", "unknown operator foo:"),
        ("(from:a", "parenthesis is not closed"),
        ("in:\"No Such Folder\"", "No Such Folder"),
    ] {
        let result = mcp.call("search_email", json!({"query": query})).await;
        assert_eq!(result["isError"], true, "{query}");
        assert!(text(&result).contains(needle), "{query}: {}", text(&result));
    }
}
