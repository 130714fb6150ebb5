-- Who is renewing a grant's upstream tokens right now, among all instances: a refresh token
-- used twice ends the grant at Fastmail, so one instance at a time holds a grant's turn. A
-- turn lapses at `until` (unix seconds) if its holder died.
CREATE TABLE refresh_turns (
    grant_id text PRIMARY KEY,
    holder text NOT NULL,
    until bigint NOT NULL
);
