-- The first account owns the instance: creating it takes the setup token
-- printed at first start (and written to <data_dir>/setup-token), kept
-- here hashed and spent with that account.
CREATE TABLE setup_tokens (
    token_hash TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);
