#!/usr/bin/env python3
"""A complete kmon consumer in Python: exec counts per pod, printed every
few seconds, with what was lost.  python3 example.py [SOCKET]"""
import collections
import sys
import time

import kmon

sock = sys.argv[1] if len(sys.argv) > 1 else "/run/kmon/kmon.sock"
per_pod = collections.Counter()
lost = 0
last = time.monotonic()
with kmon.Client(sock, name="py-example", events=["process_exec"]) as c:
    for rec in c.records(timeout=1.0 if "--once" in sys.argv else None):
        if isinstance(rec, kmon.Lost):
            lost += rec.count
            continue
        per_pod[(rec.namespace or "-", rec.pod or "-")] += 1
        if time.monotonic() - last > 5:
            last = time.monotonic()
            for (ns, pod), n in per_pod.most_common(10):
                print("%-20s %-30s %6d" % (ns, pod, n))
            print("lost", lost, flush=True)
for (ns, pod), n in per_pod.most_common(10):
    print("%-20s %-30s %6d" % (ns, pod, n))
print("lost", lost)
