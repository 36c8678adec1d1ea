-- kmon events in ClickHouse: one server (see cluster.sql for a cluster).
--
-- Apply:   clickhouse-client --multiquery < schema.sql
-- Point every node's kmon-forward at it (the chart's forward.clickhouse values
-- build this URL):
--   --output 'http://HOST:8123/?query=INSERT%20INTO%20kmon.events%20FORMAT%20JSONEachRow&input_format_skip_unknown_fields=1&date_time_input_format=best_effort'
--
-- Columns are named after the fields of kmon-forward's JSON line, so
-- JSONEachRow fills them by name; a field this schema does not know is skipped
-- (input_format_skip_unknown_fields=1), a column a line does not carry gets its
-- default (0 or ''). Targets current ClickHouse releases.
--
-- PARAMETER (TTL days): events are kept 30 days, the per-minute rollup 365.
-- Change the two TTL lines below (ALTER TABLE ... MODIFY TTL on a live table).

CREATE DATABASE IF NOT EXISTS kmon;

CREATE TABLE IF NOT EXISTS kmon.events
(
    type               LowCardinality(String),  -- process_exec, memory_alloc, memory_free, slab_alloc, slab_free, oom_kill
    time               DateTime64(9, 'UTC'),    -- wall clock, ns
    timestamp          UInt64,                  -- ns since the node booted (the kernel's clock)
    node               LowCardinality(String),
    namespace          LowCardinality(String),
    pod                LowCardinality(String),
    container          LowCardinality(String),
    pod_uid            String,
    container_id       String,
    cgroup_id          UInt64,
    pid                UInt32,
    tid                UInt32,
    comm               LowCardinality(String),
    size               UInt64,                  -- bytes: allocated, or freed when known (else 0)
    filename           String,                  -- process_exec
    filename_truncated UInt8,
    ptr                String,                  -- memory events: "0x..." (an opaque id by default)
    call_site          LowCardinality(Nullable(String)),  -- memory events: "function+0xoff", "0x..." (raw), null (not resolved)
    -- Event record v2 (the memory ledger)
    cache              LowCardinality(String),  -- slab events: kmem_cache name
    alloc_call_site    LowCardinality(Nullable(String)),  -- free charged to its owner: where it was allocated (null: not resolved)
    alloc_timestamp    UInt64,                  -- free charged to its owner: the allocation's timestamp
    owner_pid          UInt32,                  -- free charged to its owner: the pid that allocated
    charged_elsewhere  UInt8,                   -- free charged to an owner other than the freeing task
    memcg_id           UInt64,                  -- oom_kill: memory cgroup whose limit was hit (0: node-wide)
    limit_pages        UInt64,                  -- oom_kill
    rss_pages          UInt64,                  -- oom_kill: the victim's resident pages
    killer_pid         UInt32                   -- oom_kill
)
ENGINE = MergeTree
PARTITION BY toDate(time)
-- Per-pod queries (a pod's timeline, one pod's allocations) read one range.
ORDER BY (namespace, pod, container, type, time)
TTL toDateTime(time) + INTERVAL 30 DAY;

-- Per pod and container, per minute: what dashboards and the example queries
-- read instead of the raw events. SummingMergeTree adds rows of one key up in
-- the background; queries still sum() with GROUP BY (merges are not immediate).
CREATE TABLE IF NOT EXISTS kmon.pod_minutes
(
    minute       DateTime('UTC'),
    node         LowCardinality(String),
    namespace    LowCardinality(String),
    pod          LowCardinality(String),
    container    LowCardinality(String),
    events       UInt64,
    execs        UInt64,
    allocs       UInt64,
    alloc_bytes  UInt64,
    frees        UInt64,
    freed_bytes  UInt64,
    oom_kills    UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toDate(minute)
ORDER BY (namespace, pod, container, node, minute)
TTL minute + INTERVAL 365 DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS kmon.pod_minutes_mv TO kmon.pod_minutes AS
SELECT
    toStartOfMinute(time) AS minute,
    node, namespace, pod, container,
    count() AS events,
    countIf(type = 'process_exec') AS execs,
    countIf(type IN ('memory_alloc', 'slab_alloc')) AS allocs,
    sumIf(size, type IN ('memory_alloc', 'slab_alloc')) AS alloc_bytes,
    countIf(type IN ('memory_free', 'slab_free')) AS frees,
    sumIf(size, type IN ('memory_free', 'slab_free')) AS freed_bytes,
    countIf(type = 'oom_kill') AS oom_kills
FROM kmon.events
GROUP BY minute, node, namespace, pod, container;
