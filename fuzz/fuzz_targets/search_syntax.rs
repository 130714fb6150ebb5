//! Any input: the parser never panics, and whatever parses prints back to a query that parses
//! to the same filter.
#![no_main]

#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../../src/domain/search/search_syntax.rs"]
mod search_syntax;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Some(now) = chrono::DateTime::from_timestamp(1_800_000_000, 0) else {
        return;
    };
    if let Ok(expr) = search_syntax::parse(input, now) {
        let printed = expr.to_string();
        let again = search_syntax::parse(&printed, now)
            .unwrap_or_else(|e| panic!("{printed:?} (printed from {input:?}) does not parse: {e}"));
        assert_eq!(again, expr, "{input:?} printed as {printed:?}");
    }
});
