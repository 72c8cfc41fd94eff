# net9's IP layer: 9front's ip.c and ipv6.c (devip), sans I/O: input,
# output, fragmentation and reassembly, v4 and v6.  Ip is the IpLayer the
# transport engines see (conv.pxd); the media hand every received
# datagram to Ip.input and receive datagrams to send through their
# transmit(pkt) method.  The interfaces and the self table are ipifc's
# (ipifc.pxd), the route table iproute's (iproute.pxd); Ip holds them.

from net9.conv cimport Conv, Proto, Fs, IpLayer, Routehint
from net9.iproute cimport Routetab, Rt
from net9.ipifc cimport Ifc, Lifc, PktQueue, IpifcProto, Ipselftab

cdef enum:
    MAXTTL = 255
    DFLTTOS = 0

cdef enum:
    # ip.c stats (the order of /net/ipifc/stats)
    Forwarding = 0
    DefaultTTL
    InReceives
    InHdrErrors
    InAddrErrors
    ForwDatagrams
    InUnknownProtos
    InDiscards
    InDelivers
    OutRequests
    OutDiscards
    OutNoRoutes
    ReasmTimeout
    ReasmReqds
    ReasmOKs
    ReasmFails
    FragOKs
    FragFails
    FragCreates
    Nipstats

cdef enum:
    IP_MAX = 64 * 1024            # largest datagram, v4 and v6
    IP4HDR = 20
    IP6HDR = 40
    IP6FHDR = 8
    IP_DF = 0x4000
    IP_MF = 0x2000
    IP_FO = 0x1fff
    # IPv6 extension headers (ipv6.h)
    HBH = 0
    RH = 43
    FH = 44
    NNH = 59
    DOH = 60
    ICMPv6 = 58
    Maxmedia = 32
    NHASH = 64                    # ipselftab hash chains
    Fragtimeout = 30000           # ms a reassembly may wait (ipfragallo4)

cdef class Reasm:
    # one reassembly in progress (Fragment4 / Fragment6)
    cdef public object key
    cdef public int version
    cdef public unsigned int deadline
    cdef public list frags        # [foff, data, mf, hdr] sorted by foff
    cdef public Py_ssize_t nbytes


cdef class Ip(IpLayer):
    cdef public Fs f
    cdef public IpifcProto ipifc
    cdef public list ifcs                 # Ifc by interface number (None when free)
    cdef unsigned long long stats_[19]
    cdef public int iprouting
    cdef unsigned int id4
    cdef unsigned int id6
    cdef public dict mediatypes           # "bind" medium name -> factory(ifc, argv)
    cdef public Routetab rtab             # the route table (iproute)
    cdef public Ipselftab ipselftab       # the self table (ipifc)

    # reassembly
    cdef public dict reasms               # key -> Reasm, oldest first
    cdef public Py_ssize_t reasmbytes
    cdef public int maxreasm
    cdef public Py_ssize_t maxreasmbytes
    cdef public unsigned int fragtimeout

    # beyond devip: called as bindhook(ifc, medium) after a medium is bound
    # and unbindhook(ifc, medium) after it is unbound (the stack reads
    # media and closes them); snoopmax: each snoop queue's bytes
    cdef public object bindhook
    cdef public object unbindhook
    cdef public Py_ssize_t snoopmax

    cdef int forme(self, const unsigned char *a) except -1
    cdef Ifc rtifc(self, int i)
    cdef int input4(self, Ifc ifc, object pkt, const unsigned char *p, Py_ssize_t n, int gso) except -1
    cdef int input6(self, Ifc ifc, object pkt, const unsigned char *p, Py_ssize_t n, int gso) except -1
    cdef int forward4(self, Ifc ifc, object pkt, const unsigned char *p, int length, int gso) except -1
    cdef int forward6(self, Ifc ifc, object pkt, const unsigned char *p, int length, int gso) except -1
    cdef int gated(self, Ifc gating, Ifc ifc, bytearray pkt, int gso) except -1
    cdef int gatedfrag4(self, Ifc ifc, bytearray pkt, int medialen) except -1
    cdef list tcpsegment(self, bytearray pkt, int mss)
    cdef icmperr(self, str fn, object ifc, object pkt, object arg)
    cdef snooplost(self, Ifc ifc)
    cdef deliver(self, Ifc ifc, int proto, object pkt)
    cdef int oput4(self, bytearray pkt, int ttl, int tos, int gsomss, Routehint *rh) except? -2
    cdef int oput6(self, bytearray pkt, int ttl, int tos, int gsomss, Routehint *rh) except? -2
    cdef int ifcoput(self, Ifc ifc, object pkt) except -1
    cdef int ifcoputgso(self, Ifc ifc, object pkt, int mss) except -1
    cdef Reasm fragalloc(self, object key, int version)
    cdef void fragfree(self, Reasm r)
    cdef bint fragbound(self, Reasm f)
    cdef object fraginsert(self, Reasm f, int foff, bytes data, bint mf, bytes hdr)
    cdef object reasm4(self, object pkt)
    cdef object reasm6(self, object pkt, const unsigned char *p, int length, int uflen, int qoff)
    cpdef int input(self, Ifc ifc, object pkt, int gso=*) except -1
    cpdef int forme16(self, bytes a)
