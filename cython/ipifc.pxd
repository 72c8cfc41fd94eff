# net9's interfaces: 9front's ipifc.c (devip), sans I/O.  The interfaces
# (Ifc, with their addresses Lifc) as the conversations of the ipifc
# protocol, the self table (Ipselftab, the addresses this host answers
# to) and the functions that keep both and the route table in step.
# Ip (ip.pxd) holds the interfaces and one Ipselftab.

from net9.conv cimport Conv, Proto, Fs
from net9.ip cimport Ip

cdef enum:
    QMAX = 192 * 1024 - 1         # ipifc.c: the conversation queues' limit
    SNOOPMAX = 1 << 20            # net9: a snoop queue's bytes (devip: QMAX)

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

cdef class Ipselftab:
    # ipifc.c Ipselftab: selfs maps a 16-byte address to its entry; hash
    # holds the entries in NHASH chains, newest first (ipselftabread's
    # order); selfa/selftype are the C copy ipforme scans
    cdef dict selfs
    cdef list hash
    cdef unsigned char *selfa
    cdef int *selftype
    cdef int nself
    cdef bint acceptall           # an interface has the null address
    cdef int forme(self, const unsigned char *a) noexcept
    cdef int sync(self) except -1


cdef class IpifcProto(Proto):
    # /net/ipifc: the interfaces as devip conversations; also runs the
    # IP layer's timers (fragment reassembly) from Fs.advance
    cdef public Ip ip


# what ip.c, ipv6.c and iproute.c use of ipifc.c
cpdef ipifcbind(Ip ip, Ifc ifc, object medium, object name=*)
cpdef bint ipifcaddmulti(Ip ip, object ma, object ia) except -1
cpdef bint ipifcremmulti(Ip ip, object ma, object ia) except -1
cdef Ifc findipifc(Ip ip, bytes local, bytes remote, int type)
cdef Ifc findipifcstr(Ip ip, object ifc)
cdef bytes findlocalip(Ip ip, bytes raddr)
cdef bint v4local(Ifc ifc, unsigned char *local4, int prefixlen, const unsigned char *remote4)
cdef bint v6local(Ifc ifc, unsigned char *local, int prefixlen, const unsigned char *remote)
