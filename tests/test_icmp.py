"""Tests of net9.icmp (9front icmp.c and icmp6.c): echo replies (ping v4
and v6, also through /net/icmp conversations), errors received turned into
the transport's advice (a connecting TCP conversation fails with devip's
text), errors sent, input checks and the stats texts.  Two stacks joined
by tests/ipnet.py's link; expected values from icmp.c/icmp6.c."""

import struct

import pytest

from ipnet import (Net, Rec, icmp4msg, icmp6msg, icmp6ok, ip4, ip6)
from net9.conv import ConvState, Fs
from net9.csum import cksum
from net9.errors import Net9Error
from net9.icmp import Icmp, Icmp6, unreachcode
from net9.ipaux import parseip

P = 253
Connecting = ConvState.Connecting


def is_syn(pkt):
    v = pkt[0] >> 4
    hl = 20 if v == 4 else 40
    proto = pkt[9] if v == 4 else pkt[6]
    return proto == 6 and len(pkt) >= hl + 14 and pkt[hl + 13] & 0x02


def icmp_about(inner, type, code, src="10.0.0.2", dst="10.0.0.1", word=0, quote=28):
    """An ICMP error from src to dst quoting the first quote bytes of inner."""
    return ip4(src, dst, 1, icmp4msg(type, code, word >> 16, word & 0xFFFF, inner[:quote]))


def icmp6_about(inner, type, code, src="fd00::2", dst="fd00::1", word=0):
    return ip6(src, dst, 58, icmp6msg(src, dst, type, code, data=inner, word=word))


def start_connect(net, v6=False, port=80, ignoreadvice=False):
    c = net.a.tcp.clone("u")
    if ignoreadvice:
        net.a.tcp.ctl(c, "ignoreadvice")
    net.a.tcp.ctl(c, "connect %s!%d" % ("fd00::2" if v6 else "10.0.0.2", port))
    return c


def answer_syn_with(net, make):
    """Drop a's SYNs; answer each with make(syn) delivered to a from b."""
    def filt(src, pkt):
        if src is net.a and is_syn(pkt):
            net.q.append((net.b.end, make(pkt)))
            return None
        return pkt
    net.filter = filt


# ---------------------------------------------------------------- echo

def test_ping_v4_through_a_conversation():
    # devip.md 4.3: a write is a 20-byte IP header area and an ICMP
    # message; the kernel fills in addresses, protocol, id (= local port)
    # and checksum; the reply is read whole, IP header included
    net = Net()
    c = net.b.icmp.clone("u")
    net.b.icmp.ctl(c, "connect 10.0.0.1!1")
    assert net.b.icmp.status(c) == "Datagram qin 0 qout 0\n"
    data = bytes(range(56))
    net.b.icmp.write(c, bytes(20) + struct.pack("!BBHHH", 8, 0, 0, 0, 7) + data)
    req = net.b.end.sent[-1]
    assert req[9] == 1 and req[12:16] == bytes([10, 0, 0, 2]) and req[16:20] == bytes([10, 0, 0, 1])
    assert struct.unpack("!H", req[24:26])[0] == c.lport and cksum(req[20:]) == 0
    net.run(max_ms=10)
    r = net.b.icmp.read(c, 1000)
    assert r is not None and len(r) == 20 + 8 + 56
    assert r[12:16] == bytes([10, 0, 0, 1]) and r[16:20] == bytes([10, 0, 0, 2])
    assert r[20:22] == b"\0\0"                                  # EchoReply, code 0
    assert struct.unpack("!HH", r[24:28]) == (c.lport, 7)
    assert r[28:] == data and cksum(r[20:]) == 0 and cksum(r[:20]) == 0
    # icmpstats: "name: in out" per type
    a = net.a.icmp.stats().splitlines()
    assert "EchoRequest: 1 0" in a and "EchoReply: 0 1" in a and "InMsgs: 1" in a
    b = net.b.icmp.stats().splitlines()
    assert "EchoRequest: 0 1" in b and "EchoReply: 1 0" in b and "OutMsgs: 1" in b


def test_ping_v6_reply_and_counts():
    # icmp6.c mkechoreply6; it counts the reply under EchoReply (type 0),
    # not EchoReplyV6, and counts no InMsgs
    net = Net()
    data = b"ping6 payload!"
    req = ip6("fd00::2", "fd00::1", 58, icmp6msg("fd00::2", "fd00::1", 128, 0, 0x77, 3, data))
    net.a.input(req)
    r = net.a.end.sent[-1]
    assert r[6] == 58 and r[8:24] == parseip("fd00::1") and r[24:40] == parseip("fd00::2")
    assert r[40] == 129 and struct.unpack("!HH", r[44:48]) == (0x77, 3) and r[48:] == data
    assert icmp6ok(r) and r[7] == 255
    s = net.a.icmp6.stats().splitlines()
    assert "EchoRequestV6: 1 0" in s and "EchoReply: 0 1" in s and "EchoReplyV6: 0 0" in s
    assert "InMsgs: 0" in s
    # to the all-nodes multicast: answered from the interface's address
    net.a.input(ip6("fd00::2", "ff02::1", 58, icmp6msg("fd00::2", "ff02::1", 128, 0, 1, 1, b"m")))
    r = net.a.end.sent[-1]
    assert r[40] == 129 and r[8:24] == parseip("fd00::1") and icmp6ok(r)
    # from a multicast source: no answer
    n = len(net.a.end.sent)
    net.a.input(ip6("ff02::5", "fd00::1", 58, icmp6msg("ff02::5", "fd00::1", 128, 0, 1, 1, b"m")))
    assert len(net.a.end.sent) == n


def test_ping_v6_through_a_conversation_and_headers():
    net = Net()
    c = net.b.icmp6.clone("u")
    net.b.icmp6.ctl(c, "connect fd00::1!1")
    net.b.icmp6.write(c, bytes(40) + struct.pack("!BBHHH", 128, 0, 0, 0, 5) + b"hi")
    net.run(max_ms=10)
    r = net.b.icmp6.read(c, 1000)
    assert r[40] == 129 and struct.unpack("!HH", r[44:48]) == (c.lport, 5) and r[48:] == b"hi"
    # "headers": the write starts with 8 unused bytes, local and remote address
    d = net.b.icmp6.clone("u")
    net.b.icmp6.ctl(d, "headers")
    with pytest.raises(Net9Error, match="^unknown control request$"):
        net.b.icmp6.ctl(d, "frob")
    net.b.icmp6.ctl(d, "announce 1")
    hdr = bytes(8) + parseip("fd00::2") + parseip("fd00::1")
    net.b.icmp6.write(d, hdr + struct.pack("!BBHHH", 128, 0, 0, 0x99, 6) + b"x")
    sent = net.b.end.sent[-1]
    assert sent[8:24] == parseip("fd00::2") and sent[24:40] == parseip("fd00::1")
    assert icmp6ok(sent) and struct.unpack("!H", sent[44:46])[0] == 0x99


def test_echo_not_answered_for_broadcast_or_multicast():
    # mkechoreply: the destination must be a unicast self address (ip4me)
    # and the source not multicast or broadcast (ip4reply)
    net = Net()
    for src, dst in [("10.0.0.2", "10.0.0.255"), ("10.0.0.2", "255.255.255.255"),
                     ("10.0.0.2", "224.0.0.1"), ("10.0.0.255", "10.0.0.1"),
                     ("224.0.0.9", "10.0.0.1")]:
        n = len(net.a.end.sent)
        net.a.input(ip4(src, dst, 1, icmp4msg(8, 0, 1, 1, b"x")))
        assert len(net.a.end.sent) == n, (src, dst)
    assert net.a.icmp.stat("InMsgs") == 5
    assert net.a.icmp.typecounts(8) == (5, 0)


def test_icmp_input_errors():
    # icmpiput: HlenErrs (< 20+8), CsumErrs; LenErrs for advice too short
    # to name a conversation (MinAdvise = 20+4); InErrors for the first two
    net = Net()
    a = net.a
    a.input(ip4("10.0.0.2", "10.0.0.1", 1, b"\x08\0\0\0"))
    assert (a.icmp.stat("HlenErrs"), a.icmp.stat("InErrors")) == (1, 1)
    m = bytearray(icmp4msg(8, 0, 1, 1, b"abc"))
    m[3] ^= 1
    a.input(ip4("10.0.0.2", "10.0.0.1", 1, bytes(m)))
    assert (a.icmp.stat("CsumErrs"), a.icmp.stat("InErrors")) == (1, 2)
    a.input(ip4("10.0.0.2", "10.0.0.1", 1, icmp4msg(3, 1, 0, 0, b"\x45" + bytes(19))))
    assert a.icmp.stat("LenErrs") == 1 and a.icmp.stat("InErrors") == 2
    assert a.icmp.stat("InMsgs") == 3
    assert a.icmp.typecounts(3) == (1, 0)
    # v6: icmp6.c valid()
    s = a.icmp6
    a.input(ip6("fd00::2", "fd00::1", 58, b"\x80\0\0\0\0\0"))
    assert (s.stat("HlenErrs"), s.stat("InErrors")) == (1, 1)
    m = bytearray(icmp6msg("fd00::2", "fd00::1", 128, 0, 1, 1, b"x"))
    m[2] ^= 1
    a.input(ip6("fd00::2", "fd00::1", 58, bytes(m)))
    assert (s.stat("CsumErrs"), s.stat("InErrors")) == (1, 2)
    # neighbour discovery messages need hop limit 255 and code 0; router
    # advertisements come from link-local addresses
    ra = icmp6msg("fd00::2", "fd00::1", 134, 0, data=bytes(8))
    a.input(ip6("fd00::2", "fd00::1", 58, ra, hlim=64))
    assert s.stat("HoplimErrs") == 1
    a.input(ip6("fd00::2", "fd00::1", 58, ra, hlim=255))
    assert s.stat("RouterAddrErrs") == 1
    ns = icmp6msg("fd00::2", "fd00::1", 135, 1, data=parseip("fd00::1"))
    a.input(ip6("fd00::2", "fd00::1", 58, ns, hlim=255))
    assert s.stat("IcmpCodeErrs") == 1
    ns = icmp6msg("fd00::2", "fd00::1", 135, 0, data=parseip("ff02::1"))
    a.input(ip6("fd00::2", "fd00::1", 58, ns, hlim=255))
    assert s.stat("TargetErrs") == 1
    assert s.stat("InErrors") == 6
    # a valid neighbour solicitation is ignored (no neighbour discovery)
    n = len(net.a.end.sent)
    ns = icmp6msg("fd00::2", "fd00::1", 135, 0, data=parseip("fd00::1"))
    a.input(ip6("fd00::2", "fd00::1", 58, ns, hlim=255))
    assert len(net.a.end.sent) == n and s.typecounts(135) == (1, 0)


# ---------------------------------------------------------------- errors -> transports

@pytest.mark.parametrize("code", list(range(17)))
def test_unreachable_fails_a_connecting_tcp_conversation(code):
    # icmp.c unreachcode[]: the text of the connect's error; codes beyond
    # the table: "unreachable %V -> %V code %d" with the ICMP's addresses
    net = Net()
    answer_syn_with(net, lambda syn: icmp_about(syn, 3, code))
    c = start_connect(net)
    assert net.run(lambda: c.state != Connecting, 5000)
    expect = unreachcode[code] if code < 16 else "unreachable 10.0.0.2 -> 10.0.0.1 code 16"
    with pytest.raises(Net9Error) as e:
        net.a.tcp.connectresult(c)
    assert str(e.value) == expect
    assert net.now < 1000           # at once, not after retransmissions
    assert net.a.icmp.typecounts(3) == (1, 0)


def test_unreachable_texts_are_devips():
    # devip.md section 3.7's list, in code order
    assert unreachcode == [
        "net unreachable", "host unreachable", "protocol unreachable", "port unreachable",
        "fragmentation needed and DF set", "source route failed", "destination network unknown",
        "destination host unknown", "source host isolated", "network administratively prohibited",
        "host administratively prohibited", "network unreachable for tos",
        "host unreachable for tos", "communication administratively prohibited",
        "host precedence violation", "precedence cutoff in effect"]


def test_time_exceeded():
    # TimeExceed code 0: "ttl exceeded at %V" (the sender of the ICMP);
    # other codes go to the icmp conversations only
    net = Net()
    answer_syn_with(net, lambda syn: icmp_about(syn, 11, 0, src="10.0.0.254"))
    c = start_connect(net)
    assert net.run(lambda: c.state != Connecting, 5000)
    with pytest.raises(Net9Error, match=r"^ttl exceeded at 10\.0\.0\.254$"):
        net.a.tcp.connectresult(c)
    net = Net()
    answer_syn_with(net, lambda syn: icmp_about(syn, 11, 1))
    c = start_connect(net)
    assert not net.run(lambda: c.state != Connecting, 500)
    assert c.state == Connecting
    assert net.a.icmp.typecounts(11)[0] >= 1


@pytest.mark.parametrize("type,code,word,text", [
    (1, 4, 0, "port unreachable"),
    (1, 0, 0, "no route to destination"),
    (1, 3, 0, "address unreachable"),
    (1, 9, 0, "icmp unreachable: unknown code"),
    (2, 0, 1280, "packet too big for 1280 mtu at fd00::fe"),
    (3, 0, 0, "ttl exceeded at fd00::fe"),
    (3, 1, 0, "frag time exceeded at fd00::fe"),
])
def test_v6_errors_fail_a_connecting_tcp_conversation(type, code, word, text):
    # icmp6.c icmpiput6 texts
    net = Net()
    src = "fd00::2" if type == 1 else "fd00::fe"
    answer_syn_with(net, lambda syn: icmp6_about(syn, type, code, src=src, word=word))
    c = start_connect(net, v6=True)
    assert net.run(lambda: c.state != Connecting, 5000)
    with pytest.raises(Net9Error) as e:
        net.a.tcp.connectresult(c)
    assert str(e.value) == text


def test_v6_error_quoting_a_first_fragment():
    # a fragment header in the quoted datagram is removed when it is the
    # first fragment, so the transport sees its own header at 40
    net = Net()

    def make(syn):
        fh = struct.pack("!BBHI", 6, 0, 1, 99)        # offset 0, M set
        inner = bytearray(syn[:40] + fh + syn[40:])
        inner[6] = 44
        struct.pack_into("!H", inner, 4, len(inner) - 40)
        return icmp6_about(bytes(inner), 1, 4)
    answer_syn_with(net, make)
    c = start_connect(net, v6=True)
    assert net.run(lambda: c.state != Connecting, 5000)
    with pytest.raises(Net9Error, match="^port unreachable$"):
        net.a.tcp.connectresult(c)


def test_ignoreadvice_and_unusable_quotes():
    # ignoreadvice: the conversation is not told; a quote with options, a
    # bad header checksum or a later fragment is not advised (icmpiput)
    def bad_quotes(syn):
        opt = bytearray(syn[:20] + b"\0\0\0\0")      # a 24-byte header, checksum right
        opt[0] = 0x46
        opt[10:12] = b"\0\0"
        opt[10:12] = struct.pack("!H", cksum(bytes(opt)))
        badsum = bytearray(syn[:28])
        badsum[10] ^= 0xFF
        later = bytearray(syn[:28])
        later[6:8] = b"\x00\x10"
        later[10:12] = b"\0\0"
        later[10:12] = struct.pack("!H", cksum(bytes(later[:20])))
        return [bytes(opt) + syn[20:28], bytes(badsum), bytes(later)]

    for ignore, quotes in [(True, lambda syn: [syn[:28]]), (False, bad_quotes)]:
        net = Net()
        sent = []

        def filt(src, pkt):
            if src is net.a and is_syn(pkt) and not sent:
                sent.append(1)
                for q in quotes(pkt):
                    net.q.append((net.b.end, icmp_about(q, 3, 1, quote=len(q))))
            return pkt
        net.filter = filt
        lc = net.b.tcp.clone("u")
        net.b.tcp.ctl(lc, "announce 80")
        c = start_connect(net, ignoreadvice=ignore)
        assert net.run(lambda: c.state != Connecting, 5000)
        assert net.a.tcp.connectresult(c) is True
        # the errors did arrive and were counted
        assert net.a.icmp.typecounts(3)[0] == (1 if ignore else 3)


def test_established_conversation_ignores_unreachable():
    # tcpadvise acts only in Syn_sent
    net = Net()
    lc = net.b.tcp.clone("u")
    net.b.tcp.ctl(lc, "announce 80")
    c = start_connect(net)
    assert net.run(lambda: c.state != Connecting, 5000)
    syn = [p for t, s, p in net.log if s == "a" and is_syn(p)][0]
    net.a.input(icmp_about(syn, 3, 3))
    net.run(max_ms=100)
    assert net.a.tcp.status(c).startswith("Established")


def test_errors_sent_reach_the_other_sides_protocol():
    # icmpnoconv (udp's port unreachable) and icmpnoconv6: type 3 code 3 /
    # type 1 code 4 quoting the datagram; the receiver advises the quoted
    # protocol with the text
    net = Net()
    rec = Rec(net.b.fs, "rec", P)
    d4 = ip4("10.0.0.2", "10.0.0.1", P, b"12345678abcdefgh")
    net.a.icmp.icmpnoconv(net.a.ifc, d4)
    d6 = ip6("fd00::2", "fd00::1", P, b"12345678")
    net.a.icmp6.icmpnoconv6(net.a.ifc, d6)
    net.run(max_ms=10)
    assert rec.advice == [(d4, "port unreachable"), (d6, "port unreachable")]
    assert net.a.icmp.typecounts(3) == (0, 1) and net.b.icmp.typecounts(3) == (1, 0)
    assert net.a.icmp6.typecounts(1) == (0, 1)
    # host unreachable and ttl exceeded, and too big for v6
    net.a.icmp.icmpnohost(net.a.ifc, d4)
    net.a.icmp.icmpttlexceeded(net.a.ifc, d4)
    net.a.icmp6.icmppkttoobig6(net.a.ifc, d6, 1280)
    net.run(max_ms=10)
    assert [m for _, m in rec.advice[2:]] == ["host unreachable", "ttl exceeded at 10.0.0.1",
                                              "packet too big for 1280 mtu at fd00::1"]
    # never about broadcasts or multicasts
    n = len(net.a.end.sent)
    net.a.icmp.icmpnoconv(net.a.ifc, ip4("10.0.0.2", "10.0.0.255", P, b"x" * 8))
    net.a.icmp6.icmpnoconv6(net.a.ifc, ip6("fd00::2", "ff02::1", P, b"x" * 8))
    assert len(net.a.end.sent) == n


def test_error_about_an_icmp_message_hangs_up_the_conversation():
    # icmpadvise: the conversation that sent the quoted message (local
    # port = id, addresses) gets its queues hung up with the text
    net = Net()
    c = net.b.icmp.clone("u")
    net.b.icmp.ctl(c, "connect 10.0.0.1!1")
    net.b.icmp.write(c, bytes(20) + struct.pack("!BBHHH", 8, 0, 0, 0, 1) + b"x" * 8)
    req = net.q.pop()[1]               # not delivered
    net.b.input(icmp_about(req, 3, 1, src="10.0.0.1", dst="10.0.0.2"))
    assert c.rq.ishungup() and c.rq.getreason() == "host unreachable"


# ---------------------------------------------------------------- stats texts

def test_icmp_stats_text():
    # icmpstats: six "name: %lud" lines, then "name: in out" for types
    # 0..18, numbers where icmpnames[] has no name; "AddrMaskReply  "
    # keeps its two trailing spaces
    icmp = Icmp(Fs())
    lines = icmp.stats().splitlines()
    assert len(lines) == 25
    assert [l.split(":")[0] for l in lines] == [
        "InMsgs", "InErrors", "OutMsgs", "CsumErrs", "LenErrs", "HlenErrs",
        "EchoReply", "1", "2", "Unreachable", "SrcQuench", "Redirect", "6", "7", "EchoRequest",
        "9", "10", "TimeExceed", "InParmProblem", "Timestamp", "TimestampReply", "InfoRequest",
        "InfoReply", "AddrMaskRequest", "AddrMaskReply  "]
    assert lines[-1] == "AddrMaskReply  : 0 0" and lines[0] == "InMsgs: 0"
    icmp6 = Icmp6(Fs())
    lines6 = icmp6.stats().splitlines()
    assert [l.split(":")[0] for l in lines6[:12]] == [
        "InMsgs", "InErrors", "OutMsgs", "CsumErrs", "LenErrs", "HlenErrs", "HoplimErrs",
        "IcmpCodeErrs", "TargetErrs", "OptlenErrs", "AddrmxpErrs", "RouterAddrErrs"]
    assert [l.split(":")[0] for l in lines6[12:]] == [
        "EchoReply", "UnreachableV6", "PacketTooBigV6", "TimeExceedV6", "SrcQuench", "Redirect",
        "EchoRequest", "TimeExceed", "InParmProblem", "Timestamp", "TimestampReply",
        "InfoRequest", "InfoReply", "AddrMaskRequest", "AddrMaskReply", "EchoRequestV6",
        "EchoReplyV6", "RouterSolicit", "RouterAdvert", "NbrSolicit", "NbrAdvert", "RedirectV6"]
