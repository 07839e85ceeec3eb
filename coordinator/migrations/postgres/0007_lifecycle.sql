-- Lifecycle: per-project retention overrides (NULL: the instance's
-- [retention] default), per-team quota overrides (a JSON object of the
-- [quotas] keys; NULL: the instance's), and what expiry looks rows up by.
ALTER TABLE projects ADD COLUMN retention_preview_days BIGINT;
ALTER TABLE projects ADD COLUMN retention_production_keep BIGINT;
ALTER TABLE teams ADD COLUMN quotas TEXT;
CREATE INDEX function_logs_by_ts ON function_logs (ts);
CREATE INDEX function_logs_by_deployment ON function_logs (deployment_id);
CREATE INDEX builds_by_finished ON builds (finished_at);
CREATE INDEX deployments_by_bundle ON deployments (bundle_id);
CREATE INDEX bundles_by_created ON bundles (created_at);
