#!/usr/bin/env python3
"""9P server benchmark: `net9 serve --tun none` in its own process, driven
over its unix socket by a raw pipelined client.

1. small reads: Tread of tcp/0/status (offset 0, count 512) with 16
   requests outstanding on one connection, for --seconds; reports
   requests per second (the issue aims at >= 20,000).
2. streaming: a TCP transfer inside net9 (loopback medium) between two
   conversations: one connection writes --mbytes through the call's data
   file in msize-24 Twrites (4 outstanding), another reads the client's
   data file with Treads of msize-24 (2 outstanding) until EOF; reports
   MB/s of the reader.

    python bench/ninep.py [--seconds 5] [--mbytes 64] [--msize 131096]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from net9 import ninep  # noqa: E402
from ninepenv import Raw  # noqa: E402  (the tests' raw 9P client)

NOFID = ninep.NOFID


class Client(Raw):
    """A raw 9P client on the server's unix socket, versioned and attached
    (fid 0); ok() raises on an error reply."""

    def __init__(self, path, msize):
        super().__init__(path=path, timeout=None)
        self.version(msize)
        self.ok(ninep.Tattach, 0, NOFID, os.environ.get("USER", "bench"), "")

    def walkopen(self, fid, path, mode):
        self.ok(ninep.Twalk, 0, fid, [x for x in path.split("/") if x])
        return self.ok(ninep.Topen, fid, mode)


def small_reads(path, seconds, depth=16):
    c = Client(path, 8192)
    c.walkopen(1, "tcp/clone", 2)
    num = int(c.ok(ninep.Tread, 1, 0, 100).data)
    c.walkopen(2, "tcp/%d/status" % num, 0)
    msgs = [ninep.pack(ninep.Tread, t, 2, 0, 512) for t in range(depth)]
    c.s.sendall(b"".join(msgs))
    n = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while True:
        m = c.recvraw()
        n += 1
        if m[4] != ninep.Rread:
            raise RuntimeError("bad reply %r" % ninep.unpackr(m))
        tag = m[5] | (m[6] << 8)
        if time.perf_counter() < end:
            c.s.sendall(msgs[tag])
        else:
            depth -= 1
            if depth == 0:
                break
    dt = time.perf_counter() - t0
    c.s.close()
    return n / dt


def streaming(path, mbytes, msize):
    rd = Client(path, msize)
    wr = Client(path, msize)
    io = rd.msize - ninep.IOHDRSZ
    wr.walkopen(1, "tcp/clone", 2)
    lnum = int(wr.ok(ninep.Tread, 1, 0, 100).data)
    wr.ok(ninep.Twrite, 1, 0, b"announce 17777")
    rd.walkopen(1, "tcp/clone", 2)
    cnum = int(rd.ok(ninep.Tread, 1, 0, 100).data)
    rd.ok(ninep.Twrite, 1, 0, b"connect 127.0.0.1!17777")
    wr.walkopen(2, "tcp/%d/listen" % lnum, 2)
    anum = int(wr.ok(ninep.Tread, 2, 0, 100).data)
    wr.walkopen(3, "tcp/%d/data" % anum, 2)
    rd.walkopen(3, "tcp/%d/data" % cnum, 0)
    total = mbytes << 20
    chunk = b"x" * (wr.msize - ninep.IOHDRSZ)
    # one thread, both connections: one Twrite and 2 Treads in flight
    # (reads on one fid are answered in arrival order, as devip serialises
    # the readers of a queue).  More Twrites in flight make this
    # single-threaded client block in sendall() while the server's Rreads
    # pile up unread on the other socket: the two stall each other and the
    # figure measures the client, not the server (22 MB/s with 4).
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(wr.s, selectors.EVENT_READ, "w")
    sel.register(rd.s, selectors.EVENT_READ, "r")
    sent = got = 0
    wout = rout = 0
    eof = False
    t0 = time.perf_counter()
    wtag = rtag = 0
    while not eof:
        while wout < 1 and sent < total:
            d = chunk[:min(total - sent, len(chunk))]
            wtag = (wtag + 1) % 0xFFFF
            wr.s.sendall(ninep.pack(ninep.Twrite, wtag, 3, 0, d))
            sent += len(d)
            wout += 1
            if sent >= total:
                wr.s.sendall(ninep.pack(ninep.Tclunk, 60000, 3)
                             + ninep.pack(ninep.Tclunk, 60001, 2))
                wout += 2
        while rout < 2:
            rtag = (rtag + 1) % 0xFFFF
            rd.s.sendall(ninep.pack(ninep.Tread, rtag, 3, 0, io))
            rout += 1
        for key, _ in sel.select():
            c = wr if key.data == "w" else rd
            d = c.s.recv(1 << 20)
            if not d:
                raise EOFError
            c.buf += d
            while len(c.buf) >= 4 and len(c.buf) >= int.from_bytes(c.buf[:4], "little"):
                m = c.recvraw()
                if m[4] == ninep.Rerror:
                    raise RuntimeError(ninep.unpackr(m))
                if c is wr:
                    wout -= 1
                else:
                    rout -= 1
                    k = int.from_bytes(m[7:11], "little")
                    if k == 0:
                        eof = True
                    got += k
    dt = time.perf_counter() - t0
    if got != total:
        raise RuntimeError("read %d of %d bytes" % (got, total))
    return got / dt / 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--mbytes", type=int, default=64)
    ap.add_argument("--msize", type=int, default=128 * 1024 + 24)
    a = ap.parse_args()
    d = tempfile.mkdtemp()
    sock = os.path.join(d, "net9")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(ninep.__file__)))
    p = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(HERE), "cmd", "net9"),
                          "serve", "--tun", "none", "--srv", "unix!" + sock],
                         stderr=subprocess.DEVNULL, env=env)
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        rps = small_reads(sock, a.seconds)
        print("small reads (tcp/N/status, 16 outstanding, one connection): %.0f req/s" % rps)
        mbs = streaming(sock, a.mbytes, a.msize)
        print("streaming %d MB through data (msize %d reads, loopback TCP in net9): "
              "%.1f MB/s" % (a.mbytes, a.msize, mbs))
    finally:
        p.terminate()
        p.wait(10)


if __name__ == "__main__":
    main()
