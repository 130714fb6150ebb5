//! Search: the filters `search_email` takes, the search-box syntax assistants write, paging.

pub mod query;
pub mod search_syntax;
