-- Servers side by side share what one process used to keep.
-- Web sessions: a login on one server works on the others, and logging out
-- ends it everywhere. Only the SHA-256 of the cookie's token is stored, as for
-- API keys; the key it was opened with is named by its SHA-256 too, and is
-- checked on every request (a revoked key ends its sessions).
CREATE TABLE web_sessions (
    token_sha256   TEXT    PRIMARY KEY,
    key_sha256     TEXT    NOT NULL,
    csrf           TEXT    NOT NULL,
    expires_at_us  BIGINT  NOT NULL
);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at_us);
-- A message for a session's next page only (a new key's secret, shown once),
-- sealed with a key derived from the session's token, which only the browser
-- holds: what is stored here cannot be read without the cookie.
CREATE TABLE web_session_flash (
    token_sha256  TEXT    PRIMARY KEY,
    sealed        BLOB   NOT NULL
);
-- Background work done once per change, not once per server: the holder of a
-- lease does it until the lease expires unrenewed (its holder died), when
-- another server takes it over.
CREATE TABLE leases (
    name           TEXT    PRIMARY KEY,
    holder         TEXT    NOT NULL,
    expires_at_us  BIGINT  NOT NULL
);
