-- Lineage edges drawn from OpenTelemetry traces carry the origin `otel`.
-- SQLite cannot change a CHECK in place: the table is rebuilt with its rows.
CREATE TABLE lineage_edges_new (
    id          INTEGER PRIMARY KEY,
    from_node   INTEGER NOT NULL REFERENCES lineage_nodes (id),
    to_node     INTEGER NOT NULL REFERENCES lineage_nodes (id),
    kind        TEXT    NOT NULL,
    origin      TEXT    NOT NULL
                CHECK (origin IN ('catalog', 'openlineage', 'foundry', 'atlas', 'observed', 'otel')),
    blocked     BOOLEAN NOT NULL DEFAULT FALSE,
    cap         TEXT,
    first_seen  TEXT,
    last_seen   TEXT,
    calls       INTEGER NOT NULL DEFAULT 0,
    CHECK (NOT (blocked AND cap IS NOT NULL)),
    UNIQUE (from_node, to_node, kind, origin)
);
INSERT INTO lineage_edges_new
    SELECT id, from_node, to_node, kind, origin, blocked, cap, first_seen, last_seen, calls
    FROM lineage_edges;
DROP TABLE lineage_edges;
ALTER TABLE lineage_edges_new RENAME TO lineage_edges;
CREATE INDEX lineage_edges_to ON lineage_edges (to_node);
