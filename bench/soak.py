#!/usr/bin/env python3
"""Memory soak: a real `net9 serve` (its own process, as root, its TUN in a
private network namespace) under a mixed load, its resident memory (RSS)
and open descriptors printed as it goes.

    python bench/soak.py [--minutes 2] [--interval 30] [--workers 4]
    python bench/soak.py --burst [--conns 50] [--mbytes 5] [--rounds 2] [--idle 30]

Root only.  net9 is 10.9.0.2, Linux 10.9.0.1 (MTU --mtu, default 1500).
The Linux peers live in the namespace: python's http.server (a separate
process, files of 1 KB, 64 KB and 1 MB) and, as threads of this program
with their sockets made in the namespace, an exchange server (port 7001:
sends what the caller asks for while reading what the caller sends, then
closes) and callers of net9's announcement.  net9's side is net9.dial over
the serve process's unix socket (9P clients come and go: most operations
open their own 9P connection).

Soak (default): --workers threads repeat, for --minutes, one of
  http      dial 10.9.0.1!8000, GET a file, read to EOF
  exchange  dial 10.9.0.1!7001, up to --xbytes each way at once
  inbound   Linux calls 10.9.0.2!7100 (announced in net9, a listener
            thread accepts over 9P), up to --xbytes each way
  stats     tcp/stats, the tcp directory, a few status files, ipifc/stats
  churn     a 9P connection that dials, closes without a byte, and leaves
Printed every --interval seconds: RSS (MB) and descriptors of the serve
process, operations done, live conversations; then, after the load ends,
once every conversation is Closed, and after --idle seconds more.

Burst (--burst): --conns connections at once, each --mbytes each way
(exchange), then wait for every conversation to close, --idle seconds
idle; --rounds times; RSS after each step.

Bounded: every operation has time-outs; the load stops at the deadline (or
after --rounds bursts) and the program removes the namespace, the TUN and
its temporary directory.  --trace N runs serve under tracemalloc (N frames)
and prints its growth between the post-start point and the end (and from
the end of the first burst), with glibc's mallinfo2 figures (slow: an
investigation tool, not a measurement).  --no-heap-trim runs serve with
net9.stack.malloc_trim disabled, to see what malloc_trim is worth.
"""

import argparse
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)                     # the source tree's in-place build
sys.path.insert(0, HERE)

from common import recvexact                 # noqa: E402

import net9                                  # noqa: E402
from net9.dial import Net                    # noqa: E402
from net9.media import innetns               # noqa: E402

CMD = os.path.join(ROOT, "cmd", "net9")
NET9 = "10.9.0.2"
LINUX = "10.9.0.1"
XPORT = 7001            # Linux's exchange server
INPORT = 7100           # net9's announcement
HTTPPORT = 8000
PIECE = 128 * 1024
PATTERN = memoryview(bytes(range(256)) * (PIECE // 256))
HTTPFILES = {"small": 1000, "medium": 64 * 1024, "large": 1 << 20}

# serve under tracemalloc (nframes > 0; SIGUSR1 dumps a snapshot and glibc's
# mallinfo2 to PREFIX.N) and/or without malloc_trim (heaptrim 0)
WRAP = r"""
import ctypes, signal, sys, tracemalloc
nframes, prefix, heaptrim = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
if not heaptrim:
    import net9.stack
    net9.stack.malloc_trim = None
if nframes:
    tracemalloc.start(nframes)
libc = ctypes.CDLL(None)
class MI(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
               "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = MI
count = [0]
def snap(sig, frame):
    count[0] += 1
    name = "%s.%d" % (prefix, count[0])
    if nframes:
        tracemalloc.take_snapshot().dump(name)
    mi = libc.mallinfo2()
    with open(name + ".mallinfo", "w") as f:
        f.write(" ".join("%s=%d" % (n, getattr(mi, n)) for n, _ in MI._fields_) + "\n")
    with open(name + ".done", "w") as f:
        f.write("ok\n")
signal.signal(signal.SIGUSR1, snap)
sys.argv = ["net9"] + sys.argv[4:]
from net9.cli import main
main()
"""


def log(msg):
    print("%s %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


# ---- the serve process -------------------------------------------------------

class Serve:
    def __init__(self, ns, tmp, mtu, trace=0, heaptrim=True):
        self.sock = os.path.join(tmp, "net9")
        self.srv = "unix!" + self.sock
        self.logpath = os.path.join(tmp, "serve.log")
        args = ["serve", "--netns", ns, "--srv", self.srv, "--mtu", str(mtu)]
        self.trace = trace
        if trace or not heaptrim:
            self.prefix = os.path.join(tmp, "snap")
            argv = [sys.executable, "-c", WRAP, str(trace), self.prefix,
                    str(int(heaptrim))] + args
        else:
            self.prefix = None
            argv = [sys.executable, CMD] + args
        env = dict(os.environ)
        env["PYTHONPATH"] = os.path.dirname(os.path.dirname(net9.__file__))
        self.logf = open(self.logpath, "w")
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.logf,
                                  stderr=self.logf, env=env)
        self.nsnap = 0
        end = time.time() + 30
        while time.time() < end:
            if self.p.poll() is not None:
                raise RuntimeError("net9 serve exited: %s" % open(self.logpath).read())
            with open(self.logpath) as f:
                if "serving 9P on" in f.read():
                    return
            time.sleep(0.1)
        raise RuntimeError("net9 serve did not start: %s" % open(self.logpath).read())

    def rss(self):
        """(RSS MB, peak RSS MB, open descriptors)."""
        rss = hwm = 0
        with open("/proc/%d/status" % self.p.pid) as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    rss = int(ln.split()[1]) / 1024
                elif ln.startswith("VmHWM:"):
                    hwm = int(ln.split()[1]) / 1024
        return rss, hwm, len(os.listdir("/proc/%d/fd" % self.p.pid))

    def snapshot(self):
        """(tracemalloc snapshot, mallinfo text) under --trace, else None."""
        if self.prefix is None:
            return None
        self.nsnap += 1
        name = "%s.%d" % (self.prefix, self.nsnap)
        os.kill(self.p.pid, signal.SIGUSR1)
        end = time.time() + 120
        while not os.path.exists(name + ".done"):
            if time.time() > end:
                raise RuntimeError("no snapshot from serve")
            time.sleep(0.2)
        import tracemalloc
        snap = tracemalloc.Snapshot.load(name) if self.trace else None
        return snap, open(name + ".mallinfo").read().strip()

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.logf.close()


# ---- Linux's side (threads of this program, sockets in the namespace) -------------

def nssocket(ns):
    with innetns(ns):
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def sendn(send, n):
    while n > 0:
        k = min(n, PIECE)
        send(PATTERN[:k])
        n -= k


def sink(recv, limit=None):
    """Read until EOF (or limit bytes): the count."""
    n = 0
    while limit is None or n < limit:
        d = recv(1 << 18 if limit is None else min(1 << 18, limit - n))
        if not d:
            break
        n += len(d)
    return n


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.ops = {}
        self.errors = {}
        self.bytes = 0
        self.lasterr = None

    def done(self, kind, nbytes=0):
        with self.lock:
            self.ops[kind] = self.ops.get(kind, 0) + 1
            self.bytes += nbytes

    def failed(self, kind, e):
        with self.lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1
            self.lasterr = "%s: %s: %s" % (kind, type(e).__name__, e)

    def text(self):
        with self.lock:
            ops = " ".join("%s=%d" % kv for kv in sorted(self.ops.items()))
            errs = sum(self.errors.values())
            return "ops %s, %.0f MB moved, errors %d%s" % (
                ops or "-", self.bytes / 1e6, errs,
                (" (last: %s)" % self.lasterr) if errs else "")


class ExchangeServer:
    """Linux's exchange server on 10.9.0.1!7001: a 16-byte header (bytes to
    send back, bytes the caller sends), then both at once; then close (the
    caller, on Plan 9, cannot half-close: the count says when it is done)."""

    def __init__(self, ns):
        self.ls = nssocket(ns)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((LINUX, XPORT))
        self.ls.listen(256)
        self.stopped = False
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while not self.stopped:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(s,), daemon=True).start()

    def serve(self, s):
        try:
            s.settimeout(120)
            nback, nin = struct.unpack("!QQ", recvexact(s, 16))
            t = threading.Thread(target=lambda: sendn(s.sendall, nback), daemon=True)
            t.start()
            got = sink(s.recv, nin)
            t.join(120)
            if got != nin:
                raise RuntimeError("exchange: got %d of %d" % (got, nin))
        except (OSError, EOFError, RuntimeError):
            pass
        finally:
            s.close()

    def close(self):
        self.stopped = True
        self.ls.close()


def linux_call(ns, nsend, nrecv, timeout=120):
    """Linux calls net9's announcement and exchanges bytes; bytes moved."""
    s = nssocket(ns)
    try:
        s.settimeout(timeout)
        s.connect((NET9, INPORT))
        s.sendall(struct.pack("!QQ", nrecv, nsend))
        t = threading.Thread(target=lambda: (sendn(s.sendall, nsend),
                                             s.shutdown(socket.SHUT_WR)), daemon=True)
        t.start()
        got = sink(s.recv)
        t.join(timeout)
        if got != nrecv:
            raise RuntimeError("inbound: got %d of %d" % (got, nrecv))
        return nsend + nrecv
    finally:
        s.close()


# ---- net9's side (over 9P) --------------------------------------------------------

class Listener:
    """net9 announces tcp!*!7100 and serves each call in a thread: the
    16-byte header (bytes to send, bytes to expect), then both at once."""

    def __init__(self, srv, counters):
        self.net = Net(srv=srv, user="root")
        self.ann = self.net.announce("tcp!*!%d" % INPORT)
        self.counters = counters
        self.stopped = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopped:
            try:
                call = self.ann.listen(timeout=1)
            except TimeoutError:
                continue
            except OSError as e:
                if not self.stopped:
                    self.counters.failed("listen", e)
                    time.sleep(0.5)
                continue
            threading.Thread(target=self.serve, args=(call,), daemon=True).start()

    def serve(self, call):
        try:
            c = call.accept()
        except OSError as e:
            self.counters.failed("accept", e)
            return
        try:
            c.settimeout(120)
            nsend, nin = struct.unpack("!QQ", recvexact(c, 16))
            t = threading.Thread(target=lambda: sendn(c.sendall, nsend), daemon=True)
            t.start()
            got = sink(c.recv)
            t.join(120)
            if got != nin:
                raise RuntimeError("listener: got %d of %d" % (got, nin))
        except (OSError, EOFError, RuntimeError) as e:
            self.counters.failed("accepted", e)
        finally:
            c.close()

    def close(self):
        self.stopped = True
        self.thread.join(5)
        try:
            self.ann.close()
        finally:
            self.net.close()


def exchange(net, nsend, nrecv, timeout=120):
    """net9 dials Linux's exchange server: bytes moved."""
    c = net.dial("tcp!%s!%d" % (LINUX, XPORT), timeout=30)
    try:
        c.settimeout(timeout)
        c.sendall(struct.pack("!QQ", nrecv, nsend))
        err = []

        def send():
            try:
                sendn(c.sendall, nsend)
            except OSError as e:
                err.append(e)
        t = threading.Thread(target=send, daemon=True)
        t.start()
        got = sink(c.recv)
        t.join(timeout)
        if err:
            raise err[0]
        if got != nrecv:
            raise RuntimeError("exchange: got %d of %d" % (got, nrecv))
        return nsend + nrecv
    finally:
        c.close()


def http_get(net, name):
    c = net.dial("tcp!%s!%d" % (LINUX, HTTPPORT), timeout=30)
    try:
        c.settimeout(60)
        c.sendall(("GET /%s HTTP/1.0\r\n\r\n" % name).encode())
        body = b""
        while True:
            d = c.recv(1 << 17)
            if not d:
                break
            body += d
        if not body.startswith(b"HTTP/1.0 200") or len(body) < HTTPFILES[name]:
            raise RuntimeError("http: %d bytes: %r" % (len(body), body[:40]))
        return len(body)
    finally:
        c.close()


def stats(net):
    n = len(net.cat("tcp/stats"))
    ents = [e[0] for e in net.ls("tcp") if e[0].isdigit()]
    for x in random.sample(ents, min(5, len(ents))):
        try:
            n += len(net.cat("tcp/%s/status" % x))
        except OSError:
            pass
    n += len(net.cat("ipifc/stats"))
    return n


def convstates(net):
    """{state: count} of the tcp conversations."""
    out = {}
    for name, uid, isdir in net.ls("tcp"):
        if not name.isdigit():
            continue
        try:
            st = net.cat("tcp/%s/status" % name).split(" ", 1)[0]
        except OSError:
            continue
        out[st] = out.get(st, 0) + 1
    return out


def waitclosed(srv, timeout=120):
    """Wait until every tcp conversation is Closed (or timeout); the states."""
    end = time.time() + timeout
    with Net(srv=srv, user="root") as net:
        while True:
            st = convstates(net)
            busy = {k: v for k, v in st.items() if k != "Closed"}
            if not busy or time.time() > end:
                return st
            time.sleep(1)


# ---- the runs --------------------------------------------------------------------

def report(serve, label, srv=None):
    rss, hwm, fds = serve.rss()
    extra = ""
    if srv is not None:
        try:
            with Net(srv=srv, user="root") as net:
                st = convstates(net)
            extra = "  conversations %d (%s)" % (sum(st.values()), " ".join(
                "%s=%d" % kv for kv in sorted(st.items())))
        except OSError as e:
            extra = "  conversations ? (%s)" % e
    log("%-26s RSS %7.1f MB  peak %7.1f MB  fds %4d%s" % (label, rss, hwm, fds, extra))
    return rss


def burst(serve, args, counters):
    errs = []
    done = []

    def one(i):
        try:
            with Net(srv=serve.srv, user="root") as net:
                n = args.mbytes * 1000 * 1000
                done.append(exchange(net, n, n, timeout=300))
                counters.done("burst", done[-1])
        except Exception as e:
            errs.append(e)
            counters.failed("burst", e)
    ts = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(args.conns)]
    t0 = time.time()
    for t in ts:
        t.start()
    for t in ts:
        t.join(600)
    return time.time() - t0, len(done), errs


def worker(serve, ns, args, counters, deadline, seed):
    rnd = random.Random(seed)
    shared = None
    while time.time() < deadline:
        kind = rnd.choice(("http", "http", "exchange", "exchange", "inbound", "inbound",
                           "stats", "churn"))
        try:
            if shared is None or rnd.random() < 0.5:
                if shared is not None:
                    shared.close()
                shared = Net(srv=serve.srv, user="root")
            net = shared
            if kind == "http":
                n = http_get(net, rnd.choice(list(HTTPFILES)))
            elif kind == "exchange":
                n = exchange(net, rnd.randrange(args.xbytes), rnd.randrange(args.xbytes))
            elif kind == "inbound":
                n = linux_call(ns, rnd.randrange(args.xbytes), rnd.randrange(args.xbytes))
            elif kind == "stats":
                n = stats(net)
            else:
                c = net.dial("tcp!%s!%d" % (LINUX, HTTPPORT), timeout=30)
                c.close()
                shared.close()
                shared = None
                n = 0
            counters.done(kind, n)
        except Exception as e:
            counters.failed(kind, e)
            if shared is not None:
                shared.close()
                shared = None
            time.sleep(0.2)
    if shared is not None:
        shared.close()


def tracediff(before, after, n=25):
    if before is None or after is None:
        return
    (s0, m0), (s1, m1) = before, after
    log("mallinfo2 at start: %s" % m0)
    log("mallinfo2 now:      %s" % m1)
    if s0 is None or s1 is None:
        return
    t0 = sum(s.size for s in s0.statistics("filename"))
    t1 = sum(s.size for s in s1.statistics("filename"))
    log("tracemalloc: %.1f MB -> %.1f MB; largest growth by line:" % (t0 / 1e6, t1 / 1e6))
    for st in s1.compare_to(s0, "lineno")[:n]:
        print("    %s" % st, flush=True)
    log("by traceback (top 5):")
    for st in s1.compare_to(s0, "traceback")[:5]:
        print("    %+d B in %d blocks" % (st.size_diff, st.count_diff), flush=True)
        for ln in st.traceback.format()[-12:]:
            print("      " + ln, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=2.0, help="soak length (default 2)")
    ap.add_argument("--interval", type=float, default=30.0, help="seconds between reports")
    ap.add_argument("--workers", type=int, default=4, help="soak worker threads")
    ap.add_argument("--xbytes", type=int, default=1 << 20,
                    help="largest exchange each way in the soak (bytes)")
    ap.add_argument("--burst", action="store_true", help="burst mode instead of the soak")
    ap.add_argument("--conns", type=int, default=50, help="burst: connections at once")
    ap.add_argument("--mbytes", type=int, default=5, help="burst: MB each way per connection")
    ap.add_argument("--rounds", type=int, default=2, help="burst: how many bursts")
    ap.add_argument("--idle", type=float, default=30.0, help="idle seconds after the load")
    ap.add_argument("--mtu", type=int, default=1500)
    ap.add_argument("--trace", type=int, default=0, metavar="N",
                    help="run serve under tracemalloc with N frames and print its growth")
    ap.add_argument("--no-heap-trim", dest="heaptrim", action="store_false",
                    help="serve without malloc_trim (net9.stack.malloc_trim = None)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("soak.py: needs root (network namespace, TUN)")

    ns = "net9soak-" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
    tmp = tempfile.mkdtemp(prefix="net9soak.")
    serve = http = xs = lis = None
    try:
        www = os.path.join(tmp, "www")
        os.makedirs(www)
        for name, size in HTTPFILES.items():
            with open(os.path.join(www, name), "wb") as f:
                f.write((b"net9 soak " * (size // 10 + 1))[:size])
        serve = Serve(ns, tmp, args.mtu, trace=args.trace, heaptrim=args.heaptrim)
        log("net9 serve pid %d, namespace %s, MTU %d, python %s" % (
            serve.p.pid, ns, args.mtu, sys.version.split()[0]))
        http = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "http.server",
                                 str(HTTPPORT), "--bind", LINUX, "--directory", www],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        xs = ExchangeServer(ns)
        time.sleep(1)
        counters = Counters()
        start = report(serve, "after start", serve.srv)
        snap0 = snap1 = serve.snapshot()
        if args.burst:
            for r in range(1, args.rounds + 1):
                dt, ok, errs = burst(serve, args, counters)
                log("burst %d: %d x %d MB each way in %.1f s, %d failed%s" % (
                    r, ok, args.mbytes, dt, len(errs),
                    (" (%s)" % errs[0]) if errs else ""))
                report(serve, "burst %d: load ended" % r)
                waitclosed(serve.srv)
                report(serve, "burst %d: conversations closed" % r, serve.srv)
                time.sleep(args.idle)
                report(serve, "burst %d: after %ds idle" % (r, args.idle))
                if r == 1:
                    snap1 = serve.snapshot()
        else:
            lis = Listener(serve.srv, counters)
            t0 = time.time()
            deadline = t0 + args.minutes * 60
            ws = [threading.Thread(target=worker,
                                   args=(serve, ns, args, counters, deadline, 1000 + i),
                                   daemon=True) for i in range(args.workers)]
            for w in ws:
                w.start()
            nextr = t0 + args.interval
            while any(w.is_alive() for w in ws):
                time.sleep(max(0.0, min(nextr, deadline) - time.time()) if time.time() < deadline
                           else 1)
                if time.time() >= nextr:
                    report(serve, "soak %4.1f min" % ((time.time() - t0) / 60))
                    log("  " + counters.text())
                    nextr += args.interval
            for w in ws:
                w.join(300)
            lis.close()
            lis = None
            report(serve, "load ended")
            log("  " + counters.text())
            waitclosed(serve.srv)
            report(serve, "conversations closed", serve.srv)
            time.sleep(args.idle)
            report(serve, "after %ds idle" % args.idle)
        end = report(serve, "end")
        log("RSS end - start: %+.1f MB" % (end - start))
        snap2 = serve.snapshot()
        if args.burst and args.rounds > 1 and snap1 is not None:
            log("growth from the end of burst 1 to the end:")
            tracediff(snap1, snap2)
        log("growth from the start to the end:")
        tracediff(snap0, snap2)
    finally:
        if lis is not None:
            try:
                lis.close()
            except Exception:
                pass
        if xs is not None:
            xs.close()
        if http is not None:
            http.kill()
            http.wait()
        if serve is not None:
            serve.stop()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
