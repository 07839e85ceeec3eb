-- Custom domains: a name (normalised: lower-case ASCII, punycode, no
-- trailing dot; `*.` for a wildcard) on one project, pointing at its
-- production deployment or at a branch's newest build. A name belongs to
-- one project of one team.
CREATE TABLE domains (
    name TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    team_id TEXT NOT NULL,
    -- 'production' or 'branch' (then `branch` names it).
    target TEXT NOT NULL,
    branch TEXT,
    -- The value of the ownership TXT record `_outpost-challenge.<name>`.
    verification TEXT NOT NULL,
    -- Whether another team uses a parent of this name: then the TXT
    -- record must be found before the domain goes active.
    needs_proof BIGINT NOT NULL,
    proven_at BIGINT,
    -- 'pending' (no records), 'active' (points at the fleet),
    -- 'misconfigured' (points elsewhere; dns_detail says what was found).
    dns_state TEXT NOT NULL,
    dns_detail TEXT,
    checked_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX domains_project ON domains (project_id);
