"""Helpers the TCP tests share (test_tcp_*.py, test_maxconv, test_memory):
names for devip's and tcp.c's states, sequence arithmetic, and the moves
of a test on net9.sim's wire (announce, dial, an established pair, the
segments captured, a crafted segment, a direction dropped).  Expected
values stay in the tests; nothing here decides a result."""

from net9 import sim
from net9.conv import ConvState
from net9.sim import build, ipstr, parse
from net9.tcp import TcpState, tcpstates

Connecting = ConvState.Connecting


# ---------------------------------------------------------------- sequence numbers

def u32(x):
    return x & 0xFFFFFFFF


def seq_lt(x, y):
    return ((x - y) & 0xFFFFFFFF) >= 0x80000000


def seq_le(x, y):
    return x == y or seq_lt(x, y)


def seq_gt(x, y):
    return seq_lt(y, x)


def seq_ge(x, y):
    return seq_le(y, x)


# ---------------------------------------------------------------- states

def state(tcp, c):
    """TCP state name of c, read both from the tcb and from the first word
    of the status line (they must agree)."""
    s = tcpstates[tcp.tcb(c).state]
    assert tcp.status(c).split(" ", 1)[0] == s
    return s


def tcpstate(tcp, c):
    """TCP state name of c from the tcb alone."""
    return TcpState(tcp.tcb(c).state).name


# ---------------------------------------------------------------- moves on the sim wire

def announce(tcp, port=80, user="bob"):
    l = tcp.clone(user)
    tcp.ctl(l, "announce %s" % port)
    return l


def dial(tcp, dest, local=None, user="alice"):
    c = tcp.clone(user)
    tcp.ctl(c, "connect %s" % dest + (" " + local if local else ""))
    return c


def established(seed=1, v6=False, port=80):
    """A pair with one connection a -> b!port accepted: (P, listener,
    client conv on a, call on b).  The wire is left quiet."""
    P = sim.pair(seed=seed, v6=v6)
    l = announce(P.tcpb, port)
    c = dial(P.tcpa, "%s!%d" % (P.baddr, port))
    assert P.wire.run(until=lambda: c.state != Connecting and l.incall, max_ms=5000)
    assert P.tcpa.connectresult(c) is True
    call = P.tcpb.takecall(l)
    P.wire.advance(10)
    return P, l, c, call


def in_state(name, seed=1):
    """A connection with a's end c in TCP state name, b's end call, the
    wire quiet.  Returns (P, c, call, host that owns c, tcp of c)."""
    P, l, c, call = established(seed=seed)
    A, B = P.tcpa, P.tcpb
    if name == "Established":
        pass
    elif name == "Finwait1":
        drop(P, "a")                    # our FIN is never acked
        A.closeconv(c)
    elif name == "Finwait2":
        A.closeconv(c)
        P.wire.advance(10)
    elif name == "Close_wait":
        B.closeconv(call)
        P.wire.advance(10)
    elif name == "Closing":
        drop(P, "a")                    # b never sees our FIN
        A.closeconv(c)
        B.closeconv(call)               # b's FIN does not ack ours
        P.wire.advance(10)
    elif name == "Last_ack":
        B.closeconv(call)
        P.wire.advance(10)
        drop(P, "a")                    # our FIN never arrives
        A.closeconv(c)
    elif name == "Time_wait":
        A.closeconv(c)
        P.wire.advance(10)
        B.closeconv(call)
        P.wire.advance(10)
    else:
        raise ValueError(name)
    assert state(A, c) == name
    return P, c, call


def segs(P, start=0, src=None):
    """Parsed captured packets (from index start), optionally only those
    sent by host src ("a"/"b")."""
    return [parse(p) for (t, s, d, p) in P.wire.capture[start:] if src is None or s == src]


def crafted(c, flags, seq, ack=0, payload=b"", window=65535, options=None):
    """A segment from c's remote end to c (remote -> local)."""
    return build(ipstr(c.remoteaddr), ipstr(c.localaddr), c.rport, c.lport, seq=seq,
                 ack=ack, flags=flags, window=window, payload=payload, options=options)


def drop(P, src_name):
    """Drop every packet sent by host src_name from now on."""
    P.wire.filter = lambda s, d, pkt: None if s.name == src_name else pkt
