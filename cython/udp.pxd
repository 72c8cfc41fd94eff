# UDP: a port of 9front's sys/src/9/ip/udp.c over devip's generic
# conversation layer (conv.pxd).  /net/udp.

from net9.conv cimport Conv, Proto, Fs
# udp.c's header sizes, the wire layer's (wire.pxd)
from net9.wire cimport (UDPHDRLEN as UDP_UDPHDR_SZ, IP4HDRLEN as UDP4_IPHDR_SZ,
                        IP6HDRLEN as UDP6_IPHDR_SZ)

cdef enum:
    IP_UDPPROTO = 17
    UDP_USEAD7 = 52          # the headers-mode prefix
    UDP_RQLIMIT = 512 * 1024 # udpcreate: qopen(512*1024, Qmsg, ...)
    Maxatomic = 64 * 1024    # qwrite's chunk: a longer write is several datagrams

cdef class Udpcb:
    # udp.c Udpcb: the source address used for transmission (headers
    # mode lives in Conv.headers)
    cdef unsigned char srcip[16]

cdef class UdpProto(Proto):
    # Udpstats (MIB II) and udp.c's non-MIB counters
    cdef public unsigned long long InDatagrams
    cdef public unsigned long NoPorts
    cdef public unsigned long InErrors
    cdef public unsigned long long OutDatagrams
    cdef public unsigned long csumerr
    cdef public unsigned long lenerr
    cdef public unsigned long qfull    # datagrams dropped on a full (or hung up) read queue
    cdef public bint portunreach       # answer a datagram to a closed port with ICMP (default on)
    cdef unsigned char *scratch        # headers-mode assembly buffer
    cdef int udpiput(self, const unsigned char *p, Py_ssize_t n, object pkt, object ifc) except -1
    cdef int udpkick(self, Conv c, const unsigned char *p, Py_ssize_t n) except -1
    cdef int noconv(self, object pkt, int version, object ifc) except -1
