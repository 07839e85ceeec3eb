-- Builds from git. A project may be connected to a repository; every push
-- (or API request) queues a build, and a finished build becomes the
-- deployment with the same id.
ALTER TABLE projects ADD COLUMN git_url TEXT;
ALTER TABLE projects ADD COLUMN git_branch TEXT;
ALTER TABLE projects ADD COLUMN root_dir TEXT;
ALTER TABLE projects ADD COLUMN install_command TEXT;
ALTER TABLE projects ADD COLUMN build_command TEXT;
ALTER TABLE projects ADD COLUMN output_dir TEXT;
ALTER TABLE projects ADD COLUMN auto_promote BIGINT NOT NULL DEFAULT 1;
-- Webhook secret, encrypted like secret variables (nonce || ciphertext).
ALTER TABLE projects ADD COLUMN webhook_secret_enc BYTEA;

ALTER TABLE deployments ADD COLUMN branch TEXT;
ALTER TABLE deployments ADD COLUMN commit_sha TEXT;
ALTER TABLE deployments ADD COLUMN commit_message TEXT;
ALTER TABLE deployments ADD COLUMN commit_author TEXT;

-- The durable build queue. status: queued | building | ready | error | canceled.
CREATE TABLE builds (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    status TEXT NOT NULL,
    target TEXT NOT NULL,
    branch TEXT NOT NULL,
    commit_sha TEXT,
    commit_message TEXT,
    commit_author TEXT,
    trigger TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    error TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);
CREATE INDEX builds_by_status ON builds (status, created_at);
CREATE INDEX builds_by_project ON builds (project_id, created_at);

-- The full build log, line by line (secrets already redacted).
CREATE TABLE build_logs (
    build_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    stream TEXT NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (build_id, seq)
);

-- Stable preview hosts: the newest ready deployment of each branch.
CREATE TABLE branch_aliases (
    project_id TEXT NOT NULL REFERENCES projects(id),
    branch TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, branch)
);
