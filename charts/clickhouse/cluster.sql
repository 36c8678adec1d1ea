-- kmon events in a ClickHouse cluster: each shard keeps its rows in
-- ReplicatedMergeTree tables (events_local, pod_minutes_local), and
-- Distributed tables named like the one-server schema's (kmon.events,
-- kmon.pod_minutes) spread inserts and gather queries, so forward's URL and
-- the example queries (queries.sql) are the same for both.
--
-- Made from schema.sql by cluster.sed (sed -f cluster.sed schema.sql):
-- edit those two, not this file.
--
-- PARAMETERS, ${NAME} below; substitute them before applying, e.g.
--   KMON_CLUSTER=prod KMON_ZK_PATH=/clickhouse/tables/kmon KMON_TTL_DAYS=30 \
--   KMON_ROLLUP_TTL_DAYS=365 KMON_SHARD_KEY='cityHash64(namespace, pod)' \
--     envsubst < cluster.sql | clickhouse-client --multiquery
--   ${KMON_CLUSTER}         cluster name in the servers' <remote_servers>
--   ${KMON_ZK_PATH}         ZooKeeper / ClickHouse Keeper path prefix of the
--                           replicated tables; each table adds /{shard}/<table>
--   ${KMON_TTL_DAYS}        days raw events are kept (e.g. 30)
--   ${KMON_ROLLUP_TTL_DAYS} days the per-minute rollup is kept (e.g. 365)
--   ${KMON_SHARD_KEY}       which shard a row goes to; cityHash64(namespace, pod)
--                           keeps a pod on one shard, so a pod's queries read
--                           one shard; rand() spreads evenly instead
-- {shard} and {replica} are ClickHouse macros, set per server (<macros>) and
-- left as they are. Servers need <distributed_ddl> (ON CLUSTER) and ZooKeeper
-- or ClickHouse Keeper, and internal_replication=true in every shard of the
-- cluster: README.md in this directory shows the servers' config.
--
-- Inserts into kmon.events are forwarded to the shards asynchronously by
-- default (the server queues them on disk); set insert_distributed_sync=1 in
-- the forwards' URL (or the user's profile) to answer only once the shard has
-- the rows, so a forward's retry covers a shard outage. Forwards may also
-- insert into kmon.events_local of a server of each shard directly.
-- Targets current ClickHouse releases.

CREATE DATABASE IF NOT EXISTS kmon ON CLUSTER '${KMON_CLUSTER}';

CREATE TABLE IF NOT EXISTS kmon.events_local ON CLUSTER '${KMON_CLUSTER}'
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
ENGINE = ReplicatedMergeTree('${KMON_ZK_PATH}/{shard}/events_local', '{replica}')
PARTITION BY toDate(time)
-- Per-pod queries (a pod's timeline, one pod's allocations) read one range.
ORDER BY (namespace, pod, container, type, time)
TTL toDateTime(time) + INTERVAL ${KMON_TTL_DAYS} DAY;

CREATE TABLE IF NOT EXISTS kmon.events ON CLUSTER '${KMON_CLUSTER}' AS kmon.events_local
ENGINE = Distributed('${KMON_CLUSTER}', kmon, events_local, ${KMON_SHARD_KEY});

-- Per pod and container, per minute: what dashboards and the example queries
-- read instead of the raw events. SummingMergeTree adds rows of one key up in
-- the background; queries still sum() with GROUP BY (merges are not immediate).
-- On a cluster the rollup is made on each shard from the rows that shard
-- stores (a materialized view sees the inserts into its local table), and
-- gathered by the Distributed kmon.pod_minutes; queries sum() with GROUP BY
-- as on one server.
CREATE TABLE IF NOT EXISTS kmon.pod_minutes_local ON CLUSTER '${KMON_CLUSTER}'
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
ENGINE = ReplicatedSummingMergeTree('${KMON_ZK_PATH}/{shard}/pod_minutes_local', '{replica}')
PARTITION BY toDate(minute)
ORDER BY (namespace, pod, container, node, minute)
TTL minute + INTERVAL ${KMON_ROLLUP_TTL_DAYS} DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS kmon.pod_minutes_mv ON CLUSTER '${KMON_CLUSTER}'
TO kmon.pod_minutes_local AS
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
FROM kmon.events_local
GROUP BY minute, node, namespace, pod, container;

CREATE TABLE IF NOT EXISTS kmon.pod_minutes ON CLUSTER '${KMON_CLUSTER}' AS kmon.pod_minutes_local
ENGINE = Distributed('${KMON_CLUSTER}', kmon, pod_minutes_local, ${KMON_SHARD_KEY});
