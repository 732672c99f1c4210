-- The risk guard's trading state (ACTIVE, REDUCING, HALTED) and why: one row, written at
-- every change and refusal, read back at start, so a restart never resets a breaker.
-- Its transitions are also live_events rows (risk.state_changed, risk.auto_resumed).
CREATE TABLE risk_state (
    id               smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    state            text     NOT NULL CHECK (state IN ('ACTIVE', 'REDUCING', 'HALTED')),
    rule             text,                            -- daily_loss_r, balance_floor …
    reason           text,
    rule_values      jsonb    NOT NULL DEFAULT '{}'::jsonb,   -- what the rule saw
    since_ms         bigint   NOT NULL,               -- epoch ms of the change
    resume_after_ms  bigint,                          -- HALTED: earliest auto-resume
    breaks_day_ms    bigint   NOT NULL DEFAULT 0,     -- 00:00 UTC of the day counted
    breaks_today     integer  NOT NULL DEFAULT 0,
    refusals         jsonb    NOT NULL DEFAULT '{}'::jsonb,   -- rule -> entries refused
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- The day's realised result of closed live trades, read every few seconds.
CREATE INDEX live_trades_closed_at ON live_trades (closed_at) WHERE status = 'closed';
