-- Version 1: the vault's tables. Values are the JSON records of docs/storage-schema.md, the
-- same bytes redb stores; the other columns are what the queries find rows by.

CREATE TABLE grants (
    id text PRIMARY KEY,
    account_digest text,
    client_id text,
    record bytea NOT NULL
);
CREATE INDEX grants_by_account ON grants (account_digest);

-- SHA-256 of each token; the grant's identity is wrapped inside the record.
CREATE TABLE tokens (
    digest bytea PRIMARY KEY,
    grant_id text NOT NULL,
    expires_at bigint,
    record bytea NOT NULL
);
CREATE INDEX tokens_by_grant ON tokens (grant_id);
CREATE INDEX tokens_by_expiry ON tokens (expires_at);

-- Connections that ended, kept for their activity log.
CREATE TABLE revoked (
    grant_id text PRIMARY KEY,
    account_digest text NOT NULL,
    revoked_at bigint NOT NULL,
    record bytea NOT NULL
);
CREATE INDEX revoked_by_account ON revoked (account_digest);

-- The audit log: seq is the writer's microsecond sequence; id breaks a tie between instances.
CREATE TABLE audit (
    id bigserial PRIMARY KEY,
    grant_id text NOT NULL,
    seq bigint NOT NULL,
    kind text NOT NULL,
    record bytea NOT NULL
);
CREATE INDEX audit_by_grant ON audit (grant_id, seq, id);
CREATE INDEX audit_tool_calls ON audit (grant_id, seq) WHERE kind = 'tool_call';

CREATE TABLE clients (
    id text PRIMARY KEY,
    record bytea NOT NULL
);

-- Our client ids at upstream providers that registered us dynamically (the key holds NUL
-- separators, which text cannot).
CREATE TABLE upstream_registrations (
    key bytea PRIMARY KEY,
    client_id text NOT NULL
);

CREATE TABLE approvals (
    id text PRIMARY KEY,
    grant_id text NOT NULL,
    draft text NOT NULL,
    submission text,
    expires_at bigint NOT NULL,
    record bytea NOT NULL
);
CREATE INDEX approvals_by_draft ON approvals (grant_id, draft);
CREATE INDEX approvals_by_expiry ON approvals (expires_at);

-- Background delivery: sealed to the notifier key, which no database holds.
CREATE TABLE notifiers (
    account text PRIMARY KEY,
    record bytea NOT NULL
);
CREATE TABLE notifier_cursors (
    account text PRIMARY KEY,
    cursor text NOT NULL
);
CREATE TABLE backgrounds (
    grant_id text PRIMARY KEY,
    account text NOT NULL,
    record bytea NOT NULL
);
CREATE INDEX backgrounds_by_account ON backgrounds (account);
