# cython: language_level=3
"""net9's IP layer: 9front's devip ip.c, ipv6.c, ipifc.c and iproute.c,
sans I/O.

Ip(fs) is the IpLayer of one stack (it sets fs.ip).  Interfaces are the
conversations of the "ipifc" protocol (Ip.ipifc, devip's /net/ipifc):
ifc = ip.addifc(medium) binds a medium (any object with name, maxtu,
mintu, hsize and transmit(pkt)), ifc.add(addr, mask) adds an address with
the routes and self-table entries devip derives from it.  The medium hands
each received datagram to ip.input(ifc, pkt); the transport engines send
through ip.ipoput(), which fills in the IP header in the engine's bytearray
and calls medium.transmit(pkt) (fragmenting to the interface MTU).

What devip does is the reference; where net9 differs the code says
DEVIATION.  The main ones: datagrams for other hosts are counted in
InAddrErrors (devip drops them silently unless forwarding), runt datagrams
count as InHdrErrors (devip's pullup drops them silently), an unknown IPv4
protocol is answered with ICMP protocol unreachable and an unknown IPv6 next
header with ICMPv6 parameter problem, IPv6 extension headers (hop-by-hop,
routing, destination options, fragment) are removed before the datagram
reaches a transport (devip hands them on), reassembly is bounded in count
and bytes and its timeout runs from Fs.advance.

Forwarding (iprouting on) is ip.c's and ipv6.c's: the TTL or hop limit
decremented (ICMP time exceeded at 1), TCP SYNs' MSS clamped to the
smaller MTU (tcpmssclamp), v4 fragmented when DF is clear or answered
with ICMP fragmentation needed, v6 answered with ICMPv6 packet too big.
DEVIATIONS: a datagram with no route is answered with ICMP net
unreachable (ICMPv6 no route) where devip drops it silently; a TCP
super-packet from a medium with segmentation offload (Ip.input's gso, the
segment size) goes out whole to a medium that segments or is cut into
segments of that size here; forwarded fragments keep their MF bit when
fragmented again.

Media are bound at run time too: ctl "bind TYPE [DEV ...]" makes the medium
with mediatypes[TYPE](ifc, argv) (the stack registers pkt, loopback and
tun); bindhook/unbindhook tell the stack when one comes and goes.  Each
interface's conversation has two packet queues (PktQueue): pq, what a pkt
medium transmits (read from its data file), and sq, a copy of every
datagram in and out while its snoop file is open.

Routes live in a C array sorted most specific first (devip keeps a forest
of range trees); the first match is devip's deepest match.  A one-entry
cache makes the common case (one destination) a pair of memcmp.
"""

from libc.string cimport memcpy, memcmp, memset, memmove
from libc.stdlib cimport malloc, realloc, free
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytearray cimport PyByteArray_FromStringAndSize, PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING

from collections import deque

from net9 import errors
from net9.errors import Net9Error
from net9.ipaux import parseip, fmtip, parsecmd
from net9.ipaux import atoi as _atoi
from net9.conv cimport Conv, Proto, Fs, IpLayer
from net9.csum cimport csum_partial, csum_fold
from net9.netlog cimport Logip
from net9.qio cimport Queue
from net9.byteorder cimport nhgets, nhgetl, hnputs, hnputl, isv4c, v4tov6c

# ---------------------------------------------------------------------------
# constants

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
cdef bytes v6linklocal = b"\xfe\x80" + b"\0" * 14
cdef bytes v6linklocalmask = b"\xff" * 8 + b"\0" * 8
cdef bytes v6solicitednodemask = b"\xff" * 13 + b"\0" * 3
cdef bytes v6multicastmask = b"\xff" + b"\0" * 15
cdef bytes tifc = b"ifc "

cdef enum:
    MAXTTL = 255
    DFLTTOS = 0
    V4 = 4
    V6 = 6

# v6addrtype (ipifc.c)
cdef enum:
    unknownv6 = 0
    unspecifiedv6
    linklocalv6
    ulav6
    globalv6

statnames = [
    "Forwarding", "DefaultTTL", "InReceives", "InHdrErrors", "InAddrErrors",
    "ForwDatagrams", "InUnknownProtos", "InDiscards", "InDelivers",
    "OutRequests", "OutDiscards", "OutNoRoutes", "ReasmTimeout", "ReasmReqds",
    "ReasmOKs", "ReasmFails", "FragOKs", "FragFails", "FragCreates",
]

# ipifc.c / iproute.c error texts (devip.md sections 10 and 11)
Ebadarg = errors.Ebadarg
Ebadip = errors.Ebadip
Ebadctl = errors.Ebadctl
Eshortctl = errors.Eshortctl
Eunbound = "interface not bound"
Ebound = "interface already bound"
Eunsupported = "unsupported ctl"
Enotonifc = "address not on this interface"
Enoifc = "interface not found"
Eunknowntype = "unknown interface type"
Eperm = errors.Eperm

QMAX = 192 * 1024 - 1             # ipifc.c: the conversation queues' limit
SNOOPMAX = 1 << 20                # net9: a snoop queue's bytes (devip: QMAX)
IP_TCPPROTO = 6

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
_routefmt = "%-15s %-4s %-15s %-4s %4.4s %3s %-15s %-4s\n"

# classful masks (libip classmask.c)
cdef list classmask = [
    b"\xff" * 13 + b"\0\0\0",
    b"\xff" * 13 + b"\0\0\0",
    b"\xff" * 14 + b"\0\0",
    b"\xff" * 15 + b"\0",
]

# ---------------------------------------------------------------------------
# byte helpers


cdef inline bint maskeq(const unsigned char *x, const unsigned char *a,
                        const unsigned char *m) noexcept:
    # (x & m) == a, a already masked
    cdef int i
    for i in range(16):
        if (x[i] & m[i]) != a[i]:
            return 0
    return 1

cdef inline bint iszero16(const unsigned char *a) noexcept:
    cdef int i
    for i in range(16):
        if a[i]:
            return 0
    return 1

cdef int popcount16(const unsigned char *m) noexcept:
    cdef int i, n = 0
    cdef unsigned char c
    for i in range(16):
        c = m[i]
        while c:
            n += c & 1
            c >>= 1
    return n

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

cdef inline unsigned short ipcsum(const unsigned char *p) noexcept:
    # ip.c ipcsum: checksum of the header whose length is in p[0]
    return csum_fold(csum_partial(p, (p[0] & 0xf) << 2, 0))

cdef inline const unsigned char *bp(bytes b) noexcept:
    return <const unsigned char*>PyBytes_AS_STRING(b)

cdef void mssclamp(unsigned char *p, Py_ssize_t n, int hl, bint v4, int mtu) noexcept:
    # tcp.c tcpmssclamp: a forwarded SYN's MSS option lowered to what the
    # smaller of the two links carries (mtu less the 20-byte v4 or 40-byte
    # v6 header and 20 bytes of TCP), the checksum updated (RFC 1624)
    cdef unsigned char *t
    cdef int thl, i, optlen, oldmss, newmss
    cdef unsigned int c
    if n < hl + 20:
        return
    t = p + hl
    if not (t[13] & 0x02):
        return
    thl = (t[12] >> 4) << 2
    if thl < 20 or hl + thl > n:
        return
    newmss = mtu - ((20 if v4 else 40) + 20)
    if newmss <= 0:
        return
    i = 20
    while i < thl:
        if t[i] == 0:
            break
        if t[i] == 1:
            i += 1
            continue
        if i + 1 >= thl:
            break
        optlen = t[i + 1]
        if optlen < 2 or i + optlen > thl:
            break
        if t[i] == 2 and optlen == 4:
            oldmss = nhgets(t + i + 2)
            if oldmss > newmss:
                hnputs(t + i + 2, newmss)
                c = (~nhgets(t + 16)) & 0xffff
                c += (~oldmss) & 0xffff
                c += newmss
                c = (c & 0xffff) + (c >> 16)
                c = (c & 0xffff) + (c >> 16)
                hnputs(t + 16, (~c) & 0xffff)
            return
        i += optlen


# ---------------------------------------------------------------------------
# addresses and masks from Python values

def addr16(a):
    """An address as 16 bytes: a string (parseip: "10.0.0.1", "fd00::1"),
    16 bytes, or 4 bytes (made v4-mapped).  Net9Error(Ebadip) otherwise."""
    if isinstance(a, (bytes, bytearray, memoryview)):
        b = bytes(a)
        if len(b) == 16:
            return b
        if len(b) == 4:
            return V4PFX + b
        raise Net9Error(Ebadip)
    if isinstance(a, str):
        return parseip(a)
    raise Net9Error(Ebadip)


def parseipmask(str s, bint v4):
    """libip parseipmask: "/n" (n <= 32 for a v4 address means n+96) or a
    mask in address form (a v4-form mask gets 12 leading 0xff bytes).
    Returns the 16-byte mask; Net9Error(Ebadip) where parseipmask fails."""
    cdef int i
    if s.startswith("/"):
        i = _atoi(s[1:])
        if i < 0:
            i = 0
        if i <= 32 and v4:
            i += 96
        if i > 128:
            i = 128
        if i < 96 and v4:
            raise Net9Error(Ebadip)
        return prefixmask(i)
    m = parseip(s)
    if m[:12] == V4PFX:
        return b"\xff" * 12 + m[12:]
    if v4 and m[:12] != b"\xff" * 12:
        raise Net9Error(Ebadip)
    return m


def prefixmask(int n):
    """A 16-byte mask of n leading one bits."""
    if n < 0:
        n = 0
    if n > 128:
        n = 128
    b = bytearray(16)
    i = 0
    while n >= 8:
        b[i] = 0xff
        i += 1
        n -= 8
    if n > 0:
        b[i] = (0xff << (8 - n)) & 0xff
    return bytes(b)


def mask16(m, bytes ip):
    """A mask for address ip: None (the default mask, libip defmask), an int
    prefix length (for a v4 address, n <= 32 counts from bit 96), a string
    as parseipmask, or 16 bytes."""
    v4 = ip[:12] == V4PFX
    if m is None:
        return defmask(ip)
    if isinstance(m, int):
        if v4 and m <= 32:
            m += 96
        return prefixmask(m)
    if isinstance(m, str):
        return parseipmask(m, v4)
    b = bytes(m)
    if len(b) == 4:
        return b"\xff" * 12 + b
    if len(b) != 16:
        raise Net9Error(Ebadip)
    return b


def defmask(bytes ip):
    """libip defmask: classful for v4; for v6 the loopback, link-local,
    solicited-node and multicast masks, else all ones."""
    if ip[:12] == V4PFX:
        return classmask[ip[12] >> 6]
    if ip == v6loopback:
        return IPallbits
    if ip[:8] == v6linklocal[:8]:
        return v6linklocalmask
    if ip[:13] == v6solicitednode[:13]:
        return v6solicitednodemask
    if ip[:1] == b"\xff":
        return v6multicastmask
    return IPallbits


def maskip(bytes a, bytes m):
    return bytes([x & y for x, y in zip(a, m)])


def fmtmask(m):
    """eipfmt %M: "/n" for a prefix mask (n counts all 128 bits), else the
    mask as an address."""
    b = bytes(m)
    i = 0
    while i < 16 and b[i] == 0xff:
        i += 1
    n = 8 * i
    if i < 16:
        v = b[i]
        bit = 0x80
        while bit and (v & bit):
            v &= ~bit
            n += 1
            bit >>= 1
        if v != 0 or any(b[i + 1:]):
            return fmtip(b)
    return "/%d" % n


def routetype(int type):
    """iproute.c routetype: "4"/"6", "i", one of "u" "b" "m", "p", "y", "t"."""
    s = "4" if type & Rv4 else "6"
    if type & Rifc:
        s += "i"
    if type & Runi:
        s += "u"
    elif type & Rbcast:
        s += "b"
    elif type & Rmulti:
        s += "m"
    if type & Rptpt:
        s += "p"
    if type & Rproxy:
        s += "y"
    if type & Rtrans:
        s += "t"
    return s


def parseroutetype(str s):
    """iproute.c parseroutetype; -1 when malformed."""
    cdef int type = 0
    if not s:
        return -1
    if s[0] == "4":
        type |= Rv4
    elif s[0] != "6":
        return -1
    for ch in s[1:]:
        if ch == "i":
            type ^= Rifc
            if (type & Rifc) != Rifc:
                return -1
        elif ch == "u":
            type ^= Runi
            if (type & (Runi | Rbcast | Rmulti)) != Runi:
                return -1
        elif ch == "b":
            type ^= Rbcast
            if (type & (Runi | Rbcast | Rmulti)) != Rbcast:
                return -1
        elif ch == "m":
            type ^= Rmulti
            if (type & (Runi | Rbcast | Rmulti)) != Rmulti:
                return -1
        elif ch == "p":
            type ^= Rptpt
            if (type & Rptpt) != Rptpt:
                return -1
        elif ch == "y":
            type ^= Rproxy
            if (type & Rproxy) != Rproxy:
                return -1
        elif ch == "t":
            type ^= Rtrans
            if (type & Rtrans) != Rtrans:
                return -1
        else:
            return -1
    return type


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
        e = self.ip.ipifcadd(self, ip, m, rem, int(mtu or 0),
                             (Rproxy if proxy else 0) | (Rtrans if trans else 0), tentative)
        if e is not None:
            raise Net9Error(e)

    def remove(self, addr, mask=None, remote=None):
        """ipifc "remove": the address with that mask (and remote)."""
        ip = addr16(addr)
        m = mask16(mask, ip)
        rem = maskip(ip, m) if remote is None else addr16(remote)
        e = self.ip.ipifcdel(self, ip, m, rem)
        if e is not None:
            raise Net9Error(e)

    def ctl(self, msg):
        """One write to /net/ipifc/<x>/ctl (conversation commands included)."""
        return self.ip.ipifc.ctl(self.conv, msg)

    def input(self, pkt):
        """A datagram received on this interface: Ip.input(self, pkt)."""
        return self.ip.input(self, pkt)

    def unbind(self):
        e = self.ip.ipifcunbind(self)
        if e is not None:
            raise Net9Error(e)

    property mtu:
        """maxtu; set within the medium's mintu..maxtu (ipifcsetmtu)."""
        def __get__(self):
            return self.maxtu

        def __set__(self, int mtu):
            e = self.setmtu(mtu)
            if e is not None:
                raise Net9Error(e)

    property bound:
        def __get__(self):
            return self.medium is not None

    def addresses(self):
        """[(local, mask, remote)] as strings, in the order added."""
        cdef Lifc l
        return [(fmtip(l.local), fmtmask(l.mask), fmtip(l.remote)) for l in self.lifcs]

    def setmtu(self, int mtu):
        if self.medium is None:
            return Ebadarg
        if mtu < getattr(self.medium, "mintu", 0) or mtu > getattr(self.medium, "maxtu", 0):
            return Ebadarg
        # beyond devip: a medium with a far end that has an MTU of its own
        # (a TUN: Linux's side of the link) follows
        fn = getattr(self.medium, "setlinkmtu", None)
        if fn is not None:
            try:
                fn(mtu)
            except (OSError, ValueError):
                return Ebadarg
        self.maxtu = mtu
        return None

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


cdef class Reasm:
    """A reassembly in progress: frags is [foff, data, mf, hdr] sorted by
    offset (hdr: the IP header, v6: the unfragmentable part)."""

    def __cinit__(self):
        self.frags = []

    def __repr__(self):
        return "<Reasm v%d %r %d frags %d bytes>" % (self.version, self.key, len(self.frags), self.nbytes)


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
        c.rq = Queue(QMAX)
        c.wq = Queue(QMAX)
        cb = self.f.wakeconv(c)
        c.rq.wakecb = cb
        c.wq.wakecb = cb
        c.eq.wakecb = cb
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

    cpdef object pctl(self, Conv c, list argv):
        return self.ip.ipifcctl(<Ifc>c.ptcl, argv)

    cpdef object pconnect(self, Conv c, list argv):
        # ipifcconnect: remove all addresses, then add this one
        cdef Ifc ifc = <Ifc>c.ptcl
        while ifc.lifcs:
            self.ip.ipifcdellifc(ifc, ifc.lifcs[0])
        e = self.ip.ipifcaddargv(ifc, argv, 0)
        if e is not None:
            return e
        self.connected(c, None)
        return None

    cpdef pclose(self, Conv c):
        cdef Ifc ifc = <Ifc>c.ptcl
        if ifc.medium is not None and ifc.unbindonclose:
            self.ip.ipifcunbind(ifc)

    cpdef object ctl(self, Conv c, object msg, str user=None):
        # "bind" is ipifcbind here, not the generic address bind
        if isinstance(msg, (bytes, bytearray, memoryview)):
            msg = bytes(msg).decode("utf-8", "replace")
        f = parsecmd(msg)
        if f and f[0] == "bind":
            # DEVIATION: binding a medium is eve's (devip lets any user
            # who holds an interface's ctl bind it; here remote clients
            # and other users share the stack)
            if user is not None and (user != self.f.eve or user == "none"):
                raise Net9Error(Eperm)
            e = self.ip.ipifcbindargv(<Ifc>c.ptcl, f)
            if e is not None:
                raise Net9Error(e)
            return None
        return Proto.ctl(self, c, msg, user)

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
# the IP layer

cdef class Ip(IpLayer):
    """The IP layer of one stack (see the module documentation)."""

    def __cinit__(self):
        self.rt = NULL
        self.nrt = 0
        self.art = 0
        self.selfa = NULL
        self.selftype = NULL
        self.nself = 0
        self.rc_idx = -1

    def __dealloc__(self):
        if self.rt != NULL:
            free(self.rt)
        if self.selfa != NULL:
            free(self.selfa)
        if self.selftype != NULL:
            free(self.selftype)

    def __init__(self, Fs f, int maxreasm=64, Py_ssize_t maxreasmbytes=1 << 20,
                 unsigned int fragtimeout=Fragtimeout):
        """Ip(fs): the IP layer of fs (sets fs.ip).  Reassembly keeps at
        most maxreasm datagrams and maxreasmbytes bytes, each for at most
        fragtimeout ms (ip.c: 30 s)."""
        memset(self.stats_, 0, sizeof(self.stats_))
        self.stats_[DefaultTTL] = MAXTTL
        self.f = f
        f.ip = self
        self.ifcs = [None] * Maxmedia
        self.iprouting = 0
        self.id4 = 0
        self.id6 = 0
        self.selfs = {}
        self.selfhash = [[] for _ in range(NHASH)]
        self.reasms = {}
        self.reasmbytes = 0
        self.maxreasm = maxreasm
        self.maxreasmbytes = maxreasmbytes
        self.fragtimeout = fragtimeout
        self.mediatypes = {}
        self.bindhook = None
        self.unbindhook = None
        self.snoopmax = SNOOPMAX
        self.ipifc = IpifcProto(f, self)

    # ------------------------------------------------------------------
    # statistics

    def stat(self, str name):
        """One /net/ipifc/stats counter by name."""
        return self.stats_[statnames.index(name)]

    def stats(self):
        """All counters: {name: value}."""
        return {statnames[i]: self.stats_[i] for i in range(Nipstats)}

    def statstext(self):
        """ip.c ipstats: /net/ipifc/stats, 19 lines "name: value"."""
        return "".join(["%s: %d\n" % (statnames[i], self.stats_[i]) for i in range(Nipstats)])

    def setiprouting(self, int on):
        """ip.c iprouting: forward datagrams for other hosts (on) or drop
        them; the Forwarding counter (1 on, 2 off)."""
        self.iprouting = on
        self.stats_[Forwarding] = 1 if on else 2

    # ------------------------------------------------------------------
    # interfaces

    def addifc(self, medium, name=None):
        """Bind medium to a new interface (a clone of /net/ipifc plus
        "bind"): name is the device name in status (default medium.name).
        Returns the Ifc."""
        cdef Conv c = self.ipifc.clone(self.f.eve)
        cdef Ifc ifc = <Ifc>c.ptcl
        e = self.ipifcbind(ifc, medium, name)
        # the clone's reference was the "open ctl"; the binding holds its own
        c.inuse -= 1
        if e is not None:
            c.p.maybefree(c)
            raise Net9Error(e)
        return ifc

    def ifc(self, int x):
        """The bound interface number x, or None."""
        if 0 <= x < Maxmedia:
            return self.ifcs[x]
        return None

    def ipifcbind(self, Ifc ifc, medium, name=None):
        """ipifcbind for a medium object."""
        if ifc.medium is not None:
            return Ebound
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
        self.flushrouteifc(ifc)
        ifc.conv.rq.reopen()
        ifc.conv.eq.reopen()
        ifc.pq.reopen()
        ifc.sq.reopen()
        self.ifcs[ifc.x] = ifc
        if self.bindhook is not None:
            self.bindhook(ifc, medium)
        return None

    def ipifcbindargv(self, Ifc ifc, list argv):
        """ctl "bind type [dev]": the medium comes from
        mediatypes[type](ifc, argv) (the media register there)."""
        if len(argv) < 2:
            return Ebadarg
        fn = self.mediatypes.get(argv[1])
        if fn is None:
            return Eunknowntype
        if ifc.medium is not None:
            return Ebound
        try:
            medium = fn(ifc, argv)
        except Net9Error as e:
            return str(e)
        return self.ipifcbind(ifc, medium, argv[2] if len(argv) > 2 else
                              "%s%d" % (argv[1], ifc.x))

    def ipifcunbind(self, Ifc ifc):
        """ipifcunbindmedium: drop the addresses, the routes, the medium."""
        if ifc.medium is None:
            return Eunbound
        while ifc.lifcs:
            self.ipifcdellifc(ifc, ifc.lifcs[0])
        ifc.dev = ""
        ifc.reflect = 0
        ifc.reassemble = 0
        ifc.conv.rq.close()
        ifc.conv.wq.close()
        ifc.pq.close()
        ifc.sq.close()
        self.flushrouteifc(ifc)
        if not ifc.unbindonclose:
            ifc.conv.inuse -= 1
        medium = ifc.medium
        ifc.medium = None
        ifc.transmit = None
        ifc.transmitgso = None
        ifc.gso = 0
        self.ifcs[ifc.x] = None
        ifc.conv.p.maybefree(ifc.conv)
        if self.unbindhook is not None:
            self.unbindhook(ifc, medium)
        return None

    def ipifcctl(self, Ifc ifc, list argv):
        """ipifc.c ipifcctl: an error string or None."""
        verb = argv[0]
        n = len(argv)
        if verb == "iprouting":
            self.setiprouting(_atoi(argv[1]) if n > 1 else 1)
            return None
        if verb == "add":
            return self.ipifcaddargv(ifc, argv, 0)
        if verb == "try":
            return self.ipifcaddargv(ifc, argv, 1)
        if verb == "del" or verb == "remove":
            return self.ipifcdelargv(ifc, argv)
        if verb == "unbind":
            return self.ipifcunbind(ifc)
        if verb in ("add6", "del6", "remove6"):
            # DEVIATION: no router advertisements or SLAAC on a TUN link
            return Eunsupported
        if ifc.medium is None:
            return Eunbound
        if verb == "mtu":
            return ifc.setmtu(_strtoul(argv[1]) if n > 1 else 0)
        if verb == "speed":
            ifc.speed = max(0, _atoi(argv[1]) if n > 1 else 0)
            return None
        if verb == "delay":
            ifc.delay = min(1000, max(0, _atoi(argv[1]) if n > 1 else 0))
            return None
        if verb == "reflect":
            ifc.reflect = _atoi(argv[1]) if n > 1 else 1
            return None
        if verb == "reassemble":
            ifc.reassemble = _atoi(argv[1]) if n > 1 else 1
            return None
        if verb == "ra6":
            return self.ipifcra6(ifc, argv)
        return Eunsupported

    def ipifcra6(self, Ifc ifc, list argv):
        args = argv[1:]
        if len(args) % 2:
            return Ebadarg
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
                return Ebadarg
        if rp["maxraint"] < rp["minraint"]:
            return Ebadarg
        ifc.rp = rp
        ifc.sendra6 = sendra
        ifc.recvra6 = recvra
        return None

    def ipifcaddargv(self, Ifc ifc, list argv, int tentative):
        """ipifcadd from ctl fields: add ip [mask [remote [mtu [proxy|trans]]]]."""
        cdef int type = 0, mtu = 0
        n = len(argv)
        try:
            if n == 6 or n == 5 or n == 4:
                if n == 6:
                    if "proxy" in argv[5]:
                        type |= Rproxy
                    if "trans" in argv[5]:
                        type |= Rtrans
                if n >= 5:
                    mtu = _strtoul(argv[4])
                ip = parseip(argv[1])
                m = parseipmask(argv[2], ip[:12] == V4PFX)
                rem = parseip(argv[3])
            elif n == 3:
                ip = parseip(argv[1])
                m = parseipmask(argv[2], ip[:12] == V4PFX)
                rem = maskip(ip, m)
            elif n == 2:
                ip = parseip(argv[1])
                m = defmask(ip)
                rem = maskip(ip, m)
            else:
                return Ebadarg
        except Net9Error:
            return Ebadip
        return self.ipifcadd(ifc, ip, m, rem, mtu, type, tentative)

    def ipifcdelargv(self, Ifc ifc, list argv):
        n = len(argv)
        if n < 3:
            return Ebadarg
        try:
            ip = parseip(argv[1])
            m = parseipmask(argv[2], ip[:12] == V4PFX)
            rem = maskip(ip, m) if n < 4 else parseip(argv[3])
        except Net9Error:
            return Ebadip
        return self.ipifcdel(ifc, ip, m, rem)

    def ipifcadd(self, Ifc ifc, bytes ip, bytes mask, bytes rem, int mtu, int type, bint tentative):
        """ipifc.c ipifcadd with parsed arguments; an error string or None."""
        cdef Lifc lifc
        type |= Rifc
        net = maskip(rem, mask)
        # point to point: a mask of all ones (except the v6 loopback)
        if ip != v6loopback and mask == IPallbits:
            type |= Rptpt
        if ip[:12] == V4PFX or ip == IPnoaddr:
            type |= Rv4
            tentative = 0
        if ifc.medium is None:
            return Eunbound
        if mtu > 0:
            ifc.setmtu(mtu)
        # ignore if this is already a local address for this ifc
        for lifc in ifc.lifcs:
            if lifc.local == ip:
                if lifc.tentative != tentative:
                    lifc.tentative = tentative
                return None
        lifc = Lifc()
        memcpy(lifc.local_, bp(ip), 16)
        memcpy(lifc.mask_, bp(mask), 16)
        memcpy(lifc.remote_, bp(rem), 16)
        memcpy(lifc.net_, bp(net), 16)
        lifc.type = type
        lifc.tentative = tentative
        lifc.origint = self.f.now // 1000
        ifc.lifcs.append(lifc)

        # routes for this logical interface
        if lifc.onlink:
            self.addroute_(rem, mask, ip, IPallbits, rem, type & ~Rtrans, ifc, tifc)
            if v6addrtype(bp(ip)) != linklocalv6:
                self.addroute_(rem, mask, ip, IPnoaddr, rem, type, ifc, tifc)

        self.addselfcache(ifc, lifc, ip, Runi)

        if type & Rptpt:
            return None

        if type & Rv4:
            # subnet directed broadcast and network addresses
            self.addselfcache(ifc, lifc, bytes([(a & m) | (~m & 0xff) for a, m in zip(ip, mask)]), Rbcast)
            self.addselfcache(ifc, lifc, maskip(ip, mask), Rbcast)
            # network directed (classful) broadcast and network addresses
            dm = defmask(ip)
            self.addselfcache(ifc, lifc, bytes([(a & m) | (~m & 0xff) for a, m in zip(ip, dm)]), Rbcast)
            self.addselfcache(ifc, lifc, maskip(ip, dm), Rbcast)
            self.addselfcache(ifc, lifc, IPv4bcast, Rbcast)
            # all systems multicast
            self.addselfcache(ifc, lifc, IPv4allsys, Rmulti)
        else:
            if ip == v6loopback:
                self.addselfcache(ifc, lifc, v6allnodesN, Rmulti)
                self.addroute_(v6allnodesN, v6allnodesNmask, ip, IPallbits,
                               v6allnodesN, Rmulti, ifc, tifc)
            self.addselfcache(ifc, lifc, v6allnodesL, Rmulti)
            self.addroute_(v6allnodesL, v6allnodesLmask, ip, IPallbits,
                           v6allnodesL, Rmulti, ifc, tifc)
            # solicited-node multicast
            self.addselfcache(ifc, lifc, v6solicitednode[:13] + ip[13:], Rmulti)
        return None

    def ipifcdellifc(self, Ifc ifc, Lifc lifc):
        """ipifc.c ipifcdellifc."""
        if lifc not in ifc.lifcs:
            return Enotonifc
        ifc.lifcs.remove(lifc)
        ip = lifc.local
        while lifc.links:
            self.delselfcache(ifc, lifc, lifc.links[0])
        if lifc.onlink:
            self.delroute_(lifc.remote, lifc.mask, ip, IPallbits, lifc.remote,
                           lifc.type & ~Rtrans, ifc, tifc)
            if v6addrtype(lifc.local_) != linklocalv6:
                self.delroute_(lifc.remote, lifc.mask, ip, IPnoaddr, lifc.remote,
                               lifc.type, ifc, tifc)
        if lifc.type & Rptpt:
            return None
        if (lifc.type & Rv4) == 0:
            if ip == v6loopback:
                self.delroute_(v6allnodesN, v6allnodesNmask, ip, IPallbits,
                               v6allnodesN, Rmulti, ifc, tifc)
            self.delroute_(v6allnodesL, v6allnodesLmask, ip, IPallbits,
                           v6allnodesL, Rmulti, ifc, tifc)
        return None

    def ipifcdel(self, Ifc ifc, bytes ip, bytes mask, bytes rem):
        """ipifc.c ipifcdel: the address must match local, mask and remote."""
        cdef Lifc lifc
        for lifc in ifc.lifcs:
            if lifc.local == ip and lifc.mask == mask and lifc.remote == rem:
                return self.ipifcdellifc(ifc, lifc)
        return Enotonifc

    # ------------------------------------------------------------------
    # the self table (ipselftab)

    def addselfcache(self, Ifc ifc, Lifc lifc, bytes a, int type):
        cdef _Ipself p
        if type == Runi:
            type |= lifc.type & Rproxy
        type |= lifc.type & Rv4
        p = self.selfs.get(a)
        if p is None:
            p = _Ipself()
            p.a = a
            p.type = type
            self.selfs[a] = p
            self.selfhash[((a[14] << 8) | a[15]) % NHASH].insert(0, p)
            if a == v4prefix or a == IPnoaddr:
                self.acceptall = 1
            self.selfsync()
        for link in p.links:
            if link[0] is lifc:
                link[1] += 1
                return
        p.links.insert(0, [lifc, 1])
        lifc.links.insert(0, a)
        smask = IPallbits if ((type & (Rbcast | Rmulti)) or v6addrtype(bp(a)) == linklocalv6) else IPnoaddr
        self.addroute_(a, IPallbits, lifc.local, smask, a, type, ifc, tifc)

    def delselfcache(self, Ifc ifc, Lifc lifc, bytes a):
        cdef _Ipself p = self.selfs.get(a)
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
        self.delroute_(a, IPallbits, lifc.local, smask, a, p.type, ifc, tifc)
        p.links.remove(link)
        lifc.links.remove(a)
        if p.links:
            return
        if a == v4prefix or a == IPnoaddr:
            self.acceptall = 0
        del self.selfs[a]
        self.selfhash[((a[14] << 8) | a[15]) % NHASH].remove(p)
        self.selfsync()

    def addmulti(self, ma, ia):
        """ipifc.c ipifcaddmulti's part in the self table: the multicast
        group ma becomes a self address (Rmulti) of the interface that has
        the address ia (joins are counted; remmulti undoes one).  Returns
        False when no interface has ia."""
        cdef Lifc lifc
        m = addr16(ma)
        a = addr16(ia)
        if (m[:12] == V4PFX) != (a[:12] == V4PFX):
            raise Net9Error(errors.Eincompatmulti)
        ifc = self.findipifc(a, m, Rmulti)
        if ifc is None:
            return False
        for lifc in (<Ifc>ifc).lifcs:
            if lifc.local == a:
                self.addselfcache(ifc, lifc, m, Rmulti)
                return True
        return False

    def remmulti(self, ma, ia):
        """ipifc.c ipifcremmulti's part: undo one addmulti."""
        cdef Lifc lifc
        m = addr16(ma)
        a = addr16(ia)
        ifc = self.findipifc(a, m, Rmulti)
        if ifc is None:
            return False
        for lifc in (<Ifc>ifc).lifcs:
            if lifc.local == a:
                self.delselfcache(ifc, lifc, m)
                return True
        return False

    def selfsync(self):
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

    cdef int forme(self, const unsigned char *a) except -1:
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

    cpdef int ipforme(self, bytes addr):
        if addr is None or len(addr) != 16:
            return 0
        return self.forme(bp(addr))

    cpdef int forme16(self, bytes a):
        return self.ipforme(a)

    def ipselftabtext(self):
        """ipselftabread: one line per self address, hash chain order."""
        cdef _Ipself p
        out = []
        for chain in self.selfhash:
            for p in chain:
                out.append(_selftabfmt % (fmtip(p.a), len(p.links), routetype(p.type)))
        return "".join(out)

    def selftab(self):
        """{address string: (type string, number of links)}."""
        cdef _Ipself p
        return {fmtip(p.a): (routetype(p.type), len(p.links)) for p in self.selfs.values()}

    # ------------------------------------------------------------------
    # routes (iproute.c)

    cdef int rtfind(self, Rt *r) noexcept:
        # the route with the same target and source ranges (Requals)
        cdef int i
        cdef Rt *p
        for i in range(self.nrt):
            p = &self.rt[i]
            if ((p.type ^ r.type) & Rv4) == 0 and memcmp(p.a, r.a, 16) == 0 \
                    and memcmp(p.m, r.m, 16) == 0 and memcmp(p.s, r.s, 16) == 0 \
                    and memcmp(p.sm, r.sm, 16) == 0:
                return i
        return -1

    cdef int rtinsert(self, Rt *r) except -1:
        cdef int i, j
        cdef Rt *nrt
        if self.nrt == self.art:
            j = self.art * 2 if self.art else 16
            nrt = <Rt*>realloc(self.rt, sizeof(Rt) * j)
            if nrt == NULL:
                raise MemoryError()
            self.rt = nrt
            self.art = j
        # most specific target first, then most specific source, then oldest
        i = 0
        while i < self.nrt and (self.rt[i].plen > r.plen
                                or (self.rt[i].plen == r.plen and self.rt[i].splen >= r.splen)):
            i += 1
        if i < self.nrt:
            memmove_rt(self.rt, i + 1, i, self.nrt - i)
        self.rtseq += 1
        r.seq = self.rtseq
        self.rt[i] = r[0]
        self.nrt += 1
        self.rgen += 1
        return 0

    cdef void rtremove(self, int i) noexcept:
        if i < self.nrt - 1:
            memmove_rt(self.rt, i, i + 1, self.nrt - i - 1)
        self.nrt -= 1
        self.rgen += 1

    cdef int mkroute(self, Rt *r, bytes a, bytes mask, bytes s, bytes smask, bytes gate,
                     int type, Ifc ifc, bytes tag) except -1:
        """iproute.c mkroute: addresses masked; Rsrc when the source mask
        is not empty; v4 routes keep v4-mapped addresses and masks."""
        cdef int i
        cdef bint srcspec = 0
        memset(r, 0, sizeof(Rt))
        r.type = type
        if type & Rv4:
            memcpy(r.m, <const char*>IPallbits, 12)
            memcpy(r.m + 12, bp(mask) + 12, 4)
            memcpy(r.sm, <const char*>IPallbits, 12)
            memcpy(r.sm + 12, bp(smask) + 12, 4)
            srcspec = memcmp(bp(smask) + 12, b"\0\0\0\0", 4) != 0
            memcpy(r.gate, <const char*>V4PFX, 12)
            memcpy(r.gate + 12, bp(gate) + 12, 4)
            memcpy(r.a, <const char*>V4PFX, 12)
            memcpy(r.s, <const char*>V4PFX, 12)
            for i in range(12, 16):
                r.a[i] = bp(a)[i] & r.m[i]
                r.s[i] = bp(s)[i] & r.sm[i]
        else:
            memcpy(r.m, bp(mask), 16)
            memcpy(r.sm, bp(smask), 16)
            srcspec = not iszero16(r.sm)
            memcpy(r.gate, bp(gate), 16)
            for i in range(16):
                r.a[i] = bp(a)[i] & r.m[i]
                r.s[i] = bp(s)[i] & r.sm[i]
        if srcspec:
            r.type |= Rsrc
        r.plen = popcount16(r.m)
        r.splen = popcount16(r.sm)
        r.ifcx = ifc.x
        r.ifcid = ifc.ifcid
        t = (tag or b"")[:4]
        memset(r.tag, 0, 4)
        memcpy(r.tag, <const char*>t, len(t))
        r.ref = 1
        return 0

    cdef bint matchroute(self, Rt *a, Rt *b, bint anyifc) noexcept:
        # iproute.c matchroute (a: the request)
        if (a.type ^ b.type) & (Rifc | Runi | Rmulti | Rbcast):
            return 0
        if a.type & Rv4:
            if memcmp(a.gate + 12, b"\0\0\0\0", 4) != 0 and memcmp(a.gate + 12, b.gate + 12, 4) != 0:
                return 0
        else:
            if not iszero16(a.gate) and memcmp(a.gate, b.gate, 16) != 0:
                return 0
        if not anyifc and a.ifcx != b.ifcx:
            return 0
        if a.tag[0] != 0 and memcmp(a.tag, b.tag, 4) != 0:
            return 0
        return 1

    cdef int routeadd(self, Rt *r) except -1:
        cdef int i = self.rtfind(r)
        cdef Rt *p
        if i < 0:
            return self.rtinsert(r)
        p = &self.rt[i]
        if (p.type & Rifc) == 0:
            # copygate: supersede the old entry if it is not an interface's
            p.type = r.type
            p.ifcx = r.ifcx
            p.ifcid = r.ifcid
            memcpy(p.gate, r.gate, 16)
            memcpy(p.tag, r.tag, 4)
        elif r.type & Rifc:
            p.type = (p.type & ~(Rproxy | Rtrans)) | (r.type & (Rproxy | Rtrans))
            p.ref += 1
        self.rgen += 1
        return 0

    cdef bint routedel(self, Rt *r, bint anyifc) noexcept:
        cdef int i = self.rtfind(r)
        cdef Rt *p
        if i < 0:
            return 0
        p = &self.rt[i]
        if (p.type & Rifc) == 0 and not self.matchroute(r, p, anyifc):
            return 0
        p.ref -= 1
        if p.ref <= 0:
            self.rtremove(i)
        self.rgen += 1
        return 1

    def addroute_(self, bytes a, bytes mask, bytes s, bytes smask, bytes gate, int type,
                  Ifc ifc, bytes tag):
        cdef Rt r
        self.mkroute(&r, a, mask, s, smask, gate, type, ifc, tag)
        self.routeadd(&r)

    def delroute_(self, bytes a, bytes mask, bytes s, bytes smask, bytes gate, int type,
                  Ifc ifc, bytes tag):
        cdef Rt r
        self.mkroute(&r, a, mask, s, smask, gate, type, ifc, tag)
        return self.routedel(&r, 0)

    def flushrouteifc(self, Ifc ifc):
        """Remove every route through ifc; its old routes no longer pertain."""
        cdef int i = 0
        while i < self.nrt:
            if self.rt[i].ifcx == ifc.x:
                self.rtremove(i)
            else:
                i += 1
        ifc.ifcid += 1
        self.rgen += 1

    def findifcarg(self, ifc):
        """findipifcstr: an Ifc, an interface number (int or string) or a
        local address; None when not found."""
        if ifc is None:
            return None
        if isinstance(ifc, Ifc):
            return ifc if (<Ifc>ifc).medium is not None else None
        if isinstance(ifc, int):
            return self.ifc(ifc)
        s = str(ifc)
        if s.isdigit():
            return self.ifc(int(s))
        try:
            a = parseip(s)
        except Net9Error:
            return None
        return self.findipifc(a, a, Runi)

    def findipifc(self, bytes local, bytes remote, int type):
        """ipifc.c findipifc: the interface on the same net as remote."""
        cdef Ifc ifc, x = None
        cdef Lifc lifc
        cdef int spec, xspec = 0
        for ifc in self.ifcs:
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

    def addroute(self, dst, mask, gate=None, ifc=None, src=None, smask=None, type=None, tag="none"):
        """Add (or replace) a route (iproute "add"): dst and mask (see
        mask16), next hop gate (None: on-link), ifc (an Ifc, interface
        number or local address; default: the interface on gate's net),
        optional source address and mask (a source specific route), type
        string ("4", "6i", ...), tag (4 characters).  Raises
        Net9Error("interface not found") when no interface fits."""
        cdef Rt r
        cdef int t
        a = addr16(dst)
        m = mask16(mask, a)
        g = IPnoaddr if gate is None else addr16(gate)
        if src is None:
            s = IPnoaddr
            sm = IPnoaddr
        else:
            s = addr16(src)
            sm = mask16(smask, s) if smask is not None else IPallbits
        t = 0 if type is None else parseroutetype(type)
        if t < 0:
            raise Net9Error(Ebadctl)
        if a[:12] == V4PFX:
            t |= Rv4
        if t & Rv4:
            if sm != IPnoaddr and s[:12] != V4PFX:
                raise Net9Error(Ebadip)
            if g != IPnoaddr and g[:12] != V4PFX:
                raise Net9Error(Ebadip)
        x = self.findifcarg(ifc) if ifc is not None else self.findipifc(s, g, t)
        if x is None:
            raise Net9Error(Enoifc)
        tb = tag.encode() if isinstance(tag, str) else bytes(tag)
        self.mkroute(&r, a, m, s, sm, g, t, x, tb)
        self.routeadd(&r)

    def delroute(self, dst, mask, gate=None, ifc=None, src=None, smask=None, tag=None):
        """Remove a route (iproute "del").  Without gate and ifc any
        route for that target (and source) that is not an interface's
        matches.  Returns True when one was removed."""
        cdef Rt r
        cdef Ifc x
        cdef int t = 0
        a = addr16(dst)
        m = mask16(mask, a)
        g = IPnoaddr if gate is None else addr16(gate)
        if src is None:
            s = IPnoaddr
            sm = IPnoaddr
        else:
            s = addr16(src)
            sm = mask16(smask, s) if smask is not None else IPallbits
        if a[:12] == V4PFX:
            t |= Rv4
        anyifc = ifc is None and gate is None
        if ifc is not None:
            x = self.findifcarg(ifc)
        elif gate is not None:
            x = self.findipifc(s, g, t)
        else:
            x = None
        if x is None:
            if not anyifc:
                raise Net9Error(Enoifc)
            x = Ifc()
            x.x = -1
        tb = b"" if tag is None else (tag.encode() if isinstance(tag, str) else bytes(tag))
        self.mkroute(&r, a, m, s, sm, g, t, x, tb)
        return bool(self.routedel(&r, anyifc))

    def flushroutes(self, tag=None):
        """iproute "flush [tag]": remove every route that is not an
        interface route (with that tag)."""
        cdef int i = 0
        cdef bytes tb = None
        if tag is not None:
            tb = ((tag.encode() if isinstance(tag, str) else bytes(tag)) + b"\0\0\0\0")[:4]
        while i < self.nrt:
            if (self.rt[i].type & Rifc) == 0 and (tb is None or memcmp(self.rt[i].tag, <const char*>tb, 4) == 0):
                self.rtremove(i)
            else:
                i += 1
        self.rgen += 1

    def routewrite(self, msg, str tag="none"):
        """A write to /net/iproute (iproute.c routewrite): flush, add, del,
        remove, tag.  tag is the writing fid's tag; returns the fid's tag
        afterwards.  Raises Net9Error."""
        cdef Rt r
        f = parsecmd(msg)
        if len(f) < 1:
            raise Net9Error(Eshortctl)
        verb = f[0]
        if verb == "flush":
            self.flushroutes(f[1] if len(f) > 1 else None)
            return tag
        if verb == "tag":
            if len(f) < 2:
                raise Net9Error(Ebadarg)
            return f[1][:4]
        if verb not in ("add", "del", "remove"):
            raise Net9Error(Ebadctl)
        self.parseroute(&r, f)
        if r.tag[0] == 0:
            t = tag.encode()[:4]
            memcpy(r.tag, <const char*>t, len(t))
        if verb == "add":
            self.routeadd(&r)
        else:
            self.routedel(&r, 0)
        return tag

    cdef int parseroute(self, Rt *r, list argv) except -1:
        # iproute.c parseroute
        cdef int argc = len(argv), type = 0
        gate = IPnoaddr
        src = IPnoaddr
        smask = IPnoaddr
        ifcstr = None
        tag = None
        if argc < 3:
            raise Net9Error(Ebadctl)
        try:
            addr = parseip(argv[1])
            mask = parseipmask(argv[2], addr[:12] == V4PFX)
            if argv[0] == "add" or (argc > 3 and argc != 5):
                if argc < 4:
                    raise Net9Error(Ebadctl)
                gate = parseip(argv[3])
            if argc > 4 and (argv[0] != "add" or argc != 5):
                src = parseip(argv[argc - 2])
                smask = parseipmask(argv[argc - 1], src[:12] == V4PFX)
        except Net9Error as e:
            if str(e) == Ebadctl:
                raise
            raise Net9Error(Ebadip)
        if argc == 5 and argv[0] == "add":
            ifcstr = argv[4]
        elif argc > 6:
            ifcstr = argv[argc - 3]
        if argc > 7:
            type = parseroutetype(argv[4])
            if type < 0:
                raise Net9Error(Ebadctl)
        if addr[:12] == V4PFX:
            type |= Rv4
        if argc > 8:
            tag = argv[5].encode()
        if argc > 9:
            raise Net9Error(Ebadctl)
        if type & Rv4:
            if smask != IPnoaddr and src[:12] != V4PFX:
                raise Net9Error(Ebadip)
            if gate != IPnoaddr and gate[:12] != V4PFX:
                raise Net9Error(Ebadip)
        elif addr[:12] == V4PFX:
            raise Net9Error(Ebadip)
        if ifcstr is not None:
            ifc = self.findifcarg(ifcstr)
        else:
            ifc = self.findipifc(src, gate, type)
        if ifc is None:
            raise Net9Error(Enoifc)
        self.mkroute(r, addr, mask, src, smask, gate, type, ifc, tag)
        return 0

    def routes(self):
        """The routes, most specific first: dicts with dst, mask, gate,
        type, tag, ifc, src, smask (strings) and ref."""
        cdef int i
        out = []
        for i in range(self.nrt):
            out.append(self.rtdict(i))
        return out

    cdef dict rtdict(self, int i):
        cdef Rt *r = &self.rt[i]
        return {"dst": fmtip(PyBytes_FromStringAndSize(<char*>r.a, 16)),
                "mask": fmtmask(PyBytes_FromStringAndSize(<char*>r.m, 16)),
                "gate": fmtip(PyBytes_FromStringAndSize(<char*>r.gate, 16)),
                "type": routetype(r.type),
                "tag": PyBytes_FromStringAndSize(r.tag, 4).rstrip(b"\0").decode("latin-1"),
                "ifc": r.ifcx,
                "src": fmtip(PyBytes_FromStringAndSize(<char*>r.s, 16)),
                "smask": fmtmask(PyBytes_FromStringAndSize(<char*>r.sm, 16)),
                "ref": r.ref}

    def iproutetext(self):
        """/net/iproute (iproute.c routeread): v4 routes, then v6, in
        devip's tree order (root table bucket, then ascending ranges,
        containing before contained)."""
        cdef int i
        cdef Rt *r
        keys = []
        for i in range(self.nrt):
            r = &self.rt[i]
            if r.type & Rv4:
                la = nhgetl(r.a + 12)
                h = (la & 0x07ffffff) >> (32 - Lroot - 5)
                key = (0, h, PyBytes_FromStringAndSize(<char*>r.a, 16), r.plen,
                       PyBytes_FromStringAndSize(<char*>r.s, 16), r.splen, r.seq)
            else:
                h = ((nhgetl(r.a) & 0x80000000) >> (32 - Lroot)) | (nhgetl(r.a + 4) & (0xffff >> (16 - Lroot)))
                key = (1, h, PyBytes_FromStringAndSize(<char*>r.a, 16), r.plen,
                       PyBytes_FromStringAndSize(<char*>r.s, 16), r.splen, r.seq)
            keys.append((key, i))
        keys.sort()
        out = []
        for key, i in keys:
            r = &self.rt[i]
            tag = PyBytes_FromStringAndSize(r.tag, 4).split(b"\0", 1)[0].decode("latin-1")
            out.append(_routefmt % (
                fmtip(PyBytes_FromStringAndSize(<char*>r.a, 16)),
                fmtmask(PyBytes_FromStringAndSize(<char*>r.m, 16)),
                fmtip(PyBytes_FromStringAndSize(<char*>r.gate, 16)),
                routetype(r.type), tag, str(r.ifcx),
                fmtip(PyBytes_FromStringAndSize(<char*>r.s, 16)),
                fmtmask(PyBytes_FromStringAndSize(<char*>r.sm, 16))))
        return "".join(out)

    cdef int rlookup(self, const unsigned char *dst, const unsigned char *src, bint v4) noexcept:
        """v4lookup/v6lookup: the most specific route to dst from src, as
        an index into rt, or -1."""
        cdef int i
        cdef Rt *r
        if (self.rc_gen == self.rgen and self.rc_idx >= 0
                and memcmp(self.rc_dst, dst, 16) == 0 and memcmp(self.rc_src, src, 16) == 0):
            return self.rc_idx
        for i in range(self.nrt):
            r = &self.rt[i]
            if ((r.type & Rv4) != 0) != v4:
                continue
            if not maskeq(dst, r.a, r.m):
                continue
            if (r.type & Rsrc) and not maskeq(src, r.s, r.sm):
                continue
            memcpy(self.rc_dst, dst, 16)
            memcpy(self.rc_src, src, 16)
            self.rc_gen = self.rgen
            self.rc_idx = i
            return i
        return -1

    cdef Ifc rtifc(self, int i):
        # the route's interface, None when it went away
        cdef Rt *r = &self.rt[i]
        cdef Ifc ifc
        if r.ifcx < 0 or r.ifcx >= Maxmedia:
            return None
        ifc = <Ifc>self.ifcs[r.ifcx]
        if ifc is None or ifc.medium is None or ifc.ifcid != r.ifcid:
            return None
        return ifc

    def lookup(self, dst, src=None):
        """The route to dst (from src) as a dict (see routes()), or None."""
        a = addr16(dst)
        s = IPnoaddr if src is None else addr16(src)
        i = self.rlookup(bp(a), bp(s), a[:12] == V4PFX)
        if i < 0:
            return None
        return self.rtdict(i)

    # ------------------------------------------------------------------
    # IpLayer: what the transports use

    cpdef object route(self, int version, bytes raddr, bytes laddr):
        """(mtu, direct) of the first hop toward raddr: the interface's
        maxtu less the medium header, and whether the route is an
        interface or unicast self route; None without a route."""
        cdef int i
        cdef Ifc ifc
        if raddr is None or len(raddr) != 16:
            return None
        if laddr is None or len(laddr) != 16:
            laddr = IPnoaddr
        i = self.rlookup(bp(raddr), bp(laddr), isv4c(bp(raddr)))
        if i < 0:
            return None
        ifc = self.rtifc(i)
        if ifc is None:
            return None
        return (ifc.maxtu - ifc.hsize, (self.rt[i].type & (Rifc | Runi)) != 0)

    cpdef bint isself(self, bytes addr):
        if addr is None or len(addr) != 16:
            return 0
        return self.forme(bp(addr)) != 0

    cpdef bytes findlocalip(self, bytes raddr):
        """ipifc.c findlocalip: the source address of the best route to
        raddr (v4source/v6source), else the first v4 address, or the best
        v6 address (global > ULA > link-local), else ::."""
        cdef unsigned char local[16]
        if raddr is None or len(raddr) != 16:
            return IPnoaddr
        if isv4c(bp(raddr)):
            memcpy(local, <const char*>V4PFX, 12)
            if self.v4source(bp(raddr) + 12, local + 12):
                return PyBytes_FromStringAndSize(<char*>local, 16)
            return self.findprimaryipv4()
        if self.v6source(bp(raddr), local):
            return PyBytes_FromStringAndSize(<char*>local, 16)
        return self.findprimaryipv6()

    cdef bint v4source(self, const unsigned char *a4, unsigned char *s4):
        cdef int i, splen
        cdef Rt *r
        cdef Ifc ifc
        cdef unsigned char a[16]
        cdef unsigned char src[4]
        cdef const unsigned char *rem
        v4tov6c(a, a4)
        for i in range(self.nrt):
            r = &self.rt[i]
            if (r.type & Rv4) == 0 or not maskeq(a, r.a, r.m):
                continue
            ifc = self.rtifc(i)
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
            if not self.v4local(ifc, src, splen, rem):
                continue
            memcpy(s4, src, 4)
            return 1
        return 0

    cdef bint v6source(self, const unsigned char *a, unsigned char *s):
        cdef int i, splen
        cdef Rt *r
        cdef Ifc ifc
        cdef unsigned char src[16]
        for i in range(self.nrt):
            r = &self.rt[i]
            if (r.type & Rv4) or not maskeq(a, r.a, r.m):
                continue
            ifc = self.rtifc(i)
            if ifc is None:
                continue
            splen = 0
            memset(src, 0, 16)
            if r.type & Rsrc:
                splen = masklen(r.sm, 16)
                memcpy(src, r.s, 16)
            if not self.v6local(ifc, src, splen, a):
                continue
            memcpy(s, src, 16)
            return 1
        return 0

    cdef bint v4local(self, Ifc ifc, unsigned char *local4, int prefixlen, const unsigned char *remote4):
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

    cdef bint v6local(self, Ifc ifc, unsigned char *local, int prefixlen, const unsigned char *remote):
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
            return self.v4local(ifc, local + 12, prefixlen, remote + 12)
        atype = v6addrtype(remote)
        b_atype = unknownv6
        b_dep = 1
        b_cpl = 0
        now = self.f.now // 1000
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

    cpdef bytes ipv4local(self, object ifc, bytes remote):
        """ipv4local(ifc, 0, remote): a 16-byte address or None; without
        an interface (ifc None), IpLayer's (findlocalip's, when v4)."""
        cdef unsigned char l[4]
        if not isinstance(ifc, Ifc):
            return IpLayer.ipv4local(self, ifc, remote)
        if remote is None or len(remote) != 16:
            return None
        if self.v4local(<Ifc>ifc, l, 0, bp(remote) + 12):
            return V4PFX + PyBytes_FromStringAndSize(<char*>l, 4)
        return None

    cpdef bytes ipv6local(self, object ifc, bytes remote):
        """ipv6local(ifc, 0, remote): a 16-byte address or None; without
        an interface (ifc None), IpLayer's (findlocalip's)."""
        cdef unsigned char l[16]
        if not isinstance(ifc, Ifc):
            return IpLayer.ipv6local(self, ifc, remote)
        if remote is None or len(remote) != 16:
            return None
        memset(l, 0, 16)
        if self.v6local(<Ifc>ifc, l, 0, bp(remote)):
            return PyBytes_FromStringAndSize(<char*>l, 16)
        return None

    cpdef bytes ifcaddr(self, object ifc):
        """ifc->lifc->local: the interface's first address, or None."""
        if not isinstance(ifc, Ifc) or not (<Ifc>ifc).lifcs:
            return None
        return (<Lifc>(<Ifc>ifc).lifcs[0]).local

    cpdef bint iplocalonifc(self, object ifc, bytes addr):
        """ipifc.c iplocalonifc: addr is one of ifc's addresses (true
        without an interface)."""
        cdef Lifc l
        if not isinstance(ifc, Ifc):
            return True
        for l in (<Ifc>ifc).lifcs:
            if l.local == addr:
                return True
        return False

    cpdef icmpnoconv(self, object ifc, object pkt):
        """Port unreachable about pkt (received on ifc) through the
        stack's ICMP, if it has one."""
        self.icmperr("icmpnoconv", ifc, pkt, None)

    cpdef icmpnoconv6(self, object ifc, object pkt):
        self.icmperr("icmpnoconv6", ifc, pkt, None)

    def findprimaryipv4(self):
        cdef Ifc ifc
        cdef Lifc lifc
        for ifc in self.ifcs:
            if ifc is None:
                continue
            for lifc in ifc.lifcs:
                if lifc.type & Rv4:
                    return lifc.local
        return IPnoaddr

    def findprimaryipv6(self):
        cdef Ifc ifc
        cdef Lifc lifc
        cdef int atype = unspecifiedv6, atypel
        cdef unsigned int now = self.f.now // 1000
        best = IPnoaddr
        for ifc in self.ifcs:
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

    # ------------------------------------------------------------------
    # output

    cpdef int ipoput(self, int version, bytearray pkt, int ttl, int tos, object rh) except? -2:
        """ipoput4/ipoput6: route, fill in the header, fragment to the
        interface MTU and transmit.  -1 when there is no route."""
        if version == V4:
            return self.oput4(pkt, ttl, tos, 0)
        if version == V6:
            return self.oput6(pkt, ttl, tos, 0)
        self.stats_[OutRequests] += 1
        self.stats_[OutDiscards] += 1
        return 0

    cpdef int ipoputgso(self, int version, bytearray pkt, int ttl, int tos, object rh,
                        int mss) except? -2:
        """Beyond devip: ipoput for a TCP super-packet, which an interface
        with segmentation offload takes whole (its medium cuts it into
        segments of mss payload bytes); any other interface gets it
        fragmented as ipoput would."""
        if version == V4:
            return self.oput4(pkt, ttl, tos, mss)
        if version == V6:
            return self.oput6(pkt, ttl, tos, mss)
        self.stats_[OutRequests] += 1
        self.stats_[OutDiscards] += 1
        return 0

    cpdef int gso(self, int version, bytes raddr, bytes laddr):
        """The offload capacity (Ifc.gso) of the interface of the route
        toward raddr; 0 without one."""
        cdef int i
        cdef Ifc ifc
        if raddr is None or len(raddr) != 16:
            return 0
        if laddr is None or len(laddr) != 16:
            laddr = IPnoaddr
        i = self.rlookup(bp(raddr), bp(laddr), isv4c(bp(raddr)))
        if i < 0:
            return 0
        ifc = self.rtifc(i)
        if ifc is None:
            return 0
        return ifc.gso

    cdef snooplost(self, Ifc ifc):
        # a copy the snoop queue had no room for (counted in sq.drops);
        # said in the log (ip) at the 1st, 2nd, 4th, 8th... loss
        cdef unsigned long long n = ifc.sq.drops
        if n and (n & (n - 1)) == 0 and not ifc.sq.closed and self.f.log.mask & Logip:
            self.f.log.log(Logip, "ipifc %d snoop: %d copies lost (a reader that does not keep up)\n"
                           % (ifc.x, n))

    cdef int ifcoput(self, Ifc ifc, object pkt) except -1:
        ifc.pktout += 1
        if ifc.snoopers > 0 and not ifc.sq.put(pkt):
            self.snooplost(ifc)
        try:
            ifc.transmit(pkt)
        except OSError:
            ifc.errout += 1
        return 0

    cdef int ifcoputgso(self, Ifc ifc, object pkt, int mss) except -1:
        ifc.pktout += 1
        if ifc.snoopers > 0 and not ifc.sq.put(pkt):
            self.snooplost(ifc)
        try:
            ifc.transmitgso(pkt, mss)
        except OSError:
            ifc.errout += 1
        return 0

    cdef int oput4(self, bytearray pkt, int ttl, int tos, int gsomss) except? -2:
        cdef Py_ssize_t n = PyByteArray_GET_SIZE(pkt)
        cdef unsigned char *p = <unsigned char*>PyByteArray_AS_STRING(pkt)
        cdef unsigned char *q
        cdef unsigned char dst[16]
        cdef unsigned char src[16]
        cdef int i, medialen, hlen, seglen, dlen, fragoff, lid
        cdef Ifc ifc
        self.stats_[OutRequests] += 1
        if n < IP4HDR or n >= IP_MAX:
            self.stats_[OutDiscards] += 1
            return 0
        v4tov6c(dst, p + 16)
        v4tov6c(src, p + 12)
        i = self.rlookup(dst, src, 1)
        if i < 0:
            self.stats_[OutNoRoutes] += 1
            if self.f.log.mask & Logip:
                self.f.log.log(Logip, "%s -> %s: no interface\n" % (
                    fmtip(PyBytes_FromStringAndSize(<char*>src, 16)),
                    fmtip(PyBytes_FromStringAndSize(<char*>dst, 16))))
            return -1
        ifc = self.rtifc(i)
        if ifc is None:
            return 0
        medialen = ifc.maxtu - ifc.hsize
        p[0] = 0x45
        p[1] = tos
        p[8] = ttl
        if n <= medialen or (gsomss > 0 and n <= ifc.gso):
            hnputs(p + 2, <unsigned int>n)
            self.id4 += 1
            hnputs(p + 4, self.id4 & 0xffff)
            p[6] = 0
            p[7] = 0
            p[10] = 0
            p[11] = 0
            hnputs(p + 10, ipcsum(p))
            if n <= medialen:
                self.ifcoput(ifc, pkt)
            else:
                # a TCP super-packet the medium segments (GSO): Linux
                # gives the segments consecutive ids from this one
                self.id4 += (n - IP4HDR) // gsomss
                self.ifcoputgso(ifc, pkt, gsomss)
            return 0
        if p[6] & (IP_DF >> 8):
            # icmpcantfrag answers only datagrams addressed to us
            self.stats_[FragFails] += 1
            self.stats_[OutDiscards] += 1
            if self.f.log.mask & Logip:
                self.f.log.log(Logip, "can't fragment with DF flag set\n")
            return 0
        hlen = IP4HDR
        seglen = (medialen - hlen) & ~7
        if seglen < 8:
            self.stats_[FragFails] += 1
            self.stats_[OutDiscards] += 1
            return 0
        dlen = n - hlen
        self.id4 += 1
        lid = self.id4 & 0xffff
        fragoff = 0
        while fragoff < dlen:
            if fragoff + seglen >= dlen:
                seglen = dlen - fragoff
                i = fragoff >> 3
            else:
                i = (fragoff >> 3) | IP_MF
            nb = PyByteArray_FromStringAndSize(NULL, hlen + seglen)
            q = <unsigned char*>PyByteArray_AS_STRING(nb)
            memcpy(q, p, hlen)
            hnputs(q + 6, i)
            hnputs(q + 2, hlen + seglen)
            hnputs(q + 4, lid)
            q[10] = 0
            q[11] = 0
            hnputs(q + 10, ipcsum(q))
            memcpy(q + hlen, p + hlen + fragoff, seglen)
            self.ifcoput(ifc, nb)
            self.stats_[FragCreates] += 1
            fragoff += seglen
        self.stats_[FragOKs] += 1
        return 0

    cdef int oput6(self, bytearray pkt, int ttl, int tos, int gsomss) except? -2:
        cdef Py_ssize_t n = PyByteArray_GET_SIZE(pkt)
        cdef unsigned char *p = <unsigned char*>PyByteArray_AS_STRING(pkt)
        cdef unsigned char *q
        cdef int i, medialen, uflen, flen, seglen, fragoff, more, nh, qoff
        cdef unsigned int lid
        cdef Ifc ifc
        self.stats_[OutRequests] += 1
        if n < IP6HDR or n >= IP_MAX:
            self.stats_[OutDiscards] += 1
            return 0
        i = self.rlookup(p + 24, p + 8, 0)
        if i < 0:
            self.stats_[OutNoRoutes] += 1
            if self.f.log.mask & Logip:
                self.f.log.log(Logip, "%s -> %s: no interface\n" % (
                    fmtip(PyBytes_FromStringAndSize(<char*>p + 8, 16)),
                    fmtip(PyBytes_FromStringAndSize(<char*>p + 24, 16))))
            return -1
        ifc = self.rtifc(i)
        if ifc is None:
            return 0
        medialen = ifc.maxtu - ifc.hsize
        p[0] = 0x60 | ((tos >> 4) & 0x0f)
        p[1] = (tos << 4) & 0xf0
        p[7] = ttl
        if n <= medialen:
            hnputs(p + 4, <unsigned int>(n - IP6HDR))
            self.ifcoput(ifc, pkt)
            return 0
        if gsomss > 0 and n - IP6HDR <= ifc.gso:
            hnputs(p + 4, <unsigned int>(n - IP6HDR))
            self.ifcoputgso(ifc, pkt, gsomss)
            return 0
        # the unfragmentable part: the header, hop-by-hop and routing headers
        uflen = IP6HDR
        qoff = 6
        nh = p[6]
        while nh == HBH or nh == RH:
            if uflen + 2 > n:
                uflen = -1
                break
            qoff = uflen
            nh = p[uflen]
            uflen += (p[uflen + 1] + 1) * 8
        if uflen < IP6HDR or uflen > n or nh == FH:
            self.stats_[FragFails] += 1
            self.stats_[OutDiscards] += 1
            return 0
        if uflen > medialen:
            self.stats_[FragFails] += 1
            self.stats_[OutDiscards] += 1
            return 0
        flen = n - uflen
        seglen = (medialen - (uflen + IP6FHDR)) & ~7
        if seglen < 8:
            self.stats_[FragFails] += 1
            self.stats_[OutDiscards] += 1
            return 0
        self.id6 += 1
        lid = self.id6
        p[qoff] = FH
        fragoff = 0
        more = 1
        while fragoff < flen:
            if fragoff + seglen >= flen:
                seglen = flen - fragoff
                more = 0
            nb = PyByteArray_FromStringAndSize(NULL, uflen + IP6FHDR + seglen)
            q = <unsigned char*>PyByteArray_AS_STRING(nb)
            memcpy(q, p, uflen)
            # DEVIATION: ipoput6 writes seglen+IP6FHDR, leaving out any
            # hop-by-hop/routing headers in the unfragmentable part
            hnputs(q + 4, uflen - IP6HDR + IP6FHDR + seglen)
            q[uflen] = nh
            q[uflen + 1] = 0
            hnputs(q + uflen + 2, fragoff | more)
            hnputl(q + uflen + 4, lid)
            memcpy(q + uflen + IP6FHDR, p + uflen + fragoff, seglen)
            self.ifcoput(ifc, nb)
            self.stats_[FragCreates] += 1
            fragoff += seglen
        self.stats_[FragOKs] += 1
        return 0

    # ------------------------------------------------------------------
    # input

    cpdef int input(self, Ifc ifc, object pkt, int gso=0) except -1:
        """One datagram received on ifc (bytes-like): check, count,
        reassemble, strip options and extension headers, deliver through
        the protocol switch (Fs.ipproto), or forward it when it is for
        another host and iprouting is on.  gso: for a TCP super-packet
        from a medium with receive offload, the size of the segments it
        stands for (0: an ordinary datagram)."""
        cdef Py_buffer view
        cdef const unsigned char *p
        cdef int r
        if ifc is None:
            raise TypeError("input: no interface")
        if ifc.snoopers > 0 and not ifc.sq.put(pkt):
            self.snooplost(ifc)
        PyObject_GetBuffer(pkt, &view, PyBUF_SIMPLE)
        try:
            p = <const unsigned char*>view.buf
            ifc.pktin += 1
            if view.len >= 1 and (p[0] & 0xf0) == 0x40:
                r = self.input4(ifc, pkt, p, view.len, gso)
            else:
                r = self.input6(ifc, pkt, p, view.len, gso)
        finally:
            PyBuffer_Release(&view)
        return r

    def inputmany(self, Ifc ifc, pkts):
        """input() for each datagram of an iterable."""
        for pkt in pkts:
            self.input(ifc, pkt)

    # ------------------------------------------------------------------
    # forwarding: ipiput4/ipiput6 for a datagram that is not ours, then
    # ipoput4/ipoput6 with a gating interface (where it came in)

    cdef icmperr(self, str fn, object ifc, object pkt, object arg):
        # an ICMP error through the stack's ICMP or ICMPv6 (if it has one)
        cdef object icmp = self.f.ipproto[ICMPv6 if fn.endswith("6") else 1]
        m = getattr(icmp, fn, None) if icmp is not None else None
        if m is None:
            return
        if arg is None:
            m(ifc, pkt)
        elif isinstance(arg, tuple):
            m(ifc, pkt, *arg)
        else:
            m(ifc, pkt, arg)

    cdef int forward4(self, Ifc ifc, object pkt, const unsigned char *p, int length, int gso) except -1:
        cdef unsigned char dst[16]
        cdef unsigned char src[16]
        cdef int i, ttl
        cdef Ifc nifc
        cdef bytearray b
        cdef unsigned char *q
        v4tov6c(dst, p + 16)
        v4tov6c(src, p + 12)
        if p[16] >= 0xe0:
            # DEVIATION: multicast (and class E) is not forwarded (no
            # multicast routing; devip would send it along any route)
            self.stats_[OutDiscards] += 1
            return 0
        i = self.rlookup(dst, src, 1)
        if i < 0:
            self.stats_[OutDiscards] += 1
            if self.f.log.mask & Logip:
                self.f.log.log(Logip, "%s -> %s: no route to forward\n" % (
                    fmtip(PyBytes_FromStringAndSize(<char*>src, 16)),
                    fmtip(PyBytes_FromStringAndSize(<char*>dst, 16))))
            # DEVIATION: devip drops it without a word; a router answers
            # ICMP net unreachable (RFC 1812 section 5.2.7.1)
            self.icmperr("icmpnonet", ifc, pkt, None)
            return 0
        nifc = self.rtifc(i)
        if nifc is None or (nifc is ifc and not ifc.reflect):
            # don't forward to the source's network
            self.stats_[OutDiscards] += 1
            return 0
        if self.rt[i].type & Rtrans:
            # a NAT route: tcpforward is not ported (conv's trans)
            self.stats_[OutDiscards] += 1
            return 0
        ttl = p[8]
        if ttl <= 1:
            self.stats_[InHdrErrors] += 1
            self.icmperr("icmpttlexceeded", ifc, pkt, None)
            return 0
        b = PyByteArray_FromStringAndSize(<char*>p, length)
        if nifc.reassemble and (nhgets(p + 6) & (IP_MF | IP_FO)):
            # reassemble as the interface expects it
            r = self.reasm4(b)
            if r is None:
                return 0
            b = r
        self.stats_[ForwDatagrams] += 1
        q = <unsigned char*>PyByteArray_AS_STRING(b)
        q[8] = ttl - 1
        return self.gated(ifc, nifc, b, gso)

    cdef int forward6(self, Ifc ifc, object pkt, const unsigned char *p, int length, int gso) except -1:
        cdef int i, hop
        cdef Ifc nifc
        cdef bytearray b
        # don't forward to link-local destinations; DEVIATION: nor to any
        # multicast group (no multicast routing)
        if (p[24] == 0xfe and (p[25] & 0xc0) == 0x80) or p[24] == 0xff:
            self.stats_[OutDiscards] += 1
            return 0
        i = self.rlookup(p + 24, p + 8, 0)
        if i < 0:
            self.stats_[OutDiscards] += 1
            if self.f.log.mask & Logip:
                self.f.log.log(Logip, "%s -> %s: no route to forward\n" % (
                    fmtip(PyBytes_FromStringAndSize(<char*>p + 8, 16)),
                    fmtip(PyBytes_FromStringAndSize(<char*>p + 24, 16))))
            # DEVIATION: devip drops it; ICMPv6 no route to destination
            self.icmperr("icmpnoroute6", ifc, pkt, None)
            return 0
        nifc = self.rtifc(i)
        if nifc is None or (self.rt[i].type & Rv4) or (nifc is ifc and not ifc.reflect):
            self.stats_[OutDiscards] += 1
            return 0
        hop = p[7]
        if hop <= 1:
            self.stats_[InHdrErrors] += 1
            self.icmperr("icmpttlexceeded6", ifc, pkt, None)
            return 0
        # DEVIATION: a v6 datagram is forwarded as it came (devip
        # reassembles first when the outgoing interface has reassemble set)
        b = PyByteArray_FromStringAndSize(<char*>p, length)
        self.stats_[ForwDatagrams] += 1
        (<unsigned char*>PyByteArray_AS_STRING(b))[7] = hop - 1
        return self.gated(ifc, nifc, b, gso)

    cdef int gated(self, Ifc gating, Ifc ifc, bytearray pkt, int gso) except -1:
        """ipoput4/ipoput6 for a forwarded datagram whose TTL (hop limit)
        is already decremented: the MSS of a SYN clamped, sent whole when
        it fits, else (a TCP super-packet) segmented, else fragmented
        (v4 without DF) or answered with ICMP (fragmentation needed, v6
        packet too big) on the gating interface."""
        cdef Py_ssize_t n = PyByteArray_GET_SIZE(pkt)
        cdef unsigned char *p = <unsigned char*>PyByteArray_AS_STRING(pkt)
        cdef int medialen, inlen, hl, thl, frag = 0
        cdef bint v4 = (p[0] >> 4) == 4
        cdef bint tcp
        self.stats_[OutRequests] += 1
        if n >= IP_MAX + (0 if v4 else IP6HDR):
            self.stats_[OutDiscards] += 1
            return 0
        medialen = ifc.maxtu - ifc.hsize
        inlen = gating.maxtu - gating.hsize
        if v4:
            hl = (p[0] & 0xf) << 2
            frag = nhgets(p + 6)
            tcp = p[9] == IP_TCPPROTO and (frag & (IP_MF | IP_FO)) == 0
            if p[9] == IP_TCPPROTO and (frag & IP_FO) == 0:
                mssclamp(p, n, hl, 1, medialen if medialen < inlen else inlen)
            p[10] = 0
            p[11] = 0
            hnputs(p + 10, ipcsum(p))
        else:
            hl = IP6HDR
            tcp = p[6] == IP_TCPPROTO
            if tcp:
                mssclamp(p, n, hl, 0, medialen)
        if n <= medialen:
            self.ifcoput(ifc, pkt)
            return 0
        if tcp and n >= hl + 20 and (gso > 0 or n > inlen):
            # a TCP super-packet (from a medium with receive offload): its
            # segments are what travel
            thl = (p[hl + 12] >> 4) << 2
            if thl >= 20 and hl + thl <= n:
                if gso <= 0:
                    gso = inlen - hl - thl
                if gso > 0 and hl + thl + gso <= medialen:
                    if ifc.gso > 0 and n - (0 if v4 else IP6HDR) <= ifc.gso:
                        self.ifcoputgso(ifc, pkt, gso)
                        return 0
                    for x in self.tcpsegment(pkt, gso):
                        self.ifcoput(ifc, x)
                    return 0
                if gso > 0 and v4 and not (frag & IP_DF):
                    for x in self.tcpsegment(pkt, gso):
                        if PyByteArray_GET_SIZE(x) <= medialen:
                            self.ifcoput(ifc, x)
                        else:
                            self.gatedfrag4(ifc, x, medialen)
                    return 0
        if not v4:
            # v6 routers do not fragment
            self.stats_[OutDiscards] += 1
            self.icmperr("icmppkttoobig6", gating, pkt, medialen)
            return 0
        if frag & IP_DF:
            self.stats_[FragFails] += 1
            self.stats_[OutDiscards] += 1
            if self.f.log.mask & Logip:
                self.f.log.log(Logip, "can't fragment with DF flag set\n")
            self.icmperr("icmpcantfrag", gating, pkt, medialen)
            return 0
        return self.gatedfrag4(ifc, pkt, medialen)

    cdef int gatedfrag4(self, Ifc ifc, bytearray pkt, int medialen) except -1:
        # ipoput4's fragmentation of a forwarded datagram: its id, its
        # options in every fragment, offsets from its own offset
        cdef Py_ssize_t n = PyByteArray_GET_SIZE(pkt)
        cdef unsigned char *p = <unsigned char*>PyByteArray_AS_STRING(pkt)
        cdef unsigned char *q
        cdef int hl = (p[0] & 0xf) << 2, seglen, dlen, off, base, frag, mf
        frag = nhgets(p + 6)
        base = (frag & IP_FO) << 3
        mf = frag & IP_MF
        seglen = (medialen - hl) & ~7
        if seglen < 8 or hl > n:
            self.stats_[FragFails] += 1
            self.stats_[OutDiscards] += 1
            return 0
        dlen = n - hl
        off = 0
        while off < dlen:
            if off + seglen >= dlen:
                seglen = dlen - off
                # DEVIATION: the last piece keeps the datagram's own MF
                # (ipoput4 clears it, cutting a fragment's tail off)
                frag = ((base + off) >> 3) | mf
            else:
                frag = ((base + off) >> 3) | IP_MF
            nb = PyByteArray_FromStringAndSize(NULL, hl + seglen)
            q = <unsigned char*>PyByteArray_AS_STRING(nb)
            memcpy(q, p, hl)
            memcpy(q + hl, p + hl + off, seglen)
            hnputs(q + 2, hl + seglen)
            hnputs(q + 6, frag)
            q[10] = 0
            q[11] = 0
            hnputs(q + 10, ipcsum(q))
            self.ifcoput(ifc, nb)
            self.stats_[FragCreates] += 1
            off += seglen
        self.stats_[FragOKs] += 1
        return 0

    cdef list tcpsegment(self, bytearray pkt, int mss):
        """A TCP super-packet (one IP and TCP header, the payload of
        several segments, checksums done) cut into segments of mss payload
        bytes, as the medium's offload would: sequence numbers advanced,
        FIN and PSH on the last only, CWR on the first only, v4 ids
        consecutive, lengths and checksums made again."""
        cdef Py_ssize_t n = PyByteArray_GET_SIZE(pkt)
        cdef unsigned char *p = <unsigned char*>PyByteArray_AS_STRING(pkt)
        cdef unsigned char *q
        cdef unsigned char *t
        cdef bint v4 = (p[0] >> 4) == 4
        cdef int hl = ((p[0] & 0xf) << 2) if v4 else IP6HDR
        cdef int thl = (p[hl + 12] >> 4) << 2
        cdef int payload = n - hl - thl, off = 0, seglen, k = 0, flags = p[hl + 13], id4
        cdef unsigned int seq = nhgetl(p + hl + 4)
        cdef unsigned char ph[40]
        cdef int phl
        cdef list out = []
        id4 = nhgets(p + 4) if v4 else 0
        while True:
            seglen = payload - off if payload - off < mss else mss
            nb = PyByteArray_FromStringAndSize(NULL, hl + thl + seglen)
            q = <unsigned char*>PyByteArray_AS_STRING(nb)
            memcpy(q, p, hl + thl)
            memcpy(q + hl + thl, p + hl + thl + off, seglen)
            t = q + hl
            hnputl(t + 4, seq + <unsigned int>off)
            t[13] = flags
            if off + seglen < payload:
                t[13] &= ~(0x01 | 0x08)        # FIN, PSH
            if off > 0:
                t[13] &= ~0x80                 # CWR
            if v4:
                hnputs(q + 2, hl + thl + seglen)
                hnputs(q + 4, (id4 + k) & 0xffff)
                q[10] = 0
                q[11] = 0
                hnputs(q + 10, ipcsum(q))
                memcpy(ph, q + 12, 8)
                ph[8] = 0
                ph[9] = IP_TCPPROTO
                hnputs(ph + 10, thl + seglen)
                phl = 12
            else:
                hnputs(q + 4, thl + seglen)
                memcpy(ph, q + 8, 32)
                hnputl(ph + 32, thl + seglen)
                ph[36] = 0
                ph[37] = 0
                ph[38] = 0
                ph[39] = IP_TCPPROTO
                phl = 40
            t[16] = 0
            t[17] = 0
            hnputs(t + 16, csum_fold(csum_partial(t, thl + seglen, csum_partial(ph, phl, 0))))
            out.append(nb)
            k += 1
            off += seglen
            if off >= payload:
                break
        return out

    cdef int input4(self, Ifc ifc, object pkt, const unsigned char *p, Py_ssize_t n, int gso) except -1:
        # ip.c ipiput4
        cdef int hl, length, frag
        cdef unsigned char dst[16]
        cdef unsigned char *q
        self.stats_[InReceives] += 1
        if n < IP4HDR:
            # DEVIATION: devip's pullupblock drops runts without counting
            self.stats_[InHdrErrors] += 1
            ifc.errin += 1
            return 0
        hl = (p[0] & 0xf) << 2
        if hl < IP4HDR or hl > n:
            self.stats_[InHdrErrors] += 1
            ifc.errin += 1
            if self.f.log.mask & Logip:
                self.f.log.log(Logip, "bad ip header length: %d\n" % hl)
            return 0
        if ipcsum(p) != 0:
            self.stats_[InHdrErrors] += 1
            ifc.errin += 1
            if self.f.log.mask & Logip:
                self.f.log.log(Logip, "bad ip header checksum\n")
            return 0
        length = nhgets(p + 2)
        if length < hl or length > n:
            self.stats_[InHdrErrors] += 1
            ifc.errin += 1
            if self.f.log.mask & Logip:
                self.f.log.log(Logip, "bogus packet length: %d\n" % length)
            return 0
        v4tov6c(dst, p + 16)
        if not self.forme(dst):
            if self.iprouting:
                return self.forward4(ifc, pkt, p, length, gso)
            # DEVIATION: devip drops without counting
            self.stats_[InAddrErrors] += 1
            return 0
        if hl > IP4HDR or length < n:
            # strip the options (devip does when not routing) and trim
            nb = PyByteArray_FromStringAndSize(NULL, length - (hl - IP4HDR))
            q = <unsigned char*>PyByteArray_AS_STRING(nb)
            memcpy(q, p, IP4HDR)
            memcpy(q + IP4HDR, p + hl, length - hl)
            q[0] = 0x45
            hnputs(q + 2, length - (hl - IP4HDR))
            q[10] = 0
            q[11] = 0
            hnputs(q + 10, ipcsum(q))
            pkt = nb
            p = q
        frag = nhgets(p + 6)
        if frag & (IP_MF | IP_FO):
            pkt = self.reasm4(pkt)
            if pkt is None:
                return 0
            p = <const unsigned char*>PyByteArray_AS_STRING(pkt)
        self.deliver(ifc, p[9], pkt)
        return 0

    cdef deliver(self, Ifc ifc, int proto, object pkt):
        cdef Proto pr = <Proto>self.f.ipproto[proto]
        if pr is not None:
            self.stats_[InDelivers] += 1
            pr.rcv(pkt, ifc)
            return
        self.stats_[InDiscards] += 1
        self.stats_[InUnknownProtos] += 1
        if proto == NNH:
            return
        # DEVIATION: devip answers an unknown protocol with silence
        if (pkt[0] >> 4) == 4:
            self.icmperr("icmpnoproto", ifc, pkt, None)
        else:
            self.icmperr("icmpparamprob6", ifc, pkt, (1, 6))

    cdef int input6(self, Ifc ifc, object pkt, const unsigned char *p, Py_ssize_t n, int gso) except -1:
        # ipv6.c ipiput6 and procxtns
        cdef int length, off, qoff, nh, plen
        cdef bint reassembled = 0
        cdef unsigned char *q
        self.stats_[InReceives] += 1
        if n < IP6HDR or (p[0] & 0xf0) != 0x60:
            # DEVIATION: a runt is counted (devip's pullup drops it)
            self.stats_[InHdrErrors] += 1
            ifc.errin += 1
            if self.f.log.mask & Logip and n >= 1:
                self.f.log.log(Logip, "ip: bad version %x\n" % ((p[0] & 0xf0) >> 2))
            return 0
        length = IP6HDR + nhgets(p + 4)
        if length > n:
            self.stats_[InHdrErrors] += 1
            ifc.errin += 1
            if self.f.log.mask & Logip:
                self.f.log.log(Logip, "bogus packet length: %d\n" % length)
            return 0
        if not self.forme(p + 24):
            if self.iprouting:
                return self.forward6(ifc, pkt, p, length, gso)
            self.stats_[InAddrErrors] += 1
            return 0
        # walk the extension headers: hop-by-hop, routing, destination
        # options are skipped; a fragment header starts reassembly
        while True:
            off = IP6HDR
            qoff = 6
            nh = p[6]
            while nh == HBH or nh == RH or nh == DOH or nh == FH:
                if off + 2 > length:
                    off = -1
                    break
                if nh == FH:
                    if reassembled or off + IP6FHDR > length or p[off] == FH:
                        off = -1
                    break
                qoff = off
                nh = p[off]
                off += (p[off + 1] + 1) * 8
                if off > length:
                    off = -1
                    break
            if off < 0:
                self.stats_[InHdrErrors] += 1
                self.stats_[InDiscards] += 1
                ifc.errin += 1
                return 0
            if nh != FH:
                break
            pkt = self.reasm6(pkt, p, length, off, qoff)
            if pkt is None:
                return 0
            reassembled = 1
            p = <const unsigned char*>PyByteArray_AS_STRING(pkt)
            length = PyByteArray_GET_SIZE(pkt)
            n = length
        if off > IP6HDR or length < n:
            # DEVIATION: devip leaves extension headers for the transport
            plen = length - off
            nb = PyByteArray_FromStringAndSize(NULL, IP6HDR + plen)
            q = <unsigned char*>PyByteArray_AS_STRING(nb)
            memcpy(q, p, IP6HDR)
            memcpy(q + IP6HDR, p + off, plen)
            q[6] = nh
            hnputs(q + 4, plen)
            if self.f.ipproto[nh] is None and nh != NNH:
                # the parameter problem quotes the datagram as received
                self.stats_[InDiscards] += 1
                self.stats_[InUnknownProtos] += 1
                self.icmperr("icmpparamprob6", ifc, PyBytes_FromStringAndSize(<char*>p, length), (1, qoff))
                return 0
            pkt = nb
        self.deliver(ifc, nh, pkt)
        return 0

    # ------------------------------------------------------------------
    # reassembly (ip4reassemble, ip6reassemble)

    def fragexpire(self):
        """Drop the reassemblies whose time is up (ReasmTimeout)."""
        cdef Reasm r
        cdef unsigned int now = self.f.now
        while self.reasms:
            r = next(iter(self.reasms.values()))
            if <int>(now - r.deadline) < 0:
                break
            del self.reasms[r.key]
            self.reasmbytes -= r.nbytes
            self.stats_[ReasmTimeout] += 1

    cdef Reasm fragalloc(self, object key, int version):
        cdef Reasm r
        while len(self.reasms) >= self.maxreasm and self.reasms:
            # ipfragallo4: the oldest reassembly makes room
            r = next(iter(self.reasms.values()))
            self.fragfree(r)
            self.stats_[ReasmFails] += 1
        r = Reasm()
        r.key = key
        r.version = version
        r.deadline = self.f.now + self.fragtimeout
        self.reasms[key] = r
        self.stats_[ReasmReqds] += 1
        return r

    cdef void fragfree(self, Reasm r):
        if self.reasms.get(r.key) is r:
            del self.reasms[r.key]
        self.reasmbytes -= r.nbytes
        r.nbytes = 0
        r.frags = []

    cdef bint fragbound(self, Reasm f):
        # the byte budget: the oldest other reassemblies go first; False
        # when f alone is over it (and has been dropped)
        cdef Reasm r
        while self.reasmbytes > self.maxreasmbytes:
            for r in self.reasms.values():
                if r is not f:
                    break
            else:
                self.fragfree(f)
                self.stats_[ReasmFails] += 1
                return 0
            self.fragfree(r)
            self.stats_[ReasmFails] += 1
        return 1

    cdef object fraginsert(self, Reasm f, int foff, bytes data, bint mf, bytes hdr):
        """Put a fragment in f (devip's overlap rules: the new fragment
        cuts the tail of the one before it and the head of those after
        it, unless it lies wholly inside the one before).  Returns the
        list of fragments that complete the datagram, or None."""
        cdef list fl = f.frags
        cdef int i = 0, j, ovlap, end, flen = len(data)
        cdef list fq
        while i < len(fl) and foff > <int>fl[i][0]:
            i += 1
        if i > 0:
            fq = fl[i - 1]
            ovlap = <int>fq[0] + len(fq[1]) - foff
            if ovlap > 0:
                if ovlap >= flen:
                    return None
                f.nbytes -= ovlap
                self.reasmbytes -= ovlap
                fq[1] = fq[1][:len(fq[1]) - ovlap]
        fl.insert(i, [foff, data, mf, hdr])
        f.nbytes += flen + len(hdr)
        self.reasmbytes += flen + len(hdr)
        end = foff + flen
        j = i + 1
        while j < len(fl):
            fq = fl[j]
            ovlap = end - <int>fq[0]
            if ovlap <= 0:
                break
            if ovlap < len(fq[1]):
                fq[1] = fq[1][ovlap:]
                fq[0] = <int>fq[0] + ovlap
                f.nbytes -= ovlap
                self.reasmbytes -= ovlap
                break
            f.nbytes -= len(fq[1]) + len(fq[3])
            self.reasmbytes -= len(fq[1]) + len(fq[3])
            del fl[j]
        if not self.fragbound(f):
            return None
        # a complete datagram: contiguous from 0 to a fragment without MF
        end = 0
        for j in range(len(fl)):
            fq = fl[j]
            if <int>fq[0] != end:
                break
            end += len(fq[1])
            if not fq[2]:
                return fl[:j + 1]
        return None

    cdef object reasm4(self, object pkt):
        cdef bytes b = bytes(pkt)
        cdef const unsigned char *p = bp(b)
        cdef int frag = nhgets(p + 6)
        cdef int foff = (frag & IP_FO) << 3
        cdef Reasm f
        cdef unsigned char *q
        key = (V4, b[12:16], b[16:20], b[4:6])
        self.fragexpire()
        f = self.reasms.get(key)
        data = b[IP4HDR:]
        if foff + len(data) + IP4HDR >= IP_MAX:
            # it can never make a datagram
            if f is not None:
                self.fragfree(f)
            self.stats_[ReasmFails] += 1
            return None
        if f is None:
            f = self.fragalloc(key, V4)
        done = self.fraginsert(f, foff, data, (frag & IP_MF) != 0, b[:IP4HDR])
        if done is None:
            return None
        total = IP4HDR + sum([len(x[1]) for x in done])
        self.fragfree(f)
        if total >= IP_MAX:
            self.stats_[ReasmFails] += 1
            return None
        out = bytearray(done[0][3])
        for x in done:
            out += x[1]
        q = <unsigned char*>PyByteArray_AS_STRING(out)
        q[6] = 0
        q[7] = 0
        hnputs(q + 2, total)
        q[10] = 0
        q[11] = 0
        hnputs(q + 10, ipcsum(q))
        self.stats_[ReasmOKs] += 1
        return out

    cdef object reasm6(self, object pkt, const unsigned char *p, int length, int uflen, int qoff):
        # the fragment header is at uflen; qoff is the next-header byte
        # that names it.  The unfragmentable part kept with each fragment
        # already names the fragment's next header.
        cdef int offrm = nhgets(p + uflen + 2)
        cdef int foff = offrm & ~7
        cdef Reasm f
        cdef unsigned char *q
        hdr = bytearray(PyBytes_FromStringAndSize(<char*>p, uflen))
        hdr[qoff] = p[uflen]
        hdr = bytes(hdr)
        key = (V6, PyBytes_FromStringAndSize(<char*>p + 8, 16),
               PyBytes_FromStringAndSize(<char*>p + 24, 16), nhgetl(p + uflen + 4))
        data = PyBytes_FromStringAndSize(<char*>p + uflen + IP6FHDR, length - uflen - IP6FHDR)
        self.fragexpire()
        f = self.reasms.get(key)
        if (offrm & ~6) == 0:
            # an atomic fragment (offset 0, last): drop the fragment header
            if f is not None:
                self.fragfree(f)
                self.stats_[ReasmFails] += 1
            out = bytearray(hdr)
            out += data
            hnputs(<unsigned char*>PyByteArray_AS_STRING(out) + 4, len(out) - IP6HDR)
            return out
        if foff + len(data) + uflen >= IP_MAX:
            if f is not None:
                self.fragfree(f)
            self.stats_[ReasmFails] += 1
            return None
        if f is None:
            f = self.fragalloc(key, V6)
        done = self.fraginsert(f, foff, data, (offrm & 1) != 0, hdr)
        if done is None:
            return None
        self.fragfree(f)
        out = bytearray(done[0][3])
        for x in done:
            out += x[1]
        if len(out) >= IP_MAX:
            self.stats_[ReasmFails] += 1
            return None
        q = <unsigned char*>PyByteArray_AS_STRING(out)
        hnputs(q + 4, len(out) - IP6HDR)
        self.stats_[ReasmOKs] += 1
        return out


cdef inline void memmove_rt(Rt *base, int to, int frm, int n) noexcept:
    memmove(<void*>(base + to), <const void*>(base + frm), sizeof(Rt) * n)
