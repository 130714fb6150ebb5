//! A search: one page of `Email/query`, newest first, with the summaries of its hits and the
//! mailbox list in the same request.

use std::collections::HashMap;

use super::{filter::filter, summaries_of};
use crate::{
    domain::{
        ports::{MailStoreError, PageStart, SearchPage},
        search::query::{EmailQuery, PageSize},
    },
    outbound::jmap::{
        connection::Conn,
        convert::summary,
        read::filter::and,
        request::{Call, newest_first, utc_date},
        wire::{EmailWire, QueryResponse, take_as, take_list},
    },
};

/// Most emails one search request fetches (a page plus those skipped at its boundary).
pub const MAX_FETCH: u32 = 500;

/// One page of the emails `query` matches, from `start`.
///
/// # Errors
/// See [`MailStoreError`]; [`MailStoreError::NotFound`] when a mailbox it names doesn't exist.
pub async fn search(
    conn: &Conn<'_>,
    query: &EmailQuery,
    size: PageSize,
    start: &PageStart,
) -> Result<SearchPage, MailStoreError> {
    let mailbox_id = match &query.mailbox {
        Some(given) => Some(conn.resolve_mailbox(given).await?),
        None => None,
    };
    let mut mailbox_ids = HashMap::new();
    for name in query.expression.iter().flat_map(|e| e.expr.mailboxes()) {
        if !mailbox_ids.contains_key(name) {
            let id = conn.resolve_mailbox(name).await?;
            mailbox_ids.insert(name.to_owned(), id);
        }
    }
    let mut filter = filter(query, mailbox_id.as_deref(), &mailbox_ids);
    let mut limit = size.size + 1;
    if let PageStart::AtOrBefore { at, extra } = start {
        // Strictly before the next second: at or before `at` (some servers, Cyrus among them,
        // read `before` as inclusive; the caller re-checks).
        let bound = utc_date(&(*at + chrono::Duration::seconds(1)));
        filter = and(vec![filter, serde_json::json!({"before": bound})]);
        limit = limit.saturating_add(*extra).min(MAX_FETCH);
    }
    let calls = vec![
        Call::new("Email/query", conn.account(), "query")
            .arg("filter", filter)
            .arg("sort", newest_first())
            .arg("collapseThreads", false)
            .arg("calculateTotal", true)
            .arg("limit", limit),
        summaries_of(conn.account(), "query", "Email/query", "/ids"),
    ];
    let (mut responses, mailboxes) = conn.call_with_mailboxes(calls).await?;
    let page: QueryResponse = take_as(&mut responses, "Email/query")?;
    let emails = take_list::<EmailWire>(&mut responses, "Email/get")?
        .into_iter()
        .filter_map(summary)
        .collect();
    Ok(SearchPage {
        emails,
        mailboxes,
        total: page.total,
        position: page.position,
    })
}
