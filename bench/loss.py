#!/usr/bin/env python3
"""TCP over a lossy path: net9 (through 9P) against Linux's TCP, both
behind the same router, at several rates of random packet loss.

Topology (one setup per loss rate, all servers up at once):

    client ns                 router ns (ip_forward=1)          server ns
    Linux driver  --tunwire -l PCT--  10.77.0.2       --veth--  Linux server
    10.77.0.1                         10.78.0.1                 10.78.0.2
                                      10.9.N.1 --TUN-- net9 serve --tcp P (10.9.N.2)
                                                       + this script's 9P server

The link between the client and the router is ../shared/tools/wire/
tunwire.c (compiled at run time into a temporary directory) dropping each
packet with probability PCT/100 in both directions (this kernel has no
netem); the router forwards to a Linux server in its own namespace (veth)
and to one `net9 serve --netns ROUTER` per TCP profile (each its own TUN
and 10.9.N.0/24; a route back to 10.77.0.0/24 is written to its
/net/iproute).  The servers on net9 are this script's hidden `server
--net9` subcommand: the sink and source protocols of tcpbench.py (ports
5201 and 5204) written with net9.dial over 9P, as bench/path.py's
n9server; the Linux server is the same code on the socket module.

Measured per loss rate, both directions, on each server in turn:
  Linux->server  the driver sends (sink protocol), the server counts;
  server->Linux  the driver asks for N bytes (source protocol) and counts.
MB/s (10^6 bytes/s) of bytes delivered over the transfer's time, the
ratio to Linux->Linux on the same wire, and the longest stall: the
longest time the receiving side saw no progress (between the start of the
transfer, each read that returned data, and the end of file), measured by
the receiving driver (the server for Linux->server, the client driver for
server->Linux).

Every transfer is bounded: --mbytes (default 20) or --seconds (default
30) of sending, whichever comes first (a transfer cut by the time cap is
"capped": its rate is what it delivered); no progress for --stall seconds
(default 30) fails it, and it is reported as failed with the bytes it
delivered.  ^C or SIGTERM removes the processes, namespaces and the
temporary directory.

    python bench/loss.py [--loss 0,1,2,5] [--mbytes 20] [--seconds 30]
                         [--stall 30] [--repeat 1] [--profiles modern,9front]
                         [--dirs both|sink|source] [--no-linux] [--no-net9]
                         [--mtu 1500] [--tree DIR] [--serve-arg ARG]
                         [--json FILE] [--report FILE] [--wire DIR]

--profiles: the net9 TCP profiles, passed as `net9 serve --tcp P` when
`net9 serve --help` lists --tcp; without it there is one profile (tcp.c),
run without the option, and the output says so.  --tree: the net9 source
tree (built in place) to run, default this one.  --serve-arg: one more
argument for every net9 serve (repeatable: --serve-arg=--no-offload,
--serve-arg=--pcap=FILE).  --json keeps every transfer (with tunwire's
drops, the router's device counters and net9 serve's CPU time);
--report FILE prints its table again.  Root only (except --report).
See bench/README.md for what the figures mean.
"""

import argparse
import fcntl
import json
import os
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import termios
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from common import recvexact, serve_calls  # noqa: E402

BASE = 5201                       # tcpbench's ports: BASE+0 sink, BASE+3 source
SINK, SOURCE = 0, 3
IOSIZE = 128 * 1024               # reads and writes of the drivers
CLIENT_A, ROUTER_A = "10.77.0.1", "10.77.0.2"       # the lossy link
ROUTER_V, SERVER_V = "10.78.0.1", "10.78.0.2"       # router <-> Linux server
NOTCP = "tcp.c"                   # the one profile of a net9 without --tcp
TARGET_RATIO = 0.5                # the targets, modern profile
TARGET_LOSSES = (1.0, 5.0)
TARGET_STALL = 2.0
TARGET_STALL_LOSS = 5.0


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ======================================================================
# the drivers: a server (Linux sockets or net9.dial) and a Linux client


def h_sink(c, peer, stall, out, readinto=None):
    """Read to EOF, counting and timing progress; reply with the 8-byte
    count (tcpbench's sink).  One SINK line with the figures on out:
    bytes, the longest gap between the start, reads that returned data and
    EOF ("gap"), and the CLOCK_MONOTONIC times of the start, the last such
    event and the end (the driver's clock is the same: it closes the open
    gap of a transfer it cut)."""
    c.settimeout(stall)
    t0 = last = time.monotonic()
    gap = 0.0
    total = 0
    err = None
    buf = bytearray(IOSIZE)
    try:
        while True:
            if readinto is not None:
                n = readinto(buf)
            else:
                n = len(c.recv(IOSIZE))
            now = time.monotonic()
            gap = max(gap, now - last)
            last = now
            if not n:
                break
            total += n
    except TimeoutError:
        err = "stall: no data for %g s" % stall
    except Exception as e:
        err = "%s: %s" % (type(e).__name__, e)
    if err is None:
        try:
            c.sendall(struct.pack("!Q", total))
        except Exception as e:
            err = "reply: %s: %s" % (type(e).__name__, e)
    out("SINK " + json.dumps({"peer": peer, "bytes": total, "gap": gap, "t0": t0,
                              "t_last": last, "t_end": time.monotonic(), "error": err}))


def h_source(c, peer, stall, out):
    """Read an 8-byte count, send that many bytes (tcpbench's source).
    The receiving driver decides when a transfer has stalled (it resets
    the connection): the timeout here is only a backstop."""
    c.settimeout(stall * 4)
    sent = 0
    err = None
    block = bytes(IOSIZE)
    try:
        (n,) = struct.unpack("!Q", recvexact(c, 8, "EOF in the request", ConnectionError))
        n = min(n, 1 << 34)
        while sent < n:
            k = min(n - sent, IOSIZE)
            c.sendall(block if k == IOSIZE else block[:k])
            sent += k
    except Exception as e:
        err = "%s: %s" % (type(e).__name__, e)
    out("SOURCE " + json.dumps({"peer": peer, "sent": sent, "error": err}))


def serve_linux(host, port, stall, lifetime, out):
    deadline = time.monotonic() + lifetime

    def conn(h, c, addr):
        try:
            if h is h_sink:
                h(c, addr[1], stall, out, readinto=c.recv_into)
            else:
                h(c, addr[1], stall, out)
        finally:
            c.close()

    def loop(lst, h):
        while time.monotonic() < deadline:
            try:
                c, addr = lst.accept()
            except TimeoutError:
                continue
            except OSError as e:
                log("accept: %s" % e)
                time.sleep(0.01)
                continue
            threading.Thread(target=conn, args=(h, c, addr), daemon=True).start()

    ts = []
    for off, h in ((SINK, h_sink), (SOURCE, h_source)):
        s = linuxcc(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port + off))
        s.listen(64)
        s.settimeout(1.0)
        t = threading.Thread(target=loop, args=(s, h), daemon=True)
        t.start()
        ts.append(t)
    return ts


def serve_net9(srv, port, stall, lifetime, out):
    from net9.dial import Net
    deadline = time.monotonic() + lifetime
    dead = []

    def conn(h, c):
        try:
            try:
                peer = int(c.remote.rsplit("!", 1)[1])
            except Exception:
                peer = None
            h(c, peer, stall, out)
        except Exception as e:
            log("server %s: %s: %s" % (h.__name__, type(e).__name__, e))
        finally:
            try:
                c.close()
            except Exception:
                pass

    def loop(ann, h):
        serve_calls(ann, lambda c: conn(h, c), deadline, dead,
                    lambda text: log("server: %s" % text))

    ts = []
    for off, h in ((SINK, h_sink), (SOURCE, h_source)):
        net = Net(srv=srv)
        ann = net.announce("tcp!*!%d" % (port + off))
        t = threading.Thread(target=loop, args=(ann, h), daemon=True)
        t.start()
        ts.append(t)
    return ts


def server_main(argv):
    ap = argparse.ArgumentParser(prog="loss.py server")
    ap.add_argument("--host", help="Linux: the address to listen on")
    ap.add_argument("--net9", metavar="SRV", help="net9: serve through this 9P address")
    ap.add_argument("--route", help="net9: a line to write to /net/iproute first")
    ap.add_argument("--tree", default=ROOT, help="net9: the source tree to import")
    ap.add_argument("--port", type=int, default=BASE)
    ap.add_argument("--stall", type=float, default=30.0)
    ap.add_argument("--lifetime", type=float, default=3600.0)
    a = ap.parse_args(argv)
    lock = threading.Lock()

    def out(line):
        with lock:
            print(line, flush=True)
    parent = os.getppid()
    if a.net9:
        sys.path.insert(0, a.tree)
        if a.route:
            from net9.dial import Net
            with Net(srv=a.net9) as net:
                h = net.files.open("iproute", 1)
                try:
                    net.files.write(h, a.route.encode(), "iproute")
                finally:
                    net.files.close(h)
        ts = serve_net9(a.net9, a.port, a.stall, a.lifetime, out)
    else:
        ts = serve_linux(a.host, a.port, a.stall, a.lifetime, out)
    out("READY")
    while any(t.is_alive() for t in ts) and os.getppid() == parent:
        time.sleep(0.2)
    sys.stdout.flush()
    os._exit(0)


POLL = 0.2                        # the client driver's look at its progress, seconds


def outq(s):
    """Bytes of s's send queue not yet acknowledged (SIOCOUTQ)."""
    return struct.unpack("i", fcntl.ioctl(s.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]


def abort(s):
    """Close with a reset (SO_LINGER 0): the peer stops at once."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


def cut(r, elapsed, seconds, idle, stall, nothing):
    """Is a transfer over by the clock: "capped" at seconds, or "failed"
    after stall seconds of nothing (what it waited for) happening?"""
    if elapsed >= seconds:
        r["status"] = "capped"
        return True
    if idle >= stall:
        r["status"] = "failed"
        r["error"] = "stall: %s for %g s" % (nothing, stall)
        return True
    return False


def client_sink(host, port, nbytes, seconds, stall):
    """Send nbytes, SHUT_WR, wait for the count.  Progress is what the
    receiver acknowledged (sent - SIOCOUTQ); none for `stall` seconds
    fails the transfer.  At `seconds` it is cut (a reset): "capped", with
    the bytes acknowledged by then."""
    r = {"dir": "sink", "sent": 0, "bytes": None, "status": "ok", "error": None}
    s = linuxcc(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    s.settimeout(stall)
    s.connect((host, port + SINK))
    r["local_port"] = s.getsockname()[1]
    s.settimeout(POLL)
    block = memoryview(bytes(IOSIZE))
    t0 = last = time.monotonic()
    acked = 0
    hdr = b""
    shut = False
    try:
        while True:
            now = time.monotonic()
            a = r["sent"] - outq(s)
            if a != acked:
                acked, last = a, now
            if cut(r, now - t0, seconds, now - last, stall, "nothing acknowledged"):
                break
            try:
                if r["sent"] < nbytes:
                    r["sent"] += s.send(block[:min(IOSIZE, nbytes - r["sent"])])
                    continue
                if not shut:
                    s.shutdown(socket.SHUT_WR)
                    shut = True
                d = s.recv(8 - len(hdr))
            except TimeoutError:
                continue
            if not d:
                raise ConnectionError("EOF before the count")
            hdr += d
            if len(hdr) == 8:
                break
    except OSError as e:
        r["status"] = "failed"
        r["error"] = "%s: %s" % (type(e).__name__, e)
    now = time.monotonic()
    r["seconds"] = now - t0
    r["t_stop"] = now
    if len(hdr) == 8:
        (r["bytes"],) = struct.unpack("!Q", hdr)
        if r["bytes"] != r["sent"]:
            r["status"] = "failed"
            r["error"] = "the server counted %d bytes, %d sent" % (r["bytes"], r["sent"])
        s.close()
    else:
        r["acked"] = acked
        abort(s)
    return r


def client_source(host, port, nbytes, seconds, stall):
    """Ask for nbytes, read to EOF, timing progress (the longest gap
    between the request, reads that returned data and EOF).  No data for
    `stall` seconds fails it; at `seconds` it is cut: "capped"."""
    r = {"dir": "source", "status": "ok", "error": None}
    s = linuxcc(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    s.settimeout(stall)
    s.connect((host, port + SOURCE))
    r["local_port"] = s.getsockname()[1]
    buf = bytearray(1 << 20)
    total = 0
    gap = 0.0
    s.sendall(struct.pack("!Q", nbytes))
    s.shutdown(socket.SHUT_WR)
    t0 = last = time.monotonic()
    eof = False
    try:
        while True:
            now = time.monotonic()
            if cut(r, now - t0, seconds, now - last, stall, "no data"):
                break
            s.settimeout(max(0.001, min(stall - (now - last), seconds - (now - t0))))
            try:
                n = s.recv_into(buf)
            except TimeoutError:
                continue
            now = time.monotonic()
            gap = max(gap, now - last)
            last = now
            if not n:
                eof = True
                break
            total += n
        if eof and total != nbytes:
            r["status"] = "failed"
            r["error"] = "EOF after %d of %d bytes" % (total, nbytes)
    except OSError as e:
        r["status"] = "failed"
        r["error"] = "%s: %s" % (type(e).__name__, e)
    now = time.monotonic()
    if not eof:
        gap = max(gap, now - last)          # the gap still open
        last = now
    r["bytes"] = total
    r["seconds"] = last - t0
    r["stall"] = gap
    if eof:
        s.close()
    else:
        abort(s)
    return r


def client_main(argv):
    ap = argparse.ArgumentParser(prog="loss.py client")
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=BASE)
    ap.add_argument("--dir", choices=["sink", "source"], required=True)
    ap.add_argument("--bytes", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--stall", type=float, default=30.0)
    a = ap.parse_args(argv)
    fn = client_sink if a.dir == "sink" else client_source
    try:
        r = fn(a.host, a.port, a.bytes, a.seconds, a.stall)
    except OSError as e:                  # the connect
        r = {"dir": a.dir, "status": "failed", "error": "connect: %s" % e, "bytes": 0,
             "seconds": 0.0, "local_port": None}
    print(json.dumps(r), flush=True)


# ======================================================================
# the setup (bench/path.py's processes and namespaces)


def plumbing():
    sys.path.insert(0, HERE)
    import path as P
    return P


def net9_tcp_option(tree):
    """Does `net9 serve` (of tree) take --tcp?  (its --help)"""
    env = dict(os.environ, PYTHONPATH=tree)
    r = subprocess.run([sys.executable, os.path.join(tree, "cmd", "net9"), "serve", "--help"],
                       capture_output=True, text=True, env=env, timeout=60)
    if r.returncode != 0:
        sys.exit("bench/loss.py: net9 serve --help failed (built in place?):\n" + r.stderr)
    return re.search(r"(^|\s)--tcp\b", r.stdout) is not None


def linuxcc(sock):
    """Linux's congestion control for a driver's socket: NET9_LOSS_CC (set by
    --linux-cc; TCP_CONGESTION per socket, as root, since a namespace's
    sysctl allows only the host's tcp_allowed_congestion_control)."""
    cc = os.environ.get("NET9_LOSS_CC")
    if cc:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
    return sock


def _readfile(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


class Topology:
    """One loss rate's namespaces and processes."""

    def __init__(self, P, st, tunwire, loss, mtu, profiles, has_tcp, tree, a, lifetime):
        self.st = st
        self.loss = loss
        pfx = "n9loss-" + uuid.uuid4().hex[:6]

        def ns(role):
            name = "%s-%s" % (pfx, role)
            P.sh("ip", "netns", "add", name)
            st.nss.append(name)
            P.sh("ip", "-n", name, "link", "set", "lo", "up")
            return name
        self.cns, self.rns, self.sns = ns("c"), ns("r"), ns("s")
        for k in ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
                  "net.ipv4.conf.default.rp_filter=0"):
            P.sh("ip", "netns", "exec", self.rns, "sysctl", "-qw", k)
        argv = [tunwire, "-t", lifetime]
        if loss > 0:
            argv += ["-l", "%g" % loss]
        self.tw = st.proc("tunwire", argv + [self.cns, "tw0", self.rns, "tw1"])
        self.tw.expect(r"^READY", 20)
        for n, dev, me, peer in ((self.cns, "tw0", CLIENT_A, ROUTER_A),
                                 (self.rns, "tw1", ROUTER_A, CLIENT_A)):
            P.sh("ip", "-n", n, "addr", "add", me, "peer", peer, "dev", dev)
            P.sh("ip", "-n", n, "link", "set", dev, "mtu", mtu, "up")
        P.sh("ip", "-n", self.cns, "route", "add", "default", "dev", "tw0")
        P.sh("ip", "-n", self.rns, "link", "add", "rv", "type", "veth", "peer", "name", "sv",
             "netns", self.sns)
        for n, dev, me in ((self.rns, "rv", ROUTER_V), (self.sns, "sv", SERVER_V)):
            P.sh("ip", "-n", n, "addr", "add", me + "/24", "dev", dev)
            P.sh("ip", "-n", n, "link", "set", dev, "mtu", mtu, "up")
        P.sh("ip", "-n", self.sns, "route", "add", "default", "via", ROUTER_V)
        me = [sys.executable, os.path.abspath(__file__), "server", "--port", BASE,
              "--stall", a.stall, "--lifetime", lifetime]
        self.servers = {}          # key -> (address, server Proc, net9 serve Proc or None)
        self.devs = {}             # net9 key -> its TUN's name in the router
        srv = st.proc("Linux server", me + ["--host", SERVER_V], ns=self.sns)
        srv.expect(r"^READY", 20)
        self.servers["linux"] = (SERVER_V, srv, None)
        env = dict(os.environ)
        env["PYTHONPATH"] = tree + (os.pathsep + env["PYTHONPATH"]
                                    if env.get("PYTHONPATH") else "")
        d = st.tmpdir()
        for i, prof in enumerate(profiles):
            sock = "unix!" + os.path.join(d, "net9-%d" % i)
            argv = [sys.executable, os.path.join(tree, "cmd", "net9"), "serve", "--netns",
                    self.rns, "--tun", "n9loss%d" % i, "--addr", "10.9.%d.2/24" % i,
                    "--host-addr", "10.9.%d.1/24" % i, "--srv", sock, "--mtu", mtu]
            if has_tcp:
                argv += ["--tcp", prof]
            argv += a.serve_arg
            serve = st.proc("net9 serve (%s)" % prof, argv, env=env)
            serve.expect(r"serving 9P on unix!", 30)
            s9 = st.proc("9P server (%s)" % prof,
                         me + ["--net9", sock, "--tree", tree, "--route",
                               "add %s 255.255.255.0 10.9.%d.1" % (
                                   CLIENT_A.rsplit(".", 1)[0] + ".0", i)], env=env)
            s9.expect(r"^READY", 30)
            self.servers["net9 " + prof] = ("10.9.%d.2" % i, s9, serve)
            self.devs["net9 " + prof] = "n9loss%d" % i

    def drops(self):
        """tunwire's counters now (SIGUSR1), or None."""
        n = len([1 for _, ln in self.tw.lines if ln.startswith("{")])
        try:
            os.kill(self.tw.pid, signal.SIGUSR1)
        except OSError:
            return None
        m = self.tw.lastmatch(r"^(\{.*\})$", n + 1, 5)
        return json.loads(m.group(1)) if m else None

    def linkstats(self, P, key):
        """The router's counters of its device towards key's server."""
        dev = "rv" if key == "linux" else self.devs.get(key)
        try:
            r = P.sh("ip", "-n", self.rns, "-s", "-j", "link", "show", "dev", dev, timeout=10)
            st = json.loads(r.stdout)[0]["stats64"]
            return {"tx_packets": st["tx"]["packets"], "tx_dropped": st["tx"]["dropped"],
                    "rx_packets": st["rx"]["packets"], "rx_dropped": st["rx"]["dropped"]}
        except Exception:
            return None

    def transfer(self, P, key, direction, a):
        """One bounded transfer; its figures (a dict)."""
        host, srv, serve = self.servers[key]
        nbytes = int(a.mbytes * 1e6)
        argv = ["ip", "netns", "exec", self.cns, "setpriv", "--pdeathsig", "KILL", "--",
                sys.executable, os.path.abspath(__file__), "client", "--host", host,
                "--port", str(BASE), "--dir", direction, "--bytes", str(nbytes),
                "--seconds", str(a.seconds), "--stall", str(a.stall)]
        cpu0 = P.cputime(serve.pid) if serve else None
        d0 = self.drops()
        l0 = self.linkstats(P, key)
        guard = a.seconds + 2 * a.stall + 30
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
        try:
            out, err = p.communicate(timeout=guard)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            self.st.check()
            return {"status": "failed", "bytes": 0, "seconds": time.monotonic() - t0,
                    "stall": None, "MBps": 0.0,
                    "error": "the driver still ran after %d s: killed" % guard}
        finally:
            if p.poll() is None:          # ^C
                p.kill()
                p.wait(5)
        wall = time.monotonic() - t0
        self.st.check()
        lines = [x for x in out.decode().splitlines() if x.startswith("{")]
        if p.returncode != 0 or not lines:
            raise P.Failure("%s %s: the client driver failed (status %d):\n%s" % (
                key, direction, p.returncode, err.decode(errors="replace")[-2000:]))
        r = json.loads(lines[-1])
        r["wall"] = wall
        if serve:
            c = P.cputime(serve.pid)
            r["serve_cpu"] = None if c is None or cpu0 is None else c - cpu0
        d1 = self.drops()
        l1 = self.linkstats(P, key)
        if l0 and l1:
            # the router's device towards this server: what it could not
            # hand over (a full TUN queue: net9 not reading fast enough)
            r["link"] = {k: l1[k] - l0[k] for k in l1}
        if d0 and d1:
            r["dropped"] = {k: d1[k]["dropped"] - d0[k]["dropped"] for k in d1}
            r["pkts"] = {k: d1[k]["pkts"] - d0[k]["pkts"] for k in d1}
        if direction == "sink":
            # the receiver's own figures: its SINK line for this connection
            wait = 10 if r["status"] == "ok" else a.stall + 10
            pat = r'^SINK (\{"peer": %s,.*\})$' % r.get("local_port")
            m = srv.lastmatch(pat, 1, wait) if r.get("local_port") else None
            r["stall"] = None
            if m:
                rep = json.loads(m.group(1))
                r["server"] = rep
                if r["status"] == "ok":
                    r["stall"] = rep["gap"]
                elif r["status"] == "capped":
                    # the gap open when the driver cut the transfer
                    r["stall"] = max(rep["gap"], r["t_stop"] - rep["t_last"])
                    r["bytes"] = rep["bytes"]
                else:
                    r["stall"] = max(rep["gap"], rep["t_end"] - rep["t_last"])
                    r["bytes"] = rep["bytes"]
                    if rep["error"]:
                        r["error"] = "%s; server: %s" % (r["error"], rep["error"])
            else:
                r["error"] = (r.get("error") or "") + " (no report from the server)"
                if r["bytes"] is None:
                    r["bytes"] = r.get("acked", 0)
        r["MBps"] = r["bytes"] / r["seconds"] / 1e6 if r["seconds"] > 0 else 0.0
        return r


# ======================================================================
# the report


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


DIRS = (("sink", "Linux->server"), ("source", "server->Linux"))


def report(results, meta, out):
    """The table of a run (results: loss -> direction -> key -> [runs])."""
    w = out.write
    keys = meta["keys"]
    n9keys = [k for k in keys if k != "linux"]
    w("bench/loss.py: %s on %s (%s CPUs, kernel %s, Python %s, net9 %s); load %s at the start, "
      "%s at the end; up to %g MB or %g s per transfer, a %g s stall fails it; MTU %d; "
      "%d repeat(s)%s\n" % (
          meta["date"], meta["host"], meta["cpus"], meta["kernel"], meta["python"],
          meta["git"], " ".join("%.2f" % x for x in meta["loadavg_start"]),
          " ".join("%.2f" % x for x in meta.get("loadavg_end") or ()),
          meta["mbytes"], meta["seconds"], meta["stall"], meta["mtu"], meta["repeat"],
          "; FAILED: " + meta["failed"] if meta.get("failed") else ""))
    if meta["has_tcp"]:
        w("net9 profiles: %s (net9 serve --tcp)\n" % ", ".join(k[5:] for k in n9keys))
    else:
        w("net9 profiles: net9 serve has no --tcp option: one profile, tcp.c's (the column "
          "'net9 %s')\n" % NOTCP)
    w("Linux's congestion control: %s\n" % (
        (meta.get("args") or {}).get("linux_cc") or meta.get("linux_cc_default") or "?"))
    extra = (meta.get("args") or {}).get("serve_arg")
    if extra:
        w("net9 serve was also given: %s\n" % " ".join(extra))
    w("MB/s of 10^6 bytes delivered; ratio: net9 / Linux on the same wire%s; stall: the "
      "receiver's longest wait for data, seconds\n" % (
          " (median of the repeats' ratios); MB/s medians, stalls the worst of the repeats"
          if meta["repeat"] > 1 else ""))
    h1 = "  %-5s %-14s %16s" % ("", "", "Linux")
    h2 = "  %-5s %-14s %10s %5s" % ("loss", "direction", "MB/s", "stall")
    for k in n9keys:
        h1 += "  %-30s" % ("%11s" % k)
        h2 += "  %11s %6s %6s %4s" % ("MB/s", "ratio", "stall", "")
    w("\n" + h1.rstrip() + "\n" + h2.rstrip() + "\n")
    notes = []
    verdicts = []
    for loss in sorted(results, key=float):
        for d, dname in DIRS:
            row = results[loss].get(d)
            if not row:
                continue
            lin = row.get("linux", [])
            lm = median(r["MBps"] for r in lin)

            def cell(runs, mark):
                mb = median(r["MBps"] for r in runs)
                st = [r.get("stall") for r in runs]
                stv = max((x for x in st if x is not None), default=None)
                fl = ""
                for i, r in enumerate(runs):
                    if r["status"] != "ok":
                        notes.append("%s %s%% %s%s: %s, %.1f MB in %.1f s%s" % (
                            mark, loss, dname, " #%d" % (i + 1) if len(runs) > 1 else "",
                            r["status"], (r["bytes"] or 0) / 1e6, r["seconds"],
                            ": " + r["error"] if r.get("error") else ""))
                        fl = "!" if r["status"] == "failed" or fl == "!" else "c"
                return mb, stv, fl
            lmb, lst, lfl = cell(lin, "Linux")
            line = "  %-5s %-14s %9s%1s %5s" % (
                "%g%%" % float(loss), dname, "-" if lmb is None else "%.2f" % lmb, lfl,
                "-" if lst is None else "%.2f" % lst)
            for k in n9keys:
                runs = row.get(k, [])
                if not runs:
                    line += "  %11s %6s %6s %4s" % ("-", "-", "-", "")
                    continue
                mb, stv, fl = cell(runs, k)
                ratios = [r["MBps"] / l["MBps"] for r, l in zip(runs, lin) if l["MBps"]]
                ratio = median(ratios)
                v = ""
                if lin and (k.endswith(" modern") or
                            (not meta["has_tcp"] and k.endswith(NOTCP))):
                    v = target_verdict(float(loss), ratio, stv)
                    if v:
                        verdicts.append((loss, dname, k, v))
                line += "  %10s%1s %6s %6s %4s" % (
                    "%.2f" % mb, fl, fmt_ratio(ratio),
                    "-" if stv is None else "%.2f" % stv, v)
            w(line.rstrip() + "\n")
    if notes:
        w("  (c: a transfer cut at the time cap, its rate is what it delivered; "
          "!: a failed transfer, its rate is the bytes it delivered over its time)\n")
        for n in notes:
            w("    %s\n" % n)
    prof = "modern" if meta["has_tcp"] else NOTCP
    w("targets (issue 12, the modern profile%s): at 1%% and 5%% loss net9 >= 1/2 of Linux in "
      "both directions; no stall over 2 s at 5%%: %s\n" % (
          "" if meta["has_tcp"] else "; this net9 has no --tcp, so they are shown against "
          "its only profile, tcp.c", summary(verdicts, prof)))
    rd = {}
    for byd in results.values():
        for byk in byd.values():
            for k, runs in byk.items():
                for r in runs:
                    x = (r.get("link") or {}).get("tx_dropped")
                    if x:
                        rd[k] = rd.get(k, 0) + x
    if rd:
        w("the router's device towards a server dropped packets during transfers (its queue "
          "full): %s\n" % ", ".join("%s %d" % kv for kv in sorted(rd.items())))
    dr = meta.get("drops")
    if dr:
        w("tunwire's drops over the run (client->router, router->client): %s\n" % "; ".join(
            "%s%%: %s" % (l, ", ".join("%.2f%% of %d" % (100.0 * x["dropped"] / x["pkts"]
                                                         if x["pkts"] else 0, x["pkts"])
                                       for x in (v["ab"], v["ba"])))
            for l, v in sorted(dr.items(), key=lambda kv: float(kv[0])) if v))


def fmt_ratio(r):
    if r is None:
        return "-"
    return "%.3f" % r if r >= 0.01 or r == 0 else "%.4f" % r


def target_verdict(loss, ratio, stall):
    """'ok', 'MISS' or '' (no target at this loss) for the modern profile."""
    if loss not in TARGET_LOSSES:
        return ""
    ok = ratio is not None and ratio >= TARGET_RATIO
    if loss == TARGET_STALL_LOSS:
        ok = ok and stall is not None and stall <= TARGET_STALL
    return "ok" if ok else "MISS"


def summary(verdicts, prof):
    mine = [v for v in verdicts if v[2].endswith(prof)]
    if not mine:
        return "not measured"
    miss = [v for v in mine if v[3] == "MISS"]
    if not miss:
        return "met (%d of %d)" % (len(mine), len(mine))
    return "missed in %d of %d (%s)" % (len(miss), len(mine), ", ".join(
        "%s%% %s" % (v[0], v[1]) for v in miss))


# ======================================================================
# main


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loss", default="0,1,2,5",
                    help="comma-separated loss rates in percent (default 0,1,2,5)")
    ap.add_argument("--mbytes", type=float, default=20.0,
                    help="MB (10^6 bytes) per transfer (default 20)")
    ap.add_argument("--seconds", type=float, default=30.0,
                    help="the time cap of one transfer's sending (default 30)")
    ap.add_argument("--stall", type=float, default=30.0,
                    help="seconds without progress that fail a transfer (default 30)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="transfers per cell, interleaved (medians printed)")
    ap.add_argument("--profiles", default="modern,9front",
                    help="net9 TCP profiles (net9 serve --tcp), comma-separated")
    ap.add_argument("--dirs", choices=["both", "sink", "source"], default="both")
    ap.add_argument("--no-linux", action="store_true", help="skip Linux->Linux")
    ap.add_argument("--no-net9", action="store_true", help="skip net9")
    ap.add_argument("--mtu", type=int, default=1500)
    ap.add_argument("--linux-cc", metavar="NAME",
                    help="Linux's TCP congestion control in the client's and server's namespaces "
                         "(e.g. cubic, as net9's modern profile; default: the host's)")
    ap.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                    help="one more argument for every net9 serve (repeatable; "
                         "e.g. --serve-arg=--no-offload)")
    ap.add_argument("--tree", default=ROOT,
                    help="the net9 source tree (built in place) to run (default this one)")
    ap.add_argument("--wire", metavar="DIR",
                    help="where tunwire.c is (default ../shared/tools/wire)")
    ap.add_argument("--json", metavar="FILE", help="save the raw results there")
    ap.add_argument("--report", metavar="FILE",
                    help="print the table of a --json file again and exit (no root needed)")
    a = ap.parse_args(argv)
    try:
        a.losses = [float(x) for x in a.loss.split(",") if x.strip()]
    except ValueError:
        ap.error("--loss: a comma-separated list of numbers")
    if not a.losses or any(not 0 <= x < 100 for x in a.losses):
        ap.error("--loss: percentages from 0 to under 100")
    a.profile_list = [x.strip() for x in a.profiles.split(",") if x.strip()]
    if not a.profile_list and not a.no_net9:
        ap.error("--profiles: at least one")
    if a.mbytes <= 0 or a.seconds <= 0 or a.stall <= 0 or a.repeat < 1:
        ap.error("--mbytes, --seconds, --stall and --repeat must be positive")
    return a


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "server":
        return server_main(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        return client_main(sys.argv[2:])
    a = parse_args(sys.argv[1:])
    if a.report:
        with open(a.report) as f:
            saved = json.load(f)
        report(saved["results"], saved["meta"], sys.stdout)
        return
    P = plumbing()
    P.needs("bench/loss.py", ("ip", "setpriv", "gcc", "sysctl"))
    wire = P.find_wire(a.wire)
    tree = os.path.abspath(a.tree)
    has_tcp = False if a.no_net9 else net9_tcp_option(tree)
    profiles = [] if a.no_net9 else (a.profile_list if has_tcp else [NOTCP])
    keys = ([] if a.no_linux else ["linux"]) + ["net9 " + p for p in profiles]
    dirs = [d for d, _ in DIRS if a.dirs in ("both", d)]

    if a.linux_cc:
        os.environ["NET9_LOSS_CC"] = a.linux_cc      # (the drivers' sockets: linuxcc)
    meta = P.run_meta(
        a, has_tcp=has_tcp, keys=keys, mbytes=a.mbytes, seconds=a.seconds, stall=a.stall,
        mtu=a.mtu, repeat=a.repeat, tree=tree, drops={},
        linux_cc_default=_readfile("/proc/sys/net/ipv4/tcp_congestion_control"),
        git=subprocess.run(["git", "-C", tree, "describe", "--always", "--dirty"],
                           capture_output=True, text=True).stdout.strip() or "(not a git tree)")
    print("bench/loss.py: net9 from %s (%s); %s" % (
        tree, meta["git"], "profiles " + ", ".join(profiles) if has_tcp else
        "net9 serve has no --tcp: one profile (tcp.c), run as it is"), flush=True)
    results = {}
    per_loss = len(dirs) * len(keys) * a.repeat
    lifetime = int(per_loss * (a.seconds + 2 * a.stall + 40) + 300)
    with P.Run(meta, results, a.json, "n9loss-", "seconds_total") as run:
        tunwire = run.build_tunwire(wire)
        for loss in a.losses:
            lk = "%g" % loss
            res = results.setdefault(lk, {})
            st = P.Setup()
            try:
                log("loss %s%%: setting up" % lk)
                topo = Topology(P, st, tunwire, loss, a.mtu, profiles, has_tcp, tree, a,
                                lifetime)
                for rep in range(a.repeat):
                    for d in dirs:
                        for k in keys:
                            r = topo.transfer(P, k, d, a)
                            res.setdefault(d, {}).setdefault(k, []).append(r)
                            log("  %5s%% %-7s %-14s %9.2f MB/s  stall %s  %s%s%s" % (
                                lk, d, k, r["MBps"], "-" if r.get("stall") is None else
                                "%.2f s" % r["stall"], r["status"],
                                ": " + r["error"] if r.get("error") else "",
                                "  (router: %d dropped towards the server)"
                                % r["link"]["tx_dropped"] if r.get("link", {}).get(
                                    "tx_dropped") else ""))
                meta["drops"][lk] = topo.drops()
            except P.Failure as e:
                run.fail("loss %s%%: %s" % (lk, e))
                log("loss %s%%: FAILED: %s" % (lk, e))
            finally:
                st.close()
    print()
    report(results, meta, sys.stdout)
    print("\n%.0f s in all" % meta["seconds_total"])
    run.exit_if_failed("bench/loss.py")


if __name__ == "__main__":
    main()
