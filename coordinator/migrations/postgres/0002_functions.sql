-- Per-project variables. Secret values are stored only encrypted
-- (XChaCha20-Poly1305; nonce || ciphertext in value_enc).
CREATE TABLE env_vars (
    project_id TEXT NOT NULL REFERENCES projects(id),
    env_kind TEXT NOT NULL,
    name TEXT NOT NULL,
    secret BIGINT NOT NULL,
    value_plain TEXT,
    value_enc BYTEA,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, env_kind, name)
);

-- Hosts a project's functions may call, as a JSON array of strings.
ALTER TABLE projects ADD COLUMN outbound TEXT NOT NULL DEFAULT '[]';

CREATE TABLE function_logs (
    id BIGSERIAL PRIMARY KEY,
    project_id TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    ts BIGINT NOT NULL,
    stream TEXT NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX function_logs_by_project ON function_logs (project_id, id);
