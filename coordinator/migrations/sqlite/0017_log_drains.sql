-- Log drains: a project's function, request and build logs forwarded to
-- an HTTPS endpoint as NDJSON batches (Vercel's drain format).
CREATE TABLE log_drains (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    -- JSON array of function | request | build.
    sources TEXT NOT NULL,
    -- The share of requests sent, parts per million.
    sample_ppm BIGINT NOT NULL,
    secret_enc BLOB NOT NULL,
    -- The last drain_lines id the endpoint acknowledged.
    cursor BIGINT NOT NULL,
    delivered BIGINT NOT NULL DEFAULT 0,
    failures BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL DEFAULT 0,
    lease_until BIGINT NOT NULL DEFAULT 0,
    last_status BIGINT,
    last_error TEXT,
    last_success_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX log_drains_project ON log_drains (project_id);

-- Lines waiting for a project's drains (each drain keeps its cursor);
-- kept a day.
CREATE TABLE drain_lines (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id TEXT NOT NULL,
    source TEXT NOT NULL,
    at BIGINT NOT NULL,
    -- A request's sampling bucket (0..1000000), 0 for other sources.
    bucket BIGINT NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX drain_lines_project ON drain_lines (project_id, id);
CREATE INDEX drain_lines_at ON drain_lines (at);
