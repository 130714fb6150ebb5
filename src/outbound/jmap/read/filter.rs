//! The JMAP filter of a search (RFC 8621 §4.4.1): the tool's fields and the search-box
//! expression, as `FilterCondition`s under `FilterOperator`s.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::{
    domain::{
        search::query::EmailQuery,
        search::search_syntax::{Expr, Term},
    },
    outbound::jmap::request::utc_date,
};

/// All of `conditions`.
pub fn and(conditions: Vec<Value>) -> Value {
    operator("AND", conditions)
}

fn operator(operator: &str, conditions: Vec<Value>) -> Value {
    json!({"operator": operator, "conditions": conditions})
}

/// Mail with `who` among its To, Cc or Bcc recipients.
pub fn addressed_to(who: &str) -> Value {
    operator(
        "OR",
        vec![json!({"to": who}), json!({"cc": who}), json!({"bcc": who})],
    )
}

/// The JMAP filter of a search-box expression; `in:` names resolved in `mailbox_ids`.
fn expression_filter(expr: &Expr, mailbox_ids: &HashMap<String, String>) -> Value {
    let op = |name: &str, items: &[Expr]| {
        let conditions = items
            .iter()
            .map(|e| expression_filter(e, mailbox_ids))
            .collect();
        operator(name, conditions)
    };
    match expr {
        Expr::And(items) => op("AND", items),
        Expr::Or(items) => op("OR", items),
        Expr::Not(inner) => op("NOT", std::slice::from_ref(inner)),
        Expr::Term(term) => match term {
            Term::Text(v) => json!({"text": v}),
            Term::From(v) => json!({"from": v}),
            Term::To(v) => addressed_to(v),
            Term::Cc(v) => json!({"cc": v}),
            Term::Bcc(v) => json!({"bcc": v}),
            Term::Subject(v) => json!({"subject": v}),
            Term::In(name) => {
                json!({"inMailbox": mailbox_ids.get(name).cloned().unwrap_or_default()})
            }
            Term::Unread => json!({"notKeyword": "$seen"}),
            Term::Read => json!({"hasKeyword": "$seen"}),
            Term::Flagged => json!({"hasKeyword": "$flagged"}),
            Term::HasAttachment => json!({"hasAttachment": true}),
            Term::After(t) => json!({"after": utc_date(t)}),
            Term::Before(t) => json!({"before": utc_date(t)}),
        },
    }
}

/// The JMAP filter for a query; `to` covers To, Cc and Bcc.
pub fn filter(
    query: &EmailQuery,
    mailbox_id: Option<&str>,
    mailbox_ids: &HashMap<String, String>,
) -> Value {
    let mut cond = Map::new();
    let mut put = |key: &str, value: Value| {
        cond.insert(key.to_owned(), value);
    };
    if let Some(text) = &query.text {
        put("text", json!(text));
    }
    if let Some(from) = &query.from {
        put("from", json!(from));
    }
    if let Some(subject) = &query.subject {
        put("subject", json!(subject));
    }
    if let Some(id) = mailbox_id {
        put("inMailbox", json!(id));
    }
    match query.unread {
        Some(true) => put("notKeyword", json!("$seen")),
        Some(false) => put("hasKeyword", json!("$seen")),
        None => {}
    }
    if let Some(has) = query.has_attachment {
        put("hasAttachment", json!(has));
    }
    if let Some(after) = query.after {
        put("after", json!(utc_date(&after)));
    }
    if let Some(before) = query.before {
        put("before", json!(utc_date(&before)));
    }
    let mut conditions = vec![Value::Object(cond)];
    // A condition holds one hasKeyword/notKeyword; a second keyword test needs its own.
    match query.flagged {
        Some(true) => conditions.push(json!({"hasKeyword": "$flagged"})),
        Some(false) => conditions.push(json!({"notKeyword": "$flagged"})),
        None => {}
    }
    if let Some(to) = &query.to {
        conditions.push(addressed_to(to));
    }
    if let Some(expression) = &query.expression {
        conditions.push(expression_filter(&expression.expr, mailbox_ids));
    }
    if conditions.len() == 1 {
        conditions.remove(0)
    } else {
        and(conditions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_condition_when_possible() {
        let q = EmailQuery {
            text: Some("budget".into()),
            unread: Some(true),
            ..EmailQuery::default()
        };
        assert_eq!(
            filter(&q, Some("M1"), &HashMap::new()),
            json!({"text": "budget", "inMailbox": "M1", "notKeyword": "$seen"})
        );
    }

    #[test]
    fn to_covers_cc_and_bcc_and_flag_gets_its_own_condition() {
        let q = EmailQuery {
            to: Some("bob".into()),
            flagged: Some(true),
            unread: Some(false),
            ..EmailQuery::default()
        };
        assert_eq!(
            filter(&q, None, &HashMap::new()),
            json!({"operator": "AND", "conditions": [
                {"hasKeyword": "$seen"},
                {"hasKeyword": "$flagged"},
                {"operator": "OR", "conditions": [{"to": "bob"}, {"cc": "bob"}, {"bcc": "bob"}]}
            ]})
        );
    }
}
