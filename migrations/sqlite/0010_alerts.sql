-- Alerting: what the rollups need for 429, quota, circuit-breaker and backend
-- latency metrics, alert rules, the alert episodes derived from the rollups,
-- their notification outbox, and the budget cuts (load shedding) rules make
-- while they fire.

-- New rollup measures. Hours rolled up before them are recomputed: every
-- committed batch is listed as owed a rollup, which the next ingest, report or
-- server start catches up.
ALTER TABLE rollup_hourly ADD COLUMN region TEXT;
-- Refused by a quota policy (status 403 answered by the gateway itself).
ALTER TABLE rollup_hourly ADD COLUMN quota_403 INTEGER NOT NULL DEFAULT 0;
-- Answered by an open backend circuit breaker (the error names a circuit breaker).
ALTER TABLE rollup_hourly ADD COLUMN breaker_trips INTEGER NOT NULL DEFAULT 0;
-- Backend latency as a sketch, as `latency_sketch` is the total latency.
ALTER TABLE rollup_hourly ADD COLUMN backend_latency_sketch BLOB NOT NULL DEFAULT x'';
-- The order hours were (re)computed in: the `rollups` state version of the
-- transaction that stored them. Alert evaluation re-judges every hour stored at
-- a higher one than it has seen, whichever batch or process computed it.
ALTER TABLE rollup_hours ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
DELETE FROM rollup_hourly;
DELETE FROM rollup_hours;
INSERT INTO rollup_pending (batch_id)
    SELECT id FROM ingest_batches WHERE status = 'committed'
    ON CONFLICT (batch_id) DO NOTHING;

-- The minute tier: the same measures per minute, on fewer dimensions, for the
-- most recent hours of data (48 before the newest hour rolled up); older minutes
-- are dropped. Live charts and the short windows of burn-rate alerts read it.
CREATE TABLE rollup_minute (
    minute_us              INTEGER NOT NULL,
    hour_us                INTEGER NOT NULL,
    subscription           TEXT,
    product                TEXT,
    gateway_id             TEXT,
    backend                TEXT,
    deployment             TEXT,
    region                 TEXT,
    requests               INTEGER NOT NULL,
    status_5xx             INTEGER NOT NULL,
    client_429             INTEGER NOT NULL,
    backend_429            INTEGER NOT NULL,
    quota_403              INTEGER NOT NULL,
    breaker_trips          INTEGER NOT NULL,
    cache_hits             INTEGER NOT NULL,
    prompt_tokens          INTEGER NOT NULL,
    completion_tokens      INTEGER NOT NULL,
    latency_sketch         BLOB NOT NULL,
    backend_latency_sketch BLOB NOT NULL
);
CREATE INDEX rollup_minute_hour ON rollup_minute (hour_us);
CREATE INDEX rollup_minute_minute ON rollup_minute (minute_us);

-- Rules as checked (the spec as JSON); `origin` says who owns a rule: the
-- shipped defaults, the config file, or the API.
CREATE TABLE alert_rules (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL UNIQUE,
    spec       TEXT    NOT NULL,
    origin     TEXT    NOT NULL CHECK (origin IN ('default', 'config', 'api')),
    updated_at TEXT    NOT NULL
);

-- One row per episode of an alert instance (a rule and a label set): when its
-- condition first held, when it fired, when it resolved, at data time
-- (microseconds). Derived from the rollups, replaced whenever the hours it
-- covers are evaluated again.
CREATE TABLE alert_episodes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    rule        TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    labels      TEXT    NOT NULL,
    annotations TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'firing', 'resolved')),
    active_at   INTEGER NOT NULL,
    fired_at    INTEGER,
    resolved_at INTEGER,
    value       REAL    NOT NULL,
    peak        REAL    NOT NULL,
    updated_at  TEXT    NOT NULL,
    UNIQUE (rule, fingerprint, active_at)
);
CREATE INDEX alert_episodes_open ON alert_episodes (state, rule);

-- The notification outbox: one row per episode, status and receiver, so an
-- evaluation repeated cannot send a transition twice.
CREATE TABLE alert_notifications (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    rule         TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL,
    active_at    INTEGER NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('firing', 'resolved')),
    receiver     TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      TEXT,
    last_status  INTEGER,
    last_error   TEXT,
    delivered_at TEXT,
    failed_at    TEXT,
    UNIQUE (rule, fingerprint, active_at, status, receiver)
);
CREATE INDEX alert_notifications_due ON alert_notifications (delivered_at, failed_at, id);

-- Budget cuts made by a firing rule's shedding action; `ended_at` is set when
-- the episode resolves and the budget is restored.
CREATE TABLE alert_sheds (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    rule        TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    active_at   INTEGER NOT NULL,
    budget_id   INTEGER NOT NULL,
    factor      REAL    NOT NULL,
    started_at  TEXT    NOT NULL,
    ended_at    TEXT,
    UNIQUE (rule, fingerprint, active_at, budget_id)
);

-- How far the live evaluation has gone: the data time evaluated to and the
-- highest rollup `seq` it saw (hours stored at a higher one are evaluated again).
CREATE TABLE alert_cursor (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    evaluated_to INTEGER NOT NULL,
    watermark    INTEGER NOT NULL,
    evaluated_at TEXT    NOT NULL
);
