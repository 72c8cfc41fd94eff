"""Tests of the /net/icmp and /net/icmpv6 conversations (9front icmp.c,
icmp6.c; devip.md 3.11, 4.3, 7, 9): the identifier is the local port, the
matching rules of goticmpkt/goticmpkt6, echo round trips, what a write
must look like, the 64 KiB read queue, advice hanging a conversation up
while writes still go (bypass write queue), icmpv6 "headers", ctl errors,
the stats texts byte for byte, malformed input (hypothesis).  Two stacks
joined by tests/ipnet.py's link (a = 10.0.0.1 / fd00::1, b = 10.0.0.2 /
fd00::2)."""

import struct

import pytest
from hypothesis import given, settings, HealthCheck, strategies as st

from ipnet import End, Net, a4, ip4, ip6, icmp4msg, icmp6msg, icmp6ok
from net9.csum import cksum
from net9.errors import Net9Error
from net9.ipaux import parseip


def echo(seq, data=b"", type=8, ident=0):
    """What a ping writes: the 20-byte IP header area, then the message."""
    return bytes(20) + struct.pack("!BBHHH", type, 0, 0, ident, seq) + data


def echo6(seq, data=b"", type=128, ident=0):
    return bytes(40) + struct.pack("!BBHHH", type, 0, 0, ident, seq) + data


def reads(p, c, n=4096):
    out = []
    for _ in range(1000):
        try:
            d = p.read(c, n)
        except Net9Error as e:
            out.append(str(e))
            break
        if d is None:
            break
        out.append(d)
    return out


def icmpstats(p):
    out = {}
    for l in p.stats().splitlines():
        k, v = l.rsplit(": ", 1)
        out[k] = tuple(int(x) for x in v.split()) if " " in v else int(v)
    return out


# ---------------------------------------------------------------- v4

def test_identifier_is_the_local_port():
    net = Net()
    c = net.b.icmp.clone("u")
    net.b.icmp.ctl(c, "connect 10.0.0.1!1")            # ping's icmp!host!1
    assert 32768 <= c.lport <= 65535 and c.rport == 1
    assert net.b.icmp.localtext(c) == "10.0.0.2!%d\n" % c.lport
    assert net.b.icmp.remotetext(c) == "10.0.0.1!1\n"
    junk = bytes(range(1, 21))                         # the header area is overwritten
    net.b.icmp.write(c, junk + struct.pack("!BBHHH", 8, 0, 0xdead, 0x1234, 9) + b"abc")
    p = net.b.end.sent[-1]
    assert p[0] == 0x45 and p[9] == 1 and p[12:16] == a4("10.0.0.2") and p[16:20] == a4("10.0.0.1")
    assert cksum(p[:20]) == 0 and cksum(p[20:]) == 0
    assert struct.unpack("!BBHHH", p[20:28])[3:] == (c.lport, 9) and p[28:] == b"abc"
    assert p[8] == 255                                 # ttl: MAXTTL by default
    net.b.icmp.ctl(c, "ttl 7")
    net.b.icmp.write(c, echo(10))
    assert net.b.end.sent[-1][8] == 7
    st = icmpstats(net.b.icmp)
    assert st["OutMsgs"] == 2 and st["EchoRequest"] == (0, 2)
    net.run(max_ms=10)
    r = reads(net.b.icmp, c)
    assert [struct.unpack("!H", x[26:28])[0] for x in r] == [9, 10]
    assert all(x[20] == 0 and struct.unpack("!H", x[24:26])[0] == c.lport for x in r)


def test_short_writes_are_dropped_and_long_ones_split():
    net = Net()
    c = net.b.icmp.clone("u")
    net.b.icmp.ctl(c, "connect 10.0.0.1!1")
    n = len(net.b.end.sent)
    assert net.b.icmp.write(c, bytes(27)) == 27      # under 20 + 8: nothing sent
    assert len(net.b.end.sent) == n and icmpstats(net.b.icmp)["OutMsgs"] == 0
    net.b.icmp.write(c, bytes(28))                     # exactly: an echo reply header
    assert len(net.b.end.sent) == n + 1
    # qwrite's 64 KiB chunks: the first is too big for IP, the rest a
    # second message of its own
    d = echo(1) + bytes(70000)
    net.b.icmp.write(c, d)
    assert icmpstats(net.b.icmp)["OutMsgs"] == 3
    assert net.b.ip.stat("OutDiscards") == 1


def test_matching_rules_v4():
    # goticmpkt: to every conversation whose local port is the identifier
    # and whose local address is the destination or remote address the
    # source; echo requests are answered by the kernel, not passed on
    net = Net()
    I = net.b.icmp
    c1 = I.clone("u")
    I.ctl(c1, "connect 10.0.0.1!1 777")
    c2 = I.clone("u")
    I.ctl(c2, "announce 10.0.0.2!777")
    c3 = I.clone("u")
    I.ctl(c3, "announce 778")                        # local ::: matches nothing
    c4 = I.clone("u")
    I.ctl(c4, "connect 10.0.0.1!1 779")
    for ident in (777, 778, 779, 780):
        net.b.input(ip4("10.0.0.1", "10.0.0.2", 1, icmp4msg(0, 0, ident, 1, b"r%d" % ident)))
    # from a stranger to us: local address matches for c1 and c2
    net.b.input(ip4("10.9.9.9", "10.0.0.2", 1, icmp4msg(0, 0, 777, 2, b"stranger")))
    # timestamp requests are not answered by the kernel: c4 gets it
    net.b.input(ip4("10.0.0.1", "10.0.0.2", 1, icmp4msg(13, 0, 779, 3, bytes(12))))
    # an echo request is answered, never queued
    net.b.input(ip4("10.0.0.1", "10.0.0.2", 1, icmp4msg(8, 0, 777, 4, b"ping")))
    assert [x[28:] for x in reads(I, c1)] == [b"r777", b"stranger"]
    assert [x[28:] for x in reads(I, c2)] == [b"r777", b"stranger"]
    assert reads(I, c3) == []
    r4 = reads(I, c4)
    assert [x[20] for x in r4] == [0, 13] and r4[0][28:] == b"r779"
    # whole datagrams, IP header included
    assert r4[1][:1] == b"\x45" and r4[1][12:16] == a4("10.0.0.1") and len(r4[1]) == 20 + 8 + 12
    st = icmpstats(I)
    assert st["EchoReply"] == (5, 1) and st["Timestamp"] == (1, 0) and st["EchoRequest"] == (1, 0)
    assert net.b.end.sent[-1][20] == 0 and net.b.end.sent[-1][28:] == b"ping"
    # status: qin is the bytes queued
    net.b.input(ip4("10.0.0.1", "10.0.0.2", 1, icmp4msg(0, 0, 777, 5, b"12345")))
    assert I.status(c1) == "Datagram qin 33 qout 0\n"


def test_read_queue_limit_and_truncation():
    # icmpcreate: qopen(64*1024, Qmsg): a message is queued while less than
    # the limit is; 1028-byte datagrams: 64 fit (63 * 1028 < 65536)
    net = Net()
    I = net.b.icmp
    c = I.clone("u")
    I.ctl(c, "announce 10.0.0.2!555")
    for i in range(100):
        net.b.input(ip4("10.0.0.1", "10.0.0.2", 1, icmp4msg(0, 0, 555, i, bytes(1000))))
    n = -(-65536 // 1028)
    assert n == 64
    assert I.status(c) == "Datagram qin %d qout 0\n" % (n * 1028)
    first = I.read(c, 26)
    assert len(first) == 26 and first[20] == 0        # truncated; the rest is gone
    second = I.read(c, 5000)
    assert len(second) == 1028 and struct.unpack("!H", second[26:28])[0] == 1
    assert len(reads(I, c, 5000)) == n - 2


def test_advice_hangs_up_and_writes_still_go():
    # icmpadvise: an error quoting a message the conversation sent (id =
    # local port, addresses) hangs up its queues with the text; the write
    # queue is a bypass queue, so the conversation can still send
    net = Net()
    I = net.b.icmp
    c = I.clone("u")
    I.ctl(c, "connect 10.0.0.1!1")
    d = I.clone("u")
    I.ctl(d, "ignoreadvice")
    I.ctl(d, "connect 10.0.0.1!1")
    I.write(c, echo(1, b"x" * 8))
    I.write(d, echo(1, b"x" * 8))
    qc = net.q.popleft()[1]
    qd = net.q.popleft()[1]
    net.b.input(ip4("10.0.0.1", "10.0.0.2", 1, icmp4msg(0, 0, c.lport, 7, b"early")))
    net.b.input(ip4("10.0.0.1", "10.0.0.2", 1, icmp4msg(3, 1, data=qc[:28])))
    net.b.input(ip4("10.0.0.1", "10.0.0.2", 1, icmp4msg(3, 1, data=qd[:28])))
    r = reads(I, c)
    assert r[0][28:] == b"early" and r[1:] == ["host unreachable"]
    with pytest.raises(Net9Error, match="^host unreachable$"):
        I.read(c, 100)
    assert not d.rq.ishungup()
    n = len(net.b.end.sent)
    assert I.write(c, echo(2)) == 28
    assert len(net.b.end.sent) == n + 1
    assert I.status(c) == "Datagram qin 0 qout 0\n"
    # the errors themselves were counted, not queued anywhere
    assert icmpstats(I)["Unreachable"] == (2, 0)
    # ttl exceeded: its own text
    e = I.clone("u")
    I.ctl(e, "connect 10.0.0.1!1")
    I.write(e, echo(1))
    qe = net.q.pop()[1]
    net.b.input(ip4("10.0.0.1", "10.0.0.2", 1, icmp4msg(11, 0, data=qe[:28])))
    assert e.rq.getreason() == "ttl exceeded at 10.0.0.1"


def test_ctl():
    # icmp has no ctl routine: anything not generic is "unknown control
    # request"; icmpv6 knows exactly "headers"
    net = Net()
    c = net.a.icmp.clone("u")
    for msg in ("headers", "hangup", "frob", "headers 6"):
        with pytest.raises(Net9Error, match="^unknown control request$"):
            net.a.icmp.ctl(c, msg)
    net.a.icmp.ctl(c, "ignoreadvice")
    net.a.icmp.ctl(c, "tos 16")
    assert c.tos == 16 and c.ignoreadvice
    d = net.a.icmp6.clone("u")
    for msg in ("headers 6", "hangup", "frob"):
        with pytest.raises(Net9Error, match="^unknown control request$"):
            net.a.icmp6.ctl(d, msg)
    net.a.icmp6.ctl(d, "headers")
    assert d.ptcl == 6
    # limits and protocol numbers (devip.md 1.2: icmp 128, icmpv6 16)
    assert (net.a.icmp.nc, net.a.icmp6.nc) == (128, 16)
    assert net.a.fs.ipproto[1] is net.a.icmp and net.a.fs.ipproto[58] is net.a.icmp6
    # close (icmpclose): addresses and the local port reset; the remote
    # port is left as it was
    net.a.icmp.ctl(c, "connect 10.0.0.2!1")
    net.a.icmp.closeconv(c)
    assert net.a.icmp.localtext(c) == "::!0\n" and net.a.icmp.remotetext(c) == "::!1\n"
    net.a.icmp6.closeconv(d)
    assert d.ptcl == 0


def test_echo_round_trip_and_stats_text_byte_for_byte():
    net = Net()
    c = net.a.icmp.clone("u")
    net.a.icmp.ctl(c, "connect 10.0.0.2!1")
    for seq in range(3):
        net.a.icmp.write(c, echo(seq, bytes(range(56))))
    net.run(max_ms=10)
    r = reads(net.a.icmp, c)
    assert [struct.unpack("!H", x[26:28])[0] for x in r] == [0, 1, 2]
    assert all(x[28:] == bytes(range(56)) and cksum(x[20:]) == 0 for x in r)
    # a bad checksum and a runt on a
    net.a.input(ip4("10.0.0.2", "10.0.0.1", 1, b"\x00" * 7))
    bad = bytearray(icmp4msg(0, 0, c.lport, 9, b"x"))
    bad[2] ^= 1
    net.a.input(ip4("10.0.0.2", "10.0.0.1", 1, bytes(bad)))
    counts = {0: (3, 0), 8: (0, 3)}
    want = "InMsgs: 5\nInErrors: 2\nOutMsgs: 3\nCsumErrs: 1\nLenErrs: 0\nHlenErrs: 1\n"
    names = ["EchoReply", "1", "2", "Unreachable", "SrcQuench", "Redirect", "6", "7",
             "EchoRequest", "9", "10", "TimeExceed", "InParmProblem", "Timestamp",
             "TimestampReply", "InfoRequest", "InfoReply", "AddrMaskRequest", "AddrMaskReply  "]
    for t, name in enumerate(names):
        i, o = counts.get(t, (0, 0))
        want += "%s: %d %d\n" % (name, i, o)
    assert net.a.icmp.stats() == want
    assert "AddrMaskReply  : 0 0\n" in want
    b = net.b.icmp.stats()
    assert b.startswith("InMsgs: 3\nInErrors: 0\nOutMsgs: 0\n")
    assert "\nEchoReply: 0 3\n" in b and "\nEchoRequest: 3 0\n" in b


# ---------------------------------------------------------------- v6

def test_v6_conversation_echo_and_identifier():
    net = Net()
    I = net.b.icmp6
    c = I.clone("u")
    I.ctl(c, "connect fd00::1!1")
    assert I.localtext(c) == "fd00::2!%d\n" % c.lport
    I.write(c, echo6(5, b"six", ident=0x4444))
    p = net.b.end.sent[-1]
    assert p[0] >> 4 == 6 and p[6] == 58 and p[8:24] == parseip("fd00::2") and p[24:40] == parseip("fd00::1")
    assert icmp6ok(p) and struct.unpack("!HH", p[44:48]) == (c.lport, 5)
    net.run(max_ms=10)
    r = reads(I, c)
    assert len(r) == 1 and r[0][40] == 129 and r[0][48:] == b"six" and icmp6ok(r[0])
    assert I.status(c) == "Datagram qin 0 qout 0\n"
    # icmp6.c counts the requests sent per type, OutMsgs never
    st = icmpstats(I)
    assert st["EchoRequestV6"] == (0, 1) and st["EchoReplyV6"] == (1, 0) and st["OutMsgs"] == 0
    # a short write: nothing
    n = len(net.b.end.sent)
    I.write(c, bytes(47))
    assert len(net.b.end.sent) == n


def test_v6_headers_mode_and_matching():
    # icmpkick6 with headers: 8 unused bytes, local address, remote
    # address, then the message; the identifier is left as written.
    # goticmpkt6 (muxkey 0): id = local port, local address = destination
    # or remote address = source
    net = Net()
    I = net.b.icmp6
    h = I.clone("u")
    I.ctl(h, "headers")
    I.ctl(h, "announce fd00::2!321")
    I.write(h, bytes(8) + parseip("fd00::2") + parseip("fd00::1") +
            struct.pack("!BBHHH", 128, 0, 0, 321, 1) + b"hdr")
    p = net.b.end.sent[-1]
    assert p[8:24] == parseip("fd00::2") and p[24:40] == parseip("fd00::1") and icmp6ok(p)
    assert struct.unpack("!HH", p[44:48]) == (321, 1) and p[48:] == b"hdr"
    net.run(max_ms=10)
    r = reads(I, h)
    assert len(r) == 1 and r[0][8:24] == parseip("fd00::1") and r[0][40] == 129
    # a reply with another id is not for it; an unknown type > 137 is dropped
    net.b.input(ip6("fd00::1", "fd00::2", 58, icmp6msg("fd00::1", "fd00::2", 129, 0, 322, 1)))
    net.b.input(ip6("fd00::1", "fd00::2", 58, icmp6msg("fd00::1", "fd00::2", 200, 0, 321, 1)))
    assert reads(I, h) == []
    # short headers-mode writes are dropped
    n = len(net.b.end.sent)
    I.write(h, bytes(39))
    I.write(h, bytes(47))
    assert len(net.b.end.sent) == n


def test_v6_router_advert_goes_by_type():
    # goticmpkt6 with muxkey = the type for router solicitations and
    # adverts: to conversations whose local port is 133/134 and whose local
    # (or remote) address is the destination; valid() wants hop limit 255
    # and a link-local source for adverts
    net = Net()
    I = net.b.icmp6
    c = I.clone("u")
    I.ctl(c, "announce ff02::1!134")
    ra = icmp6msg("fe80::1", "ff02::1", 134, 0, word=0x40000000, data=bytes(8))
    net.b.input(ip6("fe80::1", "ff02::1", 58, ra, hlim=255))
    net.b.input(ip6("fe80::1", "ff02::1", 58, ra, hlim=64))
    ra2 = icmp6msg("fd00::1", "ff02::1", 134, 0, word=0x40000000, data=bytes(8))
    net.b.input(ip6("fd00::1", "ff02::1", 58, ra2, hlim=255))
    r = reads(I, c)
    assert len(r) == 1 and r[0][40] == 134 and r[0][8:24] == parseip("fe80::1")
    st = icmpstats(I)
    assert st["HoplimErrs"] == 1 and st["RouterAddrErrs"] == 1 and st["InErrors"] == 2
    assert st["RouterAdvert"] == (1, 0)


def test_v6_link_local_conversation_hears_only_its_link():
    # goticmpkt6: a conversation on a link-local address gets messages
    # only from the interface that has that address
    net = Net()
    net.b.ifc.add("fe80::2", 64)
    other = End(net, "tunc", 1500)
    other.host = net.b
    ifc2 = net.b.ip.addifc(other)
    ifc2.add("fe80::99", 64)
    I = net.b.icmp6
    near = I.clone("u")
    I.ctl(near, "announce fe80::2!600")
    far = I.clone("u")
    I.ctl(far, "announce fe80::99!600")
    for dst in ("fe80::2", "fe80::99"):
        net.b.input(ip6("fe80::1", dst, 58, icmp6msg("fe80::1", dst, 129, 0, 600, 1, b"x")))
    assert len(reads(I, near)) == 1
    assert reads(I, far) == []
    # on its own interface it hears
    ifc2.input(ip6("fe80::1", "fe80::99", 58, icmp6msg("fe80::1", "fe80::99", 129, 0, 600, 2)))
    assert len(reads(I, far)) == 1


def test_v6_advice_hangs_up():
    net = Net()
    I = net.b.icmp6
    c = I.clone("u")
    I.ctl(c, "connect fd00::1!1")
    I.write(c, echo6(1, b"z" * 8))
    q = net.q.pop()[1]
    for type, code, word, _text in ((1, 3, 0, "address unreachable"),):
        net.b.input(ip6("fd00::1", "fd00::2", 58, icmp6msg("fd00::1", "fd00::2", type, code,
                                                            data=q, word=word)))
    with pytest.raises(Net9Error, match="^address unreachable$"):
        I.read(c, 100)
    n = len(net.b.end.sent)
    I.write(c, echo6(2))
    assert len(net.b.end.sent) == n + 1


# ---------------------------------------------------------------- malformed input

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=90), st.integers(0, 2))
def test_fuzz_icmp_input_v4(body, how):
    net = Net()
    c = net.b.icmp.clone("u")
    net.b.icmp.ctl(c, "announce 10.0.0.2!7")
    if how == 1 and len(body) >= 8:
        m = bytearray(body)
        m[2:4] = b"\0\0"
        m[4:6] = b"\0\x07"
        m[2:4] = struct.pack("!H", cksum(bytes(m)))
        body = bytes(m)
    elif how == 2 and len(body) >= 8:
        body = icmp4msg(body[0] % 20, body[1] % 17, 7, 1, body[8:])
    net.b.input(ip4("10.0.0.1", "10.0.0.2", 1, body))
    net.b.icmp.rcv(ip4("10.0.0.1", "10.0.0.2", 1, body))
    st = icmpstats(net.b.icmp)
    assert st["InMsgs"] == 2
    assert st["InErrors"] <= 2
    reads(net.b.icmp, c)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=120), st.integers(0, 2), st.integers(0, 255))
def test_fuzz_icmp_input_v6(body, how, hlim):
    net = Net()
    c = net.b.icmp6.clone("u")
    net.b.icmp6.ctl(c, "announce fd00::2!7")
    if how >= 1 and len(body) >= 8:
        t = body[0] if how == 1 else (128, 129, 1, 2, 3, 4, 133, 134, 135, 136, 137)[body[0] % 11]
        body = icmp6msg("fd00::1", "fd00::2", t, body[1] % 8, data=body[8:],
                        word=struct.unpack("!I", body[4:8])[0])
    net.b.input(ip6("fd00::1", "fd00::2", 58, body, hlim=hlim))
    net.b.icmp6.rcv(ip6("fd00::1", "fd00::2", 58, body, hlim=hlim))
    reads(net.b.icmp6, c)
    icmpstats(net.b.icmp6)
