-- API keys, the audit log, budgets and what gateways are told about them.

-- A key is shown once at creation and stored only as its SHA-256; the prefix
-- lets people tell keys apart in a list without revealing them.
CREATE TABLE api_keys (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT    NOT NULL,
    role        TEXT    NOT NULL
                CHECK (role IN ('admin', 'finops', 'security', 'operator', 'gateway', 'ingest')),
    -- For role gateway: the gateway ids it may read, comma separated.
    gateways    TEXT    NOT NULL DEFAULT '',
    prefix      TEXT    NOT NULL,
    key_sha256  TEXT    NOT NULL UNIQUE,
    created_at  TEXT    NOT NULL,
    expires_at  TEXT,
    revoked_at  TEXT
);

-- Every change made through the API or the CLI: who, when, what, before and after.
CREATE TABLE audit_log (
    id      BIGSERIAL PRIMARY KEY,
    at      TEXT    NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    target  TEXT    NOT NULL,
    before  TEXT,
    after   TEXT
);
CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only'; END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- A budget: a scope, a calendar-month quota of tokens and/or cost, and what the
-- gateways do when it is exhausted. Amounts are exact decimals as text.
CREATE TABLE budgets (
    id                          BIGSERIAL PRIMARY KEY,
    name                        TEXT    NOT NULL UNIQUE,
    scope                       TEXT    NOT NULL
                                CHECK (scope IN ('subscription', 'product', 'cost_centre', 'agent')),
    scope_id                    TEXT    NOT NULL,
    period                      TEXT    NOT NULL CHECK (period = 'month'),
    token_quota                 BIGINT,
    cost_quota                  TEXT,
    currency                    TEXT,
    tokens_per_minute           BIGINT,
    -- Fractions of the quota that raise a warning, ascending, comma separated.
    warn_at                     TEXT    NOT NULL,
    action                      TEXT    NOT NULL
                                CHECK (action IN ('notify', 'throttle', 'downgrade', 'block')),
    throttle_tokens_per_minute  BIGINT,
    downgrade_to                TEXT,
    -- The gateways that enforce it, comma separated; empty means every gateway.
    gateways                    TEXT    NOT NULL DEFAULT '',
    created_at                  TEXT    NOT NULL,
    updated_at                  TEXT    NOT NULL
);

-- Each budget's state as last evaluated, for the period it was evaluated in.
CREATE TABLE budget_states (
    budget_id     BIGINT  NOT NULL PRIMARY KEY REFERENCES budgets (id) ON DELETE CASCADE,
    period_start  TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('ok', 'warning', 'exhausted')),
    -- How many warning thresholds are crossed (a crossing of each is an event).
    level         BIGINT  NOT NULL,
    tokens_used   BIGINT  NOT NULL,
    cost_used     TEXT    NOT NULL,
    evaluated_at  TEXT    NOT NULL,
    -- The inputs version (StateDb::inputs_version) it was computed at: an older
    -- computation finishing late never overwrites a newer one.
    inputs_version BIGINT  NOT NULL
);

-- Every state change (and every threshold crossed), with its figures. Rows with
-- no delivered_at and attempts left are the notification outbox.
CREATE TABLE budget_events (
    id             BIGSERIAL PRIMARY KEY,
    budget_id      BIGINT  NOT NULL,
    budget_name    TEXT    NOT NULL,
    at             TEXT    NOT NULL,
    period_start   TEXT    NOT NULL,
    from_state     TEXT    NOT NULL,
    to_state       TEXT    NOT NULL,
    -- The webhook body (LiteLLM's budget-event shape), fixed when the event happens.
    payload        TEXT    NOT NULL,
    delivered_at   TEXT,
    failed_at      TEXT,
    next_attempt_at TEXT
);
CREATE INDEX budget_events_outbox ON budget_events (delivered_at, failed_at, id);

-- Every attempt to deliver an event to a receiver.
CREATE TABLE webhook_deliveries (
    id        BIGSERIAL PRIMARY KEY,
    event_id  BIGINT  NOT NULL REFERENCES budget_events (id),
    at        TEXT    NOT NULL,
    attempt   BIGINT  NOT NULL,
    status    BIGINT,
    error     TEXT,
    outcome   TEXT    NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed'))
);

-- What each gateway is told: its budget entries as served, and a version that
-- grows only when they change (the ETag).
CREATE TABLE gateway_views (
    gateway_id   TEXT    NOT NULL PRIMARY KEY,
    version      BIGINT  NOT NULL,
    body_sha256  TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL
);

-- Push-ingest answers by Idempotency-Key, so a retried push gets the first answer.
CREATE TABLE ingest_requests (
    idempotency_key  TEXT    NOT NULL PRIMARY KEY,
    body_sha256      TEXT    NOT NULL,
    response         TEXT    NOT NULL,
    created_at       TEXT    NOT NULL
);
