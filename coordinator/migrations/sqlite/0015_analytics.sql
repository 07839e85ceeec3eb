-- Traffic analytics: rollups of what edges served, per project, bucket
-- (minute, hour, day), deployment, environment and node. `data` is the
-- merged aggregate (counters, top lists, a HyperLogLog of visitors and
-- latency histograms) as the analytics crate encodes it.
CREATE TABLE analytics_rollups (
    project_id TEXT NOT NULL,
    granularity TEXT NOT NULL,
    -- Unix seconds of the bucket's start.
    bucket BIGINT NOT NULL,
    deployment_id TEXT NOT NULL,
    env TEXT NOT NULL,
    node_id TEXT NOT NULL,
    region TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (project_id, granularity, bucket, deployment_id, env, node_id)
);
CREATE INDEX analytics_rollups_expiry ON analytics_rollups (granularity, bucket);

-- Records already counted, by the node that sent them and the record's id:
-- a record sent again (its acknowledgement was lost) is acknowledged and
-- not counted twice.
CREATE TABLE analytics_receipts (
    node_id TEXT NOT NULL,
    start BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (node_id, start, seq)
);
CREATE INDEX analytics_receipts_at ON analytics_receipts (received_at);
