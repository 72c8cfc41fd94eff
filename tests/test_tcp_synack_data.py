"""Data and FIN carried by the SYN-ACK that completes an active open
(RFC 9293 3.10.7.3: "If there are other controls or text in the segment,
continue processing"; tcp.c's Syn_sent case breaks out of its switch for
them and tcptrim strips the SYN).  net9's RFC 5961 challenge ACK for a SYN
in a synchronized state took this SYN-ACK too, once the Syn_sent case had
made the connection Established: the data and the FIN were dropped and a
challenge ACK of the SYN alone went out.  Found by FreeBSD's
tcp-testsuite (state-event-engine/rcv-syn-ack-syn-sent, "with-data")
through tests/packetdrill.
"""

import pytest

from net9.conv import ConvState
from net9.sim import build, parse

from test_tcp_setup import mkpair, C_ADDR

Connecting = ConvState.Connecting


def active(P):
    """a connects to the stackless host c; returns (conv, a's SYN)."""
    c = P.tcpa.clone("user")
    P.tcpa.ctl(c, "connect %s!80" % C_ADDR)
    syn = [parse(p) for (t, s, d, p) in P.wire.capture if s == "a"][-1]
    assert syn.has("S")
    return c, syn


@pytest.mark.parametrize("flags,payload", [("SA", b"abc"), ("SAF", b""), ("SAF", b"xyz")])
def test_synack_with_data_or_fin(flags, payload):
    P = mkpair()
    A = P.tcpa
    c, syn = active(P)
    n0 = len(P.wire.capture)
    irs = 5000
    P.a.inject(build(C_ADDR, P.aaddr, 80, syn.sport, seq=irs, ack=syn.seq + 1,
                     flags=flags, window=65535, payload=payload, options={"mss": 1460}))
    assert A.connectresult(c) is True
    fin = 1 if "F" in flags else 0
    # everything the SYN-ACK carried is taken: data queued, FIN counted
    assert A.tcb(c).rcv_nxt == (irs + 1 + len(payload) + fin) & 0xFFFFFFFF
    if payload:
        assert A.read(c, 100) == payload
    if fin:
        assert A.tcb(c).statename == "Close_wait"
    P.wire.advance(200)
    out = [parse(p) for (t, s, d, p) in P.wire.capture[n0:] if s == "a"]
    assert out and all(s.ack == (irs + 1 + len(payload) + fin) & 0xFFFFFFFF for s in out)
