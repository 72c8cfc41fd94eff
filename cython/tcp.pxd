# The TCP engine: a port of 9front's sys/src/9/ip/tcp.c (docs/tcp-port.md).

from net9.conv cimport Conv, Proto, Fs
from net9.qio cimport Queue
# the header, its flags and options are the wire layer's (wire.pxd)
from net9.wire cimport (Tcp, URG, ACK, PSH, RST, SYN, FIN, EOLOPT, NOOPOPT, MSSOPT, MSS_LENGTH,
                        WSOPT, WS_LENGTH, SACKPERMOPT, SACKPERM_LENGTH, SACKOPT, TSOPT,
                        TS_LENGTH, TSOPTALIGNED, MAXSACK)

cpdef enum TcpState:
    # tcp.c's states; Python sees net9.tcp.TcpState (names as tcpstates)
    Closed = 0
    Listen = 1
    Syn_sent = 2
    Syn_received = 3
    Established = 4
    Finwait1 = 5
    Finwait2 = 6
    Close_wait = 7
    Closing = 8
    Last_ack = 9
    Time_wait = 10

cpdef enum TcptimerState:
    # a Tcptimer's state; Python sees net9.tcp.TcptimerState
    TcptimerOFF = 0
    TcptimerON = 1
    TcptimerDONE = 2

cdef enum:
    QMAX = 64 * 1024 - 1
    IP_TCPPROTO = 6

    TCP4_IPLEN = 8
    TCP4_PHDRSIZE = 12
    TCP4_HDRSIZE = 20
    TCP4_TCBPHDRSZ = 40
    TCP4_PKT = TCP4_IPLEN + TCP4_PHDRSIZE

    TCP6_IPLEN = 0
    TCP6_PHDRSIZE = 40
    TCP6_HDRSIZE = 20
    TCP6_TCBPHDRSZ = 60
    TCP6_PKT = TCP6_IPLEN + TCP6_PHDRSIZE

    MAX_TIME = 1 << 20
    TCP_ACK = 50
    MAXBACKMS = 9 * 60 * 1000

    MSL2 = 10
    MSPTICK = 50
    DEF_MSS = 1460
    DEF_MSS6 = 1220
    DEF_RTT = 500
    DEF_KAT = 120000
    TCP_LISTEN = 0
    TCP_CONNECT = 1
    SYNACK_RXTIMER = 250

    TCPREXMTTHRESH = 3

    # beyond tcp.c: challenge ACKs sent per conversation per second
    # (RFC 5961 section 7 asks for a throttle)
    CHALLENGEMAX = 10

    # beyond tcp.c (the modern profile)
    NSCORE = 32              # SACKed ranges kept in the scoreboard
    NOOHIST = 8              # out-of-order arrivals remembered for SACK's order
    NXL = 512                # RACK: segments in flight logged
    XDELIV = 1               # RACK log flags: delivered (ACKed or SACKed)
    XLOST = 2                #   marked lost, not resent since
    XRETX = 4                #   resent at least once
    WCDELACKT = 200          # RFC 8985: worst-case delayed ACK, ms
    TLPMIN = 10              # ms, the least probe timeout (Linux's)
    DEF_RTOMIN = 200         # ms, the modern profile's RTO floor (Linux's)
    TCP9_RTOMIN = 300        # ms, tcp.c's floor
    MODERN_IRTO = 1000       # ms, the modern profile's RTO before an RTT sample (RFC 6298 2.1)
    MODERN_SYNRTO = 3000     # ms, the same once data flows after a resent SYN (RFC 6298 5.7)
    # profiles
    Prof9front = 0
    Profmodern = 1
    # congestion controllers
    CCnewreno = 0
    CCcubic = 1

    FORCE = 1
    CLONE = 2
    RETRAN = 4
    ACTIVE = 8
    SYNACK = 16
    SYNRETRAN = 32           # beyond tcp.c (modern): the SYN or SYN-ACK was resent

    LOGAGAIN = 3
    LOGDGAIN = 2

    Maxlimbo = 1000
    NLHT = 256
    LHTMASK = NLHT - 1

    Maxqscale = 4
    Defadvscale = 4

    L = 2

    # which function a timer runs (tcp.c stores a function pointer)
    Tfnone = 0
    Tftimeout = 1
    Tfacktimer = 2
    Tfkeepalive = 3
    Tflimbo = 4

    # timing wheel: a tick visits one slot, so its cost follows the timers
    # in that slot, not the number of connections (tcp.c walks every
    # running timer on every tick).  4096 slots of 50 ms = 204.8 s.
    NWHEEL = 4096

cdef enum:
    # MIB stats (order of tcp.c's enum)
    MaxConn = 0
    Mss
    ActiveOpens
    PassiveOpens
    EstabResets
    CurrEstab
    InSegs
    OutSegs
    RetransSegs
    RetransSegsSent
    RetransTimeouts
    InErrs
    OutRsts
    CsumErrs
    HlenErrs
    LenErrs
    Resequenced
    OutOfOrder
    ReseqBytelim
    ReseqPktlim
    Delayack
    Wopenack
    Recovery
    RecoveryDone
    RecoveryRTO
    RecoveryNoSeq
    RecoveryCwind
    RecoveryPA
    Nstats

cdef enum:
    # beyond tcp.c: counters of the modern profile, appended to /net/tcp/stats
    # after tcp.c's 28 (order of xstatnames in tcp.pyx)
    SackRecovery = 0
    SackRecoveryDone
    SackRetransSegs
    SackBlocksIn
    SackBlocksOut
    DsackIn
    DsackOut
    TsRttSamples
    PawsDrops
    ChallengeAcks
    RstChallenged
    AckOutOfRange
    RackLost
    TlpProbes
    SynCookiesSent
    SynCookiesOk
    SynCookiesBad
    HystartCss
    HystartExits
    SpuriousRtos
    Nxstats

cdef class Tcptimer:
    cdef Tcptimer next
    cdef Tcptimer prev
    cdef public int state
    cdef public int start
    cdef int count                 # remaining ticks when not running
    cdef unsigned long long expire # tick at which it fires while running
    cdef int func                  # Tf*
    cdef object arg                # Conv or Limbo

cdef class Reseq:
    cdef Reseq next
    cdef Tcp seg
    cdef object data               # bytes
    cdef unsigned short length

cdef class Limbo:
    cdef Limbo next
    cdef unsigned char laddr[16]
    cdef unsigned char raddr[16]
    cdef unsigned short lport
    cdef unsigned short rport
    cdef unsigned int irs
    cdef unsigned int iss
    cdef unsigned short mss
    cdef unsigned short rcvscale
    cdef unsigned short sndscale
    cdef unsigned int lastsend
    cdef unsigned char version
    cdef unsigned char rexmits
    cdef int h
    # beyond tcp.c: what the SYN offered (modern listener)
    cdef unsigned char sackok
    cdef unsigned char hasts
    cdef unsigned char hasws               # the SYN offered a window scale
    cdef unsigned char profile
    cdef unsigned int tsval
    cdef unsigned int tsoff
    cdef unsigned char cookie       # a SYN cookie's SYN-ACK (not in limbo)
    cdef unsigned int chacktime     # challenge ACKs this second (modern: limborst)
    cdef int chackcnt
    cdef Tcptimer timer

cdef class Tcpctl:
    # The layout is what zero() and copyfrom() rely on (tcp.c's memset of
    # inittcpctl and memmove of tcpincoming, one call each): first the
    # object fields and what both keep, then every plain field in two
    # blocks between the markers zfirst, zmid and zend, which must stay
    # the last field.  [zfirst, zmid): cleared by zero(), copied by
    # copyfrom(); [zmid, zend): cleared by both (per-connection state of
    # the modern profile).  A new plain field goes into one of the blocks;
    # tcp.pyx checks at import that the markers bound them and that zend
    # is last.
    cdef Reseq reseq
    cdef public Tcptimer timer
    cdef public Tcptimer acktimer
    cdef public Tcptimer rtt_timer
    cdef public Tcptimer katimer
    # beyond tcp.c: the Time_wait list (TcpProto.twhead), oldest first
    cdef Conv twnext
    cdef Conv twprev
    cdef bint ontw
    # beyond tcp.c: the profile and per-conversation switches (set by
    # ctl before connect/announce; kept by zero(), copied by copyfrom())
    cdef public unsigned char profile       # Prof9front or Profmodern
    cdef public bint sackok                 # offer/accept SACK (RFC 2018)
    cdef public bint tsok                   # offer/accept timestamps (RFC 7323)
    cdef public int rtomin                  # ms
    cdef public int cc                      # CCnewreno
    cdef public bint rackok                 # RACK-TLP (RFC 8985) with SACK

    cdef unsigned long long zfirst          # marker: block 1 starts here
    cdef public unsigned char state
    cdef public unsigned char type
    cdef public unsigned char code
    # snd
    cdef public unsigned int snd_una, snd_nxt, snd_ptr, snd_wnd, snd_urg, snd_wl2
    cdef public unsigned int snd_scale
    cdef public unsigned int snd_dupacks, snd_partialack
    cdef public int snd_recovery, snd_retransmit, snd_rto
    cdef public unsigned int snd_rxt
    # rcv
    cdef public unsigned int rcv_nxt, rcv_wnd, rcv_wsnt, rcv_wptr, rcv_urg, rcv_ackptr
    cdef public int rcv_blocked
    cdef public unsigned int rcv_scale

    cdef public unsigned int iss
    cdef public unsigned int cwind
    cdef public unsigned int abcbytes
    cdef public unsigned int scale
    cdef public unsigned int ssthresh
    cdef public int resent
    cdef public int irs
    cdef public unsigned short mss
    cdef public int rerecv
    cdef public unsigned int window
    cdef public unsigned int qscale
    cdef public unsigned char backoff
    cdef public int backedoff
    cdef public unsigned char flags
    cdef public unsigned int rttseq
    cdef public int srtt
    cdef public int mdev
    cdef public int kacounter
    cdef public unsigned int sndsyntime
    cdef public unsigned int time
    cdef public unsigned int timeuna
    cdef public int nochecksum
    cdef public int flgcnt
    # challenge ACKs (RFC 5961 section 7 throttle): start of the current
    # one-second window and ACKs sent in it
    cdef public unsigned int chacktime
    cdef public int chackcnt
    # beyond tcp.c: the largest datagram the route's medium segments itself
    # (IpLayer.gso; 0: every segment is at most mss)
    cdef public unsigned int gsolen
    # beyond tcp.c: negotiated state (cleared by inittcpctl)
    cdef public bint sack                   # SACK in use on this connection
    cdef public bint ts                     # timestamps in use
    cdef public unsigned int ts_recent      # TS.Recent
    cdef public unsigned int tsoff          # TSval = now + tsoff
    cdef public unsigned int max_snd_wnd    # RFC 5961 section 5
    cdef public bint rack                   # RACK-TLP in use on this connection

    cdef unsigned long long zmid            # marker: block 2 starts here
    # the resequence queue's length (reseq, an object, is set apart)
    cdef public int nreseq
    cdef public int reseqlen
    # receiver side: most recently received out-of-order segment, a
    # pending D-SACK block (RFC 2883)
    cdef public unsigned int rcv_lastoo
    # and the ones before it, most recent first (RFC 2018 section 4 orders
    # the SACK blocks by recency)
    cdef unsigned int rcv_oohist[NOOHIST]
    cdef public int rcv_nooh
    cdef public bint dsack
    cdef public unsigned int dsack_l, dsack_r
    # sender side: the RFC 6675 scoreboard (sorted, disjoint SACKed ranges
    # above snd.una), HighRxt, RecoveryPoint
    cdef unsigned int sb_l[NSCORE]
    cdef unsigned int sb_r[NSCORE]
    cdef public int nsb
    cdef public bint sackrecovery
    cdef public bint sacksending
    cdef public unsigned int highrxt
    cdef public unsigned int recoverypt
    # RACK-TLP (RFC 8985): the segments in flight in sequence order (a
    # ring), with their last transmission time and flags
    cdef unsigned int xl_s[NXL]
    cdef unsigned int xl_e[NXL]
    cdef unsigned int xl_t[NXL]
    cdef unsigned char xl_f[NXL]
    cdef public int xl_head, xl_n
    cdef public unsigned int rack_ts, rack_end, rack_rtt, minrtt
    cdef public bint rack_valid
    cdef public bint tlpout                 # a probe is out
    cdef public int tlpmode                 # 1: the timer is a PTO, 2: reorder
    # the RACK-TLP timer, in milliseconds off the wheel (TcpProto.fine):
    # the wheel's 50 ms ticks are coarser than the round trips it serves
    cdef public unsigned int tlp_at
    cdef public bint tlp_on
    # CUBIC (RFC 9438), in segments and seconds: W_max, the W_max before it
    # (fast convergence), K, W_est, the epoch's start (ms) and whether one runs
    cdef public double cu_wmax, cu_lastwmax, cu_k, cu_west
    cdef public unsigned int cu_epoch
    cdef public bint cu_epochon
    # HyStart++ (RFC 9406) in the first slow start: on, in CSS, the round's
    # end, this and the last round's least RTT (ms), samples this round,
    # the CSS baseline RTT, CSS rounds
    cdef public bint hs_on, hs_css
    cdef public unsigned int hs_wend
    cdef public unsigned int hs_cur, hs_last, hs_base
    cdef public int hs_cnt, hs_rounds
    # F-RTO (RFC 5682): step (1 after the timeout, 2 after the first new
    # ACK), cwnd and ssthresh before the timeout, SND.HIGH (recover)
    cdef public int frto
    cdef public unsigned int frto_cwnd, frto_ssthresh, frto_recover
    cdef unsigned long long zend            # marker: the end; the last field
    cdef void zero(self)
    cdef void copyfrom(self, Tcpctl o)
    cdef void fresh(self)

cdef class TcpProto(Proto):
    cdef unsigned long long stats_[Nstats]
    cdef public bint tcpporthogdefense
    cdef public int tcp_irtt
    # timers
    cdef list wheel                 # NWHEEL slots: Tcptimer chains
    cdef public unsigned long long ticks     # ticks run so far
    cdef public unsigned int nexttick        # ms time of the next tick
    cdef public int ntimers                  # timers running
    cdef unsigned long long nextexp          # earliest expiry (valid unless nextdirty)
    cdef bint nextdirty
    # limbo
    cdef public int nlimbo
    cdef list lht                   # NLHT Limbo chains
    # beyond tcp.c: the conversations in Time_wait, in the order they
    # entered it (linked through Tcpctl.twnext/twprev), for pgc to reuse
    # the oldest when the table is full
    cdef Conv twhead
    cdef Conv twtail
    cdef public int ntimewait
    # statistics beyond tcp.c's (not in /net/tcp/stats): Time_wait
    # conversations reused by pgc, and reopened by a new SYN
    cdef public unsigned long long twreused
    cdef public unsigned long long twreopened
    # beyond tcp.c: the profile new conversations get (Prof9front is tcp.c),
    # its counters, the RFC 6528 secret
    cdef public unsigned char profile
    cdef unsigned long long xstats_[Nxstats]
    cdef bytes isnkey
    # beyond tcp.c: conversations with a RACK-TLP timer, and the earliest
    # (valid unless finedirty)
    cdef set fine
    # beyond tcp.c: SYN cookies (RFC 4987) once limbo is full
    cdef public bint cookiesent
    cdef public unsigned int cookietime
    cdef bint finedirty
    cdef bint fineany
    cdef unsigned int finenext
    cdef Conv finenextconv
    cdef public unsigned int tsadjust       # tests: added to every TSval offset
    cdef public int defaultcc               # congestion controller of new conversations (modern)
    # beyond tcp.c: output held back while a burst of input is processed
    # (pbatch), so one segment acknowledges the whole burst
    cdef public bint batching
    cdef dict deferred
    cpdef pbatch(self, bint on)
    cpdef Conv clone(self, str owner)
    cpdef object wheeldeadline(self)

    cdef unsigned long long curtick(self) noexcept
    cdef void tcpgo(self, Tcptimer t)
    cdef void tcphalt(self, Tcptimer t)
    cdef void timerstate(self, Tcptimer t, int newstate)
    cdef int timercount(self, Tcptimer t)
    cdef void tcpsetstate(self, Conv s, unsigned char newstate)
    cdef void tcprcvwin(self, Conv s)
    cdef void tcpacktimer(self, Conv s)
    cdef void tcpcongestion(self, Tcpctl tcb)
    cdef void tcpabcincr(self, Tcpctl tcb, unsigned int acked)
    cdef void localclose(self, Conv s, object reason)
    cdef int tcpmtu(self, object r, int version, unsigned int *scale)
    cdef void inittcpctl(self, Conv s, int mode)
    cdef void tcpstart(self, Conv s, int mode)
    cdef object buildseg(self, int version, const unsigned char *src, const unsigned char *dst,
                         int ttl, int tos, Tcp *tcph, Queue q, Py_ssize_t off, Py_ssize_t dlen,
                         const unsigned char *extra, Tcpctl tcb)
    cdef object htontcp4(self, Tcp *tcph, Conv s, Queue q, Py_ssize_t off, Py_ssize_t dlen,
                         const unsigned char *extra, Tcpctl tcb)
    cdef object htontcp6(self, Tcp *tcph, Conv s, Queue q, Py_ssize_t off, Py_ssize_t dlen,
                         const unsigned char *extra, Tcpctl tcb)
    cdef int ntohtcp4(self, Tcp *tcph, const unsigned char *h, Py_ssize_t avail) noexcept
    cdef int ntohtcp6(self, Tcp *tcph, const unsigned char *h, Py_ssize_t avail) noexcept
    cdef void tcpsndsyn(self, Conv s, Tcpctl tcb)
    cdef int sndrst(self, const unsigned char *source, const unsigned char *dest, unsigned short length,
                    Tcp *seg, int version, str reason, object rh) except? -2
    cdef int sndsynack(self, Limbo lp) except? -2
    cdef void limbo(self, Conv s, const unsigned char *source, const unsigned char *dest, Tcp *seg, int version,
                    bint setiss=*, unsigned int iss=*)
    cdef void twlink(self, Conv s)
    cdef void twunlink(self, Conv s)
    cdef bint twreopen(self, Conv s, Tcp *seg, const unsigned char *source, const unsigned char *dest,
                       int version) except -1
    cdef void limborexmit(self, Limbo lp)
    cdef void limbofree(self, Limbo lp)
    cdef void limbosched(self, Limbo lp)
    cdef void limborst(self, Conv s, Tcp *segp, const unsigned char *src, const unsigned char *dst, int version)
    cdef int limbochallengeack(self, Limbo lp) except? -2
    cdef Conv tcpincoming(self, Conv s, Tcp *segp, const unsigned char *src, const unsigned char *dst, int version)
    cdef void tcpsynackrtt(self, Conv s, Tcp *seg)
    cdef void update(self, Conv s, Tcp *seg)
    cdef int tcpiput(self, const unsigned char *p, Py_ssize_t n) except -1
    cdef void tcpoutput(self, Conv s)
    cdef int tcpsendka(self, Conv s) except? -2
    cdef int tcpchallengeack(self, Conv s) except? -2
    cdef void tcpsetkacounter(self, Tcpctl tcb)
    cdef void tcpkeepalive(self, Conv s)
    cdef void tcprxmit(self, Conv s)
    cdef void tcptimeout(self, Conv s)
    cdef void procsyn(self, Conv s, Tcp *seg)
    cdef int addreseq(self, Tcpctl tcb, Tcp *seg, const unsigned char *dp, unsigned short length)
    cdef int dumpreseq(self, Tcpctl tcb)
    cdef void tcpsettimer(self, Tcpctl tcb)
    cdef void tcpsetscale(self, Conv s, Tcpctl tcb, unsigned short rcvscale, unsigned short sndscale)
    cdef void tcpkick(self, Conv s)
    cdef void tcpclose(self, Conv s)
    cdef int tcphangup(self, Conv s) except -1
    cdef void runtimer(self, Tcptimer t)
    cdef void tick(self)
    cdef int tcpinput(self, Conv s, Tcp *segp, const unsigned char *dp, int length,
                      const unsigned char *source, const unsigned char *dest, int version) except -1
    cdef int reset2(self, Conv s, Tcp *seg, int length, const unsigned char *source,
                    const unsigned char *dest, int version, str reason) except -1
    cdef int tcpstartka(self, Conv s, list f) except -1
    cdef int tcpsetchecksum(self, Conv s, list f) except -1
    cdef void logreseq(self, Reseq r, unsigned int n)
    cdef int tcptrim(self, Tcpctl tcb, Tcp *seg, const unsigned char **dp, int *length)
    # beyond tcp.c: the modern profile
    cdef void setprofile(self, Tcpctl tcb, int profile)
    cdef unsigned int isn(self, const unsigned char *laddr, unsigned short lport,
                          const unsigned char *raddr, unsigned short rport)
    cdef unsigned int tsoffset(self, const unsigned char *laddr, unsigned short lport,
                               const unsigned char *raddr, unsigned short rport)
    cdef int tcpoptctl(self, Conv s, list f) except -1
    cdef int tcppaws(self, Conv s, Tcp *seg, int length) except -1
    cdef void tcprttsample(self, Tcpctl tcb, int rtt)
    cdef void sackupdate(self, Tcpctl tcb, Tcp *seg)
    cdef bint sacklost(self, Tcpctl tcb, unsigned int seq)
    cdef unsigned int sackpipe(self, Tcpctl tcb)
    cdef void sacksend(self, Conv s)
    cdef void tcpsendat(self, Conv s, unsigned int seq, unsigned int maxlen)
    cdef int sackblocks(self, Tcpctl tcb, unsigned int *out)
    cdef void oohistpush(self, Tcpctl tcb, unsigned int seq)
    cdef void dsackqueued(self, Tcpctl tcb, unsigned int seq, int length)
    cdef void sackenter(self, Conv s)
    cdef void xlog(self, Tcpctl tcb, unsigned int seq, unsigned int end, bint rexmit)
    cdef void rackupdate(self, Tcpctl tcb, unsigned int ack)
    cdef int rackdetect(self, Conv s)
    cdef void tlparm(self, Conv s)
    cdef void tcptlp(self, Conv s)
    cdef void cubicincr(self, Tcpctl tcb, unsigned int acked)
    cdef unsigned int hystart(self, Tcpctl tcb, unsigned int acked, unsigned int incr)
    cdef unsigned int syncookie(self, const unsigned char *laddr, unsigned short lport,
                                const unsigned char *raddr, unsigned short rport,
                                unsigned int irs, unsigned int count, int mssidx)
    cdef void sndcookie(self, Conv s, const unsigned char *source, const unsigned char *dest,
                        Tcp *seg, int version)
    cdef Limbo cookiecheck(self, Conv s, Tcp *segp, const unsigned char *src,
                           const unsigned char *dst, int version)
    cdef void finearm(self, Conv s, int ms)
    cdef void finehalt(self, Conv s)
    cdef bint finedue(self, unsigned int upto)
    cdef unsigned int rackpipe(self, Tcpctl tcb)
    cdef int racknext(self, Tcpctl tcb, unsigned int *seq, unsigned int *n)
