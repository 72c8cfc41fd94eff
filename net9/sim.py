"""A deterministic in-memory test wire for net9's sans-I/O engines.

Hosts (``Host``, an ``IpLayer``) sit on one ``Wire`` segment.  Each host
holds a sans-I/O ``Fs``; packets the engines emit through ``Host.ipoput``
cross the wire under a per-direction fault model (``Faults``) and arrive
through ``Host.input`` -> ``fs.iput``.  Time is virtual: an integer
millisecond clock ``Wire.now`` that only moves when the wire runs, every
host's ``fs`` is kept at exactly that time, and timers run when the clock
reaches ``fs.nextdeadline()``.  All randomness comes from one
``random.Random(seed)`` owned by the wire, so a seed replays a run exactly.
No real time, threads or sockets are used.

Typical use::

    p = pair(seed=7)
    p.wire.faults(p.a, p.b, both=True, loss=0.05, delay=20)
    ... open conversations on p.tcpa / p.tcpb ...
    assert p.wire.run(until=lambda: done(), max_ms=60_000)
    segs = [parse(pkt) for (t, s, d, pkt) in p.wire.capture]

Packet tools ``parse`` and ``build`` decode and make IPv4/IPv6 + TCP
datagrams for assertions and for injecting hand-made (also malformed)
segments with ``Host.inject``.
"""

from __future__ import annotations

import heapq
import ipaddress
import math
import random
import struct
from collections import Counter, deque
from dataclasses import dataclass, field, fields, replace
from fractions import Fraction
from typing import Any, Callable, Iterable, Optional

from net9 import wire as _wire
from net9.faults import Faults

try:
    from net9.conv import IpLayer  # the real base class once net9.conv is built
    HAVE_CONV = True
except ImportError:  # development fallback only: net9.conv not built yet
    IpLayer = object
    HAVE_CONV = False

__all__ = [
    "HAVE_CONV", "IpLayer", "SimError", "SimTimeout", "Faults", "Counters",
    "Host", "Wire", "Seg", "Pair", "pair", "parse", "build", "cksum",
    "ip16", "ipstr", "ipv4_header_ok",
    "FIN", "SYN", "RST", "PSH", "ACK", "URG",
]

IP_TCP = 6
IP_UDP = 17

FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_FLAGLETTERS = "FSRPAU"           # bit order: F=0x01 ... U=0x20
_V4PREFIX = b"\x00" * 10 + b"\xff\xff"
IPNOADDR = b"\x00" * 16
_BCAST4 = _V4PREFIX + b"\xff\xff\xff\xff"

DEFAULT_MAX_MS = 3_600_000        # run(): one virtual hour unless told
DEFAULT_MAX_EVENTS = 10_000_000
_SPIN_LIMIT = 1000                # re-advances at one instant before SimError


class SimError(Exception):
    """A misuse of the wire, a malformed datagram from an engine (strict
    mode), or an engine whose timers never stop firing at one instant."""


class SimTimeout(SimError):
    """run(check=True) stopped on max_ms or max_events, or went idle before
    until() became true."""


# ---------------------------------------------------------------- addresses

def ip16(a) -> bytes:
    """Address (str, ipaddress object or 4/16 bytes) as 16 bytes; IPv4
    becomes v4-mapped ::ffff:a.b.c.d."""
    if isinstance(a, (bytes, bytearray)):
        if len(a) == 16:
            return bytes(a)
        if len(a) == 4:
            return _V4PREFIX + bytes(a)
        raise ValueError("address of %d bytes" % len(a))
    if not isinstance(a, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        a = ipaddress.ip_address(str(a))
    if a.version == 4:
        return _V4PREFIX + a.packed
    return a.packed


def ipstr(a: bytes) -> str:
    """16-byte (or 4-byte) address as a string; v4-mapped prints dotted."""
    a = bytes(a)
    if len(a) == 4:
        return str(ipaddress.IPv4Address(a))
    if a[:12] == _V4PREFIX:
        return str(ipaddress.IPv4Address(a[12:]))
    return str(ipaddress.IPv6Address(a))


def _isv4(a16: bytes) -> bool:
    return a16[:12] == _V4PREFIX


# ---------------------------------------------------------------- checksums

# the Internet checksum of data plus a partial sum acc: the 16-bit value to
# store (0 for data whose stored checksum is right); the wire layer's
cksum = _wire.cksum
# the unfolded sum of the pseudo-header (4- or 16-byte addresses)
_psum = _wire.pseudosum


def ipv4_header_ok(pkt) -> bool:
    """The IPv4 header checksum of pkt verifies."""
    try:
        h = _wire.parseip(pkt)
    except ValueError:
        return False
    return h["version"] == 4 and h["csumok"]


def _transport_ok(version: int, pkt, hl: int, end: int) -> Optional[bool]:
    """Transport checksum of a TCP/UDP datagram: True/False, None for other
    protocols.  A zero checksum counts as right for UDP over v4."""
    h = _wire.parseip(pkt)
    proto, srcb, dstb = h["proto"], h["src"], h["dst"]
    if version == 4:
        srcb, dstb = srcb[12:], dstb[12:]
    if proto not in (IP_TCP, IP_UDP):
        return None
    seg = bytes(pkt[hl:end])
    if proto == IP_UDP and version == 4 and len(seg) >= 8 and seg[6:8] == b"\x00\x00":
        return True
    return cksum(seg, _psum(srcb, dstb, proto, len(seg))) == 0


# ------------------------------------ counters (the fault model is net9.faults)

@dataclass
class Counters:
    """Per-direction counters.  sent counts packets offered to the fault
    model (after the filter; duplicates not included); delivered counts
    host.input calls, duplicates included."""
    sent: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    corrupted: int = 0
    reordered: int = 0
    queue_dropped: int = 0       # drop-tail on queue_limit
    filtered: int = 0            # dropped by the filter hook

    def asdict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# ---------------------------------------------------------------- hosts

class Host(IpLayer):
    """One host on the wire: the IP layer the engines call.

    Host(name, addrs, mtu=1500, wire=None).  addrs are strings (v4 and/or v6)
    and are kept 16-byte in .addrs.  .fs is the host's Fs (or a mock with
    iput/advance/nextdeadline/drain), set after construction, e.g. by
    attach().  counters (collections.Counter) count IP input and output
    events: rx, accepted, malformed, badsum, notours, fragment, toobig,
    nostack, tx, noroute, injected.  wakeups is a list of (time, conv) from
    fs.drain() while the wire drains automatically; on_wake(host, convs),
    when set, is called with each non-empty drain."""

    def __init__(self, name: str, addrs: Iterable = (), mtu: int = 1500, wire: "Wire" = None):
        self.name = name
        self.addrs = [ip16(a) for a in addrs]
        self.mtu = mtu
        self.wire = None
        self.fs = None
        self.counters = Counter()
        self.wakeups = []
        self.on_wake = None
        self._ipid = 1
        self._clock = None        # time of the last fs.advance
        if wire is not None:
            wire.add(self)

    def __repr__(self):
        return "Host(%r, %s)" % (self.name, [ipstr(a) for a in self.addrs])

    def attach(self, fs):
        """Set the host's stack; returns it."""
        self.fs = fs
        self._clock = self.wire.now if self.wire is not None else None
        return fs

    def addr(self, version: int = 4) -> str:
        """This host's first address of the given IP version, as a string."""
        for a in self.addrs:
            if _isv4(a) == (version == 4):
                return ipstr(a)
        raise SimError("%s has no v%d address" % (self.name, version))

    def owns(self, a16: bytes) -> bool:
        return bytes(a16) in self.addrs

    # -- IpLayer ------------------------------------------------------------

    def ipoput(self, version, pkt, ttl, tos, rh):
        """Finish the IP header (v4: ttl, tos, id, header checksum; v6: hop
        limit) and put the datagram on the wire.  -1 when no host owns the
        destination.  With wire.strict a malformed datagram raises SimError;
        a datagram over the mtu raises in strict mode, else is dropped and
        counted (toobig)."""
        w = self.wire
        if w is None:
            return -1
        b = bytearray(pkt)
        if version == 4:
            if len(b) < 20:
                raise SimError("%s: ipoput v4 datagram of %d bytes" % (self.name, len(b)))
            dst = _wire.ipfinish(b, 4, ttl, tos, self._ipid)
            self._ipid = (self._ipid + 1) & 0xFFFF
        elif version == 6:
            if len(b) < 40:
                raise SimError("%s: ipoput v6 datagram of %d bytes" % (self.name, len(b)))
            dst = _wire.ipfinish(b, 6, ttl)
        else:
            raise SimError("%s: ipoput version %d" % (self.name, version))
        if w.strict:
            err = _check_datagram(version, b, self)
            if err:
                raise SimError("%s: ipoput: %s" % (self.name, err))
        if len(b) > self.mtu:
            self.counters["toobig"] += 1
            if w.strict:
                raise SimError("%s: ipoput: %d bytes over mtu %d" % (self.name, len(b), self.mtu))
            return 0
        if not w.owners(dst, self):
            self.counters["noroute"] += 1
            return -1
        self.counters["tx"] += 1
        w.send(self, bytes(b))
        return 0

    def route(self, version, raddr, laddr):
        """(mtu, True) when another host on the wire owns raddr, else None."""
        if self.wire is not None and self.wire.owners(bytes(raddr), self):
            return (self.mtu, True)
        return None

    def findlocalip(self, raddr):
        v4 = _isv4(bytes(raddr))
        for a in self.addrs:
            if _isv4(a) == v4:
                return a
        return IPNOADDR

    def isself(self, addr):
        addr = bytes(addr)
        return addr in self.addrs or addr == _BCAST4

    def icmpnoconv(self, ifc, pkt):
        """Port unreachable about pkt through the stack's ICMP, if any."""
        self._icmperr(1, "icmpnoconv", ifc, pkt)

    def icmpnoconv6(self, ifc, pkt):
        self._icmperr(58, "icmpnoconv6", ifc, pkt)

    def _icmperr(self, proto, fn, ifc, pkt):
        icmp = self.fs.ipproto[proto] if self.fs is not None else None
        if icmp is not None:
            getattr(icmp, fn)(ifc, pkt)

    # -- input ----------------------------------------------------------------

    def input(self, pkt) -> bool:
        """Minimal IP input: validate and hand the datagram (trimmed to its
        IP length) to fs.iput.  Returns True when handed to the stack."""
        pkt = bytes(pkt)
        c = self.counters
        c["rx"] += 1
        if len(pkt) < 1:
            c["malformed"] += 1
            return False
        try:
            h = _wire.parseip(pkt)
        except ValueError:
            c["malformed"] += 1
            return False
        hl, tl = h["hlen"], h["length"]
        if tl < hl or tl > len(pkt):
            c["malformed"] += 1
            return False
        if not h["csumok"]:
            c["badsum"] += 1
            return False
        if h["frag"] & 0x3FFF:
            c["fragment"] += 1          # no reassembly in the sim
            return False
        proto, dst = h["proto"], h["dst"]
        if tl > self.mtu:
            c["toobig"] += 1
            return False
        if not self.isself(dst):
            c["notours"] += 1
            return False
        if self.fs is None:
            c["nostack"] += 1
            return False
        c["accepted"] += 1
        self.fs.iput(proto, pkt[:tl])
        return True

    def inject(self, pkt) -> bool:
        """Deliver pkt to this host's stack now, as if received (through
        input()'s checks), then drain wake-ups.  Not captured, no faults."""
        self.counters["injected"] += 1
        r = self.input(pkt)
        if self.wire is not None:
            self.wire._drain()
        return r

    def inject_raw(self, proto: int, pkt):
        """Hand pkt to fs.iput(proto, pkt) with no checks at all."""
        self.counters["injected"] += 1
        r = self.fs.iput(proto, bytes(pkt))
        if self.wire is not None:
            self.wire._drain()
        return r


def _check_datagram(version: int, b, host: Host) -> Optional[str]:
    """Why an outgoing datagram is malformed, or None."""
    if _wire.ipversion(b) != version:
        return "version nibble %d for version %d" % (_wire.ipversion(b), version)
    h = _wire.parseip(b, whole=False)   # ipoput saw the 20 (40) bytes
    hl, tl, src, proto = h["hlen"], h["length"], h["src"], h["proto"]
    if version == 4:
        if hl < 20 or hl > len(b):
            return "header length %d" % hl
        if tl != len(b):
            return "total length %d, datagram %d bytes" % (tl, len(b))
    elif tl != len(b):
        return "payload length %d, datagram %d bytes" % (tl - 40, len(b))
    if not host.owns(src):
        return "source %s is not %s's" % (ipstr(src), host.name)
    if proto == IP_TCP:
        th = _wire.parsetcp(b[hl:], whole=False)
        if th is None:
            return "tcp header truncated"
        off = th["hlen"]
        if off < 20 or hl + off > len(b):
            return "tcp data offset %d" % off
        if th["csum"] == 0:
            return None                  # nochecksum: tcp.c accepts it
    ok = _transport_ok(version, b, hl, len(b))
    if ok is False:
        return "bad %s checksum" % ("tcp" if proto == IP_TCP else "udp")
    return None


# ---------------------------------------------------------------- the wire

_DELIVER = 0
_CALL = 1


class Wire:
    """One segment joining any number of hosts under a virtual clock.

    Wire(seed=0, now=0, strict=True).  now is the integer ms clock.
    capture holds (time, src_name, dst_name, bytes) for every packet a host
    sent (before the filter and the faults); deliveries holds the same for
    every packet handed to a host's input (after faults, duplicates
    included).  filter(src_host, dst_host, pkt) -> pkt | None | list[pkt]
    runs before the fault model.  autodrain: call fs.drain() on every host
    after each event (collected in host.wakeups / host.on_wake)."""

    def __init__(self, seed: int = 0, now: int = 0, strict: bool = True):
        self.seed = seed
        self.rand = random.Random(seed)
        self.now = now
        self.strict = strict
        self.autodrain = True
        self.hosts = []
        self.capture = []
        self.deliveries = []
        self.filter = None
        self.unroutable = 0           # packets sent to an address nobody owns
        self.stop_reason = None       # why the last run() returned
        self.events = 0               # events processed so far
        self._heap = []
        self._seq = 0
        self._default = Faults()
        self._faults = {}             # (src name, dst name) -> Faults
        self._counters = {}           # (src name, dst name) -> Counters
        self._txq = {}                # (src name, dst name) -> deque of tx end times
        self._busy = {}               # (src name, dst name) -> Fraction: link free at
        self._spin = 0

    # -- topology -------------------------------------------------------------

    def add(self, host: Host) -> Host:
        if any(h.name == host.name for h in self.hosts):
            raise SimError("duplicate host name %r" % host.name)
        host.wire = self
        self.hosts.append(host)
        if host.fs is not None:
            host._clock = self.now
        return host

    def host(self, name: str, addrs: Iterable = (), mtu: int = 1500) -> Host:
        """Create a Host on this wire."""
        return Host(name, addrs, mtu=mtu, wire=self)

    def _host(self, h) -> Host:
        if isinstance(h, Host):
            return h
        for x in self.hosts:
            if x.name == h:
                return x
        raise SimError("no host %r" % (h,))

    def owners(self, a16: bytes, src: Host = None) -> list:
        """Hosts other than src that receive a datagram sent to a16 (v4
        broadcast and v6 multicast go to every other host)."""
        a16 = bytes(a16)
        if a16 == _BCAST4 or (not _isv4(a16) and a16[0] == 0xFF):
            return [h for h in self.hosts if h is not src]
        return [h for h in self.hosts if h is not src and a16 in h.addrs]

    # -- faults and counters -------------------------------------------------

    def faults(self, a=None, b=None, f: Faults = None, *, both: bool = False, **kw) -> Faults:
        """Set the fault model of direction a->b (both=True: also b->a).
        f replaces the model; keyword fields (loss=..., delay=...) update it.
        With no hosts, sets the default for every direction not configured
        yet.  Returns the model of a->b (or the default)."""
        for k in kw:
            if k not in Faults.__dataclass_fields__:
                raise TypeError("unknown fault %r" % k)
        if a is None and b is None:
            base = f if f is not None else self._default
            self._default = replace(base, **kw)
            return self._default
        a, b = self._host(a), self._host(b)
        dirs = [(a.name, b.name)] + ([(b.name, a.name)] if both else [])
        out = None
        for d in dirs:
            base = f if f is not None else self._faults.get(d, self._default)
            self._faults[d] = replace(base, **kw)
            out = out or self._faults[d]
        return out

    def faults_of(self, a, b) -> Faults:
        a, b = self._host(a), self._host(b)
        return self._faults.get((a.name, b.name), self._default)

    def counters(self, a, b) -> Counters:
        """Counters of direction a->b."""
        a, b = self._host(a), self._host(b)
        return self._counters.setdefault((a.name, b.name), Counters())

    # -- sending --------------------------------------------------------------

    def send(self, src: Host, pkt: bytes) -> int:
        """Offer one datagram from src to the wire; returns the number of
        destination hosts (0: nobody owns the destination address)."""
        pkt = bytes(pkt)
        dst16 = _dst16(pkt)
        dsts = self.owners(dst16, src) if dst16 is not None else []
        if not dsts:
            self.unroutable += 1
            return 0
        for dst in dsts:
            self.capture.append((self.now, src.name, dst.name, pkt))
            out = [pkt]
            if self.filter is not None:
                r = self.filter(src, dst, pkt)
                if r is None:
                    out = []
                elif isinstance(r, (bytes, bytearray, memoryview)):
                    out = [bytes(r)]
                else:
                    out = [bytes(x) for x in r]
                if not out:
                    self.counters(src, dst).filtered += 1
            for p in out:
                self._fault(src, dst, p)
        return len(dsts)

    def _fault(self, src: Host, dst: Host, pkt: bytes):
        key = (src.name, dst.name)
        f = self._faults.get(key, self._default)
        c = self.counters(src, dst)
        rnd = self.rand
        c.sent += 1
        tend = self.now
        if f.bandwidth is not None:
            q = self._txq.setdefault(key, deque())
            while q and q[0] <= self.now:
                q.popleft()
            if f.queue_limit is not None and len(q) >= f.queue_limit:
                c.queue_dropped += 1
                return
            start = max(Fraction(self.now), self._busy.get(key, Fraction(0)))
            tend = start + Fraction(len(pkt)) / Fraction(f.bandwidth)
            self._busy[key] = tend
            q.append(tend)
            tend = math.ceil(tend)
        if f.loss > 0 and rnd.random() < f.loss:
            c.lost += 1
            return
        copies = 1
        if f.dup > 0 and rnd.random() < f.dup:
            c.duplicated += 1
            copies = 2
        for _ in range(copies):
            p = pkt
            if f.corrupt > 0 and rnd.random() < f.corrupt and len(p) > 0:
                bit = rnd.randrange(len(p) * 8)
                ba = bytearray(p)
                ba[bit >> 3] ^= 0x80 >> (bit & 7)
                p = bytes(ba)
                c.corrupted += 1
            t = tend + f.delay
            if f.jitter > 0:
                t += rnd.randint(0, f.jitter)
            if f.reorder > 0 and rnd.random() < f.reorder:
                t += f.reorder_delay
                c.reordered += 1
            self._push(t, _DELIVER, (src, dst, p))

    def _push(self, t: int, kind: int, data):
        if t < self.now:
            raise SimError("event at %d before now %d" % (t, self.now))
        heapq.heappush(self._heap, (t, self._seq, kind, data))
        self._seq += 1

    def at(self, t: int, fn: Callable, *args):
        """Call fn(*args) at virtual time t (an event, like a delivery)."""
        self._push(int(t), _CALL, (fn, args))

    def after(self, ms: int, fn: Callable, *args):
        """Call fn(*args) ms from now."""
        self.at(self.now + int(ms), fn, *args)

    def pending(self) -> int:
        """Events (deliveries and calls) not yet processed."""
        return len(self._heap)

    def in_flight(self, a=None, b=None) -> list:
        """(time, src_name, dst_name, pkt) of deliveries still pending,
        optionally only of direction a->b, in delivery order."""
        an = self._host(a).name if a is not None else None
        bn = self._host(b).name if b is not None else None
        out = []
        for t, _s, kind, d in sorted(self._heap):
            if kind == _DELIVER and (an is None or d[0].name == an) and (bn is None or d[1].name == bn):
                out.append((t, d[0].name, d[1].name, d[2]))
        return out

    # -- running --------------------------------------------------------------

    def nexttime(self) -> Optional[int]:
        """Time of the next thing to happen: the earliest pending event or
        host deadline (not before now), or None when all is idle."""
        t = self._heap[0][0] if self._heap else None
        for h in self.hosts:
            if h.fs is None:
                continue
            d = h.fs.nextdeadline()
            if d is not None and (t is None or d < t):
                t = d
        if t is not None and t < self.now:
            t = self.now
        return t

    def _settime(self, t: int):
        """Move the clock to t (never back) and advance every stack whose
        clock differs or whose deadline is due."""
        if t < self.now:
            raise SimError("clock going back from %d to %d" % (self.now, t))
        if t != self.now:
            self._spin = 0
        self.now = t
        again = False
        for h in self.hosts:
            fs = h.fs
            if fs is None:
                continue
            if h._clock != t:
                h._clock = t
                fs.advance(t)
            else:
                d = fs.nextdeadline()
                if d is not None and d <= t:
                    again = True
                    fs.advance(t)
        if again:
            self._spin += 1
            if self._spin > _SPIN_LIMIT:
                raise SimError("stack timers still due after %d advances at %d ms" % (self._spin, t))

    def _drain(self):
        if not self.autodrain:
            return
        for h in self.hosts:
            if h.fs is None:
                continue
            convs = h.fs.drain()
            if convs:
                h.wakeups.extend((self.now, c) for c in convs)
                if h.on_wake is not None:
                    h.on_wake(h, convs)

    def _step_at(self, t: int):
        self._settime(t)
        if self._heap and self._heap[0][0] <= self.now:
            _, _, kind, data = heapq.heappop(self._heap)
            self._spin = 0
            if kind == _DELIVER:
                src, dst, pkt = data
                self.counters(src, dst).delivered += 1
                self.deliveries.append((self.now, src.name, dst.name, pkt))
                dst.input(pkt)
            else:
                fn, args = data
                fn(*args)
        self.events += 1
        self._drain()

    def step(self) -> bool:
        """Process the next event: move the clock to it, advance every
        stack, then deliver one due packet or run one due call.  False when
        idle (nothing pending and no deadlines)."""
        t = self.nexttime()
        if t is None:
            return False
        self._step_at(t)
        return True

    def run(self, until: Callable[[], bool] = None, max_ms: Optional[int] = DEFAULT_MAX_MS,
            max_events: Optional[int] = DEFAULT_MAX_EVENTS, check: bool = False) -> bool:
        """Run events until until() is true (checked before the first and
        after every event), the wire is idle, or the limits are hit.

        Returns True when until() became true, or when idle and no until
        was given; False when idle with until() still false, or when max_ms
        of virtual time passed (the clock is then left at start + max_ms) or
        max_events events were processed.  check=True raises SimTimeout
        instead of returning False.  stop_reason is set to "until", "idle",
        "max_ms" or "max_events"."""
        start = self.now
        limit = None if max_ms is None else start + max_ms
        n = 0
        while True:
            if until is not None and until():
                return self._stop("until", True, check)
            t = self.nexttime()
            if t is None:
                return self._stop("idle", until is None, check)
            if limit is not None and t > limit:
                if self.now < limit:
                    self._settime(limit)
                    self._drain()
                    continue        # stacks advanced: until() may hold now
                return self._stop("max_ms", False, check)
            if max_events is not None and n >= max_events:
                return self._stop("max_events", False, check)
            self._step_at(t)
            n += 1

    def _stop(self, reason: str, ok: bool, check: bool) -> bool:
        self.stop_reason = reason
        if check and not ok:
            raise SimTimeout("run stopped: %s at %d ms" % (reason, self.now))
        return ok

    def advance(self, ms: int) -> int:
        """Run for exactly ms of virtual time: every event up to and
        including now + ms, leaving the clock at now + ms.  Returns the
        number of events processed."""
        target = self.now + int(ms)
        n = 0
        while True:
            t = self.nexttime()
            if t is None or t > target:
                if self.now < target:
                    self._settime(target)
                    self._drain()
                    continue
                return n
            self._step_at(t)
            n += 1

    def run_until_time(self, t: int) -> int:
        """advance() to absolute virtual time t."""
        return self.advance(max(0, int(t) - self.now))


def _dst16(pkt: bytes) -> Optional[bytes]:
    try:
        return _wire.parseip(pkt, whole=False)["dst"]
    except ValueError:
        return None


# ---------------------------------------------------------------- packets

def _flagstr(bits: int) -> str:
    return "".join(ch for i, ch in enumerate(_FLAGLETTERS) if bits & (1 << i))


def _flagbits(flags) -> int:
    if isinstance(flags, int):
        return flags
    bits = 0
    for ch in flags:
        i = _FLAGLETTERS.find(ch.upper())
        if i < 0:
            raise ValueError("unknown tcp flag %r" % ch)
        bits |= 1 << i
    return bits


@dataclass
class Seg:
    """A decoded IPv4/IPv6 datagram and, when it is TCP, its segment.

    flags is a string of letters in the order F S R P A U ("SA" for a
    SYN-ACK); use has("SA") / "A" in seg.flags.  options holds "mss" and
    "ws" when present, other kinds under their number (raw bytes), and
    "bad": True when the option list is malformed.  csum_ok is the TCP
    checksum verdict (True also for a zero checksum only when it verifies).
    truncated is set when the buffer is shorter than the IP length says."""
    version: int
    src: str
    dst: str
    proto: int
    ttl: int
    tos: int
    ip_hlen: int
    ip_len: int                  # total datagram length from the header
    ip_ok: bool                  # v4 header checksum (True for v6)
    ipid: int = 0
    frag: int = 0                # v4 flags+fragment offset field
    truncated: bool = False
    sport: Optional[int] = None
    dport: Optional[int] = None
    seq: Optional[int] = None
    ack: Optional[int] = None
    flags: Optional[str] = None
    flagbits: Optional[int] = None
    window: Optional[int] = None
    urg: Optional[int] = None
    hlen: Optional[int] = None   # tcp data offset in bytes
    options: dict = field(default_factory=dict)
    payload: bytes = b""
    csum: Optional[int] = None
    csum_ok: Optional[bool] = None
    raw: bytes = b""

    def has(self, letters: str) -> bool:
        """Every flag in letters is set."""
        return self.flagbits is not None and (self.flagbits & _flagbits(letters)) == _flagbits(letters)

    @property
    def seglen(self) -> int:
        """Sequence space taken: payload plus one each for SYN and FIN."""
        n = len(self.payload)
        if self.flagbits:
            n += bool(self.flagbits & SYN) + bool(self.flagbits & FIN)
        return n

    def __str__(self):
        if self.proto != IP_TCP or self.sport is None:
            return "%s > %s proto %d len %d" % (self.src, self.dst, self.proto, self.ip_len)
        s = "%s!%d > %s!%d %s seq=%d ack=%d win=%d len=%d" % (
            self.src, self.sport, self.dst, self.dport, self.flags or ".",
            self.seq, self.ack, self.window, len(self.payload))
        if self.options:
            s += " opt=%s" % (self.options,)
        if not self.csum_ok:
            s += " BADSUM"
        return s


def _parse_options(opt: bytes) -> dict:
    out = {}
    kinds, bad = _wire.tcpoptlist(opt)      # walked as tcp walks them
    for kind, body in kinds:
        if kind == 2 and len(body) == 2:
            out["mss"] = int.from_bytes(body, "big")
        elif kind == 3 and len(body) == 1:
            out["ws"] = body[0]
        else:
            out[kind] = bytes(body)
    if bad:
        out["bad"] = True
    return out


def parse(pkt) -> Seg:
    """Decode an IPv4 or IPv6 datagram and its TCP segment.  Raises
    ValueError when not even the IP header and a 20-byte TCP header (for
    TCP) are present."""
    pkt = bytes(pkt)
    h = _wire.parseip(pkt)      # ValueError without a whole IP header
    v, hl, tl = h["version"], h["hlen"], h["length"]
    s = Seg(version=v, src=ipstr(h["src"]), dst=ipstr(h["dst"]), proto=h["proto"],
            ttl=h["ttl"], tos=h["tos"], ip_hlen=hl, ip_len=tl, ip_ok=h["csumok"],
            ipid=h["id"], frag=h["frag"], raw=pkt)
    end = min(tl, len(pkt))
    s.truncated = tl > len(pkt)
    if s.proto != IP_TCP:
        s.payload = pkt[hl:end]
        return s
    t = pkt[hl:end]
    th = _wire.parsetcp(t, whole=False)     # the fixed header, as far as it goes
    if th is None:
        raise ValueError("truncated tcp header")
    s.sport, s.dport, s.seq, s.ack = th["sport"], th["dport"], th["seq"], th["ack"]
    s.window, s.csum, s.urg, s.hlen = th["window"], th["csum"], th["urg"], th["hlen"]
    s.flagbits = th["flags"] & 0x3F
    s.flags = _flagstr(s.flagbits)
    hlen = max(20, min(s.hlen, len(t)))
    s.options = _parse_options(t[20:hlen])
    s.payload = t[hlen:]
    if s.truncated:
        s.csum_ok = False
    else:
        s.csum_ok = _transport_ok(v, pkt, hl, end)
    return s


def _encode_options(options) -> bytes:
    if options is None:
        return b""
    if isinstance(options, (bytes, bytearray)):
        return bytes(options)
    o = b""
    if options.get("mss") is not None:
        o += struct.pack("!BBH", 2, 4, options["mss"])
    if options.get("ws") is not None:
        o += struct.pack("!BBB", 3, 3, options["ws"])
    for k, v in options.items():
        if isinstance(k, int):
            o += struct.pack("!BB", k, 2 + len(v)) + bytes(v)
    while len(o) % 4:
        o += b"\x01"                # NOOP padding, as tcp.c does
    return o


def build(src, dst, sport: int, dport: int, seq: int = 0, ack: int = 0, flags="S",
          window: int = 65535, options=None, payload: bytes = b"", ttl: int = 64,
          bad_checksum: bool = False, hlen: Optional[int] = None, *, urg: int = 0,
          tos: int = 0, ipid: int = 0, truncate: Optional[int] = None,
          ip_len: Optional[int] = None, bad_ip_checksum: bool = False,
          proto: int = IP_TCP) -> bytes:
    """Make an IPv4 or IPv6 (by the address family of src/dst) + TCP
    datagram with correct IP header and pseudo-header TCP checksums.

    flags: letters of "FSRPAU" or an int.  options: {"mss": n, "ws": n} or
    raw bytes (padded with NOOPs to a multiple of 4 when a dict).  Knobs for
    malformed packets: hlen overrides the TCP data offset (bytes, multiple
    of 4, the bytes present are unchanged), bad_checksum spoils the TCP
    checksum, bad_ip_checksum the v4 header checksum, ip_len overrides the
    IP total length (v4) / 40 + payload length (v6), truncate cuts the
    finished datagram to that many bytes.  proto changes the IP protocol
    number (the TCP header is still built)."""
    s16, d16 = ip16(src), ip16(dst)
    if _isv4(s16) != _isv4(d16):
        raise ValueError("mixed address families")
    v4 = _isv4(s16)
    opt = _encode_options(options)
    thl = 20 + len(opt)
    if thl % 4 or thl > 60:
        raise ValueError("tcp header length %d" % thl)
    off = thl if hlen is None else hlen
    payload = bytes(payload)
    tcp = _wire.tcpheader(sport & 0xFFFF, dport & 0xFFFF, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                          _flagbits(flags), window & 0xFFFF, urg & 0xFFFF, off) + opt + payload
    if v4:
        sb, db = s16[12:], d16[12:]
    else:
        sb, db = s16, d16
    c = cksum(tcp, _psum(sb, db, proto, len(tcp)))
    if bad_checksum:
        c ^= 0x5A5A
        if c == 0:
            c = 1
    struct.pack_into("!H", tcp, 16, c)
    if v4:
        tl = 20 + len(tcp) if ip_len is None else ip_len
        h = _wire.ip4header(sb, db, proto, tl & 0xFFFF, ttl, tos, ipid & 0xFFFF)
        if bad_ip_checksum:
            h[10] = h[11] = 0
            hc = cksum(h)
            hc ^= 0xFFFF if hc not in (0, 0xFFFF) else 0x0101
            struct.pack_into("!H", h, 10, hc)
    else:
        pl = len(tcp) if ip_len is None else ip_len - 40
        h = _wire.ip6header(sb, db, proto, pl & 0xFFFF, ttl, tos)
    out = bytes(h + tcp)
    if truncate is not None:
        out = out[:truncate]
    return out


# ---------------------------------------------------------------- pairs

@dataclass
class Pair:
    """Two hosts with stacks on one wire: a at 10.0.0.1 / fd00::1, b at
    10.0.0.2 / fd00::2.  aaddr/baddr are the addresses of the chosen family
    (v6=True: the v6 ones) as strings."""
    wire: Wire
    a: Host
    b: Host
    fsa: Any
    fsb: Any
    tcpa: Any
    tcpb: Any
    aaddr: str
    baddr: str

    def run(self, *args, **kw):
        return self.wire.run(*args, **kw)

    def advance(self, ms):
        return self.wire.advance(ms)


def pair(seed: int = 1, mtu: int = 1500, v6: bool = False, faults=None, strict: bool = True,
         nc: Optional[int] = None, profile: str = "9front", bprofile: Optional[str] = None) -> Pair:
    """A wire with hosts a and b, each with an Fs (seeds seed and seed+1)
    and a TcpProto (of nc conversations, default devip's 4096).  faults: a
    Faults or a dict of fields, applied to both directions.  profile: the
    TCP profile of both ends ("9front", tcp.c exactly, the default here so
    that tests modelling tcp.c event by event keep doing so; or "modern");
    bprofile: b's, when it differs from a's."""
    from net9.conv import Fs
    from net9.tcp import TcpProto
    if not HAVE_CONV:
        raise SimError("net9.sim was imported before net9.conv was importable; "
                       "Host does not subclass IpLayer")
    w = Wire(seed=seed, strict=strict)
    a = w.host("a", ["10.0.0.1", "fd00::1"], mtu=mtu)
    b = w.host("b", ["10.0.0.2", "fd00::2"], mtu=mtu)
    fsa = a.attach(Fs(ip=a, seed=seed, now=w.now))
    fsb = b.attach(Fs(ip=b, seed=seed + 1, now=w.now))
    from net9.conv import Nchans
    tcpa = TcpProto(fsa, Nchans if nc is None else nc, profile=profile)
    tcpb = TcpProto(fsb, Nchans if nc is None else nc, profile=bprofile or profile)
    if faults is not None:
        if isinstance(faults, Faults):
            w.faults(a, b, faults, both=True)
        else:
            w.faults(a, b, both=True, **dict(faults))
    ver = 6 if v6 else 4
    return Pair(w, a, b, fsa, fsb, tcpa, tcpb, a.addr(ver), b.addr(ver))
