"""One event loop owns a net9 stack: media readiness, the engines' timers
and, later, the 9P server.

  Loop        a selectors loop with asyncio-like hooks: add_reader /
              remove_reader / add_writer / remove_writer, call_soon,
              call_soon_threadsafe, call_later / call_at (Handle.cancel()),
              run(until=, timeout=), run_once(), stop().  Sources (stacks)
              plug into every iteration.
  Stack       Fs + Ip + TCP + ICMP and the media: a TUN (optionally in a
              network namespace, optionally wearing Capture and FaultyMedium), the
              loopback medium, or any medium given.  Received datagrams go
              to ip.input; fs timers run from fs.nextdeadline() with fs.now
              = ms since the stack started (time.monotonic); woken
              conversations are dispatched to watchers and wake hooks;
              memory goes back (fs.trim() about once a second while
              queues move data, then glibc's malloc_trim).
  StackConn, Listener  blocking-style helpers for tests and tools: they drive
              the loop (in the calling thread) until their condition holds
              or a timeout passes; nothing ever blocks in a system call.

Example::

    st = Stack(tun="net9", addrs=["10.9.0.2/24"], host_addrs=["10.9.0.1/24"])
    c = st.dial("10.9.0.1!80")            # StackConn, connected
    c.write(b"GET / HTTP/1.0\\r\\n\\r\\n")
    body = c.readall(timeout=30)
    st.close()

The engines are not thread-safe: everything touching a stack runs in the
loop's thread; other threads use loop.call_soon_threadsafe().
"""

from __future__ import annotations

import heapq
import ipaddress
import os
import selectors
import threading
import time
import traceback
import weakref
from collections import deque
from typing import Callable, Iterable, Optional

from net9 import media as _media
from net9.errors import Net9Error

__all__ = ["Loop", "Handle", "Stack", "StackConn", "Conn", "Listener", "parse_addr"]

_MASK32 = 0xFFFFFFFF
_LOGIP = 1 << 1                  # netlog's Logip

TRIM_INTERVAL = 1.0              # seconds between fs.trim() sweeps while there is work
HEAPTRIM_BYTES = 1 << 20         # queue bytes given back before malloc_trim is worth it


def _heaptrimmer():
    """glibc's malloc_trim as a callable(pad), or None (another C
    library): freed memory in the middle of the heap goes back to the
    system only through it."""
    try:
        import ctypes
        fn = ctypes.CDLL(None).malloc_trim
    except (ImportError, OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


malloc_trim = _heaptrimmer()


class Handle:
    """A scheduled callback; cancel() stops it from running."""

    __slots__ = ("fn", "args", "when", "cancelled")

    def __init__(self, fn, args, when=None):
        self.fn = fn
        self.args = args
        self.when = when
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other):
        return self.when < other.when


class Loop:
    """A selectors event loop.  Times are time.monotonic() seconds."""

    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self._ready: deque = deque()
        self._timers: list = []        # heap of Handles by .when
        self._sources: list = []       # objects with _prepare(now) and _service()
        self._stopping = False
        self._thread = None            # the thread inside run(), if any
        self._wr, self._ww = os.pipe()
        os.set_blocking(self._wr, False)
        os.set_blocking(self._ww, False)
        self._threadsafe: deque = deque()
        self.sel.register(self._wr, selectors.EVENT_READ, (self._drain_wakeup, None))
        self.closed = False

    # -- time and callbacks ------------------------------------------------

    @staticmethod
    def time() -> float:
        return time.monotonic()

    def call_soon(self, fn: Callable, *args) -> Handle:
        h = Handle(fn, args)
        self._ready.append(h)
        return h

    def call_soon_threadsafe(self, fn: Callable, *args) -> Handle:
        h = Handle(fn, args)
        self._threadsafe.append(h)
        try:
            os.write(self._ww, b"x")
        except (BlockingIOError, OSError):
            pass                       # pipe full: a wake-up is pending anyway
        return h

    def call_at(self, when: float, fn: Callable, *args) -> Handle:
        h = Handle(fn, args, when)
        heapq.heappush(self._timers, h)
        return h

    def call_later(self, delay: float, fn: Callable, *args) -> Handle:
        return self.call_at(time.monotonic() + delay, fn, *args)

    def _drain_wakeup(self, _arg=None):
        try:
            while os.read(self._wr, 4096):
                pass
        except BlockingIOError:
            pass
        while self._threadsafe:
            self._ready.append(self._threadsafe.popleft())

    # -- descriptors -------------------------------------------------------

    def _update(self, fd, mask, data):
        if mask:
            try:
                self.sel.modify(fd, mask, data)
            except KeyError:
                self.sel.register(fd, mask, data)
        else:
            try:
                self.sel.unregister(fd)
            except KeyError:
                pass

    def _get(self, fd):
        try:
            key = self.sel.get_key(fd)
        except KeyError:
            return 0, (None, None)
        return key.events, key.data

    def add_reader(self, fd, fn: Callable, *args) -> None:
        """Call fn(*args) whenever fd is readable."""
        mask, (r, w) = self._get(fd)
        self._update(fd, mask | selectors.EVENT_READ, (Handle(fn, args), w))

    def remove_reader(self, fd) -> bool:
        mask, (r, w) = self._get(fd)
        if not mask & selectors.EVENT_READ:
            return False
        self._update(fd, mask & ~selectors.EVENT_READ, (None, w))
        return True

    def add_writer(self, fd, fn: Callable, *args) -> None:
        """Call fn(*args) whenever fd is writable."""
        mask, (r, w) = self._get(fd)
        self._update(fd, mask | selectors.EVENT_WRITE, (r, Handle(fn, args)))

    def remove_writer(self, fd) -> bool:
        mask, (r, w) = self._get(fd)
        if not mask & selectors.EVENT_WRITE:
            return False
        self._update(fd, mask & ~selectors.EVENT_WRITE, (r, None))
        return True

    # -- sources (stacks) --------------------------------------------------

    def add_source(self, src) -> None:
        """src._prepare(now) -> seconds until it needs service (None: only
        on events) and src._service() run on every iteration."""
        self._sources.append(src)

    def remove_source(self, src) -> None:
        if src in self._sources:
            self._sources.remove(src)

    # -- running -----------------------------------------------------------

    def run_once(self, timeout: Optional[float] = None) -> None:
        """One iteration: wait for descriptors (at most timeout seconds, less
        when a timer, a ready callback or a source needs it), then run what
        is due."""
        now = time.monotonic()
        if self._ready:
            timeout = 0
        if self._timers:
            while self._timers and self._timers[0].cancelled:
                heapq.heappop(self._timers)
            if self._timers:
                t = self._timers[0].when - now
                if timeout is None or t < timeout:
                    timeout = t
        for src in self._sources:
            t = src._prepare(now)
            if t is not None and (timeout is None or t < timeout):
                timeout = t
        if timeout is not None and timeout < 0:
            timeout = 0
        events = self.sel.select(timeout)
        for key, mask in events:
            if key.fd == self._wr:
                self._drain_wakeup()
                continue
            r, w = key.data
            if mask & selectors.EVENT_READ and r is not None and not r.cancelled:
                r.fn(*r.args)
            if mask & selectors.EVENT_WRITE and w is not None and not w.cancelled:
                w.fn(*w.args)
        for src in list(self._sources):
            src._service()
        if self._timers:
            now = time.monotonic()
            while self._timers and self._timers[0].when <= now:
                h = heapq.heappop(self._timers)
                if not h.cancelled:
                    self._ready.append(h)
        n = len(self._ready)
        while n > 0 and self._ready:
            h = self._ready.popleft()
            n -= 1
            if not h.cancelled:
                h.fn(*h.args)
        # sources see the effect of callbacks (e.g. writes) at once
        if self._sources:
            for src in list(self._sources):
                src._service()

    def run(self, until: Optional[Callable[[], bool]] = None,
            timeout: Optional[float] = None) -> bool:
        """Run until until() is true (True), stop() is called or timeout
        seconds pass (False).  until is checked before each iteration."""
        self._stopping = False
        self._thread = threading.get_ident()
        end = None if timeout is None else time.monotonic() + timeout
        try:
            while not self._stopping:
                if until is not None and until():
                    return True
                if end is None:
                    self.run_once(None if until is None else 0.05)
                else:
                    left = end - time.monotonic()
                    if left <= 0:
                        return bool(until()) if until is not None else False
                    self.run_once(min(left, 0.05) if until is not None else left)
            return bool(until()) if until is not None else False
        finally:
            self._thread = None

    def stop(self) -> None:
        """Make run() return after the current iteration (any thread)."""
        self._stopping = True
        if self._thread is not None and self._thread != threading.get_ident():
            try:
                os.write(self._ww, b"x")
            except OSError:
                pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.sel.close()
        os.close(self._wr)
        os.close(self._ww)


def parse_addr(s) -> tuple:
    """"10.9.0.2/24" -> ("10.9.0.2", 24); a bare address gets the host
    prefix (32 or 128)."""
    iface = ipaddress.ip_interface(str(s))
    return str(iface.ip), iface.network.prefixlen


def _make_ip(fs):
    from net9.ip import Ip
    return Ip(fs)


def _make_icmp(fs):
    """Register ICMP (1) and ICMPv6 (58) unless the IP layer already did."""
    try:
        import net9.icmp as icmp
    except ImportError:
        return []
    made = []
    for proto, names in ((1, ("IcmpProto", "Icmp")), (58, ("Icmp6Proto", "Icmp6"))):
        if fs.ipproto[proto] is not None:
            made.append(fs.ipproto[proto])
            continue
        for n in names:
            cls = getattr(icmp, n, None)
            if cls is not None:
                made.append(cls(fs))
                break
    return made


class Stack:
    """A net9 stack and its media on an event loop.

    Stack(tun="net9", addrs=["10.9.0.2/24", "fd09::2/64"],
          host_addrs=["10.9.0.1/24", "fd09::1/64"], mtu=1500, pcap=None,
          loopback=True, netns=None, routes=(), host_routes=(), faults=None,
          medium=None, loop=None, seed=None, strict=False, create=True)

    tun: the Linux TUN interface to create (or attach to); None for none.
    addrs: net9's addresses on it (each adds its network's route);
    host_addrs: Linux's addresses on the TUN.  netns: put the TUN in that
    network namespace (name or path).  routes: net9 routes, each
    (dst/prefix, gateway) or "dst/prefix" (through the TUN interface);
    host_routes: Linux routes through the TUN.  pcap: write a capture of the
    TUN there.  faults: dict of net9.media.FaultyMedium arguments applied to the
    TUN.  medium: use this medium (e.g. a Pair end) instead of a TUN.
    offload: open the TUN with Linux's offloads (checksums, TCP segmentation
    both ways: super-packets of up to 64 KiB cross it) where the kernel has
    them; st.tun.offload tells whether it did.
    tcp: the TCP profile of new conversations, "9front" (tcp.c exactly,
    the engine's default, as for TcpProto) or "modern" (net9 serve's
    default: make_stack in net9.cli passes it).
    loopback: add devip's loopback medium with 127.0.0.1/8 and ::1.
    loop: share an existing Loop (several stacks on one loop).  strict:
    exceptions from ip.input propagate (tests); otherwise they are counted
    (inputerrors) and logged to fs.log.

    .fs .ip .tcp .udp .icmp .loop .medium (the outermost TUN wrapper) .tun
    .ifc (its interface) .loifc  .now_ms()  run()/stop()/close()
    add_reader/remove_reader/call_soon/call_later (the loop's)
    watch(conv, fn) / unwatch(conv); wakehooks: fns called with each
    non-empty list of woken conversations.  trim(): the sweep that gives
    idle queues' buffers back (see Stack.trim; the loop runs it by itself);
    .heaptrims counts its malloc_trim calls.
    """

    def __init__(self, tun: Optional[str] = "net9",
                 addrs: Iterable[str] = ("10.9.0.2/24", "fd09::2/64"),
                 host_addrs: Iterable[str] = ("10.9.0.1/24", "fd09::1/64"),
                 mtu: int = 1500, pcap=None, loopback: bool = True,
                 netns: Optional[str] = None, routes: Iterable = (),
                 host_routes: Iterable = (), faults: Optional[dict] = None,
                 medium=None, loop: Optional[Loop] = None, seed=None,
                 strict: bool = False, create: bool = True, user: str = "none",
                 offload: bool = False, tcp: str = "9front"):
        from net9.conv import Fs
        from net9.tcp import TcpProto
        from net9.udp import UdpProto
        self.t0 = time.monotonic()
        self.fs = Fs(seed=seed, now=0, eve=user)
        self.ip = _make_ip(self.fs)
        if getattr(self.fs, "ip", None) is not self.ip:
            self.fs.ip = self.ip
        self.offload = offload
        self.tunmtu = mtu
        # media bound and unbound at run time (ipifc ctl "bind", "unbind"),
        # through a weak reference: no cycle between the stack and its IP
        # layer, so a stack dropped is freed at once, not by the collector
        me = weakref.ref(self)

        def hook(name):
            def call(*args):
                st = me()
                if st is not None:
                    return getattr(st, name)(*args)
                raise Net9Error("interface not found")
            return call
        self.ip.bindhook = hook("_bound")
        self.ip.unbindhook = hook("_unbound")
        self.ip.mediatypes.update({"pkt": hook("_mkpkt"), "loopback": hook("_mkloopback"),
                                   "tun": hook("_mktun")})
        self.tcp = TcpProto(self.fs, profile=tcp)
        self.udp = UdpProto(self.fs)
        self.icmp = _make_icmp(self.fs)
        self.user = user
        self.strict = strict
        self.inputerrors = 0
        self.mediumerrors = 0           # media that failed and were detached
        self.lasterror = None
        self.loop = loop if loop is not None else Loop()
        self._ownloop = loop is None
        self.media = []                # (medium, ifc)
        self._polled = []              # media without a descriptor
        self._watch = {}
        self.wakehooks = []
        self.tun = None
        self.medium = None
        self.ifc = None
        self.loifc = None
        self.closed = False
        self._trimnext = None          # monotonic time of the next trim sweep
        self._trimagain = 0            # queues busy at the last sweep
        self._trimmedat = 0            # trimmer.released at the last malloc_trim
        self.heaptrims = 0             # malloc_trim calls made
        try:
            if medium is None and tun is not None:
                medium = self.tun = _media.Tun(tun, mtu=mtu, create=create,
                                               host_addrs=host_addrs, routes=host_routes,
                                               netns=netns, offload=offload)
            if medium is not None:
                if faults:
                    medium = _media.FaultyMedium(medium, **faults)
                if pcap is not None:
                    medium = _media.Capture(medium, pcap)
                self.medium = medium
                self.ifc = self.attach(medium, addrs)
                for r in routes:
                    if isinstance(r, str):
                        dst, gate = r, None
                    else:
                        dst, gate = r
                    a, plen = parse_addr(dst)
                    self.ip.addroute(a, plen, gate, self.ifc)
            if loopback:
                self.loifc = self.attach(_media.Loopback(), ["127.0.0.1/8", "::1/128"])
        except BaseException:
            self.close()
            raise
        # with offloads Linux aggregates segments as GRO would; a burst of
        # datagrams read at once is acknowledged once per conversation
        # (TcpProto.pbatch), as a GRO receiver does: fewer ACK writes to
        # the TUN, each of which runs Linux's whole receive path
        self.batchacks = bool(self.tun is not None and getattr(self.tun, "offload", False))
        self.loop.add_source(self)

    # -- media -------------------------------------------------------------

    def attach(self, medium, addrs: Iterable[str] = ()):
        """Bind medium to a new interface with addrs; its datagrams go to
        ip.input from then on.  Returns the interface, whose device name
        (ipifc status) is the medium's dev (a TUN's interface name) or
        else its type."""
        ifc = self.ip.addifc(medium, getattr(medium, "dev", None) or None)
        for a in addrs:
            addr, plen = parse_addr(a)
            ifc.add(addr, plen)
        return ifc

    def _bound(self, ifc, medium) -> None:
        # ip.bindhook: a medium was bound (attach or an ipifc "bind")
        self.media.append((medium, ifc))
        fd = medium.fileno()
        if fd is not None and fd >= 0:
            self.loop.add_reader(fd, self._input, medium, ifc)
        self._polled.append((medium, ifc))     # pending() / deadline()

    def _unbound(self, ifc, medium) -> None:
        # ip.unbindhook: an "unbind" (or the last close of a pkt
        # interface): stop reading the medium and close it (a TUN net9
        # made goes away)
        self.detach(medium)
        self.media = [(m, i) for m, i in self.media if m is not medium]
        try:
            medium.close()
        except Exception as e:
            self.lasterror = e

    # -- media made by ipifc ctl "bind TYPE ..." (Ip.mediatypes) -------------

    def _mkpkt(self, ifc, argv):
        return _media.PktMedium(ifc)

    def _mkloopback(self, ifc, argv):
        return _media.Loopback()

    def _mktun(self, ifc, argv):
        """bind tun NAME [NETNS]: a TUN device NAME (made, or an idle one
        attached), in network namespace NETNS (a name under /var/run/netns
        or a path), link up with the stack's TUN MTU, with offloads when
        the stack has them; Linux's addresses and routes are the user's to
        set.  Errors in devip's style."""
        from net9.errors import Net9Error
        if len(argv) < 3 or len(argv) > 4:
            raise Net9Error("bad arg in system call")
        name = argv[2]
        if not (0 < len(name.encode()) < _media.IFNAMSIZ) or not all(
                c.isalnum() or c in "._-" for c in name) or not name.isascii():
            raise Net9Error("bad arg in system call")
        netns = argv[3] if len(argv) == 4 else None
        if netns is not None and not os.path.exists(_media._nspath(netns)):
            raise Net9Error("tun %s: netns %s: file does not exist" % (name, netns))
        if not os.path.exists("/dev/net/tun"):
            raise Net9Error("tun %s: /dev/net/tun: file does not exist" % name)
        try:
            return _media.Tun(name, mtu=self.tunmtu, create=True, netns=netns,
                              offload=self.offload)
        except Exception as e:
            raise Net9Error("tun %s: %s" % (name, _media.p9error(e))) from None

    def detach(self, medium) -> None:
        """Stop reading medium (its interface stays, and sends to it are
        still attempted)."""
        fd = medium.fileno()
        if fd is not None and fd >= 0:
            self.loop.remove_reader(fd)
        self._polled = [(m, i) for m, i in self._polled if m is not medium]

    def _input(self, medium, ifc) -> None:
        self.fs.now = self.now_ms()
        try:
            pkts = medium.receive()
        except OSError as e:
            # a dead device (e.g. the TUN deleted under us: EBADFD) stays
            # readable: stop polling it instead of spinning
            self.mediumerrors += 1
            self.lasterror = e
            self.detach(medium)
            log = self.fs.log
            if log.mask & _LOGIP:
                log.log(_LOGIP, "medium %s: %s; no longer read\n" % (getattr(medium, "name", "?"), e))
            if self.strict:
                raise
            return
        if not pkts:
            return
        ipinput = self.ip.input
        batch = self.batchacks and len(pkts) > 1
        if batch:
            self.tcp.pbatch(True)
        try:
            gsos = getattr(medium, "rxgso", None) if self.ip.iprouting else None
            if gsos is not None and len(gsos) == len(pkts) and any(gsos):
                # TCP super-packets from a TUN's receive offload: when they are
                # forwarded, their segment size goes along (to be cut to it or
                # passed on whole); delivered here, it is not needed
                self._inputgso(ifc, pkts, gsos)
                return
            if self.strict:
                for p in pkts:
                    ipinput(ifc, p)
                return
            for p in pkts:
                try:
                    ipinput(ifc, p)
                except Exception as e:
                    self._inputerror(e)
        finally:
            if batch:
                self.tcp.pbatch(False)

    def _inputgso(self, ifc, pkts, gsos) -> None:
        ipinput = self.ip.input
        for p, g in zip(pkts, gsos):
            if self.strict:
                ipinput(ifc, p, g)
                continue
            try:
                ipinput(ifc, p, g)
            except Exception as e:
                self._inputerror(e)

    def _inputerror(self, e) -> None:
        self.inputerrors += 1
        self.lasterror = e
        log = self.fs.log
        if log.mask & _LOGIP:
            log.log(_LOGIP, "ip input: %s\n" % traceback.format_exc(limit=3))

    # -- clock and loop source --------------------------------------------

    def now_ms(self) -> int:
        return int((time.monotonic() - self.t0) * 1000) & _MASK32

    def _prepare(self, now: float):
        """Seconds until this stack needs service, or None."""
        timeout = None
        for m, _ifc in self._polled:
            if m.pending():
                return 0
            d = m.deadline()
            if d is not None:
                t = d - now
                if timeout is None or t < timeout:
                    timeout = t
        if self._trimwanted():
            if self._trimnext is None:
                self._trimnext = now + TRIM_INTERVAL
            t = self._trimnext - now
            if timeout is None or t < timeout:
                timeout = t
        d = self.fs.nextdeadline()
        if d is not None:
            nowms = int((now - self.t0) * 1000) & _MASK32
            dt = (d - nowms) & _MASK32
            if dt >= 0x80000000:
                dt = 0
            t = dt / 1000.0
            if timeout is None or t < timeout:
                timeout = t
        return timeout

    def _service(self) -> None:
        for m, ifc in self._polled:
            if m.pending():
                self._input(m, ifc)
            else:
                d = m.deadline()
                if d is not None and d <= time.monotonic():
                    self._input(m, ifc)
        now = self.now_ms()
        fs = self.fs
        fs.now = now
        d = fs.nextdeadline()
        if d is not None and ((now - d) & _MASK32) < 0x80000000:
            fs.advance(now)
        if self._trimnext is not None and time.monotonic() >= self._trimnext:
            self.trim()
        if fs.woken:
            woken = fs.drain()
            watch = self._watch
            if watch:
                for c in woken:
                    fn = watch.get(c)
                    if fn is not None:
                        fn(c)
            for hook in self.wakehooks:
                hook(woken)

    # -- giving memory back ---------------------------------------------------

    def _trimwanted(self) -> bool:
        t = self.fs.trimmer
        return bool(t.busy or self._trimagain
                    or t.released - self._trimmedat >= HEAPTRIM_BYTES)

    def trim(self) -> None:
        """One sweep (the loop runs one about once a second while queues
        move data, and once more after): fs.trim() gives back the buffers
        of queues that stayed idle since the last sweep; when that or
        closing conversations freed a megabyte or more, malloc_trim(0)
        returns the heap's free pages to the system."""
        self._trimnext = None
        self._trimagain = self.fs.trim()
        t = self.fs.trimmer
        if t.released - self._trimmedat >= HEAPTRIM_BYTES:
            self._trimmedat = t.released
            if malloc_trim is not None:
                malloc_trim(0)
                self.heaptrims += 1

    # -- hooks for the layers above ------------------------------------------

    def watch(self, conv, fn: Callable) -> None:
        """Call fn(conv) whenever conv is woken (data, flow, connect done,
        incoming call, hang-up).  The caller sets conv.rq.rwait /
        conv.wq.wwait when it parks (see net9.qio)."""
        self._watch[conv] = fn

    def unwatch(self, conv) -> None:
        self._watch.pop(conv, None)

    def add_reader(self, fd, fn, *args):
        return self.loop.add_reader(fd, fn, *args)

    def remove_reader(self, fd):
        return self.loop.remove_reader(fd)

    def add_writer(self, fd, fn, *args):
        return self.loop.add_writer(fd, fn, *args)

    def remove_writer(self, fd):
        return self.loop.remove_writer(fd)

    def call_soon(self, fn, *args):
        return self.loop.call_soon(fn, *args)

    def call_soon_threadsafe(self, fn, *args):
        return self.loop.call_soon_threadsafe(fn, *args)

    def call_later(self, delay, fn, *args):
        return self.loop.call_later(delay, fn, *args)

    def run(self, until: Optional[Callable[[], bool]] = None,
            timeout: Optional[float] = None) -> bool:
        return self.loop.run(until=until, timeout=timeout)

    def stop(self) -> None:
        self.loop.stop()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.remove_source(self)
        for m, _ifc in self.media:
            fd = m.fileno()
            if fd is not None and fd >= 0:
                self.loop.remove_reader(fd)
            try:
                m.close()
            except Exception:
                pass
        if self.medium is not None and not any(m is self.medium for m, _ in self.media):
            self.medium.close()
        self.media = []
        self._polled = []
        if self._ownloop:
            self.loop.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- conversations -----------------------------------------------------

    def proto(self, name: str = "tcp"):
        return self.fs.protos[name]

    def dial(self, addr: str, proto: str = "tcp", timeout: float = 10.0,
             local: Optional[str] = None) -> "StackConn":
        """Connect a conversation to addr ("10.9.0.1!80") and drive the loop
        until it is connected.  Raises Net9Error (devip's text: "connection
        refused", "no route", ...) or TimeoutError."""
        p = self.fs.protos[proto]
        c = p.clone(self.user)
        try:
            p.ctl(c, "connect %s%s" % (addr, (" " + local) if local else ""))
            if not self.run(until=lambda: c.state != 3, timeout=timeout):
                raise TimeoutError("connect %s: still connecting after %gs" % (addr, timeout))
            p.connectresult(c)
        except BaseException:
            p.closeconv(c)
            raise
        return StackConn(self, p, c)

    def announce(self, addr: str, proto: str = "tcp") -> "Listener":
        """Announce addr ("8000" or "*!8000"): a Listener."""
        p = self.fs.protos[proto]
        c = p.clone(self.user)
        try:
            p.ctl(c, "announce %s" % addr)
        except BaseException:
            p.closeconv(c)
            raise
        return Listener(self, p, c)


class Listener:
    """An announced conversation; accept() drives the loop until a call."""

    def __init__(self, stack: Stack, p, c):
        self.stack, self.p, self.c = stack, p, c

    @property
    def port(self) -> int:
        return self.c.lport

    def accept(self, timeout: float = 10.0) -> "StackConn":
        c = self.c
        if not self.stack.run(until=lambda: bool(c.incall), timeout=timeout):
            raise TimeoutError("no call within %gs" % timeout)
        return StackConn(self.stack, self.p, self.p.takecall(c))

    def close(self) -> None:
        if self.c is not None:
            self.p.closeconv(self.c)
            self.c = None


class StackConn:
    """A connected conversation with loop-driving helpers (net9.stack.Conn is
    the same class)."""

    def __init__(self, stack: Stack, p, c):
        self.stack, self.p, self.c = stack, p, c

    def _readable(self) -> bool:
        rq = self.c.rq
        return len(rq) > 0 or rq.ishungup()

    def read(self, n: int = 65536, timeout: float = 10.0) -> bytes:
        """Up to n bytes; b"" at EOF; TimeoutError when nothing came."""
        d = self.p.read(self.c, n)
        if d is not None:
            return d
        if not self.stack.run(until=self._readable, timeout=timeout):
            raise TimeoutError("read: nothing within %gs" % timeout)
        d = self.p.read(self.c, n)
        return b"" if d is None else d

    def readall(self, timeout: float = 30.0, limit: Optional[int] = None,
                sink: Optional[Callable] = None) -> bytes:
        """Everything until EOF (within timeout seconds in all).  With sink,
        chunks go to sink(chunk) and b"" is returned."""
        end = time.monotonic() + timeout
        parts = []
        total = 0
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError("readall: no EOF after %d bytes in %gs" % (total, timeout))
            d = self.read(1 << 20, timeout=left)
            if not d:
                break
            total += len(d)
            if sink is not None:
                sink(d)
            else:
                parts.append(d)
            if limit is not None and total >= limit:
                break
        return b"".join(parts)

    def write(self, data, timeout: float = 30.0, chunk: int = 256 * 1024) -> int:
        """Queue all of data, chunk by chunk, driving the loop while the
        write queue is flow-controlled."""
        mv = memoryview(data)
        wq = self.c.wq
        end = time.monotonic() + timeout
        off = 0
        while off < len(mv):
            if wq.flow:
                left = end - time.monotonic()
                if left <= 0 or not self.stack.run(
                        until=lambda: not wq.flow or wq.ishungup(), timeout=left):
                    raise TimeoutError("write: flow-controlled after %d bytes" % off)
            self.p.write(self.c, mv[off:off + chunk])
            off += min(chunk, len(mv) - off)
        return off

    def drain(self, timeout: float = 30.0) -> bool:
        """Drive the loop until everything written is acknowledged."""
        wq = self.c.wq
        return self.stack.run(until=lambda: len(wq) == 0 or wq.ishungup(), timeout=timeout)

    def ctl(self, msg: str):
        return self.p.ctl(self.c, msg)

    def status(self) -> str:
        return self.p.status(self.c)

    def local(self) -> str:
        return self.p.localtext(self.c)

    def remote(self) -> str:
        return self.p.remotetext(self.c)

    def close(self) -> None:
        if self.c is not None:
            self.p.closeconv(self.c)
            self.c = None


Conn = StackConn          # the name before it had its own
