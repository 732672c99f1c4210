-- The tape archive's manifest: one row per sealed symbol-day, the Parquet file
-- written for it and what it was checked against. agg_trades stays the source
-- of truth; a row here only says that its file holds exactly what the table held
-- for that day when it was sealed. A write of trades into a sealed day sets
-- changed_at (agg_trades_archive_touch): readers then ignore the file and read
-- the table until the day is sealed again.
CREATE TABLE agg_trades_archive (
    symbol      text   NOT NULL,
    day         date   NOT NULL,                 -- UTC day of trade time
    rows        bigint NOT NULL,
    first_id    bigint NOT NULL,
    last_id     bigint NOT NULL,
    bytes       bigint NOT NULL,                 -- size of the file
    sha256      text   NOT NULL,                 -- hex digest of the file's bytes
    path        text   NOT NULL,                 -- relative to the archive's root
    sealed_at   timestamptz NOT NULL DEFAULT now(),
    changed_at  timestamptz,                     -- trades written into the day since
    PRIMARY KEY (symbol, day)
);

-- Every write of trades calls this in its transaction, after its rows went in, with the
-- (symbol, day) pairs it inserted rows into. The shared advisory lock per symbol-day makes
-- it wait for a sealer holding that day (exclusively, from before its read until its
-- manifest row is committed), so a write is either in the file or marks the seal changed:
-- never lost between a sealer's read and its commit. Shared locks do not wait for each
-- other, and the live tape writes today, which is never being sealed.
CREATE FUNCTION agg_trades_archive_touch(symbols text[], days date[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtext('agg_trades_archive ' || t.s),
                                         t.d - date '1970-01-01')
    FROM unnest(symbols, days) AS t(s, d);
    UPDATE agg_trades_archive a SET changed_at = now()
    FROM unnest(symbols, days) AS t(s, d)
    WHERE a.symbol = t.s AND a.day = t.d AND a.changed_at IS NULL;
END
$$;
