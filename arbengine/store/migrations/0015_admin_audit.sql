-- What admins do to users and invite codes, through the API (admin:<name>) or the command
-- line (cli:<os user>): one row per action, written in the transaction that does it, so an
-- action is never done without its row. Refusals (yourself, a used invite, no such user)
-- are recorded too: who tried what is as worth keeping as what was done.
CREATE TABLE admin_audit (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    who         text        NOT NULL,
    action      text        NOT NULL
                CHECK (action IN ('create_admin', 'ban', 'unban', 'set_role',
                                  'create_invites', 'revoke_invite')),
    target      text,                       -- a username, an invite code, "3 invite codes"
    result      text        NOT NULL
                CHECK (result IN ('done', 'unchanged', 'refused', 'not_found')),
    detail      jsonb       NOT NULL DEFAULT '{}'::jsonb   -- ids, counts, before/after, why
);

-- An invite code can be revoked while unused; a revoked code never registers anyone.
-- A note says whom a code was made for.
ALTER TABLE invite_codes
    ADD COLUMN revoked_at timestamptz,
    ADD COLUMN note       text;
CREATE INDEX invite_codes_created ON invite_codes (created_at DESC, code DESC);
