-- Browser flow steps between two requests (consent, upstream legs, settings sessions), so any
-- instance serves any step. The record is sealed under the step's handle, which only the
-- browser holds; key is SHA-256 of kind and handle.
CREATE TABLE flow_steps (
    key bytea PRIMARY KEY,
    kind text NOT NULL,
    expires_at bigint NOT NULL,
    record bytea NOT NULL
);
CREATE INDEX flow_steps_kind_expiry ON flow_steps (kind, expires_at);
