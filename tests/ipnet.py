"""Test harness for the IP layer tests (test_ip.py, test_icmp.py): net9
stacks (Fs + Ip + TcpProto + Icmp + Icmp6 each) joined by an in-memory
point-to-point link, a virtual millisecond clock, and tools to build raw
IPv4/IPv6/ICMP datagrams.  Nothing here uses net9.sim's wire or the media
module: the link is a deque and a loop.

    net = Net(mtu=1500)
    net.a.ifc, net.b.ifc              interfaces (10.0.0.1/24 fd00::1/64, .2 and ::2)
    net.run(until=callable, max_ms=)  deliver datagrams and run timers
    net.filter = fn(src_host, pkt) -> pkt | None | [pkts]
    net.log                           [(ms, "a"|"b", bytes)] of every datagram sent
"""

import struct
from collections import deque

from net9.conv import Fs, Proto
from net9.csum import cksum
from net9.icmp import Icmp, Icmp6
from net9.ip import Ip
from net9.ipaux import parseip
from net9.tcp import TcpProto

V4PFX = b"\0" * 10 + b"\xff\xff"


def a16(a):
    return parseip(a) if isinstance(a, str) else bytes(a)


def a4(a):
    return a16(a)[12:]


class End:
    """One end of a Link: a medium as the IP layer wants it."""

    hsize = 0

    def __init__(self, link, name, mtu, mintu=68):
        self.link = link
        self.name = name
        self.maxtu = mtu
        self.mintu = mintu
        self.peer = None
        self.host = None
        self.ifc = None
        self.sent = []
        self.down = False

    def transmit(self, pkt):
        b = bytes(pkt)
        self.sent.append(b)
        self.link.q.append((self, b))


class Rec(Proto):
    """A protocol that records the datagrams it is given (and advice)."""

    def __init__(self, fs, name, ipproto):
        Proto.__init__(self, fs, name, ipproto)
        self.got = []
        self.advice = []

    def rcv(self, pkt, ifc=None):
        self.got.append(bytes(pkt))
        return 0

    def advise(self, pkt, msg):
        self.advice.append((bytes(pkt), msg))


class Host:
    def __init__(self, name, seed, now=0):
        self.name = name
        self.fs = Fs(seed=seed, now=now)
        self.ip = Ip(self.fs)
        self.tcp = TcpProto(self.fs)
        self.icmp = Icmp(self.fs)
        self.icmp6 = Icmp6(self.fs)
        self.end = None
        self.ifc = None

    def input(self, pkt):
        """Deliver pkt to this host's IP layer as if received on its link."""
        return self.ip.input(self.ifc, pkt)


class Net:
    """Hosts a (10.0.0.1, fd00::1) and b (10.0.0.2, fd00::2) on a
    point-to-point link with the given MTU."""

    def __init__(self, mtu=1500, seed=1, mtub=None):
        self.now = 0
        self.q = deque()
        self.log = []
        self.filter = None
        self.a = Host("a", seed)
        self.b = Host("b", seed + 1)
        ea = End(self, "tuna", mtu)
        eb = End(self, "tunb", mtub if mtub is not None else mtu)
        ea.peer, eb.peer = eb, ea
        ea.host, eb.host = self.a, self.b
        self.a.end, self.b.end = ea, eb
        self.a.ifc = ea.ifc = self.a.ip.addifc(ea)
        self.b.ifc = eb.ifc = self.b.ip.addifc(eb)
        self.a.ifc.add("10.0.0.1", 24)
        self.a.ifc.add("fd00::1", 64)
        self.b.ifc.add("10.0.0.2", 24)
        self.b.ifc.add("fd00::2", 64)
        self.hosts = [self.a, self.b]

    def deliver(self):
        """Pass every queued datagram to the other end's IP layer."""
        n = 0
        while self.q:
            end, pkt = self.q.popleft()
            self.log.append((self.now, end.host.name, pkt))
            pkts = [pkt]
            if self.filter is not None:
                r = self.filter(end.host, pkt)
                pkts = [] if r is None else (r if isinstance(r, list) else [r])
            dst = end.peer
            for p in pkts:
                if not dst.down:
                    dst.host.ip.input(dst.ifc, p)
                    n += 1
        for h in self.hosts:
            h.fs.drain()
        return n

    def settime(self, t):
        self.now = t
        for h in self.hosts:
            h.fs.advance(t)
        self.deliver()

    def run(self, until=None, max_ms=60_000):
        """Deliver and run timers until until() is true (True) or max_ms of
        virtual time pass or nothing is left to do (False)."""
        end = self.now + max_ms
        spins = 0
        while True:
            self.deliver()
            if until is not None and until():
                return True
            ds = [h.fs.nextdeadline() for h in self.hosts]
            ds = [d for d in ds if d is not None]
            if not ds:
                return until is None
            t = max(min(ds), self.now)
            if t > end:
                self.settime(end)
                return until is None or until()
            if t == self.now:
                spins += 1
                assert spins < 10000, "timers spin at one instant"
            else:
                spins = 0
            self.settime(t)

    def advance(self, ms):
        """Run for ms of virtual time."""
        self.run(until=None, max_ms=ms)


# ---------------------------------------------------------------- packets

def ipcksum(hdr):
    return cksum(bytes(hdr))


def ip4(src, dst, proto, payload=b"", ttl=64, tos=0, ident=1, frag=0, options=b"",
        total=None, ihl=None, version=4, badsum=False):
    """An IPv4 datagram with a correct header checksum (unless badsum)."""
    hl = 20 + len(options)
    if ihl is None:
        ihl = hl // 4
    if total is None:
        total = hl + len(payload)
    h = bytearray(struct.pack("!BBHHHBBH4s4s", (version << 4) | (ihl & 0xF), tos, total & 0xFFFF,
                              ident, frag, ttl, proto, 0, a4(src), a4(dst)))
    h += options
    s = cksum(bytes(h))
    if badsum:
        s ^= 0x5555
    struct.pack_into("!H", h, 10, s)
    return bytes(h) + bytes(payload)


def ip6(src, dst, nh, payload=b"", hlim=64, plen=None, version=6):
    if plen is None:
        plen = len(payload)
    return struct.pack("!IHBB16s16s", version << 28, plen & 0xFFFF, nh, hlim,
                       a16(src), a16(dst)) + bytes(payload)


def icmp4msg(type, code=0, ident=0, seq=0, data=b""):
    m = bytearray(struct.pack("!BBHHH", type, code, 0, ident, seq)) + data
    struct.pack_into("!H", m, 2, cksum(bytes(m)))
    return bytes(m)


def icmp6msg(src, dst, type, code=0, ident=0, seq=0, data=b"", word=None):
    if word is None:
        word = (ident << 16) | seq
    m = bytearray(struct.pack("!BBHI", type, code, 0, word)) + data
    ph = a16(src) + a16(dst) + struct.pack("!IxxxB", len(m), 58)
    struct.pack_into("!H", m, 2, cksum(ph + bytes(m)))
    return bytes(m)


def icmp6ok(pkt):
    """True when the ICMPv6 checksum of a whole v6 datagram is right."""
    m = pkt[40:]
    ph = pkt[8:40] + struct.pack("!IxxxB", len(m), 58)
    return cksum(ph + m) == 0


def frags4(pkt, sizes):
    """Split an IPv4 datagram (20-byte header) into fragments carrying the
    given data sizes (multiples of 8 except the last); returns the list."""
    h = pkt[:20]
    data = pkt[20:]
    out = []
    off = 0
    for _i, n in enumerate(sizes):
        last = off + n >= len(data)
        piece = data[off:off + n]
        f = bytearray(h)
        struct.pack_into("!H", f, 2, 20 + len(piece))
        struct.pack_into("!H", f, 6, (off >> 3) | (0 if last else 0x2000))
        struct.pack_into("!H", f, 10, 0)
        struct.pack_into("!H", f, 10, cksum(bytes(f)))
        out.append(bytes(f) + piece)
        off += n
        if last:
            break
    return out


def frag4(src, dst, proto, ident, off, data, mf, ttl=64):
    """One IPv4 fragment: offset off (bytes, multiple of 8), data, MF flag."""
    return ip4(src, dst, proto, data, ident=ident, frag=(off >> 3) | (0x2000 if mf else 0), ttl=ttl)


def frag6(src, dst, nh, ident, off, data, mf, pre=b"", prenh=None):
    """One IPv6 fragment: optional extension headers pre (before the
    fragment header; prenh is the first one's type), then the fragment
    header (next header nh, offset off, M flag, id) and data."""
    fh = struct.pack("!BBHI", nh, 0, off | (1 if mf else 0), ident)
    if pre:
        return ip6(src, dst, prenh, pre + fh + bytes(data))
    return ip6(src, dst, 44, fh + bytes(data))


def ext(nh, length8=0, fill=b""):
    """An extension header (hop-by-hop, routing, destination options):
    next header nh, (length8+1)*8 bytes, padded with PadN."""
    n = (length8 + 1) * 8
    body = bytearray(fill[:n - 2])
    pad = n - 2 - len(body)
    if pad == 1:
        body += b"\0"
    elif pad > 1:
        body += bytes([1, pad - 2]) + b"\0" * (pad - 2)
    return bytes([nh, length8]) + bytes(body)
