-- Push webhooks are remembered by their delivery id (GitHub, Gitea and
-- GitLab send one), so a replayed delivery builds nothing; and a
-- deployment remembers when its commit was made, so that an older commit
-- (a replayed push, a late build) is never promoted over a newer one.
CREATE TABLE webhook_deliveries (
    project_id TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, delivery_id)
);
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (received_at);
ALTER TABLE deployments ADD COLUMN commit_time BIGINT;
