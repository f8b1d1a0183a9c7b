-- The rollups move out of the state database into the lake: each hour's rows
-- (and its minute tier) are one Parquet file under lake/derived/, which reports
-- read with Arrow. The state database keeps only which file holds each hour,
-- how many rows it has and the watermark it was computed at.
ALTER TABLE rollup_hours ADD COLUMN row_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollup_hours ADD COLUMN hourly_path TEXT;
ALTER TABLE rollup_hours ADD COLUMN minute_path TEXT;
DROP TABLE rollup_minute;
DROP TABLE rollup_hourly;
-- Every committed batch is owed its rollup again: the next report (or
-- `tollgate rollups catch-up`) recomputes them from the lake.
DELETE FROM rollup_hours;
INSERT INTO rollup_pending (batch_id)
    SELECT id FROM ingest_batches WHERE status = 'committed'
    ON CONFLICT (batch_id) DO NOTHING;
CREATE INDEX rollup_hours_traffic ON rollup_hours (hour_us) WHERE row_count > 0;
