"""Fixtures and marks shared by the test modules.

Fixtures:
  served          a net9 stack served over 9P in this process (served.Served),
                  one per test; served_module: one per module
  net             a net9.dial.Net attached to `served` as glenda
  ns              a private network namespace (linuxns.Netns), one per module
  linuxhttp       `net9 serve` with a TUN in a private namespace where Linux
                  runs an HTTP server on port 8080 (10.9.0.1, fd09::1):
                  (namespace, 9P address), one per module
  watchdog        (automatic) a module that sets WATCHDOG = seconds gets a
                  SIGALRM after that long in any one test

Marks (pyproject.toml): kernel (root, TUN devices, network namespaces),
slow.  A test that uses ns or linuxhttp is marked kernel here; others
carry the mark themselves (linuxns.skip_unless_linux, needs_kernel)."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile

import pytest

from linuxns import Netns, missing
from served import Serve, Served, linux_www

# fixtures that need the kernel: a test using one is a kernel test
KERNEL_FIXTURES = {"ns", "linuxhttp"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if KERNEL_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kernel)


@pytest.fixture
def served():
    s = Served()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def served_module():
    s = Served()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def net(served):
    from net9.dial import Net
    n = Net(srv=served.addr, user="glenda")
    try:
        yield n
    finally:
        n.close()


@pytest.fixture(autouse=True)
def watchdog(request):
    seconds = getattr(request.module, "WATCHDOG", None)
    if not seconds:
        yield
        return

    def expired(signum, frame):
        raise TimeoutError("test exceeded its %d s watchdog" % seconds)
    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def ns():
    if missing() is not None:
        pytest.skip(missing())
    n = Netns()
    yield n
    n.close()


@pytest.fixture(scope="module")
def linuxhttp():
    if missing() is not None:
        pytest.skip(missing())
    n = Netns()
    d = tempfile.mkdtemp()
    www = linux_www(d)
    sock = os.path.join(d, "net9")
    s = Serve("--netns", n.name, "--srv", "unix!" + sock)
    # dual-stack: 10.9.0.1 and fd09::1, port 8080 ("http-alt")
    http = n.popen(sys.executable, "-m", "http.server", "8080", "--bind", "::", cwd=www)
    try:
        yield n, "unix!" + sock
    finally:
        http.kill()
        http.wait()
        s.stop()
        n.close()
        shutil.rmtree(d, ignore_errors=True)
