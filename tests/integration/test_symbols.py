#!/usr/bin/env python3
"""Names, not addresses (issue 15 items 3 and 4), on the real kernel.

A process of ours (tracked with --pid) makes kernel allocations: /proc reads,
pipes, socket pairs. Two agents watch it at once, one by default and one with
--raw-kernel-addresses, so both see the very same kernel events in the same
order. The test reads /proc/kallsyms itself, as root, and checks:
- by default no consumer (kmon-forward as nobody) and no --print line holds
  a kernel address: ptr is an opaque id, call_site a symbol name that
  /proc/kallsyms lists, the very name the test computes from the raw agent's
  address of the same event, and the consumer's line equals the agent's;
- allocation/free pairs still match by the opaque ptr exactly when the raw
  pointers match;
- --raw-kernel-addresses gives kernel addresses that fall inside kallsyms'
  text symbols;
- with kernel.kptr_restrict=2 (restored after) the agent still resolves names
  through the BPF ksym iterator, and forced to kallsyms alone it says why
  not and what to do, in its log and in /metrics, and still shows no address.
"""
import bisect
import difflib
import os
import re
import subprocess
import sys
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
from agentproc import Agent, Consumer, readable_copies
from kmoncase import KmonTestCase
from servers import free_port
from waits import wait_for

AGENT = os.environ.get("KMON_AGENT", "kmon-agent")
BUILD = os.environ.get("KMON_BUILD_DIR", "")
PRELOAD = os.environ.get("KMON_SANITIZER_RUNTIME", "")
NOBODY = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups",
          "--no-new-privs"]

# The Python bindings as a consumer (as nobody): every memory event of one
# pid, with the name the bindings resolved, until told to stop.
PY_CONSUMER = r"""
import json, os, sys, time
import kmon
sock, pid, done = sys.argv[1], int(sys.argv[2]), sys.argv[3]
out = []
with kmon.Client(sock, name="py-sym", events=["memory_alloc", "memory_free"]) as c:
    while "attached" not in c.why:
        c.read(0.1)
    print("attached", flush=True)
    while True:
        recs = c.read(0.5)
        out += [[r.type, r.ptr, r.symbol] for r in recs
                if isinstance(r, kmon.Event) and r.pid == pid]
        if not recs and os.path.exists(done):
            break
print(json.dumps(out), flush=True)
"""
FORWARD = os.environ.get("KMON_FORWARD", "kmon-forward")
KERNEL_HALF = 0xffff800000000000
MAX_OFFSET = 1 << 20  # KMON_SYMTAB_MAX_OFFSET
SITE = re.compile(r"^([^+ \[\]]+)\+0x([0-9a-f]+)(?: \[([^\]]+)\])?$")

# Kernel work that allocates and frees: /proc reads, pipes, socket pairs.
# Paced (a few thousand events a second): the tests compare two agents'
# streams event by event, so neither kernel ring may drop one; an unpaced
# loop makes ~60k/s, which a drain under ASan on a loaded CI machine does
# not always keep up with (a drop there is counted, and fails check_no_drops).
WORKLOAD = r"""
import os, socket, time
for i in range(400):
    time.sleep(0.002)
    with open("/proc/self/status", "rb") as f:
        f.read()
    r, w = os.pipe()
    os.write(w, b"x" * 100)
    os.read(r, 100)
    os.close(r); os.close(w)
    a, b = socket.socketpair()
    a.send(b"y" * 200); b.recv(200)
    a.close(); b.close()
"""


class Kallsyms:
    """The kernel's text symbols as root reads them; resolves an address the
    way the agent must (the symbol at or below it, first name listed at an
    address, nothing past 1 MiB)."""

    def __init__(self):
        syms = []
        self.names = set()
        with open("/proc/kallsyms") as f:
            for i, line in enumerate(f):
                parts = line.rstrip("\n").split("\t")
                addr, typ, name = parts[0].split(" ")
                if typ not in "tTwW":
                    continue
                mod = parts[1][1:-1] if len(parts) > 1 else None
                syms.append((int(addr, 16), i, name, mod))
                self.names.add(name)
        syms.sort()
        self.addrs, self.syms = [], []
        for a, _, name, mod in syms:
            if self.addrs and self.addrs[-1] == a:
                continue
            self.addrs.append(a)
            self.syms.append((name, mod))
        self.addr_set = set(self.addrs)
        if not any(self.addrs):
            raise unittest.SkipTest("/proc/kallsyms shows no addresses even to root")

    def resolve(self, addr):
        i = bisect.bisect_right(self.addrs, addr) - 1
        if i < 0 or addr - self.addrs[i] >= MAX_OFFSET:
            return None
        name, mod = self.syms[i]
        s = "%s+0x%x" % (name, addr - self.addrs[i])
        return s + " [%s]" % mod if mod else s


class Gated:
    """python3 running WORKLOAD once go() is called, so every agent tracks
    its pid (--pid) before it does anything."""

    def __init__(self, tmp):
        self.fifo = os.path.join(tmp, "go")
        os.mkfifo(self.fifo)
        self.proc = subprocess.Popen(["/bin/sh", "-c", 'read x < "$1"; exec python3 -c "$2"',
                                      "sh", self.fifo, WORKLOAD])
        self.pid = self.proc.pid

    def go(self):
        with open(self.fifo, "w") as f:
            f.write("go\n")
        self.proc.wait(timeout=60)


def mine(events, pid):
    return [e for e in events if e.get("pid") == pid and e["type"] in ("memory_alloc",
                                                                       "memory_free")]


def check_no_drops(test, *agents):
    """The event-by-event comparisons hold only if no ring dropped one: say
    so plainly when one did (the agent counted it), rather than report a
    mismatch further on."""
    for a in agents:
        test.assertIsNotNone(a.totals, "no totals line at stop")
        dropped = {k: v for k, v in a.totals["kernel_dropped"].items() if v}
        test.assertEqual(dropped, {}, "the kernel ring dropped events (counted): %r" % a.totals)


def pairs_of(a_evs, b_evs):
    """The same events as two agents saw them, paired. Two agents are two
    sets of programs on one tracepoint: an interrupt that lands between
    agent A's program and agent B's for one allocation (an RCU callback
    freeing an object of the workload in a softirq, say) reaches the two
    rings in a different order around it, and may even find one live map
    already updated and the other not. So the streams are aligned (difflib
    on type, tid, size, charged elsewhere) rather than zipped; all but a
    handful of events must pair."""
    def keys(evs):
        return [(e["type"], e["tid"], e["size"], bool(e.get("charged_elsewhere")))
                for e in evs]
    sm = difflib.SequenceMatcher(None, keys(a_evs), keys(b_evs), autojunk=False)
    pairs = [(a_evs[i + k], b_evs[j + k])
             for i, j, n in sm.get_matching_blocks() for k in range(n)]
    unpaired = max(len(a_evs), len(b_evs)) - len(pairs)
    assert unpaired <= max(5, len(a_evs) // 500), \
        "%d of %d/%d events differ between the two agents" % (unpaired, len(a_evs), len(b_evs))
    return pairs


def settled(*paths_pids):
    """Counts of each (path, pid) once none changed for a second."""
    before = None
    while True:
        now = [count(p, pid) for p, pid in paths_pids]
        if now == before:
            return now
        before = now
        time.sleep(1.0)


def lines_of(path):
    import json
    out = []
    with open(path, errors="strict") as f:
        for line in f:
            if line.startswith('{"type"'):
                out.append(json.loads(line))
    return out


def count(path, pid):
    """Cheap count of pid's lines (every line is a memory event here)."""
    with open(path, "rb") as f:
        return f.read().count(b'"pid":%d,' % pid)


class KptrRestrict:
    def __init__(self, value):
        with open("/proc/sys/kernel/kptr_restrict") as f:
            self.old = f.read().strip()
        self.set(value)

    def set(self, value):
        with open("/proc/sys/kernel/kptr_restrict", "w") as f:
            f.write("%s\n" % value)

    def restore(self):
        if self.old is not None:
            self.set(self.old)
            self.old = None


class SymbolsTest(KmonTestCase):
    # tmp, procs and their reaping: KmonTestCase.

    def gated(self):
        g = Gated(self.tmp)

        def kill():
            if g.proc.poll() is None:
                g.proc.kill()
                g.proc.wait()
        self.addCleanup(kill)
        return g

    def agent(self, pid, *extra):
        a = Agent(AGENT, ["--rescan-interval", "0", "--print", "--events",
                          "memory_alloc,memory_free", "--pid", str(pid)] + list(extra))
        self.procs.append(a)
        return a

    def forward(self, a):
        fwd = Consumer([FORWARD, "--socket", a.socket, "--name", "sym-check",
                        "--events", "memory_alloc,memory_free"])
        self.procs.append(fwd)
        fwd.wait_for_log("attached to")
        return fwd

    def python_consumer(self, a, pid):
        """The Python bindings over this build's libkmon, as nobody (None
        without a build directory to take libkmon from)."""
        if not BUILD:
            return None
        self.done = os.path.join(self.tmp, "py-done")
        # Copies nobody can read (the tree may sit under a 0700 directory).
        lib, pkg = readable_copies(os.path.join(BUILD, "consumers", "libkmon.so.0"),
                                   os.path.join(HERE, "..", "..", "consumers", "python", "kmon"))
        env = dict(os.environ, KMON_LIBRARY=lib, PYTHONPATH=os.path.dirname(pkg))
        if PRELOAD:
            env["LD_PRELOAD"] = PRELOAD
            env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1"
        p = subprocess.Popen(NOBODY + [sys.executable, "-c", PY_CONSUMER, a.socket, str(pid),
                                       self.done], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        line = p.stdout.readline()
        self.assertEqual(line.strip(), "attached", p.stderr.read() if not line else line)
        return p

    def python_result(self, p):
        if p is None:
            return None
        open(self.done, "w").close()
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        import json
        return json.loads(out.strip().splitlines()[-1])

    def assert_no_address(self, evs, ks, who):
        for e in evs:
            ptr = int(e["ptr"], 16)
            self.assertLess(ptr, KERNEL_HALF, "%s: ptr %s looks like a kernel address" % (who, e["ptr"]))
            self.assertNotIn(ptr, ks.addr_set, who)
            for key in ("call_site", "alloc_call_site"):
                site = e.get(key)
                if site is None:
                    continue
                self.assertFalse(site.startswith("0x"), "%s: raw %s %s" % (who, key, site))
                m = SITE.match(site)
                self.assertIsNotNone(m, "%s: %s %r is not function+0xoff" % (who, key, site))
                self.assertIn(m.group(1), ks.names, "%s: %s not in /proc/kallsyms" % (who, site))

    def test_default_hides_addresses_and_names_match_raw(self):
        ks = Kallsyms()
        g = self.gated()
        masked = self.agent(g.pid)
        raw = self.agent(g.pid, "--raw-kernel-addresses")
        masked.wait_attached()
        raw.wait_attached()
        self.assertIn("from kallsyms", masked.log())
        self.assertIn("--raw-kernel-addresses: consumers see kernel pointers", raw.log())
        fwd = self.forward(masked)
        py = self.python_consumer(masked, g.pid)
        g.go()
        # Both agents saw the same events; wait until their drains caught up.
        # The consumer writes stdout in blocks: it has everything once it
        # stops (SIGINT flushes), after the agents both have it all.
        wait_for(lambda: count(masked.out_path, g.pid) > 0 and
                 count(raw.out_path, g.pid) > 0 and
                 count(fwd.out_path, g.pid) > count(masked.out_path, g.pid) - 1000, 30,
                 "events at both agents and the consumer",
                 show=lambda: (count(masked.out_path, g.pid), count(raw.out_path, g.pid),
                               count(fwd.out_path, g.pid)))
        settled((masked.out_path, g.pid), (raw.out_path, g.pid))
        time.sleep(0.5)
        fwd.stop()
        py_evs = self.python_result(py)
        self.assertEqual(masked.stop(), 0)
        self.assertEqual(raw.stop(), 0)
        check_no_drops(self, masked, raw)
        m_evs = mine(lines_of(masked.out_path), g.pid)
        r_evs = mine(lines_of(raw.out_path), g.pid)
        f_evs = mine(lines_of(fwd.out_path), g.pid)
        print("events of the workload: %d (masked) %d (raw) %d (kmon-forward) %s (python)"
              % (len(m_evs), len(r_evs), len(f_evs), len(py_evs) if py_evs is not None else "-"))
        self.assertGreater(len(m_evs), 500)
        pairs = pairs_of(m_evs, r_evs)
        print("events paired between the two agents: %d" % len(pairs))

        # The consumer (as nobody) and --print: no kernel address, names only.
        self.assert_no_address(m_evs, ks, "--print")
        self.assert_no_address(f_evs, ks, "kmon-forward")
        # The consumer resolved locally exactly what the agent printed.
        strip = lambda e: {k: e[k] for k in ("type", "timestamp", "tid", "ptr", "call_site")}
        self.assertEqual([strip(e) for e in f_evs[:len(m_evs)]], [strip(e) for e in m_evs])

        # The Python bindings name the same call sites and see the same ids.
        if py_evs is not None:
            self.assertEqual(py_evs, [[e["type"], int(e["ptr"], 16), e["call_site"]]
                                      for e in f_evs])

        # Event by event: the name is the test's own resolution of the raw
        # address the other agent saw; raw values are real kernel addresses.
        named = 0
        for m, r in pairs:
            self.assertEqual((m["type"], m["tid"], m["size"]), (r["type"], r["tid"], r["size"]))
            raw_site = int(r["call_site"], 16)
            self.assertGreaterEqual(int(r["ptr"], 16), KERNEL_HALF, r)
            want = ks.resolve(raw_site)
            self.assertIsNotNone(want, "raw call site %s is in no kallsyms text symbol" % r["call_site"])
            self.assertEqual(m["call_site"], want)
            named += 1
        print("call sites named as the test resolves them: %d; distinct: %s"
              % (named, sorted({e["call_site"].split("+")[0] for e in m_evs})[:12]))

        # Pairs: same opaque id exactly when the same raw pointer.
        matched = 0
        by_raw, by_id = {}, {}
        for m, r in pairs:
            rp, mp = r["ptr"], m["ptr"]
            if rp in by_raw:
                self.assertEqual(by_raw[rp], mp, "one pointer, two ids")
            if mp in by_id:
                self.assertEqual(by_id[mp], rp, "one id, two pointers")
            by_raw[rp], by_id[mp] = mp, rp
        live = {}
        for m, r in pairs:
            if m["type"] == "memory_alloc":
                live[r["ptr"]] = m["ptr"]
            elif r["ptr"] in live:
                self.assertEqual(m["ptr"], live.pop(r["ptr"]))
                matched += 1
        print("alloc/free pairs matched by opaque ptr: %d" % matched)
        self.assertGreater(matched, 100)

    def test_kptr_restrict_2(self):
        ks = Kallsyms()
        g = self.gated()
        port = free_port()
        kr = KptrRestrict(2)
        self.addCleanup(kr.restore)
        try:
            # The table is read at start, as root: restore as soon as both have it.
            it = self.agent(g.pid)
            only = self.agent(g.pid, "--kernel-symbols", "kallsyms", "--metrics-addr",
                              "127.0.0.1:%d" % port)
            it.wait_attached()
            only.wait_attached()
        finally:
            kr.restore()
        self.assertIn("from ksym-iter", it.log())
        log = only.log()
        self.assertIn("kernel call sites will not be resolved to names", log)
        self.assertIn("kptr_restrict", log)
        self.assertIn("--kernel-symbols auto", log)
        metrics = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read().decode()
        self.assertRegex(metrics, r"(?m)^kmon_kernel_symbols 0$")
        self.assertRegex(metrics, r'(?m)^kmon_kernel_symbols_source\{source="none"\} 1$')
        self.assertRegex(metrics, r"(?m)^kmon_raw_kernel_addresses 0$")
        fwd = self.forward(it)
        g.go()
        wait_for(lambda: count(it.out_path, g.pid) > 200 and
                 count(only.out_path, g.pid) > 200, 30,
                 "events at both agents",
                 show=lambda: (count(it.out_path, g.pid), count(only.out_path, g.pid)))
        settled((it.out_path, g.pid), (only.out_path, g.pid))
        time.sleep(0.5)
        fwd.stop()
        self.assertEqual(it.stop(), 0)
        self.assertEqual(only.stop(), 0)
        check_no_drops(self, it, only)
        i_evs = mine(lines_of(it.out_path), g.pid)
        o_evs = mine(lines_of(only.out_path), g.pid)
        f_evs = mine(lines_of(fwd.out_path), g.pid)
        self.assert_no_address(i_evs, ks, "ksym-iter --print")
        self.assert_no_address(f_evs, ks, "ksym-iter kmon-forward")
        self.assert_no_address(o_evs, ks, "kallsyms-only --print")
        # Every call site named, but an inferred free's: no free was seen
        # (the address was allocated again), so it has no call site at all.
        unnamed = [e for e in i_evs if e["call_site"] is None and not e.get("free_inferred")]
        self.assertEqual(unnamed, [], "events without a call site through the ksym iterator")
        self.assertEqual(len(f_evs), len(i_evs))
        self.assertTrue(all(e["call_site"] is None for e in o_evs))
        print("kptr_restrict=2: %d events named through the ksym iterator; kallsyms-only: "
              "%d events, call sites null" % (len(i_evs), len(o_evs)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
