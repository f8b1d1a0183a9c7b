-- Invoice reconciliation (docs/reconciliation.md): the Azure resource a backend
-- is billed under, and the meter map from a cost line's meter to what it bills.
ALTER TABLE backends ADD COLUMN resource_id TEXT;

CREATE TABLE meter_map (
    meter           TEXT    NOT NULL PRIMARY KEY,
    model           TEXT,
    token_kind      TEXT    NOT NULL
                    CHECK (token_kind IN ('input', 'cached_input', 'output', 'provisioned_hour')),
    deployment_type TEXT    NOT NULL,
    unit            BIGINT  NOT NULL CHECK (unit > 0),
    source          TEXT    NOT NULL
);
