-- Event searches by code and by severity (`type=9803`, `severity>=error`) select from an
-- index, newest first, instead of walking the log until `max` matches are found.

CREATE INDEX events_code ON events (code, id);
CREATE INDEX events_severity ON events (severity, id);

-- Fixed planner figures for them, in the spirit of 0002 (a code is rare, a severity is not).
INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
    ('events', 'events_code',     '1000000 1000 1'),
    ('events', 'events_severity', '1000000 250000 1');

ANALYZE sqlite_schema;
