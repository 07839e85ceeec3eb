-- Credentials of a repository URL (`https://user:token@host/…`), sealed
-- with the instance key and kept apart from the URL, which is shown to
-- viewers and written to the audit log without them.
ALTER TABLE projects ADD COLUMN git_credentials_enc BYTEA;
