-- Cost centres and who belongs to them: subscriptions, agents and products mapped
-- to the cost centre that pays. An import replaces both tables in one transaction.

CREATE TABLE cost_centres (
    id   TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL
);

CREATE TABLE ownership (
    kind        TEXT NOT NULL CHECK (kind IN ('subscription', 'agent', 'product')),
    key         TEXT NOT NULL,
    cost_centre TEXT NOT NULL REFERENCES cost_centres (id),
    PRIMARY KEY (kind, key)
);
