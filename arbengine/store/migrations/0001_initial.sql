-- The tables of the original system, under their original names.
-- Times of market events are epoch milliseconds (UTC) in BIGINT columns: the
-- exchange's own unit, exact, and cheap to COPY and to read back in bulk.
-- Times of our own bookkeeping (created_at, used_at …) are timestamptz.

CREATE TABLE agg_trades (
    symbol          text             NOT NULL,
    agg_id          bigint           NOT NULL,
    ts              bigint           NOT NULL,  -- trade time T
    price           double precision NOT NULL,
    qty             double precision NOT NULL,
    first_trade_id  bigint           NOT NULL,
    last_trade_id   bigint           NOT NULL,
    is_buyer_maker  boolean          NOT NULL,
    PRIMARY KEY (symbol, agg_id, ts)
) PARTITION BY RANGE (ts);

CREATE TABLE agg_trades_meta (
    symbol          text PRIMARY KEY,
    first_id        bigint,
    last_id         bigint,
    first_ts        bigint,
    last_ts         bigint,
    rows            bigint NOT NULL DEFAULT 0,
    gaps_seen       bigint NOT NULL DEFAULT 0,
    gaps_repaired   bigint NOT NULL DEFAULT 0,
    holes_left      bigint NOT NULL DEFAULT 0,
    holes           jsonb  NOT NULL DEFAULT '[]'::jsonb,  -- [[from_id, to_id], …] not repairable
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Completeness per symbol and UTC day: stored ids / (last id − first id + 1).
CREATE TABLE agg_trades_daily (
    symbol          text   NOT NULL,
    day             date   NOT NULL,
    first_id        bigint NOT NULL,
    last_id         bigint NOT NULL,
    rows            bigint NOT NULL,
    completeness    double precision NOT NULL,
    checked_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, day)
);

CREATE TABLE rate_snapshots (
    symbol                  text   NOT NULL,
    ts                      bigint NOT NULL,  -- premiumIndex "time"
    mark_price              double precision NOT NULL,
    index_price             double precision NOT NULL,
    estimated_settle_price  double precision,
    funding_rate            double precision NOT NULL,
    interest_rate           double precision,
    next_funding_time       bigint,
    PRIMARY KEY (symbol, ts)
);

-- Every other market series (open interest, ratios, funding history, Coinbase
-- price, mark price …): one row per (symbol, kind, ts). known_at is the time
-- the value became visible (ts + period for period series), which is what
-- the signal engine and the backtester use.
CREATE TABLE market_indicators (
    symbol      text   NOT NULL,
    kind        text   NOT NULL,
    ts          bigint NOT NULL,
    known_at    bigint NOT NULL,
    value       double precision,
    data        jsonb  NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (symbol, kind, ts)
);
CREATE INDEX market_indicators_known ON market_indicators (symbol, kind, known_at);

CREATE TABLE liquidation_events (
    symbol          text   NOT NULL,
    ts              bigint NOT NULL,   -- order time o.T
    event_time      bigint NOT NULL,   -- E
    side            text   NOT NULL CHECK (side IN ('BUY', 'SELL')),
    order_type      text   NOT NULL,
    time_in_force   text   NOT NULL,
    qty             double precision NOT NULL,
    price           double precision NOT NULL,
    avg_price       double precision NOT NULL,
    status          text   NOT NULL,
    last_qty        double precision NOT NULL,
    filled_qty      double precision NOT NULL,
    PRIMARY KEY (symbol, ts, side, avg_price, filled_qty)
);

-- One-minute aggregates per side; a lower bound (Binance pushes at most one
-- liquidation per symbol per second).
CREATE TABLE liquidation_agg (
    symbol      text   NOT NULL,
    minute      bigint NOT NULL,  -- start of the minute, epoch ms
    side        text   NOT NULL CHECK (side IN ('BUY', 'SELL')),
    count       integer NOT NULL,
    qty         double precision NOT NULL,
    notional    double precision NOT NULL,
    PRIMARY KEY (symbol, minute, side)
);

CREATE TABLE signal_indicators (
    strategy        text    NOT NULL,
    strategy_hash   text    NOT NULL,
    symbol          text    NOT NULL,
    tick            bigint  NOT NULL,
    direction       smallint,           -- 1, -1, or NULL when there is none
    score           double precision,
    coverage        double precision,
    fired           boolean NOT NULL,
    reason          text,               -- why it did not fire
    features        jsonb   NOT NULL,
    contributions   jsonb   NOT NULL,
    gates           jsonb   NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (strategy, symbol, tick)
);
CREATE INDEX signal_indicators_tick ON signal_indicators (tick);

CREATE TABLE signal_logs (
    id              bigserial PRIMARY KEY,
    strategy        text    NOT NULL,
    strategy_hash   text    NOT NULL,
    symbol          text    NOT NULL,
    tick            bigint  NOT NULL,
    direction       smallint NOT NULL,
    score           double precision NOT NULL,
    coverage        double precision NOT NULL,
    price           double precision NOT NULL,
    atr             double precision NOT NULL,
    features        jsonb   NOT NULL,
    contributions   jsonb   NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (strategy, symbol, tick)
);
CREATE INDEX signal_logs_symbol_tick ON signal_logs (symbol, tick);

CREATE TABLE paper_trades (
    id              bigserial PRIMARY KEY,
    strategy        text    NOT NULL,
    strategy_hash   text    NOT NULL,
    symbol          text    NOT NULL,
    direction       smallint NOT NULL,
    entry_tick      bigint  NOT NULL,
    entry_price     double precision NOT NULL,
    r_distance      double precision NOT NULL,
    stop_loss       double precision NOT NULL,
    take_profit_1   double precision,
    take_profit_2   double precision,
    quantity        double precision NOT NULL,
    risk_usd        double precision NOT NULL,
    status          text    NOT NULL CHECK (status IN ('open', 'closed')),
    exits           jsonb   NOT NULL DEFAULT '[]'::jsonb,  -- [{ts, agg_id, price, fraction, reason}]
    exit_reason     text,
    closed_at       bigint,
    last_agg_id     bigint,          -- last trade the position has seen (resume point)
    result_r        double precision,
    result_usd      double precision,
    fees            double precision NOT NULL DEFAULT 0,
    funding         double precision NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (strategy, symbol, entry_tick)
);
CREATE INDEX paper_trades_open ON paper_trades (status) WHERE status = 'open';

CREATE TABLE live_trades (
    id                  bigserial PRIMARY KEY,
    strategy            text    NOT NULL,
    symbol              text    NOT NULL,
    direction           smallint NOT NULL,
    signal_tick         bigint  NOT NULL,
    client_order_id     text    NOT NULL UNIQUE,
    status              text    NOT NULL,
    quantity            double precision,
    entry_price         double precision,
    exit_price          double precision,
    realised_pnl        double precision,
    fees                double precision,
    funding             double precision,
    exit_reason         text,
    opened_at           timestamptz,
    closed_at           timestamptz,
    data                jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (strategy, symbol, signal_tick)
);

CREATE TABLE live_config (
    key         text PRIMARY KEY,
    value       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE live_events (
    id          bigserial PRIMARY KEY,
    ts          timestamptz NOT NULL DEFAULT now(),
    kind        text NOT NULL,
    severity    text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    symbol      text,
    data        jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX live_events_ts ON live_events (ts);

CREATE TABLE users (
    id              bigserial PRIMARY KEY,
    username        text NOT NULL UNIQUE,
    password_hash   text NOT NULL,
    role            text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    banned          boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_login_at   timestamptz
);

CREATE TABLE invite_codes (
    code        text PRIMARY KEY,
    created_by  bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    used_by     bigint REFERENCES users (id) ON DELETE SET NULL,
    used_at     timestamptz
);

CREATE TABLE refresh_tokens (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family      uuid   NOT NULL,
    token_hash  text   NOT NULL UNIQUE,
    issued_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
