# cython: language_level=3
"""net9's IP layer: 9front's devip ip.c and ipv6.c, sans I/O.

Ip(fs) is the IpLayer of one stack (it sets fs.ip).  It holds the
interfaces and the self table (ipifc: Ip.ifcs, Ip.ipselftab, Ip.ipifc,
devip's /net/ipifc) and the route table (iproute: Ip.rtab).  The medium
hands each received datagram to ip.input(ifc, pkt) (ipiput4/ipiput6); the
transport engines send through ip.ipoput() (ipoput4/ipoput6), which fills
in the IP header in the engine's bytearray and calls medium.transmit(pkt)
(fragmenting to the interface MTU).

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
"""

from libc.string cimport memcpy, memcmp, memset, memmove
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytearray cimport PyByteArray_FromStringAndSize, PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING

from net9 import errors
from net9.errors import Net9Error
from net9.ipaux import fmtip
from net9.conv cimport Conv, Proto, Fs, IpLayer, Routehint
from net9.wire cimport (ip4csum, ip4setcsum, ip4fill, l4setcsum, tcpoptnext, MSSOPT,
                        MSS_LENGTH, ipver, ip4hl, tcphl, ipaddrs, ip4src, ip4dst, ip4len,
                        ip4id, ip4frag, ip4ttl, ip4proto, ip4setvtt, ip4setvhl, ip4setttl,
                        ip4setlen, ip4setfrag, ip6plen, ip6nh, ip6hop, ip6src, ip6dst,
                        ip6setvtt, ip6setplen, ip6setlen, ip6fragput, ip6fragoff, ip6fragid)
from net9.netlog cimport Logip
from net9.byteorder cimport nhgets, nhgetl, hnputs, hnputl, isv4c, v4tov6c
from net9.iproute cimport Rt, Rv4, Rifc, Runi, Rbcast, Rmulti, Rtrans, bp, addr16, Routetab
from net9.iproute cimport addroute as _addroute, delroute as _delroute, routewrite as _routewrite
from net9.ipifc cimport SNOOPMAX, findlocalip, v4local, v6local, ipifcbind, ipifcaddmulti, ipifcremmulti

cdef bytes IPnoaddr = b"\0" * 16
cdef bytes V4PFX = b"\0" * 10 + b"\xff\xff"

cdef enum:
    V4 = 4
    V6 = 6

# the interface classes live in net9.ipifc; net9.ip keeps their names
globals().update(PktQueue=PktQueue, Lifc=Lifc, Ifc=Ifc, IpifcProto=IpifcProto)

statnames = [
    "Forwarding", "DefaultTTL", "InReceives", "InHdrErrors", "InAddrErrors",
    "ForwDatagrams", "InUnknownProtos", "InDiscards", "InDelivers",
    "OutRequests", "OutDiscards", "OutNoRoutes", "ReasmTimeout", "ReasmReqds",
    "ReasmOKs", "ReasmFails", "FragOKs", "FragFails", "FragCreates",
]

IP_TCPPROTO = 6

# ---------------------------------------------------------------------------
# byte helpers

cdef void mssclamp(unsigned char *p, Py_ssize_t n, int hl, bint v4, int mtu) noexcept:
    # tcp.c tcpmssclamp: a forwarded SYN's MSS option lowered to what the
    # smaller of the two links carries (mtu less the 20-byte v4 or 40-byte
    # v6 header and 20 bytes of TCP), the checksum updated (RFC 1624)
    cdef unsigned char *t
    cdef int thl, i, optlen, oldmss, newmss, kind = 0
    cdef unsigned int c
    if n < hl + 20:
        return
    t = p + hl
    if not (t[13] & 0x02):
        return
    thl = tcphl(t)
    if thl < 20 or hl + thl > n:
        return
    newmss = mtu - ((20 if v4 else 40) + 20)
    if newmss <= 0:
        return
    i = 20
    while True:
        optlen = tcpoptnext(t + i, thl - i, &kind)
        if optlen <= 0:
            break
        if kind == MSSOPT and optlen == MSS_LENGTH:
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



cdef class Reasm:
    """A reassembly in progress: frags is [foff, data, mf, hdr] sorted by
    offset (hdr: the IP header, v6: the unfragmentable part)."""

    def __cinit__(self):
        self.frags = []

    def __repr__(self):
        return "<Reasm v%d %r %d frags %d bytes>" % (self.version, self.key, len(self.frags), self.nbytes)


# ---------------------------------------------------------------------------
# the IP layer

cdef class Ip(IpLayer):
    """The IP layer of one stack (see the module documentation)."""

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
        self.rtab = Routetab()
        self.ipselftab = Ipselftab()
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
        try:
            ipifcbind(self, ifc, medium, name)
        except Net9Error:
            c.inuse -= 1
            c.p.maybefree(c)
            raise
        # the clone's reference was the "open ctl"; the binding holds its own
        c.inuse -= 1
        return ifc

    def ifc(self, int x):
        """The bound interface number x, or None."""
        if 0 <= x < Maxmedia:
            return self.ifcs[x]
        return None

    # ------------------------------------------------------------------
    # the self table (ipselftab)

    def addmulti(self, ma, ia):
        """ipifc.c ipifcaddmulti's part in the self table: the multicast
        group ma becomes a self address (Rmulti) of the interface that has
        the address ia (joins are counted; remmulti undoes one).  Returns
        False when no interface has ia."""
        return ipifcaddmulti(self, ma, ia)

    def remmulti(self, ma, ia):
        """ipifc.c ipifcremmulti's part: undo one addmulti."""
        return ipifcremmulti(self, ma, ia)

    def ipselftabtext(self):
        """ipselftabread: one line per self address, hash chain order."""
        return self.ipselftab.text()

    def selftab(self):
        """{address string: (type string, number of links)}."""
        return self.ipselftab.table()

    cdef int forme(self, const unsigned char *a) except -1:
        """ipifc.c ipforme: Runi, Rbcast or Rmulti when a is ours, else 0."""
        return self.ipselftab.forme(a)

    cpdef int ipforme(self, bytes addr):
        if addr is None or len(addr) != 16:
            return 0
        return self.forme(bp(addr))

    cpdef int forme16(self, bytes a):
        return self.ipforme(a)

    # ------------------------------------------------------------------
    # routes (iproute)

    def addroute(self, dst, mask, gate=None, ifc=None, src=None, smask=None, type=None, tag="none"):
        """Add (or replace) a route (iproute "add"): dst and mask (see
        iproute.mask16), next hop gate (None: on-link), ifc (an Ifc,
        interface number or local address; default: the interface on
        gate's net), optional source address and mask (a source specific
        route), type string ("4", "6i", ...), tag (4 characters).  Raises
        Net9Error("interface not found") when no interface fits."""
        _addroute(self, dst, mask, gate, ifc, src, smask, type, tag)

    def delroute(self, dst, mask, gate=None, ifc=None, src=None, smask=None, tag=None):
        """Remove a route (iproute "del").  Without gate and ifc any route
        for that target (and source) that is not an interface's matches.
        Returns True when one was removed."""
        return _delroute(self, dst, mask, gate, ifc, src, smask, tag)

    def flushroutes(self, tag=None):
        """iproute "flush [tag]": remove every route that is not an
        interface route (with that tag)."""
        self.rtab.flush(tag)

    def routewrite(self, msg, str tag="none"):
        """A write to /net/iproute (iproute.c routewrite): flush, add, del,
        remove, tag.  tag is the writing fid's tag; returns the fid's tag
        afterwards.  Raises Net9Error."""
        return _routewrite(self, msg, tag)

    def routes(self):
        """The routes, most specific first: dicts with dst, mask, gate,
        type, tag, ifc, src, smask (strings) and ref."""
        return self.rtab.routes()

    def iproutetext(self):
        """/net/iproute (iproute.c routeread)."""
        return self.rtab.text()

    def lookup(self, dst, src=None):
        """The route to dst (from src) as a dict (see routes()), or None."""
        a = addr16(dst)
        s = IPnoaddr if src is None else addr16(src)
        i = self.rtab.rlookup(bp(a), bp(s), a[:12] == V4PFX, NULL)
        if i < 0:
            return None
        return self.rtab.rtdict(i)

    cdef Ifc rtifc(self, int i):
        # the route's interface, None when it went away
        cdef Rt *r = &self.rtab.rt[i]
        cdef Ifc ifc
        if r.ifcx < 0 or r.ifcx >= Maxmedia:
            return None
        ifc = <Ifc>self.ifcs[r.ifcx]
        if ifc is None or ifc.medium is None or ifc.ifcid != r.ifcid:
            return None
        return ifc

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
        i = self.rtab.rlookup(bp(raddr), bp(laddr), isv4c(bp(raddr)), NULL)
        if i < 0:
            return None
        ifc = self.rtifc(i)
        if ifc is None:
            return None
        return (ifc.maxtu - ifc.hsize, (self.rtab.rt[i].type & (Rifc | Runi)) != 0)

    cpdef bint isself(self, bytes addr):
        if addr is None or len(addr) != 16:
            return 0
        return self.forme(bp(addr)) != 0

    cpdef bytes findlocalip(self, bytes raddr):
        """ipifc.c findlocalip: the source address of the best route to
        raddr (v4source/v6source), else the first v4 address, or the best
        v6 address (global > ULA > link-local), else ::."""
        return findlocalip(self, raddr)

    cpdef bytes ipv4local(self, object ifc, bytes remote):
        """ipv4local(ifc, 0, remote): a 16-byte address or None; without
        an interface (ifc None), IpLayer's (findlocalip's, when v4)."""
        cdef unsigned char l[4]
        if not isinstance(ifc, Ifc):
            return IpLayer.ipv4local(self, ifc, remote)
        if remote is None or len(remote) != 16:
            return None
        if v4local(<Ifc>ifc, l, 0, bp(remote) + 12):
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
        if v6local(<Ifc>ifc, l, 0, bp(remote)):
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

    # ------------------------------------------------------------------
    # output

    cpdef int ipoput(self, int version, bytearray pkt, int ttl, int tos, object rh) except? -2:
        """ipoput4/ipoput6: route, fill in the header, fragment to the
        interface MTU and transmit.  -1 when there is no route."""
        cdef Routehint *h = &(<Conv>rh).rh if isinstance(rh, Conv) else NULL
        if version == V4:
            return self.oput4(pkt, ttl, tos, 0, h)
        if version == V6:
            return self.oput6(pkt, ttl, tos, 0, h)
        self.stats_[OutRequests] += 1
        self.stats_[OutDiscards] += 1
        return 0

    cpdef int ipoputgso(self, int version, bytearray pkt, int ttl, int tos, object rh,
                        int mss) except? -2:
        """Beyond devip: ipoput for a TCP super-packet, which an interface
        with segmentation offload takes whole (its medium cuts it into
        segments of mss payload bytes); any other interface gets it
        fragmented as ipoput would."""
        cdef Routehint *h = &(<Conv>rh).rh if isinstance(rh, Conv) else NULL
        if version == V4:
            return self.oput4(pkt, ttl, tos, mss, h)
        if version == V6:
            return self.oput6(pkt, ttl, tos, mss, h)
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
        i = self.rtab.rlookup(bp(raddr), bp(laddr), isv4c(bp(raddr)), NULL)
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

    cdef int oput4(self, bytearray pkt, int ttl, int tos, int gsomss, Routehint *rh) except? -2:
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
        ipaddrs(p, 1, src, dst)
        i = self.rtab.rlookup(dst, src, 1, rh)
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
        ip4setvtt(p, tos, ttl)
        if n <= medialen or (gsomss > 0 and n <= ifc.gso):
            self.id4 += 1
            ip4fill(p, <unsigned int>n, self.id4, 0)
            if n <= medialen:
                self.ifcoput(ifc, pkt)
            else:
                # a TCP super-packet the medium segments (GSO): Linux
                # gives the segments consecutive ids from this one
                self.id4 += (n - IP4HDR) // gsomss
                self.ifcoputgso(ifc, pkt, gsomss)
            return 0
        if ip4frag(p) & IP_DF:
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
            ip4fill(q, hlen + seglen, lid, i)
            memcpy(q + hlen, p + hlen + fragoff, seglen)
            self.ifcoput(ifc, nb)
            self.stats_[FragCreates] += 1
            fragoff += seglen
        self.stats_[FragOKs] += 1
        return 0

    cdef int oput6(self, bytearray pkt, int ttl, int tos, int gsomss, Routehint *rh) except? -2:
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
        i = self.rtab.rlookup(ip6dst(p), ip6src(p), 0, rh)
        if i < 0:
            self.stats_[OutNoRoutes] += 1
            if self.f.log.mask & Logip:
                self.f.log.log(Logip, "%s -> %s: no interface\n" % (
                    fmtip(PyBytes_FromStringAndSize(<char*>ip6src(p), 16)),
                    fmtip(PyBytes_FromStringAndSize(<char*>ip6dst(p), 16))))
            return -1
        ifc = self.rtifc(i)
        if ifc is None:
            return 0
        medialen = ifc.maxtu - ifc.hsize
        ip6setvtt(p, tos, ttl)
        if n <= medialen:
            ip6setplen(p, <unsigned int>(n - IP6HDR))
            self.ifcoput(ifc, pkt)
            return 0
        if gsomss > 0 and n - IP6HDR <= ifc.gso:
            ip6setplen(p, <unsigned int>(n - IP6HDR))
            self.ifcoputgso(ifc, pkt, gsomss)
            return 0
        # the unfragmentable part: the header, hop-by-hop and routing headers
        uflen = IP6HDR
        qoff = 6
        nh = ip6nh(p)
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
            ip6setplen(q, uflen - IP6HDR + IP6FHDR + seglen)
            ip6fragput(q + uflen, nh, fragoff | more, lid)
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
            if view.len >= 1 and ipver(p) == 4:
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
        ipaddrs(p, 1, src, dst)
        if ip4dst(p)[0] >= 0xe0:
            # DEVIATION: multicast (and class E) is not forwarded (no
            # multicast routing; devip would send it along any route)
            self.stats_[OutDiscards] += 1
            return 0
        i = self.rtab.rlookup(dst, src, 1, NULL)
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
        if self.rtab.rt[i].type & Rtrans:
            # a NAT route: tcpforward is not ported (conv's trans)
            self.stats_[OutDiscards] += 1
            return 0
        ttl = ip4ttl(p)
        if ttl <= 1:
            self.stats_[InHdrErrors] += 1
            self.icmperr("icmpttlexceeded", ifc, pkt, None)
            return 0
        b = PyByteArray_FromStringAndSize(<char*>p, length)
        if nifc.reassemble and (ip4frag(p) & (IP_MF | IP_FO)):
            # reassemble as the interface expects it
            r = self.reasm4(b)
            if r is None:
                return 0
            b = r
        self.stats_[ForwDatagrams] += 1
        q = <unsigned char*>PyByteArray_AS_STRING(b)
        ip4setttl(q, ttl - 1)
        return self.gated(ifc, nifc, b, gso)

    cdef int forward6(self, Ifc ifc, object pkt, const unsigned char *p, int length, int gso) except -1:
        cdef int i, hop
        cdef const unsigned char *d
        cdef Ifc nifc
        cdef bytearray b
        # don't forward to link-local destinations; DEVIATION: nor to any
        # multicast group (no multicast routing)
        d = ip6dst(p)
        if (d[0] == 0xfe and (d[1] & 0xc0) == 0x80) or d[0] == 0xff:
            self.stats_[OutDiscards] += 1
            return 0
        i = self.rtab.rlookup(ip6dst(p), ip6src(p), 0, NULL)
        if i < 0:
            self.stats_[OutDiscards] += 1
            if self.f.log.mask & Logip:
                self.f.log.log(Logip, "%s -> %s: no route to forward\n" % (
                    fmtip(PyBytes_FromStringAndSize(<char*>ip6src(p), 16)),
                    fmtip(PyBytes_FromStringAndSize(<char*>ip6dst(p), 16))))
            # DEVIATION: devip drops it; ICMPv6 no route to destination
            self.icmperr("icmpnoroute6", ifc, pkt, None)
            return 0
        nifc = self.rtifc(i)
        if nifc is None or (self.rtab.rt[i].type & Rv4) or (nifc is ifc and not ifc.reflect):
            self.stats_[OutDiscards] += 1
            return 0
        hop = ip6hop(p)
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
        cdef bint v4 = ipver(p) == 4
        cdef bint tcp
        self.stats_[OutRequests] += 1
        if n >= IP_MAX + (0 if v4 else IP6HDR):
            self.stats_[OutDiscards] += 1
            return 0
        medialen = ifc.maxtu - ifc.hsize
        inlen = gating.maxtu - gating.hsize
        if v4:
            hl = ip4hl(p)
            frag = ip4frag(p)
            tcp = ip4proto(p) == IP_TCPPROTO and (frag & (IP_MF | IP_FO)) == 0
            if ip4proto(p) == IP_TCPPROTO and (frag & IP_FO) == 0:
                mssclamp(p, n, hl, 1, medialen if medialen < inlen else inlen)
            ip4setcsum(p)
        else:
            hl = IP6HDR
            tcp = ip6nh(p) == IP_TCPPROTO
            if tcp:
                mssclamp(p, n, hl, 0, medialen)
        if n <= medialen:
            self.ifcoput(ifc, pkt)
            return 0
        if tcp and n >= hl + 20 and (gso > 0 or n > inlen):
            # a TCP super-packet (from a medium with receive offload): its
            # segments are what travel
            thl = tcphl(p + hl)
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
        cdef int hl = ip4hl(p), seglen, dlen, off, base, frag, mf
        frag = ip4frag(p)
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
            ip4fill(q, hl + seglen, ip4id(p), frag)
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
        cdef bint v4 = ipver(p) == 4
        cdef int hl = ip4hl(p) if v4 else IP6HDR
        cdef int thl = tcphl(p + hl)
        cdef int payload = n - hl - thl, off = 0, seglen, k = 0, flags = p[hl + 13], id4
        cdef unsigned int seq = nhgetl(p + hl + 4)
        cdef list out = []
        id4 = ip4id(p) if v4 else 0
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
                ip4fill(q, hl + thl + seglen, id4 + k, ip4frag(p))
            else:
                ip6setplen(q, thl + seglen)
            l4setcsum(q, v4, IP_TCPPROTO, t, thl + seglen, 16, 0)
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
        hl = ip4hl(p)
        if hl < IP4HDR or hl > n:
            self.stats_[InHdrErrors] += 1
            ifc.errin += 1
            if self.f.log.mask & Logip:
                self.f.log.log(Logip, "bad ip header length: %d\n" % hl)
            return 0
        if ip4csum(p) != 0:
            self.stats_[InHdrErrors] += 1
            ifc.errin += 1
            if self.f.log.mask & Logip:
                self.f.log.log(Logip, "bad ip header checksum\n")
            return 0
        length = ip4len(p)
        if length < hl or length > n:
            self.stats_[InHdrErrors] += 1
            ifc.errin += 1
            if self.f.log.mask & Logip:
                self.f.log.log(Logip, "bogus packet length: %d\n" % length)
            return 0
        v4tov6c(dst, ip4dst(p))
        if not self.ipselftab.forme(dst):
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
            ip4setvhl(q, IP4HDR)
            ip4setlen(q, length - (hl - IP4HDR))
            ip4setcsum(q)
            pkt = nb
            p = q
        frag = ip4frag(p)
        if frag & (IP_MF | IP_FO):
            pkt = self.reasm4(pkt)
            if pkt is None:
                return 0
            p = <const unsigned char*>PyByteArray_AS_STRING(pkt)
        self.deliver(ifc, ip4proto(p), pkt)
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
        if n < IP6HDR or ipver(p) != 6:
            # DEVIATION: a runt is counted (devip's pullup drops it)
            self.stats_[InHdrErrors] += 1
            ifc.errin += 1
            if self.f.log.mask & Logip and n >= 1:
                self.f.log.log(Logip, "ip: bad version %x\n" % ((p[0] & 0xf0) >> 2))
            return 0
        length = IP6HDR + ip6plen(p)
        if length > n:
            self.stats_[InHdrErrors] += 1
            ifc.errin += 1
            if self.f.log.mask & Logip:
                self.f.log.log(Logip, "bogus packet length: %d\n" % length)
            return 0
        if not self.ipselftab.forme(ip6dst(p)):
            if self.iprouting:
                return self.forward6(ifc, pkt, p, length, gso)
            self.stats_[InAddrErrors] += 1
            return 0
        # walk the extension headers: hop-by-hop, routing, destination
        # options are skipped; a fragment header starts reassembly
        while True:
            off = IP6HDR
            qoff = 6
            nh = ip6nh(p)
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
            ip6setlen(q, plen, nh)
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
        cdef int frag = ip4frag(p)
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
        ip4setfrag(q, 0)
        ip4setlen(q, total)
        ip4setcsum(q)
        self.stats_[ReasmOKs] += 1
        return out

    cdef object reasm6(self, object pkt, const unsigned char *p, int length, int uflen, int qoff):
        # the fragment header is at uflen; qoff is the next-header byte
        # that names it.  The unfragmentable part kept with each fragment
        # already names the fragment's next header.
        cdef int offrm = ip6fragoff(p + uflen)
        cdef int foff = offrm & ~7
        cdef Reasm f
        cdef unsigned char *q
        hdr = bytearray(PyBytes_FromStringAndSize(<char*>p, uflen))
        hdr[qoff] = p[uflen]
        hdr = bytes(hdr)
        key = (V6, PyBytes_FromStringAndSize(<char*>ip6src(p), 16),
               PyBytes_FromStringAndSize(<char*>ip6dst(p), 16), ip6fragid(p + uflen))
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
            ip6setplen(<unsigned char*>PyByteArray_AS_STRING(out), len(out) - IP6HDR)
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
        ip6setplen(q, len(out) - IP6HDR)
        self.stats_[ReasmOKs] += 1
        return out


cdef inline void memmove_rt(Rt *base, int to, int frm, int n) noexcept:
    memmove(<void*>(base + to), <const void*>(base + frm), sizeof(Rt) * n)
