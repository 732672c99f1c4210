-- Emergency controls (pause, resume, flatten, cancel-all): one row per command, whoever
-- asked (the CLI, an admin through the API, the risk guard). The CLI reaches the running
-- daemon through this table: it inserts a pending row and NOTIFYs live_commands with
-- the id; the daemon takes it (pending -> running, only while it is fresh), acts,
-- writes the acknowledgement and NOTIFYs live_command_acks. A row nobody took in time
-- is marked expired by the CLI and can never be taken later.
CREATE TABLE live_commands (
    id              uuid        PRIMARY KEY,
    command         text        NOT NULL
                    CHECK (command IN ('pause', 'resume', 'flatten', 'cancel_all')),
    symbol          text,
    trade_id        bigint,
    who             text        NOT NULL,       -- cli:<os user>, admin:<name>, risk
    requested_at    timestamptz NOT NULL DEFAULT now(),
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'running', 'requested', 'done', 'failed',
                                      'expired')),
    result          text,                       -- one line: what was done, or why not
    state           jsonb,                      -- {paused, positions, open_orders} after it
    detail          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    acked_at        timestamptz,
    finished_at     timestamptz
);
CREATE INDEX live_commands_requested ON live_commands (requested_at);
CREATE INDEX live_commands_pending ON live_commands (requested_at) WHERE status = 'pending';
