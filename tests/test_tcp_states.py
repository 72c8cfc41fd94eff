"""TCP state machine, resets, close paths, ctl messages, status/stats text
and the conversation layer, checked against 9front's tcp.c
(shared/seeds/tcp.c) and devip.md, over the deterministic sim wire.

Every expected number is derived from tcp.c's code and constants; the
comment next to it says where it comes from.  The wire's default fault model
is a 1 ms one-way delay and nothing else, so every run is deterministic.
"""

import pytest

from net9 import sim
from net9.sim import build, parse, ip16
from net9.conv import ConvState, Fs
from net9.errors import Net9Error
from net9.ipaux import parseip
from net9.tcp import CONST, TcpProto, TcpState, tcpstates

from tcphelp import announce, crafted, dial, drop, established, in_state, segs, state

# devip states (ip.h)
Idle, Announcing, Announced, Connecting, Connected = ConvState

MSPTICK = 50                  # tcp.c MSPTICK
MSL2 = 10                     # tcp.c MSL2: Time_wait lasts MSL2 s
QMAX = 64 * 1024 - 1          # tcp.c QMAX
EHUNGUP = "i/o on hungup channel"


# ---------------------------------------------------------------- helpers

def expect_eof_then_hungup(tcp, c):
    """devip.md 4.4: a queue hung up with the Ehungup reason reads as EOF
    three times, then fails with "i/o on hungup channel"."""
    for _ in range(3):
        assert tcp.read(c, 100) == b""
    with pytest.raises(Net9Error) as ei:
        tcp.read(c, 100)
    assert str(ei.value) == EHUNGUP


def status_from_tcb(tcp, c):
    """The status line built with tcp.c tcpstate's exact format from the
    tcb's fields."""
    t = tcp.tcb(c)
    return ("%s qin %d qout %d rq %d.%d srtt %d mdev %d sst %d cwin %d swin %d>>%d "
            "rwin %d>>%d qscale %d timer.start %d timer.count %d rerecv %d "
            "katimer.start %d katimer.count %d\n") % (
        tcpstates[t.state], len(c.rq), len(c.wq), t.nreseq, t.reseqlen,
        t.srtt, t.mdev, t.ssthresh, t.cwind, t.snd_wnd, t.snd_scale,
        t.rcv_wnd, t.rcv_scale, t.qscale, t.timer.start, tcp.timercount_of(t.timer),
        t.rerecv, t.katimer.start, tcp.timercount_of(t.katimer))


class Trace:
    """Records the state of some conversations after every wire event."""

    def __init__(self, P, **convs):
        self.P = P
        self.convs = convs        # name -> (tcp, conv)
        self.seen = {k: [] for k in convs}
        self.sample()

    def sample(self):
        for k, (tcp, c) in self.convs.items():
            s = tcpstates[tcp.tcb(c).state]
            if not self.seen[k] or self.seen[k][-1] != s:
                self.seen[k].append(s)

    def run(self, until, max_ms=60000):
        start = self.P.wire.now
        while not until():
            assert self.P.wire.now - start <= max_ms, "timed out"
            assert self.P.wire.step(), "wire went idle"
            self.sample()
        return True


# ================================================================
# 1. transitions of the state diagram
# ================================================================

def test_active_open_closed_synsent_established():
    P = sim.pair(seed=1)
    l = announce(P.tcpb)
    c = P.tcpa.clone("alice")
    assert state(P.tcpa, c) == "Closed"            # fresh tcb (tcpcreate)
    assert c.state == Idle
    P.tcpa.ctl(c, "connect 10.0.0.2!80")
    # tcpstart(TCP_CONNECT): tcpsndsyn, Syn_sent, tcpoutput sends the SYN
    assert state(P.tcpa, c) == "Syn_sent"
    assert c.state == Connecting
    assert P.tcpa.connectresult(c) is None
    syn = segs(P, src="a")
    assert len(syn) == 1 and syn[0].flags == "S" and syn[0].seq == P.tcpa.tcb(c).iss
    tr = Trace(P, a=(P.tcpa, c), l=(P.tcpb, l))
    tr.run(lambda: c.state != Connecting, max_ms=1000)
    assert tr.seen["a"] == ["Syn_sent", "Established"]
    assert tr.seen["l"] == ["Listen"]
    assert P.tcpa.connectresult(c) is True
    assert c.state == Connected
    # the SYN-ACK arrived after 2 ms (1 ms each way)
    assert P.wire.now == 2


def test_passive_open_listen_limbo_established():
    P = sim.pair(seed=1)
    l = announce(P.tcpb)
    assert state(P.tcpb, l) == "Listen" and l.state == Announced
    held = []

    def hold_first_ack(s, d, pkt):
        g = parse(pkt)
        if s.name == "a" and g.flags == "A" and not held:
            held.append(pkt)
            return None
        return pkt
    P.wire.filter = hold_first_ack
    c = dial(P.tcpa, "10.0.0.2!80")
    P.wire.advance(5)
    assert P.tcpa.connectresult(c) is True
    assert len(held) == 1
    # the call is only in limbo (the SYN cache): no conversation on b yet
    assert P.tcpb.limbocount() == 1
    (ra, rp, la, lp, rexmits, lastsend), = P.tcpb.limbolist()
    assert (ra, rp, la, lp, rexmits) == ("10.0.0.1", c.lport, "10.0.0.2", 80, 0)
    assert lastsend == 1                       # SYN-ACK sent when the SYN arrived
    assert len(P.tcpb.conv) == 1 and l.incall == []
    assert P.tcpb.stat("CurrEstab") == 0
    # the final ACK comes out of limbo: tcpincoming makes a new conversation
    # straight in Established (tcp.c tcpincoming: tcpsetstate(new, Established))
    P.wire.filter = None
    P.b.inject(held[0])
    assert P.tcpb.limbocount() == 0
    assert len(l.incall) == 1
    call = l.incall[0]
    assert state(P.tcpb, call) == "Established"
    assert call.state == Connected
    assert call.x == 1                         # lowest free slot
    assert call.owner == "bob"                 # the announcer's owner
    assert P.tcpb.stat("CurrEstab") == 1
    assert state(P.tcpb, l) == "Listen"
    assert P.tcpb.takecall(l) is call and l.incall == []


def test_active_close_finwait1_finwait2_timewait_closed():
    P, l, c, call = established()
    A, B = P.tcpa, P.tcpb
    n0 = len(P.wire.capture)
    tr = Trace(P, a=(A, c), b=(B, call))
    A.closeconv(c)
    tr.sample()
    # tcpclose in Established: flgcnt++, snd.nxt++, Finwait1, tcpoutput: FIN
    assert state(A, c) == "Finwait1"
    fin = segs(P, n0, "a")
    assert len(fin) == 1 and fin[0].flags == "FA"
    assert fin[0].seq == A.tcb(c).snd_nxt - 1
    tr.run(lambda: A.tcb(c).state != TcpState.Finwait1, max_ms=1000)
    assert state(A, c) == "Finwait2"
    assert state(B, call) == "Close_wait"
    # Finwait2: the keepalive timer probes every MSL2 s (katimer.start = 200)
    assert A.tcb(c).katimer.start == MSL2 * 1000 // MSPTICK
    B.closeconv(call)
    assert state(B, call) == "Last_ack"
    tr.run(lambda: A.tcb(c).state == TcpState.Time_wait, max_ms=1000)
    t0 = P.wire.now
    assert state(A, c) == "Time_wait"
    assert (CONST["MSL2"], CONST["MSPTICK"]) == (MSL2, MSPTICK)
    assert A.tcb(c).timer.start == 200                    # MSL2*(1000/MSPTICK)
    # the Time_wait timer runs 200 ticks of tcpackproc: it fires at the
    # 200th tick from now, i.e. at nexttick + 199 ticks
    tend = A.nexttick + 199 * MSPTICK
    assert 9950 < tend - t0 <= 10000
    # the slot is not reusable while Time_wait holds it (tcpinuse)
    other = A.clone("x")
    assert other.x != c.x
    A.closeconv(other)
    tr.run(lambda: B.tcb(call).state == TcpState.Closed, max_ms=1000)
    P.wire.run_until_time(tend - 1)
    assert state(A, c) == "Time_wait"
    P.wire.run_until_time(tend)
    assert state(A, c) == "Closed"
    tr.sample()
    assert tr.seen["a"] == ["Established", "Finwait1", "Finwait2", "Time_wait", "Closed"]
    assert tr.seen["b"] == ["Established", "Close_wait", "Last_ack", "Closed"]
    # now the slot is free again: lowest free number reused
    assert A.clone("x").x == c.x


def test_passive_close_closewait_lastack_closed():
    P, l, c, call = established()
    A, B = P.tcpa, P.tcpb
    B.write(call, b"bye")
    P.wire.advance(10)
    A.closeconv(c)
    tr = Trace(P, b=(B, call))
    tr.run(lambda: B.tcb(call).state == TcpState.Close_wait, max_ms=1000)
    assert state(B, call) == "Close_wait"
    # remote FIN hangs up the read queue: EOF x3, then the error
    expect_eof_then_hungup(B, call)
    # writing in Close_wait is allowed (half close)
    assert B.write(call, b"more") == 4
    n0 = len(P.wire.capture)
    B.closeconv(call)
    tr.sample()
    assert state(B, call) == "Last_ack"
    f = [g for g in segs(P, n0, "b") if "F" in g.flags]
    assert len(f) == 1
    tr.run(lambda: B.tcb(call).state == TcpState.Closed, max_ms=1000)
    assert tr.seen["b"] == ["Established", "Close_wait", "Last_ack", "Closed"]
    # Last_ack ends on the ACK of our FIN (1 ms there, 1 ms back), with no
    # Time_wait
    assert P.wire.now - P.wire.capture[n0][0] == 2
    assert B.clone("x").x == call.x


def test_simultaneous_close_closing_timewait():
    P, l, c, call = established()
    A, B = P.tcpa, P.tcpb
    tr = Trace(P, a=(A, c), b=(B, call))
    # both close at the same virtual instant
    A.closeconv(c)
    B.closeconv(call)
    tr.sample()
    assert state(A, c) == "Finwait1" and state(B, call) == "Finwait1"
    tr.run(lambda: A.tcb(c).state == TcpState.Time_wait == B.tcb(call).state, max_ms=1000)
    # each FIN arrives in Finwait1 without acking our FIN: Closing; then
    # the ACK of our FIN in Closing: Time_wait
    assert tr.seen["a"] == ["Established", "Finwait1", "Closing", "Time_wait"]
    assert tr.seen["b"] == ["Established", "Finwait1", "Closing", "Time_wait"]
    tr.run(lambda: A.tcb(c).state == TcpState.Closed and B.tcb(call).state == TcpState.Closed, max_ms=11000)
    assert tr.seen["a"][-1] == "Closed" and tr.seen["b"][-1] == "Closed"


def test_simultaneous_open():
    P = sim.pair(seed=1)
    A, B = P.tcpa, P.tcpb
    a = dial(A, "10.0.0.2!5000", "5001")
    b = dial(B, "10.0.0.1!5001", "5000")
    assert a.lport == 5001 and b.lport == 5000
    tr = Trace(P, a=(A, a), b=(B, b))
    tr.run(lambda: A.tcb(a).state == TcpState.Established == B.tcb(b).state, max_ms=5000)
    assert tr.seen["a"] == ["Syn_sent", "Syn_received", "Established"]
    assert tr.seen["b"] == ["Syn_sent", "Syn_received", "Established"]
    # leaving Syn_sent for Syn_received completes the devip connect
    assert A.connectresult(a) is True and B.connectresult(b) is True
    g = segs(P)
    # both SYNs cross; in Syn_received tcpoutput sends nothing until our
    # SYN is acked, so the SYN-ACKs only come with the first retransmission
    # (timer.start = tcp_irtt/MSPTICK = 10 ticks = 500 ms), then the ACKs
    assert [x.flags for x in g] == ["S", "S", "SA", "SA", "A", "A"]
    assert [t for (t, s, d, p) in P.wire.capture] == [0, 0, 500, 500, 501, 501]
    # the connection works both ways
    A.write(a, b"ping")
    B.write(b, b"pong")
    P.wire.advance(100)
    assert A.read(a, 10) == b"pong" and B.read(b, 10) == b"ping"


def test_syn_received_handling():
    """A SYN (no ACK) arriving in Syn_sent moves to Syn_received; a bad ACK
    there draws a RST ("bad seq in Syn_received"); a good one establishes,
    with the data it carries queued."""
    P = sim.pair(seed=3)
    A = P.tcpa
    drop(P, "a")                      # our SYN never arrives
    c = dial(A, "10.0.0.2!80")
    tcb = A.tcb(c)
    iss = tcb.iss
    irs = 777000
    P.a.inject(crafted(c, "S", irs, options={"mss": 1000}))
    assert state(A, c) == "Syn_received"
    assert tcb.irs == irs and tcb.rcv_nxt == irs + 1
    assert tcb.mss == 1000            # procsyn: smaller mss of the peer wins
    # Fsconnected ran when we left Syn_sent: the connect succeeded
    assert c.state == Connected and A.connectresult(c) is True
    # an ACK outside snd.una+1..snd.nxt: reset2 "bad seq in Syn_received"
    n0 = len(P.wire.capture)
    rsts0 = A.stat("OutRsts")
    P.a.inject(crafted(c, "A", irs + 1, ack=iss + 5))
    r = [g for g in segs(P, n0, "a") if "R" in g.flags]
    assert len(r) == 1
    # the segment had ACK: the reset is RST alone with seq = its ack
    assert r[0].flags == "R" and r[0].seq == iss + 5 and r[0].ack == 0
    assert A.stat("OutRsts") == rsts0 + 1
    assert state(A, c) == "Syn_received"
    # the right ACK, with data
    P.a.inject(crafted(c, "PA", irs + 1, ack=iss + 1, payload=b"hello"))
    assert state(A, c) == "Established"
    assert tcb.snd_una == iss + 1
    assert A.read(c, 100) == b"hello"
    assert tcb.rcv_nxt == irs + 1 + 5


def test_close_with_queued_data_delivers_data_before_fin():
    P, l, c, call = established()
    A, B = P.tcpa, P.tcpb
    data = bytes(range(256)) * 400           # 102400 bytes, far over cwind
    A.write(c, data)
    iss = A.tcb(c).iss
    # most of it is still queued when we close
    assert len(c.wq) > 50000
    A.closeconv(c)
    assert state(A, c) == "Finwait1"
    got = bytearray()
    eof = [False]

    def reader():
        while True:
            x = B.read(call, 65536)
            if x is None:
                return False
            if x == b"":
                eof[0] = True
                return True
            got.extend(x)
    assert P.wire.run(until=reader, max_ms=20000)
    assert bytes(got) == data
    fins = [g for g in segs(P, src="a") if "F" in g.flags]
    # every FIN carries sequence number iss+1+len(data): after all the data
    assert fins and all(g.seq + len(g.payload) == (iss + 1 + len(data)) & 0xFFFFFFFF for g in fins)
    datasegs = [g for g in segs(P, src="a") if g.payload]
    assert max(g.seq + len(g.payload) for g in datasegs) == (iss + 1 + len(data)) & 0xFFFFFFFF


# ================================================================
# 2. RST in every state
# ================================================================

def rst_at(P, host, c, tcp, flags="R", seq=None, ack=0):
    """Inject an in-window RST (seq = rcv_nxt unless told) to c."""
    if seq is None:
        seq = tcp.tcb(c).rcv_nxt
    host.inject(crafted(c, flags, seq, ack=ack))


def test_rst_in_syn_sent():
    P = sim.pair(seed=2)
    A = P.tcpa
    drop(P, "a")
    c = dial(A, "10.0.0.2!80")
    tcb = A.tcb(c)
    # RST without ACK in Syn_sent: ignored (tcp.c: only RST|ACK closes)
    P.a.inject(crafted(c, "R", 12345))
    assert state(A, c) == "Syn_sent" and c.state == Connecting
    # RST|ACK with an unacceptable ack: reset2, but no RST is sent for a RST
    n0 = len(P.wire.capture)
    P.a.inject(crafted(c, "RA", 0, ack=tcb.iss + 7))
    assert state(A, c) == "Syn_sent" and c.state == Connecting
    assert segs(P, n0) == []
    # RST|ACK acking our SYN: localclose(Econrefused)
    P.a.inject(crafted(c, "RA", 0, ack=tcb.iss + 1))
    assert state(A, c) == "Closed"
    with pytest.raises(Net9Error) as ei:
        A.connectresult(c)
    assert str(ei.value) == "connection refused"
    assert c.cerr == "connection refused"


def test_rst_in_syn_received():
    P = sim.pair(seed=2)
    A = P.tcpa
    drop(P, "a")
    c = dial(A, "10.0.0.2!80")
    P.a.inject(crafted(c, "S", 5000))
    assert state(A, c) == "Syn_received"
    rst_at(P, P.a, c, A)
    assert state(A, c) == "Closed"
    expect_eof_then_hungup(A, c)


def test_rst_in_established_discards_data_and_reads_eof():
    P, l, c, call = established()
    A, B = P.tcpa, P.tcpb
    B.write(call, b"unread data")
    P.wire.advance(10)
    assert len(c.rq) == 11
    er0, ce0 = A.stat("EstabResets"), A.stat("CurrEstab")
    rst_at(P, P.a, c, A)
    assert state(A, c) == "Closed"
    assert A.stat("EstabResets") == er0 + 1
    assert A.stat("CurrEstab") == ce0 - 1
    # unread data is discarded; EOF x3 then "i/o on hungup channel"
    assert len(c.rq) == 0
    expect_eof_then_hungup(A, c)
    with pytest.raises(Net9Error) as ei:
        A.write(c, b"x")
    assert str(ei.value) == EHUNGUP
    # the conversation is still held by us; the slot frees on closeconv
    A.closeconv(c)
    assert A.clone("x").x == c.x


def test_rst_in_established_out_of_window_ignored():
    P, l, c, call = established()
    A = P.tcpa
    tcb = A.tcb(c)
    er0 = A.stat("EstabResets")
    n0 = len(P.wire.capture)
    # just past the right edge of the window, and just before rcv.nxt:
    # tcptrim does not accept them (and no ACK is forced for a RST)
    rst_at(P, P.a, c, A, seq=tcb.rcv_nxt + tcb.rcv_wnd)
    rst_at(P, P.a, c, A, seq=tcb.rcv_nxt - 1)
    rst_at(P, P.a, c, A, seq=tcb.rcv_nxt + 0x80000000)
    assert state(A, c) == "Established"
    assert A.stat("EstabResets") == er0
    assert segs(P, n0) == []
    # tcp.c accepts any RST inside the window, not only at rcv.nxt
    # (it only logs "out of order RST rcvd")
    rst_at(P, P.a, c, A, seq=tcb.rcv_nxt + 1000)
    assert state(A, c) == "Closed"
    assert A.stat("EstabResets") == er0 + 1


def test_rst_in_finwait1():
    P, c, call = in_state("Finwait1")      # (our FIN is never acked)
    A = P.tcpa
    rst_at(P, P.a, c, A)
    assert state(A, c) == "Closed"
    assert A.stat("EstabResets") == 0       # counted only in Established
    assert A.clone("x").x == c.x


def test_rst_in_finwait2():
    P, c, call = in_state("Finwait2")
    A = P.tcpa
    rst_at(P, P.a, c, A)
    assert state(A, c) == "Closed"


def test_rst_in_close_wait():
    P, c, call = in_state("Close_wait")
    A = P.tcpa
    rst_at(P, P.a, c, A)
    assert state(A, c) == "Closed"
    expect_eof_then_hungup(A, c)


def test_rst_in_closing():
    P, c, call = in_state("Closing")       # (b never sees our FIN, b's FIN does not ack it)
    A = P.tcpa
    rst_at(P, P.a, c, A)
    assert state(A, c) == "Closed"


def test_rst_in_last_ack():
    P, l, c, call = established()
    A, B = P.tcpa, P.tcpb
    A.closeconv(c)
    P.wire.advance(10)
    assert state(B, call) == "Close_wait"
    drop(P, "b")                     # b's FIN never arrives
    B.closeconv(call)
    assert state(B, call) == "Last_ack"
    rst_at(P, P.b, call, B)
    assert state(B, call) == "Closed"


def test_rst_in_time_wait():
    P, c, call = in_state("Time_wait")
    A = P.tcpa
    # tcp.c closes on an in-window RST in every synchronized state,
    # Time_wait included (no RFC 1337 protection)
    rst_at(P, P.a, c, A)
    assert state(A, c) == "Closed"
    assert A.clone("x").x == c.x


def test_rst_to_listener_only_touches_limbo():
    P = sim.pair(seed=4)
    B = P.tcpb
    l = announce(B)
    drop(P, "a")                     # a's answers to the crafted SYN are lost
    irs = 424242
    syn = build("10.0.0.1", "10.0.0.2", 4000, 80, seq=irs, flags="S")
    P.b.inject(syn)
    assert B.limbocount() == 1
    rsts0 = B.stat("OutRsts")
    n0 = len(P.wire.capture)
    # a RST whose seq is not irs+1 leaves the call in limbo (limborst)
    P.b.inject(build("10.0.0.1", "10.0.0.2", 4000, 80, seq=irs + 5, flags="R"))
    assert B.limbocount() == 1
    # a RST from another port: nothing in limbo matches
    P.b.inject(build("10.0.0.1", "10.0.0.2", 4001, 80, seq=irs + 1, flags="R"))
    assert B.limbocount() == 1
    # "RST can only follow the SYN": seq == irs+1 throws the call out
    P.b.inject(build("10.0.0.1", "10.0.0.2", 4000, 80, seq=irs + 1, flags="R"))
    assert B.limbocount() == 0
    assert state(B, l) == "Listen" and l.state == Announced
    assert B.stat("OutRsts") == rsts0
    assert [g for g in segs(P, n0, "b") if "R" in g.flags] == []
    # still listening
    c = dial(P.tcpa, "10.0.0.2!80")
    P.wire.filter = None
    P.wire.run(until=lambda: l.incall, max_ms=5000)
    assert P.tcpa.connectresult(c) is True


# ================================================================
# 3. segments to a closed port; connect to a port nobody listens on
# ================================================================

def test_segments_to_closed_port_draw_rst():
    P = sim.pair(seed=5)
    B = P.tcpb
    cases = [
        # (flags, seq, ack, payload) -> expected (flags, seq, ack) of the RST
        ("S", 1000, 0, b"", ("RA", 0, 1001)),                      # SYN: +1
        ("SF", 5000, 0, b"0123456789", ("RA", 0, 5012)),           # +len +SYN +FIN
        ("PA", 7, 12345, b"abc", ("R", 12345, 0)),                 # ACK: seq = its ack
        ("F", 0xFFFFFFFF, 0, b"", ("RA", 0, 0)),                   # FIN: +1, wraps
        ("A", 9, 99, b"", ("R", 99, 0)),
    ]
    for flags, seq, ack, payload, (rf, rseq, rack) in cases:
        n0 = len(P.wire.capture)
        r0 = B.stat("OutRsts")
        P.b.inject(build("10.0.0.1", "10.0.0.2", 4444, 9, seq=seq, ack=ack, flags=flags,
                         payload=payload))
        out = segs(P, n0, "b")
        assert len(out) == 1, flags
        g = out[0]
        assert (g.flags, g.seq, g.ack) == (rf, rseq, rack), flags
        assert (g.sport, g.dport, g.src, g.dst) == (9, 4444, "10.0.0.2", "10.0.0.1")
        assert g.window == 0 and g.payload == b"" and g.csum_ok
        assert B.stat("OutRsts") == r0 + 1
    # a RST to a closed port is not answered
    n0 = len(P.wire.capture)
    r0 = B.stat("OutRsts")
    P.b.inject(build("10.0.0.1", "10.0.0.2", 4444, 9, seq=1, flags="R"))
    assert segs(P, n0) == [] and B.stat("OutRsts") == r0


def test_connect_to_port_without_listener_refused_promptly():
    P = sim.pair(seed=5)
    A = P.tcpa
    c = dial(A, "10.0.0.2!81")
    P.wire.run(until=lambda: c.state != Connecting, max_ms=5000)
    # SYN out at 0, RST|ACK back at 2: one round trip
    assert P.wire.now == 2
    rst = segs(P, src="b")
    assert len(rst) == 1 and rst[0].flags == "RA" and rst[0].ack == A.tcb(c).iss + 1
    with pytest.raises(Net9Error) as ei:
        A.connectresult(c)
    assert str(ei.value) == "connection refused"
    assert state(A, c) == "Closed"
    # a failed connect spoils the conversation
    with pytest.raises(Net9Error) as ei:
        A.ctl(c, "connect 10.0.0.2!81")
    assert str(ei.value) == "connection in use"
    with pytest.raises(Net9Error) as ei:
        A.ctl(c, "announce 81")
    assert str(ei.value) == "connection in use"


# ================================================================
# 4. close paths
# ================================================================

def test_close_listener_stops_listening():
    P = sim.pair(seed=6)
    A, B = P.tcpa, P.tcpb
    l = announce(B)
    held = []

    def hold_ack(s, d, pkt):
        if s.name == "a" and parse(pkt).flags == "A" and not held:
            held.append(pkt)
            return None
        return pkt
    P.wire.filter = hold_ack
    c1 = dial(A, "10.0.0.2!80")
    P.wire.advance(5)
    assert B.limbocount() == 1 and held
    B.closeconv(l)
    assert state(B, l) == "Closed" and l.state == Idle
    # the slot is reusable immediately
    assert B.clone("x").x == l.x
    # the call still in the SYN cache gets a RST when its ACK arrives
    n0 = len(P.wire.capture)
    P.wire.filter = None
    P.b.inject(held[0])
    r = [g for g in segs(P, n0, "b") if "R" in g.flags]
    assert len(r) == 1 and r[0].flags == "R" and r[0].seq == parse(held[0]).ack
    P.wire.advance(5)
    assert state(A, c1) == "Closed"            # a's side took the reset
    # new SYNs get RST: connection refused
    c2 = dial(A, "10.0.0.2!80")
    P.wire.run(until=lambda: c2.state != Connecting, max_ms=1000)
    with pytest.raises(Net9Error, match="^connection refused$"):
        A.connectresult(c2)


def test_close_in_syn_sent_sends_nothing_slot_reusable():
    P = sim.pair(seed=6)
    A = P.tcpa
    drop(P, "a")
    c = dial(A, "10.0.0.2!80")
    P.wire.advance(100)
    n0 = len(P.wire.capture)
    A.closeconv(c)
    assert state(A, c) == "Closed" and c.state == Idle
    assert segs(P, n0) == []                     # no RST for an abandoned SYN
    assert A.clone("x").x == c.x                 # reusable immediately
    # and the SYN is not retransmitted any more
    P.wire.advance(30000)
    assert segs(P, n0) == []


def test_close_in_established_and_close_wait():
    P, l, c, call = established()
    A, B = P.tcpa, P.tcpb
    n0 = len(P.wire.capture)
    A.closeconv(c)
    assert state(A, c) == "Finwait1"
    assert [g.flags for g in segs(P, n0, "a")] == ["FA"]
    P.wire.advance(10)
    assert state(B, call) == "Close_wait"
    n1 = len(P.wire.capture)
    B.closeconv(call)
    assert state(B, call) == "Last_ack"
    assert [g.flags for g in segs(P, n1, "b")] == ["FA"]


@pytest.mark.parametrize("which", ["Finwait1", "Finwait2", "Closing", "Last_ack",
                                   "Time_wait", "Closed"])
def test_last_close_when_already_closing_does_nothing_more(which):
    """devip.md 2.4: the last close in Finwait1, Finwait2, Closing,
    Last_ack, Time_wait or Closed sends nothing and changes nothing."""
    P, l, c, call = established(seed=21)
    A, B = P.tcpa, P.tcpb
    # bring a's conversation there while still referenced ("close" ctl)
    if which == "Finwait1":
        drop(P, "a")
        A.ctl(c, "close")
    elif which == "Finwait2":
        A.ctl(c, "close")
        P.wire.advance(10)
    elif which == "Closing":
        drop(P, "a")
        A.ctl(c, "close")
        B.closeconv(call)
        P.wire.advance(10)
    elif which == "Last_ack":
        B.closeconv(call)
        P.wire.advance(10)
        drop(P, "a")
        A.ctl(c, "close")
    elif which == "Time_wait":
        A.ctl(c, "close")
        P.wire.advance(10)
        B.closeconv(call)
        P.wire.advance(10)
    else:
        rst_at(P, P.a, c, A)
    assert state(A, c) == which
    assert c.inuse == 1
    tcb = A.tcb(c)
    before = (tcb.snd_nxt, tcb.flgcnt, tcb.timer.start, A.timercount_of(tcb.timer))
    n0 = len(P.wire.capture)
    A.closeconv(c)
    assert c.inuse == 0 and c.state == Idle
    assert state(A, c) == which
    assert (tcb.snd_nxt, tcb.flgcnt, tcb.timer.start, A.timercount_of(tcb.timer)) == before
    assert segs(P, n0, "a") == []


def test_close_in_syn_received_queues_fin_after_syn():
    P = sim.pair(seed=22)
    A = P.tcpa
    drop(P, "a")
    c = dial(A, "10.0.0.2!80")
    tcb = A.tcb(c)
    P.a.inject(crafted(c, "S", 9000))
    assert state(A, c) == "Syn_received"
    n0 = len(P.wire.capture)
    A.closeconv(c)
    # tcpclose: flgcnt++, snd.nxt++, Finwait1; tcpoutput sends nothing until
    # our SYN is acked
    assert state(A, c) == "Finwait1"
    assert tcb.snd_nxt == (tcb.iss + 2) & 0xFFFFFFFF
    assert segs(P, n0, "a") == []
    # the ACK of our SYN: the FIN goes out right after it
    P.a.inject(crafted(c, "A", 9001, ack=tcb.iss + 1))
    out = segs(P, n0, "a")
    assert [g.flags for g in out] == ["FA"]
    assert out[0].seq == (tcb.iss + 1) & 0xFFFFFFFF and out[0].ack == 9001
    assert state(A, c) == "Finwait1"
    P.a.inject(crafted(c, "A", 9001, ack=tcb.iss + 2))
    assert state(A, c) == "Finwait2"


def test_hangup_ctl_sends_rst_and_closes():
    P, l, c, call = established()
    A, B = P.tcpa, P.tcpb
    B.write(call, b"data for a")
    P.wire.advance(10)
    tcb = A.tcb(c)
    snd_ptr, rcv_nxt = tcb.snd_ptr, tcb.rcv_nxt
    n0 = len(P.wire.capture)
    A.ctl(c, "hangup")
    out = segs(P, n0, "a")
    assert len(out) == 1
    assert out[0].flags == "RA" and out[0].seq == snd_ptr and out[0].ack == rcv_nxt
    assert out[0].window == 0
    assert state(A, c) == "Closed"
    # unread data discarded, EOF x3, then the error; writes fail
    expect_eof_then_hungup(A, c)
    with pytest.raises(Net9Error, match="^i/o on hungup channel$"):
        A.write(c, b"x")
    er0 = B.stat("EstabResets")
    P.wire.advance(10)
    assert state(B, call) == "Closed"
    assert B.stat("EstabResets") == er0 + 1
    expect_eof_then_hungup(B, call)


def test_hangup_on_listener_sends_nothing():
    P = sim.pair(seed=6)
    B = P.tcpb
    l = announce(B)
    n0 = len(P.wire.capture)
    P.fsb.drain()
    B.ctl(l, "hangup")
    assert state(B, l) == "Closed"
    assert segs(P, n0) == []                  # no remote address: no RST
    # a waiting listen is woken and finds the read queue hung up
    # ("listen hungup")
    assert l in P.fsb.drain()
    assert l.rq.ishungup()


def test_hangup_during_connect_quirk():
    """devip.md 3.7: a hangup while the connect waits makes the connect
    return success although the connection is closed (localclose with a
    nil reason in Syn_sent runs Fsconnected(s, nil))."""
    P = sim.pair(seed=6)
    A = P.tcpa
    drop(P, "a")
    c = dial(A, "10.0.0.2!80")
    tcb = A.tcb(c)
    n0 = len(P.wire.capture)
    A.ctl(c, "hangup")
    # the remote address is set, so tcphangup sends RST|ACK: seq = snd.ptr
    # (iss+1 after the SYN), ack = rcv.nxt (0: nothing received)
    out = segs(P, n0, "a")
    assert len(out) == 1 and out[0].flags == "RA"
    assert out[0].seq == (tcb.iss + 1) & 0xFFFFFFFF and out[0].ack == 0
    assert state(A, c) == "Closed"
    assert c.state == Connected and A.connectresult(c) is True


def test_time_wait_answers_retransmitted_fin():
    P, c, call = in_state("Time_wait", seed=6)
    A = P.tcpa
    tend = A.nexttick + (A.timercount_of(A.tcb(c).timer) - 1) * MSPTICK
    P.wire.advance(5000)
    tcb = A.tcb(c)
    n0 = len(P.wire.capture)
    # (b has long closed: our ACK would draw its RST, which kills Time_wait)
    drop(P, "a")
    # b's FIN again (its ACK was lost, say): seq = rcv.nxt-1
    P.a.inject(crafted(c, "FA", tcb.rcv_nxt - 1, ack=tcb.snd_nxt))
    out = segs(P, n0, "a")
    # tcptrim refuses it; the forced output is an ACK of the FIN
    assert len(out) == 1 and out[0].flags == "A"
    assert out[0].seq == tcb.snd_nxt and out[0].ack == tcb.rcv_nxt
    assert state(A, c) == "Time_wait"
    # and (on that path) the Time_wait timer is not restarted
    P.wire.run_until_time(tend - 1)
    assert state(A, c) == "Time_wait"
    P.wire.run_until_time(tend)
    assert state(A, c) == "Closed"


def test_close_ctl_keeps_conversation():
    P, l, c, call = established()
    A, B = P.tcpa, P.tcpb
    B.write(call, b"never read")
    P.wire.advance(10)
    n0 = len(P.wire.capture)
    A.ctl(c, "close")
    assert c.inuse == 1
    assert state(A, c) == "Finwait1"
    assert [g.flags for g in segs(P, n0, "a")] == ["FA"]
    # tcpclose hangs up the queues and discards unread input
    expect_eof_then_hungup(A, c)
    with pytest.raises(Net9Error, match="^i/o on hungup channel$"):
        A.write(c, b"x")
    P.wire.advance(10)
    assert state(A, c) == "Finwait2"
    A.closeconv(c)                            # already closing: nothing more
    assert state(A, c) == "Finwait2"


def test_write_before_connect_poisons_conversation():
    P = sim.pair(seed=6)
    A = P.tcpa
    c = A.clone("alice")
    assert A.write(c, b"too early") == 9      # queued, then tcpkick
    # tcpkick in Closed: localclose(s, "Hangup")
    for _ in range(4):
        with pytest.raises(Net9Error) as ei:
            A.read(c, 10)
        assert str(ei.value) == "Hangup"
    with pytest.raises(Net9Error) as ei:
        A.write(c, b"again")
    assert str(ei.value) == "Hangup"
    assert segs(P) == []


def test_write_to_listener_tears_it_down():
    P = sim.pair(seed=6)
    B = P.tcpb
    l = announce(B)
    B.write(l, b"x")
    # tcpkick in Listen: localclose(s, "Hangup"), which then reaches Closed
    # and closes the queues (qclose resets the reason to Ehungup)
    assert state(B, l) == "Closed"
    expect_eof_then_hungup(B, l)
    with pytest.raises(Net9Error, match="^i/o on hungup channel$"):
        B.write(l, b"x")
    # no longer reachable: a SYN to the port draws a RST
    c = dial(P.tcpa, "10.0.0.2!80")
    P.wire.advance(10)
    with pytest.raises(Net9Error, match="^connection refused$"):
        P.tcpa.connectresult(c)


def small_pair(nc, seed=1):
    """Like sim.pair but a's TcpProto has only nc conversations."""
    w = sim.Wire(seed=seed)
    a = w.host("a", ["10.0.0.1", "fd00::1"])
    b = w.host("b", ["10.0.0.2", "fd00::2"])
    fsa = a.attach(Fs(ip=a, seed=seed, now=w.now))
    fsb = b.attach(Fs(ip=b, seed=seed + 1, now=w.now))
    return sim.Pair(w, a, b, fsa, fsb, TcpProto(fsa, nc=nc), TcpProto(fsb), "10.0.0.1", "10.0.0.2")


def test_no_free_devices_and_stats_maxconn():
    P = small_pair(4)
    A = P.tcpa
    assert "MaxConn: 4\n" in A.stats()
    _l = announce(P.tcpb)
    cs = [dial(A, "10.0.0.2!80") for _ in range(4)]
    P.wire.advance(20)
    assert [state(A, c) for c in cs] == ["Established"] * 4
    with pytest.raises(Net9Error) as ei:
        A.clone("x")
    assert str(ei.value) == "no free devices"


def test_tcpgc_reclaims_finwait2_after_5_minutes():
    P = small_pair(4)
    A, B = P.tcpa, P.tcpb
    _l = announce(B)
    cs = [dial(A, "10.0.0.2!80") for _ in range(4)]
    P.wire.advance(20)
    for c in cs:
        A.closeconv(c)
    P.wire.advance(20)
    # the peer never closes: our side sits in Finwait2, answered by b's
    # acks to the FIN keepalives, so it stays there
    assert [state(A, c) for c in cs] == ["Finwait2"] * 4
    t_fw2 = max(A.tcb(c).time for c in cs)
    with pytest.raises(Net9Error, match="^no free devices$"):
        A.clone("x")
    # tcpgc: Finwait2 for more than 5*60*1000 ms
    P.wire.run_until_time(t_fw2 + 5 * 60 * 1000)
    assert [state(A, c) for c in cs] == ["Finwait2"] * 4
    with pytest.raises(Net9Error, match="^no free devices$"):
        A.clone("x")
    P.wire.advance(1)
    n = A.clone("x")
    assert n.x == 0
    # tcpgc closed every stale one
    assert [state(A, c) for c in cs[1:]] == ["Closed"] * 3


def test_tcpgc_syn_received_after_5_seconds():
    P = small_pair(4)
    A = P.tcpa
    drop(P, "a")
    cs = [dial(A, "10.0.0.2!80") for _ in range(4)]
    for i, c in enumerate(cs):
        P.a.inject(crafted(c, "S", 1000 * i))
    assert [state(A, c) for c in cs] == ["Syn_received"] * 4

    def stale():
        return all(P.wire.now - A.tcb(c).time > 5000 for c in cs)
    # young ones are not collected
    assert not stale()
    with pytest.raises(Net9Error, match="^no free devices$"):
        A.clone("x")
    assert [state(A, c) for c in cs] == ["Syn_received"] * 4
    # (tcb.time moves with each SYN-ACK retransmission; wait for a gap of
    # more than 5 s between two of them)
    start = P.wire.now
    while not stale():
        P.wire.advance(MSPTICK)
        assert P.wire.now - start < 60000
    assert [state(A, c) for c in cs] == ["Syn_received"] * 4
    # the table is full of referenced conversations: gc times them out
    # (localclose with Etimedout) but no slot frees, so clone still fails
    with pytest.raises(Net9Error, match="^no free devices$"):
        A.clone("x")
    assert [state(A, c) for c in cs] == ["Closed"] * 4
    # once a holder lets go, the slot is free at once
    A.closeconv(cs[2])
    assert A.clone("x").x == cs[2].x


# ================================================================
# 5. ctl messages and errors
# ================================================================

def ctlerr(tcp, c, msg, user=None):
    with pytest.raises(Net9Error) as ei:
        if user is None:
            tcp.ctl(c, msg)
        else:
            tcp.ctl(c, msg, user)
    return str(ei.value)


def test_ctl_generic_errors():
    P = sim.pair(seed=7)
    A = P.tcpa
    c = A.clone("alice")
    assert ctlerr(A, c, "") == "short control request"
    assert ctlerr(A, c, " \t\n") == "short control request"
    for m in ("bogus", "close now", "hangup now", "Close", "accept 3", "reject 3 no",
              "maxfragsize 100", "reuse"):
        assert ctlerr(A, c, m) == "unknown control request", m
    # none of those touched the conversation
    assert c.state == Idle and state(A, c) == "Closed"
    assert ctlerr(A, c, "bind") == "bad args to bind"
    assert ctlerr(A, c, "bind 1 2") == "bad args to bind"
    assert ctlerr(A, c, "bind foo!80") == "bad ip address syntax"
    assert ctlerr(A, c, "bind 10.0.0.9!80") == "not a local IP address"
    assert ctlerr(A, c, "bind 10.0.0.1!abc") == "bad numeric port"
    A.ctl(c, "bind 10.0.0.1!6000")
    assert c.lport == 6000 and c.state == Idle
    for msg, err in [
        ("connect", "bad args to connect"),
        ("connect 10.0.0.2!80 1 2", "bad args to connect"),
        ("connect 10.0.0.2", "malformed address"),
        ("connect example.com!80", "bad ip address syntax"),
        ("connect 10.0.0.2!http", "bad numeric port"),
        ("connect 10.0.0.2!80x", "bad numeric port"),
        ("connect 10.0.0.2!80 10.0.0.9!5000", "not a local IP address"),
        ("connect 10.0.0.2!80 bad.host!5000", "bad ip address syntax"),
        ("connect 10.0.0.2!80 *", "bad numeric port"),
        ("announce", "bad args to announce"),
        ("announce 1 2", "bad args to announce"),
        ("announce abc", "bad numeric port"),
        ("announce 10.0.0.9!80", "not a local IP address"),
        ("announce x.y!80", "bad ip address syntax"),
    ]:
        cc = A.clone("alice")
        assert ctlerr(A, cc, msg) == err, msg
        # a failed connect/announce spoils the conversation
        assert ctlerr(A, cc, "connect 10.0.0.2!80") == "connection in use", msg
        assert ctlerr(A, cc, "announce 80") == "connection in use", msg
        A.closeconv(cc)
    assert segs(P) == []


def test_ctl_connection_in_use_and_address_in_use():
    P = sim.pair(seed=7)
    A, B = P.tcpa, P.tcpb
    _l = announce(B, 80)
    l2 = B.clone("bob")
    assert ctlerr(B, l2, "announce 80") == "address in use"
    # same port on a specific address does not collide with the wildcard
    _l3 = announce(B, "10.0.0.2!80")
    l4 = B.clone("bob")
    assert ctlerr(B, l4, "announce 10.0.0.2!80") == "address in use"
    c = dial(A, "10.0.0.2!80", "5555")
    assert ctlerr(A, c, "connect 10.0.0.2!80") == "connection in use"
    P.wire.advance(10)
    assert A.connectresult(c) is True
    # the same 4-tuple again while the first is Connected
    c2 = A.clone("alice")
    assert ctlerr(A, c2, "connect 10.0.0.2!80 5555") == "address in use"
    c3 = A.clone("alice")
    assert ctlerr(A, c3, "announce 90 extra") == "bad args to announce"


def test_ctl_announce_star_needs_eve():
    P = sim.pair(seed=7)
    B = P.tcpb
    assert P.fsb.eve == "none"
    c = B.clone("glenda")
    assert ctlerr(B, c, "announce *", "glenda") == "permission denied"
    c2 = B.clone("glenda")
    assert ctlerr(B, c2, "announce *!*", "glenda") == "permission denied"
    c3 = B.clone("none")
    B.ctl(c3, "announce *", "none")
    assert c3.lport == 0 and state(B, c3) == "Listen"


def test_ctl_multicast_membership():
    P = sim.pair(seed=7)
    A = P.tcpa
    c = A.clone("alice")
    assert ctlerr(A, c, "addmulti") == "addmulti needs interface address"
    assert ctlerr(A, c, "delmulti") == "delmulti needs interface address"
    assert ctlerr(A, c, "remmulti") == "delmulti needs interface address"
    assert ctlerr(A, c, "addmulti foo") == "bad ip address syntax"
    assert ctlerr(A, c, "addmulti 10.0.0.1 foo") == "bad ip address syntax"
    assert ctlerr(A, c, "delmulti foo") == "bad ip address syntax"
    # one argument: the group is the local address (no remote set), :: here
    assert ctlerr(A, c, "addmulti 10.0.0.1") == "addmulti for a non multicast address"
    assert ctlerr(A, c, "addmulti 10.0.0.1 10.0.0.7") == "addmulti for a non multicast address"
    assert ctlerr(A, c, "addmulti fd00::1 224.0.0.5") == \
        "incompatible multicast/interface ip address"
    A.ctl(c, "addmulti 10.0.0.1 224.0.0.5")
    A.ctl(c, "addmulti 10.0.0.1 224.0.0.5")          # joining twice: one membership
    assert c.multi == [(ip16("224.0.0.5"), ip16("10.0.0.1"))]
    # a multicast local address is accepted by bind; one-argument
    # add/delmulti then use it as the group
    c2 = A.clone("alice")
    A.ctl(c2, "bind 224.0.0.9!99")
    A.ctl(c2, "addmulti 10.0.0.1")
    assert c2.multi == [(ip16("224.0.0.9"), ip16("10.0.0.1"))]
    A.ctl(c2, "remmulti 10.0.0.1")
    assert c2.multi == []
    A.ctl(c2, "delmulti 10.0.0.1")                   # not joined: silently nothing
    # last close drops the memberships
    A.closeconv(c)
    assert c.multi == []
    assert c.state == Idle and segs(P) == []


def test_ctl_ignoreadvice():
    P = sim.pair(seed=7)
    A = P.tcpa
    drop(P, "a")
    c1 = dial(A, "10.0.0.2!80")
    c2 = dial(A, "10.0.0.2!80")
    A.ctl(c2, "ignoreadvice with extra fields")      # extra fields ignored
    assert c2.ignoreadvice and not c1.ignoreadvice
    syn1, syn2 = [p for (t, s, d, p) in P.wire.capture]
    # an ICMP error about our SYN closes a Syn_sent conversation
    # (tcpadvise) unless ignoreadvice is set
    A.advise(syn1, "host unreachable")
    A.advise(syn2, "host unreachable")
    assert state(A, c1) == "Closed"
    with pytest.raises(Net9Error, match="^host unreachable$"):
        A.connectresult(c1)
    assert state(A, c2) == "Syn_sent" and c2.state == Connecting


def test_ctl_keepalive():
    P = sim.pair(seed=8)
    A = P.tcpa
    c = A.clone("alice")
    assert ctlerr(A, c, "keepalive") == "connection must be in Establised state"
    l = announce(A, 99)
    assert ctlerr(A, l, "keepalive 1000") == "connection must be in Establised state"
    P, l, c, call = established(seed=8)
    A = P.tcpa
    tcb = A.tcb(c)
    assert tcb.katimer.start == 2400                  # DEF_KAT/MSPTICK
    A.ctl(c, "keepalive 49")                          # < MSPTICK: interval unchanged
    assert tcb.katimer.start == 2400
    assert tcb.kacounter == 720000 // (2400 * 50)     # 12 min / interval = 6
    A.ctl(c, "keepalive 1000")
    assert tcb.katimer.start == 1000 // MSPTICK       # 20 ticks
    assert tcb.kacounter == 720000 // (20 * 50)       # 720
    assert A.timercount_of(tcb.katimer) == 20
    assert A.status(c).endswith("katimer.start 20 katimer.count 20\n")
    A.ctl(c, "keepalive 1234")
    assert tcb.katimer.start == 24                    # rounded down to ticks
    A.ctl(c, "keepalive")
    assert tcb.katimer.start == 24                    # no argument: unchanged
    # an idle connection now sends keepalives: seq = snd.una-1, one byte
    n0 = len(P.wire.capture)
    P.wire.advance(1300)
    ka = [g for g in segs(P, n0, "a")]
    assert ka and ka[0].seq == (tcb.snd_una - 1) & 0xFFFFFFFF and len(ka[0].payload) == 1
    assert ka[0].flags == "PA"


def test_ctl_checksum():
    P, l, c, call = established(seed=9)
    A, B = P.tcpa, P.tcpb
    assert ctlerr(A, c, "checksum") == "bad arg in system call"
    A.ctl(c, "checksum 0")
    n0 = len(P.wire.capture)
    A.write(c, b"no checksum here")
    P.wire.advance(10)
    out = [g for g in segs(P, n0, "a") if g.payload]
    assert out and all(g.csum == 0 for g in out)
    # the peer accepts a zero checksum (tcp.c skips the check)
    assert B.read(call, 100) == b"no checksum here"
    assert B.stat("CsumErrs") == 0
    # the other direction still has checksums
    assert all(g.csum != 0 and g.csum_ok for g in segs(P, n0, "b"))
    A.ctl(c, "checksum 1")
    n1 = len(P.wire.capture)
    A.write(c, b"with checksum")
    P.wire.advance(10)
    out = [g for g in segs(P, n1, "a") if g.payload]
    assert out and all(g.csum != 0 and g.csum_ok for g in out)
    assert B.read(call, 100) == b"with checksum"


def test_ctl_tcpporthogdefense():
    P = sim.pair(seed=9)
    A = P.tcpa
    c = A.clone("alice")
    assert A.tcpporthogdefense == 0
    A.ctl(c, "tcpporthogdefense on")
    assert A.tcpporthogdefense == 1
    A.ctl(c, "tcpporthogdefense off")
    assert A.tcpporthogdefense == 0
    for m in ("tcpporthogdefense", "tcpporthogdefense maybe", "tcpporthogdefense ON"):
        assert ctlerr(A, c, m) == "unknown value for tcpporthogdefense", m
    assert A.tcpporthogdefense == 0


def test_ctl_ttl_tos_reach_ip_header():
    P, l, c, call = established(seed=10)
    A = P.tcpa
    A.ctl(c, "ttl 7")
    A.ctl(c, "tos 16")
    n0 = len(P.wire.capture)
    A.write(c, b"x")
    P.wire.advance(10)
    out = segs(P, n0, "a")
    assert out and all((g.ttl, g.tos) == (7, 16) for g in out)
    A.ctl(c, "ttl")                   # no argument: MAXTTL
    A.ctl(c, "tos")                   # no argument: DFLTTOS
    assert (c.ttl, c.tos) == (255, 0)
    A.ctl(c, "ttl junk")              # atoi: 0, no validation
    assert c.ttl == 0
    A.ctl(c, "ttl 64")
    n1 = len(P.wire.capture)
    A.write(c, b"y")
    P.wire.advance(10)
    out = segs(P, n1, "a")
    assert out and all((g.ttl, g.tos) == (64, 0) for g in out)


# ================================================================
# 6. status line and stats
# ================================================================

def test_status_literal_fresh_connection():
    # the moment the connect completes (2 ms: SYN-ACK in, ACK out)
    P = sim.pair(seed=1)
    l = announce(P.tcpb)
    c = dial(P.tcpa, "10.0.0.2!80")
    assert P.wire.run(until=lambda: c.state != Connecting, max_ms=100)
    assert P.wire.now == 2
    assert P.tcpa.status(c) == (
        "Established qin 0 qout 0 rq 0.0 srtt 16 mdev 8 sst 1048560 cwin 4380 "
        "swin 65535>>4 rwin 1048560>>4 qscale 4 timer.start 10 timer.count 10 rerecv 0 "
        "katimer.start 2400 katimer.count 2400\n")
    # and once the wire is quiet
    P, l, c, call = established(seed=1)
    # seed 1, 1 ms each way.  Derivation from tcp.c:
    #   srtt/mdev: tcpsynackrtt with delta = 2 ms (SYN at 0, SYN-ACK at 2):
    #     srtt = 2<<LOGAGAIN = 16, mdev = 2<<LOGDGAIN = 8
    #   sst: tcpsetscale sets ssthresh = window = QMAX<<4 = 1048560
    #   cwin: initialwindow for mss 1460 (1095 <= mss < 2190) = 4380
    #   swin: the SYN-ACK's window 65535 (unscaled in a SYN), snd.scale = our
    #     offered scale 4 (tcpsetscale(s, tcb, seg.ws, tcb->scale))
    #   rwin: rcv.wnd = window = 1048560, rcv.scale = the peer's ws 4
    #   timer.start = tcp_irtt/MSPTICK = 10; the retransmit timer was halted
    #     by the SYN-ACK before any tick ran: count 10
    #   katimer: DEF_KAT/MSPTICK = 2400, restarted by the ACK we sent, no
    #     tick since (first tick at 50 ms): count 2400
    assert P.wire.now < 50
    assert QMAX << 4 == 1048560
    # b's extra ACK at 3 ms (see below) carries window 65535, scaled by
    # rcv.scale 4 on arrival; same ack as snd.wl2 and a larger window, so
    # update() takes it: swin 1048560
    assert P.tcpa.status(c) == (
        "Established qin 0 qout 0 rq 0.0 srtt 16 mdev 8 sst 1048560 cwin 4380 "
        "swin 1048560>>4 rwin 1048560>>4 qscale 4 timer.start 10 timer.count 10 rerecv 0 "
        "katimer.start 2400 katimer.count 2400\n")
    # the accepted side: srtt from the SYN-ACK (sent at 1) to the ACK (at 3);
    # swin = the ACK's window 65535 << rcv.scale 4; timer copied from the
    # listener (start 10, never run: count 0); katimer restarted by the ACK
    # b sent at 3 ms (tcpoutput's "force ack every 2*mss" fires because
    # rcv.ackptr was copied as 0 from the listener)
    assert P.tcpb.status(call) == (
        "Established qin 0 qout 0 rq 0.0 srtt 16 mdev 8 sst 1048560 cwin 4380 "
        "swin 1048560>>4 rwin 1048560>>4 qscale 4 timer.start 10 timer.count 0 rerecv 0 "
        "katimer.start 2400 katimer.count 2400\n")
    assert P.tcpb.stat("Delayack") == 1
    # a listener: inittcpctl values, no scaling, timers never run
    assert P.tcpb.status(l) == (
        "Listen qin 0 qout 0 rq 0.0 srtt 4000 mdev 0 sst 65535 cwin 1460 "
        "swin 0>>0 rwin 65535>>0 qscale 0 timer.start 10 timer.count 0 rerecv 0 "
        "katimer.start 2400 katimer.count 0\n")


def test_status_matches_tcb_in_several_states():
    P, l, c, call = established(seed=11)
    A, B = P.tcpa, P.tcpb
    B.write(call, b"q" * 3000)
    A.write(c, b"w" * 70000)
    P.wire.advance(1)
    seen = set()
    for conv, tcp in ((c, A), (call, B), (l, B)):
        assert tcp.status(conv) == status_from_tcb(tcp, conv)
        seen.add(state(tcp, conv))
    P.wire.advance(3000)
    assert len(c.rq) == 3000
    assert A.status(c) == status_from_tcb(A, c)
    assert " qin 3000 " in A.status(c)
    A.closeconv(c)
    assert A.status(c) == status_from_tcb(A, c)
    seen.add(state(A, c))
    for _ in range(2000):
        P.wire.advance(7)
        for conv, tcp in ((c, A), (call, B)):
            assert tcp.status(conv) == status_from_tcb(tcp, conv)
            seen.add(state(tcp, conv))
        if state(B, call) == "Close_wait" and len(call.wq) == 0:
            B.closeconv(call)
            assert B.status(call) == status_from_tcb(B, call)
            seen.add(state(B, call))
        if state(A, c) == "Closed":
            break
    assert {"Listen", "Established", "Finwait1", "Finwait2", "Close_wait", "Last_ack",
            "Time_wait", "Closed"} <= seen
    # Syn_sent
    c2 = dial(A, "10.0.0.2!99")
    assert A.status(c2) == status_from_tcb(A, c2)
    assert A.status(c2).startswith("Syn_sent qin 0 qout 0 rq 0.0 srtt 4000 mdev 0 ")


STATNAMES = ["MaxConn", "MaxSegment", "ActiveOpens", "PassiveOpens", "EstabResets",
             "CurrEstab", "InSegs", "OutSegs", "RetransSegs", "RetransSegsSent",
             "RetransTimeouts", "InErrs", "OutRsts", "CsumErrs", "HlenErrs", "LenErrs",
             "Resequenced", "OutOfOrder", "ReseqBytelim", "ReseqPktlim", "Delayack",
             "Wopenack", "Recovery", "RecoveryDone", "RecoveryRTO", "RecoveryNoSeq",
             "RecoveryCwind", "RecoveryPA"]     # devip.md section 9, tcp.c enum order


def stats_dict(tcp):
    text = tcp.stats()
    lines = text.split("\n")
    assert lines[-1] == "" and len(lines) == 29
    out = {}
    for ln, name in zip(lines[:-1], STATNAMES):
        k, v = ln.split(": ")
        assert k == name and v == str(int(v))
        out[k] = int(v)
    return out


def test_stats_text_format_and_counters():
    P = sim.pair(seed=12)
    A, B = P.tcpa, P.tcpb
    s = stats_dict(A)
    assert s["MaxConn"] == 4096                      # Nchans default nc
    assert list(s) == STATNAMES
    assert all(v == 0 for k, v in s.items() if k not in ("MaxConn",))
    assert stats_dict(TcpProto(Fs(), nc=17))["MaxConn"] == 17
    l = announce(B)
    assert stats_dict(B)["PassiveOpens"] == 1        # counted at announce
    c = dial(A, "10.0.0.2!80")
    assert stats_dict(A)["ActiveOpens"] == 1
    P.wire.advance(10)
    _call = B.takecall(l)
    sa, sb = stats_dict(A), stats_dict(B)
    assert sa["CurrEstab"] == 1 and sb["CurrEstab"] == 1
    assert sb["PassiveOpens"] == 1                   # accepting does not count
    assert sa["MaxSegment"] == 1460 and sb["MaxSegment"] == 1460
    A.write(c, b"x" * 5000)
    P.wire.advance(100)
    # InSegs: every segment handed to tcpiput; OutSegs: every tcpoutput send
    # (b's SYN-ACK comes from sndsynack, which does not count)
    deliv_a = sum(1 for (t, s_, d, p) in P.wire.deliveries if d == "a")
    deliv_b = sum(1 for (t, s_, d, p) in P.wire.deliveries if d == "b")
    sent_a = segs(P, src="a")
    sent_b = segs(P, src="b")
    sa, sb = stats_dict(A), stats_dict(B)
    assert sa["InSegs"] == deliv_a and sb["InSegs"] == deliv_b
    assert sa["OutSegs"] == len(sent_a)
    assert sb["OutSegs"] == len([g for g in sent_b if g.flags != "SA"])
    # a second connection, then close one: CurrEstab follows
    _c2 = dial(A, "10.0.0.2!80")
    P.wire.advance(10)
    assert stats_dict(A)["CurrEstab"] == 2 and stats_dict(B)["CurrEstab"] == 2
    A.closeconv(c)
    assert stats_dict(A)["CurrEstab"] == 1           # left Established
    P.wire.advance(10)
    assert stats_dict(B)["CurrEstab"] == 1           # Close_wait
    # OutRsts: a segment to a closed port
    r0 = stats_dict(B)["OutRsts"]
    dial(A, "10.0.0.2!81")
    P.wire.advance(10)
    assert stats_dict(B)["OutRsts"] == r0 + 1
    assert stats_dict(A)["ActiveOpens"] == 3
    assert stats_dict(A)["Wopenack"] == 0


# ================================================================
# 7. the conversation layer
# ================================================================

@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ephemeral_ports_random_and_unique(seed):
    P = sim.pair(seed=seed)
    A = P.tcpa
    ports = []
    for _i in range(150):
        c = dial(A, "10.0.0.2!9")               # refused; the conversation keeps its port
        ports.append(c.lport)
    P.wire.advance(10)
    assert all(32768 <= p <= 65535 for p in ports)
    assert len(set(ports)) == len(ports)
    assert max(ports) - min(ports) > 16384
    assert ports != sorted(ports)
    # the SYNs carried them
    assert sorted(g.sport for g in segs(P, src="a")) == sorted(ports)


def test_explicit_local_port():
    P = sim.pair(seed=13)
    A, B = P.tcpa, P.tcpb
    l = announce(B)
    c = dial(A, "10.0.0.2!80", "7777")
    c2 = dial(A, "10.0.0.2!80", "10.0.0.1!7778")
    c3 = dial(A, "10.0.0.2!80", "*!7779")
    assert (c.lport, c2.lport, c3.lport) == (7777, 7778, 7779)
    assert A.localtext(c) == "10.0.0.1!7777\n"
    assert A.localtext(c2) == "10.0.0.1!7778\n"
    P.wire.advance(10)
    assert sorted(g.sport for g in segs(P, src="a") if g.flags == "S") == [7777, 7778, 7779]
    assert A.connectresult(c) is True and A.connectresult(c2) is True
    calls = [B.takecall(l) for _ in range(2)]
    assert sorted(x.rport for x in calls) == [7777, 7778]


def test_restricted_and_wrapped_ports():
    P = sim.pair(seed=13)
    A = P.tcpa
    # "!r": a per-protocol cursor through 600..1023, first unused wins
    r1 = dial(A, "10.0.0.2!80!r")
    r2 = dial(A, "10.0.0.2!80!r")
    assert (r1.lport, r2.lport) == (600, 601) and r1.restricted
    # ports are taken modulo 65536 (stored in 16 bits)
    w1 = dial(A, "10.0.0.2!70000")
    w2 = dial(A, "10.0.0.2!-1")
    assert (w1.rport, w2.rport) == (70000 - 65536, 65535)
    assert A.remotetext(w1) == "10.0.0.2!4464\n"
    # an explicit local port that wraps to 0 means "choose one"
    e = dial(A, "10.0.0.2!80", "65536")
    assert 32768 <= e.lport <= 65535


def test_lookup_order():
    P = sim.pair(seed=14)
    A, B = P.tcpa, P.tcpb
    a4, b4 = parseip("10.0.0.1"), parseip("10.0.0.2")
    b6 = parseip("fd00::2")
    assert b4 == ip16("10.0.0.2")
    lport = announce(B, 80)                       # matches on port
    lpa = announce(B, "10.0.0.2!80")              # matches on addr!port
    c = dial(A, "10.0.0.2!80")
    P.wire.advance(10)
    # the call went to the addr!port announcement
    assert len(lpa.incall) == 1 and lport.incall == []
    call = B.takecall(lpa)
    assert B.lookup(a4, c.lport, b4, 80) is call             # exact 4-tuple first
    assert B.lookup(a4, c.lport + 1, b4, 80) is lpa          # then addr!port
    assert B.lookup(parseip("10.9.9.9"), 1, b4, 80) is lpa
    assert B.lookup(a4, c.lport, b6, 80) is lport            # then port
    assert B.lookup(a4, c.lport, b4, 81) is None
    # addr!* and * (eve only) catch the rest, addr before any
    lany = B.clone("none")
    B.ctl(lany, "announce *", "none")
    laddr = B.clone("none")
    B.ctl(laddr, "announce 10.0.0.2!*", "none")
    assert laddr.lport == 0
    assert B.lookup(a4, 1, b4, 81) is laddr
    assert B.lookup(a4, 1, b6, 81) is lany
    assert B.lookup(a4, c.lport, b4, 80) is call
    assert B.lookup(a4, 1, b4, 80) is lpa
    B.closeconv(lpa)
    assert B.lookup(a4, 1, b4, 80) is lport
    B.closeconv(lport)
    assert B.lookup(a4, 1, b4, 80) is laddr
    assert B.lookup(a4, c.lport, b4, 80) is call


def test_at_most_ten_queued_calls():
    P = sim.pair(seed=15)
    A, B = P.tcpa, P.tcpb
    l = announce(B)
    cs = []
    for _i in range(10):
        cs.append(dial(A, "10.0.0.2!80"))
        P.wire.advance(10)
    assert len(l.incall) == 10
    assert all(state(A, c) == "Established" for c in cs)
    r0 = B.stat("OutRsts")
    n0 = len(P.wire.capture)
    c11 = dial(A, "10.0.0.2!80")
    P.wire.advance(10)
    # its handshake completed on a's side, but b answered the final ACK with
    # a RST ("no conversation") and lost the call
    assert A.connectresult(c11) is True
    assert state(A, c11) == "Closed"
    assert len(l.incall) == 10 and B.limbocount() == 0
    assert B.stat("OutRsts") == r0 + 1
    r = [g for g in segs(P, n0, "b") if "R" in g.flags]
    assert len(r) == 1 and r[0].dport == c11.lport and r[0].flags == "R"
    assert len(B.conv) == 11                      # listener + 10 calls
    # collecting one makes room for one more
    B.takecall(l)
    c12 = dial(A, "10.0.0.2!80")
    P.wire.advance(10)
    assert state(A, c12) == "Established" and len(l.incall) == 10


def test_closing_listener_fins_uncollected_calls():
    P = sim.pair(seed=16)
    A, B = P.tcpa, P.tcpb
    l = announce(B)
    cs = [dial(A, "10.0.0.2!80") for _ in range(3)]
    P.wire.advance(10)
    assert len(l.incall) == 3
    calls = list(l.incall)
    n0 = len(P.wire.capture)
    B.closeconv(l)
    assert l.incall == []
    assert [state(B, x) for x in calls] == ["Finwait1"] * 3
    fins = [g for g in segs(P, n0, "b") if "F" in g.flags]
    assert sorted(g.dport for g in fins) == sorted(c.lport for c in cs)
    assert all(g.sport == 80 for g in fins)
    P.wire.advance(10)
    assert [state(A, c) for c in cs] == ["Close_wait"] * 3


def test_lowest_free_slot_reused():
    P = sim.pair(seed=17)
    A = P.tcpa
    cs = [A.clone("u") for _ in range(4)]
    assert [c.x for c in cs] == [0, 1, 2, 3]
    A.closeconv(cs[2])
    A.closeconv(cs[1])
    n = A.clone("v")
    assert n.x == 1 and n.owner == "v" and n.state == Idle
    assert A.clone("v").x == 2
    assert A.clone("v").x == 4
    # a reused slot starts afresh: addresses zero, queues reopened
    assert A.localtext(n) == "::!0\n" and A.remotetext(n) == "::!0\n"


def test_local_remote_text():
    P, l, c, call = established(seed=18)
    A, B = P.tcpa, P.tcpb
    assert A.localtext(c) == "10.0.0.1!%d\n" % c.lport
    assert A.remotetext(c) == "10.0.0.2!80\n"
    assert B.localtext(call) == "10.0.0.2!80\n"
    assert B.remotetext(call) == "10.0.0.1!%d\n" % c.lport
    assert B.localtext(l) == "::!80\n" and B.remotetext(l) == "::!0\n"
    l2 = announce(B, "10.0.0.2!8080")
    assert B.localtext(l2) == "10.0.0.2!8080\n"
    fresh = A.clone("x")
    assert A.localtext(fresh) == "::!0\n" and A.remotetext(fresh) == "::!0\n"
    # the addresses stay after the connection dies
    A.ctl(c, "hangup")
    assert A.remotetext(c) == "10.0.0.2!80\n"


# ================================================================
# IPv6
# ================================================================

def test_ipv6_open_transfer_close():
    P = sim.pair(seed=19, v6=True)
    A, B = P.tcpa, P.tcpb
    l = announce(B, 80)
    c = dial(A, "fd00::2!80")
    assert state(A, c) == "Syn_sent" and c.ipversion == 6
    tr = Trace(P, a=(A, c))
    tr.run(lambda: c.state != Connecting and l.incall, max_ms=1000)
    call = B.takecall(l)
    assert A.connectresult(c) is True
    assert state(A, c) == "Established" and state(B, call) == "Established"
    syn = segs(P, src="a")[0]
    assert syn.version == 6 and syn.src == "fd00::1" and syn.dst == "fd00::2"
    # tcpmtu: 1500 - (40 + 20) on a direct route
    assert syn.options["mss"] == 1440 and syn.options["ws"] == 4
    assert A.localtext(c) == "fd00::1!%d\n" % c.lport
    assert A.remotetext(c) == "fd00::2!80\n"
    assert B.localtext(call) == "fd00::2!80\n"
    assert B.remotetext(call) == "fd00::1!%d\n" % c.lport
    data = bytes(range(256)) * 200
    A.write(c, data)
    B.write(call, b"reply")
    got = bytearray()

    def done():
        x = B.read(call, 1 << 20)
        if x:
            got.extend(x)
        return len(got) == len(data)
    assert P.wire.run(until=done, max_ms=5000)
    assert bytes(got) == data
    assert A.read(c, 100) == b"reply"
    assert all(g.version == 6 and g.csum_ok for g in segs(P))
    assert max(len(g.payload) for g in segs(P, src="a")) == 1440
    # active close by a, passive by b
    A.closeconv(c)
    tr.run(lambda: B.tcb(call).state == TcpState.Close_wait, max_ms=1000)
    assert B.read(call, 10) == b""
    B.closeconv(call)
    tr.run(lambda: A.tcb(c).state == TcpState.Time_wait, max_ms=1000)
    tr.run(lambda: A.tcb(c).state == TcpState.Closed, max_ms=11000)
    assert tr.seen["a"] == ["Syn_sent", "Established", "Finwait1", "Finwait2",
                            "Time_wait", "Closed"]
    assert state(B, call) == "Closed"


def test_ipv6_closed_port_rst_and_refused():
    P = sim.pair(seed=20, v6=True)
    A, _B = P.tcpa, P.tcpb
    c = dial(A, "fd00::2!81")
    P.wire.run(until=lambda: c.state != Connecting, max_ms=1000)
    with pytest.raises(Net9Error, match="^connection refused$"):
        A.connectresult(c)
    r = segs(P, src="b")
    assert len(r) == 1 and r[0].version == 6 and r[0].flags == "RA"
    assert r[0].ack == A.tcb(c).iss + 1 and r[0].csum_ok
