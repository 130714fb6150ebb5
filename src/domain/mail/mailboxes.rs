//! Mailbox paths, the order people expect, and finding a mailbox by id, role or name.

use std::collections::HashMap;

use crate::domain::{
    mail::ids::MailboxId,
    mail::{Mailbox, MailboxRole},
};

/// A mailbox with its full path ("Projects/Invoices 2024").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxEntry {
    /// The mailbox.
    pub mailbox: Mailbox,
    /// Names from the top, joined by "/".
    pub path: String,
}

/// All mailboxes of an account, with paths, in human order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxDirectory {
    entries: Vec<MailboxEntry>,
    by_id: HashMap<MailboxId, usize>,
}

/// Why a mailbox argument did not name exactly one mailbox.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailboxLookupError {
    /// Nothing matched.
    #[error("no mailbox is called {given:?}; mailboxes are: {known}")]
    NotFound {
        /// What the client asked for.
        given: String,
        /// Paths the client could use instead.
        known: String,
    },
    /// Several matched by name (same name under different parents).
    #[error("{given:?} names several mailboxes ({paths}); use the full path or the id")]
    Ambiguous {
        /// What the client asked for.
        given: String,
        /// The matching paths.
        paths: String,
    },
}

const PATH_DEPTH_LIMIT: usize = 64;

/// Sorts siblings: role rank, then the server's sort order, then name; one element per level.
type SortKey = Vec<(u8, u32, String)>;

impl MailboxDirectory {
    /// Builds the directory: computes paths and sorts for humans.
    ///
    /// Order: Inbox, Drafts, Sent, Archive, then the person's folders (by path), Junk and Trash
    /// last; children right after their parent.
    #[must_use]
    pub fn new(mailboxes: Vec<Mailbox>) -> Self {
        let index: HashMap<&MailboxId, &Mailbox> = mailboxes.iter().map(|m| (&m.id, m)).collect();
        let mut entries: Vec<(SortKey, MailboxEntry)> = mailboxes
            .iter()
            .map(|mailbox| {
                // Walk up to the top; a server with a parent cycle gets a truncated path, not a hang.
                let mut chain = vec![mailbox];
                while let Some(parent) = chain
                    .last()
                    .and_then(|m| m.parent_id.as_ref())
                    .and_then(|p| index.get(p))
                {
                    if chain.len() >= PATH_DEPTH_LIMIT || chain.iter().any(|m| m.id == parent.id) {
                        break;
                    }
                    chain.push(parent);
                }
                chain.reverse();
                let path = chain
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join("/");
                let key = chain
                    .iter()
                    .map(|m| {
                        (
                            role_rank(m.role.as_ref()),
                            m.sort_order,
                            m.name.to_lowercase(),
                        )
                    })
                    .collect();
                (
                    key,
                    MailboxEntry {
                        mailbox: mailbox.clone(),
                        path,
                    },
                )
            })
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let entries: Vec<MailboxEntry> = entries.into_iter().map(|(_, e)| e).collect();
        let by_id = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.mailbox.id.clone(), i))
            .collect();
        Self { entries, by_id }
    }

    /// The mailboxes in human order.
    #[must_use]
    pub fn entries(&self) -> &[MailboxEntry] {
        &self.entries
    }

    /// A mailbox by id.
    #[must_use]
    pub fn get(&self, id: &MailboxId) -> Option<&MailboxEntry> {
        self.by_id.get(id).map(|&i| &self.entries[i])
    }

    /// Finds the one mailbox a client means: by id, then role, then full path, then name
    /// (names and paths case-insensitively; a leading or trailing "/" is ignored).
    ///
    /// # Errors
    /// [`MailboxLookupError`] when nothing or more than one mailbox matches.
    pub fn resolve(&self, given: &str) -> Result<&MailboxEntry, MailboxLookupError> {
        let wanted = given.trim().trim_matches('/');
        if let Some(entry) = MailboxId::parse(wanted).ok().and_then(|id| self.get(&id)) {
            return Ok(entry);
        }
        let role = MailboxRole::parse(wanted);
        if let Some(entry) = self
            .entries
            .iter()
            .find(|e| e.mailbox.role.as_ref() == Some(&role))
        {
            return Ok(entry);
        }
        let folded = wanted.to_lowercase();
        if let Some(entry) = self
            .entries
            .iter()
            .find(|e| e.path.to_lowercase() == folded)
        {
            return Ok(entry);
        }
        let by_name: Vec<&MailboxEntry> = self
            .entries
            .iter()
            .filter(|e| e.mailbox.name.to_lowercase() == folded)
            .collect();
        match by_name.as_slice() {
            [one] => Ok(one),
            [] => Err(MailboxLookupError::NotFound {
                given: given.to_owned(),
                known: self.paths_for_message(),
            }),
            many => Err(MailboxLookupError::Ambiguous {
                given: given.to_owned(),
                paths: many
                    .iter()
                    .map(|e| e.path.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    fn paths_for_message(&self) -> String {
        const SHOWN: usize = 30;
        let mut shown: Vec<&str> = self
            .entries
            .iter()
            .take(SHOWN)
            .map(|e| e.path.as_str())
            .collect();
        if self.entries.len() > SHOWN {
            shown.push("…");
        }
        shown.join(", ")
    }
}

fn role_rank(role: Option<&MailboxRole>) -> u8 {
    match role {
        Some(MailboxRole::Inbox) => 0,
        Some(MailboxRole::Drafts) => 1,
        Some(MailboxRole::Sent) => 2,
        Some(MailboxRole::Archive) => 3,
        Some(MailboxRole::Other(_)) | None => 4,
        Some(MailboxRole::Junk) => 5,
        Some(MailboxRole::Trash) => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(id: &str, name: &str, parent: Option<&str>, role: Option<&str>) -> Mailbox {
        Mailbox {
            id: MailboxId::parse(id).unwrap(),
            name: name.into(),
            parent_id: parent.map(|p| MailboxId::parse(p).unwrap()),
            role: role.map(MailboxRole::parse),
            sort_order: 0,
            total_emails: 0,
            unread_emails: 0,
        }
    }

    fn dir() -> MailboxDirectory {
        MailboxDirectory::new(vec![
            mb("t", "Trash", None, Some("trash")),
            mb("p", "Project Alpha", None, None),
            mb("i", "INBOX", None, Some("inbox")),
            mb("pi", "Invoices 2024", Some("p"), None),
            mb("a", "Archive", None, Some("archive")),
            mb("b", "Bulk", None, None),
            mb("j", "Junk", None, Some("junk")),
            mb("s", "Sent", None, Some("sent")),
            mb("bi", "Invoices 2024", Some("b"), None),
        ])
    }

    #[test]
    fn sorted_for_humans_with_children_after_parents() {
        let paths: Vec<_> = dir().entries().iter().map(|e| e.path.clone()).collect();
        assert_eq!(
            paths,
            [
                "INBOX",
                "Sent",
                "Archive",
                "Bulk",
                "Bulk/Invoices 2024",
                "Project Alpha",
                "Project Alpha/Invoices 2024",
                "Junk",
                "Trash"
            ]
        );
    }

    #[test]
    fn resolves_by_id_role_path_and_name() {
        let d = dir();
        assert_eq!(d.resolve("pi").unwrap().path, "Project Alpha/Invoices 2024");
        assert_eq!(d.resolve("Inbox").unwrap().mailbox.id.as_str(), "i");
        assert_eq!(d.resolve("project alpha").unwrap().mailbox.id.as_str(), "p");
        assert_eq!(
            d.resolve("/Project Alpha/Invoices 2024/")
                .unwrap()
                .mailbox
                .id
                .as_str(),
            "pi"
        );
    }

    #[test]
    fn a_name_under_two_parents_is_ambiguous() {
        let err = dir().resolve("Invoices 2024").unwrap_err();
        assert!(matches!(err, MailboxLookupError::Ambiguous { .. }), "{err}");
        assert!(err.to_string().contains("Bulk/Invoices 2024"));
    }

    #[test]
    fn unknown_mailbox_lists_the_real_ones() {
        let err = dir().resolve("Needs action").unwrap_err().to_string();
        assert!(
            err.contains("\"Needs action\"") && err.contains("Project Alpha"),
            "{err}"
        );
    }

    #[test]
    fn a_parent_cycle_does_not_hang() {
        let d = MailboxDirectory::new(vec![
            mb("x", "X", Some("y"), None),
            mb("y", "Y", Some("x"), None),
        ]);
        assert_eq!(d.entries().len(), 2);
    }
}
