-- Error tracking: failures grouped into issues by fingerprint, per project.
CREATE TABLE error_issues (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL,
    -- function | build | deploy | certificate
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    -- Where: the function's route and top frame, the build, the domain.
    culprit TEXT NOT NULL,
    -- critical | high | medium | low
    severity TEXT NOT NULL,
    -- unresolved | resolved | ignored | regressed
    state TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    count BIGINT NOT NULL,
    resolved_at BIGINT,
    -- The newest sample event (JSON).
    sample TEXT NOT NULL,
    UNIQUE (project_id, fingerprint)
);
CREATE INDEX error_issues_project ON error_issues (project_id, last_seen);

-- Events per issue and minute (Unix minutes): counts over an alert's
-- window, and trends (summed per hour). Kept 30 days.
CREATE TABLE error_counts (
    issue_id TEXT NOT NULL REFERENCES error_issues(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL,
    source TEXT NOT NULL,
    minute BIGINT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (issue_id, minute)
);
CREATE INDEX error_counts_project ON error_counts (project_id, minute);

-- Deployments an issue was seen in.
CREATE TABLE error_deployments (
    issue_id TEXT NOT NULL REFERENCES error_issues(id) ON DELETE CASCADE,
    deployment_id TEXT NOT NULL,
    count BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    PRIMARY KEY (issue_id, deployment_id)
);

-- The newest events of an issue (a few are kept, as samples).
CREATE TABLE error_events (
    id BIGSERIAL PRIMARY KEY,
    issue_id TEXT NOT NULL REFERENCES error_issues(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    deployment_id TEXT,
    count BIGINT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX error_events_issue ON error_events (issue_id, id);

-- Notification channels of a team.
CREATE TABLE alert_channels (
    id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    -- webhook | slack | email
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    -- The URL, or the e-mail address.
    target TEXT NOT NULL,
    -- The signing secret, sealed with the instance key (webhook only).
    secret_enc BYTEA,
    created_at BIGINT NOT NULL
);
CREATE INDEX alert_channels_team ON alert_channels (team_id);

-- Alert rules: per project, or instance-wide (project_id NULL, for the
-- instance's operators).
CREATE TABLE alert_rules (
    id TEXT PRIMARY KEY,
    team_id TEXT REFERENCES teams(id) ON DELETE CASCADE,
    project_id TEXT REFERENCES projects(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    threshold DOUBLE PRECISION NOT NULL,
    window_ms BIGINT NOT NULL,
    for_ms BIGINT NOT NULL,
    -- Channel ids (JSON array).
    channels TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX alert_rules_project ON alert_rules (project_id);

-- The state of each series a rule watches (one per node for per-node
-- rules, one otherwise): pending → firing → resolved.
CREATE TABLE alert_states (
    rule_id TEXT NOT NULL REFERENCES alert_rules(id) ON DELETE CASCADE,
    series TEXT NOT NULL,
    state TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    active_since BIGINT NOT NULL,
    fired_at BIGINT,
    resolved_at BIGINT,
    notified_at BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (rule_id, series)
);

-- Notifications to send and sent: the outbox and the delivery history.
CREATE TABLE alert_deliveries (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES alert_channels(id) ON DELETE CASCADE,
    rule_id TEXT,
    -- The message (JSON), built when it was queued.
    payload TEXT NOT NULL,
    -- pending | sent | failed
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_at BIGINT NOT NULL,
    last_status BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT,
    lease_until BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (status, next_at);
CREATE INDEX alert_deliveries_channel ON alert_deliveries (channel_id, created_at);

-- Background work one coordinator of a cluster does at a time.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- What each node reports of its host's memory and its data disk.
ALTER TABLE nodes ADD COLUMN memory_used BIGINT NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN memory_total BIGINT NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN disk_used BIGINT NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN disk_total BIGINT NOT NULL DEFAULT 0;
