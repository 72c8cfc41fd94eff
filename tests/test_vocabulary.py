"""The named states Python code uses are the engine's own constants.

ConvState (conv.pxd) and TcpState, TcptimerState (tcp.pxd) are cpdef enums:
Python sees the very values the Cython code compares against.  These tests
tie them to what the engine shows: the status line's state name, and the
devip state a conversation goes through."""

from net9 import sim
from net9.conv import ConvState
from net9.tcp import TcpState, TcptimerState, tcpstates


def test_tcp_states_are_tcpstates_in_order():
    assert [s.name for s in TcpState] == list(tcpstates)
    assert [int(s) for s in TcpState] == list(range(len(tcpstates)))


def test_devip_states_follow_a_conversation():
    P = sim.pair(seed=3)
    lc = P.tcpb.clone("b")
    assert lc.state == ConvState.Idle
    P.tcpb.ctl(lc, "announce 9")
    assert lc.state == ConvState.Announced
    c = P.tcpa.clone("a")
    P.tcpa.ctl(c, "connect 10.0.0.2!9")
    assert c.state == ConvState.Connecting
    assert P.tcpa.status(c).split()[0] == TcpState.Syn_sent.name
    assert P.tcpa.tcb(c).state == TcpState.Syn_sent
    assert P.wire.run(until=lambda: c.state != ConvState.Connecting, max_ms=5000)
    assert c.state == ConvState.Connected
    assert P.tcpa.tcb(c).state == TcpState.Established
    assert P.tcpa.status(c).split()[0] == "Established"


def test_timer_states():
    P = sim.pair(seed=3)
    lc = P.tcpb.clone("b")
    P.tcpb.ctl(lc, "announce 9")
    c = P.tcpa.clone("a")
    assert P.tcpa.tcb(c).timer.state == TcptimerState.TcptimerOFF
    P.tcpa.ctl(c, "connect 10.0.0.2!9")
    assert P.tcpa.tcb(c).timer.state == TcptimerState.TcptimerON  # SYN retransmit
    assert [int(s) for s in TcptimerState] == [0, 1, 2]
