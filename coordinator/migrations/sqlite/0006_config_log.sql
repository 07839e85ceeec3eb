-- The edge config as a change log (see src/store/config_log.rs).
-- The keyspace as it is now: one row per entry, tagged with the project
-- and deployment it comes from so changes and deletions find their keys.
CREATE TABLE config_entries (
    key TEXT PRIMARY KEY,
    project_id TEXT,
    deployment_id TEXT,
    value BLOB NOT NULL,
    version BIGINT NOT NULL
);
CREATE INDEX config_entries_project ON config_entries (project_id);
CREATE INDEX config_entries_deployment ON config_entries (deployment_id);
-- One row per batch; old rows are compacted away (edges that fell that far
-- behind get a snapshot of config_entries instead).
CREATE TABLE config_log (
    version BIGINT PRIMARY KEY,
    batch BLOB NOT NULL,
    signature BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
-- The keyspace's state hash (LtHash lanes) after the newest batch; NULL
-- until the first batch of this log (older databases are reconciled).
ALTER TABLE config_version ADD COLUMN state BLOB;
