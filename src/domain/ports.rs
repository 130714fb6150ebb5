//! The ports: what the core needs from the outside world, named for their role.
//!
//! The mail side: the person's mailbox, one port per role (`ports/mail/`), and our OAuth client
//! at the provider:
//!
//! | port | role |
//! | --- | --- |
//! | [`MailReader`] | reading: account, mailboxes, searches, emails, threads, attachments |
//! | [`MailWriter`] | writing: keywords, moves |
//! | [`MailSender`] | sending: identities, drafts, submissions, whom the person wrote to |
//! | [`MailFeed`] | the change feed: new mail since a state, push; all the notifier gets |
//! | [`MailStore`] | the whole mailbox, all four: what the tools' use cases take |
//! | [`UpstreamAuth`] | our OAuth client: authorization, code exchange, refresh, revocation |
//!
//! The storage side, one port per role (docs/storage-schema.md), each an
//! `async fn` trait whose adapter keeps any blocking work to itself:
//!
//! | port | role |
//! | --- | --- |
//! | [`TokenVault`] | tokens and grants: open, issue, rotate, revoke, remove, list |
//! | [`Policy`] | grant settings: capabilities, new-mail rules, recipients, review-only |
//! | [`ApprovalStore`] | send approvals, compare-and-swap |
//! | [`AuditLog`] | the audit log, appended and read |
//! | [`BackgroundStore`], [`NotifierKeyring`] | background delivery's sealed records |
//! | [`ClientStore`], [`RegistrationMemory`] | clients registered here and our registrations upstream |
//! | [`FlowStore`] | browser flow steps between two requests: consent, upstream legs, sessions |
//! | [`Leases`] | work one instance does at a time (background delivery), with expiry |
//! | [`Sweeper`] | removing what expired |
//!
//! Besides, [`DocumentText`] reads document attachments (PDF) the core can't. Renewing an
//! upstream credential is no port: the core does it itself
//! (`auth::upstream_refresh::RenewCredential`).
//!
//! The core holds them by type (generic parameters, named once in `crate::app`), never behind
//! `Arc<dyn …>`; a port a deployment may go without has an explicit "none" adapter
//! ([`NoDocuments`]). Adapters live in `crate::outbound`; tests substitute mocks (`mockall`)
//! for the rules, and `crate::outbound::vault_core::contract` checks every storage backend
//! against these ports.

mod approvals;
mod audit;
mod background;
mod clients;
mod documents;
mod flows;
mod leases;
mod mail;
mod policy;
mod tokens;
mod upstream;

pub use self::{
    approvals::ApprovalStore,
    audit::{AuditError, AuditEvent, AuditKind, AuditLog, Retention},
    background::{BackgroundError, BackgroundStore, NotifierKeyring},
    clients::{ClientStore, RegistrationError, RegistrationMemory},
    documents::{DocumentText, NoDocuments},
    flows::{FlowStore, FlowStoreError, Parked, Step, StepKind},
    leases::Leases,
    mail::{
        MailFeed, MailReader, MailSender, MailStore, MailStoreError, MailWriter, MoveResult,
        PageStart, PushChannel, PushEvent, SearchPage,
    },
    policy::{Policy, PolicyError},
    tokens::{
        CodeBinding, GrantDraft, GrantSummary, OpenedGrant, Redemption, RefreshBinding, SweepRules,
        Sweeper, TokenVault, UpstreamRefresh, VaultError,
    },
    upstream::{UpstreamAuth, UpstreamAuthError, UpstreamTokens},
};
#[cfg(any(test, feature = "test-support"))]
pub use self::{
    approvals::MockApprovalStore,
    audit::MockAuditLog,
    clients::{MockClientStore, MockRegistrationMemory},
    flows::MockFlowStore,
    mail::{MockMailFeed, MockMailStore},
    policy::MockPolicy,
    tokens::{MockSweeper, MockTokenVault},
    upstream::MockUpstreamAuth,
};
