//! The search-box syntax assistants know from Gmail and Fastmail, parsed into a typed filter:
//!
//! ```text
//! query   = or
//! or      = and ("OR" and)*
//! and     = unary+
//! unary   = "-" unary | atom
//! atom    = "(" or ")" | term
//! term    = key ":" value | key ":(" or ")" | word | "quoted phrase"
//! key     = from | to | cc | bcc | subject | in | is | has | after | before | newer_than | older_than
//! value   = word | "quoted value"
//! ```
//!
//! `key:(…)` applies the key to every word and phrase of the group, as the Gmail and Fastmail
//! search boxes do: `subject:(Digest OR Invoice)` is `subject:Digest OR subject:Invoice`,
//! `-from:(a b)` is `-(from:a from:b)`. Operators can't nest inside such a group.
//!
//! `in:` takes a mailbox name, path or role (`in:"Needs action"` is one mailbox, never `in:Needs`
//! plus a word); `is:` takes unread, read, flagged (or starred); `has:attachment`; dates are
//! `YYYY-MM-DD`, `YYYY/MM/DD` or RFC 3339, and `newer_than:`/`older_than:` take `Nh`, `Nd`,
//! `Nw`, `Nm` (30 days) or `Ny` (365 days), made absolute at parse time. Words are matched
//! anywhere in the mail. `AND` is implied; `OR` must be upper case. An error names the offending
//! token and its position.

use std::fmt;

use chrono::{DateTime, Duration, NaiveDate, Utc};

/// Parses `YYYY-MM-DD` (midnight UTC) or an RFC 3339 date-time. (This module depends on
/// nothing else in the crate, so the fuzz target can build it alone.)
#[must_use]
pub fn parse_date(raw: &str) -> Option<DateTime<Utc>> {
    use chrono::Datelike as _;
    // Four-digit years only: chrono would read "-25-03-04" as the year −25, which no mail has
    // and RFC 3339 can't print back.
    let four_digit_year = raw.len() >= 10
        && raw.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        && raw.as_bytes()[4] == b'-';
    if !four_digit_year {
        return None;
    }
    let parsed = if raw.len() == 10 {
        NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .ok()?
            .and_hms_opt(0, 0, 0)?
            .and_utc()
    } else {
        DateTime::parse_from_rfc3339(raw).ok()?.with_timezone(&Utc)
    };
    (1..=9999).contains(&parsed.year()).then_some(parsed)
}

/// Longest query accepted.
pub const MAX_QUERY_CHARS: usize = 2_000;
/// Deepest nesting of parentheses and negations.
pub const MAX_DEPTH: usize = 32;

/// One condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// Words or a phrase anywhere in the mail.
    Text(String),
    /// `from:`.
    From(String),
    /// `to:` (To, Cc and Bcc, as the structured argument).
    To(String),
    /// `cc:`.
    Cc(String),
    /// `bcc:`.
    Bcc(String),
    /// `subject:`.
    Subject(String),
    /// `in:` a mailbox by name, path, role or id.
    In(String),
    /// `is:unread`.
    Unread,
    /// `is:read`.
    Read,
    /// `is:flagged` / `is:starred`.
    Flagged,
    /// `has:attachment`.
    HasAttachment,
    /// `after:` (at or after).
    After(DateTime<Utc>),
    /// `before:` (strictly before).
    Before(DateTime<Utc>),
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// All must match (two or more).
    And(Vec<Expr>),
    /// One must match (two or more).
    Or(Vec<Expr>),
    /// Must not match.
    Not(Box<Expr>),
    /// A condition.
    Term(Term),
}

/// Why a query doesn't parse, pointing at the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at character {position}: {token:?})")]
pub struct SyntaxError {
    /// 1-based character position of the offending token.
    pub position: usize,
    /// The token.
    pub token: String,
    /// What is wrong and what would be right.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Open,
    Close,
    Minus,
    Or,
    /// A word or `key:value`, with whether the value part was quoted.
    Word {
        text: String,
        quoted_value: Option<String>,
    },
    Quoted(String),
    /// `key:` directly followed by `(`: the key applies to the whole group (lower case).
    Field(String),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    at: usize,
    raw: String,
}

fn err(t: &Token, message: impl Into<String>) -> SyntaxError {
    SyntaxError {
        position: t.at + 1,
        token: t.raw.clone(),
        message: message.into(),
    }
}

/// Reads a `"…"` run starting at `chars[i] == '"'`; returns the text and the index after it.
fn quoted(chars: &[char], mut i: usize, start: usize) -> Result<(String, usize), SyntaxError> {
    let mut text = String::new();
    i += 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() && matches!(chars[i + 1], '"' | '\\') => {
                text.push(chars[i + 1]);
                i += 2;
            }
            '"' => return Ok((text, i + 1)),
            c => {
                text.push(c);
                i += 1;
            }
        }
    }
    Err(SyntaxError {
        position: start + 1,
        token: chars[start..].iter().collect(),
        message: "a quote is not closed; add the closing \"".into(),
    })
}

fn tokenize(input: &str) -> Result<Vec<Token>, SyntaxError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let raw = |end: usize| chars[start..end].iter().collect::<String>();
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Token {
                    tok: Tok::Open,
                    at: start,
                    raw: "(".into(),
                });
                i += 1;
            }
            ')' => {
                out.push(Token {
                    tok: Tok::Close,
                    at: start,
                    raw: ")".into(),
                });
                i += 1;
            }
            '-' if chars
                .get(i + 1)
                .is_some_and(|n| !n.is_whitespace() && *n != ')') =>
            {
                out.push(Token {
                    tok: Tok::Minus,
                    at: start,
                    raw: "-".into(),
                });
                i += 1;
            }
            '"' => {
                let (text, end) = quoted(&chars, i, start)?;
                out.push(Token {
                    tok: Tok::Quoted(text),
                    at: start,
                    raw: raw(end),
                });
                i = end;
            }
            _ => {
                let mut text = String::new();
                let mut quoted_value = None;
                while i < chars.len() && !chars[i].is_whitespace() && !matches!(chars[i], '(' | ')')
                {
                    if chars[i] == ':' && chars.get(i + 1) == Some(&'"') {
                        text.push(':');
                        let (value, end) = quoted(&chars, i + 1, i + 1)?;
                        quoted_value = Some(value);
                        i = end;
                        break;
                    }
                    text.push(chars[i]);
                    i += 1;
                }
                let field = text
                    .strip_suffix(':')
                    .filter(|_| quoted_value.is_none() && chars.get(i) == Some(&'('))
                    .filter(|key| looks_like_operator(key))
                    .map(str::to_ascii_lowercase);
                let tok = if let Some(key) = field {
                    Tok::Field(key)
                } else if text == "OR" && quoted_value.is_none() {
                    Tok::Or
                } else {
                    Tok::Word { text, quoted_value }
                };
                out.push(Token {
                    tok,
                    at: start,
                    raw: raw(i),
                });
            }
        }
    }
    Ok(out)
}

const KEYS: &str =
    "from:, to:, cc:, bcc:, subject:, in:, is:, has:, after:, before:, newer_than:, older_than:";

/// Every key `term` knows (`label` is Gmail's word for `in`).
const OPERATORS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "in",
    "label",
    "is",
    "has",
    "after",
    "before",
    "newer_than",
    "older_than",
];

fn relative(t: &Token, value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, SyntaxError> {
    let bad = || {
        err(
            t,
            "use a number and a unit: h, d, w, m (30 days) or y (365 days), e.g. 7d",
        )
    };
    let unit = value.chars().last().ok_or_else(bad)?;
    let n: i64 = value[..value.len() - unit.len_utf8()]
        .parse()
        .map_err(|_| bad())?;
    if !(0..=100_000).contains(&n) {
        return Err(bad());
    }
    let span = match unit {
        'h' => Duration::hours(n),
        'd' => Duration::days(n),
        'w' => Duration::weeks(n),
        'm' => Duration::days(30 * n),
        'y' => Duration::days(365 * n),
        _ => return Err(bad()),
    };
    // A century is more than any mailbox holds; further back would be a date before year 1,
    // which the filter can't print back (the fuzzer found `newer_than:78824m`).
    if span > Duration::days(100 * 365) {
        return Err(err(t, "at most 100 years back"));
    }
    Ok(now - span)
}

fn term(t: &Token, now: DateTime<Utc>) -> Result<Term, SyntaxError> {
    let (text, quoted_value) = match &t.tok {
        Tok::Quoted(s) => return Ok(Term::Text(s.clone())),
        Tok::Word { text, quoted_value } => (text, quoted_value),
        _ => return Err(err(t, "expected a search term")),
    };
    let Some((key, rest)) = text.split_once(':') else {
        return Ok(Term::Text(text.clone()));
    };
    let value = quoted_value.clone().unwrap_or_else(|| rest.to_owned());
    if !looks_like_operator(key) {
        return Ok(Term::Text(text.clone()));
    }
    keyed(t, &key.to_ascii_lowercase(), value, now)
}

/// Whether `key` before a colon is meant as an operator: times ("10:30") and URLs are words.
fn looks_like_operator(key: &str) -> bool {
    !key.is_empty()
        && key.chars().all(|c| c.is_ascii_alphabetic() || c == '_')
        && !matches!(
            key.to_ascii_lowercase().as_str(),
            "http" | "https" | "mailto"
        )
}

/// A word or phrase inside `key:(…)`: the key's value.
fn grouped(t: &Token, key: &str, now: DateTime<Utc>) -> Result<Term, SyntaxError> {
    let value = match &t.tok {
        Tok::Quoted(s) => s.clone(),
        Tok::Word {
            text,
            quoted_value: None,
        } if !text
            .split_once(':')
            .is_some_and(|(k, _)| OPERATORS.contains(&k.to_ascii_lowercase().as_str())) =>
        {
            text.clone()
        }
        Tok::Word { .. } | Tok::Field(_) => {
            return Err(err(
                t,
                format!(
                    "inside {key}:( ) write plain words or phrases; put other operators outside the parentheses"
                ),
            ));
        }
        _ => return Err(err(t, "expected a search term")),
    };
    keyed(t, key, value, now)
}

/// `key:value`, the key in lower case.
fn keyed(t: &Token, key: &str, value: String, now: DateTime<Utc>) -> Result<Term, SyntaxError> {
    if value.is_empty() {
        return Err(err(
            t,
            format!("{key}: needs a value, e.g. {key}:something (quote values with spaces)"),
        ));
    }
    let date = |v: &str| {
        parse_date(&v.replace('/', "-"))
            .ok_or_else(|| err(t, "use a date like 2024-03-01 (or 2024/03/01, or RFC 3339)"))
    };
    Ok(match key {
        "from" => Term::From(value),
        "to" => Term::To(value),
        "cc" => Term::Cc(value),
        "bcc" => Term::Bcc(value),
        "subject" => Term::Subject(value),
        "in" | "label" => Term::In(value),
        "is" => match value.to_ascii_lowercase().as_str() {
            "unread" => Term::Unread,
            "read" => Term::Read,
            "flagged" | "starred" => Term::Flagged,
            _ => return Err(err(t, "is: takes unread, read or flagged")),
        },
        "has" => match value.to_ascii_lowercase().as_str() {
            "attachment" | "attachments" => Term::HasAttachment,
            _ => return Err(err(t, "has: takes attachment")),
        },
        "after" => Term::After(date(&value)?),
        "before" => Term::Before(date(&value)?),
        "newer_than" => Term::After(relative(t, &value, now)?),
        "older_than" => Term::Before(relative(t, &value, now)?),
        _ => {
            return Err(err(
                t,
                format!("unknown operator {key}:; the operators are {KEYS}"),
            ));
        }
    })
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
    now: DateTime<Utc>,
    end: usize,
    /// Inside `key:(…)`: the key its words take.
    field: Option<String>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn end_token(&self) -> Token {
        Token {
            tok: Tok::Close,
            at: self.end,
            raw: String::new(),
        }
    }

    fn or(&mut self, depth: usize) -> Result<Expr, SyntaxError> {
        let mut items = vec![self.and(depth)?];
        while let Some(t) = self.peek() {
            if t.tok != Tok::Or {
                break;
            }
            let or = t.clone();
            self.at += 1;
            match self.peek() {
                None => return Err(err(&or, "OR needs a term after it")),
                Some(next) if matches!(next.tok, Tok::Close | Tok::Or) => {
                    return Err(err(next, "OR needs a term after it"));
                }
                _ => {}
            }
            items.push(self.and(depth)?);
        }
        Ok(flatten(items, false))
    }

    fn and(&mut self, depth: usize) -> Result<Expr, SyntaxError> {
        let mut items = Vec::new();
        while let Some(t) = self.peek() {
            if matches!(t.tok, Tok::Close | Tok::Or) {
                break;
            }
            items.push(self.unary(depth)?);
        }
        if items.is_empty() {
            let t = self.peek().cloned().unwrap_or_else(|| self.end_token());
            let message = if t.tok == Tok::Or {
                "OR needs a term before it"
            } else {
                "expected a search term"
            };
            return Err(err(&t, message));
        }
        Ok(flatten(items, true))
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, SyntaxError> {
        let t = self.peek().cloned().unwrap_or_else(|| self.end_token());
        // A guard for the stack only: redundant parentheses nest tokens without nesting the
        // filter; the filter's own depth is checked after parsing (so a printed filter, whose
        // parentheses can differ, parses back the same).
        if depth > 2 * MAX_DEPTH + 2 {
            return Err(err(&t, "the query nests too deeply"));
        }
        match t.tok {
            Tok::Minus => {
                self.at += 1;
                Ok(Expr::Not(Box::new(self.unary(depth + 1)?)))
            }
            Tok::Open => self.group(&t, depth),
            Tok::Field(ref key) if self.field.is_none() => {
                if !OPERATORS.contains(&key.as_str()) {
                    return Err(err(
                        &t,
                        format!("unknown operator {key}:; the operators are {KEYS}"),
                    ));
                }
                self.at += 1;
                let open = self.peek().cloned().unwrap_or_else(|| self.end_token());
                self.field = Some(key.clone());
                let group = self.group(&open, depth);
                self.field = None;
                group
            }
            Tok::Close => Err(err(&t, "this ) has no opening (")),
            _ => {
                self.at += 1;
                let term = match &self.field {
                    Some(key) => grouped(&t, key, self.now)?,
                    None => term(&t, self.now)?,
                };
                Ok(Expr::Term(term))
            }
        }
    }

    /// `( or )`, the parser at `open`.
    fn group(&mut self, open: &Token, depth: usize) -> Result<Expr, SyntaxError> {
        self.at += 1;
        let inner = self.or(depth + 1)?;
        match self.peek() {
            Some(c) if c.tok == Tok::Close => {
                self.at += 1;
                Ok(inner)
            }
            _ => Err(err(open, "a parenthesis is not closed; add the closing )")),
        }
    }
}

/// Two or more items joined, nested joins of the same kind flattened; one item stands alone.
fn flatten(items: Vec<Expr>, and: bool) -> Expr {
    let mut flat = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Expr::And(inner) if and => flat.extend(inner),
            Expr::Or(inner) if !and => flat.extend(inner),
            other => flat.push(other),
        }
    }
    if flat.len() == 1 {
        flat.remove(0)
    } else if and {
        Expr::And(flat)
    } else {
        Expr::Or(flat)
    }
}

/// Parses a query; relative dates are taken from `now`.
///
/// # Errors
/// [`SyntaxError`] naming the offending token.
pub fn parse(input: &str, now: DateTime<Utc>) -> Result<Expr, SyntaxError> {
    let length = input.chars().count();
    if length > MAX_QUERY_CHARS {
        return Err(SyntaxError {
            position: MAX_QUERY_CHARS + 1,
            token: String::new(),
            message: format!("the query is longer than {MAX_QUERY_CHARS} characters"),
        });
    }
    let tokens = tokenize(input)?;
    let mut p = Parser {
        tokens: &tokens,
        at: 0,
        now,
        end: length,
        field: None,
    };
    let expr = p.or(0)?;
    if let Some(t) = p.peek() {
        return Err(err(t, "this ) has no opening ("));
    }
    if expr.depth() > MAX_DEPTH {
        return Err(SyntaxError {
            position: 1,
            token: input.chars().take(20).collect(),
            message: "the query nests too deeply".into(),
        });
    }
    Ok(expr)
}

fn needs_quotes(s: &str) -> bool {
    s.is_empty()
        || s == "OR"
        || s.starts_with('-')
        || s.contains(':')
        || s.chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '(' | ')' | '\\'))
}

fn write_value(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    if needs_quotes(s) {
        f.write_str("\"")?;
        for c in s.chars() {
            if matches!(c, '"' | '\\') {
                f.write_str("\\")?;
            }
            write!(f, "{c}")?;
        }
        f.write_str("\"")
    } else {
        f.write_str(s)
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keyed = |f: &mut fmt::Formatter<'_>, key: &str, v: &str| {
            write!(f, "{key}:")?;
            write_value(f, v)
        };
        let instant = |t: &DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        match self {
            Self::Text(v) => write_value(f, v),
            Self::From(v) => keyed(f, "from", v),
            Self::To(v) => keyed(f, "to", v),
            Self::Cc(v) => keyed(f, "cc", v),
            Self::Bcc(v) => keyed(f, "bcc", v),
            Self::Subject(v) => keyed(f, "subject", v),
            Self::In(v) => keyed(f, "in", v),
            Self::Unread => f.write_str("is:unread"),
            Self::Read => f.write_str("is:read"),
            Self::Flagged => f.write_str("is:flagged"),
            Self::HasAttachment => f.write_str("has:attachment"),
            Self::After(t) => write!(f, "after:\"{}\"", instant(t)),
            Self::Before(t) => write!(f, "before:\"{}\"", instant(t)),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let joined =
            |f: &mut fmt::Formatter<'_>, items: &[Expr], sep: &str, wrap: fn(&Expr) -> bool| {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    if wrap(item) {
                        write!(f, "({item})")?;
                    } else {
                        write!(f, "{item}")?;
                    }
                }
                Ok(())
            };
        match self {
            Self::And(items) => joined(f, items, " ", |e| matches!(e, Expr::Or(_))),
            Self::Or(items) => joined(f, items, " OR ", |e| matches!(e, Expr::And(_))),
            Self::Not(inner) => match inner.as_ref() {
                Expr::And(_) | Expr::Or(_) => write!(f, "-({inner})"),
                _ => write!(f, "-{inner}"),
            },
            Self::Term(t) => write!(f, "{t}"),
        }
    }
}

impl Expr {
    /// Levels of the filter: a term is 1; a negation or a group adds one.
    #[must_use]
    pub fn depth(&self) -> usize {
        match self {
            Self::And(items) | Self::Or(items) => {
                1 + items.iter().map(Self::depth).max().unwrap_or(0)
            }
            Self::Not(inner) => 1 + inner.depth(),
            Self::Term(_) => 1,
        }
    }

    /// The mailbox names `in:` terms use (to resolve them before building the server filter).
    #[must_use]
    pub fn mailboxes(&self) -> Vec<&str> {
        match self {
            Self::And(items) | Self::Or(items) => items.iter().flat_map(Self::mailboxes).collect(),
            Self::Not(inner) => inner.mailboxes(),
            Self::Term(Term::In(name)) => vec![name.as_str()],
            Self::Term(_) => Vec::new(),
        }
    }

    /// What the query says of a result the server returned, judged from what a search hit
    /// carries: `Some(false)` when it certainly doesn't match, `Some(true)` when it certainly
    /// does, `None` when only the server can tell (words, recipients, mailboxes).
    ///
    /// Servers are not exact on everything they are asked: Cyrus treats `before` as inclusive
    /// and Fastmail ignores a negated domain in `from:`. Results judged `Some(false)` are
    /// dropped, so the answer is what the query means. Unknowns combine as in three-valued
    /// logic: `a AND unknown` is false if `a` is, `a OR unknown` is true if `a` is.
    #[must_use]
    pub fn verdict(&self, hit: &HitFacts<'_>) -> Option<bool> {
        match self {
            Self::And(items) => {
                let verdicts: Vec<Option<bool>> = items.iter().map(|i| i.verdict(hit)).collect();
                if verdicts.contains(&Some(false)) {
                    Some(false)
                } else if verdicts.contains(&None) {
                    None
                } else {
                    Some(true)
                }
            }
            Self::Or(items) => {
                let verdicts: Vec<Option<bool>> = items.iter().map(|i| i.verdict(hit)).collect();
                if verdicts.contains(&Some(true)) {
                    Some(true)
                } else if verdicts.contains(&None) {
                    None
                } else {
                    Some(false)
                }
            }
            Self::Not(inner) => inner.verdict(hit).map(|v| !v),
            Self::Term(term) => term.verdict(hit),
        }
    }
}

/// What a search hit tells about an email, for [`Expr::verdict`].
#[derive(Debug, Clone, Copy)]
pub struct HitFacts<'a> {
    /// When the mailbox received it.
    pub received_at: DateTime<Utc>,
    /// Its senders: address and display name.
    pub from: &'a [(&'a str, Option<&'a str>)],
    /// No `$seen`.
    pub unread: bool,
    /// `$flagged`.
    pub flagged: bool,
    /// The server's `hasAttachment`.
    pub has_attachment: bool,
}

impl Term {
    fn verdict(&self, hit: &HitFacts<'_>) -> Option<bool> {
        match self {
            Self::After(t) => Some(hit.received_at >= *t),
            Self::Before(t) => Some(hit.received_at < *t),
            Self::Unread => Some(hit.unread),
            Self::Read => Some(!hit.unread),
            Self::Flagged => Some(hit.flagged),
            Self::HasAttachment => Some(hit.has_attachment),
            // A sender containing the value certainly matches; one that doesn't may still match
            // the server's tokenised search, so that is the server's call.
            Self::From(value) => hit
                .from
                .iter()
                .any(|(email, name)| sender_matches(email, *name, value))
                .then_some(true),
            Self::Text(_)
            | Self::To(_)
            | Self::Cc(_)
            | Self::Bcc(_)
            | Self::Subject(_)
            | Self::In(_) => None,
        }
    }
}

/// Whether a sender matches a `from:` value the way a search box means it: the address or
/// name contains it, case-insensitively (`-from:example.com` excludes the whole domain).
#[must_use]
fn sender_matches(email: &str, name: Option<&str>, value: &str) -> bool {
    let value = value.to_lowercase();
    email.to_lowercase().contains(&value) || name.is_some_and(|n| n.to_lowercase().contains(&value))
}

#[cfg(test)]
mod tests;
