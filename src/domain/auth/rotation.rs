//! Refresh-token rotation with reuse detection that never strands a client (RFC 9700 §4.14.2;
//! `docs/security-checklist.md` E1–E5): the previous refresh token keeps answering with the
//! *same* new pair until that pair is used, so a lost response or a retry never kills the grant;
//! anything older, or the previous one after its successor was used, is a stolen token and ends
//! the grant.

/// Where a presented refresh token stands in its grant's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshRole {
    /// The newest refresh token.
    Current,
    /// The one before it.
    Previous {
        /// Whether the newest pair has been used (refresh, or its access token at `/mcp`).
        successor_used: bool,
    },
    /// Two or more generations old.
    Older,
}

/// What to do with a presented refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshDecision {
    /// Issue a new pair; the presented token becomes the previous one.
    Rotate,
    /// Answer again with the pair issued for this token (lost response, concurrent retry).
    Replay,
    /// Reuse of a retired token: revoke the whole grant.
    Revoke,
}

/// The rule.
#[must_use]
pub fn decide(role: RefreshRole) -> RefreshDecision {
    match role {
        RefreshRole::Current => RefreshDecision::Rotate,
        RefreshRole::Previous {
            successor_used: false,
        } => RefreshDecision::Replay,
        RefreshRole::Previous {
            successor_used: true,
        }
        | RefreshRole::Older => RefreshDecision::Revoke,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_rules() {
        assert_eq!(decide(RefreshRole::Current), RefreshDecision::Rotate);
        assert_eq!(
            decide(RefreshRole::Previous {
                successor_used: false
            }),
            RefreshDecision::Replay
        );
        assert_eq!(
            decide(RefreshRole::Previous {
                successor_used: true
            }),
            RefreshDecision::Revoke
        );
        assert_eq!(decide(RefreshRole::Older), RefreshDecision::Revoke);
    }
}
