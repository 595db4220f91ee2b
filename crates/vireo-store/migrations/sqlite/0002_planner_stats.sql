-- Fixed planner statistics (SQLite's "manual control of query plans via
-- sqlite_stat1"). Without statistics SQLite guesses that `kind = ?` matches
-- ~10 rows, so for `kind = ? AND seq IN (SELECT obj FROM attrs ...)` it
-- walks every object of the kind and probes the attribute list per row.
-- These figures describe the shape of an inventory instead (few kinds, many
-- objects per kind, attribute values that are selective), which makes the
-- planner drive filters from the attrs indexes and name/parent ranges, and
-- keeps plans the same whatever the current data. We never run ANALYZE, so
-- they stay as written; a manual ANALYZE would replace them with measured
-- figures, which works too.

ANALYZE sqlite_schema;  -- creates sqlite_stat1 if needed

DELETE FROM sqlite_stat1 WHERE tbl IN ('objects', 'attrs', 'events', 'tokens', 'credentials');

INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
    ('objects', NULL,                         '100000'),
    ('objects', 'sqlite_autoindex_objects_1', '100000 10000 1'),
    ('objects', 'objects_unique_name',        '50000 5000 5000 1'),
    ('objects', 'objects_name',               '100000 10000 2'),
    ('objects', 'objects_name_lc',            '100000 10000 2'),
    ('objects', 'objects_parent',             '100000 10000 50'),
    ('objects', 'objects_created',            '100000 10000 2'),
    ('attrs',   NULL,                         '400000'),
    ('attrs',   'attrs_obj',                  '400000 4'),
    ('attrs',   'attrs_t',                    '300000 30000 3000 30 1'),
    ('attrs',   'attrs_t_lc',                 '300000 30000 3000 30 1'),
    ('attrs',   'attrs_i',                    '60000 6000 1000 10 1'),
    ('attrs',   'attrs_r',                    '40000 4000 1000 10 1'),
    ('events',  NULL,                         '1000000'),
    ('events',  'events_time',                '1000000 2'),
    ('events',  'events_correlation',         '300000 10 1'),
    ('events',  'events_vm',                  '300000 300 1'),
    ('events',  'events_host',                '300000 3000 1'),
    ('events',  'events_cluster',             '300000 30000 1'),
    ('events',  'events_dc',                  '300000 30000 1'),
    ('events',  'events_sd',                  '300000 3000 1'),
    ('events',  'events_user',                '300000 300 1'),
    ('events',  'events_template',            '300000 300 1'),
    ('tokens',  NULL,                         '1000'),
    ('tokens',  'sqlite_autoindex_tokens_1',  '1000 1'),
    ('tokens',  'tokens_user',                '1000 5'),
    ('tokens',  'tokens_expires',             '1000 1'),
    ('credentials', NULL,                     '1000'),
    ('credentials', 'sqlite_autoindex_credentials_1', '1000 1');

-- Make every connection reload the figures.
ANALYZE sqlite_schema;
