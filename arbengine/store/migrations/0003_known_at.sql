-- When each premiumIndex reading became visible to us (max of its own time and
-- its arrival, on the exchange's clock): what the engine's as-of uses, so a
-- backtest sees exactly what the live engine could see.
ALTER TABLE rate_snapshots ADD COLUMN known_at bigint;
UPDATE rate_snapshots SET known_at = ts WHERE known_at IS NULL;
ALTER TABLE rate_snapshots ALTER COLUMN known_at SET NOT NULL;
CREATE INDEX rate_snapshots_known ON rate_snapshots (symbol, known_at);
CREATE INDEX liquidation_events_ts ON liquidation_events (symbol, ts);
