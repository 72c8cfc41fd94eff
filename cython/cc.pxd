# Congestion control beyond tcp.c (issue 12's modern profile): CUBIC
# (RFC 9438) and HyStart++ (RFC 9406), sans-I/O.  tcp.c has NewReno with
# appropriate byte counting in update(); these hold the extra per-connection
# state as plain structs (a Tcpctl copies them with its other fields) and
# are driven by the engine with byte counts, the MSS, the clock in ms and
# RTT samples in µs.  Nothing here allocates; see cc.pyx.

cdef enum:
    HYSTART_SS = 0        # slow start, watching the round's minimum RTT
    HYSTART_CSS = 1       # conservative slow start (RFC 9406 section 4.2)
    HYSTART_DONE = 2      # left slow start for good (ssthresh was set)

cdef struct Cubic:
    double wmax           # W_max: the window before the last reduction (segments)
    double wlastmax       # W_max before that, for fast convergence (section 4.7)
    double k              # K: seconds from the epoch's start to W_max again
    double west           # W_est: the Reno-friendly estimate (segments, section 4.3)
    double cwndprior      # cwnd when ssthresh was last set (segments)
    double cwndepoch      # cwnd at the epoch's start (segments)
    double acc            # fractional segments not yet added to cwnd
    long long epoch       # ms of the congestion-avoidance epoch's start; -1: none yet
    # the state saved by the last reduction, for an undo (section 4.9)
    double savewmax
    double savewlastmax
    double savek
    unsigned int saved    # 1 while the saved state may be restored
    unsigned int fastconv # fast convergence on (the RFC's default)

cdef struct Hystart:
    unsigned int windowend    # the round ends when this sequence is acknowledged
    unsigned int lastminrtt   # the previous round's minimum RTT (µs; 0xffffffff: none)
    unsigned int curminrtt    # this round's minimum so far
    unsigned int samples      # RTT samples this round
    unsigned int cssbaseline  # the minimum RTT that started CSS
    unsigned int cssrounds    # rounds completed in CSS
    unsigned int state        # HYSTART_SS, _CSS, _DONE
    unsigned int started      # a round is open (windowend valid)
    unsigned int exited       # left for congestion avoidance, not yet told (hystart_exit)

cdef void cubic_init(Cubic *c) noexcept nogil
cdef unsigned int cubic_ssthresh(Cubic *c, unsigned int cwnd, unsigned int flight,
                                 unsigned int mss) noexcept nogil
cdef void cubic_timeout(Cubic *c) noexcept nogil
cdef unsigned int cubic_ack(Cubic *c, unsigned int cwnd, unsigned int acked,
                            unsigned int mss, long long now, unsigned int rttus) noexcept nogil
cdef void cubic_undo(Cubic *c) noexcept nogil
cdef double cubic_w(Cubic *c, double t) noexcept nogil

cdef void hystart_init(Hystart *h) noexcept nogil
cdef void hystart_rtt(Hystart *h, unsigned int rttus) noexcept nogil
# hystart_ack's rttus is 0xffffffff when the ACK gave no RTT sample
cdef unsigned int hystart_ack(Hystart *h, unsigned int ack, unsigned int sndnxt,
                              unsigned int acked, unsigned int mss,
                              unsigned int rttus) noexcept nogil
cdef bint hystart_exit(Hystart *h) noexcept nogil
cdef void hystart_loss(Hystart *h) noexcept nogil
