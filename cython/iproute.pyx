# cython: language_level=3
"""net9's route table: 9front's devip iproute.c, sans I/O.

Routes live in a C array sorted most specific first (devip keeps a forest
of range trees); the first match is devip's deepest match.  A one-entry
cache makes the common case (one destination) a pair of memcmp.  Ip holds
one Routetab (Ip.rtab); the interface code (ipifc) adds and removes the
routes of each address (addroute, remroute), /net/iproute is routewrite
and Routetab.text.  Also here: libip's address and mask helpers as the
route and interface code use them from Python (addr16, parseipmask,
mask16, defmask, maskip, fmtmask) and the route type strings.
"""

from libc.string cimport memcpy, memcmp, memset, memmove
from libc.stdlib cimport realloc, free
from cpython.bytes cimport PyBytes_FromStringAndSize

from net9 import errors
from net9.errors import Net9Error
from net9.ipaux import parseip, fmtip, parsecmd
from net9.ipaux import atoi as _atoi
from net9.byteorder cimport nhgetl
from net9.ip cimport Ip
from net9.ipifc cimport Ifc, findipifc, findipifcstr

cdef bytes IPnoaddr = b"\0" * 16
cdef bytes V4PFX = b"\0" * 10 + b"\xff\xff"
cdef bytes IPallbits = b"\xff" * 16
cdef bytes v6loopback = b"\0" * 15 + b"\x01"
cdef bytes v6solicitednode = b"\xff\x02" + b"\0" * 9 + b"\x01\xff\0\0\0"
cdef bytes v6linklocal = b"\xfe\x80" + b"\0" * 14
cdef bytes v6linklocalmask = b"\xff" * 8 + b"\0" * 8
cdef bytes v6solicitednodemask = b"\xff" * 13 + b"\0" * 3
cdef bytes v6multicastmask = b"\xff" + b"\0" * 15

# iproute.c error texts (devip.md section 11)
Ebadarg = errors.Ebadarg
Ebadip = errors.Ebadip
Ebadctl = errors.Ebadctl
Eshortctl = errors.Eshortctl
Enoifc = "interface not found"

# the route type letters, in routetype's order
cdef tuple _typeletters = ((Rifc, "i"), (Runi, "u"), (Rbcast, "b"), (Rmulti, "m"),
                           (Rptpt, "p"), (Rproxy, "y"), (Rtrans, "t"))
cdef dict _typebits = {ch: bit for bit, ch in _typeletters}

# a text format (a module variable: see ipifc.pyx on Cython's %-formatting)
_routefmt = "%-15s %-4s %-15s %-4s %4.4s %3s %-15s %-4s\n"

# classful masks (libip classmask.c)
cdef list classmask = [
    b"\xff" * 13 + b"\0\0\0",
    b"\xff" * 13 + b"\0\0\0",
    b"\xff" * 14 + b"\0\0",
    b"\xff" * 15 + b"\0",
]


cdef int popcount16(const unsigned char *m) noexcept:
    cdef int i, n = 0
    cdef unsigned char c
    for i in range(16):
        c = m[i]
        while c:
            n += c & 1
            c >>= 1
    return n



# ---------------------------------------------------------------------------
# addresses and masks from Python values

cpdef bytes addr16(object a):
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


cpdef bytes parseipmask(str s, bint v4):
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


cpdef bytes prefixmask(int n):
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


cpdef bytes mask16(object m, bytes ip):
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


cpdef bytes defmask(bytes ip):
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


cpdef bytes maskip(bytes a, bytes m):
    return bytes([x & y for x, y in zip(a, m)])


cpdef str fmtmask(object m):
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


cpdef str routetype(int type):
    """iproute.c routetype: "4"/"6", "i", one of "u" "b" "m", "p", "y", "t"."""
    s = "4" if type & Rv4 else "6"
    if type & Runi:
        type &= ~(Rbcast | Rmulti)
    elif type & Rbcast:
        type &= ~Rmulti
    for bit, ch in _typeletters:
        if type & bit:
            s += ch
    return s


cpdef int parseroutetype(str s):
    """iproute.c parseroutetype; -1 when malformed (an unknown letter,
    one given twice, or two of "u", "b", "m")."""
    cdef int type = 0, bit, group
    if not s:
        return -1
    if s[0] == "4":
        type |= Rv4
    elif s[0] != "6":
        return -1
    for ch in s[1:]:
        bit = _typebits.get(ch, 0)
        if bit == 0:
            return -1
        type ^= bit
        group = (Runi | Rbcast | Rmulti) if bit & (Runi | Rbcast | Rmulti) else bit
        if (type & group) != bit:
            return -1
    return type


# ---------------------------------------------------------------------------
# the table

cdef class Routetab:
    """The route table: routes() lists them, text() is /net/iproute,
    flush(tag) removes the ones that are not an interface's."""

    def __cinit__(self):
        self.rt = NULL
        self.nrt = 0
        self.art = 0

    def __dealloc__(self):
        if self.rt != NULL:
            free(self.rt)

    def __len__(self):
        return self.nrt

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

    cdef int rlookup(self, const unsigned char *dst, const unsigned char *src, bint v4,
                     Routehint *rh) noexcept:
        """v4lookup/v6lookup: the most specific route to dst from src, as
        an index into rt, or -1.  rh (a conversation's, or NULL for the
        table's own) remembers the answer until the table changes."""
        cdef int i
        cdef Rt *r
        if rh == NULL:
            rh = &self.rc
        if (rh.r > 0 and rh.rgen == self.rgen
                and memcmp(rh.a, dst, 16) == 0 and memcmp(rh.s, src, 16) == 0):
            return rh.r - 1
        for i in range(self.nrt):
            r = &self.rt[i]
            if ((r.type & Rv4) != 0) != v4:
                continue
            if not maskeq(dst, r.a, r.m):
                continue
            if (r.type & Rsrc) and not maskeq(src, r.s, r.sm):
                continue
            memcpy(rh.a, dst, 16)
            memcpy(rh.s, src, 16)
            rh.rgen = self.rgen
            rh.r = i + 1
            return i
        return -1

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

    cdef int addroute(self, bytes a, bytes mask, bytes s, bytes smask, bytes gate, int type,
                      int ifcx, int ifcid, bytes tag) except -1:
        """iproute.c addroute: add (or take another reference to) a route
        through interface ifcx."""
        cdef Rt r
        mkroute(&r, a, mask, s, smask, gate, type, ifcx, ifcid, tag)
        return self.routeadd(&r)

    cdef int remroute(self, bytes a, bytes mask, bytes s, bytes smask, bytes gate, int type,
                      int ifcx, int ifcid, bytes tag) except -1:
        """iproute.c remroute: drop one reference; 1 when a route matched."""
        cdef Rt r
        mkroute(&r, a, mask, s, smask, gate, type, ifcx, ifcid, tag)
        return self.routedel(&r, 0)

    def flushifc(self, int ifcx):
        """Remove every route through interface ifcx."""
        cdef int i = 0
        while i < self.nrt:
            if self.rt[i].ifcx == ifcx:
                self.rtremove(i)
            else:
                i += 1
        self.rgen += 1

    def flush(self, tag=None):
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

    def routes(self):
        """The routes, most specific first: dicts with dst, mask, gate,
        type, tag, ifc, src, smask (strings) and ref."""
        cdef int i
        out = []
        for i in range(self.nrt):
            out.append(self.rtdict(i))
        return out

    def text(self):
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


cdef int mkroute(Rt *r, bytes a, bytes mask, bytes s, bytes smask, bytes gate,
                 int type, int ifcx, int ifcid, bytes tag) except -1:
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
    r.ifcx = ifcx
    r.ifcid = ifcid
    t = (tag or b"")[:4]
    memset(r.tag, 0, 4)
    memcpy(r.tag, <const char*>t, len(t))
    r.ref = 1
    return 0


# ---------------------------------------------------------------------------
# the table from Python and /net/iproute (Ip.addroute, Ip.delroute,
# Ip.routewrite)

cpdef addroute(Ip ip, object dst, object mask, object gate=None, object ifc=None, object src=None,
               object smask=None, object type=None, object tag="none"):
    """Add (or replace) a route (iproute "add"): dst and mask (see
    mask16), next hop gate (None: on-link), ifc (an Ifc, interface
    number or local address; default: the interface on gate's net),
    optional source address and mask (a source specific route), type
    string ("4", "6i", ...), tag (4 characters).  Raises
    Net9Error("interface not found") when no interface fits."""
    cdef Rt r
    cdef int t
    a, m, g, s, sm = routeaddrs(dst, mask, gate, src, smask)
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
    x = findipifcstr(ip, ifc) if ifc is not None else findipifc(ip, s, g, t)
    if x is None:
        raise Net9Error(Enoifc)
    tb = tag.encode() if isinstance(tag, str) else bytes(tag)
    mkroute(&r, a, m, s, sm, g, t, x.x, x.ifcid, tb)
    ip.rtab.routeadd(&r)


cpdef bint delroute(Ip ip, object dst, object mask, object gate=None, object ifc=None, object src=None,
                    object smask=None, object tag=None) except -1:
    """Remove a route (iproute "del").  Without gate and ifc any
    route for that target (and source) that is not an interface's
    matches.  Returns True when one was removed."""
    cdef Rt r
    cdef Ifc x = None
    cdef int t = 0
    a, m, g, s, sm = routeaddrs(dst, mask, gate, src, smask)
    if a[:12] == V4PFX:
        t |= Rv4
    anyifc = ifc is None and gate is None
    if ifc is not None:
        x = findipifcstr(ip, ifc)
    elif gate is not None:
        x = findipifc(ip, s, g, t)
    if x is None and not anyifc:
        raise Net9Error(Enoifc)
    tb = b"" if tag is None else (tag.encode() if isinstance(tag, str) else bytes(tag))
    mkroute(&r, a, m, s, sm, g, t, x.x if x is not None else -1, x.ifcid if x is not None else 0, tb)
    return bool(ip.rtab.routedel(&r, anyifc))


cdef tuple routeaddrs(object dst, object mask, object gate, object src, object smask):
    # addroute's and delroute's arguments as 16-byte values: target,
    # mask, gate, source and source mask (see mask16)
    a = addr16(dst)
    m = mask16(mask, a)
    g = IPnoaddr if gate is None else addr16(gate)
    if src is None:
        return a, m, g, IPnoaddr, IPnoaddr
    s = addr16(src)
    return a, m, g, s, (mask16(smask, s) if smask is not None else IPallbits)


cpdef str routewrite(Ip ip, object msg, str tag="none"):
    """A write to /net/iproute (iproute.c routewrite): flush, add, del,
    remove, tag.  tag is the writing fid's tag; returns the fid's tag
    afterwards.  Raises Net9Error."""
    cdef Rt r
    f = parsecmd(msg)
    if len(f) < 1:
        raise Net9Error(Eshortctl)
    verb = f[0]
    if verb == "flush":
        ip.rtab.flush(f[1] if len(f) > 1 else None)
        return tag
    if verb == "tag":
        if len(f) < 2:
            raise Net9Error(Ebadarg)
        return f[1][:4]
    if verb not in ("add", "del", "remove"):
        raise Net9Error(Ebadctl)
    parseroute(ip, &r, f)
    if r.tag[0] == 0:
        t = tag.encode()[:4]
        memcpy(r.tag, <const char*>t, len(t))
    if verb == "add":
        ip.rtab.routeadd(&r)
    else:
        ip.rtab.routedel(&r, 0)
    return tag


cdef int parseroute(Ip ip, Rt *r, list argv) except -1:
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
        ifc = findipifcstr(ip, ifcstr)
    else:
        ifc = findipifc(ip, src, gate, type)
    if ifc is None:
        raise Net9Error(Enoifc)
    mkroute(r, addr, mask, src, smask, gate, type, ifc.x, ifc.ifcid, tag)
    return 0


cdef inline void memmove_rt(Rt *base, int to, int frm, int n) noexcept:
    memmove(<void*>(base + to), <const void*>(base + frm), sizeof(Rt) * n)
