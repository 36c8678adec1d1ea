-- Example queries on the kmon schema (schema.sql or cluster.sql: the table
-- names are the same in both). README.md shows them; the ClickHouse test runs
-- this file verbatim and checks every answer against the raw events.
-- Replace 'shop' / 'checkout-1' with your namespace and pod.

-- Top pods by exec rate in the last hour.
SELECT namespace, pod, sum(execs) AS execs_1h, round(sum(execs) / 3600, 3) AS execs_per_s
FROM kmon.pod_minutes
WHERE minute >= now() - INTERVAL 1 HOUR
GROUP BY namespace, pod
ORDER BY execs_1h DESC, namespace, pod
LIMIT 10;

-- A pod's exec timeline: what it ran, minute by minute, in the last 6 hours.
SELECT toStartOfMinute(time) AS minute, filename, count() AS execs, uniqExact(pid) AS pids
FROM kmon.events
WHERE namespace = 'shop' AND pod = 'checkout-1' AND type = 'process_exec'
  AND time >= now() - INTERVAL 6 HOUR
GROUP BY minute, filename
ORDER BY minute, execs DESC, filename;

-- Pods by outstanding kernel memory over time: bytes allocated and not freed
-- since the start of the window (6 hours), minute by minute, largest first.
SELECT namespace, pod, minute, outstanding_bytes
FROM
(
    SELECT namespace, pod,
           arraySort(groupArray((minute, delta))) AS points,
           arrayMap(p -> p.1, points) AS minutes,
           arrayCumSum(arrayMap(p -> p.2, points)) AS running
    FROM
    (
        SELECT namespace, pod, minute, sum(alloc_bytes) - sum(freed_bytes) AS delta
        FROM kmon.pod_minutes
        WHERE minute >= now() - INTERVAL 6 HOUR
        GROUP BY namespace, pod, minute
    )
    GROUP BY namespace, pod
)
ARRAY JOIN minutes AS minute, running AS outstanding_bytes
ORDER BY minute, outstanding_bytes DESC, namespace, pod;
