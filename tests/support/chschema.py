"""kmon's ClickHouse schema (charts/clickhouse/) applied to a test server,
through the one documented compatibility step when the server is the old
clickhouse-server from Debian (18.16): charts/clickhouse/compat-18.16.sed and
the setting allow_experimental_low_cardinality_type=1."""
import os
import subprocess
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
CHART = os.path.normpath(os.path.join(HERE, "..", "..", "charts", "clickhouse"))
COMPAT = os.path.join(CHART, "compat-18.16.sed")


def server_version(ch):
    return tuple(int(x) for x in ch.query("SELECT version()").strip().split(".")[:2])


def needs_compat(ch):
    # DateTime64 and TTL arrived in 20.1 and 19.6.
    return server_version(ch) < (20, 1)


def statements(text):
    """The SQL statements of a file: split at a ';' ending a line, comments
    and blank lines dropped (the HTTP interface takes one statement)."""
    out, cur = [], []
    for line in text.splitlines():
        code = line.split("--", 1)[0].rstrip() if line.lstrip().startswith("--") else line
        if not code.strip():
            continue
        cur.append(code)
        if code.rstrip().endswith(";"):
            out.append("\n".join(cur).rstrip().rstrip(";").strip())
            cur = []
    if "".join(cur).strip():
        out.append("\n".join(cur).strip())
    return [s for s in out if s]


def schema_text(ch, name="schema.sql", subst=None):
    path = os.path.join(CHART, name)
    if needs_compat(ch):
        text = subprocess.run(["sed", "-f", COMPAT, path], check=True,
                              capture_output=True, text=True).stdout
    else:
        with open(path) as f:
            text = f.read()
    for k, v in (subst or {}).items():
        text = text.replace("${%s}" % k, v)
    return text


def ddl_url(ch, port=None):
    return ("http://127.0.0.1:%d/?" % (port or ch.port)) + urllib.parse.urlencode(
        {"allow_experimental_low_cardinality_type": "1"})


def apply(ch, name="schema.sql", subst=None, port=None):
    for stmt in statements(schema_text(ch, name, subst)):
        req = urllib.request.Request(ddl_url(ch, port), data=stmt.encode())
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()


def queries():
    with open(os.path.join(CHART, "queries.sql")) as f:
        return statements(f.read())


def insert_url(ch, port=None):
    """What the chart's forward.clickhouse values build."""
    return ("http://127.0.0.1:%d/?" % (port or ch.port)) + urllib.parse.urlencode(
        {"query": "INSERT INTO kmon.events FORMAT JSONEachRow",
         "input_format_skip_unknown_fields": "1",
         "date_time_input_format": "best_effort"})
