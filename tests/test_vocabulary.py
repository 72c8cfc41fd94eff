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


def test_9p_messages_have_named_fields():
    from net9 import ninep
    [it], used, fatal = ninep.parse(ninep.pack(ninep.Tread, 7, 5, 100, 512), 8192, False)
    assert type(it) is ninep.msgclass(ninep.Tread, False)
    assert (it.type, it.tag, it.fid, it.offset, it.count) == (ninep.Tread, 7, 5, 100, 512)
    assert it == (ninep.Tread, 7, 5, 100, 512)          # still the tuple it was
    [it], _, _ = ninep.parse(ninep.pack(ninep.Tlock, 1, 3, 1, 0, 0, 10, 42, "c"),
                             8192, True)
    assert (it.ltype, it.length, it.proc_id, it.client_id) == (1, 10, 42, "c")
    [it], _, _ = ninep.parse(ninep.pack(ninep.Tattach, 2, 1, ninep.NOFID, "u", "a"),
                             8192, False)
    assert it.uname == "u" and it.aname == "a" and it.n_uname is None


def test_9p_message_classes_cover_every_format():
    from net9 import ninep
    for dotl in (False, True):
        for t in range(256):
            fmt = ninep.tformat(t, dotl)
            cls = ninep.msgclass(t, dotl)
            assert (fmt is None) == (cls is None), t
            if cls is not None:
                assert cls.__name__.startswith("T") and getattr(ninep, cls.__name__) == t
                assert cls._fields[:2] == ("type", "tag")
                assert len(cls._fields) == 2 + len(fmt.replace("?", ""))


def test_9p_undecodable_messages_are_named():
    import struct
    from net9 import ninep
    bad = struct.pack("<IBH", 10, ninep.Tversion, 9) + b"\x01\x02\x03"
    [it], _, _ = ninep.parse(bad, 8192, False)
    assert (it.type, it.tag, it.msgtype, it.reason) == (ninep.BAD, 9, ninep.Tversion,
                                                        "short message")
    [it], _, _ = ninep.parse(struct.pack("<IBH", 7, 200, 4), 8192, False)
    assert (it.type, it.tag, it.msgtype) == (ninep.UNKNOWN, 4, 200)


def test_one_fault_model_for_the_wire_and_the_media():
    from net9 import faults, media
    assert sim.Faults is faults.Faults
    lo = media.Loopback()
    t = [0.0]
    f = media.FaultyMedium(lo, faults.Faults(loss=1.0, delay=0), clock=lambda: t[0])
    assert f.faults.loss == 1.0
    f.transmit(b"x" * 20)
    assert f.receive() == []                    # lost on the way out
    g = media.FaultyMedium(media.Loopback(), delay=0, seed=1)
    assert g.faults == faults.Faults(delay=0)
    import pytest
    with pytest.raises(ValueError):
        media.FaultyMedium(media.Loopback(), faults.Faults(jitter=3))
    with pytest.raises(TypeError):
        media.FaultyMedium(media.Loopback(), faults.Faults(), loss=0.5)


def test_each_kind_of_connection_has_its_own_name():
    from net9 import aio, dial, server, stack
    kinds = {dial.Conn, aio.AsyncConn, stack.StackConn, server.Session}
    assert len(kinds) == 4 and len({k.__name__ for k in kinds}) == 4
    assert aio.Conn is aio.AsyncConn and stack.Conn is stack.StackConn  # old names


def test_9p_parse_keeps_no_reference():
    """The named tuples parse makes are freed with their last reference
    (they are built in C: a reference too many would keep every message)."""
    import sys
    import tracemalloc
    from net9 import ninep
    msgs = ninep.pack(ninep.Twrite, 1, 5, 0, b"x" * 1000) * 8
    [it] = ninep.parse(ninep.pack(ninep.Tclunk, 2, 9), 8192, False)[0]
    assert sys.getrefcount(it) == 2          # it, and getrefcount's argument
    ninep.parse(msgs, 1 << 16, False)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(2000):
            items, used, fatal = ninep.parse(msgs, 1 << 16, False)
            assert len(items) == 8 and items[7].data == b"x" * 1000
        del items
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 100_000, grown            # 16000 messages of 1 KB kept would be 16 MB
