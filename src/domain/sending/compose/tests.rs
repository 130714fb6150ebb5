use chrono::TimeZone as _;

use super::*;
use crate::domain::{
    mail::ids::ThreadId,
    mail::{EmailSummary, Keywords, RawBody},
};

fn addr(name: Option<&str>, email: &str) -> Address {
    Address {
        name: name.map(str::to_owned),
        email: email.into(),
    }
}

fn identities() -> Vec<Identity> {
    vec![
        Identity {
            id: "I1".into(),
            email: "alice@example.test".into(),
            name: Some("Alice".into()),
        },
        Identity {
            id: "I2".into(),
            email: "*@alias.example".into(),
            name: None,
        },
    ]
}

fn original() -> Email {
    Email {
        summary: EmailSummary {
            id: EmailId::parse("M1").unwrap(),
            thread_id: ThreadId::parse("T1").unwrap(),
            received_at: Utc.with_ymd_and_hms(2024, 3, 1, 9, 0, 0).unwrap(),
            sent_at: Some("2024-03-01T09:00:00Z".into()),
            from: vec![addr(Some("Bob"), "bob@example.com")],
            to: vec![
                addr(None, "alice@example.test"),
                addr(None, "carol@example.org"),
            ],
            subject: "Quarterly report".into(),
            preview: String::new(),
            keywords: Keywords::default(),
            has_attachment: true,
            mailbox_ids: vec![],
            sender_verified: None,
        },
        sender: vec![],
        cc: vec![
            addr(None, "dave@example.net"),
            addr(None, "ALICE@example.test"),
        ],
        bcc: vec![],
        reply_to: vec![],
        message_id: Some("q1@example.com".into()),
        in_reply_to: vec!["q0@example.com".into()],
        references: vec![],
        attachments: vec![Attachment {
            blob_id: BlobId::parse("Gpdf").unwrap(),
            name: Some("report.pdf".into()),
            mime_type: "application/pdf".into(),
            charset: None,
            size: 1000,
        }],
        body: RawBody::Text("Numbers attached.\n\nBob".into()),
    }
}

fn request(mode: ComposeMode) -> DraftRequest {
    DraftRequest {
        mode,
        source: Some(EmailId::parse("M1").unwrap()),
        to: vec![],
        cc: vec![],
        bcc: vec![],
        subject: None,
        body_text: "Thanks!".into(),
        quote_original: true,
        forward_attachments: true,
        attach: vec![],
        identity: None,
        replaces: None,
    }
}

fn planned(r: &DraftRequest) -> NewDraft {
    let email = original();
    let o = Original {
        email: &email,
        text: "Numbers attached.\n\nBob",
    };
    plan(r, Some(&o), &identities(), vec![]).unwrap()
}

fn emails(list: &[Address]) -> Vec<&str> {
    list.iter().map(|a| a.email.as_str()).collect()
}

#[test]
fn a_reply_goes_to_the_sender_threads_and_quotes() {
    let d = planned(&request(ComposeMode::Reply));
    assert_eq!(emails(&d.to), ["bob@example.com"]);
    assert!(d.cc.is_empty());
    assert_eq!(d.subject, "Re: Quarterly report");
    assert_eq!(d.in_reply_to, ["q1@example.com"]);
    // No References: the original's In-Reply-To, then its own id (RFC 5322 §3.6.4).
    assert_eq!(d.references, ["q0@example.com", "q1@example.com"]);
    assert_eq!(
        d.text,
        "Thanks!\n\nOn Fri, 1 Mar 2024 at 09:00 UTC, Bob <bob@example.com> wrote:\n> Numbers attached.\n>\n> Bob\n"
    );
    assert_eq!(
        d.from.email, "alice@example.test",
        "the identity it was sent to"
    );
    assert!(d.attachments.is_empty());
}

#[test]
fn reply_all_drops_the_persons_own_addresses_and_duplicates() {
    let mut r = request(ComposeMode::ReplyAll);
    r.cc = vec![
        addr(None, "Carol@example.org"),
        addr(None, "erin@example.org"),
    ];
    let d = planned(&r);
    assert_eq!(emails(&d.to), ["bob@example.com", "carol@example.org"]);
    assert_eq!(emails(&d.cc), ["dave@example.net", "erin@example.org"]);
}

#[test]
fn reply_to_wins_over_from_and_explicit_own_addresses_are_kept() {
    let mut email = original();
    email.reply_to = vec![addr(None, "list@example.com")];
    let o = Original {
        email: &email,
        text: "",
    };
    let mut r = request(ComposeMode::Reply);
    r.bcc = vec![addr(None, "alice@example.test")];
    let d = plan(&r, Some(&o), &identities(), vec![]).unwrap();
    assert_eq!(emails(&d.to), ["list@example.com"]);
    assert_eq!(emails(&d.bcc), ["alice@example.test"], "asked for by name");
}

#[test]
fn prefixes_are_idempotent() {
    assert_eq!(prefixed("Re:", "RE: hi"), "RE: hi");
    assert_eq!(prefixed("Re:", "re:hi"), "re:hi");
    assert_eq!(prefixed("Re:", "Fwd: hi"), "Re: Fwd: hi");
    assert_eq!(prefixed("Fwd:", "FW: hi"), "FW: hi");
    assert_eq!(prefixed("Fwd:", "  hi "), "Fwd: hi");
    assert_eq!(prefixed("Re:", ""), "Re:");
    let mut email = original();
    email.summary.subject = "Re: Quarterly report".into();
    let o = Original {
        email: &email,
        text: "",
    };
    let d = plan(
        &request(ComposeMode::Reply),
        Some(&o),
        &identities(),
        vec![],
    )
    .unwrap();
    assert_eq!(d.subject, "Re: Quarterly report");
}

#[test]
fn a_forward_reuses_the_attachments_and_carries_the_header_block() {
    let mut r = request(ComposeMode::Forward);
    r.to = vec![addr(Some("Frank"), "frank@example.org")];
    let d = planned(&r);
    assert_eq!(d.subject, "Fwd: Quarterly report");
    assert_eq!(d.attachments.len(), 1);
    assert_eq!(d.attachments[0].blob_id.as_str(), "Gpdf");
    assert!(d.in_reply_to.is_empty() && d.references.is_empty());
    assert!(d.text.starts_with(
        "Thanks!\n\n---------- Forwarded message ----------\nFrom: Bob <bob@example.com>\n"
    ));
    assert!(
        d.text
            .contains("Cc: dave@example.net, ALICE@example.test\n\nNumbers attached.")
    );
    r.forward_attachments = false;
    r.quote_original = false;
    let d = planned(&r);
    assert!(d.attachments.is_empty());
    assert_eq!(d.text, "Thanks!");
}

#[test]
fn identities_exact_wildcard_and_asked() {
    let mut email = original();
    email.summary.to = vec![addr(None, "shop@alias.example")];
    email.cc.clear();
    let o = Original {
        email: &email,
        text: "",
    };
    let d = plan(
        &request(ComposeMode::Reply),
        Some(&o),
        &identities(),
        vec![],
    )
    .unwrap();
    assert_eq!(
        (d.identity.id.as_str(), d.from.email.as_str()),
        ("I2", "shop@alias.example")
    );

    let mut r = request(ComposeMode::New);
    r.to = vec![addr(None, "x@example.org")];
    r.identity = Some("I9".into());
    let err = plan(&r, None, &identities(), vec![]).unwrap_err();
    assert_eq!(err.argument, "identity_id");
    assert!(err.reason.contains("I1 (alice@example.test)"), "{err}");
    r.identity = None;
    let d = plan(&r, None, &identities(), vec![]).unwrap();
    assert_eq!(d.from, addr(Some("Alice"), "alice@example.test"));
    assert!(
        plan(&r, None, &[], vec![]).is_err(),
        "no identity, no draft"
    );
    assert!(
        Identity {
            id: "x".into(),
            email: "*@alias.example".into(),
            name: None
        }
        .covers("a@ALIAS.example")
    );
}

#[test]
fn bad_input_names_the_argument() {
    let mut r = request(ComposeMode::New);
    r.to = vec![addr(None, "not an address")];
    assert_eq!(
        plan(&r, None, &identities(), vec![]).unwrap_err().argument,
        "to"
    );
    r.to = vec![addr(None, "a@b.c>\r\nBcc: evil@x.y")];
    assert_eq!(
        plan(&r, None, &identities(), vec![]).unwrap_err().argument,
        "to"
    );
    r.to = vec![addr(Some("A\nB"), "a@b.c")];
    assert_eq!(
        plan(&r, None, &identities(), vec![]).unwrap_err().argument,
        "to"
    );
    r.to = vec![addr(None, "a@b.c")];
    r.subject = Some("two\nlines".into());
    assert_eq!(
        plan(&r, None, &identities(), vec![]).unwrap_err().argument,
        "subject"
    );
    r.subject = None;
    r.body_text = "x".repeat(MAX_BODY_CHARS + 1);
    assert_eq!(
        plan(&r, None, &identities(), vec![]).unwrap_err().argument,
        "body_text"
    );
    r.body_text = "ok".into();
    r.bcc = (0..MAX_RECIPIENTS)
        .map(|i| addr(None, &format!("p{i}@x.org")))
        .collect();
    assert_eq!(
        plan(&r, None, &identities(), vec![]).unwrap_err().argument,
        "to"
    );
    let reply = request(ComposeMode::Reply);
    assert_eq!(
        plan(&reply, None, &identities(), vec![])
            .unwrap_err()
            .argument,
        "source_email_id"
    );
}
