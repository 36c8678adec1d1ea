#!/usr/bin/env python3
"""The kubelet client library alone (k8s/kubelet.c + k8s/podlist.c), through
the kubelet_get driver, against the stand-in kubelet: what a request returns
and the one-line reason it gives for each way a kubelet can fail.

One driver process keeps one struct kubelet across requests, so token
rotation and mode changes are seen by the same client (and its reused
connection), as the library promises. The agent itself makes one client per
request, in kmon-kubelet-get (agent/kubelet_proc.h; tests/integration/
test_kubelet.py runs it through the agent).
"""
import errno
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
from fake_kubelet import FakeKubelet

DRIVER = os.environ.get("KMON_KUBELET_GET", "kubelet_get")
FIXTURE = os.path.join(HERE, "..", "fixtures", "kubelet-pods.json")
MIB = 1 << 20


class Client:
    """kubelet_get: one 'get' line in, one result line out."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([DRIVER] + list(args), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def get(self):
        self.proc.stdin.write("get\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("driver exited: %s" % self.proc.wait(5))
        r = dict(f.split("=", 1) for f in line.rstrip("\n").split("\t"))
        for k in ("rc", "status", "len", "pods"):
            r[k] = int(r[k])
        return r

    def peak_rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise AssertionError("no VmHWM")

    def close(self):
        self.proc.stdin.close()
        rc = self.proc.wait(30)
        self.proc.stdout.close()
        return rc


class KubeletClient(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="kmon-klc-")
        # Server and client read different files, so a test can rotate one
        # side and prove the client re-reads its file on every request.
        self.server_token = os.path.join(self.tmp, "server-token")
        self.token = os.path.join(self.tmp, "token")
        self.write(self.server_token, "tok-1\n")
        self.write(self.token, "tok-1\n")
        self.fk = FakeKubelet(os.path.join(self.tmp, "k"), FIXTURE, self.server_token).start()
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            if c.proc.poll() is None:
                c.proc.kill()
                c.proc.wait()
            for f in (c.proc.stdin, c.proc.stdout):
                if not f.closed:
                    f.close()
        self.fk.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @staticmethod
    def write(path, text):
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)

    def client(self, *extra, ca=True, token=True, url=None):
        args = ["--url", url or self.fk.url()]
        if token:
            args += ["--token-file", self.token]
        if ca:
            args += ["--ca-file", self.fk.ca]
        c = Client(*(args + list(extra)))
        self.clients.append(c)
        return c

    def assert_ok(self, r, pods=7):
        self.assertEqual((r["rc"], r["status"], r["pods"]), (0, 200, pods), r)

    def test_ok_gzip(self):
        c = self.client()
        r = self.get_ok(c)
        with open(FIXTURE, "rb") as f:
            # len is the inflated body: the library asked for and decoded gzip.
            self.assertEqual(r["len"], len(f.read()))
        self.assertEqual(self.fk.gzip_replies, 1)
        self.assertEqual(c.close(), 0)

    def get_ok(self, c):
        r = c.get()
        self.assert_ok(r)
        return r

    def test_url_with_trailing_slash(self):
        c = self.client(url=self.fk.url() + "/")
        self.get_ok(c)
        self.assertEqual(self.fk.requests[-1][0], "/pods")

    def test_wrong_token(self):
        self.write(self.token, "wrong\n")
        r = self.client().get()
        self.assertEqual((r["rc"], r["status"]), (-errno.EACCES, 401), r)
        for t in ("HTTP 401", "rejected the service-account token", "nodes/pods",
                  "nodes/proxy"):
            self.assertIn(t, r["err"])

    def test_401_mode(self):
        self.fk.set_mode("401")
        r = self.client().get()
        self.assertEqual((r["rc"], r["status"]), (-errno.EACCES, 401), r)
        self.assertIn("nodes/pods", r["err"])

    def test_no_ca_names_the_flags(self):
        r = self.client(ca=False).get()
        self.assertEqual((r["rc"], r["status"]), (-errno.EPROTO, 0), r)
        for t in ("TLS verification failed", "not signed by the cluster CA",
                  "--kubelet-ca-file", "--kubelet-insecure-skip-tls-verify"):
            self.assertIn(t, r["err"])

    def test_insecure_ok(self):
        self.get_ok(self.client("--insecure", ca=False))

    def test_token_rotation(self):
        c = self.client()
        self.get_ok(c)
        # The server moves to a new token: the old one is refused...
        self.write(self.server_token, "tok-2\n")
        self.assertEqual(c.get()["status"], 401)
        # ...and the same client picks up the rotated file on its next request.
        self.write(self.token, "tok-2\n")
        self.get_ok(c)
        self.assertEqual([a for p, a in self.fk.requests],
                         ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"])

    def test_unreadable_token_file(self):
        os.unlink(self.token)
        r = self.client().get()
        self.assertEqual((r["rc"], r["status"]), (-errno.ENOENT, 0), r)
        self.assertIn("cannot read the token file " + self.token, r["err"])
        self.assertIn("--kubelet-token-file", r["err"])
        self.assertEqual(self.fk.requests, [], "no request without a token")

    def test_empty_token_file(self):
        self.write(self.token, "\n")
        r = self.client().get()
        self.assertEqual(r["rc"], -errno.EINVAL, r)
        self.assertIn("is empty", r["err"])

    def test_huge_is_capped(self):
        for mode in ("huge", "gzbomb"):
            with self.subTest(mode=mode):
                c = self.client("--max-body", str(MIB))
                self.get_ok(c)
                base = c.peak_rss_kib()
                self.fk.set_mode(mode)
                r = c.get()
                self.assertEqual(r["rc"], -errno.E2BIG, r)
                self.assertIn("larger than %d bytes" % MIB, r["err"])
                # 50 MB were offered; the client held at most about max_body.
                self.assertLess(c.peak_rss_kib() - base, 8 * 1024)
                # And the next answer is fine again.
                self.fk.set_mode("ok")
                self.get_ok(c)

    def test_slow_times_out(self):
        self.fk.set_mode("slow")
        r = self.client("--timeout-ms", "1500").get()
        self.assertEqual(r["rc"], -errno.ETIMEDOUT, r)
        self.assertIn("no answer within 1500 ms", r["err"])

    def test_garbage_body_is_returned_and_rejected_by_the_parser(self):
        self.fk.set_mode("garbage")
        r = self.client().get()
        self.assertEqual((r["rc"], r["status"], r["pods"]), (0, 200, -1), r)
        self.assertEqual(r["len"], len(b"<html>this is not a PodList</html>"))
        self.assertIn("podlist: not JSON", r["err"])

    def test_server_error(self):
        self.fk.set_mode("500")
        r = self.client().get()
        self.assertEqual((r["rc"], r["status"]), (-errno.EIO, 500), r)
        self.assertIn("HTTP 500", r["err"])

    def test_connection_refused(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # bound then closed: nothing listens there
        r = self.client(url="https://127.0.0.1:%d" % port).get()
        self.assertEqual((r["rc"], r["status"]), (-errno.ECONNREFUSED, 0), r)
        self.assertIn("127.0.0.1", r["err"])

    def test_dropped_during_handshake_is_a_connection_failure(self):
        # What a client sees while a kubelet restarts: the TCP connection is
        # taken (it sat in the listen queue) and then reset before the TLS
        # handshake ends. It is said as the refusal that follows it (one
        # state, one log line in the agent), not as a wrong port.
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(4)

        def reset_each():
            while True:
                try:
                    c, _ = s.accept()
                except OSError:
                    return
                c.recv(16)  # the start of the ClientHello
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.close()  # with linger 0: a reset
        t = threading.Thread(target=reset_each, daemon=True)
        t.start()
        try:
            r = self.client(url="https://127.0.0.1:%d" % s.getsockname()[1]).get()
        finally:
            s.shutdown(socket.SHUT_RDWR)
            s.close()
        self.assertEqual((r["rc"], r["status"]), (-errno.ECONNREFUSED, 0), r)
        self.assertIn("dropped during the TLS handshake", r["err"])
        self.assertIn("is the kubelet running", r["err"])

    def test_pods_file_reread(self):
        c = self.client()
        self.get_ok(c)
        self.fk.pods_file = os.path.join(self.tmp, "pods.json")
        self.fk.set_pods({"kind": "PodList", "apiVersion": "v1", "items": []})
        self.assert_ok(c.get(), pods=0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
