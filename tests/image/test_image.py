#!/usr/bin/env python3
"""The image the chart runs, built from the repository's Dockerfile and run
the way the chart's DaemonSet says (issue 6).

1. `docker build` of the Dockerfile (dockerd is started here when it is not
   running). With no registry reachable, the `debian:12-slim` base is made
   with debootstrap (bookworm, minbase, from the Debian mirror apt is configured
   with) and `docker import`ed under that name.
2. `helm template` renders the chart with both sidecars on and this image.
3. The pod spec is run as a kubelet + containerd would run it: one runc
   container per container of the pod, from the image's file system, in a
   kubelet-style pod cgroup, in one pod network namespace (a veth to the
   host), with the pod's hostPID, volumes (the socket emptyDir as a 1 MiB
   tmpfs, /proc and /sys read-only, a kube-api-access directory), user,
   supplemental groups, capabilities, no_new_privs, read-only root, memory
   limit and containerd's RuntimeDefault seccomp profile for those
   capabilities (taken from `ctr --seccomp`).
4. A stand-in kubelet (TLS, token) listens on the node IP the downward API
   gives the agent; a workload pod runs busybox.

It checks what a user checks after `helm install`: the probes answer on the
pod IP, the forward sidecar prints events annotated with the workload's pod,
the aggregate sidecar's /metrics counts them, the agent is the chart's
non-root --run-as user with no capability (bounding set included) after
attach and still reads the fsGroup-owned token, and the consumers run as
nobody under seccomp.
"""
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
from fake_kubelet import FakeKubelet
from kubenode import Node, new_pod_uid
from waits import wait_for
from aptsrc import debian_mirror

HELM = os.environ.get("HELM", "helm")
DOCKER = os.environ.get("KMON_DOCKER", "docker")
IMAGE = "kmon:ci-test"
BASE = "debian:12-slim"
NODE_NAME = "kmon-node"
NET = ipaddress.ip_network("10.231.77.0/30")
NODE_IP, POD_IP = (str(h) for h in NET.hosts())


def run(*argv, timeout=600, check=True, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(argv), r.returncode,
                                                   (r.stderr or r.stdout)[-3000:]))
    return r


def http_get(url, timeout=3):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError:
        return None, ""


def status_fields(pid):
    out = {}
    for task in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/status" % (pid, task)) as f:
            for line in f:
                k, _, v = line.partition(":")
                out.setdefault(k, set()).add(v.strip())
    return out


def quantity_bytes(q):
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?", str(q))
    if not m:
        raise AssertionError("unexpected memory quantity %r" % q)
    return int(m.group(1)) << {None: 0, "Ki": 10, "Mi": 20, "Gi": 30}[m.group(2)]


class Dockerd:
    """The docker daemon: the running one, or one started (and stopped) here."""

    def __init__(self, tmp):
        self.proc = self.log = None
        if run(DOCKER, "info", check=False, timeout=30).returncode == 0:
            return
        log = self.log = open(os.path.join(tmp, "dockerd.log"), "w")
        # No bridge or iptables: builds use the host network.
        self.proc = subprocess.Popen(["dockerd", "--iptables=false", "--bridge=none"],
                                     stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: self.proc.poll() is not None or
                 run(DOCKER, "info", check=False, timeout=30).returncode == 0,
                 90, "dockerd to start")
        if self.proc.poll() is not None:
            with open(log.name) as f:
                raise AssertionError("dockerd exited: " + f.read()[-2000:])

    def containerd_socket(self):
        for s in ("/run/containerd/containerd.sock",
                  "/var/run/docker/containerd/containerd.sock"):
            if os.path.exists(s):
                return s
        raise AssertionError("no containerd socket (for the RuntimeDefault seccomp profile)")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log:
            self.log.close()


def ensure_base_image(tmp):
    if run(DOCKER, "image", "inspect", BASE, check=False).returncode == 0:
        return "present"
    if run(DOCKER, "pull", BASE, check=False, timeout=300).returncode == 0:
        return "pulled"
    root = os.path.join(tmp, "debootstrap")
    # The mirror this machine's apt uses: none is written into the test.
    run("debootstrap", "--variant=minbase", "bookworm", root, debian_mirror("bookworm"),
        timeout=900)
    tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
    imp = subprocess.run([DOCKER, "import", "-", BASE], stdin=tar.stdout,
                         capture_output=True, text=True, timeout=600)
    tar.stdout.close()
    if tar.wait() != 0 or imp.returncode != 0:
        raise AssertionError("docker import of the debootstrap root failed: " + imp.stderr)
    shutil.rmtree(root, ignore_errors=True)
    return "debootstrap bookworm minbase, docker import"


def runtime_default_seccomp(ctr_sock, rootfs, caps):
    """containerd's RuntimeDefault profile for this capability set: the
    profile grants bpf/perf_event_open only with CAP_BPF/CAP_PERFMON."""
    name = "kmon-seccomp-%d-%d" % (os.getpid(), len(caps))
    ctr = ["ctr", "-a", ctr_sock, "-n", "kmon-test"]
    run(*ctr, "containers", "create", "--rootfs", "--seccomp",
        *sum((["--cap-add", "CAP_" + c] for c in caps), []), rootfs, name)
    try:
        info = json.loads(run(*ctr, "containers", "info", name).stdout)
    finally:
        run(*ctr, "containers", "rm", name, check=False)
    return info["Spec"]["linux"]["seccomp"]


def host_bounding_caps():
    with open("/proc/self/status") as f:
        bnd = f.read().split("CapBnd:")[1].split()[0]
    names = run("capsh", "--decode=" + bnd).stdout.split("=", 1)[1].strip()
    return {c.upper()[4:] for c in names.split(",")}


class ImageTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="kmon-image-")
        os.chmod(self.tmp, 0o755)
        self.cleanups = []

    def tearDown(self):
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:  # keep cleaning up
                print("cleanup: %s" % e, file=sys.stderr)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def build_image(self):
        dockerd = Dockerd(self.tmp)
        self.cleanups.append(dockerd.stop)
        how = ensure_base_image(self.tmp)
        t0 = time.monotonic()
        env = dict(os.environ, DOCKER_BUILDKIT="0")
        r = run(DOCKER, "build", "--network", "host", "-t", IMAGE, REPO, env=env,
                timeout=1800, check=False)
        self.assertEqual(r.returncode, 0, "docker build failed:\n" + (r.stdout + r.stderr)[-4000:])
        cfg = json.loads(run(DOCKER, "image", "inspect", IMAGE).stdout)[0]
        print("image %s built in %.0f s (base: %s), %.1f MB" %
              (IMAGE, time.monotonic() - t0, how, cfg["Size"] / 1e6))
        # Export the file system, as a runtime's snapshotter would unpack it.
        rootfs = os.path.join(self.tmp, "rootfs")
        os.mkdir(rootfs)
        cid = run(DOCKER, "create", IMAGE).stdout.strip()
        try:
            exp = subprocess.Popen([DOCKER, "export", cid], stdout=subprocess.PIPE)
            run("tar", "-C", rootfs, "-x", stdin=exp.stdout)
            exp.stdout.close()
            self.assertEqual(exp.wait(), 0, "docker export failed")
        finally:
            run(DOCKER, "rm", cid, check=False)
        return dockerd, rootfs, cfg["Config"]

    def render(self):
        out = run(HELM, "template", "kmon", os.path.join(REPO, "charts", "kmon"),
                  "--namespace", "kmon-system",
                  "--set", "forward.enabled=true", "--set", "aggregate.enabled=true",
                  "--set", "image.repository=" + IMAGE.split(":")[0],
                  "--set", "image.tag=" + IMAGE.split(":")[1]).stdout
        ds = [d for d in yaml.safe_load_all(out) if d and d.get("kind") == "DaemonSet"]
        self.assertEqual(len(ds), 1)
        return ds[0]["spec"]["template"]["spec"]

    def pod_network(self):
        ns = "kmonpod%d" % os.getpid()
        host_if, pod_if = "kmh%d" % (os.getpid() % 100000), "kmp%d" % (os.getpid() % 100000)
        run("ip", "netns", "add", ns)
        self.cleanups.append(lambda: run("ip", "netns", "del", ns, check=False))
        run("ip", "link", "add", host_if, "type", "veth", "peer", "name", pod_if, "netns", ns)
        run("ip", "addr", "add", "%s/%d" % (NODE_IP, NET.prefixlen), "dev", host_if)
        run("ip", "link", "set", host_if, "up")
        run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "-n", ns, "addr", "add", "%s/%d" % (POD_IP, NET.prefixlen), "dev", pod_if)
        run("ip", "-n", ns, "link", "set", pod_if, "up")
        run("ip", "-n", ns, "route", "add", "default", "via", NODE_IP)
        return "/var/run/netns/" + ns

    def test_chart_pod_from_the_image(self):
        dockerd, rootfs, img_cfg = self.build_image()
        self.assertEqual(img_cfg["User"], "65534:65534", "the image should default to nobody")
        # kmon-top ships for `kubectl exec`: its libraries resolve in the image.
        r = run("chroot", rootfs, "/usr/local/bin/kmon-top", "--help", check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Usage: kmon-top", r.stdout)
        pod = self.render()
        names = [c["name"] for c in pod["containers"]]
        self.assertEqual(names, ["kmon-agent", "kmon-forward", "kmon-aggregate"])
        for c in pod["containers"]:
            self.assertEqual(c["image"], IMAGE, "the chart must run the image it was given")
        host_caps = host_bounding_caps()
        agent_caps = pod["containers"][0]["securityContext"]["capabilities"]["add"]
        absent = [c for c in agent_caps if c not in host_caps]
        if absent:
            # A runtime cannot grant what its own bounding set lacks.
            print("note: this host's bounding set lacks %s: the agent runs without it" % absent)

        node = Node()
        self.cleanups.append(node.close)
        netns = self.pod_network()

        # The emptyDir (medium: Memory) the sockets live in, as the kubelet makes it.
        vols = {v["name"]: v for v in pod["volumes"]}
        sock_dir = os.path.join(self.tmp, "volumes", "socket")
        os.makedirs(sock_dir)
        size = vols["socket"]["emptyDir"].get("sizeLimit", "1Mi")
        run("mount", "-t", "tmpfs", "-o", "mode=0777,size=%d" % quantity_bytes(size),
            "tmpfs", sock_dir)
        self.cleanups.append(lambda: run("umount", "-l", sock_dir, check=False))
        # The pod's fsGroup: the kubelet gives it the emptyDir and projected
        # volumes (setgid directory, group-owned files) and every container.
        fs_group = pod.get("securityContext", {}).get("fsGroup")
        if fs_group is not None:
            os.chown(sock_dir, 0, fs_group)
            os.chmod(sock_dir, 0o2777)
        # kube-api-access: token, the cluster CA (the stand-in kubelet's), namespace.
        token = "image-test-token"
        sa_dir = os.path.join(self.tmp, "volumes", "kube-api-access")
        os.makedirs(sa_dir)
        pods_file = os.path.join(self.tmp, "pods.json")
        with open(os.path.join(sa_dir, "token"), "w") as f:
            f.write(token)
        fk = FakeKubelet(os.path.join(self.tmp, "kubelet"), pods_file,
                         os.path.join(sa_dir, "token"), port=10250, host=NODE_IP)
        shutil.copy(fk.ca, os.path.join(sa_dir, "ca.crt"))
        with open(os.path.join(sa_dir, "namespace"), "w") as f:
            f.write("kmon-system")
        sa_mode = vols["kube-api-access"]["projected"].get("defaultMode", 0o644)
        for n in os.listdir(sa_dir):
            if fs_group is not None:
                os.chown(os.path.join(sa_dir, n), 0, fs_group)
            os.chmod(os.path.join(sa_dir, n), sa_mode)

        def host_path(volume):
            v = vols[volume]
            if "emptyDir" in v:
                return sock_dir
            if "hostPath" in v:
                return v["hostPath"]["path"]
            if volume == "kube-api-access":
                return sa_dir
            raise AssertionError("volume kind not handled by this test: %s" % v)

        ctr_sock = dockerd.containerd_socket()
        pod_uid = new_pod_uid()
        pod_sc = pod.get("securityContext", {})

        def customize_for(c):
            sc = c.get("securityContext", {})
            self.assertFalse(sc.get("privileged"), "%s is privileged" % c["name"])
            caps = [x for x in sc.get("capabilities", {}).get("add", []) if x in host_caps]
            self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
            env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
            for e in c.get("env", []):
                if "value" in e:
                    env.append("%s=%s" % (e["name"], e["value"]))
                else:
                    field = e["valueFrom"]["fieldRef"]["fieldPath"]
                    env.append("%s=%s" % (e["name"], {"spec.nodeName": NODE_NAME,
                                                     "status.hostIP": NODE_IP}[field]))
            user = img_cfg["User"].split(":")
            uid = sc.get("runAsUser", int(user[0]))
            gid = sc.get("runAsGroup", 0 if uid == 0 else int(user[1]))
            if sc.get("runAsNonRoot"):
                self.assertNotEqual(uid, 0, "%s: runAsNonRoot with uid 0" % c["name"])
            seccomp = None
            if sc.get("seccompProfile", {}).get("type") == "RuntimeDefault":
                seccomp = runtime_default_seccomp(ctr_sock, rootfs, caps)
            mounts_spec = c.get("volumeMounts", [])

            def customize(spec):
                p = spec["process"]
                p["env"] = env
                p["cwd"] = "/"
                groups = list(pod_sc.get("supplementalGroups", []))
                if fs_group is not None and fs_group not in groups:
                    groups.append(fs_group)
                p["user"] = {"uid": uid, "gid": gid, "additionalGids": groups}
                capset = ["CAP_" + x for x in caps]
                p["capabilities"] = {"bounding": capset, "effective": capset,
                                     "permitted": capset, "inheritable": [], "ambient": []}
                p["noNewPrivileges"] = sc.get("allowPrivilegeEscalation") is False
                p.pop("rlimits", None)
                spec["root"] = {"path": rootfs,
                                "readonly": bool(sc.get("readOnlyRootFilesystem"))}
                lin = spec["linux"]
                lin["namespaces"] = [n for n in lin["namespaces"]
                                     if not (n["type"] == "pid" and pod.get("hostPID"))]
                lin["namespaces"].append({"type": "network", "path": netns})
                if seccomp:
                    lin["seccomp"] = seccomp
                else:
                    lin.pop("seccomp", None)
                lim = c.get("resources", {}).get("limits", {}).get("memory")
                if lim:
                    lin.setdefault("resources", {})["memory"] = {"limit": quantity_bytes(lim)}
                dests = [m["mountPath"] for m in mounts_spec]
                # Volumes replace the runtime's own mounts at (or under) their
                # path, and the pod has no writable /tmp unless it asks.
                spec["mounts"] = [m for m in spec["mounts"]
                                  if m["destination"] != "/tmp" and not any(
                                      m["destination"] == d or m["destination"].startswith(d + "/")
                                      for d in dests)]
                for m in mounts_spec:
                    opts = ["rbind", "ro" if m.get("readOnly") else "rw"]
                    spec["mounts"].append({"destination": m["mountPath"], "type": "bind",
                                           "source": host_path(m["name"]), "options": opts})
            return customize

        # A workload pod, and the PodList the kubelet serves for this node.
        web = node.start_container(flavor="cgroupfs-containerd", pod_uid=new_pod_uid(),
                                   name="web", cmd=["/bin/sh", "-c",
                                                    "while :; do /bin/date >/dev/null; "
                                                    "sleep 0.2; done"])
        pods = [{"name": "web-0", "namespace": "shop", "containers": [web]}]
        with open(pods_file, "w") as f:
            json.dump(node.podlist(pods, node_name=NODE_NAME), f)
        fk.start()
        self.cleanups.append(fk.stop)

        started = {}
        for c in pod["containers"]:
            started[c["name"]] = node.start_container(
                flavor="cgroupfs-containerd", pod_uid=pod_uid, name=c["name"],
                cmd=c["command"] + c.get("args", []), customize=customize_for(c))
        agent, fwd, agg = (started[n] for n in names)
        pods.append({"name": "kmon-abcde", "namespace": "kmon-system",
                     "containers": list(started.values())})
        fk.set_pods(node.podlist(pods, node_name=NODE_NAME))

        def logs(c):
            o, e = node.container_output(c)
            return o + e

        # The kubelet's probes, on the pod IP and the ports the chart names.
        def probe_url(c, probe):
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            port = probe["httpGet"]["port"]
            return "http://%s:%s%s" % (POD_IP, ports.get(port, port), probe["httpGet"]["path"])
        spec_agent = pod["containers"][0]
        def ready():
            if not os.path.exists("/proc/%d" % agent.host_pid):
                self.fail("the agent exited; its log:\n" + logs(agent)[-3000:])
            return http_get(probe_url(spec_agent, spec_agent["readinessProbe"]))[0] == 200
        try:
            wait_for(ready, 90, "the readiness probe to pass")
        except AssertionError as e:
            self.fail("%s; agent log:\n%s" % (e, logs(agent)[-3000:]))
        self.assertEqual(http_get(probe_url(spec_agent, spec_agent["livenessProbe"]))[0], 200)

        # The forward sidecar prints the workload's execs with its pod's names.
        def annotated():
            out = node.container_output(fwd)[0]
            # Only complete lines: the sidecar may be writing the last one.
            for line in out[:out.rfind("\n") + 1].splitlines():
                try:
                    e = json.loads(line)
                except ValueError:
                    self.fail("kmon-forward printed a line that is not JSON: %r" % line)
                if (e["type"] == "process_exec" and e["filename"] == "/bin/date"
                        and e["pod"] == "web-0"):
                    return e
            return None
        try:
            e = wait_for(annotated, 90, "annotated events from the forward sidecar")
        except AssertionError:
            self.fail("no annotated event; agent log:\n%s\nforward log:\n%s" %
                      (logs(agent)[-3000:], logs(fwd)[-2000:]))
        self.assertEqual((e["namespace"], e["container"], e["container_id"], e["node"]),
                         ("shop", "web", web.id, NODE_NAME), e)

        # The aggregate sidecar counts them on its own port.
        agg_port = {p["name"]: p["containerPort"] for p in pod["containers"][2]["ports"]}
        agg_url = "http://%s:%d/metrics" % (POD_IP, list(agg_port.values())[0])

        def counted():
            code, text = http_get(agg_url)
            m = re.search(r'kmon_exec_filename_total\{[^}]*pod="web-0"[^}]*\} (\d+)', text)
            return code == 200 and m and int(m.group(1)) > 0
        wait_for(counted, 60, "kmon-aggregate to count the workload's execs")

        code, metrics = http_get(probe_url(spec_agent, {"httpGet": {"port": "metrics",
                                                                  "path": "/metrics"}}))
        self.assertEqual(code, 200)
        self.assertRegex(metrics, r"(?m)^kmon_consumers 2$")

        # What each process holds, read from the host as an auditor would.
        # Started as root for its capabilities, then the chart's --run-as user
        # with nothing kept (every thread).
        run_as = [a.split("=", 1)[1] for a in spec_agent["args"] if a.startswith("--run-as=")]
        self.assertEqual(len(run_as), 1, "the chart must pass --run-as")
        ru, rg = run_as[0].split(":")
        self.assertNotEqual(ru, "0")
        st = status_fields(agent.host_pid)
        self.assertEqual(st["Uid"], {"\t".join([ru] * 4)})
        self.assertEqual(st["Gid"], {"\t".join([rg] * 4)})
        self.assertEqual(st["Groups"], {""})
        for k in ("CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"):
            self.assertEqual(st[k], {"0000000000000000"}, "agent still holds %s" % k)
        self.assertEqual(st["NoNewPrivs"], {"1"})
        self.assertEqual(st["Seccomp"], {"2"}, "agent not under the seccomp filter")
        # SYS_NICE (with the RuntimeDefault profile) gave the drain its priority.
        for task in os.listdir("/proc/%d/task" % agent.host_pid):
            with open("/proc/%d/task/%s/comm" % (agent.host_pid, task)) as f:
                if f.read().strip() == "kmon-drain":
                    self.assertEqual(os.getpriority(os.PRIO_PROCESS, int(task)), -15)
                    break
        else:
            self.fail("no kmon-drain thread in the agent")
        for c in (fwd, agg):
            st = status_fields(c.host_pid)
            self.assertEqual(st["Uid"], {"65534\t65534\t65534\t65534"})
            self.assertIn("65532", st["Groups"].pop().split(), "socket group missing")
            self.assertEqual(st["CapEff"], {"0000000000000000"})
            self.assertEqual(st["CapBnd"], {"0000000000000000"})
            self.assertEqual(st["Seccomp"], {"2"})
            # Allowed by the RuntimeDefault profile: records never preempt the node.
            self.assertEqual(os.sched_getscheduler(c.host_pid), os.SCHED_BATCH)
        print("agent RSS in the pod: %s" % status_fields(agent.host_pid)["VmRSS"].pop())


if __name__ == "__main__":
    unittest.main(verbosity=2)
