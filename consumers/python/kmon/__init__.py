"""Python bindings for libkmon, kmon's consumer SDK (ctypes, no compiler).

A Client attaches to kmon-agent's control socket and yields Event and Lost
records. Records are read from C in batches; pod metadata travels with the
stream and is cached per container.
"""
import ctypes
import ctypes.util
import errno
import os
import struct

__all__ = ["Client", "Event", "Lost", "KmonError", "EVENT_TYPES"]

EVENT_TYPES = {1: "memory_alloc", 2: "memory_free", 3: "process_exec"}
_TYPE_BITS = {v: 1 << k for k, v in EVENT_TYPES.items()}
_READ_EVENT, _READ_LOST = 1, 2
_READF_REPLAY = 1
_EVF_ADDR_OPAQUE = 1 << 4  # call sites are symbol references (kmon_event.h)
_STATE_REFUSED = 3
# struct kmon_event, version 1 (bpf/kmon_event.h): 128 bytes, little-endian.
_EVENT = struct.Struct("<QIIIHHQQ16s64sII")
_MEM = struct.Struct("<QQQQI")


class KmonError(Exception):
    pass


class _Opts(ctypes.Structure):
    _fields_ = [("sz", ctypes.c_size_t), ("socket_path", ctypes.c_char_p),
                ("name", ctypes.c_char_p), ("event_mask", ctypes.c_uint32),
                ("namespaces", ctypes.POINTER(ctypes.c_char_p)),
                ("n_namespaces", ctypes.c_uint), ("ring_bytes", ctypes.c_size_t),
                ("replay_bytes", ctypes.c_size_t), ("reconnect", ctypes.c_bool),
                ("private_ring", ctypes.c_bool)]


class _Rec(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("seq", ctypes.c_uint64), ("count", ctypes.c_uint64),
                ("meta", ctypes.c_void_p), ("ev", ctypes.c_uint8 * 128),
                ("reserved", ctypes.c_uint64 * 2)]


class _Meta(ctypes.Structure):
    _fields_ = [("key", ctypes.c_uint32), ("runtime", ctypes.c_char * 16),
                ("container_id", ctypes.c_char * 72), ("pod_uid", ctypes.c_char * 40),
                ("pod", ctypes.c_char * 254), ("namespace", ctypes.c_char * 254),
                ("container", ctypes.c_char * 254)]


class _Stats(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in
                ("received", "lost", "meta", "reconnects", "wakeups", "replayed",
                 "seq_errors", "bad_records")]


assert ctypes.sizeof(_Rec) == 176, "kmon_read_rec layout"
assert ctypes.sizeof(_Meta) == 896, "kmon_meta layout"


def _load():
    path = os.environ.get("KMON_LIBRARY") or ctypes.util.find_library("kmon") or "libkmon.so.0"
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise KmonError("cannot load libkmon (%s): install kmon's SDK (cmake --install) "
                        "or set KMON_LIBRARY to libkmon.so.0" % e) from None
    lib.kmon_reader__new.restype = ctypes.c_void_p
    lib.kmon_reader__new.argtypes = [ctypes.POINTER(_Opts)]
    lib.kmon_reader__read.restype = ctypes.c_int
    lib.kmon_reader__read.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Rec), ctypes.c_uint,
                                      ctypes.c_int]
    lib.kmon_reader__why.restype = ctypes.c_char_p
    lib.kmon_reader__why.argtypes = [ctypes.c_void_p]
    lib.kmon_reader__state.restype = ctypes.c_int
    lib.kmon_reader__state.argtypes = [ctypes.c_void_p]
    lib.kmon_reader__meta_gen.restype = ctypes.c_uint64
    lib.kmon_reader__meta_gen.argtypes = [ctypes.c_void_p]
    lib.kmon_reader__node.restype = ctypes.c_char_p
    lib.kmon_reader__node.argtypes = [ctypes.c_void_p]
    lib.kmon_reader__get_stats.restype = None
    lib.kmon_reader__get_stats.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Stats)]
    lib.kmon_reader__symbolize.restype = ctypes.c_int
    lib.kmon_reader__symbolize.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_char_p,
                                           ctypes.c_size_t]
    lib.kmon_reader__free.restype = None
    lib.kmon_reader__free.argtypes = [ctypes.c_void_p]
    return lib


_lib = None


def _s(b):
    return b.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")


class Event:
    """One kernel event with its container's metadata ("" when not known)."""
    __slots__ = ("type", "timestamp", "pid", "tid", "flags", "size", "cgroup_id", "comm",
                 "filename", "ptr", "call_site", "symbol", "container_key", "seq", "replay",
                 "namespace", "pod", "container", "pod_uid", "container_id", "runtime")

    def __repr__(self):
        return "Event(%s pid=%d comm=%r %s/%s/%s seq=%d)" % (
            self.type, self.pid, self.comm, self.namespace, self.pod, self.container, self.seq)

    def as_dict(self):
        return {k: getattr(self, k) for k in self.__slots__}


class Lost:
    """`count` records for this consumer were lost, from sequence `since_seq` on."""
    __slots__ = ("count", "since_seq")

    def __init__(self, count, since_seq):
        self.count, self.since_seq = count, since_seq

    def __repr__(self):
        return "Lost(count=%d, since_seq=%d)" % (self.count, self.since_seq)


_NO_META = ("", "", "", "", "", "")


class Client:
    """Attach to kmon-agent. events: names from EVENT_TYPES (None: all);
    namespaces: only pods there (None: all); replay: bytes of history."""

    def __init__(self, socket="/run/kmon/kmon.sock", name="kmon-python", events=None,
                 namespaces=None, ring_size=0, replay=0, reconnect=True, batch=4096):
        global _lib
        if _lib is None:
            _lib = _load()
        mask = 0
        for e in events or []:
            if e not in _TYPE_BITS:
                raise ValueError("unknown event type %r (known: %s)" %
                                 (e, ", ".join(sorted(_TYPE_BITS))))
            mask |= _TYPE_BITS[e]
        ns = [n.encode() for n in (namespaces or [])]
        self._ns = (ctypes.c_char_p * max(len(ns), 1))(*ns)
        self._opts = _Opts(ctypes.sizeof(_Opts), socket.encode(), name.encode(), mask,
                           self._ns if ns else None, len(ns), ring_size, replay,
                           bool(reconnect))
        self._r = _lib.kmon_reader__new(ctypes.byref(self._opts))
        if not self._r:
            raise KmonError("cannot create a kmon reader: %s" %
                            os.strerror(ctypes.get_errno() or 12))
        self._batch = batch
        self._recs = (_Rec * batch)()
        self._meta = {}
        self._gen = 0
        self._syms = {}  # call site -> name, for the current attachment's table
        self._attaches = 0

    def close(self):
        if self._r:
            _lib.kmon_reader__free(self._r)
            self._r = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    @property
    def why(self):
        """The last state change, in words (attached, refused, reconnecting)."""
        return _lib.kmon_reader__why(self._r).decode("utf-8", "replace")

    @property
    def node(self):
        return _lib.kmon_reader__node(self._r).decode("utf-8", "replace")

    def stats(self):
        s = _Stats()
        _lib.kmon_reader__get_stats(self._r, ctypes.byref(s))
        return {n: getattr(s, n) for n, _ in _Stats._fields_}

    def symbolize(self, call_site):
        """The kernel function of a call site, "function+0xoff [module]", resolved
        locally through the agent's symbol table; None when the agent could not
        resolve it, or when call_site is a raw address (--raw-kernel-addresses)."""
        buf = ctypes.create_string_buffer(256)
        n = _lib.kmon_reader__symbolize(self._r, call_site, buf, len(buf))
        if n < 0 and n != -errno.ENOSPC:
            return None
        return buf.value.decode("utf-8", "backslashreplace")

    def _symbol(self, flags, call_site):
        if not flags & _EVF_ADDR_OPAQUE or not call_site:
            return None
        name = self._syms.get(call_site, self)
        if name is self:
            # A few thousand distinct call sites: one C call each, then a dict.
            if len(self._syms) > 65536:
                self._syms.clear()
            name = self._syms[call_site] = self.symbolize(call_site)
        return name

    def _meta_of(self, ptr):
        m = self._meta.get(ptr)
        if m is None:
            c = _Meta.from_address(ptr)
            m = (_s(c.namespace), _s(c.pod), _s(c.container), _s(c.pod_uid),
                 _s(c.container_id), _s(c.runtime))
            self._meta[ptr] = m
        return m

    def read(self, timeout=1.0):
        """The next batch: a list of Event and Lost (empty on timeout).
        Raises KmonError when the agent refused this consumer."""
        if not self._r:
            raise KmonError("client is closed")
        n = _lib.kmon_reader__read(self._r, self._recs, self._batch,
                                   -1 if timeout is None else int(timeout * 1000))
        if n < 0:
            raise KmonError(self.why or os.strerror(-n))
        gen = _lib.kmon_reader__meta_gen(self._r)
        if gen != self._gen:
            self._meta.clear()  # some container's metadata changed
            self._gen = gen
        if n and self._syms:
            # A reconnect brings a new symbol table (ids may differ).
            st = _Stats()
            _lib.kmon_reader__get_stats(self._r, ctypes.byref(st))
            if st.reconnects != self._attaches:
                self._syms.clear()
                self._attaches = st.reconnects
        out = []
        unpack = _EVENT.unpack_from
        for i in range(n):
            r = self._recs[i]
            if r.kind == _READ_LOST:
                out.append(Lost(r.count, r.seq))
                continue
            if r.kind != _READ_EVENT:
                continue
            (ts, pid, tid, etype, _ver, flags, size, cg, comm, data, key,
             _res) = unpack(r.ev)
            e = Event()
            e.type = EVENT_TYPES.get(etype, str(etype))
            e.timestamp, e.pid, e.tid, e.flags, e.size, e.cgroup_id = ts, pid, tid, flags, size, cg
            e.comm = _s(comm)
            e.container_key, e.seq, e.replay = key, r.seq, bool(r.flags & _READF_REPLAY)
            if etype == 3:
                e.filename, e.ptr, e.call_site, e.symbol = _s(data), 0, 0, None
            else:
                e.filename = ""
                e.ptr, e.call_site = _MEM.unpack_from(data)[:2]
                e.symbol = self._symbol(flags, e.call_site)
            (e.namespace, e.pod, e.container, e.pod_uid, e.container_id,
             e.runtime) = self._meta_of(r.meta) if r.meta else _NO_META
            out.append(e)
        return out

    def records(self, timeout=None):
        """Yields Event and Lost records as they come (forever, or until a
        read times out when timeout is given)."""
        while True:
            batch = self.read(timeout)
            if not batch and timeout is not None:
                return
            yield from batch
