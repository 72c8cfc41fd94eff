"""tcp.c's port-hog defense with traffic (ctl "tcpporthogdefense on"): an
ACK between snd.una - 2^31 and snd.una - 2^29 is a stateless hog's answer
to a keepalive and ends the connection ("stateless hog"); any other ACK is
taken as usual; keepalives go out about a quarter of the sequence space
behind snd.una.  Found by tests/packetdrill/net9/porthog-defense.pkt: the
window's lower bound, snd.una - (1u << 31), was computed as a Python int
(Cython folds 1u << 31 into one), so every ACK raised OverflowError while
snd.una was below 2^31.
"""

import pytest

from net9.errors import Net9Error

from tcphelp import established, crafted, state


def hogpair(low):
    """An established pair with the defense on, a's snd.una below 2^31
    (low) or above it."""
    for seed in range(1, 200):
        P, l, c, call = established(seed=seed)
        una = P.tcpa.tcb(c).snd_una
        if (una < (1 << 31)) == low:
            P.tcpa.ctl(c, "tcpporthogdefense on")
            return P, c
    raise AssertionError("no seed gives snd.una %s 2^31" % ("below" if low else "above"))


@pytest.mark.parametrize("low", [True, False])
def test_hog_ack_ends_connection(low):
    P, c = hogpair(low)
    A = P.tcpa
    t = A.tcb(c)
    ack = (t.snd_una - (1 << 30)) & 0xFFFFFFFF
    P.a.inject(crafted(c, "A", seq=t.rcv_nxt, ack=ack))
    assert state(A, c) == "Closed"
    with pytest.raises(Net9Error):
        A.write(c, b"x")


@pytest.mark.parametrize("low", [True, False])
def test_ordinary_acks_pass(low):
    P, c = hogpair(low)
    A = P.tcpa
    t = A.tcb(c)
    # an ACK of what is acknowledged already, and one just outside the
    # hog window (snd.una - 2^29 + 1): old news, nothing more
    for ack in (t.snd_una, (t.snd_una - (1 << 29) + 1) & 0xFFFFFFFF):
        P.a.inject(crafted(c, "A", seq=t.rcv_nxt, ack=ack))
        assert state(A, c) == "Established"
    A.write(c, b"hello")
    P.wire.advance(100)
    assert A.tcb(c).snd_una == A.tcb(c).snd_nxt


def test_keepalive_seq_far_behind():
    P, c = hogpair(True)
    A = P.tcpa
    una = A.tcb(c).snd_una
    A.ctl(c, "keepalive 1000")
    start = len(P.wire.capture)
    P.wire.advance(1100)
    from net9.sim import parse
    ka = [parse(p) for (tm, s, d, p) in P.wire.capture[start:] if s == "a"]
    assert ka
    # snd.una - 2^30 - nrand(2^20)
    behind = (una - ka[0].seq) & 0xFFFFFFFF
    assert (1 << 30) <= behind < (1 << 30) + (1 << 20)
