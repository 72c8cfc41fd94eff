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

from net9.conv import ConvState
from net9 import sim
from net9.errors import Net9Error
from net9.tcp import CONST

from tcphelp import announce, crafted, dial, drop, segs, seq_gt, state, tcpstate

Connecting = ConvState.Connecting
MSL2 = CONST["MSL2"]


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
    _A, B = P.tcpa, P.tcpb
    l = announce(B)                                       # b's slot 0
    c, call = call_closed_by_b(P, l)
    assert call.x == 1 and call.inuse == 0
    assert B.timewaitlist() == [1] and B.ntimewait == 1
    x = B.clone("bob")
    assert x.x == 2                                       # 1 is in Time_wait
    B.closeconv(x)
    P.wire.advance(MSL2 * 1000 + 200)
    assert state(B, call) == "Closed"
    assert B.timewaitlist() == [] and B.ntimewait == 0
    assert B.clone("bob").x == 1                          # free again: the lowest


# ---------------------------------------------------------------- a full table


def test_full_table_of_time_wait_still_takes_calls():
    """b has 8 conversations: its announcement and 7 calls it closed first,
    all in Time_wait.  tcp.c's clone fails there (newcall gives nothing,
    the call in limbo is reset: "connection refused" for a); net9 reuses
    the oldest Time_wait conversation for the new call."""
    P = sim.pair(nc=8)
    A, B = P.tcpa, P.tcpb
    l = announce(B)
    calls = [call_closed_by_b(P, l)[1] for _ in range(7)]
    assert [x.x for x in calls] == list(range(1, 8))
    assert all(state(B, x) == "Time_wait" for x in calls)
    assert len(B.conv) == B.nc == 8
    c = dial(A, "%s!80" % P.baddr)
    # (tcp.c: the ACK of the SYN ACK finds no slot and is reset)
    assert P.wire.run(until=lambda: l.incall or tcpstate(A, c) == "Closed", max_ms=5000)
    assert A.connectresult(c) is True
    assert state(A, c) == "Established"
    assert len(l.incall) == 1
    new = B.takecall(l)
    assert new.x == 1                                    # the oldest Time_wait slot
    assert state(B, new) == "Established"
    # data moves on the new call
    A.write(c, b"hello")
    assert P.wire.run(until=lambda: len(new.rq) == 5, max_ms=5000)
    assert B.read(new, 100) == b"hello"
    assert B.timewaitlist() == list(range(2, 8))
    assert B.twreused == 1


def test_full_table_of_time_wait_still_clones():
    P = sim.pair(nc=8)
    B = P.tcpb
    l = announce(B)
    for _ in range(7):
        call_closed_by_b(P, l)
    x = B.clone("bob")
    assert x.x == 1 and state(B, x) == "Closed"
    y = B.clone("bob")
    assert y.x == 2
    assert [state(B, c) for c in B.conv[3:]] == ["Time_wait"] * 5
    assert B.timewaitlist() == list(range(3, 8))
    assert B.twreused == 2


def test_time_wait_held_by_its_user_is_not_reused():
    """A conversation in Time_wait whose ctl is still open keeps its slot;
    with nothing else to reuse, clone fails as devip's does."""
    P = sim.pair(nc=3)
    A, B = P.tcpa, P.tcpb
    l = announce(B)
    c = dial(A, "%s!80" % P.baddr)
    assert P.wire.run(until=lambda: c.state != Connecting and l.incall, max_ms=5000)
    call = B.takecall(l)
    B.incref(call)                                       # a second reference (an open data)
    B.closeconv(call)                                    # still held: no FIN yet
    assert state(B, call) == "Established"
    x = B.clone("bob")                                   # slot 2
    B.closeconv(call)                                    # the last reference: FIN
    assert P.wire.run(until=lambda: state(A, c) == "Close_wait", max_ms=5000)
    A.closeconv(c)
    assert P.wire.run(until=lambda: state(B, call) == "Time_wait", max_ms=5000)
    B.incref(call)                                       # someone holds it again
    with pytest.raises(Net9Error, match="no free devices"):
        B.clone("bob")
    assert state(B, call) == "Time_wait"
    B.closeconv(call)
    assert B.clone("bob").x == call.x                    # now it may go
    assert B.twreused == 1
    B.closeconv(x)


# ---------------------------------------------------------------- SYN in Time_wait


def time_wait_on_b(seed=1):
    P = sim.pair(seed=seed)
    l = announce(P.tcpb)
    c, call = call_closed_by_b(P, l)
    return P, l, c, call


def test_new_syn_reopens_time_wait():
    """A SYN for the Time_wait 4-tuple with a sequence number beyond the
    old connection's: the old conversation closes, limbo answers with a
    SYN ACK whose sequence number is beyond the old connection's, and the
    ACK makes a new call on the announcement."""
    P, l, c, call = time_wait_on_b()
    B = P.tcpb
    tcb = B.tcb(call)
    rcv_nxt, snd_nxt = tcb.rcv_nxt, tcb.snd_nxt
    drop(P, "b")                         # a's stack would reset the SYN ACK (its end is closed)
    n0 = len(P.wire.capture)
    isn = (rcv_nxt + 100000) & 0xFFFFFFFF
    P.b.inject(crafted(call, "S", isn, options={"mss": 1460}))
    assert state(B, call) == "Closed"
    out = segs(P, n0, "b")
    assert len(out) == 1 and out[0].flags == "SA", [str(s) for s in out]
    sa = out[0]
    assert sa.ack == (isn + 1) & 0xFFFFFFFF
    assert seq_gt(sa.seq, snd_nxt)       # RFC 1122 4.2.2.13 (1)
    assert (sa.sport, sa.dport) == (call.lport, call.rport)
    P.b.inject(crafted(call, "A", isn + 1, ack=sa.seq + 1))
    assert len(l.incall) == 1
    new = B.takecall(l)
    assert state(B, new) == "Established"
    assert (new.rport, new.remoteaddr) == (call.rport, call.remoteaddr)
    assert new.x == call.x               # the closed slot, the lowest free
    assert B.timewaitlist() == [] and B.twreopened == 1


@pytest.mark.parametrize("why", ["old seq", "same seq", "syn-ack", "no listener"])
def test_other_syns_in_time_wait_get_the_challenge_ack(why):
    P, l, c, call = time_wait_on_b()
    B = P.tcpb
    tcb = B.tcb(call)
    rcv_nxt, snd_nxt = tcb.rcv_nxt, tcb.snd_nxt
    drop(P, "b")
    flags, seq = "S", (rcv_nxt + 100000) & 0xFFFFFFFF
    if why == "old seq":
        seq = (rcv_nxt - 100000) & 0xFFFFFFFF
    elif why == "same seq":
        seq = rcv_nxt
    elif why == "syn-ack":
        flags = "SA"
    else:
        B.closeconv(l)                   # the announcement goes
    n0 = len(P.wire.capture)
    P.b.inject(crafted(call, flags, seq, ack=snd_nxt if flags == "SA" else 0))
    assert state(B, call) == "Time_wait"
    out = segs(P, n0, "b")
    assert len(out) == 1 and out[0].flags == "A"
    assert out[0].seq == snd_nxt and out[0].ack == rcv_nxt
    assert not l.incall
    assert getattr(B, "twreopened", 0) == 0


def test_reopen_with_a_real_client():
    """a dials again from the port of the first connection (its end closed,
    b's in Time_wait), with an initial sequence number beyond what b
    received: the call goes through."""
    for seed in range(1, 40):
        P, l, c, call = time_wait_on_b(seed)
        A, B = P.tcpa, P.tcpb
        port = c.lport
        c2 = A.clone("alice")
        n0 = len(P.wire.capture)
        A.ctl(c2, "connect %s!80 %d" % (P.baddr, port))
        if not seq_gt(A.tcb(c2).iss, B.tcb(call).rcv_nxt):
            continue                     # its SYN would get the challenge ACK
        assert P.wire.run(until=lambda: c2.state != Connecting and l.incall, max_ms=5000)
        assert A.connectresult(c2) is True
        new = B.takecall(l)
        assert new.rport == port and state(B, new) == "Established"
        # at once: one SYN, no reset (tcp.c: a challenge ACK, a's reset
        # of it, and a's SYN again a second later)
        sent = [x.flags for x in segs(P, n0, "a")]
        assert sent.count("S") == 1 and not any("R" in f for f in sent), sent
        return
    pytest.fail("no seed gave a later ISN")
