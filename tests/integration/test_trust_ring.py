#!/usr/bin/env python3
"""Trust boundaries of the shared-memory rings and the control socket (issue
13, defects 1, 3 and 6), each attack performed for real: real agent, real BPF
events, hostile consumers running as unprivileged users.

Run as a test: python3 test_trust_ring.py (root). The same file is the hostile
consumer (python3 test_trust_ring.py --hostile MODE ...), run as nobody, so the
attacks speak the raw protocol without any help from the client library.
Against an agent of an older protocol the hostile side falls back to it
(protocol 2: no symbol table; protocol 1: no ready step), so the tests can be run against an old build to see them fail:
KMON_AGENT=.../old/kmon-agent KMON_TESTCONSUMER=.../old/testconsumer.
"""
import ctypes
import errno
import fcntl
import functools
import json
import mmap
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

from agentproc import Consumer, NOBODY, readable_copies
from kmoncase import AGENT, KmonTestCase
from servers import free_port

FLOOD = os.environ.get("KMON_FLOOD", "kmalloc_flood")
TC = os.environ.get("KMON_TESTCONSUMER", "testconsumer")
PY = sys.executable
SELF = os.path.abspath(__file__)

MAGIC = 0x4e4f4d4b
HELLO = struct.Struct("<IHHIIQQ64s1024s")
REPLY = struct.Struct("<IHHIIQQ254s200s")
REPLY_SIZE = 488  # sizeof(struct kmon_hello_reply), padded to 8
READY = struct.Struct("<IHH")
SYMTAB_HDR = struct.Struct("<IHHIIQQ")  # shm/symtab.h
SYMTAB_MAGIC = 0x5453594b
F_SEAL_SEAL, F_SEAL_WRITE = 0x0001, 0x0008
HDR_PAGE = 4096
HEAD_OFF = 64       # producer position in the ring header page
TAIL_OFF, WAIT_OFF = 0, 64  # in the ctl page
# A user outside the socket's group (nogroup).
OUTSIDER = ["setpriv", "--reuid", "daemon", "--regid", "daemon", "--clear-groups",
            "--no-new-privs"]


# ---------------------------------------------------------------- hostile side

class Attached:
    """One raw attachment; keeps everything it received."""

    def __init__(self, path, name, ring=0, populate=True, version=4, flags=0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.version = version
        self.more = []
        self.sock.send(HELLO.pack(MAGIC, version, 0, 0, flags, ring, 0, name.encode(), b""))
        self.status, self.error, self.fds, r = self.recv()
        if self.status == 2 and version >= 2:  # an agent of an older protocol
            self.sock.close()
            # protocol 1's client library never populated its mapping
            self.__init__(path, name, ring, version > 2, version - 1, flags if version > 4 else 0)
            return
        self.ring_bytes = r[5] if r else 0
        self.data = self.ctl = None
        if self.status != 0:
            return
        flags = mmap.MAP_SHARED | (mmap.MAP_POPULATE if populate else 0)
        self.data = mmap.mmap(self.fds[0], HDR_PAGE + self.ring_bytes, flags=flags,
                              prot=mmap.PROT_READ)
        self.ctl = mmap.mmap(self.fds[1], 4096, flags=flags,
                             prot=mmap.PROT_READ | mmap.PROT_WRITE)
        # The words the raw consumer reads and writes, as native 8-byte
        # items: see head().
        self.head_word = memoryview(self.data)[HEAD_OFF:HEAD_OFF + 8].cast("Q")
        self.ctl_words = memoryview(self.ctl).cast("Q")
        if version >= 2:
            self.sock.send(READY.pack(MAGIC, version, 0))
            self.status, self.error, self.more, _ = self.recv()
            if not flags:
                for fd in self.more:
                    os.close(fd)
                self.more = []

    def recv(self):
        try:
            msg, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(8 * 4))
        except OSError:
            return None, "no reply", [], None
        fds = []
        for level, typ, data in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds += list(struct.unpack("%di" % (len(data) // 4), data[:len(data) // 4 * 4]))
        if len(msg) < REPLY.size:
            return None, "short reply", fds, None
        r = REPLY.unpack_from(msg)
        return r[2], r[8].split(b"\0")[0].decode(), fds, r

    # The agent publishes the head while we read it and reads our tail
    # while we write it, so each access must be a single 8-byte load or
    # store, like a C consumer's atomics. struct cannot do that:
    # pack_into first zeroes the field (a memset in s_pack_internal) and
    # then stores the value, even with native "Q", so the agent sometimes
    # read a tail of 0, behind the tail it had already seen, and rightly
    # detached the consumer for an invalid ring position (a flaky
    # failure). "<Q" also reads and writes a byte at a time (torn
    # positions). An item of a memoryview cast to native "Q" is copied by
    # one fixed-size 8-byte memcpy, which compiles to one aligned load or
    # store.
    def head(self):
        return self.head_word[0]

    def set_ctl(self, off, v):
        self.ctl_words[off // 8] = v

    def close(self):
        """Unmaps the ring and closes the socket; the descriptors stay."""
        if self.data is not None:
            self.head_word.release()  # an exported buffer blocks close()
            self.ctl_words.release()
            self.data.close()
            self.ctl.close()
        self.sock.close()


def trick(results, name, fn):
    try:
        fn()
        results[name] = "ok"
    except OSError as e:
        results[name] = errno.errorcode.get(e.errno, str(e.errno))


def hostile_wake(path, seconds):
    """Defect 1: everything a consumer can do to the wake-up descriptor it got,
    then announce sleep over and over without ever reading it."""
    # The default ring: "read everything" (a tail set to a head read
    # earlier) is always a valid position, however long we are descheduled
    # in between, since the agent never writes past the tail it last read.
    # (The detaches once blamed on that were struct's zeroed tail: see
    # Attached.head().)
    a = Attached(path, "hostile-wake")
    if a.status != 0:
        print(json.dumps({"status": a.status, "error": a.error}), flush=True)
        return 1
    wfd = a.fds[2]
    res = {"protocol": a.version}
    trick(res, "clear_nonblock", lambda: fcntl.fcntl(
        wfd, fcntl.F_SETFL, fcntl.fcntl(wfd, fcntl.F_GETFL) & ~os.O_NONBLOCK))
    # An eventfd's counter filled to its maximum: the next write blocks.
    trick(res, "fill", lambda: os.write(wfd, (2 ** 64 - 2).to_bytes(8, "little")))

    def reopen():
        fd = os.open("/proc/self/fd/%d" % wfd, os.O_WRONLY | os.O_NONBLOCK)
        try:
            while True:
                os.write(fd, b"x" * 65536)
        except BlockingIOError:
            pass
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
    trick(res, "reopen_for_writing", reopen)
    trick(res, "pipe_size", lambda: fcntl.fcntl(wfd, 1031, 4096))  # F_SETPIPE_SZ
    trick(res, "rcvbuf", lambda: socket.socket(fileno=os.dup(wfd)).setsockopt(
        socket.SOL_SOCKET, socket.SO_RCVBUF, 1))
    print(json.dumps(res), flush=True)
    gen = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        # Read everything (a valid position), ask to be woken, never drain.
        gen += 2
        a.set_ctl(TAIL_OFF, a.head())
        a.set_ctl(WAIT_OFF, gen | 1)
        time.sleep(0.001)
    return 0


def hostile_hoard(path, count, ring, flood_done):
    """Defect 3: attach `count` rings, let the agent fill them, detach and keep
    every descriptor. Waits for the file flood_done before detaching."""
    held = []
    for i in range(count):
        a = Attached(path, "hoard%d" % i, ring=ring)
        if a.status != 0:
            print(json.dumps({"status": a.status, "error": a.error}), flush=True)
            return 1
        held.append(a)
    print(json.dumps({"attached": count, "protocol": held[0].version}), flush=True)
    deadline = time.monotonic() + 120
    while not os.path.exists(flood_done) and time.monotonic() < deadline:
        time.sleep(0.05)
    heads = [a.head() for a in held]
    for a in held:
        a.close()  # detached; the descriptors stay with us
    print(json.dumps({"detached": count, "heads": heads,
                      "kept_fds": sum(len(a.fds) for a in held)}), flush=True)
    time.sleep(3600)
    return 0


def hostile_lazy(path):
    """Says ready without faulting the ring in: the agent would pay."""
    a = Attached(path, "lazy", populate=False)
    print(json.dumps({"status": a.status, "error": a.error}), flush=True)
    return 0


def hostile_flood(path, pending, attach):
    """Defect 3, limits: `pending` connections that never say hello, then up to
    `attach` attachments; holds them all."""
    socks, out = [], []
    for i in range(attach):
        a = Attached(path, "flood%d" % i)
        out.append({"status": a.status, "error": a.error})
        socks.append(a)
    for _ in range(pending):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            s.connect(path)
        except OSError:
            pass
        socks.append(s)
    print(json.dumps({"attach": out}), flush=True)
    time.sleep(3600)
    return 0


def hostile_ask(path, ring):
    a = Attached(path, "ask", ring=ring)
    print(json.dumps({"status": a.status, "error": a.error}), flush=True)
    return 0


def hostile_history(path, seconds):
    """Asks for the shared history (protocol 4) and tries, for `seconds`, to
    change or free it under the agent and the other consumers: through the
    descriptor, through the file reopened read-write, by resizing it, by
    punching holes and by MADV_REMOVE on its mapping."""
    a = Attached(path, "hostile-history", flags=1)
    res = {"status": a.status, "history_fds": len(a.more)}
    if not a.more:
        print(json.dumps(res), flush=True)
        return 1
    fd = a.more[0]
    size = os.fstat(fd).st_size
    res["size"] = size
    ro = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
    end = time.monotonic() + seconds
    first = True
    while first or time.monotonic() < end:
        trick(res, "write", lambda: os.pwrite(fd, b"\xff" * 4096, 4096))
        trick(res, "map_rw", lambda: mmap.mmap(fd, size, flags=mmap.MAP_SHARED,
                                               prot=mmap.PROT_READ | mmap.PROT_WRITE))
        trick(res, "truncate", lambda: os.ftruncate(fd, 0))
        trick(res, "madv_remove", lambda: ro.madvise(mmap.MADV_REMOVE, 0, size))

        def reopened(op):
            rw = os.open("/proc/self/fd/%d" % fd, os.O_RDWR)
            try:
                op(rw)
            finally:
                os.close(rw)
        trick(res, "reopen_write", lambda: reopened(lambda rw: os.pwrite(rw, b"\xff" * 64, 4096)))
        trick(res, "reopen_map_rw", lambda: reopened(
            lambda rw: mmap.mmap(rw, size, flags=mmap.MAP_SHARED,
                                 prot=mmap.PROT_READ | mmap.PROT_WRITE)))
        trick(res, "reopen_punch", lambda: reopened(lambda rw: punch(rw, size)))
        trick(res, "reopen_truncate", lambda: reopened(lambda rw: os.ftruncate(rw, 0)))
        if first:
            print(json.dumps(res), flush=True)
            first = False
        time.sleep(0.01)
    print(json.dumps(res), flush=True)
    return 0


def punch(fd, size):
    """fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) over the file."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    if libc.fallocate(fd, 3, 0, size) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def hostile_fs(sockpath):
    """Defect 6: a user outside the socket's group tries to take the socket."""
    d = os.path.dirname(sockpath)
    res = {}
    trick(res, "unlink_socket", lambda: os.unlink(sockpath))
    trick(res, "rename_dir", lambda: os.rename(d, d + ".stolen"))
    trick(res, "rmdir", lambda: os.rmdir(d))
    trick(res, "connect", lambda: socket.socket(socket.AF_UNIX,
                                                socket.SOCK_SEQPACKET).connect(sockpath))
    print(json.dumps(res), flush=True)
    return 0


def impostor(path, kind):
    """Defect 6: binds a fake control socket and answers every hello with
    descriptors of the wrong kind; with 'shrink' it truncates its memfd after
    sending it (SIGBUS for a client that mapped it); with 'symtab-*' the
    symbol table (protocol 3) is unsealed or garbage."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    srv.bind(path)
    os.chmod(path, 0o777)
    srv.listen(8)
    print(json.dumps({"listening": path}), flush=True)
    keep = []
    while True:
        c, _ = srv.accept()
        c.recv(4096)
        ring = 1 << 16
        size = HDR_PAGE + ring
        data = os.memfd_create("fake", os.MFD_ALLOW_SEALING)
        os.ftruncate(data, size)
        ctl = os.memfd_create("fakectl", os.MFD_ALLOW_SEALING)
        os.ftruncate(ctl, 4096)
        seal = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
        r, w = os.pipe()
        wake = r
        if kind == "wrong-size":
            fcntl.fcntl(data, fcntl.F_ADD_SEALS, seal | 0x0010)  # F_SEAL_FUTURE_WRITE
            fcntl.fcntl(ctl, fcntl.F_ADD_SEALS, seal)
            ring = 1 << 20  # says 1 MiB, sends 64 KiB
            wake = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            keep.append(wake)
            wake = wake[1].fileno()
        elif kind == "not-memfd":
            data = os.open("/proc/self/exe", os.O_RDONLY)
        elif kind == "shrink":
            pass  # unsealed: it will shrink them once sent
        # The symbol table (protocol 3): valid and empty, unless it is the
        # attack.
        table = SYMTAB_HDR.pack(SYMTAB_MAGIC, 1, 0, 0, 0, SYMTAB_HDR.size, 0)
        if kind == "symtab-garbage":
            table = b"\xff" * 64
        symtab = os.memfd_create("fakesym", os.MFD_ALLOW_SEALING)
        os.write(symtab, table)
        if kind != "symtab-unsealed":
            fcntl.fcntl(symtab, fcntl.F_ADD_SEALS, seal | F_SEAL_WRITE | F_SEAL_SEAL)
        fds = [data, ctl, wake, symtab]
        reply = REPLY.pack(MAGIC, 4, 0, 1, 1, ring, 0, b"impostor", b"").ljust(REPLY_SIZE, b"\0")
        c.sendmsg([reply], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("4i", *fds))])
        if kind == "shrink":
            time.sleep(0.2)
            os.ftruncate(data, 0)
            os.ftruncate(ctl, 0)
        keep.append(c)


def hostile_main(argv):
    mode = argv[0]
    if mode == "wake":
        return hostile_wake(argv[1], float(argv[2]))
    if mode == "hoard":
        return hostile_hoard(argv[1], int(argv[2]), int(argv[3]), argv[4])
    if mode == "lazy":
        return hostile_lazy(argv[1])
    if mode == "flood":
        return hostile_flood(argv[1], int(argv[2]), int(argv[3]))
    if mode == "ask":
        return hostile_ask(argv[1], int(argv[2]))
    if mode == "fs":
        return hostile_fs(argv[1])
    if mode == "history":
        return hostile_history(argv[1], float(argv[2]))
    if mode == "impostor":
        return impostor(argv[1], argv[2])
    return 2


# ---------------------------------------------------------------- test side

def metrics(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        return r.read().decode()


def flood(n, threads=1, rate=None):
    out = subprocess.run([FLOOD, str(n), str(threads)] + (["--rate=%d" % rate] if rate else []),
                         check=True, capture_output=True, text=True).stdout
    return int(out.split("=")[1])


@functools.lru_cache(maxsize=None)
def hostile_copy():
    """This file and the test support modules it imports, where the hostile
    side (another user) can read them: (script, its PYTHONPATH)."""
    support = os.path.dirname(os.path.abspath(sys.modules["agentproc"].__file__))
    return tuple(readable_copies(SELF, support))


class Hostile:
    def __init__(self, args, user=NOBODY, cgroup=None):
        self.f = tempfile.TemporaryFile()
        self.e = tempfile.TemporaryFile()
        # In its cgroup before it runs a line: it pays for what it faults in.
        pre = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup] if cgroup else []
        script, path = hostile_copy()
        self.proc = subprocess.Popen(pre + user + [PY, script, "--hostile"] +
                                     [str(a) for a in args], stdout=self.f, stderr=self.e,
                                     env=dict(os.environ, PYTHONPATH=path))

    def lines(self):
        self.f.seek(0)
        return [json.loads(l) for l in self.f.read().decode().splitlines() if l.startswith("{")]

    def wait_line(self, key, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for l in self.lines():
                if key in l:
                    return l
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.e.seek(0)
        raise AssertionError("hostile printed no %r: %s %s" % (key, self.lines(),
                                                               self.e.read().decode()[-2000:]))

    def result(self, timeout=60):
        self.proc.wait(timeout=timeout)
        return self.lines()[-1]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.f.close()
        self.e.close()


class MemCgroup:
    """A memory cgroup (v1 or v2) to see who is charged for ring pages."""

    def __init__(self, name):
        if os.path.exists("/sys/fs/cgroup/memory/cgroup.procs"):
            self.path = "/sys/fs/cgroup/memory/" + name
            self.usage = "memory.usage_in_bytes"
        else:
            root = "/sys/fs/cgroup"
            with open(root + "/cgroup.controllers") as f:
                if "memory" not in f.read().split():
                    raise unittest.SkipTest("no memory cgroup controller")
            self.path = root + "/" + name
            self.usage = "memory.current"
        os.makedirs(self.path, exist_ok=True)

    def add(self, pid):
        with open(self.path + "/cgroup.procs", "w") as f:
            f.write("%d\n" % pid)

    def bytes(self):
        with open(self.path + "/" + self.usage) as f:
            return int(f.read())

    def remove(self):
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except OSError:
                time.sleep(0.1)


class TrustRingTest(KmonTestCase):
    def hostile(self, *args, user=NOBODY, cgroup=None):
        h = Hostile(list(args), user=user, cgroup=cgroup)
        self.procs.append(h)
        return h

    def stop_agent(self, a):
        """SIGTERM; the agent must be gone within a few seconds (liveness)."""
        a.proc.send_signal(signal.SIGTERM)
        try:
            rc = a.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            a.kill()
            self.fail("the agent did not exit within 5 s of SIGTERM:\n" + a.log()[-3000:])
        a.stop()
        return rc

    def assert_exact(self, a, c, name):
        c.wait_for_log("agent closed the connection", timeout=60)
        c.stop()
        r = c.result()
        logs = a.consumer_log(name)
        self.assertEqual(len(logs), 1, "no detach line for %s:\n%s" % (name, a.log()[-3000:]))
        d = logs[0]
        self.assertEqual(d["delivered"] + d["lost"], d["produced"], d)
        self.assertEqual(r["events"], d["delivered"], (r, d))
        self.assertEqual(r["seq_errors"], 0, r)
        return r, d

    # -- defect 1 ------------------------------------------------------------

    def test_hostile_wake_descriptor_cannot_stall_the_drain(self):
        port = free_port()
        a = self.agent("--metrics-addr", "127.0.0.1:%d" % port)
        honest = self.consumer(a, "honest", "--ring-size", str(32 << 20))
        h = self.hostile("wake", a.socket, 60)
        tricks = h.wait_line("clear_nonblock")
        a.wait_for_log("'hostile-wake' attached")
        # The hostile consumer now asks for a wake-up every millisecond and
        # never reads one, with every trick applied to the descriptor. The
        # flood is paced (50k/s): a drain that keeps running takes it without
        # a kernel drop even under ASan on a busy machine, while a drain the
        # descriptor stalled would drop most of it (a flat-out flood made
        # the test fail on a slow drain, not on a stalled one).
        n = flood(100000, rate=50000)
        # The fan-out still answers: /metrics (it reads the fan-out under its
        # lock) and a second consumer attaching.
        self.assertIn('kmon_consumer_delivered_total{consumer="hostile-wake"', metrics(port),
                      "the hostile consumer is gone: %s\n%s" % (h.lines(), a.log()[-3000:]))
        late = Consumer([TC, "--socket", a.socket, "--name", "late", "--once"])
        self.consumers.append(late)
        late.wait_for_log("attached to", timeout=10)
        n += flood(20000, rate=50000)
        time.sleep(0.5)
        self.stop_agent(a)
        r, d = self.assert_exact(a, honest, "honest")
        self.assertEqual(d["lost"], 0, "the honest consumer lost records: %s" % d)
        self.assertGreaterEqual(r["memory_alloc"], n,
                                "the honest consumer missed kmallocs of the flood (%s; the "
                                "agent's totals: %s)" % (tricks, a.totals))
        # The hostile side could not get a writable or shrunken channel.
        self.assertNotEqual(tricks.get("fill"), "ok", tricks)
        self.assertNotEqual(tricks.get("reopen_for_writing"), "ok", tricks)
        # Every position the hostile consumer wrote was valid: the /metrics
        # check above saw it attached mid-run; nor was it dropped later.
        self.assertNotIn("invalid ring position",
                         [x["why"] for x in a.consumer_log("hostile-wake")], a.log()[-3000:])

    # -- defect 3 ------------------------------------------------------------

    def test_descriptors_kept_after_detach_cost_the_agent_nothing(self):
        a = self.agent("--history-bytes", "0")
        tag = "kmon-trust-%d" % os.getpid()
        agent_cg, hoard_cg = MemCgroup(tag + "-agent"), MemCgroup(tag + "-hoard")
        self.cgroups += [agent_cg, hoard_cg]
        agent_cg.add(a.proc.pid)
        count, ring = 6, 4 << 20
        done = os.path.join(self.tmp, "flood-done")
        h = self.hostile("hoard", a.socket, count, ring, done, cgroup=hoard_cg.path)
        h.wait_line("attached")
        time.sleep(0.5)
        before = agent_cg.bytes()
        flood(200000)  # fills every ring the hoarder never reads
        open(done, "w").close()
        out = h.wait_line("detached")
        deadline = time.monotonic() + 10
        while len([l for l in a.log().splitlines() if "'hoard" in l and "detached" in l]) < count:
            self.assertLess(time.monotonic(), deadline, a.log()[-3000:])
            time.sleep(0.05)
        time.sleep(0.5)
        grown = agent_cg.bytes() - before
        total = count * ring
        sys.stderr.write("\n  agent cgroup grew %d bytes; rings kept %d bytes; consumer cgroup "
                         "%d bytes\n" % (grown, total, hoard_cg.bytes()))
        self.assertGreater(min(out["heads"]), ring // 2, "the rings were not filled: %s" % out)
        # Ring data, ctl and wake-up socket each, and the symbol table (one
        # memfd the agent shares with every consumer: kept, it costs nothing
        # more). Protocol 3.
        self.assertEqual(out["kept_fds"], 4 * count)
        self.assertLess(grown, total // 4,
                        "the agent's memory cgroup grew by %d bytes for %d bytes of rings whose "
                        "descriptors a detached consumer kept" % (grown, total))
        self.assertGreaterEqual(hoard_cg.bytes(), total,
                                "the consumer that keeps the rings is charged for them")
        # The agent still works and its budget is free again.
        self.consumer(a, "after", "--ring-size", str(4 << 20))
        self.stop_agent(a)

    def test_shared_history_cannot_be_changed_by_a_consumer(self):
        """A consumer given the shared history (every consumer without a
        namespace filter is) tries to change or free it all through a flood:
        every attempt fails, and an honest consumer reading the same history
        gets every event of the flood, each once, none torn or lost."""
        a = self.agent("--events", "memory_alloc,memory_free")
        honest = self.consumer(a, "honest")
        h = self.hostile("history", a.socket, 4)
        first = h.wait_line("write")
        self.assertEqual(first["status"], 0, first)
        self.assertEqual(first["history_fds"], 1, first)
        a.wait_for_log("'hostile-history' attached")
        self.assertIn("events from the shared history", a.log())
        n = flood(200000, rate=100000)
        res = h.result()
        for k in ("write", "map_rw", "truncate", "madv_remove", "reopen_write", "reopen_map_rw",
                  "reopen_punch", "reopen_truncate"):
            self.assertNotEqual(res.get(k), "ok", "the consumer could %s the history: %s" % (k, res))
        self.assertIsNone(a.proc.poll(), "the agent died:\n" + a.log()[-3000:])
        self.stop_agent(a)
        r, d = self.assert_exact(a, honest, "honest")
        self.assertEqual(r["lost"], 0, r)
        self.assertEqual(r["duplicates"], 0, r)
        self.assertGreaterEqual(r["memory_alloc"], n, "the honest consumer missed kmallocs: %s" % r)

    def test_ready_without_populating_is_refused(self):
        a = self.agent()
        out = self.hostile("lazy", a.socket).result()
        self.assertEqual(out["status"], 8, out)
        self.assertIn("MAP_POPULATE", out["error"])
        a.wait_for_log("ready 'lazy' refused (ring not populated)")
        self.consumer(a, "after")
        self.stop_agent(a)

    def test_budget_and_per_uid_limits(self):
        port = free_port()
        a = self.agent("--shm-budget", "16M", "--max-consumers-per-uid", "2",
                       "--max-pending-per-uid", "2", "--metrics-addr", "127.0.0.1:%d" % port)
        # uid nobody: 40 silent connections, and 3 attachments (one too many).
        h = self.hostile("flood", a.socket, 40, 3)
        got = h.wait_line("attach")["attach"]
        self.assertEqual([x["status"] for x in got], [0, 0, 7], got)
        self.assertIn("--max-consumers-per-uid", got[2]["error"])
        a.wait_for_log("connections without hello")
        # uid daemon (in the socket's group) still attaches and gets every event.
        other = ["setpriv", "--reuid", "daemon", "--regid", "nogroup", "--clear-groups",
                 "--no-new-privs"]
        b = self.consumer(a, "other-uid", "--ring-size", str(4 << 20), user=other)
        # Paced, as on a node: the honest consumer must keep every event even
        # when the machine is busy with other work (CI runs two build trees).
        n = flood(50000, rate=20000)
        # 2 x 4M + 4M in use of 16M: a 8M ring is over the budget, said so.
        big = self.hostile("ask", a.socket, 8 << 20, user=other).result()
        self.assertEqual(big["status"], 6, big)
        self.assertIn("--shm-budget", big["error"])
        # Every refusal is counted where an operator looks.
        m = metrics(port)
        for reason in ("pending", "uid_limit", "shm_budget"):
            line = [l for l in m.splitlines()
                    if l.startswith('kmon_control_refused_total{reason="%s"}' % reason)]
            self.assertTrue(line and int(line[0].split()[1]) > 0, (reason, m))
        # The flood goes away: its rings are released, the 8M ring fits.
        h.kill()
        deadline = time.monotonic() + 10
        while True:
            big = self.hostile("ask", a.socket, 8 << 20, user=other).result()
            if big["status"] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(big["status"], 0, big)
        self.stop_agent(a)
        r, d = self.assert_exact(a, b, "other-uid")
        self.assertEqual(d["lost"], 0, d)
        self.assertGreaterEqual(r["memory_alloc"], n)

    # -- defect 6 ------------------------------------------------------------

    def test_socket_directory_cannot_be_taken_over(self):
        # An emptyDir: world-writable, no sticky bit.
        vol = os.path.join(self.tmp, "vol")
        os.mkdir(vol)
        os.chmod(vol, 0o777)
        sock = os.path.join(vol, "kmon", "kmon.sock")
        a = self.agent("--socket", sock, "--socket-group", "nogroup")
        st = os.stat(os.path.dirname(sock))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o750)
        self.assertEqual(st.st_uid, os.geteuid())
        self.assertTrue(os.stat(vol).st_mode & stat.S_ISVTX, "sticky bit on the shared volume")
        outsider = self.hostile("fs", sock, user=OUTSIDER).result()
        member = self.hostile("fs", sock).result()
        for who, res in (("outsider", outsider), ("group member", member)):
            for t in ("unlink_socket", "rename_dir", "rmdir"):
                self.assertNotEqual(res[t], "ok", "%s could %s: %s" % (who, t, res))
        self.assertNotEqual(outsider["connect"], "ok", outsider)
        self.assertEqual(member["connect"], "ok", member)
        self.assertTrue(stat.S_ISSOCK(os.lstat(sock).st_mode))
        c = Consumer([TC, "--socket", sock, "--name", "still"])
        self.consumers.append(c)
        c.wait_for_log("attached to")
        self.stop_agent(a)

    def test_a_shared_directory_is_not_taken_over(self):
        # `--socket /tmp/kmon.sock` once made /tmp mode 0750 and the agent's
        # group: every other user of the machine lost /tmp. A directory that
        # holds anything but the socket is refused, and left as it was.
        shared = os.path.join(self.tmp, "shared")
        os.mkdir(shared)
        os.chmod(shared, 0o1777)
        with open(os.path.join(shared, "someone-elses-file"), "w"):
            pass
        before = os.stat(shared)
        out = subprocess.run([AGENT, "--scope", "all", "--rescan-interval", "0",
                              "--socket", os.path.join(shared, "kmon.sock"),
                              "--socket-group", "nogroup"],
                             capture_output=True, text=True, timeout=120)
        self.assertNotEqual(out.returncode, 0, out.stderr)
        self.assertIn("--socket: directory %s holds other files (someone-elses-file)" % shared,
                      out.stderr)
        self.assertIn("give the socket a directory of its own", out.stderr)
        after = os.stat(shared)
        self.assertEqual((after.st_mode, after.st_uid, after.st_gid),
                         (before.st_mode, before.st_uid, before.st_gid))
        self.assertFalse(os.path.exists(os.path.join(shared, "kmon.sock")))

    def test_impostor_descriptors_are_refused_without_crashing(self):
        for kind, wait, why in (("wrong-size", "not a kmon ring", "bytes, expected"),
                                ("not-memfd", "not a kmon ring", "not a sealable memfd"),
                                ("shrink", "not a kmon ring", "has seals"),
                                ("symtab-unsealed", "bad symbol table", "not a sealed memfd"),
                                ("symtab-garbage", "bad symbol table", "bad magic")):
            d = tempfile.mkdtemp(dir=self.tmp)
            os.chmod(d, 0o777)
            path = os.path.join(d, "kmon.sock")
            imp = self.hostile("impostor", path, kind)
            imp.wait_line("listening")
            c = Consumer([TC, "--socket", path, "--name", "victim"])
            self.consumers.append(c)
            c.wait_for_log(wait, timeout=20)
            self.assertIn(why, c.log())
            time.sleep(0.5)  # the 'shrink' impostor truncates now; retries go on
            self.assertIsNone(c.proc.poll(), "the consumer died:\n" + c.log())
            self.assertEqual(c.stop(), 0, c.log())
            imp.kill()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--hostile":
        sys.exit(hostile_main(sys.argv[2:]))
    unittest.main(verbosity=2)
