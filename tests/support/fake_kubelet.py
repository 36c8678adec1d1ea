#!/usr/bin/env python3
"""A stand-in kubelet for tests: HTTPS on loopback with its own self-signed
CA, GET /pods serving a PodList file, bearer-token checking like the real one.

Behaviour can be switched while it runs by writing <dir>/mode:
  ok       200 with the PodList (gzip'd when the client accepts gzip)
  garbage  200 with a body that is not JSON
  slow     waits 30 s before answering
  401      rejects every token
  403      accepts the token, denies it (an old kubelet without nodes/proxy)
  500      server error
  huge     200 with a 50 MB body, streamed
  gzbomb   200 with a small gzip body that inflates to 50 MB (always gzip'd)
The pods file and the token file are re-read on every request, so tests can
change pods and rotate tokens without restarting it.

  fake_kubelet.py --dir DIR --pods FILE --token-file FILE [--port N]
writes DIR/ca.crt, DIR/port, and serves until killed.
"""
import argparse
import gzip
import http.server
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time


def make_cert(d, ip="127.0.0.1"):
    """A CA and a serving certificate for ip (and 127.0.0.1) signed by it, as
    a kubelet's serving certificate is signed by some CA the client must know."""
    ca_key, ca_crt = os.path.join(d, "ca.key"), os.path.join(d, "ca.crt")
    key, csr, crt = (os.path.join(d, n) for n in ("server.key", "server.csr", "server.crt"))
    ext = os.path.join(d, "ext.cnf")
    if os.path.exists(crt):
        return crt, key
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=fake-kubelet-ca", "-keyout", ca_key, "-out", ca_crt)
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", key, "-out", csr)
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,IP:%s,DNS:localhost\n" % ip)
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
        "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", crt)
    return crt, key


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.server.conns.add(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.conns.discard(self.connection)

    def log_message(self, fmt, *args):  # quiet
        self.server.requests.append((self.path, self.headers.get("Authorization", "")))

    def reply(self, code, body, ctype="application/json"):
        gz = "gzip" in self.headers.get("Accept-Encoding", "")
        if gz:
            body = gzip.compress(body)
            self.server.fake.gzip_replies += 1
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        if gz:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        fk = self.server.fake
        mode = fk.mode()
        try:
            with open(fk.token_file) as f:
                token = f.read().strip()
        except OSError:
            token = None
        auth = self.headers.get("Authorization", "")
        if mode == "401" or token is None or auth != "Bearer " + token:
            self.reply(401, b'{"kind":"Status","status":"Failure","reason":"Unauthorized",'
                            b'"code":401}')
            return
        if mode == "403":
            self.reply(403, b"Forbidden (user=system:serviceaccount:kmon-system:kmon, verb=get, "
                            b"resource=nodes, subresource(s)=[proxy])\n", "text/plain")
            return
        if self.path != "/pods" and self.path != "/pods/":
            self.reply(404, b"404 page not found\n", "text/plain")
            return
        if mode == "slow":
            time.sleep(30)
        if mode == "500":
            self.reply(500, b"internal error\n", "text/plain")
        elif mode == "garbage":
            self.reply(200, b"<html>this is not a PodList</html>")
        elif mode == "huge":
            chunk = b'{"kind":"PodList","items":[' + b'{"metadata":{"name":"x"}},' * 40000
            total = 50 * 1024 * 1024
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(total))
            self.end_headers()
            sent = 0
            try:
                while sent < total:
                    part = chunk[: total - sent]
                    self.wfile.write(part)
                    sent += len(part)
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif mode == "gzbomb":
            # A cap on the wire size alone would let this through.
            body = fk.gzbomb()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass
        else:
            with open(fk.pods_file, "rb") as f:
                self.reply(200, f.read())


class FakeKubelet:
    def __init__(self, d, pods_file, token_file, port=0, host="127.0.0.1"):
        self.dir, self.pods_file, self.token_file = d, pods_file, token_file
        self.host = host
        os.makedirs(d, exist_ok=True)
        self.crt, self.key = make_cert(d, host)
        self.ca = os.path.join(d, "ca.crt")
        self.port = port
        self.httpd = None
        self.thread = None
        self.requests = []
        self.gzip_replies = 0
        self._gzbomb = None

    def gzbomb(self):
        if self._gzbomb is None:
            raw = b'{"kind":"PodList","items":[' + b'{"metadata":{"name":"x"}},' * (2 << 20)
            self._gzbomb = gzip.compress(raw, compresslevel=6)
        return self._gzbomb

    def mode(self):
        try:
            with open(os.path.join(self.dir, "mode")) as f:
                return f.read().strip() or "ok"
        except OSError:
            return "ok"

    def set_mode(self, mode):
        with open(os.path.join(self.dir, "mode"), "w") as f:
            f.write(mode)

    def set_pods(self, podlist):
        tmp = self.pods_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(podlist, f)
        os.replace(tmp, self.pods_file)

    def start(self):
        self.httpd = http.server.ThreadingHTTPServer((self.host, self.port), Handler)
        self.httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.crt, self.key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.httpd.fake = self
        # Clients that hang up mid-answer (the agent refusing a huge body)
        # are expected here, not errors.
        self.httpd.handle_error = lambda request, address: None
        self.httpd.conns = set()
        self.httpd.requests = self.requests
        self.port = self.httpd.server_address[1]
        with open(os.path.join(self.dir, "port"), "w") as f:
            f.write(str(self.port))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def url(self):
        return "https://%s:%d" % (self.host, self.port)

    def agent_args(self):
        """The agent's options that point it at this kubelet."""
        return ["--kubelet-url", self.url(), "--kubelet-token-file", self.token_file,
                "--kubelet-ca-file", self.ca, "--kubelet-refresh", "1"]

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            # Keep-alive connections too: a stopped kubelet answers nothing.
            for c in list(self.httpd.conns):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.httpd = None


def serve_podlist(tmp, podlist, token="t0k3n"):
    """A started stand-in kubelet whose files live in tmp: the bearer token
    (tmp/token, fk.token_file), the pod list `podlist` (a PodList dict,
    tmp/pods.json) and its TLS material (tmp/kubelet)."""
    token_file = os.path.join(tmp, "token")
    with open(token_file, "w") as f:
        f.write(token + "\n")
    pods_file = os.path.join(tmp, "pods.json")
    with open(pods_file, "w") as f:
        json.dump(podlist, f)
    return FakeKubelet(os.path.join(tmp, "kubelet"), pods_file, token_file).start()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--pods", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    fk = FakeKubelet(a.dir, a.pods, a.token_file, a.port).start()
    print(fk.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fk.stop()


if __name__ == "__main__":
    sys.exit(main())
