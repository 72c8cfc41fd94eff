# net9's route table: 9front's iproute.c (devip), sans I/O.  Ip (ip.pxd)
# holds one Routetab; ipifc adds and removes the routes of each address,
# /net/iproute reads and writes it (iproute.pyx's routewrite).

from libc.stdint cimport uint64_t
from libc.string cimport memcpy
from cpython.bytes cimport PyBytes_AS_STRING
from net9.ip cimport Ip
from net9.conv cimport Routehint

cdef enum:
    # route and self-table type bits (ip.h)
    Rv4 = 1 << 0          # a version 4 route
    Rifc = 1 << 1         # a directly connected interface
    Rptpt = 1 << 2        # a point-to-point interface
    Runi = 1 << 3         # a unicast self address
    Rbcast = 1 << 4       # a broadcast self address
    Rmulti = 1 << 5       # a multicast self address
    Rproxy = 1 << 6       # proxy ARP
    Rtrans = 1 << 7       # source NAT
    Rsrc = 1 << 8         # source specific route

cdef enum:
    Lroot = 10            # iproute root table: 2^Lroot trees

# One route (iproute.c Route), kept in a C array sorted most specific first.
# Addresses are 16 bytes; v4 routes hold v4-mapped addresses and masks whose
# first 12 bytes are all ones, so one masked compare serves both versions.
cdef struct Rt:
    unsigned char a[16]           # target address (masked)
    unsigned char m[16]           # target mask
    unsigned char s[16]           # source address (masked)
    unsigned char sm[16]          # source mask
    unsigned char gate[16]
    int type
    int plen                      # bits set in m, sm: the sort keys
    int splen
    int ifcx                      # interface number (Ifc.x)
    int ifcid                     # Ifc.ifcid when the route was made
    char tag[4]
    int ref
    unsigned long long seq        # insertion order (stable sort)


cdef inline const unsigned char *bp(bytes b) noexcept:
    return <const unsigned char*>PyBytes_AS_STRING(b)


cdef inline bint maskeq(const unsigned char *x, const unsigned char *a,
                        const unsigned char *m) noexcept:
    # (x & m) == a, a already masked: two 8-byte words (memcpy: any
    # alignment; the compiler makes each a load)
    cdef uint64_t x0, x1, a0, a1, m0, m1
    memcpy(&x0, x, 8)
    memcpy(&x1, x + 8, 8)
    memcpy(&a0, a, 8)
    memcpy(&a1, a + 8, 8)
    memcpy(&m0, m, 8)
    memcpy(&m1, m + 8, 8)
    return (x0 & m0) == a0 and (x1 & m1) == a1


cdef inline bint iszero16(const unsigned char *a) noexcept:
    cdef int i
    for i in range(16):
        if a[i]:
            return 0
    return 1


cdef class Routetab:
    # the routes (devip's v4root/v6root forests) as one sorted C array
    cdef Rt *rt
    cdef int nrt
    cdef int art
    cdef unsigned long long rtseq
    cdef unsigned int rgen                # route generation (cache validity)
    cdef Routehint rc                     # the hint of lookups made without one

    cdef int rtfind(self, Rt *r) noexcept
    cdef int rtinsert(self, Rt *r) except -1
    cdef void rtremove(self, int i) noexcept
    cdef bint matchroute(self, Rt *a, Rt *b, bint anyifc) noexcept
    cdef int routeadd(self, Rt *r) except -1
    cdef bint routedel(self, Rt *r, bint anyifc) noexcept
    cdef int addroute(self, bytes a, bytes mask, bytes s, bytes smask, bytes gate, int type,
                      int ifcx, int ifcid, bytes tag) except -1
    cdef int remroute(self, bytes a, bytes mask, bytes s, bytes smask, bytes gate, int type,
                      int ifcx, int ifcid, bytes tag) except -1
    cdef int rlookup(self, const unsigned char *dst, const unsigned char *src, bint v4,
                     Routehint *rh) noexcept
    cdef dict rtdict(self, int i)


cdef int mkroute(Rt *r, bytes a, bytes mask, bytes s, bytes smask, bytes gate,
                 int type, int ifcx, int ifcid, bytes tag) except -1


# libip's address and mask helpers, from Python values
cpdef bytes addr16(object a)
cpdef bytes parseipmask(str s, bint v4)
cpdef bytes prefixmask(int n)
cpdef bytes mask16(object m, bytes ip)
cpdef bytes defmask(bytes ip)
cpdef bytes maskip(bytes a, bytes m)
cpdef str fmtmask(object m)
cpdef str routetype(int type)
cpdef int parseroutetype(str s)

# the table from Python and /net/iproute (Ip.addroute, Ip.delroute, Ip.routewrite)
cpdef addroute(Ip ip, object dst, object mask, object gate=*, object ifc=*, object src=*,
               object smask=*, object type=*, object tag=*)
cpdef bint delroute(Ip ip, object dst, object mask, object gate=*, object ifc=*, object src=*,
                    object smask=*, object tag=*) except -1
cpdef str routewrite(Ip ip, object msg, str tag=*)
