-- An Idempotency-Key is claimed, per key holder, before its push is ingested:
-- the claim is the unique row, so of two pushes racing with one key exactly one
-- ingests and the other is refused (409). `response` is NULL while the claimed
-- push runs; `claim` names the push holding it, so only that push answers or
-- releases it. Answers recorded before this migration were not per key holder;
-- they are dropped (a retry of such a push is recognised by its content and
-- answered as already ingested).
DROP TABLE ingest_requests;
CREATE TABLE ingest_requests (
    principal        TEXT    NOT NULL,
    idempotency_key  TEXT    NOT NULL,
    body_sha256      TEXT    NOT NULL,
    response         TEXT,
    claim            TEXT    NOT NULL,
    claimed_at       TEXT    NOT NULL,
    PRIMARY KEY (principal, idempotency_key)
);
