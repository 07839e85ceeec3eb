-- The cluster key: what tenants' variables and host certificates' private
-- keys are sealed to inside the edge config. One row per generation (a
-- node's removal starts a new one); the key itself sealed with the
-- instance secret key (XChaCha20-Poly1305; nonce || ciphertext).
CREATE TABLE cluster_keys (
    generation BIGINT PRIMARY KEY,
    key_enc BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
