-- Range reads by trade time (backtests, warm starts) without scanning whole months.
-- A BRIN index is tiny and cheap to maintain, and fits: rows arrive in time order.
CREATE INDEX agg_trades_ts_brin ON agg_trades USING brin (ts) WITH (pages_per_range = 32);
