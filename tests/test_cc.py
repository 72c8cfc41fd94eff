"""CUBIC (RFC 9438) and HyStart++ (RFC 9406) of net9.cc against the RFCs'
equations and rules, driven as the engine drives them: bytes, the MSS,
the clock in ms and RTT samples in µs."""

import math

import pytest

cc = pytest.importorskip("net9.cc", reason="net9's extensions not built")

MSS = 1460


def test_constants_are_the_rfcs():
    assert cc.C == 0.4 and cc.BETA == 0.7
    assert cc.ALPHA == pytest.approx(3 * (1 - 0.7) / (1 + 0.7))
    assert (cc.N_RTT_SAMPLE, cc.CSS_ROUNDS, cc.CSS_GROWTH_DIVISOR, cc.L) == (8, 5, 4, 8)
    assert (cc.MIN_RTT_THRESH, cc.MAX_RTT_THRESH) == (4000, 16000)


def test_reduction_sets_wmax_ssthresh_and_k():
    m = cc.CubicModel()
    ss = m.ssthresh(100 * MSS, 100 * MSS, MSS)
    assert ss == int(100 * MSS * 0.7)            # flight_size * beta_cubic
    assert m.wmax == 100
    # the epoch starts at the first ACK in congestion avoidance
    assert m.epoch == -1
    cw = m.ack(ss, MSS, MSS, 1000, 100000)
    assert m.epoch == 1000
    k = math.cbrt((100 - ss / MSS) / 0.4)          # eq. 2
    assert m.k == pytest.approx(k)
    assert m.w(0) == pytest.approx(ss / MSS)
    assert m.w(k) == pytest.approx(100)
    assert m.w(k + 2) == pytest.approx(0.4 * 8 + 100)
    assert cw >= ss


def test_ssthresh_is_at_least_two_segments():
    m = cc.CubicModel()
    assert m.ssthresh(2 * MSS, MSS, MSS) == 2 * MSS


def run_ca(m, cwnd, seconds, rttms, mss=MSS, start=0):
    """An ACK clock: every RTT the whole window is acknowledged, a segment
    per ACK; the cwnd at the end of each RTT."""
    now = start
    out = []
    while now < start + seconds * 1000:
        segs = max(1, cwnd // mss)
        for i in range(segs):
            cwnd = m.ack(cwnd, mss, mss, now + (i * rttms) // segs, rttms * 1000)
        now += rttms
        out.append((now, cwnd))
    return out


def test_window_follows_the_cubic_curve():
    # a long RTT puts CUBIC in its concave then convex regions (Reno's
    # estimate grows about half a segment per RTT: far below)
    m = cc.CubicModel()
    cwnd = m.ssthresh(200 * MSS, 200 * MSS, MSS)
    trace = run_ca(m, cwnd, 12, 100)
    k = m.k
    assert k == pytest.approx(math.cbrt((200 - 140) / 0.4), rel=1e-3)
    for now, cw in trace:
        t = now / 1000.0
        want = m.w(t)                             # the target a RTT ahead was aimed at
        assert cw / MSS == pytest.approx(want, rel=0.06, abs=2), (t, cw / MSS, want)
    # concave below K (growth slowing towards W_max), convex past it
    w = {round(now / 1000.0, 1): cw / MSS for now, cw in trace}
    assert w[1.0] - w[0.5] > w[5.0] - w[4.5] > 0
    assert w[11.0] - w[10.5] > w[9.0] - w[8.5] > 0
    assert w[round(k, 1)] == pytest.approx(200, abs=3)


def test_reno_friendly_region_on_a_short_rtt():
    # with a 1 ms RTT Reno's estimate (alpha_cubic segments per RTT) outruns
    # the cubic curve, so cwnd is W_est (section 4.3)
    m = cc.CubicModel()
    cwnd = m.ssthresh(20 * MSS, 20 * MSS, MSS)
    trace = run_ca(m, cwnd, 0.2, 1)
    last = trace[-1][1] / MSS
    assert last == pytest.approx(m.west, abs=1.0)
    assert m.w(0.2) < m.west
    # 200 RTTs at about alpha_cubic (0.53) segments each, alpha 1 once past W_max
    assert 14 + 0.5 * 100 < last < 14 + 200


def test_fast_convergence_lowers_wmax():
    m = cc.CubicModel()
    m.ssthresh(100 * MSS, 100 * MSS, MSS)
    assert m.wmax == 100
    m.ssthresh(80 * MSS, 80 * MSS, MSS)           # reduced again short of W_max
    assert m.wmax == pytest.approx(80 * (1 + 0.7) / 2)
    n = cc.CubicModel(fastconv=False)
    n.ssthresh(100 * MSS, 100 * MSS, MSS)
    n.ssthresh(80 * MSS, 80 * MSS, MSS)
    assert n.wmax == 80


def test_undo_restores_the_state_before_the_reduction():
    m = cc.CubicModel()
    cw = m.ssthresh(100 * MSS, 100 * MSS, MSS)
    m.ack(cw, MSS, MSS, 0, 50000)
    k, wmax = m.k, m.wmax
    m.ssthresh(90 * MSS, 90 * MSS, MSS)
    assert m.wmax != wmax
    m.undo()
    assert m.wmax == wmax and m.k == k and m.epoch == -1
    m.undo()                                      # only once
    assert m.wmax == wmax


def test_small_acks_add_up_as_one_large():
    a, b = cc.CubicModel(), cc.CubicModel()
    ca = a.ssthresh(100 * MSS, 100 * MSS, MSS)
    cb = b.ssthresh(100 * MSS, 100 * MSS, MSS)
    ca = a.ack(ca, 1, MSS, 0, 100000)
    cb = b.ack(cb, 1, MSS, 0, 100000)
    for i in range(1, 50):
        ca = a.ack(ca, 10 * MSS, MSS, i * 100, 100000)
        for _ in range(10):
            cb = b.ack(cb, MSS, MSS, i * 100, 100000)
    assert abs(ca - cb) <= MSS
    assert ca > 70 * MSS


def test_cwnd_never_shrinks_and_stays_bounded():
    m = cc.CubicModel()
    cwnd = m.ssthresh(1 << 30, 1 << 30, MSS)
    last = cwnd
    for i in range(10000):
        cwnd = m.ack(cwnd, 64 * MSS, MSS, i * 1000, 100000)
        assert last <= cwnd <= 1 << 30
        last = cwnd
    assert cwnd == 1 << 30
    assert m.ack(cwnd, 0, MSS, 10 ** 7, 100000) == cwnd
    assert m.ack(100, MSS, 0, 0, 0) == 100


def test_timeout_starts_a_new_epoch():
    m = cc.CubicModel()
    cw = m.ssthresh(100 * MSS, 100 * MSS, MSS)
    m.ack(cw, MSS, MSS, 0, 50000)
    m.ssthresh(100 * MSS, 100 * MSS, MSS)
    m.timeout()
    assert m.epoch == -1
    # slow start back to 35 segments, then the epoch: K from there
    m.ack(35 * MSS, MSS, MSS, 5000, 50000)
    assert m.epoch == 5000
    assert m.k == pytest.approx(math.cbrt((m.wmax - 35) / 0.4))


# -- HyStart++ ----------------------------------------------------------------

def round_(h, snd, rtts, acked=MSS, cwnd_segs=10):
    """One round: the ACKs of the cwnd_segs segments sent from snd, one RTT
    sample each, each ACK clocking out a new segment; the total growth and
    where the next round's data starts."""
    grow = 0
    una = snd
    end = snd + cwnd_segs * MSS
    for i, r in enumerate(rtts):
        una += acked
        grow += h.ack(una, end + (i + 1) * acked, acked, MSS, r)
    return grow, end


def test_hystart_stays_in_slow_start_while_rtt_holds():
    h = cc.HystartModel()
    snd = 0
    for _ in range(6):
        g, snd = round_(h, snd, [50000] * 10)
        assert g == 10 * MSS
    assert h.state == "ss" and not h.exit()
    # growth per ACK is at most L segments
    assert h.ack(snd, snd + 100 * MSS, 20 * MSS, MSS) == 8 * MSS


@pytest.mark.parametrize("base,rise,css", [
    (50000, 6000, False),      # thresh = 50 ms / 8 = 6.25 ms: 6 ms is not enough
    (50000, 7000, True),
    (200000, 15000, False),    # thresh capped at MAX_RTT_THRESH, 16 ms
    (200000, 17000, True),
    (10000, 3000, False),      # thresh at least MIN_RTT_THRESH, 4 ms
    (10000, 4000, True),
])
def test_hystart_enters_css_when_rtt_rises_by_thresh(base, rise, css):
    h = cc.HystartModel()
    snd = 0
    _, snd = round_(h, snd, [base] * 10)
    _, snd = round_(h, snd, [base] * 10)
    g, snd = round_(h, snd, [base + rise] * 10)
    assert (h.state == "css") == css
    if css:
        # the 8th sample decided it; the ACKs from there grew by a quarter
        assert h.cssbaseline == base + rise
        assert g == 7 * MSS + 3 * (MSS // 4)


def test_hystart_needs_enough_samples():
    h = cc.HystartModel()
    snd = 0
    _, snd = round_(h, snd, [50000] * 10)
    _, snd = round_(h, snd, [90000] * 7)          # 7 samples: not decided
    assert h.state == "ss"


def test_hystart_css_rounds_then_congestion_avoidance():
    h = cc.HystartModel()
    snd = 0
    _, snd = round_(h, snd, [50000] * 10)
    _, snd = round_(h, snd, [50000] * 10)
    _, snd = round_(h, snd, [60000] * 10)
    assert h.state == "css"
    for _ in range(cc.CSS_ROUNDS - 1):
        g, snd = round_(h, snd, [60000] * 10)
        assert h.state == "css" and g == 10 * (MSS // 4)
        assert not h.exit()
    g, snd = round_(h, snd, [60000] * 10)
    assert h.state == "done"
    assert h.exit() is True and h.exit() is False  # told once: ssthresh = cwnd
    # standard slow start afterwards (after a timeout, say)
    assert h.ack(snd, snd, 3 * MSS, MSS) == 3 * MSS


def test_hystart_css_was_spurious_back_to_slow_start():
    h = cc.HystartModel()
    snd = 0
    _, snd = round_(h, snd, [50000] * 10)
    _, snd = round_(h, snd, [50000] * 10)
    _, snd = round_(h, snd, [60000] * 10)
    assert h.state == "css"
    g, snd = round_(h, snd, [52000] * 10)         # below the baseline
    assert h.state == "ss" and h.cssbaseline is None


def test_hystart_loss_ends_it():
    h = cc.HystartModel()
    round_(h, 0, [50000] * 10)
    h.loss()
    assert h.state == "done" and not h.exit()
    assert h.ack(100 * MSS, 200 * MSS, 2 * MSS, MSS) == 2 * MSS
