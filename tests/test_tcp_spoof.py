"""Segments an off-path attacker can send into a live connection, over the
deterministic sim wire: a SYN with the connection's 4-tuple (any sequence
number, with and without ACK) in every synchronized state, ACKs of data
never sent, and segments without ACK.  tcp.c took the acknowledgment field
of such segments as real (one spoofed SYN stalled a connection, sending
FIN|ACKs for ever); net9 answers a SYN with RFC 5961's challenge ACK and
drops ACKs beyond SND.NXT (RFC 9293 section 3.10.7.4), in tcp.c's profile
too.  The RST rules stay tcp.c's here (test_tcp_states.py).
"""

import random

import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

from tcphelp import crafted, established, in_state, segs, state

# tcp.pxd CHALLENGEMAX: challenge ACKs per conversation per second
CHALLENGEMAX = 10


def snapshot(tcp, c):
    t = tcp.tcb(c)
    return dict(state=t.state, snd_una=t.snd_una, snd_nxt=t.snd_nxt, rcv_nxt=t.rcv_nxt,
                flgcnt=t.flgcnt, snd_wnd=t.snd_wnd, nreseq=t.nreseq, cwind=t.cwind,
                qin=len(c.rq), qout=len(c.wq))


SYNCHRONIZED = ["Established", "Finwait1", "Finwait2", "Close_wait", "Closing",
                "Last_ack", "Time_wait"]


def spoofed_syns(tcb, rng):
    """The SYNs of the test: random and in-window sequence numbers, with and
    without ACK, random and plausible acknowledgments."""
    def r32():
        return rng.getrandbits(32)
    return [
        ("S", r32(), r32()),
        ("S", tcb.rcv_nxt, 0),
        ("S", tcb.rcv_nxt + 100, r32()),
        ("SA", r32(), r32()),
        ("SA", tcb.rcv_nxt, tcb.snd_una),
        ("SA", tcb.rcv_nxt + 100, tcb.snd_nxt),
    ]


@pytest.mark.parametrize("name", SYNCHRONIZED)
def test_syn_in_synchronized_state_gets_challenge_ack_only(name):
    P, c, call = in_state(name)
    A = P.tcpa
    tcb = A.tcb(c)
    before = snapshot(A, c)
    rng = random.Random(name)
    syns = spoofed_syns(tcb, rng)
    n0 = len(P.wire.capture)
    for flags, seq, ack in syns:
        P.a.inject(crafted(c, flags, seq, ack=ack, payload=b"evil" if seq == tcb.rcv_nxt else b""))
    # nothing in the connection moved
    assert snapshot(A, c) == before
    out = segs(P, n0, "a")
    # one challenge ACK per SYN: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, nothing else
    assert len(out) == len(syns), [str(s) for s in out]
    for s in out:
        assert s.flags == "A" and s.payload == b""
        assert s.seq == tcb.snd_nxt and s.ack == tcb.rcv_nxt
        assert s.csum_ok
    if name == "Established":
        assert A.read(c, 1 << 16) is None


@pytest.mark.parametrize("name", ["Established"])
def test_data_flows_after_syns(name):
    """The attack of the report: after the SYNs, data still moves both
    ways and the close is clean.  (devip has no half-close: a peer that
    closed cannot read, so the other states are checked against Linux in
    test_spoof_linux.py.)"""
    P, c, call = in_state(name, seed=3)
    A, B = P.tcpa, P.tcpb
    rng = random.Random(3)
    for flags, seq, ack in spoofed_syns(A.tcb(c), rng):
        P.a.inject(crafted(c, flags, seq, ack=ack))
    P.wire.advance(100)
    A.write(c, b"x" * 5000)
    if name == "Established":
        B.write(call, b"y" * 5000)
    assert P.wire.run(until=lambda: len(call.rq) == 5000 and
                      (name != "Established" or len(c.rq) == 5000), max_ms=5000)
    assert B.read(call, 1 << 16) == b"x" * 5000
    if name == "Established":
        assert A.read(c, 1 << 16) == b"y" * 5000
    assert state(A, c) == name
    A.closeconv(c)
    if name == "Established":
        B.closeconv(call)
    assert P.wire.run(until=lambda: state(A, c) in ("Time_wait", "Closed"), max_ms=5000)


@pytest.mark.parametrize("seed", range(20))
def test_one_random_syn_never_stalls(seed):
    """The report's trial: one SYN, random sequence and acknowledgment
    numbers, no ACK, into an idle established connection; 5 of 10 such
    trials stalled tcp.c's connection."""
    P, c, call = in_state("Established", seed=seed)
    A, B = P.tcpa, P.tcpb
    rng = random.Random(seed)
    P.a.inject(crafted(c, "S", rng.getrandbits(32), ack=rng.getrandbits(32)))
    P.wire.advance(200)
    A.write(c, b"a" * 3000)
    B.write(call, b"b" * 3000)
    assert P.wire.run(until=lambda: len(call.rq) == 3000 and len(c.rq) == 3000, max_ms=3000)
    assert A.read(c, 5000) == b"b" * 3000
    assert B.read(call, 5000) == b"a" * 3000
    assert state(A, c) == "Established"
    assert [s for s in segs(P, 0, "a") if "F" in s.flags] == []


def test_challenge_acks_are_throttled():
    P, c, call = in_state("Established")
    A = P.tcpa
    n0 = len(P.wire.capture)
    for i in range(3 * CHALLENGEMAX):
        P.a.inject(crafted(c, "S", 1000 + i))
    assert len(segs(P, n0, "a")) == CHALLENGEMAX
    # a new second, a new allowance
    P.wire.advance(1001)
    n1 = len(P.wire.capture)
    P.a.inject(crafted(c, "S", 5))
    assert [s.flags for s in segs(P, n1, "a")] == ["A"]
    assert state(A, c) == "Established"


def test_retransmitted_synack_after_lost_ack_is_answered():
    """The legitimate SYN in a synchronized state: the peer's SYN-ACK again
    because our ACK of it was lost.  The challenge ACK is the ACK it needs."""
    P, l, c, call = established(seed=4)
    A = P.tcpa
    tcb = A.tcb(c)
    n0 = len(P.wire.capture)
    P.a.inject(crafted(c, "SA", tcb.irs, ack=tcb.iss + 1, options={"mss": 1460}))
    out = segs(P, n0, "a")
    assert [(s.flags, s.seq, s.ack) for s in out] == [("A", tcb.snd_nxt, tcb.rcv_nxt)]


@pytest.mark.parametrize("name", ["Established", "Close_wait", "Finwait1"])
def test_ack_beyond_snd_nxt_dropped_with_ack(name):
    """RFC 9293 section 3.10.7.4: an ACK of data not yet sent is answered
    with an ACK and dropped, with its data; tcp.c moved snd.una past
    snd.nxt."""
    P, c, call = in_state(name, seed=5)
    A = P.tcpa
    tcb = A.tcb(c)
    before = snapshot(A, c)
    n0 = len(P.wire.capture)
    P.a.inject(crafted(c, "A", tcb.rcv_nxt, ack=tcb.snd_nxt + 5000, payload=b"z" * 10))
    assert snapshot(A, c) == before
    out = segs(P, n0, "a")
    assert len(out) == 1 and "A" in out[0].flags and "S" not in out[0].flags
    assert out[0].ack == tcb.rcv_nxt


def test_out_of_window_segment_with_bogus_ack_changes_nothing():
    P, c, call = in_state("Established", seed=6)
    A = P.tcpa
    tcb = A.tcb(c)
    before = snapshot(A, c)
    # far out of the window: tcptrim refuses it; tcp.c then ran update()
    # with its acknowledgment field, ACK bit or not
    for flags in ("", "A", "F", "FA", "P"):
        P.a.inject(crafted(c, flags, tcb.rcv_nxt + 0x40000000, ack=tcb.snd_una + 0x10000000))
    assert snapshot(A, c) == before


def test_out_of_order_segment_without_ack_not_queued():
    P, c, call = in_state("Established", seed=7)
    A = P.tcpa
    tcb = A.tcb(c)
    n0 = len(P.wire.capture)
    P.a.inject(crafted(c, "", tcb.rcv_nxt + 10, ack=12345, payload=b"q" * 100))
    assert tcb.nreseq == 0
    assert segs(P, n0, "a") == []
    # with ACK it is queued, as in tcp.c, and a duplicate ACK is forced
    P.a.inject(crafted(c, "A", tcb.rcv_nxt + 10, ack=tcb.snd_una, payload=b"q" * 100))
    assert tcb.nreseq == 1
    assert [s.flags for s in segs(P, n0, "a")] == ["A"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1),
       flags=st.lists(st.sampled_from(["S", "SA", "A", "", "F", "FA", "PA", "SF", "SU", "UA"]),
                      min_size=1, max_size=12),
       inwindow=st.booleans())
def test_spoofed_segments_during_transfer(seed, flags, inwindow):
    """Blind segments (no RST: tcp.c accepts any RST in the window) with
    random sequence and acknowledgment numbers during a transfer both ways:
    the transfer still completes, byte for byte."""
    P, c, call = in_state("Established", seed=seed % 1000)
    A, B = P.tcpa, P.tcpb
    rng = random.Random(seed)
    da = rng.randbytes(40000)
    db = rng.randbytes(30000)
    A.write(c, da)
    B.write(call, db)
    ga, gb = bytearray(), bytearray()
    for f in flags:
        P.wire.advance(rng.randint(0, 5))
        tcb = A.tcb(c)
        seq = tcb.rcv_nxt + rng.randint(0, 20000) if inwindow else rng.getrandbits(32)
        # a blind attacker's acknowledgment: random, so (nearly always)
        # outside [snd.una, snd.nxt]
        ack = rng.getrandbits(32)
        payload = rng.randbytes(rng.randint(0, 50))
        if inwindow:
            # in-window data or FIN with an acceptable-looking ACK is
            # taken by tcp.c (and RFC 9293 without RFC 5961's ACK limits):
            # blind ones here carry neither
            f = f.replace("F", "")
            payload = b""
        P.a.inject(crafted(c, f, seq & 0xFFFFFFFF, ack=ack, payload=payload))
        gb += B.read(call, 1 << 20) or b""
        ga += A.read(c, 1 << 20) or b""
    def done():
        gb.extend(B.read(call, 1 << 20) or b"")
        ga.extend(A.read(c, 1 << 20) or b"")
        return len(gb) >= len(da) and len(ga) >= len(db)
    assert P.wire.run(until=done, max_ms=60000)
    assert bytes(gb) == da
    assert bytes(ga) == db
    assert state(A, c) == "Established"
