"""net9.wire: the wire formats tcp, udp, icmp and ip build and read
(wire.pxd), through their Python face.  References are written here with
struct and a plain RFC 1071 sum, or are well-known packets."""

import struct

import pytest
from hypothesis import given, settings, strategies as st

from net9 import wire

V4PFX = b"\0" * 10 + b"\xff\xff"


def a4(*octets):
    return V4PFX + bytes(octets)


A = a4(10, 0, 0, 1)
B = a4(10, 0, 0, 2)
A6 = bytes.fromhex("fd000000000000000000000000000001")
B6 = bytes.fromhex("fd000000000000000000000000000002")


def ref_cksum(data, acc=0):
    if len(data) % 2:
        data += b"\0"
    s = acc + sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def ref_pseudo(src, dst, proto, length):
    if len(src) == 4:
        ph = src + dst + struct.pack("!BBH", 0, proto, length)
    else:
        ph = src + dst + struct.pack("!IxxxB", length, proto)
    return sum(struct.unpack("!%dH" % (len(ph) // 2), ph))


# ------------------------------------------------------------ known packets

def test_ip4header_known_packet():
    # the textbook IPv4 header (a UDP datagram 192.168.0.1 -> 192.168.0.199,
    # DF, ttl 64): checksum 0xb861
    want = bytes.fromhex("450000730000400040 11b861c0a80001c0a800c7".replace(" ", ""))
    h = wire.ip4header(bytes([192, 168, 0, 1]), bytes([192, 168, 0, 199]), 17, 0x73,
                       ttl=64, frag=0x4000)
    assert bytes(h) == want
    assert wire.cksum(h) == 0
    assert wire.parseip4(want + b"\0" * 0x5f) == 20


def test_ip6header_layout():
    h = wire.ip6header(A6, B6, 6, 1234, hop=7, tos=0xb8)
    assert bytes(h) == struct.pack("!IHBB16s16s", (6 << 28) | (0xb8 << 20), 1234, 6, 7, A6, B6)


def ref_tcp4(src, dst, sport, dport, seq, ack, flags, wnd, opts, payload, ttl=64, tos=0):
    # what tcp sends over v4, by struct: v4 id and header checksum are the
    # IP layer's (zero here)
    hl = 20 + len(opts)
    t = struct.pack("!HHIIHHHH", sport, dport, seq, ack, (hl // 4) << 12 | flags, wnd, 0, 0)
    t = bytearray(t + opts + payload)
    c = ref_cksum(bytes(t), ref_pseudo(src[12:], dst[12:], 6, len(t))) or 0xffff
    struct.pack_into("!H", t, 16, c)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + len(t), 0, 0, ttl, 6, 0, src[12:], dst[12:])
    return ip + bytes(t)


def test_tcp_syn_against_struct():
    opts = (struct.pack("!BBH", 2, 4, 1460) + struct.pack("!BBB", 3, 3, 7)
            + struct.pack("!BB", 4, 2) + struct.pack("!BBII", 8, 10, 111, 0) + b"\x01")
    want = ref_tcp4(A, B, 40000, 80, 12345, 0, 0x02, 65535, opts, b"")
    got = wire.tcpsegment(A, B, sport=40000, dport=80, seq=12345, flags=0x02, window=65535,
                          mss=1460, ws=7, sackok=True, ts=(111, 0))
    assert bytes(got) == want


def test_tcp_data_segment_with_ts_and_sack_against_struct():
    opts = (b"\x01\x01" + struct.pack("!BBII", 8, 10, 5, 6)
            + b"\x01\x01" + struct.pack("!BB4I", 5, 18, 100, 200, 300, 400))
    want = ref_tcp4(A, B, 1, 2, 7, 9, 0x18, 512, opts, b"hello")
    got = wire.tcpsegment(A, B, b"hello", sport=1, dport=2, seq=7, ack=9, flags=0x18,
                          window=512, ts=(5, 6), sack=[(100, 200), (300, 400)])
    assert bytes(got) == want


def test_tcp_v6_checksum_verifies():
    s = wire.tcpsegment(A6, B6, b"x" * 33, sport=5, dport=6, seq=1, ack=2, flags=0x10,
                        window=100)
    assert s[0] >> 4 == 6 and struct.unpack_from("!H", s, 4)[0] == 20 + 33
    seg = bytes(s[40:])
    assert ref_cksum(seg, ref_pseudo(A6, B6, 6, len(seg))) == 0
    assert wire.cksum(seg, wire.pseudosum(A6, B6, 6, len(seg))) == 0


def udp_payload_for_zero_sum(src, dst, sport, dport):
    # a 2-byte payload that makes the UDP checksum come out 0 (so it is
    # sent as 0xffff, -0)
    base = struct.pack("!HHHH", sport, dport, 10, 0) + b"\0\0"
    s = ref_pseudo(src, dst, 17, 10) + sum(struct.unpack("!5H", base))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return struct.pack("!H", 0xffff - s)


@pytest.mark.parametrize("v6", [False, True])
def test_udp_against_struct(v6):
    src, dst = (A6, B6) if v6 else (A, B)
    for payload in (b"", b"abc", udp_payload_for_zero_sum(src if v6 else src[12:],
                                                        dst if v6 else dst[12:], 7, 9)):
        d = bytes(wire.udpdatagram(src, dst, 7, 9, payload, ttl=3))
        hl = 40 if v6 else 20
        u = d[hl:]
        assert struct.unpack_from("!HHH", u) == (7, 9, 8 + len(payload))
        ref = ref_cksum(u[:6] + b"\0\0" + u[8:], ref_pseudo(src if v6 else src[12:],
                                                             dst if v6 else dst[12:], 17, len(u)))
        assert struct.unpack_from("!H", u, 6)[0] == (ref or 0xffff)
        assert u[8:] == payload
    assert struct.unpack_from("!H", u, 6)[0] == 0xffff      # the last one summed to 0


# ------------------------------------------------------------ round trips

ports = st.integers(0, 0xffff)
u32 = st.integers(0, 0xffffffff)


@settings(max_examples=300, deadline=None)
@given(sport=ports, dport=ports, seq=u32, ack=u32, flags=st.integers(0, 0x3f),
       window=ports, urg=ports, v6=st.booleans(), payload=st.binary(max_size=64),
       mss=st.integers(0, 0xffff), ws=st.none() | st.integers(0, 14), sackok=st.booleans(),
       ts=st.none() | st.tuples(u32, u32), sack=st.lists(st.tuples(u32, u32), max_size=4))
def test_tcp_round_trip(sport, dport, seq, ack, flags, window, urg, v6, payload, mss, ws,
                        sackok, ts, sack):
    src, dst = (A6, B6) if v6 else (A, B)
    d = wire.tcpsegment(src, dst, payload, sport=sport, dport=dport, seq=seq, ack=ack,
                        flags=flags, window=window, urg=urg, mss=mss, ws=ws, sackok=sackok,
                        ts=ts, sack=sack)
    hl = 40 if v6 else 20
    seg = bytes(d[hl:])
    ps = wire.pseudosum(src if v6 else src[12:], dst if v6 else dst[12:], 6, len(seg))
    assert wire.cksum(seg, ps) == 0
    t = wire.parsetcp(seg)
    assert t is not None
    assert (t["sport"], t["dport"], t["seq"], t["ack"], t["flags"], t["window"], t["urg"]) == (
        sport, dport, seq, ack, flags, window, urg)
    assert seg[t["hlen"]:] == payload and t["hlen"] % 4 == 0 and t["hlen"] <= 60
    if flags & 0x02:
        # a SYN: MSS when given, WS when given, SACK-permitted and TS with optout
        assert t["mss"] == mss
        assert t["ws"] == ws
        optout = sackok or ts is not None or len(sack) > 0
        assert t["sackok"] == (optout and sackok)
        assert t["ts"] == (ts if optout else None)
        assert t["sack"] == []
    else:
        assert t["mss"] == 0 and t["ws"] is None and not t["sackok"]
        assert t["ts"] == ts
        assert t["sack"] == sack[:3 if ts is not None else 4]


@given(kinds=st.lists(st.sampled_from([0, 1, 2, 3, 4, 5, 8, 30]), max_size=8), data=st.data())
def test_tcpoptlist_matches_a_reference_walk(kinds, data):
    # random option areas: tcpoptlist is the walk tcp makes (wire.tcpparse)
    opt = b""
    for k in kinds:
        if k in (0, 1):
            opt += bytes([k])
        else:
            n = data.draw(st.integers(0, 12))
            opt += bytes([k, n]) + b"\x55" * max(0, n - 2)
    opt += data.draw(st.binary(max_size=3))
    want, bad, i = [], False, 0
    while i < len(opt) and opt[i] != 0:
        if opt[i] == 1:
            i += 1
            continue
        if i + 1 >= len(opt) or opt[i + 1] < 2 or i + opt[i + 1] > len(opt):
            bad = True
            break
        want.append((opt[i], opt[i + 2:i + opt[i + 1]]))
        i += opt[i + 1]
    assert wire.tcpoptlist(opt) == (want, bad)


# ------------------------------------------------------------ malformed input

def test_parsetcp_rejects_short_and_bad_offsets():
    seg = bytes(wire.tcpsegment(A, B, b"data", sport=1, dport=2, flags=0x02, mss=1000,
                                window=1))[20:]
    hl = wire.parsetcp(seg)["hlen"]
    assert hl == 24
    for n in range(0, 20):
        assert wire.parsetcp(seg[:n]) is None           # no whole header
    for n in range(20, hl):
        assert wire.parsetcp(seg[:n]) is None           # options cut off
    for off in range(0, 5):                             # data offset < 5 words
        b = bytearray(seg)
        b[12] = off << 4
        assert wire.parsetcp(b) is None
    b = bytearray(seg[:hl])
    b[12] = 15 << 4                                     # 60 bytes claimed, 24 there
    assert wire.parsetcp(b) is None


def test_options_of_the_wrong_length_are_ignored():
    t = wire.tcpheader(1, 2, 3, 4, 0x02, 100, doff=32)
    opts = bytes([2, 3, 9]) + bytes([3, 4, 1, 1]) + bytes([8, 9]) + b"\0" * 7  # mss/ws/ts bad
    t = bytes(t) + opts
    p = wire.parsetcp(t)
    assert p["mss"] == 0 and p["ws"] is None and p["ts"] is None
    # ws beyond 14 is not taken (RFC 7323 2.3 caps it; tcp.c ignores it)
    p = wire.parsetcp(bytes(wire.tcpheader(1, 2, 3, 4, 0x02, 100, doff=24)) + bytes([3, 3, 15, 1]))
    assert p["ws"] is None


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80))
def test_parsers_take_any_bytes(b):
    p = wire.parsetcp(b)
    if p is not None:
        assert 20 <= p["hlen"] <= min(60, len(b))
        assert len(p["sack"]) <= 4
    hl = wire.parseip4(b)
    assert hl == -1 or (20 <= hl <= len(b) and b[0] >> 4 == 4)
    kinds, bad = wire.tcpoptlist(b)
    assert all(2 + len(body) <= len(b) for _, body in kinds)


def test_parseip4_rejects():
    h = bytes(wire.ip4header(b"\1\2\3\4", b"\5\6\7\x08", 6, 20))
    assert wire.parseip4(h) == 20
    assert wire.parseip4(h[:19]) == -1
    assert wire.parseip4(b"\x65" + h[1:]) == -1         # version 6
    assert wire.parseip4(b"\x44" + h[1:]) == -1         # 16-byte header
    assert wire.parseip4(b"\x46" + h[1:]) == -1         # 24 bytes claimed, 20 there


def test_bad_addresses_raise():
    with pytest.raises(ValueError):
        wire.pseudosum(b"\0" * 4, b"\0" * 16, 6, 20)
    with pytest.raises(ValueError):
        wire.tcpsegment(A, B6, sport=1, dport=2)
    with pytest.raises(ValueError):
        wire.udpdatagram(A[:15], B, 1, 2)
    with pytest.raises(ValueError):
        wire.ip4header(A, B, 6, 20)                     # 16-byte addresses to a v4 header


# ------------------------------------------------------------ lenient parses, ICMP

def test_parseip_fields_against_struct():
    h = bytes(wire.ip4header(b"\1\2\3\4", b"\5\6\7\x08", 17, 300, ttl=9, tos=0x10,
                             ipid=0x1234, frag=0x4000))
    p = wire.parseip(h)           # the stated length may exceed what is there
    vhl, tos, tl, ipid, frag, ttl, proto, _, src, dst = struct.unpack("!BBHHHBBH4s4s", h)
    assert p == {"version": 4, "hlen": (vhl & 0xf) * 4, "length": tl, "proto": proto,
                 "ttl": ttl, "tos": tos, "id": ipid, "frag": frag, "src": V4PFX + src,
                 "dst": V4PFX + dst, "csumok": True}
    assert not wire.parseip(h[:10] + b"\0\0" + h[12:])["csumok"]
    h6 = bytes(wire.ip6header(A6, B6, 58, 8, hop=3, tos=0xb8))
    p = wire.parseip(h6)
    assert (p["version"], p["hlen"], p["length"], p["proto"], p["ttl"], p["tos"]) == \
        (6, 40, 48, 58, 3, 0xb8)
    assert (p["src"], p["dst"], p["csumok"], p["id"], p["frag"]) == (A6, B6, True, 0, 0)


def test_parseip_rejects_what_is_no_header():
    h = bytes(wire.ip4header(b"\1\2\3\4", b"\5\6\7\x08", 6, 20))
    h6 = bytes(wire.ip6header(A6, B6, 6, 0))
    for bad, why in [(b"", "empty"), (h[:19], "truncated ipv4"), (b"\x44" + h[1:], "length 16"),
                     (b"\x46" + h[1:], "length 24"), (h6[:39], "truncated ipv6"),
                     (b"\x50" + h[1:], "version 5")]:
        with pytest.raises(ValueError, match=why):
            wire.parseip(bad)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_lenient_tcp_parse_reads_the_fixed_header(b):
    p = wire.parsetcp(b, whole=False)
    if len(b) < 20:
        assert p is None
        return
    sport, dport, seq, ack, offfl, window, csum, urg = struct.unpack_from("!HHIIHHHH", b)
    assert p == {"sport": sport, "dport": dport, "seq": seq, "ack": ack,
                 "flags": offfl & 0xff, "window": window, "urg": urg,
                 "hlen": (offfl >> 12) * 4, "csum": csum}
    whole = wire.parsetcp(b)
    if whole is not None:             # the strict parse agrees where it parses
        assert all(whole[k] == p[k] for k in ("sport", "dport", "seq", "ack", "flags",
                                              "window", "urg", "hlen"))


@pytest.mark.parametrize("v6", [False, True])
def test_icmpmessage_against_struct(v6):
    src, dst = (A6, B6) if v6 else (A, B)
    body = b"ping" * 5
    m = bytes(wire.icmpmessage(src, dst, 8 if not v6 else 128, 0, 0x00070009, body))
    icmp = m[40:] if v6 else m[20:]
    assert icmp[:2] == bytes([128 if v6 else 8, 0]) and icmp[4:8] == b"\0\x07\0\x09"
    assert icmp[8:] == body
    if v6:
        assert m[:40] == struct.pack("!IHBB16s16s", 6 << 28, len(icmp), 58, 0, A6, B6)
        assert ref_cksum(icmp, ref_pseudo(A6, B6, 58, len(icmp))) == 0
    else:
        # icmp's header area: version, protocol, addresses; the rest ipoput4's
        assert m[:20] == struct.pack("!B8xB2x4s4s", 0x40, 1, A[12:], B[12:])
        assert ref_cksum(icmp) == 0
    # a v4 unreachable's next-hop MTU is the low half of rest
    m = bytes(wire.icmpmessage(A, B, 3, 4, 1400))
    assert m[24:28] == b"\0\0\x05\x78" and ref_cksum(m[20:]) == 0


def test_parseip_not_whole_reads_a_bad_header_length():
    h = bytes(wire.ip4header(b"\1\2\3\4", b"\5\6\7\x08", 6, 20))
    for vhl in (0x40, 0x44, 0x4f):
        b = bytes([vhl]) + h[1:]
        with pytest.raises(ValueError):
            wire.parseip(b)
        p = wire.parseip(b, whole=False)
        assert p["hlen"] == (vhl & 0xf) * 4 and p["dst"] == V4PFX + b"\5\6\7\x08"
        assert p["csumok"] == (ref_cksum(b[:p["hlen"]]) == 0)
    with pytest.raises(ValueError):
        wire.parseip(h[:19], whole=False)


def test_ipversion_and_ipfinish():
    assert wire.ipversion(b"") == 0 and wire.ipversion(b"\x45") == 4
    assert wire.ipversion(b"\x60\0") == 6
    m = wire.icmpmessage(A, B, 8, 0, 1, b"x")       # header length 0: icmp's area
    b = bytearray(wire.ip4header(A[12:], B[12:], 6, 40)) + bytearray(20)
    b[1] = b[8] = 0
    assert wire.ipfinish(b, 4, 7, 0x20, 0x1234) == B
    vhl, tos, tl, ipid, frag, ttl, proto, _ = struct.unpack_from("!BBHHHBBH", b)
    assert (tos, tl, ipid, ttl, proto) == (0x20, 40, 0x1234, 7, 6)
    assert ref_cksum(bytes(b[:20])) == 0
    assert wire.ipfinish(m, 4, 1) == B              # checksum over 0 bytes, as stated
    assert m[10:12] == b"\xff\xff" and m[8] == 1
    b6 = bytearray(wire.ip6header(A6, B6, 6, 0, hop=1, tos=0x40))
    before = bytes(b6)
    assert wire.ipfinish(b6, 6, 9, 0x80) == B6
    assert bytes(b6) == before[:7] + b"\x09" + before[8:]     # the hop limit only
    with pytest.raises(ValueError):
        wire.ipfinish(bytearray(19), 4, 1)
    with pytest.raises(ValueError):
        wire.ipfinish(bytearray(39), 6, 1)


def test_icmpheader_and_parseicmp():
    h = bytes(wire.icmpheader(8, 0, (0x1234 << 16) | 0xbeef))
    assert h == struct.pack("!BBHHH", 8, 0, 0, 0x1234, 0xbeef)
    m = bytes(wire.icmpmessage(A, B, 0, 0, 0x00050006, b"abc"))
    p = wire.parseicmp(m[20:])
    assert (p["type"], p["code"], p["id"], p["seq"], p["rest"]) == (0, 0, 5, 6, 0x00050006)
    assert p["csum"] == struct.unpack_from("!H", m, 22)[0] and ref_cksum(m[20:]) == 0
    assert wire.parseicmp(h[:7]) is None
