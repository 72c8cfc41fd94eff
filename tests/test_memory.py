"""Memory given back: queue buffers of closed and idle conversations
(net9.qio, Fs.trim), no growth across identical rounds of many
conversations through the TCP engine (net9.sim's wire, tracemalloc: the
queues allocate through PyMem_Raw*, so their buffers are traced too), the
9P server's per-connection objects freed without the cyclic collector, and
net9.stack's trimming on a live loop."""

import gc
import time
import tracemalloc
import weakref

import pytest

from net9 import qio, sim
from net9.conv import ConvState
from net9.tcp import tcpstates

Closed = tcpstates.index("Closed")
Established = tcpstates.index("Established")


def caps(c):
    return (c.rq.cap, c.wq.cap, c.eq.cap)


def forget(P):
    """Drop what the simulated wire records (it keeps every packet)."""
    P.wire.capture.clear()
    P.wire.deliveries.clear()
    for h in (P.a, P.b):
        h.wakeups.clear()


def round_trip(P, lis, n, nbytes, close=True):
    """n conversations a -> b, nbytes each way at once, read by both sides;
    then (close) closed by both and run until every one is Closed.
    Returns the (client, server) conversation pairs."""
    cs = []
    for _i in range(n):
        c = P.tcpa.clone("u")
        P.tcpa.ctl(c, "connect %s!80" % P.baddr)
        cs.append(c)
    ss = []

    def accepted():                             # take calls as they come (Maxincall 10)
        while True:
            x = P.tcpb.takecall(lis)
            if x is None:
                break
            ss.append(x)
        return len(ss) == n and all(c.state != ConvState.Connecting for c in cs)
    assert P.run(until=accepted, max_ms=20_000)
    pairs = list(zip(cs, ss))
    chunk = b"m" * 16384
    sent = {id(c): 0 for c in cs + ss}
    got = {id(c): 0 for c in cs + ss}

    def step():
        done = True
        for x, p in [(c, P.tcpa) for c in cs] + [(s, P.tcpb) for s in ss]:
            while sent[id(x)] < nbytes and not x.wq.flow:
                p.write(x, chunk[:min(len(chunk), nbytes - sent[id(x)])])
                sent[id(x)] += min(len(chunk), nbytes - sent[id(x)])
            while True:
                d = p.read(x, 1 << 20)
                if not d:
                    break
                got[id(x)] += len(d)
            done = done and sent[id(x)] == nbytes and got[id(x)] == nbytes
        return done
    assert P.run(until=step, max_ms=120_000)
    if close:
        for c, s in pairs:
            P.tcpa.closeconv(c)
            P.tcpb.closeconv(s)
        assert P.run(until=lambda: all(P.tcpa.tcb(c).state == Closed and
                                       P.tcpb.tcb(s).state == Closed for c, s in pairs),
                     max_ms=60_000)
    return pairs


def setup_pair(seed):
    P = sim.pair(seed=seed)
    lis = P.tcpb.clone("u")
    P.tcpb.ctl(lis, "announce 80")
    return P, lis


def test_closed_conversations_hold_no_buffers():
    P, lis = setup_pair(21)
    pairs = round_trip(P, lis, 8, 200_000)
    for c, s in pairs:
        assert caps(c) == (0, 0, 0) and caps(s) == (0, 0, 0)
    assert P.fsa.trimmer.busy == 0 and P.fsb.trimmer.busy == 0
    assert P.fsa.trimmer.released >= 8 * 200_000      # the receive queues at least


def test_idle_conversations_give_buffers_back_through_trim():
    P, lis = setup_pair(22)
    pairs = round_trip(P, lis, 4, 300_000, close=False)
    assert P.run(until=lambda: all(len(c.wq) == 0 and len(s.wq) == 0 for c, s in pairs),
                 max_ms=10_000)
    conns = [x for pr in pairs for x in pr]
    assert all(x.rq.cap > 0 and x.wq.cap > 0 for x in conns)
    assert P.fsa.trimmer.busy > 0
    # the first sweep sees data moved since the last one: nothing is touched
    before = [caps(x) for x in conns]
    assert P.fsa.trim() > 0 and P.fsb.trim() > 0
    assert [caps(x) for x in conns] == before
    # idle since: every buffer goes
    assert P.fsa.trim() == 0 and P.fsb.trim() == 0
    assert all(caps(x) == (0, 0, 0) for x in conns)
    assert P.fsa.trimmer.busy == 0
    # the conversations still work, and a steady stream keeps its buffers
    c, s = pairs[0]
    for _i in range(5):
        P.tcpa.write(c, b"q" * 20000)
        assert P.run(until=lambda: len(s.rq) == 20000, max_ms=5_000)
        assert P.fsb.trim() >= 1 and s.rq.cap > 0      # moved since the last sweep
        assert P.tcpb.read(s, 1 << 20) == b"q" * 20000
    for c, _s in pairs:
        assert P.tcpa.tcb(c).state == Established


def test_no_growth_across_identical_rounds():
    """Open, transfer both ways and close 16 conversations, three times:
    the second identical round leaves no more traced memory than the
    first (conversation slots are reused, their queues freed)."""
    P, lis = setup_pair(23)
    round_trip(P, lis, 16, 100_000)           # warm-up: slots, caches, code paths
    forget(P)
    tracemalloc.start()
    try:
        round_trip(P, lis, 16, 100_000)
        forget(P)
        gc.collect()
        first = tracemalloc.get_traced_memory()[0]
        held1 = qio.held()
        snap1 = tracemalloc.take_snapshot()
        round_trip(P, lis, 16, 100_000)
        forget(P)
        gc.collect()
        second = tracemalloc.get_traced_memory()[0]
        snap2 = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = second - first
    top = "\n".join(str(x) for x in snap2.compare_to(snap1, "lineno")[:8])
    assert growth < 16 * 1024, "grew %d bytes:\n%s" % (growth, top)
    assert qio.held() == held1                # every buffer of these queues went
    assert len(P.tcpa.conv) <= 17 and len(P.tcpb.conv) <= 18


def test_limbo_calls_are_freed_without_the_collector():
    """A call leaving limbo (the SYN cache) is freed at once: its timer no
    longer refers back to it."""
    P, lis = setup_pair(24)
    gc.collect()
    gc.disable()
    try:
        from net9.tcp import Limbo
        n0 = sum(1 for o in gc.get_objects() if type(o) is Limbo)
        round_trip(P, lis, 5, 1000)
        assert P.tcpb.limbocount() == 0
        assert sum(1 for o in gc.get_objects() if type(o) is Limbo) == n0
    finally:
        gc.enable()


# ---- the 9P server --------------------------------------------------------------------

def test_server_connections_are_freed_without_the_collector():
    """Parked requests (completed, flushed, and aborted by the client going
    away) leave no reference cycle: the dropped connection's objects go at
    once, not when the cyclic collector gets round to them."""
    from ninepenv import Env, Raw
    from net9 import ninep as n
    env = Env()
    gc.collect()
    gc.disable()
    try:
        def conv(ctl):
            """A new client whose fid 1 is a new conversation's ctl, ctl
            written to it: (client, conversation number)."""
            x = Raw(env)
            x.version(8192, "9P2000")
            x.attach(0, "glenda")
            x.walk(0, 1, "tcp/clone")
            x.open(1, 2)
            k = int(x.read(1)[2])
            x.write(1, ctl)
            return x, k
        r, num = conv(b"announce 7100")
        c, cnum = conv(b"connect 127.0.0.1!7100")
        r.walk(0, 2, "tcp/%d/listen" % num)
        o = r.open(2, 2)
        assert o[0] == n.Ropen
        anum = int(r.read(2)[2])
        r.walk(0, 3, "tcp/%d/data" % anum)
        r.open(3, 2)
        c.walk(0, 2, "tcp/%d/data" % cnum)
        c.open(2, 2)
        # a read that parks and completes, one flushed, one left parked
        t = r.tag()
        r.send(n.pack(n.Tread, t, 3, 0, 100))
        assert c.write(2, b"hello")[0] == n.Rwrite
        assert r.recv(t)[2] == b"hello"
        t = r.tag()
        r.send(n.pack(n.Tread, t, 3, 0, 100))
        assert r.rpc(n.Tflush, t)[0] == n.Rflush
        r.send(n.pack(n.Tread, r.tag(), 3, 0, 100))
        t = c.tag()
        c.send(n.pack(n.Tread, t, 2, 0, 100))     # parked on the other side too
        conns = env.call(lambda: [weakref.ref(x) for x in env.server.conns])
        assert len(conns) == 2
        r.close()
        c.close()
        deadline = time.time() + 10
        while env.call(lambda: len(env.server.conns)) and time.time() < deadline:
            time.sleep(0.02)
        assert env.call(lambda: [w() for w in conns]) == [None, None]
    finally:
        gc.enable()
        env.close()


# ---- net9.stack: sweeps and malloc_trim on a live loop ------------------------------

def test_stack_trims_idle_queues_and_the_heap():
    stack = pytest.importorskip("net9.stack")
    st = stack.Stack(tun=None, loopback=True)
    try:
        lis = st.announce("7200")
        c = st.dial("127.0.0.1!7200")
        s = lis.accept()
        c.write(b"x" * 2_000_000)
        got = 0
        while got < 2_000_000:
            got += len(s.read(1 << 20))
        assert c.drain()
        assert s.c.rq.cap > 0 and c.c.wq.cap > 0
        # idle: within two sweeps (about a second apart) the buffers go
        assert st.run(until=lambda: caps(s.c) == (0, 0, 0) and caps(c.c) == (0, 0, 0),
                      timeout=10)
        assert st.fs.trimmer.busy == 0
        if stack.malloc_trim is not None:
            assert st.run(until=lambda: st.heaptrims > 0, timeout=10)
        c.close()
        s.close()
        lis.close()
    finally:
        st.close()
