"""net9 as a router between Linux peers, and its packets seen by tshark,
as a user runs it: `net9 serve` (as root) with its TUN in namespace A,
a second TUN bound at run time into namespace B (ipifc ctl "bind tun t2
B"), addresses added and iprouting turned on through /net/ipifc; Linux
in A and B pinging and curling each other through it (v4 and v6, with
the TUN offloads on: TCP super-packets cross it), TTL expiry, a network
with no route, an MTU smaller on one side (fragments, ICMP fragmentation
needed, ICMPv6 packet too big), bind errors; then a user-space VPN: a
second net9 serve with no TUN at all, joined to the first by
tests/pktrelay.py over two pkt interfaces, reached from Linux in A and
reaching Linux's web server in A.  Last, `net9 snoop | tshark -r -` while
curl fetches from a `net9 listen`: the TCP stream tshark saw is the one
sent."""

import errno
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

pytest.importorskip("net9.stack", reason="net9.stack not built")

import net9  # noqa: E402
from net9.client import ORDWR  # noqa: E402
from net9.dial import Net  # noqa: E402

import linuxns  # noqa: E402
from linuxns import Netns  # noqa: E402
from served import Serve  # noqa: E402

pytestmark = linuxns.skip_unless_linux()

HERE = os.path.dirname(os.path.abspath(__file__))
CMD = os.path.join(os.path.dirname(HERE), "cmd", "net9")
SIZE = 3 << 20


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(net9.__file__)), HERE])
    e.pop("NET9_SRV", None)
    return e


class Router:
    """net9 serve in A (TUN net9: 10.9.0.2, fd09::2; Linux 10.9.0.1,
    fd09::1) with interface t2 in B (10.10.0.2, fd10::2; Linux 10.10.0.1,
    fd10::1), forwarding."""

    def __init__(self):
        self.a, self.b = Netns(), Netns()
        self.dir = tempfile.mkdtemp()
        self.sock = os.path.join(self.dir, "s")
        self.srv = "unix!" + self.sock
        self.serve = Serve("--netns", self.a.name, "--srv", self.srv)
        self.net = Net(srv=self.srv)
        f = self.net.files
        self.ctl = f.open("ipifc/clone", ORDWR)
        self.x = int(f.readnum(self.ctl))
        for m in ("bind tun t2 " + self.b.name, "add 10.10.0.2 255.255.255.0",
                  "add fd10::2 /64", "iprouting 1"):
            f.write(self.ctl, m.encode())
        b, a = self.b, self.a
        b.run("ip", "addr", "add", "10.10.0.1/24", "dev", "t2", check=True)
        b.run("ip", "addr", "add", "fd10::1/64", "dev", "t2", "nodad", check=True)
        b.run("ip", "route", "add", "default", "via", "10.10.0.2", check=True)
        b.run("ip", "-6", "route", "add", "default", "via", "fd10::2", check=True)
        a.run("ip", "route", "add", "10.10.0.0/24", "via", "10.9.0.2", check=True)
        a.run("ip", "-6", "route", "add", "fd10::/64", "via", "fd09::2", check=True)
        # somewhere net9 has no route to
        a.run("ip", "route", "add", "10.99.0.0/16", "via", "10.9.0.2", check=True)
        a.run("ip", "-6", "route", "add", "fd99::/64", "via", "fd09::2", check=True)
        self.www = os.path.join(self.dir, "www")
        os.makedirs(self.www)
        self.data = random.Random(13).randbytes(SIZE)
        with open(os.path.join(self.www, "file"), "wb") as fp:
            fp.write(self.data)
        self.https = [ns.popen(sys.executable, "-m", "http.server", "8000", "--bind", "::",
                               cwd=self.www) for ns in (a, b)]
        for ns, addr in ((a, "10.9.0.1"), (b, "10.10.0.1")):
            for _ in range(200):
                if ns.run("curl", "-s", "-o", "/dev/null", "http://%s:8000/" % addr,
                          timeout=10).returncode == 0:
                    break
                time.sleep(0.05)

    def ctlmsg(self, msg):
        self.net.files.write(self.ctl, msg.encode())

    def stat(self, name):
        return int(re.search(r"^%s: (\d+)$" % name, self.net.cat("ipifc/stats"), re.M)[1])

    def curl(self, ns, url):
        out = os.path.join(self.dir, "got")
        r = ns.run("curl", "-sS", "--max-time", "60", "-o", out, url, timeout=90)
        assert r.returncode == 0, r.stderr
        with open(out, "rb") as fp:
            return fp.read()

    def close(self):
        for h in self.https:
            h.kill()
            h.wait()
        try:
            self.net.close()
        finally:
            assert self.serve.stop() == 0
            # the TUN bound at run time went with the server
            assert self.b.run("ip", "link", "show", "t2").returncode != 0
            self.a.close()
            self.b.close()
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def router():
    r = Router()
    try:
        yield r
    finally:
        r.close()


def wait_listen(net, port):
    """Until a conversation of net's tcp is announced on port."""
    for _ in range(400):
        for name, _uid, _isdir in net.ls("tcp"):
            if not name.isdigit():
                continue
            try:
                if (net.cat("tcp/%s/status" % name).startswith("Listen")
                        and net.cat("tcp/%s/local" % name).strip().endswith("!%d" % port)):
                    return
            except OSError:
                pass
        time.sleep(0.05)
    raise AssertionError("nothing announced on port %d" % port)


def ping(ns, *args):
    return ns.run("ping", "-n", "-c", "1", "-W", "5", *args, timeout=30)


def test_status_names_the_tuns(router):
    st = router.net.cat("ipifc/%d/status" % router.x)
    assert st.startswith("device t2 maxtu 1500 ")
    assert "\t10.10.0.2 " in st and "\tfd10::2 " in st
    assert router.net.cat("ipifc/0/status").startswith("device net9 maxtu 1500 ")
    assert "Forwarding: 1\n" in router.net.cat("ipifc/stats")


def test_ping_through(router):
    before = router.stat("ForwDatagrams")
    for ns, dst in ((router.a, "10.10.0.1"), (router.a, "fd10::1"),
                    (router.b, "10.9.0.1"), (router.b, "fd09::1")):
        r = ping(ns, dst)
        assert r.returncode == 0, r.stdout + r.stderr
        assert re.search(r"from %s: icmp_seq=1 ttl=63 " % re.escape(dst), r.stdout), r.stdout
    assert router.stat("ForwDatagrams") >= before + 8


def test_curl_through_both_ways(router):
    for ns, url in ((router.a, "http://10.10.0.1:8000/file"),
                    (router.a, "http://[fd10::1]:8000/file"),
                    (router.b, "http://10.9.0.1:8000/file"),
                    (router.b, "http://[fd09::1]:8000/file")):
        assert router.curl(ns, url) == router.data, url


def test_ttl_expiry(router):
    before = router.stat("InHdrErrors")
    r = ping(router.a, "-t", "1", "10.10.0.1")
    assert r.returncode != 0
    assert "From 10.9.0.2 icmp_seq=1 Time to live exceeded" in r.stdout, r.stdout
    r = ping(router.a, "-6", "-t", "1", "fd10::1")
    assert r.returncode != 0
    assert re.search(r"From fd09::2 icmp_seq=1 Time (to live )?exceeded", r.stdout), r.stdout
    assert router.stat("InHdrErrors") == before + 2


def test_network_with_no_route(router):
    before = router.stat("OutDiscards")
    r = ping(router.a, "10.99.0.1")
    assert "From 10.9.0.2 icmp_seq=1 Destination Net Unreachable" in r.stdout, r.stdout
    r = ping(router.a, "-6", "fd99::1")
    assert re.search(r"From fd09::2 icmp_seq=1 Destination unreachable: No route", r.stdout), \
        r.stdout
    # Linux's TCP is told at once (rather than timing out after minutes)
    sk = router.a.socket(socket.AF_INET, socket.SOCK_STREAM)
    sk.settimeout(20)
    with pytest.raises(OSError) as e:
        sk.connect(("10.99.0.1", 8000))
    sk.close()
    assert e.value.errno == errno.ENETUNREACH
    assert router.stat("OutDiscards") >= before + 3


def test_smaller_mtu_on_one_side(router):
    router.ctlmsg("mtu 1280")
    try:
        # Linux's side of the TUN follows the interface's MTU
        assert "mtu 1280 " in router.b.run("ip", "link", "show", "t2").stdout
        frags = router.stat("FragCreates")
        r = ping(router.a, "-M", "dont", "-s", "2000", "10.10.0.1")
        assert r.returncode == 0, r.stdout
        assert router.stat("FragCreates") >= frags + 2
        r = ping(router.a, "-M", "do", "-s", "1400", "10.10.0.1")
        assert "From 10.9.0.2 icmp_seq=1 Frag needed and DF set (mtu = 1280)" in r.stdout, \
            r.stdout
        r = ping(router.a, "-6", "-s", "1400", "fd10::1")
        assert "From fd09::2 icmp_seq=1 Packet too big: mtu=1280" in r.stdout, r.stdout
        # TCP fits itself to it (MSS clamped, path MTU), both ways
        assert router.curl(router.a, "http://10.10.0.1:8000/file") == router.data
        assert router.curl(router.b, "http://[fd09::1]:8000/file") == router.data
    finally:
        router.ctlmsg("mtu 1500")


def test_iprouting_off_drops(router):
    router.ctlmsg("iprouting 0")
    try:
        assert "Forwarding: 2\n" in router.net.cat("ipifc/stats")
        before = router.stat("InAddrErrors")
        r = router.a.run("ping", "-n", "-c", "1", "-W", "1", "10.10.0.1", timeout=30)
        assert r.returncode == 1 and "1 received" not in r.stdout and "From" not in r.stdout
        assert router.stat("InAddrErrors") >= before + 1
    finally:
        router.ctlmsg("iprouting 1")


def test_bind_tun_errors_as_root(router):
    f = router.net.files
    c = f.open("ipifc/clone", ORDWR)
    n = int(f.readnum(c))
    try:
        # a name Linux has for something that is not a free TUN
        with pytest.raises(OSError, match=r"^\[Errno \d+\] tun t2: device or object already in use"):
            f.write(c, ("bind tun t2 " + router.b.name).encode())
        with pytest.raises(OSError, match=r"tun lo: "):
            f.write(c, ("bind tun lo " + router.b.name).encode())
        assert router.b.run("ip", "link", "show", "lo").returncode == 0
        assert router.b.run("ip", "link", "show", "t2").returncode == 0
        with pytest.raises(OSError, match=r"netns nosuchns: file does not exist"):
            f.write(c, b"bind tun t3 nosuchns")
    finally:
        f.close(c)
    # nothing bound, nothing left: the number is free again
    c = f.open("ipifc/clone", ORDWR)
    assert int(f.readnum(c)) == n
    f.close(c)
    assert "t3" not in router.b.run("ip", "-br", "link").stdout


def test_unbind_removes_a_tun_made_at_run_time(router):
    f = router.net.files
    c = f.open("ipifc/clone", ORDWR)
    n = int(f.readnum(c))
    f.write(c, ("bind tun t4 " + router.b.name).encode())
    f.write(c, b"add 10.11.0.2 255.255.255.0")
    f.close(c)                              # a TUN stays bound without its files
    assert router.b.run("ip", "link", "show", "t4").returncode == 0
    assert router.net.cat("ipifc/%d/status" % n).startswith("device t4 ")
    c = f.open("ipifc/%d/ctl" % n, ORDWR)
    f.write(c, b"unbind")
    f.close(c)
    assert router.b.run("ip", "link", "show", "t4").returncode != 0
    assert router.net.cat("ipifc/%d/status" % n).startswith("device  ")


# ---- a VPN in user space: a pkt medium relayed between two net9s ---------------------

def test_pkt_vpn_between_a_tun_and_a_second_net9(router, tmp_path):
    sock2 = str(tmp_path / "s2")
    srv2 = "unix!" + sock2
    other = Serve("--tun", "none", "--srv", srv2)
    relay = None
    try:
        relay = subprocess.Popen([sys.executable, os.path.join(HERE, "pktrelay.py"),
                                  router.srv, "10.50.0.1/24", srv2, "10.50.0.2/24"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=env())
        line = relay.stdout.readline()
        assert line.startswith("ipifc "), relay.stderr.read()
        n2 = Net(srv=srv2)
        rf = n2.files.open("iproute", ORDWR)
        n2.files.write(rf, b"add 0.0.0.0 0.0.0.0 10.50.0.1")
        n2.files.close(rf)
        router.a.run("ip", "route", "add", "10.50.0.0/24", "via", "10.9.0.2", check=True)
        # Linux in A reaches the second net9 through the first and the relay
        r = router.a.run("ping", "-n", "-c", "3", "-i", "0.2", "-W", "5", "10.50.0.2",
                         timeout=30)
        assert r.returncode == 0 and "3 received" in r.stdout, r.stdout + r.stderr
        assert "ttl=254" in r.stdout          # net9 #1 forwarded it; net9 #2 answered
        # and the second net9 fetches from Linux's web server in A: Linux's
        # TCP super-packets are cut into segments for the 4 KB pkt link
        with n2.dial("tcp!10.9.0.1!8000") as c:
            c.sendall(b"GET /file HTTP/1.0\r\n\r\n")
            body = c.read().split(b"\r\n\r\n", 1)[1]
        assert body == router.data
        # and serves Linux: curl in A from a net9 listen in the second net9
        lis = subprocess.Popen([sys.executable, CMD, "listen", "--srv", srv2, "-n", "1",
                                "tcp!*!8080", "sh", "-c",
                                "read req; printf 'HTTP/1.0 200 OK\\r\\n\\r\\n'; cat %s" %
                                os.path.join(router.www, "file")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env())
        wait_listen(n2, 8080)
        assert router.curl(router.a, "http://10.50.0.2:8080/") == router.data
        lis.wait(30)
        n2.close()
    finally:
        router.a.run("ip", "route", "del", "10.50.0.0/24")
        if relay is not None:
            relay.terminate()
            out, err = relay.communicate(timeout=30)
            assert relay.returncode == 0, err
        assert other.stop() == 0
    # the relay's files closed: net9 #1's pkt interface is gone
    assert "pkt" not in " ".join(router.net.cat("ipifc/%d/status" % i).split(" ", 2)[1]
                                 for i in range(2, 8)
                                 if router.net.exists("ipifc/%d" % i))


# ---- snoop read by tshark -------------------------------------------------------------

@pytest.mark.skipif(shutil.which("tshark") is None, reason="no tshark (apt-get install tshark)")
def test_snoop_read_by_tshark_while_curl_runs(router, tmp_path):
    body = random.Random(7).randbytes(400 * 1024)
    bodyf = tmp_path / "body"
    bodyf.write_bytes(body)
    snoop = subprocess.Popen([sys.executable, CMD, "snoop", "--srv", router.srv, "-i", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env())
    tshark = subprocess.Popen(["tshark", "-r", "-", "-l", "-n",
                               "-o", "tcp.desegment_tcp_streams:FALSE",
                               "-T", "fields", "-E", "separator=|",
                               "-e", "ip.src", "-e", "tcp.srcport", "-e", "tcp.seq_raw",
                               "-e", "tcp.flags.syn", "-e", "tcp.payload", "-e", "udp.payload"],
                              stdin=snoop.stdout, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    snoop.stdout.close()
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(tshark.stdout))
    reader.start()
    lis = subprocess.Popen([sys.executable, CMD, "listen", "--srv", router.srv, "-n", "1",
                            "tcp!*!8081", "sh", "-c",
                            "read req; printf 'HTTP/1.0 200 OK\\r\\n\\r\\n'; cat %s" % bodyf],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env())
    def mark(marker):
        # a datagram from Linux, until tshark shows it: then every packet
        # before it has gone through snoop and tshark
        for _ in range(200):
            router.a.run("bash", "-c", "printf %s >/dev/udp/10.9.0.2/9" % marker.decode())
            time.sleep(0.1)
            if any(marker.hex() in ln for ln in list(lines)):
                return
        raise AssertionError("no %s in %s" % (marker, lines[-5:]))
    try:
        wait_listen(router.net, 8081)
        mark(b"snoop-ready")                  # net9 snoop is reading
        got = router.curl(router.a, "http://10.9.0.2:8081/")
        assert got == body
        lis.wait(30)
        mark(b"snoop-done")
    finally:
        snoop.send_signal(signal.SIGTERM)
        assert snoop.wait(30) == 0, snoop.stderr.read()
        tshark.wait(30)
        reader.join(30)
        if lis.poll() is None:
            lis.kill()
    segs = {}
    req = b""
    for ln in lines:
        f = ln.rstrip("\n").split("|")
        if len(f) < 6 or not f[4]:
            continue
        if f[0] == "10.9.0.2" and f[1] == "8081":
            segs[int(f[2])] = bytes.fromhex(f[4])
        elif f[0] == "10.9.0.1" and b"GET / HTTP" in bytes.fromhex(f[4]):
            req = bytes.fromhex(f[4])
    # the server's stream, in sequence order, retransmissions folded
    isn = min(segs) if segs else 0
    stream = bytearray()
    for seq in sorted(segs):
        off = (seq - isn) & 0xFFFFFFFF
        d = segs[seq]
        if off + len(d) > len(stream):
            stream[off:] = d[len(stream) - off:] if off < len(stream) else d
    assert req.startswith(b"GET / HTTP/1.1\r\nHost: 10.9.0.2:8081\r\n"), lines[:12]
    assert bytes(stream) == b"HTTP/1.0 200 OK\r\n\r\n" + body
