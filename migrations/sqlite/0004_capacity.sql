-- What each gateway backend is (deployment type and region, which select the price
-- row), and the provisioned throughput (PTU) reservations paid by the hour or the
-- month whatever the traffic. Money is in pico-units of the currency; the output
-- token weight in thousandths. Each import replaces its table in one transaction.

CREATE TABLE backends (
    backend         TEXT NOT NULL PRIMARY KEY,
    deployment_type TEXT NOT NULL,
    region          TEXT NOT NULL,
    source          TEXT NOT NULL
);

CREATE TABLE ptu_reservations (
    backend                   TEXT   NOT NULL,
    deployment                TEXT   NOT NULL,
    ptus                      BIGINT NOT NULL CHECK (ptus > 0),
    cost_pico                 BIGINT NOT NULL CHECK (cost_pico >= 0),
    cost_period               TEXT   NOT NULL CHECK (cost_period IN ('hour', 'month')),
    currency                  TEXT   NOT NULL,
    output_token_weight_milli BIGINT NOT NULL CHECK (output_token_weight_milli > 0),
    idle_charged_to           TEXT   NOT NULL,
    effective_from            TEXT   NOT NULL,
    effective_to              TEXT,
    source                    TEXT   NOT NULL,
    PRIMARY KEY (backend, deployment, effective_from)
);
