# cython: language_level=3
"""devip's generic conversation layer (9front sys/src/9/ip/devip.c and
ipaux.c), sans I/O.

A Proto owns numbered conversations (Conv), each with read, write and
error queues, addresses, ports and a devip state (Idle, Announcing,
Announced, Connecting, Connected).  Control messages arrive as text through
Proto.ctl exactly as a write to /net/<proto>/<n>/ctl; data through
Proto.read/Proto.write.  Nothing here blocks: an operation that would block
in devip returns (None for a read, Conv.state == Connecting after a
connect, Queue.flow after a write) and the layer above parks the request
until Fs.drain() names the conversation again.

The protocol engines (tcp.pyx, later udp and icmp) subclass Proto and fill
in the p* hooks, which correspond to the function pointers of devip's
Proto (connect, announce, ctl, state, create, close, rcv, advise, stats,
inuse, gc).
"""

from libc.string cimport memcpy, memcmp, memset
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE

import random
from heapq import heappush, heappop

from net9 import errors
from net9.errors import Net9Error
from net9.ipaux import parseip, fmtip, parsecmd, ipismulticast, isv4 as _isv4
from net9.ipaux import atoi as _atoi
from net9.qio cimport Queue, Trimmer
from net9.netlog cimport Netlog
from net9.byteorder cimport nhgets, v4tov6c
from net9.wire cimport ipver, ip4hl, ipaddrs

cdef bytes IPnoaddr = b"\0" * 16
cdef unsigned char noaddr[16]
memset(noaddr, 0, 16)
cdef bytes v4prefix = b"\0" * 10 + b"\xff\xff"

# devip's limits
QMAX_DEFAULT = 64 * 1024 - 1
Nchans = 4096       # conversation numbers must stay below 4096 (qid layout)


cdef inline bint isv4c(const unsigned char *a) noexcept:
    return memcmp(a, <const char*>v4prefix, 12) == 0


cdef inline unsigned int iphash(const unsigned char *sa, int sp,
                                const unsigned char *da, int dp) noexcept:
    # ipaux.c iphash
    return ((<unsigned int>sa[15] << 24) ^ (<unsigned int>sp << 16)
            ^ (<unsigned int>da[15] << 8) ^ <unsigned int>dp) % Nipht


def _strtoport(str s):
    """strtoul(s, &p, 10) followed by devip's check that the number is
    followed by end of string or '!'.  Returns (port, rest)."""
    cdef Py_ssize_t i = 0, n = len(s)
    neg = False
    while i < n and s[i] in " \t":
        i += 1
    j = i
    if i < n and s[i] in "+-":
        neg = s[i] == "-"
        i += 1
    k = i
    while i < n and "0" <= s[i] <= "9":
        i += 1
    if i == k:
        raise Net9Error(errors.Ebadport)
    if i < n and s[i] != "!":
        raise Net9Error(errors.Ebadport)
    v = int(s[k:i])
    if neg:
        v = -v
    return v & 0xFFFF, s[i:]


cdef int setaddr16(unsigned char *dst, bytes a) except -1:
    if len(a) != 16:
        raise ValueError("address must be 16 bytes")
    memcpy(dst, <const char*>a, 16)
    return 0


cdef list ctlfields(object msg):
    """A ctl write's fields: msg is parsecmd's list of them already, or the
    text (str or bytes) to parse."""
    if type(msg) is list:
        return <list>msg
    if isinstance(msg, (bytes, bytearray, memoryview)):
        msg = bytes(msg).decode("utf-8", "replace")
    return parsecmd(msg)


cdef class Conv:
    """One conversation: /net/<proto>/<x>."""

    def __cinit__(self):
        self.hbucket = -1
        self.incall = []
        self.cerr = None
        self.owner = "network"
        self.perm = 0o660
        self.ttl = MAXTTL
        self.tos = DFLTTOS
        self.ipversion = V4
        self.multi = []

    property localaddr:
        """Local address, 16 bytes (v4-mapped for IPv4)."""
        def __get__(self):
            return PyBytes_FromStringAndSize(<char*>self.laddr, 16)
        def __set__(self, bytes a):
            setaddr16(self.laddr, a)

    property remoteaddr:
        """Remote address, 16 bytes (v4-mapped for IPv4)."""
        def __get__(self):
            return PyBytes_FromStringAndSize(<char*>self.raddr, 16)
        def __set__(self, bytes a):
            setaddr16(self.raddr, a)

    property hashed:
        def __get__(self):
            return self.hbucket >= 0

    def __repr__(self):
        return "<Conv %s/%d %s!%d -> %s!%d state %d inuse %d>" % (
            self.p.name if self.p is not None else "?", self.x,
            fmtip(self.localaddr), self.lport, fmtip(self.remoteaddr), self.rport,
            self.state, self.inuse)


cdef class IpLayer:
    """The IP layer as the transport engines see it.  This base class is a
    host with no interfaces: nothing routes and nothing is local."""

    cpdef int ipoput(self, int version, bytearray pkt, int ttl, int tos, object rh) except? -2:
        return -1

    cpdef object route(self, int version, bytes raddr, bytes laddr):
        return None

    cpdef bytes findlocalip(self, bytes raddr):
        return IPnoaddr

    cpdef bint isself(self, bytes addr):
        return False

    cpdef int gso(self, int version, bytes raddr, bytes laddr):
        return 0

    cpdef int ipoputgso(self, int version, bytearray pkt, int ttl, int tos, object rh,
                        int mss) except? -2:
        return self.ipoput(version, pkt, ttl, tos, rh)

    cpdef int ipforme(self, bytes addr):
        return 1 if self.isself(addr) else 0      # Runi (ip.pxd)

    cdef int forme(self, const unsigned char *a) except -1:
        return self.ipforme(PyBytes_FromStringAndSize(<const char*>a, 16))

    cpdef bytes ipv4local(self, object ifc, bytes remote):
        # no interfaces: the address findlocalip gives, when it is v4
        cdef bytes a = self.findlocalip(remote)
        if a is None or a[:12] != v4prefix:
            return None
        return a

    cpdef bytes ipv6local(self, object ifc, bytes remote):
        cdef bytes a = self.findlocalip(remote)
        if a is None or a == IPnoaddr:
            return None
        return a

    cpdef bytes ifcaddr(self, object ifc):
        return None

    cpdef bint iplocalonifc(self, object ifc, bytes addr):
        return True

    cpdef icmpnoconv(self, object ifc, object pkt):
        pass

    cpdef icmpnoconv6(self, object ifc, object pkt):
        pass


cdef class Fs:
    """The sans-I/O container of one stack: clock, randomness, log, the IP
    layer and the protocols.  Everything that would be a kernel global in
    9front hangs off this."""

    def __init__(self, IpLayer ip=None, seed=None, unsigned int now=0,
                 str eve="none", str network="network"):
        self.ip = ip if ip is not None else IpLayer()
        self.log = Netlog()
        self.now = now
        self.rand = random.Random(seed)
        self.protos = {}
        self.ipproto = [None] * 256
        self.woken = []
        self.eve = eve
        self.network = network
        self.trimmer = Trimmer()

    cdef unsigned int nrand(self, unsigned int n):
        # 9front nrand(n): uniform in [0, n)
        return self.rand.randrange(n)

    def wakeconv(self, Conv c):
        """A callable that puts c on the woken list (queue wake-ups)."""
        def wakeup():
            self.wake(c)
        return wakeup

    cpdef list drain(self):
        """Conversations that had a wake-up (data, flow control, connect
        done, incoming call, hang-up) since the last drain."""
        cdef Conv c
        l = self.woken
        self.woken = []
        for c in l:
            c.wakepending = 0
        return l

    cpdef advance(self, unsigned int now):
        """Move the clock to now (ms) and run every timer that is due."""
        cdef Proto p
        self.now = now
        for p in self.protos.values():
            p.padvance()

    cpdef object nextdeadline(self):
        cdef Proto p
        best = None
        for p in self.protos.values():
            d = p.pnextdeadline()
            if d is not None and (best is None or <int>(<unsigned int>d - <unsigned int>best) < 0):
                best = d
        return best

    cpdef int iput(self, int ipproto, object pkt, object ifc=None) except? -1:
        """Deliver one IP datagram to the protocol ipproto.  Returns -1 if
        no protocol is registered for it (the IP layer answers with ICMP)."""
        cdef Proto p
        if ipproto < 0 or ipproto > 255:
            return -1
        p = self.ipproto[ipproto]
        if p is None:
            return -1
        p.rcv(pkt, ifc)
        return 0

    cpdef Py_ssize_t trim(self) except -1:
        """Give back the queue buffers of idle conversations (Queue.trim on
        every queue): whoever owns the clock calls it now and then (net9.stack
        about once a second while self.trimmer.busy or the last call's
        result is not 0).  Returns the number of queues that moved data
        since the previous call: they get another look next time."""
        cdef Proto p
        cdef Conv c
        cdef Py_ssize_t n = 0
        for p in self.protos.values():
            for c in p.conv:
                if c.rq is not None:
                    n += c.rq.trim()
                if c.wq is not None:
                    n += c.wq.trim()
                if c.eq is not None:
                    n += c.eq.trim()
        return n

    def proto(self, str name):
        return self.protos[name]


cdef class Proto:
    """A protocol's conversations and devip's generic handling of them."""

    def __init__(self, Fs f, str name, int ipproto, int nc=Nchans):
        if nc > Nchans:
            raise ValueError("at most %d conversations" % Nchans)
        self.f = f
        self.name = name
        self.ipproto = ipproto
        self.nc = nc
        self.conv = []
        self.nextrport = 600
        self.ht = [None] * Nipht
        self.freeh = []
        f.protos[name] = self
        if ipproto >= 0:
            f.ipproto[ipproto] = self

    # ---- Ipht (ipaux.c) ----

    cdef void iphtadd(self, Conv c):
        cdef unsigned int hv
        if c.hbucket >= 0:
            self.iphtrem(c)
        if memcmp(c.raddr, noaddr, 16) != 0:
            c.match = IPmatchexact
            hv = iphash(c.raddr, c.rport, c.laddr, c.lport)
        elif memcmp(c.laddr, noaddr, 16) != 0:
            if c.lport == 0:
                c.match = IPmatchaddr
                hv = iphash(noaddr, 0, c.laddr, 0)
            else:
                c.match = IPmatchpa
                hv = iphash(noaddr, 0, c.laddr, c.lport)
        else:
            if c.lport == 0:
                c.match = IPmatchany
                hv = iphash(noaddr, 0, noaddr, 0)
            else:
                c.match = IPmatchport
                hv = iphash(noaddr, 0, noaddr, c.lport)
        c.hnext = self.ht[hv]
        self.ht[hv] = c
        c.hbucket = hv

    cdef void iphtrem(self, Conv c):
        cdef Conv prev, x
        if c.hbucket < 0:
            return
        prev = None
        x = self.ht[c.hbucket]
        while x is not None:
            if x is c:
                if prev is None:
                    self.ht[c.hbucket] = c.hnext
                else:
                    prev.hnext = c.hnext
                break
            prev = x
            x = x.hnext
        c.hnext = None
        c.hbucket = -1

    cdef Conv iphtlook(self, const unsigned char *sa, int sp, const unsigned char *da, int dp):
        """ipaux.c iphtlook: sa/sp is the packet's source (remote),
        da/dp its destination (local).  Exact 4-tuple first, then local
        address and port, then port only, then local address, then any."""
        cdef Conv c
        c = self.ht[iphash(sa, sp, da, dp)]
        while c is not None:
            if (c.match == IPmatchexact and c.rport == sp and c.lport == dp
                    and memcmp(c.raddr, sa, 16) == 0 and memcmp(c.laddr, da, 16) == 0):
                return c
            c = c.hnext
        return self.iphtlookannounced(da, dp)

    cdef Conv iphtlookannounced(self, const unsigned char *da, int dp):
        """iphtlook without its first stage (the exact 4-tuple): the
        conversation a new call to da!dp would reach, an announced one or
        None, whatever connection holds the 4-tuple now."""
        cdef Conv c
        c = self.ht[iphash(noaddr, 0, da, dp)]
        while c is not None:
            if c.match == IPmatchpa and c.lport == dp and memcmp(c.laddr, da, 16) == 0:
                return c
            c = c.hnext
        c = self.ht[iphash(noaddr, 0, noaddr, dp)]
        while c is not None:
            if c.match == IPmatchport and c.lport == dp:
                return c
            c = c.hnext
        c = self.ht[iphash(noaddr, 0, da, 0)]
        while c is not None:
            if c.match == IPmatchaddr and memcmp(c.laddr, da, 16) == 0:
                return c
            c = c.hnext
        c = self.ht[iphash(noaddr, 0, noaddr, 0)]
        while c is not None:
            if c.match == IPmatchany:
                return c
            c = c.hnext
        return None

    cdef Conv advconv(self, object pkt):
        """The conversation that sent the datagram an ICMP error quotes
        (pkt: its IP header and at least the first 4 bytes of transport
        header, the ports): iphtlook with source and destination reversed.
        None when the quote is too short or neither IPv4 nor IPv6."""
        cdef Py_buffer view
        cdef const unsigned char *p
        cdef unsigned char source[16]
        cdef unsigned char dest[16]
        cdef int hl
        cdef int psource, pdest
        PyObject_GetBuffer(pkt, &view, PyBUF_SIMPLE)
        try:
            p = <const unsigned char*>view.buf
            if view.len < 1:
                return None
            if ipver(p) == 4:
                hl = ip4hl(p)
                if hl < 20 or view.len < hl + 4:
                    return None
                ipaddrs(p, 1, source, dest)
            elif ipver(p) == 6:
                hl = 40
                if view.len < hl + 4:
                    return None
                ipaddrs(p, 0, source, dest)
            else:
                return None
            psource = nhgets(p + hl)
            pdest = nhgets(p + hl + 2)
        finally:
            PyBuffer_Release(&view)
        return self.iphtlook(dest, pdest, source, psource)

    def lookup(self, bytes raddr, int rport, bytes laddr, int lport):
        """iphtlook from Python (tests, the layer above)."""
        if len(raddr) != 16 or len(laddr) != 16:
            raise ValueError("addresses must be 16 bytes")
        return self.iphtlook(<const unsigned char*><const char*>raddr, rport,
                             <const unsigned char*><const char*>laddr, lport)

    # ---- allocation and reference counting ----

    cpdef Conv clone(self, str owner):
        """Fsprotoclone: the lowest free slot, initialised as an Idle
        conversation owned by owner with one reference.  Raises
        Net9Error("no free devices").

        DEVIATION: devip scans the table from slot 0 on every clone; with
        thousands of conversations in Time_wait that scan was the largest
        cost of an incoming call.  Free slots are kept on a min-heap
        instead (freeh, fed by maybefree), so the choice is devip's, the
        lowest-numbered free slot, in O(log n); the scan remains only as a
        last resort when the table is full, the heap empty and the
        protocol's pgc found nothing to collect."""
        cdef Conv c = None
        cdef Conv x
        self.checkowner(owner)
        while True:
            c = self.popfree()
            if c is None and len(self.conv) < self.nc:
                c = Conv()
                c.p = self
                c.x = len(self.conv)
                c.eq = Queue(1024)
                c.eq.msg = True
                self.conv.append(c)
                self.pcreate(c)
                for q in (c.rq, c.wq, c.eq):
                    if q is not None:
                        (<Queue>q).settrimmer(self.f.trimmer)
            if c is not None:
                break
            if self.pgc() != 0:
                continue
            # (a slot that became free by a path that did not report it:
            # what devip's scan would find)
            for x in self.conv:
                if x.inuse == 0 and not self.pinuse(x):
                    c = x
                    break
            if c is not None:
                break
            raise Net9Error(errors.Enodev)
        c.inuse = 1
        c.owner = owner
        c.perm = 0o660
        c.state = Idle
        memset(c.laddr, 0, 16)
        memset(c.raddr, 0, 16)
        c.lport = 0
        c.rport = 0
        c.restricted = 0
        c.ignoreadvice = 0
        c.headers = 0
        c.ttl = MAXTTL
        c.tos = DFLTTOS
        c.cerr = None
        c.rq.reopen()
        c.wq.reopen()
        c.eq.reopen()
        return c

    cdef void maybefree(self, Conv c):
        """c may have become free (its last reference went, or its
        protocol let go of it): put it on freeh unless it is there.
        popfree checks again."""
        if c.onfree or c.inuse != 0:
            return
        c.onfree = 1
        heappush(self.freeh, c.x)

    cdef Conv popfree(self):
        """The lowest free slot on freeh, taken off it; None when there is
        none.  Entries no longer free are dropped (maybefree puts them back
        when they are free again)."""
        cdef Conv c
        while self.freeh:
            c = <Conv>self.conv[<int>heappop(self.freeh)]
            c.onfree = 0
            if c.inuse == 0 and not self.pinuse(c):
                return c
        return None

    cdef object openqueues(self, Conv c, Py_ssize_t rqlimit, Py_ssize_t wqlimit, bint msg):
        """What a protocol's create does with qopen: c's read and write
        queues (message queues when msg), which wake c through Fs.wake as
        its event queue does.  Returns that wake-up callable."""
        c.rq = Queue(rqlimit)
        c.wq = Queue(wqlimit)
        if msg:
            c.rq.msg = True
            c.wq.msg = True
        cb = self.f.wakeconv(c)
        c.rq.wakecb = cb
        c.wq.wakecb = cb
        c.eq.wakecb = cb
        return cb

    cpdef int owned(self, str owner):
        cdef Conv x
        cdef int n = 0
        for x in self.conv:
            if x.inuse > 0 and x.owner == owner:
                n += 1
        return n

    cpdef checkowner(self, str owner):
        """Beyond devip (which lets one user take every conversation):
        refuse a new conversation for owner when it already holds
        maxperuser of this protocol's."""
        if self.maxperuser > 0 and owner != self.f.network:
            if self.owned(owner) >= self.maxperuser:
                raise Net9Error(errors.Enodev)

    cpdef incref(self, Conv c):
        if c is None:
            raise TypeError("no conversation")
        c.inuse += 1

    cpdef closeconv(self, Conv c):
        """Drop one reference (a clunk of an opened ctl/data/err, the end of
        a listen wait).  The last one closes the conversation (section 2.3)."""
        if c is None:
            raise TypeError("no conversation")
        cdef Conv nc
        c.inuse -= 1
        if c.inuse > 0:
            return
        if c.inuse < 0:
            c.inuse = 0
            return
        # close all incoming calls since no listen will ever happen
        calls = c.incall
        c.incall = []
        for nc in calls:
            self.closeconv(nc)
        c.owner = self.f.network
        c.perm = 0o660
        while c.multi:
            self.leavemulti(c, c.multi[0][0], c.multi[0][1])
        self.pclose(c)
        c.state = Idle
        if not self.pinuse(c):
            self.maybefree(c)
        self.f.wake(c)

    cpdef Conv newcall(self, Conv c, bytes raddr, int rport, bytes laddr, int lport, int version):
        """Fsnewcall: a conversation for an incoming call on the announced
        conversation c, queued for listen.  None when c already has
        Maxincall calls waiting or no slot is free."""
        if c is None:
            raise TypeError("no conversation")
        cdef Conv nc
        if len(c.incall) >= Maxincall:
            return None
        try:
            nc = self.clone(c.owner)
        except Net9Error:
            return None
        memcpy(nc.raddr, <const char*>raddr, 16)
        nc.rport = rport
        memcpy(nc.laddr, <const char*>laddr, 16)
        nc.lport = lport
        nc.state = Connected
        nc.ipversion = version
        c.incall.append(nc)
        self.f.wake(c)
        return nc

    cpdef Conv takecall(self, Conv c):
        """The first queued incoming call of c, or None.  The reference the
        call was created with passes to the caller (the listen fid)."""
        if c is None:
            raise TypeError("no conversation")
        if not c.incall:
            return None
        return c.incall.pop(0)

    def putbackcall(self, Conv c, Conv nc):
        """Undo takecall (a listen flushed after the call was dequeued,
        spec section 14 point 2)."""
        if c is None:
            raise TypeError("no conversation")
        c.incall.insert(0, nc)

    cpdef connected(self, Conv c, object msg):
        """Fsconnected: a connect or announce finished (msg: the error text,
        None or "" for success)."""
        if c is None:
            raise TypeError("no conversation")
        if msg:
            c.cerr = msg
        else:
            c.cerr = None
        if c.state == Announcing:
            c.state = Announced
        elif c.state == Connecting:
            c.state = Connected
        self.f.wake(c)

    def connectresult(self, Conv c):
        """After ctl returned for a connect: None while still connecting;
        True when connected; raises the connect's error."""
        if c is None:
            raise TypeError("no conversation")
        if c.state == Connecting:
            return None
        if c.cerr:
            raise Net9Error(c.cerr)
        return True

    # ---- ctl (ipwrite, case Qctl) ----

    cpdef object ctl(self, Conv c, object msg, str user=None):
        """One write to ctl: its text, or the fields parsecmd made of it
        (the 9P server parses once).  Raises Net9Error with devip's text.
        For a connect that must wait, returns with c.state == Connecting:
        the caller parks until Fs.drain() names c and then calls
        connectresult(c)."""
        if c is None:
            raise TypeError("no conversation")
        cdef list f = ctlfields(msg)
        if len(f) < 1:
            raise Net9Error(errors.Eshortctl)
        if user is None:
            user = c.owner
        verb = f[0]
        if verb == "connect":
            self.connectctlmsg(c, f)
        elif verb == "announce":
            self.announcectlmsg(c, f, user)
        elif verb == "bind":
            if len(f) != 2:
                raise Net9Error(errors.Ebadbind)
            self.setladdrport(c, f[1], 0, user)
        elif verb == "ttl":
            c.ttl = MAXTTL if len(f) < 2 else _atoi(f[1])
        elif verb == "tos":
            c.tos = DFLTTOS if len(f) < 2 else _atoi(f[1])
        elif verb == "ignoreadvice":
            c.ignoreadvice = 1
        elif verb == "addmulti":
            self.addmulti(c, f)
        elif verb == "delmulti" or verb == "remmulti":
            self.delmulti(c, f)
        else:
            self.pctl(c, f)
        return None

    cdef int connectctlmsg(self, Conv c, list f) except -1:
        if c.state != Idle:
            raise Net9Error(errors.Econinuse)
        c.state = Connecting
        c.cerr = None
        self.pconnect(c, f)
        if c.state != Connecting and c.cerr:
            raise Net9Error(c.cerr)
        return 0

    cdef int announcectlmsg(self, Conv c, list f, str user) except -1:
        if c.state != Idle:
            raise Net9Error(errors.Econinuse)
        c.state = Announcing
        c.cerr = None
        self.pannounce(c, f, user)
        if c.cerr:
            raise Net9Error(c.cerr)
        return 0

    def multigroup(self, Conv c, list f, str missing):
        if len(f) < 2:
            raise Net9Error(missing)
        ifc = parseip(f[1])
        if len(f) >= 3:
            ma = parseip(f[2])
        elif c.remoteaddr == IPnoaddr or ipismulticast(c.localaddr):
            ma = c.localaddr
        else:
            ma = c.remoteaddr
        return ifc, ma

    def addmulti(self, Conv c, list f):
        """Join a multicast group (ipifcaddmulti): checked (the group must
        be multicast, of the interface address's family), recorded on the
        conversation, and made a self address of the interface that has
        the interface address, when the IP layer keeps a self table."""
        ifc, ma = self.multigroup(c, f, errors.Eaddmulti)
        if not ipismulticast(ma):
            raise Net9Error(errors.Enotmulti)
        if _isv4(ma) != _isv4(ifc):
            raise Net9Error(errors.Eincompatmulti)
        if (ma, ifc) in c.multi:
            return
        join = getattr(self.f.ip, "addmulti", None)
        if join is not None:
            join(ma, ifc)
        c.multi.append((ma, ifc))

    def delmulti(self, Conv c, list f):
        ifc, ma = self.multigroup(c, f, errors.Edelmulti)
        self.leavemulti(c, ma, ifc)

    def leavemulti(self, Conv c, bytes ma, bytes ifc):
        """ipifcdelmulti: forget one membership; nothing if not joined."""
        try:
            c.multi.remove((ma, ifc))
        except ValueError:
            return
        leave = getattr(self.f.ip, "remmulti", None)
        if leave is not None:
            leave(ma, ifc)

    # ---- addresses and ports (devip.c) ----

    cdef int lportinuse(self, int lport) except -1:
        cdef Conv x
        for x in self.conv:
            if x.lport == lport:
                return 1
        return 0

    cdef int unusedlport(self) except -1:
        cdef int i, port
        for i in range(64):
            port = 32768 + <int>self.f.nrand(32768)
            if not self.lportinuse(port):
                return port
        return -1

    cdef int setlport(self, Conv c, bint announcing) except -1:
        """devip.c setlport: a restricted port (600-1023, cycling) or a
        random ephemeral one (32768-65535)."""
        cdef int i, port
        if c.restricted:
            for i in range(1024 - 600):
                if self.nextrport >= 1024 or self.nextrport < 600:
                    self.nextrport = 600
                port = self.nextrport
                self.nextrport += 1
                if not self.lportinuse(port):
                    c.lport = port
                    return 0
            raise Net9Error(errors.Enoports)
        port = self.unusedlport()
        if port < 0:
            raise Net9Error(errors.Enoports)
        c.lport = port
        return 0

    cdef int setluniqueport(self, Conv c, int lport) except -1:
        cdef Conv x
        for x in self.conv:
            if x is c:
                continue
            if ((x.state == Connected or x.state == Announced)
                    and x.lport == lport and x.rport == c.rport
                    and memcmp(x.raddr, c.raddr, 16) == 0
                    and memcmp(x.laddr, c.laddr, 16) == 0):
                raise Net9Error(errors.Eaddrinuse)
        c.lport = lport
        return 0

    cdef setladdr(self, Conv c):
        a = self.f.ip.findlocalip(c.remoteaddr)
        memcpy(c.laddr, <const char*>a, 16)

    cdef int setladdrport(self, Conv c, str s, bint announcing, str user) except -1:
        """devip.c setladdrport: [addr!]port[!r] for bind, announce and the
        local part of connect.  user: who asks (announcing "*" is eve's);
        None for c's owner."""
        i = s.find("!")
        if i >= 0:
            addr, p = s[:i], s[i + 1:]
            if p == "r":
                p = None
        else:
            addr, p = s, None
        c.lport = 0
        if p is None:
            if announcing:
                memset(c.laddr, 0, 16)
            else:
                self.setladdr(c)
            p = addr
        else:
            if addr == "*":
                memset(c.laddr, 0, 16)
            else:
                try:
                    a = parseip(addr)
                except Net9Error:
                    raise Net9Error(errors.Ebadip)
                if self.f.ip.isself(a) or ipismulticast(a):
                    memcpy(c.laddr, <const char*>a, 16)
                else:
                    raise Net9Error(errors.Enotlocal)
        # one process can get all connections
        if announcing and p == "*":
            if (user if user is not None else c.owner) != self.f.eve:
                raise Net9Error(errors.Eperm)
            return self.setluniqueport(c, 0)
        lport, _ = _strtoport(p)
        if lport <= 0:
            return self.setlport(c, announcing)
        return self.setluniqueport(c, lport)

    cdef int setraddrport(self, Conv c, str s) except -1:
        i = s.find("!")
        if i < 0:
            raise Net9Error(errors.Emalformed)
        try:
            a = parseip(s[:i])
        except Net9Error:
            raise Net9Error(errors.Ebadip)
        memcpy(c.raddr, <const char*>a, 16)
        rest = s[i + 1:]
        c.rport, _ = _strtoport(rest)
        if "!r" in rest:
            c.restricted = 1
        return 0

    cpdef int stdconnect(self, Conv c, list argv) except -1:
        """Fsstdconnect: set the addresses and ports of a connect."""
        if len(argv) == 2:
            self.setraddrport(c, argv[1])
            self.setladdr(c)
            self.setlport(c, 0)
        elif len(argv) == 3:
            self.setraddrport(c, argv[1])
            self.setladdrport(c, argv[2], 0, None)
        else:
            raise Net9Error(errors.Ebadconnect)
        # convipvers
        if (isv4c(c.raddr) and isv4c(c.laddr)) or memcmp(c.raddr, noaddr, 16) == 0:
            c.ipversion = V4
        else:
            c.ipversion = V6
        return 0

    cpdef int stdannounce(self, Conv c, list argv, str user) except -1:
        """Fsstdannounce (user: who announces, as setladdrport's)."""
        memset(c.raddr, 0, 16)
        c.rport = 0
        if len(argv) != 2:
            raise Net9Error(errors.Ebadannounce)
        self.setladdrport(c, argv[1], 1, user)
        # convipvers for an announcement: v4 unless bound to a v6 address
        if memcmp(c.laddr, noaddr, 16) == 0 or isv4c(c.laddr):
            c.ipversion = V4
        else:
            c.ipversion = V6
        return 0

    # ---- data ----

    cpdef object read(self, Conv c, Py_ssize_t n):
        """A read of data: bytes, None when it would block, b"" at EOF;
        raises Net9Error per spec section 4.4."""
        if c is None:
            raise TypeError("no conversation")
        cdef bint kicked
        data = c.rq.qread(n, &kicked)
        if kicked:
            self.prcvkick(c)
        elif data:
            self.prcvread(c)
        return data

    cpdef Py_ssize_t write(self, Conv c, object data) except -1:
        """A write of data: queues all of it (Net9Error if the queue is hung
        up), then kicks the protocol.  When c.wq.flow is set afterwards the
        writer must be parked until it clears (devip blocks after queueing)."""
        if c is None:
            raise TypeError("no conversation")
        cdef Py_ssize_t n = c.wq.write(data)
        self.pkick(c)
        return n

    cpdef str status(self, Conv c):
        if c is None:
            raise TypeError("no conversation")
        return self.pstate(c)

    cpdef str stats(self):
        return self.pstats()

    cpdef str localtext(self, Conv c):
        if c is None:
            raise TypeError("no conversation")
        return "%s!%d\n" % (fmtip(c.localaddr), c.lport)

    cpdef str remotetext(self, Conv c):
        if c is None:
            raise TypeError("no conversation")
        return "%s!%d\n" % (fmtip(c.remoteaddr), c.rport)

    # ---- protocol hooks: defaults ----

    cpdef int pconnect(self, Conv c, list argv) except -1:
        raise Net9Error(errors.Econnectns)

    cpdef int pannounce(self, Conv c, list argv, str user) except -1:
        raise Net9Error(errors.Eannouncens)

    cpdef int pctl(self, Conv c, list argv) except -1:
        raise Net9Error(errors.Eunknownctl)

    cpdef str pstate(self, Conv c):
        return ""

    cpdef pcreate(self, Conv c):
        c.rq = Queue(QMAX_DEFAULT)
        c.wq = Queue(QMAX_DEFAULT)

    cpdef pclose(self, Conv c):
        pass

    cpdef pkick(self, Conv c):
        pass

    cpdef prcvkick(self, Conv c):
        pass

    cpdef prcvread(self, Conv c):
        pass

    cpdef str pstats(self):
        raise Net9Error(errors.Estatsns)

    cpdef bint pinuse(self, Conv c):
        return False

    cpdef int pgc(self):
        return 0

    cpdef int rcv(self, object pkt, object ifc=None) except -1:
        return 0

    cpdef advise(self, object pkt, str msg):
        pass

    cpdef padvance(self):
        pass

    cpdef object pnextdeadline(self):
        return None
