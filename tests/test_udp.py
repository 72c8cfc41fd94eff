"""Tests of net9.udp (9front's udp.c over devip's conversation layer):
datagram boundaries and truncation, fragmentation, the 64 KiB write split,
the 512 KiB read queue, headers mode with several peers, calls through
listen, port unreachable both ways and its advice, checksums, malformed
input (hypothesis), the stats and status texts, ctl errors, multicast
memberships reaching the IP layer.  Two stacks joined by tests/ipnet.py's
link (a = 10.0.0.1 / fd00::1, b = 10.0.0.2 / fd00::2); expected values
come from udp.c, qio.c, devip.c and devip.md sections 3.10, 4.2, 5, 7, 9."""

import struct

import pytest
from hypothesis import given, settings, HealthCheck, strategies as st

from ipnet import Net, a16, a4, ip4, ip6, icmp4msg, icmp6ok
from net9.conv import Fs
from net9.csum import cksum
from net9.errors import Net9Error
from net9.ipaux import parseip
from net9.udp import UdpProto, CONST

V4PFX = b"\0" * 10 + b"\xff\xff"


def mknet(mtu=1500, **kw):
    net = Net(mtu=mtu, **kw)
    for h in net.hosts:
        h.udp = UdpProto(h.fs)
    return net


def udpmsg(src, dst, sport, dport, payload=b"", csum="ok", ulen=None, v6=False):
    """A UDP header and payload with the checksum right ("ok"), zero
    ("zero") or wrong ("bad")."""
    if ulen is None:
        ulen = 8 + len(payload)
    m = bytearray(struct.pack("!HHHH", sport, dport, ulen & 0xFFFF, 0)) + payload
    if v6:
        ph = a16(src) + a16(dst) + struct.pack("!IxxxB", len(m), 17)
    else:
        ph = a4(src) + a4(dst) + struct.pack("!xBH", 17, len(m))
    s = cksum(ph + bytes(m))
    if s == 0:
        s = 0xFFFF
    if csum == "zero":
        s = 0
    elif csum == "bad":
        s ^= 0x1234
    struct.pack_into("!H", m, 6, s)
    return bytes(m)


def udp4(src, dst, sport, dport, payload=b"", **kw):
    return ip4(src, dst, 17, udpmsg(src, dst, sport, dport, payload, **kw))


def udp6(src, dst, sport, dport, payload=b"", **kw):
    return ip6(src, dst, 17, udpmsg(src, dst, sport, dport, payload, v6=True, **kw))


def udpok(pkt):
    """True when the UDP checksum of a whole datagram (v4 or v6) is right."""
    if pkt[0] >> 4 == 4:
        u = pkt[20:]
        ph = pkt[12:20] + struct.pack("!xBH", 17, len(u))
    else:
        u = pkt[40:]
        ph = pkt[8:40] + struct.pack("!IxxxB", len(u), 17)
    return cksum(ph + u) == 0


def stats(u):
    return dict((l.split(": ")[0], int(l.split(": ")[1])) for l in u.stats().splitlines())


def pair(net, v6=False, port=7, headers=False):
    """b announces port (optionally in headers mode); a connects to it."""
    s = net.b.udp.clone("u")
    if headers:
        net.b.udp.ctl(s, "headers")
    net.b.udp.ctl(s, "announce %d" % port)
    c = net.a.udp.clone("u")
    net.a.udp.ctl(c, "connect %s!%d" % ("fd00::2" if v6 else "10.0.0.2", port))
    return s, c


def readall(u, c, n=1 << 17):
    out = []
    while True:
        d = u.read(c, n)
        if d is None:
            return out
        out.append(d)


# ---------------------------------------------------------------- stats, status, ctl

def test_stats_text_byte_for_byte():
    # udpstats: exactly four lines in this order and format
    u = UdpProto(Fs())
    assert u.stats() == "InDatagrams: 0\nNoPorts: 0\nInErrors: 0\nOutDatagrams: 0\n"
    net = mknet()
    s, c = pair(net)
    for i in range(3):
        net.a.udp.write(c, b"x" * i)
    net.run(max_ms=10)
    d = net.a.udp.clone("u")
    net.a.udp.ctl(d, "connect 10.0.0.2!9")          # nobody there
    net.a.udp.write(d, b"y")
    net.run(max_ms=10)
    net.b.input(udp4("10.0.0.1", "10.0.0.2", 1, 7, b"z", csum="bad"))
    assert net.a.udp.stats() == "InDatagrams: 0\nNoPorts: 0\nInErrors: 0\nOutDatagrams: 4\n"
    assert net.b.udp.stats() == "InDatagrams: 5\nNoPorts: 1\nInErrors: 1\nOutDatagrams: 0\n"
    assert net.b.udp.stat("CsumErrs") == 1 and net.b.udp.stat("LenErrs") == 0
    with pytest.raises(KeyError):
        net.b.udp.stat("Nope")


def test_status_lines_and_close():
    # udpstate: "Open" while the conversation has a reference, qin = bytes
    # queued, qout 0 (bypass write queue); udpclose resets the addresses
    net = mknet()
    s, c = pair(net)
    assert net.a.udp.status(c) == "Open qin 0 qout 0\n"
    assert net.b.udp.status(s) == "Open qin 0 qout 0\n"
    net.a.udp.write(c, b"12345")
    net.a.udp.write(c, b"678")
    net.run(max_ms=10)
    call = net.b.udp.takecall(s)
    assert net.b.udp.status(call) == "Open qin 8 qout 0\n"
    assert net.a.udp.status(c) == "Open qin 0 qout 0\n"
    assert net.a.udp.localtext(c).startswith("10.0.0.1!")
    assert net.a.udp.remotetext(c) == "10.0.0.2!7\n"
    lport = c.lport
    assert 32768 <= lport <= 65535                   # devip.md 3.6 ephemeral range
    net.a.udp.closeconv(c)
    assert net.a.udp.status(c) == "Closed qin 0 qout 0\n"
    assert net.a.udp.localtext(c) == "::!0\n" and net.a.udp.remotetext(c) == "::!0\n"
    assert c.state == 0 and not c.hashed
    # the port is free again: a datagram to it draws port unreachable
    net.b.udp.write(call, b"back")
    net.run(max_ms=10)
    assert stats(net.a.udp)["NoPorts"] == 1
    # err: nothing is ever written; closed at the last close
    assert net.b.udp.read(call, 10) == b"12345"
    assert call.eq.read(100) is None
    net.b.udp.closeconv(call)
    assert call.eq.read(100) == b""


def test_ctl_errors():
    net = mknet()
    u = net.a.udp
    c = u.clone("u")
    for msg in ("headers x", "hangup now", "frob", "close", "keepalive", "accept 3",
                "reject 3 no"):
        with pytest.raises(Net9Error, match="^unknown control request$"):
            u.ctl(c, msg)
    with pytest.raises(Net9Error, match="^short control request$"):
        u.ctl(c, "")
    u.ctl(c, "headers")
    assert c.headers
    u.ctl(c, "ttl 9")
    u.ctl(c, "tos 32")
    u.ctl(c, "ignoreadvice")
    assert (c.ttl, c.tos, c.ignoreadvice) == (9, 32, 1)
    with pytest.raises(Net9Error, match="^malformed address$"):
        u.ctl(c, "connect 10.0.0.2")
    # a failed connect spoils the conversation (udpconnect calls Fsconnected)
    with pytest.raises(Net9Error, match="^connection in use$"):
        u.ctl(c, "connect 10.0.0.2!7")
    u.ctl(u.clone("u"), "announce 53")
    # each on a new conversation (user None: the owner, "u")
    for msg, user, err in [("announce", None, "bad args to announce"),
                           ("announce 53", None, "address in use"),
                           ("connect example.com!53", None, "bad ip address syntax"),
                           ("announce 10.0.0.9!53", None, "not a local IP address"),
                           ("announce *", "joe", "permission denied")]:
        x = u.clone("u")
        with pytest.raises(Net9Error, match="^%s$" % err):
            u.ctl(x, msg, user=user)
    # protocol index and limit (devip.md 1.2: udp nc = 1024)
    assert u.nc == 1024 and u.ipproto == 17 and u.name == "udp"
    assert net.a.fs.ipproto[17] is u


def test_write_on_unconnected_conversation_is_dropped_silently():
    net = mknet()
    c = net.a.udp.clone("u")
    n = len(net.a.end.sent)
    assert net.a.udp.write(c, b"nowhere") == 7
    assert len(net.a.end.sent) == n
    assert stats(net.a.udp)["OutDatagrams"] == 1            # udpkick counts it
    # an announced conversation without headers has no remote either
    net.a.udp.ctl(c, "announce 99")
    net.a.udp.write(c, b"still nowhere")
    assert len(net.a.end.sent) == n


# ---------------------------------------------------------------- data

SIZES4 = [1, 2, 7, 8, 9, 100, 1471, 1472, 1473, 1480, 2000, 2953, 8192, 30000, 60000, 65507]


def test_datagram_boundaries_v4_with_fragmentation():
    net = mknet()
    s, c = pair(net)
    payloads = [bytes((i + j) & 0xFF for j in range(n)) for i, n in enumerate(SIZES4)]
    for p in payloads:
        assert net.a.udp.write(c, p) == len(p)
    sent = net.a.end.sent[:]
    # one datagram per write, fragmented by IP to the 1500-byte MTU:
    # (1500-20) & ~7 = 1480 data bytes per fragment, 8 of them the header
    nfrag = [1 if n + 28 <= 1500 else -(-(n + 8) // 1480) for n in SIZES4]
    assert len(sent) == sum(nfrag)
    assert all(len(p) <= 1500 for p in sent)
    assert net.a.ip.stat("FragOKs") == sum(1 for k in nfrag if k > 1)
    net.run(max_ms=10)
    call = net.b.udp.takecall(s)
    got = readall(net.b.udp, call)
    assert got == payloads
    assert stats(net.a.udp)["OutDatagrams"] == len(SIZES4)
    assert stats(net.b.udp)["InDatagrams"] == len(SIZES4)
    # and back, each on its own
    for p in payloads:
        net.b.udp.write(call, p)
    net.run(max_ms=10)
    assert readall(net.a.udp, c) == payloads


def test_datagram_boundaries_v6_with_fragmentation():
    net = mknet()
    s, c = pair(net, v6=True)
    sizes = [1, 1452, 1453, 5000, 60000, 65487]
    payloads = [bytes((7 * i + j) & 0xFF for j in range(n)) for i, n in enumerate(sizes)]
    for p in payloads:
        net.a.udp.write(c, p)
    assert all(len(p) <= 1500 for p in net.a.end.sent)
    assert all(p[0] >> 4 == 6 for p in net.a.end.sent)
    # 1452 + 48 = 1500: not fragmented; 1453 is
    assert net.a.end.sent[0][6] == 17 and net.a.end.sent[1][6] == 17 and net.a.end.sent[2][6] == 44
    net.run(max_ms=10)
    call = net.b.udp.takecall(s)
    assert net.b.udp.localtext(call) == "fd00::2!7\n"
    assert net.b.udp.remotetext(call) == "fd00::1!%d\n" % c.lport
    assert readall(net.b.udp, call) == payloads


def test_read_truncates_and_discards_the_rest():
    # devip.md 4.2: one datagram per read; the rest of a longer one is lost
    net = mknet()
    s, c = pair(net)
    net.a.udp.write(c, b"abcdefghij")
    net.a.udp.write(c, b"")
    net.a.udp.write(c, b"KLMNOP")
    net.run(max_ms=10)
    call = net.b.udp.takecall(s)
    assert net.b.udp.read(call, 3) == b"abc"
    assert net.b.udp.read(call, 100) == b""           # the empty datagram: a 0-byte read
    assert net.b.udp.read(call, 100) == b"KLMNOP"
    assert net.b.udp.read(call, 100) is None          # nothing: a reader would block


def test_empty_datagram_on_the_wire():
    net = mknet()
    s, c = pair(net)
    net.a.udp.write(c, b"")
    pkt = net.a.end.sent[-1]
    assert len(pkt) == 28 and struct.unpack("!H", pkt[24:26])[0] == 8 and udpok(pkt)


def test_write_over_64k_is_split_and_ip_drops_64k():
    # qwrite chunks a write into Maxatomic (64 KiB) blocks, each a datagram;
    # 65536 + 28 bytes is over IP's limit and dropped (OutDiscards)
    net = mknet()
    s, c = pair(net)
    data = bytes(range(256)) * 300                    # 76800 bytes
    discards = net.a.ip.stat("OutDiscards")
    assert net.a.udp.write(c, data) == len(data)
    assert stats(net.a.udp)["OutDatagrams"] == 2
    assert net.a.ip.stat("OutDiscards") == discards + 1
    net.run(max_ms=10)
    call = net.b.udp.takecall(s)
    assert readall(net.b.udp, call) == [data[CONST["Maxatomic"]:]]
    # the largest v4 datagram: 65535 - 28 = 65507 bytes
    net.a.udp.write(c, b"m" * 65507)
    net.a.udp.write(c, b"n" * 65508)
    assert net.a.ip.stat("OutDiscards") == discards + 2
    net.run(max_ms=10)
    assert readall(net.b.udp, call) == [b"m" * 65507]


def test_read_queue_limit_drops_datagrams():
    # udpcreate: qopen(512*1024, Qmsg); qfull (Qflow) is set once more
    # than the limit is queued: 1000-byte datagrams are taken while at
    # most 524288 bytes are queued, i.e. 525 of them, then dropped
    net = mknet()
    s, c = pair(net)
    net.a.udp.write(c, b"first")
    net.run(max_ms=10)
    call = net.b.udp.takecall(s)
    assert net.b.udp.read(call, 10) == b"first"
    for i in range(600):
        net.a.udp.write(c, struct.pack("!I", i) + bytes(996))
    net.run(max_ms=10)
    limit = CONST["UDP_RQLIMIT"]
    assert limit == 512 * 1024
    nq = limit // 1000 + 1
    assert nq == 525
    assert net.b.udp.status(call) == "Open qin %d qout 0\n" % (nq * 1000)
    assert net.b.udp.stat("QFull") == 600 - nq
    got = readall(net.b.udp, call, 2000)
    assert [struct.unpack("!I", g[:4])[0] for g in got] == list(range(nq))
    # room again: the next one is queued
    net.a.udp.write(c, b"again")
    net.run(max_ms=10)
    assert net.b.udp.read(call, 10) == b"again"


def test_checksums_out_and_zero_becomes_minus_zero():
    net = mknet()
    s, c = pair(net)
    net.a.udp.write(c, b"\0\0")
    p0 = net.a.end.sent[-1]
    assert udpok(p0)
    c0 = struct.unpack("!H", p0[26:28])[0]
    # a payload word equal to that checksum makes the sum come out 0,
    # which is sent as 0xffff ("-0": 0 would mean "no checksum")
    net.a.udp.write(c, struct.pack("!H", c0))
    p1 = net.a.end.sent[-1]
    assert struct.unpack("!H", p1[26:28])[0] == 0xFFFF and udpok(p1)
    # v6 likewise
    s6, c6 = pair(net, v6=True, port=8)
    net.a.udp.write(c6, b"\0\0")
    q0 = net.a.end.sent[-1]
    assert udpok(q0)
    net.a.udp.write(c6, q0[46:48])
    assert net.a.end.sent[-1][46:48] == b"\xff\xff" and udpok(net.a.end.sent[-1])
    net.run(max_ms=10)
    assert stats(net.b.udp)["InErrors"] == 0
    assert len(readall(net.b.udp, net.b.udp.takecall(s))) == 2


def test_checksums_in():
    net = mknet()
    s = net.b.udp.clone("u")
    net.b.udp.ctl(s, "headers")
    net.b.udp.ctl(s, "announce 7")
    b = net.b.udp
    assert b.rcv is not None  # the IP layer hands datagrams to rcv
    net.b.input(udp4("10.0.0.1", "10.0.0.2", 5, 7, b"good"))
    net.b.input(udp4("10.0.0.1", "10.0.0.2", 5, 7, b"none", csum="zero"))   # v4: none
    net.b.input(udp4("10.0.0.1", "10.0.0.2", 5, 7, b"bad", csum="bad"))
    net.b.input(udp6("fd00::1", "fd00::2", 5, 7, b"good6"))
    net.b.input(udp6("fd00::1", "fd00::2", 5, 7, b"zero6", csum="zero"))     # v6: mandatory
    net.b.input(udp6("fd00::1", "fd00::2", 5, 7, b"bad6", csum="bad"))
    got = [d[52:] for d in readall(b, s)]
    assert got == [b"good", b"none", b"good6"]
    st = stats(b)
    assert st["InDatagrams"] == 6 and st["InErrors"] == 3 and st["NoPorts"] == 0
    assert b.stat("CsumErrs") == 3
    # a bad checksum draws no ICMP either
    assert not [p for p in net.b.end.sent if p[9:10] == b"\x01" or p[6:7] == b"\x3a"]


# ---------------------------------------------------------------- headers mode

def hdr(raddr, laddr, ifcaddr, rport, lport):
    return a16(raddr) + a16(laddr) + a16(ifcaddr) + struct.pack("!HH", rport, lport)


def test_headers_mode_serves_three_peers():
    # devip.md 4.2: an announced conversation in headers mode gets every
    # datagram for its port itself, each after a 52-byte header (remote,
    # local, interface address, remote port, local port); each write
    # starts with such a header saying where the datagram goes
    net = mknet()
    s = net.b.udp.clone("u")
    net.b.udp.ctl(s, "headers")
    net.b.udp.ctl(s, "announce 53")
    peers = []
    for _i, dst in enumerate(["10.0.0.2", "10.0.0.2", "fd00::2"]):
        c = net.a.udp.clone("u")
        net.a.udp.ctl(c, "connect %s!53" % dst)
        peers.append(c)
    for i, c in enumerate(peers):
        net.a.udp.write(c, b"query %d" % i)
    net.run(max_ms=10)
    assert s.incall == []                             # no calls in headers mode
    got = readall(net.b.udp, s)
    assert len(got) == 3
    for i, (c, d) in enumerate(zip(peers, got)):
        v6 = i == 2
        ra, la, ia = d[:16], d[16:32], d[32:48]
        rport, lport = struct.unpack("!HH", d[48:52])
        assert ra == parseip("fd00::1" if v6 else "10.0.0.1")
        assert la == parseip("fd00::2" if v6 else "10.0.0.2")
        assert ia == la                               # b's address closest to the sender
        assert (rport, lport) == (c.lport, 53)
        assert d[52:] == b"query %d" % i
    # answer each peer: the header as received (the local port field and
    # the interface field are ignored), in reverse order
    for i, d in reversed(list(enumerate(got))):
        net.b.udp.write(s, d[:50] + b"\0\0" + b"answer %d" % i)
    net.run(max_ms=10)
    for i, c in enumerate(peers):
        assert readall(net.a.udp, c) == [b"answer %d" % i]
    assert stats(net.b.udp)["OutDatagrams"] == 3
    # replies came from port 53 and carried right checksums
    out = [p for p in net.b.end.sent if (p[9] if p[0] >> 4 == 4 else p[6]) == 17]
    assert len(out) == 3 and all(udpok(p) for p in out)
    assert [struct.unpack("!H", p[20:22] if p[0] >> 4 == 4 else p[40:42])[0] for p in out] == [53] * 3


def test_headers_write_short_is_dropped_and_source_rules():
    net = mknet()
    s = net.b.udp.clone("u")
    net.b.udp.ctl(s, "headers")
    net.b.udp.ctl(s, "announce 53")
    n = len(net.b.end.sent)
    net.b.udp.write(s, b"x" * 51)                     # shorter than the header
    assert len(net.b.end.sent) == n and stats(net.b.udp)["OutDatagrams"] == 0
    # exactly the header: an empty datagram
    net.b.udp.write(s, hdr("10.0.0.1", "10.0.0.2", "::", 999, 0))
    p = net.b.end.sent[-1]
    assert len(p) == 28 and p[12:16] == a4("10.0.0.2") and p[16:20] == a4("10.0.0.1")
    assert struct.unpack("!HH", p[20:24]) == (53, 999)
    # a source that is not ours: the one routing picks
    net.b.udp.write(s, hdr("10.0.0.1", "10.9.9.9", "::", 999, 0) + b"r")
    assert net.b.end.sent[-1][12:16] == a4("10.0.0.2")
    # a broadcast source: the interface field when it is ours and routes
    net.b.udp.write(s, hdr("10.0.0.1", "10.0.0.255", "10.0.0.2", 999, 0) + b"b")
    assert net.b.end.sent[-1][12:16] == a4("10.0.0.2")
    # an unspecified source: v4 and routing's choice... of "::" -> v4
    net.b.udp.write(s, hdr("10.0.0.1", "::", "::", 999, 0) + b"u")
    p = net.b.end.sent[-1]
    assert p[0] >> 4 == 4 and p[12:16] == a4("10.0.0.2")
    # v6 source: a v6 datagram
    net.b.udp.write(s, hdr("fd00::1", "fd00::2", "::", 999, 0) + b"6")
    p = net.b.end.sent[-1]
    assert p[0] >> 4 == 6 and p[8:24] == parseip("fd00::2") and udpok(p)


def test_headers_mode_broadcast_reception_and_reply():
    # a datagram to the subnet broadcast reaches the headers conversation
    # with the broadcast as its local address and b's unicast address as
    # the interface's; a reply with that header goes out from 10.0.0.2
    net = mknet()
    s = net.b.udp.clone("u")
    net.b.udp.ctl(s, "headers")
    net.b.udp.ctl(s, "announce 67")
    net.b.input(udp4("10.0.0.1", "10.0.0.255", 68, 67, b"discover"))
    d = net.b.udp.read(s, 1000)
    assert d[:16] == parseip("10.0.0.1") and d[16:32] == parseip("10.0.0.255")
    assert d[32:48] == parseip("10.0.0.2") and d[48:52] == struct.pack("!HH", 68, 67)
    net.b.udp.write(s, d[:52] + b"offer")
    p = net.b.end.sent[-1]
    assert p[12:16] == a4("10.0.0.2") and p[16:20] == a4("10.0.0.1") and p[28:] == b"offer"


# ---------------------------------------------------------------- calls

def test_calls_through_listen():
    # devip.md 5: without headers, the first datagram from a new remote
    # creates a Connected conversation queued for listen; later ones go
    # to it; the announced conversation's own data never gets anything
    net = mknet()
    s = net.b.udp.clone("u")
    net.b.udp.ctl(s, "announce 7")
    clients = []
    for i in range(3):
        c = net.a.udp.clone("u")
        net.a.udp.ctl(c, "connect 10.0.0.2!7")
        clients.append(c)
        net.a.udp.write(c, b"hello %d" % i)
    net.run(max_ms=10)
    assert len(s.incall) == 3
    assert net.b.udp.read(s, 100) is None
    calls = [net.b.udp.takecall(s) for _ in range(3)]
    for i, (c, k) in enumerate(zip(clients, calls)):
        assert k.state == 4 and k.owner == "u" and k.ipversion == 4
        assert net.b.udp.localtext(k) == "10.0.0.2!7\n"
        assert net.b.udp.remotetext(k) == "10.0.0.1!%d\n" % c.lport
        assert net.b.udp.read(k, 100) == b"hello %d" % i
        assert net.b.udp.ucb(k).srcaddr == parseip("10.0.0.2")
    # more from the same remote: straight to its call
    net.a.udp.write(clients[1], b"again")
    net.run(max_ms=10)
    assert s.incall == [] and net.b.udp.read(calls[1], 100) == b"again"
    # a call answers its caller
    net.b.udp.write(calls[2], b"reply")
    net.run(max_ms=10)
    assert net.a.udp.read(clients[2], 100) == b"reply"
    assert net.a.udp.read(clients[0], 100) is None


def test_calls_limit_and_close_of_the_announcement():
    # Fsnewcall: at most 10 calls wait (Maxincall); datagrams of an 11th
    # remote are dropped (not counted as NoPorts: a conversation matched)
    net = mknet()
    s = net.b.udp.clone("u")
    net.b.udp.ctl(s, "announce 7")
    for i in range(12):
        net.b.input(udp4("10.0.0.1", "10.0.0.2", 1000 + i, 7, b"c%d" % i))
    assert len(s.incall) == 10
    assert [k.rport for k in s.incall] == list(range(1000, 1010))
    st = stats(net.b.udp)
    assert st["InDatagrams"] == 12 and st["NoPorts"] == 0
    first = net.b.udp.takecall(s)
    net.b.input(udp4("10.0.0.1", "10.0.0.2", 1011, 7, b"late"))
    assert len(s.incall) == 10 and s.incall[-1].rport == 1011
    assert net.b.udp.read(s.incall[-1], 10) == b"late"
    # the last close of the announcement closes the uncollected calls
    waiting = list(s.incall)
    net.b.udp.closeconv(s)
    assert all(k.inuse == 0 and k.state == 0 for k in waiting)
    assert first.inuse == 1 and net.b.udp.read(first, 10) == b"c0"
    # the port is closed now: port unreachable from b
    n = len(net.b.end.sent)
    net.b.input(udp4("10.0.0.1", "10.0.0.2", 2000, 7, b"x"))
    assert len(net.b.end.sent) == n + 1 and net.b.end.sent[-1][9] == 1


# ---------------------------------------------------------------- errors

def icmp_reads(u, c):
    out = []
    for _ in range(5):
        try:
            out.append(u.read(c, 100))
        except Net9Error as e:
            out.append(str(e))
    return out


@pytest.mark.parametrize("v6", [False, True])
def test_port_unreachable_both_ways(v6):
    # udpiput: no conversation -> NoPorts and icmpnoconv (v4: type 3 code
    # 3; v6: type 1 code 4); on the sender, the ICMP error reaches
    # udpadvise, which hangs up the connected conversation's queues with
    # the text: queued datagrams first, then every read fails with it;
    # writes still go (bypass queue)
    net = mknet()
    for src, dst in ((net.a, net.b), (net.b, net.a)):
        c = src.udp.clone("u")
        _other = net.a if src is net.b else net.b
        addr = ("fd00::%d" if v6 else "10.0.0.%d") % (2 if dst is net.b else 1)
        # a datagram from the peer first, so something is queued
        src.udp.ctl(c, "connect %s!4242" % addr)
        mine = ("fd00::%d" if v6 else "10.0.0.%d") % (1 if src is net.a else 2)
        mk = udp6 if v6 else udp4
        src.input(mk(addr, mine, 4242, c.lport, b"queued"))
        n0 = len(src.end.sent)
        src.udp.write(c, b"to nowhere")
        dgram = src.end.sent[n0]
        net.run(max_ms=10)
        err = dst.end.sent[-1]
        if v6:
            assert err[6] == 58 and err[40:42] == b"\x01\x04" and icmp6ok(err)
            assert err[48:48 + 40] == dgram[:40]
        else:
            assert err[9] == 1 and err[20:22] == b"\x03\x03" and cksum(err[20:]) == 0
            assert err[28:28 + 28] == dgram[:28]
        assert stats(dst.udp)["NoPorts"] == 1
        assert icmp_reads(src.udp, c) == [b"queued"] + ["port unreachable"] * 4
        assert src.udp.status(c) == "Open qin 0 qout 0\n"
        n = len(src.end.sent)
        assert src.udp.write(c, b"still") == 5
        assert len(src.end.sent) == n + 1
    # ICMP statistics saw it: b sent two errors (the second for a's
    # "still" to b's closed port 4242), a got both and sent one
    ic = net.a.icmp6 if v6 else net.a.icmp
    assert ic.typecounts(1 if v6 else 3) == (2, 1)
    ic = net.b.icmp6 if v6 else net.b.icmp
    assert ic.typecounts(1 if v6 else 3) == (1, 2)
    assert stats(net.b.udp)["NoPorts"] == 2


def test_advice_rules():
    net = mknet()
    # ignoreadvice: nothing happens
    c = net.a.udp.clone("u")
    net.a.udp.ctl(c, "ignoreadvice")
    net.a.udp.ctl(c, "connect 10.0.0.2!4242")
    net.a.udp.write(c, b"x")
    net.run(max_ms=10)
    assert not c.rq.ishungup() and net.a.udp.read(c, 10) is None
    # an announced conversation is not told (udpadvise skips Announced)
    s = net.a.udp.clone("u")
    net.a.udp.ctl(s, "announce 5000")
    sent = udp4("10.0.0.1", "10.0.0.2", 5000, 4242, b"x")
    net.a.input(ip4("10.0.0.2", "10.0.0.1", 1, icmp4msg(3, 3, data=sent[:28])))
    assert not s.rq.ishungup()
    # quoted datagram of another conversation (different port): no effect
    d = net.a.udp.clone("u")
    net.a.udp.ctl(d, "connect 10.0.0.2!4243")
    other = udp4("10.0.0.1", "10.0.0.2", d.lport ^ 1, 4243, b"x")
    net.a.input(ip4("10.0.0.2", "10.0.0.1", 1, icmp4msg(3, 1, data=other[:28])))
    assert not d.rq.ishungup()
    # host unreachable about d's datagram: its text
    mine = udp4("10.0.0.1", "10.0.0.2", d.lport, 4243, b"x")
    net.a.input(ip4("10.0.0.2", "10.0.0.1", 1, icmp4msg(3, 1, data=mine[:28])))
    assert d.rq.getreason() == "host unreachable"
    with pytest.raises(Net9Error, match="^host unreachable$"):
        net.a.udp.read(d, 10)
    # a quote too short for the ports: nothing (advise needs 20 + 4)
    e = net.a.udp.clone("u")
    net.a.udp.ctl(e, "connect 10.0.0.2!4244")
    q = udp4("10.0.0.1", "10.0.0.2", e.lport, 4244, b"x")
    net.a.udp.advise(q[:23], "x")
    assert not e.rq.ishungup()
    net.a.udp.advise(q[:24], "custom text")
    assert e.rq.getreason() == "custom text"
    # a call (a conversation made by an announcement) is told
    f = net.a.udp.clone("u")
    net.a.udp.ctl(f, "announce 6000")
    net.a.input(udp4("10.0.0.2", "10.0.0.1", 7000, 6000, b"hi"))
    k = net.a.udp.takecall(f)
    net.a.udp.advise(udp4("10.0.0.1", "10.0.0.2", 6000, 7000, b"x")[:28], "ttl exceeded at 10.0.0.2")
    assert k.rq.getreason() == "ttl exceeded at 10.0.0.2"
    assert icmp_reads(net.a.udp, k) == [b"hi"] + ["ttl exceeded at 10.0.0.2"] * 4
    # v6 quote
    g = net.a.udp.clone("u")
    net.a.udp.ctl(g, "connect fd00::2!4245")
    q6 = udp6("fd00::1", "fd00::2", g.lport, 4245, b"x")
    net.a.udp.advise(q6[:43], "x")
    assert not g.rq.ishungup()
    net.a.udp.advise(q6[:44], "address unreachable")
    assert g.rq.getreason() == "address unreachable"


def test_no_port_unreachable_when_told_not_to():
    net = mknet()
    net.b.udp.portunreach = False
    n = len(net.b.end.sent)
    net.b.input(udp4("10.0.0.1", "10.0.0.2", 1, 9, b"x"))
    assert len(net.b.end.sent) == n and stats(net.b.udp)["NoPorts"] == 1
    # nor for a multicast or broadcast destination (icmp.c's rules)
    net.b.udp.portunreach = True
    net.b.input(udp4("10.0.0.1", "10.0.0.255", 1, 9, b"x"))
    net.b.input(udp6("fd00::1", "ff02::1", 1, 9, b"x"))
    assert len(net.b.end.sent) == n and stats(net.b.udp)["NoPorts"] == 3


def test_hangup_ctl():
    # udpctl hangup: queues hung up with no reason: EOF x3, then "i/o on
    # hungup channel"; writes still go out; nothing is sent by hangup itself
    net = mknet()
    s, c = pair(net)
    net.a.input(udp4("10.0.0.2", "10.0.0.1", 7, c.lport, b"queued"))
    n = len(net.a.end.sent)
    net.a.udp.ctl(c, "hangup")
    assert len(net.a.end.sent) == n
    assert icmp_reads(net.a.udp, c) == [b"queued", b"", b"", b"", "i/o on hungup channel"]
    net.a.udp.write(c, b"after")
    assert len(net.a.end.sent) == n + 1
    # arrivals after the hangup are dropped
    net.a.input(udp4("10.0.0.2", "10.0.0.1", 7, c.lport, b"late"))
    assert net.a.udp.status(c) == "Open qin 0 qout 0\n"


# ---------------------------------------------------------------- malformed input

def test_malformed_lengths():
    net = mknet()
    s = net.b.udp.clone("u")
    net.b.udp.ctl(s, "announce 7")
    u = net.b.udp
    msg = udpmsg("10.0.0.1", "10.0.0.2", 5, 7, b"payload")
    # too short for a UDP header
    u.rcv(ip4("10.0.0.1", "10.0.0.2", 17, msg[:7]))
    # udp length below 8, and beyond the datagram
    for ulen in (0, 7, 16, 1000):
        u.rcv(ip4("10.0.0.1", "10.0.0.2", 17, udpmsg("10.0.0.1", "10.0.0.2", 5, 7, b"payload",
                                                     ulen=ulen)))
    u.rcv(b"")
    u.rcv(b"\x45")
    st = stats(u)
    assert st["InDatagrams"] == 7 and st["InErrors"] == 7 and u.stat("LenErrs") == 7
    assert s.incall == []
    # a udp length shorter than the IP payload: the datagram is that long
    m = bytearray(udpmsg("10.0.0.1", "10.0.0.2", 5, 7, b"abc")) + b"TRAILER"
    net.b.input(ip4("10.0.0.1", "10.0.0.2", 17, bytes(m)))
    k = u.takecall(s)
    assert u.read(k, 100) == b"abc"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=80), st.booleans(), st.integers(0, 3))
def test_fuzz_udp_input(body, v6, how):
    # whatever arrives: nothing raised, every datagram counted once, as an
    # error, a port miss or a delivery
    net = mknet()
    s = net.b.udp.clone("u")
    net.b.udp.ctl(s, "headers")
    net.b.udp.ctl(s, "announce 7")
    if how == 1 and len(body) >= 4:
        body = body[:2] + b"\0\x07" + body[4:]         # aim at the port
    elif how == 2 and len(body) >= 8:
        # a right length and checksum around random ports and data
        src, dst = ("fd00::1", "fd00::2") if v6 else ("10.0.0.1", "10.0.0.2")
        sp, dp = struct.unpack("!HH", body[:4])
        body = udpmsg(src, dst, sp, dp, body[8:], v6=v6)
    pkt = ip6("fd00::1", "fd00::2", 17, body) if v6 else ip4("10.0.0.1", "10.0.0.2", 17, body)
    net.b.input(pkt)
    net.b.udp.rcv(pkt)                               # and straight to udpiput
    st = stats(net.b.udp)
    got = readall(net.b.udp, s)
    assert st["InDatagrams"] == 2
    assert st["InErrors"] + st["NoPorts"] + len(got) + net.b.udp.stat("QFull") == 2
    for d in got:
        assert len(d) >= 52 and d[48:50] == body[:2] and d[50:52] == b"\0\x07"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120), st.booleans())
def test_fuzz_udp_advise(quote, v6):
    net = mknet()
    c = net.a.udp.clone("u")
    net.a.udp.ctl(c, "connect %s!53" % ("fd00::2" if v6 else "10.0.0.2"))
    net.a.udp.advise(quote, "port unreachable")
    net.a.udp.advise(b"", "port unreachable")


# ---------------------------------------------------------------- multicast

def test_multicast_membership_reaches_the_ip_layer():
    # devip addmulti -> ipifcaddmulti: the group becomes a self address of
    # the interface (Rmulti) so datagrams to it are accepted; delmulti and
    # the last close leave it
    net = mknet()
    u = net.b.udp
    s = u.clone("u")
    u.ctl(s, "headers")
    u.ctl(s, "announce 5353")
    group = parseip("224.0.0.251")
    assert net.b.ip.forme16(group) == 0
    net.b.input(udp4("10.0.0.1", "224.0.0.251", 5353, 5353, b"before"))
    assert u.read(s, 100) is None
    u.ctl(s, "addmulti 10.0.0.2 224.0.0.251")
    assert s.multi == [(group, parseip("10.0.0.2"))]
    assert net.b.ip.forme16(group) != 0 and "224.0.0.251" in net.b.ip.ipselftabtext()
    u.ctl(s, "addmulti 10.0.0.2 224.0.0.251")            # already there: once
    assert len(s.multi) == 1
    net.b.input(udp4("10.0.0.1", "224.0.0.251", 5353, 5353, b"query"))
    d = u.read(s, 100)
    assert d[16:32] == group and d[32:48] == parseip("10.0.0.2") and d[52:] == b"query"
    u.ctl(s, "delmulti 10.0.0.2 224.0.0.251")
    assert s.multi == [] and net.b.ip.forme16(group) == 0
    u.ctl(s, "delmulti 10.0.0.2 224.0.0.251")            # not joined: nothing
    # v6, and the last close leaves every group
    u.ctl(s, "addmulti fd00::2 ff02::fb")
    u.ctl(s, "addmulti 10.0.0.2 239.1.2.3")
    assert net.b.ip.forme16(parseip("ff02::fb")) != 0
    assert net.b.ip.forme16(parseip("239.1.2.3")) != 0
    with pytest.raises(Net9Error, match="^addmulti for a non multicast address$"):
        u.ctl(s, "addmulti 10.0.0.2 10.0.0.7")
    with pytest.raises(Net9Error, match="^incompatible multicast/interface ip address$"):
        u.ctl(s, "addmulti 10.0.0.2 ff02::fb")
    with pytest.raises(Net9Error, match="^addmulti needs interface address$"):
        u.ctl(s, "addmulti")
    u.closeconv(s)
    assert s.multi == []
    assert net.b.ip.forme16(parseip("ff02::fb")) == 0
    assert net.b.ip.forme16(parseip("239.1.2.3")) == 0
    # a call created by a multicast datagram transmits from the unicast
    # address of the interface (udpiput: ipv6local)
    t = u.clone("u")
    u.ctl(t, "announce 5000")
    u.ctl(t, "addmulti 10.0.0.2 239.9.9.9")
    net.b.input(udp4("10.0.0.1", "239.9.9.9", 4000, 5000, b"m"))
    k = u.takecall(t)
    assert u.localtext(k) == "239.9.9.9!5000\n"
    assert u.ucb(k).srcaddr == parseip("10.0.0.2")
    u.write(k, b"unicast reply")
    p = net.b.end.sent[-1]
    assert p[12:16] == a4("10.0.0.2") and p[16:20] == a4("10.0.0.1") and udpok(p)
