-- Timestamps are unix milliseconds; ids are short random strings.
CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    production_deployment TEXT
);

CREATE TABLE bundles (
    id TEXT PRIMARY KEY,
    manifest BLOB NOT NULL,
    file_count BIGINT NOT NULL,
    total_size BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE deployments (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    bundle_id TEXT NOT NULL REFERENCES bundles(id),
    status TEXT NOT NULL,
    target TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    ready_at BIGINT,
    promoted_at BIGINT
);
CREATE INDEX deployments_by_project ON deployments (project_id, created_at);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE join_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    region TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    used_by TEXT
);

CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    region TEXT NOT NULL,
    cert_fingerprint TEXT NOT NULL UNIQUE,
    software_version TEXT NOT NULL,
    config_version BIGINT NOT NULL,
    bundles_present BIGINT NOT NULL,
    bundles_pending BIGINT NOT NULL,
    http_addr TEXT,
    https_addr TEXT,
    created_at BIGINT NOT NULL,
    last_seen BIGINT
);

CREATE TABLE host_certs (
    host TEXT PRIMARY KEY,
    chain_pem TEXT NOT NULL,
    key_pem TEXT NOT NULL,
    not_after BIGINT NOT NULL
);

CREATE TABLE config_version (
    id BIGINT PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);
