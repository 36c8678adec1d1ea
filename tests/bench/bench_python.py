#!/usr/bin/env python3
"""How many events a Python consumer (consumers/python over libkmon) keeps up
with, side by side with the C test consumer on the same agent and the same
flood: events/s each received, the ratio, lost, and the Python process's CPU
per event. Prints a table; never fails on a timing.

  bench_python.py [--short]   (root; KMON_BUILD=build dir)
"""
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
from agentproc import Agent, Consumer

B = os.environ.get("KMON_BUILD", os.path.join(REPO, "build"))
AGENT = os.path.join(B, "agent", "kmon-agent")
TC = os.path.join(B, "tests", "testconsumer")
FLOOD = os.path.join(B, "tests", "kmalloc_flood")

PY = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[2])
import kmon
n = lost = 0
with kmon.Client(sys.argv[1], name="py-bench", events=["memory_alloc"],
                 ring_size=16 << 20) as c:
    print("attached", flush=True)
    while not os.path.exists(sys.argv[3]):
        for r in c.read(0.2):
            if isinstance(r, kmon.Lost):
                lost += r.count
            else:
                n += 1
    t = os.times()
    print(json.dumps({"events": n, "lost": lost, "cpu": t.user + t.system}))
"""


def main():
    short = "--short" in sys.argv
    iters = 300000 if short else 2000000
    rows = []
    for rate in (100000, None):
        a = Agent(AGENT, ["--scope", "all", "--events", "memory_alloc", "--rescan-interval", "0"])
        a.wait_attached()
        c = Consumer([TC, "--socket", a.socket, "--name", "c", "--ring-size", str(16 << 20)])
        c.wait_for_log("attached to")
        env = dict(os.environ, KMON_LIBRARY=os.path.join(B, "consumers", "libkmon.so.0"))
        stop = tempfile.mktemp(prefix="kmon-pybench-stop-")
        py = subprocess.Popen([sys.executable, "-c", PY, a.socket,
                               os.path.join(REPO, "consumers", "python"), stop],
                              stdout=subprocess.PIPE, text=True, env=env)
        assert py.stdout.readline().strip() == "attached"
        t0 = time.perf_counter()
        subprocess.run([FLOOD, str(iters), "1"] + (["--rate=%d" % rate] if rate else []),
                       check=True, stdout=subprocess.DEVNULL)
        time.sleep(0.5)  # the last batches
        secs = time.perf_counter() - t0
        # Both stop counting at about the same time: Python on the stop
        # file, the C consumer when the agent stops right after.
        open(stop, "w").close()
        res = json.loads(py.communicate(timeout=120)[0].strip().splitlines()[-1])
        os.unlink(stop)
        a.stop()
        c.wait_for_log("agent closed the connection", timeout=60)
        c.stop()
        cres = c.result()
        rows.append({"offered": "%d/s" % rate if rate else "flat out (1 thread)",
                     "c_events_per_s": round(cres["events"] / secs),
                     "py_events_per_s": round(res["events"] / secs),
                     "py_vs_c": round(res["events"] / max(cres["events"], 1), 3),
                     "py_lost": res["lost"], "c_lost": cres["lost"],
                     "py_cpu_ns_per_event": round(res["cpu"] / max(res["events"], 1) * 1e9)})
    cols = list(rows[0])
    print("\n### Python consumer vs the C consumer, same agent, same flood\n")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[k]) for k in cols) + " |")
    print(json.dumps({"python_consumer": rows}))


if __name__ == "__main__":
    main()
