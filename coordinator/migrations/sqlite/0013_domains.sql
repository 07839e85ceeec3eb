-- Custom domains: a name (normalised: lower-case ASCII, punycode, no
-- trailing dot; `*.` for a wildcard) on one project, pointing at its
-- production deployment or at a branch's newest build. A name belongs to
-- one project of one team.
CREATE TABLE domains (
    name TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    team_id TEXT NOT NULL,
    -- 'production', 'branch' (then `branch` names it) or 'redirect'
    -- (every request goes to the same path on `redirect_to`, a domain of
    -- the same project, with `redirect_status`: 301, 302, 307 or 308).
    target TEXT NOT NULL,
    branch TEXT,
    redirect_to TEXT,
    redirect_status BIGINT,
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
