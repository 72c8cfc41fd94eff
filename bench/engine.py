#!/usr/bin/env python3
"""Throughput benchmark of net9's TCP engine (cython/tcp.pyx) alone.

Two engines (a: 10.0.0.1, sender; b: 10.0.0.2, receiver) are joined by an
in-memory wire without faults: each side's IpLayer.ipoput appends the
datagram to a list, and a minimal loop hands those lists to the other side's
TcpProto.rcv.  No net9.sim event machinery, no IP header finishing (the
engine leaves the v4 id and header checksum zero; TCP input does not look at
them).  The connection is made with the ordinary ctl interface (announce,
connect, takecall); then the loop

  * writes 256 KiB chunks of a preallocated buffer to the sender's
    conversation while its write queue is not flow-controlled,
  * delivers the sender's datagrams to the receiver (tcp.rcv), timing the
    batch with time.perf_counter_ns,
  * reads everything the receiver has queued (tcp.read until None),
  * delivers the receiver's datagrams (ACKs) to the sender, timed likewise,
  * advances both virtual clocks by 1 ms.

Printed per MSS: bytes, wall seconds, MB/s of payload, data segments per
second received (wall clock), and "input processing" rates: InSegs of a side
divided by the time spent inside that side's rcv calls (the receive path
including the ACKs or data it sends from within rcv, i.e. tcpoutput and the
ipoput list append).

    python bench/engine.py [--bytes N] [--mss 1460|65495|both] [--verify] [--profile]

cProfile (--profile) sees only this loop and the Python ipoput: the Cython
engine's cdef functions are invisible to it.  For the engine's hot spots use
perf: `perf record -g python bench/engine.py --mss 1460; perf report`.
"""

import argparse
import cProfile
import os
import pstats
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))      # the source tree's in-place build

from net9.conv import IpLayer, Fs               # noqa: E402
from net9.tcp import TcpProto                   # noqa: E402

V4PREFIX = b"\0" * 10 + b"\xff\xff"
ADDR_A = V4PREFIX + bytes([10, 0, 0, 1])
ADDR_B = V4PREFIX + bytes([10, 0, 0, 2])
TARGET = 500_000            # segments per second of input processing at MSS 1460
CHUNK = 256 * 1024
READ = 1 << 20


class MemIp(IpLayer):
    """The in-memory wire's end: ipoput appends to self.out.  (__slots__:
    no instance dict for the engine's per-datagram ipoput lookup to search.)"""

    __slots__ = ("addr", "peer", "mtu", "out")

    def __init__(self, addr, peer, mtu):
        self.addr = addr
        self.peer = peer
        self.mtu = mtu
        self.out = []

    def ipoput(self, version, pkt, ttl, tos, rh):
        self.out.append(pkt)
        return 0

    def route(self, version, raddr, laddr):
        if raddr == self.peer:
            return (self.mtu, True)
        return None

    def findlocalip(self, raddr):
        return self.addr

    def isself(self, addr):
        return addr == self.addr


def setup(mtu):
    """Two stacks and one established connection: (ipa, ipb, fsa, fsb,
    tcpa, tcpb, ca, cb, now)."""
    ipa = MemIp(ADDR_A, ADDR_B, mtu)
    ipb = MemIp(ADDR_B, ADDR_A, mtu)
    fsa = Fs(ip=ipa, seed=1)
    fsb = Fs(ip=ipb, seed=2)
    tcpa = TcpProto(fsa)
    tcpb = TcpProto(fsb)

    lc = tcpb.clone("bench")
    tcpb.ctl(lc, "announce 9999")
    ca = tcpa.clone("bench")
    tcpa.ctl(ca, "connect 10.0.0.2!9999")
    cb = None
    now = 0
    for _ in range(1000):
        moved = False
        if ipa.out:
            pkts, ipa.out = ipa.out, []
            for p in pkts:
                tcpb.rcv(p)
            moved = True
        if ipb.out:
            pkts, ipb.out = ipb.out, []
            for p in pkts:
                tcpa.rcv(p)
            moved = True
        if cb is None:
            cb = tcpb.takecall(lc)
        if ca.state != 3 and cb is not None and not moved:
            break
        now += 1
        fsa.advance(now)
        fsb.advance(now)
    if tcpa.connectresult(ca) is not True or cb is None:
        raise SystemExit("bench: connection setup failed")
    fsa.drain()
    fsb.drain()
    return ipa, ipb, fsa, fsb, tcpa, tcpb, ca, cb, now


def transfer(mtu, total, verify=False):
    """Send total bytes a -> b; returns a dict of figures.  verify: compare
    every byte read with what was written (slower)."""
    ipa, ipb, fsa, fsb, tcpa, tcpb, ca, cb, now = setup(mtu)
    mss = tcpa.tcb(ca).mss
    buf = bytes(range(256)) * (CHUNK // 256)
    ref = bytes(range(256)) * (READ // 256 + 1)     # the stream: byte i is i % 256
    view = memoryview(buf)
    wq = ca.wq
    rcvb = tcpb.rcv
    rcva = tcpa.rcv
    read = tcpb.read
    write = tcpa.write
    perf = time.perf_counter_ns
    advance_a = fsa.advance
    advance_b = fsb.advance

    insegs_b0 = tcpb.stat("InSegs")
    insegs_a0 = tcpa.stat("InSegs")
    written = 0
    received = 0
    datasegs = 0
    t_rcvb = 0
    t_rcva = 0
    loops = 0

    t0 = perf()
    while received < total:
        # the sender writes until flow control would block it
        while written < total and not wq.flow:
            n = total - written
            if n >= CHUNK:
                write(ca, buf)
                written += CHUNK
            else:
                write(ca, view[:n])
                written += n
        # sender -> receiver
        pkts = ipa.out
        if pkts:
            ipa.out = []
            datasegs += len(pkts)
            t = perf()
            for p in pkts:
                rcvb(p)
            t_rcvb += perf() - t
        # the receiving application
        while True:
            d = read(cb, READ)
            if not d:
                break
            if verify and d != ref[received % 256:received % 256 + len(d)]:
                raise SystemExit("bench: data mismatch at offset %d" % received)
            received += len(d)
        # receiver -> sender (ACKs; window updates after the reads)
        pkts = ipb.out
        if pkts:
            ipb.out = []
            t = perf()
            for p in pkts:
                rcva(p)
            t_rcva += perf() - t
        now += 1
        advance_a(now)
        advance_b(now)
        loops += 1
    wall = (perf() - t0) / 1e9

    if received != total:
        raise SystemExit("bench: received %d of %d bytes" % (received, total))
    insegs_b = tcpb.stat("InSegs") - insegs_b0
    insegs_a = tcpa.stat("InSegs") - insegs_a0
    return dict(mtu=mtu, mss=mss, bytes=received, wall=wall, loops=loops,
                vms=now, datasegs=datasegs, insegs_b=insegs_b, insegs_a=insegs_a,
                t_rcvb=t_rcvb / 1e9, t_rcva=t_rcva / 1e9,
                retrans=tcpa.stat("RetransSegs"), outsegs_b=tcpb.stat("OutSegs"))


def report(r):
    mb = r["bytes"] / 1e6
    print("MSS %d (MTU %d)" % (r["mss"], r["mtu"]))
    print("  bytes                 %d (%.1f MiB), %d loop iterations, %d ms virtual"
          % (r["bytes"], r["bytes"] / 2**20, r["loops"], r["vms"]))
    print("  wall                  %.3f s" % r["wall"])
    print("  payload               %.1f MB/s" % (mb / r["wall"]))
    print("  data segs received    %d, %.0f /s wall" % (r["datasegs"], r["datasegs"] / r["wall"]))
    rb = r["insegs_b"] / r["t_rcvb"] if r["t_rcvb"] else float("inf")
    ra = r["insegs_a"] / r["t_rcva"] if r["t_rcva"] else float("inf")
    line = "  receiver input        %d InSegs in %.3f s of rcv: %.0f segs/s" % (
        r["insegs_b"], r["t_rcvb"], rb)
    if r["mss"] == 1460:
        line += "  (target %d: %s)" % (TARGET, "met" if rb >= TARGET else "NOT met")
    print(line)
    print("  sender ACK input      %d InSegs in %.3f s of rcv: %.0f segs/s" % (
        r["insegs_a"], r["t_rcva"], ra))
    print("  rcv share of wall     %.0f%% receiver, %.0f%% sender; retransmissions %d"
          % (100 * r["t_rcvb"] / r["wall"], 100 * r["t_rcva"] / r["wall"], r["retrans"]))
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bytes", type=int, default=None,
                    help="bytes per run (default 1 GiB; 64 MiB with --profile)")
    ap.add_argument("--mss", choices=("1460", "65495", "both"), default="both")
    ap.add_argument("--verify", action="store_true",
                    help="check every byte received (not part of the timed figures' spirit)")
    ap.add_argument("--profile", action="store_true",
                    help="cProfile the run; print the top 25 functions by tottime")
    a = ap.parse_args()
    total = a.bytes if a.bytes is not None else (64 << 20 if a.profile else 1 << 30)
    mtus = {"1460": [1500], "65495": [65535], "both": [1500, 65535]}[a.mss]
    for mtu in mtus:
        if a.profile:
            prof = cProfile.Profile()
            prof.enable()
            r = transfer(mtu, total, a.verify)
            prof.disable()
            report(r)
            print("cProfile, top 25 by tottime (Cython cdef functions are not seen; "
                  "their time is in the callers' tottime):")
            pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(25)
        else:
            report(transfer(mtu, total, a.verify))


if __name__ == "__main__":
    main()
