# cython: language_level=3
"""Congestion control beyond tcp.c, for the modern profile (issue 12).

tcp.c grows cwind with NewReno and appropriate byte counting in update()
and halves it on loss.  Here are the pieces a modern profile adds, in the
RFCs' own terms, as functions over plain structs (cc.pxd) so that a
Tcpctl holds them like its other fields and the engine stays sans-I/O:

- CUBIC (RFC 9438): the window as a cubic function of the time since the
  last reduction, W_cubic(t) = C (t - K)^3 + W_max, with the Reno-friendly
  estimate W_est (section 4.3), the concave and convex regions and their
  per-ACK target (4.4, 4.5), the multiplicative decrease by beta_cubic =
  0.7 (4.6), fast convergence (4.7), the timeout (4.8) and the undo of a
  spurious reduction (4.9).
- HyStart++ (RFC 9406): slow start that watches each round's minimum
  RTT; a rise of more than RttThresh moves to conservative slow start
  (growth divided by CSS_GROWTH_DIVISOR), which either returns to slow
  start (the rise was spurious) or after CSS_ROUNDS rounds ends slow start
  with ssthresh = cwnd.

Windows come in and go out in bytes (the engine's unit); CUBIC's
equations are in segments of the MSS and seconds, as the RFC writes
them.  The clock is the engine's, in ms; RTT samples are µs.

The classes at the end (CubicModel, HystartModel) wrap the functions for
tests and for anyone checking the curves from Python; the engine calls
the cdef functions directly.
"""

from libc.math cimport cbrt

# RFC 9438 section 5: C = 0.4, beta_cubic = 0.7
cdef double CUBIC_C = 0.4
cdef double CUBIC_BETA = 0.7
# section 4.3: alpha_cubic = 3 (1 - beta) / (1 + beta) while W_est is below
# the window before the reduction, 1 after
cdef double CUBIC_ALPHA = 3.0 * (1.0 - 0.7) / (1.0 + 0.7)

# RFC 9406 section 4.3's constants (non-paced sender: L = 8)
cdef unsigned int HS_L = 8
cdef unsigned int HS_MIN_RTT_THRESH = 4000          # µs
cdef unsigned int HS_MAX_RTT_THRESH = 16000         # µs
cdef unsigned int HS_MIN_RTT_DIVISOR = 8
cdef unsigned int HS_N_RTT_SAMPLE = 8
cdef unsigned int HS_CSS_GROWTH_DIVISOR = 4
cdef unsigned int HS_CSS_ROUNDS = 5
cdef unsigned int HS_INF = 0xffffffff

cdef double WMAXBYTES = 1073741824.0                # 2^30: windows stay unsigned ints


cdef inline bint seq_ge(unsigned int a, unsigned int b) noexcept nogil:
    return <int>(a - b) >= 0


# -- CUBIC -------------------------------------------------------------------

cdef void cubic_init(Cubic *c) noexcept nogil:
    c.wmax = 0
    c.wlastmax = 0
    c.k = 0
    c.west = 0
    c.cwndprior = 0
    c.cwndepoch = 0
    c.acc = 0
    c.epoch = -1
    c.savewmax = 0
    c.savewlastmax = 0
    c.savek = 0
    c.saved = 0
    c.fastconv = 1


cdef double cubic_w(Cubic *c, double t) noexcept nogil:
    """W_cubic(t) = C (t - K)^3 + W_max (section 4.2, eq. 1), segments."""
    cdef double d = t - c.k
    return CUBIC_C * d * d * d + c.wmax


cdef unsigned int cubic_ssthresh(Cubic *c, unsigned int cwnd, unsigned int flight,
                                 unsigned int mss) noexcept nogil:
    """A congestion event (fast retransmit, or a timeout: then cubic_timeout
    too): remember the window (W_max, with fast convergence) and answer
    the new ssthresh, flight_size * beta_cubic and at least 2 segments
    (section 4.6).  The caller sets cwnd as its recovery does."""
    cdef double w
    cdef double t
    if mss == 0:
        mss = 1
    w = <double>cwnd / mss
    c.savewmax = c.wmax
    c.savewlastmax = c.wlastmax
    c.savek = c.k
    c.saved = 1
    # section 4.7: a window reduced before it reached the last W_max means
    # a new flow is taking bandwidth: give some up by aiming lower
    if c.fastconv and w < c.wmax:
        c.wlastmax = c.wmax
        c.wmax = w * (1.0 + CUBIC_BETA) / 2.0
    else:
        c.wlastmax = c.wmax
        c.wmax = w
    c.cwndprior = w
    c.epoch = -1
    c.acc = 0
    t = <double>flight * CUBIC_BETA
    if t < 2.0 * mss:
        t = 2.0 * mss
    if t > WMAXBYTES:
        t = WMAXBYTES
    return <unsigned int>t


cdef void cubic_timeout(Cubic *c) noexcept nogil:
    """A retransmission timeout (section 4.8): after cubic_ssthresh, cwnd
    restarts from one segment in slow start, and the next epoch starts at
    the first ACK in congestion avoidance (K from that window)."""
    c.epoch = -1
    c.acc = 0


cdef void cubic_undo(Cubic *c) noexcept nogil:
    """The reduction was spurious (section 4.9: F-RTO, D-SACK, timestamps
    said so): W_max and K as before it; the caller restores cwnd and
    ssthresh it saved."""
    if not c.saved:
        return
    c.wmax = c.savewmax
    c.wlastmax = c.savewlastmax
    c.k = c.savek
    c.saved = 0
    c.epoch = -1
    c.acc = 0


cdef unsigned int cubic_ack(Cubic *c, unsigned int cwnd, unsigned int acked,
                            unsigned int mss, long long now, unsigned int rttus) noexcept nogil:
    """An ACK of `acked` new bytes in congestion avoidance (cwnd >= ssthresh):
    the new cwnd in bytes, never less than cwnd."""
    cdef double w, t, target, wc, inc, nw
    if mss == 0 or acked == 0:
        return cwnd
    w = <double>cwnd / mss
    if c.epoch < 0:
        # the epoch starts (section 4.2): K from the window now; a window
        # already past W_max (no reduction yet, or regrown) starts at the
        # plateau: K = 0, W_max = cwnd
        c.epoch = now
        c.cwndepoch = w
        if c.wmax <= w:
            c.wmax = w
            c.k = 0
        else:
            c.k = cbrt((c.wmax - w) / CUBIC_C)
        c.west = w
        c.acc = 0
    t = <double>(now - c.epoch) / 1000.0
    if t < 0:
        t = 0
    # section 4.3: W_est grows as Reno with AIMD(alpha_cubic, beta_cubic)
    if c.west < c.cwndprior:
        c.west += CUBIC_ALPHA * (<double>acked / mss) / w
    else:
        c.west += (<double>acked / mss) / w
    wc = cubic_w(c, t)
    if wc < c.west:
        # the Reno-friendly region: cwnd follows W_est
        nw = c.west
        if nw <= w:
            return cwnd
        c.acc = 0
        nw = nw * mss
        if nw > WMAXBYTES:
            nw = WMAXBYTES
        return <unsigned int>nw
    # the concave and convex regions (4.4, 4.5): aim at W_cubic one RTT on,
    # within [cwnd, 1.5 cwnd], and close (target - cwnd) / cwnd of the gap
    # per segment acknowledged
    target = cubic_w(c, t + <double>rttus / 1e6)
    if target < w:
        target = w
    elif target > 1.5 * w:
        target = 1.5 * w
    inc = (target - w) / w * acked + c.acc
    if inc < 1.0:
        c.acc = inc
        return cwnd
    c.acc = inc - <double>(<unsigned int>inc)
    nw = <double>cwnd + <double>(<unsigned int>inc)
    if nw > WMAXBYTES:
        nw = WMAXBYTES
    return <unsigned int>nw


# -- HyStart++ ---------------------------------------------------------------

cdef void hystart_init(Hystart *h) noexcept nogil:
    h.windowend = 0
    h.lastminrtt = HS_INF
    h.curminrtt = HS_INF
    h.samples = 0
    h.cssbaseline = HS_INF
    h.cssrounds = 0
    h.state = HYSTART_SS
    h.started = 0
    h.exited = 0


cdef void hystart_rtt(Hystart *h, unsigned int rttus) noexcept nogil:
    """An RTT sample (µs) of this round."""
    if h.state == HYSTART_DONE:
        return
    if rttus < h.curminrtt:
        h.curminrtt = rttus
    h.samples += 1


cdef void hystart_loss(Hystart *h) noexcept nogil:
    """Loss (or ECN) in slow start or CSS ends HyStart++ (section 4.2): the
    loss response sets ssthresh; later slow starts are standard ones."""
    h.state = HYSTART_DONE


cdef bint hystart_exit(Hystart *h) noexcept nogil:
    """True once, when CSS has run its rounds: the caller sets ssthresh to
    cwnd (and so enters congestion avoidance)."""
    if h.exited:
        h.exited = 0
        return True
    return False


cdef unsigned int hystart_ack(Hystart *h, unsigned int ack, unsigned int sndnxt,
                              unsigned int acked, unsigned int mss,
                              unsigned int rttus) noexcept nogil:
    """An ACK of `acked` new bytes in slow start (cwnd < ssthresh), with its
    RTT sample in µs (0xffffffff: it gave none): the bytes cwnd may grow by
    (section 4.2: min(acked, L * SMSS), divided by CSS_GROWTH_DIVISOR in
    CSS; standard slow start's once HyStart++ is done).  The ACK that ends
    a round is the first of the next, and so is its sample."""
    cdef unsigned int grow, thresh
    grow = acked
    if grow > HS_L * mss:
        grow = HS_L * mss
    if h.state == HYSTART_DONE:
        return grow
    if not h.started:
        h.started = 1
        h.windowend = sndnxt
    elif seq_ge(ack, h.windowend):
        # a round ends: the next one ends when what is sent now is acknowledged
        if h.state == HYSTART_CSS:
            h.cssrounds += 1
            if h.cssrounds >= HS_CSS_ROUNDS:
                h.state = HYSTART_DONE
                h.exited = 1
                return grow // HS_CSS_GROWTH_DIVISOR
        h.lastminrtt = h.curminrtt
        h.curminrtt = HS_INF
        h.samples = 0
        h.windowend = sndnxt
    if rttus != HS_INF:
        hystart_rtt(h, rttus)
    if h.state == HYSTART_SS:
        if (h.samples >= HS_N_RTT_SAMPLE and h.curminrtt != HS_INF
                and h.lastminrtt != HS_INF):
            thresh = h.lastminrtt // HS_MIN_RTT_DIVISOR
            if thresh > HS_MAX_RTT_THRESH:
                thresh = HS_MAX_RTT_THRESH
            if thresh < HS_MIN_RTT_THRESH:
                thresh = HS_MIN_RTT_THRESH
            if h.curminrtt >= h.lastminrtt + thresh:
                h.cssbaseline = h.curminrtt
                h.state = HYSTART_CSS
                h.cssrounds = 0
                return grow // HS_CSS_GROWTH_DIVISOR
        return grow
    # CSS: a round whose minimum fell below the baseline says the rise was
    # spurious: back to slow start
    if h.samples >= HS_N_RTT_SAMPLE and h.curminrtt < h.cssbaseline:
        h.cssbaseline = HS_INF
        h.state = HYSTART_SS
        return grow
    return grow // HS_CSS_GROWTH_DIVISOR


# -- Python views, for tests and inspection -----------------------------------

C = CUBIC_C
BETA = CUBIC_BETA
ALPHA = CUBIC_ALPHA
N_RTT_SAMPLE = HS_N_RTT_SAMPLE
CSS_ROUNDS = HS_CSS_ROUNDS
CSS_GROWTH_DIVISOR = HS_CSS_GROWTH_DIVISOR
MIN_RTT_THRESH = HS_MIN_RTT_THRESH
MAX_RTT_THRESH = HS_MAX_RTT_THRESH
L = HS_L
NONE = HS_INF


cdef class CubicModel:
    """One connection's CUBIC state, driven from Python."""
    cdef Cubic c

    def __init__(self, fastconv=True):
        cubic_init(&self.c)
        self.c.fastconv = 1 if fastconv else 0

    def ssthresh(self, unsigned int cwnd, unsigned int flight, unsigned int mss):
        return cubic_ssthresh(&self.c, cwnd, flight, mss)

    def timeout(self):
        cubic_timeout(&self.c)

    def undo(self):
        cubic_undo(&self.c)

    def ack(self, unsigned int cwnd, unsigned int acked, unsigned int mss,
            long long now, unsigned int rttus):
        return cubic_ack(&self.c, cwnd, acked, mss, now, rttus)

    def w(self, double t):
        return cubic_w(&self.c, t)

    @property
    def wmax(self):
        return self.c.wmax

    @property
    def k(self):
        return self.c.k

    @property
    def west(self):
        return self.c.west

    @property
    def epoch(self):
        return self.c.epoch


cdef class HystartModel:
    """One connection's HyStart++ state, driven from Python."""
    cdef Hystart h

    def __init__(self):
        hystart_init(&self.h)

    def rtt(self, unsigned int rttus):
        hystart_rtt(&self.h, rttus)

    def ack(self, unsigned int ack, unsigned int sndnxt, unsigned int acked, unsigned int mss,
            rttus=None):
        return hystart_ack(&self.h, ack, sndnxt, acked, mss,
                           HS_INF if rttus is None else rttus)

    def exit(self):
        return hystart_exit(&self.h)

    def loss(self):
        hystart_loss(&self.h)

    @property
    def state(self):
        return ("ss", "css", "done")[self.h.state]

    @property
    def cssbaseline(self):
        return None if self.h.cssbaseline == HS_INF else self.h.cssbaseline
