"""The Debian mirror this machine's apt already uses, for tests that need one
(debootstrap). Taken from apt itself, so it works wherever apt works and no
mirror is written into the tests."""
import glob
import re
import subprocess


def _from_policy(codename):
    """apt-cache policy pairs each index with its release line; keep the one
    that is Debian's main archive for this release."""
    out = subprocess.run(["apt-cache", "policy"], capture_output=True, text=True,
                         check=False).stdout
    lines = out.splitlines()
    for i, line in enumerate(lines[:-1]):
        m = re.match(r"\s*-?\d+\s+(\S+)\s+(\S+)/main\s", line)
        if not m or m.group(2) != codename:
            continue
        rel = lines[i + 1]
        if "o=Debian," in rel and "n=%s," % codename in rel:
            return m.group(1)
    return None


def _from_sources(codename):
    """Fallback before any `apt-get update`: the sources files themselves."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        with open(path) as f:
            for stanza in f.read().split("\n\n"):
                fields = {}
                for line in stanza.splitlines():
                    if ":" in line and not line.startswith("#"):
                        k, v = line.split(":", 1)
                        fields[k.strip().lower()] = v.split()
                if (codename in fields.get("suites", []) and "main" in
                        fields.get("components", []) and fields.get("uris")
                        and "deb" in fields.get("types", [])):
                    return fields["uris"][0]
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        try:
            with open(path) as f:
                for line in f:
                    w = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
                    if len(w) >= 4 and w[0] == "deb" and w[2] == codename and "main" in w[3:]:
                        return w[1]
        except OSError:
            pass
    return None


def debian_mirror(codename):
    """URI of the Debian archive apt uses for `codename` (e.g. bookworm), or
    raises naming what was looked at."""
    uri = _from_policy(codename) or _from_sources(codename)
    if not uri:
        raise RuntimeError("no Debian '%s' main archive in apt's configuration "
                           "(apt-cache policy, /etc/apt/sources.list*)" % codename)
    return uri


if __name__ == "__main__":
    import sys
    print(debian_mirror(sys.argv[1] if len(sys.argv) > 1 else "bookworm"))
