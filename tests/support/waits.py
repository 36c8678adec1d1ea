"""Polling waits shared by the Python tests."""
import time


def wait_for(pred, timeout, what, show=None, step=0.2):
    """pred()'s first truthy value within timeout seconds, else
    AssertionError naming what was awaited and the last value seen (or
    show()'s, when given)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(step)
    raise AssertionError("timed out waiting for %s (now: %r)" %
                         (what, show() if show else last))
