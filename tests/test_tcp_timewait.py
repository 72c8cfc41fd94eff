"""Conversations in Time_wait and the conversation table, over the
deterministic sim wire: clone keeps devip's lowest-free-slot choice (now
from a heap of free slots instead of a scan); a full table of Time_wait
conversations no longer refuses calls and clones (the oldest one no one
holds is reused); a SYN beyond the old connection for a 4-tuple in
Time_wait with an announcement on its port reopens it (RFC 1122 section
4.2.2.13) with an initial sequence number beyond the old one, while other
SYNs there still get the challenge ACK of test_tcp_spoof.py.
"""

import random

import pytest

from net9 import sim
from net9.errors import Net9Error
from net9.tcp import CONST, tcpstates

from test_tcp_states import announce, dial, state, segs, crafted, drop

Connecting = 3
MSL2 = CONST["MSL2"]


def tcpstate(tcp, c):
    return tcpstates[tcp.tcb(c).state]


def seq_gt(a, b):
    return 0 < ((a - b) & 0xFFFFFFFF) < (1 << 31)


def call_closed_by_b(P, l):
    """One connection a -> b!80, accepted from l and closed by b first:
    returns (a's conv, b's call); b's end is left in Time_wait, a's
    closed."""
    A, B = P.tcpa, P.tcpb
    c = dial(A, "%s!80" % P.baddr)
    assert P.wire.run(until=lambda: c.state != Connecting and l.incall, max_ms=5000)
    assert A.connectresult(c) is True
    call = B.takecall(l)
    B.closeconv(call)                          # b closes first: b's end goes to Time_wait
    assert P.wire.run(until=lambda: state(A, c) == "Close_wait", max_ms=5000)
    A.closeconv(c)
    assert P.wire.run(until=lambda: state(A, c) == "Closed" and state(B, call) == "Time_wait",
                      max_ms=5000)
    return c, call


# ---------------------------------------------------------------- clone


@pytest.mark.parametrize("seed", range(5))
def test_clone_takes_the_lowest_free_slot(seed):
    """Fsprotoclone's choice, whatever the order of clones and closes: the
    lowest-numbered slot neither referenced nor in use by TCP, else a new
    one at the end."""
    rng = random.Random(seed)
    P = sim.pair(seed=seed, nc=64)
    B = P.tcpb
    held = {}
    for _ in range(2000):
        if held and (len(held) == 64 or rng.random() < 0.45):
            x = rng.choice(sorted(held))
            B.closeconv(held.pop(x))
        else:
            want = min(set(range(64)) - set(held))
            c = B.clone("bob")
            assert c.x == want
            held[c.x] = c
    for c in held.values():
        B.closeconv(c)
    assert B.clone("bob").x == 0


def test_a_conversation_in_time_wait_is_not_cloned_until_it_expires():
    P = sim.pair(nc=16)
    A, B = P.tcpa, P.tcpb
    l = announce(B)                                       # b's slot 0
    c, call = call_closed_by_b(P, l)
    assert call.x == 1 and call.inuse == 0
    x = B.clone("bob")
    assert x.x == 2                                       # 1 is in Time_wait
    B.closeconv(x)
    P.wire.advance(MSL2 * 1000 + 200)
    assert state(B, call) == "Closed"
    assert B.clone("bob").x == 1                          # free again: the lowest
