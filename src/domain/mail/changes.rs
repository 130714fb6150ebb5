//! Changing mail state: which emails to change (at most [`MAX_IDS`], no duplicates) and what
//! happened to each. The rules for whether a grant may change mail at all live in the service.

use crate::domain::{mail::ids::EmailId, search::query::InvalidArgument};

/// Most emails one call may change (the tools' schemas say the same).
pub const MAX_IDS: usize = 50;

/// A keyword a tool sets or clears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    /// `$seen`: read.
    Seen,
    /// `$flagged`: flagged.
    Flagged,
}

impl Keyword {
    /// The JMAP keyword.
    #[must_use]
    pub fn as_jmap(self) -> &'static str {
        match self {
            Self::Seen => "$seen",
            Self::Flagged => "$flagged",
        }
    }
}

/// What happened to one email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOutcome {
    /// Changed now.
    Changed,
    /// It was already so; nothing was sent for it.
    Unchanged,
    /// Not changed, and why (for the model: no such email, the server refused…).
    Failed(String),
}

/// What happened to each email, in the order asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeReport {
    /// One entry per distinct email asked for.
    pub outcomes: Vec<(EmailId, ChangeOutcome)>,
}

impl ChangeReport {
    /// How many changed, were unchanged, and failed.
    #[must_use]
    pub fn counts(&self) -> (usize, usize, usize) {
        self.outcomes
            .iter()
            .fold((0, 0, 0), |(c, u, f), (_, o)| match o {
                ChangeOutcome::Changed => (c + 1, u, f),
                ChangeOutcome::Unchanged => (c, u + 1, f),
                ChangeOutcome::Failed(_) => (c, u, f + 1),
            })
    }
}

/// Checks the ids of a change: 1 to [`MAX_IDS`], each valid; duplicates are dropped (keeping
/// the first), so each email is reported once.
///
/// # Errors
/// [`InvalidArgument`] on `email_ids`.
pub fn email_ids(raw: &[String]) -> Result<Vec<EmailId>, InvalidArgument> {
    if raw.is_empty() {
        return Err(InvalidArgument::new(
            "email_ids",
            "give at least one email id",
        ));
    }
    if raw.len() > MAX_IDS {
        return Err(InvalidArgument::new(
            "email_ids",
            format!(
                "at most {MAX_IDS} emails per call (got {}); split the list",
                raw.len()
            ),
        ));
    }
    let mut ids: Vec<EmailId> = Vec::with_capacity(raw.len());
    for r in raw {
        let id = EmailId::parse(r.clone())
            .map_err(|e| InvalidArgument::new("email_ids", e.to_string()))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_bounded_checked_and_deduplicated() {
        assert!(email_ids(&[]).is_err());
        assert!(email_ids(&vec!["M1".to_owned(); MAX_IDS + 1]).is_err());
        assert!(email_ids(&["not valid!".to_owned()]).is_err());
        let ids = email_ids(&["M1".into(), "M2".into(), "M1".into()]).unwrap();
        assert_eq!(
            ids.iter().map(EmailId::as_str).collect::<Vec<_>>(),
            ["M1", "M2"]
        );
    }

    #[test]
    fn counts_add_up() {
        let report = ChangeReport {
            outcomes: vec![
                (EmailId::parse("M1").unwrap(), ChangeOutcome::Changed),
                (EmailId::parse("M2").unwrap(), ChangeOutcome::Unchanged),
                (
                    EmailId::parse("M3").unwrap(),
                    ChangeOutcome::Failed("x".into()),
                ),
            ],
        };
        assert_eq!(report.counts(), (1, 1, 1));
    }
}
