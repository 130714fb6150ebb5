-- Keys every instance shares, made by the first to ask: the HMAC key of 2026-07-28 request
-- states, so a client's answer may reach any instance.
CREATE TABLE shared_keys (
    name text PRIMARY KEY,
    key bytea NOT NULL
);
