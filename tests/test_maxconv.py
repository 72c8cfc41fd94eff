"""The per-user conversation limit (net9 serve --maxconv-per-user N, beyond
devip, where one user can take every conversation): counted per protocol
and per owner, over clone, opens of an unused conversation, and calls
waiting on a user's listeners; past it, devip's "no free devices".  On the
engine (sim wire) and through the 9P server (tests/served.py)."""

import pytest

from net9 import sim
from net9.errors import Net9Error

from tcphelp import announce, dial

ENODEV = "no free devices"


def test_clone_limit_per_owner_and_protocol():
    P = sim.pair(seed=11)
    A = P.tcpa
    A.maxperuser = 3
    mine = [A.clone("alice") for _ in range(3)]
    with pytest.raises(Net9Error, match="^%s$" % ENODEV):
        A.clone("alice")
    assert A.owned("alice") == 3
    # others are not affected
    b = A.clone("bob")
    assert b.owner == "bob"
    # the last close gives the slot back (the conversation becomes the
    # network's while TCP finishes with it)
    A.closeconv(mine[0])
    assert A.owned("alice") == 2
    again = A.clone("alice")
    assert again.owner == "alice"
    # another protocol counts on its own
    from net9.udp import UdpProto
    U = UdpProto(P.fsa)
    U.maxperuser = 1
    U.clone("alice")
    with pytest.raises(Net9Error, match=ENODEV):
        U.clone("alice")
    # 0 is devip's: no limit
    A.maxperuser = 0
    _extra = [A.clone("alice") for _ in range(20)]
    assert A.owned("alice") == 23


def test_calls_on_a_listener_count_for_its_owner():
    P = sim.pair(seed=12)
    A, B = P.tcpa, P.tcpb
    B.maxperuser = 3
    l = announce(B, 80, user="alice")         # 1
    _c1 = dial(A, "10.0.0.2!80")
    _c2 = dial(A, "10.0.0.2!80")
    assert P.wire.run(until=lambda: len(l.incall) == 2, max_ms=5000)   # 3
    assert B.owned("alice") == 3
    # a third call finds no conversation for alice: limbo's SYN-ACK gets
    # the caller to Established, then the ACK that would make the call
    # draws a RST (tcpincoming: Fsnewcall failed)
    refused = dial(A, "10.0.0.2!80")
    assert P.wire.run(until=lambda: A.tcb(refused).statename == "Closed", max_ms=5000)
    assert len(l.incall) == 2
    assert B.owned("alice") == 3
    # bob is not touched by alice's load
    B.clone("bob")
    # taking a call and hanging it up makes room again
    call = B.takecall(l)
    B.closeconv(call)
    again = dial(A, "10.0.0.2!80")
    assert P.wire.run(until=lambda: len(l.incall) == 2, max_ms=5000)
    assert A.connectresult(again) is True


def test_limit_through_9p():
    """Through the 9P server: clone answers "no free devices" to the user
    at the limit, and only to that user."""
    from net9.client import Client, NinepError
    from served import Served
    s = Served()
    try:
        s.call(lambda: setattr(s.st.tcp, "maxperuser", 2))
        alice = Client(s.addr, uname="alice")
        bob = Client(s.addr, uname="bob")
        eve = Client(s.addr, uname=s.eve)
        try:
            fids = [alice.walkopen("tcp/clone", 2) for _ in range(2)]
            with pytest.raises(NinepError, match=ENODEV):
                alice.walkopen("tcp/clone", 2)
            fb = bob.walkopen("tcp/clone", 2)
            n = bob.read(fb, 32).decode().strip()
            bob.clunk(fb)
            alice.clunk(fids[0])
            f = alice.walkopen("tcp/clone", 2)
            alice.clunk(f)
            # the limit is everyone's, eve's too; and opening an unused
            # conversation (eve may open any) takes one as clone does
            efids = [eve.walkopen("tcp/clone", 2) for _ in range(2)]
            fb = bob.walkopen("tcp/clone", 2)
            n = bob.read(fb, 32).decode().strip()
            bob.clunk(fb)
            with pytest.raises(NinepError, match=ENODEV):
                eve.walkopen("tcp/%s/ctl" % n, 2)
            eve.clunk(efids[0])
            eve.clunk(eve.walkopen("tcp/%s/ctl" % n, 2))
        finally:
            alice.close()
            bob.close()
            eve.close()
    finally:
        s.close()
