#!/usr/bin/env python3
"""The user's path at the wire's speed: Linux's TCP against net9 reached
the way users reach it (net9 serve, its TUN, its 9P server and a 9P
client using net9.dial), next to yardsticks measured in the same run.

Columns, each at every MTU (default 1500 and 65000):

  net9 via 9P  `net9 serve --netns NS --srv unix!SOCK --mtu M` as its own
               process (Linux 10.9.0.1 in NS, net9 10.9.0.2 across the
               TUN), and this script's hidden `n9server` subcommand as a
               second process: tcpbench's four server protocols written
               with net9.dial over 9P (one Net, i.e. one 9P connection,
               per protocol; a thread per connection for sink, echo and
               source, accept-and-close one call at a time; recv of
               128 KiB, sendall of 128 KiB).  The Linux tcpbench client
               runs inside NS against 10.9.0.2.
  C relay      ../shared/tools/wire/tunwire.c (compiled at run time into a
               temporary directory) between two namespaces, tcpbench's
               server in one and its client in the other; `tunwire -o`
               (IFF_VNET_HDR offloads) for the "with offloads" rows.
  veth         the same tcpbench server and client in two namespaces
               joined by a veth pair.
  asyncio      net9 via 9P again, with the hidden `n9aserver` subcommand
               as the 9P client: the same four protocols written with
               net9.aio (one event loop, one 9P connection for all,
               start_server; read of 128 KiB, write and drain of 128 KiB),
               once per MTU with the last offload mode asked for
               (--no-asyncio skips it).

When `net9 serve --help` lists --no-offload, net9 runs twice per MTU: with
its default offloads (compared with `tunwire -o`) and with --no-offload
(compared with plain tunwire); otherwise once, without offloads.

Measures (tcpbench client modes), in this order on each column: bulk
Linux->server (sink) and server->Linux (source), MB/s; 1-byte round trip,
median and p99 in microseconds; connect+close rate, 5 consecutive runs
(last: it leaves net9 with thousands of conversations in Time_wait).  Also
the CPU time that net9 serve, the 9P client process and the Linux driver
used over each measure (from /proc/PID/stat and getrusage) as a fraction of
its wall time, and how full the 9P server's 128 KiB reads came back.

    python bench/path.py [--mtu 1500,65000] [--only bulk,rr,conn]
                         [--bytes 256M] [--seconds 3] [--runs 1] [--repeat 1]
                         [--offload both|on|off] [--no-net9] [--no-relay]
                         [--no-veth] [--json FILE] [--wire DIR] [--py-spy DIR]

--repeat N runs every column N times, interleaved, and prints medians.
--py-spy DIR records net9 serve and the 9P client with py-spy (raw
collapsed stacks, 250 Hz) during each net9 measure.  Every measure is
bounded in time; a process that dies or stops, a transfer that hangs or a
^C ends the run with a message, after the processes, namespaces, TUNs and
the temporary directory are removed.

Root only.  Run it from the source tree after the in-place build.
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)                       # the source tree's in-place build
sys.path.insert(0, HERE)
from common import Failure, Run, needs, run_meta, serve_calls, sh  # noqa: E402,F401  (loss.py: P.Failure...)

CMD = os.path.join(ROOT, "cmd", "net9")

BASE = 5201                # tcpbench's ports: BASE+0 sink, +1 accept, +2 echo, +3 source
SINK, ACCEPT, ECHO, SOURCE = 0, 1, 2, 3
IOSIZE = 128 * 1024        # the 9P client's reads and writes
OP_TIMEOUT = 30.0          # per recv/send in the 9P server processes
CONN_RUNS = 5
NET9_ADDR, LINUX_ADDR = "10.9.0.2", "10.9.0.1"      # net9 serve's defaults
RELAY_A, RELAY_B = "10.77.0.1", "10.77.0.2"
VETH_A, VETH_B = "10.78.0.1", "10.78.0.2"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def parse_size(s):
    s = s.strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if s and s[-1] in mult:
        return int(float(s[:-1]) * mult[s[-1]])
    return int(s)


# ======================================================================
# n9server: tcpbench's four server protocols over net9.dial


def n9server(srv, port, lifetime, user):
    """Serve sink, accept, echo and source on tcp!*!port..port+3 through
    net9 serve's 9P socket; exit after lifetime seconds, when the 9P
    connection dies or when the parent goes."""
    import net9
    from net9.dial import Net

    deadline = time.monotonic() + lifetime
    parent = os.getppid()
    dead = []

    def fatal(why):
        log("n9server: %s" % why)
        dead.append(why)

    def recv_exact(c, n):
        out = b""
        while len(out) < n:
            d = c.recv(n - len(out))
            if not d:
                raise ConnectionError("EOF after %d of %d bytes" % (len(out), n))
            out += d
        return out

    def h_sink(c):
        total = reads = 0
        slowest = 0.0
        t0 = t = time.perf_counter()
        while True:
            d = c.recv(IOSIZE)
            reads += 1
            if not d:
                break
            total += len(d)
            # the longest wait of one read, once data flows (the first
            # waits for the peer to start)
            u = time.perf_counter()
            if reads > 1 and u - t > slowest:
                slowest = u - t
            t = u
        log("n9server sink: %d bytes in %d reads in %.3f s, slowest read %.2f ms" % (
            total, reads, time.perf_counter() - t0, slowest * 1000))
        c.sendall(struct.pack("!Q", total))

    def h_echo(c):
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)

    block = bytes(IOSIZE)

    def h_source(c):
        (n,) = struct.unpack("!Q", recv_exact(c, 8))
        n = min(n, 1 << 34)
        while n > 0:
            k = min(n, IOSIZE)
            c.sendall(block if k == IOSIZE else block[:k])
            n -= k

    def serve_conn(name, h, conn):
        try:
            conn.settimeout(OP_TIMEOUT)
            h(conn)
        except Exception as e:
            log("n9server %s: %s: %s" % (name, type(e).__name__, e))
        finally:
            try:
                conn.close()
            except Exception:
                pass

    def accept_loop(name, ann, h):
        serve_calls(ann, None if h is None else (lambda conn: serve_conn(name, h, conn)),
                    deadline, dead, lambda text: log("n9server %s: %s" % (name, text)))

    table = [("sink", SINK, h_sink), ("accept", ACCEPT, None), ("echo", ECHO, h_echo),
             ("source", SOURCE, h_source)]
    threads = []
    for name, off, h in table:
        net = Net(srv=srv, user=user)
        ann = net.announce("tcp!*!%d" % (port + off))
        t = threading.Thread(target=accept_loop, args=(name, ann, h), daemon=True,
                             name="n9server " + name)
        t.start()
        threads.append(t)
    print("READY %s %d (net9 %s)" % (srv, port, os.path.dirname(net9.__file__)), flush=True)
    while time.monotonic() < deadline and not dead and any(t.is_alive() for t in threads):
        if os.getppid() != parent:
            fatal("parent gone")
            break
        time.sleep(0.2)
    sys.stdout.flush()
    os._exit(1 if dead else 0)


# n9aserver: the same four protocols with net9.aio: one event loop, one 9P
# connection for all of them, no threads


def n9aserver(srv, port, lifetime, user):
    import asyncio
    import net9
    import net9.aio as aio

    block = bytes(IOSIZE)

    async def h_sink(c):
        total = reads = 0
        t0 = time.perf_counter()
        while True:
            d = await c.read(IOSIZE)
            reads += 1
            if not d:
                break
            total += len(d)
        # (the same words as n9server's: measure_column reads them)
        log("n9server sink: %d bytes in %d reads in %.3f s (asyncio)" % (
            total, reads, time.perf_counter() - t0))
        c.write(struct.pack("!Q", total))

    async def h_echo(c):
        while True:
            d = await c.read(65536)
            if not d:
                break
            c.write(d)
            await c.drain()

    async def h_source(c):
        (n,) = struct.unpack("!Q", await c.readexactly(8))
        n = min(n, 1 << 34)
        while n > 0:
            k = min(n, IOSIZE)
            c.write(block if k == IOSIZE else block[:k])
            await c.drain()
            n -= k

    def handler(name, h):
        async def serve(reader, conn):
            try:
                if h is not None:
                    await asyncio.wait_for(h(conn), lifetime)
            except Exception as e:
                log("n9aserver %s: %s: %s" % (name, type(e).__name__, e))
            finally:
                conn.close()
                try:
                    await conn.wait_closed()
                except Exception:
                    pass
        return serve

    async def main():
        parent = os.getppid()
        net = await aio.Net.connect(srv, user)
        for name, off, h in (("sink", SINK, h_sink), ("accept", ACCEPT, None),
                             ("echo", ECHO, h_echo), ("source", SOURCE, h_source)):
            await aio.start_server(handler(name, h), "tcp!*!%d" % (port + off), net=net)
        print("READY %s %d (net9 %s, asyncio)" % (srv, port, os.path.dirname(net9.__file__)),
              flush=True)
        deadline = time.monotonic() + lifetime
        while time.monotonic() < deadline and not net.closed and os.getppid() == parent:
            await asyncio.sleep(0.2)
        return 1 if net.closed else 0
    code = asyncio.run(main())
    sys.stdout.flush()
    os._exit(code)


# ======================================================================
# process and namespace plumbing


def cputime(pid):
    """utime + stime of a process (all its threads), seconds; None if gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Proc:
    """A long-lived child: its own session (a ^C on the terminal is ours to
    handle), SIGTERM when this script dies (setpriv --pdeathsig), stdout
    and stderr collected line by line."""

    def __init__(self, name, argv, ns=None, env=None):
        self.name = name
        argv = ["setpriv", "--pdeathsig", "TERM", "--"] + [str(a) for a in argv]
        if ns is not None:
            argv = ["ip", "netns", "exec", ns] + argv
        self.argv = argv
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env, start_new_session=True)
        self.pid = self.p.pid
        self.lines = []
        self.cv = threading.Condition()
        self.eofs = 0
        for f, tag in ((self.p.stdout, "out"), (self.p.stderr, "err")):
            threading.Thread(target=self._reader, args=(f, tag), daemon=True).start()

    def _reader(self, f, tag):
        for ln in f:
            with self.cv:
                self.lines.append((tag, ln.decode(errors="replace").rstrip("\n")))
                self.cv.notify_all()
        with self.cv:
            self.eofs += 1
            self.cv.notify_all()

    def expect(self, pattern, timeout=30):
        end = time.monotonic() + timeout
        with self.cv:
            while True:
                for _, ln in self.lines:
                    if re.search(pattern, ln):
                        return ln
                if self.eofs == 2 or self.p.poll() is not None:
                    self.cv.wait(0.2)         # the last lines
                    raise Failure("%s exited (status %s) before printing %r:\n%s" % (
                        self.name, self.p.poll(), pattern, self.tail()))
                left = end - time.monotonic()
                if left <= 0:
                    raise Failure("%s did not print %r within %d s:\n%s" % (
                        self.name, pattern, timeout, self.tail()))
                self.cv.wait(min(left, 0.5))

    def lastmatch(self, pattern, count, timeout):
        """The last of the lines matching pattern once there are count of
        them (waiting up to timeout seconds for them), or None."""
        end = time.monotonic() + timeout
        with self.cv:
            while True:
                ms = [m for m in (re.search(pattern, ln) for _, ln in self.lines) if m]
                if len(ms) >= count or time.monotonic() >= end:
                    return ms[-1] if ms else None
                self.cv.wait(0.1)

    def tail(self, n=15):
        return "\n".join("    %s" % ln for _, ln in self.lines[-n:]) or "    (no output)"

    def check(self):
        if self.p.poll() is not None:
            time.sleep(0.2)
            raise Failure("%s exited (status %s):\n%s" % (self.name, self.p.returncode,
                                                          self.tail()))
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return
        if state == "T":                 # (not "t": a tracer such as py-spy)
            raise Failure("%s (pid %d) is stopped (state %s)" % (self.name, self.pid, state))

    def cpu(self):
        return cputime(self.pid)

    def stop(self, timeout=10):
        if self.p.poll() is None:
            try:
                self.p.send_signal(signal.SIGTERM)
                self.p.send_signal(signal.SIGCONT)
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                log("%s: no exit %d s after SIGTERM: SIGKILL" % (self.name, timeout))
                self.p.kill()
                self.p.wait(5)
            except ProcessLookupError:
                pass


class Setup:
    """What one column of one MTU needs (namespaces, processes, a
    directory), torn down in reverse by close() whatever happened."""

    def __init__(self):
        self.procs = []
        self.nss = []
        self.dirs = []

    def netns(self):
        name = "n9path-" + uuid.uuid4().hex[:8]
        sh("ip", "netns", "add", name)
        self.nss.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def proc(self, *a, **kw):
        p = Proc(*a, **kw)
        self.procs.append(p)
        return p

    def tmpdir(self):
        d = tempfile.mkdtemp(prefix="n9path-")
        self.dirs.append(d)
        return d

    def check(self):
        for p in self.procs:
            p.check()

    def close(self):
        # a second ^C (or SIGTERM) waits until everything is removed
        sigs = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
        old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
        try:
            self._close()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def _close(self):
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception as e:
                log("stopping %s: %s" % (p.name, e))
        self.procs = []
        for ns in reversed(self.nss):
            r = subprocess.run(["ip", "netns", "del", ns], capture_output=True, text=True)
            if r.returncode != 0:
                log("ip netns del %s: %s" % (ns, r.stderr.strip()))
        self.nss = []
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)
        self.dirs = []


# ======================================================================
# one column: a server of the four protocols reached from a namespace


class Column:
    """A running setup: host (the server's address), client_ns (where the
    Linux tcpbench client runs), cpu_procs (name -> Proc, CPU sampled
    around each measure)."""

    def __init__(self, label, setup, host, client_ns, cpu_procs):
        self.label = label
        self.setup = setup
        self.host = host
        self.client_ns = client_ns
        self.cpu_procs = cpu_procs
        self.pyspy = None          # (py-spy binary, directory, file prefix) for net9


def tcpbench_server(st, wire, ns, host, lifetime):
    p = st.proc("tcpbench server", [sys.executable, os.path.join(wire, "tcpbench.py"), "server",
                                    "--host", host, "--port", BASE, "--lifetime", lifetime],
                ns=ns)
    p.expect(r"^READY", 20)
    return p


def start_net9(st, mtu, offload, has_offload_flag, lifetime, aio=False):
    ns = st.netns()
    d = st.tmpdir()
    sock = os.path.join(d, "net9")
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    argv = [sys.executable, CMD, "serve", "--netns", ns, "--srv", "unix!" + sock,
            "--mtu", mtu]
    if has_offload_flag and not offload:
        argv.append("--no-offload")
    serve = st.proc("net9 serve", argv, env=env)
    serve.expect(r"serving 9P on unix!", 30)
    sub = "n9aserver" if aio else "n9server"
    client = st.proc("9P client (path.py %s)" % sub,
                     [sys.executable, os.path.abspath(__file__), sub, "--srv",
                      "unix!" + sock, "--port", BASE, "--lifetime", lifetime], env=env)
    client.expect(r"^READY", 30)
    label = "net9 serve" + ("" if not has_offload_flag else
                             (" (offloads)" if offload else " --no-offload"))
    if aio:
        label += ", net9.aio client"
    return Column(label, st, NET9_ADDR, ns, {"serve": serve, "9p_client": client})


def start_relay(st, tunwire, wire, mtu, offload, lifetime):
    a, b = st.netns(), st.netns()
    argv = [tunwire] + (["-o"] if offload else []) + ["-t", lifetime, a, "tw0", b, "tw1"]
    tw = st.proc("tunwire", argv)
    tw.expect(r"^READY", 20)
    for ns, dev, me, peer in ((a, "tw0", RELAY_A, RELAY_B), (b, "tw1", RELAY_B, RELAY_A)):
        sh("ip", "-n", ns, "addr", "add", me, "peer", peer, "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "mtu", mtu, "up")
    srv = tcpbench_server(st, wire, b, RELAY_B, lifetime)
    return Column("tunwire" + (" -o" if offload else ""), st, RELAY_B, a,
                  {"tunwire": tw, "server": srv})


def start_veth(st, wire, mtu, lifetime):
    a, b = st.netns(), st.netns()
    sh("ip", "-n", a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b)
    for ns, dev, me in ((a, "va", VETH_A), (b, "vb", VETH_B)):
        sh("ip", "-n", ns, "addr", "add", me + "/24", "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "mtu", mtu, "up")
    srv = tcpbench_server(st, wire, b, VETH_B, lifetime)
    return Column("veth", st, VETH_B, a, {"server": srv})


def drive(col, wire, args, timeout, tag=None):
    """Run one tcpbench client in col's namespace; (its JSON, wall
    seconds, CPU seconds per process name).  Watches every process of
    the column while it runs: one that dies ends the run."""
    argv = ["ip", "netns", "exec", col.client_ns, "setpriv", "--pdeathsig", "KILL", "--",
            sys.executable, os.path.join(wire, "tcpbench.py"), "client", "--host", col.host,
            "--port", str(BASE)] + [str(a) for a in args]
    spies = []
    if col.pyspy:
        exe, d, prefix = col.pyspy
        for k, pr in col.cpu_procs.items():
            f = os.path.join(d, "%s-%s-%s.txt" % (prefix, tag or args[0], k))
            spies.append(subprocess.Popen(
                [exe, "record", "--nonblocking", "--format", "raw", "--rate", "250",
                 "--pid", str(pr.pid), "-o", f], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        time.sleep(0.5)                       # py-spy attaches
    before = {k: p.cpu() for k, p in col.cpu_procs.items()}
    ru0 = os.times()
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    out = {}

    def collect():
        out["stdout"], out["stderr"] = p.communicate()
    t = threading.Thread(target=collect, daemon=True)
    t.start()
    wall = cpu = None
    try:
        while t.is_alive():
            t.join(0.2)
            if time.monotonic() - t0 > timeout:
                raise Failure("%s: tcpbench client %s still running after %d s (a hung "
                              "transfer?)" % (col.label, " ".join(map(str, args)), timeout))
            if t.is_alive():
                col.setup.check()
        wall = time.monotonic() - t0
        ru1 = os.times()
        cpu = {}
        for k, pr in col.cpu_procs.items():
            c = pr.cpu()
            cpu[k] = None if c is None or before[k] is None else c - before[k]
        cpu["linux_client"] = (ru1.children_user + ru1.children_system
                               - ru0.children_user - ru0.children_system)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
            t.join(5)
        for sp in spies:
            sp.send_signal(signal.SIGINT)
        for sp in spies:
            try:
                sp.wait(15)
            except subprocess.TimeoutExpired:
                sp.kill()
                sp.wait(5)
    if p.returncode != 0:
        col.setup.check()
        raise Failure("%s: tcpbench client %s failed (status %d):\n%s" % (
            col.label, " ".join(map(str, args)), p.returncode,
            "\n".join("    " + x for x in out.get("stderr", b"").decode(errors="replace")
                      .strip().splitlines()[-15:])))
    lines = [x for x in out["stdout"].decode().splitlines() if x.startswith("{")]
    if not lines:
        raise Failure("%s: tcpbench client printed no result" % col.label)
    j = json.loads(lines[-1])
    errs = {}
    for x in out["stderr"].decode(errors="replace").splitlines():
        if "error:" in x:
            errs[x] = errs.get(x, 0) + 1
    j["error_lines"] = errs                  # e.g. "conn error: timed out": count
    return j, wall, cpu


def measure_column(col, wire, a, only, res):
    """Every selected measure on one column, into res.  The order
    matters: connect+close last, as it leaves net9 with thousands of
    conversations in Time_wait (10 s)."""
    res["label"] = col.label
    secs = a.seconds
    if "sink" in only or "source" in only:
        for mode, key in (("bulk", "sink"), ("source", "source")):
            if key not in only:
                continue
            tmo = 60 + a.runs * (a.bytes / 2e6 + 30)
            j, wall, cpu = drive(col, wire, [mode, "--bytes", a.bytes, "--runs", a.runs], tmo,
                                 tag=key)
            res[key] = {"MBps": j["MBps"]["median"], "runs": j["MBps"]["runs"], "wall": wall,
                        "cpu": cpu, "raw": j}
            if key == "sink" and "9p_client" in col.cpu_procs:
                # the 9P server process's own count: how full its 128 KiB reads came back
                m = col.cpu_procs["9p_client"].lastmatch(
                    r"n9server sink: (\d+) bytes in (\d+) reads in [\d.]+ s, slowest read "
                    r"([\d.]+) ms", a.runs, 5)
                if m:
                    n, reads = int(m.group(1)), int(m.group(2))
                    res[key]["reads"] = reads
                    res[key]["bytes_per_read"] = n / max(reads - 1, 1)
                    with col.cpu_procs["9p_client"].cv:
                        allm = [re.search(r"slowest read ([\d.]+) ms", ln)
                                for _, ln in col.cpu_procs["9p_client"].lines]
                    res[key]["slowest_read_ms"] = max(float(x.group(1)) for x in allm if x)
            log("  %-22s %-8s %8.1f MB/s" % (col.label, key, res[key]["MBps"]))
    if "rr" in only:
        j, wall, cpu = drive(col, wire, ["rr", "--seconds", secs, "--runs", a.runs,
                                         "--size", 1], a.runs * secs + 60)
        res["rr"] = {"median_us": j["rtt_median_us"]["median"],
                     "p99_us": j["rtt_p99_us"]["median"], "samples": j["samples"],
                     "wall": wall, "cpu": cpu, "raw": j}
        log("  %-22s rr       %8.1f us median, %.1f us p99" % (
            col.label, res["rr"]["median_us"], res["rr"]["p99_us"]))
    if "conn" in only:
        runs = []
        for i in range(CONN_RUNS):
            j, wall, cpu = drive(col, wire, ["conn", "--seconds", secs, "--runs", 1],
                                 secs + 60, tag="conn%d" % (i + 1))
            refused = any(("reset" in x or "refused" in x) for x in j["error_lines"])
            if j["conn_lifetime_us"]["n"] == 0 and not refused:
                # (none done because every call was reset or refused is a
                # figure: net9 with its conversations all in Time_wait)
                col.setup.check()
                raise Failure("%s: connect+close run %d: not one connection completed in %g s "
                              "(%d errors): the server hangs?" % (col.label, i + 1, secs,
                                                                  j["errors"]))
            for x, n in j["error_lines"].items():
                log("  %-22s conn %d   %d x %s" % (col.label, i + 1, n, x))
            runs.append({"rate": j["conn_per_s"]["median"], "errors": j["errors"],
                         "error_lines": j["error_lines"],
                         "lifetime_us": j["conn_lifetime_us"], "wall": wall, "cpu": cpu})
            log("  %-22s conn %d   %8.0f /s%s" % (col.label, i + 1, runs[-1]["rate"],
                                                 " (%d errors)" % j["errors"]
                                                 if j["errors"] else ""))
        rates = [r["rate"] for r in runs]
        res["conn"] = {"rates": rates, "first": rates[0], "median": statistics.median(rates),
                       "runs": runs,
                       "wall": sum(r["wall"] for r in runs),
                       "cpu": {k: sumnone(r["cpu"][k] for r in runs) for k in runs[0]["cpu"]}}
    return res


def sumnone(xs):
    xs = list(xs)
    return None if any(x is None for x in xs) else sum(xs)


def run_column(name, start, wire, a, only, res, pyspy=None):
    """Set a column up, measure into res, tear it down."""
    st = Setup()
    try:
        log("%s: starting" % name)
        col = start(st)
        col.pyspy = pyspy
        measure_column(col, wire, a, only, res)
        st.check()
    finally:
        st.close()


# ======================================================================
# the report


def fmt(v, unit):
    if v is None:
        return "-"
    if unit == "MB/s":
        return "%.1f" % v
    if unit == "/s":
        return "%.0f" % v
    return "%.0f" % v if v >= 100 else "%.1f" % v


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fig(reps, m, k):
    """The median over repeats of one figure of one column."""
    if not reps:
        return None
    return median(r[m][k] for r in reps if m in r)


def cpufrac(reps, m, proc):
    return median(r[m]["cpu"].get(proc) / r[m]["wall"] for r in reps
                  if m in r and r[m]["cpu"].get(proc) is not None)


ROWS = [  # name, measure, key, unit, better, net9 is compared with ratio <= or >=
    ("bulk Linux->server MB/s", "sink", "MBps", "MB/s", ">="),
    ("bulk server->Linux MB/s", "source", "MBps", "MB/s", ">="),
    ("connect+close /s (run 1)", "conn", "first", "/s", ">="),
    ("connect+close /s (median)", "conn", "median", "/s", ">="),
    ("1-byte RTT median us", "rr", "median_us", "us", "<="),
    ("1-byte RTT p99 us", "rr", "p99_us", "us", "<="),
]


def target(m, k, mtu, offload):
    """The issue's target for net9/relay (a fraction or a multiple)."""
    if m in ("sink", "source"):
        return 1 / 2 if mtu <= 1500 else 1 / 3
    if m == "conn":
        return 1 / 2
    return 2 if k == "median_us" else 3


def report(results, mtus, only, has_offload, repeat, out):
    w = out.write
    for mtu in mtus:
        r = results.get(str(mtu), {})
        veth = r.get("veth")
        for title, nk, rk in (("without offloads", "net9_nooff", "relay"),
                              ("with offloads", "net9_off", "relay_o")):
            n9, rel = r.get(nk), r.get(rk)
            n9a = r.get(nk.replace("net9_", "net9_aio_"))
            if not n9 and not rel and not n9a and not (veth and nk == "net9_nooff"):
                continue
            if nk == "net9_off" and not has_offload:
                head = "net9 has no offloads (net9 serve has no --no-offload): relay only"
            else:
                head = "%s vs %s" % (n9[0].get("label", nk) if n9 else "net9 (not run)",
                                     rel[0].get("label", rk) if rel else "C relay (not run)")
            w("\nMTU %d, %s: %s%s\n" % (mtu, title, head,
                                          "; medians of %d repeats (ratio: median of the "
                                          "repeats' ratios)" % repeat if repeat > 1 else ""))
            w("  %-27s %11s %9s %6s  %-12s %9s %9s\n" % ("measure", "net9 via 9P", "C relay",
                                                         "ratio", "target", "veth", "asyncio"))
            for name, m, k, unit, op in ROWS:
                if m not in only:
                    continue
                nv, rv, vv = fig(n9, m, k), fig(rel, m, k), fig(veth, m, k)
                ratio = nv / rv if nv is not None and rv else None
                if n9 and rel and len(n9) == len(rel) > 1:
                    # repeats interleave the columns: pair each net9 figure with
                    # the relay's of the same repeat (the machine's state,
                    # e.g. idle vCPUs waking slowly, moves both)
                    ratio = median(x[m][k] / y[m][k] for x, y in zip(n9, rel)
                                   if m in x and m in y and y[m][k])
                tgt = target(m, k, mtu, nk == "net9_off")
                verdict = ""
                if ratio is not None:
                    verdict = "ok" if (ratio >= tgt if op == ">=" else ratio <= tgt) else "MISS"
                tgts = "%s %s %s" % (op, ("1/%d" % round(1 / tgt)) if tgt < 1 else
                                     ("%dx" % tgt), verdict)
                w("  %-27s %11s %9s %6s  %-12s %9s %9s\n" % (
                    name, fmt(nv, unit), fmt(rv, unit),
                    "-" if ratio is None else "%.2f" % ratio, tgts, fmt(vv, unit),
                    fmt(fig(n9a, m, k), unit)))
            if "conn" in only:
                w("  connect+close, %d consecutive runs (/s; worst vs first, target >= -10%%):\n"
                  % CONN_RUNS)
                for lab, reps in (("net9 via 9P", n9), ("C relay", rel), ("veth", veth),
                                  ("net9.aio", n9a)):
                    for i, c in enumerate(reps or []):
                        if "conn" not in c:
                            continue
                        rates = c["conn"]["rates"]
                        worst = min(rates[1:]) / rates[0] - 1 if rates[0] and len(rates) > 1 \
                            else 0
                        errs = sum(x["errors"] for x in c["conn"]["runs"])
                        v = ""
                        if reps is n9:
                            v = " ok" if worst >= -0.10 else " MISS"
                        w("    %-14s %s  (%+.0f%%%s)%s\n" % (
                            lab + (" #%d" % (i + 1) if len(reps) > 1 else ""),
                            " ".join("%6.0f" % x for x in rates), worst * 100, v,
                            ", %d errors" % errs if errs else ""))
            if n9:
                w("  net9's CPU over each measure, seconds per second of wall time "
                  "(1.00 = a whole core):\n")
                w("    %-24s %10s %10s %12s %7s\n" % ("measure", "net9 serve", "9P client",
                                                      "Linux driver", "wall s"))
                for m, name in (("sink", "bulk Linux->server"), ("source", "bulk server->Linux"),
                                ("conn", "connect+close (5 runs)"), ("rr", "1-byte RTT")):
                    if m not in only or not any(m in x for x in n9):
                        continue
                    fr = [cpufrac(n9, m, p) for p in ("serve", "9p_client", "linux_client")]
                    w("    %-24s %10s %10s %12s %7.1f\n" % (
                        name, *("-" if v is None else "%.2f" % v for v in fr),
                        median(x[m]["wall"] for x in n9 if m in x)))
                bpr = median(x["sink"].get("bytes_per_read") for x in n9 if "sink" in x)
                if bpr:
                    w("  the 9P server's 128 KiB reads in the sink returned %.1f KiB on "
                      "average\n" % (bpr / 1024))
                slow = [x["sink"].get("slowest_read_ms") for x in n9 if "sink" in x]
                slow = [v for v in slow if v is not None]
                if slow:
                    w("  the sink's slowest 128 KiB read took %.2f ms (target < 20 ms: %s)\n"
                      % (max(slow), "ok" if max(slow) < 20 else "MISS"))


# ======================================================================
# main


def find_wire(opt):
    cands = [opt] if opt else [os.path.join(os.path.dirname(ROOT), "shared", "tools", "wire"),
                               os.path.join(os.path.dirname(os.path.dirname(ROOT)), "shared",
                                            "tools", "wire")]
    for d in cands:
        if d and os.path.isfile(os.path.join(d, "tcpbench.py")) and \
                os.path.isfile(os.path.join(d, "tunwire.c")):
            return os.path.abspath(d)
    sys.exit("bench/path.py: no tcpbench.py and tunwire.c in %s (give --wire DIR)" %
             " or ".join(c for c in cands if c))


def net9_has_offload_flag():
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, CMD, "serve", "--help"], capture_output=True,
                       text=True, env=env, timeout=60)
    if r.returncode != 0:
        sys.exit("bench/path.py: net9 serve --help failed (built in place?):\n" + r.stderr)
    return "--no-offload" in r.stdout


def main():
    if len(sys.argv) > 1 and sys.argv[1] in ("n9server", "n9aserver"):
        ap = argparse.ArgumentParser(prog="path.py " + sys.argv[1])
        ap.add_argument("--srv", required=True)
        ap.add_argument("--port", type=int, default=BASE)
        ap.add_argument("--lifetime", type=float, default=900)
        ap.add_argument("--user", default=None)
        x = ap.parse_args(sys.argv[2:])
        (n9aserver if sys.argv[1] == "n9aserver" else n9server)(x.srv, x.port, x.lifetime,
                                                                 x.user)
        return

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mtu", default="1500,65000", help="comma-separated MTUs")
    ap.add_argument("--only", default="bulk,rr,conn",
                    help="measures: bulk (= sink,source), sink, source, conn, rr")
    ap.add_argument("--bytes", type=parse_size, default=parse_size("256M"),
                    help="bytes per bulk transfer (K, M, G suffixes)")
    ap.add_argument("--seconds", type=float, default=3.0,
                    help="seconds per connect+close run and per round-trip run")
    ap.add_argument("--runs", type=int, default=1,
                    help="runs per bulk direction and of round trips (median kept)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run every column this many times, interleaved (medians printed)")
    ap.add_argument("--py-spy", metavar="DIR",
                    help="py-spy record (raw, 250 Hz) net9 serve and the 9P client during "
                         "each net9 measure into DIR (py-spy on PATH)")
    ap.add_argument("--report", metavar="FILE",
                    help="print the tables of a --json file again and exit (no root needed)")
    ap.add_argument("--json", metavar="FILE", help="save the raw results there")
    ap.add_argument("--wire", metavar="DIR",
                    help="where tcpbench.py and tunwire.c are (default ../shared/tools/wire)")
    ap.add_argument("--no-relay", action="store_true", help="skip the tunwire columns")
    ap.add_argument("--no-veth", action="store_true", help="skip the veth column")
    ap.add_argument("--no-net9", action="store_true", help="skip net9 (yardsticks only)")
    ap.add_argument("--no-asyncio", action="store_true",
                    help="skip the column of net9 with the net9.aio client")
    ap.add_argument("--offload", choices=["both", "on", "off"], default="both",
                    help="which offload modes to run (default both)")
    a = ap.parse_args()
    if a.report:
        with open(a.report) as f:
            saved = json.load(f)
        m, results = saved["meta"], saved["results"]
        for mtu in results.values():
            for reps in mtu.values():
                for x in reps:
                    if "conn" in x:
                        x["conn"].setdefault("first", x["conn"]["rates"][0])
        sa = m["args"]
        only = set()
        for w in sa["only"].split(","):
            only |= {"sink", "source"} if w == "bulk" else {w}
        print("bench/path.py: %s on %s (%s CPUs, kernel %s, Python %s, net9 %s); load %s at the "
              "start, %s at the end; bulk %d bytes x %d, %.1f s per conn/rr run; %.0f s%s" % (
                  m["date"], m["host"], m["cpus"], m["kernel"], m["python"], m["git"],
                  " ".join("%.2f" % x for x in m["loadavg_start"]),
                  " ".join("%.2f" % x for x in m["loadavg_end"]), sa["bytes"], sa["runs"],
                  sa["seconds"], m["seconds"], "; FAILED: " + m["failed"] if m["failed"] else ""))
        report(results, [int(x) for x in results], only, m["net9_offload_flag"],
               sa.get("repeat", 1), sys.stdout)
        return
    needs("bench/path.py", ("ip", "setpriv", "gcc"), "network namespaces, TUN devices, veth")
    only = set()
    for m in a.only.split(","):
        m = m.strip()
        if m == "bulk":
            only |= {"sink", "source"}
        elif m in ("sink", "source", "conn", "rr"):
            only.add(m)
        elif m:
            sys.exit("bench/path.py: unknown measure %r (bulk, sink, source, conn, rr)" % m)
    mtus = [int(x) for x in a.mtu.split(",") if x]
    pyspy = None
    if a.py_spy:
        pyspy = shutil.which("py-spy")
        if pyspy is None:
            sys.exit("bench/path.py: --py-spy: no py-spy on PATH (pip install py-spy)")
    wire = find_wire(a.wire)
    has_off = net9_has_offload_flag()

    results = {}
    meta = run_meta(a, wire=wire, net9_offload_flag=has_off,
                    git=subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                                       capture_output=True, text=True).stdout.strip())
    with Run(meta, results, a.json, "n9path-") as run:
        tunwire = run.build_tunwire(wire)
        # how long the servers and tunwire of one column may live (each
        # measure is bounded on its own; this is the backstop)
        lifetime = int(900 + a.runs * (2 * a.bytes / 1e6 + 10 * a.seconds))
        print("bench/path.py: %s, %d CPUs, load %.2f %.2f %.2f; bulk %d bytes x %d, "
              "%.1f s per conn/rr run" % (meta["date"], os.cpu_count(), *os.getloadavg(),
                                          a.bytes, a.runs, a.seconds), flush=True)
        print("net9 offloads: %s" % ("available (net9 serve --no-offload exists): net9 runs "
                                     "with and without" if has_off else
                                     "not available (net9 serve has no --no-offload): "
                                     "net9 runs once, compared with plain tunwire"),
              flush=True)
        offmodes = {"both": [False, True], "on": [True], "off": [False]}[a.offload]
        if a.py_spy:
            os.makedirs(a.py_spy, exist_ok=True)
        for mtu in mtus:
            r = results.setdefault(str(mtu), {})
            plan = []
            if not a.no_net9:
                if has_off:
                    for off in offmodes:
                        plan.append(("net9_off" if off else "net9_nooff",
                                     lambda st, off=off: start_net9(st, mtu, off, True, lifetime)))
                elif False in offmodes:
                    plan.append(("net9_nooff",
                                 lambda st: start_net9(st, mtu, False, False, lifetime)))
                if not a.no_asyncio:
                    # one asyncio column, with the first offload mode asked for
                    aoff = has_off and offmodes[-1]
                    plan.append(("net9_aio_off" if aoff else "net9_aio_nooff",
                                 lambda st, aoff=aoff: start_net9(st, mtu, aoff, has_off,
                                                                  lifetime, aio=True)))
            if not a.no_relay:
                for off in offmodes:
                    plan.append(("relay_o" if off else "relay",
                                 lambda st, off=off: start_relay(st, tunwire, wire, mtu, off,
                                                                 lifetime)))
            if not a.no_veth:
                plan.append(("veth", lambda st: start_veth(st, wire, mtu, lifetime)))
            for rep in range(a.repeat):
                for key, start in plan:
                    spy = None
                    if a.py_spy and key.startswith("net9"):
                        spy = (pyspy, a.py_spy, "mtu%d-%s-%d" % (mtu, key, rep + 1))
                    res = {}
                    r.setdefault(key, []).append(res)
                    run_column("MTU %d %s%s" % (mtu, key, " #%d" % (rep + 1) if a.repeat > 1
                                                else ""), start, wire, a, only, res, spy)
    report(results, mtus, only, has_off, a.repeat, sys.stdout)
    print("\n%.0f s in all; load at the end %.2f %.2f %.2f" % (meta["seconds"],
                                                              *meta["loadavg_end"]))
    run.exit_if_failed("bench/path.py")


if __name__ == "__main__":
    main()
