-- The signal a live trade came from, as the executor traded it (its price and ATR set the
-- exit plan): a restart rebuilds the trade's plan from it. NULL for trades stored before.
ALTER TABLE live_trades ADD COLUMN signal jsonb;
