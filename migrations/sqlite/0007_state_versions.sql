-- A counter per kind of input a report depends on (rollups, prices, capacity,
-- ownership, month closes), bumped in the same transaction as each change, so a
-- cached report can tell in one query whether anything it was computed from changed.
CREATE TABLE state_versions (
    name    TEXT   NOT NULL PRIMARY KEY,
    version INTEGER NOT NULL
);
