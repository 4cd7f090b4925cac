CREATE TABLE IF NOT EXISTS ark_api_keys (
    id           text        PRIMARY KEY,
    key_hash     bytea       NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    name         text        NOT NULL DEFAULT '',
    environment  text        NOT NULL CHECK (environment IN ('live', 'test')),
    permissions  text[]      NOT NULL DEFAULT '{}',
    tenant       text,
    expires_at   timestamptz,
    revoked      boolean     NOT NULL DEFAULT false,
    rate_limit   integer     CHECK (rate_limit IS NULL OR rate_limit > 0),
    metadata     jsonb       NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);

-- A key's limits other than one per second (`rate_limit`): an object from window to limit,
-- {"second": 10, "day": 10000}. Added to an existing table in place; NULL for its rows.
ALTER TABLE ark_api_keys ADD COLUMN IF NOT EXISTS rate_limits jsonb
    CHECK (rate_limits IS NULL OR jsonb_typeof(rate_limits) = 'object');

CREATE OR REPLACE FUNCTION ark_api_keys_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('ark_api_keys', '*');
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('ark_api_keys', encode(OLD.key_hash, 'hex'));
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.key_hash IS DISTINCT FROM OLD.key_hash) THEN
        PERFORM pg_notify('ark_api_keys', encode(NEW.key_hash, 'hex'));
    END IF;
    RETURN NULL;
END
$$;

-- Created only when missing: re-creating would lock the table against lookups at every start.
DO $$
BEGIN
    -- A trigger made before `rate_limits` existed does not watch it: made again, once.
    IF EXISTS (SELECT 1 FROM pg_trigger t JOIN pg_attribute a
                   ON a.attrelid = t.tgrelid AND a.attname = 'rate_limits'
               WHERE t.tgrelid = 'ark_api_keys'::regclass AND t.tgname = 'ark_api_keys_changed'
                 AND NOT a.attnum = ANY (t.tgattr::int2[])) THEN
        DROP TRIGGER ark_api_keys_changed ON ark_api_keys;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'ark_api_keys'::regclass
                   AND tgname = 'ark_api_keys_changed') THEN
        CREATE TRIGGER ark_api_keys_changed
            AFTER INSERT OR DELETE
               OR UPDATE OF id, key_hash, name, environment, permissions, tenant, expires_at,
                            revoked, rate_limit, rate_limits, metadata
            ON ark_api_keys FOR EACH ROW EXECUTE FUNCTION ark_api_keys_notify();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'ark_api_keys'::regclass
                   AND tgname = 'ark_api_keys_truncated') THEN
        CREATE TRIGGER ark_api_keys_truncated
            AFTER TRUNCATE ON ark_api_keys
            FOR EACH STATEMENT EXECUTE FUNCTION ark_api_keys_notify();
    END IF;
END
$$;
