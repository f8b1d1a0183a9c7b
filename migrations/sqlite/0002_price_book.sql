-- The price book: per-token rates by model, deployment type and region (or 'any'),
-- each in force over [effective_from, effective_to) (dates as YYYY-MM-DD; no end
-- means open-ended). Rates are exact integers: pico-units of the currency per
-- unit_tokens tokens. An import replaces the whole book in one transaction.

CREATE TABLE prices (
    model                  TEXT   NOT NULL,
    deployment_type        TEXT   NOT NULL,
    region                 TEXT   NOT NULL,
    currency               TEXT   NOT NULL,
    unit_tokens            BIGINT NOT NULL CHECK (unit_tokens IN (1000, 1000000)),
    input_rate_pico        BIGINT NOT NULL CHECK (input_rate_pico >= 0),
    cached_input_rate_pico BIGINT NOT NULL CHECK (cached_input_rate_pico >= 0),
    output_rate_pico       BIGINT NOT NULL CHECK (output_rate_pico >= 0),
    effective_from         TEXT   NOT NULL,
    effective_to           TEXT,
    -- Where the row came from (file:line), for errors and audits.
    source                 TEXT   NOT NULL,
    PRIMARY KEY (model, deployment_type, region, currency, effective_from)
);
