"""The modern TCP profile against the Linux kernel's TCP (TUN in a private
network namespace): SACK-permitted and timestamps negotiated both ways (read
from a pcap of the TUN with tshark), data both
ways with SACK and timestamps in use, and a blind RST with an in-window but
inexact sequence number answered by a challenge ACK (RFC 5961 section 3.2)
without killing the connection.  (Linux's side of the negotiation is read
from the wire: its segments after the handshake carry timestamps echoing
net9's.)

Skipped with the reason when not root or without /dev/net/tun, ip or
pyroute2 (tshark: only the capture checks are skipped without it).
"""

import os
import random
import shutil
import signal
import socket
import subprocess
import time

import pytest

import linuxns

pytestmark = linuxns.skip_unless_linux()

from net9 import sim  # noqa: E402
from net9.media import Capture, Tun, Wrapper  # noqa: E402

HOST4, NET4 = "10.9.0.1", "10.9.0.2"
WATCHDOG = 120


@pytest.fixture(autouse=True)
def watchdog():
    def expired(signum, frame):
        raise TimeoutError("test exceeded its %d s watchdog" % WATCHDOG)
    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(WATCHDOG)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def ns():
    n = linuxns.Netns()
    yield n
    n.close()


class Tap(Wrapper):
    def __init__(self, medium):
        super().__init__(medium)
        self.out = []

    def transmit(self, pkt):
        self.out.append(bytes(pkt))
        self.medium.transmit(pkt)


_n = [0]


@pytest.fixture
def stack(ns, tmp_path):
    from net9.stack import Stack
    _n[0] += 1
    tun = Tun("n9md%d" % _n[0], mtu=1500, host_addrs=[HOST4 + "/24"], netns=ns.name)
    cap = Capture(tun, str(tmp_path / "tun.pcap"))
    tap = Tap(cap)
    st = Stack(tun=None, medium=tap, addrs=[NET4 + "/24"], loopback=False, strict=True,
               tcp="modern")
    st.tap = tap
    st.cap = cap
    st.dev = tun.dev
    yield st
    st.close()





def tshark_fields(path):
    """(src, flags, sack_perm, tsval, tsecr) of every TCP segment in the
    capture, read by tshark."""
    r = subprocess.run(["tshark", "-r", path, "-Y", "tcp", "-T", "fields",
                        "-e", "ip.src", "-e", "tcp.flags.syn", "-e", "tcp.flags.ack",
                        "-e", "tcp.options.sack_perm", "-e", "tcp.options.timestamp.tsval",
                        "-e", "tcp.options.timestamp.tsecr"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [line.split("\t") for line in r.stdout.splitlines() if line.strip()]


def check_negotiated(st, c):
    t = st.tcp.tcb(c.c)
    assert t.sack and t.ts, "net9 did not see SACK-permitted and timestamps from Linux"
    st.cap.file.flush()
    if not shutil.which("tshark"):
        return
    rows = tshark_fields(st.cap.path)
    syns = [r for r in rows if r[1] == "1"]
    assert len(syns) == 2, rows
    for _src, _syn, _ack, sackperm, tsval, _tsecr in syns:
        assert sackperm.strip() not in ("", "0") and tsval.strip(), rows
    # Linux uses timestamps after the handshake: its segments carry them,
    # echoing net9's TSvals
    ours = {r[4] for r in rows if r[0] == NET4}
    linux = [r for r in rows if r[0] == HOST4 and r[1] == "0"]
    assert linux and all(r[4] and r[5] in ours for r in linux), rows


def test_sack_and_timestamps_negotiated_dialing_linux(stack, ns):
    st = stack
    c, s = linuxns.net9_dials(st, ns, HOST4)
    linuxns.both_ways(st, c, s, os.urandom(1_000_000), os.urandom(1_000_000))
    check_negotiated(st, c)
    assert st.tcp.xstat("TsRttSamples") > 0
    c.close()
    s.close()


def test_sack_and_timestamps_negotiated_linux_dialing(stack, ns):
    st = stack
    ln = st.announce("7101")
    cs, c = linuxns.linux_calls(ns, socket.AF_INET, NET4, 7101, ln)
    a = os.urandom(300_000)
    c.write(a)
    assert linuxns.pump(st, cs, len(a)) == a
    check_negotiated(st, c)
    c.close()
    cs.close()


def test_blind_in_window_rst_does_not_kill(stack, ns):
    st = stack
    c, s = linuxns.net9_dials(st, ns, HOST4)
    t = st.tcp.tcb(c.c)
    conv = c.c
    rng = random.Random(12)
    ps = ns.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    mark = len(st.tap.out)
    try:
        for _ in range(3):
            seq = (t.rcv_nxt + 1 + rng.randrange(t.rcv_wnd - 1)) & 0xFFFFFFFF
            pkt = sim.build(HOST4, NET4, conv.rport, conv.lport, seq=seq, flags="R",
                            window=0)
            ps.sendto(pkt, (st.dev, 0x0800))
            st.run(timeout=0.02)
    finally:
        ps.close()
    st.run(timeout=0.05)
    assert t.statename == "Established"
    out = [sim.parse(p) for p in st.tap.out[mark:]]
    chacks = [g for g in out if g.flags == "A" and not g.payload and g.seq == t.snd_nxt
              and g.ack == t.rcv_nxt]
    assert len(chacks) == 3, [str(g) for g in out]
    assert st.tcp.xstat("RstChallenged") == 3
    # the connection goes on both ways
    linuxns.both_ways(st, c, s, os.urandom(200_000), b"after")
    # the exact RST still resets
    ps = ns.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        ps.sendto(sim.build(HOST4, NET4, conv.rport, conv.lport, seq=t.rcv_nxt, flags="R",
                            window=0), (st.dev, 0x0800))
    finally:
        ps.close()
    assert st.run(until=lambda: t.statename == "Closed", timeout=5)
    s.close()


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "no-offload"])
def test_20mb_both_ways_at_5_percent_loss(ns, offload):
    """net9 serve's setting (modern, offloads on unless told) behind a TUN
    that loses 5% of the datagrams both ways (net9.media.Faults; with
    offloads a datagram can be a super-packet of many segments):
    20 MB each way arrive byte-identical."""
    signal.alarm(600)
    from net9.stack import Stack
    _n[0] += 1
    st = Stack(tun="n9ml%d" % _n[0], netns=ns.name, mtu=1500, addrs=[NET4 + "/24"],
               host_addrs=[HOST4 + "/24"], loopback=False, strict=True, offload=offload,
               tcp="modern", faults=dict(loss=0.05, seed=7))
    try:
        c, s = linuxns.net9_dials(st, ns, HOST4)
        assert st.tcp.tcb(c.c).sack and st.tcp.tcb(c.c).ts
        a = os.urandom(20_000_000)
        t0 = time.monotonic()
        off = 0
        got = bytearray()
        end = time.monotonic() + 400
        while len(got) < len(a):
            assert time.monotonic() < end, "Linux got %d of %d" % (len(got), len(a))
            if off < len(a):
                off += st.tcp.write(c.c, a[off:off + 1 << 20]) if len(c.c.wq) < 4 << 20 else 0
            st.run(timeout=0.002)
            try:
                d = s.recv(1 << 20)
            except BlockingIOError:
                continue
            assert d
            got += d
        t1 = time.monotonic()
        assert bytes(got) == a
        b = os.urandom(20_000_000)
        got = linuxns.linux_sends(st, s, b, lambda: st.tcp.read(c.c, 1 << 22),
                                  timeout=end + 400 - time.monotonic(), chunk=1 << 20)
        t2 = time.monotonic()
        assert got == b
        assert st.medium.counters()["out"]["lost"] > 0 and st.medium.counters()["in"]["lost"] > 0
        print("20 MB at 5%% loss (%s): net9->Linux %.1f MB/s, Linux->net9 %.1f MB/s; "
              "SackRecovery %d RackLost %d TlpProbes %d RetransTimeouts %d"
              % ("offload" if offload else "no offload", 20 / (t1 - t0), 20 / (t2 - t1),
                 st.tcp.xstat("SackRecovery"), st.tcp.xstat("RackLost"),
                 st.tcp.xstat("TlpProbes"), st.tcp.stat("RetransTimeouts")))
        c.close()
        s.close()
    finally:
        st.close()


def test_syn_flood_past_limbo_still_lets_linux_in(stack, ns):
    """1100 spoofed SYNs (addresses on the TUN's subnet that nobody holds:
    Linux drops the SYN-ACKs) fill limbo; Linux's connect() then gets a
    SYN cookie, and the connection works, with SACK, timestamps and window
    scaling brought back through the timestamp."""
    st = stack
    ln = st.announce("7102")
    rng = random.Random(3)
    ps = ns.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        for i in range(1100):
            src = "10.9.0.%d" % (100 + i % 100)
            ps.sendto(sim.build(src, NET4, rng.randrange(1024, 65536), 7102,
                                seq=rng.getrandbits(32), flags="S",
                                options={"mss": 1460, "ws": 7}), (st.dev, 0x0800))
            if i % 50 == 0:
                st.run(timeout=0.001)
    finally:
        ps.close()
    assert st.run(until=lambda: st.tcp.limbocount() >= 1000, timeout=10)
    cs, c = linuxns.linux_calls(ns, socket.AF_INET, NET4, 7102, ln)
    assert st.tcp.xstat("SynCookiesSent") >= 1 and st.tcp.xstat("SynCookiesOk") == 1
    t = st.tcp.tcb(c.c)
    assert t.sack and t.ts and t.rcv_scale > 0
    linuxns.both_ways(st, c, cs, os.urandom(200_000), b"ok")
    c.close()
    cs.close()
