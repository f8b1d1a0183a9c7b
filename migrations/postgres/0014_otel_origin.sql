-- Lineage edges drawn from OpenTelemetry traces carry the origin `otel`.
ALTER TABLE lineage_edges DROP CONSTRAINT lineage_edges_origin_check;
ALTER TABLE lineage_edges ADD CONSTRAINT lineage_edges_origin_check
    CHECK (origin IN ('catalog', 'openlineage', 'foundry', 'atlas', 'observed', 'otel'));
