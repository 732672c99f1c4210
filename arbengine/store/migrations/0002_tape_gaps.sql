-- Every gap the tape met, and what became of it: the audit trail behind the
-- counters in agg_trades_meta (which are recomputed from it, so a retried
-- write can never count a gap twice).
CREATE TABLE agg_trades_gaps (
    symbol       text   NOT NULL,
    from_id      bigint NOT NULL,
    to_id        bigint NOT NULL,
    outcome      text   NOT NULL CHECK (outcome IN ('seen', 'repaired', 'hole')),
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, from_id, to_id, outcome)
);
