"""Tests of the simulated wire (net9/sim.py) with mock stacks, and of its
packet tools.  The engine itself is not needed except for the last tests."""

import heapq
import importlib
import random
import struct

import pytest

from net9 import sim
from net9.sim import (Host, SimError, SimTimeout, Wire, build, cksum, ip16, ipstr,
                      parse)


# ---------------------------------------------------------------- mocks

class MockStack:
    """Stands in for Fs: records advance/iput calls, emits scheduled packets
    through its host when its deadlines come, optionally echoes input."""

    def __init__(self, host, now=0):
        self.host = host
        self.now = now
        self.advances = []
        self.received = []           # (now, proto, pkt)
        self.timers = []             # heap of (time, seq, pkt or callable)
        self.seq = 0
        self.woken = []
        self.echo = False
        self.drains = 0

    def at(self, t, what):
        heapq.heappush(self.timers, (t, self.seq, what))
        self.seq += 1

    def nextdeadline(self):
        return self.timers[0][0] if self.timers else None

    def advance(self, now):
        assert now >= self.now, "clock went back"
        self.now = now
        self.advances.append(now)
        while self.timers and self.timers[0][0] <= now:
            _, _, what = heapq.heappop(self.timers)
            if callable(what):
                what(self)
            else:
                self.send(what)

    def send(self, pkt):
        return self.host.ipoput(pkt[0] >> 4, bytearray(pkt), 64, 0, None)

    def iput(self, proto, pkt):
        assert self.now == self.host.wire.now, "stack clock differs from the wire"
        self.received.append((self.now, proto, bytes(pkt)))
        if self.echo:
            s = parse(pkt)
            self.send(build(s.dst, s.src, s.dport, s.sport, seq=s.ack, ack=s.seq + 1, flags="A"))
        return 0

    def drain(self):
        self.drains += 1
        w, self.woken = self.woken, []
        return w


def mkwire(seed=1, hosts=2, **faults):
    w = Wire(seed=seed)
    hs = []
    for i in range(hosts):
        h = w.host("abcdefgh"[i], ["10.0.0.%d" % (i + 1), "fd00::%d" % (i + 1)])
        h.attach(MockStack(h))
        hs.append(h)
    if faults:
        w.faults(**faults)
    return (w, *hs)


def seg(i, n=0, src="10.0.0.1", dst="10.0.0.2", **kw):
    """A TCP packet identified by its seq number i, n bytes of payload."""
    return build(src, dst, 1000, 2000, seq=i, flags="A", payload=bytes(n), **kw)


def seqs(stack):
    return [parse(p).seq for (_, _, p) in stack.received]


def burst(w, a, count, gap=1, n=0, start=None):
    """Schedule count packets from a, one every gap ms."""
    t0 = w.now if start is None else start
    for i in range(count):
        a.fs.at(t0 + i * gap, seg(i, n))


# ---------------------------------------------------------------- addresses, checksums

def test_addresses():
    assert ip16("10.0.0.1") == b"\0" * 10 + b"\xff\xff" + bytes([10, 0, 0, 1])
    assert ipstr(ip16("10.0.0.1")) == "10.0.0.1"
    assert ipstr(ip16("fd00::2")) == "fd00::2"
    assert len(ip16("fd00::2")) == 16
    assert ip16(bytes([1, 2, 3, 4])) == ip16("1.2.3.4")


def test_cksum_known_vector():
    # the classic example header: 4500 0073 0000 4000 4011 [b861] c0a8 0001 c0a8 00c7
    h = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert cksum(h) == 0xB861
    h2 = h[:10] + b"\xb8\x61" + h[12:]
    assert cksum(h2) == 0
    assert sim.ipv4_header_ok(h2)
    assert not sim.ipv4_header_ok(h)


def _ref_tcp_cksum_ok(pkt):
    """Independent pseudo-header checksum check (RFC 793 / RFC 8200)."""
    def fold(b):
        if len(b) % 2:
            b += b"\0"
        s = 0
        for i in range(0, len(b), 2):
            s += (b[i] << 8) | b[i + 1]
        while s > 0xFFFF:
            s = (s & 0xFFFF) + (s >> 16)
        return s
    if pkt[0] >> 4 == 4:
        hl = (pkt[0] & 15) * 4
        t = pkt[hl:]
        ph = pkt[12:20] + bytes([0, 6]) + struct.pack("!H", len(t))
    else:
        t = pkt[40:]
        ph = pkt[8:40] + struct.pack("!I", len(t)) + bytes([0, 0, 0, 6])
    return fold(ph + t) == 0xFFFF


# ---------------------------------------------------------------- build / parse

@pytest.mark.parametrize("src,dst,ver", [("10.0.0.1", "10.0.0.2", 4), ("fd00::1", "fd00::2", 6)])
def test_build_parse_roundtrip(src, dst, ver):
    p = build(src, dst, 1234, 80, seq=0xFFFFFFF0, ack=77, flags="SA", window=4321,
              options={"mss": 1460, "ws": 7}, payload=b"hello world", ttl=33)
    s = parse(p)
    assert s.version == ver
    assert (s.src, s.dst, s.sport, s.dport) == (src, dst, 1234, 80)
    assert (s.seq, s.ack, s.window, s.ttl) == (0xFFFFFFF0, 77, 4321, 33)
    assert s.flags == "SA" and s.has("S") and s.has("SA") and not s.has("F")
    assert "A" in s.flags
    assert s.flagbits == sim.SYN | sim.ACK
    assert s.options == {"mss": 1460, "ws": 7}
    assert s.hlen == 28 and s.payload == b"hello world"
    assert s.csum_ok and s.ip_ok and not s.truncated
    assert s.seglen == 12
    assert s.ip_len == len(p)
    assert _ref_tcp_cksum_ok(p)
    if ver == 4:
        assert len(p) == 20 + 28 + 11
        assert cksum(p[:20]) == 0
    else:
        assert len(p) == 40 + 28 + 11
        assert struct.unpack_from("!H", p, 4)[0] == 28 + 11
    assert str(s).startswith("%s!1234 > %s!80 SA" % (src, dst))


def test_flags_letters_all():
    for letters in ["F", "S", "R", "P", "A", "U", "FA", "PA", "RA", "FSRPAU"]:
        s = parse(build("10.0.0.1", "10.0.0.2", 1, 2, flags=letters))
        assert s.flags == letters
    assert parse(build("10.0.0.1", "10.0.0.2", 1, 2, flags="")).flags == ""


def test_odd_payload_checksum_and_random_roundtrip():
    r = random.Random(5)
    for i in range(200):
        v6 = i % 2
        src, dst = ("fd00::1", "fd00::2") if v6 else ("10.0.0.1", "10.0.0.2")
        pay = bytes(r.randrange(256) for _ in range(r.randrange(0, 300)))
        p = build(src, dst, r.randrange(65536), r.randrange(65536), seq=r.getrandbits(32),
                  ack=r.getrandbits(32), flags="PA", payload=pay)
        s = parse(p)
        assert s.payload == pay and s.csum_ok and _ref_tcp_cksum_ok(p)


def test_malformed_knobs():
    good = build("10.0.0.1", "10.0.0.2", 1, 2, payload=b"abc")
    bad = build("10.0.0.1", "10.0.0.2", 1, 2, payload=b"abc", bad_checksum=True)
    assert parse(good).csum_ok and not parse(bad).csum_ok
    assert not _ref_tcp_cksum_ok(bad)
    # wrong data offset: header says 32 bytes, only 20 present
    s = parse(build("10.0.0.1", "10.0.0.2", 1, 2, payload=b"abcdefghijkl", hlen=32))
    assert s.hlen == 32 and s.payload == b""
    s = parse(build("10.0.0.1", "10.0.0.2", 1, 2, hlen=8))
    assert s.hlen == 8
    # truncated: IP length says more than present
    t = build("10.0.0.1", "10.0.0.2", 1, 2, payload=b"abcdef", truncate=45)
    assert len(t) == 45
    s = parse(t)
    assert s.truncated and not s.csum_ok
    with pytest.raises(ValueError):
        parse(build("10.0.0.1", "10.0.0.2", 1, 2, truncate=30))
    with pytest.raises(ValueError):
        parse(b"")
    assert not parse(build("10.0.0.1", "10.0.0.2", 1, 2, bad_ip_checksum=True)).ip_ok
    v6 = build("fd00::1", "fd00::2", 1, 2, payload=b"xy", bad_checksum=True)
    assert not parse(v6).csum_ok
    # raw options and malformed option lists
    s = parse(build("10.0.0.1", "10.0.0.2", 1, 2, options=b"\x02\x04\x05\xb4\x01\x03\x03\x02"))
    assert s.options == {"mss": 1460, "ws": 2}
    s = parse(build("10.0.0.1", "10.0.0.2", 1, 2, options=b"\x02\x09\x05\xb4"))
    assert s.options.get("bad")
    s = parse(build("10.0.0.1", "10.0.0.2", 1, 2, options=b"\x00\x02\x04\x05"))
    assert s.options == {}


def test_host_input_checks():
    w, a, b = mkwire()
    good = seg(1)
    assert b.inject(good)
    assert b.counters["accepted"] == 1
    assert not b.inject(build("10.0.0.1", "10.0.0.2", 1, 2, bad_ip_checksum=True))
    assert b.counters["badsum"] == 1
    assert not b.inject(good[:30])                      # total length > buffer
    assert not b.inject(b"\x45")
    assert not b.inject(b"\x75" + bytes(30))            # version 7
    assert not b.inject(build("fd00::1", "fd00::2", 1, 2, truncate=50))
    assert b.counters["malformed"] == 4
    assert not b.inject(seg(1, dst="10.0.0.9"))
    assert b.counters["notours"] == 1
    frag = bytearray(good)
    frag[6] = 0x20                                      # MF
    frag[10:12] = b"\0\0"
    struct.pack_into("!H", frag, 10, cksum(frag[:20]))
    assert not b.inject(bytes(frag))
    assert b.counters["fragment"] == 1
    # link padding past the IP length is trimmed before iput
    assert b.inject(good + b"\0\0\0\0")
    assert b.fs.received[-1][2] == good
    assert len(b.fs.received) == 2 and b.fs.received[0][1] == 6


# ---------------------------------------------------------------- IpLayer methods

def test_iplayer_methods():
    w, a, b = mkwire()
    assert a.route(4, ip16("10.0.0.2"), ip16("10.0.0.1")) == (1500, True)
    assert a.route(6, ip16("fd00::2"), ip16("fd00::1")) == (1500, True)
    assert a.route(4, ip16("10.0.0.9"), ip16("10.0.0.1")) is None
    assert a.route(4, ip16("10.0.0.1"), ip16("10.0.0.1")) is None     # itself: not another host
    assert a.findlocalip(ip16("10.0.0.2")) == ip16("10.0.0.1")
    assert a.findlocalip(ip16("fd00::2")) == ip16("fd00::1")
    v6only = w.host("c", ["fd00::3"])
    assert v6only.findlocalip(ip16("10.0.0.1")) == bytes(16)
    assert a.isself(ip16("10.0.0.1")) and a.isself(ip16("fd00::1"))
    assert a.isself(ip16("255.255.255.255"))
    assert not a.isself(ip16("10.0.0.2"))
    assert a.ipoput(4, bytearray(seg(1, dst="10.0.0.9")), 64, 0, None) == -1
    assert a.counters["noroute"] == 1
    assert w.pending() == 0


def test_ipoput_finishes_v4_header():
    w, a, b = mkwire()
    raw = bytearray(seg(1))
    raw[4:6] = b"\0\0"
    raw[8] = 0
    raw[10:12] = b"\0\0"
    assert a.ipoput(4, raw, 200, 0x10, None) == 0
    assert a.ipoput(4, bytearray(seg(2)), 64, 0, None) == 0
    p1, p2 = (c[3] for c in w.capture)
    s1, s2 = parse(p1), parse(p2)
    assert s1.ip_ok and s2.ip_ok and cksum(p1[:20]) == 0
    assert s1.ttl == 200 and s1.tos == 0x10
    assert s2.ipid == (s1.ipid + 1) & 0xFFFF
    # v6: hop limit from ttl
    assert a.ipoput(6, bytearray(seg(3, src="fd00::1", dst="fd00::2")), 9, 0, None) == 0
    assert parse(w.capture[-1][3]).ttl == 9


def test_strict_rejects_malformed_output():
    w, a, b = mkwire()
    with pytest.raises(SimError, match="checksum"):
        a.ipoput(4, bytearray(seg(1, bad_checksum=True)), 64, 0, None)
    with pytest.raises(SimError, match="length"):
        a.ipoput(4, bytearray(seg(1) + b"xx"), 64, 0, None)
    with pytest.raises(SimError, match="source"):
        a.ipoput(4, bytearray(seg(1, src="10.0.0.7")), 64, 0, None)
    with pytest.raises(SimError, match="version"):
        a.ipoput(6, bytearray(seg(1) + bytes(40)), 64, 0, None)
    with pytest.raises(SimError, match="mtu"):
        a.ipoput(4, bytearray(seg(1, n=1600)), 64, 0, None)
    # a zero TCP checksum is allowed (tcp.c's nochecksum)
    z = bytearray(seg(1))
    z[36:38] = b"\0\0"
    assert a.ipoput(4, z, 64, 0, None) == 0
    w.strict = False
    assert a.ipoput(4, bytearray(seg(1, bad_checksum=True)), 64, 0, None) == 0
    assert a.ipoput(4, bytearray(seg(1, n=1600)), 64, 0, None) == 0
    assert a.counters["toobig"] == 2
    assert len(w.capture) == 2


# ---------------------------------------------------------------- delivery and time

def test_delay_and_delivery():
    w, a, b = mkwire(delay=7)
    a.fs.at(3, seg(1))
    a.fs.at(3, seg(2))
    assert w.run() is True and w.stop_reason == "idle"
    assert [(t, s) for (t, _, p), s in zip(b.fs.received, seqs(b.fs))] == [(10, 1), (10, 2)]
    assert w.now == 10
    assert [c[:3] for c in w.capture] == [(3, "a", "b"), (3, "a", "b")]
    assert [d[:3] for d in w.deliveries] == [(10, "a", "b"), (10, "a", "b")]
    c = w.counters(a, b)
    assert (c.sent, c.delivered, c.lost) == (2, 2, 0)
    assert w.counters(b, a).sent == 0


def test_default_delay_is_one_and_per_direction_faults():
    w, a, b = mkwire()
    assert w.faults_of(a, b).delay == 1
    w.faults(a, b, delay=5)
    w.faults(b, a, delay=11)
    b.fs.echo = True
    a.fs.at(0, seg(1))
    w.run()
    assert b.fs.received[0][0] == 5
    assert a.fs.received[0][0] == 16
    f = w.faults(a, b, both=True, loss=0.0, delay=2)
    assert f.delay == 2 and w.faults_of(b, a).delay == 2
    with pytest.raises(TypeError):
        w.faults(a, b, lossy=1)


def test_echo_round_trip_is_reentrant():
    w, a, b = mkwire(delay=4)
    b.fs.echo = True
    for i in range(5):
        a.fs.at(i * 10, seg(i))
    w.run()
    assert [t for (t, _, _) in b.fs.received] == [4, 14, 24, 34, 44]
    assert [t for (t, _, _) in a.fs.received] == [8, 18, 28, 38, 48]
    assert [parse(p).ack for (_, _, p) in a.fs.received] == [1, 2, 3, 4, 5]


def test_deadlines_exact_and_clock_monotonic():
    w, a, b = mkwire()
    for t in (5, 17, 100):
        a.fs.at(t, lambda s: None)
    b.fs.at(42, lambda s: None)
    assert w.run()
    # every stack is advanced at every instant something happens, exactly then
    assert a.fs.advances == [5, 17, 42, 100]
    assert b.fs.advances == [5, 17, 42, 100]
    assert w.now == 100 == a.fs.now == b.fs.now
    # timers that re-arm from inside advance
    w2, c, d = mkwire()
    ticks = []

    def tick(s):
        ticks.append(s.now)
        if s.now < 200:
            s.at(s.now + 50, tick)
    c.fs.at(50, tick)
    w2.run()
    assert ticks == [50, 100, 150, 200]
    assert d.fs.advances == [50, 100, 150, 200]


def test_clock_never_back_under_faults():
    w, a, b = mkwire(seed=9, loss=0.1, dup=0.1, reorder=0.2, jitter=5, delay=3)
    b.fs.echo = True
    burst(w, a, 300, gap=1)
    w.run()
    for st in (a.fs, b.fs):
        assert st.advances == sorted(st.advances)
        times = [t for (t, _, _) in st.received]
        assert times == sorted(times)
    dt = [d[0] for d in w.deliveries]
    assert dt == sorted(dt)


def test_overdue_deadline_and_spin_detection():
    w, a, b = mkwire()
    w.advance(10)
    a.fs.at(3, lambda s: None)          # already overdue: runs at now, not in the past
    w.run()
    assert a.fs.advances[-1] == 10 and w.now == 10

    class Stuck(MockStack):
        def nextdeadline(self):
            return 0
    w2 = Wire()
    h = w2.host("x", ["10.0.0.1"])
    h.attach(Stuck(h))
    with pytest.raises(SimError, match="still due"):
        w2.run()


def test_run_stops_on_until():
    w, a, b = mkwire(delay=2)
    burst(w, a, 10, gap=5)
    assert w.run(until=lambda: len(b.fs.received) >= 3) is True
    assert w.stop_reason == "until"
    assert len(b.fs.received) == 3 and w.now == 12
    assert w.run(until=lambda: True) is True and w.now == 12     # checked first
    assert w.run(until=lambda: False) is False
    assert w.stop_reason == "idle" and len(b.fs.received) == 10
    with pytest.raises(SimTimeout):
        w.run(until=lambda: False, check=True)


def test_run_stops_on_max_ms_and_max_events():
    w, a, b = mkwire()

    def forever(s):
        s.at(s.now + 10, forever)
    a.fs.at(10, forever)
    assert w.run(max_ms=1005) is False
    assert w.stop_reason == "max_ms" and w.now == 1005
    assert a.fs.now == b.fs.now == 1005
    assert a.fs.advances[-2:] == [1000, 1005]
    with pytest.raises(SimTimeout, match="max_ms"):
        w.run(max_ms=100, check=True)
    assert w.now == 1105
    n = w.events
    assert w.run(max_events=7) is False and w.stop_reason == "max_events"
    assert w.events == n + 7
    # until satisfied by the advance to the limit itself
    assert w.run(until=lambda: w.now >= 1500, max_ms=1000) is True


def test_advance_exact():
    w, a, b = mkwire(delay=10)
    a.fs.at(0, seg(1))
    a.fs.at(5, seg(2))
    assert w.advance(9) == 2              # t=0 emit, t=5 emit
    assert w.now == 9 and b.fs.received == [] and w.pending() == 2
    w.advance(1)
    assert w.now == 10 and seqs(b.fs) == [1]
    w.advance(100)
    assert w.now == 110 and seqs(b.fs) == [1, 2]
    assert a.fs.now == b.fs.now == 110
    w.run_until_time(200)
    assert w.now == 200


def test_at_and_after_callbacks():
    w, a, b = mkwire(delay=1)
    log = []
    w.at(5, lambda: log.append(("at", w.now)))
    w.after(3, lambda x: log.append((x, w.now)), "after")
    w.at(5, lambda: a.fs.send(seg(9)))
    w.run()
    assert log == [("after", 3), ("at", 5)]
    assert b.fs.received[0][0] == 6


def test_autodrain_and_on_wake():
    w, a, b = mkwire()
    seen = []
    b.on_wake = lambda h, convs: seen.append((w.now, h.name, list(convs)))
    b.fs.at(20, lambda s: s.woken.extend(["c1", "c2"]))
    w.run()
    assert b.wakeups == [(20, "c1"), (20, "c2")]
    assert seen == [(20, "b", ["c1", "c2"])]
    w.autodrain = False
    b.fs.at(30, lambda s: s.woken.append("c3"))
    w.run()
    assert b.fs.woken == ["c3"] and len(b.wakeups) == 2


# ---------------------------------------------------------------- fault model

def _scenario(seed):
    w, a, b = mkwire(seed=seed, loss=0.1, dup=0.1, reorder=0.1, reorder_delay=7, jitter=3,
                     corrupt=0.05, delay=2)
    b.fs.echo = True
    burst(w, a, 500, gap=1, n=10)
    w.run()
    return w, a, b


def test_determinism():
    w1, a1, b1 = _scenario(3)
    w2, a2, b2 = _scenario(3)
    assert w1.capture == w2.capture
    assert w1.deliveries == w2.deliveries
    assert b1.fs.received == b2.fs.received and a1.fs.received == a2.fs.received
    assert w1.counters("a", "b") == w2.counters("a", "b")
    w3, _, _ = _scenario(4)
    assert w3.deliveries != w1.deliveries


def test_loss_rate():
    w, a, b = mkwire(seed=11, loss=0.25)
    burst(w, a, 10000, gap=1)
    w.run()
    c = w.counters(a, b)
    assert c.sent == 10000
    assert c.lost + c.delivered == 10000
    assert 0.23 < c.lost / 10000 < 0.27
    assert len(b.fs.received) == c.delivered
    assert len(w.capture) == 10000              # capture is before faults


def test_duplication():
    w, a, b = mkwire(seed=2, dup=1.0)
    burst(w, a, 5, gap=10)
    w.run()
    assert seqs(b.fs) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    c = w.counters(a, b)
    assert (c.sent, c.duplicated, c.delivered) == (5, 5, 10)
    w, a, b = mkwire(seed=2, dup=0.3)
    burst(w, a, 5000)
    w.run()
    c = w.counters(a, b)
    assert 0.27 < c.duplicated / 5000 < 0.33
    assert c.delivered == 5000 + c.duplicated


def test_reordering():
    w, a, b = mkwire(seed=5, reorder=0.3, reorder_delay=10, delay=2)
    burst(w, a, 1000, gap=1)
    w.run()
    c = w.counters(a, b)
    got = seqs(b.fs)
    assert sorted(got) == list(range(1000)) and got != sorted(got)
    # every packet arrives after exactly delay or delay + reorder_delay
    late = 0
    for (t, _, p) in b.fs.received:
        d = t - parse(p).seq
        assert d in (2, 12)
        late += d == 12
    assert late == c.reordered and 0.25 < late / 1000 < 0.35


def test_jitter_bounds():
    w, a, b = mkwire(seed=6, jitter=4, delay=3)
    burst(w, a, 2000, gap=10)
    w.run()
    ds = {t - parse(p).seq * 10 for (t, _, p) in b.fs.received}
    assert ds == {3, 4, 5, 6, 7}


def test_bandwidth_serialization_exact():
    w, a, b = mkwire(bandwidth=100, delay=1)
    # 250-byte datagrams (20 ip + 20 tcp + 210): 2.5 ms each on the link
    for i in range(3):
        a.fs.at(0, seg(i, 210))
    a.fs.at(20, seg(3, 210))                  # link idle again by then
    a.fs.at(20, seg(4, 60))                   # 100 bytes: 1 ms behind it
    w.run()
    assert len(seg(0, 210)) == 250
    # ends of serialization 2.5, 5, 7.5, 22.5, 23.5 -> ceil + delay
    assert [(t, s) for (t, _, _), s in zip(b.fs.received, seqs(b.fs))] == \
        [(4, 0), (6, 1), (9, 2), (24, 3), (25, 4)]
    # the other direction has its own queue and no bandwidth limit
    assert w.faults_of(b, a).bandwidth == 100
    w.faults(b, a, bandwidth=None)
    b.fs.at(30, seg(7, 210, src="10.0.0.2", dst="10.0.0.1"))
    w.run()
    assert a.fs.received[0][0] == 31


def test_bandwidth_queue_limit_drop_tail():
    w, a, b = mkwire(bandwidth=100, queue_limit=2, delay=0)
    for i in range(5):
        a.fs.at(0, seg(i, 60))                # 100 bytes: 1 ms each
    a.fs.at(1, seg(5, 60))                    # first left the queue at t=1
    w.run()
    c = w.counters(a, b)
    assert c.queue_dropped == 3 and c.sent == 6
    assert [(t, s) for (t, _, _), s in zip(b.fs.received, seqs(b.fs))] == [(1, 0), (2, 1), (3, 5)]


def test_corruption_flips_one_bit():
    w, a, b = mkwire(seed=8, corrupt=1.0)
    burst(w, a, 300, n=30)
    w.run()
    c = w.counters(a, b)
    assert c.corrupted == 300 == c.delivered
    for (_, _, _, sent), (_, _, _, got) in zip(w.capture, w.deliveries):
        assert len(sent) == len(got)
        diff = sum(bin(x ^ y).count("1") for x, y in zip(sent, got))
        assert diff == 1
    # corrupted headers are dropped by IP input, corrupted segments reach the stack
    rx = b.counters
    assert rx["badsum"] + rx["malformed"] + rx["notours"] + rx["accepted"] + rx["toobig"] \
        + rx["fragment"] == 300
    assert rx["accepted"] == len(b.fs.received) > 0
    assert any(not parse(p).csum_ok for (_, _, p) in b.fs.received)


def test_filter_hook():
    w, a, b = mkwire()
    calls = []

    def f(src, dst, pkt):
        calls.append((src.name, dst.name))
        s = parse(pkt)
        if s.seq == 2:
            return None                                # drop
        if s.seq == 3:
            return [pkt, pkt, pkt]                     # multiply
        if s.seq == 4:
            return build(s.src, s.dst, s.sport, s.dport, seq=40, flags="A")   # rewrite
        return pkt
    w.filter = f
    burst(w, a, 6, gap=1)
    w.run()
    assert seqs(b.fs) == [0, 1, 3, 3, 3, 40, 5]
    assert calls == [("a", "b")] * 6
    c = w.counters(a, b)
    assert c.filtered == 1 and c.sent == 7
    assert [parse(p).seq for (_, _, _, p) in w.capture] == [0, 1, 2, 3, 4, 5]


def test_broadcast_and_unroutable():
    w, a, b, c = mkwire(hosts=3)
    a.fs.at(0, seg(1, dst="255.255.255.255"))
    w.run()
    assert len(b.fs.received) == 1 and len(c.fs.received) == 1 and a.fs.received == []
    assert w.send(a, seg(2, dst="10.9.9.9")) == 0 and w.unroutable == 1
    assert w.send(a, b"junk") == 0


def test_in_flight_view():
    w, a, b = mkwire(delay=50)
    burst(w, a, 3, gap=1)
    w.advance(10)
    fl = w.in_flight(a, b)
    assert [(t, parse(p).seq) for (t, _, _, p) in fl] == [(50, 0), (51, 1), (52, 2)]
    assert w.in_flight(b, a) == []


def test_host_names_unique_and_lookup():
    w, a, b = mkwire()
    with pytest.raises(SimError):
        w.host("a", ["10.0.0.5"])
    assert w._host("b") is b
    assert a.addr(4) == "10.0.0.1" and a.addr(6) == "fd00::1"


# ---------------------------------------------------------------- with the real engine

def _have(mod):
    try:
        importlib.import_module(mod)
        return True
    except ImportError:
        return False


@pytest.mark.skipif(not _have("net9.conv"), reason="net9.conv is not built yet: Host falls back to object")
def test_host_subclasses_iplayer():
    from net9.conv import IpLayer
    assert sim.HAVE_CONV and issubclass(Host, IpLayer)
    h = Host("z", ["10.0.0.1"])
    assert isinstance(h, IpLayer)


@pytest.mark.skipif(not (_have("net9.conv") and _have("net9.tcp")),
                    reason="net9.conv / net9.tcp are not built yet")
def test_pair_builds():
    p = sim.pair(seed=3)
    assert p.fsa.ip is p.a and p.fsb.ip is p.b
    assert (p.aaddr, p.baddr) == ("10.0.0.1", "10.0.0.2")
    assert p.a.fs is p.fsa and p.b.fs is p.fsb
    assert p.wire.run(max_ms=10_000) in (True, False)
    assert p.fsa.now == p.fsb.now == p.wire.now
    p6 = sim.pair(seed=3, v6=True, faults={"loss": 0.1})
    assert (p6.aaddr, p6.baddr) == ("fd00::1", "fd00::2")
    assert p6.wire.faults_of("b", "a").loss == 0.1
