"""net9 behind packetdrill's shared-object interface: the Python half of
the shim.

packetdrill (google/packetdrill, ``--so_filename``) loads a shared object
that fills ``struct packetdrill_interface``: socket calls, ``netdev_send``
/ ``netdev_receive`` for packets, and ``usleep`` / ``gettimeofday`` for the
clock.  ``net9pd.c`` is that object: it embeds CPython and forwards every
call to a ``Shim`` made here.  A ``Shim`` owns one net9 stack (``Fs``,
``Ip``, ``TcpProto``, ICMP) on a virtual clock, and a small socket layer
over devip's conversations: every socket call becomes what a Plan 9
program does with ``/net/tcp`` (clone, ``connect``/``announce`` ctl
messages, ``listen``, reads and writes of ``data``, ``close``/``hangup``
ctl, closing the files).

The clock.  Time is a virtual microsecond counter that moves only when
packetdrill asks for it: ``usleep(n)`` moves it n microseconds, running the
engine's timers at their deadlines on the way (segments they send carry
that time); ``gettimeofday`` reads it and moves it one microsecond, since
packetdrill spins on it for the last microseconds before an event.  The
engine sees whole milliseconds (``Fs.advance``).  Nothing here reads the
real clock, so a run is deterministic.

Threads.  packetdrill runs a call it expects to block (``0...0.2 read``)
in a second thread and goes on with the script in the main thread, waiting
until the second thread sleeps.  Every entry here holds one lock (a
``threading.Condition``); a blocked call waits on it, so the main thread's
packets and clock move the stack meanwhile.  When the main thread's work
makes a blocked call complete, the main thread waits until that thread
has returned and read the clock (packetdrill's ``end_syscall``), so the
call ends at the virtual time of the event that completed it.  Before
such a call the second thread sleeps until the call's start time while
the main thread waits for the call to begin: that sleep moves the clock
itself, as the main thread's do.

The socket layer is ours, so where BSD sockets and devip differ the
choice is written here and in README.md: e.g. ``shutdown(SHUT_WR)`` is
devip's ``close`` ctl (a FIN after queued data; unread input is
discarded), options net9 has no equivalent for fail with ENOPROTOOPT, and
the error of a connection that ended (``SO_ERROR``, a read's ECONNRESET)
comes from what ended it: a RST in, a timer, an ICMP error.

Only TCP over IPv4 and IPv6 (and v4-mapped v6 sockets) is offered.
"""

from __future__ import annotations

import collections
import errno
import ipaddress
import os
import struct
import sys
import threading
import traceback

from net9.conv import ConvState, Fs
from net9.tcp import TcpState
from net9.errors import Net9Error
import net9.errors as E

# ---------------------------------------------------------------- constants
# Linux values: packetdrill resolves the scripts' symbols with its own
# (Linux) tables and hands us the numbers.

AF_INET, AF_INET6 = 2, 10
SOCK_STREAM, SOCK_DGRAM = 1, 2
SOCK_NONBLOCK, SOCK_CLOEXEC = 0o4000, 0o2000000
IPPROTO_IP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_IPV6 = 0, 6, 17, 41
SOL_SOCKET = 1

SO_REUSEADDR, SO_TYPE, SO_ERROR, SO_SNDBUF, SO_RCVBUF = 2, 3, 4, 7, 8
SO_KEEPALIVE, SO_LINGER, SO_REUSEPORT, SO_ACCEPTCONN = 9, 13, 15, 30
SO_PROTOCOL, SO_DOMAIN = 38, 39

TCP_NODELAY, TCP_MAXSEG, TCP_KEEPIDLE, TCP_KEEPINTVL = 1, 2, 4, 5
TCP_INFO = 11
TCP_CONGESTION = 13

IP_TOS, IP_TTL = 1, 2
IPV6_UNICAST_HOPS, IPV6_V6ONLY, IPV6_TCLASS = 16, 26, 67

SHUT_RD, SHUT_WR, SHUT_RDWR = 0, 1, 2

F_GETFD, F_SETFD, F_GETFL, F_SETFL = 1, 2, 3, 4
O_RDWR, O_NONBLOCK = 2, 0o4000

FIONREAD, SIOCOUTQ, FIONBIO = 0x541B, 0x5411, 0x5421

POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 1, 2, 4, 8, 0x10, 0x20
POLLRDNORM, POLLWRNORM, POLLRDHUP = 0x40, 0x100, 0x2000

MSG_OOB, MSG_PEEK, MSG_DONTWAIT, MSG_NOSIGNAL = 1, 2, 0x40, 0x4000
MSG_FASTOPEN = 0x20000000
# flags a call may carry: the rest name something net9 has no equivalent
# for (MSG_MORE: corking, MSG_EOR, MSG_ZEROCOPY, MSG_WAITALL, ...) and fail
SEND_FLAGS = MSG_DONTWAIT | MSG_NOSIGNAL
RECV_FLAGS = MSG_DONTWAIT

# tcp.c states (tcpstates[]) and Linux's TCP_* for tcp_info
(Closed, Listen, Syn_sent, Syn_received, Established,
 Finwait1, Finwait2, Close_wait, Closing, Last_ack, Time_wait) = TcpState
LINUX_STATE = {Closed: 7, Listen: 10, Syn_sent: 2, Syn_received: 3,
               Established: 1, Finwait1: 4, Finwait2: 5, Close_wait: 8,
               Closing: 11, Last_ack: 9, Time_wait: 6}
SYNCHRONIZED = (Syn_received, Established, Finwait1, Finwait2, Close_wait,
                Closing, Last_ack)

Connecting = ConvState.Connecting

# How long the main thread lets virtual time run for a call that would
# block with nothing else to wake it (a blocking call the script did not
# mark "..."): a kernel would wait for ever; we give up after this.
MAIN_BLOCK_LIMIT_US = 3600 * 1000000

# devip error texts -> errno (for icmp.c's and icmp6.c's texts, the errno
# Linux's icmp_err_convert and icmpv6_err_convert give the same ICMP error)
_ERRNO = {
    E.Econrefused: errno.ECONNREFUSED,
    E.Etimedout: errno.ETIMEDOUT,
    E.Enoroute: errno.ENETUNREACH,
    E.Eaddrinuse: errno.EADDRINUSE,
    E.Enoports: errno.EADDRNOTAVAIL,
    E.Enotlocal: errno.EADDRNOTAVAIL,
    E.Econinuse: errno.EISCONN,
    E.Ehungup: errno.EPIPE,
    E.Ehangup: errno.EPIPE,
    E.Enodev: errno.ENFILE,
    E.Ebadip: errno.EINVAL,
    E.Ebadport: errno.EINVAL,
    E.Emalformed: errno.EINVAL,
    E.Estatelesshog: errno.ECONNRESET,
    # icmp.c's texts (devip.md section 3.7)
    "net unreachable": errno.ENETUNREACH,
    "host unreachable": errno.EHOSTUNREACH,
    "protocol unreachable": errno.ENOPROTOOPT,
    "port unreachable": errno.ECONNREFUSED,
    "fragmentation needed and DF set": errno.EMSGSIZE,
    "source route failed": errno.EHOSTUNREACH,
    "destination network unknown": errno.ENETUNREACH,
    "destination host unknown": errno.EHOSTDOWN,
    "source host isolated": errno.ENONET,
    "network administratively prohibited": errno.ENETUNREACH,
    "host administratively prohibited": errno.EHOSTUNREACH,
    "network unreachable for tos": errno.ENETUNREACH,
    "host unreachable for tos": errno.EHOSTUNREACH,
    "communication administratively prohibited": errno.EHOSTUNREACH,
    "host precedence violation": errno.EHOSTUNREACH,
    "precedence cutoff in effect": errno.EHOSTUNREACH,
    # icmp6.c's
    "no route to destination": errno.ENETUNREACH,
    "comm with destination administratively prohibited": errno.EACCES,
    "beyond scope of source address": errno.EHOSTUNREACH,
    "address unreachable": errno.EHOSTUNREACH,
    "source address failed ingress/egress policy": errno.EACCES,
    "reject route to destination": errno.EACCES,
    "icmp unreachable: unknown code": errno.EHOSTUNREACH,
}


def errno_of(text) -> int:
    """The errno for a devip error text."""
    text = str(text)
    e = _ERRNO.get(text)
    if e is not None:
        return e
    if text.startswith("ttl exceeded") or text.startswith("frag time exceeded"):
        return errno.EHOSTUNREACH
    if text.startswith("packet too big"):
        return errno.EMSGSIZE
    if text.startswith("unreachable"):
        return errno.EHOSTUNREACH
    return errno.EIO


class Fail(Exception):
    """A call's failure: the errno packetdrill sees."""

    def __init__(self, err, why=None):
        Exception.__init__(self, err)
        self.errno = err
        self.why = why


# ---------------------------------------------------------------- addresses

_V4PREFIX = b"\0" * 10 + b"\xff\xff"


def sockaddr_in(data: bytes):
    """(family, 16-byte address, port) of a struct sockaddr."""
    if len(data) < 2:
        raise Fail(errno.EINVAL)
    fam = struct.unpack_from("=H", data)[0]
    if fam == AF_INET:
        if len(data) < 8:
            raise Fail(errno.EINVAL)
        return fam, _V4PREFIX + data[4:8], struct.unpack_from("!H", data, 2)[0]
    if fam == AF_INET6:
        if len(data) < 24:
            raise Fail(errno.EINVAL)
        return fam, bytes(data[8:24]), struct.unpack_from("!H", data, 2)[0]
    raise Fail(errno.EAFNOSUPPORT)


def sockaddr_out(domain: int, a16: bytes, port: int) -> bytes:
    """struct sockaddr_in / sockaddr_in6 for a socket of domain."""
    if domain == AF_INET:
        return struct.pack("=H", AF_INET) + struct.pack("!H", port) + a16[12:16] + b"\0" * 8
    return (struct.pack("=H", AF_INET6) + struct.pack("!H", port) + b"\0" * 4 + a16
            + b"\0" * 4)


def ipstr(a16: bytes) -> str:
    if a16[:12] == _V4PREFIX:
        return str(ipaddress.IPv4Address(a16[12:]))
    return str(ipaddress.IPv6Address(a16))


def isany(a16: bytes) -> bool:
    return a16 == b"\0" * 16 or a16 == _V4PREFIX + b"\0" * 4


def _describe(pkt):
    """One line for a datagram (tracing)."""
    try:
        from net9 import sim
        seg = sim.parse(pkt)
        if seg.proto not in (6, 17):
            return "%s %s" % (seg, bytes(pkt).hex())
        return str(seg)
    except Exception as e:      # a datagram sim cannot parse
        return "%d bytes (%s)" % (len(pkt), e)


# ---------------------------------------------------------------- the medium

class Wire:
    """The shim's medium: what the stack transmits waits here, stamped with
    the virtual time, for netdev_receive."""

    name = "packetdrill"
    hsize = 0
    mintu = 68
    gso = 0

    def __init__(self, shim, mtu):
        self.shim = shim
        self.maxtu = mtu
        self.out = collections.deque()

    def transmit(self, pkt):
        self.out.append((self.shim.now_us, bytes(pkt)))


# ---------------------------------------------------------------- sockets

class Sock:
    """One socket: a conversation and what BSD keeps beside it."""

    def __init__(self, fd, domain, nonblock):
        self.fd = fd
        self.domain = domain
        self.nonblock = nonblock
        self.conv = None
        self.bound = None              # (16-byte address, port) from bind
        self.listening = False
        self.connecting = False        # a connect is under way
        self.connected = False         # handshake completed (connect or accept)
        self.error = 0                 # SO_ERROR: pending error
        self.dead = False              # the connection ended (RST, time-out, ...)
        self.shut_rd = False
        self.shut_wr = False
        self.eof = False
        # MSG_PEEK: bytes read from the conversation but not yet given to
        # the program; every read takes them first (devip has no peek)
        self.peekbuf = bytearray()
        self.keepalive = False
        self.keepidle = 0              # ms, 0: net9's default
        self.linger0 = False           # SO_LINGER {1, 0}: close is an abort (hangup)
        self.laststate = Closed


def opts_from(flags: str) -> dict:
    """--so_flags: "key=value" pairs separated by commas or spaces."""
    d = {}
    for part in (flags or "").replace(",", " ").split():
        if "=" in part:
            k, v = part.split("=", 1)
            d[k.strip()] = v.strip()
        else:
            d[part.strip()] = "1"
    return d


def _entry(fn):
    """Serialise an entry and apply the thread rules of the module doc."""
    name = fn.__name__

    def wrapper(self, *args):
        with self.cv:
            me = threading.get_ident()
            main = me == self.main
            if main:
                self._tools()
                self._settle()
            else:
                self.bstate = "running"
            try:
                return fn(self, *args)
            except Fail as f:
                if f.why and self.verbose:
                    self.say("%s: %s" % (name, f.why))
                return -f.errno
            except Exception:
                self.say("internal error in %s:\n%s" % (name, traceback.format_exc()))
                return -errno.EIO
            finally:
                if not main:
                    # packetdrill's end_syscall reads the clock next
                    self.bstate = "returning"
                    self.cv.notify_all()
    wrapper.__name__ = name
    wrapper.__doc__ = fn.__doc__
    return wrapper


class Shim:
    """A net9 stack with a socket layer and a virtual clock.

    Shim(flags): flags as opts_from() reads them: local4, remote4, local6,
    remote6 (addresses; the remote ones may carry a /prefix), mtu,
    profile (9front: tcp.c as ported, the default; modern: net9's modern
    profile, SACK, timestamps, RACK, CUBIC -- TcpProto's profile), seed,
    verbose."""

    def __init__(self, flags: str = ""):
        o = opts_from(flags)
        self.opts = o
        self.verbose = o.get("verbose", "0") not in ("0", "") or bool(os.environ.get("NET9_PD_TRACE"))
        profile = o.get("profile", "9front")
        if profile not in ("9front", "modern"):
            raise ValueError("net9 has no TCP profile %r: 9front (tcp.c as ported) "
                             "or modern" % profile)
        self.profile = profile
        from net9.ip import Ip
        from net9.tcp import TcpProto
        from net9.stack import _make_icmp
        self.now_us = 0
        self.fs = Fs(seed=int(o.get("seed", "1")), now=0, eve="none")
        self.ip = Ip(self.fs)
        self.tcp = TcpProto(self.fs, profile=profile)
        self.icmp = _make_icmp(self.fs)
        self.wire = Wire(self, int(o.get("mtu", "1500")))
        self.ifc = self.ip.addifc(self.wire)
        local4 = o.get("local4", "192.168.0.1")
        local6 = o.get("local6", "fd3d:fa7b:d17d::1")
        remote4 = o.get("remote4", "192.0.2.1")
        remote6 = o.get("remote6", "2001:db8::1")
        self.ifc.add(local4, int(o.get("prefix4", "16")))
        self.ifc.add(local6, int(o.get("prefix6", "48")))
        for r, full in ((remote4, 32), (remote6, 128)):
            net = ipaddress.ip_network(r if "/" in r else "%s/%d" % (r, full), strict=False)
            self.ip.addroute(str(net.network_address), net.prefixlen, None, self.ifc)
        self.cv = threading.Condition(threading.Lock())
        self.main = threading.get_ident()
        self.socks = {}
        self.bstate = "idle"       # the other thread: idle, running, blocked, waking, returning
        self.bpred = None          # what its blocked call waits for
        self.cause = None          # what the current engine work is: "rst", "timer", "icmp", "seg"
        # the scripts' shell commands (bin/sockstat, bin/tcpdrop) see the
        # stack through files in this directory
        self.statedir = os.environ.get("NET9_PD_STATE") or None
        self.dirty = True

    # -- diagnostics ---------------------------------------------------------

    def say(self, msg):
        sys.stderr.write("net9pd: %s\n" % msg)
        sys.stderr.flush()

    # -- the clock and the engine ------------------------------------------

    def _ms(self):
        return (self.now_us // 1000) & 0xFFFFFFFF

    def _engine_at(self, us):
        """Move the clock to us and run whatever timers are due."""
        self.now_us = us
        ms = self._ms()
        self.cause = "timer"
        self.fs.advance(ms)
        self._after()

    def _advance_to(self, target):
        """Run virtual time up to target (us): the engine's deadlines in
        order, each at its own time."""
        spins = 0
        while True:
            nxt = target
            d = self.fs.nextdeadline()
            due = d is not None and self._deadline_us(d) <= nxt
            if due:
                nxt = max(self._deadline_us(d), self.now_us)
                spins = spins + 1 if nxt == self.now_us else 0
                if spins > 1000:
                    raise RuntimeError("engine timers still due after 1000 runs at %d us"
                                       % self.now_us)
                self._engine_at(nxt)
            else:
                self.now_us = max(nxt, self.now_us)
                if self._ms() != self.fs.now:
                    self._engine_at(self.now_us)
            self._settle()
            if self.now_us >= target and not due:
                break

    def _deadline_us(self, d):
        """Engine deadline (ms, 32-bit) as a virtual time (us)."""
        dt = (d - self._ms()) & 0xFFFFFFFF
        if dt >= 0x80000000:
            dt = 0
        return (self.now_us // 1000 + dt) * 1000

    def _settle(self):
        """Wait for the other thread where it must run before time moves on:
        a blocked call whose wait is over runs to its end and reads the
        clock there (packetdrill's end_syscall), so it ends at the time of
        what completed it."""
        while True:
            st = self.bstate
            if st == "blocked" and self.bpred is not None and self.bpred():
                self.bstate = "waking"
                self.cv.notify_all()
                continue
            if st in ("waking", "returning"):
                self.cv.wait()
                continue
            return

    def _after(self):
        """After engine work: bring each socket up to date with its
        conversation (connects finished, connections ended)."""
        self.fs.drain()
        self.dirty = True
        for s in self.socks.values():
            c = s.conv
            if c is None:
                continue
            tcb = self.tcp.tcb(c)
            st = tcb.state
            if s.connecting and c.state != Connecting:
                s.connecting = False
                try:
                    self.tcp.connectresult(c)
                except Net9Error as e:
                    s.error = errno_of(e)
                    s.dead = True
                else:
                    if st == Closed:
                        # Fsconnected's quirk: aborted without a reason
                        s.error = errno.ECONNABORTED
                        s.dead = True
                    else:
                        s.connected = True
                        self._keepalive(s)
            if st == Closed and s.laststate in SYNCHRONIZED and not s.dead:
                s.dead = True
                # what ended it: devip keeps no reason once Closed
                if self.cause == "rst":
                    # tcp.c's reason is Econrefused for every RST; BSD's
                    # ECONNRESET once established, and RFC 9293 3.10.7.3's
                    # "connection refused" in SYN-RECEIVED (a
                    # simultaneous open's, here: limbo's have no socket)
                    s.error = (errno.ECONNREFUSED if s.laststate == Syn_received
                               else errno.ECONNRESET)
                elif self.cause == "timer":
                    s.error = errno.ETIMEDOUT      # retransmission or keepalive give-up
                elif self.cause == "icmp":
                    s.error = errno.EHOSTUNREACH
            s.laststate = st

    # -- the scripts' commands ------------------------------------------------

    FREEBSD_STATE = {Closed: "CLOSED", Listen: "LISTEN", Syn_sent: "SYN_SENT",
                     Syn_received: "SYN_RCVD", Established: "ESTABLISHED",
                     Finwait1: "FIN_WAIT_1", Finwait2: "FIN_WAIT_2",
                     Close_wait: "CLOSE_WAIT", Closing: "CLOSING", Last_ack: "LAST_ACK",
                     Time_wait: "TIME_WAIT"}

    def _snapshot(self):
        """Write the conversations for bin/sockstat: one line each,
        "fd version laddr lport raddr rport STATE" (fd "-": no socket)."""
        if self.statedir is None or not self.dirty:
            return
        self.dirty = False
        byconv = {id(s.conv): s for s in self.socks.values() if s.conv is not None}
        lines = []
        for c in self.tcp.conv:
            if c is None:
                continue
            st = self.tcp.tcb(c).state
            s = byconv.get(id(c))
            if s is None and (st == Closed or c.inuse == 0 and st == Closed):
                continue
            if s is not None and s.listening:
                st = Listen if st == Listen else st
            lines.append("%s %d %s %d %s %d %s\n" % (
                s.fd if s is not None else "-", 6 if c.ipversion == 6 else 4,
                ipstr(c.localaddr), c.lport, ipstr(c.remoteaddr), c.rport,
                self.FREEBSD_STATE.get(st, str(st))))
        # calls in limbo (tcp.c's SYN cache) are what BSD's syncache shows
        for raddr, rport, laddr, lport, _, _ in self.tcp.limbolist():
            v = 6 if ":" in laddr and not laddr.startswith("::ffff:") else 4
            lines.append("- %d %s %d %s %d SYN_RCVD\n" % (v, laddr, lport, raddr, rport))
        tmp = os.path.join(self.statedir, "socks.tmp")
        with open(tmp, "w") as f:
            f.write("".join(lines))
        os.replace(tmp, os.path.join(self.statedir, "socks"))

    def _tools(self):
        """Carry out what bin/tcpdrop asked for since the last entry."""
        if self.statedir is None:
            return
        req = os.path.join(self.statedir, "requests")
        try:
            with open(req) as f:
                todo = f.read().split("\n")
            os.unlink(req)
        except OSError:
            return
        names = {v: k for k, v in self.FREEBSD_STATE.items()}
        for line in todo:
            w = line.split()
            if len(w) >= 2 and w[0] == "ctl":
                # bin/net9ctl: a message to /net/tcp/N/ctl of a fresh
                # conversation (tcpporthogdefense is protocol-wide)
                c = self.tcp.clone("none")
                try:
                    self.tcp.ctl(c, " ".join(w[1:]))
                except Net9Error as e:
                    self.say("net9ctl %s: %s" % (" ".join(w[1:]), e))
                finally:
                    self.tcp.closeconv(c)
                continue
            if len(w) == 2 and w[0] == "drop":
                want = None if w[1] == "all" else names.get(w[1])
                for c in self.tcp.conv:
                    if c is None:
                        continue
                    st = self.tcp.tcb(c).state
                    if st == Closed or (want is not None and st != want):
                        continue
                    # devip's abortive close
                    self.cause = "user"
                    try:
                        self.tcp.ctl(c, "hangup")
                    except Net9Error:
                        pass
                    self._after()
        self._snapshot()

    # -- waiting ---------------------------------------------------------------

    def _block(self, s, pred, what):
        """Wait until pred() holds for a call that would block."""
        if pred():
            return
        if s is not None and s.nonblock:
            raise Fail(errno.EAGAIN)
        if threading.get_ident() != self.main:
            self.bpred = pred
            self.bstate = "blocked"
            self.cv.notify_all()
            while not (self.bstate == "waking" or pred()):
                self.cv.wait()
            self.bpred = None
            self.bstate = "running"
            return
        # the main thread: nobody else moves time, so run it forward
        limit = self.now_us + MAIN_BLOCK_LIMIT_US
        while not pred():
            d = self.fs.nextdeadline()
            nxt = None
            if d is not None:
                nxt = self._deadline_us(d)
            if nxt is None or nxt > limit:
                self.say("%s in the main thread would block for ever (no timer left); "
                         "a kernel would hang here" % what)
                raise Fail(errno.EINTR)
            self._advance_to(max(nxt, self.now_us + 1))

    # -- clock entries -------------------------------------------------------

    def gettimeofday(self):
        """The virtual time in microseconds; each reading moves it 1 us."""
        with self.cv:
            if threading.get_ident() != self.main:
                if self.bstate == "returning":
                    self.bstate = "idle"
                    self.cv.notify_all()
                t = self.now_us
                self.now_us += 1
                return t
            self._tools()
            self._settle()
            t = self.now_us
            self._advance_to(self.now_us + 1)
            self._snapshot()
            return t

    def usleep(self, us):
        """Move virtual time.  From packetdrill's main thread, waiting for
        an event; from its system-call thread, waiting for the start of a
        blocking call, while the main thread waits for that call to begin:
        either way nobody else moves time meanwhile."""
        with self.cv:
            if threading.get_ident() == self.main:
                self._tools()
            self._advance_to(self.now_us + int(us))
            if threading.get_ident() == self.main:
                self._snapshot()
            return 0

    # -- packets -------------------------------------------------------------

    @_entry
    def netdev_send(self, pkt):
        """A datagram from packetdrill into the stack."""
        pkt = bytes(pkt)
        if self.verbose:
            self.say("%.6f in  %s" % (self.now_us / 1e6, _describe(pkt)))
        self._engine_at(self.now_us)
        self.cause = "seg"
        if len(pkt) >= 20:
            v = pkt[0] >> 4
            proto = pkt[9] if v == 4 else (pkt[6] if v == 6 else -1)
            hl = (pkt[0] & 0xF) * 4 if v == 4 else 40
            if proto == IPPROTO_TCP and len(pkt) >= hl + 14 and pkt[hl + 13] & 0x04:
                self.cause = "rst"
            elif proto in (1, 58):
                self.cause = "icmp"
        if len(pkt) >= 20 and pkt[0] >> 4 == 4 and pkt[12:16] == b"\0\0\0\0" \
                and pkt[16:20] == b"\0\0\0\0" or len(pkt) >= 40 and pkt[0] >> 4 == 6 \
                and pkt[8:40] == b"\0" * 32:
            self.say("packetdrill sent a datagram from and to the unspecified address "
                     "(its tuple for this socket is empty): no stack takes it")
        self.ip.input(self.ifc, pkt)
        self._after()
        self._settle()
        return 0

    def netdev_receive(self):
        """(time_us, datagram) of the next datagram the stack sent, running
        time forward to the next timer if none is waiting; None when the
        stack will send nothing more."""
        with self.cv:
            self._settle()
            limit = self.now_us + MAIN_BLOCK_LIMIT_US
            while not self.wire.out:
                d = self.fs.nextdeadline()
                if d is None:
                    break
                dus = self._deadline_us(d)
                if dus > limit:
                    break
                self._advance_to(max(dus, self.now_us))
            if not self.wire.out:
                self.say("the stack has nothing to send and no timer running "
                         "(virtual time %.6f s)" % (self.now_us / 1e6))
                return None
            t, pkt = self.wire.out.popleft()
            if self.verbose:
                self.say("%.6f out %s" % (t / 1e6, _describe(pkt)))
            return t, pkt

    # -- sockets: helpers ------------------------------------------------------

    def _sock(self, fd) -> Sock:
        s = self.socks.get(fd)
        if s is None:
            raise Fail(errno.EBADF)
        return s

    def _newfd(self):
        # a real descriptor, so that packetdrill's own close() of what a
        # script left open finds something to close
        return os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)

    def _ctl(self, s, msg):
        self.cause = "user"
        try:
            self.tcp.ctl(s.conv, msg)
        except Net9Error as e:
            raise Fail(errno_of(e), "%s: %s" % (msg, e))
        finally:
            self._after()

    def _state(self, s):
        return self.tcp.tcb(s.conv).state if s.conv is not None else Closed

    def _keepalive(self, s):
        if s.keepalive and self._state(s) == Established:
            msg = "keepalive" + (" %d" % s.keepidle if s.keepidle else "")
            try:
                self.tcp.ctl(s.conv, msg)
            except Net9Error:
                pass

    def _take_error(self, s):
        e = s.error
        s.error = 0
        return e

    # -- sockets: calls --------------------------------------------------------

    @_entry
    def socket(self, domain, type_, protocol):
        if domain not in (AF_INET, AF_INET6):
            raise Fail(errno.EAFNOSUPPORT)
        base = type_ & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)
        if base != SOCK_STREAM:
            raise Fail(errno.EPROTONOSUPPORT, "only SOCK_STREAM (TCP) is offered")
        if protocol not in (0, IPPROTO_TCP):
            raise Fail(errno.EPROTONOSUPPORT)
        try:
            c = self.tcp.clone("none")
        except Net9Error as e:
            raise Fail(errno.ENFILE, str(e))
        fd = self._newfd()
        s = Sock(fd, domain, bool(type_ & SOCK_NONBLOCK))
        s.conv = c
        self.socks[fd] = s
        for msg in self._sysctl_switches():
            self._ctl(s, msg)
        return fd

    # the sysctls a script ran (bin/sysctl logs them) that turn off what
    # the modern profile has: Linux's and FreeBSD's names
    SYSCTL_SWITCHES = {
        ("net.ipv4.tcp_sack", "0"): "sack off",
        ("net.inet.tcp.sack.enable", "0"): "sack off",
        ("net.ipv4.tcp_timestamps", "0"): "timestamps off",
        ("net.inet.tcp.rfc1323", "0"): "timestamps off",
        ("net.inet.tcp.rfc1323", "2"): "timestamps off",   # window scaling only
        ("net.ipv4.tcp_congestion_control", "reno"): "congestion newreno",
        ("net.ipv4.tcp_congestion_control", "cubic"): "congestion cubic",
        ("net.inet.tcp.cc.algorithm", "newreno"): "congestion newreno",
        ("net.inet.tcp.cc.algorithm", "cubic"): "congestion cubic",
    }

    def _sysctl_switches(self):
        """In the modern profile, the ctl messages that the sysctls run so
        far ask for (the last setting of each name wins); none in 9front,
        which has none of these switches."""
        if self.profile != "modern" or not self.statedir:
            return []
        try:
            with open(os.path.join(self.statedir, "sysctl.log")) as f:
                words = f.read().split()
        except OSError:
            return []
        last = {}
        for w in words:
            if "=" in w:
                k, v = w.split("=", 1)
                last[k.strip()] = v.strip().strip("\"'")
        return [m for (k, v), m in self.SYSCTL_SWITCHES.items() if last.get(k) == v]

    @_entry
    def bind(self, fd, sa):
        s = self._sock(fd)
        fam, a, port = sockaddr_in(sa)
        if s.bound is not None or s.listening or s.connecting or s.connected:
            raise Fail(errno.EINVAL)
        if fam == AF_INET and s.domain != AF_INET:
            raise Fail(errno.EINVAL)
        if not isany(a) and not self.ip.isself(a):
            raise Fail(errno.EADDRNOTAVAIL)
        for o in self.socks.values():
            if o is not s and o.listening and o.bound is not None and o.bound[1] == port \
                    and port != 0 and (isany(o.bound[0]) or isany(a) or o.bound[0] == a):
                raise Fail(errno.EADDRINUSE)
        s.bound = (a, port)
        return 0

    @_entry
    def listen(self, fd, backlog):
        s = self._sock(fd)
        if s.listening:
            return 0
        if s.connecting or s.connected:
            raise Fail(errno.EINVAL)
        a, port = s.bound if s.bound is not None else (b"\0" * 16, 0)
        msg = "announce %d" % port if isany(a) else "announce %s!%d" % (ipstr(a), port)
        self._ctl(s, msg)
        s.listening = True
        s.bound = (a, s.conv.lport)
        return 0

    @_entry
    def accept(self, fd):
        s = self._sock(fd)
        if not s.listening:
            raise Fail(errno.EINVAL)
        c = s.conv
        self._block(s, lambda: bool(c.incall) or self._state(s) != Listen, "accept")
        if self._state(s) != Listen and not c.incall:
            raise Fail(errno.EINVAL)
        nc = self.tcp.takecall(c)
        nfd = self._newfd()
        n = Sock(nfd, s.domain, False)
        n.conv = nc
        n.connected = True
        n.keepalive = s.keepalive
        n.keepidle = s.keepidle
        n.linger0 = s.linger0
        n.laststate = self.tcp.tcb(nc).state
        self.socks[nfd] = n
        self._keepalive(n)
        return nfd, sockaddr_out(s.domain, nc.remoteaddr, nc.rport)

    @_entry
    def connect(self, fd, sa):
        s = self._sock(fd)
        fam, a, port = sockaddr_in(sa)
        if s.listening:
            raise Fail(errno.EINVAL)
        if s.connected and not s.dead:
            raise Fail(errno.EISCONN)
        if s.connecting:
            if s.nonblock:
                raise Fail(errno.EALREADY)
        elif s.dead or s.connected:
            e = self._take_error(s)
            raise Fail(e or errno.ECONNABORTED)
        else:
            if fam == AF_INET and s.domain != AF_INET:
                raise Fail(errno.EAFNOSUPPORT)
            msg = "connect %s!%d" % (ipstr(a), port)
            if s.bound is not None:
                la, lp = s.bound
                if not isany(la):
                    msg += " %s!%d" % (ipstr(la), lp)
                elif lp:
                    msg += " %d" % lp
            s.connecting = True
            self.cause = "user"
            try:
                self.tcp.ctl(s.conv, msg)
            except Net9Error as e:
                s.connecting = False
                s.dead = True
                self._after()
                raise Fail(errno_of(e), "%s: %s" % (msg, e))
            self._after()
            if s.connecting and s.nonblock:
                raise Fail(errno.EINPROGRESS)
        self._block(None, lambda: not s.connecting, "connect")
        if s.connected and not s.dead:
            return 0
        e = self._take_error(s)
        raise Fail(e or errno.ECONNABORTED)

    def _readable(self, s):
        """Data, EOF or an error waiting for a read."""
        c = s.conv
        if s.shut_rd or s.dead or s.eof or s.error or s.peekbuf:
            return True
        if len(c.rq):
            return True
        return c.rq.ishungup()

    @_entry
    def read(self, fd, n, flags=0):
        s = self._sock(fd)
        if n < 0:
            raise Fail(errno.EINVAL)
        if s.listening or not (s.connected or s.connecting or s.dead):
            raise Fail(errno.ENOTCONN)
        nonblock = s.nonblock or bool(flags & MSG_DONTWAIT)
        peek = bool(flags & MSG_PEEK)
        if flags & ~(RECV_FLAGS | MSG_PEEK):
            raise Fail(errno.EOPNOTSUPP, "recv flags %#x: net9 has no equivalent" % (
                flags & ~(RECV_FLAGS | MSG_PEEK)))
        c = s.conv
        while True:
            if s.shut_rd:
                return b""
            if s.peekbuf or peek and s.connected and not (s.eof or s.dead):
                # devip's queues have no peek: a peek reads from the
                # conversation into the socket's own buffer, which every
                # read empties first (so bytes peeked before an EOF or an
                # error come before it, as BSD's socket buffer gives them)
                if n > 0 and s.connected and not (s.eof or s.dead):
                    self._pull(s, n)
                if s.peekbuf:
                    data = bytes(s.peekbuf[:n])
                    if not peek:
                        del s.peekbuf[:n]
                    return data
            if s.eof:
                return b""
            e = self._take_error(s)
            if e:
                raise Fail(e)
            if s.dead:
                return b""
            if n == 0:
                return b""
            if s.connected and not peek:
                self.cause = "user"
                try:
                    data = self.tcp.read(c, n)
                except Net9Error as e:
                    self._after()
                    if str(e) == E.Ehungup:
                        s.eof = True
                        return b""
                    raise Fail(errno_of(e), str(e))
                self._after()
                if data is None:
                    pass
                elif data == b"":
                    s.eof = True
                    return b""
                else:
                    return bytes(data)
            if nonblock:
                raise Fail(errno.EAGAIN)
            self._block(None, lambda: self._readable(s) or (not s.connecting and not s.connected),
                        "read")

    def _pull(self, s, n):
        """Read what the conversation holds into s.peekbuf until it holds
        n bytes, without blocking; the EOF or error that ends the data is
        left for after the buffer."""
        while len(s.peekbuf) < n:
            self.cause = "user"
            try:
                data = self.tcp.read(s.conv, n - len(s.peekbuf))
            except Net9Error as e:
                self._after()
                if str(e) == E.Ehungup:
                    s.eof = True
                else:
                    s.error = s.error or errno_of(e)
                return
            self._after()
            if data is None:
                return
            if data == b"":
                s.eof = True
                return
            s.peekbuf += data

    def _writable(self, s):
        if s.dead or s.error or s.shut_wr:
            return True
        if s.connecting:
            return False
        return not s.conv.wq.flow

    @_entry
    def write(self, fd, data, flags=0):
        s = self._sock(fd)
        data = bytes(data)
        if flags & MSG_FASTOPEN:
            raise Fail(errno.EOPNOTSUPP, "MSG_FASTOPEN: net9 has no TCP Fast Open")
        if flags & ~SEND_FLAGS:
            raise Fail(errno.EOPNOTSUPP, "send flags %#x: net9 has no equivalent" % (
                flags & ~SEND_FLAGS))
        nonblock = s.nonblock or bool(flags & MSG_DONTWAIT)
        if s.connecting:
            if nonblock:
                raise Fail(errno.EAGAIN)
            self._block(None, lambda: not s.connecting, "write")
        e = self._take_error(s)
        if e:
            raise Fail(e)
        if s.shut_wr or s.dead or not s.connected:
            raise Fail(errno.EPIPE if (s.connected or s.dead) else errno.ENOTCONN
                       if not s.listening else errno.ENOTCONN)
        if self._state(s) not in (Established, Close_wait):
            raise Fail(errno.EPIPE)
        if not data:
            return 0
        c = s.conv
        self.cause = "user"
        try:
            # devip queues the whole write, then blocks while the queue is
            # over its limit (flow control)
            n = self.tcp.write(c, data)
        except Net9Error as e:
            self._after()
            raise Fail(errno.EPIPE, str(e))
        self._after()
        if c.wq.flow and not nonblock:
            self._block(None, lambda: self._writable(s), "write")
        return n

    @_entry
    def close(self, fd):
        s = self._sock(fd)
        del self.socks[fd]
        try:
            os.close(fd)
        except OSError:
            pass
        c = s.conv
        s.conv = None
        if c is not None:
            self.cause = "user"
            if s.linger0 and self.tcp.tcb(c).state in SYNCHRONIZED:
                try:
                    self.tcp.ctl(c, "hangup")
                except Net9Error:
                    pass
            self.tcp.closeconv(c)
            self._after()
        return 0

    @_entry
    def shutdown(self, fd, how):
        s = self._sock(fd)
        if how not in (SHUT_RD, SHUT_WR, SHUT_RDWR):
            raise Fail(errno.EINVAL)
        if s.listening or not (s.connected or s.connecting):
            if not s.dead:
                raise Fail(errno.ENOTCONN)
        if how in (SHUT_RD, SHUT_RDWR):
            s.shut_rd = True
        if how in (SHUT_WR, SHUT_RDWR) and not s.shut_wr:
            s.shut_wr = True
            if s.conv is not None and not s.dead:
                # devip has no half-close: its "close" ctl is the FIN
                # (after queued data), and it discards unread input
                self._ctl(s, "close")
        return 0

    # -- options ---------------------------------------------------------------

    @_entry
    def getsockopt(self, fd, level, name, optlen):
        s = self._sock(fd)
        i32 = lambda v: struct.pack("=i", v)
        c = s.conv
        if level == SOL_SOCKET:
            if name == SO_ERROR:
                return i32(self._take_error(s))
            if name == SO_TYPE:
                return i32(SOCK_STREAM)
            if name == SO_DOMAIN:
                return i32(s.domain)
            if name == SO_PROTOCOL:
                return i32(IPPROTO_TCP)
            if name == SO_ACCEPTCONN:
                return i32(1 if s.listening else 0)
            if name == SO_KEEPALIVE:
                return i32(1 if s.keepalive else 0)
            if name == SO_REUSEADDR:
                return i32(1)          # devip's announce behaves so (README)
            if name == SO_RCVBUF:
                return i32(c.rq.limit if c is not None else 0)
            if name == SO_SNDBUF:
                return i32(c.wq.limit if c is not None else 0)
            if name == SO_LINGER:
                return struct.pack("=ii", 1 if s.linger0 else 0, 0)
        elif level == IPPROTO_TCP:
            if name == TCP_NODELAY:
                return i32(1)          # tcp.c has no Nagle algorithm
            if name == TCP_MAXSEG:
                tcb = self.tcp.tcb(c)
                return i32(tcb.mss if tcb.state != Closed and tcb.mss else 536)
            if name == TCP_INFO:
                return self._tcp_info(s)[:max(0, optlen)]
            if name == TCP_KEEPIDLE:
                return i32((s.keepidle or 120000) // 1000)
            if name == TCP_CONGESTION:
                tcb = self.tcp.tcb(c)
                cc = b"cubic" if tcb.cc == 1 else b"reno"      # CCcubic
                return cc.ljust(max(0, optlen), b"\0")[:max(0, optlen)]
        elif level == IPPROTO_IP and s.domain == AF_INET or level == IPPROTO_IPV6:
            if (level, name) in ((IPPROTO_IP, IP_TOS), (IPPROTO_IPV6, IPV6_TCLASS)):
                return i32(c.tos)
            if (level, name) in ((IPPROTO_IP, IP_TTL), (IPPROTO_IPV6, IPV6_UNICAST_HOPS)):
                return i32(c.ttl)
        raise Fail(errno.ENOPROTOOPT, "getsockopt level %d name %d: net9 has no such option"
                   % (level, name))

    @_entry
    def setsockopt(self, fd, level, name, val):
        s = self._sock(fd)
        val = bytes(val)
        v = struct.unpack_from("=i", val)[0] if len(val) >= 4 else None
        c = s.conv
        if level == SOL_SOCKET:
            if name == SO_REUSEADDR and v is not None:
                if v:
                    return 0           # devip's announce already behaves so
                raise Fail(errno.ENOPROTOOPT, "SO_REUSEADDR 0: devip always reuses")
            if name == SO_KEEPALIVE and v is not None:
                if not v:
                    raise Fail(errno.ENOPROTOOPT,
                               "SO_KEEPALIVE 0: tcp.c keeps every connection alive")
                s.keepalive = True
                self._keepalive(s)
                return 0
            if name == SO_LINGER and len(val) >= 8:
                on, secs = struct.unpack_from("=ii", val)
                if not on:
                    s.linger0 = False
                    return 0
                if secs == 0:
                    s.linger0 = True   # close becomes devip's "hangup" (RST)
                    return 0
        elif level == IPPROTO_TCP:
            if name == TCP_NODELAY and v is not None:
                if v:
                    return 0           # tcp.c sends at once: there is no Nagle
                raise Fail(errno.ENOPROTOOPT, "TCP_NODELAY 0: tcp.c has no Nagle algorithm")
            if name == TCP_KEEPIDLE and v is not None and v > 0:
                s.keepidle = v * 1000
                if s.keepalive:
                    self._keepalive(s)
                return 0
            if name == TCP_CONGESTION:
                # Linux's names; the modern profile's "congestion" ctl
                algo = val.split(b"\0", 1)[0].decode("latin-1")
                cc = {"reno": "newreno", "newreno": "newreno", "cubic": "cubic"}.get(algo)
                if cc is None or (cc == "cubic" and self.profile != "modern"):
                    # Linux's error for an algorithm it does not have
                    raise Fail(errno.ENOENT, "TCP_CONGESTION %r: net9 has no such "
                               "algorithm in the %s profile" % (algo, self.profile))
                self._ctl(s, "congestion %s" % cc)
                return 0
        elif level == IPPROTO_IP and s.domain == AF_INET or level == IPPROTO_IPV6:
            if (level, name) in ((IPPROTO_IP, IP_TOS), (IPPROTO_IPV6, IPV6_TCLASS)) \
                    and v is not None:
                self._ctl(s, "tos %d" % v)
                return 0
            if (level, name) in ((IPPROTO_IP, IP_TTL), (IPPROTO_IPV6, IPV6_UNICAST_HOPS)) \
                    and v is not None:
                self._ctl(s, "ttl %d" % (v if v > 0 else 255))
                return 0
        raise Fail(errno.ENOPROTOOPT, "setsockopt level %d name %d: net9 has no such option"
                   % (level, name))

    def _tcp_info(self, s):
        """Linux's struct tcp_info, the fields net9 has."""
        c = s.conv
        tcb = self.tcp.tcb(c) if c is not None else None
        st = tcb.state if tcb is not None else Closed
        if s.listening:
            st = Listen
        b = bytearray(104)
        b[0] = LINUX_STATE[st]
        if tcb is not None:
            b[6] = (tcb.snd_scale & 0xF) | ((tcb.rcv_scale & 0xF) << 4)
            b[5] = 4 if (tcb.snd_scale or tcb.rcv_scale) else 0   # TCPI_OPT_WSCALE
            rto = tcb.timer.start * 50 * 1000
            struct.pack_into("=IIII", b, 8, rto, 0, tcb.mss, tcb.mss)
            struct.pack_into("=I", b, 16 + 4 * 12, tcb.srtt * 1000)
            struct.pack_into("=I", b, 16 + 4 * 13, tcb.mdev * 1000)
            struct.pack_into("=II", b, 16 + 4 * 14, tcb.ssthresh // max(tcb.mss, 1),
                             tcb.cwind // max(tcb.mss, 1))
        return bytes(b)

    # -- the rest ----------------------------------------------------------------

    @_entry
    def fcntl(self, fd, cmd, arg):
        s = self._sock(fd)
        if cmd == F_GETFL:
            return O_RDWR | (O_NONBLOCK if s.nonblock else 0)
        if cmd == F_SETFL:
            s.nonblock = bool(arg & O_NONBLOCK)
            return 0
        if cmd in (F_GETFD, F_SETFD):
            return 0
        raise Fail(errno.EINVAL)

    @_entry
    def ioctl(self, fd, req, arg):
        s = self._sock(fd)
        c = s.conv
        if req == FIONREAD:
            if s.listening:
                raise Fail(errno.EINVAL)
            return (0, len(s.peekbuf) + (len(c.rq) if c is not None else 0))
        if req == SIOCOUTQ:
            return (0, len(c.wq) if c is not None else 0)
        if req == FIONBIO:
            s.nonblock = bool(arg)
            return (0, arg)
        raise Fail(errno.ENOTTY)

    def _revents(self, fd, events):
        s = self.socks.get(fd)
        if s is None:
            return POLLNVAL
        r = 0
        if s.listening:
            if s.conv.incall:
                r |= POLLIN | POLLRDNORM
        else:
            if s.error:
                r |= POLLERR
            if s.dead:
                r |= POLLHUP | POLLIN | POLLRDNORM | POLLRDHUP
            elif s.connected:
                c = s.conv
                st = self._state(s)
                if self._readable(s):
                    r |= POLLIN | POLLRDNORM
                if st == Close_wait or s.eof or s.shut_rd:
                    r |= POLLRDHUP
                if st in (Established, Close_wait) and not s.shut_wr and not c.wq.flow:
                    r |= POLLOUT | POLLWRNORM
                if s.shut_wr and (s.eof or st in (Closed, Time_wait, Last_ack, Closing)):
                    r |= POLLHUP
            elif not s.connecting:
                r |= POLLHUP | POLLOUT | POLLWRNORM
        return r & (events | POLLERR | POLLHUP | POLLNVAL)

    @_entry
    def poll(self, fds, timeout):
        """fds: [(fd, events)]; returns (n, [revents])."""
        def ready():
            return [self._revents(fd, ev) for fd, ev in fds]

        r = ready()
        if any(r) or timeout == 0:
            return sum(1 for x in r if x), r
        deadline = None if timeout < 0 else self.now_us + timeout * 1000
        pred = lambda: any(ready()) or (deadline is not None and self.now_us >= deadline)
        if threading.get_ident() == self.main and deadline is not None:
            while not pred():
                d = self.fs.nextdeadline()
                nxt = deadline if d is None else min(deadline, self._deadline_us(d))
                self._advance_to(max(nxt, self.now_us + 1))
        else:
            self._block(None, pred, "poll")
        r = ready()
        return sum(1 for x in r if x), r

    def free(self):
        with self.cv:
            for fd in list(self.socks):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self.socks.clear()
