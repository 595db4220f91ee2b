-- Event searches by code and by severity (`type=9803`, `severity>=error`) select from an
-- index, newest first, instead of walking the log until `max` matches are found.

CREATE INDEX events_code ON events (code, id);
CREATE INDEX events_severity ON events (severity, id);
