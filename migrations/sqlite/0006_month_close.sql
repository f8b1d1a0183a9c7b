-- Month close: every close and re-open of a month, in order. A month is closed
-- when its latest row is a close; that row names the stored snapshot (JSON and
-- Parquet, each with its sha256), the manifest watermark and the batches it used.

CREATE TABLE month_closes (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    month          TEXT   NOT NULL,
    action         TEXT   NOT NULL CHECK (action IN ('close', 'reopen')),
    at             TEXT   NOT NULL,
    reason         TEXT,
    watermark      INTEGER,
    batch_ids      TEXT,
    json_path      TEXT,
    json_sha256    TEXT,
    parquet_path   TEXT,
    parquet_sha256 TEXT,
    total          TEXT
);
CREATE INDEX month_closes_month ON month_closes (month, id);
