"""The engine's timers against a clock that moves without Fs.advance.

net9.stack sets fs.now on every loop iteration but calls fs.advance only
when fs.nextdeadline() is due, so while only a far-off timer runs (the
120 s keepalive) the engine's tick count lags behind the clock.  A timer
armed then must still run `start` ticks after it was armed, not at once."""

from net9 import sim
from net9.conv import ConvState
from net9.tcp import CONST, TcptimerState

MSPTICK = CONST["MSPTICK"]


def established():
    P = sim.pair(seed=7)
    lc = P.tcpb.clone("b")
    P.tcpb.ctl(lc, "announce 9")
    c = P.tcpa.clone("a")
    P.tcpa.ctl(c, "connect 10.0.0.2!9")
    P.wire.run(until=lambda: c.state != ConvState.Connecting, max_ms=5000)
    assert P.tcpa.connectresult(c) is True
    P.wire.run(max_ms=2000)             # let ACK timers run out
    return P, c


def test_timer_armed_after_a_silent_clock_jump_runs_its_full_length():
    P, c = established()
    tcb = P.tcpa.tcb(c)
    assert tcb.timer.state != TcptimerState.TcptimerON and tcb.acktimer.state != TcptimerState.TcptimerON
    assert tcb.katimer.state == TcptimerState.TcptimerON       # only the keepalive runs: 2400 ticks
    # the clock moves 30 s without fs.advance, as net9.stack does while
    # nothing is due
    P.fsa.now = P.fsa.now + 30000
    before = P.tcpa.stat("RetransTimeouts")
    P.tcpa.write(c, b"x" * 100)         # arms the retransmit timer
    assert tcb.timer.state == TcptimerState.TcptimerON
    start = tcb.timer.start
    assert P.tcpa.timercount_of(tcb.timer) == start
    # its deadline is start ticks after the tick fs.now falls in: at least
    # (start - 1) ticks of 50 ms in the future, not in the past
    d = P.fsa.nextdeadline()
    assert d is not None
    assert (d - P.fsa.now) & 0xFFFFFFFF >= (start - 1) * MSPTICK
    assert (d - P.fsa.now) & 0xFFFFFFFF <= start * MSPTICK
    # catching the clock up runs no retransmission
    P.fsa.advance(P.fsa.now)
    assert P.tcpa.stat("RetransTimeouts") == before
    assert P.tcpa.timercount_of(tcb.timer) == start
