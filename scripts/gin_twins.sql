-- Embedded-only accelerator, installed by scripts/dbserver.py in FerretDB's PostgreSQL database.
--
-- FerretDB v1 pushes an equality filter down as `_jsonb->'field' @> value`, but the indexes it
-- creates for `createIndexes` are btree indexes on `(_jsonb->'field')`, which PostgreSQL cannot
-- use for `@>`: every query would scan the whole table. A GIN index on the same expression can.
-- So every btree index on a `_jsonb` expression gets a GIN twin per key expression: now (for
-- indexes made before this ran) and whenever FerretDB creates one (an event trigger).
-- Nothing in the service depends on this; MongoDB needs none of it.

CREATE OR REPLACE FUNCTION public.campaigns_gin_twins(idx oid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  tbl regclass;
  method name;
  keys int;
  expr text;
BEGIN
  SELECT i.indrelid::regclass, am.amname, i.indnkeyatts
    INTO tbl, method, keys
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid
    JOIN pg_am am ON am.oid = c.relam
   WHERE i.indexrelid = idx;
  IF method IS DISTINCT FROM 'btree' THEN
    RETURN;  -- including our own GIN indexes, which fire this trigger too
  END IF;
  FOR k IN 1..keys LOOP
    expr := pg_get_indexdef(idx, k, true);
    IF expr LIKE '%_jsonb -%' THEN
      EXECUTE format(
        'CREATE INDEX IF NOT EXISTS %I ON %s USING gin ((%s)) WITH (fastupdate = off)',
        'gin_' || md5(tbl::text || '|' || expr), tbl, expr
      );
    END IF;
  END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION public.campaigns_gin_on_create_index() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT objid FROM pg_event_trigger_ddl_commands() WHERE object_type = 'index' LOOP
    PERFORM public.campaigns_gin_twins(r.objid);
  END LOOP;
END
$$;

DROP EVENT TRIGGER IF EXISTS campaigns_gin_twins;
CREATE EVENT TRIGGER campaigns_gin_twins ON ddl_command_end
  WHEN TAG IN ('CREATE INDEX')
  EXECUTE FUNCTION public.campaigns_gin_on_create_index();

SELECT count(public.campaigns_gin_twins(i.indexrelid))
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast');
