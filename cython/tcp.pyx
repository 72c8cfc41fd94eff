# cython: language_level=3
"""TCP: a port of 9front's sys/src/9/ip/tcp.c (../shared/seeds/tcp.c).

Names, constants, states, statistics, the status line and the control
messages are tcp.c's, so the two can be read side by side.  The engine is
sans-I/O: datagrams come in through rcv() (tcpiput), user calls through the
generic layer (conv.pyx: ctl, read, write, closeconv), time through
Fs.advance(); datagrams leave through the injected IpLayer.ipoput.

Where the port departs from tcp.c it says so in a comment marked DEVIATION,
with the reason.  The structural changes are:
  - Blocks become pointers into the caller's buffer; received data is copied
    once, into the read queue's ring buffer; sent data is copied once, from
    the write queue straight into the outgoing datagram.
  - tcpackproc's list of running timers, walked every tick, becomes a timing
    wheel: a tick visits one slot.  Calls in limbo carry a timer on the same
    wheel instead of being scanned every tick by limborexmit.
  - Locks disappear: the engine is driven by one thread.
"""

import hashlib
import struct as _struct

from libc.string cimport memcpy, memcmp, memset
from libc.stdlib cimport abs as c_abs
from libc.math cimport cbrt
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytearray cimport PyByteArray_FromStringAndSize, PyByteArray_AS_STRING
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING

from net9 import errors
from net9.errors import Net9Error
from net9.ipaux import fmtip
from net9.ipaux import atoi as _atoi
from net9.conv cimport (Conv, Proto, Fs, IpLayer, V4, V6, Idle, Announcing, Announced,
                        Connecting, Connected, MAXTTL, DFLTTOS)
from net9.conv import Nchans
from net9.qio cimport Queue
from net9.netlog cimport Logtcp, Logtcpwin, Logtcprxmt
from net9.byteorder cimport nhgets, nhgetl, hnputs, hnputl, isv4c as isv4, v4tov6c as v4tov6
from net9.wire cimport (ipput, tcpput, tcpoptsize, tcpparse, l4csum, l4setcsum,
                        IP4HDRLEN, IP6HDRLEN)

# stats and states, Python-visible
tcpstates = ("Closed", "Listen", "Syn_sent", "Syn_received",
             "Established", "Finwait1", "Finwait2", "Close_wait",
             "Closing", "Last_ack", "Time_wait")

# statnames, indexed by the stats enum (tcp.c's designated initialisers)
statnames = ("MaxConn", "MaxSegment", "ActiveOpens", "PassiveOpens",
             "EstabResets", "CurrEstab", "InSegs", "OutSegs", "RetransSegs",
             "RetransSegsSent", "RetransTimeouts", "InErrs", "OutRsts",
             "CsumErrs", "HlenErrs", "LenErrs", "Resequenced", "OutOfOrder",
             "ReseqBytelim", "ReseqPktlim", "Delayack", "Wopenack",
             "Recovery", "RecoveryDone", "RecoveryRTO", "RecoveryNoSeq",
             "RecoveryCwind", "RecoveryPA")

# beyond tcp.c: the modern profile's counters, appended to /net/tcp/stats
# after tcp.c's 28 (indexed by the Nxstats enum)
xstatnames = ("SackRecovery", "SackRecoveryDone", "SackRetransSegs",
              "SackBlocksIn", "SackBlocksOut", "DsackIn", "DsackOut",
              "TsRttSamples", "PawsDrops", "ChallengeAcks", "RstChallenged",
              "AckOutOfRange", "RackLost", "TlpProbes", "SynCookiesSent",
              "SynCookiesOk", "SynCookiesBad", "HystartCss", "HystartExits",
              "SpuriousRtos")

# beyond tcp.c: the MSS values a SYN cookie can carry (3 bits)
cdef unsigned short cookiemss[8]
cookiemss[:] = [536, 1024, 1220, 1400, 1440, 1460, 4036, 8960]
cdef double CUBICC = 0.4           # RFC 9438: C
cdef double CUBICBETA = 0.7        # RFC 9438: beta_cubic

cdef enum:
    COOKIEBITS = 5          # TSval bits of a cookie's SYN-ACK: wscale (4), SACK (1)
    COOKIEPERIOD = 64000    # ms of one step of a cookie's clock
    COOKIEAGE = 2           # steps a cookie stays good after the one it was made in

profiles = ("9front", "modern")

# constants for tests and tools
CONST = dict(QMAX=QMAX, MAX_TIME=MAX_TIME, TCP_ACK=TCP_ACK, MAXBACKMS=MAXBACKMS,
             MSL2=MSL2, MSPTICK=MSPTICK, DEF_MSS=DEF_MSS, DEF_MSS6=DEF_MSS6,
             DEF_RTT=DEF_RTT, DEF_KAT=DEF_KAT, SYNACK_RXTIMER=SYNACK_RXTIMER,
             TCPREXMTTHRESH=TCPREXMTTHRESH, Maxlimbo=Maxlimbo, NLHT=NLHT,
             Maxqscale=Maxqscale, Defadvscale=Defadvscale, NWHEEL=NWHEEL,
             URG=URG, ACK=ACK, PSH=PSH, RST=RST, SYN=SYN, FIN=FIN,
             DEF_RTOMIN=DEF_RTOMIN, TCP9_RTOMIN=TCP9_RTOMIN, NSCORE=NSCORE)

cdef bytes IPnoaddr = b"\0" * 16
cdef bytes v4prefix = b"\0" * 10 + b"\xff\xff"
cdef unsigned char zerobyte[1]
zerobyte[0] = 0


cdef inline bint seq_within(unsigned int x, unsigned int low, unsigned int high) noexcept:
    if low <= high:
        if low <= x and x <= high:
            return 1
    else:
        if x >= low or x <= high:
            return 1
    return 0

cdef inline bint seq_lt(unsigned int x, unsigned int y) noexcept:
    return <int>(x - y) < 0

cdef inline bint seq_le(unsigned int x, unsigned int y) noexcept:
    return <int>(x - y) <= 0

cdef inline bint seq_gt(unsigned int x, unsigned int y) noexcept:
    return <int>(x - y) > 0

cdef inline bint seq_ge(unsigned int x, unsigned int y) noexcept:
    return <int>(x - y) >= 0


cdef inline int hashipa(const unsigned char *a, unsigned int p) noexcept:
    return (a[14] + a[15] + p) & LHTMASK

cdef inline unsigned int nowms(Fs f) noexcept:
    return f.now

cdef str _ip(const unsigned char *a):
    return fmtip(PyBytes_FromStringAndSize(<const char*>a, 16))


cdef class Tcptimer:
    def __cinit__(self):
        self.state = TcptimerOFF

    property count:
        def __get__(self):
            return self.count


cdef class Reseq:
    pass


cdef class Limbo:
    pass


cdef class Tcpctl:
    """The TCP control block of one conversation (tcp.c's Tcpctl)."""

    def __cinit__(self):
        self.timer = Tcptimer()
        self.acktimer = Tcptimer()
        self.rtt_timer = Tcptimer()
        self.katimer = Tcptimer()

    cdef void zero(self):
        # the memset of inittcpctl: every plain field (tcp.pxd's blocks
        # [zfirst, zend)); the switches, timers (they must be halted) and
        # list links are kept
        memset(&self.zfirst, 0, <char*>&self.zend - <char*>&self.zfirst)
        self.reseq = None
        self.fresh()
        for t in (self.timer, self.acktimer, self.rtt_timer, self.katimer):
            (<Tcptimer>t).start = 0
            (<Tcptimer>t).count = 0

    cdef void copyfrom(self, Tcpctl o):
        # tcpincoming's memmove(new->ptcl, s->ptcl, sizeof(Tcpctl)): block 1
        # and the switches copied, block 2 (the modern profile's
        # per-connection state) and the resequence queue start afresh
        memcpy(&self.zfirst, &o.zfirst, <char*>&self.zmid - <char*>&self.zfirst)
        memset(&self.zmid, 0, <char*>&self.zend - <char*>&self.zmid)
        self.reseq = None
        self.fresh()
        self.profile = o.profile; self.sackok = o.sackok; self.tsok = o.tsok
        self.rtomin = o.rtomin; self.cc = o.cc; self.rackok = o.rackok
        self.timer.start = o.timer.start; self.timer.count = o.timer.count
        self.acktimer.start = o.acktimer.start; self.acktimer.count = o.acktimer.count
        self.rtt_timer.start = o.rtt_timer.start; self.rtt_timer.count = o.rtt_timer.count
        self.katimer.start = o.katimer.start; self.katimer.count = o.katimer.count

    cdef void fresh(self):
        # the fields of block 2 that do not start at 0
        self.minrtt = 0xFFFFFFFF
        self.hs_on = 1
        self.hs_cur = self.hs_last = self.hs_base = 0xFFFFFFFF

    property statename:
        def __get__(self):
            return tcpstates[self.state]


cdef int checklayout() except -1:
    """zero() and copyfrom() treat Tcpctl's plain fields as the bytes
    between its markers (tcp.pxd): refuse to import if that does not hold.
    Every object field holds a pointer (None at least) in a new Tcpctl
    and every plain field 0, so a nonzero byte between the markers is an
    object field among them; zend must be the last field."""
    cdef Tcpctl t = Tcpctl.__new__(Tcpctl)
    cdef const unsigned char *p = <const unsigned char*>&t.zfirst
    cdef Py_ssize_t n = <char*>&t.zend - <char*>&t.zfirst, i
    cdef Py_ssize_t endoff = <char*>&t.zend + sizeof(t.zend) - <char*><void*>t
    if not (<char*>&t.zfirst < <char*>&t.zmid < <char*>&t.zend) or endoff != Tcpctl.__basicsize__:
        raise ImportError("net9.tcp: Tcpctl's markers zfirst < zmid < zend, zend last, do not hold")
    for i in range(n):
        if p[i] != 0:
            raise ImportError("net9.tcp: an object field of Tcpctl lies between zfirst and zend "
                              "(offset %d): zero()/copyfrom() would overwrite it" % i)
    return 0


checklayout()


cdef class TcpProto(Proto):
    """tcpinit: the TCP protocol of one Fs."""

    def __init__(self, Fs f, int nc=Nchans, str profile="9front"):
        """profile: "9front" (tcp.c exactly, the engine's default) or
        "modern" (tcp.c plus the RFCs beyond it: SACK, timestamps, RFC
        5961, RFC 6528, RFC 6298's RTO floor; net9 serve's default); the
        profile of every new conversation."""
        Proto.__init__(self, f, "tcp", IP_TCPPROTO, nc)
        if profile not in profiles:
            raise ValueError("unknown tcp profile %r (9front or modern)" % profile)
        self.profile = profiles.index(profile)
        memset(self.xstats_, 0, sizeof(self.xstats_))
        self.isnkey = None
        self.tsadjust = 0
        self.defaultcc = CCcubic          # (modern conversations; 9front's is NewReno)
        self.fine = set()
        self.cookiesent = 0
        self.cookietime = 0
        self.finedirty = 0
        self.fineany = 0
        self.finenextconv = None
        memset(self.stats_, 0, sizeof(self.stats_))
        self.stats_[MaxConn] = nc
        self.tcpporthogdefense = 0
        self.tcp_irtt = DEF_RTT
        self.wheel = [None] * NWHEEL
        self.ticks = 0
        self.nexttick = f.now + MSPTICK
        self.ntimers = 0
        self.nextdirty = 1
        self.twhead = None
        self.twtail = None
        self.ntimewait = 0
        self.twreused = 0
        self.twreopened = 0
        self.nlimbo = 0
        self.lht = [None] * NLHT
        self.batching = False
        self.deferred = {}

    # ---------------------------------------------------------------
    # timers: tcpgo, tcphalt, timerstate and tcpackproc on a wheel

    cdef void timerstate(self, Tcptimer t, int newstate):
        cdef int slot
        cdef Tcptimer h
        if newstate != TcptimerON:
            if t.state == TcptimerON:
                slot = t.expire % NWHEEL
                if t.prev is None:
                    self.wheel[slot] = t.next
                else:
                    t.prev.next = t.next
                if t.next is not None:
                    t.next.prev = t.prev
                t.next = None
                t.prev = None
                self.ntimers -= 1
                if t.expire == self.nextexp:
                    self.nextdirty = 1
        else:
            if t.state != TcptimerON:
                slot = t.expire % NWHEEL
                h = self.wheel[slot]
                t.prev = None
                t.next = h
                if h is not None:
                    h.prev = t
                self.wheel[slot] = t
                self.ntimers += 1
                if not self.nextdirty and t.expire < self.nextexp:
                    self.nextexp = t.expire
        t.state = newstate

    cdef inline unsigned long long curtick(self) noexcept:
        """The tick that f.now falls in.  The layer above may move f.now
        without calling Fs.advance while no timer is due (net9.stack does),
        so self.ticks can lag behind the clock; timers are armed and read
        against the clock, not against the last tick run."""
        cdef int d = <int>(self.f.now - self.nexttick)
        if d < 0:
            return self.ticks
        return self.ticks + <unsigned long long>(d // MSPTICK) + 1

    cdef void tcpgo(self, Tcptimer t):
        cdef unsigned long long now
        if t is None or t.start == 0:
            return
        now = self.curtick()
        if t.state == TcptimerON:
            if t.prev is None and t.expire == now + <unsigned long long>t.start:
                # re-armed within the same tick (each segment sent re-arms
                # katimer): unlinking the head of its slot and linking it
                # back would leave the wheel exactly as it is
                t.count = t.start
                return
            self.timerstate(t, TcptimerOFF)
        t.count = t.start
        t.expire = now + <unsigned long long>t.start
        self.timerstate(t, TcptimerON)

    cdef void tcphalt(self, Tcptimer t):
        if t is None:
            return
        if t.state == TcptimerON:
            t.count = self.timercount(t)
        self.timerstate(t, TcptimerOFF)

    cdef int timercount(self, Tcptimer t):
        cdef unsigned long long now
        if t.state == TcptimerON:
            now = self.curtick()
            if t.expire <= now:
                return 0
            return <int>(t.expire - now)
        return t.count

    cdef void tick(self):
        """One tcpackproc tick: run the timers that expire now."""
        cdef Tcptimer t, tp
        cdef list ready = None
        self.ticks += 1
        t = self.wheel[self.ticks % NWHEEL]
        while t is not None:
            tp = t.next
            if t.expire == self.ticks:
                self.timerstate(t, TcptimerDONE)
                t.count = 0
                if ready is None:
                    ready = []
                ready.append(t)
            t = tp
        if ready is not None:
            # a slot lists timers newest-armed first, like tcp.c's list;
            # tcpackproc prepends each expired one to its ready list, so
            # the oldest-armed runs first: walk ours backwards
            for t in reversed(ready):
                if t.state == TcptimerDONE:
                    self.runtimer(t)

    cdef void runtimer(self, Tcptimer t):
        if t.func == Tftimeout:
            self.tcptimeout(<Conv>t.arg)
        elif t.func == Tfacktimer:
            self.tcpacktimer(<Conv>t.arg)
        elif t.func == Tfkeepalive:
            self.tcpkeepalive(<Conv>t.arg)
        elif t.func == Tflimbo:
            self.limborexmit(<Limbo>t.arg)


    cpdef padvance(self):
        cdef unsigned int target = self.f.now
        cdef unsigned int upto
        cdef Conv c
        cdef bint due
        if not self.fine:
            if self.ntimers == 0:
                # nothing to run: let the tick clock follow without work
                if <int>(target - self.nexttick) >= 0:
                    self.ticks += (target - self.nexttick) // MSPTICK + 1
                    self.nexttick += ((target - self.nexttick) // MSPTICK + 1) * MSPTICK
                    self.nextdirty = 1
                return
            while <int>(target - self.nexttick) >= 0:
                self.f.now = self.nexttick
                self.nexttick += MSPTICK
                self.tick()
            self.f.now = target
            return
        # beyond tcp.c: RACK-TLP timers between the ticks, in time order
        while True:
            due = self.finedue(target)
            if self.ntimers == 0:
                upto = self.finenext if due else target
                if <int>(upto - self.nexttick) >= 0:
                    self.ticks += (upto - self.nexttick) // MSPTICK + 1
                    self.nexttick += ((upto - self.nexttick) // MSPTICK + 1) * MSPTICK
                    self.nextdirty = 1
                if not due:
                    break
            if due and (self.ntimers == 0 or <int>(self.finenext - self.nexttick) < 0):
                c = self.finenextconv
                self.f.now = self.finenext
                (<Tcpctl>c.ptcl).tlp_on = 0
                self.finedirty = 1
                self.tcptlp(c)
                continue
            if <int>(target - self.nexttick) >= 0:
                self.f.now = self.nexttick
                self.nexttick += MSPTICK
                self.tick()
                continue
            break
        self.f.now = target

    cpdef object pnextdeadline(self):
        cdef unsigned long long i, best
        cdef Tcptimer t
        cdef bint found
        d = self.wheeldeadline()
        if self.fine and (self.finedue(self.f.now) or self.fineany):
            if d is None or <int>(self.finenext - <unsigned int>d) < 0:
                return self.finenext
        return d

    cpdef object wheeldeadline(self):
        cdef unsigned long long i, best
        cdef Tcptimer t
        cdef bint found
        if self.ntimers == 0:
            return None
        if self.nextdirty:
            best = 0
            found = 0
            i = self.ticks + 1
            while i <= self.ticks + NWHEEL:
                t = self.wheel[i % NWHEEL]
                while t is not None:
                    if t.expire == i:
                        best = i
                        found = 1
                        break
                    if not found and (best == 0 or t.expire < best):
                        best = t.expire
                    t = t.next
                if found:
                    break
                i += 1
            self.nextexp = best
            self.nextdirty = 0
        return <unsigned int>(self.nexttick + (self.nextexp - self.ticks - 1) * MSPTICK)

    # ---------------------------------------------------------------
    # conversation hooks

    cpdef pcreate(self, Conv c):
        """tcpcreate."""
        cdef Tcpctl tcb = Tcpctl()
        c.rq = Queue(QMAX)
        c.wq = Queue(QMAX)
        cb = self.f.wakeconv(c)
        c.rq.wakecb = cb
        c.wq.wakecb = cb
        c.eq.wakecb = cb
        tcb.timer.func = Tftimeout
        tcb.timer.arg = c
        tcb.acktimer.func = Tfacktimer
        tcb.acktimer.arg = c
        tcb.katimer.func = Tfkeepalive
        tcb.katimer.arg = c
        tcb.rtt_timer.func = Tfnone
        tcb.rtt_timer.arg = c
        self.setprofile(tcb, self.profile)
        c.ptcl = tcb

    cpdef Conv clone(self, str owner):
        """Fsprotoclone; beyond tcp.c: a conversation starts with the
        stack's profile, whatever the last user of its slot set."""
        cdef Conv c = Proto.clone(self, owner)
        self.setprofile(<Tcpctl>c.ptcl, self.profile)
        return c

    cdef void setprofile(self, Tcpctl tcb, int profile):
        """Beyond tcp.c: set the switches of a conversation to a profile's
        defaults."""
        tcb.profile = profile
        if profile == Profmodern:
            tcb.sackok = 1
            tcb.tsok = 1
            tcb.rackok = 1
            tcb.rtomin = DEF_RTOMIN
        else:
            tcb.sackok = 0
            tcb.tsok = 0
            tcb.rackok = 0
            tcb.rtomin = TCP9_RTOMIN
        tcb.cc = self.defaultcc if profile == Profmodern else CCnewreno

    property defaultprofile:
        """The profile new conversations get: "modern" or "9front"."""
        def __get__(self):
            return profiles[self.profile]
        def __set__(self, str v):
            if v not in profiles:
                raise ValueError("unknown tcp profile %r (9front or modern)" % v)
            self.profile = profiles.index(v)

    cdef unsigned int isn(self, const unsigned char *laddr, unsigned short lport,
                          const unsigned char *raddr, unsigned short rport):
        """Beyond tcp.c: RFC 6528's initial sequence number, ISN = M +
        F(localip, localport, remoteip, remoteport, secretkey): M a clock
        of 4 microsecond ticks (the engine's millisecond clock times 250),
        F a keyed hash (BLAKE2s with a key drawn once per stack)."""
        return <unsigned int>(<unsigned int>self.f.now * 250u + keyhash(self, laddr, lport, raddr, rport, 0))

    cdef unsigned int tsoffset(self, const unsigned char *laddr, unsigned short lport,
                               const unsigned char *raddr, unsigned short rport):
        """Beyond tcp.c: RFC 7323 section 5.4's per-connection offset of
        TSval, a keyed hash of the 4-tuple (the RFC 6528 key) so that the
        clock tells nothing across connections."""
        return <unsigned int>(keyhash(self, laddr, lport, raddr, rport, 1) + self.tsadjust)

    cdef void tcpsetstate(self, Conv s, unsigned char newstate):
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        cdef unsigned char oldstate = tcb.state
        if oldstate == newstate:
            return
        if oldstate == Established:
            self.stats_[CurrEstab] -= 1
        if newstate == Established:
            self.stats_[CurrEstab] += 1
        if newstate == Closed:
            s.rq.close()
            s.wq.close()
            s.eq.close()
        elif newstate == Close_wait:       # Remote closes
            s.rq.hangup(None)
        tcb.state = newstate
        if oldstate == Time_wait:
            self.twunlink(s)
        elif newstate == Time_wait:
            self.twlink(s)
        if newstate == Closed and s.inuse == 0:
            self.maybefree(s)          # (the slot is free for clone again)
        if oldstate == Syn_sent and newstate != Closed:
            self.connected(s, None)

    cdef void twlink(self, Conv s):
        """Beyond tcp.c: s entered Time_wait; append it to the list."""
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        if tcb.ontw:
            return
        tcb.ontw = 1
        tcb.twnext = None
        tcb.twprev = self.twtail
        if self.twtail is None:
            self.twhead = s
        else:
            (<Tcpctl>self.twtail.ptcl).twnext = s
        self.twtail = s
        self.ntimewait += 1

    cdef void twunlink(self, Conv s):
        """Beyond tcp.c: s left Time_wait; take it off the list."""
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        if not tcb.ontw:
            return
        if tcb.twprev is None:
            self.twhead = tcb.twnext
        else:
            (<Tcpctl>tcb.twprev.ptcl).twnext = tcb.twnext
        if tcb.twnext is None:
            self.twtail = tcb.twprev
        else:
            (<Tcpctl>tcb.twnext.ptcl).twprev = tcb.twprev
        tcb.twnext = None
        tcb.twprev = None
        tcb.ontw = 0
        self.ntimewait -= 1

    cpdef int pconnect(self, Conv c, list argv) except -1:
        """tcpconnect."""
        cdef Tcpctl tcb = <Tcpctl>c.ptcl
        if tcb.state != Closed:
            raise Net9Error(errors.Econinuse)
        self.stdconnect(c, argv)
        self.tcpstart(c, TCP_CONNECT)
        return 0

    cpdef str pstate(self, Conv c):
        """tcpstate: the status line."""
        cdef Tcpctl s = <Tcpctl>c.ptcl
        return ("%s qin %d qout %d rq %d.%d srtt %d mdev %d sst %d cwin %d swin %d>>%d "
                "rwin %d>>%d qscale %d timer.start %d timer.count %d rerecv %d "
                "katimer.start %d katimer.count %d\n") % (
            tcpstates[s.state],
            c.rq.qlen() if c.rq is not None else 0,
            c.wq.qlen() if c.wq is not None else 0,
            s.nreseq, s.reseqlen,
            s.srtt, s.mdev, s.ssthresh,
            s.cwind, s.snd_wnd, s.snd_scale, s.rcv_wnd, s.rcv_scale,
            s.qscale,
            s.timer.start, self.timercount(s.timer), s.rerecv,
            s.katimer.start, self.timercount(s.katimer))

    cpdef bint pinuse(self, Conv c):
        """tcpinuse."""
        return (<Tcpctl>c.ptcl).state != Closed

    cpdef int pannounce(self, Conv c, list argv, str user) except -1:
        """tcpannounce."""
        cdef Tcpctl tcb = <Tcpctl>c.ptcl
        if tcb.state != Closed:
            raise Net9Error(errors.Econinuse)
        self.stdannounce(c, argv, user)
        self.tcpstart(c, TCP_LISTEN)
        self.connected(c, None)
        return 0

    cpdef pclose(self, Conv c):
        self.tcpclose(c)

    cdef void tcpclose(self, Conv c):
        """tcpclose: the last close, or the "close" ctl."""
        cdef Tcpctl tcb = <Tcpctl>c.ptcl
        c.rq.hangup(None)
        c.wq.hangup(None)
        c.eq.hangup(None)
        c.rq.flush()
        if tcb.state == Listen:
            # reset any incoming calls to this listener
            self.connected(c, errors.Ehangup)
            self.localclose(c, None)
        elif tcb.state == Closed or tcb.state == Syn_sent:
            self.localclose(c, None)
        elif tcb.state == Syn_received or tcb.state == Established:
            tcb.flgcnt += 1
            tcb.snd_nxt += 1
            self.tcpsetstate(c, Finwait1)
            self.tcpoutput(c)
        elif tcb.state == Close_wait:
            tcb.flgcnt += 1
            tcb.snd_nxt += 1
            self.tcpsetstate(c, Last_ack)
            self.tcpoutput(c)

    cpdef pkick(self, Conv c):
        self.tcpkick(c)

    cdef void tcpkick(self, Conv s):
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        if (tcb.state == Syn_sent or tcb.state == Syn_received
                or tcb.state == Established or tcb.state == Close_wait):
            # Push data
            self.tcpoutput(s)
        else:
            self.localclose(s, errors.Ehangup)

    cpdef prcvkick(self, Conv c):
        self.tcpacktimer(c)

    cpdef prcvread(self, Conv c):
        """DEVIATION: a window update when the reader frees room.  tcp.c
        sends one only when a read takes the queue out of flow control
        (qio's Qflow, set at qlen >= limit: prcvkick), but the advertised
        window closes earlier, once less than one unit of the window scale
        is left (tcprcvwin's rcv.blocked) or less than an MSS: the queue
        then sits at limit - 8 without Qflow, the reader drains it, and
        the sender learns of the room only from its persist timer, 200 ms
        later on Linux, again and again.  And short of closing, a window
        that stays small throttles the sender to that window per round
        trip while the reader has long made room.  RFC 9293 section
        3.8.6.2.2 (RFC 1122 section 4.2.3.3): once the window can grow by
        min(RCV.BUFF / 2, MSS) past what the sender may still send
        (RCV.WND: the offered right edge less what has come since), offer
        it; and, as Linux does (tcp_cleanup_rbuf), only when that at least
        doubles RCV.WND, so a reader that keeps up does not turn every read
        into an ACK (the delayed ACKs stay tcp.c's)."""
        cdef Tcpctl tcb = <Tcpctl>c.ptcl
        cdef int w, cur, need
        if tcb.state == Closed or tcb.state == Listen or tcb.state == Syn_sent:
            return
        cur = <int>(tcb.rcv_wptr - tcb.rcv_nxt)
        if cur < 0:
            cur = 0
        w = <int>tcb.window - <int>c.rq.len
        need = <int>tcb.window // 2
        if need > tcb.mss:
            need = tcb.mss
        if w - cur >= need and w >= 2 * cur:
            self.tcpacktimer(c)

    cdef void tcprcvwin(self, Conv s):
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        cdef int w = <int>tcb.window - <int>s.rq.len
        if w < 0:
            w = 0
        # RFC 1122 section 4.2.2.17 do not move right edge of window left
        if seq_lt(tcb.rcv_nxt + <unsigned int>w, tcb.rcv_wptr):
            w = <int>(tcb.rcv_wptr - tcb.rcv_nxt)
        if <unsigned int>w != tcb.rcv_wnd:
            if (w >> tcb.rcv_scale) == 0 or (tcb.window > 4 * tcb.mss and w < tcb.mss // 4):
                tcb.rcv_blocked = 1
                if self.f.log.mask & Logtcp:
                    self.f.log.log(Logtcp, "tcprcvwin: window %d qlen %d ws %d lport %d\n" % (
                        tcb.window, s.rq.len, tcb.rcv_scale, s.lport))
        tcb.rcv_wnd = w
        tcb.rcv_wptr = tcb.rcv_nxt + <unsigned int>w

    cdef void tcpacktimer(self, Conv s):
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        if tcb.state != Closed:
            tcb.flags |= FORCE
            self.tcpoutput(s)

    cdef void tcpcongestion(self, Tcpctl tcb):
        cdef unsigned int inflight = tcb.snd_nxt - tcb.snd_una
        cdef double w
        if inflight > tcb.cwind:
            inflight = tcb.cwind
        tcb.hs_on = 0
        tcb.hs_css = 0
        if tcb.cc == CCcubic:
            # beyond tcp.c: RFC 9438 section 4.6, ssthresh = flight *
            # beta_cubic (0.7), W_max with fast convergence (4.7); a new
            # epoch starts with the next increase
            w = <double>tcb.cwind / tcb.mss
            if w < tcb.cu_lastwmax:
                tcb.cu_lastwmax = w
                tcb.cu_wmax = w * (1.0 + CUBICBETA) / 2.0
            else:
                tcb.cu_lastwmax = w
                tcb.cu_wmax = w
            tcb.cu_epochon = 0
            tcb.ssthresh = <unsigned int>(inflight * CUBICBETA)
            if tcb.ssthresh < 2 * tcb.mss:
                tcb.ssthresh = 2 * tcb.mss
            return
        tcb.ssthresh = inflight // 2
        if tcb.ssthresh < 2 * tcb.mss:
            tcb.ssthresh = 2 * tcb.mss

    cdef void tcpabcincr(self, Tcpctl tcb, unsigned int acked):
        cdef unsigned int limit
        tcb.abcbytes += acked
        if tcb.cwind < tcb.ssthresh:
            # slow start
            if tcb.snd_rto:
                limit = 1 * tcb.mss
            else:
                limit = L * tcb.mss
            if tcb.cc == CCcubic and tcb.ts and tcb.hs_on:
                # beyond tcp.c: HyStart++ (RFC 9406)
                tcb.cwind += self.hystart(tcb, acked, tcb.abcbytes if tcb.abcbytes < limit else limit)
            else:
                tcb.cwind += tcb.abcbytes if tcb.abcbytes < limit else limit
            tcb.abcbytes = 0
        elif tcb.cc == CCcubic:
            tcb.snd_rto = 0
            tcb.abcbytes = 0
            self.cubicincr(tcb, acked)
        else:
            tcb.snd_rto = 0
            # avoidance
            if tcb.abcbytes >= tcb.cwind:
                tcb.abcbytes -= tcb.cwind
                tcb.cwind += tcb.mss

    cdef void localclose(self, Conv s, object reason):
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        self.iphtrem(s)
        self.tcphalt(tcb.timer)
        self.tcphalt(tcb.rtt_timer)
        self.tcphalt(tcb.acktimer)
        self.tcphalt(tcb.katimer)
        self.finehalt(s)
        # Flush reassembly queue; nothing more can arrive
        self.dumpreseq(tcb)
        if tcb.state == Syn_sent:
            self.connected(s, reason)
        if s.state == Announced:
            self.f.wake(s)
        s.rq.hangup(reason)
        s.wq.hangup(reason)
        self.tcpsetstate(s, Closed)

    cdef int tcpmtu(self, object r, int version, unsigned int *scale):
        """mtu (- TCP + IP hdr len) of 1st hop; r is IpLayer.route()."""
        cdef int mtu
        scale[0] = Defadvscale
        if r is not None:
            mtu, direct = r
            if version == V4:
                return mtu - (TCP4_PKT + TCP4_HDRSIZE)
            mtu -= TCP6_PKT + TCP6_HDRSIZE
            if direct or mtu <= DEF_MSS6:
                return mtu
        if version == V6:
            return DEF_MSS6
        return DEF_MSS

    cdef void inittcpctl(self, Conv s, int mode):
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        cdef int mss
        self.tcphalt(tcb.timer)
        self.tcphalt(tcb.acktimer)
        self.tcphalt(tcb.rtt_timer)
        self.tcphalt(tcb.katimer)
        self.finehalt(s)
        self.twunlink(s)               # (zero() leaves Time_wait behind the list's back)
        tcb.zero()
        tcb.ssthresh = QMAX                # reset by tcpsetscale()
        tcb.srtt = self.tcp_irtt << LOGAGAIN
        tcb.mdev = 0
        # setup timers
        tcb.timer.start = self.tcp_irtt // MSPTICK
        if tcb.profile == Profmodern:
            # DEVIATION (modern profile): RFC 6298 section 2.1, no round
            # trip estimate (srtt 0) and an RTO of 1 s until the first
            # sample, where tcp.c assumes DEF_RTT (500 ms) as if measured
            tcb.srtt = 0
            tcb.timer.start = MODERN_IRTO // MSPTICK
        tcb.rtt_timer.start = MAX_TIME
        tcb.acktimer.start = TCP_ACK // MSPTICK
        tcb.katimer.start = DEF_KAT // MSPTICK
        mss = DEF_MSS
        # the prototype header of tcp.c is built from the Conv's addresses
        # at each send (buildseg)
        if mode != TCP_LISTEN:
            if memcmp(s.laddr, <const char*>IPnoaddr, 16) == 0:
                a = self.f.ip.findlocalip(s.remoteaddr)
                memcpy(s.laddr, <const char*>a, 16)
            if s.ipversion == V6:
                mss = DEF_MSS6
        tcb.mss = mss
        tcb.cwind = mss
        tcb.abcbytes = 0
        self.stats_[Mss] = tcb.mss
        # default is no window scaling
        self.tcpsetscale(s, tcb, 0, 0)

    cdef void tcpstart(self, Conv s, int mode):
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        self.inittcpctl(s, mode)
        self.iphtadd(s)
        if mode == TCP_LISTEN:
            self.stats_[PassiveOpens] += 1
            tcb.flags |= CLONE
            self.tcpsetstate(s, Listen)
        elif mode == TCP_CONNECT:
            self.stats_[ActiveOpens] += 1
            tcb.flags |= ACTIVE
            self.tcpsndsyn(s, tcb)
            self.tcpsetstate(s, Syn_sent)
            self.tcpoutput(s)

    # ---------------------------------------------------------------
    # segments out: htontcp4/6

    cdef object buildseg(self, int version, const unsigned char *src, const unsigned char *dst,
                         int ttl, int tos, Tcp *tcph, Queue q, Py_ssize_t off, Py_ssize_t dlen,
                         const unsigned char *extra, Tcpctl tcb):
        """Build one datagram: IP header, TCP header with options, dlen
        bytes of data copied from q at off (or from extra), checksum (the
        formats are the wire layer's, wire.pxd)."""
        cdef int hdrlen, nsack
        cdef Py_ssize_t total
        cdef unsigned char *p
        cdef unsigned char *h
        cdef unsigned int wnd
        cdef bint wsopt = 0
        if tcph.flags & SYN:
            # v4: always offer, rfc1323 section 2.2; v6: only when scaling
            wsopt = version == V4 or tcph.ws != 0
            if tcph.optout and (tcph.flags & ACK) and not tcph.hasws:
                # DEVIATION: RFC 7323 section 2.2, the modern profile's
                # SYN-ACK carries a window scale only if the SYN did
                wsopt = 0
        # beyond tcp.c (optout): SACK-permitted and timestamps on a SYN,
        # NOP NOP TS and NOP NOP SACK blocks on the others
        hdrlen = tcpoptsize(tcph, wsopt, &nsack)
        total = (IP4HDRLEN if version == V4 else IP6HDRLEN) + hdrlen + dlen
        pkt = PyByteArray_FromStringAndSize(NULL, total)
        p = <unsigned char*>PyByteArray_AS_STRING(pkt)
        # IP header (ipoput4/6 would fill these; the IP layer fills the
        # v4 id and header checksum)
        h = ipput(p, version == V4, tos, ttl, IP_TCPPROTO, src, dst, hdrlen + dlen)
        wnd = tcph.wnd >> (tcb.snd_scale if tcb is not None else 0)
        if wnd > 0xFFFF:
            wnd = 0xFFFF     # DEVIATION: hnputs truncated; clamp instead
        tcpput(h, tcph, hdrlen, wsopt, nsack, wnd)
        if dlen > 0:
            if extra != NULL:
                memcpy(h + hdrlen, extra, dlen)
            else:
                q.qcopy(h + hdrlen, dlen, off)
        if tcb is None or not tcb.nochecksum:
            # DEVIATION: a sum that folds to 0 is sent as 0xFFFF, its
            # other one's complement form (as RFC 768 does for UDP):
            # tcp.c sent 0, which its receivers (and tcpiput here) take
            # for "no checksum" (the checksum ctl), so such a segment
            # went unchecked and a bit flipped on the way got through
            l4setcsum(p, version == V4, IP_TCPPROTO, h, hdrlen + dlen, 16, 1)
        return pkt

    cdef object htontcp4(self, Tcp *tcph, Conv s, Queue q, Py_ssize_t off, Py_ssize_t dlen,
                         const unsigned char *extra, Tcpctl tcb):
        return self.buildseg(V4, s.laddr, s.raddr, s.ttl, s.tos, tcph, q, off, dlen, extra, tcb)

    cdef object htontcp6(self, Tcp *tcph, Conv s, Queue q, Py_ssize_t off, Py_ssize_t dlen,
                         const unsigned char *extra, Tcpctl tcb):
        return self.buildseg(V6, s.laddr, s.raddr, s.ttl, s.tos, tcph, q, off, dlen, extra, tcb)

    # ---------------------------------------------------------------
    # segments in: the header and options are parsed by wire.pxd's
    # tcpparse (h is the TCP header, avail the bytes of segment present;
    # the header length or -1)

    cdef int ntohtcp4(self, Tcp *tcph, const unsigned char *h, Py_ssize_t avail) noexcept:
        return tcpparse(tcph, h, avail)

    cdef int ntohtcp6(self, Tcp *tcph, const unsigned char *h, Py_ssize_t avail) noexcept:
        return tcpparse(tcph, h, avail)

    cdef void tcpsndsyn(self, Conv s, Tcpctl tcb):
        """For outgoing calls, generate an initial sequence number and put
        a SYN on the send queue."""
        if tcb.profile == Profmodern:
            # beyond tcp.c: RFC 6528
            tcb.iss = self.isn(s.laddr, s.lport, s.raddr, s.rport)
        else:
            tcb.iss = (self.f.nrand(1 << 16) << 16) | self.f.nrand(1 << 16)
        tcb.rttseq = tcb.iss
        tcb.snd_wl2 = tcb.iss
        tcb.snd_una = tcb.iss
        tcb.snd_rxt = tcb.iss
        tcb.snd_ptr = tcb.rttseq
        tcb.snd_nxt = tcb.rttseq
        tcb.flgcnt += 1
        tcb.flags |= FORCE
        tcb.sndsyntime = self.f.now
        # set desired mss and scale
        tcb.mss = self.tcpmtu(self.f.ip.route(s.ipversion, s.remoteaddr, s.localaddr),
                              s.ipversion, &tcb.scale)
        self.stats_[Mss] = tcb.mss
        tcb.gsolen = self.f.ip.gso(s.ipversion, s.remoteaddr, s.localaddr)
        if tcb.profile == Profmodern and tcb.tsok:
            tcb.tsoff = self.tsoffset(s.laddr, s.lport, s.raddr, s.rport)

    cdef int sndrst(self, const unsigned char *source, const unsigned char *dest, unsigned short length,
                    Tcp *seg, int version, str reason, object rh) except? -2:
        cdef unsigned char rflags
        if self.f.log.mask & Logtcp:
            self.f.log.log(Logtcp, "sndrst: %s\n" % reason)
        if seg.flags & RST:
            return -1
        self.stats_[OutRsts] += 1
        rflags = RST
        # convince the other end that this reset is in band
        if seg.flags & ACK:
            seg.seq = seg.ack
            seg.ack = 0
        else:
            rflags |= ACK
            seg.ack = seg.seq
            seg.seq = 0
            if seg.flags & SYN:
                seg.ack += 1
            seg.ack += length
            if seg.flags & FIN:
                seg.ack += 1
        # ports swap: the reset goes back where the segment came from
        seg.source, seg.dest = seg.dest, seg.source
        seg.flags = rflags
        seg.wnd = 0
        seg.urg = 0
        seg.mss = 0
        seg.ws = 0
        pkt = self.buildseg(version, dest, source, MAXTTL, DFLTTOS, seg, None, 0, 0, NULL, None)
        return self.f.ip.ipoput(version, pkt, MAXTTL, DFLTTOS, rh)

    cdef int tcphangup(self, Conv s) except -1:
        """Send a reset to the remote side and close the conversation."""
        cdef Tcp seg
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        if memcmp(s.raddr, <const char*>IPnoaddr, 16) != 0:
            memset(&seg, 0, sizeof(seg))
            seg.source = s.lport
            seg.dest = s.rport
            seg.flags = RST | ACK
            seg.ack = tcb.rcv_nxt
            tcb.rcv_ackptr = seg.ack
            seg.seq = tcb.snd_ptr
            if s.ipversion == V4:
                pkt = self.htontcp4(&seg, s, None, 0, 0, NULL, tcb)
            else:
                pkt = self.htontcp6(&seg, s, None, 0, 0, NULL, tcb)
            self.f.ip.ipoput(s.ipversion, pkt, s.ttl, s.tos, s)
        self.localclose(s, None)
        return 0

    cdef int sndsynack(self, Limbo lp) except? -2:
        """(Re)send a SYN ACK."""
        cdef Tcp seg
        cdef unsigned int scale, t
        la = PyBytes_FromStringAndSize(<const char*>lp.laddr, 16)
        ra = PyBytes_FromStringAndSize(<const char*>lp.raddr, 16)
        rt = self.f.ip.route(lp.version, ra, la)
        if rt is None:
            return -1
        memset(&seg, 0, sizeof(seg))
        seg.source = lp.lport
        seg.dest = lp.rport
        seg.seq = lp.iss
        seg.ack = lp.irs + 1
        seg.flags = SYN | ACK
        seg.urg = 0
        seg.mss = self.tcpmtu(rt, lp.version, &scale)
        seg.wnd = QMAX
        # if the other side set scale, we should too
        if lp.rcvscale:
            seg.ws = scale
            lp.sndscale = scale
        else:
            seg.ws = 0
            lp.sndscale = 0
        lp.lastsend = self.f.now
        if lp.profile == Profmodern:
            # beyond tcp.c: answer SACK-permitted and timestamps in kind
            # (and the window scale only if offered: buildseg)
            seg.optout = 1
            seg.hasws = lp.hasws
            seg.sackok = lp.sackok
            seg.hasts = lp.hasts
            seg.tsval = self.f.now + lp.tsoff
            seg.tsecr = lp.tsval
            if lp.cookie and lp.hasts:
                # the options a cookie cannot hold go in TSval's low bits,
                # rounded down so that later TSvals are not older
                t = (seg.tsval & ~((1u << COOKIEBITS) - 1)) | ((lp.rcvscale & 0xF) << 1) | (lp.sackok & 1)
                if <int>(t - seg.tsval) > 0:
                    t -= 1u << COOKIEBITS
                seg.tsval = t
        pkt = self.buildseg(lp.version, lp.laddr, lp.raddr, MAXTTL, DFLTTOS, &seg, None, 0, 0, NULL, None)
        return self.f.ip.ipoput(lp.version, pkt, MAXTTL, DFLTTOS, None)

    # ---------------------------------------------------------------
    # limbo: the SYN cache

    cdef void limbo(self, Conv s, const unsigned char *source, const unsigned char *dest, Tcp *seg, int version,
                    bint setiss=0, unsigned int iss=0):
        """Put a call into limbo and respond with a SYN ACK.  (Beyond
        tcp.c: setiss gives a new call its initial sequence number;
        twreopen's.)"""
        cdef Limbo lp, prev = None
        cdef int h = hashipa(source, seg.source)
        lp = self.lht[h]
        while lp is not None:
            if (lp.lport == seg.dest and lp.rport == seg.source and lp.version == version
                    and memcmp(lp.raddr, source, 16) == 0 and memcmp(lp.laddr, dest, 16) == 0):
                # each new SYN restarts the retransmits
                lp.irs = seg.seq
                break
            prev = lp
            lp = lp.next
        if lp is None:
            if self.nlimbo >= Maxlimbo and (<Tcpctl>s.ptcl).profile == Profmodern:
                # beyond tcp.c: limbo is full: answer with a SYN cookie
                # (RFC 4987) instead of evicting a call that waits
                self.sndcookie(s, source, dest, seg, version)
                return
            if self.nlimbo >= Maxlimbo and self.lht[h] is not None:
                # evict the oldest call of this hash chain and reuse it
                lp = self.lht[h]
                self.lht[h] = lp.next
                lp.next = None
                self.tcphalt(lp.timer)
                if prev is lp:
                    prev = None
                # append where the new entry belongs: the end of the chain
                prev = self.lht[h]
                while prev is not None and prev.next is not None:
                    prev = prev.next
            else:
                lp = Limbo()
                lp.timer = Tcptimer()
                lp.timer.func = Tflimbo
                lp.timer.arg = lp
                self.nlimbo += 1
            if prev is None:
                self.lht[h] = lp
            else:
                prev.next = lp
            lp.next = None
            lp.h = h
            lp.version = version
            memcpy(lp.laddr, dest, 16)
            memcpy(lp.raddr, source, 16)
            lp.lport = seg.dest
            lp.rport = seg.source
            lp.mss = seg.mss
            lp.rcvscale = seg.ws
            lp.hasws = seg.hasws
            lp.irs = seg.seq
            lp.rexmits = 0
            lp.chacktime = 0
            lp.chackcnt = 0
            lp.profile = (<Tcpctl>s.ptcl).profile
            if setiss:
                lp.iss = iss
            elif lp.profile == Profmodern:
                # beyond tcp.c: RFC 6528
                lp.iss = self.isn(dest, seg.dest, source, seg.source)
            else:
                lp.iss = (self.f.nrand(1 << 16) << 16) | self.f.nrand(1 << 16)
        # beyond tcp.c: what the (latest) SYN offers, for the SYN-ACK of a
        # modern listener
        if (<Tcpctl>s.ptcl).profile == Profmodern:
            lp.sackok = seg.sackok and (<Tcpctl>s.ptcl).sackok
            lp.hasts = seg.hasts and (<Tcpctl>s.ptcl).tsok
            lp.tsval = seg.tsval
            if lp.hasts:
                lp.tsoff = self.tsoffset(dest, seg.dest, source, seg.source)
        else:
            lp.sackok = 0
            lp.hasts = 0
        if self.sndsynack(lp) < 0:
            self.limbofree(lp)
        else:
            self.limbosched(lp)

    cdef void limbofree(self, Limbo lp):
        """Unlink lp from its hash chain and forget it."""
        cdef Limbo x = self.lht[lp.h], prev = None
        while x is not None:
            if x is lp:
                if prev is None:
                    self.lht[lp.h] = lp.next
                else:
                    prev.next = lp.next
                self.nlimbo -= 1
                break
            prev = x
            x = x.next
        lp.next = None
        self.tcphalt(lp.timer)
        # lp.timer.arg is lp: break the cycle so that a forgotten call is
        # freed at once, not by the cyclic collector (a SYN flood makes
        # thousands of them)
        lp.timer.arg = None

    cdef void limbosched(self, Limbo lp):
        """Arm lp's timer for the first tick at which limborexmit's test
        `now - lastsend >= limbodue(lp)` holds ((rexmits+1)*SYNACK_RXTIMER
        in tcp.c)."""
        # the time of tick curtick()+1, the first a new timer can fire at
        cdef unsigned int first = self.nexttick + <unsigned int>((self.curtick() - self.ticks) * MSPTICK)
        cdef int delta = <int>(lp.lastsend + limbodue(lp) - first)
        cdef int t = 1
        if delta > 0:
            t = 1 + (delta + MSPTICK - 1) // MSPTICK
        lp.timer.start = t
        self.tcpgo(lp.timer)

    cdef void limborexmit(self, Limbo lp):
        """Resend a SYN ACK once every SYNACK_RXTIMER ms (growing).
        DEVIATION: tcp.c scans every call in limbo each tick and, because
        its `continue` does not advance the list pointer, stops at the first
        call that is not yet due, starving the calls behind it; here every
        call has its own timer."""
        cdef unsigned int now = self.f.now
        if now - lp.lastsend < <unsigned int>limbodue(lp):
            self.limbosched(lp)
            return
        # time it out after 1 second
        lp.rexmits += 1
        if lp.rexmits > 5:
            self.limbofree(lp)
            return
        # if we're being attacked, don't bother resending SYN ACK's
        if self.nlimbo > 100:
            self.limbosched(lp)
            return
        if self.sndsynack(lp) < 0:
            self.limbofree(lp)
            return
        self.limbosched(lp)

    cdef void limborst(self, Conv s, Tcp *segp, const unsigned char *src, const unsigned char *dst, int version):
        """Lookup call in limbo.  If found, throw it out."""
        cdef Limbo lp = self.lht[hashipa(src, segp.source)]
        while lp is not None:
            if (lp.lport == segp.dest and lp.rport == segp.source and lp.version == version
                    and memcmp(lp.laddr, dst, 16) == 0 and memcmp(lp.raddr, src, 16) == 0):
                # RST can only follow the SYN
                if segp.seq == lp.irs + 1:
                    self.limbofree(lp)
                elif lp.profile == Profmodern and seq_within(segp.seq, lp.irs + 1, lp.irs + QMAX):
                    # DEVIATION (modern profile): RFC 5961 section 3.2, as
                    # tcpinput does for a synchronized connection: a RST in
                    # the window of the SYN-ACK (QMAX from RCV.NXT = IRS+1)
                    # but not exactly at RCV.NXT gets a challenge ACK and
                    # is dropped; one outside it is dropped, as in tcp.c,
                    # which ignores every inexact RST
                    self.xstats_[RstChallenged] += 1
                    self.limbochallengeack(lp)
                break
            lp = lp.next

    cdef int limbochallengeack(self, Limbo lp) except? -2:
        """Beyond tcp.c: RFC 5961's challenge ACK from limbo,
        <SEQ=ISS+1><ACK=IRS+1><CTL=ACK>: the SYN-ACK's SND.NXT (as FreeBSD's
        SYN cache answers), throttled per call as tcpchallengeack is per
        conversation."""
        cdef Tcp seg
        if chackspent(&lp.chacktime, &lp.chackcnt, nowms(self.f)):
            return 0
        memset(&seg, 0, sizeof(seg))
        seg.source = lp.lport
        seg.dest = lp.rport
        seg.seq = lp.iss + 1
        seg.ack = lp.irs + 1
        seg.flags = ACK
        # the SYN-ACK's window, in the scale it announced
        seg.wnd = QMAX >> lp.sndscale
        if lp.hasts:
            seg.optout = 1
            seg.hasts = 1
            seg.tsval = self.f.now + lp.tsoff
            seg.tsecr = lp.tsval
        self.xstats_[ChallengeAcks] += 1
        pkt = self.buildseg(lp.version, lp.laddr, lp.raddr, MAXTTL, DFLTTOS, &seg, None, 0, 0, NULL, None)
        return self.f.ip.ipoput(lp.version, pkt, MAXTTL, DFLTTOS, None)

    cdef Conv tcpincoming(self, Conv s, Tcp *segp, const unsigned char *src, const unsigned char *dst, int version):
        """Come here when we finally get an ACK to our SYN-ACK.  Lookup call
        in limbo.  If found, create a new conversation."""
        cdef Conv new
        cdef Tcpctl tcb
        cdef Limbo lp
        # unless it's just an ack, it can't be someone coming out of limbo
        if (segp.flags & SYN) or (segp.flags & ACK) == 0:
            return None
        lp = self.lht[hashipa(src, segp.source)]
        while lp is not None:
            if (lp.lport == segp.dest and lp.rport == segp.source and lp.version == version
                    and memcmp(lp.laddr, dst, 16) == 0 and memcmp(lp.raddr, src, 16) == 0):
                # we're assuming no data with the initial SYN
                if segp.seq != lp.irs + 1 or segp.ack != lp.iss + 1:
                    if self.f.log.mask & Logtcp:
                        self.f.log.log(Logtcp, "tcpincoming s %x/%x a %x %x\n" % (
                            segp.seq, lp.irs + 1, segp.ack, lp.iss + 1))
                    lp = None
                else:
                    self.limbofree(lp)
                break
            lp = lp.next
        if lp is None and self.cookiesent and (<Tcpctl>s.ptcl).profile == Profmodern:
            # beyond tcp.c: perhaps the answer to a SYN cookie
            lp = self.cookiecheck(s, segp, src, dst, version)
        if lp is None:
            return None

        new = self.newcall(s, PyBytes_FromStringAndSize(<const char*>src, 16), segp.source,
                           PyBytes_FromStringAndSize(<const char*>dst, 16), segp.dest, version)
        if new is None:
            return None

        tcb = <Tcpctl>new.ptcl
        tcb.copyfrom(<Tcpctl>s.ptcl)
        tcb.flags &= ~CLONE
        # (the copied timers are this conversation's own, all off)

        tcb.irs = lp.irs
        tcb.rcv_nxt = tcb.irs + 1
        tcb.rcv_wptr = tcb.rcv_nxt
        tcb.rcv_wsnt = 0
        tcb.rcv_urg = tcb.rcv_nxt

        tcb.iss = lp.iss
        tcb.rttseq = tcb.iss
        tcb.snd_wl2 = tcb.iss
        tcb.snd_una = tcb.iss + 1
        tcb.snd_ptr = tcb.iss + 1
        tcb.snd_nxt = tcb.iss + 1
        tcb.snd_rxt = tcb.iss + 1
        tcb.flgcnt = 0
        tcb.flags |= SYNACK

        # set desired mss and scale
        tcb.mss = self.tcpmtu(self.f.ip.route(version, new.remoteaddr, new.localaddr),
                              version, &tcb.scale)
        # our sending max segment size cannot be bigger than what he asked for
        if lp.mss != 0 and lp.mss < tcb.mss:
            tcb.mss = lp.mss
        self.stats_[Mss] = tcb.mss
        tcb.gsolen = self.f.ip.gso(version, new.remoteaddr, new.localaddr)

        # beyond tcp.c: SACK and timestamps as the SYN-ACK answered them
        tcb.sack = lp.sackok
        tcb.rack = tcb.sack and tcb.rackok
        tcb.ts = lp.hasts
        if tcb.ts:
            tcb.ts_recent = lp.tsval
            tcb.tsoff = lp.tsoff
            tcb.mss -= TSOPTALIGNED    # every segment carries the option
            # RFC 7323 section 4.3: the ACK that completes the handshake
            # starts at Last.ACK.sent (the SYN-ACK's ack, rcv.nxt), so its
            # TSval becomes TS.Recent, as the SYN's did (tcpinput's rule
            # compares with rcv_ackptr, which no segment has set yet here)
            if segp.hasts and segp.seq == tcb.rcv_nxt and seq_ge(segp.tsval, tcb.ts_recent):
                tcb.ts_recent = segp.tsval

        # window scaling
        self.tcpsetscale(new, tcb, lp.rcvscale, lp.sndscale)

        # congestion window
        tcb.snd_wnd = segp.wnd
        initialwindow(tcb)
        tcb.max_snd_wnd = tcb.snd_wnd

        # set initial round trip time
        tcb.sndsyntime = lp.lastsend + lp.rexmits * SYNACK_RXTIMER
        if tcb.profile == Profmodern and lp.rexmits > 0:
            tcb.flags |= SYNRETRAN      # (for tcpsynackrtt: Karn's rule)
        self.tcpsynackrtt(new, segp)

        self.tcpsetstate(new, Established)
        self.iphtadd(new)
        return new

    cdef bint twreopen(self, Conv s, Tcp *seg, const unsigned char *source, const unsigned char *dest,
                       int version) except -1:
        """DEVIATION: a new SYN for a conversation in Time_wait reopens the
        connection (RFC 1122 section 4.2.2.13, RFC 9293's MAY-2), as Linux
        and the BSDs do, when its sequence number is beyond everything the
        old connection received and an announced conversation takes calls
        to the port: the Time_wait conversation closes and the SYN goes to
        limbo, with an initial sequence number beyond everything the old
        connection sent.  tcp.c dropped such a SYN (and answered with an
        ACK of the old connection), so a client that reused its port
        within MSL2 seconds -- Linux does, thousands of connections a
        second to one service wrap its ephemeral ports within that time
        -- was reset and waited a second for its next SYN.  Otherwise (an
        old sequence number, no listener) the SYN gets the challenge ACK
        of tcpinput.  The RFC's other condition, going back to Time_wait
        when the SYN turns out to be an old duplicate, is not met: the old
        conversation is gone, as it is in Linux.  Returns 1 when the SYN
        was taken."""
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        cdef Conv l
        cdef unsigned int iss
        if not seq_gt(seg.seq, tcb.rcv_nxt):
            return 0
        l = self.iphtlookannounced(dest, seg.dest)
        if l is None or (<Tcpctl>l.ptcl).state != Listen:
            return 0
        iss = tcb.snd_nxt + 65536 + self.f.nrand(1 << 16)
        if self.f.log.mask & Logtcp:
            self.f.log.log(Logtcp, "tcp: syn in Time_wait from %s!%d seq %d > rcv.nxt %d: reopen\n" % (
                fmtip(s.remoteaddr), s.rport, seg.seq, tcb.rcv_nxt))
        self.twreopened += 1
        self.localclose(s, None)
        self.limbo(l, source, dest, seg, version, 1, iss)
        return 1

    cdef void tcpsynackrtt(self, Conv s, Tcp *seg):
        """Use the time between the first SYN and its ack (seg) as the
        initial round trip time."""
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        cdef int delta = <int>(self.f.now - tcb.sndsyntime)
        if tcb.profile == Profmodern:
            # DEVIATION (modern profile): the first sample (RFC 6298
            # section 2.2) comes from the ACK's timestamp echo when it has
            # one (RFC 7323 section 4: it tells which SYN it answers), else
            # from the time of the SYN unless it was resent (section 3,
            # Karn; tcp.c times from the first SYN); a resent SYN without
            # a sample leaves the RTO at 3 s (section 5.7, tcpsettimer)
            if tcb.srtt != 0:
                pass
            elif (tcb.ts and seg != NULL and seg.hasts and seg.tsecr != 0
                    and <unsigned int>(self.f.now + tcb.tsoff - seg.tsecr) < 3600000):
                self.tcprttsample(tcb, <int>(self.f.now + tcb.tsoff - seg.tsecr))
            elif not (tcb.flags & SYNRETRAN):
                if delta <= 0:
                    delta = 1
                tcb.srtt = delta << LOGAGAIN
                # RFC 6298 section 2.2, RTTVAR = R/2
                tcb.mdev = delta << 1
            self.tcpsettimer(tcb)
            self.tcphalt(tcb.rtt_timer)
            return
        tcb.srtt = delta << LOGAGAIN
        tcb.mdev = delta << LOGDGAIN
        # halt round trip timer
        self.tcphalt(tcb.rtt_timer)

    cdef void update(self, Conv s, Tcp *seg):
        cdef int rtt
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        cdef unsigned int acked
        cdef bint recovery = 0, frtosend = 0
        if seg.update:
            return
        seg.update = 1

        # beyond tcp.c (modern, SACK in use): the scoreboard, RACK
        if tcb.sack:
            self.sackupdate(tcb, seg)
            if tcb.rack and (seg.flags & ACK):
                self.rackupdate(tcb, seg.ack if seq_gt(seg.ack, tcb.snd_una) else tcb.snd_una)
                if self.rackdetect(s) > 0 and not tcb.sackrecovery:
                    recovery = 1

        # catch zero-window updates, update window & recover
        if tcb.snd_wnd == 0 and seg.wnd > 0 and seq_lt(seg.ack, tcb.snd_ptr):
            if self.f.log.mask & Logtcp:
                self.f.log.log(Logtcp, "tcp: zwu ack %d una %d ptr %d win %d\n" % (
                    seg.ack, tcb.snd_una, tcb.snd_ptr, seg.wnd))
            tcb.snd_wnd = seg.wnd
            recovery = 1
        elif seg.ack == tcb.snd_una and tcb.snd_una != tcb.snd_nxt:
            if tcb.frto:
                # beyond tcp.c: F-RTO (RFC 5682 2.1 step 2b / 3a): a
                # duplicate ACK, the timeout was real; go back as tcp.c
                tcb.frto = 0
                tcb.snd_ptr = tcb.snd_una
            # newreno fast retransmit
            tcb.snd_dupacks += 1
            if tcb.snd_dupacks == 3:
                recovery = 1
            elif tcb.sack:
                # beyond tcp.c: RFC 6675 section 5, IsLost(HighACK + 1)
                # also starts recovery; no window inflation (pipe)
                if not tcb.sackrecovery and self.sacklost(tcb, tcb.snd_una):
                    recovery = 1
                elif (not tcb.sackrecovery and tcb.snd_dupacks <= 2 and tcb.snd_ptr == tcb.snd_nxt
                        and <unsigned int>s.wq.len > tcb.snd_nxt - tcb.snd_una):
                    # RFC 3042 limited transmit: a new segment for each
                    # of the first two duplicate ACKs
                    self.tcpsendat(s, tcb.snd_nxt, tcb.mss)
            elif tcb.snd_recovery:
                # tcp.c's "else if(tcb->snd.recovery)" binds to the
                # innermost if: a duplicate ACK other than the third
                self.stats_[RecoveryCwind] += 1
                tcb.cwind += tcb.mss

        if recovery and tcb.sack:
            # beyond tcp.c: RFC 6675 section 5 loss recovery
            if not tcb.sackrecovery and seq_le(tcb.snd_rxt, seg.ack):
                self.sackenter(s)
            elif tcb.sackrecovery:
                self.sacksend(s)
            elif not tcb.sackrecovery:
                self.stats_[RecoveryNoSeq] += 1
        elif recovery:
            if tcb.snd_recovery:
                self.stats_[RecoveryCwind] += 1
                tcb.cwind += tcb.mss
            elif seq_le(tcb.snd_rxt, seg.ack):
                self.stats_[Recovery] += 1
                tcb.abcbytes = 0
                tcb.snd_recovery = 1
                tcb.snd_partialack = 0
                tcb.snd_rxt = tcb.snd_nxt
                self.tcpcongestion(tcb)
                tcb.cwind = tcb.ssthresh + 3 * tcb.mss
                if self.f.log.mask & Logtcpwin:
                    self.f.log.log(Logtcpwin, "recovery inflate %d ss %d @%d\n" % (
                        tcb.cwind, tcb.ssthresh, tcb.snd_rxt))
                self.tcprxmit(s)
            else:
                self.stats_[RecoveryNoSeq] += 1
                if self.f.log.mask & Logtcpwin:
                    self.f.log.log(Logtcpwin, "!recov %d not <= %d %d\n" % (
                        tcb.snd_rxt, seg.ack, <int>(tcb.snd_rxt - seg.ack)))
                # do not enter fast retransmit
                # do not change ssthresh

        # update window
        if seq_gt(seg.ack, tcb.snd_wl2) or (tcb.snd_wl2 == seg.ack and seg.wnd > tcb.snd_wnd):
            # clear dupack if we advance wl2
            if tcb.snd_wl2 != seg.ack:
                tcb.snd_dupacks = 0
            tcb.snd_wnd = seg.wnd
            tcb.snd_wl2 = seg.ack
            if tcb.snd_wnd > tcb.max_snd_wnd:
                tcb.max_snd_wnd = tcb.snd_wnd

        if not seq_gt(seg.ack, tcb.snd_una):
            # don't let us hangup if sending into a closed window and
            # we're still getting acks
            if (tcb.flags & RETRAN) and tcb.snd_wnd == 0:
                tcb.backedoff = MAXBACKMS // 4
            # beyond tcp.c: in SACK recovery a duplicate ACK that SACKs
            # more frees pipe (RFC 6675 step 4.3)
            if tcb.sackrecovery and not recovery:
                self.sacksend(s)
            return

        # Compute the new send window size
        acked = seg.ack - tcb.snd_una
        tcb.tlpout = 0
        if tcb.frto == 1:
            # beyond tcp.c: F-RTO step 2: the first new ACK after the
            # timeout.  Unless it covers all that was out or nothing new
            # is left to send, send two new segments instead of going back
            if (seq_ge(seg.ack, tcb.frto_recover)
                    or <unsigned int>s.wq.len <= tcb.snd_nxt - tcb.snd_una):
                tcb.frto = 0
            else:
                tcb.frto = 2
                frtosend = 1
        elif tcb.frto == 2:
            # F-RTO step 3b: a second new ACK acknowledges what was never
            # resent: the timeout was spurious; undo its reduction
            tcb.frto = 0
            self.xstats_[SpuriousRtos] += 1
            if tcb.cwind < tcb.frto_cwnd:
                tcb.cwind = tcb.frto_cwnd
            tcb.ssthresh = tcb.frto_ssthresh
            tcb.snd_rto = 0
            if seq_lt(tcb.snd_ptr, tcb.snd_nxt):
                tcb.snd_ptr = tcb.snd_nxt

        # avoid slow start and timers for SYN acks
        if (tcb.flags & SYNACK) == 0:
            tcb.flags |= SYNACK
            acked -= 1
            tcb.flgcnt -= 1
        else:
            # congestion control
            if tcb.sackrecovery:
                # beyond tcp.c: RFC 6675 section 5, recovery ends when
                # RecoveryPoint is acknowledged; cwnd is ssthresh
                if seq_ge(seg.ack, tcb.recoverypt):
                    self.stats_[RecoveryDone] += 1
                    self.xstats_[SackRecoveryDone] += 1
                    tcb.sackrecovery = 0
                    tcb.snd_dupacks = 0
                    tcb.cwind = tcb.ssthresh
                else:
                    self.stats_[RecoveryPA] += 1
            elif tcb.snd_recovery:
                if seq_ge(seg.ack, tcb.snd_rxt):
                    # recovery finished; deflate window
                    self.stats_[RecoveryDone] += 1
                    tcb.snd_dupacks = 0
                    tcb.snd_recovery = 0
                    tcb.cwind = (tcb.snd_nxt - tcb.snd_una) + tcb.mss
                    if tcb.ssthresh < tcb.cwind:
                        tcb.cwind = tcb.ssthresh
                    if self.f.log.mask & Logtcpwin:
                        self.f.log.log(Logtcpwin, "recovery deflate %d %d\n" % (tcb.cwind, tcb.ssthresh))
                else:
                    # partial ack; we lost more than one segment
                    self.stats_[RecoveryPA] += 1
                    if tcb.cwind > acked:
                        tcb.cwind -= acked
                    else:
                        if self.f.log.mask & Logtcpwin:
                            self.f.log.log(Logtcpwin, "partial ack neg\n")
                        tcb.cwind = tcb.mss
                    if self.f.log.mask & Logtcpwin:
                        self.f.log.log(Logtcpwin, "partial ack %d left %d cwind %d\n" % (
                            acked, <int>(tcb.snd_rxt - seg.ack), tcb.cwind))
                    if acked >= tcb.mss:
                        tcb.cwind += tcb.mss
                    tcb.snd_partialack += 1
            else:
                self.tcpabcincr(tcb, acked)

            # Adjust the timers according to the round trip time
            if tcb.ts and seg.hasts and seg.tsecr != 0:
                # beyond tcp.c: RFC 7323 section 4, a sample from every ACK
                # of new data, retransmitted or not, in recovery or not
                self.tcphalt(tcb.rtt_timer)
                rtt = <int>(self.f.now + tcb.tsoff - seg.tsecr)
                if rtt >= 0 and rtt < 3600000:
                    self.tcprttsample(tcb, rtt)
            elif tcb.rtt_timer.state == TcptimerON and seq_ge(seg.ack, tcb.rttseq):
                self.tcphalt(tcb.rtt_timer)
                if (tcb.flags & RETRAN) == 0:
                    tcb.backoff = 0
                    tcb.backedoff = 0
                    rtt = tcb.rtt_timer.start - tcb.rtt_timer.count
                    if rtt == 0:
                        rtt = 1     # otherwise all close systems will rexmit in 0 time
                    rtt *= MSPTICK
                    # (RFC 6298 section 2.2 in modern: RTTVAR = R/2 first)
                    rttsmooth(tcb, rtt, 1 if tcb.profile == Profmodern else LOGDGAIN)
                    self.tcpsettimer(tcb)

        # done:
        if s.wq.qdiscard(acked) < <Py_ssize_t>acked:
            tcb.flgcnt -= 1
        tcb.snd_una = seg.ack

        # newreno fast recovery
        if tcb.snd_recovery:
            self.tcprxmit(s)
        elif tcb.sackrecovery:
            self.sacksend(s)
        elif frtosend:
            # (F-RTO step 2b: snd.ptr back to snd.nxt, two new segments)
            tcb.snd_ptr = tcb.snd_nxt
            self.tcpsendat(s, tcb.snd_nxt, tcb.mss)
            if tcb.state != Closed:
                self.tcpsendat(s, tcb.snd_nxt, tcb.mss)

        if seq_gt(seg.ack, tcb.snd_urg):
            tcb.snd_urg = seg.ack

        if tcb.snd_una != tcb.snd_nxt:
            # "impatient" variant
            if not tcb.snd_recovery or tcb.snd_partialack == 1:
                tcb.time = self.f.now
                tcb.timeuna = tcb.snd_una
                self.tcpgo(tcb.timer)
            if tcb.rack and not tcb.sackrecovery:
                self.tlparm(s)
        else:
            self.tcphalt(tcb.timer)

        if seq_lt(tcb.snd_ptr, tcb.snd_una):
            tcb.snd_ptr = tcb.snd_una

        if not tcb.snd_recovery and not tcb.sackrecovery:
            tcb.flags &= ~RETRAN
        tcb.backoff = 0
        tcb.backedoff = 0

    cpdef pbatch(self, bint on):
        """Beyond tcp.c (net9 serve with offloads, where Linux hands over
        TCP super-packets as its GRO would): pbatch(True) before a burst of
        datagrams that came in together, pbatch(False) after it.  In
        between, the output tcpiput would run after each segment (an ACK,
        or data the ACK let go) waits, once per conversation, for the end
        of the burst, unless the segment forces an ACK (out of order, a
        filled hole, a FIN...): one ACK then covers the in-order burst, as a receiver with
        GRO/LRO acknowledges an aggregate once (RFC 9293 section 3.8.6.3
        allows stretch ACKs of this kind only as delayed ACKs do; the delay
        here is the burst's processing time, microseconds).  Without
        offloads (net9 serve --no-offload) nothing calls it: tcp.c's ACKs
        exactly."""
        cdef Conv s
        cdef dict d
        if on:
            self.batching = True
            return
        self.batching = False
        if self.deferred:
            d = self.deferred
            self.deferred = {}
            for s in d:
                if (<Tcpctl>s.ptcl).state != Closed:
                    self.tcpoutput(s)

    cpdef int rcv(self, object pkt, object ifc=None) except -1:
        """tcpiput: one IP datagram (bytes-like) carrying TCP."""
        cdef Py_buffer view
        PyObject_GetBuffer(pkt, &view, PyBUF_SIMPLE)
        try:
            return self.tcpiput(<const unsigned char*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    cdef int tcpiput(self, const unsigned char *p, Py_ssize_t n) except -1:
        cdef Tcp seg
        cdef int hdrlen, iphl, length, version
        cdef unsigned char source[16]
        cdef unsigned char dest[16]
        cdef Conv s
        cdef Tcpctl tcb
        cdef const unsigned char *dp
        cdef int act

        self.stats_[InSegs] += 1

        if n < 1:
            self.stats_[HlenErrs] += 1
            self.stats_[InErrs] += 1
            return 0
        if (p[0] & 0xF0) == 0x40:
            version = V4
            # DEVIATION: tcp.c assumes the IP layer left exactly 20 bytes
            # of IP header and a well-formed length; this input path is
            # also exposed to raw datagrams, so it checks both
            iphl = (p[0] & 0x0F) * 4
            if n < 20 or iphl < 20 or n < iphl:
                self.stats_[HlenErrs] += 1
                self.stats_[InErrs] += 1
                return 0
            length = nhgets(p + 2)
            if length < iphl:
                self.stats_[HlenErrs] += 1
                self.stats_[InErrs] += 1
                if self.f.log.mask & Logtcp:
                    self.f.log.log(Logtcp, "bad tcp len\n")
                return 0
            length -= iphl
            if iphl + length > n:
                self.stats_[LenErrs] += 1
                self.stats_[InErrs] += 1
                if self.f.log.mask & Logtcp:
                    self.f.log.log(Logtcp, "tcp bad length\n")
                return 0
            v4tov6(dest, p + 16)
            v4tov6(source, p + 12)
            if length >= 18 and (p[iphl + 16] or p[iphl + 17]):
                if l4csum(p, 1, IP_TCPPROTO, p + iphl, length) != 0:
                    self.stats_[CsumErrs] += 1
                    self.stats_[InErrs] += 1
                    if self.f.log.mask & Logtcp:
                        self.f.log.log(Logtcp, "bad tcp proto cksum\n")
                    return 0
        elif (p[0] & 0xF0) == 0x60:
            version = V6
            iphl = 40
            if n < 40:
                self.stats_[HlenErrs] += 1
                self.stats_[InErrs] += 1
                return 0
            length = nhgets(p + 4)
            if iphl + length > n:
                self.stats_[LenErrs] += 1
                self.stats_[InErrs] += 1
                if self.f.log.mask & Logtcp:
                    self.f.log.log(Logtcp, "tcpv6 bad length\n")
                return 0
            memcpy(dest, p + 24, 16)
            memcpy(source, p + 8, 16)
            if length >= 18 and (p[iphl + 16] or p[iphl + 17]):
                if l4csum(p, 0, IP_TCPPROTO, p + iphl, length) != 0:
                    self.stats_[CsumErrs] += 1
                    self.stats_[InErrs] += 1
                    if self.f.log.mask & Logtcp:
                        self.f.log.log(Logtcp, "bad tcpv6 proto cksum: got %#x\n" % nhgets(p + iphl + 16))
                    return 0
        else:
            self.stats_[HlenErrs] += 1
            self.stats_[InErrs] += 1
            return 0

        if version == V4:
            hdrlen = self.ntohtcp4(&seg, p + iphl, length)
        else:
            hdrlen = self.ntohtcp6(&seg, p + iphl, length)
        if hdrlen < 0:
            self.stats_[HlenErrs] += 1
            self.stats_[InErrs] += 1
            if self.f.log.mask & Logtcp:
                self.f.log.log(Logtcp, "bad tcp hdr len\n")
            return 0
        length -= hdrlen
        seg.len = length
        dp = p + iphl + hdrlen

        # Look for a matching conversation
        s = self.iphtlook(source, seg.source, dest, seg.dest)
        if s is None:
            if self.f.log.mask & Logtcp:
                self.f.log.log(Logtcp, "iphtlook(src %s!%d, dst %s!%d) failed\n" % (
                    _ip(source), seg.source, _ip(dest), seg.dest))
            self.sndrst(source, dest, length, &seg, version, "no conversation", None)
            return 0
        # (iph->trans, NAT translation: tcpforward is not ported yet; Conv.trans
        # is where a translation entry will hang)

        tcb = <Tcpctl>s.ptcl
        if tcb.state == Time_wait and (seg.flags & (SYN | ACK | RST)) == SYN:
            if self.twreopen(s, &seg, source, dest, version):
                return 0

        # if it's a listener, look for the right flags and get a new conv
        if tcb.state == Listen:
            if seg.flags & RST:
                self.limborst(s, &seg, source, dest, version)
                return 0
            # if this is a new SYN, put the call into limbo
            if (seg.flags & SYN) and (seg.flags & ACK) == 0:
                self.limbo(s, source, dest, &seg, version)
                return 0
            # if there's a matching call in limbo, tcpincoming will
            # return it in state Syn_received
            s = self.tcpincoming(s, &seg, source, dest, version)
            if s is None:
                self.sndrst(source, dest, length, &seg, version, "no conversation", None)
                return 0

        act = self.tcpinput(s, &seg, dp, length, source, dest, version)
        if act == A_OUTPUT:
            # only the ACK of in-order data waits for the burst's end: a
            # forced one (a duplicate ACK for a segment out of order, the
            # ACK of a filled hole, of a FIN, of an unacceptable segment)
            # goes at once, as a GRO receiver sends them (RFC 5681 section
            # 4.2: out-of-order data is acknowledged immediately, so the
            # sender sees its duplicate ACKs and retransmits fast)
            if self.batching and not ((<Tcpctl>s.ptcl).flags & FORCE):
                self.deferred[s] = None
            else:
                self.tcpoutput(s)
        elif act == A_RAISE:
            # DEVIATION: tcp.c's raise path calls tcpkick, which on a
            # conversation that this segment has just closed (RST, a
            # retransmission give-up) hangs the queues up again with
            # "Hangup", overwriting the "i/o on hungup channel" of the
            # close: readers would get an error instead of the EOF that
            # devip.md section 4.4 specifies for a reset.
            if (<Tcpctl>s.ptcl).state != Closed:
                self.tcpkick(s)
        return 0

    cdef int tcpinput(self, Conv s, Tcp *segp, const unsigned char *dp, int length,
                      const unsigned char *source, const unsigned char *dest, int version) except -1:
        """The rest of tcpiput: the state machine for one segment and the
        adjacent segments of the resequence queue."""
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        cdef Tcp seg = segp[0]
        cdef object hold = None
        cdef str reason
        cdef Reseq rp
        cdef int skip
        cdef bint synsent = 0       # the SYN-ACK (or SYN) taken in Syn_sent
        cdef unsigned int origseq = seg.seq
        cdef int origlen = length

        # fix up window
        seg.wnd <<= tcb.rcv_scale

        # every input packet in puts off the keep alive time out
        self.tcpsetkacounter(tcb)

        if tcb.state == Closed:
            return self.reset2(s, &seg, length, source, dest, version, "sending to Closed")
        elif tcb.state == Syn_sent:
            if seg.flags & ACK:
                if not seq_within(seg.ack, tcb.iss + 1, tcb.snd_nxt):
                    return self.reset2(s, &seg, length, source, dest, version, "bad seq in Syn_sent")
            if seg.flags & RST:
                if seg.flags & ACK:
                    self.localclose(s, errors.Econrefused)
                return A_RAISE
            if seg.flags & SYN:
                self.procsyn(s, &seg)
                if seg.flags & ACK:
                    self.update(s, &seg)
                    self.tcpsynackrtt(s, &seg)
                    self.tcpsetstate(s, Established)
                    self.tcpsetscale(s, tcb, seg.ws, tcb.scale)
                else:
                    tcb.time = self.f.now
                    self.tcpsetstate(s, Syn_received)    # DLP - shouldn't this be a reset?
                    if tcb.profile == Profmodern:
                        # DEVIATION (modern profile): RFC 9293 section
                        # 3.10.7.3, a simultaneous open sends its SYN-ACK
                        # at once; tcp.c sends it only when the SYN's
                        # retransmission timer fires (tcpoutput sends
                        # nothing past an unacknowledged SYN).  Going back
                        # to the SYN's sequence number makes this output
                        # the SYN-ACK; the timer keeps running.
                        tcb.snd_ptr = tcb.iss
                if length != 0 or (seg.flags & FIN):
                    synsent = 1     # break: on to the rest of the machine
                else:
                    return A_OUTPUT
            else:
                return A_DONE
        elif tcb.state == Syn_received:
            # doesn't matter if it's the correct ack, we're just trying to set timing
            if seg.flags & ACK:
                self.tcpsynackrtt(s, &seg)

        # DEVIATION: a SYN in a synchronized state.  tcp.c gives it to
        # tcptrim like any segment: out of the window, update() takes the
        # ACK field of a segment that may carry no ACK (snd.una jumps to a
        # random value, flgcnt is spent on a FIN never sent, and the
        # connection stalls sending FIN|ACKs); in the window, the SYN is
        # queued or passed as data.  One spoofed SYN with the 4-tuple did
        # it, with no sequence number to guess.  RFC 9293 section 3.10.7.4
        # (fourth check) and RFC 5961 section 4.2: whatever its sequence
        # number, answer a SYN with a challenge ACK
        # <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> and drop it.  (A RST|SYN is
        # left to the RST rules below, which RFC 9293 checks first.)
        # (Not the SYN-ACK that Syn_sent just took with data or a FIN: that
        # one goes on to tcptrim, which strips the SYN, as in tcp.c.)
        if (not synsent and tcb.state >= Established and (seg.flags & SYN)
                and (seg.flags & RST) == 0):
            if self.f.log.mask & Logtcp:
                self.f.log.log(Logtcp, "tcp: syn in %s from %s!%d seq %d: challenge ack\n" % (
                    tcpstates[tcb.state], fmtip(s.remoteaddr), s.rport, seg.seq))
            self.tcpchallengeack(s)
            return A_DONE

        # One DOS attack is to open connections to us and then forget about
        # them, thereby tying up a conv at no long term cost to the attacker.
        # This is an attempt to defeat these stateless DOS attacks.  See
        # corresponding code in tcpsendka().
        # DEVIATION: only a segment with ACK set has an acknowledgment field
        # to judge (RFC 9293 section 3.1); tcp.c read seg.ack regardless.
        if tcb.state != Syn_received and (seg.flags & RST) == 0 and (seg.flags & ACK):
            if (self.tcpporthogdefense
                    and seq_within(seg.ack, tcb.snd_una - <unsigned int>0x80000000,
                                   tcb.snd_una - (1u << 29))):
                if self.f.log.mask & Logtcp:
                    self.f.log.log(Logtcp, "stateless hog %s.%d->%s.%d f %x %x - %x - %x\n" % (
                        _ip(source), seg.source, _ip(dest), seg.dest, seg.flags,
                        <unsigned int>(tcb.snd_una - <unsigned int>0x80000000), seg.ack,
                        tcb.snd_una - (1u << 29)))
                self.localclose(s, errors.Estatelesshog)

        # beyond tcp.c (modern): PAWS, RFC 7323 section 5.3
        if tcb.ts and not synsent and self.tcppaws(s, &seg, length):
            tcb.flags |= FORCE
            return A_OUTPUT

        # Cut the data to fit the receive window
        self.tcprcvwin(s)
        if self.tcptrim(tcb, &seg, &dp, &length) == -1:
            # beyond tcp.c (modern): a duplicate, all of it below rcv.nxt,
            # is reported in a D-SACK block (RFC 2883)
            if (tcb.sack and origlen > 0 and (seg.flags & RST) == 0
                    and seq_le(origseq + <unsigned int>origlen, tcb.rcv_nxt)
                    and seq_gt(origseq + <unsigned int>origlen, tcb.rcv_nxt - <unsigned int>0x40000000)):
                tcb.dsack = 1
                tcb.dsack_l = origseq
                tcb.dsack_r = origseq + <unsigned int>origlen
            if seg.seq + 1 != tcb.rcv_nxt or length != 1:
                if self.f.log.mask & Logtcp:
                    self.f.log.log(Logtcp, "tcp: trim: !inwind: seq %d-%d win %d-%d l %d from %s\n" % (
                        seg.seq, seg.seq + length - 1, tcb.rcv_nxt, tcb.rcv_nxt + tcb.rcv_wnd - 1,
                        length, fmtip(s.remoteaddr)))
            # DEVIATION: tcp.c runs update() on every unacceptable segment,
            # ACK bit or not and whatever it acknowledges.  RFC 9293 section
            # 3.10.7.4: the acknowledgment field counts only with ACK set, and
            # an ACK of something not yet sent (SEG.ACK > SND.NXT) is
            # dropped; tcp.c's use of valid ACKs here (zero-window probes
            # answered by the peer) is kept.
            if ackable(tcb, &seg):
                self.update(s, &seg)
            if s.wq.len + tcb.flgcnt == 0 and tcb.state == Closing:
                self.tcphalt(tcb.rtt_timer)
                self.tcphalt(tcb.acktimer)
                self.tcphalt(tcb.katimer)
                self.tcpsetstate(s, Time_wait)
                tcb.timer.start = MSL2 * (1000 // MSPTICK)
                self.tcpgo(tcb.timer)
            if not (seg.flags & RST):
                tcb.flags |= FORCE
                return A_OUTPUT
            return A_DONE

        # Cannot accept so answer with a rst
        if length and tcb.state == Closed:
            return self.reset2(s, &seg, length, source, dest, version, "sending to Closed")

        if tcb.profile == Profmodern and not synsent:
            # beyond tcp.c: RFC 5961 section 3.2, a RST in the window but
            # not exactly at RCV.NXT gets a challenge ACK and is dropped
            if (seg.flags & RST) and origseq != tcb.rcv_nxt and tcb.state >= Syn_received:
                if self.f.log.mask & Logtcp:
                    self.f.log.log(Logtcp, "tcp: rst seq %d != rcv.nxt %d from %s!%d: challenge ack\n" % (
                        origseq, tcb.rcv_nxt, fmtip(s.remoteaddr), s.rport))
                self.xstats_[RstChallenged] += 1
                self.tcpchallengeack(s)
                return A_DONE
            # RFC 5961 section 5: an ACK older than SND.UNA - MAX.SND.WND
            if ((seg.flags & (ACK | RST)) == ACK and tcb.state > Syn_received
                    and seq_lt(seg.ack, tcb.snd_una - tcb.max_snd_wnd)):
                self.xstats_[AckOutOfRange] += 1
                self.tcpchallengeack(s)
                return A_DONE
            # RFC 7323 section 4.3: TS.Recent from the segment that covers
            # Last.ACK.sent
            if (tcb.ts and seg.hasts and seq_le(origseq, tcb.rcv_ackptr)
                    and seq_ge(seg.tsval, tcb.ts_recent)):
                tcb.ts_recent = seg.tsval

        # The segment is beyond the current receive pointer so
        # queue the data in the resequence queue
        if seg.seq != tcb.rcv_nxt:
            if length != 0 or (seg.flags & (SYN | FIN)):
                # DEVIATION: as above, and a segment without ACK is not
                # queued: tcp.c would drop it when it came off the queue
                # (RFC 9293 section 3.10.7.4: "if the ACK bit is off, drop
                # the segment"), after it had taken room there.
                if (seg.flags & ACK) == 0:
                    return A_DONE
                if ackable(tcb, &seg):
                    self.update(s, &seg)
                elif seg.flags & ACK:
                    tcb.flags |= FORCE
                    return A_OUTPUT
                if tcb.profile == Profmodern and (
                        tcb.state == Close_wait or tcb.state == Closing
                        or tcb.state == Last_ack or tcb.state == Time_wait):
                    # DEVIATION (modern profile): RFC 9293 section
                    # 3.10.7.4, after the peer's FIN the text of a segment
                    # is ignored; tcp.c queues it (in every state), and its
                    # SACK block would then report what can never be
                    # delivered (RFC 2018 section 4 reports queued data).
                    # Only acknowledged, as Linux and FreeBSD do.
                    tcb.flags |= FORCE
                    return A_OUTPUT
                tcb.rcv_lastoo = seg.seq
                if tcb.sack:
                    self.oohistpush(tcb, seg.seq)
                    if not tcb.dsack:
                        self.dsackqueued(tcb, seg.seq, length)
                if self.addreseq(tcb, &seg, dp, length) < 0:
                    if self.f.log.mask & Logtcp:
                        self.f.log.log(Logtcp, "reseq %s.%d -> %s.%d\n" % (
                            fmtip(s.remoteaddr), s.rport, fmtip(s.localaddr), s.lport))
                tcb.flags |= FORCE     # force duplicate ack; RFC 5681 section 3.2
                return A_OUTPUT

        if tcb.nreseq > 0:
            tcb.flags |= FORCE         # filled hole in sequence space; RFC 5681 section 3.2

        # keep looping till we've processed this packet plus any
        # adjacent packets in the resequence queue
        while True:
            if seg.flags & RST:
                if tcb.state == Established:
                    self.stats_[EstabResets] += 1
                    if tcb.rcv_nxt != seg.seq:
                        if self.f.log.mask & Logtcp:
                            self.f.log.log(Logtcp, "out of order RST rcvd: %s.%d -> %s.%d, rcv.nxt %x seq %x\n" % (
                                fmtip(s.remoteaddr), s.rport, fmtip(s.localaddr), s.lport,
                                tcb.rcv_nxt, seg.seq))
                self.localclose(s, errors.Econrefused)
                return A_RAISE

            if (seg.flags & ACK) == 0:
                return A_RAISE

            # DEVIATION: RFC 9293 section 3.10.7.4 (fifth check): an ACK of
            # something not yet sent is answered with an ACK and dropped;
            # tcp.c's update() took it, moving snd.una past snd.nxt.
            if tcb.state != Syn_received and seq_gt(seg.ack, tcb.snd_nxt):
                if self.f.log.mask & Logtcp:
                    self.f.log.log(Logtcp, "tcp: ack %d beyond snd.nxt %d from %s!%d\n" % (
                        seg.ack, tcb.snd_nxt, fmtip(s.remoteaddr), s.rport))
                tcb.flags |= FORCE
                return A_OUTPUT

            if tcb.state == Syn_received:
                if not seq_within(seg.ack, tcb.snd_una + 1, tcb.snd_nxt):
                    return self.reset2(s, &seg, length, source, dest, version, "bad seq in Syn_received")
                self.update(s, &seg)
                self.tcpsetstate(s, Established)
                self.update(s, &seg)
            elif tcb.state == Established or tcb.state == Close_wait:
                self.update(s, &seg)
            elif tcb.state == Finwait1:
                self.update(s, &seg)
                if s.wq.len + tcb.flgcnt == 0:
                    self.tcphalt(tcb.rtt_timer)
                    self.tcphalt(tcb.acktimer)
                    self.tcpsetkacounter(tcb)
                    tcb.time = self.f.now
                    self.tcpsetstate(s, Finwait2)
                    tcb.katimer.start = MSL2 * (1000 // MSPTICK)
                    self.tcpgo(tcb.katimer)
            elif tcb.state == Finwait2:
                self.update(s, &seg)
            elif tcb.state == Closing:
                self.update(s, &seg)
                if s.wq.len + tcb.flgcnt == 0:
                    self.tcphalt(tcb.rtt_timer)
                    self.tcphalt(tcb.acktimer)
                    self.tcphalt(tcb.katimer)
                    self.tcpsetstate(s, Time_wait)
                    tcb.timer.start = MSL2 * (1000 // MSPTICK)
                    self.tcpgo(tcb.timer)
            elif tcb.state == Last_ack or tcb.state == Time_wait:
                if tcb.state == Last_ack:
                    self.update(s, &seg)
                    if s.wq.len + tcb.flgcnt == 0:
                        self.localclose(s, None)
                        return A_RAISE
                # (Last_ack falls through into Time_wait)
                if seg.flags & FIN:
                    tcb.flags |= FORCE
                if tcb.timer.state != TcptimerON:
                    self.tcpgo(tcb.timer)

            skip = 0
            if (seg.flags & URG) and seg.urg:
                if seq_gt(seg.urg + seg.seq, tcb.rcv_urg):
                    tcb.rcv_urg = seg.urg + seg.seq
                    # pullblock(&bp, seg.urg): urgent bytes are dropped
                    # ("Out-of-band data is ignored")
                    skip = seg.urg if seg.urg < length else length
            elif seq_gt(tcb.rcv_nxt, tcb.rcv_urg):
                tcb.rcv_urg = tcb.rcv_nxt

            if length != 0:
                if (tcb.state == Syn_received or tcb.state == Established
                        or tcb.state == Finwait1):
                    # If we still have some data place on receive queue
                    if length > skip:
                        s.rq.qpass(dp + skip, length - skip)
                    tcb.rcv_nxt += length
                    # turn on the acktimer if there's something to ack
                    if tcb.acktimer.state != TcptimerON:
                        self.tcpgo(tcb.acktimer)
                elif tcb.state == Finwait2:
                    return self.reset2(s, &seg, length, source, dest, version, "send to Finwait2")
                # default: Ignore segment text

            if seg.flags & FIN:
                tcb.flags |= FORCE
                if tcb.state == Syn_received or tcb.state == Established:
                    tcb.rcv_nxt += 1
                    self.tcpsetstate(s, Close_wait)
                elif tcb.state == Finwait1:
                    tcb.rcv_nxt += 1
                    if s.wq.len + tcb.flgcnt == 0:
                        self.tcphalt(tcb.rtt_timer)
                        self.tcphalt(tcb.acktimer)
                        self.tcphalt(tcb.katimer)
                        self.tcpsetstate(s, Time_wait)
                        tcb.timer.start = MSL2 * (1000 // MSPTICK)
                        self.tcpgo(tcb.timer)
                    else:
                        self.tcpsetstate(s, Closing)
                elif tcb.state == Finwait2:
                    tcb.rcv_nxt += 1
                    self.tcphalt(tcb.rtt_timer)
                    self.tcphalt(tcb.acktimer)
                    self.tcphalt(tcb.katimer)
                    self.tcpsetstate(s, Time_wait)
                    tcb.timer.start = MSL2 * (1000 // MSPTICK)
                    self.tcpgo(tcb.timer)
                elif tcb.state == Time_wait:
                    self.tcpgo(tcb.timer)
                # Close_wait, Closing, Last_ack: nothing

            # get next adjacent segment from the resequence queue.
            # dump/trim any overlapping segments
            while True:
                if tcb.reseq is None:
                    return A_OUTPUT
                if not seq_ge(tcb.rcv_nxt, tcb.reseq.seg.seq):
                    return A_OUTPUT
                hold = getreseq(tcb, &seg, &length)
                dp = <const unsigned char*>PyBytes_AS_STRING(hold)
                self.tcprcvwin(s)
                if self.tcptrim(tcb, &seg, &dp, &length) == 0:
                    tcb.flags |= FORCE
                    break
                if (tcb.sack and not tcb.dsack and length > 0
                        and seq_le(seg.seq + <unsigned int>length, tcb.rcv_nxt)):
                    # beyond tcp.c (modern): a queued segment the one just
                    # taken covered was received twice: RFC 2883 D-SACK
                    tcb.dsack = 1
                    tcb.dsack_l = seg.seq
                    tcb.dsack_r = seg.seq + <unsigned int>length

    cdef int reset2(self, Conv s, Tcp *seg, int length, const unsigned char *source,
                    const unsigned char *dest, int version, str reason) except -1:
        """tcpiput's reset2: answer with a reset, then raise."""
        self.sndrst(source, dest, length, seg, version, reason, s)
        return A_RAISE

    cdef void tcpoutput(self, Conv s):
        cdef Tcp seg
        cdef unsigned int msgs
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        cdef int sndcnt
        cdef unsigned int ssize, dsize, sent, maxseg, nseg
        cdef Py_ssize_t avail
        cdef int version = s.ipversion
        cdef unsigned int cw, sackgap, sackedbelow
        cdef int nsack = 0, sackolen = 0, i

        # force ack every 2*mss
        if (tcb.flags & FORCE) == 0:
            if tcb.rcv_nxt - tcb.rcv_ackptr >= 2 * <unsigned int>tcb.mss:
                self.stats_[Delayack] += 1
                tcb.flags |= FORCE

        # force ack if window opening: disabled in tcp.c (if(0)); Wopenack
        # stays 0

        for msgs in range(100):
            if tcb.state == Listen or tcb.state == Closed or tcb.state == Finwait2:
                return

            # Don't send anything else until our SYN has been acked
            if tcb.snd_ptr != tcb.iss and (tcb.flags & SYNACK) == 0:
                break

            # force an ack when a window has opened up
            self.tcprcvwin(s)
            if tcb.rcv_blocked and tcb.rcv_wnd > 0:
                tcb.rcv_blocked = 0
                tcb.flags |= FORCE

            sndcnt = <int>s.wq.len + tcb.flgcnt
            # beyond tcp.c: going back after a timeout, skip what the
            # scoreboard says arrived, and stop short of the next SACKed
            # range (RFC 6675 section 5.1 keeps SACK information useful
            # after an RTO)
            sackgap = 0xFFFFFFFF
            sackedbelow = 0
            if tcb.nsb > 0 and not tcb.sacksending and seq_lt(tcb.snd_ptr, tcb.snd_nxt):
                for i in range(tcb.nsb):
                    if seq_le(tcb.sb_r[i], tcb.snd_ptr):
                        sackedbelow += tcb.sb_r[i] - tcb.sb_l[i]
                        continue
                    if seq_le(tcb.sb_l[i], tcb.snd_ptr):
                        tcb.snd_ptr = tcb.sb_r[i]
                        sackedbelow += tcb.sb_r[i] - tcb.sb_l[i]
                        continue
                    sackgap = tcb.sb_l[i] - tcb.snd_ptr
                    break
                if seq_gt(tcb.snd_ptr, tcb.snd_nxt):
                    tcb.snd_ptr = tcb.snd_nxt
            sent = tcb.snd_ptr - tcb.snd_una
            ssize = <unsigned int>sndcnt
            # beyond tcp.c: with segmentation offload on the route one
            # datagram carries several segments' worth (a multiple of mss)
            # and the medium cuts it; on the wire the segments are mss as
            # ever
            maxseg = tcb.mss
            if tcb.gsolen > 0 and (tcb.flags & SYNACK):
                maxseg = (tcb.gsolen - (TCP4_PKT + TCP4_HDRSIZE if version == V4
                                        else TCP6_PKT + TCP6_HDRSIZE)
                          - (TSOPTALIGNED if tcb.ts else 0)) // tcb.mss * tcb.mss
                if maxseg < tcb.mss:
                    maxseg = tcb.mss
            # beyond tcp.c: SACK blocks to send, and the room they take
            # from the segment's data (RFC 6691)
            if tcb.sack and (tcb.reseq is not None or tcb.dsack):
                nsack = self.sackblocks(tcb, seg.sack)
                if nsack > (3 if tcb.ts else 4):
                    nsack = 3 if tcb.ts else 4
                sackolen = 4 + 8 * nsack if nsack > 0 else 0
                if sackolen:
                    maxseg = tcb.mss - sackolen
            else:
                nsack = 0
                sackolen = 0
            # (what arrived, by the scoreboard, is not in flight)
            cw = tcb.cwind + sackedbelow
            if tcb.sackrecovery and not tcb.sacksending:
                # beyond tcp.c: in SACK recovery only sacksend sends data
                cw = sent
            if tcb.snd_wnd == 0:
                # zero window probe
                if sent > 0 and not (tcb.flags & FORCE):
                    break       # already probing, rto re-probes
                if ssize < sent:
                    ssize = 0
                else:
                    ssize -= sent
                    if ssize > 0:
                        ssize = 1
            else:
                # calculate usable segment size
                if ssize > cw:
                    ssize = cw
                if ssize > tcb.snd_wnd:
                    ssize = tcb.snd_wnd
                if ssize < sent:
                    ssize = 0
                else:
                    ssize -= sent
                    if ssize > maxseg:
                        ssize = maxseg
                    if ssize > sackgap:
                        ssize = sackgap

            dsize = ssize
            seg.urg = 0

            if not (tcb.flags & FORCE):
                if ssize == 0:
                    break
                if ssize < tcb.mss - <unsigned int>sackolen and tcb.snd_nxt == tcb.snd_ptr and sent > TCPREXMTTHRESH * tcb.mss:
                    break

            tcb.flags &= ~FORCE

            # By default we will generate an ack
            self.tcphalt(tcb.acktimer)
            seg.source = s.lport
            seg.dest = s.rport
            seg.flags = ACK
            seg.mss = 0
            seg.ws = 0
            seg.hasws = 1          # a SYN-ACK from here: tcp.c's rule
            seg.update = 0
            # beyond tcp.c: options of the modern profile
            seg.optout = 0
            seg.sackok = 0
            seg.hasts = 0
            seg.nsack = nsack
            if tcb.ts or nsack:
                seg.optout = 1
                seg.hasts = tcb.ts
                seg.tsval = self.f.now + tcb.tsoff
                seg.tsecr = tcb.ts_recent
                if nsack:
                    self.xstats_[SackBlocksOut] += nsack
                    if tcb.dsack:
                        self.xstats_[DsackOut] += 1
                        tcb.dsack = 0
            if tcb.state == Syn_sent:
                seg.flags = 0
                if tcb.snd_ptr == tcb.iss:
                    seg.flags |= SYN
                    dsize -= 1
                    seg.mss = tcb.mss
                    seg.ws = tcb.scale
                    if tcb.profile == Profmodern and (tcb.sackok or tcb.tsok):
                        # beyond tcp.c: offer SACK and timestamps
                        seg.optout = 1
                        seg.sackok = tcb.sackok
                        seg.hasts = tcb.tsok
                        seg.tsval = self.f.now + tcb.tsoff
                        seg.tsecr = 0
            elif tcb.state == Syn_received:
                # don't send any data with a SYN/ACK packet because Linux
                # rejects the packet in its attempt to solve the SYN attack
                # problem
                if tcb.snd_ptr == tcb.iss:
                    seg.flags |= SYN
                    dsize = 0
                    ssize = 1
                    seg.mss = tcb.mss
                    seg.ws = tcb.scale
                    if tcb.profile == Profmodern:
                        # beyond tcp.c: the modern profile's SYN-ACK of a
                        # simultaneous open answers SACK-permitted (and
                        # timestamps) in kind, as limbo's does; optout was
                        # set above only for timestamps or SACK blocks.
                        # DEVIATION: RFC 7323 section 2.2, a window scale
                        # only if the peer's SYN carried one (procsyn left
                        # tcb.scale 0 if not; buildseg checks hasws)
                        seg.optout = 1
                        seg.sackok = tcb.sack
                        seg.hasws = tcb.scale != 0
            seg.seq = tcb.snd_ptr
            seg.ack = tcb.rcv_nxt
            seg.wnd = tcb.rcv_wnd

            # Pull out data to send (qcopy: what the queue holds past sent)
            avail = 0
            if dsize != 0:
                avail = <Py_ssize_t>s.wq.len - <Py_ssize_t>sent
                if avail < 0:
                    avail = 0
                if avail > <Py_ssize_t>dsize:
                    avail = dsize
                if avail != <Py_ssize_t>dsize:
                    seg.flags |= FIN
                    dsize -= 1
            if sent + dsize == <unsigned int>sndcnt and dsize:
                seg.flags |= PSH

            tcb.snd_ptr += ssize

            # beyond tcp.c: RACK's log of what went when
            if tcb.rack and ssize != 0 and not (seg.flags & SYN):
                self.xlog(tcb, seg.seq, tcb.snd_ptr, seq_lt(seg.seq, tcb.snd_nxt))

            # Pull up the send pointer so we can accept acks for this window
            if seq_gt(tcb.snd_ptr, tcb.snd_nxt):
                tcb.snd_nxt = tcb.snd_ptr

            # Build header, link data and compute cksum
            if version == V4:
                hbp = self.htontcp4(&seg, s, s.wq, sent, avail, NULL, tcb)
            else:
                hbp = self.htontcp6(&seg, s, s.wq, sent, avail, NULL, tcb)

            # Start the transmission timers if there is new data and we
            # expect acknowledges
            if ssize != 0:
                if tcb.timer.state != TcptimerON:
                    tcb.time = self.f.now
                    tcb.timeuna = tcb.snd_una
                    self.tcpgo(tcb.timer)
                # If round trip timer isn't running, start it.  measure the
                # longest packet only in case the transmission time
                # dominates RTT
                if tcb.snd_retransmit == 0 and tcb.rtt_timer.state != TcptimerON and ssize >= tcb.mss:
                    self.tcpgo(tcb.rtt_timer)
                    tcb.rttseq = tcb.snd_ptr
                if tcb.rack and not tcb.sackrecovery and not tcb.sacksending:
                    self.tlparm(s)

            # a super-packet counts as the segments it becomes
            nseg = 1
            if dsize > tcb.mss:
                nseg = (dsize + tcb.mss - 1) // tcb.mss
            self.stats_[OutSegs] += nseg
            if tcb.snd_retransmit:
                self.stats_[RetransSegsSent] += nseg
            tcb.rcv_ackptr = seg.ack
            tcb.rcv_wsnt = tcb.rcv_wptr

            # put off the next keep alive
            self.tcpgo(tcb.katimer)

            if nseg > 1:
                if self.f.ip.ipoputgso(version, hbp, s.ttl, s.tos, s, tcb.mss) < 0:
                    self.localclose(s, errors.Enoroute)
            elif self.f.ip.ipoput(version, hbp, s.ttl, s.tos, s) < 0:
                self.localclose(s, errors.Enoroute)

    cdef int tcpsendka(self, Conv s) except? -2:
        """The BSD convention (hack?) for keep alives: resend last byte acked."""
        cdef Tcp seg
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        cdef Py_ssize_t dlen = 0
        memset(&seg, 0, sizeof(seg))
        seg.urg = 0
        seg.source = s.lport
        seg.dest = s.rport
        seg.flags = ACK | PSH
        seg.mss = 0
        seg.ws = 0
        if self.tcpporthogdefense:
            seg.seq = tcb.snd_una - (1u << 30) - self.f.nrand(1 << 20)
        else:
            seg.seq = tcb.snd_una - 1
        seg.ack = tcb.rcv_nxt
        tcb.rcv_ackptr = seg.ack
        self.tcprcvwin(s)
        seg.wnd = tcb.rcv_wnd
        if tcb.state == Finwait2:
            seg.flags |= FIN
        else:
            dlen = 1        # one garbage byte in tcp.c; a zero here
        settsopt(tcb, &seg, self.f.now)
        if isv4(s.raddr):
            hbp = self.htontcp4(&seg, s, None, 0, dlen, zerobyte, tcb)
            return self.f.ip.ipoput(V4, hbp, s.ttl, s.tos, s)
        hbp = self.htontcp6(&seg, s, None, 0, dlen, zerobyte, tcb)
        return self.f.ip.ipoput(V6, hbp, s.ttl, s.tos, s)

    cdef int tcpchallengeack(self, Conv s) except? -2:
        """Beyond tcp.c: RFC 5961 section 4.2's challenge ACK
        <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, at most CHALLENGEMAX per second
        per conversation (section 7's throttle, kept per conversation so
        that one connection's count tells nothing of another's).  Built
        directly, as tcpsendka is: tcpoutput sends nothing in Finwait2 and
        would send queued data instead of the bare ACK."""
        cdef Tcp seg
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        if chackspent(&tcb.chacktime, &tcb.chackcnt, nowms(self.f)):
            return 0
        memset(&seg, 0, sizeof(seg))
        seg.source = s.lport
        seg.dest = s.rport
        seg.flags = ACK
        seg.seq = tcb.snd_nxt
        seg.ack = tcb.rcv_nxt
        self.tcprcvwin(s)
        seg.wnd = tcb.rcv_wnd
        tcb.rcv_ackptr = seg.ack
        settsopt(tcb, &seg, self.f.now)
        if tcb.profile == Profmodern:
            self.xstats_[ChallengeAcks] += 1
        # (not counted in OutSegs: tcp.c counts only tcpoutput's segments,
        # not tcpsendka's or sndsynack's)
        if isv4(s.raddr):
            hbp = self.htontcp4(&seg, s, None, 0, 0, NULL, tcb)
            return self.f.ip.ipoput(V4, hbp, s.ttl, s.tos, s)
        hbp = self.htontcp6(&seg, s, None, 0, 0, NULL, tcb)
        return self.f.ip.ipoput(V6, hbp, s.ttl, s.tos, s)

    cdef void tcpsetkacounter(self, Tcpctl tcb):
        """Set connection to time out after 12 minutes."""
        tcb.kacounter = (12 * 60 * 1000) // (tcb.katimer.start * MSPTICK) if tcb.katimer.start > 0 else 3
        if tcb.kacounter < 3:
            tcb.kacounter = 3

    cdef void tcpkeepalive(self, Conv s):
        """If we've timed out, close the connection; otherwise, send a
        keepalive and restart the timer."""
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        if tcb.state != Closed:
            tcb.kacounter -= 1
            if tcb.kacounter <= 0:
                self.localclose(s, errors.Etimedout)
            elif self.tcpsendka(s) < 0:
                self.localclose(s, errors.Enoroute)
            else:
                self.tcpgo(tcb.katimer)

    cdef int tcpstartka(self, Conv s, list f) except -1:
        """Start keepalive timer."""
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        cdef long x
        if tcb.state != Established:
            raise Net9Error(errors.Ekanotestab)
        if len(f) > 1:
            x = _atoi(f[1])
            if x >= MSPTICK:
                if x // MSPTICK > 0x7FFFFFFF:
                    x = 0x7FFFFFFF * <long>MSPTICK
                tcb.katimer.start = <int>(x // MSPTICK)
        self.tcpsetkacounter(tcb)
        self.tcpgo(tcb.katimer)
        return 0

    cdef int tcpsetchecksum(self, Conv s, list f) except -1:
        """Turn checksums on/off."""
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        if len(f) < 2:
            # DEVIATION: 9front dereferences the missing argument
            # (devip.md section 15 point 2)
            raise Net9Error(errors.Ebadarg)
        tcb.nochecksum = not _atoi(f[1])
        return 0

    cdef void tcprxmit(self, Conv s):
        """Retransmit (at most) one segment at snd.una.  Preserve cwind and
        snd.ptr."""
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        cdef unsigned int tcwind, tptr
        tcb.flags |= RETRAN | FORCE
        tptr = tcb.snd_ptr
        tcwind = tcb.cwind
        tcb.snd_ptr = tcb.snd_una
        tcb.cwind = tcb.mss
        tcb.snd_retransmit = 1
        self.tcpoutput(s)
        tcb.snd_retransmit = 0
        tcb.cwind = tcwind
        tcb.snd_ptr = tptr
        self.stats_[RetransSegs] += 1

    cdef void tcptimeout(self, Conv s):
        """Beyond tcp.c (modern, with SACK): F-RTO (RFC 5682) to tell a
        spurious timeout from a loss; update() takes it on."""
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        cdef int maxback
        if tcb.state == Time_wait:
            self.localclose(s, None)
            return
        if tcb.state == Closed:
            return
        tcb.backoff += 1
        if tcb.profile == Profmodern and (tcb.state == Syn_sent or tcb.state == Syn_received):
            tcb.flags |= SYNRETRAN      # (for tcpsynackrtt and tcpsettimer)
        if tcb.state == Syn_sent:
            maxback = MAXBACKMS // 2
        else:
            maxback = MAXBACKMS
        tcb.backedoff += tcb.timer.start * MSPTICK
        if tcb.backedoff >= maxback:
            self.localclose(s, errors.Etimedout)
            return
        if self.f.log.mask & Logtcprxmt:
            self.f.log.log(Logtcprxmt, "rxm %d/%d %dms %d rto %d %d %s\n" % (
                tcb.srtt, tcb.mdev, <int>(self.f.now - tcb.time),
                tcb.snd_una - tcb.timeuna, tcb.snd_rto, tcb.snd_ptr, tcpstates[tcb.state]))
        self.tcpsettimer(tcb)
        if (tcb.sack and tcb.snd_rto == 0 and not tcb.sackrecovery and not tcb.snd_recovery
                and (tcb.state == Established or tcb.state == Close_wait)):
            # beyond tcp.c: F-RTO step 1 (RFC 5682 section 2.1)
            tcb.frto = 1
            tcb.frto_cwnd = tcb.cwind
            tcb.frto_ssthresh = tcb.ssthresh
            tcb.frto_recover = tcb.snd_nxt
        else:
            tcb.frto = 0
        if tcb.snd_rto == 0:
            self.tcpcongestion(tcb)
        if tcb.rack:
            self.finehalt(s)
            tcb.tlpmode = 0
            tcb.tlpout = 0
        if tcb.sack:
            # beyond tcp.c: after a timeout the SACKed bits are forgotten
            # (RFC 2018 section 8) and SACK recovery ends
            if tcb.sackrecovery:
                tcb.sackrecovery = 0
                tcb.snd_dupacks = 0
                self.stats_[RecoveryRTO] += 1
            tcb.snd_rxt = tcb.snd_nxt
            # the SACKed ranges are skipped while going back after this
            # timeout; a second one in a row forgets them (the receiver
            # may have reneged: RFC 2018 section 8)
            if tcb.backoff > 1:
                tcb.nsb = 0
            tcb.highrxt = tcb.snd_una
        self.tcprxmit(s)
        tcb.snd_ptr = tcb.snd_una
        tcb.cwind = tcb.mss
        tcb.snd_rto = 1
        if tcb.rack:
            # (the probe timeout tcprxmit's output armed: none in RTO
            # recovery, tlparm)
            self.finehalt(s)
            tcb.tlpmode = 0
        self.stats_[RetransTimeouts] += 1

        if tcb.snd_recovery:
            tcb.snd_dupacks = 0         # reno rto
            tcb.snd_recovery = 0
            self.stats_[RecoveryRTO] += 1
            tcb.snd_rxt = tcb.snd_nxt
            if self.f.log.mask & Logtcpwin:
                self.f.log.log(Logtcpwin, "rto recovery rxt @%d\n" % tcb.snd_nxt)
        tcb.abcbytes = 0

    cdef void procsyn(self, Conv s, Tcp *seg):
        """Set up state for a received SYN (or SYN ACK) packet."""
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        tcb.flags |= FORCE
        tcb.rcv_nxt = seg.seq + 1
        tcb.rcv_wptr = tcb.rcv_nxt
        tcb.rcv_wsnt = 0
        tcb.rcv_urg = tcb.rcv_nxt
        tcb.irs = seg.seq
        # our sending max segment size cannot be bigger than what he asked for
        if seg.mss != 0 and seg.mss < tcb.mss:
            tcb.mss = seg.mss
            self.stats_[Mss] = tcb.mss
        # if the server does not support ws option, disable window scaling
        if seg.ws == 0:
            tcb.scale = 0
            tcb.snd_scale = 0
        tcb.snd_wnd = seg.wnd
        initialwindow(tcb)
        # beyond tcp.c: SACK and timestamps when both sides offered them
        if tcb.profile == Profmodern:
            tcb.max_snd_wnd = tcb.snd_wnd
            tcb.sack = tcb.sackok and seg.sackok
            tcb.rack = tcb.sack and tcb.rackok
            if tcb.tsok and seg.hasts and not tcb.ts:
                tcb.ts = 1
                tcb.ts_recent = seg.tsval
                tcb.mss -= TSOPTALIGNED

    cdef int dumpreseq(self, Tcpctl tcb):
        tcb.reseq = None
        tcb.nreseq = 0
        tcb.reseqlen = 0
        return -1

    cdef void logreseq(self, Reseq r, unsigned int n):
        while r is not None:
            t = None
            if r.next is None and r.seg.seq != n:
                t = "hole/end"
            elif r.next is None:
                t = "end"
            elif r.seg.seq != n:
                t = "hole"
            if t is not None:
                self.f.log.log(Logtcp, "%s %d-%d (%d) %#x\n" % (
                    t, n, r.seg.seq, <int>(r.seg.seq - n), r.seg.flags))
            n = r.seg.seq + r.seg.len
            r = r.next

    cdef int addreseq(self, Tcpctl tcb, Tcp *seg, const unsigned char *dp, unsigned short length):
        cdef Reseq rp = Reseq(), x, prev
        cdef int qmax
        rp.seg = seg[0]
        rp.data = PyBytes_FromStringAndSize(<const char*>dp, length)
        rp.length = length
        tcb.reseqlen += length
        tcb.nreseq += 1

        # Place on reassembly list sorting by starting seq number
        prev = None
        x = tcb.reseq
        while x is not None and not seq_lt(seg.seq, x.seg.seq):
            prev = x
            x = x.next
        rp.next = x
        if prev is None:
            tcb.reseq = rp
        else:
            prev.next = rp
        self.stats_[Resequenced] += 1
        if rp.next is not None:
            self.stats_[OutOfOrder] += 1

        qmax = tcb.window
        if tcb.reseqlen > qmax:
            if self.f.log.mask & Logtcp:
                self.f.log.log(Logtcp, "tcp: reseq: queue > window: %d > %d; %d packets\n" % (
                    tcb.reseqlen, qmax, tcb.nreseq))
                self.logreseq(tcb.reseq, tcb.rcv_nxt)
            self.stats_[ReseqBytelim] += 1
            return self.dumpreseq(tcb)
        qmax = tcb.window // tcb.mss        # ~190 for qscale==2, 390 for qscale=3
        if tcb.nreseq > qmax:
            if self.f.log.mask & Logtcp:
                self.f.log.log(Logtcp, "resequence queue > packets: %d %d; %d bytes\n" % (
                    tcb.nreseq, qmax, tcb.reseqlen))
                self.logreseq(tcb.reseq, tcb.rcv_nxt)
            self.stats_[ReseqPktlim] += 1
            return self.dumpreseq(tcb)
        return 0

    cdef int tcptrim(self, Tcpctl tcb, Tcp *seg, const unsigned char **dp, int *length):
        cdef int len_
        cdef int accept = 0
        cdef int dupcnt, excess
        len_ = length[0]
        if seg.flags & SYN:
            len_ += 1
        if seg.flags & FIN:
            len_ += 1

        if tcb.rcv_wnd == 0:
            if len_ == 0 and seg.seq == tcb.rcv_nxt:
                return 0
        else:
            # Some part of the segment should be in the window
            if inwindow(tcb, seg.seq):
                accept += 1
            elif len_ != 0:
                if (inwindow(tcb, seg.seq + len_ - 1)
                        or seq_within(tcb.rcv_nxt, seg.seq, seg.seq + len_ - 1)):
                    accept += 1
        if not accept:
            return -1
        dupcnt = <int>(tcb.rcv_nxt - seg.seq)
        if dupcnt > 0:
            tcb.rerecv += dupcnt
            if (tcb.sack and not tcb.dsack and length[0] > 0
                    and seq_lt(seg.seq, seg.seq + <unsigned int>length[0])):
                # beyond tcp.c: RFC 2883 D-SACK of the duplicate part (the
                # first one the segment brought: a queued segment it
                # overlaps comes here after it), acknowledged at once
                tcb.flags |= FORCE
                tcb.dsack = 1
                tcb.dsack_l = seg.seq + (1 if seg.flags & SYN else 0)
                tcb.dsack_r = tcb.rcv_nxt
                if seq_gt(tcb.dsack_r, seg.seq + <unsigned int>length[0]):
                    tcb.dsack_r = seg.seq + <unsigned int>length[0]
                if not seq_lt(tcb.dsack_l, tcb.dsack_r):
                    tcb.dsack = 0
            if seg.flags & SYN:
                seg.flags &= ~SYN
                seg.seq += 1
                if seg.urg > 1:
                    seg.urg -= 1
                else:
                    seg.flags &= ~URG
                dupcnt -= 1
            if dupcnt > 0:
                # pullblock(bp, dupcnt)
                if dupcnt > length[0]:
                    dp[0] += length[0]
                else:
                    dp[0] += dupcnt
                seg.seq += dupcnt
                length[0] -= dupcnt
                if length[0] < 0:
                    length[0] = 0
                if seg.urg > dupcnt:
                    seg.urg -= dupcnt
                else:
                    seg.flags &= ~URG
                    seg.urg = 0
        excess = <int>(seg.seq + <unsigned int>length[0] - (tcb.rcv_nxt + tcb.rcv_wnd))
        if excess > 0:
            tcb.rerecv += excess
            length[0] -= excess
            if length[0] < 0:
                length[0] = 0
            seg.flags &= ~FIN
        return 0

    cpdef advise(self, object pkt, str msg):
        """tcpadvise: an ICMP error about a datagram we sent (pkt: its IP
        header and at least the first 8 bytes of TCP)."""
        # Look for a connection (source/dest reversed; this is the
        # original packet we sent)
        cdef Conv s = self.advconv(pkt)
        if s is None:
            return
        if s.ignoreadvice or s.state == Idle:
            return
        if (<Tcpctl>s.ptcl).state == Syn_sent:
            self.localclose(s, msg)

    def tcpforward(self, pkt, route):
        """NAT translation (tcp.c tcpforward, iph->trans): not ported yet;
        the IP layer does not forward, so nothing calls this."""
        raise NotImplementedError("tcpforward: NAT is not implemented")

    cpdef int pctl(self, Conv c, list f) except -1:
        """tcpctl."""
        cdef int n = len(f)
        if n == 1 and f[0] == "close":
            self.tcpclose(c)
            return 0
        if n == 1 and f[0] == "hangup":
            return self.tcphangup(c)
        if n >= 1 and f[0] == "keepalive":
            return self.tcpstartka(c, f)
        if n >= 1 and f[0] == "checksum":
            return self.tcpsetchecksum(c, f)
        if n >= 1 and f[0] == "tcpporthogdefense":
            if n < 2:
                # DEVIATION: 9front dereferences the missing argument
                raise Net9Error(errors.Eporthog)
            self.tcpporthogdefensectl(f[1])
            return 0
        if n >= 1 and f[0] in ("sack", "timestamps", "rtomin", "congestion", "rack", "profile"):
            return self.tcpoptctl(c, f)
        raise Net9Error(errors.Eunknownctl)

    cdef int tcpoptctl(self, Conv s, list f) except -1:
        """Beyond tcp.c: the switches of one conversation, in the manner of
        FreeBSD's tcp(4) socket options, before connect or announce:
        "sack on|off", "timestamps on|off", "rtomin MS", "congestion
        newreno", "profile 9front|modern".  Errors in devip's style:
        "unknown value for sack"."""
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        cdef str what = f[0]
        cdef str v = f[1] if len(f) >= 2 else ""
        cdef long x
        if len(f) != 2:
            raise Net9Error("unknown value for " + what)
        if tcb.state != Closed:
            raise Net9Error(errors.Econinuse)
        if what == "profile":
            if v not in profiles:
                raise Net9Error("unknown value for profile")
            self.setprofile(tcb, profiles.index(v))
            return 0
        if what == "sack" or what == "timestamps":
            if v != "on" and v != "off":
                raise Net9Error("unknown value for " + what)
            if v == "on" and tcb.profile != Profmodern:
                raise Net9Error(what + " needs the modern profile")
            if what == "sack":
                tcb.sackok = v == "on"
            else:
                tcb.tsok = v == "on"
            return 0
        if what == "rtomin":
            if not v.isdigit():
                raise Net9Error("unknown value for rtomin")
            x = int(v) if len(v) < 9 else 100000000
            if x < MSPTICK or x > 60000:
                raise Net9Error("unknown value for rtomin")
            if tcb.profile != Profmodern and x != TCP9_RTOMIN:
                raise Net9Error("rtomin needs the modern profile")
            tcb.rtomin = <int>x
            return 0
        if what == "congestion":
            if v == "newreno":
                tcb.cc = CCnewreno
                return 0
            if v == "cubic":
                if tcb.profile != Profmodern:
                    raise Net9Error("congestion needs the modern profile")
                tcb.cc = CCcubic
                return 0
            raise Net9Error("unknown value for congestion")
        # rack
        if v != "on" and v != "off":
            raise Net9Error("unknown value for rack")
        if v == "on" and tcb.profile != Profmodern:
            raise Net9Error("rack needs the modern profile")
        tcb.rackok = v == "on"
        return 0

    def tcpporthogdefensectl(self, str val):
        if val == "on":
            self.tcpporthogdefense = 1
        elif val == "off":
            self.tcpporthogdefense = 0
        else:
            raise Net9Error(errors.Eporthog)

    cpdef str pstats(self):
        """tcpstats.  Beyond tcp.c: in the modern profile the counters of
        the additions follow tcp.c's 28."""
        cdef int i
        out = "".join(["%s: %d\n" % (statnames[i], self.stats_[i]) for i in range(Nstats)])
        if self.profile == Profmodern:
            out += "".join(["%s: %d\n" % (xstatnames[i], self.xstats_[i]) for i in range(Nxstats)])
        return out

    def xstat(self, str name):
        """One counter of the modern profile by name."""
        return self.xstats_[xstatnames.index(name)]

    property stats_list:
        """The 28 counters in order, as a list of ints."""
        def __get__(self):
            return [self.stats_[i] for i in range(Nstats)]

    def stat(self, str name):
        """One counter by its tcp.c name."""
        return self.stats_[statnames.index(name)]

    cpdef int pgc(self):
        """tcpgc: garbage collect stale conversations when clone runs out:
        Syn_received for more than 5 seconds, Finwait2 for more than 5
        minutes.

        DEVIATION: first, the oldest conversation in Time_wait that no one
        holds is closed and its slot reused (Linux, out of time-wait
        buckets, lets a closing socket skip TIME-WAIT).  devip has 4096
        conversations and Time_wait lasts MSL2 = 10 s, so past about 410
        connections a second that this end closes first every slot was in
        Time_wait: clone failed, and calls in limbo were answered with a
        reset.  The cost is TIME-WAIT's protection (RFC 9293's MUST-13,
        RFC 1122 section 4.2.2.13) of that one 4-tuple for the rest of its
        2*MSL: a new connection with the same addresses and ports could be
        given an old duplicate segment."""
        cdef int n = 0
        cdef Conv c
        cdef Tcpctl tcb
        c = self.twhead
        while c is not None:
            tcb = <Tcpctl>c.ptcl
            if c.inuse == 0:
                if self.f.log.mask & Logtcp:
                    self.f.log.log(Logtcp, "tcp: table full: reuse %d in Time_wait (%s!%d)\n" % (
                        c.x, fmtip(c.remoteaddr), c.rport))
                self.twreused += 1
                self.localclose(c, None)
                return 1
            c = tcb.twnext
        for c in self.conv:
            tcb = <Tcpctl>c.ptcl
            if tcb.state == Syn_received:
                if self.f.now - tcb.time > 5000:
                    self.localclose(c, errors.Etimedout)
                    n += 1
            elif tcb.state == Finwait2:
                if self.f.now - tcb.time > 5 * 60 * 1000:
                    self.localclose(c, errors.Etimedout)
                    n += 1
        return n

    def timewaitlist(self):
        """The numbers of the conversations in Time_wait, oldest first."""
        out = []
        c = self.twhead
        while c is not None:
            out.append(c.x)
            c = (<Tcpctl>c.ptcl).twnext
        return out

    cdef void tcpsettimer(self, Tcpctl tcb):
        cdef long long x, v
        if tcb.profile == Profmodern:
            if tcb.srtt == 0:
                # no sample yet: RFC 6298 section 2.1's 1 s, or 3 s once
                # the handshake is over after a resent SYN or SYN-ACK
                # (section 5.7), backed off by doubling
                x = MODERN_IRTO
                if (tcb.flags & SYNRETRAN) and tcb.snd_una != tcb.iss:
                    x = MODERN_SYNRTO
                x = backoff(tcb.backoff) * (x // MSPTICK)
                if x > 64000 // MSPTICK:
                    x = 64000 // MSPTICK
                tcb.timer.start = <int>x
                return
            # beyond tcp.c: RFC 6298 section 2, RTO = SRTT + max(G, 4 *
            # RTTVAR) (mdev holds 4 * RTTVAR), at least rtomin, backed off
            # by doubling, at most 64 s as in tcp.c
            v = tcb.mdev
            if v < MSPTICK:
                v = MSPTICK
            x = backoff(tcb.backoff) * (((tcb.srtt >> LOGAGAIN) + v + MSPTICK - 1) // MSPTICK)
            if x < (tcb.rtomin + MSPTICK - 1) // MSPTICK:
                x = (tcb.rtomin + MSPTICK - 1) // MSPTICK
            if x > 64000 // MSPTICK:
                x = 64000 // MSPTICK
            tcb.timer.start = <int>x
            return
        # round trip dependency
        # DEVIATION: computed in 64 bits with the shift bounded; tcp.c's
        # int overflows once backoff passes ~20 (possible while a zero
        # window keeps resetting backedoff), turning a 64 s timer into 0.3 s
        x = backoff(tcb.backoff) * (
            tcb.mdev + (tcb.srtt >> LOGAGAIN) + MSPTICK) // MSPTICK
        # bounded twixt 0.3 and 64 seconds
        if x < 300 // MSPTICK:
            x = 300 // MSPTICK
        elif x > 64000 // MSPTICK:
            x = 64000 // MSPTICK
        tcb.timer.start = <int>x

    cdef void tcpsetscale(self, Conv s, Tcpctl tcb, unsigned short rcvscale, unsigned short sndscale):
        # guess at reasonable queue sizes.  the offer (rcvscale) needs to be
        # respected, but we still control our own buffer commitment by
        # keeping a separate qscale.
        tcb.rcv_scale = rcvscale & 0xff
        tcb.snd_scale = sndscale & 0xff
        tcb.qscale = rcvscale & 0xff
        if rcvscale > Maxqscale:
            tcb.qscale = Maxqscale
        if rcvscale != tcb.rcv_scale:
            if self.f.log.mask & Logtcp:
                self.f.log.log(Logtcp, "tcpsetscale: window %d qlen %d >> window %d lport %d\n" % (
                    tcb.window, s.rq.len, QMAX << tcb.qscale, s.lport))
        tcb.window = QMAX << tcb.qscale
        tcb.ssthresh = tcb.window
        # it's important to set wq large enough to cover the full
        # bandwidth-delay product.
        s.rq.setlimit(QMAX << tcb.qscale)
        s.wq.setlimit(QMAX << tcb.qscale)
        self.tcprcvwin(s)

    # ---------------------------------------------------------------
    # beyond tcp.c: the modern profile's timestamps and SACK

    cdef int tcppaws(self, Conv s, Tcp *seg, int length) except -1:
        """RFC 7323 section 5.3: a segment whose TSval is older than
        TS.Recent is a duplicate from an earlier wrap of the sequence
        space: drop it (the caller ACKs).  Resets are exempt.  Returns 1
        when dropped."""
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        if not seg.hasts or (seg.flags & RST):
            return 0
        if seq_lt(seg.tsval, tcb.ts_recent):
            self.xstats_[PawsDrops] += 1
            if self.f.log.mask & Logtcp:
                self.f.log.log(Logtcp, "tcp: paws: tsval %u < ts.recent %u from %s!%d\n" % (
                    seg.tsval, tcb.ts_recent, fmtip(s.remoteaddr), s.rport))
            return 1
        return 0

    cdef void tcprttsample(self, Tcpctl tcb, int rtt):
        """One RTT sample in ms (RFC 6298 section 2.3 with tcp.c's gains
        and fixed point: srtt is 8 * SRTT, mdev 4 * RTTVAR)."""
        self.xstats_[TsRttSamples] += 1
        if rtt == 0:
            rtt = 1
        if <unsigned int>rtt < tcb.minrtt:
            tcb.minrtt = rtt
        if tcb.hs_on:
            tcb.hs_cnt += 1
            if <unsigned int>rtt < tcb.hs_cur:
                tcb.hs_cur = rtt
        rttsmooth(tcb, rtt, 1)
        tcb.backoff = 0
        tcb.backedoff = 0
        self.tcpsettimer(tcb)

    cdef void sackupdate(self, Tcpctl tcb, Tcp *seg):
        """The scoreboard (RFC 6675 section 3): forget what seg's ACK
        covers, add its SACK blocks (sorted, merged).  A first block below
        the ACK or inside the second is a D-SACK (RFC 2883 section 4) and
        only counted."""
        cdef unsigned int ack = seg.ack
        cdef unsigned int l, r
        cdef int i, j, k, m
        if (seg.flags & ACK) == 0:
            return
        if seq_gt(ack, tcb.snd_una) and seq_le(ack, tcb.snd_nxt):
            j = 0
            for i in range(tcb.nsb):
                if seq_le(tcb.sb_r[i], ack):
                    continue
                tcb.sb_l[j] = tcb.sb_l[i] if seq_gt(tcb.sb_l[i], ack) else ack
                tcb.sb_r[j] = tcb.sb_r[i]
                j += 1
            tcb.nsb = j
        else:
            ack = tcb.snd_una
        for i in range(seg.nsack):
            l = seg.sack[2 * i]
            r = seg.sack[2 * i + 1]
            if i == 0 and (seq_le(r, seg.ack) or (seg.nsack > 1 and seq_ge(l, seg.sack[2])
                                                   and seq_le(r, seg.sack[3]))):
                self.xstats_[DsackIn] += 1
                continue
            if not seq_lt(l, r) or seq_gt(r, tcb.snd_nxt) or seq_le(r, ack):
                continue
            if seq_lt(l, ack):
                l = ack
            self.xstats_[SackBlocksIn] += 1
            # insert [l, r) merging with neighbours
            k = 0
            while k < tcb.nsb and seq_lt(tcb.sb_r[k], l):
                k += 1
            # ranges k.. that touch [l, r) merge into it
            j = k
            while j < tcb.nsb and seq_le(tcb.sb_l[j], r):
                if seq_lt(tcb.sb_l[j], l):
                    l = tcb.sb_l[j]
                if seq_gt(tcb.sb_r[j], r):
                    r = tcb.sb_r[j]
                j += 1
            if j > k:
                # replace ranges k..j-1 with one
                tcb.sb_l[k] = l
                tcb.sb_r[k] = r
                for m in range(j, tcb.nsb):
                    tcb.sb_l[k + 1 + m - j] = tcb.sb_l[m]
                    tcb.sb_r[k + 1 + m - j] = tcb.sb_r[m]
                tcb.nsb -= j - k - 1
            else:
                if tcb.nsb == NSCORE:
                    if k == NSCORE:
                        continue       # full: the highest ranges are lost
                    tcb.nsb -= 1
                m = tcb.nsb
                while m > k:
                    tcb.sb_l[m] = tcb.sb_l[m - 1]
                    tcb.sb_r[m] = tcb.sb_r[m - 1]
                    m -= 1
                tcb.sb_l[k] = l
                tcb.sb_r[k] = r
                tcb.nsb += 1

    cdef bint sacklost(self, Tcpctl tcb, unsigned int seq):
        """RFC 6675 IsLost(seq): DupThresh discontiguous SACKed ranges
        above seq, or more than (DupThresh - 1) * SMSS bytes SACKed above
        it."""
        cdef int i, n = 0
        cdef unsigned int b = 0
        for i in range(tcb.nsb - 1, -1, -1):
            if seq_le(tcb.sb_l[i], seq):
                break
            n += 1
            b += tcb.sb_r[i] - tcb.sb_l[i]
        return n >= TCPREXMTTHRESH or b > (TCPREXMTTHRESH - 1) * <unsigned int>tcb.mss

    cdef unsigned int sackpipe(self, Tcpctl tcb):
        """RFC 6675 SetPipe: the octets thought in flight.  A hole below
        the highest SACKed octet counts unless IsLost, and again for what
        of it was retransmitted (below HighRxt); above the highest SACKed
        octet everything counts."""
        cdef unsigned int pipe = 0, a, b, hr
        cdef unsigned int highrxt = tcb.highrxt if tcb.sackrecovery else tcb.snd_una
        cdef int i
        if tcb.nsb == 0:
            return tcb.snd_nxt - tcb.snd_una
        a = tcb.snd_una
        for i in range(tcb.nsb):
            b = tcb.sb_l[i]
            if seq_lt(a, b):
                if not self.sacklost(tcb, a):
                    pipe += b - a
                if seq_gt(highrxt, a):
                    hr = highrxt if seq_lt(highrxt, b) else b
                    pipe += hr - a
            a = tcb.sb_r[i]
        if seq_lt(a, tcb.snd_nxt):
            pipe += tcb.snd_nxt - a
        return pipe

    cdef void tcpsendat(self, Conv s, unsigned int seq, unsigned int maxlen):
        """Send at most maxlen octets from seq through tcpoutput (as
        tcprxmit does for snd.una), keeping snd.ptr and cwind."""
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        cdef unsigned int tptr = tcb.snd_ptr
        cdef unsigned int tcwind = tcb.cwind
        cdef bint rexmit = seq_lt(seq, tcb.snd_nxt)
        if rexmit:
            tcb.flags |= RETRAN
            tcb.snd_retransmit = 1
        tcb.snd_ptr = seq
        tcb.cwind = (seq - tcb.snd_una) + maxlen
        tcb.sacksending = 1
        self.tcpoutput(s)
        tcb.sacksending = 0
        tcb.snd_retransmit = 0
        tcb.cwind = tcwind
        if rexmit:
            if seq_gt(tptr, tcb.snd_ptr):
                tcb.snd_ptr = tptr
            self.stats_[RetransSegs] += 1
            self.xstats_[SackRetransSegs] += 1

    cdef void sacksend(self, Conv s):
        """RFC 6675 step (C): while cwnd - pipe >= 1 SMSS, send NextSeg():
        (1) the first octet above HighRxt in a hole that IsLost, (2) new
        data, (3) the first octet above HighRxt in any hole below the
        highest SACKed octet."""
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        cdef unsigned int pipe, a, b, start = 0, n = 0, before
        cdef int i, rule, guard = 0
        if not tcb.sackrecovery or tcb.state == Closed:
            return
        a = tcb.snd_una - 1        # (no sequence number NextSeg gives)
        while tcb.rack and guard < 200:
            guard += 1
            if self.rackpipe(tcb) + tcb.mss > tcb.cwind:
                return
            rule = self.racknext(tcb, &start, &n)
            if rule == 1:
                if start == a:
                    return          # it did not go (the peer's window)
                a = start
                self.tcpsendat(s, start, n)
            else:
                before = tcb.snd_nxt
                if hasnewdata(s, tcb):
                    self.tcpsendat(s, tcb.snd_nxt, tcb.mss)
                if tcb.state == Closed:
                    return
                if tcb.snd_nxt == before:
                    if rule != 3 or start == a:
                        return
                    a = start
                    self.tcpsendat(s, start, n)
            if tcb.state == Closed:
                return
        while guard < 200:
            guard += 1
            pipe = self.sackpipe(tcb)
            if pipe + tcb.mss > tcb.cwind:
                return
            if seq_lt(tcb.highrxt, tcb.snd_una):
                tcb.highrxt = tcb.snd_una
            start = 0
            n = 0
            for rule in (1, 3):
                a = tcb.snd_una
                for i in range(tcb.nsb):
                    b = tcb.sb_l[i]
                    if seq_lt(tcb.highrxt, b) and seq_lt(a, b):
                        start = a if seq_gt(a, tcb.highrxt) else tcb.highrxt
                        if rule == 3 or self.sacklost(tcb, start):
                            n = b - start
                            break
                    a = tcb.sb_r[i]
                if n:
                    break
                if rule == 1:
                    # (2) new data, if the window lets it go
                    before = tcb.snd_nxt
                    if hasnewdata(s, tcb):
                        self.tcpsendat(s, tcb.snd_nxt, tcb.mss)
                        if tcb.state == Closed:
                            return
                        if tcb.snd_nxt != before:
                            break
            else:
                return
            if n == 0:
                continue        # new data went
            if n > tcb.mss:
                n = tcb.mss
            self.tcpsendat(s, start, n)
            if tcb.state == Closed:
                return
            tcb.highrxt = start + n

    cdef void sackenter(self, Conv s):
        """RFC 6675 section 5: enter loss recovery (RecoveryPoint =
        HighData, cwnd = ssthresh = FlightSize / 2) and resend the first
        lost segment whatever pipe says (step 4.3)."""
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        cdef unsigned int seq, n
        self.stats_[Recovery] += 1
        self.xstats_[SackRecovery] += 1
        tcb.abcbytes = 0
        tcb.sackrecovery = 1
        tcb.recoverypt = tcb.snd_nxt
        tcb.snd_rxt = tcb.snd_nxt
        tcb.highrxt = tcb.snd_una
        self.tcpcongestion(tcb)
        tcb.cwind = tcb.ssthresh
        if tcb.rack:
            self.finehalt(s)
            tcb.tlpmode = 0
        if self.f.log.mask & Logtcpwin:
            self.f.log.log(Logtcpwin, "sack recovery cwind %d @%d\n" % (tcb.cwind, tcb.recoverypt))
        if tcb.rack:
            if self.racknext(tcb, &seq, &n) == 1:
                self.tcpsendat(s, seq, n)
        else:
            self.tcpsendat(s, tcb.snd_una, tcb.mss)
            tcb.highrxt = tcb.snd_una + tcb.mss
        if tcb.state != Closed:
            self.sacksend(s)

    # -- RACK-TLP (RFC 8985)

    cdef void xlog(self, Tcpctl tcb, unsigned int seq, unsigned int end, bint rexmit):
        """Log a transmission of [seq, end): new data is appended in pieces
        of at most one MSS (when the log is full the last piece grows);
        a retransmission stamps the pieces it covers, split at its edges."""
        cdef unsigned int now = self.f.now, e
        cdef int i, j, k, k2, idx, nidx, last
        if not rexmit or tcb.xl_n == 0 or seq_ge(seq, tcb.xl_e[(tcb.xl_head + tcb.xl_n - 1) % NXL]):
            while seq_lt(seq, end):
                e = seq + tcb.mss
                if seq_gt(e, end):
                    e = end
                if tcb.xl_n == NXL:
                    last = (tcb.xl_head + tcb.xl_n - 1) % NXL
                    tcb.xl_e[last] = end
                    tcb.xl_t[last] = now
                    break
                idx = (tcb.xl_head + tcb.xl_n) % NXL
                tcb.xl_s[idx] = seq
                tcb.xl_e[idx] = e
                tcb.xl_t[idx] = now
                tcb.xl_f[idx] = 0
                tcb.xl_n += 1
                seq = e
            return
        i = 0
        while i < tcb.xl_n:
            idx = (tcb.xl_head + i) % NXL
            if seq_le(tcb.xl_e[idx], seq):
                i += 1
                continue
            if seq_ge(tcb.xl_s[idx], end):
                break
            # split so that the piece stamped lies within [seq, end)
            for k in range(2):
                if k == 0 and seq_lt(tcb.xl_s[idx], seq):
                    e = seq
                elif k == 1 and seq_gt(tcb.xl_e[idx], end):
                    e = end
                else:
                    continue
                if tcb.xl_n == NXL:
                    continue
                # insert a copy of idx after it; idx keeps [s, e), the copy [e, old e)
                j = tcb.xl_n
                while j > i + 1:
                    nidx = (tcb.xl_head + j) % NXL
                    k2 = (tcb.xl_head + j - 1) % NXL
                    tcb.xl_s[nidx] = tcb.xl_s[k2]
                    tcb.xl_e[nidx] = tcb.xl_e[k2]
                    tcb.xl_t[nidx] = tcb.xl_t[k2]
                    tcb.xl_f[nidx] = tcb.xl_f[k2]
                    j -= 1
                nidx = (tcb.xl_head + i + 1) % NXL
                tcb.xl_s[nidx] = e
                tcb.xl_e[nidx] = tcb.xl_e[idx]
                tcb.xl_t[nidx] = tcb.xl_t[idx]
                tcb.xl_f[nidx] = tcb.xl_f[idx]
                tcb.xl_e[idx] = e
                tcb.xl_n += 1
                if k == 0:
                    # the part before seq stays as it was: move on to the copy
                    i += 1
                    idx = nidx
            tcb.xl_t[idx] = now
            tcb.xl_f[idx] = (tcb.xl_f[idx] | XRETX) & ~XLOST
            i += 1

    cdef void rackupdate(self, Tcpctl tcb, unsigned int ack):
        """RFC 8985 section 6.2 steps 1-2: for each segment newly delivered
        (acknowledged or SACKed) note the most recently sent one (RACK.ts,
        RACK.end_seq, RACK.rtt); then forget what the ACK covers."""
        cdef unsigned int now = self.f.now, rtt
        cdef int i, j = 0, idx
        cdef bint deliv
        for i in range(tcb.xl_n):
            idx = (tcb.xl_head + i) % NXL
            if tcb.xl_f[idx] & XDELIV:
                continue
            deliv = seq_le(tcb.xl_e[idx], ack)
            if not deliv:
                while j < tcb.nsb and seq_le(tcb.sb_r[j], tcb.xl_s[idx]):
                    j += 1
                deliv = (j < tcb.nsb and seq_le(tcb.sb_l[j], tcb.xl_s[idx])
                         and seq_le(tcb.xl_e[idx], tcb.sb_r[j]))
            if not deliv:
                continue
            tcb.xl_f[idx] |= XDELIV
            rtt = now - tcb.xl_t[idx]
            if (tcb.xl_f[idx] & XRETX) and rtt < tcb.minrtt:
                continue        # perhaps the original that arrived
            if rtt < tcb.minrtt:
                tcb.minrtt = rtt
            if (not tcb.rack_valid or <int>(tcb.xl_t[idx] - tcb.rack_ts) > 0
                    or (tcb.xl_t[idx] == tcb.rack_ts and seq_gt(tcb.xl_e[idx], tcb.rack_end))):
                tcb.rack_ts = tcb.xl_t[idx]
                tcb.rack_end = tcb.xl_e[idx]
                tcb.rack_rtt = rtt
                tcb.rack_valid = 1
        while tcb.xl_n > 0 and seq_le(tcb.xl_e[tcb.xl_head], ack):
            tcb.xl_head = (tcb.xl_head + 1) % NXL
            tcb.xl_n -= 1
        if tcb.xl_n > 0 and seq_lt(tcb.xl_s[tcb.xl_head], ack):
            tcb.xl_s[tcb.xl_head] = ack

    cdef int rackdetect(self, Conv s):
        """RFC 8985 section 6.2 step 5: a segment sent before the most
        recently delivered one and not delivered for RACK.rtt + reo_wnd
        is lost.  Arms the reorder timer for the earliest one not yet due.
        Returns how many were newly marked lost."""
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        cdef unsigned int now = self.f.now, reo
        cdef int i, idx, lost = 0, remaining, timeout = 0x7FFFFFFF
        if not tcb.rack_valid:
            return 0
        reo = tcb.minrtt // 4 if tcb.minrtt != 0xFFFFFFFF else 0
        if tcb.srtt > 0 and reo > <unsigned int>(tcb.srtt >> LOGAGAIN):
            reo = tcb.srtt >> LOGAGAIN
        for i in range(tcb.xl_n):
            idx = (tcb.xl_head + i) % NXL
            if tcb.xl_f[idx] & (XDELIV | XLOST):
                continue
            if not (<int>(tcb.xl_t[idx] - tcb.rack_ts) < 0
                    or (tcb.xl_t[idx] == tcb.rack_ts and seq_lt(tcb.xl_e[idx], tcb.rack_end))):
                continue
            remaining = <int>(tcb.xl_t[idx] + tcb.rack_rtt + reo - now)
            if remaining <= 0:
                tcb.xl_f[idx] |= XLOST
                lost += 1
            elif remaining < timeout:
                timeout = remaining
        if lost:
            self.xstats_[RackLost] += lost
        if timeout != 0x7FFFFFFF:
            tcb.tlpmode = 2
            self.finearm(s, timeout)
        elif tcb.tlpmode == 2:
            self.finehalt(s)
            tcb.tlpmode = 0
        return lost

    cdef unsigned int rackpipe(self, Tcpctl tcb):
        """pipe from the log: what is neither delivered nor lost (a
        retransmission of a lost segment counts again)."""
        cdef unsigned int pipe = 0, hi
        cdef int i, idx
        if tcb.xl_n == 0:
            return tcb.snd_nxt - tcb.snd_una
        for i in range(tcb.xl_n):
            idx = (tcb.xl_head + i) % NXL
            if tcb.xl_f[idx] & (XDELIV | XLOST):
                continue
            pipe += tcb.xl_e[idx] - tcb.xl_s[idx]
        hi = tcb.xl_e[(tcb.xl_head + tcb.xl_n - 1) % NXL]
        if seq_lt(hi, tcb.snd_nxt):
            pipe += tcb.snd_nxt - hi
        return pipe

    cdef int racknext(self, Tcpctl tcb, unsigned int *seq, unsigned int *n):
        """NextSeg over the log: first mark lost what RFC 6675's IsLost
        says (never resent yet); then (1) the first segment marked lost;
        failing that, (3) the first one never resent below the highest
        SACKed octet.  Returns 1 or 3 with seq and n set, or 0."""
        cdef int i, idx, rule3 = -1
        cdef unsigned int hi
        if tcb.nsb > 0:
            hi = tcb.sb_r[tcb.nsb - 1]
            for i in range(tcb.xl_n):
                idx = (tcb.xl_head + i) % NXL
                if seq_ge(tcb.xl_s[idx], hi):
                    break
                if tcb.xl_f[idx] & (XDELIV | XLOST | XRETX):
                    continue
                if self.sacklost(tcb, tcb.xl_s[idx]):
                    tcb.xl_f[idx] |= XLOST
                elif rule3 < 0:
                    rule3 = idx
        for i in range(tcb.xl_n):
            idx = (tcb.xl_head + i) % NXL
            if (tcb.xl_f[idx] & (XDELIV | XLOST)) == XLOST:
                seq[0] = tcb.xl_s[idx]
                n[0] = tcb.xl_e[idx] - tcb.xl_s[idx]
                if n[0] > tcb.mss:
                    n[0] = tcb.mss
                return 1
        if rule3 >= 0:
            seq[0] = tcb.xl_s[rule3]
            n[0] = tcb.xl_e[rule3] - tcb.xl_s[rule3]
            if n[0] > tcb.mss:
                n[0] = tcb.mss
            return 3
        return 0

    cdef void tlparm(self, Conv s):
        """RFC 8985 section 7.2: arm the probe timeout, PTO = 2 * SRTT
        (plus the worst-case delayed ACK when one segment is in flight),
        unless the RTO would fire first or the reorder timer runs."""
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        cdef int pto, rto
        if tcb.tlpmode == 2 and tcb.tlp_on:
            return
        if (tcb.tlpout or tcb.snd_una == tcb.snd_nxt
                or (tcb.state != Established and tcb.state != Close_wait)
                or (tcb.snd_rto and seq_lt(tcb.snd_una, tcb.snd_rxt))):
            # (no probe in RTO recovery either, RFC 8985 section 7.2: until
            # snd.una passes what was sent when the timer fired, snd.rxt;
            # the RTO's retransmissions go by the congestion window)
            self.finehalt(s)
            tcb.tlpmode = 0
            return
        if tcb.srtt > 0:
            pto = 2 * (tcb.srtt >> LOGAGAIN)
            if tcb.snd_nxt - tcb.snd_una <= tcb.mss:
                pto += WCDELACKT
        else:
            pto = 1000
        if pto < TLPMIN:
            pto = TLPMIN
        # (the retransmission timer, in ms to the tick it fires at)
        rto = (self.timercount(tcb.timer) if tcb.timer.state == TcptimerON
               else tcb.timer.start) * MSPTICK
        if pto >= rto:
            self.finehalt(s)
            tcb.tlpmode = 0
            return
        tcb.tlpmode = 1
        self.finearm(s, pto)

    cdef void finearm(self, Conv s, int ms):
        """Beyond tcp.c: (re)arm s's RACK-TLP timer ms from now."""
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        cdef unsigned int at
        if ms < 1:
            ms = 1
        at = self.f.now + <unsigned int>ms
        tcb.tlp_at = at
        tcb.tlp_on = 1
        self.fine.add(s)
        if self.finedirty:
            return
        if not self.fineany:
            self.fineany = 1
            self.finenext = at
            self.finenextconv = s
        elif s is self.finenextconv:
            if <int>(at - self.finenext) > 0:
                self.finedirty = 1
            else:
                self.finenext = at
        elif <int>(at - self.finenext) < 0:
            self.finenext = at
            self.finenextconv = s

    cdef void finehalt(self, Conv s):
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        if not tcb.tlp_on:
            return
        tcb.tlp_on = 0
        if s is self.finenextconv:
            self.finedirty = 1

    cdef bint finedue(self, unsigned int upto):
        """Is a RACK-TLP timer due at or before upto?  (finenext and
        finenextconv then name the earliest.)"""
        cdef Conv c
        cdef Tcpctl tcb
        cdef list dead
        if self.finedirty:
            self.finedirty = 0
            self.fineany = 0
            self.finenextconv = None
            dead = None
            for c in self.fine:
                tcb = <Tcpctl>c.ptcl
                if not tcb.tlp_on:
                    if dead is None:
                        dead = []
                    dead.append(c)
                    continue
                if not self.fineany or <int>(tcb.tlp_at - self.finenext) < 0:
                    self.fineany = 1
                    self.finenext = tcb.tlp_at
                    self.finenextconv = c
            if dead is not None:
                for c in dead:
                    self.fine.discard(c)
        if not self.fineany:
            return 0
        if not (<Tcpctl>self.finenextconv.ptcl).tlp_on:
            self.finedirty = 1
            return self.finedue(upto)
        return <int>(self.finenext - upto) <= 0

    cdef void tcptlp(self, Conv s):
        """The RACK-TLP timer: in reorder mode, detect losses again; as a
        probe timeout, send one new segment if there is one, else resend
        the last, so that the ACK it draws shows what the tail lost."""
        cdef Tcpctl tcb = <Tcpctl>s.ptcl
        cdef int mode = tcb.tlpmode
        cdef unsigned int seq, before
        tcb.tlpmode = 0
        if tcb.state == Closed or not tcb.rack or tcb.snd_una == tcb.snd_nxt:
            return
        if mode == 2:
            if self.rackdetect(s) > 0:
                if not tcb.sackrecovery and seq_le(tcb.snd_rxt, tcb.snd_una):
                    self.sackenter(s)
                else:
                    self.sacksend(s)
            return
        if (mode != 1 or tcb.sackrecovery or tcb.tlpout
                or (tcb.state != Established and tcb.state != Close_wait)):
            return
        self.xstats_[TlpProbes] += 1
        tcb.tlpout = 1
        before = tcb.snd_nxt
        if hasnewdata(s, tcb) and tcb.snd_wnd > tcb.snd_nxt - tcb.snd_una:
            self.tcpsendat(s, tcb.snd_nxt, tcb.mss)
        if tcb.state != Closed and tcb.snd_nxt == before:
            seq = tcb.snd_nxt - tcb.mss
            if tcb.xl_n > 0:
                seq = tcb.xl_s[(tcb.xl_head + tcb.xl_n - 1) % NXL]
            if seq_lt(seq, tcb.snd_una):
                seq = tcb.snd_una
            self.tcpsendat(s, seq, tcb.snd_nxt - seq)
        if tcb.state != Closed:
            tcb.time = self.f.now
            tcb.timeuna = tcb.snd_una
            self.tcpgo(tcb.timer)

    # -- CUBIC (RFC 9438)

    cdef void cubicincr(self, Tcpctl tcb, unsigned int acked):
        """Congestion avoidance by RFC 9438 section 4: the window follows
        W_cubic(t) = C (t - K)^3 + W_max, K = cbrt((W_max - cwnd_epoch) /
        C), aiming at W_cubic(t + RTT) (at most 1.5 cwnd); where the
        Reno-friendly W_est (growing by alpha_cubic segments a round trip)
        is ahead, cwnd is W_est (section 4.3)."""
        cdef double mss = tcb.mss
        cdef double cwnd = tcb.cwind / mss
        cdef double t, rtt, target, wt, segs, alpha, nw
        if not tcb.cu_epochon:
            tcb.cu_epochon = 1
            tcb.cu_epoch = self.f.now
            if cwnd < tcb.cu_wmax:
                tcb.cu_k = cbrt((tcb.cu_wmax - cwnd) / CUBICC)
            else:
                tcb.cu_k = 0.0
                tcb.cu_wmax = cwnd
            tcb.cu_west = cwnd
        t = <double>(<unsigned int>(self.f.now - tcb.cu_epoch)) / 1000.0
        rtt = <double>(tcb.srtt >> LOGAGAIN) / 1000.0
        target = CUBICC * (t + rtt - tcb.cu_k) ** 3 + tcb.cu_wmax
        if target < cwnd:
            target = cwnd
        elif target > 1.5 * cwnd:
            target = 1.5 * cwnd
        segs = acked / mss
        alpha = 1.0 if tcb.cu_west >= tcb.cu_lastwmax else 3.0 * (1.0 - CUBICBETA) / (1.0 + CUBICBETA)
        tcb.cu_west += alpha * segs / cwnd
        wt = CUBICC * (t - tcb.cu_k) ** 3 + tcb.cu_wmax
        if wt < tcb.cu_west:
            nw = tcb.cu_west
        else:
            nw = cwnd + (target - cwnd) / cwnd * segs
        if nw * mss > tcb.cwind:
            tcb.cwind = <unsigned int>(nw * mss)

    cdef unsigned int hystart(self, Tcpctl tcb, unsigned int acked, unsigned int incr):
        """RFC 9406 section 4.2, for each ACK of the first slow start:
        rounds end when snd.nxt of the round's start is acknowledged; after
        8 RTT samples in a round whose least RTT exceeds the last round's
        by clamp(last / 8, 4, 16) ms, Conservative Slow Start grows the
        window a quarter as fast, back to slow start if the RTT falls below
        the baseline, on to congestion avoidance (ssthresh = cwnd) after 5
        CSS rounds.  Returns the increase of cwnd."""
        cdef unsigned int ack = tcb.snd_una + acked, thresh
        if tcb.hs_wend == 0 or seq_ge(ack, tcb.hs_wend):
            # a new round
            tcb.hs_last = tcb.hs_cur
            tcb.hs_cur = 0xFFFFFFFF
            tcb.hs_cnt = 0
            tcb.hs_wend = tcb.snd_nxt
            if tcb.hs_css:
                tcb.hs_rounds += 1
                if tcb.hs_rounds >= 5:
                    tcb.ssthresh = tcb.cwind
                    tcb.hs_on = 0
                    tcb.hs_css = 0
                    self.xstats_[HystartExits] += 1
                    return 0
        if tcb.hs_css:
            if tcb.hs_cnt >= 8 and tcb.hs_cur < tcb.hs_base:
                tcb.hs_css = 0          # the RTT came back: slow start again
                tcb.hs_base = 0xFFFFFFFF
                return incr
            return incr // 4
        if tcb.hs_cnt >= 8 and tcb.hs_cur != 0xFFFFFFFF and tcb.hs_last != 0xFFFFFFFF:
            thresh = tcb.hs_last // 8
            if thresh < 4:
                thresh = 4
            elif thresh > 16:
                thresh = 16
            if tcb.hs_cur >= tcb.hs_last + thresh:
                tcb.hs_base = tcb.hs_cur
                tcb.hs_css = 1
                tcb.hs_rounds = 0
                self.xstats_[HystartCss] += 1
                return incr // 4
        return incr

    def tcpcongestion_of(self, Conv c not None):
        self.tcpcongestion(<Tcpctl>c.ptcl)

    def cubicincr_of(self, Conv c not None, unsigned int acked):
        self.cubicincr(<Tcpctl>c.ptcl, acked)

    def cubicwindow(self, Conv c not None, double t):
        """W_cubic(t) of c's current epoch, in segments (for tests)."""
        cdef Tcpctl tcb = <Tcpctl>c.ptcl
        return CUBICC * (t - tcb.cu_k) ** 3 + tcb.cu_wmax

    # -- SYN cookies (RFC 4987)

    cdef unsigned int syncookie(self, const unsigned char *laddr, unsigned short lport,
                                const unsigned char *raddr, unsigned short rport,
                                unsigned int irs, unsigned int count, int mssidx):
        """The initial sequence number of a SYN cookie: 5 bits of a 64 s
        clock, 3 bits of MSS, 24 bits of a keyed hash of the addresses,
        ports, the caller's ISN, the clock and the MSS."""
        cdef bytes d
        if self.isnkey is None:
            self.isnkey = self.f.rand.getrandbits(256).to_bytes(32, "little")
        d = hashlib.blake2s(PyBytes_FromStringAndSize(<const char*>laddr, 16)
                            + PyBytes_FromStringAndSize(<const char*>raddr, 16)
                            + _struct.pack("!HHIIBB", lport, rport, irs, count & 31, mssidx, 2),
                            key=self.isnkey, digest_size=3).digest()
        return ((count & 31) << 27) | ((<unsigned int>mssidx & 7) << 24) | \
            (<unsigned int>d[0] << 16) | (<unsigned int>d[1] << 8) | <unsigned int>d[2]

    cdef void sndcookie(self, Conv s, const unsigned char *source, const unsigned char *dest,
                        Tcp *seg, int version):
        """Answer a SYN with a SYN cookie: a SYN-ACK whose sequence number
        is syncookie(), and nothing kept."""
        cdef Limbo lp = Limbo()
        cdef Tcpctl l = <Tcpctl>s.ptcl
        cdef int i, idx = 0
        for i in range(8):
            if seg.mss != 0 and cookiemss[i] <= seg.mss:
                idx = i
        lp.version = version
        memcpy(lp.laddr, dest, 16)
        memcpy(lp.raddr, source, 16)
        lp.lport = seg.dest
        lp.rport = seg.source
        lp.mss = cookiemss[idx]
        lp.rcvscale = seg.ws
        lp.hasws = seg.hasws
        lp.irs = seg.seq
        lp.rexmits = 0
        lp.profile = Profmodern
        lp.cookie = 1
        lp.iss = self.syncookie(dest, seg.dest, source, seg.source, seg.seq,
                                self.f.now // COOKIEPERIOD, idx)
        lp.hasts = seg.hasts and l.tsok
        # without timestamps nothing carries SACK-permitted or the window
        # scale back (as in Linux)
        lp.sackok = seg.sackok and l.sackok and lp.hasts
        if not lp.hasts:
            lp.rcvscale = 0
        lp.tsval = seg.tsval
        if lp.hasts:
            lp.tsoff = self.tsoffset(dest, seg.dest, source, seg.source)
        self.cookiesent = 1
        self.cookietime = self.f.now
        self.xstats_[SynCookiesSent] += 1
        self.sndsynack(lp)

    cdef Limbo cookiecheck(self, Conv s, Tcp *segp, const unsigned char *src,
                           const unsigned char *dst, int version):
        """An ACK that matches no call in limbo: if it acknowledges a SYN
        cookie of ours (made in the last COOKIEAGE + 1 steps of its clock,
        for these addresses, ports and the caller's ISN), the call it
        stands for, rebuilt (the window scale and SACK from the TSecr)."""
        cdef Limbo lp
        cdef Tcpctl l = <Tcpctl>s.ptcl
        cdef unsigned int iss = segp.ack - 1, irs = segp.seq - 1
        cdef unsigned int count = self.f.now // COOKIEPERIOD
        cdef unsigned int t = iss >> 27
        cdef int idx = (iss >> 24) & 7
        cdef unsigned int opts
        if <unsigned int>(self.f.now - self.cookietime) > (COOKIEAGE + 1) * COOKIEPERIOD:
            self.cookiesent = 0
            return None
        if ((count - t) & 31) > COOKIEAGE or \
                self.syncookie(dst, segp.dest, src, segp.source, irs, t, idx) != iss:
            self.xstats_[SynCookiesBad] += 1
            return None
        self.xstats_[SynCookiesOk] += 1
        lp = Limbo()
        lp.version = version
        memcpy(lp.laddr, dst, 16)
        memcpy(lp.raddr, src, 16)
        lp.lport = segp.dest
        lp.rport = segp.source
        lp.irs = irs
        lp.iss = iss
        lp.mss = cookiemss[idx]
        lp.profile = Profmodern
        lp.cookie = 1
        lp.rexmits = 0
        lp.lastsend = self.f.now
        lp.hasts = segp.hasts and l.tsok and segp.tsecr != 0
        lp.sackok = 0
        lp.rcvscale = 0
        lp.sndscale = 0
        if lp.hasts:
            opts = segp.tsecr & ((1u << COOKIEBITS) - 1)
            lp.sackok = (opts & 1) and l.sackok
            lp.rcvscale = opts >> 1
            if lp.rcvscale > 14:
                lp.rcvscale = 14
            if lp.rcvscale:
                lp.sndscale = Defadvscale
            lp.tsval = segp.tsval
            lp.tsoff = self.tsoffset(dst, segp.dest, src, segp.source)
            # the SYN-ACK's time, from its timestamp (to a few ms)
            lp.lastsend = segp.tsecr - lp.tsoff
            if <int>(self.f.now - lp.lastsend) < 0:
                lp.lastsend = self.f.now
        return lp

    def rackpipe_of(self, Conv c not None):
        return self.rackpipe(<Tcpctl>c.ptcl)

    def racklog(self, Conv c not None):
        """RACK's log: [(seq, end, time, flags), ...] in sequence order."""
        cdef Tcpctl tcb = <Tcpctl>c.ptcl
        cdef int i, idx
        out = []
        for i in range(tcb.xl_n):
            idx = (tcb.xl_head + i) % NXL
            out.append((tcb.xl_s[idx], tcb.xl_e[idx], tcb.xl_t[idx], tcb.xl_f[idx]))
        return out

    cdef void oohistpush(self, Tcpctl tcb, unsigned int seq):
        """Remember an out-of-order arrival, most recent first."""
        cdef int k = tcb.rcv_nooh if tcb.rcv_nooh < NOOHIST else NOOHIST - 1
        while k > 0:
            tcb.rcv_oohist[k] = tcb.rcv_oohist[k - 1]
            k -= 1
        tcb.rcv_oohist[0] = seq
        if tcb.rcv_nooh < NOOHIST:
            tcb.rcv_nooh += 1

    cdef void dsackqueued(self, Tcpctl tcb, unsigned int seq, int length):
        """An out-of-order segment [seq, seq+length) about to be queued:
        the first part of it the queue already holds is a D-SACK block
        (RFC 2883 section 4, a duplicate of out-of-order data)."""
        cdef Reseq r = tcb.reseq
        cdef unsigned int l, e, end = seq + <unsigned int>length
        while r is not None and length > 0:
            l = r.seg.seq
            e = l + r.length
            if seq_lt(l, seq):
                l = seq
            if seq_gt(e, end):
                e = end
            if seq_lt(l, e):
                tcb.dsack = 1
                tcb.dsack_l = l
                tcb.dsack_r = e
                return
            r = r.next

    cdef int sackblocks(self, Tcpctl tcb, unsigned int *out):
        """The SACK blocks for the next ACK (RFC 2018 section 4): a
        pending D-SACK first (RFC 2883), then the block holding the most
        recently received out-of-order segment, then the blocks of the
        arrivals before it, most recent first (the blocks reported
        before, repeated in their order), then any others in order of
        sequence.  Returns the number of blocks (at most 4) in out."""
        cdef Reseq r = tcb.reseq
        cdef unsigned int l, e, re, h
        cdef int n = 0, k, j
        cdef unsigned int done = 0      # bit k: block k is in out
        cdef unsigned int bl[MAXSACK + 32]
        cdef unsigned int br[MAXSACK + 32]
        cdef int nb = 0
        while r is not None and nb < 32:
            l = r.seg.seq
            e = l + r.length + (1 if r.seg.flags & FIN else 0)
            if seq_le(e, tcb.rcv_nxt):
                r = r.next
                continue
            if seq_lt(l, tcb.rcv_nxt):
                l = tcb.rcv_nxt
            if nb > 0 and seq_le(l, br[nb - 1]):
                if seq_gt(e, br[nb - 1]):
                    br[nb - 1] = e
            else:
                bl[nb] = l
                br[nb] = e
                nb += 1
            r = r.next
        if tcb.dsack:
            out[0] = tcb.dsack_l
            out[1] = tcb.dsack_r
            n = 1
        for j in range(-1, tcb.rcv_nooh):
            h = tcb.rcv_lastoo if j < 0 else tcb.rcv_oohist[j]
            for k in range(nb):
                if seq_ge(h, bl[k]) and seq_lt(h, br[k]):
                    if n < MAXSACK and not (done >> k) & 1:
                        done |= (<unsigned int>1) << k
                        out[2 * n] = bl[k]
                        out[2 * n + 1] = br[k]
                        n += 1
                    break
        for k in range(nb):
            if n >= MAXSACK:
                break
            if (done >> k) & 1:
                continue
            out[2 * n] = bl[k]
            out[2 * n + 1] = br[k]
            n += 1
        return n

    def scoreboard(self, Conv c not None):
        """The SACKed ranges the sender knows of, [(left, right), ...]."""
        cdef Tcpctl tcb = <Tcpctl>c.ptcl
        return [(tcb.sb_l[i], tcb.sb_r[i]) for i in range(tcb.nsb)]

    def pipe(self, Conv c not None):
        """RFC 6675's pipe for c."""
        return self.sackpipe(<Tcpctl>c.ptcl)

    def islost(self, Conv c not None, unsigned int seq):
        return self.sacklost(<Tcpctl>c.ptcl, seq)

    def sackblocks_of(self, Conv c not None):
        """The SACK blocks c's next ACK would carry, [(left, right), ...]."""
        cdef unsigned int out[8]
        cdef int n = self.sackblocks(<Tcpctl>c.ptcl, out)
        return [(out[2 * i], out[2 * i + 1]) for i in range(n)]

    # ---------------------------------------------------------------
    # for tests and tools

    def tcb(self, Conv c not None):
        return c.ptcl

    def limbocount(self):
        return self.nlimbo

    def limbolist(self):
        """(raddr, rport, laddr, lport, rexmits, lastsend) of every call in
        limbo."""
        cdef Limbo lp
        out = []
        for h in range(NLHT):
            lp = self.lht[h]
            while lp is not None:
                out.append((fmtip(PyBytes_FromStringAndSize(<const char*>lp.raddr, 16)), lp.rport,
                            fmtip(PyBytes_FromStringAndSize(<const char*>lp.laddr, 16)), lp.lport,
                            lp.rexmits, lp.lastsend))
                lp = lp.next
        return out

    def timercount_of(self, Tcptimer t):
        return self.timercount(t)


cdef enum:
    A_DONE = 0
    A_OUTPUT = 1
    A_RAISE = 2


cdef inline bint ackable(Tcpctl tcb, Tcp *seg) noexcept:
    """Beyond tcp.c: may update() take this segment's acknowledgment?
    It must carry ACK and acknowledge nothing beyond snd.nxt (RFC 9293
    section 3.10.7.4)."""
    if (seg.flags & ACK) == 0 or not seq_le(seg.ack, tcb.snd_nxt):
        return 0
    # beyond tcp.c (modern): RFC 5961 section 5, SND.UNA - MAX.SND.WND <= SEG.ACK
    if tcb.profile == Profmodern and seq_lt(seg.ack, tcb.snd_una - tcb.max_snd_wnd):
        return 0
    return 1


cdef inline void settsopt(Tcpctl tcb, Tcp *seg, unsigned int now) noexcept:
    """Beyond tcp.c: once timestamps are in use every segment but a reset
    carries one (RFC 7323 section 3.2): TSval the engine's clock plus the
    connection's offset, TSecr TS.Recent."""
    if tcb.ts:
        seg.optout = 1
        seg.hasts = 1
        seg.tsval = now + tcb.tsoff
        seg.tsecr = tcb.ts_recent
        seg.nsack = 0


cdef inline bint hasnewdata(Conv s, Tcpctl tcb) noexcept:
    """Beyond tcp.c (SACK recovery, RACK-TLP): unsent data (or a FIN) is
    queued and no retransmission is under way (snd.ptr at snd.nxt)."""
    return (<unsigned int>s.wq.len + <unsigned int>tcb.flgcnt > tcb.snd_nxt - tcb.snd_una
            and tcb.snd_nxt == tcb.snd_ptr)


cdef inline void rttsmooth(Tcpctl tcb, int rtt, int mdevshift) noexcept:
    """update()'s smoothing of one RTT sample rtt (ms) into srtt (8 *
    SRTT) and mdev (4 * RTTVAR); the first sample sets mdev to rtt <<
    mdevshift (tcp.c: LOGDGAIN).  Also tcprttsample's (beyond tcp.c)."""
    cdef int delta
    if tcb.srtt == 0:
        tcb.srtt = rtt << LOGAGAIN
        tcb.mdev = rtt << mdevshift
    else:
        delta = rtt - (tcb.srtt >> LOGAGAIN)
        tcb.srtt += delta
        if tcb.srtt <= 0:
            tcb.srtt = 1
        delta = c_abs(delta) - (tcb.mdev >> LOGDGAIN)
        tcb.mdev += delta
        if tcb.mdev <= 0:
            tcb.mdev = 1


cdef unsigned int keyhash(TcpProto p, const unsigned char *laddr, unsigned short lport,
                          const unsigned char *raddr, unsigned short rport, int which):
    """Beyond tcp.c: isn's and tsoffset's keyed hash (BLAKE2s, 4 bytes, a
    key drawn once per stack) of the 4-tuple and which."""
    cdef bytes d
    if p.isnkey is None:
        p.isnkey = p.f.rand.getrandbits(256).to_bytes(32, "little")
    d = hashlib.blake2s(PyBytes_FromStringAndSize(<const char*>laddr, 16)
                        + PyBytes_FromStringAndSize(<const char*>raddr, 16)
                        + _struct.pack("!HHB", lport, rport, which),
                        key=p.isnkey, digest_size=4).digest()
    return <unsigned int>nhgetl(<const unsigned char*><char*>d)


cdef inline bint chackspent(unsigned int *chacktime, int *chackcnt, unsigned int now) noexcept:
    """Beyond tcp.c: RFC 5961 section 7's throttle, CHALLENGEMAX challenge
    ACKs a second; counts one and returns 0 if it may go."""
    if <unsigned int>(now - chacktime[0]) >= 1000:
        chacktime[0] = now
        chackcnt[0] = 0
    if chackcnt[0] >= CHALLENGEMAX:
        return 1
    chackcnt[0] += 1
    return 0


cdef inline bint inwindow(Tcpctl tcb, unsigned int seq) noexcept:
    return seq_within(seq, tcb.rcv_nxt, tcb.rcv_nxt + tcb.rcv_wnd - 1)


cdef inline int limbodue(Limbo lp) noexcept:
    """ms after the last SYN-ACK of a call in limbo at which the next goes
    (or, after the fifth resend, the call is given up)."""
    if lp.profile == Profmodern:
        # DEVIATION (modern profile): RFC 6298 sections 2.1 and 5.5, the
        # SYN-ACK is resent after 1 s, then 2, 4, ... (the call is given up
        # 63 s after the first, as after Linux's 5 retries); tcp.c waits
        # SYNACK_RXTIMER (250 ms) * n and gives up after 5.25 s
        return MODERN_IRTO << lp.rexmits
    return (lp.rexmits + 1) * SYNACK_RXTIMER


cdef inline long long backoff(int n) noexcept:
    # DEVIATION: 1 << n overflows int in tcp.c for large n (see tcpsettimer)
    return 1LL << (n if n < 30 else 30)


cdef object getreseq(Tcpctl tcb, Tcp *seg, int *length):
    """Take the first segment of the resequence queue: its header into
    seg, its length into length; returns its data (bytes)."""
    cdef Reseq rp = tcb.reseq
    if rp is None:
        return None
    tcb.reseq = rp.next
    seg[0] = rp.seg
    length[0] = rp.length
    tcb.nreseq -= 1
    tcb.reseqlen -= rp.length
    return rp.data


def tcpflag(int flag):
    """tcpflag: header length and flag names of a TCP flag word, for logs."""
    out = ["%d" % (flag >> 10)]
    for bit, name in ((URG, "URG"), (ACK, "ACK"), (PSH, "PSH"), (RST, "RST"), (SYN, "SYN"), (FIN, "FIN")):
        if flag & bit:
            out.append(name)
    return " ".join(out)


cdef void initialwindow(Tcpctl tcb):
    # RFC 3390 initial window
    if tcb.mss < 1095:
        tcb.cwind = 4 * tcb.mss
    elif tcb.mss < 2190:
        tcb.cwind = 4380
    else:
        tcb.cwind = 2 * tcb.mss
