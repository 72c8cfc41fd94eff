"""net9.media: Loopback, Link, Capture (pcap written and parsed back, and
read by tshark when it is installed), FaultyMedium (determinism and each fault),
and the TUN device against the Linux kernel (root only)."""

import os
import select
import shutil
import socket
import struct
import subprocess

import pytest

from net9 import media
from net9.sim import cksum  # the Python RFC 1071 sum: an oracle apart from net9.csum
from net9.media import (Capture, FaultyMedium, Link, Loopback, Tun, read_pcap,
                        LINKTYPE_RAW, TUN_MAXMTU, TUN_MINMTU)

import linuxns


def v4udp(src, dst, sport, dport, payload: bytes) -> bytes:
    """A complete IPv4/UDP datagram (checksums right)."""
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    ulen = 8 + len(payload)
    ph = s + d + struct.pack("!BBH", 0, 17, ulen)
    u = struct.pack("!HHHH", sport, dport, ulen, 0) + payload
    uc = cksum(ph + u) or 0xFFFF
    u = u[:6] + struct.pack("!H", uc) + u[8:]
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, 1, 0, 64, 17, 0, s, d)
    h = h[:10] + struct.pack("!H", cksum(h)) + h[12:]
    return h + u


def v6udp(src, dst, sport, dport, payload: bytes) -> bytes:
    s, d = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
    ulen = 8 + len(payload)
    u = struct.pack("!HHHH", sport, dport, ulen, 0) + payload
    ph = s + d + struct.pack("!I3xB", ulen, 17)
    u = u[:6] + struct.pack("!H", cksum(ph + u) or 0xFFFF) + u[8:]
    return struct.pack("!IHBB", 0x60000000, ulen, 17, 64) + s + d + u


PKTS = [v4udp("10.0.0.1", "10.0.0.2", 1000 + i, 7, bytes([i]) * (i * 37 % 200))
        for i in range(10)] + [v6udp("fd00::1", "fd00::2", 5000, 7, b"six" * 50)]


class FakeClock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


# ---------------------------------------------------------------- loopback

def test_loopback_returns_what_was_sent_in_order():
    lo = Loopback()
    # loopbackmedium.c: name "loopback", hsize 0, mintu 0, maxtu 16*1024
    assert (lo.name, lo.hsize, lo.mintu, lo.maxtu) == ("loopback", 0, 0, 16 * 1024)
    assert lo.fileno() is None and not lo.pending() and lo.receive() == []
    for p in PKTS:
        lo.transmit(bytearray(p))
    assert lo.pending()
    got = lo.receive()
    assert got == PKTS and all(type(p) is bytes for p in got)
    assert not lo.pending() and lo.receive() == []
    assert lo.stats()["inpackets"] == lo.stats()["outpackets"] == len(PKTS)


def test_loopback_copies_the_datagram():
    lo = Loopback()
    b = bytearray(PKTS[0])
    lo.transmit(b)
    b[0] = 0
    assert lo.receive() == [PKTS[0]]


def test_loopback_queue_limit_counts_outerr():
    # loopbackbind: qopen(1024*1024, Qmsg): past 1 MB queued, qpass fails and
    # loopbackbwrite counts ifc->outerr (and out)
    lo = Loopback()
    big = bytes(16 * 1024)
    n = (1024 * 1024) // len(big)          # exactly fills 1 MB
    for _ in range(n + 3):
        lo.transmit(big)
    assert lo.outerrs == 3 and lo.outpackets == n + 3
    assert len(lo.receive()) == n
    lo.transmit(big)                       # room again after the reader took all
    assert len(lo.receive()) == 1


# ---------------------------------------------------------------- pair

def test_pair_joins_two_ends_both_ways():
    a, b = Link(mtu=1500)
    assert a.name == b.name == "pair" and a.maxtu == b.maxtu == 1500
    a.transmit(PKTS[1])
    a.transmit(PKTS[2])
    b.transmit(PKTS[3])
    assert b.pending() and a.pending()
    assert b.receive() == [PKTS[1], PKTS[2]]
    assert a.receive() == [PKTS[3]]
    assert not a.pending() and not b.pending()
    assert a.outpackets == 2 and b.inpackets == 2 and b.outpackets == 1 and a.inpackets == 1


def test_pair_limits():
    p = Link(mtu=600, qlimit=5)
    a, b = p
    a.transmit(bytes(601))                 # larger than the MTU: refused
    assert a.outerrs == 1 and not b.pending()
    for _ in range(7):
        a.transmit(bytes(100))
    assert a.outdrops == 2 and len(b.receive()) == 5
    p.close()
    a.transmit(bytes(10))                  # no peer any more
    assert a.outdrops == 3 and b.receive() == []


# ---------------------------------------------------------------- capture

def test_capture_pcap_parses_back(tmp_path):
    path = tmp_path / "c.pcap"
    clk = iter(range(1_700_000_000_000_000_000, 1_800_000_000_000_000_000, 1_234_567))
    lo = Capture(Loopback(), path, clock=lambda: next(clk))
    assert lo.name == "loopback" and lo.maxtu == 16 * 1024 and lo.fileno() is None
    for p in PKTS:
        lo.transmit(p)
    got = lo.receive()
    assert got == PKTS
    lo.close()
    raw = path.read_bytes()
    magic, vmaj, vmin, zone, sigfigs, snaplen, link = struct.unpack_from("<IHHiIII", raw)
    assert (magic, vmaj, vmin, zone, sigfigs, snaplen, link) == (0xA1B2C3D4, 2, 4, 0, 0, 65535,
                                                                 LINKTYPE_RAW)
    assert LINKTYPE_RAW == 101
    recs = read_pcap(path)
    # both directions: every datagram once on the way out, once on the way in
    assert [r[2] for r in recs] == PKTS + PKTS
    assert [r[1] for r in recs] == [len(p) for p in PKTS + PKTS]
    # timestamps: the clock's ns as seconds + microseconds, in order
    t0 = 1_700_000_000_000_000_000
    for i, (t, _, _) in enumerate(recs):
        ns = t0 + i * 1_234_567
        assert abs(t - (ns // 1000) / 1e6) < 1e-6
    assert len(raw) == 24 + sum(16 + len(p) for p in PKTS + PKTS)


def test_capture_snaplen_truncates(tmp_path):
    path = tmp_path / "s.pcap"
    c = Capture(Loopback(), path, snaplen=64)
    c.transmit(PKTS[9])
    c.close()
    (t, orig, data), = read_pcap(path)
    assert orig == len(PKTS[9]) > 64 and data == PKTS[9][:64]


def test_read_pcap_rejects_other_files(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    with pytest.raises(ValueError, match="link type 1"):
        read_pcap(p)
    p.write_bytes(b"\0" * 30)
    with pytest.raises(ValueError):
        read_pcap(p)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_capture_read_by_tshark(tmp_path):
    path = tmp_path / "t.pcap"
    c = Capture(Loopback(), path)
    for p in PKTS:
        c.transmit(p)
    c.close()
    r = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.len",
                        "-e", "ip.src", "-e", "ipv6.src", "-e", "udp.srcport"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rows = [l.split("\t") for l in r.stdout.splitlines()]
    assert len(rows) == len(PKTS)
    for row, p in zip(rows, PKTS):
        assert int(row[0]) == len(p)
    assert [r[1] for r in rows[:10]] == ["10.0.0.1"] * 10
    assert rows[10][2] == "fd00::1"
    assert [int(r[3]) for r in rows] == [1000 + i for i in range(10)] + [5000]


# ---------------------------------------------------------------- faults

def _run_faults(seed, n=2000, **kw):
    clk = FakeClock()
    a, b = Link(qlimit=100000)
    f = FaultyMedium(a, seed=seed, clock=clk, direction="out", **kw)
    sent = [struct.pack("!I", i) * 6 for i in range(n)]
    got = []
    for p in sent:
        f.transmit(p)
        clk.t += 0.001
        f.receive()                        # releases what is due
        got += b.receive()
    clk.t += 10
    f.receive()
    got += b.receive()
    return sent, got, f.counters()["out"]


def test_faults_deterministic_per_seed():
    kw = dict(loss=0.1, reorder=0.1, dup=0.05, corrupt=0.02, delay=3, reorder_delay=7)
    s1, g1, c1 = _run_faults(42, **kw)
    s2, g2, c2 = _run_faults(42, **kw)
    s3, g3, c3 = _run_faults(43, **kw)
    assert g1 == g2 and c1 == c2
    assert g1 != g3
    # every fault happened at about its rate (2000 datagrams, wide bounds)
    assert 120 < c1["lost"] < 280
    assert 120 < c1["reordered"] < 280
    assert 40 < c1["duplicated"] < 170
    assert 10 < c1["corrupted"] < 80
    assert len(g1) == 2000 - c1["lost"] + c1["duplicated"]


def test_faults_loss_all_and_none():
    s, g, c = _run_faults(1, n=300, loss=1.0)
    assert g == [] and c["lost"] == 300
    s, g, c = _run_faults(1, n=300)
    assert g == s and c["lost"] == c["delayed"] == 0 and c["passed"] == 300


def test_faults_corrupt_flips_one_bit():
    s, g, c = _run_faults(5, n=200, corrupt=1.0)
    assert len(g) == 200 and c["corrupted"] == 200
    for a, b in zip(s, g):
        diff = sum(bin(x ^ y).count("1") for x, y in zip(a, b))
        assert diff == 1


def test_faults_dup_delivers_twice():
    s, g, c = _run_faults(5, n=100, dup=1.0)
    assert g == [p for p in s for _ in (0, 1)]


def test_faults_reorder_overtakes_and_delay_holds():
    clk = FakeClock()
    a, b = Link()
    f = FaultyMedium(a, reorder=1.0, reorder_delay=5, seed=0, clock=clk, direction="out")
    f.transmit(PKTS[0])                    # held 5 ms
    assert b.receive() == [] and f.deadline() == pytest.approx(clk.t + 0.005)
    f.reorder = 0.0
    f.transmit(PKTS[1])                    # goes at once: overtakes PKTS[0]
    assert b.receive() == [PKTS[1]]
    clk.t += 0.004
    f.receive()
    assert b.receive() == [] and not f.pending()
    clk.t += 0.002
    assert f.pending()
    f.receive()
    assert b.receive() == [PKTS[0]] and f.deadline() is None

    clk2 = FakeClock()
    lo = FaultyMedium(Loopback(), delay=20, seed=0, clock=clk2, direction="in")
    lo.transmit(PKTS[2])                   # out: untouched
    assert lo.receive() == []              # in: held 20 ms
    assert lo.deadline() == pytest.approx(clk2.t + 0.020)
    clk2.t += 0.021
    assert lo.receive() == [PKTS[2]]
    assert lo.counters() == {"in": {"passed": 1, "lost": 0, "duplicated": 0, "reordered": 0,
                                    "corrupted": 0, "delayed": 1}}


def test_faults_both_directions_independent_streams():
    clk = FakeClock()
    a, b = Link()
    f = FaultyMedium(a, loss=0.5, seed=9, clock=clk)
    for i in range(200):
        f.transmit(PKTS[i % 10])
        b.transmit(PKTS[i % 10])
    got_in = f.receive()
    got_out = b.receive()
    cin, cout = f.counters()["in"], f.counters()["out"]
    assert len(got_in) == 200 - cin["lost"] and len(got_out) == 200 - cout["lost"]
    assert 60 < cin["lost"] < 140 and 60 < cout["lost"] < 140


def test_faults_bad_arguments():
    with pytest.raises(ValueError):
        FaultyMedium(Loopback(), loss=1.5)
    with pytest.raises(ValueError):
        FaultyMedium(Loopback(), direction="sideways")


# ---------------------------------------------------------------- TUN (root)

def test_tun_mtu_bounds_checked_before_opening():
    assert (TUN_MINMTU, TUN_MAXMTU) == (576, 65535)
    with pytest.raises(ValueError):
        Tun("n9x", mtu=575)
    with pytest.raises(ValueError):
        Tun("n9x", mtu=65536)
    with pytest.raises(ValueError):
        Tun("a-name-far-too-long-for-linux")


linux = linuxns.skip_unless_linux()


def _link(ns, name):
    ipr = ns.iproute()
    try:
        idx = ipr.link_lookup(ifname=name)
        if not idx:
            return None, []
        link = ipr.get_links(idx[0])[0]
        addrs = sorted("%s/%d" % (a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                       for a in ipr.get_addr(index=idx[0]))
        return link, addrs
    finally:
        ipr.close()


@linux
@pytest.mark.parametrize("mtu", [576, 1500, 65000, 65535])
def test_tun_created_configured_and_removed(ns, mtu):
    t = Tun("n9m%d" % mtu, mtu=mtu, netns=ns.name,
            host_addrs=["10.77.0.1/24", "fd77::1/64"], routes=["10.78.0.0/16"])
    try:
        assert t.created and t.fileno() >= 0 and t.maxtu == mtu
        assert os.get_blocking(t.fileno()) is False
        link, addrs = _link(ns, t.dev)
        assert link.get_attr("IFLA_MTU") == mtu
        assert link["flags"] & 1                      # IFF_UP
        assert "10.77.0.1/24" in addrs
        if mtu >= 1280:
            assert "fd77::1/64" in addrs
        else:                                         # Linux has no IPv6 below 1280
            assert not any(":" in a for a in addrs) and t.skipped_addrs == ["fd77::1/64"]
        r = ns.run("ip", "-4", "route", "show", "10.78.0.0/16")
        assert "dev %s" % t.dev in r.stdout
    finally:
        t.close()
    assert _link(ns, t.dev)[0] is None                # removed on close


@linux
def test_tun_attach_does_not_remove(ns):
    with pytest.raises(FileNotFoundError):
        Tun("n9none", create=False, netns=ns.name)
    import fcntl
    with media.innetns(ns.name):               # a persistent device, as `ip tuntap add` makes
        fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, media.TUNSETIFF, struct.pack("16sH", b"n9pers", media.IFF_TUN | media.IFF_NO_PI))
    fcntl.ioctl(fd, media.TUNSETPERSIST, 1)
    os.close(fd)
    try:
        t = Tun("n9pers", mtu=1400, create=False, netns=ns.name)
        assert not t.created
        t.close()
        assert _link(ns, "n9pers")[0] is not None
    finally:
        ipr = ns.iproute()
        ipr.link("del", ifname="n9pers")
        ipr.close()


@linux
def test_tun_reads_every_waiting_datagram_and_writes(ns):
    t = Tun("n9rw", mtu=1500, netns=ns.name, host_addrs=["10.77.1.1/24", "fd77:1::1/64"])
    try:
        s = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("10.77.1.1", 7777))
        # Linux -> net9: 50 datagrams sent before anyone reads
        for i in range(50):
            s.sendto(b"x%d" % i, ("10.77.1.2", 9))
        assert select.select([t], [], [], 2)[0]
        got = t.receive()
        udp = [p for p in got if p[0] >> 4 == 4 and p[9] == 17]
        assert [p[28:] for p in udp] == [b"x%d" % i for i in range(50)]  # one wake-up, all 50
        assert t.receive() == []
        assert t.inpackets >= 50
        # net9 -> Linux: complete datagrams written to the device arrive
        s.settimeout(2)
        for i in range(20):
            t.transmit(v4udp("10.77.1.2", "10.77.1.1", 9, 7777, b"back%d" % i))
        assert [s.recvfrom(100)[0] for _ in range(20)] == [b"back%d" % i for i in range(20)]
        assert t.outpackets == 20 and t.outdrops == 0
        s6 = ns.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s6.bind(("fd77:1::1", 7777))
        # the first IPv6 datagram on a device created a moment ago can be
        # lost while Linux is still setting IPv6 up on it (seen only under
        # load): send it again, a bounded number of times, until it arrives
        s6.settimeout(0.5)
        got6 = None
        for _ in range(10):
            t.transmit(v6udp("fd77:1::2", "fd77:1::1", 9, 7777, b"six"))
            try:
                got6 = s6.recvfrom(100)[0]
                break
            except socket.timeout:
                continue
        assert got6 == b"six"
        sent6 = t.outpackets - 20
        s.close()
        s6.close()
        # a datagram Linux refuses is counted, not raised (not even IP)
        t.transmit(b"\x00" * 40)
        assert t.outpackets + t.outerrs == 21 + sent6
    finally:
        t.close()
