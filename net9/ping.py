"""net9 ping: Plan 9's ping (9front sys/src/cmd/ip/ping.c) through a
running `net9 serve`'s /net over 9P.

It dials icmp!HOST!1 the way Plan 9's dial does (clone, a "connect HOST!1"
ctl message, then data), writes echo requests of SIZE bytes counting the
20-byte (icmpv6: 40-byte) IP header area the kernel fills in, reads the
replies, whole datagrams IP header included, and prints what ping.c
prints:

    sending 3 64 byte messages 1000 ms apart to 10.9.0.1!1
    0: rtt 152 µs, avg rtt 152 µs, ttl = 64
    ...
    1 out of 3 messages lost

then, as a summary, "N sent, M received, L lost; rtt min/avg/max
A/B/C µs".  The exit status is 1 when messages were lost (ping.c exits
"lost messages"), 2 when it could not dial.

Addresses are numeric (devip takes no names); a name is looked up with
the host's resolver before dialing.  Like ping.c, an IPv4 dial that fails
is tried again over icmpv6.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import time

from net9 import ninep, wire
from net9.client import Client, NinepError, dial9p  # noqa: F401 (re-exported)

MAXMSG = 32            # ping.c: default count
SLEEPMS = 1000         # default interval
WAITMS = 5000          # waittime: how long to wait for stragglers
MINUTE_NS = 60 * 10**9


class Dialed:
    """A /net conversation opened like Plan 9's dial: ctl and data fids."""

    def __init__(self, cl: Client, net: str, addr: str):
        self.cl = cl
        self.net = net
        self.ctl = cl.walkopen("%s/clone" % net, 2)
        try:
            self.n = int(cl.read(self.ctl, 64).decode() or "-1")
            self.dir = "%s/%d" % (net, self.n)
            cl.write(self.ctl, ("connect %s" % addr).encode())
            self.data = cl.walkopen(self.dir + "/data", 2)
        except BaseException:
            cl.clunk(self.ctl)
            raise

    def remote(self) -> str:
        fid = self.cl.walkopen(self.dir + "/remote", 0)
        try:
            return self.cl.read(fid, 256).decode().strip()
        finally:
            self.cl.clunk(fid)

    def close(self):
        self.cl.clunk(self.data)
        self.cl.clunk(self.ctl)


def resolve(host: str, v6: bool):
    """(address text, is v6) for host: a literal, or the resolver's."""
    h = host
    for pfx in ("icmp!", "icmpv6!"):
        if h.startswith(pfx):
            v6 = v6 or pfx == "icmpv6!"
            h = h[len(pfx):]
    h = h.split("!")[0]
    try:
        a = ipaddress.ip_address(h)
        return str(a), a.version == 6 or v6
    except ValueError:
        pass
    fam = socket.AF_INET6 if v6 else socket.AF_UNSPEC
    infos = socket.getaddrinfo(h, None, fam, socket.SOCK_RAW)
    infos.sort(key=lambda i: i[0] != socket.AF_INET)
    a = ipaddress.ip_address(infos[0][4][0].split("%")[0])
    return str(a), a.version == 6


def ping(host: str, count: int = MAXMSG, interval: int = SLEEPMS, size: int = 64,
         srv: str = None, v6: bool = False, quiet: bool = False, addresses: bool = False,
         lostonly: bool = False, wait: int = WAITMS, out=None, uname: str = None) -> int:
    """Ping host through the /net served at srv; returns the exit status
    (0 all answered, 1 some lost, 2 could not dial)."""
    if out is None:
        def out(s):
            print(s, flush=True)
    if not srv:
        from net9.namespace import client_path
        try:
            srv = "unix!" + client_path()
        except OSError as e:
            out("ping: %s" % e)
            return 2
    try:
        addr, v6 = resolve(host, v6)
    except (OSError, UnicodeError) as e:
        out("ping: %s: %s" % (host, e))
        return 2
    try:
        cl = Client(srv, uname=uname)
    except (OSError, EOFError, TimeoutError, NinepError, ninep.Malformed) as e:
        out("ping: cannot reach the net9 server at %s: %s" % (srv, e))
        return 2
    try:
        conv = None
        for net in (("icmpv6",) if v6 else ("icmp", "icmpv6")):
            try:
                conv = Dialed(cl, net, "%s!1" % addr)
                break
            except NinepError as e:
                err = e
        if conv is None:
            out("ping: couldn't dial: %s" % err)
            return 2
        return _run(cl, conv, conv.net.endswith("v6"), count, interval, size, quiet,
                    addresses, lostonly, wait, out)
    finally:
        cl.close()


def _run(cl, conv, v6, nmsg, interval, msglen, quiet, addresses, lostonly, waittime, out):
    hsz = 40 if v6 else 20
    echocmd, echoreply = (128, 129) if v6 else (8, 0)
    # ping.c's bounds on the message size; an interval of 0 sends as fast
    # as it can (ping.c's -f)
    if msglen < hsz + 8:
        msglen = hsz + 8
    if msglen < 64:
        msglen = 64
    if msglen >= 64 * 1024:
        msglen = 64 * 1024 - 1
    if not quiet:
        try:
            raddr = conv.remote()
        except NinepError:
            raddr = "?"
        out("sending %d %d byte messages %d ms apart to %s" % (nmsg, msglen, max(interval, 0), raddr))
    buf = bytearray(msglen)
    for i in range(hsz + 8, msglen):
        buf[i] = i & 0xFF
    buf[hsz] = echocmd
    firstseq = seq = random.randrange(1 << 16)
    reqs = {}            # seq -> [time_ns, replied]
    order = []
    rtts = []
    lost = 0
    rcvd = 0
    sent = 0
    total = 0
    readtag = None
    writetags = set()
    nextsend = time.monotonic()
    failed = None
    deadline = None
    while True:
        now = time.monotonic()
        if sent < nmsg and now >= nextsend and failed is None:
            buf[hsz:hsz + 8] = wire.icmpheader(echocmd, 0, seq)
            reqs[seq] = [time.monotonic_ns(), False]
            order.append(seq)
            writetags.add(cl.start(ninep.Twrite, conv.data, 0, bytes(buf)))
            seq = (seq + 1) & 0xFFFF
            sent += 1
            nextsend = now + interval / 1000.0
            if sent == nmsg:
                deadline = now + waittime / 1000.0
        if readtag is None:
            readtag = cl.start(ninep.Tread, conv.data, 0, 64 * 1024 + 512)
        for t in list(writetags):
            r = cl.done(t)
            if r is not None:
                writetags.discard(t)
                if r[0] == ninep.Rerror and failed is None:
                    failed = r[2]
                    out("ping: write failed: %s" % r[2])
                    deadline = time.monotonic() + waittime / 1000.0
        r = cl.done(readtag)
        if r is not None:
            readtag = None
            tnow = time.monotonic_ns()
            if r[0] == ninep.Rerror:
                # an ICMP error hung the conversation up: every read fails
                out(r[2])
                failed = failed or r[2]
                break
            d = r[2]
            if len(d) == 0:
                out("got eof")
                break
            if len(d) < msglen:
                out("bad len %d/%d" % (len(d), msglen))
                continue
            if any(d[i] != (i & 0xFF) for i in range(hsz + 8, msglen)):
                out("corrupted reply")
            ic = wire.parseicmp(d[hsz:])
            x = ic["seq"]
            if ic["type"] != echoreply or ic["code"] != 0:
                out("bad type/code/sequence %d/%d/%d (want %d/%d/%d)" % (
                    ic["type"], ic["code"], x, echoreply, 0, x))
                continue
            q = reqs.get(x)
            if q is None:
                continue
            ih = wire.parseip(d, whole=False)
            ttl = ih["ttl"]
            rtt = (tnow - q[0]) // 1000
            total += rtt
            if not q[1]:
                rcvd += 1
                rtts.append(rtt)
            q[1] = True
            if not quiet and not lostonly:
                if addresses:
                    out("%d: %s -> %s rtt %d µs, avg rtt %d µs, ttl = %d" % (
                        (x - firstseq) & 0xFFFF, _fmt(ih["src"], v6), _fmt(ih["dst"], v6), rtt,
                        total // rcvd, ttl))
                else:
                    out("%d: rtt %d µs, avg rtt %d µs, ttl = %d" % (
                        (x - firstseq) & 0xFFFF, rtt, total // rcvd, ttl))
            if rcvd == nmsg:
                break
            continue
        if deadline is not None and time.monotonic() >= deadline:
            break
        waits = [0.5]
        if sent < nmsg and failed is None:
            waits.append(nextsend - time.monotonic())
        if deadline is not None:
            waits.append(deadline - time.monotonic())
        cl.poll(max(0.0, min(waits)))
    for s in order:
        if not reqs[s][1]:
            lost += 1
            if not quiet:
                out("lost %d" % ((s - firstseq) & 0xFFFF))
    if readtag is not None:
        # take the outstanding read back
        try:
            cl.wait(cl.start(ninep.Tflush, readtag), timeout=2)
        except (OSError, EOFError, TimeoutError):
            pass
    try:
        conv.close()
    except (OSError, EOFError, TimeoutError):
        pass
    if not quiet and lost:
        out("%d out of %d messages lost" % (lost, lost + rcvd))
    if not quiet:
        s = "%d sent, %d received, %d lost" % (sent, rcvd, lost)
        if rtts:
            s += "; rtt min/avg/max %d/%d/%d µs" % (min(rtts), sum(rtts) // len(rtts), max(rtts))
        out(s)
    if failed is not None and rcvd == 0:
        return 1
    return 1 if lost else 0


def _fmt(a16, v6):
    # a 16-byte address (v4-mapped for v4) as ping.c prints it
    return str(ipaddress.IPv6Address(a16) if v6 else ipaddress.IPv4Address(a16[12:]))
