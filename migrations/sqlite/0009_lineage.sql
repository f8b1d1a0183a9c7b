-- The lineage catalog: nodes and data-flow edges from every importer. The graph
-- and its effective labels are derived in memory from these two tables.

CREATE TABLE lineage_nodes (
    id            INTEGER PRIMARY KEY,
    namespace     TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    owner         TEXT,
    region        TEXT,
    boundary      TEXT,
    -- Labels as written (a sublabel keeps its full text).
    label         TEXT,
    clearance     TEXT,
    allowed_label TEXT,
    -- The importer that last declared the node.
    origin        TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    UNIQUE (namespace, name)
);

CREATE TABLE lineage_edges (
    id          INTEGER PRIMARY KEY,
    from_node   INTEGER NOT NULL REFERENCES lineage_nodes (id),
    to_node     INTEGER NOT NULL REFERENCES lineage_nodes (id),
    kind        TEXT    NOT NULL,
    origin      TEXT    NOT NULL
                CHECK (origin IN ('catalog', 'openlineage', 'foundry', 'atlas', 'observed')),
    blocked     BOOLEAN NOT NULL DEFAULT FALSE,
    cap         TEXT,
    first_seen  TEXT,
    last_seen   TEXT,
    calls       INTEGER NOT NULL DEFAULT 0,
    CHECK (NOT (blocked AND cap IS NOT NULL)),
    UNIQUE (from_node, to_node, kind, origin)
);
CREATE INDEX lineage_edges_to ON lineage_edges (to_node);
