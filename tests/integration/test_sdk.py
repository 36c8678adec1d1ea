#!/usr/bin/env python3
"""The consumer SDK as a user gets it (issue 16 §2): `cmake --install` puts
libkmon, its headers and kmon.pc in a prefix; the example consumer is copied
out of the tree and built there with nothing but `cc` and `pkg-config`; the
Python package is pip-installed into a fresh venv. Both run as user nobody
against a live agent, with workloads in a real runc container annotated
through the stand-in kubelet, and report what a user checks: every exec,
with its pod, namespace and container; sequence numbers that account for
every record (events + lost)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
from agentproc import Agent, NOBODY, check_sanitizers
from cluster import Cluster
from waits import wait_for

AGENT = os.environ.get("KMON_AGENT", "kmon-agent")
BUILD = os.environ.get("KMON_BUILD_DIR", os.path.join(REPO, "build"))
# Sanitizer trees: libkmon is instrumented, the programs loading it are not.
PRELOAD = os.environ.get("KMON_SANITIZER_RUNTIME", "")

PY_CONSUMER = r"""
import json, sys, time, kmon
want, deadline = int(sys.argv[2]), time.monotonic() + 60
evs, lost = [], []
with kmon.Client(sys.argv[1], name="py-test", events=["process_exec"]) as c:
    print("attached", flush=True)
    while time.monotonic() < deadline:
        for r in c.read(0.5):
            if isinstance(r, kmon.Lost):
                lost.append([r.since_seq, r.count])
            else:
                evs.append([r.seq, r.filename, r.namespace, r.pod, r.container, r.pod_uid,
                            r.container_id, r.pid, r.comm])
        if sum(1 for e in evs if e[1] == "/bin/true") >= want:
            break
    print(json.dumps({"events": evs, "lost": lost, "stats": c.stats(), "node": c.node}))
"""


def env_for_sdk(prefix):
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.path.join(prefix, "lib")
    if PRELOAD:
        env["LD_PRELOAD"] = PRELOAD
        env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1"
    return env


class SdkTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="kmon-sdk-")
        os.chmod(cls.tmp, 0o755)
        cls.prefix = os.path.join(cls.tmp, "prefix")
        r = subprocess.run(["cmake", "--install", BUILD, "--prefix", cls.prefix],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        cls.cl = Cluster(cls.tmp, "shop", "checkout-1", "true")
        cls.agent = Agent(AGENT, cls.cl.agent_args())
        cls.agent.wait_attached()
        wait_for(lambda: "annotating events with pod names" in cls.agent.log(), 30,
                 "kubelet answer")

    @classmethod
    def tearDownClass(cls):
        cls.agent.stop()
        cls.cl.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def check_annotated(self, ns, pod, container):
        self.assertEqual((ns, pod, container), ("shop", "checkout-1", "app"))

    def test_out_of_tree_c_consumer(self):
        src = os.path.join(self.tmp, "mine")
        os.mkdir(src)
        shutil.copy(os.path.join(REPO, "consumers", "examples", "kmon-execs.c"), src)
        pc = subprocess.run(["pkg-config", "--cflags", "--libs", "kmon"],
                            env=dict(os.environ, PKG_CONFIG_PATH=os.path.join(
                                self.prefix, "lib", "pkgconfig")),
                            capture_output=True, text=True)
        self.assertEqual(pc.returncode, 0, pc.stderr)
        self.assertIn(self.prefix, pc.stdout)
        exe = os.path.join(src, "kmon-execs")
        # A sanitizer tree's libkmon leaves the sanitizer's symbols to the
        # runtime preloaded at run time.
        extra = ["-Wl,--unresolved-symbols=ignore-in-shared-libs"] if PRELOAD else []
        r = subprocess.run(["cc", "-Wall", "-Wextra", "-Werror", "-o", exe,
                            os.path.join(src, "kmon-execs.c")] + pc.stdout.split() + extra,
                           capture_output=True, text=True, cwd=src)
        self.assertEqual(r.returncode, 0, r.stderr)
        os.chmod(src, 0o755)
        out_path = os.path.join(self.tmp, "c.out")
        err_path = os.path.join(self.tmp, "c.err")

        def slurp(path):
            with open(path) as f:
                return f.read()
        with open(out_path, "w") as out, open(err_path, "w") as err:
            p = subprocess.Popen(NOBODY + [exe, self.agent.socket, "1000000"], stdout=out,
                                 stderr=err, env=env_for_sdk(self.prefix))
        try:
            self.agent.wait_for_log("'kmon-execs' attached")
            self.cl.run_execs(25)

            def trues():
                return [l for l in slurp(out_path).splitlines()
                        if l.endswith("exec /bin/true")]
            wait_for(lambda: len(trues()) >= 25, 30, "25 execs printed",
                     lambda: slurp(out_path)[-2000:] + slurp(err_path)[-2000:])
        finally:
            p.terminate()
            p.wait(10)
        lines = trues()
        self.assertEqual(len(lines), 25, lines)
        for l in lines:
            self.assertTrue(l.startswith("shop/checkout-1 app pid "), l)
        self.assertNotIn("lost", slurp(out_path))
        check_sanitizers("kmon-execs", slurp(err_path))

    def test_python_package_from_pip(self):
        venv = os.path.join(self.tmp, "venv")
        # Debian's setuptools (66) builds wheels through the separate `wheel`
        # package: the venv sees the system's (python3-wheel).
        r = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        # Offline: no build isolation (it would fetch setuptools), no index.
        # From a copy: a build leaves build/ and *.egg-info/ beside the sources.
        pkg = os.path.join(self.tmp, "python-pkg")
        shutil.copytree(os.path.join(REPO, "consumers", "python"), pkg,
                        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        r = subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q",
                            "--no-build-isolation", "--no-index", pkg],
                           capture_output=True, text=True, cwd=self.tmp)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        script = os.path.join(self.tmp, "consumer.py")
        with open(script, "w") as f:
            f.write(PY_CONSUMER)
        subprocess.run(["chmod", "-R", "a+rX", venv, script], check=True)
        env = env_for_sdk(self.prefix)
        p = subprocess.Popen(NOBODY + [os.path.join(venv, "bin", "python"), script,
                                       self.agent.socket, "40"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env, cwd="/")
        self.assertEqual(p.stdout.readline().strip(), "attached", p.stderr.read()
                         if p.poll() is not None else "")
        time.sleep(0.5)
        self.cl.run_execs(40)
        out, err = p.communicate(timeout=90)
        self.assertEqual(p.returncode, 0, err)
        res = json.loads(out.strip().splitlines()[-1])
        trues = [e for e in res["events"] if e[1] == "/bin/true"]
        self.assertEqual(len(trues), 40, res)
        uid = self.cl.c.pod_uid if hasattr(self.cl.c, "pod_uid") else None
        for e in trues:
            self.check_annotated(e[2], e[3], e[4])
            self.assertEqual(e[8], "true")
            self.assertEqual(len(e[6]), 64, e)  # the container's full id
            if uid:
                self.assertEqual(e[5], uid)
        # Sequence numbers: every record accounted for, in order, no gap.
        seqs = sorted([e[0] for e in res["events"]] +
                      [s + i for s, n in res["lost"] for i in range(n)])
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))))
        st = res["stats"]
        self.assertEqual(st["received"], len(res["events"]), st)
        self.assertEqual(st["lost"], sum(n for _, n in res["lost"]))
        self.assertEqual(st["seq_errors"], 0, st)
        self.assertTrue(res["node"], res)

    def test_python_refused_hello_is_an_error(self):
        sys.path.insert(0, os.path.join(REPO, "consumers", "python"))
        import kmon
        os.environ["KMON_LIBRARY"] = os.path.join(self.prefix, "lib", "libkmon.so.0")
        if PRELOAD:
            self.skipTest("in-process load of the instrumented libkmon needs LD_PRELOAD "
                          "(covered by the subprocess tests above)")
        with self.assertRaises(ValueError):
            kmon.Client(self.agent.socket, events=["nope"])
        with kmon.Client("/nonexistent/kmon.sock", reconnect=False) as c:
            with self.assertRaises(kmon.KmonError) as cm:
                for _ in range(20):
                    c.read(0.2)
            self.assertIn("kmon.sock", str(cm.exception))


if __name__ == "__main__":
    unittest.main(verbosity=2)
