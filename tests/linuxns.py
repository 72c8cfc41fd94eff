"""Helpers for tests that need the Linux kernel: a private network namespace
per test module, the reason to skip when root, /dev/net/tun, network
namespaces or pyroute2 are missing, and commands run inside a namespace."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid

import pytest


def missing() -> str | None:
    """Why kernel tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (creates network namespaces and TUN devices)"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun (kernel without TUN or not exposed to this container)"
    if shutil.which("ip") is None:
        return "no ip command (apt-get install iproute2)"
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        return "no pyroute2 (pip install pyroute2)"
    return None


class _KernelMarks(list):
    """The marks of a test that needs the kernel (root, TUN devices,
    network namespaces): the `kernel` marker, and a skip with the reason
    when something is missing.  As a decorator it marks a test; as a
    module's pytestmark (a list of marks) every test of the module."""

    def __init__(self, reason: str | None):
        super().__init__([pytest.mark.kernel,
                          pytest.mark.skipif(reason is not None, reason=reason or "")])

    def __call__(self, fn):
        for m in self:
            fn = m(fn)
        return fn


def skip_unless_linux():
    """kernel marks for what missing() names (see _KernelMarks)."""
    return _KernelMarks(missing())


def needs_kernel(reason: str | None):
    """kernel marks with a test's own reason to skip (None: it can run)."""
    return _KernelMarks(reason)


class Netns:
    """A network namespace named net9test-<random>, removed by close()."""

    def __init__(self, prefix: str = "net9test"):
        self.name = "%s-%s" % (prefix, uuid.uuid4().hex[:8])
        r = subprocess.run(["ip", "netns", "add", self.name], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip("cannot create a network namespace: %s" % r.stderr.strip())
        self.path = "/var/run/netns/" + self.name
        from pyroute2 import IPRoute
        from net9.media import innetns
        with innetns(self.name):
            ipr = IPRoute()
        try:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        finally:
            ipr.close()

    def cmd(self, *argv) -> list:
        return ["ip", "netns", "exec", self.name] + [str(a) for a in argv]

    def run(self, *argv, timeout: float = 30, check: bool = False, **kw):
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(self.cmd(*argv), timeout=timeout, check=check, **kw)

    def popen(self, *argv, **kw):
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        return subprocess.Popen(self.cmd(*argv), **kw)

    def iproute(self):
        from pyroute2 import IPRoute
        from net9.media import innetns
        with innetns(self.name):
            return IPRoute()

    def socket(self, *args):
        """A socket created inside the namespace."""
        import socket
        from net9.media import innetns
        with innetns(self.name):
            return socket.socket(*args)

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


def linux_dials(ns, family, addr, port):
    """A non-blocking socket of Linux, in namespace ns, whose connect to
    addr!port has begun."""
    c = ns.socket(family, socket.SOCK_STREAM)
    c.setblocking(False)
    try:
        c.connect((addr, port))
    except BlockingIOError:
        pass
    return c


def linux_calls(ns, family, addr, port, ln, timeout=10):
    """Linux, in namespace ns, connects to net9's listener ln (a
    net9.stack Listener) at addr!port: (Linux's socket, left non-blocking,
    and the net9 connection ln accepted)."""
    return linux_dials(ns, family, addr, port), ln.accept(timeout=timeout)


def pump(st, sock, want, timeout=20):
    """Drive the stack st until sock (Linux's, non-blocking) has received
    want bytes (or EOF); what it received."""
    got = bytearray()
    end = time.monotonic() + timeout
    while len(got) < want:
        assert time.monotonic() < end, "Linux got %d of %d bytes" % (len(got), want)
        st.run(timeout=0.005)
        try:
            d = sock.recv(1 << 20)
        except BlockingIOError:
            continue
        if not d:
            break
        got += d
    return bytes(got)


def send_all(st, sock, data, timeout=20):
    """Send data on sock (Linux's, non-blocking), driving the stack st
    while Linux's buffer is full."""
    off = 0
    end = time.monotonic() + timeout
    while off < len(data):
        assert time.monotonic() < end
        try:
            off += sock.send(data[off:off + 65536])
        except BlockingIOError:
            pass
        st.run(timeout=0.002)


def linux_sends(st, sock, data, read, timeout=30, chunk=65536, poll=0.002):
    """data from sock (Linux's, non-blocking) to net9, driving the stack st
    and taking what net9 received with read() (b"" when nothing) as it
    comes, so that no queue on the way caps the transfer; what net9 read."""
    got = bytearray()
    off = 0
    end = time.monotonic() + timeout
    while len(got) < len(data):
        assert time.monotonic() < end, "net9 got %d of %d" % (len(got), len(data))
        if off < len(data):
            try:
                off += sock.send(data[off:off + chunk])
            except BlockingIOError:
                pass
        st.run(timeout=poll)
        d = read()
        if d:
            got += d
    return bytes(got)


def both_ways(st, c, s, a, b):
    """a from net9 (the stack st's Conn c) to Linux (s, non-blocking), then
    b from Linux to net9: each arrives whole."""
    c.write(a)
    assert pump(st, s, len(a)) == a
    send_all(st, s, b)
    got = bytearray()
    while len(got) < len(b):
        got += c.read(1 << 20, timeout=10)
    assert bytes(got) == b


def net9_dials(st, ns, host, rcvbuf=None, timeout=10):
    """net9 (the stack st) dials a Linux listener on host in the namespace
    ns, driving st until Linux accepts: (net9 Conn, Linux's socket, non-blocking)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    ls = ns.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if rcvbuf:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    ls.bind((host, 0))
    ls.listen(4)
    ls.setblocking(False)
    port = ls.getsockname()[1]
    c = st.dial("%s!%d" % (host, port), timeout=timeout)
    end = time.monotonic() + timeout
    while True:
        try:
            s, _ = ls.accept()
            break
        except BlockingIOError:
            assert time.monotonic() < end
            st.run(timeout=0.005)
    ls.close()
    s.setblocking(False)
    return c, s
