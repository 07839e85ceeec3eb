-- Several coordinators on one database (issue 28).

-- What every coordinator needs and the first one makes: the cluster CA (a
-- root and two intermediates, certificates and keys) and the config-signing
-- key, as one JSON document sealed with the instance secret key
-- (XChaCha20-Poly1305; nonce || ciphertext). Inserted once with ON CONFLICT
-- DO NOTHING: two coordinators starting together on an empty database
-- both read back the one that won.
CREATE TABLE cluster_material (
    name TEXT PRIMARY KEY,
    value_enc BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

-- The coordinators of the cluster: where edges link to (their QUIC
-- addresses go into the edge config in this order) and what each runs.
CREATE TABLE coordinators (
    id TEXT PRIMARY KEY,
    quic_addr TEXT NOT NULL,
    api_url TEXT NOT NULL,
    -- all | api | builder
    role TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
);

-- A running build belongs to the coordinator that claimed it for as long
-- as it renews its lease; a build whose lease lapsed (its coordinator
-- died) is queued again by whichever coordinator finds it.
ALTER TABLE builds ADD COLUMN worker TEXT;
ALTER TABLE builds ADD COLUMN lease_until BIGINT;
