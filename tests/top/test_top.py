#!/usr/bin/env python3
"""kmon-top as a person uses it (issue 17 §1): in a real terminal (tmux,
80x24, TERM=vt100: no colours), against a live agent following two real
runc pods in two namespaces, annotated through the stand-in kubelet. One pod
execs in a loop, the other only reads /proc (allocations, no exec). The test
types keys with `send-keys` and reads the screen with `capture-pane`: the
rows name the pods, the exec pod leads the exec sort, the name sort orders
them, the namespace filter leaves one, the health line reads the agent's
/metrics. Then --once --json, for scripts."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from agentproc import Agent
from fake_kubelet import serve_podlist
from kubenode import Node, new_pod_uid
from servers import free_port
from waits import wait_for

AGENT = os.environ.get("KMON_AGENT", "kmon-agent")
TOP = os.environ.get("KMON_TOP", "kmon-top")
SESSION = "kmon-top-test-%d" % os.getpid()


def tmux(*args, check=True):
    return subprocess.run(["tmux", "-L", SESSION] + list(args), capture_output=True, text=True,
                          check=check)


def screen():
    return tmux("capture-pane", "-p", "-t", SESSION).stdout.splitlines()


def order(lines, *preds):
    """Positions in the table of the first row matching each predicate (other
    containers on the node may be listed too)."""
    rs = rows(lines)
    return [next((i for i, r in enumerate(rs) if p(r)), None) for p in preds]


def before(lines, first, second):
    a, b = order(lines, first, second)
    return a is not None and b is not None and a < b


def rows(lines):
    """The table's rows: the lines below the column header."""
    for i, l in enumerate(lines):
        if l.startswith("NAMESPACE"):
            return [r for r in lines[i + 1:] if r.strip()]
    return []


class TopTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="kmon-top-")
        os.chmod(cls.tmp, 0o755)
        cls.node = Node()
        cls.execer = cls.node.start_container(
            flavor="systemd-containerd", pod_uid=new_pod_uid(), name="app",
            cmd=["/bin/sh", "-c", "while :; do /bin/true; usleep 20000; done"])
        # Reads without exec: `read` is a shell builtin.
        cls.reader = cls.node.start_container(
            flavor="cgroupfs-containerd", pod_uid=new_pod_uid(), name="worker",
            cmd=["/bin/sh", "-c", "while :; do read x < /proc/meminfo; done"])
        cls.fk = serve_podlist(cls.tmp, cls.node.podlist([
            {"name": "checkout-1", "namespace": "shop", "containers": [cls.execer]},
            {"name": "cruncher-0", "namespace": "batch", "containers": [cls.reader]}]))
        cls.metrics = "127.0.0.1:%d" % free_port()
        cls.agent = Agent(AGENT, ["--scope", "containers", "--rescan-interval", "0.5",
                                  "--metrics-addr", cls.metrics] + cls.fk.agent_args())
        cls.agent.wait_attached()
        wait_for(lambda: "annotating events with pod names" in cls.agent.log(), 30,
                 "kubelet answer")

    @classmethod
    def tearDownClass(cls):
        tmux("kill-server", check=False)
        cls.agent.stop()
        cls.fk.stop()
        cls.node.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def wait_screen(self, pred, what, timeout=20):
        wait_for(lambda: pred(screen()), timeout, what, lambda: "\n".join(screen()))

    def test_interactive_under_tmux(self):
        tmux("new-session", "-d", "-s", SESSION, "-x", "80", "-y", "24",
             "env TERM=vt100 setpriv --reuid nobody --regid nogroup --clear-groups %s "
             "--socket %s --agent-metrics http://%s/metrics" % (TOP, self.agent.socket,
                                                                self.metrics))
        shop = lambda l: l.startswith("shop ") and "checkout-1" in l and " app " in l  # noqa
        batch = lambda l: l.startswith("batch ") and "cruncher-0" in l and "worker" in l  # noqa
        self.wait_screen(lambda s: any(map(shop, rows(s))) and any(map(batch, rows(s))),
                         "both pods on the screen")
        s = screen()
        self.assertEqual(len(s), 24, s)
        self.assertTrue(all(len(l) <= 80 for l in s), s)
        self.assertIn("sort exec/s", s[0])
        # The health line comes from the agent's /metrics, asked every refresh.
        self.wait_screen(lambda s: "agent: ready, 1 consumers, kernel drops 0" in s[1],
                         "the health line")
        for col in ("NAMESPACE", "POD", "CONTAINER", "EXEC/s", "ALLOC/s", "MiB/s", "HELD",
                    "OOM", "CALL SITE"):
            self.assertIn(col, "\n".join(s))
        # Default sort, exec/s: the pod that execs comes before the one that does not.
        self.wait_screen(lambda s: before(s, shop, batch), "shop before batch by exec/s")
        # The reader execs nothing: its exec/s reads 0.0, its allocations do not.
        b = [r for r in rows(screen()) if batch(r)][0].split()
        self.assertEqual(b[3], "0.0", b)
        self.assertNotEqual(b[4], "0.0", b)
        # Its top call site by name (the agent hides addresses), perhaps cut ('~').
        self.assertRegex(b[-1], r"^[A-Za-z_][A-Za-z0-9_.]*(\+(0x[0-9a-f]*)?)?~?$", b)
        self.assertNotIn("0x" + "f" * 4, b[-1])

        tmux("send-keys", "-t", SESSION, "n")  # by name: batch < shop
        self.wait_screen(lambda s: "sort name" in s[0] and before(s, batch, shop), "name sort")
        tmux("send-keys", "-t", SESSION, "/")
        tmux("send-keys", "-t", SESSION, "-l", "shop")
        self.wait_screen(lambda s: "namespace (Enter applies" in s[2] and "shop_" in s[2],
                         "the filter prompt")
        tmux("send-keys", "-t", SESSION, "Enter")
        self.wait_screen(lambda s: "namespace shop" in s[0] and rows(s) and
                         all(map(shop, rows(s))), "only shop after the filter")
        tmux("send-keys", "-t", SESSION, "/")
        tmux("send-keys", "-t", SESSION, "Enter")  # empty: all namespaces again
        self.wait_screen(lambda s: "namespace all" in s[0] and any(map(batch, rows(s))),
                         "filter cleared")
        tmux("send-keys", "-t", SESSION, "q")
        wait_for(lambda: tmux("has-session", "-t", SESSION, check=False).returncode != 0, 10,
                 "kmon-top quit on q")

    def test_once_json_for_scripts(self):
        r = subprocess.run(["setpriv", "--reuid", "nobody", "--regid", "nogroup",
                            "--clear-groups", TOP, "--socket", self.agent.socket, "--once",
                            "--json", "--interval", "2"], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 1, r.stdout)
        snap = json.loads(lines[0])
        by_pod = {x["pod"]: x for x in snap["rows"]}
        self.assertEqual(by_pod["checkout-1"]["namespace"], "shop")
        self.assertGreater(by_pod["checkout-1"]["exec_per_s"], 5, snap)
        self.assertEqual(by_pod["cruncher-0"]["exec_per_s"], 0, snap)
        self.assertGreater(by_pod["cruncher-0"]["alloc_per_s"], 10, snap)
        # The whole name in JSON, checked against the kernel's own table.
        site = by_pod["cruncher-0"]["top_call_site"]
        self.assertRegex(site, r"^[^+ ]+\+0x[0-9a-f]+( \[[^\]]+\])?$", snap)
        with open("/proc/kallsyms") as f:
            self.assertIn(" " + site.split("+")[0] + "\n", f.read().replace("\t", "\n"))
        # Nothing was OOM-killed; the ledger column is there for each row.
        self.assertEqual(by_pod["cruncher-0"]["oom_kills"], 0, snap)
        self.assertGreaterEqual(by_pod["cruncher-0"]["held_bytes"], 0, snap)
        self.assertEqual(snap["lost"], 0)
        # Plain text, one snapshot, namespace filter from the command line.
        r = subprocess.run([TOP, "--socket", self.agent.socket, "--once", "--namespace",
                            "batch"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        body = rows(r.stdout.splitlines())
        self.assertEqual(len(body), 1, r.stdout)
        self.assertTrue(body[0].startswith("batch "), body)

    def test_bad_options_and_no_terminal(self):
        for argv, why in ((["--sort", "x"], "--sort: 'x' is not one of"),
                          (["--interval", "0"], "--interval: '0' is not seconds"),
                          (["--agent-metrics", "ftp://x"], "is not an http(s):// URL"),
                          ([], "not a terminal: use --once or --json")):
            r = subprocess.run([TOP] + argv, capture_output=True, text=True, timeout=10,
                               stdin=subprocess.DEVNULL)
            self.assertEqual(r.returncode, 2, (argv, r.stderr))
            self.assertIn(why, r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
