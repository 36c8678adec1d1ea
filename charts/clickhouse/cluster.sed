# cluster.sql is made from schema.sql, the one source of the columns and the
# rollup: the same tables on ReplicatedMergeTree (*_local, ON CLUSTER) behind
# Distributed tables with the one-server names, TTLs and sharding as
# parameters. After editing schema.sql (or this file):
#   sed -f cluster.sed schema.sql > cluster.sql
# tests/integration/test_clickhouse.py fails while cluster.sql differs from
# what this makes.

# The header: what a cluster needs, and the parameters.
1,/^$/c\
-- kmon events in a ClickHouse cluster: each shard keeps its rows in\
-- ReplicatedMergeTree tables (events_local, pod_minutes_local), and\
-- Distributed tables named like the one-server schema's (kmon.events,\
-- kmon.pod_minutes) spread inserts and gather queries, so forward's URL and\
-- the example queries (queries.sql) are the same for both.\
--\
-- Made from schema.sql by cluster.sed (sed -f cluster.sed schema.sql):\
-- edit those two, not this file.\
--\
-- PARAMETERS, ${NAME} below; substitute them before applying, e.g.\
--   KMON_CLUSTER=prod KMON_ZK_PATH=/clickhouse/tables/kmon KMON_TTL_DAYS=30 \\\
--   KMON_ROLLUP_TTL_DAYS=365 KMON_SHARD_KEY='cityHash64(namespace, pod)' \\\
--     envsubst < cluster.sql | clickhouse-client --multiquery\
--   ${KMON_CLUSTER}         cluster name in the servers' <remote_servers>\
--   ${KMON_ZK_PATH}         ZooKeeper / ClickHouse Keeper path prefix of the\
--                           replicated tables; each table adds /{shard}/<table>\
--   ${KMON_TTL_DAYS}        days raw events are kept (e.g. 30)\
--   ${KMON_ROLLUP_TTL_DAYS} days the per-minute rollup is kept (e.g. 365)\
--   ${KMON_SHARD_KEY}       which shard a row goes to; cityHash64(namespace, pod)\
--                           keeps a pod on one shard, so a pod's queries read\
--                           one shard; rand() spreads evenly instead\
-- {shard} and {replica} are ClickHouse macros, set per server (<macros>) and\
-- left as they are. Servers need <distributed_ddl> (ON CLUSTER) and ZooKeeper\
-- or ClickHouse Keeper, and internal_replication=true in every shard of the\
-- cluster: README.md in this directory shows the servers' config.\
--\
-- Inserts into kmon.events are forwarded to the shards asynchronously by\
-- default (the server queues them on disk); set insert_distributed_sync=1 in\
-- the forwards' URL (or the user's profile) to answer only once the shard has\
-- the rows, so a forward's retry covers a shard outage. Forwards may also\
-- insert into kmon.events_local of a server of each shard directly.\
-- Targets current ClickHouse releases.\


s/^CREATE DATABASE IF NOT EXISTS kmon;$/CREATE DATABASE IF NOT EXISTS kmon ON CLUSTER '${KMON_CLUSTER}';/

# Raw events: the shard's replicated table, then the Distributed one.
s/^CREATE TABLE IF NOT EXISTS kmon\.events$/CREATE TABLE IF NOT EXISTS kmon.events_local ON CLUSTER '${KMON_CLUSTER}'/
s/^ENGINE = MergeTree$/ENGINE = ReplicatedMergeTree('${KMON_ZK_PATH}\/{shard}\/events_local', '{replica}')/
/^TTL toDateTime(time) + INTERVAL [0-9]* DAY;$/{
s/INTERVAL [0-9]* DAY/INTERVAL ${KMON_TTL_DAYS} DAY/
a\
\
CREATE TABLE IF NOT EXISTS kmon.events ON CLUSTER '${KMON_CLUSTER}' AS kmon.events_local\
ENGINE = Distributed('${KMON_CLUSTER}', kmon, events_local, ${KMON_SHARD_KEY});
}

# The rollup: made on each shard from the rows it stores, gathered by a
# Distributed table after the view.
/^CREATE TABLE IF NOT EXISTS kmon\.pod_minutes$/i\
-- On a cluster the rollup is made on each shard from the rows that shard\
-- stores (a materialized view sees the inserts into its local table), and\
-- gathered by the Distributed kmon.pod_minutes; queries sum() with GROUP BY\
-- as on one server.
s/^CREATE TABLE IF NOT EXISTS kmon\.pod_minutes$/CREATE TABLE IF NOT EXISTS kmon.pod_minutes_local ON CLUSTER '${KMON_CLUSTER}'/
s/^ENGINE = SummingMergeTree$/ENGINE = ReplicatedSummingMergeTree('${KMON_ZK_PATH}\/{shard}\/pod_minutes_local', '{replica}')/
s/^TTL minute + INTERVAL [0-9]* DAY;$/TTL minute + INTERVAL ${KMON_ROLLUP_TTL_DAYS} DAY;/
s/^CREATE MATERIALIZED VIEW IF NOT EXISTS kmon\.pod_minutes_mv TO kmon\.pod_minutes AS$/CREATE MATERIALIZED VIEW IF NOT EXISTS kmon.pod_minutes_mv ON CLUSTER '${KMON_CLUSTER}'\
TO kmon.pod_minutes_local AS/
s/^FROM kmon\.events$/FROM kmon.events_local/
$a\
\
CREATE TABLE IF NOT EXISTS kmon.pod_minutes ON CLUSTER '${KMON_CLUSTER}' AS kmon.pod_minutes_local\
ENGINE = Distributed('${KMON_CLUSTER}', kmon, pod_minutes_local, ${KMON_SHARD_KEY});
