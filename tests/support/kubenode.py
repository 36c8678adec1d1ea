"""A fake Kubernetes node for kmon's end-to-end tests: REAL runc containers
(busybox rootfs) placed in the cgroups a kubelet + container runtime would
create, so /proc/<pid>/cgroup of their processes reads like on a real node.

No kubelet, containerd or systemd is involved: runc's cgroupfs driver is
given the very cgroupsPath the kubelet/runtime pair would produce (the
systemd driver needs systemd as PID 1, which CI machines may not have; the
path shapes are what matter to kmon).

    with Node() as node:
        c = node.start_container(flavor="systemd-containerd",
                                 pod_uid=new_pod_uid(), name="app",
                                 cmd=["/bin/sh", "-c", "sleep 1000"])
        c.host_pid, c.cgroup_text, c.exec(["/bin/true"])
        podlist = node.podlist([{"name": "app-0", "namespace": "shop",
                                 "containers": [c]}])

Everything the node creates (runc containers, bundles, cgroup directories)
is removed on exit, even when the body raised. A harness killed before it
could clean up is cleaned up by the next Node() (stale state under
STATE_BASE whose owner pid is gone).

Stdlib only; needs root, runc and busybox-static.
"""
import errno
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

RUNC = os.environ.get("KMON_RUNC", "runc")
BUSYBOX = os.environ.get("KMON_BUSYBOX", "/bin/busybox")
# runc state of every Node lives under here, one directory per Node, so a
# later run can find and delete what a killed run left behind.
STATE_BASE = "/run/kmon-kubenode"

FLAVORS = ("cgroupfs-containerd", "systemd-containerd",
           "systemd-crio", "cgroupfs-crio")
QOS = ("guaranteed", "burstable", "besteffort")
# Kubelet containerID schemes by runtime.
SCHEMES = {"containerd": "containerd", "crio": "cri-o"}
QOS_CLASS = {"guaranteed": "Guaranteed", "burstable": "Burstable",
             "besteffort": "BestEffort"}

_CMD_TIMEOUT = 60


class NodeError(RuntimeError):
    """A runc or cgroup operation failed; the message names what and why."""


def new_pod_uid():
    return str(uuid.uuid4())


def new_container_id():
    return secrets.token_hex(32)


def cgroups_path(flavor, pod_uid, container_id, qos="burstable",
                 conmon=False):
    """The cgroup path the kubelet + runtime give a container (or the pod
    sandbox, which is shaped the same with the sandbox id)."""
    if flavor not in FLAVORS:
        raise ValueError("unknown flavor %r (one of %s)" %
                         (flavor, ", ".join(FLAVORS)))
    if qos not in QOS:
        raise ValueError("unknown qos %r (one of %s)" % (qos, ", ".join(QOS)))
    if not pod_uid or "/" in pod_uid or "." in pod_uid:
        raise ValueError("bad pod uid %r" % (pod_uid,))
    if len(container_id) != 64 or any(c not in "0123456789abcdef"
                                      for c in container_id):
        raise ValueError("container id must be 64 lowercase hex: %r" %
                         (container_id,))
    driver, runtime = flavor.split("-", 1)
    if conmon and runtime != "crio":
        raise ValueError("conmon only exists with cri-o, not %s" % flavor)
    if driver == "cgroupfs":
        parts = ["kubepods"]
        if qos != "guaranteed":
            parts.append(qos)
        parts.append("pod" + pod_uid)
        if runtime == "containerd":
            parts.append(container_id)
        else:
            parts.append(("crio-conmon-" if conmon else "crio-") +
                         container_id)
        return "/" + "/".join(parts)
    # systemd: every slice name repeats its parents' names; '-' separates
    # levels, so the uid's dashes become '_'.
    uid = pod_uid.replace("-", "_")
    parts = ["kubepods.slice"]
    prefix = "kubepods"
    if qos != "guaranteed":
        prefix += "-" + qos
        parts.append(prefix + ".slice")
    parts.append("%s-pod%s.slice" % (prefix, uid))
    if runtime == "containerd":
        parts.append("cri-containerd-%s.scope" % container_id)
    else:
        parts.append("%s-%s.scope" % ("crio-conmon" if conmon else "crio",
                                       container_id))
    return "/" + "/".join(parts)


def cgroup_hierarchies():
    """(mode, mountpoints): mode is 'v2', 'hybrid' or 'v1'; mountpoints are
    every mounted cgroup hierarchy (v1 and v2)."""
    v1, v2 = [], []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype = right.split()[0]
            mnt = left.split()[4]
            if fstype == "cgroup":
                v1.append(mnt)
            elif fstype == "cgroup2":
                v2.append(mnt)
    if not v1 and not v2:
        raise NodeError("no cgroup filesystem mounted (see /proc/self/mountinfo)")
    if not v1:
        mode = "v2"
    elif v2:
        mode = "hybrid"
    else:
        mode = "v1"
    return mode, v1 + v2


def parse_cgroup_text(text):
    """/proc/<pid>/cgroup -> list of (hierarchy id, [controllers], path)."""
    out = []
    for line in text.splitlines():
        hid, ctrls, path = line.split(":", 2)
        out.append((int(hid), [c for c in ctrls.split(",") if c], path))
    return out


def _is_static_elf(path):
    """True if the ELF file has no PT_INTERP (so it runs in an empty rootfs)."""
    with open(path, "rb") as f:
        hdr = f.read(64)
        if hdr[:4] != b"\x7fELF" or hdr[4] != 2:
            return False
        order = "little" if hdr[5] == 1 else "big"
        phoff = int.from_bytes(hdr[32:40], order)
        phentsize = int.from_bytes(hdr[54:56], order)
        phnum = int.from_bytes(hdr[56:58], order)
        f.seek(phoff)
        for _ in range(phnum):
            ph = f.read(phentsize)
            if int.from_bytes(ph[0:4], order) == 3:  # PT_INTERP
                return False
    return True


def _pid_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _execed(pid):
    """True once pid runs its own program (not runc init, not mid-execve),
    or has exited."""
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmdline = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return not _pid_alive(pid) or (cmdline != b"" and "runc" not in exe)


def _wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise NodeError("timed out after %ss waiting for %s" %
                            (timeout, what))
        time.sleep(0.05)


def _runc(root, *args, timeout=_CMD_TIMEOUT, check=True, **kw):
    argv = [RUNC, "--root", root] + list(args)
    if "stdout" not in kw and "stderr" not in kw:
        kw["capture_output"] = True
    kw.setdefault("stdin", subprocess.DEVNULL)
    try:
        res = subprocess.run(argv, timeout=timeout, text=True, **kw)
    except FileNotFoundError:
        raise NodeError("runc not found (%s): install Debian package runc" %
                        RUNC) from None
    if check and res.returncode != 0:
        raise NodeError("%s failed (exit %d): %s" %
                        (" ".join(argv), res.returncode,
                         (res.stderr or "").strip() or "see bundle logs"))
    return res


def rmdir_tree_list(dirs, timeout=10.0):
    """rmdir the given cgroup dirs, deepest first. A cgroup whose last task
    just died can stay busy for a moment, so EBUSY is retried briefly."""
    left = []
    for d in sorted(set(dirs), key=lambda p: p.count("/"), reverse=True):
        deadline = time.monotonic() + timeout
        while True:
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() > deadline:
                    left.append("%s: %s" % (d, e.strerror))
                    break
                time.sleep(0.05)
    return left


def _reap_stale():
    """Delete what Nodes of dead harness processes left behind."""
    try:
        entries = os.listdir(STATE_BASE)
    except FileNotFoundError:
        return
    for ent in entries:
        try:
            owner = int(ent.split("-", 1)[0])
        except ValueError:
            continue
        if owner == os.getpid() or _pid_alive(owner):
            continue
        root = os.path.join(STATE_BASE, ent)
        _delete_all_in_root(root)
        try:
            with open(os.path.join(root, "cgroups.txt")) as f:
                rmdir_tree_list(f.read().split("\n")[:-1])
        except FileNotFoundError:
            pass
        try:
            with open(os.path.join(root, "workdir")) as f:
                wd = f.read()
            if os.path.basename(wd).startswith("kmon-kubenode-"):
                shutil.rmtree(wd, ignore_errors=True)
        except FileNotFoundError:
            pass
        shutil.rmtree(root, ignore_errors=True)


def _delete_all_in_root(root):
    if not os.path.isdir(root):
        return []
    res = _runc(root, "list", "-q", check=False)
    errs = []
    for name in res.stdout.split():
        r = _runc(root, "delete", "-f", name, check=False)
        if r.returncode != 0:
            errs.append("runc delete -f %s: %s" % (name, r.stderr.strip()))
    return errs


class Container:
    """One runc container in a kubelet-style cgroup."""

    def __init__(self, node, *, flavor, pod_uid, name, qos, sandbox, conmon,
                 container_id, cgroup_path, runc_name, bundle):
        self.node = node
        self.flavor = flavor
        self.runtime = flavor.split("-", 1)[1]  # containerd | crio
        self.pod_uid = pod_uid
        self.name = name
        self.qos = qos
        self.sandbox = sandbox
        self.conmon = conmon
        self.id = container_id
        self.cgroup_path = cgroup_path
        self.runc_name = runc_name
        self.bundle = bundle
        self.host_pid = None
        self.stopped = False

    def __repr__(self):
        return "<Container %s %s pod=%s pid=%s>" % (
            self.name, self.flavor, self.pod_uid, self.host_pid)

    @property
    def container_id_uri(self):
        """How the kubelet names it: containerd://<id>, cri-o://<id>."""
        return "%s://%s" % (SCHEMES[self.runtime], self.id)

    @property
    def cgroup_text(self):
        """Current contents of /proc/<host_pid>/cgroup."""
        with open("/proc/%d/cgroup" % self.host_pid) as f:
            return f.read()

    def host_pids(self):
        """Host pids of every process in the container's cgroup."""
        for mnt in self.node.cgroup_mounts:
            p = os.path.join(mnt + self.cgroup_path, "cgroup.procs")
            if os.path.exists(p):
                with open(p) as f:
                    return sorted(int(x) for x in f.read().split())
        raise NodeError("no cgroup.procs for %s" % self.cgroup_path)

    def exec(self, argv, *, timeout=_CMD_TIMEOUT, input=None):
        """`runc exec` argv in the container and wait for it; returns the
        CompletedProcess (stdout/stderr captured as text)."""
        return _runc(self.node.runc_root, "exec", self.runc_name, *argv,
                     timeout=timeout, check=False, input=input,
                     stdin=None if input is not None else subprocess.DEVNULL)

    def spawn(self, argv):
        """Start argv in the container without waiting; returns its host
        pid (it runs until it exits or the container stops)."""
        n = secrets.token_hex(4)
        pidfile = os.path.join(self.bundle, "exec-%s.pid" % n)
        log = os.path.join(self.bundle, "exec-%s.out" % n)
        with open(log, "wb") as out:
            _runc(self.node.runc_root, "exec", "-d", "--pid-file", pidfile,
                  self.runc_name, *argv, stdout=out, stderr=out)
        with open(pidfile) as f:
            pid = int(f.read().strip())
        # runc exec -d returns once runc init has the pid, which may still
        # be inside execve: between the new mm and its argument pages
        # /proc/<pid>/cmdline reads empty (a CI run saw it). Return once
        # argv runs, or is already gone.
        _wait(lambda: _execed(pid), 30,
              "pid %d to leave runc init for %s" % (pid, argv[0]))
        return pid

    def stop(self):
        """Kill and delete the container; idempotent."""
        if self.stopped:
            return
        self.stopped = True
        r = _runc(self.node.runc_root, "delete", "-f", self.runc_name,
                  check=False)
        if r.returncode != 0 and "does not exist" not in r.stderr:
            raise NodeError("runc delete -f %s: %s" %
                            (self.runc_name, r.stderr.strip()))
        if self.host_pid is not None:
            _wait(lambda: not _pid_alive(self.host_pid), 30,
                  "container %s init (pid %d) to exit" %
                  (self.name, self.host_pid))
        shutil.rmtree(self.bundle, ignore_errors=True)


class Node:
    """Context manager owning a set of runc containers and their cgroups."""

    def __init__(self, workdir=None):
        if os.geteuid() != 0:
            raise NodeError("kubenode needs root (runc and cgroup writes)")
        if not os.path.exists(BUSYBOX) or not _is_static_elf(BUSYBOX):
            raise NodeError("%s is missing or not static: install Debian "
                            "package busybox-static" % BUSYBOX)
        self.cgroup_mode, self.cgroup_mounts = cgroup_hierarchies()
        os.makedirs(STATE_BASE, mode=0o700, exist_ok=True)
        _reap_stale()
        self.workdir = tempfile.mkdtemp(prefix="kmon-kubenode-", dir=workdir)
        self.runc_root = tempfile.mkdtemp(prefix="%d-" % os.getpid(),
                                          dir=STATE_BASE)
        self._cgroups_log = os.path.join(self.runc_root, "cgroups.txt")
        with open(os.path.join(self.runc_root, "workdir"), "w") as f:
            f.write(self.workdir)
        self.containers = []
        self.created_cgroups = []
        self._closed = False
        try:
            self.rootfs = os.path.join(self.workdir, "rootfs")
            self._make_rootfs()
            self._spec = self._make_spec_template()
        except BaseException:
            self.close()
            raise

    # -- setup ---------------------------------------------------------
    def _make_rootfs(self):
        r = self.rootfs
        for d in ("bin", "proc", "dev", "sys", "tmp", "etc", "root"):
            os.makedirs(os.path.join(r, d))
        os.chmod(os.path.join(r, "tmp"), 0o1777)
        shutil.copy2(BUSYBOX, os.path.join(r, "bin", "busybox"))
        applets = subprocess.run([BUSYBOX, "--list"], check=True,
                                 capture_output=True, text=True).stdout.split()
        for a in applets:
            if a != "busybox" and "/" not in a:
                os.symlink("busybox", os.path.join(r, "bin", a))
        with open(os.path.join(r, "etc", "passwd"), "w") as f:
            f.write("root:x:0:0:root:/root:/bin/sh\n"
                    "nobody:x:65534:65534:nobody:/:/bin/false\n")
        with open(os.path.join(r, "etc", "group"), "w") as f:
            f.write("root:x:0:\nnogroup:x:65534:\n")

    def _make_spec_template(self):
        d = os.path.join(self.workdir, "spec")
        os.makedirs(d)
        r = subprocess.run([RUNC, "spec"], cwd=d, capture_output=True,
                           text=True, timeout=_CMD_TIMEOUT)
        if r.returncode != 0:
            raise NodeError("runc spec failed: %s" % r.stderr.strip())
        with open(os.path.join(d, "config.json")) as f:
            spec = json.load(f)
        spec["process"]["terminal"] = False
        spec["root"] = {"path": self.rootfs, "readonly": False}
        # Host network: no veth/CNI setup needed for kmon's events.
        ns = ["pid", "ipc", "uts", "mount"]
        if self.cgroup_mode == "v2":
            ns.append("cgroup")  # what runtimes do on v2 hosts
        spec["linux"]["namespaces"] = [{"type": t} for t in ns]
        spec["mounts"].append({"destination": "/tmp", "type": "tmpfs",
                               "source": "tmpfs",
                               "options": ["nosuid", "nodev", "mode=1777"]})
        return spec

    def _note_cgroup_dirs(self, path):
        """Remember (and persist, for _reap_stale) every directory of path
        that does not exist yet in any hierarchy: those are ours to remove."""
        new = []
        for mnt in self.cgroup_mounts:
            cur = mnt
            for comp in path.strip("/").split("/"):
                cur = os.path.join(cur, comp)
                if not os.path.isdir(cur) and cur not in self.created_cgroups:
                    new.append(cur)
        self.created_cgroups.extend(new)
        with open(self._cgroups_log, "a") as f:
            f.write("".join(d + "\n" for d in new))

    def make_cgroup(self, path):
        """Create cgroup path on every hierarchy (removed by close()), for
        host processes that must look like container processes; returns the
        cgroup.procs files to write a pid into. A v1 cpuset group gets its
        parent's CPUs and memory nodes, without which it takes no task."""
        self._note_cgroup_dirs(path)
        procs = []
        for mnt in self.cgroup_mounts:
            cur = mnt
            for comp in path.strip("/").split("/"):
                cur = os.path.join(cur, comp)
                if os.path.isdir(cur):
                    continue
                os.mkdir(cur)
                for k in ("cpuset.cpus", "cpuset.mems"):
                    if os.path.exists(os.path.join(cur, k)):
                        with open(os.path.join(os.path.dirname(cur), k)) as f:
                            v = f.read().strip()
                        with open(os.path.join(cur, k), "w") as f:
                            f.write(v)
            procs.append(os.path.join(cur, "cgroup.procs"))
        return procs

    # -- containers ----------------------------------------------------
    def start_container(self, *, flavor, pod_uid, name, cmd,
                        qos="burstable", sandbox=False, conmon=False,
                        customize=None):
        """Start cmd (argv, busybox applets under /bin) in a new container
        whose cgroup is where flavor's kubelet + runtime would put it.
        sandbox=True makes a pod sandbox (pause) container: same cgroup
        shape, never listed in the PodList. conmon=True (cri-o flavors)
        places the process in crio-conmon-<id>.scope instead.
        customize(spec), when given, edits the OCI spec last (another
        rootfs, user, capabilities, mounts, namespaces: what a pod spec
        sets)."""
        if self._closed:
            raise NodeError("node is closed")
        if not cmd or not all(isinstance(a, str) for a in cmd):
            raise ValueError("cmd must be a non-empty list of str")
        cid = new_container_id()
        path = cgroups_path(flavor, pod_uid, cid, qos, conmon)
        runc_name = "kmon-" + cid[:12]
        bundle = os.path.join(self.workdir, "bundles", runc_name)
        os.makedirs(bundle)
        spec = json.loads(json.dumps(self._spec))
        spec["process"]["args"] = list(cmd)
        spec["hostname"] = name[:63]
        spec["linux"]["cgroupsPath"] = path
        if customize:
            customize(spec)
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(spec, f, indent=1)
        c = Container(self, flavor=flavor, pod_uid=pod_uid, name=name,
                      qos=qos, sandbox=sandbox, conmon=conmon,
                      container_id=cid, cgroup_path=path, runc_name=runc_name,
                      bundle=bundle)
        self._note_cgroup_dirs(path)
        self.containers.append(c)
        pidfile = os.path.join(bundle, "init.pid")
        # create, then start: the init pid (and its cgroup) exist before cmd
        # runs. The container's stdio goes to files: with pipes, runc would
        # wait for the container to close them.
        with open(os.path.join(bundle, "stdout"), "wb") as out, \
                open(os.path.join(bundle, "stderr"), "wb") as err:
            r = _runc(self.runc_root, "create", "--bundle", bundle,
                      "--pid-file", pidfile, runc_name, check=False,
                      stdout=out, stderr=err)
        if r.returncode != 0:
            with open(os.path.join(bundle, "stderr")) as f:
                msg = f.read().strip()
            raise NodeError("runc create %s (cgroupsPath %s) failed: %s" %
                            (runc_name, path, msg))
        with open(pidfile) as f:
            c.host_pid = int(f.read().strip())
        _runc(self.runc_root, "start", runc_name)
        return c

    def container_output(self, c):
        """(stdout, stderr) the container's init wrote so far."""
        with open(os.path.join(c.bundle, "stdout"), "rb") as o, \
                open(os.path.join(c.bundle, "stderr"), "rb") as e:
            return o.read().decode(errors="replace"), \
                e.read().decode(errors="replace")

    # -- kubelet view --------------------------------------------------
    def podlist(self, pods, node_name="kmon-node"):
        """A v1 PodList (dict) as the kubelet's GET /pods returns it.

        pods: list of dicts with keys name, namespace (default "default"),
        uid (default: the containers' pod_uid), containers (list of
        Container; sandboxes are skipped as the kubelet never lists them),
        optional init_containers, ephemeral_containers (lists of
        Container), previous ({container name: old 64-hex id}, reported in
        lastState.terminated), scheme (override of the containerID scheme).
        """
        items = []
        ts = "2024-01-01T00:00:00Z"
        for p in pods:
            conts = [c for c in p.get("containers", []) if not c.sandbox]
            init = [c for c in p.get("init_containers", []) if not c.sandbox]
            eph = [c for c in p.get("ephemeral_containers", [])
                   if not c.sandbox]
            every = conts + init + eph
            uid = p.get("uid") or (every[0].pod_uid if every else None)
            if not uid:
                raise ValueError("pod %r has no uid and no containers" %
                                 p.get("name"))
            prev = p.get("previous", {})

            def status(c, running=True):
                scheme = p.get("scheme") or SCHEMES[c.runtime]
                cid = "%s://%s" % (scheme, c.id)
                st = {"name": c.name,
                      "state": ({"running": {"startedAt": ts}} if running else
                                {"terminated": {"exitCode": 0,
                                                "reason": "Completed",
                                                "startedAt": ts,
                                                "finishedAt": ts,
                                                "containerID": cid}}),
                      "lastState": {}, "ready": running,
                      "restartCount": 0,
                      "image": "docker.io/library/busybox:1.35",
                      "imageID": "docker.io/library/busybox@sha256:" +
                                 "0" * 64,
                      "containerID": cid, "started": running}
                if c.name in prev:
                    st["restartCount"] = 1
                    st["lastState"] = {"terminated": {
                        "exitCode": 137, "reason": "Error",
                        "startedAt": ts, "finishedAt": ts,
                        "containerID": "%s://%s" % (scheme, prev[c.name])}}
                return st

            qos = every[0].qos if every else "besteffort"
            item = {
                "metadata": {"name": p["name"],
                             "namespace": p.get("namespace", "default"),
                             "uid": uid, "creationTimestamp": ts,
                             "labels": {"app": p["name"]}},
                "spec": {"nodeName": node_name,
                         "containers": [{"name": c.name,
                                         "image": "busybox:1.35"}
                                        for c in conts],
                         "initContainers": [{"name": c.name,
                                             "image": "busybox:1.35"}
                                            for c in init]},
                "status": {"phase": "Running", "hostIP": "127.0.0.1",
                           "startTime": ts, "qosClass": QOS_CLASS[qos],
                           "containerStatuses": [status(c) for c in conts]},
            }
            if init:
                item["status"]["initContainerStatuses"] = [
                    status(c, running=False) for c in init]
            if eph:
                item["spec"]["ephemeralContainers"] = [
                    {"name": c.name, "image": "busybox:1.35"} for c in eph]
                item["status"]["ephemeralContainerStatuses"] = [
                    status(c) for c in eph]
            items.append(item)
        return {"kind": "PodList", "apiVersion": "v1", "metadata": {},
                "items": items}

    # -- teardown ------------------------------------------------------
    def close(self):
        """Delete every container, cgroup dir and file this node made.
        Raises NodeError listing what could not be removed."""
        if self._closed:
            return
        self._closed = True
        errs = []
        for c in self.containers:
            try:
                c.stop()
            except (NodeError, subprocess.TimeoutExpired) as e:
                errs.append(str(e))
        # Containers half-made by a failed start_container are in the runc
        # root too.
        try:
            errs += _delete_all_in_root(self.runc_root)
        except (NodeError, subprocess.TimeoutExpired) as e:
            errs.append(str(e))
        errs += rmdir_tree_list(self.created_cgroups)
        shutil.rmtree(self.workdir, ignore_errors=True)
        if not errs:
            shutil.rmtree(self.runc_root, ignore_errors=True)
        if errs:
            raise NodeError("kubenode cleanup incomplete: " + "; ".join(errs))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.close()
        except NodeError as e:
            if exc_type is None:
                raise
            # Do not hide the body's own failure behind the cleanup's.
            print("kubenode: %s" % e, file=sys.stderr)
        return False
