-- The HTTP API caches each user's role and ban flag; this tells it at once when
-- they change, whoever changes them (the API, `arbengine admin`, or plain SQL):
-- NOTIFY arbengine_users with the user's id, delivered when the change commits.
CREATE FUNCTION api_user_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('arbengine_users', OLD.id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER users_changed
    AFTER UPDATE OF username, role, banned, password_hash OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION api_user_changed();

-- Usernames are compared lower-case, so "Alice" cannot impersonate "alice".
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));

-- A ban revokes every refresh token of the user.
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
