//! Who a client may send to: a per-connection rule the person sets on the settings page
//! (no tool can change it, so a model can never widen it). Checked on every recipient —
//! To, Cc and Bcc — before an approval is asked for and again right before a send.

use crate::domain::sending::compose::Identity;

/// Most entries in an explicit list.
pub const MAX_ENTRIES: usize = 200;

/// The rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RecipientRule {
    /// Anyone (the default).
    #[default]
    Anyone,
    /// Only people the person has written to before (found in their Sent mail).
    WrittenTo,
    /// Only these: addresses, `@domain` (that domain) or `*.domain` (the domain and its
    /// subdomains).
    Only(Vec<String>),
}

impl RecipientRule {
    /// The stored form: `anyone`, `written_to`, or `only:` and the entries, comma-separated.
    #[must_use]
    pub fn to_stored(&self) -> String {
        match self {
            Self::Anyone => "anyone".into(),
            Self::WrittenTo => "written_to".into(),
            Self::Only(entries) => format!("only:{}", entries.join(",")),
        }
    }

    /// A stored form back (anything unreadable is the strictest rule: an empty list).
    #[must_use]
    pub fn from_stored(raw: &str) -> Self {
        match raw {
            "anyone" => Self::Anyone,
            "written_to" => Self::WrittenTo,
            other => Self::Only(
                other
                    .strip_prefix("only:")
                    .and_then(|l| parse_entries(l).ok())
                    .unwrap_or_default(),
            ),
        }
    }

    /// Words for the settings page.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Anyone => "anyone".into(),
            Self::WrittenTo => "only people you have written to".into(),
            Self::Only(entries) if entries.is_empty() => "nobody but your own addresses".into(),
            Self::Only(entries) => format!("only {}", entries.join(", ")),
        }
    }
}

/// Entries as a person types them (commas, spaces or new lines between), normalised to lower
/// case.
///
/// # Errors
/// The first entry that is not an address, `@domain` or `*.domain`, or too many.
pub fn parse_entries(text: &str) -> Result<Vec<String>, EntryError> {
    let mut out: Vec<String> = Vec::new();
    for raw in text.split(|c: char| c == ',' || c.is_whitespace()) {
        let entry = raw.trim().to_lowercase();
        if entry.is_empty() {
            continue;
        }
        let domain_ok = |d: &str| {
            !d.is_empty()
                && d.contains('.')
                && d.split('.')
                    .all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-'))
        };
        let valid = if let Some(d) = entry.strip_prefix("*.") {
            domain_ok(d)
        } else if let Some(d) = entry.strip_prefix('@') {
            domain_ok(d)
        } else {
            entry
                .split_once('@')
                .is_some_and(|(local, d)| !local.is_empty() && domain_ok(d))
        };
        if !valid {
            return Err(EntryError::NotAnEntry(entry));
        }
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    if out.len() > MAX_ENTRIES {
        return Err(EntryError::TooMany);
    }
    Ok(out)
}

/// Why a list of addresses and domains doesn't parse; the text is a sentence for the person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Not `name@domain`, `@domain` or `*.domain`.
    #[error("{0:?} is not an address, @domain or *.domain")]
    NotAnEntry(String),
    /// Over the limit.
    #[error("at most {MAX_ENTRIES} entries")]
    TooMany,
}

fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

/// Whether an explicit list lets `address` through.
#[must_use]
pub fn listed(entries: &[String], address: &str) -> bool {
    let address = address.to_lowercase();
    let domain = domain_of(&address);
    entries.iter().any(|e| {
        if let Some(d) = e.strip_prefix("*.") {
            domain == d || domain.ends_with(&format!(".{d}"))
        } else if let Some(d) = e.strip_prefix('@') {
            domain == d
        } else {
            *e == address
        }
    })
}

/// The recipients `rule` leaves to be checked against Sent mail (`WrittenTo`), or the first
/// one it refuses. The person's own addresses are always allowed.
///
/// # Errors
/// The first recipient the rule refuses outright.
pub fn unchecked<'a>(
    rule: &RecipientRule,
    recipients: &[&'a str],
    own: &[Identity],
) -> Result<Vec<&'a str>, &'a str> {
    let others = recipients
        .iter()
        .copied()
        .filter(|r| !own.iter().any(|i| i.covers(r)));
    match rule {
        RecipientRule::Anyone => Ok(Vec::new()),
        RecipientRule::WrittenTo => Ok(others.collect()),
        RecipientRule::Only(entries) => match others.clone().find(|r| !listed(entries, r)) {
            Some(refused) => Err(refused),
            None => Ok(Vec::new()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> Vec<Identity> {
        vec![Identity {
            id: "I1".into(),
            email: "bob@example.test".into(),
            name: None,
        }]
    }

    #[test]
    fn entries_parse_and_match_by_address_domain_and_subdomain() {
        let list =
            parse_entries("Carol@Example.org, @partner.example\n*.corp.example carol@example.org")
                .unwrap();
        assert_eq!(
            list,
            ["carol@example.org", "@partner.example", "*.corp.example"]
        );
        assert!(listed(&list, "CAROL@example.org"));
        assert!(!listed(&list, "dave@example.org"));
        assert!(listed(&list, "x@partner.example"));
        assert!(
            !listed(&list, "x@sub.partner.example"),
            "@domain is that domain only"
        );
        assert!(listed(&list, "x@corp.example") && listed(&list, "x@a.b.corp.example"));
        assert!(!listed(&list, "x@evilcorp.example"));
        for bad in ["not-an-address", "@", "*.", "a@b", "@x..y", "a b@c.d"] {
            assert!(parse_entries(bad).is_err(), "{bad}");
        }
        let many: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("p{i}@x.org")).collect();
        assert!(parse_entries(&many.join(" ")).is_err());
        assert!(parse_entries(&many[1..].join(" ")).is_ok());
    }

    #[test]
    fn rules_refuse_before_asking_and_own_addresses_always_pass() {
        let only = RecipientRule::Only(vec!["@example.org".into()]);
        assert_eq!(
            unchecked(&only, &["carol@example.org", "bob@example.test"], &own()),
            Ok(vec![])
        );
        assert_eq!(
            unchecked(&only, &["carol@example.org", "eve@evil.example"], &own()),
            Err("eve@evil.example")
        );
        assert_eq!(
            unchecked(
                &RecipientRule::WrittenTo,
                &["carol@example.org", "bob@example.test"],
                &own()
            ),
            Ok(vec!["carol@example.org"])
        );
        assert_eq!(
            unchecked(&RecipientRule::Anyone, &["x@y.z"], &own()),
            Ok(vec![])
        );
        assert_eq!(
            unchecked(&RecipientRule::Only(vec![]), &["x@y.z"], &own()),
            Err("x@y.z")
        );
    }

    #[test]
    fn stored_forms_round_trip_and_garbage_is_strict() {
        for rule in [
            RecipientRule::Anyone,
            RecipientRule::WrittenTo,
            RecipientRule::Only(vec!["a@b.cd".into(), "@x.org".into()]),
            RecipientRule::Only(vec![]),
        ] {
            assert_eq!(RecipientRule::from_stored(&rule.to_stored()), rule);
        }
        assert_eq!(
            RecipientRule::from_stored("???"),
            RecipientRule::Only(vec![])
        );
    }
}
