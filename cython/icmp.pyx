# cython: language_level=3
"""ICMP and ICMPv6: 9front's icmp.c and icmp6.c, sans I/O.

Icmp(fs) and Icmp6(fs) register as IP protocols 1 and 58.  They answer
echo requests, pass destination unreachable, time exceeded and packet too
big to the transport named in the quoted datagram (Proto.advise with
devip's texts), hand everything else to the /net/icmp conversations whose
local port is the ICMP identifier, and send the errors the IP layer and
the transports ask for (icmpnoconv, icmpnohost, icmpttlexceeded, ...).

The conversations are devip's (connect/announce as Fsstdconnect, one
datagram per read, a write sends one ICMP message with the 20-byte (v6:
40-byte) IP header area filled in); devip.md sections 3.11 and 4.3.
"""

from libc.string cimport memcpy, memcmp, memset
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE

from net9 import errors
from net9.errors import Net9Error
from net9.ipaux import fmtip
from net9.conv cimport Conv, Proto, Fs, IpLayer
from net9.qio cimport Queue
from net9.wire cimport (icmpcsum, icmpsetcsum, ip4csum, l4csum, l4setcsum, ip4area, ip6area,
                        ip6addrs, ip6setlen, icmpput, icmpsetid, icmpid, ipaddrs, ipver,
                        ip4hl, ip4frag, ip4proto, ip4src, ip4dst, ip6plen, ip6nh, ip6hop, ip6src, ip6dst,
                        ip6fragoff, icmptype, icmpcode, icmprest)
from net9.netlog cimport Logicmp
from net9.iproute cimport Runi, Rbcast, Rmulti
from net9.ip cimport FH
from net9.byteorder cimport nhgets, nhgetl

cdef bytes V4PFX = b"\0" * 10 + b"\xff\xff"
cdef bytes IPnoaddr = b"\0" * 16

cdef enum:
    MAXTTL = 255
    DFLTTOS = 0
    V4 = 4
    V6 = 6
    v4MINTU = 68
    v6MINTU = 1280
    IP_FO = 0x1fff
    MinAdvise = ICMP_IPSIZE + 4
    MinAdvise6 = 40 + 4
    IP6FHDR = 8

# ICMP types (icmp.c)
cdef enum:
    EchoReply = 0
    Unreachable = 3
    SrcQuench = 4
    Redirect = 5
    EchoRequest = 8
    TimeExceed = 11
    InParmProblem = 12
    Timestamp = 13
    TimestampReply = 14
    InfoRequest = 15
    InfoReply = 16
    AddrMaskRequest = 17
    AddrMaskReply = 18

# ICMPv6 types (icmp6.c)
cdef enum:
    UnreachableV6 = 1
    PacketTooBigV6 = 2
    TimeExceedV6 = 3
    ParamProblemV6 = 4
    EchoRequestV6 = 128
    EchoReplyV6 = 129
    RouterSolicit = 133
    RouterAdvert = 134
    NbrSolicit = 135
    NbrAdvert = 136
    RedirectV6 = 137

# stats
cdef enum:
    InMsgs = 0
    InErrors
    OutMsgs
    CsumErrs
    LenErrs
    HlenErrs
    HoplimErrs6
    IcmpCodeErrs6
    TargetErrs6
    OptlenErrs6
    AddrmxpErrs6
    RouterAddrErrs6

statnames = ["InMsgs", "InErrors", "OutMsgs", "CsumErrs", "LenErrs", "HlenErrs"]
statnames6 = statnames + ["HoplimErrs", "IcmpCodeErrs", "TargetErrs", "OptlenErrs",
                          "AddrmxpErrs", "RouterAddrErrs"]

icmpnames = [None] * 19
for _i, _n in [(0, "EchoReply"), (3, "Unreachable"), (4, "SrcQuench"), (5, "Redirect"),
               (8, "EchoRequest"), (11, "TimeExceed"), (12, "InParmProblem"),
               (13, "Timestamp"), (14, "TimestampReply"), (15, "InfoRequest"),
               (16, "InfoReply"), (17, "AddrMaskRequest"),
               (18, "AddrMaskReply  ")]:       # sic: icmp.c's name has two spaces
    icmpnames[_i] = _n

icmpnames6 = [None] * 138
for _i, _n in [(0, "EchoReply"), (1, "UnreachableV6"), (2, "PacketTooBigV6"),
               (3, "TimeExceedV6"), (4, "SrcQuench"), (5, "Redirect"), (8, "EchoRequest"),
               (11, "TimeExceed"), (12, "InParmProblem"), (13, "Timestamp"),
               (14, "TimestampReply"), (15, "InfoRequest"), (16, "InfoReply"),
               (17, "AddrMaskRequest"), (18, "AddrMaskReply"), (128, "EchoRequestV6"),
               (129, "EchoReplyV6"), (133, "RouterSolicit"), (134, "RouterAdvert"),
               (135, "NbrSolicit"), (136, "NbrAdvert"), (137, "RedirectV6")]:
    icmpnames6[_i] = _n

# icmp.c unreachcode[]: the texts a connect fails with
unreachcode = [
    "net unreachable",
    "host unreachable",
    "protocol unreachable",
    "port unreachable",
    "fragmentation needed and DF set",
    "source route failed",
    "destination network unknown",
    "destination host unknown",
    "source host isolated",
    "network administratively prohibited",
    "host administratively prohibited",
    "network unreachable for tos",
    "host unreachable for tos",
    "communication administratively prohibited",
    "host precedence violation",
    "precedence cutoff in effect",
]

# icmp6.c unreachcode[]
unreachcode6 = [
    "no route to destination",
    "comm with destination administratively prohibited",
    "beyond scope of source address",
    "address unreachable",
    "port unreachable",
    "source address failed ingress/egress policy",
    "reject route to destination",
    "icmp unreachable: unknown code",
]


cdef inline const unsigned char *bp(bytes b) noexcept:
    return <const unsigned char*>PyBytes_AS_STRING(b)

cdef tuple addrs16(bytes b, bint v4):
    # the source and destination of the datagram b (whose header is all
    # there), 16 bytes each
    cdef unsigned char s[16]
    cdef unsigned char d[16]
    ipaddrs(bp(b), v4, s, d)
    return PyBytes_FromStringAndSize(<char*>s, 16), PyBytes_FromStringAndSize(<char*>d, 16)


cdef inline bint isv6mcast(const unsigned char *a) noexcept:
    return a[0] == 0xff

cdef inline bint islinklocal(const unsigned char *a) noexcept:
    return a[0] == 0xfe and (a[1] & 0xc0) == 0x80

cdef inline unsigned short cksum6(const unsigned char *p, Py_ssize_t n) noexcept:
    # ICMPv6 checksum: pseudo-header (addresses, length, next header 58)
    # and the ICMP message p[40:n]
    return l4csum(p, 0, 58, p + 40, n - 40)


cdef void set_cksum6(bytearray b) noexcept:
    # icmp6.c set_cksum: payload length, next header and the checksum
    cdef unsigned char *p = <unsigned char*>PyByteArray_AS_STRING(b)
    cdef Py_ssize_t n = PyByteArray_GET_SIZE(b)
    ip6setlen(p, <unsigned int>(n - 40), 58)
    l4setcsum(p, 0, 58, p + 40, n - 40, 2, 0)


cdef int icmpkick(Icmp self, Conv c, object m) except -1:
    # icmpkick: each message written is an IP header area and an ICMP
    # message; the kernel fills in addresses, protocol, id, checksum
    cdef unsigned char *p
    cdef Py_ssize_t n
    b = bytearray(m)
    n = len(b)
    if n < ICMP_IPSIZE + ICMP_HDRSIZE:
        return 0
    p = <unsigned char*>PyByteArray_AS_STRING(b)
    if icmptype(p + ICMP_IPSIZE) <= Maxtype:
        self.out_[icmptype(p + ICMP_IPSIZE)] += 1
    ra = c.remoteaddr
    la = c.localaddr
    ip4area(p, IP_ICMPPROTO, bp(la) + 12, bp(ra) + 12)
    icmpsetid(p + ICMP_IPSIZE, c.lport)
    icmpsetcsum(p + ICMP_IPSIZE, n - ICMP_IPSIZE)
    self.stats_[OutMsgs] += 1
    self.f.ip.ipoput(V4, b, c.ttl, c.tos, None)
    return 0


cdef int icmpkick6(Icmp6 self, Conv c, object m) except -1:
    # icmpkick6
    cdef unsigned char *p
    if c.ptcl == 6:
        # headers: 8 unused bytes, local address, remote address
        if len(m) < 40:
            return 0
        laddr = bytes(m[8:24])
        raddr = bytes(m[24:40])
        b = bytearray(40) + bytearray(m[40:])
    else:
        b = bytearray(m)
    if len(b) < IPICMPSZ:
        return 0
    p = <unsigned char*>PyByteArray_AS_STRING(b)
    if c.ptcl == 6:
        ip6area(p, bp(laddr), bp(raddr))
    else:
        ra = c.remoteaddr
        la = c.localaddr
        ip6area(p, bp(la), bp(ra))
        icmpsetid(p + 40, c.lport)
    set_cksum6(b)
    if icmptype(p + 40) <= Maxtype6:
        self.out_[icmptype(p + 40)] += 1
    self.f.ip.ipoput(V6, b, c.ttl, c.tos, None)
    return 0


cdef class IcmpBase(Proto):
    """What icmp.c gives ICMP and icmp6.c takes from it: the datagram
    conversations (create, connect, announce, state, close) and the
    bypass write queue.  kick sends one message written (icmpkick,
    icmpkick6)."""

    def __init__(self, Fs f, str name, int ipproto, int nc, list statnames):
        Proto.__init__(self, f, name, ipproto, nc)
        memset(self.stats_, 0, sizeof(self.stats_))
        memset(self.in_, 0, sizeof(self.in_))
        memset(self.out_, 0, sizeof(self.out_))
        self.statnames_ = statnames

    # -- statistics --

    def stat(self, str name):
        return self.stats_[self.statnames_.index(name)]

    def typecounts(self, int type):
        """(in, out) for a message type (ICMP 0..18, ICMPv6 0..137)."""
        if type < 0 or type > Maxtype6:
            raise IndexError(type)
        return (self.in_[type], self.out_[type])

    cdef int kick(self, Conv c, object m) except -1:
        return 0

    cdef advisecall(self, int recid, bytes src, bytes dst, str msg):
        # icmpadvise's search: the conversation that sent the message (its
        # local port is the identifier) hangs up with msg
        cdef Conv s
        for s in self.conv:
            if s.inuse > 0 and s.lport == recid and s.localaddr == src and s.remoteaddr == dst:
                if not s.ignoreadvice:
                    s.rq.hangup(msg)
                    s.wq.hangup(msg)
                    self.f.wake(s)
                return

    cpdef pcreate(self, Conv c):
        self.openqueues(c, 64 * 1024, 64 * 1024, True)

    cpdef int pconnect(self, Conv c, list argv) except -1:
        self.stdconnect(c, argv)
        self.connected(c, None)
        return 0

    cpdef int pannounce(self, Conv c, list argv, str user) except -1:
        self.stdannounce(c, argv, user)
        self.connected(c, None)
        return 0

    cpdef str pstate(self, Conv c):
        return "%s qin %d qout %d\n" % ("Datagram",
                                        (<Queue>c.rq).qlen() if c.rq is not None else 0,
                                        (<Queue>c.wq).qlen() if c.wq is not None else 0)

    cpdef pclose(self, Conv c):
        c.rq.close()
        c.wq.close()
        c.localaddr = IPnoaddr
        c.remoteaddr = IPnoaddr
        c.lport = 0

    cpdef pkick(self, Conv c):
        # anything queued on wq by a caller that bypassed write()
        while (<Queue>c.wq).qlen() > 0:
            m = c.wq.read(1 << 16)
            if not m:
                break
            self.kick(c, m)

    cpdef Py_ssize_t write(self, Conv c, object data) except -1:
        """A write to data: one message sent at once, in chunks of at
        most 64 KiB (the write queue is a bypass queue: never blocks,
        checks no hangup, so a conversation hung up by an ICMP error
        still sends)."""
        cdef Py_ssize_t n, off = 0, m
        if c is None:
            raise TypeError("no conversation")
        mv = memoryview(data).cast("B")
        n = len(mv)
        while True:
            m = n - off
            if m > 64 * 1024:
                m = 64 * 1024
            self.kick(c, mv[off:off + m])
            off += m
            if off >= n:
                break
        return n


cdef class Icmp(IcmpBase):
    """ICMP (IP protocol 1): /net/icmp."""

    def __init__(self, Fs f, int nc=128):
        IcmpBase.__init__(self, f, "icmp", IP_ICMPPROTO, nc, statnames)

    cpdef str pstats(self):
        cdef int i
        out = ["%s: %d\n" % (statnames[i], self.stats_[i]) for i in range(6)]
        for i in range(Maxtype + 1):
            out.append("%s: %d %d\n" % (icmpnames[i] if icmpnames[i] is not None else str(i),
                                        self.in_[i], self.out_[i]))
        return "".join(out)

    # -- conversations: IcmpBase's --

    cdef int kick(self, Conv c, object m) except -1:
        return icmpkick(self, c, m)

    # -- sending errors --

    cdef int icmpsend(self, object ifc, object pkt, int type, int code, int arg) except -1:
        # icmp.c icmpsend: type/code/arg about datagram pkt received on ifc
        cdef bytes b = bytes(pkt)
        cdef Py_ssize_t osz = len(b), sz
        cdef unsigned char *q
        cdef IpLayer ip = self.f.ip
        if osz < ICMP_IPSIZE:
            return 0
        src, dst = addrs16(b, 1)
        if not self.ip4reply(dst) or not self.ip4reply(src):
            return 0
        ia = ip.ipv4local(ifc, src)
        if ia is None:
            return 0
        if self.f.log.mask & Logicmp:
            self.f.log.log(Logicmp, "icmpsend %s (%d) %d ia %s -> src %s dst %s\n" % (
                icmpnames[type], type, code, fmtip(ia), fmtip(src), fmtip(dst)))
        sz = min(ICMP_IPSIZE + ICMP_HDRSIZE + osz, v4MINTU)
        nb = bytearray(sz)
        q = <unsigned char*>PyByteArray_AS_STRING(nb)
        ip4area(q, IP_ICMPPROTO, bp(ia) + 12, ip4src(bp(b)))
        icmpput(q + ICMP_IPSIZE, type, code, <unsigned int>arg & 0xffff)
        memcpy(q + ICMP_IPSIZE + ICMP_HDRSIZE, bp(b), sz - (ICMP_IPSIZE + ICMP_HDRSIZE))
        icmpsetcsum(q + ICMP_IPSIZE, sz - ICMP_IPSIZE)
        if type <= Maxtype:
            self.out_[type] += 1
        ip.ipoput(V4, nb, MAXTTL, DFLTTOS, None)
        return 0

    cdef bint ip4reply(self, bytes a16):
        # a source or destination we may answer: not multicast or broadcast
        cdef int t
        if 0xe0 <= a16[12] < 0xf0:
            return 0
        t = self.f.ip.ipforme(a16)
        return t == 0 or t == Runi

    cdef bint ip4me(self, bytes a16):
        if 0xe0 <= a16[12] < 0xf0:
            return 0
        return self.f.ip.ipforme(a16) == Runi

    def icmpnonet(self, ifc, pkt):
        """Destination unreachable, net unreachable (code 0): sent by the
        IP layer for a datagram it has no route to forward (net9; devip
        drops it)."""
        self.icmpsend(ifc, pkt, Unreachable, 0, 0)

    def icmpnohost(self, ifc, pkt):
        """Destination unreachable, host unreachable (code 1)."""
        self.icmpsend(ifc, pkt, Unreachable, 1, 0)

    def icmpnoproto(self, ifc, pkt):
        """Destination unreachable, protocol unreachable (code 2): sent by
        the IP layer for an unknown protocol (net9; devip stays silent)."""
        self.icmpsend(ifc, pkt, Unreachable, 2, 0)

    def icmpnoconv(self, ifc, pkt):
        """Destination unreachable, port unreachable (code 3): udp's."""
        self.icmpsend(ifc, pkt, Unreachable, 3, 0)

    def icmpcantfrag(self, ifc, pkt, int mtu):
        self.icmpsend(ifc, pkt, Unreachable, 4, mtu)

    def icmpttlexceeded(self, ifc, pkt):
        self.icmpsend(ifc, pkt, TimeExceed, 0, 0)

    # -- input --

    cpdef int rcv(self, object pkt, object ifc=None) except -1:
        """icmpiput: one ICMP datagram (20-byte IP header first)."""
        cdef bytes b = bytes(pkt)
        cdef const unsigned char *p = bp(b)
        cdef Py_ssize_t n = len(b)
        cdef int type, code
        self.stats_[InMsgs] += 1
        if n < ICMP_IPSIZE + ICMP_HDRSIZE:
            self.stats_[InErrors] += 1
            self.stats_[HlenErrs] += 1
            if self.f.log.mask & Logicmp:
                self.f.log.log(Logicmp, "icmp hlen %d\n" % n)
            return 0
        if icmpcsum(p + ICMP_IPSIZE, n - ICMP_IPSIZE) != 0:
            self.stats_[InErrors] += 1
            self.stats_[CsumErrs] += 1
            if self.f.log.mask & Logicmp:
                self.f.log.log(Logicmp, "icmp checksum error\n")
            return 0
        type = icmptype(p + ICMP_IPSIZE)
        code = icmpcode(p + ICMP_IPSIZE)
        if self.f.log.mask & Logicmp:
            self.f.log.log(Logicmp, "icmpiput %s (%d) %d\n" % (
                icmpnames[type] if type <= Maxtype and icmpnames[type] else "", type, code))
        if type <= Maxtype:
            self.in_[type] += 1
        if type == EchoRequest:
            r = self.mkechoreply(b)
            if r is not None:
                self.out_[EchoReply] += 1
                self.f.ip.ipoput(V4, r, MAXTTL, DFLTTOS, None)
            return 0
        if type == TimeExceed:
            if code == 0:
                return self.advise4(b, "ttl exceeded at %s" % fmtip(addrs16(b, 1)[0]))
            self.goticmpkt(b)
            return 0
        if type == Unreachable:
            if code < len(unreachcode):
                msg = unreachcode[code]
            else:
                src, dst = addrs16(b, 1)
                msg = "unreachable %s -> %s code %d" % (fmtip(src), fmtip(dst), code)
            return self.advise4(b, msg)
        self.goticmpkt(b)
        return 0

    cdef int advise4(self, bytes b, str msg) except -1:
        cdef bytes inner = b[ICMP_IPSIZE + ICMP_HDRSIZE:]
        cdef const unsigned char *p = bp(inner)
        cdef Proto pr
        if len(inner) < MinAdvise:
            self.stats_[LenErrs] += 1
            return 0
        # advise() does not expect options; only the first fragment
        if (ipver(p) == 4 and ip4hl(p) == ICMP_IPSIZE and (ip4frag(p) & IP_FO) == 0
                and ip4csum(p) == 0):
            pr = <Proto>self.f.ipproto[ip4proto(p)]
            if pr is not None:
                if self.f.log.mask & Logicmp:
                    self.f.log.log(Logicmp, "advising %s!%s -> %s: %s\n" % (
                        pr.name, fmtip(addrs16(inner, 1)[0]), fmtip(addrs16(inner, 1)[1]), msg))
                pr.advise(inner, msg)
                return 0
        self.goticmpkt(b)
        return 0

    cdef object mkechoreply(self, bytes b):
        cdef unsigned char *q
        src, dst = addrs16(b, 1)
        if not self.ip4me(dst) or not self.ip4reply(src):
            return None
        r = bytearray(b)
        q = <unsigned char*>PyByteArray_AS_STRING(r)
        ip4area(q, ip4proto(q), ip4dst(bp(b)), ip4src(bp(b)))
        q[ICMP_IPSIZE] = EchoReply
        icmpsetcsum(q + ICMP_IPSIZE, len(r) - ICMP_IPSIZE)
        return r

    cdef goticmpkt(self, bytes b):
        # to the conversations whose local port is the identifier
        cdef const unsigned char *p = bp(b)
        cdef int recid = icmpid(p + ICMP_IPSIZE)
        cdef Conv s
        src, dst = addrs16(b, 1)
        for s in self.conv:
            if s.inuse > 0 and s.lport == recid and (s.localaddr == dst or s.remoteaddr == src):
                if (<Queue>s.rq).qlen() < (<Queue>s.rq).limit:
                    (<Queue>s.rq).qpass(p, len(b))
                    self.f.wake(s)

    cpdef advise(self, object pkt, str msg):
        """icmpadvise: an error about an ICMP message we sent hangs up the
        conversation it came from."""
        cdef bytes b = bytes(pkt)
        if len(b) < ICMP_IPSIZE + ICMP_HDRSIZE:
            return
        src, dst = addrs16(b, 1)
        self.advisecall(icmpid(bp(b) + ICMP_IPSIZE), src, dst, msg)


cdef class Icmp6(IcmpBase):
    """ICMPv6 (IP protocol 58): /net/icmpv6."""

    def __init__(self, Fs f, int nc=16):
        IcmpBase.__init__(self, f, "icmpv6", 58, nc, statnames6)

    cpdef str pstats(self):
        cdef int i
        out = ["%s: %d\n" % (statnames6[i], self.stats_[i]) for i in range(12)]
        for i in range(Maxtype6 + 1):
            if icmpnames6[i] is not None:
                out.append("%s: %d %d\n" % (icmpnames6[i], self.in_[i], self.out_[i]))
        return "".join(out)

    # -- conversations: icmp.c's (IcmpBase), plus "headers" --

    cpdef pcreate(self, Conv c):
        IcmpBase.pcreate(self, c)
        c.ptcl = 0

    cpdef int pctl(self, Conv c, list argv) except -1:
        if len(argv) == 1 and argv[0] == "headers":
            c.ptcl = 6
            return 0
        raise Net9Error(errors.Eunknownctl)

    cpdef pclose(self, Conv c):
        c.ptcl = 0
        IcmpBase.pclose(self, c)

    cdef int kick(self, Conv c, object m) except -1:
        return icmpkick6(self, c, m)

    # -- sending errors --

    cdef int icmpsend6(self, object ifc, object pkt, int type, int code, unsigned int arg) except -1:
        # icmp6.c icmpsend6
        cdef bytes b = bytes(pkt)
        cdef Py_ssize_t osz = len(b), sz
        cdef unsigned char *q
        cdef IpLayer ip = self.f.ip
        if osz < 40:
            return 0
        if isv6mcast(ip6dst(bp(b))) or isv6mcast(ip6src(bp(b))):
            return 0
        src, dst = addrs16(b, 0)
        ia = ip.ipv6local(ifc, src)
        if ia is None:
            return 0
        if self.f.log.mask & Logicmp:
            self.f.log.log(Logicmp, "icmpsend6 %s (%d) %d ia %s -> src %s dst %s\n" % (
                icmpnames6[type], type, code, fmtip(ia), fmtip(src), fmtip(dst)))
        sz = min(IPICMPSZ + osz, v6MINTU)
        nb = bytearray(sz)
        q = <unsigned char*>PyByteArray_AS_STRING(nb)
        ip6area(q, bp(ia), ip6src(bp(b)))
        icmpput(q + 40, type, code, arg)
        memcpy(q + IPICMPSZ, bp(b), sz - IPICMPSZ)
        set_cksum6(nb)
        self.out_[type] += 1
        ip.ipoput(V6, nb, MAXTTL, DFLTTOS, None)
        return 0

    def icmpnoroute6(self, ifc, pkt):
        """Destination unreachable, no route to destination (code 0):
        sent by the IP layer for a datagram it has no route to forward
        (net9; devip drops it)."""
        self.icmpsend6(ifc, pkt, UnreachableV6, 0, 0)

    def icmpnohost6(self, ifc, pkt):
        self.icmpsend6(ifc, pkt, UnreachableV6, 3, 0)

    def icmpnoconv6(self, ifc, pkt):
        self.icmpsend6(ifc, pkt, UnreachableV6, 4, 0)

    def icmpttlexceeded6(self, ifc, pkt):
        self.icmpsend6(ifc, pkt, TimeExceedV6, 0, 0)

    def icmppkttoobig6(self, ifc, pkt, unsigned int mtu):
        self.icmpsend6(ifc, pkt, PacketTooBigV6, 0, mtu)

    def icmpparamprob6(self, ifc, pkt, int code, unsigned int pointer):
        """Parameter problem (code 1: unrecognised next header at
        offset pointer): sent by the IP layer (net9; devip stays silent)."""
        self.icmpsend6(ifc, pkt, ParamProblemV6, code, pointer)

    # -- input --

    cdef bint valid(self, const unsigned char *p, Py_ssize_t n):
        # icmp6.c valid (RFC 2461's checks for neighbour discovery)
        cdef int type, sz, osz
        cdef bint unsp
        if n < IPICMPSZ:
            self.stats_[HlenErrs] += 1
            self.stats_[InErrors] += 1
            return 0
        if ip6nh(p) != 58:
            self.stats_[InErrors] += 1
            return 0
        if cksum6(p, n) != 0:
            self.stats_[CsumErrs] += 1
            self.stats_[InErrors] += 1
            if self.f.log.mask & Logicmp:
                self.f.log.log(Logicmp, "icmp checksum error\n")
            return 0
        type = icmptype(p + 40)
        if type == NbrSolicit or type == NbrAdvert or type == RouterAdvert \
                or type == RouterSolicit or type == RedirectV6:
            if ip6hop(p) != MAXTTL:
                self.stats_[HoplimErrs6] += 1
                self.stats_[InErrors] += 1
                return 0
            if icmpcode(p + 40) != 0:
                self.stats_[IcmpCodeErrs6] += 1
                self.stats_[InErrors] += 1
                return 0
            if type == NbrSolicit or type == NbrAdvert:
                if n < IPICMPSZ + 16:
                    self.stats_[HlenErrs] += 1
                    self.stats_[InErrors] += 1
                    return 0
                if isv6mcast(p + IPICMPSZ):
                    self.stats_[TargetErrs6] += 1
                    self.stats_[InErrors] += 1
                    return 0
                # optexsts: a payload longer than 24 bytes carries an option
                if ip6plen(p) > 24 and (n < IPICMPSZ + 18 or p[IPICMPSZ + 17] == 0):
                    self.stats_[OptlenErrs6] += 1
                    self.stats_[InErrors] += 1
                    return 0
                if type == NbrSolicit and memcmp(ip6src(p), <const char*>IPnoaddr, 16) == 0:
                    if (memcmp(ip6dst(p), b"\xff\x02\0\0\0\0\0\0\0\0\0\x01\xff", 13) != 0
                            or ip6plen(p) > 24):
                        self.stats_[AddrmxpErrs6] += 1
                        self.stats_[InErrors] += 1
                        return 0
                if type == NbrAdvert and isv6mcast(ip6dst(p)) and (nhgets(p + 44) & 0x40):
                    self.stats_[AddrmxpErrs6] += 1
                    self.stats_[InErrors] += 1
                    return 0
            elif type == RouterAdvert:
                if n - 40 < 16:
                    self.stats_[HlenErrs] += 1
                    self.stats_[InErrors] += 1
                    return 0
                if not islinklocal(ip6src(p)):
                    self.stats_[RouterAddrErrs6] += 1
                    self.stats_[InErrors] += 1
                    return 0
                sz = IPICMPSZ + 8
                while sz + 8 <= n:
                    osz = p[sz + 1]
                    if osz <= 0:
                        self.stats_[OptlenErrs6] += 1
                        self.stats_[InErrors] += 1
                        return 0
                    sz += 8 * osz
            elif type == RouterSolicit:
                if n - 40 < 8:
                    self.stats_[HlenErrs] += 1
                    self.stats_[InErrors] += 1
                    return 0
                unsp = memcmp(ip6src(p), <const char*>IPnoaddr, 16) == 0
                sz = IPICMPSZ + 8
                while sz + 8 <= n:
                    osz = p[sz + 1]
                    if osz <= 0 or (unsp and p[sz] == 1):
                        self.stats_[OptlenErrs6] += 1
                        self.stats_[InErrors] += 1
                        return 0
                    sz += 8 * osz
        return 1

    cpdef int rcv(self, object pkt, object ifc=None) except -1:
        """icmpiput6: one ICMPv6 datagram received on ifc."""
        cdef bytes b = bytes(pkt)
        cdef const unsigned char *p = bp(b)
        cdef Py_ssize_t n = len(b)
        cdef int type, code
        # (icmp6.c counts no InMsgs)
        if not self.valid(p, n):
            return 0
        type = icmptype(p + 40)
        code = icmpcode(p + 40)
        if type > Maxtype6:
            return 0
        self.in_[type] += 1
        if type == EchoRequestV6:
            r = self.mkechoreply6(b, ifc)
            if r is not None:
                # sic: icmp6.c counts the reply under EchoReply (0)
                self.out_[EchoReply] += 1
                self.f.ip.ipoput(V6, r, MAXTTL, DFLTTOS, None)
            return 0
        if type == UnreachableV6:
            msg = unreachcode6[code] if code < len(unreachcode6) else unreachcode6[7]
            return self.advise6(ifc, b, msg)
        if type == TimeExceedV6:
            if code == 0:
                return self.advise6(ifc, b, "ttl exceeded at %s" % fmtip(addrs16(b, 0)[0]))
            if code == 1:
                return self.advise6(ifc, b, "frag time exceeded at %s" % fmtip(addrs16(b, 0)[0]))
            self.goticmpkt6(b, 0, ifc)
            return 0
        if type == PacketTooBigV6:
            return self.advise6(ifc, b, "packet too big for %d mtu at %s" % (icmprest(p + 40), fmtip(addrs16(b, 0)[0])))
        if type == RouterAdvert or type == RouterSolicit:
            self.goticmpkt6(b, type, ifc)
            return 0
        if type == NbrSolicit or type == NbrAdvert:
            # no neighbour discovery: the TUN link is point to point
            return 0
        self.goticmpkt6(b, 0, ifc)
        return 0

    cdef int advise6(self, object ifc, bytes b, str msg) except -1:
        cdef bytes inner = b[IPICMPSZ:]
        cdef const unsigned char *p
        cdef Proto pr
        if len(inner) < MinAdvise6:
            self.stats_[LenErrs] += 1
            return 0
        p = bp(inner)
        # get rid of a fragment header if this is the first fragment
        if ipver(p) == 6 and ip6nh(p) == FH and len(inner) >= MinAdvise6 + IP6FHDR:
            if (ip6fragoff(p + 40) & ~7) == 0:
                x = bytearray(inner[:40]) + inner[40 + IP6FHDR:]
                ip6setlen(<unsigned char*>PyByteArray_AS_STRING(x), len(x) - 40, p[40])
                inner = bytes(x)
                p = bp(inner)
        if ipver(p) == 6 and ip6nh(p) != FH:
            pr = <Proto>self.f.ipproto[ip6nh(p)]
            if pr is not None:
                if self.f.log.mask & Logicmp:
                    self.f.log.log(Logicmp, "advising %s!%s -> %s: %s\n" % (
                        pr.name, fmtip(addrs16(inner, 0)[0]), fmtip(addrs16(inner, 0)[1]), msg))
                pr.advise(inner, msg)
                return 0
        self.goticmpkt6(b, 0, ifc)
        return 0

    cdef object mkechoreply6(self, bytes b, object ifc):
        cdef unsigned char *q
        cdef const unsigned char *p = bp(b)
        if isv6mcast(ip6src(p)):
            return None
        addr, dst = addrs16(b, 0)
        if not isv6mcast(ip6dst(p)):
            src = dst
        else:
            src = self.f.ip.ipv6local(ifc, addr)
            if src is None:
                return None
        r = bytearray(b)
        q = <unsigned char*>PyByteArray_AS_STRING(r)
        ip6addrs(q, bp(src), bp(addr))
        q[40] = EchoReplyV6
        set_cksum6(r)
        return r

    cdef goticmpkt6(self, bytes b, int muxkey, object ifc):
        cdef const unsigned char *p = bp(b)
        cdef int recid
        cdef Conv s
        src, dst = addrs16(b, 0)
        if muxkey == 0:
            recid = icmpid(p + 40)
            addr = src
        else:
            recid = muxkey
            addr = dst
        for s in self.conv:
            if s.inuse > 0 and s.lport == recid and (s.localaddr == dst or s.remoteaddr == addr):
                # a conversation on a link-local address hears only its link
                if islinklocal(s.laddr) and not self.f.ip.iplocalonifc(ifc, s.localaddr):
                    continue
                if (<Queue>s.rq).qlen() < (<Queue>s.rq).limit:
                    (<Queue>s.rq).qpass(p, len(b))
                    self.f.wake(s)

    cpdef advise(self, object pkt, str msg):
        """icmpadvise6."""
        cdef bytes b = bytes(pkt)
        if len(b) < IPICMPSZ:
            return
        src, dst = addrs16(b, 0)
        self.advisecall(icmpid(bp(b) + 40), src, dst, msg)
