"""Real container engines for kmon's end-to-end tests, each on private
state directories and sockets, so a test never touches (or depends on) an
engine the machine may already run:

    img = busybox_archive(tmp)                  # docker-archive, built offline
    with Containerd(tmp) as ctd:                # containerd 1.6 + ctr
        ctd.import_image(img)
        c = ctd.run(cgroup="/kubepods/besteffort/pod<uid>/<id>", cid=..., cmd=[...])
        ctd.exec(c, ["/bin/true"])
        with Dockerd(tmp, ctd) as d:            # dockerd on that containerd
            ...
    with Podman(tmp) as p:                      # podman 4 + conmon, runc
        ...

The image is a docker-archive (manifest.json + config + one layer) made
here from busybox-static: no registry, no network, and docker load, ctr
images import and podman load all take it. Every engine uses the cgroupfs
driver (systemd is not PID 1 on the test machines) and runc (crun 1.8
refuses hybrid cgroup hosts).

Stdlib only; needs root.
"""
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time

from kubenode import rmdir_tree_list

BUSYBOX = os.environ.get("KMON_BUSYBOX", "/bin/busybox")
IMAGE = "kmon.local/busybox:1"
_TIMEOUT = 120


class EngineError(RuntimeError):
    """An engine could not start or a command failed; says which and why."""


def run(argv, timeout=_TIMEOUT, check=True, env=None):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL, env=env)
    except FileNotFoundError:
        raise EngineError("%s not found: install it (.ci/deps --tests)" % argv[0]) from None
    if check and r.returncode != 0:
        raise EngineError("%s failed (exit %d): %s" % (" ".join(argv), r.returncode,
                                                        (r.stderr or r.stdout).strip()[-2000:]))
    return r


def _wait(pred, timeout, what, proc=None, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            tail = ""
            if log:
                with open(log, errors="replace") as f:
                    tail = f.read()[-3000:]
            raise EngineError("%s exited (%s) while waiting for %s:\n%s"
                              % (proc.args[0], proc.returncode, what, tail))
        time.sleep(0.1)
    raise EngineError("timed out after %ss waiting for %s" % (timeout, what))


def busybox_archive(tmp, tag=IMAGE):
    """A docker-archive of a busybox image (rootfs: busybox-static and its
    applets under /bin), written to tmp/busybox.tar; returns its path."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as t:
        def add_dir(name, mode=0o755):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode = tarfile.DIRTYPE, mode
            t.addfile(ti)
        for d in ("bin", "dev", "etc", "proc", "sys", "root"):
            add_dir(d)
        add_dir("tmp", 0o1777)
        t.add(BUSYBOX, "bin/busybox")
        applets = run([BUSYBOX, "--list"]).stdout.split()
        for a in applets:
            if a != "busybox" and "/" not in a:
                ti = tarfile.TarInfo("bin/" + a)
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, "busybox", 0o777
                t.addfile(ti)
        for name, text in (("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
                                          "nobody:x:65534:65534:nobody:/:/bin/false\n"),
                           ("etc/group", "root:x:0:\nnogroup:x:65534:\n")):
            data = text.encode()
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o644
            t.addfile(ti, io.BytesIO(data))
    layer = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "kmon tests: busybox-static"}],
    }).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag],
                            "Layers": ["layer/layer.tar"]}]).encode()
    path = os.path.join(tmp, "busybox.tar")
    with tarfile.open(path, "w") as t:
        for name, data in (("layer/layer.tar", layer), (config_name, config),
                           ("manifest.json", manifest)):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o644
            t.addfile(ti, io.BytesIO(data))
    return path


class _Daemon:
    """A daemon process with its own directory; stop() terminates it."""

    def __init__(self, base):
        self.dir = base
        os.makedirs(base, exist_ok=True)
        self.proc = None
        self.log_path = os.path.join(base, "daemon.log")

    def _spawn(self, argv):
        with open(self.log_path, "w") as log:
            # Own session: a test runner's Ctrl-C goes to the test, which
            # stops the daemon in order (containers first).
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _cgroup_mounts():
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[0] in ("cgroup", "cgroup2"):
                mounts.append(left.split()[4])
    return mounts


def umount_under(top):
    """Unmounts what an engine left mounted below top (dockerd's netns
    bind mount, overlay roots), deepest first, so top can be deleted."""
    top = os.path.realpath(top) + "/"
    mnts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4].replace("\\040", " ")
            if (mnt + "/").startswith(top):
                mnts.append(mnt)
    for m in sorted(set(mnts), key=lambda x: x.count("/"), reverse=True):
        subprocess.run(["umount", "--lazy", m], capture_output=True, timeout=30)


def missing_cgroup_dirs(path):
    """The directories of cgroup path that do not exist yet, in every
    hierarchy: the engine will create them, and they are ours to remove
    (parents that existed may be another test's). The last one, when new,
    is ours with everything below it (podman's pod and conmon cgroups);
    the parents are only removed when empty: another test running at the
    same time may have made its own cgroups in them."""
    out = []
    parts = path.strip("/").split("/")
    for m in _cgroup_mounts():
        for i in range(1, len(parts) + 1):
            d = os.path.join(m, *parts[:i])
            if not os.path.isdir(d):
                out.append((d, i == len(parts)))
    return out


def rmdir_cgroups(dirs):
    """rmdir the (dir, with_subtree) pairs missing_cgroup_dirs gave, deepest
    first; a cgroup whose last task just died can be busy for a moment."""
    every = set()
    for top, subtree in dirs:
        for root, subdirs, _ in (os.walk(top) if subtree else ()):
            every.update(os.path.join(root, x) for x in subdirs)
        every.add(top)
    rmdir_tree_list(every, timeout=3.0)


class Containerd(_Daemon):
    """containerd 1.6 on a private root, state and socket; ctr drives it in
    the k8s.io namespace, as the kubelet's CRI plugin would."""

    NS = "k8s.io"

    def __init__(self, tmp):
        super().__init__(os.path.join(tmp, "containerd"))
        self.sock = os.path.join(self.dir, "containerd.sock")
        self.containers = []
        self.cgroups = []
        cfg = os.path.join(self.dir, "config.toml")
        with open(cfg, "w") as f:
            f.write('version = 2\nroot = "%s/root"\nstate = "%s/state"\n'
                    'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                    '[grpc]\n  address = "%s"\n'
                    '[ttrpc]\n  address = "%s.ttrpc"\n'
                    '[plugins."io.containerd.internal.v1.opt"]\n  path = "%s/opt"\n'
                    % (self.dir, self.dir, self.sock, self.sock, self.dir))
        self._spawn(["containerd", "--config", cfg])
        _wait(lambda: os.path.exists(self.sock) and
              run(self.ctr_argv("version"), check=False, timeout=10).returncode == 0,
              60, "containerd to answer on %s" % self.sock, self.proc, self.log_path)

    def ctr_argv(self, *args):
        return ["ctr", "--address", self.sock, "--namespace", self.NS] + list(args)

    def ctr(self, *args, check=True, timeout=_TIMEOUT):
        return run(self.ctr_argv(*args), check=check, timeout=timeout)

    def import_image(self, archive):
        self.ctr("images", "import", "--no-unpack", archive)

    def run_container(self, cid, cgroup, cmd):
        """`ctr run -d` with runc (containerd-shim-runc-v2) in cgroup; cid is
        the container id (64 hex, as the CRI plugin makes them). Returns
        the host pid of its init."""
        self.cgroups += missing_cgroup_dirs(cgroup)
        self.ctr("run", "-d", "--runtime", "io.containerd.runc.v2", "--net-host",
                 "--cgroup", cgroup, IMAGE, cid, *cmd)
        self.containers.append(cid)
        out = self.ctr("task", "ls").stdout
        for line in out.splitlines()[1:]:
            f = line.split()
            if f and f[0] == cid:
                return int(f[1])
        raise EngineError("ctr task ls does not list %s:\n%s" % (cid, out))

    def exec(self, cid, cmd):
        return self.ctr("task", "exec", "--exec-id", "kmon-%d" % time.monotonic_ns(), cid, *cmd)

    def close(self):
        for cid in self.containers:
            self.ctr("task", "kill", "-s", "SIGKILL", cid, check=False)
            for _ in range(50):
                if self.ctr("task", "rm", "-f", cid, check=False).returncode == 0:
                    break
                time.sleep(0.1)
            self.ctr("containers", "rm", cid, check=False)
        self.containers = []
        self.stop()
        rmdir_cgroups(self.cgroups)
        # The shims exit with their containers; their state dirs go with ours.
        umount_under(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)


class Dockerd(_Daemon):
    """dockerd (docker.io 20.10) on a private data root and socket, on the
    given Containerd (its moby namespace), cgroupfs driver, no networking
    setup (containers use --network host)."""

    def __init__(self, tmp, containerd):
        super().__init__(os.path.join(tmp, "dockerd"))
        self.sock = os.path.join(self.dir, "docker.sock")
        self.cgroups = []
        self.containers = []
        cfg = os.path.join(self.dir, "daemon.json")
        with open(cfg, "w") as f:
            f.write("{}\n")
        self._spawn(["dockerd", "--config-file", cfg, "--host", "unix://" + self.sock,
                     "--data-root", os.path.join(self.dir, "data"),
                     "--exec-root", os.path.join(self.dir, "exec"),
                     "--pidfile", os.path.join(self.dir, "dockerd.pid"),
                     "--containerd", containerd.sock, "--iptables=false",
                     "--ip-masq=false", "--bridge=none",
                     "--exec-opt", "native.cgroupdriver=cgroupfs"])
        _wait(lambda: os.path.exists(self.sock) and
              self.docker("info", check=False, timeout=10).returncode == 0,
              90, "dockerd to answer on %s" % self.sock, self.proc, self.log_path)

    def docker(self, *args, check=True, timeout=_TIMEOUT):
        # Debian's client matches the 20.10 daemon; another one may be first
        # in PATH.
        client = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
        return run([client, "--host", "unix://" + self.sock] + list(args), check=check,
                   timeout=timeout)

    def load(self, archive):
        self.docker("load", "--input", archive)

    def run_container(self, name, cgroup_parent, cmd):
        """docker run -d as dockershim did: --cgroup-parent the pod's cgroup
        (the container's cgroup is <parent>/<id>). Returns (id, host pid)."""
        self.cgroups += missing_cgroup_dirs(cgroup_parent)
        cid = self.docker("run", "-d", "--name", name, "--network", "host",
                          "--cgroup-parent", cgroup_parent, IMAGE, *cmd).stdout.strip()
        self.containers.append(cid)
        pid = int(self.docker("inspect", "--format", "{{.State.Pid}}", cid).stdout)
        return cid, pid

    def exec(self, cid, cmd):
        return self.docker("exec", cid, *cmd)

    def close(self):
        if self.containers:
            self.docker("rm", "-f", *self.containers, check=False)
        self.containers = []
        self.stop()
        rmdir_cgroups(self.cgroups)
        umount_under(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)


class Podman:
    """podman 4 with conmon and runc on private storage (no daemon): every
    call names the root, run root, runtime and cgroup manager."""

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "podman")
        os.makedirs(self.dir, exist_ok=True)
        self.cgroups = []
        self.pods = []
        conf = os.path.join(self.dir, "containers.conf")
        with open(conf, "w") as f:
            f.write('[engine]\nevents_logger = "file"\nevents_logfile_path = "%s/events.log"\n'
                    'cgroup_manager = "cgroupfs"\nruntime = "runc"\n'
                    'tmp_dir = "%s/tmp"\n'
                    '[containers]\nlog_driver = "k8s-file"\n'
                    # Explicit limits, the infra container's too: podman's
                    # default nofile (1048576) is above this machine's hard
                    # limit, and runc then fails to apply it (EPERM).
                    'default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]\n'
                    % (self.dir, self.dir))
        self.env = dict(os.environ, CONTAINERS_CONF=conf,
                        CONTAINERS_REGISTRIES_CONF=os.path.join(self.dir, "registries.conf"))
        with open(self.env["CONTAINERS_REGISTRIES_CONF"], "w") as f:
            f.write("unqualified-search-registries = []\n")

    def podman(self, *args, check=True, timeout=_TIMEOUT):
        argv = ["podman", "--root", os.path.join(self.dir, "root"),
                "--runroot", os.path.join(self.dir, "run"),
                "--runtime", "runc", "--cgroup-manager", "cgroupfs",
                "--events-backend", "file", "--storage-driver", "overlay"] + list(args)
        return run(argv, check=check, timeout=timeout, env=self.env)

    def load(self, archive):
        self.podman("load", "--input", archive)

    def create_pod(self, name, cgroup_parent):
        """A pod with its infra container (the sandbox) under cgroup_parent.
        Returns the pod id."""
        self.cgroups += missing_cgroup_dirs(cgroup_parent)
        pid = self.podman("pod", "create", "--name", name, "--network", "host",
                          "--cgroup-parent", cgroup_parent, "--infra-command", "/bin/sleep 1000000",
                          "--infra-image", IMAGE).stdout.strip().splitlines()[-1]
        self.pods.append(pid)
        return pid

    def run_container(self, pod, name, cmd):
        """Runs cmd in the pod; returns (id, host pid)."""
        cid = self.podman("run", "-d", "--pod", pod, "--name", name,
                          IMAGE, *cmd).stdout.strip().splitlines()[-1]
        pid = int(self.podman("inspect", "--format", "{{.State.Pid}}", cid).stdout)
        return cid, pid

    def infra(self, pod):
        """(id, host pid) of the pod's infra container."""
        out = self.podman("pod", "inspect", pod).stdout
        info = json.loads(out)
        if isinstance(info, list):
            info = info[0]
        cid = info["InfraContainerID"]
        pid = int(self.podman("inspect", "--format", "{{.State.Pid}}", cid).stdout)
        return cid, pid

    def exec(self, cid, cmd):
        return self.podman("exec", cid, *cmd)

    def close(self):
        for p in self.pods:
            self.podman("pod", "rm", "-f", p, check=False)
        self.pods = []
        rmdir_cgroups(self.cgroups)
        # Overlay mounts of the storage must go before the directory.
        self.podman("system", "reset", "--force", check=False)
        umount_under(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
