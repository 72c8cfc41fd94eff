# cython: language_level=3
"""The wire formats for Python: the C functions of wire.pxd (which tcp,
udp, icmp and ip use on every datagram) on bytes, for the simulator
(net9.sim), the tests and tools that build or read datagrams.

Addresses are 16 bytes (v4-mapped for IPv4) or 4 bytes where a function
says so.  Nothing here is on a hot path."""

from libc.string cimport memset
from cpython.bytearray cimport (PyByteArray_FromStringAndSize, PyByteArray_AS_STRING,
                                PyByteArray_GET_SIZE)

from net9.csum cimport csum_partial, csum_fold
from net9.byteorder cimport isv4c, nhgets, nhgetl, hnputs
from net9.wire cimport (Tcp, tcpoptsize, tcpput, tcpparse, tcphdrparse, tcpoptnext, ipput,
                        udpput, l4setcsum, pseudo4, pseudo6, ip4put, ip4fill, ip4hdrlen,
                        ip6put, ip4area, ip6area, ip6setlen, icmpput, icmpsetcsum, icmpid,
                        ipver, ip4hl, ip4len, ip4proto, ip4ttl, ip4id, ip4frag, ip6plen,
                        ip6nh, ip6hop, ip4setttl, icmptype, icmpcode, icmprest,
                        IP4HDRLEN, IP6HDRLEN, TCPHDRLEN, UDPHDRLEN, ICMPHDRLEN, SYN, MAXSACK)

V4PREFIX = b"\0" * 10 + b"\xff\xff"

__all__ = ["cksum", "pseudosum", "ip4header", "ip6header", "tcpheader", "tcpoptions",
           "tcpoptlist", "parsetcp", "parseip4", "parseip", "ipversion", "ipfinish",
           "tcpsegment", "udpdatagram", "icmpmessage", "icmpheader", "parseicmp"]


cdef bytes _addr(object a, int n):
    cdef bytes b = bytes(a)
    if len(b) != n:
        raise ValueError("an address of %d bytes, not %d" % (n, len(b)))
    return b


def cksum(data, unsigned long long acc=0):
    """The Internet checksum (RFC 1071) of data plus a partial sum acc
    (pseudosum's): the 16-bit value to store; data whose stored checksum
    is right gives 0."""
    cdef bytes b = bytes(data)
    return csum_fold(csum_partial(<const unsigned char*>b, len(b), acc))


def pseudosum(src, dst, int proto, unsigned int length):
    """The unfolded sum of the pseudo-header: 4-byte addresses give the v4
    one (RFC 793), 16-byte addresses the v6 one (RFC 8200 8.1)."""
    cdef bytes s = bytes(src), d = bytes(dst)
    if len(s) == 4 and len(d) == 4:
        return pseudo4(s, d, proto, length)
    if len(s) == 16 and len(d) == 16:
        return pseudo6(s, d, proto, length)
    raise ValueError("addresses of 4 or 16 bytes")


def ip4header(src, dst, int proto, unsigned int length, int ttl=64, int tos=0,
              unsigned int ipid=0, unsigned int frag=0):
    """A 20-byte IPv4 header (4-byte addresses) with its checksum."""
    cdef bytearray b = bytearray(IP4HDRLEN)
    cdef unsigned char *p = <unsigned char*>PyByteArray_AS_STRING(b)
    ip4put(p, tos & 0xff, length, ttl & 0xff, proto & 0xff, _addr(src, 4), _addr(dst, 4))
    ip4fill(p, length, ipid, frag)
    return b


def ip6header(src, dst, int nh, unsigned int paylen, int hop=64, int tos=0):
    """A 40-byte IPv6 header (16-byte addresses), flow label 0."""
    cdef bytearray b = bytearray(IP6HDRLEN)
    ip6put(<unsigned char*>PyByteArray_AS_STRING(b), tos & 0xff, paylen, nh & 0xff, hop & 0xff,
           _addr(src, 16), _addr(dst, 16))
    return b


cdef void _tcpfields(Tcp *t, dict f):
    # a Tcp from keyword fields (those not given are 0)
    cdef int i
    memset(t, 0, sizeof(Tcp))
    t.source = f.get("sport", 0)
    t.dest = f.get("dport", 0)
    t.seq = f.get("seq", 0) & 0xffffffff
    t.ack = f.get("ack", 0) & 0xffffffff
    t.flags = f.get("flags", 0) & 0x3f
    t.wnd = f.get("window", 0) & 0xffff
    t.urg = f.get("urg", 0)
    t.mss = f.get("mss") or 0
    t.ws = f.get("ws") or 0
    ts = f.get("ts")
    sack = f.get("sack") or ()
    t.sackok = bool(f.get("sackok"))
    t.optout = t.sackok or ts is not None or len(sack) > 0
    if ts is not None:
        t.hasts = 1
        t.tsval = ts[0] & 0xffffffff
        t.tsecr = ts[1] & 0xffffffff
    for i in range(min(len(sack), MAXSACK)):
        t.sack[2 * i] = sack[i][0] & 0xffffffff
        t.sack[2 * i + 1] = sack[i][1] & 0xffffffff
    t.nsack = min(len(sack), MAXSACK)


def tcpheader(int sport, int dport, unsigned long long seq, unsigned long long ack, int flags,
              int window, int urg=0, int doff=20):
    """A 20-byte TCP header without options, checksum 0; doff is the data
    offset it states (bytes), flags the 12 bits after it."""
    cdef Tcp t
    cdef int nsack = 0
    cdef bytearray b = bytearray(20)
    _tcpfields(&t, dict(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags & ~SYN,
                        window=window, urg=urg))
    tcpput(<unsigned char*>PyByteArray_AS_STRING(b), &t, 20, 0, nsack, t.wnd)
    # the data offset as told, and every bit of the flags word given
    b[12] = (((doff // 4) & 0xf) << 4) | ((flags >> 8) & 0xf)
    b[13] = flags & 0xff
    return b


def tcpoptions(bint syn=True, **fields):
    """The option bytes tcp's segments carry (padding included): on a SYN
    mss (when given), ws (when given), and with sackok/ts SACK-permitted
    and timestamps; on any other segment NOP NOP TS (ts=(val, ecr)) and NOP
    NOP SACK blocks (sack=[(left, right), ...])."""
    cdef Tcp t
    cdef int hdrlen, nsack = 0
    cdef bint wsopt = fields.get("ws") is not None
    fields["flags"] = SYN if syn else 0
    _tcpfields(&t, fields)
    hdrlen = tcpoptsize(&t, wsopt, &nsack)
    b = bytearray(hdrlen)
    tcpput(<unsigned char*>PyByteArray_AS_STRING(b), &t, hdrlen, wsopt, nsack, 0)
    return bytes(b[20:])


def tcpoptlist(opt):
    """Walk a TCP option area as tcp does: ([(kind, body bytes), ...],
    malformed), NOPs left out, stopping at EOL."""
    cdef bytes b = bytes(opt)
    cdef const unsigned char *p = b
    cdef int n = len(b), kind = 0, olen
    out = []
    while True:
        olen = tcpoptnext(p, n, &kind)
        if olen < 0:
            return out, True
        if olen == 0:
            return out, False
        if olen > 1:
            out.append((kind, p[2:olen]))
        p += olen
        n -= olen


def parsetcp(seg, bint whole=True):
    """tcp's parse of a TCP header (seg from the TCP header on): a dict of
    the fields and the options it took, or None when the header or its
    options are not all there.  whole=False reads what is there (for
    traces of truncated or malformed segments): the fixed header's fields
    and checksum ("csum"), "hlen" the data offset it states (whatever it
    is), no options; None only when the 20 bytes are not all there."""
    cdef Tcp t
    cdef bytes b = bytes(seg)
    cdef const unsigned char *h = b
    cdef int hl
    if not whole:
        if len(b) < TCPHDRLEN:
            return None
        hl = tcphdrparse(&t, h)
        return {"sport": t.source, "dport": t.dest, "seq": t.seq, "ack": t.ack,
                "flags": t.flags, "window": t.wnd, "urg": t.urg, "hlen": hl,
                "csum": nhgets(h + 16)}
    hl = tcpparse(&t, b, len(b))
    if hl < 0:
        return None
    return {"sport": t.source, "dport": t.dest, "seq": t.seq, "ack": t.ack, "flags": t.flags,
            "window": t.wnd, "urg": t.urg, "hlen": hl, "mss": t.mss,
            "ws": t.ws if t.hasws else None, "sackok": bool(t.sackok),
            "ts": (t.tsval, t.tsecr) if t.hasts else None,
            "sack": [(t.sack[2 * i], t.sack[2 * i + 1]) for i in range(t.nsack)]}


def parseip4(pkt):
    """The IPv4 header length of pkt, or -1 when it is not a whole one."""
    cdef bytes b = bytes(pkt)
    return ip4hdrlen(b, len(b))


def ipversion(pkt):
    """The version nibble of the datagram pkt (0 for no bytes)."""
    cdef bytes b = bytes(pkt[:1])
    return b[0] >> 4 if b else 0


def parseip(pkt, bint whole=True):
    """The IPv4 or IPv6 header at the start of pkt, as far as it is there:
    a dict of version, hlen (header length), length (the total length the
    header states; v6: 40 + payload length), proto (v6: next header), ttl
    (hop limit), tos (traffic class), id and frag (the v4 flags and
    fragment offset word; 0 for v6), src and dst (16 bytes, v4-mapped for
    v4), csumok (the v4 header checksum verifies; True for v6).  Nothing
    beyond the header is checked: the length may exceed pkt.  ValueError
    when pkt holds no whole header.  whole=False reads a v4 header whose
    header length is wrong all the same (hlen as stated, csumok over the
    stated length as far as pkt goes): only its 20 fixed bytes must be
    there."""
    cdef bytes b = bytes(pkt)
    cdef const unsigned char *p = b
    cdef Py_ssize_t n = len(b)
    cdef int v, hl
    if n == 0:
        raise ValueError("empty packet")
    v = ipver(p)
    if v == 4:
        if n < IP4HDRLEN:
            raise ValueError("truncated ipv4 header")
        hl = ip4hdrlen(p, n) if whole else ip4hl(p)
        if hl < 0:
            raise ValueError("bad ipv4 header length %d" % ip4hl(p))
        return {"version": 4, "hlen": hl, "length": ip4len(p), "proto": ip4proto(p),
                "ttl": ip4ttl(p), "tos": p[1], "id": ip4id(p), "frag": ip4frag(p),
                "src": V4PREFIX + b[12:16], "dst": V4PREFIX + b[16:20],
                "csumok": csum_fold(csum_partial(p, min(hl, n), 0)) == 0}
    if v == 6:
        if n < IP6HDRLEN:
            raise ValueError("truncated ipv6 header")
        return {"version": 6, "hlen": IP6HDRLEN, "length": IP6HDRLEN + ip6plen(p),
                "proto": ip6nh(p), "ttl": ip6hop(p), "tos": ((p[0] & 0xf) << 4) | (p[1] >> 4),
                "id": 0, "frag": 0, "src": b[8:24], "dst": b[24:40], "csumok": True}
    raise ValueError("ip version %d" % v)


def ipfinish(bytearray pkt, int version, int ttl, int tos=0, unsigned int ipid=0):
    """What net9.sim's IP layer fills in of a datagram of the given
    version a transport built (in place): v4 the tos, ttl, id and the
    header checksum (over the stated header length as far as pkt goes),
    v6 the hop limit only; lengths and addresses stay as they are.
    Returns the destination address (16 bytes), which it routes on."""
    cdef unsigned char *p = <unsigned char*>PyByteArray_AS_STRING(pkt)
    cdef Py_ssize_t n = PyByteArray_GET_SIZE(pkt)
    if version == 4 and n >= IP4HDRLEN:
        p[1] = tos & 0xff
        ip4setttl(p, ttl & 0xff)
        hnputs(p + 4, ipid & 0xffff)
        p[10] = p[11] = 0
        hnputs(p + 10, csum_fold(csum_partial(p, min(ip4hl(p), n), 0)))
        return V4PREFIX + bytes(pkt[16:20])
    if version == 6 and n >= IP6HDRLEN:
        p[7] = ttl & 0xff
        return bytes(pkt[24:40])
    raise ValueError("no whole v%d header" % version)


cdef tuple _pair(object src, object dst):
    cdef bytes s = _addr(src, 16), d = _addr(dst, 16)
    if isv4c(s) != isv4c(d):
        raise ValueError("mixed address families")
    return s, d


def tcpsegment(src, dst, payload=b"", int ttl=64, int tos=0, **fields):
    """A datagram as tcp sends it (16-byte addresses; the v4 id and header
    checksum left to the IP layer): the fields and options of tcpoptions
    and tcpheader by keyword (sport, dport, seq, ack, flags, window, urg,
    mss, ws, sackok, ts, sack), checksum done."""
    cdef Tcp t
    cdef int hdrlen, nsack = 0
    cdef bytes data = bytes(payload)
    cdef unsigned char *p
    cdef unsigned char *h
    cdef bint wsopt = fields.get("ws") is not None
    s, d = _pair(src, dst)
    cdef bint v4 = isv4c(s)
    _tcpfields(&t, fields)
    hdrlen = tcpoptsize(&t, wsopt, &nsack)
    b = PyByteArray_FromStringAndSize(NULL, (IP4HDRLEN if v4 else IP6HDRLEN) + hdrlen + len(data))
    p = <unsigned char*>PyByteArray_AS_STRING(b)
    h = ipput(p, v4, tos, ttl, 6, s, d, hdrlen + len(data))
    tcpput(h, &t, hdrlen, wsopt, nsack, t.wnd)
    b[len(b) - len(data):] = data
    l4setcsum(p, v4, 6, h, hdrlen + len(data), 16, 1)
    return b


def udpdatagram(src, dst, int sport, int dport, payload=b"", int ttl=64, int tos=0):
    """A datagram as udp sends it (16-byte addresses), checksum done."""
    cdef bytes data = bytes(payload)
    cdef unsigned int ulen = UDPHDRLEN + len(data)
    cdef unsigned char *p
    cdef unsigned char *u
    s, d = _pair(src, dst)
    cdef bint v4 = isv4c(s)
    b = PyByteArray_FromStringAndSize(NULL, (IP4HDRLEN if v4 else IP6HDRLEN) + ulen)
    p = <unsigned char*>PyByteArray_AS_STRING(b)
    u = ipput(p, v4, tos, ttl, 17, s, d, ulen)
    udpput(u, sport, dport, ulen)
    b[len(b) - len(data):] = data
    l4setcsum(p, v4, 17, u, ulen, 6, 1)
    return b


def icmpmessage(src, dst, int type, int code, unsigned int rest=0, payload=b""):
    """A datagram as icmp (16-byte v4-mapped addresses) or icmpv6 sends
    it to the IP layer: the header area (v4: version, protocol and
    addresses only, the rest zero, ipoput4's to fill; v6: version,
    payload length, next header 58 and addresses), the ICMP header (rest:
    the 4 bytes after the checksum) and payload, checksum done (v6 with
    the pseudo-header)."""
    cdef bytes data = bytes(payload)
    cdef unsigned int mlen = ICMPHDRLEN + len(data)
    cdef unsigned char *p
    cdef unsigned char *h
    cdef const unsigned char *sp
    cdef const unsigned char *dp
    s, d = _pair(src, dst)
    sp = <bytes>s
    dp = <bytes>d
    cdef bint v4 = isv4c(sp)
    cdef int hl = IP4HDRLEN if v4 else IP6HDRLEN
    b = bytearray(hl + mlen)
    p = <unsigned char*>PyByteArray_AS_STRING(b)
    h = p + hl
    if v4:
        ip4area(p, 1, sp + 12, dp + 12)
    else:
        ip6area(p, sp, dp)
        ip6setlen(p, mlen, 58)
    icmpput(h, type & 0xff, code & 0xff, rest)
    b[hl + ICMPHDRLEN:] = data
    if v4:
        icmpsetcsum(h, mlen)
    else:
        l4setcsum(p, 0, 58, h, mlen, 2, 0)
    return b


def icmpheader(int type, int code, unsigned int rest=0):
    """An 8-byte ICMP (v4 or v6) header, checksum 0 (what a program
    writes to /net/icmp after the header area; the kernel puts in the
    identifier and the checksum): rest the 4 bytes after the checksum
    (echo: identifier << 16 | sequence)."""
    cdef bytearray b = bytearray(ICMPHDRLEN)
    icmpput(<unsigned char*>PyByteArray_AS_STRING(b), type & 0xff, code & 0xff, rest)
    return b


def parseicmp(msg):
    """The ICMP header at the start of msg: a dict of type, code, csum,
    rest (the 4 bytes after the checksum) and, as an echo message reads
    them, id and seq; None when the 8 bytes are not all there."""
    cdef bytes b = bytes(msg[:ICMPHDRLEN])
    cdef const unsigned char *h = b
    if len(b) < ICMPHDRLEN:
        return None
    return {"type": icmptype(h), "code": icmpcode(h), "csum": nhgets(h + 2), "rest": icmprest(h),
            "id": icmpid(h), "seq": nhgets(h + 6)}
