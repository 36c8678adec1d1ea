#!/usr/bin/env python3
"""Fails when a lower layer includes a higher one (README "Layering").

Every #include "..." in the tree's C sources and headers is checked against
the folders its own folder may include; each offence is printed as
file:line: what it includes, and which folders were allowed.
Usage: layering.py [REPO]  (default: the repository this file is in)
"""
import os
import re
import sys

# Most specific folder first; a file belongs to the first that prefixes it.
# Each layer may include itself and what is listed (folders, by prefix).
LAYERS = [
    ("bpf/", []),
    ("shm/common/", ["bpf/", "shm/"]),
    ("shm/", ["bpf/"]),
    ("k8s/", ["bpf/", "shm/"]),
    ("agent/", ["bpf/", "shm/", "k8s/"]),
    ("consumers/lib/", ["bpf/", "shm/"]),
    ("consumers/examples/", ["consumers/lib/", "bpf/", "shm/"]),
    # The consumer programs' shared command line (kmon_consumer_cli).
    ("consumers/common/", ["consumers/lib/", "bpf/", "shm/"]),
    ("consumers/forward/", ["consumers/lib/", "consumers/common/", "bpf/", "shm/", "k8s/"]),
    # The memory ledger: pure accounting shared by kmon-aggregate and kmon-top.
    ("consumers/ledger/", ["bpf/", "shm/"]),
    ("consumers/aggregate/", ["consumers/lib/", "consumers/common/", "consumers/ledger/",
                              "bpf/", "shm/", "k8s/"]),
    ("consumers/top/", ["consumers/lib/", "consumers/common/", "consumers/ledger/",
                        "bpf/", "shm/", "k8s/"]),
    ("consumers/", ["consumers/lib/", "bpf/", "shm/", "k8s/"]),
]
# shm/ (the transport) must not reach up into shm/common/, nor libkmon (built
# from its own sources into the SDK) into it.
NOT = {"shm/": ["shm/common/"], "consumers/lib/": ["shm/common/"]}
SOURCES = (".c", ".h")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def layer_of(path):
    for name, allowed in LAYERS:
        if path.startswith(name):
            return name, allowed
    return None, None


def check(repo):
    bad = []
    for top in ("bpf", "shm", "k8s", "agent", "consumers"):
        for root, _dirs, files in os.walk(os.path.join(repo, top)):
            for f in sorted(files):
                if not f.endswith(SOURCES):
                    continue
                full = os.path.join(root, f)
                rel = os.path.relpath(full, repo)
                name, allowed = layer_of(rel)
                with open(full, encoding="utf-8", errors="replace") as fh:
                    for n, line in enumerate(fh, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        inc = m.group(1)
                        if "/" not in inc:
                            continue  # same folder or generated (vmlinux.h, *.skel.h)
                        ok = inc.startswith(name) or any(inc.startswith(a) for a in allowed)
                        if any(inc.startswith(x) for x in NOT.get(name, [])):
                            ok = False
                        if not ok:
                            bad.append("%s:%d: %s includes \"%s\" (may include %s)"
                                       % (rel, n, name, inc, ", ".join([name] + allowed)))
    return bad


def self_test():
    """The check must catch what it is for: a planted offence per rule."""
    import tempfile
    plant = {
        "agent/x.c": '#include "consumers/lib/client.h"\n#include "k8s/cgroup.h"\n',
        "shm/ring.c": '#include "shm/common/log.h"\n#include "bpf/kmon_event.h"\n',
        "shm/common/y.c": '#include "agent/fanout.h"\n',
        "bpf/z.h": '#include "shm/meta.h"\n',
        "consumers/lib/c.c": '#include "shm/common/event_json.h"\n',
        "consumers/forward/f.c": '#include "consumers/aggregate/aggtable.h"\n',
        "k8s/k.c": '#include "agent/tracker.h"\n',
    }
    with tempfile.TemporaryDirectory() as d:
        for rel, text in plant.items():
            os.makedirs(os.path.dirname(os.path.join(d, rel)), exist_ok=True)
            with open(os.path.join(d, rel), "w") as fh:
                fh.write(text)
        got = sorted(b.split(":")[0] + ":" + b.split(":")[1] for b in check(d))
    want = sorted(["agent/x.c:1", "shm/ring.c:1", "shm/common/y.c:1", "bpf/z.h:1",
                   "consumers/lib/c.c:1", "consumers/forward/f.c:1", "k8s/k.c:1"])
    if got != want:
        print("layering self-test: caught %s, expected %s" % (got, want), file=sys.stderr)
        return 1
    print("layering self-test: ok (%d planted offences caught)" % len(want))
    return 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    repo = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..")
    repo = os.path.abspath(repo)
    if not os.path.isdir(os.path.join(repo, "shm")):
        print("layering: %s is not the kmon tree" % repo, file=sys.stderr)
        return 2
    bad = check(repo)
    for b in bad:
        print(b)
    if bad:
        print("layering: %d include(s) point up a layer" % len(bad), file=sys.stderr)
        return 1
    print("layering: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
