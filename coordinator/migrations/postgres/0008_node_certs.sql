-- Node certificates are short-lived and renewed by their node: when the
-- current one ends (Unix seconds; NULL for nodes enrolled before this).
ALTER TABLE nodes ADD COLUMN cert_not_after BIGINT;
