-- vireo-store schema v1 (SQLite). STRICT tables: SQLite enforces the
-- declared column types instead of silently storing anything anywhere.

CREATE TABLE objects (
    seq         INTEGER PRIMARY KEY,   -- rowid alias: compact key for attrs
    kind        TEXT NOT NULL,
    id          TEXT NOT NULL,
    parent_id   TEXT,
    name        TEXT,
    name_lc     TEXT,                  -- case-folded copy for ilike
    name_scope  TEXT,                  -- NULL = name not unique
    doc         TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    UNIQUE (kind, id)
) STRICT;

CREATE UNIQUE INDEX objects_unique_name ON objects (kind, name_scope, name)
    WHERE name_scope IS NOT NULL;
CREATE INDEX objects_name ON objects (kind, name);
CREATE INDEX objects_name_lc ON objects (kind, name_lc);
CREATE INDEX objects_parent ON objects (kind, parent_id);
CREATE INDEX objects_created ON objects (kind, created_ms);

-- Indexed attributes: one row per (object, field, value). Exactly one of
-- t / i / r is set; t_lc mirrors t case-folded. Each value column has a
-- partial (kind, field, value, obj) index, so a filter reads only the
-- matching index range and never the objects of other values.
CREATE TABLE attrs (
    obj    INTEGER NOT NULL REFERENCES objects (seq) ON DELETE CASCADE,
    kind   TEXT NOT NULL,
    field  TEXT NOT NULL,
    t      TEXT,
    t_lc   TEXT,
    i      INTEGER,
    r      REAL
) STRICT;

CREATE INDEX attrs_obj ON attrs (obj);
CREATE INDEX attrs_t ON attrs (kind, field, t, obj) WHERE t IS NOT NULL;
CREATE INDEX attrs_t_lc ON attrs (kind, field, t_lc, obj) WHERE t_lc IS NOT NULL;
CREATE INDEX attrs_i ON attrs (kind, field, i, obj) WHERE i IS NOT NULL;
CREATE INDEX attrs_r ON attrs (kind, field, r, obj) WHERE r IS NOT NULL;

-- AUTOINCREMENT: ids are never reused, even after the newest event is
-- deleted, so `id > from` polling stays correct.
CREATE TABLE events (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    code               INTEGER NOT NULL,
    severity           TEXT NOT NULL,
    description        TEXT NOT NULL,
    time_ms            INTEGER NOT NULL,
    correlation_id     TEXT,
    origin             TEXT,
    vm_id              TEXT,
    host_id            TEXT,
    cluster_id         TEXT,
    data_center_id     TEXT,
    storage_domain_id  TEXT,
    user_id            TEXT,
    template_id        TEXT,
    doc                TEXT NOT NULL
) STRICT;

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
    user_id        TEXT PRIMARY KEY,
    password_hash  TEXT NOT NULL,
    updated_ms     INTEGER NOT NULL
) STRICT;

CREATE TABLE tokens (
    token_hash    TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('bearer', 'session')),
    created_ms    INTEGER NOT NULL,
    expires_ms    INTEGER NOT NULL,
    last_used_ms  INTEGER NOT NULL
) STRICT;

CREATE INDEX tokens_user ON tokens (user_id);
CREATE INDEX tokens_expires ON tokens (expires_ms);
