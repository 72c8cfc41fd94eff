"""/net/udp, /net/icmp and `net9 ping` through the 9P server, on a stack
with the loopback medium only (no root needed): the protocol directories
and their qids (devip's indices: tcp 0, udp 1, ipifc 3, icmp 4, icmpv6 5),
UDP datagrams written and read over 9P (a parked read woken by arrival),
and the ping command against 127.0.0.1 and ::1 and an unrouted address."""

import os
import re
import subprocess
import sys
import tempfile
import threading

import pytest

import net9
from net9 import ninep
from net9.ping import Client, Dialed, NinepError

pytest.importorskip("net9.stack")

HERE = os.path.dirname(os.path.abspath(__file__))
CMD = os.path.join(os.path.dirname(HERE), "cmd", "net9")


def net9env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(net9.__file__))
    return env


@pytest.fixture
def served():
    from net9.server import Server
    from net9.stack import Stack
    st = Stack(tun=None, loopback=True)
    d = tempfile.mkdtemp()
    sock = os.path.join(d, "net9")
    srv = Server(st.fs, st.loop, eve="glenda")
    srv.listen("unix!" + sock)
    st.wakehooks.append(srv.woken)
    stop = []
    t = threading.Thread(target=lambda: st.loop.run(until=lambda: bool(stop), timeout=120),
                         daemon=True)
    t.start()
    try:
        yield st, "unix!" + sock
    finally:
        stop.append(1)
        st.loop.call_soon_threadsafe(lambda: None)
        t.join(10)
        srv.close()
        st.close()


def test_protocol_directories_and_qids(served):
    st, addr = served
    cl = Client(addr, uname="glenda")
    try:
        for name, index in (("tcp", 0), ("udp", 1), ("ipifc", 3), ("icmp", 4), ("icmpv6", 5)):
            fid = cl.newfid()
            r = cl.check(cl.rpc(ninep.Twalk, cl.root, fid, [name, "clone"]))
            # qid.path = proto << 17 | conv << 5 | type (Qprotodir 8, Qclone 9)
            assert [q[2] for q in r[2]] == [(index << 17) | 8, (index << 17) | 9]
            assert r[2][0][0] == 0x80
            cl.clunk(fid)
        fid = cl.walkopen("udp/stats", 0)
        assert cl.read(fid, 1000) == b"InDatagrams: 0\nNoPorts: 0\nInErrors: 0\nOutDatagrams: 0\n"
        cl.clunk(fid)
    finally:
        cl.close()


def test_udp_over_9p(served):
    st, addr = served
    cl = Client(addr, uname="glenda")
    try:
        srv = Dialed.__new__(Dialed)
        srv.cl, srv.net = cl, "udp"
        srv.ctl = cl.walkopen("udp/clone", 2)
        n = int(cl.read(srv.ctl, 64))
        cl.write(srv.ctl, b"headers")
        cl.write(srv.ctl, b"announce 7777")
        sdata = cl.walkopen("udp/%d/data" % n, 2)
        # a read parks until a datagram comes
        rtag = cl.start(ninep.Tread, sdata, 0, 8192)
        c = Dialed(cl, "udp", "127.0.0.1!7777")
        assert c.remote() == "127.0.0.1!7777"
        cl.write(c.data, b"over 9P")
        r = cl.check(cl.wait(rtag))
        d = r[2]
        assert d[52:] == b"over 9P" and d[50:52] == b"\x1e\x61"          # local port 7777
        assert d[:16] == b"\0" * 10 + b"\xff\xff" + bytes([127, 0, 0, 1])
        # answer with the header: it reaches the dialer; the datagram is
        # read whole, truncated to the count
        cl.write(sdata, d[:52] + b"the answer")
        assert cl.read(c.data, 3) == b"the"
        fid = cl.walkopen("udp/%d/status" % c.n, 0)
        assert cl.read(fid, 100) == b"Open qin 0 qout 0\n"
        cl.clunk(fid)
        # an error: ctl
        with pytest.raises(NinepError, match="^unknown control request$"):
            cl.write(c.ctl, b"frob")
        # a closed port: the error surfaces on the next read
        e = Dialed(cl, "udp", "127.0.0.1!9")
        cl.write(e.data, b"x")
        with pytest.raises(NinepError, match="^port unreachable$"):
            cl.read(e.data, 100)
        fid = cl.walkopen("udp/stats", 0)
        assert re.fullmatch(rb"InDatagrams: 3\nNoPorts: 1\nInErrors: 0\nOutDatagrams: 3\n",
                            cl.read(fid, 1000))
    finally:
        cl.close()


def ping(addr, *args):
    return subprocess.run([sys.executable, CMD, "ping", "--srv", addr] + [str(a) for a in args],
                          capture_output=True, timeout=60, env=net9env())


def test_ping_command_on_loopback(served):
    st, addr = served
    r = ping(addr, "-n", 3, "-i", 50, "127.0.0.1")
    out = r.stdout.decode().splitlines()
    assert r.returncode == 0, (out, r.stderr)
    assert out[0] == "sending 3 64 byte messages 50 ms apart to 127.0.0.1!1"
    assert all(re.fullmatch(r"%d: rtt \d+ µs, avg rtt \d+ µs, ttl = 255" % i, out[1 + i])
               for i in range(3)), out
    assert re.fullmatch(r"3 sent, 3 received, 0 lost; rtt min/avg/max \d+/\d+/\d+ µs", out[4])
    # v6 by the address, with addresses and a bigger size; -q: quiet
    r = ping(addr, "-a", "-n", 2, "-i", 50, "-s", 3000, "::1")
    out = r.stdout.decode().splitlines()
    assert r.returncode == 0, out
    assert out[0] == "sending 2 3000 byte messages 50 ms apart to ::1!1"
    assert re.fullmatch(r"1: ::1 -> ::1 rtt \d+ µs, avg rtt \d+ µs, ttl = 255", out[2])
    r = ping(addr, "-q", "-n", 2, "-i", 10, "127.0.0.1")
    assert r.returncode == 0 and r.stdout == b""
    # the messages' sizes are ping.c's: at least 64, the header area counted
    icmp = st.icmp[0]
    assert icmp.typecounts(8) == (5, 5) and icmp.typecounts(0) == (5, 5)


def test_ping_command_unrouted(served):
    st, addr = served
    r = ping(addr, "-n", 2, "-i", 50, "-w", 300, "192.0.2.7")
    out = r.stdout.decode()
    assert r.returncode == 1
    assert out.splitlines()[1:] == ["lost 0", "lost 1", "2 out of 2 messages lost",
                                    "2 sent, 0 received, 2 lost"]
    r = ping(addr, "-n", 1, "no.such.host.invalid")
    assert r.returncode == 2 and r.stdout.startswith(b"ping: no.such.host.invalid: ")
