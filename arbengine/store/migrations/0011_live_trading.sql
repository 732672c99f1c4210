-- Live trading records: every order sent, every live trade, every executor action,
-- and the run-time part of the live configuration with its history.
--
-- Migration 0001 created placeholder live_trades, live_config and live_events tables
-- that nothing ever wrote. They are replaced; should one hold rows (written by hand),
-- the migration stops rather than drop them.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM live_trades) OR EXISTS (SELECT 1 FROM live_config)
            OR EXISTS (SELECT 1 FROM live_events) THEN
        RAISE EXCEPTION 'live_trades, live_config or live_events holds rows: rename those '
            'tables (they are replaced by a new shape) and start again';
    END IF;
END
$$;
DROP TABLE live_trades, live_config, live_events;

-- One row per live trade: a signal of a live strategy, from the entry order to the last
-- exit fill. (strategy, symbol, signal_tick) is the signal_logs row it came from;
-- paper_entry_tick, when set, the paper_trades row (strategy, symbol, entry_tick) of the
-- same signal: its paper twin. Times from the exchange are epoch ms.
CREATE TABLE live_trades (
    id                  bigserial PRIMARY KEY,
    strategy            text     NOT NULL,
    strategy_hash       text     NOT NULL,
    symbol              text     NOT NULL,
    signal_tick         bigint   NOT NULL,
    direction           smallint NOT NULL CHECK (direction IN (-1, 1)),
    status              text     NOT NULL
                        CHECK (status IN ('pending', 'open', 'closed', 'not_opened')),
    quantity            double precision NOT NULL,   -- filled (planned while pending)
    entry_price         double precision,            -- average entry fill
    stop_price          double precision NOT NULL,   -- initial stop-loss trigger
    r_distance          double precision NOT NULL,   -- |entry − stop| the size was computed from
    risk_usd            double precision NOT NULL,
    entry_fills         jsonb    NOT NULL DEFAULT '[]'::jsonb,  -- [{time, price, qty, fee, client_order_id, trade_id}]
    exit_fills          jsonb    NOT NULL DEFAULT '[]'::jsonb,  -- the same, with reason
    fees                double precision NOT NULL DEFAULT 0,    -- USD, entry and exits
    funding             double precision NOT NULL DEFAULT 0,    -- USD P&L effect
    realised_r          double precision,
    realised_usd        double precision,
    exit_reason         text,
    plan_differences    jsonb    NOT NULL DEFAULT '[]'::jsonb,  -- [{what, paper, live, why}]
    paper_entry_tick    bigint,
    opened_at           bigint,
    closed_at           bigint,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (strategy, symbol, signal_tick)
);
CREATE INDEX live_trades_active ON live_trades (symbol) WHERE status IN ('pending', 'open');
CREATE INDEX live_trades_tick ON live_trades (signal_tick);
CREATE INDEX live_trades_symbol_tick ON live_trades (symbol, signal_tick);

-- Every order and algo order the executor sent (or found on the exchange), by its client
-- id (newClientOrderId / clientAlgoId). status is the exchange's (NEW, FILLED, …; algo:
-- NEW, TRIGGERED, FINISHED, …) or ours before it answered (PENDING, UNKNOWN);
-- status_history appends {status, time, note} at each change; status_time is the
-- (exchange) time of the current status, and a report older than it is ignored.
CREATE TABLE live_orders (
    id                  bigserial PRIMARY KEY,
    client_order_id     text     NOT NULL UNIQUE,
    exchange_order_id   bigint,                      -- orderId, or algoId for an algo order
    kind                text     NOT NULL CHECK (kind IN ('order', 'algo')),
    role                text     NOT NULL,           -- entry, stop_loss, take_profit_1 …
    symbol              text     NOT NULL,
    side                text     NOT NULL CHECK (side IN ('BUY', 'SELL')),
    type                text     NOT NULL,           -- MARKET, STOP_MARKET, TAKE_PROFIT_MARKET …
    quantity            double precision,            -- none with close_position
    price               double precision,
    trigger_price       double precision,
    reduce_only         boolean  NOT NULL DEFAULT false,
    close_position      boolean  NOT NULL DEFAULT false,
    status              text     NOT NULL,
    status_time         bigint   NOT NULL,
    status_history      jsonb    NOT NULL DEFAULT '[]'::jsonb,
    filled_quantity     double precision NOT NULL DEFAULT 0,
    average_price       double precision,
    trade_id            bigint   REFERENCES live_trades (id) ON DELETE SET NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX live_orders_trade ON live_orders (trade_id);
CREATE INDEX live_orders_symbol_created ON live_orders (symbol, created_at);
CREATE INDEX live_orders_created ON live_orders (created_at);
CREATE INDEX live_orders_open ON live_orders (symbol)
    WHERE status NOT IN ('FILLED', 'CANCELED', 'EXPIRED', 'EXPIRED_IN_MATCH', 'REJECTED',
                         'FINISHED', 'NOT_FOUND');

-- What the executor and the reconciler did and why, and what an admin changed:
-- one row per action. event_id makes a retried write a no-op.
CREATE TABLE live_events (
    id          bigserial PRIMARY KEY,
    event_id    uuid        NOT NULL UNIQUE,
    at          timestamptz NOT NULL,
    level       text        NOT NULL CHECK (level IN ('info', 'warning', 'error')),
    kind        text        NOT NULL,           -- dotted, like log events: live.order_placed …
    symbol      text,
    strategy    text,
    detail      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    who         text        NOT NULL            -- executor, reconciler, admin:<name>, cli
);
CREATE INDEX live_events_at ON live_events (at);
CREATE INDEX live_events_symbol_at ON live_events (symbol, at);

-- The run-time part of the live configuration: each change is a new row (the latest is
-- in force), so the history of who changed what stays. No row: the settings file's.
CREATE TABLE live_config (
    id                  bigserial PRIMARY KEY,
    change_id           uuid        NOT NULL UNIQUE,
    strategies          jsonb       NOT NULL,   -- ["v52", …]
    risk_per_trade_usd  double precision NOT NULL CHECK (risk_per_trade_usd > 0),
    max_positions       integer     NOT NULL CHECK (max_positions >= 1),
    paused              boolean     NOT NULL,
    changed_by          text        NOT NULL,
    changed_at          timestamptz NOT NULL DEFAULT now()
);
