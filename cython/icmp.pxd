# ICMP and ICMPv6 (9front icmp.c, icmp6.c) as protocols of the stack:
# echo replies, errors passed to the transports' advise, errors sent for
# the IP layer, statistics.  The /net/icmp conversation files are the
# generic devip ones (conv.pxd); datagrams for them arrive on their rq.

from net9.conv cimport Conv, Proto, Fs
# icmp.c's header sizes, the wire layer's (wire.pxd)
from net9.wire cimport IP4HDRLEN as ICMP_IPSIZE, ICMPHDRLEN as ICMP_HDRSIZE

cdef enum:
    IP_ICMPPROTO = 1
    Maxtype = 18
    Maxtype6 = 137
    IPICMPSZ = 48        # IPv6 header + ICMP header

cdef class IcmpBase(Proto):
    # icmp.c's conversation hooks and counters, which ICMPv6 shares: the
    # stats (ICMP uses the first 6 of them) and the per-type in and out
    # counts (ICMP: types 0..Maxtype)
    cdef unsigned long long stats_[12]
    cdef unsigned long long in_[138]
    cdef unsigned long long out_[138]
    cdef list statnames_
    cdef int kick(self, Conv c, object m) except -1
    cdef advisecall(self, int recid, bytes src, bytes dst, str msg)

cdef class Icmp(IcmpBase):
    cdef int icmpsend(self, object ifc, object bp, int type, int code, int arg) except -1
    cdef goticmpkt(self, bytes pkt)
    cdef bint ip4reply(self, bytes a16)
    cdef bint ip4me(self, bytes a16)
    cdef int advise4(self, bytes b, str msg) except -1
    cdef object mkechoreply(self, bytes b)

cdef class Icmp6(IcmpBase):
    cdef int icmpsend6(self, object ifc, object bp, int type, int code, unsigned int arg) except -1
    cdef goticmpkt6(self, bytes pkt, int muxkey, object ifc)
    cdef bint valid(self, const unsigned char *p, Py_ssize_t n)
    cdef int advise6(self, object ifc, bytes b, str msg) except -1
    cdef object mkechoreply6(self, bytes b, object ifc)
