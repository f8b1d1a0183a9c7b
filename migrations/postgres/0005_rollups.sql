-- Hourly rollups: aggregates derived from the lake, which reports read instead of
-- raw rows. Rebuildable from the lake at any time (`tollgate rollups rebuild`).
-- Hours are the first microsecond of the UTC hour, as the lake's timestamps.

-- One row per hour and combination of dimensions (NULL where a request has none).
CREATE TABLE rollup_hourly (
    hour_us            BIGINT NOT NULL,
    subscription       TEXT,
    product            TEXT,
    agent              TEXT,
    api                TEXT,
    gateway_id         TEXT,
    backend            TEXT,
    deployment         TEXT,
    model              TEXT,
    requests           BIGINT NOT NULL,
    status_2xx         BIGINT NOT NULL,
    status_3xx         BIGINT NOT NULL,
    status_4xx         BIGINT NOT NULL,
    status_5xx         BIGINT NOT NULL,
    -- Refused by the gateway itself (status 429, the backend did not say 429).
    client_429         BIGINT NOT NULL,
    -- Throttled by the model backend (backend status 429).
    backend_429        BIGINT NOT NULL,
    cache_hits         BIGINT NOT NULL,
    prompt_tokens      BIGINT NOT NULL,
    cached_tokens      BIGINT NOT NULL,
    completion_tokens  BIGINT NOT NULL,
    reasoning_tokens   BIGINT NOT NULL,
    -- Total latency as a mergeable log-bucket sketch (1% relative accuracy).
    latency_sketch     BYTEA NOT NULL
);
CREATE INDEX rollup_hourly_hour ON rollup_hourly (hour_us);

-- Which manifest watermark each hour was computed at: an hour is only ever
-- replaced by a computation that saw at least as much of the lake.
CREATE TABLE rollup_hours (
    hour_us     BIGINT NOT NULL PRIMARY KEY,
    watermark   BIGINT NOT NULL,
    computed_at TEXT   NOT NULL
);

-- Batches committed whose hours are not rolled up yet: written in the commit's
-- own transaction, so a crash between commit and rollup leaves the work listed.
CREATE TABLE rollup_pending (
    batch_id BIGINT NOT NULL PRIMARY KEY
);
