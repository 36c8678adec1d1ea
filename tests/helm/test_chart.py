#!/usr/bin/env python3
"""Checks on charts/kmon as a user (or a cluster admin) would review it.

    python3 tests/helm/test_chart.py [CHART_DIR]     (helm from $HELM or PATH)

For the default values and for each toggle on and off: `helm lint --strict`,
`helm template`, then assertions on the rendered objects: consumers hold no
privilege, the agent holds exactly the capabilities in values, probes hit the
paths the agent serves on its own --health-addr port (apart from
--metrics-addr), the socket volume is where every --socket points, RBAC
grants only get on nodes/pods, and nodes/proxy only when rbac.nodesProxy is
set.
"""
import os
import shutil
import subprocess
import sys
import unittest
import urllib.parse

import yaml

CHART = os.path.abspath(sys.argv.pop(1) if len(sys.argv) > 1 else
                        os.path.join(os.path.dirname(__file__), "..", "..", "charts", "kmon"))
HELM = os.environ.get("HELM") or shutil.which("helm")

AGENT = "kmon-agent"
CONSUMERS = ("kmon-forward", "kmon-aggregate")
TOGGLES = ("forward.enabled", "aggregate.enabled", "socket.hostPath.enabled",
           "serviceMonitor.enabled", "agent.privileged", "rbac.nodesProxy")


def scenarios():
    """name -> list of --set strings: defaults, each toggle alone both ways, all on, all off."""
    out = {"defaults": []}
    for t in TOGGLES:
        for v in ("true", "false"):
            out[f"{t}={v}"] = [f"{t}={v}"]
    out["all-on"] = [f"{t}=true" for t in TOGGLES]
    out["all-off"] = [f"{t}=false" for t in TOGGLES]
    return out


def load_values():
    with open(os.path.join(CHART, "values.yaml"), encoding="utf-8") as f:
        return yaml.safe_load(f)


def effective(values, sets):
    """values.yaml with the scenario's boolean --set applied."""
    v = yaml.safe_load(yaml.safe_dump(values))
    for s in sets:
        key, val = s.split("=", 1)
        node = v
        parts = key.split(".")
        for p in parts[:-1]:
            node = node[p]
        node[parts[-1]] = yaml.safe_load(val)
    return v


def helm(*args):
    return subprocess.run([HELM, *args], capture_output=True, text=True, check=False)


def set_args(sets):
    out = []
    for s in sets:
        out += ["--set", s]
    return out


def parse_args(argv):
    """--opt=value / --opt value / --flag -> {opt: [values]} (repeatable options keep all)."""
    opts = {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if not a.startswith("--"):
            raise AssertionError(f"unexpected positional argument {a!r} in {argv}")
        if "=" in a:
            k, v = a[2:].split("=", 1)
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            k, v = a[2:], argv[i + 1]
            i += 1
        else:
            k, v = a[2:], True
        opts.setdefault(k, []).append(v)
        i += 1
    return opts


def one(opts, key, where):
    vals = opts.get(key)
    if not vals or len(vals) != 1:
        raise AssertionError(f"{where}: expected exactly one --{key}, got {vals}")
    return vals[0]


def leaf_keys(d, prefix=""):
    for k, v in d.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            yield from leaf_keys(v, path + ".")
        else:
            yield path


class Rendered:
    def __init__(self, docs):
        self.docs = [d for d in docs if d]

    def kind(self, kind):
        return [d for d in self.docs if d.get("kind") == kind]

    def only(self, kind):
        objs = self.kind(kind)
        if len(objs) != 1:
            raise AssertionError(f"expected one {kind}, rendered {len(objs)}")
        return objs[0]


class ChartTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        if not HELM or not os.access(HELM, os.X_OK):
            raise AssertionError("helm not found: put it on PATH or set HELM (.ci/deps --tests installs it)")
        cls.values = load_values()
        cls.rendered = {}
        cls.lint_failures = {}
        for name, sets in scenarios().items():
            lint = helm("lint", "--strict", CHART, *set_args(sets))
            if lint.returncode != 0:
                cls.lint_failures[name] = lint.stdout + lint.stderr
            tpl = helm("template", "kmon", CHART, "--namespace", "kmon-system", *set_args(sets))
            if tpl.returncode != 0:
                raise AssertionError(f"helm template failed for {name}: {tpl.stderr.strip()}")
            cls.rendered[name] = (sets, Rendered(yaml.safe_load_all(tpl.stdout)))

    def each(self):
        """(scenario, effective values, rendered); messages name the scenario."""
        return [(name, effective(self.values, sets), r) for name, (sets, r) in self.rendered.items()]

    @staticmethod
    def pod(r):
        return r.only("DaemonSet")["spec"]["template"]["spec"]

    @staticmethod
    def containers(r):
        return {c["name"]: c for c in ChartTest.pod(r)["containers"]}

    def test_lint_strict(self):
        self.assertEqual(self.lint_failures, {},
                         "helm lint --strict failed for these value sets")

    def test_expected_containers(self):
        for name, v, r in self.each():
            want = {AGENT}
            if v["forward"]["enabled"]:
                want.add("kmon-forward")
            if v["aggregate"]["enabled"]:
                want.add("kmon-aggregate")
            self.assertEqual(set(self.containers(r)), want,
                             f"{name}: containers do not follow forward/aggregate.enabled")

    def test_consumers_have_no_privilege(self):
        seen = 0
        for name, v, r in self.each():
            pod = self.pod(r)
            for cname, c in self.containers(r).items():
                if cname == AGENT:
                    continue
                self.assertIn(cname, CONSUMERS, f"{name}: unknown container {cname}")
                seen += 1
                sc = c.get("securityContext") or {}
                caps = sc.get("capabilities") or {}
                self.assertEqual(caps.get("drop"), ["ALL"],
                                 f"{name}/{cname}: capabilities.drop must be [ALL], is {caps.get('drop')}")
                self.assertFalse(caps.get("add"),
                                 f"{name}/{cname}: consumers must add no capability, add={caps.get('add')}")
                self.assertIs(sc.get("runAsNonRoot"), True, f"{name}/{cname}: runAsNonRoot is not true")
                self.assertNotEqual(sc.get("runAsUser", 0), 0, f"{name}/{cname}: runAsUser is root or unset")
                self.assertIs(sc.get("readOnlyRootFilesystem"), True,
                              f"{name}/{cname}: readOnlyRootFilesystem is not true")
                self.assertIs(sc.get("allowPrivilegeEscalation"), False,
                              f"{name}/{cname}: allowPrivilegeEscalation is not false")
                self.assertIsNot(sc.get("privileged"), True, f"{name}/{cname}: consumer is privileged")
                mounts = {m["name"] for m in c.get("volumeMounts", [])}
                self.assertEqual(mounts - {"socket"} - {m["name"] for m in v["forward"]["extraVolumeMounts"]},
                                 set(), f"{name}/{cname}: consumer mounts more than the socket: {mounts}")
                for p in c.get("ports", []):
                    self.assertNotIn("hostPort", p, f"{name}/{cname}: consumer uses a hostPort")
            self.assertIsNot(pod.get("automountServiceAccountToken"), True,
                             f"{name}: pod-wide token mount would hand the token to the consumers")
        self.assertGreater(seen, 0, "no scenario rendered a consumer container")

    def test_agent_capabilities_exactly_values(self):
        for name, v, r in self.each():
            sc = self.containers(r)[AGENT]["securityContext"]
            caps = sc.get("capabilities") or {}
            self.assertEqual(caps.get("drop"), ["ALL"], f"{name}: agent must drop ALL before adding")
            self.assertEqual(caps.get("add"), v["agent"]["capabilities"],
                             f"{name}: agent capabilities.add differs from values agent.capabilities")
            self.assertEqual(sc.get("privileged", False), v["agent"]["privileged"],
                             f"{name}: agent privileged={sc.get('privileged')} but agent.privileged="
                             f"{v['agent']['privileged']}")
            if not v["agent"]["privileged"]:
                self.assertIs(sc.get("allowPrivilegeEscalation"), False,
                              f"{name}: unprivileged agent allows privilege escalation")
            self.assertIs(sc.get("readOnlyRootFilesystem"), True, f"{name}: agent root filesystem is writable")

    def test_agent_becomes_run_as_user_that_reads_its_token(self):
        """--run-as is agent.runAsUser:socket.gid, the agent can switch (SETUID,
        SETGID, SETPCAP granted) and its group may read the token (fsGroup,
        mode 0440); root and the consumers' uid are refused."""
        for name, v, r in self.each():
            pod = self.pod(r)
            c = self.containers(r)[AGENT]
            gid = v["socket"]["gid"]
            self.assertEqual(one(parse_args(c["args"]), "run-as", f"{name}/agent"),
                             f"{v['agent']['runAsUser']}:{gid}")
            for cap in ("SETUID", "SETGID", "SETPCAP"):
                self.assertIn(cap, c["securityContext"]["capabilities"]["add"], name)
            self.assertEqual((pod.get("securityContext") or {}).get("fsGroup"), gid,
                             f"{name}: the token is not given the agent's group")
            vols = {vol["name"]: vol for vol in pod["volumes"]}
            self.assertEqual(vols["kube-api-access"]["projected"]["defaultMode"], 0o440, name)
        for bad in ("0", "65534"):
            res = helm("template", "kmon", CHART, "--set", f"agent.runAsUser={bad}")
            self.assertNotEqual(res.returncode, 0, f"agent.runAsUser={bad} accepted")
            self.assertIn("runAsUser", res.stderr)

    def test_agent_custom_capability_list(self):
        res = helm("template", "kmon", CHART, "--set", "agent.capabilities={BPF,PERFMON}")
        self.assertEqual(res.returncode, 0, f"template with a custom capability list failed: {res.stderr}")
        r = Rendered(yaml.safe_load_all(res.stdout))
        add = self.containers(r)[AGENT]["securityContext"]["capabilities"]["add"]
        self.assertEqual(add, ["BPF", "PERFMON"], "agent.capabilities={BPF,PERFMON} not rendered verbatim")

    def test_probes_on_their_own_listener(self):
        """The kubelet probes --health-addr, a listener apart from
        --metrics-addr: scrapers and slow clients there cannot starve probes."""
        for name, _, r in self.each():
            c = self.containers(r)[AGENT]
            opts = parse_args(c["args"])
            addr = one(opts, "health-addr", f"{name}/agent")
            port = int(addr.rsplit(":", 1)[1])
            mport = int(one(opts, "metrics-addr", f"{name}/agent").rsplit(":", 1)[1])
            self.assertNotEqual(port, mport, f"{name}: probes share the metrics listener")
            named = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                get = (c.get(probe) or {}).get("httpGet")
                self.assertIsNotNone(get, f"{name}: agent has no {probe}.httpGet")
                self.assertEqual(get["path"], path, f"{name}: {probe} path {get['path']}, agent serves {path}")
                p = get["port"]
                resolved = named.get(p) if isinstance(p, str) else p
                self.assertEqual(resolved, port,
                                 f"{name}: {probe} port {p} -> {resolved}, --health-addr listens on {port}")

    def test_health_port_must_differ(self):
        for sets, words in ((["agent.healthPort=9470"], ("agent.healthPort", "agent.metricsPort")),
                            (["aggregate.enabled=true", "agent.healthPort=9471"],
                             ("agent.healthPort", "aggregate.port"))):
            with self.subTest(sets=sets):
                res = helm("template", "kmon", CHART, *set_args(sets))
                self.assertNotEqual(res.returncode, 0, f"{sets} rendered two listeners on one port")
                for w in words:
                    self.assertIn(w, res.stderr, f"{sets}: error does not name {w}: {res.stderr.strip()}")

    def test_socket_mounted_where_socket_args_point(self):
        for name, v, r in self.each():
            pod = self.pod(r)
            vols = {vol["name"]: vol for vol in pod["volumes"]}
            group = None
            for cname, c in self.containers(r).items():
                opts = parse_args(c["args"])
                sock = one(opts, "socket", f"{name}/{cname}")
                sdir = os.path.dirname(sock)
                mounts = [m for m in c.get("volumeMounts", []) if m["mountPath"].rstrip("/") == sdir]
                self.assertEqual(len(mounts), 1,
                                 f"{name}/{cname}: --socket {sock} but no single mount at {sdir}")
                m = mounts[0]
                self.assertEqual(m["name"], "socket", f"{name}/{cname}: {sdir} is not the socket volume")
                self.assertFalse(m.get("readOnly"), f"{name}/{cname}: socket mount is read-only")
                if cname == AGENT:
                    group = one(opts, "socket-group", f"{name}/agent")
                    self.assertEqual(one(opts, "socket-mode", f"{name}/agent"), "0660",
                                     f"{name}: socket mode must be 0660")
            vol = vols["socket"]
            if v["socket"]["hostPath"]["enabled"]:
                self.assertEqual((vol.get("hostPath") or {}).get("path"), v["socket"]["hostPath"]["path"],
                                 f"{name}: socket.hostPath.enabled but the volume is {vol}")
            else:
                self.assertIn("emptyDir", vol, f"{name}: socket volume should be a pod-private emptyDir: {vol}")
            groups = [str(g) for g in (pod.get("securityContext") or {}).get("supplementalGroups", [])]
            self.assertIn(str(group), groups,
                          f"{name}: --socket-group {group} is not a supplemental group of the pod {groups}")

    def test_host_access_and_node_env(self):
        for name, _, r in self.each():
            pod = self.pod(r)
            c = self.containers(r)[AGENT]
            self.assertIs(pod.get("hostPID"), True, f"{name}: hostPID is not set")
            self.assertFalse(pod.get("hostNetwork"), f"{name}: hostNetwork is not needed")
            vols = {vol["name"]: vol for vol in pod["volumes"]}
            mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
            for host, path in (("/proc", "/host/proc"), ("/sys", "/sys")):
                m = mounts.get(path)
                self.assertIsNotNone(m, f"{name}: agent has nothing mounted at {path}")
                self.assertIs(m.get("readOnly"), True, f"{name}: {path} is not mounted read-only")
                self.assertEqual(vols[m["name"]].get("hostPath", {}).get("path"), host,
                                 f"{name}: {path} is not the host's {host}")
            self.assertEqual(one(parse_args(c["args"]), "proc-root", f"{name}/agent"), "/host/proc",
                             f"{name}: --proc-root does not point at the host /proc mount")
            env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in c["env"]}
            self.assertEqual(env.get("NODE_NAME"), "spec.nodeName", f"{name}: NODE_NAME not from downward API")
            self.assertEqual(env.get("NODE_IP"), "status.hostIP", f"{name}: NODE_IP not from downward API")
            tol = pod.get("tolerations") or []
            self.assertIn({"operator": "Exists"}, tol, f"{name}: agent does not tolerate every taint: {tol}")
            self.assertEqual(pod.get("priorityClassName"), "system-node-critical",
                             f"{name}: priorityClassName default changed")
            ds = r.only("DaemonSet")["spec"]["updateStrategy"]
            self.assertEqual(ds.get("type"), "RollingUpdate", f"{name}: update strategy {ds}")
            self.assertIn("maxUnavailable", ds.get("rollingUpdate", {}), f"{name}: no maxUnavailable")
            self.assertIn("resources", c, f"{name}: agent has no resources")
            token = [m for m in c["volumeMounts"]
                     if m["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount"]
            self.assertEqual(len(token), 1, f"{name}: agent has no service-account token for the kubelet")

    def test_rbac_exactly_listed_rules(self):
        for name, v, r in self.each():
            resources = ["nodes/pods"] + (["nodes/proxy"] if v["rbac"]["nodesProxy"] else [])
            want = [{"apiGroups": [""], "resources": resources, "verbs": ["get"]}]
            self.assertEqual(r.kind("Role"), [], f"{name}: chart renders a namespaced Role")
            self.assertEqual(r.kind("RoleBinding"), [], f"{name}: chart renders a RoleBinding")
            role = r.only("ClusterRole")
            self.assertEqual(role["rules"], want, f"{name}: ClusterRole rules differ from the listed ones")
            flat = yaml.safe_dump(role["rules"])
            self.assertNotIn("*", flat, f"{name}: ClusterRole has a wildcard")
            binding = r.only("ClusterRoleBinding")
            self.assertEqual(binding["roleRef"]["name"], role["metadata"]["name"],
                             f"{name}: binding refers to another role")
            sa = self.pod(r)["serviceAccountName"]
            self.assertEqual(binding["subjects"],
                             [{"kind": "ServiceAccount", "name": sa, "namespace": "kmon-system"}],
                             f"{name}: binding subjects are not exactly the agent's ServiceAccount")
            self.assertEqual(r.only("ServiceAccount")["metadata"]["name"], sa,
                             f"{name}: DaemonSet uses a ServiceAccount the chart does not create")

    def test_nodes_proxy_only_on_request(self):
        """nodes/proxy is exec-equivalent on every kubelet: a default install
        (and any install not asking for it) must not grant it."""
        self.assertIs(self.values["rbac"]["nodesProxy"], False, "rbac.nodesProxy defaults to on")
        for name, v, r in self.each():
            flat = yaml.safe_dump(r.only("ClusterRole")["rules"])
            if v["rbac"]["nodesProxy"]:
                self.assertIn("nodes/proxy", flat, f"{name}: rbac.nodesProxy=true but not granted")
            else:
                self.assertNotIn("nodes/proxy", flat, f"{name}: nodes/proxy granted without rbac.nodesProxy")
                self.assertNotIn("nodes/*", flat, f"{name}: a nodes/* rule grants nodes/proxy")
        res = helm("template", "kmon", CHART, "--set", "rbac.nodesProxy=true")
        self.assertEqual(res.returncode, 0, res.stderr)
        role = Rendered(yaml.safe_load_all(res.stdout)).only("ClusterRole")
        self.assertEqual(role["rules"], [{"apiGroups": [""], "resources": ["nodes/pods", "nodes/proxy"],
                                          "verbs": ["get"]}])
        with open(os.path.join(CHART, "README.md"), encoding="utf-8") as f:
            self.assertIn("exec-equivalent", f.read(), "README.md does not state the nodes/proxy risk")

    def test_service_and_servicemonitor(self):
        for name, v, r in self.each():
            svc = r.only("Service")
            ports = {p["name"]: p for p in svc["spec"]["ports"]}
            want = {"metrics"} | ({"aggregate"} if v["aggregate"]["enabled"] else set())
            self.assertEqual(set(ports), want, f"{name}: Service ports {set(ports)}, expected {want}")
            named = {}
            for c in self.containers(r).values():
                named.update({p["name"]: p["containerPort"] for p in c.get("ports", [])})
            for pname, p in ports.items():
                self.assertIn(p["targetPort"], named, f"{name}: Service port {pname} targets no container port")
            if v["aggregate"]["enabled"]:
                agg = self.containers(r)["kmon-aggregate"]
                listen = one(parse_args(agg["args"]), "listen", f"{name}/aggregate")
                self.assertEqual(int(listen.rsplit(":", 1)[1]), named["aggregate"],
                                 f"{name}: aggregate --listen port differs from its containerPort")
            sms = r.kind("ServiceMonitor")
            if v["serviceMonitor"]["enabled"]:
                self.assertEqual(len(sms), 1, f"{name}: serviceMonitor.enabled but {len(sms)} rendered")
                eps = {e["port"] for e in sms[0]["spec"]["endpoints"]}
                self.assertEqual(eps, want, f"{name}: ServiceMonitor endpoints {eps}, expected {want}")
            else:
                self.assertEqual(sms, [], f"{name}: ServiceMonitor rendered while disabled")

    def test_schema_rejects_bad_values(self):
        bad = {
            "agent.scope=bogus": "agent.scope",
            "agent.metricsPort=0": "agent.metricsPort",
            "agent.healthPort=70000": "agent.healthPort",
            "rbac.nodesProxy=yes": "rbac.nodesProxy",
            "agent.capabilities[0]=ALL": "agent.capabilities",
            "agent.capabilities[0]=cap_bpf": "agent.capabilities",
            "agent.ringbufSize=4 megs": "agent.ringbufSize",
            "agent.events=memory_leak": "agent.events",
            "agent.logLevel=loud": "agent.logLevel",
            "forward.enabled=maybe": "forward.enabled",
            "socket.dir=relative": "socket.dir",
            "kubelet.url=ftp://x": "kubelet.url",
            "forward.otlp.endpoint=otel:4318": "forward.otlp.endpoint",
            "forward.otlp.encoding=xml": "forward.otlp.encoding",
            "forward.otlp.compression=brotli": "forward.otlp.compression",
            "forward.otlp.headers[0]=no colon": "forward.otlp.headers",
            "forward.otlp.secretHeaders[0].header=Authorization": "forward.otlp.secretHeaders",
            "forward.otlp.secretHeaders[0].header=Bad: x": "forward.otlp.secretHeaders",
            "agnet.scope=all": "agnet",
        }
        for s, key in bad.items():
            with self.subTest(set=s):
                res = helm("template", "kmon", CHART, "--set", s)
                self.assertNotEqual(res.returncode, 0, f"--set {s} was accepted; the schema must reject it")
                self.assertIn(key, res.stderr, f"--set {s}: error does not name {key}: {res.stderr.strip()}")

    def test_user_strings_render_as_one_argument(self):
        res = helm("template", "kmon", CHART, "--set", "forward.headers[0]=Authorization: Bearer a: b",
                   "--set", "forward.namespaces={default,kube-system}",
                   "--set", "forward.output=https://collector:8443/in?x=1")
        self.assertEqual(res.returncode, 0, f"template failed: {res.stderr}")
        c = self.containers(Rendered(yaml.safe_load_all(res.stdout)))["kmon-forward"]
        opts = parse_args(c["args"])
        self.assertEqual(opts.get("header"), ["Authorization: Bearer a: b"], "header not passed verbatim")
        self.assertEqual(opts.get("namespace"), ["default", "kube-system"], "namespaces not one flag each")
        self.assertEqual(opts.get("output"), ["https://collector:8443/in?x=1"], "output URL not verbatim")

    def test_file_output_rotates_on_a_node_directory(self):
        res = helm("template", "kmon", CHART, "--set", "forward.output=/var/log/kmon/events.jsonl",
                   "--set", "forward.file.rotateSize=100M", "--set", "forward.file.rotateKeep=3",
                   "--set", "forward.file.rotateGzip=true",
                   "--set", "forward.file.hostPath=/var/lib/kmon-events")
        self.assertEqual(res.returncode, 0, f"template failed: {res.stderr}")
        r = Rendered(yaml.safe_load_all(res.stdout))
        c = self.containers(r)["kmon-forward"]
        opts = parse_args(c["args"])
        self.assertEqual(opts.get("rotate-size"), ["100M"])
        self.assertEqual(opts.get("rotate-keep"), ["3"])
        self.assertEqual(opts.get("rotate-gzip"), [True])
        mount = [m for m in c["volumeMounts"] if m["name"] == "forward-files"]
        self.assertEqual([m["mountPath"] for m in mount], ["/var/log/kmon"])
        self.assertTrue(one(opts, "output", "forward").startswith(mount[0]["mountPath"] + "/"))
        vol = [v for v in self.pod(r)["volumes"] if v["name"] == "forward-files"]
        self.assertEqual(vol, [{"name": "forward-files",
                                "hostPath": {"path": "/var/lib/kmon-events",
                                             "type": "DirectoryOrCreate"}}])
        # The defaults: no rotation flag, no node directory.
        d = self.containers(self.rendered["defaults"][1])["kmon-forward"]
        self.assertFalse({"rotate-size", "rotate-keep", "rotate-gzip"} & set(parse_args(d["args"])))
        self.assertNotIn("forward-files", [v["name"] for v in
                                           self.pod(self.rendered["defaults"][1])["volumes"]])
        for bad, key in (("forward.file.rotateSize=10 megs", "rotateSize"),
                         ("forward.file.rotateKeep=0", "rotateKeep"),
                         ("forward.file.hostPath=relative/dir", "hostPath")):
            with self.subTest(set=bad):
                res = helm("template", "kmon", CHART, "--set", bad)
                self.assertNotEqual(res.returncode, 0, f"--set {bad} was accepted")
                self.assertIn(key, res.stderr)
    def test_otlp_endpoint_replaces_output_with_secret_headers_from_env(self):
        res = helm("template", "kmon", CHART, "--set", "forward.output=/var/log/kmon.jsonl",
                   "--set", "forward.otlp.endpoint=https://otel-collector.obs:4318",
                   "--set", "forward.otlp.encoding=json", "--set", "forward.otlp.compression=none",
                   "--set", "forward.otlp.headers[0]=X-Scope-OrgID: tenant-1",
                   "--set", "forward.otlp.secretHeaders[0].header=Authorization",
                   "--set", "forward.otlp.secretHeaders[0].secretName=otlp-auth",
                   "--set", "forward.otlp.secretHeaders[0].secretKey=authorization",
                   "--set", "forward.otlp.secretHeaders[1].header=X-Api-Key",
                   "--set", "forward.otlp.secretHeaders[1].secretName=otlp-auth",
                   "--set", "forward.otlp.secretHeaders[1].secretKey=api-key")
        self.assertEqual(res.returncode, 0, f"template failed: {res.stderr}")
        c = self.containers(Rendered(yaml.safe_load_all(res.stdout)))["kmon-forward"]
        opts = parse_args(c["args"])
        self.assertEqual(opts.get("output"), ["https://otel-collector.obs:4318"],
                         "the OTLP endpoint replaces forward.output")
        self.assertEqual(opts.get("format"), ["otlp-json"])
        self.assertEqual(opts.get("no-gzip"), [True])
        self.assertEqual(opts.get("header"), ["X-Scope-OrgID: tenant-1"])
        self.assertEqual(opts.get("header-env"), ["Authorization=KMON_OTLP_HEADER_0",
                                                  "X-Api-Key=KMON_OTLP_HEADER_1"])
        # The secret values reach the container through its environment only
        # (--header-env reads them there): never in the pod spec or on the
        # command line.
        self.assertEqual(c["env"], [
            {"name": "KMON_OTLP_HEADER_0",
             "valueFrom": {"secretKeyRef": {"name": "otlp-auth", "key": "authorization"}}},
            {"name": "KMON_OTLP_HEADER_1",
             "valueFrom": {"secretKeyRef": {"name": "otlp-auth", "key": "api-key"}}}])
        # Protobuf and gzip by default: no --format otlp-json, no --no-gzip.
        res = helm("template", "kmon", CHART, "--set", "forward.otlp.endpoint=http://otel:4318")
        self.assertEqual(res.returncode, 0, f"template failed: {res.stderr}")
        c = self.containers(Rendered(yaml.safe_load_all(res.stdout)))["kmon-forward"]
        opts = parse_args(c["args"])
        self.assertEqual(opts.get("output"), ["http://otel:4318"])
        self.assertEqual(opts.get("format"), ["otlp"])
        self.assertNotIn("no-gzip", opts)
        self.assertNotIn("env", c)
        # Without an endpoint, no OTLP flag at all.
        for name, v, r in self.each():
            if v["forward"]["enabled"]:
                opts = parse_args(self.containers(r)["kmon-forward"]["args"])
                self.assertNotIn("format", opts, name)
                self.assertEqual(opts.get("output"), [v["forward"]["output"]], name)

    def test_readme_documents_every_value(self):
        with open(os.path.join(CHART, "README.md"), encoding="utf-8") as f:
            readme = f.read()
        if "\n## Values\n" not in readme:
            self.fail("README.md has no '## Values' section")
        section = readme.split("\n## Values\n", 1)[1].split("\n## ", 1)[0]
        rows = {line.split("|")[1].strip().strip("`") for line in section.splitlines()
                if line.startswith("| `")}
        leaves = list(leaf_keys(self.values))
        # A row may document a whole object (agent.resources) instead of its leaves.
        missing = [k for k in leaves
                   if not any(k == row or k.startswith(row + ".") for row in rows)]
        self.assertEqual(missing, [], "README.md values table lacks these values")
        extra = sorted(row for row in rows
                       if not any(k == row or k.startswith(row + ".") for k in leaves))
        self.assertEqual(extra, [], "README.md documents values that values.yaml does not have")

    def test_clickhouse_password_from_secret(self):
        """forward.clickhouse: the insert URL built from url and table, the
        Secret's keys mapped to env variables of kmon-forward and named by
        --header-env, no secret material in the args."""
        def render(*sets):
            res = helm("template", "kmon", CHART, *set_args(sets))
            self.assertEqual(res.returncode, 0, f"template failed: {res.stderr}")
            return self.containers(Rendered(yaml.safe_load_all(res.stdout)))["kmon-forward"]

        c = render("forward.clickhouse.url=https://ch.db:8443/", "forward.clickhouse.existingSecret=ch-cred",
                   "forward.clickhouse.passwordKey=pw", "forward.clickhouse.table=obs.kmon_events")
        opts = parse_args(c["args"])
        url = urllib.parse.urlsplit(one(opts, "output", "forward"))
        self.assertEqual((url.scheme, url.netloc, url.path), ("https", "ch.db:8443", "/"))
        self.assertEqual(urllib.parse.parse_qs(url.query, strict_parsing=True), {
            "query": ["INSERT INTO obs.kmon_events FORMAT JSONEachRow"],
            "input_format_skip_unknown_fields": ["1"],
            "date_time_input_format": ["best_effort"]})
        self.assertEqual(opts.get("header"), ["X-ClickHouse-User: default"])
        self.assertEqual(opts.get("header-env"), ["X-ClickHouse-Key=KMON_CLICKHOUSE_PASSWORD"])
        self.assertEqual(c["env"], [{"name": "KMON_CLICKHOUSE_PASSWORD", "valueFrom": {
            "secretKeyRef": {"name": "ch-cred", "key": "pw"}}}])

        c = render("forward.clickhouse.url=http://ch.db:8123", "forward.clickhouse.existingSecret=ch-cred",
                   "forward.clickhouse.userKey=user")
        opts = parse_args(c["args"])
        self.assertNotIn("header", opts, "the user comes from the Secret, not the args")
        self.assertEqual(sorted(opts.get("header-env")), ["X-ClickHouse-Key=KMON_CLICKHOUSE_PASSWORD",
                                                          "X-ClickHouse-User=KMON_CLICKHOUSE_USER"])
        self.assertEqual({e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]}, {
            "KMON_CLICKHOUSE_PASSWORD": {"name": "ch-cred", "key": "password"},
            "KMON_CLICKHOUSE_USER": {"name": "ch-cred", "key": "user"}})
        self.assertTrue(one(opts, "output", "forward").startswith("http://ch.db:8123/?query="))

        # Without a Secret: no password at all, no env.
        c = render("forward.clickhouse.url=http://ch.db:8123")
        self.assertNotIn("env", c)
        self.assertNotIn("header-env", parse_args(c["args"]))
        # Off by default: the plain output.
        c = render()
        self.assertEqual(parse_args(c["args"]).get("output"), ["-"])
        self.assertNotIn("env", c)

        res = helm("template", "kmon", CHART, "--set", "forward.clickhouse.url=http://ch:8123",
                   "--set", "forward.output=/var/log/kmon.jsonl")
        self.assertNotEqual(res.returncode, 0, "url and output both set was accepted")
        self.assertIn("forward.clickhouse.url", res.stderr)
        for s, key in {"forward.clickhouse.url=http://ch:8123/?query=DROP": "forward.clickhouse.url",
                       "forward.clickhouse.url=ftp://ch": "forward.clickhouse.url",
                       "forward.clickhouse.table=kmon.events FORMAT CSV": "forward.clickhouse.table",
                       "forward.clickhouse.existingSecret=Bad_Name": "forward.clickhouse.existingSecret",
                       "forward.clickhouse.user=a b": "forward.clickhouse.user",
                       "forward.clickhouse.password=x": "forward.clickhouse"}.items():
            with self.subTest(set=s):
                res = helm("template", "kmon", CHART, "--set", s)
                self.assertNotEqual(res.returncode, 0, f"--set {s} was accepted")
                self.assertIn(key, res.stderr, f"--set {s}: error does not name {key}: {res.stderr.strip()}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
