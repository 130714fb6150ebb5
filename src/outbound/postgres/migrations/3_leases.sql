-- Leases among instances: a name (`refresh-turn:<grant>` — a refresh token used twice ends the
-- grant at Fastmail, so one instance at a time renews a grant; `notifier` — one instance runs
-- background delivery), its holder, and when it lapses (unix seconds) if the holder died.
CREATE TABLE leases (
    name text PRIMARY KEY,
    holder text NOT NULL,
    until bigint NOT NULL
);
