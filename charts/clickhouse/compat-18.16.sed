# The one compatibility step for old ClickHouse servers (Debian 12 ships
# clickhouse-server 18.16), applied to schema.sql or cluster.sql:
#   sed -f compat-18.16.sed schema.sql |
#     clickhouse-client --allow_experimental_low_cardinality_type=1 --multiquery
# What 18.16 lacks, and what this does about it:
#  - DateTime64 (ClickHouse 20.1): `time` becomes DateTime('UTC'), whole
#    seconds; `timestamp` (ns since boot) still has the nanoseconds.
#  - Table TTL (ClickHouse 19.6): the TTL clauses go; expire old partitions
#    yourself (ALTER TABLE kmon.events DROP PARTITION 'YYYY-MM-DD').
#  - LowCardinality is experimental (18.12 to 19.x): not edited here, but the
#    DDL needs the setting allow_experimental_low_cardinality_type=1. For
#    cluster.sql it must be in every server's default profile (users.xml):
#    ON CLUSTER DDL runs in each server's DDL worker with that profile, not
#    with the client's settings (README.md in this directory).
# Everything else (MergeTree partitioning, SummingMergeTree, materialized views
# TO a table, the JSONEachRow ingest with date_time_input_format=best_effort,
# the example queries) runs unchanged.
s/DateTime64(9, 'UTC')/DateTime('UTC')/g
s/^TTL .*;$/;/
/^TTL /d
