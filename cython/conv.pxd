# devip's generic layer (devip.c, ipaux.c): the conversation record, the
# protocol switch, the conversation hash, ports, incoming calls, and the
# sans-I/O container Fs that holds the clock, the log and the injected IP
# layer.  TCP (tcp.pyx) and later UDP and ICMP build on it; the 9P server
# sits on top and never sees protocol internals.

from net9.qio cimport Queue, Trimmer
from net9.netlog cimport Netlog

cpdef enum ConvState:
    # devip state (ip.h); Python sees net9.conv.ConvState
    Idle = 0
    Announcing = 1
    Announced = 2
    Connecting = 3
    Connected = 4

cdef enum:
    V4 = 4
    V6 = 6
    IPaddrlen = 16
    Maxincall = 10
    Nipht = 521          # ipaux.c: hash table size
    MAXTTL = 255
    DFLTTOS = 0

cdef struct Routehint:
    # ip.h's Routehint, a Conv's first element: the route its datagrams
    # to a from s took last, an index into the route table plus one (0:
    # none), good while the table's generation is rgen (v4lookup/v6lookup
    # take it instead of searching the table again)
    int r
    unsigned int rgen
    unsigned char a[16]
    unsigned char s[16]

cdef enum:
    # ipaux.c match types
    IPmatchexact = 0
    IPmatchany = 1
    IPmatchport = 2
    IPmatchaddr = 3
    IPmatchpa = 4

# a ctl write's fields: parsecmd's list as given, or text parsed
cdef list ctlfields(object msg)

cdef class Conv:
    cdef public int x                  # conversation number
    cdef public Proto p
    cdef Routehint rh                  # the IP layer's, for each datagram sent with rh=self
    cdef unsigned char laddr[16]
    cdef unsigned char raddr[16]
    cdef public int lport
    cdef public int rport
    cdef public int ipversion          # V4 or V6
    cdef public int ttl
    cdef public int tos
    cdef public int state              # devip state
    cdef public int inuse              # reference count
    cdef public str owner
    cdef public int perm
    cdef public bint restricted
    cdef public bint ignoreadvice
    cdef public bint headers
    cdef public Queue rq
    cdef public Queue wq
    cdef public Queue eq
    cdef public object cerr            # Fsconnected's reason, None for success
    cdef public list incall            # calls waiting for listen (Conv), oldest first
    cdef public object ptcl            # protocol control block
    cdef public bint wakepending       # already on Fs.woken
    cdef public object aux             # free for the layer above (parked requests)
    cdef public list multi             # multicast memberships: (group, ifcaddr)
    # Ipht chain
    cdef Conv hnext
    cdef int match
    cdef int hbucket                   # -1 when not hashed
    cdef public object trans           # NAT translation (tcpforward); always None for now
    cdef bint onfree                   # on its Proto's free heap (Proto.freeh)

cdef class IpLayer:
    # What the transport engines need of IP.  Subclass it (in Python or
    # Cython); the defaults describe a host with no interfaces.
    #
    # ipoput: send one IP datagram.  pkt holds the whole datagram: the IP
    # header (v4: 20 bytes, v6: 40 bytes) with version, lengths, protocol,
    # addresses, ttl and tos filled in (v4 id, fragment and header checksum
    # zero, for the IP layer to fill) and the transport header and payload
    # with their checksum done.  rh is the conversation or None (the IP
    # layer may keep the route in the conversation's Routehint).  Returns
    # < 0 for "no route" (ip.c's ipoput4/6 convention).
    cpdef int ipoput(self, int version, bytearray pkt, int ttl, int tos, object rh) except? -2
    # route: (mtu, direct) of the first hop toward raddr (mtu = interface
    # maxtu minus medium header; direct = the route is an interface or
    # unicast route, i.e. Rifc|Runi), or None when there is no route.
    cpdef object route(self, int version, bytes raddr, bytes laddr)
    # findlocalip: source address (16 bytes) for talking to raddr, or IPnoaddr
    cpdef bytes findlocalip(self, bytes raddr)
    # isself: addr is one of ours (unicast, broadcast or multicast in ipselftab)
    cpdef bint isself(self, bytes addr)
    # gso (beyond devip): the largest TCP datagram the first hop toward
    # raddr takes whole, to cut into segments itself (segmentation offload
    # of the medium), 0 when it cannot (the default)
    cpdef int gso(self, int version, bytes raddr, bytes laddr)
    # ipoputgso: ipoput for a TCP datagram larger than the route's MTU but
    # within gso(): the medium cuts it into segments of mss payload bytes.
    # The default sends it as ipoput would (which fragments it).
    cpdef int ipoputgso(self, int version, bytearray pkt, int ttl, int tos, object rh,
                        int mss) except? -2
    # ipforme: what addr is to this host (ipifc.c ipforme): Runi, Rbcast or
    # Rmulti of ip.pxd, 0 when it is not ours
    cpdef int ipforme(self, bytes addr)
    # forme: ipforme for the 16 bytes at a, from C (no bytes object made
    # where the IP layer is a Cython one)
    cdef int forme(self, const unsigned char *a) except -1
    # The receiving interface: the IP layer hands it to Proto.rcv with each
    # datagram, and the protocols pass it back (an opaque object to them).
    # ipv4local/ipv6local: ifc's address best for talking to remote (ipifc.c
    # ipv4local/ipv6local), or None; ipv6local takes a v4 remote too.
    cpdef bytes ipv4local(self, object ifc, bytes remote)
    cpdef bytes ipv6local(self, object ifc, bytes remote)
    # ifcaddr: ifc's first address (ifc->lifc->local) or None
    cpdef bytes ifcaddr(self, object ifc)
    # iplocalonifc: addr is one of ifc's addresses
    cpdef bint iplocalonifc(self, object ifc, bytes addr)
    # the ICMP errors the transports send (icmp.c icmpnoconv, icmp6.c's port
    # unreachable): about datagram pkt received on ifc; nothing without ICMP
    cpdef icmpnoconv(self, object ifc, object pkt)
    cpdef icmpnoconv6(self, object ifc, object pkt)

cdef class Fs:
    cdef public IpLayer ip
    cdef public Netlog log
    cdef public unsigned int now       # milliseconds, wraps like NOW
    cdef public object rand            # random.Random: nrand()
    cdef public dict protos            # name -> Proto
    cdef public list ipproto           # 256 entries: IP protocol number -> Proto or None
    cdef public list woken             # Convs with something to wake (see wake)
    cdef public str eve                # host owner
    cdef public str network            # "network", owner of idle conversations
    cdef public Trimmer trimmer        # the conversations' queues' trimming account
    cdef inline void wake(self, Conv c):
        if not c.wakepending:
            c.wakepending = 1
            self.woken.append(c)
    cdef unsigned int nrand(self, unsigned int n)
    cpdef list drain(self)             # take the woken list, clearing the flags
    cpdef advance(self, unsigned int now)  # set the clock and run every proto's timers
    cpdef object nextdeadline(self)    # ms time of the next timer event, None if idle
    cpdef int iput(self, int ipproto, object pkt, object ifc=*) except? -1  # hand a datagram to a protocol; -1: none for ipproto
    cpdef Py_ssize_t trim(self) except -1  # give back idle queues' buffers; queues still busy

cdef class Proto:
    cdef public Fs f
    cdef public str name
    cdef public int ipproto
    cdef public int nc                 # maximum conversations
    cdef public list conv              # slots: Conv or None, len nc
    cdef public int ptclsize
    cdef public int nextrport          # restricted port cursor (600..1023)
    cdef list ht                       # Nipht buckets: Conv chains via hnext
    # beyond devip: numbers of slots that may be free (inuse 0, not
    # pinuse), a min-heap, so that clone finds the lowest free slot
    # without scanning the table (Fsprotoclone scans it from 0)
    cdef list freeh
    # beyond devip: conversations one owner may hold in this protocol at
    # once (in use: cloned, opened, or waiting calls of its listeners);
    # 0 is devip's "no limit".  Past it, clone fails with Enodev.
    cdef public int maxperuser

    # Ipht (ipaux.c)
    cdef void iphtadd(self, Conv c)
    cdef void iphtrem(self, Conv c)
    cdef Conv iphtlook(self, const unsigned char *sa, int sp, const unsigned char *da, int dp)
    cdef Conv iphtlookannounced(self, const unsigned char *da, int dp)  # iphtlook's stages after the exact one
    cdef Conv advconv(self, object pkt)        # the conversation an ICMP error's quote names

    # devip generic layer
    cpdef Conv clone(self, str owner)          # Fsprotoclone; Net9Error(Enodev)
    cdef void maybefree(self, Conv c)          # c may be free now: onto freeh
    cdef Conv popfree(self)                    # the lowest free slot from freeh, or None
    cdef object openqueues(self, Conv c, Py_ssize_t rqlimit, Py_ssize_t wqlimit, bint msg)  # a create's qopens
    cpdef int owned(self, str owner)           # conversations in use owned by owner
    cpdef checkowner(self, str owner)          # Net9Error(Enodev) when owner is at maxperuser
    cpdef Conv newcall(self, Conv c, bytes raddr, int rport, bytes laddr, int lport, int version)
    cpdef connected(self, Conv c, object msg)  # Fsconnected
    cpdef Conv takecall(self, Conv c)          # first incoming call or None (listen)
    cpdef incref(self, Conv c)
    cpdef closeconv(self, Conv c)              # drop one reference; the last one closes
    cpdef object ctl(self, Conv c, object msg, str user=*)  # one ctl write (ipwrite Qctl): text or parsecmd's fields
    cpdef object read(self, Conv c, Py_ssize_t n)   # data read: bytes / None (block) / b"" / raise
    cpdef Py_ssize_t write(self, Conv c, object data) except -1  # data write (queue then kick)
    cpdef str status(self, Conv c)
    cpdef str stats(self)
    cpdef str localtext(self, Conv c)          # "%I!%d\n"
    cpdef str remotetext(self, Conv c)
    cdef int unusedlport(self) except -1
    cdef int lportinuse(self, int lport) except -1
    # The address and port setters, the ctl messages and the hooks below
    # raise Net9Error with devip's text; they return 0.
    cdef int setlport(self, Conv c, bint announcing) except -1
    # user: the requester, who must be eve to announce port "*" (None: c.owner)
    cdef int setladdrport(self, Conv c, str s, bint announcing, str user) except -1
    cdef int setraddrport(self, Conv c, str s) except -1
    cdef int setluniqueport(self, Conv c, int lport) except -1
    cdef setladdr(self, Conv c)
    cpdef int stdconnect(self, Conv c, list argv) except -1   # Fsstdconnect
    cpdef int stdannounce(self, Conv c, list argv, str user) except -1  # Fsstdannounce
    cdef int connectctlmsg(self, Conv c, list f) except -1
    cdef int announcectlmsg(self, Conv c, list f, str user) except -1

    # protocol hooks (tcp.c's Proto function pointers); defaults do nothing
    # (pconnect, pannounce and pctl refuse: Net9Error)
    cpdef int pconnect(self, Conv c, list argv) except -1
    cpdef int pannounce(self, Conv c, list argv, str user) except -1   # user: as setladdrport's
    cpdef int pctl(self, Conv c, list argv) except -1
    cpdef str pstate(self, Conv c)
    cpdef pcreate(self, Conv c)
    cpdef pclose(self, Conv c)
    cpdef pkick(self, Conv c)                   # after a data write
    cpdef prcvkick(self, Conv c)                # a read cleared receive flow control
    cpdef prcvread(self, Conv c)                # beyond devip: any other read that took data
    cpdef str pstats(self)
    cpdef bint pinuse(self, Conv c)
    cpdef int pgc(self)
    cpdef int rcv(self, object pkt, object ifc=*) except -1   # IP input of one datagram, received on ifc (IpLayer's, None when not known)
    cpdef advise(self, object pkt, str msg)     # ICMP error: pkt is the offending datagram
    cpdef padvance(self)                        # f.now moved: run the timers that are due
    cpdef object pnextdeadline(self)            # ms time of the next timer event or None
