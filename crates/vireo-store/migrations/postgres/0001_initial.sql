-- vireo-store schema v1 (PostgreSQL). Keys and searchable text use
-- COLLATE "C": byte order, the same as SQLite's BINARY, so ordering and
-- range comparisons agree across backends, and plain btree indexes serve
-- LIKE 'prefix%' without text_pattern_ops.

CREATE TABLE objects (
    seq         BIGSERIAL PRIMARY KEY,
    kind        TEXT COLLATE "C" NOT NULL,
    id          TEXT COLLATE "C" NOT NULL,
    parent_id   TEXT COLLATE "C",
    name        TEXT COLLATE "C",
    name_lc     TEXT COLLATE "C",
    name_scope  TEXT COLLATE "C",
    doc         TEXT NOT NULL,
    generation  BIGINT NOT NULL,
    created_ms  BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL,
    UNIQUE (kind, id)
);

CREATE UNIQUE INDEX objects_unique_name ON objects (kind, name_scope, name)
    WHERE name_scope IS NOT NULL;
CREATE INDEX objects_name ON objects (kind, name);
CREATE INDEX objects_name_lc ON objects (kind, name_lc);
CREATE INDEX objects_parent ON objects (kind, parent_id);
CREATE INDEX objects_created ON objects (kind, created_ms);

CREATE TABLE attrs (
    obj    BIGINT NOT NULL REFERENCES objects (seq) ON DELETE CASCADE,
    kind   TEXT COLLATE "C" NOT NULL,
    field  TEXT COLLATE "C" NOT NULL,
    t      TEXT COLLATE "C",
    t_lc   TEXT COLLATE "C",
    i      BIGINT,
    r      DOUBLE PRECISION
);

CREATE INDEX attrs_obj ON attrs (obj);
CREATE INDEX attrs_t ON attrs (kind, field, t, obj) WHERE t IS NOT NULL;
CREATE INDEX attrs_t_lc ON attrs (kind, field, t_lc, obj) WHERE t_lc IS NOT NULL;
CREATE INDEX attrs_i ON attrs (kind, field, i, obj) WHERE i IS NOT NULL;
CREATE INDEX attrs_r ON attrs (kind, field, r, obj) WHERE r IS NOT NULL;

CREATE TABLE events (
    id                 BIGSERIAL PRIMARY KEY,
    code               BIGINT NOT NULL,
    severity           TEXT NOT NULL,
    description        TEXT NOT NULL,
    time_ms            BIGINT NOT NULL,
    correlation_id     TEXT COLLATE "C",
    origin             TEXT,
    vm_id              TEXT COLLATE "C",
    host_id            TEXT COLLATE "C",
    cluster_id         TEXT COLLATE "C",
    data_center_id     TEXT COLLATE "C",
    storage_domain_id  TEXT COLLATE "C",
    user_id            TEXT COLLATE "C",
    template_id        TEXT COLLATE "C",
    doc                TEXT NOT NULL
);

CREATE INDEX events_time ON events (time_ms);
CREATE INDEX events_correlation ON events (correlation_id, id) WHERE correlation_id IS NOT NULL;
CREATE INDEX events_vm ON events (vm_id, id) WHERE vm_id IS NOT NULL;
CREATE INDEX events_host ON events (host_id, id) WHERE host_id IS NOT NULL;
CREATE INDEX events_cluster ON events (cluster_id, id) WHERE cluster_id IS NOT NULL;
CREATE INDEX events_dc ON events (data_center_id, id) WHERE data_center_id IS NOT NULL;
CREATE INDEX events_sd ON events (storage_domain_id, id) WHERE storage_domain_id IS NOT NULL;
CREATE INDEX events_user ON events (user_id, id) WHERE user_id IS NOT NULL;
CREATE INDEX events_template ON events (template_id, id) WHERE template_id IS NOT NULL;

CREATE TABLE credentials (
    user_id        TEXT COLLATE "C" PRIMARY KEY,
    password_hash  TEXT NOT NULL,
    updated_ms     BIGINT NOT NULL
);

CREATE TABLE tokens (
    token_hash    TEXT COLLATE "C" PRIMARY KEY,
    user_id       TEXT COLLATE "C" NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('bearer', 'session')),
    created_ms    BIGINT NOT NULL,
    expires_ms    BIGINT NOT NULL,
    last_used_ms  BIGINT NOT NULL
);

CREATE INDEX tokens_user ON tokens (user_id);
CREATE INDEX tokens_expires ON tokens (expires_ms);
