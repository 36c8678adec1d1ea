"""Start and stop a real kmon-agent for tests, and read what it printed.

The agent runs with --print (events as JSON lines on stdout, into a file so a
slow reader can never stall it) and reports its totals as one JSON line on
stderr at exit.
"""
import atexit
import json
import re
import os
import shutil
import signal
import subprocess
import tempfile
import time


# The directories of every Agent and Consumer this process made. Events
# printed with --print reach a gigabyte in some tests: left in /tmp they
# filled a CI machine's disk over the suite. KMON_KEEP_TMP=1 keeps them.
_DIRS = []


def _remove_dirs():
    if os.environ.get("KMON_KEEP_TMP") != "1":
        for d in _DIRS:
            shutil.rmtree(d, ignore_errors=True)


atexit.register(_remove_dirs)


def _mkdtemp(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    _DIRS.append(d)
    return d


def wait_for_log(p, who, text, timeout):
    """Returns once p.log() (p an Agent or a Consumer) holds text; fails at
    once if the process exits first, or after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in p.log():
            return
        if p.proc.poll() is not None:
            raise AssertionError("%s exited (%s) before logging %r:\n%s"
                                 % (who, p.proc.returncode, text, p.log()))
        time.sleep(0.05)
    raise AssertionError("%s did not log %r within %ss:\n%s" % (who, text, timeout, p.log()))


class Agent:
    def __init__(self, binary, args, env=None):
        self.dir = _mkdtemp("kmon-agent-")
        # Consumers run as nobody in the tests: they must reach the socket.
        os.chmod(self.dir, 0o755)
        args = list(args)
        if "--socket" not in args:
            # A directory of its own (the agent takes it over, and refuses
            # one that holds other files, like this one's logs).
            self.socket = os.path.join(self.dir, "sock", "kmon.sock")
            args += ["--socket", self.socket, "--socket-group", "nogroup"]
        else:
            self.socket = args[args.index("--socket") + 1]
        self.out_path = os.path.join(self.dir, "events.jsonl")
        self.err_path = os.path.join(self.dir, "agent.log")
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([binary] + list(args), stdout=self.out,
                                     stderr=self.err, env=env)
        self.totals = None

    def log(self):
        with open(self.err_path, "r", errors="replace") as f:
            return f.read()

    def wait_for_log(self, text, timeout=20.0):
        wait_for_log(self, "agent", text, timeout)

    def wait_attached(self):
        self.wait_for_log("attached:")

    def consumer_log(self, name):
        """The agent's detach lines for consumer `name`, parsed: produced,
        delivered and lost as the agent counted them."""
        out = []
        for line in self.log().splitlines():
            m = re.search(r"consumer (\d+) '([^']*)' .* detached: (.*); produced (\d+) "
                          r"delivered (\d+) lost (\d+)", line)
            if m and m.group(2) == name:
                out.append({"id": int(m.group(1)), "why": m.group(3),
                            "produced": int(m.group(4)), "delivered": int(m.group(5)),
                            "lost": int(m.group(6))})
        return out

    def stop(self, timeout=30.0):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        rc = self.proc.wait(timeout=timeout)
        self.out.close()
        self.err.close()
        for line in self.log().splitlines():
            if line.startswith('{"totals"'):
                self.totals = json.loads(line)["totals"]
        check_sanitizers("kmon-agent", self.log())
        return rc

    def events(self):
        evs = []
        with open(self.out_path, "r", errors="strict") as f:
            for line in f:
                evs.append(json.loads(line))
        return evs

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer")


def check_sanitizers(name, log):
    """Sanitizer builds: any report in a process's stderr fails the test."""
    for mark in SANITIZER_MARKS:
        if mark in log:
            raise AssertionError("%s reported %r:\n%s" % (name, mark, log[-4000:]))


NOBODY = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups",
          "--no-new-privs"]


def readable_copies(*paths):
    """Copies of files and directories in a fresh directory every user can
    read, for what a test runs as nobody: the checkout or the build tree may
    sit under a 0700 directory (a `mktemp -d`, /root). The copies' paths, in
    order; removed at exit like the other directories."""
    d = _mkdtemp("kmon-readable-")
    os.chmod(d, 0o755)
    out = []
    for p in paths:
        dst = os.path.join(d, os.path.basename(p.rstrip("/")))
        if os.path.isdir(p):
            shutil.copytree(p, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(p, dst)
        out.append(dst)
    return out


class Consumer:
    """A consumer process run as user nobody; its stdout is one JSON line of
    counts at exit."""

    def __init__(self, argv, as_nobody=True):
        self.dir = _mkdtemp("kmon-consumer-")
        self.out_path = os.path.join(self.dir, "out")
        self.err_path = os.path.join(self.dir, "err")
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen((NOBODY if as_nobody else []) + list(argv),
                                     stdout=self.out, stderr=self.err)

    def log(self):
        with open(self.err_path, "r", errors="replace") as f:
            return f.read()

    def output(self):
        with open(self.out_path, "r", errors="replace") as f:
            return f.read()

    def lines(self):
        """The output's complete lines: a consumer still running may have its
        last line half written when the file is read."""
        out = self.output()
        return out[:out.rfind("\n") + 1].splitlines()

    def wait_for_log(self, text, timeout=20.0):
        wait_for_log(self, "consumer", text, timeout)

    def stop(self, sig=signal.SIGINT, timeout=30.0):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=timeout)
        self.close()
        check_sanitizers("consumer", self.log())
        return rc

    def close(self):
        if not self.out.closed:
            self.out.close()
            self.err.close()

    def result(self):
        lines = [l for l in self.output().splitlines() if l.startswith("{")]
        return json.loads(lines[-1])


def tracked(pid):
    """Whether pid is in the agent's BPF PID map (read with bpftool)."""
    out = subprocess.run(["bpftool", "-j", "map", "dump", "name", "pids"],
                         capture_output=True, text=True)
    if out.returncode:
        return False
    entries = json.loads(out.stdout)
    # Several maps of that name (another agent on the machine): bpftool then
    # lists each map with its elements.
    if entries and "elements" in entries[0]:
        entries = [e for m in entries for e in m["elements"]]
    for e in entries:
        k = e.get("key")
        if isinstance(k, int) and k == pid:
            return True
        if isinstance(k, list) and int.from_bytes(bytes(int(b, 16) for b in k), "little") == pid:
            return True
    return False
