"""Start and stop a real kmon-agent for tests, and read what it printed.

The agent runs with --print (events as JSON lines on stdout, into a file so a
slow reader can never stall it) and reports its totals as one JSON line on
stderr at exit.
"""
import json
import os
import signal
import subprocess
import tempfile
import time


class Agent:
    def __init__(self, binary, args, env=None):
        self.dir = tempfile.mkdtemp(prefix="kmon-agent-")
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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.proc.poll() is not None:
                raise AssertionError("agent exited (%s) before logging %r:\n%s"
                                     % (self.proc.returncode, text, self.log()))
            time.sleep(0.05)
        raise AssertionError("agent did not log %r within %ss:\n%s" % (text, timeout, self.log()))

    def wait_attached(self):
        self.wait_for_log("attached:")

    def stop(self, timeout=30.0):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        rc = self.proc.wait(timeout=timeout)
        self.out.close()
        self.err.close()
        for line in self.log().splitlines():
            if line.startswith('{"totals"'):
                self.totals = json.loads(line)["totals"]
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
