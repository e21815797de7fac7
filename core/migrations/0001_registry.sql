-- 0001_registry: the cluster/command registry. Clusters, commands, the links between them, and
-- one version row that every change bumps and announces with NOTIFY switchyard_registry, so a
-- router holding the registry in memory knows when to reload it.
--
-- The C side (core/sy_registry.c) validates everything first and gives the clear messages;
-- the constraints here hold the same rules for any other writer (psql, a bootstrap script).

-- Genie's tag form: key:value, at most 255 printable ASCII characters, no whitespace, no comma;
-- the key is [A-Za-z0-9_.-]+. The switchyard. prefix is reserved for the implicit tags
-- switchyard.id:<id> and switchyard.name:<name>, which are never stored.
CREATE FUNCTION sy_tag_valid(tag text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT length(tag) <= 255
       AND tag ~ '^[!-~]+$'
       AND tag ~ '^[A-Za-z0-9_.-]+:[^,]+$'
       AND lower(tag) NOT LIKE 'switchyard.%'
$$;

-- At most 64 tags, each valid, no NULLs, no duplicates.
CREATE FUNCTION sy_tags_valid(tags text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT cardinality(tags) <= 64
       AND coalesce(bool_and(t IS NOT NULL AND sy_tag_valid(t)), true)
       AND count(DISTINCT t) = count(*)
      FROM unnest(tags) AS t
$$;

-- One row; its version goes up by one (or more) with every committed registry change.
CREATE TABLE registry_version (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version   bigint  NOT NULL
);
INSERT INTO registry_version (singleton, version) VALUES (true, 1);

CREATE TABLE clusters (
    id              text PRIMARY KEY CHECK (id ~ '^cl-[0-9a-f]{12}$'),
    -- names become Kafka topic names (<ns>.cluster.<name>); never the shape of an id
    name            text NOT NULL UNIQUE
                    CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$' AND name !~ '^cl-[0-9a-f]{12}$'),
    backend_kind    text NOT NULL CHECK (backend_kind IN ('emr', 'emr-eks', 'local')),
    -- EMR cluster id (j-...), EMR-on-EKS virtual cluster id; NULL for local
    backend_address text CHECK (backend_address ~ '^[A-Za-z0-9_.-]{1,64}$'),
    region          text CHECK (region ~ '^[a-z0-9-]{1,32}$'),
    status          text NOT NULL DEFAULT 'UP'
                    CHECK (status IN ('UP', 'OUT_OF_SERVICE', 'TERMINATED')),
    tags            text[] NOT NULL DEFAULT '{}' CHECK (sy_tags_valid(tags)),
    weight          integer NOT NULL DEFAULT 1 CHECK (weight >= 0),
    max_concurrent  integer NOT NULL DEFAULT 0 CHECK (max_concurrent >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((backend_kind = 'local') = (backend_address IS NULL))
);

CREATE TABLE commands (
    id         text PRIMARY KEY CHECK (id ~ '^cmd-[0-9a-f]{12}$'),
    name       text NOT NULL UNIQUE
               CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$' AND name !~ '^cmd-[0-9a-f]{12}$'),
    status     text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'DEPRECATED', 'INACTIVE')),
    tags       text[] NOT NULL DEFAULT '{}' CHECK (sy_tags_valid(tags)),
    -- what to run per backend kind: {"emr": {...}, "emr-eks": {...}, "local": {"argv": [...]}}
    spec       jsonb NOT NULL
               CHECK (jsonb_typeof(spec) = 'object' AND spec <> '{}'::jsonb
                      AND spec - 'emr' - 'emr-eks' - 'local' = '{}'::jsonb),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Which clusters may run a command. Neither side can be deleted while a link exists (the
-- default NO ACTION foreign keys): `remove` refuses, or with --force unlinks first.
CREATE TABLE command_clusters (
    command_id text NOT NULL REFERENCES commands (id),
    cluster_id text NOT NULL REFERENCES clusters (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (command_id, cluster_id)
);
CREATE INDEX command_clusters_cluster_id ON command_clusters (cluster_id);

-- updated_at moves only when something else in the row changed.
CREATE FUNCTION sy_registry_touch() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW IS DISTINCT FROM OLD THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;

-- Every change bumps the version and notifies listeners. Identical notifications within one
-- transaction are delivered once, so a transaction that touches many rows wakes a router once.
CREATE FUNCTION sy_registry_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE registry_version SET version = version + 1;
    PERFORM pg_notify('switchyard_registry', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER clusters_touch BEFORE UPDATE ON clusters
    FOR EACH ROW EXECUTE FUNCTION sy_registry_touch();
CREATE TRIGGER commands_touch BEFORE UPDATE ON commands
    FOR EACH ROW EXECUTE FUNCTION sy_registry_touch();

CREATE TRIGGER clusters_changed AFTER INSERT OR DELETE ON clusters
    FOR EACH ROW EXECUTE FUNCTION sy_registry_changed();
CREATE TRIGGER clusters_updated AFTER UPDATE ON clusters
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION sy_registry_changed();
CREATE TRIGGER clusters_truncated AFTER TRUNCATE ON clusters
    FOR EACH STATEMENT EXECUTE FUNCTION sy_registry_changed();

CREATE TRIGGER commands_changed AFTER INSERT OR DELETE ON commands
    FOR EACH ROW EXECUTE FUNCTION sy_registry_changed();
CREATE TRIGGER commands_updated AFTER UPDATE ON commands
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION sy_registry_changed();
CREATE TRIGGER commands_truncated AFTER TRUNCATE ON commands
    FOR EACH STATEMENT EXECUTE FUNCTION sy_registry_changed();

CREATE TRIGGER command_clusters_changed AFTER INSERT OR DELETE ON command_clusters
    FOR EACH ROW EXECUTE FUNCTION sy_registry_changed();
CREATE TRIGGER command_clusters_updated AFTER UPDATE ON command_clusters
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION sy_registry_changed();
CREATE TRIGGER command_clusters_truncated AFTER TRUNCATE ON command_clusters
    FOR EACH STATEMENT EXECUTE FUNCTION sy_registry_changed();
