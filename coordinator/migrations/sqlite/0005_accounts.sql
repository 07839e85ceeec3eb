-- Accounts, teams, sessions, scoped tokens and the audit log.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    -- Lowercased; the login name.
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    -- PHC string (argon2id).
    password_hash TEXT NOT NULL,
    instance_owner BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
-- Two racing first sign-ups cannot both become the owner.
CREATE UNIQUE INDEX users_one_instance_owner ON users (instance_owner) WHERE instance_owner = 1;

CREATE TABLE teams (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE team_members (
    team_id TEXT NOT NULL REFERENCES teams(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    -- owner, member or viewer
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_by_user ON team_members (user_id);

CREATE TABLE invitations (
    id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams(id),
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    accepted_at BIGINT,
    accepted_by TEXT,
    revoked_at BIGINT
);
CREATE INDEX invitations_by_team ON invitations (team_id, created_at);

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ip TEXT NOT NULL,
    user_agent TEXT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);

-- A token acts as its user, narrowed to a team or one project. The admin
-- token made at first start has no user until the first account signs up.
ALTER TABLE api_tokens ADD COLUMN user_id TEXT;
ALTER TABLE api_tokens ADD COLUMN team_id TEXT;
ALTER TABLE api_tokens ADD COLUMN project_id TEXT;
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE api_tokens ADD COLUMN last_used_at BIGINT;

ALTER TABLE projects ADD COLUMN team_id TEXT;

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor_id TEXT,
    -- email or token name at the time: survives the actor's deletion.
    actor TEXT NOT NULL,
    team_id TEXT,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    ip TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_by_team ON audit_log (team_id, at);
CREATE INDEX audit_by_time ON audit_log (at);
