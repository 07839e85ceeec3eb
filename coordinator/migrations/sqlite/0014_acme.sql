-- Publicly trusted certificates for custom domains, from an ACME CA.

-- The account at each directory (instant-acme's credentials, sealed with
-- the instance key). The primary directory's key thumbprint is what edges
-- answer HTTP-01 challenges with.
CREATE TABLE acme_accounts (
    directory TEXT PRIMARY KEY,
    credentials_enc BLOB NOT NULL,
    created_at BIGINT NOT NULL
);

-- A domain's certificate and the order that makes or renews it. The row
-- outlives failures (the last good certificate keeps serving) and goes
-- with its domain.
CREATE TABLE domain_certs (
    name TEXT PRIMARY KEY,
    -- 'pending' (no certificate yet), 'issuing', 'active', 'renewing',
    -- 'failed' (retrying at next_try_at; a certificate may still serve).
    state TEXT NOT NULL,
    chain_pem TEXT,
    key_enc BLOB,
    -- Unix seconds.
    not_before BIGINT,
    not_after BIGINT,
    issued_at BIGINT,
    issuer TEXT,
    -- ARI's certificate identifier, when to renew (Unix ms), and when to
    -- ask the CA's renewal information again (it may move the window).
    cert_id TEXT,
    renew_at BIGINT,
    ari_next_at BIGINT,
    -- The CA's problem document, verbatim, of the last failure.
    error TEXT,
    failures BIGINT NOT NULL,
    failing_since BIGINT,
    next_try_at BIGINT NOT NULL,
    -- The challenge type of the last attempt.
    challenge TEXT,
    -- An order in flight: resumed after a restart rather than placed again.
    order_url TEXT,
    order_directory TEXT,
    order_key_enc BLOB,
    order_started_at BIGINT,
    -- One coordinator works an order at a time.
    lease_owner TEXT,
    lease_until BIGINT,
    updated_at BIGINT NOT NULL
);

-- Per domain: plain HTTP redirects to HTTPS once its certificate is
-- active (default on), and HSTS (off unless a max-age is set).
ALTER TABLE domains ADD COLUMN https_redirect BIGINT NOT NULL DEFAULT 1;
ALTER TABLE domains ADD COLUMN hsts_max_age BIGINT;
ALTER TABLE domains ADD COLUMN hsts_include_subdomains BIGINT NOT NULL DEFAULT 0;
ALTER TABLE domains ADD COLUMN hsts_preload BIGINT NOT NULL DEFAULT 0;
