# cython: language_level=3
"""UDP: a port of 9front's sys/src/9/ip/udp.c, sans I/O.

UdpProto(fs) registers as IP protocol 17 and serves /net/udp through
devip's generic layer (conv.pyx): connect and announce are Fsstdconnect
and Fsstdannounce; one read returns one datagram, truncated to the read
size (a message queue of 512 KiB; datagrams arriving on a full queue are
dropped); one write sends one datagram at once, never blocking, whatever
the write queue's state (udp.c's write queue is a bypass queue), and a
write longer than 64 KiB is split like qwrite does.

An announced conversation without "headers" creates a conversation per
remote address and port, queued for listen (Fsnewcall, at most 10
waiting); with "headers" it receives every datagram itself, each prefixed
by the 52-byte header of devip.md section 4.2, and each write starts with
that header saying where to send.  A datagram for no conversation is
counted (NoPorts) and answered with ICMP port unreachable through
net9.icmp (icmpnoconv, icmpnoconv6).  ICMP errors about a datagram a
connected conversation sent hang up its queues with the ICMP text
(udpadvise) unless it said "ignoreadvice".

The reference is 9front's current udp.c (source address remembered per
conversation, "-0" checksum for a computed zero, replies to multicast
and broadcast from the interface's unicast address).  Departures are
marked DEVIATION.
"""

from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memcmp, memset
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytearray cimport PyByteArray_FromStringAndSize, PyByteArray_AS_STRING
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING

from net9 import errors
from net9.errors import Net9Error
from net9.ipaux import fmtip
from net9.conv cimport (Conv, Proto, Fs, IpLayer, V4, V6, Idle, Announced, Connected,
                        IPmatchexact)
from net9.qio cimport Queue
from net9.netlog cimport Logudp, Logudpmsg
from net9.iproute cimport Runi, Rbcast, Rmulti
from net9.byteorder cimport nhgets, hnputs, isv4c, v4tov6c
from net9.wire cimport ipput, udpput, l4csum, l4setcsum, ipver, ip4hl, ipaddrs

cdef bytes IPnoaddr = b"\0" * 16
cdef unsigned char noaddr[16]
memset(noaddr, 0, 16)
cdef bytes V4PFX = b"\0" * 10 + b"\xff\xff"

statnames = ("InDatagrams", "NoPorts", "InErrors", "OutDatagrams")

CONST = dict(IP_UDPPROTO=IP_UDPPROTO, UDP_USEAD7=UDP_USEAD7, UDP_RQLIMIT=UDP_RQLIMIT,
             Maxatomic=Maxatomic)


cdef inline bytes b16(const unsigned char *a):
    return PyBytes_FromStringAndSize(<const char*>a, 16)


cdef class Udpcb:
    def __cinit__(self):
        memset(self.srcip, 0, 16)

    property srcaddr:
        """The source address this conversation's datagrams carry."""
        def __get__(self):
            return b16(self.srcip)


cdef int findlocal(IpLayer ip, unsigned char *out, const unsigned char *raddr) except -1:
    # findlocalip(f, out, raddr)
    cdef bytes a = ip.findlocalip(b16(raddr))
    if a is not None and len(a) == 16:
        memcpy(out, <const char*>a, 16)
    else:
        memset(out, 0, 16)
    return 0


cdef bint iflocal(IpLayer ip, object ifc, unsigned char *out, const unsigned char *remote) except -1:
    # ipv6local(ifc, out, 0, remote): ifc's address best for remote
    cdef bytes a = ip.ipv6local(ifc, b16(remote))
    if a is None or len(a) != 16:
        return 0
    memcpy(out, <const char*>a, 16)
    return 1


cdef class UdpProto(Proto):
    """UDP (IP protocol 17): /net/udp."""

    def __cinit__(self):
        self.scratch = <unsigned char*>malloc(UDP_USEAD7 + 65536)
        if self.scratch == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.scratch)
        self.scratch = NULL

    def __init__(self, Fs f, int nc=1024):
        # udpinit: nc = Nchans (1024 in udp.c's kernel)
        Proto.__init__(self, f, "udp", IP_UDPPROTO, nc)
        self.portunreach = 1

    # ---- statistics ----

    cpdef str pstats(self):
        # udpstats
        return "InDatagrams: %d\nNoPorts: %d\nInErrors: %d\nOutDatagrams: %d\n" % (
            self.InDatagrams, self.NoPorts, self.InErrors, self.OutDatagrams)

    def stat(self, str name):
        """One counter: the four of the stats file, and udp.c's non-MIB
        CsumErrs and LenErrs, and net9's QFull (datagrams dropped on a
        full read queue)."""
        if name == "InDatagrams":
            return self.InDatagrams
        if name == "NoPorts":
            return self.NoPorts
        if name == "InErrors":
            return self.InErrors
        if name == "OutDatagrams":
            return self.OutDatagrams
        if name == "CsumErrs":
            return self.csumerr
        if name == "LenErrs":
            return self.lenerr
        if name == "QFull":
            return self.qfull
        raise KeyError(name)

    def ucb(self, Conv c):
        """The conversation's Udpcb (srcaddr)."""
        return c.ptcl

    # ---- conversations ----

    cpdef pcreate(self, Conv c):
        # udpcreate: a 512 KiB message queue to read; the write queue is
        # bypassed (write() sends at once), so it stays empty
        self.openqueues(c, UDP_RQLIMIT, 64 * 1024, True)
        c.ptcl = Udpcb()

    cpdef int pconnect(self, Conv c, list argv) except -1:
        # udpconnect: Fsconnected even on failure (the conversation is
        # left Connected with cerr set, unusable for another connect)
        try:
            self.stdconnect(c, argv)
        except Net9Error as e:
            self.connected(c, str(e))
            raise
        self.connected(c, None)
        memcpy((<Udpcb>c.ptcl).srcip, <const char*>c.localaddr, 16)
        self.iphtadd(c)
        return 0

    cpdef int pannounce(self, Conv c, list argv, str user) except -1:
        self.stdannounce(c, argv, user)
        self.connected(c, None)
        memcpy((<Udpcb>c.ptcl).srcip, <const char*>c.localaddr, 16)
        self.iphtadd(c)
        return 0

    cpdef int pctl(self, Conv c, list argv) except -1:
        # udpctl
        if len(argv) == 1:
            if argv[0] == "hangup":
                c.rq.hangup(None)
                c.wq.hangup(None)
                return 0
            if argv[0] == "headers":
                c.headers = 1           # udp.c: ucb->headers = 7
                return 0
        raise Net9Error(errors.Eunknownctl)

    cpdef str pstate(self, Conv c):
        # udpstate
        return "%s qin %d qout %d\n" % ("Open" if c.inuse else "Closed",
                                        (<Queue>c.rq).qlen() if c.rq is not None else 0,
                                        (<Queue>c.wq).qlen() if c.wq is not None else 0)

    cpdef pclose(self, Conv c):
        # udpclose
        self.iphtrem(c)
        c.state = Idle
        c.rq.close()
        c.wq.close()
        c.eq.close()
        c.lport = 0
        c.rport = 0
        c.localaddr = IPnoaddr
        c.remoteaddr = IPnoaddr
        c.headers = 0
        memset((<Udpcb>c.ptcl).srcip, 0, 16)

    # ---- output ----

    cpdef Py_ssize_t write(self, Conv c, object data) except -1:
        """A write to data: sent at once as one datagram (several for more
        than 64 KiB, qwrite's chunking); never blocks and never fails,
        even on a hung-up conversation (udp.c's write queue is a bypass
        queue, which checks no hangup)."""
        if c is None:
            raise TypeError("no conversation")
        cdef Py_buffer view
        cdef Py_ssize_t n, off = 0, m
        cdef const unsigned char *p
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            p = <const unsigned char*>view.buf
            n = view.len
            while True:
                # qwrite: do { ... } while(sofar < len): a zero-length
                # write is one empty datagram
                m = n - off
                if m > Maxatomic:
                    m = Maxatomic
                self.udpkick(c, p + off, m)
                off += m
                if off >= n:
                    break
        finally:
            PyBuffer_Release(&view)
        return n

    cdef int udpkick(self, Conv c, const unsigned char *p, Py_ssize_t n) except -1:
        cdef IpLayer ip = self.f.ip
        cdef unsigned char raddr[16]
        cdef unsigned char laddr[16]
        cdef int rport, version, t
        cdef Py_ssize_t tot, ulen
        cdef unsigned char *q
        cdef unsigned char *u
        cdef object rh
        if c.headers:
            # user-specified addresses
            if n < UDP_USEAD7:
                return 0
            memcpy(raddr, p, 16)
            memcpy(laddr, p + 16, 16)
            t = ip.forme(laddr)
            if t != Runi:
                if ((t == Rmulti or t == Rbcast) and memcmp(p + 32, noaddr, 16) != 0
                        and ip.forme(p + 32) == Runi
                        and ip.route(V4 if isv4c(raddr) else V6, b16(raddr), b16(p + 32)) is not None):
                    # use the interface's address for a bcast/mcast reply
                    memcpy(laddr, p + 32, 16)
                else:
                    # pick the interface closest to the destination
                    findlocal(ip, laddr, raddr)
            rport = nhgets(p + 48)          # the local port field is ignored
            p += UDP_USEAD7
            n -= UDP_USEAD7
            version = V4 if (isv4c(laddr) or memcmp(laddr, noaddr, 16) == 0) else V6
            rh = None
        else:
            memcpy(raddr, c.raddr, 16)
            memcpy(laddr, (<Udpcb>c.ptcl).srcip, 16)
            rport = c.rport
            # convipvers
            if (isv4c(raddr) and isv4c(c.laddr)) or memcmp(raddr, noaddr, 16) == 0:
                version = V4
            else:
                version = V6
            rh = c
        self.OutDatagrams += 1
        if memcmp(raddr, noaddr, 16) == 0 or (isv4c(raddr) and memcmp(raddr + 12, noaddr, 4) == 0):
            # DEVIATION: udp.c sends a datagram with no destination to
            # 0.0.0.0!0 and counts on ip to find no route for it; with a
            # default route it would leave the host, so drop it here
            return 0
        ulen = n + UDP_UDPHDR_SZ
        b = PyByteArray_FromStringAndSize(NULL, (UDP4_IPHDR_SZ if version == V4 else UDP6_IPHDR_SZ) + ulen)
        q = <unsigned char*>PyByteArray_AS_STRING(b)
        u = ipput(q, version == V4, c.tos, c.ttl, IP_UDPPROTO, laddr, raddr, <unsigned int>ulen)
        udpput(u, c.lport, rport, <unsigned int>ulen)
        memcpy(u + UDP_UDPHDR_SZ, p, n)
        # a computed 0 is sent as 0xffff (-0)
        l4setcsum(q, version == V4, IP_UDPPROTO, u, ulen, 6, 1)
        ip.ipoput(version, b, c.ttl, c.tos, rh)
        return 0

    # ---- input ----

    cpdef int rcv(self, object pkt, object ifc=None) except -1:
        """udpiput: one IP datagram (bytes-like) carrying UDP, IP header
        first (v4 options and v6 extension headers already stripped),
        received on ifc."""
        cdef Py_buffer view
        PyObject_GetBuffer(pkt, &view, PyBUF_SIMPLE)
        try:
            return self.udpiput(<const unsigned char*>view.buf, view.len, pkt, ifc)
        finally:
            PyBuffer_Release(&view)

    cdef int udpiput(self, const unsigned char *p, Py_ssize_t n, object pkt, object ifc) except -1:
        cdef int version, hl, ulen, lport, rport, t
        cdef unsigned char raddr[16]
        cdef unsigned char laddr[16]
        cdef unsigned char srcip[16]
        cdef const unsigned char *u
        cdef Conv c, nc
        cdef Queue rq
        cdef Py_ssize_t dlen
        cdef unsigned char *s
        cdef IpLayer ip = self.f.ip

        self.InDatagrams += 1
        if n >= 1 and ipver(p) == 6:
            version = V6
            hl = UDP6_IPHDR_SZ
        else:
            version = V4
            hl = ip4hl(p) if n >= 1 else 0
        # DEVIATION: udp.c trusts the IP layer and the udp length field;
        # here a datagram too short for the headers, or whose udp length
        # is below 8 or beyond the datagram, is an input error (udp.c's
        # checksum over the claimed length fails for them in practice)
        if hl < UDP4_IPHDR_SZ or n < hl + UDP_UDPHDR_SZ:
            self.InErrors += 1
            self.lenerr += 1
            if self.f.log.mask & Logudp:
                self.f.log.log(Logudp, "udp: short packet %d\n" % n)
            return 0
        u = p + hl
        ulen = nhgets(u + 4)
        if ulen < UDP_UDPHDR_SZ or ulen > n - hl:
            self.InErrors += 1
            self.lenerr += 1
            if self.f.log.mask & Logudp:
                self.f.log.log(Logudp, "udp: len err %d of %d\n" % (ulen, n - hl))
            return 0
        rport = nhgets(u)
        lport = nhgets(u + 2)
        ipaddrs(p, version == V4, raddr, laddr)
        # a zero checksum is "none" over v4; over IPv6 the checksum is
        # mandatory (RFC 8200 8.1): a zero one is an error even where the
        # sum happens to come out right
        if ((version == V6 or nhgets(u + 6) != 0)
                and (l4csum(p, version == V4, IP_UDPPROTO, u, ulen) != 0 or nhgets(u + 6) == 0)):
            self.InErrors += 1
            self.csumerr += 1
            if self.f.log.mask & Logudp:
                self.f.log.log(Logudp, "udp: checksum error %s\n" % fmtip(b16(raddr)))
            return 0

        c = self.iphtlook(raddr, rport, laddr, lport)
        if c is None:
            return self.noconv(pkt, version, ifc)
        if c.state == Announced and not c.headers:
            # a call: a conversation of its own for this remote
            t = ip.forme(laddr)
            if t == Runi:
                memcpy(srcip, laddr, 16)
            elif t == Rmulti or t == Rbcast:
                # receive on the group, transmit from the interface's
                # unicast address
                if not iflocal(ip, ifc, srcip, raddr):
                    # DEVIATION: udp.c leaves srcip unset; use routing
                    findlocal(ip, srcip, raddr)
            else:
                return self.noconv(pkt, version, ifc)
            nc = self.newcall(c, b16(raddr), rport, b16(laddr), lport, version)
            if nc is None:
                if self.f.log.mask & Logudp:
                    self.f.log.log(Logudp, "udp: no call for %s!%d\n" % (fmtip(b16(raddr)), rport))
                return 0
            memcpy((<Udpcb>nc.ptcl).srcip, srcip, 16)
            self.iphtadd(nc)
            c = nc

        dlen = ulen - UDP_UDPHDR_SZ
        if self.f.log.mask & Logudpmsg:
            self.f.log.log(Logudpmsg, "udp: %s.%d -> %s.%d l %d\n" % (
                fmtip(b16(raddr)), rport, fmtip(b16(laddr)), lport, dlen))
        rq = <Queue>c.rq
        # qfull: flow control starts once the queue holds more than its limit
        if rq.qlen() > rq.limit or rq.ishungup():
            self.qfull += 1
            if self.f.log.mask & Logudp:
                self.f.log.log(Logudp, "udp: qfull %s.%d -> %s.%d\n" % (
                    fmtip(b16(raddr)), rport, fmtip(b16(laddr)), lport))
            return 0
        if c.headers:
            # pass the addresses: remote, local, the receiving interface's
            # address closest to the sender, remote port, local port
            s = self.scratch
            memcpy(s, raddr, 16)
            memcpy(s + 16, laddr, 16)
            if ifc is not None:
                if not iflocal(ip, ifc, s + 32, raddr):
                    a = ip.ifcaddr(ifc)
                    if a is not None and len(a) == 16:
                        memcpy(s + 32, <const char*>a, 16)
                    else:
                        memset(s + 32, 0, 16)
            else:
                memcpy(s + 32, laddr, 16)
            hnputs(s + 48, rport)
            hnputs(s + 50, lport)
            memcpy(s + UDP_USEAD7, u + UDP_UDPHDR_SZ, dlen)
            rq.qpass(s, UDP_USEAD7 + dlen)
        else:
            rq.qpass(u + UDP_UDPHDR_SZ, dlen)
        return 0

    cdef int noconv(self, object pkt, int version, object ifc) except -1:
        # no conversation: count, and answer with port unreachable
        cdef const unsigned char *p
        self.NoPorts += 1
        if self.f.log.mask & Logudp:
            b = bytes(pkt)
            p = <const unsigned char*>PyBytes_AS_STRING(b)
            if version == V4:
                self.f.log.log(Logudp, "udp: no conv %s!%d -> %s!%d\n" % (
                    fmtip(V4PFX + b[12:16]), nhgets(p + 20), fmtip(V4PFX + b[16:20]), nhgets(p + 22)))
            else:
                self.f.log.log(Logudp, "udp: no conv %s!%d -> %s!%d\n" % (
                    fmtip(b[8:24]), nhgets(p + 40), fmtip(b[24:40]), nhgets(p + 42)))
        if not self.portunreach:
            return 0
        if version == V4:
            self.f.ip.icmpnoconv(ifc, bytes(pkt))
        else:
            self.f.ip.icmpnoconv6(ifc, bytes(pkt))
        return 0

    # ---- ICMP errors ----

    cpdef advise(self, object pkt, str msg):
        """udpadvise: pkt is the datagram we sent (IP header and at least
        the ports) as quoted by an ICMP error; the connected conversation
        that sent it has its queues hung up with msg."""
        cdef Conv s = self.advconv(pkt)
        if s is None or s.match != IPmatchexact:
            return
        if s.ignoreadvice or s.state == Announced:
            return
        if self.f.log.mask & Logudp:
            self.f.log.log(Logudp, "udp: advise %s!%d: %s\n" % (fmtip(s.remoteaddr), s.rport, msg))
        s.rq.hangup(msg)
        s.wq.hangup(msg)
        self.f.wake(s)
