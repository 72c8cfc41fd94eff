"""UDP and ICMP against the Linux kernel: a net9 stack (net9.stack.Stack)
on a TUN inside a private network namespace; Linux is 10.77.0.1 /
fd77::1, net9 10.77.0.2 / fd77::2.  Real peers only: a Python UDP echo
server and clients in the namespace, Linux ping, raw sockets for
malformed packets, /proc/net/snmp for Linux's ICMP counters; `net9 ping`
as a process talking 9P to a server over this stack.  Skipped without
root, /dev/net/tun, ip or pyroute2."""

import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading

import pytest

import net9
from net9.csum import cksum
from net9.errors import Net9Error

import linuxns
from linuxns import Netns

pytestmark = linuxns.skip_unless_linux()

HERE = os.path.dirname(os.path.abspath(__file__))
CMD = os.path.join(os.path.dirname(HERE), "cmd", "net9")
LNX, LNX6 = "10.77.0.1", "fd77::1"
N9, N96 = "10.77.0.2", "fd77::2"
PORT = 5300

ECHO = r'''
import select, socket, sys, time
s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
for s in (s4, s6):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s4.bind(("%s", %d))
s6.bind(("%s", %d))
print("ready", flush=True)
end = time.time() + 120
while time.time() < end:
    r, _, _ = select.select([s4, s6], [], [], 0.5)
    for s in r:
        d, a = s.recvfrom(70000)
        s.sendto(d, a)
''' % (LNX, PORT, LNX6, PORT)

# three clients at once: each sends its query before any reply is read;
# prints what each got back as JSON
CLIENTS = r'''
import json, select, socket, sys, time
fam = socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET
dst = (sys.argv[2], int(sys.argv[3]))
socks = [socket.socket(fam, socket.SOCK_DGRAM) for _ in range(3)]
for i, s in enumerate(socks):
    s.sendto(b"query from client %d" % i, dst)
got = {}
end = time.time() + 15
while len(got) < 3 and time.time() < end:
    r, _, _ = select.select(socks, [], [], 0.5)
    for s in r:
        d, a = s.recvfrom(2000)
        got[socks.index(s)] = [d.decode(), a[0], a[1], s.getsockname()[1]]
print(json.dumps(got), flush=True)
'''


def net9env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(net9.__file__))
    return env


@pytest.fixture(scope="module")
def env():
    from net9.stack import Stack
    ns = Netns()
    st = None
    echo = None
    try:
        st = Stack(tun="n9udp", netns=ns.name, addrs=[N9 + "/24", N96 + "/64"],
                   host_addrs=[LNX + "/24", LNX6 + "/64"], loopback=False)
        echo = ns.popen(sys.executable, "-c", ECHO, stdout=subprocess.PIPE)
        assert echo.stdout.readline().strip() == b"ready"
        yield ns, st
    finally:
        if echo is not None:
            echo.kill()
            echo.wait()
        if st is not None:
            st.close()
        ns.close()


def dial(st, addr, headers=False, announce=False):
    p = st.udp
    c = p.clone("u")
    if headers:
        p.ctl(c, "headers")
    p.ctl(c, ("announce " if announce else "connect ") + addr)
    return c


def recv(st, p, c, n=1 << 17, timeout=10):
    """One datagram read from c, running the stack until it comes; a read
    error is returned as its text."""
    box = []

    def ready():
        try:
            d = p.read(c, n)
        except Net9Error as e:
            box.append(str(e))
            return True
        if d is not None:
            box.append(d)
            return True
        return False
    assert st.run(until=ready, timeout=timeout), "nothing arrived in %ds" % timeout
    return box[0]


def runproc(st, proc, timeout=30):
    """Run the stack until the process exits; its stdout."""
    out = []
    t = threading.Thread(target=lambda: out.append(proc.communicate(timeout=timeout)[0]))
    t.start()
    st.run(until=lambda: not t.is_alive(), timeout=timeout)
    t.join(5)
    return out[0] if out else None


def snmp(ns, proto="Icmp"):
    """Linux's counters for proto from /proc/net/snmp inside the namespace."""
    r = ns.run("cat", "/proc/net/snmp", check=True)
    lines = [l.split() for l in r.stdout.splitlines() if l.startswith(proto + ":")]
    return dict(zip(lines[0][1:], map(int, lines[1][1:])))


def snmp6(ns):
    r = ns.run("cat", "/proc/net/snmp6", check=True)
    return dict((l.split()[0], int(l.split()[1])) for l in r.stdout.splitlines() if l.strip())


# ---------------------------------------------------------------- UDP exchanges

SIZES = [1, 2, 100, 512, 1472, 1473, 4000, 30000, 60000]


@pytest.mark.parametrize("v6", [False, True])
def test_dns_style_echo_keeps_datagram_boundaries(env, v6):
    ns, st = env
    p = st.udp
    c = dial(st, "%s!%d" % (LNX6 if v6 else LNX, PORT))
    for n in SIZES:
        q = bytes((n + i) & 0xFF for i in range(n))
        p.write(c, q)
        assert recv(st, p, c) == q
    # a burst: replies in order, one datagram per read, boundaries kept
    burst = [bytes([i]) * (1 + 997 * i) for i in range(12)]
    for q in burst:
        p.write(c, q)
    assert [recv(st, p, c) for _ in burst] == burst
    # a read shorter than the datagram gets its head only
    p.write(c, b"0123456789")
    assert recv(st, p, c, n=4) == b"0123"
    p.write(c, b"next")
    assert recv(st, p, c) == b"next"
    p.closeconv(c)


def test_largest_v4_datagram(env):
    ns, st = env
    p = st.udp
    c = dial(st, "%s!%d" % (LNX, PORT))
    q = os.urandom(65507)
    p.write(c, q)
    assert recv(st, p, c) == q
    p.closeconv(c)


@pytest.mark.parametrize("v6", [False, True])
def test_headers_mode_serves_three_linux_clients(env, v6):
    ns, st = env
    p = st.udp
    port = 7007 if not v6 else 7008
    s = dial(st, "%d" % port, headers=True, announce=True)
    proc = ns.popen(sys.executable, "-c", CLIENTS, "6" if v6 else "4", N96 if v6 else N9,
                    port, stdout=subprocess.PIPE)
    answered = []

    def serve():
        while True:
            d = p.read(s, 70000)
            if d is None:
                return proc.poll() is not None
            # answer on the same header: back to that client's address/port
            answered.append(d[:52])
            p.write(s, d[:52] + b"answer to " + d[52:])
    box = []
    t = threading.Thread(target=lambda: box.append(proc.communicate(timeout=30)[0]))
    t.start()
    st.run(until=lambda: serve() and not t.is_alive(), timeout=30)
    t.join(5)
    got = json.loads(box[0])
    assert sorted(got) == ["0", "1", "2"]
    for i in range(3):
        text, src, sport, myport = got[str(i)]
        assert text == "answer to query from client %d" % i      # each got its own
        assert src == (N96 if v6 else N9) and sport == port
    assert len(answered) == 3 and s.incall == []
    ports = sorted(struct.unpack("!H", h[48:50])[0] for h in answered)
    assert ports == sorted(g[3] for g in got.values())
    want = (socket.inet_pton(socket.AF_INET6, LNX6) if v6
            else b"\0" * 10 + b"\xff\xff" + socket.inet_aton(LNX))
    for h in answered:
        assert h[:16] == want                            # remote: the Linux client
        assert struct.unpack("!H", h[50:52])[0] == port
    p.closeconv(s)


@pytest.mark.parametrize("v6", [False, True])
def test_calls_from_linux_through_listen(env, v6):
    # without headers: each Linux client becomes a call
    ns, st = env
    p = st.udp
    port = 7010 + v6
    s = dial(st, "%d" % port, announce=True)
    proc = ns.popen(sys.executable, "-c", CLIENTS, "6" if v6 else "4", N96 if v6 else N9,
                    port, stdout=subprocess.PIPE)
    box = []
    t = threading.Thread(target=lambda: box.append(proc.communicate(timeout=30)[0]))
    t.start()
    calls = []

    def answer():
        while True:
            k = p.takecall(s)
            if k is None:
                break
            calls.append(k)
            d = p.read(k, 2000)
            p.write(k, b"answer to " + d)
        return not t.is_alive()
    st.run(until=answer, timeout=30)
    t.join(5)
    got = json.loads(box[0])
    assert len(calls) == 3
    assert all(got[str(i)][0] == "answer to query from client %d" % i for i in range(3))
    for k in calls:
        assert p.remotetext(k).startswith((LNX6 if v6 else LNX) + "!")
        p.closeconv(k)
    p.closeconv(s)


# ---------------------------------------------------------------- port unreachable

@pytest.mark.parametrize("v6", [False, True])
def test_closed_port_on_linux_surfaces_as_devip_does(env, v6):
    # Linux answers with ICMP port unreachable; udpadvise hangs the
    # connected conversation up: every read fails with "port unreachable"
    ns, st = env
    p = st.udp
    c = dial(st, "%s!9" % (LNX6 if v6 else LNX))
    p.write(c, b"anyone?")
    assert recv(st, p, c) == "port unreachable"
    with pytest.raises(Net9Error, match="^port unreachable$"):
        p.read(c, 100)
    ic = st.icmp[1] if v6 else st.icmp[0]
    assert ic.typecounts(1 if v6 else 3)[0] >= 1
    # ignoreadvice: the same error leaves the conversation alone
    d = st.udp.clone("u")
    p.ctl(d, "ignoreadvice")
    p.ctl(d, "connect %s!9" % (LNX6 if v6 else LNX))
    n = ic.typecounts(1 if v6 else 3)[0]
    p.write(d, b"anyone?")
    st.run(until=lambda: ic.typecounts(1 if v6 else 3)[0] > n, timeout=10)
    assert not d.rq.ishungup() and p.read(d, 100) is None
    p.closeconv(c)
    p.closeconv(d)


@pytest.mark.parametrize("v6", [False, True])
def test_closed_net9_port_draws_port_unreachable_linux_sees(env, v6):
    ns, st = env
    before = snmp6(ns)["Icmp6InDestUnreachs"] if v6 else snmp(ns)["InDestUnreachs"]
    noports = int(st.udp.stat("NoPorts"))
    # a connected Linux socket turns the ICMP error into ECONNREFUSED
    s = ns.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    s.connect(((N96 if v6 else N9), 9999))
    s.send(b"hello?")
    err = []

    def refused():
        try:
            s.recv(100)
        except ConnectionRefusedError:
            err.append(1)
            return True
        except BlockingIOError:
            pass
        return False
    assert st.run(until=refused, timeout=10)
    s.close()
    assert st.udp.stat("NoPorts") == noports + 1
    after = snmp6(ns)["Icmp6InDestUnreachs"] if v6 else snmp(ns)["InDestUnreachs"]
    assert after == before + 1


# ---------------------------------------------------------------- ping

@pytest.mark.parametrize("v6", [False, True])
def test_linux_ping_to_net9(env, v6):
    ns, st = env
    ic = st.icmp[1] if v6 else st.icmp[0]
    req = 128 if v6 else 8
    n0 = ic.typecounts(req)[0]
    proc = ns.popen("ping", *(["-6"] if v6 else []), "-c", "3", "-i", "0.2", "-W", "3",
                    "-s", "1000", N96 if v6 else N9, stdout=subprocess.PIPE)
    out = runproc(st, proc).decode()
    assert proc.returncode == 0, out
    assert re.search(r"3 packets transmitted, 3 received", out), out
    assert ic.typecounts(req)[0] == n0 + 3
    # icmp.c counts the replies under EchoReply; icmp6.c too (type 0)
    assert ic.typecounts(0)[1] >= 3


def test_net9_ping_conversation_to_linux(env):
    # /net/icmp as ping uses it, straight through the engine
    ns, st = env
    I = st.icmp[0]
    c = I.clone("u")
    I.ctl(c, "connect %s!1" % LNX)
    for seq in range(3):
        I.write(c, bytes(20) + struct.pack("!BBHHH", 8, 0, 0, 0, seq) + bytes(range(36)))
        r = recv(st, I, c)
        assert r[20] == 0 and struct.unpack("!HH", r[24:28]) == (c.lport, seq)
        assert r[28:] == bytes(range(36)) and cksum(r[20:]) == 0
        assert r[12:16] == socket.inet_aton(LNX)
    I.closeconv(c)
    I6 = st.icmp[1]
    d = I6.clone("u")
    I6.ctl(d, "connect %s!1" % LNX6)
    I6.write(d, bytes(40) + struct.pack("!BBHHH", 128, 0, 0, 0, 9) + b"v6 ping")
    r = recv(st, I6, d)
    assert r[40] == 129 and struct.unpack("!HH", r[44:48]) == (d.lport, 9) and r[48:] == b"v6 ping"
    I6.closeconv(d)


class Served:
    """A 9P server over the test's stack, its loop run in a thread."""

    def __init__(self, st):
        from net9.server import Server
        self.st = st
        self.dir = tempfile.mkdtemp()
        self.sock = os.path.join(self.dir, "net9")
        self.srv = Server(st.fs, st.loop, eve="root")
        self.srv.listen("unix!" + self.sock)
        st.wakehooks.append(self.srv.woken)
        self.stop = False
        self.t = threading.Thread(target=lambda: st.loop.run(until=lambda: self.stop, timeout=120),
                                  daemon=True)
        self.t.start()

    def close(self):
        self.stop = True
        self.st.loop.call_soon_threadsafe(lambda: None)
        self.t.join(10)
        self.st.wakehooks.remove(self.srv.woken)
        self.srv.close()

    def ping(self, *args, timeout=60):
        return subprocess.run([sys.executable, CMD, "ping", "--srv", "unix!" + self.sock]
                              + [str(a) for a in args], capture_output=True, timeout=timeout,
                              env=net9env())


def test_net9_ping_command(env):
    ns, st = env
    s = Served(st)
    try:
        r = s.ping("-n", 3, "-i", 200, LNX)
        out = r.stdout.decode()
        assert r.returncode == 0, (out, r.stderr)
        lines = out.splitlines()
        assert lines[0] == "sending 3 64 byte messages 200 ms apart to %s!1" % LNX
        for i in range(3):
            assert re.fullmatch(r"%d: rtt \d+ µs, avg rtt \d+ µs, ttl = 64" % i, lines[1 + i])
        assert re.fullmatch(r"3 sent, 3 received, 0 lost; rtt min/avg/max \d+/\d+/\d+ µs",
                            lines[4])
        r = s.ping("-6", "-a", "-n", 2, "-i", 100, "-s", 1200, LNX6)
        out = r.stdout.decode()
        assert r.returncode == 0, (out, r.stderr)
        lines = out.splitlines()
        assert lines[0] == "sending 2 1200 byte messages 100 ms apart to %s!1" % LNX6
        assert re.fullmatch(r"0: %s -> %s rtt \d+ µs, avg rtt \d+ µs, ttl = 64" % (LNX6, N96),
                            lines[1])
    finally:
        s.close()


@pytest.mark.parametrize("v6", [False, True])
def test_net9_ping_to_an_unrouted_address_reports_the_error(env, v6):
    # net9 routes 10.88.0.0/16 (fd88::/32) through Linux, a router with no
    # route for it: Linux answers with ICMP net unreachable (ICMPv6 no
    # route), the conversation is hung up with that text (icmp.c
    # icmpadvise), and ping prints it, counts the messages lost, exits 1
    ns, st = env
    if v6:
        net, plen, gate, dst, knob = "fd88::", 32, LNX6, "fd88::1", "ipv6/conf/all/forwarding"
    else:
        net, plen, gate, dst, knob = "10.88.0.0", 16, LNX, "10.88.0.1", "ipv4/ip_forward"
    st.ip.addroute(net, plen, gate)
    # the namespace's own /proc/sys/net (no sysctl binary needed)
    ns.run("sh", "-c", "echo 1 > /proc/sys/net/" + knob, check=True)
    s = Served(st)
    try:
        r = s.ping("-n", 2, "-i", 200, "-w", 1000, dst)
        out = r.stdout.decode()
        assert r.returncode == 1, out
        lines = out.splitlines()
        assert lines[0] == "sending 2 64 byte messages 200 ms apart to %s!1" % dst
        assert lines[1] == ("no route to destination" if v6 else "net unreachable"), out
        assert re.search(r"^(1 out of 1|2 out of 2) messages lost$", out, re.M), out
        if not v6:
            # no route at all in net9: everything is lost, as on Plan 9
            r = s.ping("-n", 2, "-i", 100, "-w", 500, "192.0.2.1")
            out = r.stdout.decode()
            assert r.returncode == 1 and "2 out of 2 messages lost" in out, out
            # and no 9P server: a clear error, status 2
            r = subprocess.run([sys.executable, CMD, "ping", "--srv", "unix!" + s.sock + ".none",
                                LNX], capture_output=True, timeout=30, env=net9env())
            assert r.returncode == 2 and b"cannot reach the net9 server" in r.stdout
    finally:
        s.close()
        ns.run("sh", "-c", "echo 0 > /proc/sys/net/" + knob)
        st.ip.delroute(net, plen)


# ---------------------------------------------------------------- malformed input

def test_malformed_udp_and_icmp_from_linux_counted_and_dropped(env):
    ns, st = env
    u0 = dict((k, int(st.udp.stat(k))) for k in ("InDatagrams", "InErrors", "NoPorts"))
    i0 = st.icmp[0].stat("InErrors"), st.icmp[0].stat("CsumErrs"), st.icmp[0].stat("HlenErrs")
    e0 = st.inputerrors
    raw = ns.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)

    def ip4(proto, payload):
        h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, proto, 0,
                        socket.inet_aton(LNX), socket.inet_aton(N9))
        return h + payload

    def udp(sport, dport, data, ulen=None, bad=False):
        ulen = 8 + len(data) if ulen is None else ulen
        m = bytearray(struct.pack("!HHHH", sport, dport, ulen, 0) + data)
        ph = socket.inet_aton(LNX) + socket.inet_aton(N9) + struct.pack("!xBH", 17, len(m))
        s = cksum(ph + bytes(m)) or 0xFFFF
        struct.pack_into("!H", m, 6, s ^ (0x0101 if bad else 0))
        return bytes(m)
    pkts = [
        ip4(17, udp(1000, PORT, b"bad checksum", bad=True)),
        ip4(17, udp(1000, PORT, b"short")[:6]),                    # no whole header
        ip4(17, udp(1000, PORT, b"too long", ulen=200)),           # length past the end
        ip4(17, udp(1000, PORT, b"too short", ulen=4)),            # length under 8
        ip4(1, b"\x08\x00\x00\x00\x00"),                           # ICMP runt
        ip4(1, b"\x08\x00\x12\x34\x00\x01\x00\x01payload"),        # ICMP bad checksum
    ]
    for pk in pkts:
        raw.sendto(pk, (N9, 0))
    raw.close()
    # a v6 UDP datagram with a bad checksum (raw v6 UDP: the kernel leaves
    # the checksum as given)
    raw6 = ns.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_UDP)
    raw6.sendto(struct.pack("!HHHH", 1000, PORT, 12, 0xBEEF) + b"six!", (N96, 0))
    raw6.close()
    want = u0["InDatagrams"] + 5
    assert st.run(until=lambda: st.udp.stat("InDatagrams") >= want
                  and st.icmp[0].stat("InErrors") >= i0[0] + 2, timeout=10)
    assert st.udp.stat("InDatagrams") == want
    assert st.udp.stat("InErrors") == u0["InErrors"] + 5
    assert st.udp.stat("NoPorts") == u0["NoPorts"]
    assert st.udp.stat("LenErrs") >= 3 and st.udp.stat("CsumErrs") >= 2
    assert (st.icmp[0].stat("InErrors"), st.icmp[0].stat("CsumErrs"),
            st.icmp[0].stat("HlenErrs")) == (i0[0] + 2, i0[1] + 1, i0[2] + 1)
    assert st.inputerrors == e0
    # and the stack still answers
    c = dial(st, "%s!%d" % (LNX, PORT))
    st.udp.write(c, b"alive")
    assert recv(st, st.udp, c) == b"alive"
    st.udp.closeconv(c)


def test_stats_texts_after_the_traffic(env):
    ns, st = env
    text = st.udp.stats()
    m = re.fullmatch(r"InDatagrams: (\d+)\nNoPorts: (\d+)\nInErrors: (\d+)\nOutDatagrams: (\d+)\n",
                     text)
    assert m, text
    assert [int(x) for x in m.groups()] == [st.udp.stat(k) for k in
                                            ("InDatagrams", "NoPorts", "InErrors", "OutDatagrams")]
    lines = st.icmp[0].stats().splitlines()
    assert len(lines) == 25 and lines[-1].startswith("AddrMaskReply  : ")
    assert [l.split(":")[0] for l in lines[:6]] == ["InMsgs", "InErrors", "OutMsgs", "CsumErrs",
                                                    "LenErrs", "HlenErrs"]
