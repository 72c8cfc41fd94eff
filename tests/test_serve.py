"""`net9 serve` as a user runs it: a separate process, driven from the
outside by real 9P clients (python-9p), over a unix socket, TCP and
standard input/output; with a TUN in a private network namespace, the
Linux kernel's TCP on the other side (python3 -m http.server, curl)."""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from net9 import ninep

pytest.importorskip("net9.stack", reason="net9.stack (the event loop) not built yet")
py9p = pytest.importorskip("py9p", reason="python-9p not installed")

from linuxns import Netns, missing  # noqa: E402
from served import CMD, Serve, linux_www, net9env  # noqa: E402,F401  (test_robust imports them from here too)

ORDWR = 2


def attach(sock, uname="root"):
    c = py9p.Client.connect_unix(sock)
    c.negotiate()
    c.attach(0, uname=uname)
    return c


def test_serve_loopback_unix_and_tcp_then_sigint():
    d = tempfile.mkdtemp()
    sock = os.path.join(d, "ns", "net9")
    s = Serve("--tun", "none", "--srv", "unix!" + sock, "--srv", "tcp!127.0.0.1!0",
              "--eve", "glenda", wait=r"serving 9P on tcp!")
    try:
        port = int(s.expect(r"serving 9P on tcp!").rsplit("!", 1)[1])
        assert oct(os.stat(sock).st_mode & 0o777) == "0o600"
        s.expect(r"mount it: .*9pfuse 'unix!%s'" % re.escape(sock))
        c = attach(sock, "glenda")
        c.walk(0, 1, "")
        c.open(1)
        names = [x[7] for x in ninep.unpackstats(c.read(1))]
        # devip's files, then cs and dns, as Plan 9 unions them into /net
        assert names[0] == "tcp" and names[-8:] == ["arp", "bootp", "ndb", "iproute",
                                                     "ipselftab", "log", "cs", "dns"]
        # loopback: a conversation connects to an announcement, all inside net9
        c.walk(0, 2, "tcp/clone")
        c.open(2, ORDWR)
        ln = int(c.read(2))
        c.write(2, b"announce 9999")
        c.walk(0, 3, "tcp/clone")
        c.open(3, ORDWR)
        cn = int(c.read(3))
        c.write(3, b"connect 127.0.0.1!9999")
        c.walk(0, 4, "tcp/%d/listen" % ln)
        q, _ = c.open(4, ORDWR)
        an = int(c.read(4))
        assert q.path == (an << 5) | 12
        t = py9p.Client.connect_tcp("127.0.0.1", port)
        t.negotiate()
        t.attach(0, uname="glenda")
        t.walk(0, 1, "tcp/%d/status" % cn)
        t.open(1)
        assert t.read(1).startswith(b"Established ")
        t.close()
        c.close()
        assert s.stop(signal.SIGINT) == 0
        assert not os.path.exists(sock)
        assert any("stopping" in ln for ln in s.lines if ln)
    finally:
        s.stop(signal.SIGKILL)
        shutil.rmtree(d, ignore_errors=True)


def test_serve_stdio():
    s = Serve("--tun", "none", "--srv", "-", stdio=True, wait=r"serving 9P on stdio")
    try:
        s.p.stdin.write(ninep.pack(ninep.Tversion, 0xFFFF, 8192, "9P2000.L"))
        s.p.stdin.write(ninep.pack(ninep.Tattach, 1, 0, ninep.NOFID, "", "", 0))
        s.p.stdin.write(ninep.pack(ninep.Twalk, 2, 0, 1, ["tcp", "stats"]))
        s.p.stdin.write(ninep.pack(ninep.Tlopen, 3, 1, 0))
        s.p.stdin.write(ninep.pack(ninep.Tread, 4, 1, 0, 8000))
        s.p.stdin.flush()
        got = []
        for _ in range(5):
            hdr = s.p.stdout.read(4)
            n = int.from_bytes(hdr, "little")
            got.append(ninep.unpackr(hdr + s.p.stdout.read(n - 4)))
        assert got[0][3] == "9P2000.L" and got[1][0] == ninep.Rattach
        assert got[4][0] == ninep.Rread and got[4][2].startswith(b"MaxConn: ")
        s.p.stdin.close()          # end of input: the connection is gone
    finally:
        s.stop()


def test_serve_refuses_non_loopback_tcp():
    s = Serve("--tun", "none", "--srv", "tcp!10.1.2.3!5640", wait=None)
    assert s.p.wait(20) == 1
    s.expect(r"refusing to serve 9P on non-loopback address 10\.1\.2\.3")


@pytest.mark.kernel
@pytest.mark.skipif(missing() is not None, reason=missing() or "")
def test_serve_tun_in_netns_http_and_listen():
    """The recipes of devip.md 13.7 against Linux: connect to an HTTP server
    in the namespace, then announce and accept curl's call; SIGTERM removes
    the TUN and the socket."""
    ns = Netns()
    d = tempfile.mkdtemp()
    www = linux_www(d)
    sock = os.path.join(d, "net9")
    http = None
    s = Serve("--netns", ns.name, "--srv", "unix!" + sock)
    try:
        s.expect(r"created TUN net9 in namespace %s .*net9 is 10\.9\.0\.2/24 fd09::2/64, "
                 r"Linux is 10\.9\.0\.1/24 fd09::1/64" % ns.name)
        http = ns.popen(sys.executable, "-m", "http.server", "8000", "--bind", "10.9.0.1",
                        cwd=www)
        c = attach(sock)
        c.walk(0, 1, "tcp/clone")
        c.open(1, ORDWR)
        n = int(c.read(1))
        for _ in range(50):
            try:
                c.write(1, b"connect 10.9.0.1!8000\n")
                break
            except py9p.RemoteError as e:
                assert "connection refused" in str(e)   # the server not up yet
                c.clunk(1)
                c.walk(0, 1, "tcp/clone")
                c.open(1, ORDWR)
                n = int(c.read(1))
                time.sleep(0.1)
        c.walk(0, 2, "tcp/%d/data" % n)
        c.open(2, ORDWR)
        c.write(2, b"GET /index.html HTTP/1.0\r\n\r\n")
        out = b""
        while True:
            x = c.read(2)
            if not x:
                break
            out += x
        assert out.startswith(b"HTTP/1.0 200") and out.endswith(b"\r\n\r\nhello from linux\n")
        c.walk(0, 3, "tcp/%d/remote" % n)
        c.open(3)
        assert c.read(3) == b"10.9.0.1!8000\n"
        c.clunk(3)
        c.clunk(2)
        c.clunk(1)
        # announce; a listen parks; curl from the namespace calls
        c.walk(0, 1, "tcp/clone")
        c.open(1, ORDWR)
        ln = int(c.read(1))
        c.write(1, b"announce 8080")
        c.walk(0, 2, "tcp/%d/listen" % ln)
        curl = ns.popen("curl", "-s", "-m", "20", "http://10.9.0.2:8080/x",
                        stdout=subprocess.PIPE)
        q, _ = c.open(2, ORDWR)
        an = int(c.read(2))
        c.walk(0, 3, "tcp/%d/data" % an)
        c.open(3, ORDWR)
        req = b""
        while b"\r\n\r\n" not in req:
            req += c.read(3)
        assert req.startswith(b"GET /x HTTP/1.1\r\n")
        c.write(3, b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nfrom9\n")
        c.clunk(3)
        c.clunk(2)
        assert curl.stdout.read() == b"from9\n"
        assert curl.wait(20) == 0
        c.close()
        assert s.stop() == 0
        assert not os.path.exists(sock)
        r = ns.run("ip", "link", "show", "net9")
        assert r.returncode != 0                       # the TUN is gone
    finally:
        s.stop(signal.SIGKILL)
        if http is not None:
            http.kill()
            http.wait()
        ns.close()
        shutil.rmtree(d, ignore_errors=True)


def test_serve_ip_files_and_errors():
    """The files rendered by net9.ip through the server, and their errors
    (devip.md 10-12), as eve."""
    d = tempfile.mkdtemp()
    sock = os.path.join(d, "net9")
    s = Serve("--tun", "none", "--srv", "unix!" + sock, "--eve", "glenda")
    try:
        c = attach(sock, "glenda")
        c.walk(0, 1, "iproute")
        c.open(1, ORDWR)
        routes = c.read(1).decode()
        assert re.search(r"^127\.0\.0\.0 +/104 127\.0\.0\.0 +4i +ifc +\d", routes, re.M)
        for msg, err in ((b"", None), (b"bogus", "bad process or channel control request"),
                         (b"add 10.1.0.0 255.255.0.0", "bad process or channel control request"),
                         (b"add x 255.255.0.0 127.0.0.1", "bad ip address syntax")):
            if err is None:
                continue
            with pytest.raises(py9p.RemoteError, match=re.escape(err)):
                c.write(1, msg)
        c.walk(0, 2, "ipselftab")
        c.open(2)
        assert re.search(r"^127\.0\.0\.1 +01 +4u", c.read(2).decode(), re.M)
        c.walk(0, 3, "arp")
        c.open(3, ORDWR)
        assert c.read(3) == b""
        with pytest.raises(py9p.RemoteError, match="bad arp"):
            c.write(3, b"bogus")
        # ipifc: the loopback interface is conversation 0; no announce there
        c.walk(0, 4, "ipifc/0/status")
        c.open(4)
        assert c.read(4).startswith(b"device loopback maxtu ")
        c.walk(0, 5, "ipifc/0/ctl")
        c.open(5, ORDWR)
        with pytest.raises(py9p.RemoteError, match="announce not supported"):
            c.write(5, b"announce 80")
        c.walk(0, 6, "ipifc/stats")
        c.open(6)
        assert c.read(6).decode().splitlines()[0].startswith("Forwarding: ")
        c.walk(0, 7, "icmp/stats")
        c.open(7)
        assert c.read(7).decode().splitlines()[0].startswith("InMsgs: ")
        c.close()
        assert s.stop() == 0
    finally:
        s.stop(signal.SIGKILL)
        shutil.rmtree(d, ignore_errors=True)


def test_serve_maxconv_per_user():
    """--maxconv-per-user N: the N+1st clone of one user and protocol gets
    devip's "no free devices"; another user, or another protocol, is not
    held back."""
    d = tempfile.mkdtemp()
    sock = os.path.join(d, "net9")
    s = Serve("--tun", "none", "--srv", "unix!" + sock, "--maxconv-per-user", "2")
    try:
        s.expect(r"at most 2 conversations per user and protocol")
        a = attach(sock, "alice")
        b = attach(sock, "bob")
        for fid in (1, 2):
            a.walk(0, fid, "tcp/clone")
            a.open(fid, ORDWR)
        a.walk(0, 3, "tcp/clone")
        with pytest.raises(py9p.RemoteError, match="no free devices"):
            a.open(3, ORDWR)
        a.walk(0, 4, "udp/clone")
        a.open(4, ORDWR)
        b.walk(0, 1, "tcp/clone")
        b.open(1, ORDWR)
        a.clunk(1)
        a.walk(0, 5, "tcp/clone")
        a.open(5, ORDWR)
        a.close()
        b.close()
        assert s.stop() == 0
    finally:
        s.stop(signal.SIGKILL)
        shutil.rmtree(d, ignore_errors=True)


def test_serve_as_a_library(tmp_path):
    """net9.serve.Serving: what `net9 serve` runs, without the command: a
    loopback-only stack served on a unix socket, a client dials through
    it, stop() ends run(), which takes the socket away."""
    from net9.dial import Net
    from net9.serve import Serving
    said = []
    path = str(tmp_path / "net9.sock")
    s = Serving(tun=None, srvs=["unix!" + path], eve="glenda", cs=False, say=said.append)
    assert os.path.exists(path) and s.stack.tun is None
    got = []

    def client():
        try:
            net = Net(srv="unix!" + path, user="glenda")
            ann = net.announce("tcp!127.0.0.1!7007")
            c = net.dial("tcp!127.0.0.1!7007")
            got.append(c.dir)
            c.close()
            ann.close()
        finally:
            s.stop()                  # any thread
    t = threading.Thread(target=client)
    t.start()
    s.run(signals=())
    t.join()
    assert got and got[0].startswith("/net/tcp/")
    assert not os.path.exists(path)
    assert "serving 9P on unix!%s" % path in said and "removed %s" % path in said
