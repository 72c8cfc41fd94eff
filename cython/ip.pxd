# net9's IP layer: 9front's ip.c, ipv6.c, ipifc.c and iproute.c (devip),
# sans I/O.  Ip is the IpLayer the transport engines see (conv.pxd); the
# media hand every received datagram to Ip.input and receive datagrams to
# send through their transmit(pkt) method.

from net9.conv cimport Conv, Proto, Fs, IpLayer

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
    Lroot = 10                    # iproute root table: 2^Lroot trees
    Fragtimeout = 30000           # ms a reassembly may wait (ipfragallo4)

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


cdef class PktQueue:
    # devip's queue of blocks as ipifc's rq and sq use it: one datagram per
    # read (split when the read is short, the rest read next), bounded in
    # bytes (qpass: drop-tail past the limit, counted), EOF rules of qio
    cdef object q                 # deque of bytes
    cdef public Py_ssize_t limit
    cdef public Py_ssize_t qlen
    cdef public bint closed
    cdef public int eof
    cdef public bint rwait
    cdef public object wakecb
    cdef public unsigned long long passed
    cdef public unsigned long long drops
    cpdef int put(self, object pkt) except -1
    cpdef object read(self, Py_ssize_t n)
    cpdef close(self)
    cpdef reopen(self)
    cpdef flush(self)


cdef class Lifc:
    # a logical interface: one address on an interface (Iplifc)
    cdef unsigned char local_[16]
    cdef unsigned char mask_[16]
    cdef unsigned char remote_[16]
    cdef unsigned char net_[16]
    cdef public int type
    cdef public bint tentative
    cdef public bint onlink
    cdef public bint autoflag
    cdef public unsigned int validlt
    cdef public unsigned int preflt
    cdef public unsigned int origint
    cdef public list links        # self addresses linked to this lifc, newest first


cdef class Ifc:
    # an interface (Ipifc): a medium and its addresses
    cdef public Ip ip
    cdef public Conv conv
    cdef public object medium
    cdef public str dev
    cdef public int x
    cdef public int maxtu
    cdef public int mintu
    cdef public int hsize
    cdef public int ifcid         # bumped when the interface's routes stop pertaining
    cdef public list lifcs        # Lifc, in the order added
    cdef public unsigned long long pktin
    cdef public unsigned long long pktout
    cdef public unsigned long long errin
    cdef public unsigned long long errout
    cdef public int speed
    cdef public int delay
    cdef public int reflect
    cdef public int reassemble
    cdef public int sendra6
    cdef public int recvra6
    cdef public dict rp           # IPv6 router parameters (Routerparams)
    cdef public bint unbindonclose
    cdef object transmit          # bound medium.transmit
    # beyond devip: the medium's segmentation offload (medium.gso, the
    # largest TCP datagram it cuts into segments itself; 0 none)
    cdef public int gso
    cdef object transmitgso       # bound medium.transmit_gso
    # the conversation's packet queues: pq, what a pkt medium sends (read
    # from data); sq, copies of every datagram in and out while snoop is
    # open (snoopers > 0)
    cdef public PktQueue pq
    cdef public PktQueue sq
    cdef public int snoopers



cdef class Reasm:
    # one reassembly in progress (Fragment4 / Fragment6)
    cdef public object key
    cdef public int version
    cdef public unsigned int deadline
    cdef public list frags        # [foff, data, mf, hdr] sorted by foff
    cdef public Py_ssize_t nbytes


cdef class IpifcProto(Proto):
    # /net/ipifc: the interfaces as devip conversations; also runs the
    # IP layer's timers (fragment reassembly) from Fs.advance
    cdef public Ip ip


cdef class Ip(IpLayer):
    cdef public Fs f
    cdef public IpifcProto ipifc
    cdef public list ifcs                 # Ifc by interface number (None when free)
    cdef unsigned long long stats_[19]
    cdef public int iprouting
    cdef unsigned int id4
    cdef unsigned int id6
    cdef public dict mediatypes           # "bind" medium name -> factory(ifc, argv)

    # routes
    cdef Rt *rt
    cdef int nrt
    cdef int art
    cdef unsigned long long rtseq
    cdef unsigned int rgen                # route generation (cache validity)
    cdef unsigned char rc_dst[16]         # one-entry route cache
    cdef unsigned char rc_src[16]
    cdef unsigned int rc_gen
    cdef int rc_idx

    # self table (ipselftab)
    cdef dict selfs                       # addr16 -> _Ipself
    cdef list selfhash                    # NHASH lists, newest first
    cdef unsigned char *selfa             # C copy: 16 bytes per entry
    cdef int *selftype
    cdef int nself
    cdef bint acceptall

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
    cdef int rlookup(self, const unsigned char *dst, const unsigned char *src, bint v4) noexcept
    cdef Ifc rtifc(self, int i)
    cdef int rtfind(self, Rt *r) noexcept
    cdef int rtinsert(self, Rt *r) except -1
    cdef void rtremove(self, int i) noexcept
    cdef int mkroute(self, Rt *r, bytes a, bytes mask, bytes s, bytes smask, bytes gate,
                     int type, Ifc ifc, bytes tag) except -1
    cdef bint matchroute(self, Rt *a, Rt *b, bint anyifc) noexcept
    cdef int routeadd(self, Rt *r) except -1
    cdef bint routedel(self, Rt *r, bint anyifc) noexcept
    cdef int parseroute(self, Rt *r, list argv) except -1
    cdef dict rtdict(self, int i)
    cdef bint v4source(self, const unsigned char *a4, unsigned char *s4)
    cdef bint v6source(self, const unsigned char *a, unsigned char *s)
    cdef bint v4local(self, Ifc ifc, unsigned char *local4, int prefixlen, const unsigned char *remote4)
    cdef bint v6local(self, Ifc ifc, unsigned char *local, int prefixlen, const unsigned char *remote)
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
    cdef int oput4(self, bytearray pkt, int ttl, int tos, int gsomss) except? -2
    cdef int oput6(self, bytearray pkt, int ttl, int tos, int gsomss) except? -2
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
