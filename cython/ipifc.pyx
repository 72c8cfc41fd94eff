# cython: language_level=3
"""net9's interfaces: 9front's devip ipifc.c, sans I/O.

Interfaces are the conversations of the "ipifc" protocol (IpifcProto,
devip's /net/ipifc): Ip.addifc(medium) binds a medium (any object with
name, maxtu, mintu, hsize and transmit(pkt)) to a new one (ipifcbind),
ifc.add(addr, mask) adds an address (ipifcadd) with the routes and self
table entries devip derives from it (addroute, addselfcache).  The self
table (Ipselftab) holds the addresses this host answers to; ipforme reads
it for every datagram.  findlocalip, v4source/v6source and
ipv4local/ipv6local choose source addresses for ip.c and the transports.

Media are bound at run time too: ctl "bind TYPE [DEV ...]" makes the medium
with mediatypes[TYPE](ifc, argv) (the stack registers pkt, loopback and
tun); bindhook/unbindhook tell the stack when one comes and goes.  Each
interface's conversation has two packet queues (PktQueue): pq, what a pkt
medium transmits (read from its data file), and sq, a copy of every
datagram in and out while its snoop file is open.
"""

from libc.string cimport memcpy, memcmp, memset
from libc.stdlib cimport malloc, free
from cpython.bytes cimport PyBytes_FromStringAndSize

from collections import deque

from net9 import errors
from net9.errors import Net9Error
from net9.ipaux import parseip, fmtip, parsecmd
from net9.ipaux import atoi as _atoi
from net9.conv cimport Conv, Proto, Fs, ctlfields
from net9.qio cimport Queue
from net9.byteorder cimport isv4c, v4tov6c
from net9.iproute cimport (Rt, Routetab, Rv4, Rifc, Rptpt, Runi, Rbcast, Rmulti, Rproxy, Rtrans, Rsrc,
                           bp, maskeq, iszero16, addr16, parseipmask, mask16, defmask,
                           maskip, fmtmask, routetype)
from net9.ip cimport Ip, Reasm, MAXTTL, Maxmedia, NHASH

cdef bytes IPnoaddr = b"\0" * 16
cdef bytes V4PFX = b"\0" * 10 + b"\xff\xff"
cdef bytes v4prefix = V4PFX + b"\0\0\0\0"
cdef bytes IPallbits = b"\xff" * 16
cdef bytes IPv4bcast = V4PFX + b"\xff\xff\xff\xff"
cdef bytes IPv4allsys = V4PFX + b"\xe0\x00\x00\x01"
cdef bytes v6loopback = b"\0" * 15 + b"\x01"
cdef bytes v6allnodesN = b"\xff\x01" + b"\0" * 13 + b"\x01"
cdef bytes v6allnodesNmask = b"\xff\xff" + b"\0" * 14
cdef bytes v6allnodesL = b"\xff\x02" + b"\0" * 13 + b"\x01"
cdef bytes v6allnodesLmask = b"\xff\xff" + b"\0" * 14
cdef bytes v6solicitednode = b"\xff\x02" + b"\0" * 9 + b"\x01\xff\0\0\0"
cdef bytes tifc = b"ifc "

# v6addrtype (ipifc.c)
cdef enum:
    unknownv6 = 0
    unspecifiedv6
    linklocalv6
    ulav6
    globalv6

# ipifc.c error texts (devip.md section 10)
Ebadarg = errors.Ebadarg
Ebadip = errors.Ebadip
Eunbound = "interface not bound"
Ebound = "interface already bound"
Eunsupported = "unsupported ctl"
Enotonifc = "address not on this interface"
Enoifc = "interface not found"
Eunknowntype = "unknown interface type"
Eperm = errors.Eperm

# Text formats.  They are module variables, not literals at the point of
# use: Cython 3.0's inlined %-formatting lets a "-" flag leak into later
# fields ("%-4s %3s" % ("a", "0") gives "a    0  "), so it must not see
# them as constants.
_statusfmt = ("device %s maxtu %d sendra %d recvra %d mflag %d oflag %d"
              " maxraint %d minraint %d linkmtu %d reachtime %d rxmitra %d ttl %d routerlt %d"
              " pktin %d pktout %d errin %d errout %d speed %d delay %d\n")
_statuslinefmt = "\t%-40s %-10s %-40s %-12d %-12d\n"
_localfmt = "%-40.40s ->"
_locallinkfmt = " %-40.40s"
_selftabfmt = "%-44.44s %02d %4.4s\n"

# ---------------------------------------------------------------------------
# byte helpers

cdef int comprefixlen(const unsigned char *a, const unsigned char *b, int n) noexcept:
    # ipifc.c comprefixlen: leading bits in common
    cdef int i, r
    cdef unsigned int c
    for i in range(n):
        c = a[i] ^ b[i]
        if c == 0:
            continue
        r = i << 3
        while (c & 0x80) == 0:
            r += 1
            c <<= 1
        return r
    return n << 3

cdef int masklen(const unsigned char *m, int n) noexcept:
    # leading one bits of a mask (counting stops at the first zero bit)
    cdef int i, r = 0
    cdef unsigned int c
    for i in range(n):
        c = m[i]
        if c == 0xff:
            r += 8
            continue
        while c & 0x80:
            r += 1
            c = (c << 1) & 0xff
        break
    return r

cdef int v6addrtype(const unsigned char *a) noexcept:
    if isv4c(a) or iszero16(a):
        return unknownv6
    if ((a[0] == 0xfe and (a[1] & 0xc0) == 0x80)
            or memcmp(a, <const char*>v6loopback, 16) == 0
            or (a[0] == 0xff and (a[1] & 0x0f) <= 2)):
        return linklocalv6
    if (a[0] & 0xfe) == 0xfc:
        return ulav6
    return globalv6


cdef long _strtoul(str s):
    # strtoul(s, 0, 0): decimal, 0x hex or 0 octal prefix
    s = s.strip()
    try:
        if s[:2].lower() == "0x":
            return int(s[2:], 16) if s[2:] else 0
        if s[:1] == "0" and len(s) > 1:
            return int(s[1:], 8)
        j = 0
        while j < len(s) and "0" <= s[j] <= "9":
            j += 1
        return int(s[:j]) if j else 0
    except ValueError:
        return 0


# ---------------------------------------------------------------------------
# interfaces

cdef class PktQueue:
    """A queue of datagrams as devip's qio keeps blocks for ipifc's rq
    and sq: put() drops when limit bytes are queued or the queue is closed
    (qpass), read(n) returns one datagram, the first n bytes of a longer
    one (the rest is read next), None when a reader must wait (rwait set:
    the next put calls wakecb), b"" at end of file (three times after
    close(), then Net9Error).  .passed and .drops count datagrams queued
    and lost."""

    def __cinit__(self, Py_ssize_t limit=QMAX):
        self.q = deque()
        self.limit = limit
        self.qlen = 0

    def __len__(self):
        return self.qlen

    def __repr__(self):
        return "<PktQueue %d datagrams %d bytes%s drops %d>" % (
            len(self.q), self.qlen, " closed" if self.closed else "", self.drops)

    def packets(self):
        return len(self.q)

    cpdef int put(self, object pkt) except -1:
        cdef bytes b
        if self.closed:
            return 0
        if self.qlen >= self.limit:
            self.drops += 1
            return 0
        b = bytes(pkt)
        self.q.append(b)
        self.qlen += len(b)
        self.passed += 1
        if self.rwait:
            self.rwait = 0
            if self.wakecb is not None:
                self.wakecb()
        return 1

    cpdef object read(self, Py_ssize_t n):
        cdef bytes b
        if self.q:
            b = self.q.popleft()
            if n < 0:
                n = 0
            if len(b) > n:
                self.q.appendleft(b[n:])
                b = b[:n]
            self.qlen -= len(b)
            return b
        if self.closed:
            self.eof += 1
            if self.eof <= 3:
                return b""
            raise Net9Error(errors.Ehungup)
        self.rwait = 1
        return None

    cpdef close(self):
        self.q.clear()
        self.qlen = 0
        self.closed = 1
        if self.rwait:
            self.rwait = 0
            if self.wakecb is not None:
                self.wakecb()

    cpdef reopen(self):
        self.q.clear()
        self.qlen = 0
        self.closed = 0
        self.eof = 0

    cpdef flush(self):
        self.q.clear()
        self.qlen = 0


cdef class Lifc:
    """One address of an interface (ipifc.c Iplifc)."""

    def __cinit__(self):
        self.links = []
        self.onlink = 1
        self.autoflag = 1
        self.validlt = 0xffffffff
        self.preflt = 0xffffffff

    property local:
        def __get__(self):
            return PyBytes_FromStringAndSize(<char*>self.local_, 16)

    property mask:
        def __get__(self):
            return PyBytes_FromStringAndSize(<char*>self.mask_, 16)

    property remote:
        def __get__(self):
            return PyBytes_FromStringAndSize(<char*>self.remote_, 16)

    property net:
        def __get__(self):
            return PyBytes_FromStringAndSize(<char*>self.net_, 16)

    def __repr__(self):
        return "<Lifc %s %s %s>" % (fmtip(self.local), fmtmask(self.mask), fmtip(self.remote))


cdef class _Ipself:
    # a self-table entry (ipifc.c Ipself) and its links: [lifc, ref], newest first
    cdef public bytes a
    cdef public int type
    cdef public list links

    def __cinit__(self):
        self.links = []


cdef class Ifc:
    """An interface (ipifc.c Ipifc): the conversation /net/ipifc/<x>, a
    medium and its addresses.  Made by Ip.addifc (or a "bind" ctl)."""

    def __cinit__(self):
        self.lifcs = []
        self.dev = ""
        self.delay = 40
        self.rp = _defaultrp()
        self.pq = PktQueue(QMAX)
        self.sq = PktQueue(SNOOPMAX)
        self.pq.closed = 1
        self.sq.closed = 1

    # -- the Python API --

    def add(self, addr, mask=None, remote=None, mtu=None, tentative=False, proxy=False, trans=False):
        """ipifc "add": addr with mask (a prefix length: 24 for a v4 /24 or
        120; a mask string "/24", "255.255.255.0"; 16 bytes; None for the
        default mask), remote (default addr & mask; a mask of all ones
        makes the interface point-to-point) and mtu.  Adds the routes
        (tag "ifc ") and ipselftab entries devip derives.  Raises Net9Error."""
        ip = addr16(addr)
        m = mask16(mask, ip)
        if remote is None:
            rem = maskip(ip, m)
        else:
            rem = addr16(remote)
        ipifcadd(self.ip, self, ip, m, rem, int(mtu or 0),
                 (Rproxy if proxy else 0) | (Rtrans if trans else 0), tentative)

    def remove(self, addr, mask=None, remote=None):
        """ipifc "remove": the address with that mask (and remote)."""
        ip = addr16(addr)
        m = mask16(mask, ip)
        rem = maskip(ip, m) if remote is None else addr16(remote)
        ipifcrem(self.ip, self, ip, m, rem)

    def ctl(self, msg):
        """One write to /net/ipifc/<x>/ctl (conversation commands included)."""
        return self.ip.ipifc.ctl(self.conv, msg)

    def input(self, pkt):
        """A datagram received on this interface: Ip.input(self, pkt)."""
        return self.ip.input(self, pkt)

    def unbind(self):
        ipifcunbind(self.ip, self)

    property mtu:
        """maxtu; set within the medium's mintu..maxtu (ipifcsetmtu)."""
        def __get__(self):
            return self.maxtu

        def __set__(self, int mtu):
            self.setmtu(mtu)

    property bound:
        def __get__(self):
            return self.medium is not None

    def addresses(self):
        """[(local, mask, remote)] as strings, in the order added."""
        cdef Lifc l
        return [(fmtip(l.local), fmtmask(l.mask), fmtip(l.remote)) for l in self.lifcs]

    def setmtu(self, int mtu):
        if self.medium is None:
            raise Net9Error(Ebadarg)
        if mtu < getattr(self.medium, "mintu", 0) or mtu > getattr(self.medium, "maxtu", 0):
            raise Net9Error(Ebadarg)
        # beyond devip: a medium with a far end that has an MTU of its own
        # (a TUN: Linux's side of the link) follows
        fn = getattr(self.medium, "setlinkmtu", None)
        if fn is not None:
            try:
                fn(mtu)
            except (OSError, ValueError):
                raise Net9Error(Ebadarg)
        self.maxtu = mtu

    property snoopdrops:
        """Datagrams lost to snoop readers that did not keep up."""
        def __get__(self):
            return self.sq.drops

    # -- texts --

    def statustext(self):
        """ipifcstate: the status file."""
        cdef Lifc l
        rp = self.rp
        s = _statusfmt % (
            self.dev, self.maxtu, self.sendra6, self.recvra6,
            rp["mflag"], rp["oflag"], rp["maxraint"], rp["minraint"], rp["linkmtu"],
            rp["reachtime"], rp["rxmitra"], rp["ttl"], rp["routerlt"],
            self.pktin & 0xffffffff, self.pktout & 0xffffffff,
            self.errin & 0xffffffff, self.errout & 0xffffffff, self.speed, self.delay)
        out = [s]
        for l in self.lifcs:
            out.append(_statuslinefmt % (
                fmtip(l.local), fmtmask(l.mask), fmtip(l.remote), l.validlt, l.preflt))
        if not self.lifcs:
            out.append("\n")
        return "".join(out)

    def localtext(self):
        """ipifclocal: the local file."""
        cdef Lifc l
        out = []
        for l in self.lifcs:
            out.append(_localfmt % fmtip(l.local))
            for a in l.links:
                out.append(_locallinkfmt % fmtip(a))
            out.append("\n")
        return "".join(out)

    def __repr__(self):
        return "<Ifc %d %s maxtu %d %s>" % (self.x, self.dev, self.maxtu, self.addresses())


cdef dict _defaultrp():
    # ipv6.c ip_init_6 defaults
    return {"mflag": 0, "oflag": 0, "maxraint": 600000, "minraint": 200000,
            "linkmtu": 0, "reachtime": 0, "rxmitra": 0, "ttl": MAXTTL,
            "routerlt": (3 * 600000) // 1000}



# ---------------------------------------------------------------------------
# the self table (ipselftab)

cdef class Ipselftab:
    """The addresses this host answers to (ipifc.c Ipselftab): text() is
    ipselftabread, table() {address: (type, links)}."""

    def __cinit__(self):
        self.selfs = {}
        self.hash = [[] for _ in range(NHASH)]
        self.selfa = NULL
        self.selftype = NULL
        self.nself = 0

    def __dealloc__(self):
        if self.selfa != NULL:
            free(self.selfa)
        if self.selftype != NULL:
            free(self.selftype)

    def __len__(self):
        return len(self.selfs)

    cdef int sync(self) except -1:
        # the C copy of the self table that input() scans
        cdef _Ipself p
        cdef int i = 0, n = len(self.selfs)
        cdef unsigned char *na = <unsigned char*>malloc(16 * n + 16)
        cdef int *nt = <int*>malloc(sizeof(int) * n + sizeof(int))
        if na == NULL or nt == NULL:
            free(na)
            free(nt)
            raise MemoryError()
        for p in self.selfs.values():
            memcpy(na + 16 * i, bp(p.a), 16)
            nt[i] = p.type
            i += 1
        free(self.selfa)
        free(self.selftype)
        self.selfa = na
        self.selftype = nt
        self.nself = n
        return 0

    cdef int forme(self, const unsigned char *a) noexcept:
        """ipifc.c ipforme: Runi, Rbcast or Rmulti when a is ours, else 0."""
        cdef int i
        cdef const unsigned char *e = self.selfa
        for i in range(self.nself):
            if memcmp(e, a, 16) == 0:
                return self.selftype[i] & (Runi | Rbcast | Rmulti)
            e += 16
        if self.acceptall:
            return Runi
        return 0

    def text(self):
        """ipselftabread: one line per self address, hash chain order."""
        cdef _Ipself p
        out = []
        for chain in self.hash:
            for p in chain:
                out.append(_selftabfmt % (fmtip(p.a), len(p.links), routetype(p.type)))
        return "".join(out)

    def table(self):
        """{address string: (type string, number of links)}."""
        cdef _Ipself p
        return {fmtip(p.a): (routetype(p.type), len(p.links)) for p in self.selfs.values()}


# ---------------------------------------------------------------------------
# /net/ipifc

cdef class IpifcProto(Proto):
    """devip's ipifc protocol: one conversation per interface; its stats
    are the IP layer's.  Its timers are the IP layer's (reassembly).  The
    data file moves a pkt medium's datagrams (pq out, writes in); snoop
    (snoopopen/snoopread/snoopclose) reads the interface's sq."""

    def __init__(self, Fs f, Ip ip):
        Proto.__init__(self, f, "ipifc", -1, Maxmedia)
        self.ip = ip

    cpdef pcreate(self, Conv c):
        cdef Ifc ifc
        cb = self.openqueues(c, QMAX, QMAX, False)
        ifc = Ifc()
        ifc.ip = self.ip
        ifc.conv = c
        ifc.x = c.x
        ifc.pq.wakecb = cb
        ifc.sq.wakecb = cb
        ifc.sq.limit = self.ip.snoopmax
        c.ptcl = ifc

    cpdef Conv clone(self, str owner):
        # Fsprotoclone reopens the conversation's queues: the packet queue
        # of an interface a previous unbind closed is open again
        cdef Conv c = Proto.clone(self, owner)
        cdef Ifc ifc = <Ifc>c.ptcl
        if ifc.medium is None:
            ifc.pq.reopen()
        return c

    cpdef bint pinuse(self, Conv c):
        return (<Ifc>c.ptcl).medium is not None

    cpdef str pstate(self, Conv c):
        return (<Ifc>c.ptcl).statustext()

    cpdef str pstats(self):
        return self.ip.statstext()

    cpdef int pctl(self, Conv c, list argv) except -1:
        ipifcctl(self.ip, <Ifc>c.ptcl, argv)
        return 0

    cpdef int pconnect(self, Conv c, list argv) except -1:
        # ipifcconnect: remove all addresses, then add this one
        cdef Ifc ifc = <Ifc>c.ptcl
        while ifc.lifcs:
            ipifcremlifc(self.ip, ifc, ifc.lifcs[0])
        ipifcaddargv(self.ip, ifc, argv, 0)
        self.connected(c, None)
        return 0

    cpdef pclose(self, Conv c):
        cdef Ifc ifc = <Ifc>c.ptcl
        if ifc.medium is not None and ifc.unbindonclose:
            ipifcunbind(self.ip, ifc)

    cpdef object ctl(self, Conv c, object msg, str user=None):
        # "bind" is ipifcbind here, not the generic address bind
        cdef list f = ctlfields(msg)
        if f and f[0] == "bind":
            # DEVIATION: binding a medium is eve's (devip lets any user
            # who holds an interface's ctl bind it; here remote clients
            # and other users share the stack)
            if user is not None and (user != self.f.eve or user == "none"):
                raise Net9Error(Eperm)
            ipifcbindargv(self.ip, <Ifc>c.ptcl, f)
            return None
        return Proto.ctl(self, c, f, user)

    cpdef object read(self, Conv c, Py_ssize_t n):
        """A read of data: one datagram the interface's pkt medium sent
        (pktbwrite's rq); nothing comes on other media."""
        if c is None:
            raise TypeError("no conversation")
        return (<Ifc>c.ptcl).pq.read(n)

    cpdef Py_ssize_t write(self, Conv c, object data) except -1:
        """A write of data: one datagram received on the interface
        (ipifckick -> the medium's pktin); dropped on media without one."""
        cdef Ifc ifc
        if c is None:
            raise TypeError("no conversation")
        if c.wq.ishungup():
            raise Net9Error(c.wq.getreason())
        ifc = <Ifc>c.ptcl
        fn = getattr(ifc.medium, "pktin", None) if ifc.medium is not None else None
        if fn is not None:
            fn(data)
        return len(data)

    def snoopopen(self, Conv c):
        """An open of snoop: copies are queued while one is open."""
        (<Ifc>c.ptcl).snoopers += 1

    def snoopclose(self, Conv c):
        cdef Ifc ifc = <Ifc>c.ptcl
        ifc.snoopers -= 1
        if ifc.snoopers <= 0:
            ifc.snoopers = 0
            ifc.sq.flush()

    def snoopread(self, Conv c, Py_ssize_t n):
        """A read of snoop: one datagram (as PktQueue.read)."""
        return (<Ifc>c.ptcl).sq.read(n)

    cpdef padvance(self):
        self.ip.fragexpire()

    cpdef object pnextdeadline(self):
        cdef Reasm r
        for r in self.ip.reasms.values():
            return r.deadline
        return None



# ---------------------------------------------------------------------------
# ipifc.c: binding, addresses, the self table, source addresses

cpdef ipifcbind(Ip ip, Ifc ifc, object medium, object name=None):
    """ipifcbind for a medium object."""
    if ifc.medium is not None:
        raise Net9Error(Ebound)
    if name is None:
        name = getattr(medium, "name", None) or "ifc%d" % ifc.x
    ifc.dev = str(name)
    ifc.maxtu = int(getattr(medium, "maxtu"))
    ifc.mintu = int(getattr(medium, "mintu", 0))
    ifc.hsize = int(getattr(medium, "hsize", 0))
    ifc.delay = 40
    ifc.speed = 0
    ifc.rp = _defaultrp()
    ifc.unbindonclose = bool(getattr(medium, "unbindonclose", False))
    ifc.transmit = medium.transmit
    ifc.gso = int(getattr(medium, "gso", 0) or 0)
    ifc.transmitgso = getattr(medium, "transmit_gso", None) if ifc.gso > 0 else None
    if ifc.transmitgso is None:
        ifc.gso = 0
    ifc.medium = medium
    if not ifc.unbindonclose:
        ifc.conv.inuse += 1
    flushrouteifc(ip, ifc)
    ifc.conv.rq.reopen()
    ifc.conv.eq.reopen()
    ifc.pq.reopen()
    ifc.sq.reopen()
    ip.ifcs[ifc.x] = ifc
    if ip.bindhook is not None:
        ip.bindhook(ifc, medium)


def ipifcbindargv(Ip ip, Ifc ifc, list argv):
    """ctl "bind type [dev]": the medium comes from
    mediatypes[type](ifc, argv) (the media register there)."""
    if len(argv) < 2:
        raise Net9Error(Ebadarg)
    fn = ip.mediatypes.get(argv[1])
    if fn is None:
        raise Net9Error(Eunknowntype)
    if ifc.medium is not None:
        raise Net9Error(Ebound)
    medium = fn(ifc, argv)
    ipifcbind(ip, ifc, medium, argv[2] if len(argv) > 2 else
                          "%s%d" % (argv[1], ifc.x))


def ipifcunbind(Ip ip, Ifc ifc):
    """ipifcunbindmedium: drop the addresses, the routes, the medium."""
    if ifc.medium is None:
        raise Net9Error(Eunbound)
    while ifc.lifcs:
        ipifcremlifc(ip, ifc, ifc.lifcs[0])
    ifc.dev = ""
    ifc.reflect = 0
    ifc.reassemble = 0
    ifc.conv.rq.close()
    ifc.conv.wq.close()
    ifc.pq.close()
    ifc.sq.close()
    flushrouteifc(ip, ifc)
    if not ifc.unbindonclose:
        ifc.conv.inuse -= 1
    medium = ifc.medium
    ifc.medium = None
    ifc.transmit = None
    ifc.transmitgso = None
    ifc.gso = 0
    ip.ifcs[ifc.x] = None
    ifc.conv.p.maybefree(ifc.conv)
    if ip.unbindhook is not None:
        ip.unbindhook(ifc, medium)


def ipifcctl(Ip ip, Ifc ifc, list argv):
    """ipifc.c ipifcctl: Net9Error with its error text."""
    verb = argv[0]
    n = len(argv)
    if verb == "iprouting":
        ip.setiprouting(_atoi(argv[1]) if n > 1 else 1)
        return
    if verb == "add":
        ipifcaddargv(ip, ifc, argv, 0)
        return
    if verb == "try":
        ipifcaddargv(ip, ifc, argv, 1)
        return
    if verb == "del" or verb == "remove":
        ipifcremargv(ip, ifc, argv)
        return
    if verb == "unbind":
        ipifcunbind(ip, ifc)
        return
    if verb in ("add6", "del6", "remove6"):
        # DEVIATION: no router advertisements or SLAAC on a TUN link
        raise Net9Error(Eunsupported)
    if ifc.medium is None:
        raise Net9Error(Eunbound)
    if verb == "mtu":
        ifc.setmtu(_strtoul(argv[1]) if n > 1 else 0)
        return
    if verb == "speed":
        ifc.speed = max(0, _atoi(argv[1]) if n > 1 else 0)
        return
    if verb == "delay":
        ifc.delay = min(1000, max(0, _atoi(argv[1]) if n > 1 else 0))
        return
    if verb == "reflect":
        ifc.reflect = _atoi(argv[1]) if n > 1 else 1
        return
    if verb == "reassemble":
        ifc.reassemble = _atoi(argv[1]) if n > 1 else 1
        return
    if verb == "ra6":
        ipifcra6(ip, ifc, argv)
        return
    raise Net9Error(Eunsupported)


def ipifcra6(Ip ip, Ifc ifc, list argv):
    args = argv[1:]
    if len(args) % 2:
        raise Net9Error(Ebadarg)
    rp = dict(ifc.rp)
    sendra = ifc.sendra6
    recvra = ifc.recvra6
    for i in range(0, len(args), 2):
        k, v = args[i], _atoi(args[i + 1])
        if k == "recvra":
            recvra = int(v != 0)
        elif k == "sendra":
            sendra = int(v != 0)
        elif k in ("mflag", "oflag"):
            rp[k] = int(v != 0)
        elif k in ("maxraint", "minraint", "linkmtu", "reachtime", "rxmitra", "ttl", "routerlt"):
            rp[k] = v
        else:
            raise Net9Error(Ebadarg)
    if rp["maxraint"] < rp["minraint"]:
        raise Net9Error(Ebadarg)
    ifc.rp = rp
    ifc.sendra6 = sendra
    ifc.recvra6 = recvra


def ipifcaddargv(Ip ip, Ifc ifc, list argv, int tentative):
    """ipifcadd from ctl fields: add addr [mask [remote [mtu [proxy|trans]]]]."""
    cdef int type = 0, mtu = 0
    n = len(argv)
    if n < 2 or n > 6:
        raise Net9Error(Ebadarg)
    try:
        if n == 6 or n == 5 or n == 4:
            if n == 6:
                if "proxy" in argv[5]:
                    type |= Rproxy
                if "trans" in argv[5]:
                    type |= Rtrans
            if n >= 5:
                mtu = _strtoul(argv[4])
            addr = parseip(argv[1])
            m = parseipmask(argv[2], addr[:12] == V4PFX)
            rem = parseip(argv[3])
        elif n == 3:
            addr = parseip(argv[1])
            m = parseipmask(argv[2], addr[:12] == V4PFX)
            rem = maskip(addr, m)
        else:
            addr = parseip(argv[1])
            m = defmask(addr)
            rem = maskip(addr, m)
    except Net9Error:
        raise Net9Error(Ebadip)
    ipifcadd(ip, ifc, addr, m, rem, mtu, type, tentative)


def ipifcremargv(Ip ip, Ifc ifc, list argv):
    n = len(argv)
    if n < 3:
        raise Net9Error(Ebadarg)
    try:
        addr = parseip(argv[1])
        m = parseipmask(argv[2], addr[:12] == V4PFX)
        rem = maskip(addr, m) if n < 4 else parseip(argv[3])
    except Net9Error:
        raise Net9Error(Ebadip)
    ipifcrem(ip, ifc, addr, m, rem)


def ipifcadd(Ip ip, Ifc ifc, bytes addr, bytes mask, bytes rem, int mtu, int type, bint tentative):
    """ipifc.c ipifcadd with parsed arguments; raises Net9Error."""
    cdef Lifc lifc
    type |= Rifc
    net = maskip(rem, mask)
    # point to point: a mask of all ones (except the v6 loopback)
    if addr != v6loopback and mask == IPallbits:
        type |= Rptpt
    if addr[:12] == V4PFX or addr == IPnoaddr:
        type |= Rv4
        tentative = 0
    if ifc.medium is None:
        raise Net9Error(Eunbound)
    if mtu > 0:
        try:
            ifc.setmtu(mtu)
        except Net9Error:
            pass            # ipifcadd keeps the MTU when the new one does not fit
    # ignore if this is already a local address for this ifc
    for lifc in ifc.lifcs:
        if lifc.local == addr:
            if lifc.tentative != tentative:
                lifc.tentative = tentative
            return
    lifc = Lifc()
    memcpy(lifc.local_, bp(addr), 16)
    memcpy(lifc.mask_, bp(mask), 16)
    memcpy(lifc.remote_, bp(rem), 16)
    memcpy(lifc.net_, bp(net), 16)
    lifc.type = type
    lifc.tentative = tentative
    lifc.origint = ip.f.now // 1000
    ifc.lifcs.append(lifc)

    # routes for this logical interface
    if lifc.onlink:
        ip.rtab.addroute(rem, mask, addr, IPallbits, rem, type & ~Rtrans, ifc.x, ifc.ifcid, tifc)
        if v6addrtype(bp(addr)) != linklocalv6:
            ip.rtab.addroute(rem, mask, addr, IPnoaddr, rem, type, ifc.x, ifc.ifcid, tifc)

    addselfcache(ip, ifc, lifc, addr, Runi)

    if type & Rptpt:
        return

    if type & Rv4:
        # subnet directed broadcast and network addresses
        addselfcache(ip, ifc, lifc, bytes([(a & m) | (~m & 0xff) for a, m in zip(addr, mask)]), Rbcast)
        addselfcache(ip, ifc, lifc, maskip(addr, mask), Rbcast)
        # network directed (classful) broadcast and network addresses
        dm = defmask(addr)
        addselfcache(ip, ifc, lifc, bytes([(a & m) | (~m & 0xff) for a, m in zip(addr, dm)]), Rbcast)
        addselfcache(ip, ifc, lifc, maskip(addr, dm), Rbcast)
        addselfcache(ip, ifc, lifc, IPv4bcast, Rbcast)
        # all systems multicast
        addselfcache(ip, ifc, lifc, IPv4allsys, Rmulti)
    else:
        if addr == v6loopback:
            addselfcache(ip, ifc, lifc, v6allnodesN, Rmulti)
            ip.rtab.addroute(v6allnodesN, v6allnodesNmask, addr, IPallbits,
                             v6allnodesN, Rmulti, ifc.x, ifc.ifcid, tifc)
        addselfcache(ip, ifc, lifc, v6allnodesL, Rmulti)
        ip.rtab.addroute(v6allnodesL, v6allnodesLmask, addr, IPallbits,
                         v6allnodesL, Rmulti, ifc.x, ifc.ifcid, tifc)
        # solicited-node multicast
        addselfcache(ip, ifc, lifc, v6solicitednode[:13] + addr[13:], Rmulti)


def ipifcremlifc(Ip ip, Ifc ifc, Lifc lifc):
    """ipifc.c ipifcremlifc: remove lifc from ifc with its routes and self addresses."""
    if lifc not in ifc.lifcs:
        raise Net9Error(Enotonifc)
    ifc.lifcs.remove(lifc)
    addr = lifc.local
    while lifc.links:
        remselfcache(ip, ifc, lifc, lifc.links[0])
    if lifc.onlink:
        ip.rtab.remroute(lifc.remote, lifc.mask, addr, IPallbits, lifc.remote,
                         lifc.type & ~Rtrans, ifc.x, ifc.ifcid, tifc)
        if v6addrtype(lifc.local_) != linklocalv6:
            ip.rtab.remroute(lifc.remote, lifc.mask, addr, IPnoaddr, lifc.remote,
                             lifc.type, ifc.x, ifc.ifcid, tifc)
    if lifc.type & Rptpt:
        return
    if (lifc.type & Rv4) == 0:
        if addr == v6loopback:
            ip.rtab.remroute(v6allnodesN, v6allnodesNmask, addr, IPallbits,
                             v6allnodesN, Rmulti, ifc.x, ifc.ifcid, tifc)
        ip.rtab.remroute(v6allnodesL, v6allnodesLmask, addr, IPallbits,
                         v6allnodesL, Rmulti, ifc.x, ifc.ifcid, tifc)


def ipifcrem(Ip ip, Ifc ifc, bytes addr, bytes mask, bytes rem):
    """ipifc.c ipifcrem: the address must match local, mask and remote."""
    cdef Lifc lifc
    for lifc in ifc.lifcs:
        if lifc.local == addr and lifc.mask == mask and lifc.remote == rem:
            ipifcremlifc(ip, ifc, lifc)
            return
    raise Net9Error(Enotonifc)


def addselfcache(Ip ip, Ifc ifc, Lifc lifc, bytes a, int type):
    cdef _Ipself p
    if type == Runi:
        type |= lifc.type & Rproxy
    type |= lifc.type & Rv4
    p = ip.ipselftab.selfs.get(a)
    if p is None:
        p = _Ipself()
        p.a = a
        p.type = type
        ip.ipselftab.selfs[a] = p
        ip.ipselftab.hash[((a[14] << 8) | a[15]) % NHASH].insert(0, p)
        if a == v4prefix or a == IPnoaddr:
            ip.ipselftab.acceptall = 1
        ip.ipselftab.sync()
    for link in p.links:
        if link[0] is lifc:
            link[1] += 1
            return
    p.links.insert(0, [lifc, 1])
    lifc.links.insert(0, a)
    smask = IPallbits if ((type & (Rbcast | Rmulti)) or v6addrtype(bp(a)) == linklocalv6) else IPnoaddr
    ip.rtab.addroute(a, IPallbits, lifc.local, smask, a, type, ifc.x, ifc.ifcid, tifc)


def remselfcache(Ip ip, Ifc ifc, Lifc lifc, bytes a):
    cdef _Ipself p = ip.ipselftab.selfs.get(a)
    if p is None:
        if a in lifc.links:
            lifc.links.remove(a)
        return
    for link in p.links:
        if link[0] is lifc:
            break
    else:
        if a in lifc.links:
            lifc.links.remove(a)
        return
    link[1] -= 1
    if link[1] != 0:
        return
    smask = IPallbits if ((p.type & (Rbcast | Rmulti)) or v6addrtype(bp(a)) == linklocalv6) else IPnoaddr
    ip.rtab.remroute(a, IPallbits, lifc.local, smask, a, p.type, ifc.x, ifc.ifcid, tifc)
    p.links.remove(link)
    lifc.links.remove(a)
    if p.links:
        return
    if a == v4prefix or a == IPnoaddr:
        ip.ipselftab.acceptall = 0
    del ip.ipselftab.selfs[a]
    ip.ipselftab.hash[((a[14] << 8) | a[15]) % NHASH].remove(p)
    ip.ipselftab.sync()


cpdef bint ipifcaddmulti(Ip ip, object ma, object ia) except -1:
    """ipifc.c ipifcaddmulti's part in the self table: the multicast
    group ma becomes a self address (Rmulti) of the interface that has
    the address ia (joins are counted; remmulti undoes one).  Returns
    False when no interface has ia."""
    cdef Lifc lifc
    m = addr16(ma)
    a = addr16(ia)
    if isv4c(bp(m)) != isv4c(bp(a)):
        raise Net9Error(errors.Eincompatmulti)
    ifc = findipifc(ip, a, m, Rmulti)
    if ifc is None:
        return False
    for lifc in (<Ifc>ifc).lifcs:
        if lifc.local == a:
            addselfcache(ip, ifc, lifc, m, Rmulti)
            return True
    return False


cpdef bint ipifcremmulti(Ip ip, object ma, object ia) except -1:
    """ipifc.c ipifcremmulti's part: undo one addmulti."""
    cdef Lifc lifc
    m = addr16(ma)
    a = addr16(ia)
    ifc = findipifc(ip, a, m, Rmulti)
    if ifc is None:
        return False
    for lifc in (<Ifc>ifc).lifcs:
        if lifc.local == a:
            remselfcache(ip, ifc, lifc, m)
            return True
    return False


cdef flushrouteifc(Ip ip, Ifc ifc):
    # remove every route through ifc; its old routes no longer pertain
    ip.rtab.flushifc(ifc.x)
    ifc.ifcid += 1


cdef Ifc findipifcstr(Ip ip, object ifc):
    """findipifcstr: an Ifc, an interface number (int or string) or a
    local address; None when not found."""
    if ifc is None:
        return None
    if isinstance(ifc, Ifc):
        return <Ifc>ifc if (<Ifc>ifc).medium is not None else None
    if isinstance(ifc, int):
        return ip.ifc(ifc)
    s = str(ifc)
    if s.isdigit():
        return ip.ifc(int(s))
    try:
        a = parseip(s)
    except Net9Error:
        return None
    return findipifc(ip, a, a, Runi)


cdef Ifc findipifc(Ip ip, bytes local, bytes remote, int type):
    """ipifc.c findipifc: the interface on the same net as remote."""
    cdef Ifc ifc, x = None
    cdef Lifc lifc
    cdef int spec, xspec = 0
    for ifc in ip.ifcs:
        if ifc is None:
            continue
        for lifc in ifc.lifcs:
            if type & Runi:
                if remote == lifc.local:
                    return ifc
            elif type & (Rbcast | Rmulti):
                if local == lifc.local:
                    return ifc
            if maskip(remote, lifc.mask) == lifc.net:
                spec = comprefixlen(bp(remote), lifc.local_, 16) << 8
                spec += comprefixlen(bp(local), lifc.local_, 16)
                if spec > xspec:
                    x = ifc
                    xspec = spec
    return x


cdef bytes findprimaryipv4(Ip ip):
    cdef Ifc ifc
    cdef Lifc lifc
    for ifc in ip.ifcs:
        if ifc is None:
            continue
        for lifc in ifc.lifcs:
            if lifc.type & Rv4:
                return lifc.local
    return IPnoaddr


cdef bytes findprimaryipv6(Ip ip):
    cdef Ifc ifc
    cdef Lifc lifc
    cdef int atype = unspecifiedv6, atypel
    cdef unsigned int now = ip.f.now // 1000
    best = IPnoaddr
    for ifc in ip.ifcs:
        if ifc is None:
            continue
        for lifc in ifc.lifcs:
            atypel = v6addrtype(lifc.local_)
            if atypel > atype and (lifc.preflt == 0xffffffff or lifc.preflt >= now - lifc.origint):
                best = lifc.local
                atype = atypel
                if atype == globalv6:
                    return best
    return best


cdef bint v4source(Ip ip, const unsigned char *a4, unsigned char *s4):
    cdef int i, splen
    cdef Rt *r
    cdef Routetab rtab = ip.rtab
    cdef Ifc ifc
    cdef unsigned char a[16]
    cdef unsigned char src[4]
    cdef const unsigned char *rem
    v4tov6c(a, a4)
    for i in range(rtab.nrt):
        r = &rtab.rt[i]
        if (r.type & Rv4) == 0 or not maskeq(a, r.a, r.m):
            continue
        ifc = ip.rtifc(i)
        if ifc is None:
            continue
        splen = 0
        memset(src, 0, 4)
        if r.type & Rsrc:
            splen = masklen(r.sm + 12, 4)
            memcpy(src, r.s + 12, 4)
        if (r.type & (Rifc | Rbcast | Rmulti | Rv4)) == Rv4:
            rem = r.gate + 12
        else:
            rem = a4
        if not v4local(ifc, src, splen, rem):
            continue
        memcpy(s4, src, 4)
        return 1
    return 0


cdef bint v6source(Ip ip, const unsigned char *a, unsigned char *s):
    cdef int i, splen
    cdef Rt *r
    cdef Routetab rtab = ip.rtab
    cdef Ifc ifc
    cdef unsigned char src[16]
    for i in range(rtab.nrt):
        r = &rtab.rt[i]
        if (r.type & Rv4) or not maskeq(a, r.a, r.m):
            continue
        ifc = ip.rtifc(i)
        if ifc is None:
            continue
        splen = 0
        memset(src, 0, 16)
        if r.type & Rsrc:
            splen = masklen(r.sm, 16)
            memcpy(src, r.s, 16)
        if not v6local(ifc, src, splen, a):
            continue
        memcpy(s, src, 16)
        return 1
    return 0


cdef bint v4local(Ifc ifc, unsigned char *local4, int prefixlen, const unsigned char *remote4):
    """ipifc.c ipv4local: the v4 address of ifc closest to remote
    (with prefixlen leading bits equal to local4's)."""
    cdef Lifc lifc
    cdef int a, b = -1
    for lifc in ifc.lifcs:
        if (lifc.type & Rv4) == 0 or iszero16(lifc.local_):
            continue
        if prefixlen and comprefixlen(lifc.local_ + 12, local4, 4) < prefixlen:
            continue
        a = comprefixlen(lifc.local_ + 12, remote4, 4)
        if a > b:
            b = a
            memcpy(local4, lifc.local_ + 12, 4)
    return b >= 0


cdef bint v6local(Ifc ifc, unsigned char *local, int prefixlen, const unsigned char *remote):
    """ipifc.c ipv6local: the v6 address of ifc best for remote:
    appropriate scope, not deprecated, longest common prefix."""
    cdef Lifc lifc
    cdef int atype, a_atype, a_dep, a_cpl, b_atype, b_dep, b_cpl
    cdef unsigned int now
    if isv4c(remote):
        memcpy(local, <const char*>V4PFX, 12)
        prefixlen -= 96
        if prefixlen < 0:
            prefixlen = 0
        return v4local(ifc, local + 12, prefixlen, remote + 12)
    atype = v6addrtype(remote)
    b_atype = unknownv6
    b_dep = 1
    b_cpl = 0
    now = ifc.ip.f.now // 1000
    for lifc in ifc.lifcs:
        if lifc.tentative:
            continue
        if prefixlen and comprefixlen(lifc.local_, local, 16) < prefixlen:
            continue
        a_atype = v6addrtype(lifc.local_)
        a_dep = lifc.preflt != 0xffffffff and lifc.preflt < now - lifc.origint
        a_cpl = comprefixlen(lifc.local_, remote, 16)
        if a_atype != b_atype:
            if not ((a_atype > b_atype and b_atype < atype) or (a_atype < b_atype and b_atype > atype)):
                continue
        elif a_dep != b_dep:
            if not b_dep:
                continue
        elif a_cpl != b_cpl:
            if a_cpl < b_cpl:
                continue
        else:
            continue
        b_atype = a_atype
        b_dep = a_dep
        b_cpl = a_cpl
        memcpy(local, lifc.local_, 16)
    return b_atype >= atype


cdef bytes findlocalip(Ip ip, bytes raddr):
    """ipifc.c findlocalip: the source address of the best route to
    raddr (v4source/v6source), else the first v4 address, or the best
    v6 address (global > ULA > link-local), else ::."""
    cdef unsigned char local[16]
    if raddr is None or len(raddr) != 16:
        return IPnoaddr
    if isv4c(bp(raddr)):
        memcpy(local, <const char*>V4PFX, 12)
        if v4source(ip, bp(raddr) + 12, local + 12):
            return PyBytes_FromStringAndSize(<char*>local, 16)
        return findprimaryipv4(ip)
    if v6source(ip, bp(raddr), local):
        return PyBytes_FromStringAndSize(<char*>local, 16)
    return findprimaryipv6(ip)
