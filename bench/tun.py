#!/usr/bin/env python3
"""TUN benchmark: net9's whole stack (TUN medium, event loop, IP layer, TCP
engine) against the Linux kernel, compared with Linux talking to itself.

For each MTU (default 1500 and 65000), as root:

  net9 receives   a sender process in a private network namespace connects
                  to a net9 conversation over the TUN (Linux 10.9.0.1, net9
                  10.9.0.2) and writes N bytes (default 256 MB); net9 reads
                  everything its conversation queues and discards it.  Timed
                  by net9 from the accepted call to EOF.
  net9 sends      net9 connects to a receiver process in the namespace and
                  writes N bytes (256 KB writes whenever its write queue is
                  not flow-controlled), then closes.  Timed by the receiver
                  from accept to EOF.
  Linux veth      the same sender and receiver programs in two namespaces
                  joined by a veth pair at the same MTU.  Timed by the
                  receiver from accept to EOF.

Printed: MB/s (10^6 bytes) of each, and net9/Linux.  The issue's aim: net9
receiving at no less than a quarter of Linux's veth speed at MTU 65000.

    python bench/tun.py [--mbytes 256] [--mtu 1500,65000] [--repeat 1]
                        [--profile] [--no-linux]

Run it from the source tree after the in-place build (it puts the tree on
sys.path itself).  The peers are plain Python socket loops (sendall from a
4 MB buffer, recv_into a 4 MB buffer) so that both comparisons use the same
user-space code on the Linux side.  --profile prints cProfile's top entries
for net9's receive loop (Cython internals are invisible to it).
"""

import argparse
import cProfile
import os
import pstats
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))      # the source tree's in-place build

from net9.stack import Stack                    # noqa: E402
from net9.media import innetns                  # noqa: E402

CHUNK = 256 * 1024
READ = 1 << 22

SENDER = r"""
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
buf = memoryview(bytes(range(256)) * (4 * 4096))
for i in range(200):
    try:
        s = socket.create_connection((host, port))
        break
    except OSError:
        time.sleep(0.05)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
left = n
while left:
    k = s.send(buf[:min(left, len(buf))])
    left -= k
s.shutdown(socket.SHUT_WR)
s.recv(1)
s.close()
"""

RECEIVER = r"""
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((host, port))
l.listen(1)
print("ready", flush=True)
c, _ = l.accept()
t0 = time.monotonic()
buf = bytearray(4 << 20)
n = 0
while True:
    k = c.recv_into(buf)
    if not k:
        break
    n += k
dt = time.monotonic() - t0
c.close()
print(n, dt, flush=True)
"""


def sh(*argv, check=True):
    return subprocess.run([str(a) for a in argv], check=check, capture_output=True, text=True)


class Ns:
    def __init__(self):
        self.name = "net9bench-" + uuid.uuid4().hex[:8]
        sh("ip", "netns", "add", self.name)
        self.ipr(lambda ipr: ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up"))

    def ipr(self, fn):
        from pyroute2 import IPRoute
        with innetns(self.name):
            ipr = IPRoute()
        try:
            return fn(ipr)
        finally:
            ipr.close()

    def popen(self, *argv, **kw):
        return subprocess.Popen(["ip", "netns", "exec", self.name] + [str(a) for a in argv], **kw)

    def close(self):
        sh("ip", "netns", "del", self.name, check=False)


def start_receiver(ns, host, port):
    p = ns.popen(sys.executable, "-c", RECEIVER, host, port, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def receiver_result(p, timeout):
    out, _ = p.communicate(timeout=timeout)
    n, dt = out.split()
    return int(n), float(dt)


# ---------------------------------------------------------------- net9

def net9_receives(st, ns, nbytes, timeout, profile=False):
    tcp = st.tcp
    ln = st.announce("5001")
    sender = ns.popen(sys.executable, "-c", SENDER, "10.9.0.2", 5001, nbytes)
    state = {"n": 0, "eof": False, "t0": None, "t1": None}

    def sink(c):
        read = tcp.read
        while True:
            d = read(c, READ)
            if d is None:
                c.rq.rwait = True
                return
            if not d:
                state["eof"] = True
                state["t1"] = time.monotonic()
                return
            state["n"] += len(d)

    try:
        conn = ln.accept(timeout=20)
        state["t0"] = time.monotonic()
        st.watch(conn.c, sink)
        sink(conn.c)
        prof = cProfile.Profile() if profile else None
        if prof:
            prof.enable()
        ok = st.run(until=lambda: state["eof"], timeout=timeout)
        if prof:
            prof.disable()
        if not ok:
            raise TimeoutError("net9 received %d of %d bytes" % (state["n"], nbytes))
        st.unwatch(conn.c)
        conn.close()
        st.run(until=lambda: sender.poll() is not None, timeout=10)
    finally:
        if sender.poll() is None:
            sender.kill()
        sender.wait()
        ln.close()
    assert state["n"] == nbytes, (state["n"], nbytes)
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    return nbytes / (state["t1"] - state["t0"])


def net9_sends(st, ns, nbytes, timeout):
    tcp = st.tcp
    recv = start_receiver(ns, "10.9.0.1", 5002)
    buf = memoryview(bytes(range(256)) * (CHUNK // 256))
    state = {"sent": 0, "closed": False}

    def pump(c):
        if state["closed"]:
            return
        while state["sent"] < nbytes and not c.wq.flow:
            k = min(CHUNK, nbytes - state["sent"])
            tcp.write(c, buf[:k])
            state["sent"] += k
        if state["sent"] < nbytes:
            c.wq.wwait = True
        else:
            state["closed"] = True
            st.unwatch(c)
            tcp.closeconv(c)                    # FIN after the queued data

    try:
        conn = st.dial("10.9.0.1!5002", timeout=10)
        st.watch(conn.c, pump)
        pump(conn.c)
        if not st.run(until=lambda: recv.poll() is not None, timeout=timeout):
            raise TimeoutError("receiver not done; net9 queued %d of %d" % (state["sent"], nbytes))
        n, dt = receiver_result(recv, 10)
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait()
    assert n == nbytes, (n, nbytes)
    return nbytes / dt


def bench_net9(mtu, nbytes, timeout, profile):
    ns = Ns()
    try:
        st = Stack(tun="n9bench", netns=ns.name, mtu=mtu, addrs=["10.9.0.2/24"],
                   host_addrs=["10.9.0.1/24"], loopback=False)
        try:
            rx = net9_receives(st, ns, nbytes, timeout, profile)
            tx = net9_sends(st, ns, nbytes, timeout)
            mss = st.tcp.stat("MaxSegment")
            drops = st.tun.stats()
        finally:
            st.close()
    finally:
        ns.close()
    return rx, tx, mss, drops


# ---------------------------------------------------------------- Linux veth

def bench_veth(mtu, nbytes, timeout):
    a, b = Ns(), Ns()
    try:
        from pyroute2 import IPRoute
        ipr = IPRoute()
        try:
            ipr.link("add", ifname="n9va", kind="veth", peer="n9vb")
            for name, ns in (("n9va", a), ("n9vb", b)):
                with open("/var/run/netns/" + ns.name) as f:
                    ipr.link("set", index=ipr.link_lookup(ifname=name)[0], net_ns_fd=f.fileno())
        finally:
            ipr.close()

        def setup(name, addr):
            def f(ipr):
                i = ipr.link_lookup(ifname=name)[0]
                ipr.link("set", index=i, mtu=mtu, state="up")
                ipr.addr("add", index=i, address=addr, prefixlen=24)
            return f
        a.ipr(setup("n9va", "10.10.0.1"))
        b.ipr(setup("n9vb", "10.10.0.2"))
        recv = start_receiver(b, "10.10.0.2", 5003)
        sender = a.popen(sys.executable, "-c", SENDER, "10.10.0.2", 5003, nbytes)
        try:
            n, dt = receiver_result(recv, timeout)
            sender.wait(timeout=10)
        finally:
            for p in (recv, sender):
                if p.poll() is None:
                    p.kill()
                    p.wait()
        assert n == nbytes
        return nbytes / dt
    finally:
        a.close()
        b.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mbytes", type=int, default=256, help="MB (2^20 bytes) per transfer")
    ap.add_argument("--mtu", default="1500,65000", help="comma-separated MTUs")
    ap.add_argument("--repeat", type=int, default=1, help="runs per case (best is printed)")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--profile", action="store_true", help="cProfile net9's receive loop")
    ap.add_argument("--no-linux", action="store_true", help="skip the veth comparison")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/tun.py: needs root (network namespaces, TUN, veth)")
    nbytes = args.mbytes << 20
    mtus = [int(m) for m in args.mtu.split(",")]
    print("transfer %d MB per case, best of %d" % (args.mbytes, args.repeat))
    print("%6s %6s %14s %14s %14s %10s %10s" % ("MTU", "MSS", "net9 recv MB/s", "net9 send MB/s",
                                              "veth MB/s", "recv/veth", "send/veth"))
    for mtu in mtus:
        rx = tx = lx = 0.0
        mss = 0
        for _ in range(args.repeat):
            r, t, mss, _ = bench_net9(mtu, nbytes, args.timeout, args.profile)
            rx, tx = max(rx, r), max(tx, t)
            if not args.no_linux:
                lx = max(lx, bench_veth(mtu, nbytes, args.timeout))
        if args.no_linux:
            print("%6d %6d %14.1f %14.1f" % (mtu, mss, rx / 1e6, tx / 1e6))
        else:
            print("%6d %6d %14.1f %14.1f %14.1f %10.2f %10.2f" % (
                mtu, mss, rx / 1e6, tx / 1e6, lx / 1e6, rx / lx, tx / lx))


if __name__ == "__main__":
    main()
