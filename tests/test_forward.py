"""Forwarding in net9.ip (ip.c ipiput4/ipoput4 and ipv6.c with a gating
interface), in memory: a router with two interfaces whose media keep what
they are given.  TTL and hop limit, ICMP time exceeded, no route (ICMP net
unreachable: net9's departure from devip's silence), not back out the way
it came unless reflect, no multicast, DF and fragmentation (a fragment
fragmented again keeps its MF), ICMP fragmentation needed and ICMPv6 packet
too big with the MTU, tcpmssclamp, TCP super-packets from a receive
offload cut into segments or passed whole to a medium that segments; and
the snoop copies (PktQueue) of what goes in and out."""

import struct

import pytest

from ipnet import a16, a4, frags4, icmp4msg, ip4, ip6
from net9.conv import Fs
from net9.csum import cksum
from net9.icmp import Icmp, Icmp6
from net9.ip import Ip, PktQueue


class Sink:
    hsize = 0

    def __init__(self, mtu, name, gso=0):
        self.name = name
        self.maxtu = mtu
        self.mintu = 68
        self.sent = []
        self.gsosent = []
        self.gso = gso

    def transmit(self, pkt):
        self.sent.append(bytes(pkt))

    def transmit_gso(self, pkt, mss):
        self.gsosent.append((bytes(pkt), mss))


class Router:
    def __init__(self, mtua=1500, mtub=1500, gsob=0):
        self.fs = Fs(seed=3)
        self.ip = Ip(self.fs)
        self.icmp = Icmp(self.fs)
        self.icmp6 = Icmp6(self.fs)
        self.sa = Sink(mtua, "a")
        self.sb = Sink(mtub, "b", gsob)
        self.ia = self.ip.addifc(self.sa)
        self.ia.add("10.1.0.1", 24)
        self.ia.add("fd01::1", 64)
        self.ib = self.ip.addifc(self.sb)
        self.ib.add("10.2.0.1", 24)
        self.ib.add("fd02::1", 64)
        self.ip.setiprouting(1)

    def stat(self, name):
        return self.ip.stat(name)


def v4ok(p):
    return cksum(p[:(p[0] & 15) * 4]) == 0


def tcpok(p):
    if p[0] >> 4 == 4:
        hl = (p[0] & 15) * 4
        ph = p[12:20] + struct.pack("!BBH", 0, 6, len(p) - hl)
    else:
        hl = 40
        ph = p[8:40] + struct.pack("!IxxxB", len(p) - 40, 6)
    return cksum(ph + p[hl:]) == 0


def tcpseg(src, dst, seq, flags, payload=b"", options=b"", v6=False, ttl=64, df=True,
           ident=9):
    thl = 20 + len(options)
    t = bytearray(struct.pack("!HHIIBBHHH", 40000, 80, seq, 1, (thl // 4) << 4, flags, 65535,
                              0, 0) + options + payload)
    if v6:
        ph = a16(src) + a16(dst) + struct.pack("!IxxxB", len(t), 6)
    else:
        ph = a4(src) + a4(dst) + struct.pack("!BBH", 0, 6, len(t))
    struct.pack_into("!H", t, 16, cksum(ph + bytes(t)))
    if v6:
        return ip6(src, dst, 6, bytes(t), hlim=ttl)
    return ip4(src, dst, 6, bytes(t), ttl=ttl, frag=0x4000 if df else 0, ident=ident)


def echo(src, dst, ttl=64, size=8, df=False):
    return ip4(src, dst, 1, icmp4msg(8, 0, 5, 1, b"x" * size), ttl=ttl,
               frag=0x4000 if df else 0, ident=4242)


# ---- IPv4 -----------------------------------------------------------------------------

def test_forwarded_with_ttl_less_one():
    r = Router()
    p = echo("10.1.0.9", "10.2.0.9", ttl=64)
    r.ip.input(r.ia, p)
    assert len(r.sb.sent) == 1 and r.sa.sent == []
    q = r.sb.sent[0]
    assert q[8] == 63 and v4ok(q) and q[:8] == p[:8] and q[9] == p[9] and q[12:] == p[12:]
    assert r.stat("ForwDatagrams") == 1 and r.stat("Forwarding") == 1
    # with routing off: dropped, counted as an address error (net9's count)
    r.ip.setiprouting(0)
    r.ip.input(r.ia, p)
    assert len(r.sb.sent) == 1 and r.stat("InAddrErrors") == 1 and r.stat("Forwarding") == 2


def test_ttl_expiry_answers_time_exceeded():
    r = Router()
    p = echo("10.1.0.9", "10.2.0.9", ttl=1)
    r.ip.input(r.ia, p)
    assert r.sb.sent == [] and len(r.sa.sent) == 1
    e = r.sa.sent[0]
    assert e[9] == 1 and e[12:16] == a4("10.1.0.1") and e[16:20] == a4("10.1.0.9")
    assert e[20:22] == b"\x0b\x00" and e[28:48] == p[:20]     # time exceeded, the header quoted
    assert r.stat("InHdrErrors") == 1 and r.stat("ForwDatagrams") == 0


def test_no_route_answers_net_unreachable():
    r = Router()
    r.ip.input(r.ia, echo("10.1.0.9", "10.99.0.9"))
    assert r.sb.sent == [] and len(r.sa.sent) == 1
    assert r.sa.sent[0][20:22] == b"\x03\x00" and r.stat("OutDiscards") == 1


def test_not_back_out_unless_reflect_and_no_multicast():
    r = Router()
    r.ip.input(r.ia, echo("10.1.0.9", "10.1.0.8"))
    assert r.sa.sent == [] and r.sb.sent == [] and r.stat("OutDiscards") == 1
    r.ia.ctl("reflect")
    r.ip.input(r.ia, echo("10.1.0.9", "10.1.0.8"))
    assert len(r.sa.sent) == 1 and r.sa.sent[0][8] == 63
    r.ip.addroute("224.0.0.0", 4, ifc=r.ib)
    r.ip.input(r.ia, echo("10.1.0.9", "224.1.2.3"))
    r.ip.input(r.ia, ip6("fd01::9", "ff0e::1", 59))
    r.ip.input(r.ia, ip6("fd01::9", "fe80::1", 59))
    assert r.sb.sent == [] and r.stat("OutDiscards") == 4


def test_df_too_big_fragmentation_needed():
    r = Router(mtub=1280)
    p = echo("10.1.0.9", "10.2.0.9", size=1372, df=True)          # 1400 bytes
    r.ip.input(r.ia, p)
    assert r.sb.sent == [] and len(r.sa.sent) == 1
    e = r.sa.sent[0]
    assert e[20:22] == b"\x03\x04" and struct.unpack("!H", e[26:28])[0] == 1280
    assert r.stat("FragFails") == 1


def test_fragmented_to_the_smaller_mtu():
    r = Router(mtub=576)
    p = echo("10.1.0.9", "10.2.0.9", size=1372)
    r.ip.input(r.ia, p)
    fr = r.sb.sent
    assert len(fr) == 3 and all(len(f) <= 576 and v4ok(f) for f in fr)
    assert all(f[4:6] == p[4:6] and f[8] == 63 for f in fr)              # its id
    offs = [(struct.unpack("!H", f[6:8])[0] & 0x1fff) * 8 for f in fr]
    mfs = [bool(struct.unpack("!H", f[6:8])[0] & 0x2000) for f in fr]
    assert offs == [0, 552, 1104] and mfs == [True, True, False]
    assert b"".join(f[20:] for f in fr) == p[20:]
    assert (r.stat("FragOKs"), r.stat("FragCreates")) == (1, 3)
    # a fragment that is fragmented again keeps its offset and its MF
    r.sb.sent.clear()
    first = frags4(echo("10.1.0.9", "10.2.0.9", size=2000), [1200, 808])[0]
    r.ip.input(r.ia, first)
    offs = [(struct.unpack("!H", f[6:8])[0] & 0x1fff) * 8 for f in r.sb.sent]
    mfs = [bool(struct.unpack("!H", f[6:8])[0] & 0x2000) for f in r.sb.sent]
    assert offs == [0, 552, 1104] and mfs == [True, True, True]
    second = frags4(echo("10.1.0.9", "10.2.0.9", size=2000), [1200, 808])[1]
    r.sb.sent.clear()
    r.ip.input(r.ia, second)
    offs = [(struct.unpack("!H", f[6:8])[0] & 0x1fff) * 8 for f in r.sb.sent]
    mfs = [bool(struct.unpack("!H", f[6:8])[0] & 0x2000) for f in r.sb.sent]
    assert offs == [1200, 1752] and mfs == [True, False]


def test_reassembled_when_the_interface_asks():
    r = Router()
    r.ib.ctl("reassemble")
    for f in frags4(echo("10.1.0.9", "10.2.0.9", size=1000), [512, 504]):
        r.ip.input(r.ia, f)
    assert len(r.sb.sent) == 1 and len(r.sb.sent[0]) == 1028 and r.sb.sent[0][8] == 63


def test_syn_mss_clamped_to_the_smaller_link():
    r = Router(mtub=1280)
    syn = tcpseg("10.1.0.9", "10.2.0.9", 1000, 0x02, options=b"\x02\x04\x05\xb4\x01\x01\x04\x02")
    r.ip.input(r.ia, syn)
    q = r.sb.sent[0]
    assert struct.unpack("!H", q[42:44])[0] == 1280 - 40 and tcpok(q)
    small = tcpseg("10.1.0.9", "10.2.0.9", 1000, 0x02, options=b"\x02\x04\x02\x18")
    r.ip.input(r.ia, small)
    assert struct.unpack("!H", r.sb.sent[1][42:44])[0] == 536 and tcpok(r.sb.sent[1])
    syn6 = tcpseg("fd01::9", "fd02::9", 1000, 0x02, options=b"\x02\x04\x05\xa0", v6=True)
    r.ip.input(r.ia, syn6)
    assert struct.unpack("!H", r.sb.sent[2][62:64])[0] == 1280 - 60 and tcpok(r.sb.sent[2])
    # not a SYN: untouched
    ack = tcpseg("10.1.0.9", "10.2.0.9", 1000, 0x10, options=b"\x02\x04\x05\xb4")
    r.ip.input(r.ia, ack)
    assert r.sb.sent[3][40:] == ack[40:]


@pytest.mark.parametrize("v6", [False, True])
def test_super_packets_cut_into_segments(v6):
    r = Router()
    src, dst = ("fd01::9", "fd02::9") if v6 else ("10.1.0.9", "10.2.0.9")
    opts = b"\x01\x01\x08\x0a" + b"\0" * 8                     # timestamps
    hl = 40 if v6 else 20
    mss = 1500 - hl - 32                                     # what Linux's gso_size is
    payload = (bytes(range(256)) * 20)[:3 * mss + 8]
    big = tcpseg(src, dst, 0xfffff000, 0x80 | 0x10 | 0x08 | 0x01, payload, opts, v6=v6,
                 ident=100)
    r.ip.input(r.ia, big, mss)
    segs = r.sb.sent
    assert [len(s) - hl - 32 for s in segs] == [mss, mss, mss, 8]
    assert all(len(s) == 1500 or s is segs[-1] for s in segs) and all(tcpok(s) for s in segs)
    assert [struct.unpack("!I", s[hl + 4:hl + 8])[0] for s in segs] == \
        [(0xfffff000 + k * mss) & 0xffffffff for k in range(4)]
    flags = [s[hl + 13] for s in segs]
    assert flags == [0x80 | 0x10, 0x10, 0x10, 0x10 | 0x08 | 0x01]   # CWR first, PSH FIN last
    assert b"".join(s[hl + 32:] for s in segs) == payload
    if not v6:
        assert [struct.unpack("!H", s[4:6])[0] for s in segs] == [100, 101, 102, 103]
        assert all(v4ok(s) and s[8] == 63 for s in segs)
    else:
        assert all(s[7] == 63 for s in segs)
    assert r.stat("ForwDatagrams") == 1


def test_super_packet_passed_whole_to_a_medium_that_segments():
    r = Router(gsob=65535)
    big = tcpseg("10.1.0.9", "10.2.0.9", 1, 0x10, b"z" * 4000)
    r.ip.input(r.ia, big, 1460)
    assert r.sb.sent == [] and len(r.sb.gsosent) == 1
    q, mss = r.sb.gsosent[0]
    assert mss == 1460 and len(q) == len(big) and q[8] == 63 and v4ok(q) and tcpok(q)


def test_super_packet_segments_too_big_for_the_next_link():
    r = Router(mtub=1280)
    big = tcpseg("10.1.0.9", "10.2.0.9", 1, 0x10, b"z" * 4000)
    r.ip.input(r.ia, big, 1460)
    assert r.sb.sent == [] and len(r.sa.sent) == 1
    e = r.sa.sent[0]
    assert e[20:22] == b"\x03\x04" and struct.unpack("!H", e[26:28])[0] == 1280


# ---- IPv6 --------------------------------------------------------------------------------

def test_v6_hop_limit_no_route_too_big():
    r = Router(mtub=1280)
    p = ip6("fd01::9", "fd02::9", 59, b"q" * 100, hlim=9)
    r.ip.input(r.ia, p)
    assert len(r.sb.sent) == 1 and r.sb.sent[0][7] == 8 and r.sb.sent[0][8:] == p[8:]
    r.ip.input(r.ia, ip6("fd01::9", "fd02::9", 59, b"q", hlim=1))
    e = r.sa.sent[-1]
    assert e[6] == 58 and e[40] == 3 and e[8:24] == a16("fd01::1")   # time exceeded
    r.ip.input(r.ia, ip6("fd01::9", "fd99::9", 59, b"q"))
    assert r.sa.sent[-1][40:42] == b"\x01\x00"                     # no route
    r.ip.input(r.ia, ip6("fd01::9", "fd02::9", 59, b"q" * 1300))
    e = r.sa.sent[-1]
    assert e[40] == 2 and struct.unpack("!I", e[44:48])[0] == 1280   # packet too big
    assert len(r.sb.sent) == 1


# ---- snoop copies -----------------------------------------------------------------------

def test_snoop_copies_in_and_out_bounded():
    r = Router()
    conv = r.ia.conv
    r.ip.ipifc.snoopopen(conv)
    p = echo("10.1.0.9", "10.1.0.1")                         # for the router: answered
    r.ip.input(r.ia, p)
    got = [r.ip.ipifc.snoopread(conv, 65536) for _ in range(2)]
    assert got[0] == p and got[1] == r.sa.sent[-1] and got[1][20] == 0   # in, then the reply out
    assert r.ip.ipifc.snoopread(conv, 65536) is None                    # a reader would wait
    # bounded: drop-tail past the limit, counted
    r.ia.sq.limit = 3 * len(p)
    for _ in range(10):
        r.ip.input(r.ia, p)
    assert r.ia.sq.packets() == 3 and r.ia.snoopdrops == 17
    r.ip.ipifc.snoopclose(conv)
    assert len(r.ia.sq) == 0
    r.ip.input(r.ia, p)
    assert len(r.ia.sq) == 0                                  # nobody reading: no copies


def test_pktqueue_reads_and_eof():
    q = PktQueue(100)
    woken = []
    q.wakecb = lambda: woken.append(1)
    assert q.read(10) is None and q.rwait
    assert q.put(b"abcdefgh") == 1 and woken == [1]
    assert q.read(3) == b"abc" and q.read(100) == b"defgh"       # the rest read next
    q.put(b"x" * 60)
    q.put(b"y" * 60)
    assert q.put(b"z") == 0 and q.drops == 1                       # at the limit
    q.close()
    assert len(q) == 0 and [q.read(5) for _ in range(3)] == [b"", b"", b""]
    with pytest.raises(Exception, match="i/o on hungup channel"):
        q.read(5)
    assert q.put(b"late") == 0
    q.reopen()
    assert q.read(5) is None
