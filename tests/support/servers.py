"""Real servers from Debian packages, started on loopback for a test and
stopped after: ClickHouse (HTTP interface) and Prometheus."""
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class HttpSink:
    """A loopback HTTP server for kmon-forward's --output: every POST's
    headers and body go to on_post(headers, body), which returns the answer
    (status, body bytes); nothing is logged. http11: keep-alive connections
    (HTTP/1.1) rather than one per request (HTTP/1.0, the server's default)."""

    def __init__(self, on_post, http11=False):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if http11 else "HTTP/1.0"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, answer = on_post(self.headers, body)
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                if answer:
                    self.wfile.write(answer)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/ingest" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def http_get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def promtool_problems(body):
    """What is wrong with a /metrics body: '' when `promtool check metrics`
    parses and lints it (names, help, suffixes) and every family's samples
    stand together right under its own TYPE line, which the text format
    requires and promtool 2.42 does not check."""
    r = subprocess.run(["promtool", "check", "metrics"], input=body, text=True,
                       capture_output=True)
    if r.returncode != 0:
        return "promtool exit %d: %s%s" % (r.returncode, r.stdout, r.stderr)
    typed, current = set(), None
    for n, line in enumerate(body.splitlines(), 1):
        if line.startswith("# TYPE "):
            current = line.split()[2]
            if current in typed:
                return "line %d: second TYPE for %s" % (n, current)
            typed.add(current)
        elif line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            if current not in (name, family):
                return "line %d: sample of %s under the family %s: %r" % (n, name, current,
                                                                             line)
    return ""


class ClickHouse:
    """clickhouse-server with its data in a temporary directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="kmon-ch-")
        self.port = free_port()
        self.tcp = free_port()
        self.proc = None
        with open(os.path.join(self.dir, "config.xml"), "w") as f:
            f.write("""<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/err.log</errorlog></logger>
  <http_port>{p}</http_port><tcp_port>{t}</tcp_port><listen_host>127.0.0.1</listen_host>
  <path>{d}/data/</path><tmp_path>{d}/tmp/</tmp_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile><default_database>default</default_database>
  <mark_cache_size>5368709</mark_cache_size>
</yandex>
""".format(d=self.dir, p=self.port, t=self.tcp))
        with open(os.path.join(self.dir, "users.xml"), "w") as f:
            f.write("""<?xml version="1.0"?>
<yandex><profiles><default></default></profiles>
<users><default><password></password><networks><ip>127.0.0.1</ip></networks>
<profile>default</profile><quota>default</quota></default></users>
<quotas><default></default></quotas></yandex>
""")

    def start(self):
        self.proc = subprocess.Popen(
            ["clickhouse-server", "--config-file=" + os.path.join(self.dir, "config.xml")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.dir)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.query("SELECT 1").strip() == "1":
                    return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("clickhouse-server exited: " + self.log())
            time.sleep(0.2)
        raise RuntimeError("clickhouse-server did not start: " + self.log())

    def log(self):
        try:
            with open(os.path.join(self.dir, "err.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self):
        """Stops the server and deletes its data: a benchmark round leaves
        gigabytes (stop() alone keeps them, for a restart)."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def query(self, q):
        req = urllib.request.Request("http://127.0.0.1:%d/" % self.port, data=q.encode())
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.read().decode()

    def insert_url(self, table):
        return ("http://127.0.0.1:%d/?" % self.port) + urllib.parse.urlencode(
            {"query": "INSERT INTO %s FORMAT JSONEachRow" % table,
             "input_format_skip_unknown_fields": "1"})


class Prometheus:
    """prometheus scraping the given targets every second."""

    def __init__(self, jobs):
        self.dir = tempfile.mkdtemp(prefix="kmon-prom-")
        self.port = free_port()
        cfg = ["global:", "  scrape_interval: 1s", "  scrape_timeout: 1s", "scrape_configs:"]
        for name, target in jobs.items():
            cfg += ["  - job_name: %s" % name, "    static_configs:",
                    "      - targets: ['%s']" % target]
        with open(os.path.join(self.dir, "prometheus.yml"), "w") as f:
            f.write("\n".join(cfg) + "\n")
        self.proc = None

    def start(self):
        self.log_f = open(os.path.join(self.dir, "log"), "wb")
        self.proc = subprocess.Popen(
            ["prometheus", "--config.file=" + os.path.join(self.dir, "prometheus.yml"),
             "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port],
            stdout=self.log_f, stderr=self.log_f)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                http_get("http://127.0.0.1:%d/-/ready" % self.port)
                return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("prometheus did not start")

    def query(self, q):
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (self.port,
                                                       urllib.parse.urlencode({"query": q}))
        r = json.loads(http_get(url))
        if r.get("status") != "success":
            raise RuntimeError("query %s failed: %s" % (q, r))
        return r["data"]["result"]

    def targets(self):
        return json.loads(http_get("http://127.0.0.1:%d/api/v1/targets" % self.port))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        if self.proc:
            self.log_f.close()
        self.proc = None

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class ZooKeeper:
    """Debian's zookeeper (3.8), one standalone server on loopback with its
    data in a temporary directory: what replicated ClickHouse tables and
    ON CLUSTER DDL coordinate through."""

    CLASSPATH = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="kmon-zk-")
        self.port = free_port()
        self.proc = None
        with open(os.path.join(self.dir, "zoo.cfg"), "w") as f:
            # No admin web server (it would take port 8080 of the machine).
            f.write("tickTime=2000\ndataDir={d}/data\nclientPort={p}\n"
                    "clientPortAddress=127.0.0.1\nadmin.enableServer=false\n"
                    "4lw.commands.whitelist=ruok,srvr\n".format(d=self.dir, p=self.port))

    def start(self):
        self.log_f = open(os.path.join(self.dir, "zookeeper.log"), "wb")
        self.proc = subprocess.Popen(
            ["java", "-Xmx256m", "-cp", self.CLASSPATH,
             "org.apache.zookeeper.server.ZooKeeperServerMain",
             os.path.join(self.dir, "zoo.cfg")],
            stdout=self.log_f, stderr=subprocess.STDOUT, cwd=self.dir)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                # "imok" only says the process runs; srvr says "Mode:" once
                # it serves requests (a client connecting earlier is turned
                # away, and clickhouse-server 18.16 then crashes on its
                # first ZooKeeper call instead of retrying).
                with socket.create_connection(("127.0.0.1", self.port), 2) as s:
                    s.sendall(b"srvr")
                    out = b""
                    while True:
                        got = s.recv(4096)
                        if not got:
                            break
                        out += got
                    if b"Mode:" in out:
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("zookeeper exited: " + self.log())
            time.sleep(0.2)
        raise RuntimeError("zookeeper did not start: " + self.log())

    def log(self):
        try:
            with open(os.path.join(self.dir, "zookeeper.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log_f.close()
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
