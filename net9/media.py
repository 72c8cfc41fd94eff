"""net9's media: what an IP interface (net9.ip's Ipifc) sends datagrams
through and receives them from.  devip calls these Medium (ip.h); net9's
have no link-level header (hsize 0) since they all carry bare IP datagrams.

Every medium has

  .name        the medium type, as ipifc status shows it ("tun", "loopback",
               "pair")
  .maxtu       largest datagram it carries (the interface MTU), .mintu the
               smallest MTU it can be set to, .hsize the link header (0)
  .transmit(pkt)   send one datagram (bytes-like); never blocks: when the
               device is full the datagram is dropped and counted
  .fileno()    a descriptor that polls readable when receive() has
               something, or None for in-process media (then .pending() says
               whether receive() has something)
  .receive()   every datagram waiting, as a list of bytes (possibly empty)
  .deadline()  monotonic time (s) by which receive() must be called again
               (only the FaultyMedium wrapper has one), or None
  .close()
  .stats()     a dict of counters (inpackets, outpackets, outdrops, ...)
  .gso         the largest TCP datagram transmit_gso() takes (0: none)
  .transmit_gso(pkt, mss)  send one TCP super-packet (one IP and TCP
               header, the payload of several segments) for the medium to
               cut into segments of mss payload bytes (segmentation
               offload)
  .rxgso       after receive(), None or a list as long as what it returned:
               for each datagram, the segment size of a TCP super-packet
               (receive offload), else 0

Optional: .unbindonclose (devip's: the interface goes when its
conversation's files are all closed), .pktin(pkt) (a datagram written to
the interface's data file), .setlinkmtu(mtu) (the far end's MTU follows
the interface's).

Media:

  Tun(name="net9", mtu=1500, ...)   a Linux TUN device (IFF_TUN|IFF_NO_PI,
               non-blocking), created or attached, the Linux side configured
               through netlink (pyroute2): link up, MTU, host addresses,
               routes; optionally inside a network namespace
  Loopback()   devip's loopback medium: what is sent comes back in
  PktMedium(ifc)  devip's pkt medium: what is sent is read from the
               interface's data file, what is written there comes in
  Link()       two ends (a, b) joining two stacks in one process (medium
               type "pair")

Wrappers any medium can wear (they pass everything else through):

  Capture(medium, path)   writes a pcap file (LINKTYPE_RAW) of both
               directions, readable by tshark and Wireshark; read_pcap()
               parses one back
  FaultyMedium(medium, loss=, reorder=, dup=, corrupt=, delay=, seed=)
               or FaultyMedium(medium, net9.faults.Faults(...)): drops,
               reorders, duplicates, corrupts and delays datagrams
               in either or both directions, deterministically for a seed
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import errno
import fcntl
import heapq
import ipaddress
import os
import random
import struct
import time
from typing import Callable, Iterable, Optional

from net9.faults import Faults

try:
    from net9 import tun as _tun          # Cython read/write loop
except ImportError:                        # pragma: no cover - unbuilt tree
    _tun = None

__all__ = ["Medium", "Tun", "Loopback", "PktMedium", "Link", "LinkEnd", "Capture",
           "FaultyMedium", "read_pcap", "innetns", "TUN_MINMTU", "TUN_MAXMTU",
           "LINKTYPE_RAW", "p9error"]

# linux/if_tun.h
TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
TUNSETOFFLOAD = 0x400454D0
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
TUN_GSOMAX = 65535         # the largest datagram handed over whole with offloads
IFNAMSIZ = 16
CLONE_NEWNET = 0x40000000
IFA_F_NODAD = 0x02

TUN_MINMTU = 576           # the smallest MTU an IPv4 host must accept
TUN_MAXMTU = 65535         # the largest an IP datagram can be
IPV6_MINMTU = 1280         # Linux disables IPv6 on links below it

READ_BUDGET = 4096         # datagrams one receive() takes at most

LINKTYPE_RAW = 101         # pcap: bare IPv4/IPv6 datagrams


class Medium:
    """The shape every medium has; subclasses fill in the I/O."""

    name = "medium"
    hsize = 0
    mintu = 0
    maxtu = 0
    gso = 0
    rxgso = None

    def __init__(self):
        self.inpackets = 0
        self.outpackets = 0
        self.outdrops = 0          # dropped because the device was full
        self.outerrs = 0           # other write errors

    def transmit(self, pkt) -> None:
        raise NotImplementedError

    def transmit_gso(self, pkt, mss: int) -> None:
        raise NotImplementedError("%s has no segmentation offload" % self.name)

    def receive(self) -> list:
        return []

    def fileno(self) -> Optional[int]:
        return None

    def pending(self) -> bool:
        return False

    def deadline(self) -> Optional[float]:
        return None

    def close(self) -> None:
        pass

    def stats(self) -> dict:
        return {"inpackets": self.inpackets, "outpackets": self.outpackets,
                "outdrops": self.outdrops, "outerrs": self.outerrs}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<%s %s maxtu %d>" % (type(self).__name__, self.name, self.maxtu)


# ---------------------------------------------------------------- namespaces

_libc = None


def _setns(fd: int) -> None:
    global _libc
    if hasattr(os, "setns"):
        os.setns(fd, CLONE_NEWNET)
        return
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: " + os.strerror(e))


def _nspath(netns: str) -> str:
    return netns if "/" in netns else os.path.join("/var/run/netns", netns)


@contextlib.contextmanager
def innetns(netns: Optional[str]):
    """Run the body with the calling thread in network namespace netns (a
    name under /var/run/netns or a path); None: stay where we are.
    Descriptors opened inside (sockets, /dev/net/tun) stay in that namespace
    after the thread switches back."""
    if netns is None:
        yield
        return
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        there = os.open(_nspath(netns), os.O_RDONLY)
        try:
            _setns(there)
        finally:
            os.close(there)
        try:
            yield
        finally:
            _setns(here)
    finally:
        os.close(here)


def _iproute(netns: Optional[str]):
    try:
        from pyroute2 import IPRoute
    except ImportError as e:          # pragma: no cover
        raise RuntimeError("net9.media.Tun configures Linux through pyroute2: "
                           "pip install pyroute2") from e
    if netns is None:
        return IPRoute()
    # Opening the netlink socket inside the namespace binds it there
    with innetns(netns):
        return IPRoute()


def _prefix(s: str):
    """"10.9.0.1/24" -> (version, "10.9.0.1", 24); a bare address gets the
    host prefix."""
    iface = ipaddress.ip_interface(s)
    return iface.version, str(iface.ip), iface.network.prefixlen


# ---------------------------------------------------------------- TUN

class Tun(Medium):
    """A Linux TUN device carrying bare IP datagrams.

    Tun(name="net9", mtu=1500, create=True, host_addrs=(), routes=(),
        netns=None, txqueuelen=None, configure=True)

    name: the Linux interface.  create: make it if it does not exist (an
    existing one, e.g. a persistent device, is attached to); create=False
    only attaches and fails if there is none.  The Linux side is then
    configured through netlink (unless configure=False): link up, MTU
    (576..65535), host_addrs (["10.9.0.1/24", "fd09::1/64"]: Linux's own
    addresses on the link; IPv6 ones without duplicate address detection,
    and left out, listed in .skipped_addrs, below MTU 1280 where Linux has
    no IPv6)
    and routes (["10.99.0.0/16", ...] or dicts of pyroute2 route arguments)
    through the device.  netns: the namespace (name or path) the device is
    opened and configured in.  close() removes an interface this object
    created."""

    name = "tun"
    hsize = 0
    mintu = TUN_MINMTU

    def __init__(self, name: str = "net9", mtu: int = 1500, create: bool = True,
                 host_addrs: Iterable[str] = (), routes: Iterable = (),
                 netns: Optional[str] = None, txqueuelen: Optional[int] = None,
                 configure: bool = True, budget: int = READ_BUDGET, offload: bool = False):
        super().__init__()
        if not TUN_MINMTU <= mtu <= TUN_MAXMTU:
            raise ValueError("tun mtu %d not in %d..%d" % (mtu, TUN_MINMTU, TUN_MAXMTU))
        if len(name.encode()) >= IFNAMSIZ:
            raise ValueError("interface name too long: %r" % name)
        self.dev = name
        self.netns = netns
        self.maxtu = mtu
        self.budget = budget
        self.fd = -1
        self.created = False
        self.ifindex = None
        self.host_addrs = list(host_addrs)
        self.skipped_addrs = []        # IPv6 host addresses below MTU 1280
        ipr = _iproute(netns)
        try:
            existed = bool(ipr.link_lookup(ifname=name))
            if not existed and not create:
                raise FileNotFoundError(errno.ENODEV, "no interface %s" % name)
            self.offload = False
            with innetns(netns):
                fd = -1
                if offload and _tun is not None:
                    fd = self._open_offload(name)
                if fd < 0:
                    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
                    try:
                        ifr = struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI)
                        fcntl.ioctl(fd, TUNSETIFF, ifr)
                    except BaseException:
                        os.close(fd)
                        raise
            self.fd = fd
            self.created = not existed
            idx = ipr.link_lookup(ifname=name)
            if not idx:
                raise OSError(errno.ENODEV, "tun %s vanished" % name)
            self.ifindex = idx[0]
            if configure:
                self._configure(ipr, mtu, txqueuelen, self.host_addrs, routes)
        except BaseException:
            ipr.close()
            self.close()
            raise
        ipr.close()

    def _open_offload(self, name) -> int:
        """The TUN with IFF_VNET_HDR and TUNSETOFFLOAD(CSUM|TSO4|TSO6): Linux
        hands over TCP super-packets of up to 64 KiB with their checksums
        left partial, and takes ours whole, cutting them into segments
        itself.  -1 when the kernel (or an existing device's flags) will
        not have it."""
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            ifr = struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI | IFF_VNET_HDR)
            fcntl.ioctl(fd, TUNSETIFF, ifr)
            fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
        except OSError:
            os.close(fd)
            return -1
        except BaseException:
            os.close(fd)
            raise
        self.offload = True
        self.gso = TUN_GSOMAX
        return fd

    def _configure(self, ipr, mtu, txqueuelen, host_addrs, routes):
        kw = {"index": self.ifindex, "mtu": mtu}
        if txqueuelen is not None:
            kw["txqlen"] = txqueuelen
        ipr.link("set", **kw)
        ipr.link("set", index=self.ifindex, state="up")
        for a in host_addrs:
            ver, addr, plen = _prefix(a)
            if ver == 6 and mtu < IPV6_MINMTU:
                self.skipped_addrs.append(a)
                continue
            args = {"index": self.ifindex, "address": addr, "prefixlen": plen}
            if ver == 6:
                args["flags"] = IFA_F_NODAD
            ipr.addr("add", **args)
        for r in routes:
            if isinstance(r, dict):
                args = dict(r)
            else:
                args = {"dst": str(ipaddress.ip_network(r, strict=False))}
            args.setdefault("oif", self.ifindex)
            ipr.route("add", **args)

    def setmtu(self, mtu: int) -> None:
        """Change the MTU on both sides (576..65535)."""
        self.setlinkmtu(mtu)
        self.maxtu = mtu

    def setlinkmtu(self, mtu: int) -> None:
        """Linux's MTU on the device, the medium's maxtu unchanged (the
        interface's mtu message: 576..maxtu)."""
        if not TUN_MINMTU <= mtu <= TUN_MAXMTU:
            raise ValueError("tun mtu %d not in %d..%d" % (mtu, TUN_MINMTU, TUN_MAXMTU))
        ipr = _iproute(self.netns)
        try:
            ipr.link("set", index=self.ifindex, mtu=mtu)
        finally:
            ipr.close()

    def fileno(self) -> int:
        return self.fd

    if _tun is not None:
        def receive(self) -> list:
            if self.offload:
                g = []
                pkts = _tun.readpkts_vnet(self.fd, self.budget, g)
                self.rxgso = g
            else:
                pkts = _tun.readpkts(self.fd, self.budget)
            self.inpackets += len(pkts)
            return pkts

        def transmit(self, pkt) -> None:
            if self.offload:
                self._counted(_tun.writepkt_vnet(self.fd, pkt, 0))
            else:
                self._counted(_tun.writepkt(self.fd, pkt))

        def transmit_gso(self, pkt, mss: int) -> None:
            if not self.offload:
                raise NotImplementedError("TUN %s opened without offloads" % self.dev)
            self._counted(_tun.writepkt_vnet(self.fd, pkt, mss))

        def _counted(self, n: int) -> None:
            """Count a write's result: sent, dropped (EAGAIN: the device's
            queue is full) or failed."""
            if n >= 0:
                self.outpackets += 1
            elif n == -errno.EAGAIN:
                self.outdrops += 1
            else:
                self.outerrs += 1
    else:                                   # pragma: no cover
        def receive(self) -> list:
            out = []
            rd = os.read
            fd = self.fd
            try:
                while len(out) < self.budget:
                    out.append(rd(fd, 65540))
            except BlockingIOError:
                pass
            self.inpackets += len(out)
            return out

        def transmit(self, pkt) -> None:
            try:
                os.write(self.fd, pkt)
                self.outpackets += 1
            except BlockingIOError:
                self.outdrops += 1
            except OSError:
                self.outerrs += 1

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
            # a non-persistent device goes with its last descriptor; one
            # that was made persistent meanwhile is removed explicitly
            if self.created:
                try:
                    ipr = _iproute(self.netns)
                except OSError:
                    return
                try:
                    if ipr.link_lookup(ifname=self.dev):
                        ipr.link("del", ifname=self.dev)
                except Exception:
                    pass
                finally:
                    ipr.close()

    def __repr__(self):
        return "<Tun %s fd %d maxtu %d%s%s>" % (self.dev, self.fd, self.maxtu,
                                                " offload" if self.offload else "",
                                                " netns " + self.netns if self.netns else "")


# ---------------------------------------------------------------- loopback

class Loopback(Medium):
    """devip's loopback medium (loopbackmedium.c): maxtu 16 KB; what is
    transmitted is queued (at most 1 MB, beyond that dropped and counted as
    loopbackbwrite's outerr) and comes back from receive()."""

    name = "loopback"
    hsize = 0
    mintu = 0
    maxtu = 16 * 1024
    QLIMIT = 1024 * 1024

    def __init__(self):
        super().__init__()
        self.q = collections.deque()
        self.qbytes = 0

    def transmit(self, pkt) -> None:
        n = len(pkt)
        self.outpackets += 1
        if self.qbytes + n > self.QLIMIT:
            self.outerrs += 1
            return
        self.q.append(bytes(pkt))
        self.qbytes += n

    def receive(self) -> list:
        out = list(self.q)
        self.q.clear()
        self.qbytes = 0
        self.inpackets += len(out)
        return out

    def pending(self) -> bool:
        return bool(self.q)


# ---------------------------------------------------------------- pkt

class PktMedium(Medium):
    """devip's pkt medium (pktmedium.c) on the interface ifc (a net9.ip
    Ifc): maxtu 4 KB; what the interface transmits is queued on its
    conversation (ifc.pq, read from /net/ipifc/N/data one datagram per
    read, dropped when 192 KB wait); pktin(pkt), a write to that data
    file, is a datagram received (dropped while the interface has no
    address).  unbindonclose: the interface goes with the last close of
    its ctl and data files."""

    name = "pkt"
    hsize = 0
    mintu = 0
    maxtu = 4 * 1024
    unbindonclose = True

    def __init__(self, ifc):
        super().__init__()
        self.ifc = ifc

    def transmit(self, pkt) -> None:
        ifc = self.ifc
        if ifc is None or not ifc.pq.put(pkt):
            self.outdrops += 1
            return
        self.outpackets += 1

    def pktin(self, pkt) -> None:
        ifc = self.ifc
        if ifc is None or not ifc.lifcs:
            return
        self.inpackets += 1
        ifc.ip.input(ifc, pkt)

    def close(self) -> None:
        self.ifc = None

    def __repr__(self):
        return "<PktMedium %s>" % (self.ifc.x if self.ifc is not None else "closed")


# ---------------------------------------------------------------- errors

_P9ERRORS = {
    errno.ENOENT: "file does not exist",
    errno.EPERM: "permission denied",
    errno.EACCES: "permission denied",
    errno.EBUSY: "device or object already in use",
    errno.EEXIST: "file already exists",
    errno.EINVAL: "bad arg in system call",
    errno.ENODEV: "no free devices",
    errno.ENOMEM: "kernel allocate failed",
}


def p9error(e: BaseException) -> str:
    """An OSError (or other failure) as a Plan 9 style error text: the
    texts of port/error.h where there is one, else strerror in lower case."""
    if isinstance(e, OSError):
        en = e.errno
        if en is None and e.args and isinstance(e.args[0], int):
            en = e.args[0]
        if en in _P9ERRORS:
            return _P9ERRORS[en]
        if e.strerror:
            return e.strerror[:1].lower() + e.strerror[1:]
    s = str(e) or type(e).__name__
    return s[:1].lower() + s[1:]


# ---------------------------------------------------------------- link

class LinkEnd(Medium):
    """One end of a Link: transmit() queues for the other end's receive()."""

    name = "pair"
    hsize = 0
    mintu = 0

    def __init__(self, label: str, mtu: int, qlimit: int):
        super().__init__()
        self.label = label
        self.maxtu = mtu
        self.qlimit = qlimit
        self.q = collections.deque()
        self.peer: Optional[LinkEnd] = None

    def transmit(self, pkt) -> None:
        peer = self.peer
        if peer is None or len(peer.q) >= peer.qlimit:
            self.outdrops += 1
            return
        if len(pkt) > self.maxtu:
            self.outerrs += 1
            return
        peer.q.append(bytes(pkt))
        self.outpackets += 1

    def receive(self) -> list:
        out = list(self.q)
        self.q.clear()
        self.inpackets += len(out)
        return out

    def pending(self) -> bool:
        return bool(self.q)

    def close(self) -> None:
        if self.peer is not None:
            self.peer.peer = None
            self.peer = None
        self.q.clear()

    def __repr__(self):
        return "<LinkEnd %s maxtu %d>" % (self.label, self.maxtu)


class Link:
    """Two media joined back to back in one process, a cable with its two
    ends: what .a transmits .b receives and the other way round.
    a, b = Link(mtu=1500).  (Its medium type stays "pair".)  Each end
    holds at most qlimit datagrams (drop-tail beyond, counted as the
    sender's outdrops); datagrams larger than mtu are refused (outerrs)."""

    def __init__(self, mtu: int = 1500, qlimit: int = 4096, label: str = "pair"):
        self.a = LinkEnd(label + ".a", mtu, qlimit)
        self.b = LinkEnd(label + ".b", mtu, qlimit)
        self.a.peer = self.b
        self.b.peer = self.a

    def __iter__(self):
        return iter((self.a, self.b))

    def close(self):
        self.a.close()
        self.b.close()


# ---------------------------------------------------------------- wrappers

class Wrapper(Medium):
    """A medium around another: everything not overridden passes through."""

    def __init__(self, medium):
        # no Medium.__init__: the counters are the inner medium's
        self.medium = medium

    def __getattr__(self, attr):
        return getattr(self.__dict__["medium"], attr)

    name = property(lambda self: self.medium.name)
    maxtu = property(lambda self: self.medium.maxtu)
    mintu = property(lambda self: self.medium.mintu)
    hsize = property(lambda self: self.medium.hsize)
    gso = property(lambda self: self.medium.gso)
    rxgso = property(lambda self: self.medium.rxgso)

    def transmit(self, pkt) -> None:
        self.medium.transmit(pkt)

    def transmit_gso(self, pkt, mss: int) -> None:
        self.medium.transmit_gso(pkt, mss)

    def receive(self) -> list:
        return self.medium.receive()

    def fileno(self):
        return self.medium.fileno()

    def pending(self) -> bool:
        return self.medium.pending()

    def deadline(self):
        return self.medium.deadline()

    def close(self) -> None:
        self.medium.close()

    def stats(self) -> dict:
        return self.medium.stats()

    def __repr__(self):
        return "<%s %r>" % (type(self).__name__, self.medium)


_PCAP_HDR = struct.Struct("<IHHiIII")
_PCAP_REC = struct.Struct("<IIII")
PCAP_MAGIC = 0xA1B2C3D4


class Capture(Wrapper):
    """Capture(medium, path, snaplen=65535): writes every datagram the
    medium transmits and receives to a pcap file (microsecond timestamps,
    LINKTYPE_RAW: each record is a bare IPv4 or IPv6 datagram).  The file is
    complete after flush() or close().  .packets counts the records."""

    def __init__(self, medium, path, snaplen: int = 65535, clock: Callable[[], int] = time.time_ns):
        super().__init__(medium)
        self.path = path
        self.snaplen = snaplen
        self.clock = clock
        self.packets = 0
        self.file = open(path, "wb", buffering=1 << 20)
        self.file.write(_PCAP_HDR.pack(PCAP_MAGIC, 2, 4, 0, 0, snaplen, LINKTYPE_RAW))

    def _record(self, pkt) -> None:
        f = self.file
        if f is None:
            return
        t = self.clock()
        n = len(pkt)
        cap = n if n <= self.snaplen else self.snaplen
        f.write(_PCAP_REC.pack(t // 1_000_000_000, (t // 1000) % 1_000_000, cap, n))
        f.write(pkt if cap == n else memoryview(pkt)[:cap])
        self.packets += 1

    def transmit(self, pkt) -> None:
        self._record(pkt)
        self.medium.transmit(pkt)

    def transmit_gso(self, pkt, mss: int) -> None:
        # recorded as it crosses the TUN: one super-packet (tshark shows it
        # as one large segment)
        self._record(pkt)
        self.medium.transmit_gso(pkt, mss)

    def receive(self) -> list:
        pkts = self.medium.receive()
        for p in pkts:
            self._record(p)
        return pkts

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        self.medium.close()


def read_pcap(path) -> list:
    """Parse a pcap file written by Capture (or any microsecond pcap):
    [(seconds float, original length, bytes)].  Raises ValueError when the
    file is not a LINKTYPE_RAW pcap."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < _PCAP_HDR.size:
        raise ValueError("short pcap header")
    magic, vmaj, vmin, _, _, snaplen, link = _PCAP_HDR.unpack_from(data, 0)
    if magic != PCAP_MAGIC or (vmaj, vmin) != (2, 4):
        raise ValueError("not a little-endian microsecond pcap 2.4 file")
    if link != LINKTYPE_RAW:
        raise ValueError("link type %d, not LINKTYPE_RAW" % link)
    out = []
    off = _PCAP_HDR.size
    while off < len(data):
        if off + _PCAP_REC.size > len(data):
            raise ValueError("truncated record header at %d" % off)
        sec, usec, cap, orig = _PCAP_REC.unpack_from(data, off)
        off += _PCAP_REC.size
        if cap > snaplen or off + cap > len(data) or usec >= 1_000_000:
            raise ValueError("bad record at %d" % (off - _PCAP_REC.size))
        out.append((sec + usec / 1e6, orig, data[off:off + cap]))
        off += cap
    return out


class _Dir:
    """Fault state of one direction."""

    def __init__(self, seed, tag):
        self.rng = random.Random("%s/%s" % (seed, tag))
        self.heap = []             # (release time, seq, pkt)
        self.seq = 0
        self.passed = 0
        self.lost = 0
        self.duplicated = 0
        self.reordered = 0
        self.corrupted = 0
        self.delayed = 0

    def counters(self) -> dict:
        return {"passed": self.passed, "lost": self.lost, "duplicated": self.duplicated,
                "reordered": self.reordered, "corrupted": self.corrupted,
                "delayed": self.delayed}


class FaultyMedium(Wrapper):
    """FaultyMedium(medium, faults=None, *, seed=0, direction="both",
    clock=time.monotonic, loss=0, reorder=0, dup=0, corrupt=0, delay=0,
    reorder_delay=10)

    A medium under a fault model (net9.faults.Faults: given whole, or as
    its fields; here delay defaults to 0 and jitter, bandwidth and
    queue_limit are not supported).  Per datagram and direction ("in": what
    the medium received, "out": what is transmitted, "both"): loss drops
    it; corrupt flips one random bit; reorder holds it reorder_delay ms
    longer than the others so later ones overtake it; dup delivers it
    twice; delay (ms) holds every datagram that long.  Each direction draws
    from its own random.Random seeded from seed, the same number of draws
    for every datagram, so a seed and the same sequence of datagrams give
    the same faults.  Held datagrams leave when receive() is called at or
    after deadline() (the event loop does that)."""

    rxgso = None               # receive() drops and reorders: no segment sizes

    def __init__(self, medium: Medium, faults: Optional[Faults] = None, *, seed=0,
                 direction: str = "both", clock: Callable[[], float] = time.monotonic,
                 **fields):
        super().__init__(medium)
        if direction not in ("both", "in", "out"):
            raise ValueError("direction must be both, in or out")
        if faults is None:
            fields.setdefault("delay", 0)
            unknown = set(fields) - set(Faults.fieldnames())
            if unknown:
                raise TypeError("unknown fault field(s): %s" % ", ".join(sorted(unknown)))
            faults = Faults(**fields)
        elif fields:
            raise TypeError("give a Faults or its fields, not both")
        if faults.jitter or faults.bandwidth is not None or faults.queue_limit is not None:
            raise ValueError("FaultyMedium has no jitter, bandwidth or queue_limit")
        self.faults = faults.check()
        self.loss = faults.loss
        self.reorder = faults.reorder
        self.dup = faults.dup
        self.corrupt = faults.corrupt
        self.delay = faults.delay
        self.reorder_delay = faults.reorder_delay
        self.direction = direction
        self.clock = clock
        self.din = _Dir(seed, "in") if direction in ("both", "in") else None
        self.dout = _Dir(seed, "out") if direction in ("both", "out") else None

    def _decide(self, d: _Dir, pkt) -> list:
        """[(hold ms, datagram)] for one datagram: empty if lost."""
        rng = d.rng
        r_loss, r_corrupt, r_reorder, r_dup, r_bit = (rng.random(), rng.random(), rng.random(),
                                                      rng.random(), rng.random())
        if r_loss < self.loss:
            d.lost += 1
            return []
        if r_corrupt < self.corrupt and len(pkt) > 0:
            b = bytearray(pkt)
            bit = int(r_bit * len(b) * 8)
            b[bit >> 3] ^= 1 << (bit & 7)
            pkt = bytes(b)
            d.corrupted += 1
        hold = self.delay
        if r_reorder < self.reorder:
            hold += self.reorder_delay
            d.reordered += 1
        d.passed += 1
        if r_dup < self.dup:
            d.duplicated += 1
            return [(hold, pkt), (hold, pkt)]
        return [(hold, pkt)]

    def _hold(self, d: _Dir, now: float, hold: float, pkt) -> None:
        d.delayed += 1
        d.seq += 1
        heapq.heappush(d.heap, (now + hold / 1000.0, d.seq, pkt))

    @staticmethod
    def _due(d: _Dir, now: float) -> list:
        out = []
        h = d.heap
        while h and h[0][0] <= now:
            out.append(heapq.heappop(h)[2])
        return out

    def transmit(self, pkt) -> None:
        self.transmit_gso(pkt, 0)

    def transmit_gso(self, pkt, mss: int) -> None:
        """(mss 0: an ordinary datagram.)  A super-packet meets its faults
        whole, as one datagram."""
        d = self.dout
        if d is None:
            self._send(pkt, mss)
            return
        now = None
        for hold, p in self._decide(d, pkt):
            if hold <= 0:
                self._send(p, mss)
            else:
                if now is None:
                    now = self.clock()
                self._hold(d, now, hold, (p, mss))

    def _send(self, pkt, mss) -> None:
        if mss:
            self.medium.transmit_gso(pkt, mss)
        else:
            self.medium.transmit(pkt)

    def receive(self) -> list:
        now = self.clock()
        d = self.dout
        if d is not None and d.heap:
            for p, mss in self._due(d, now):
                self._send(p, mss)
        pkts = self.medium.receive()
        d = self.din
        if d is None:
            return pkts
        out = self._due(d, now) if d.heap else []
        for pkt in pkts:
            for hold, p in self._decide(d, pkt):
                if hold <= 0:
                    out.append(p)
                else:
                    self._hold(d, now, hold, p)
        return out

    def pending(self) -> bool:
        if self.medium.pending():
            return True
        now = None
        for d in (self.din, self.dout):
            if d is not None and d.heap:
                if now is None:
                    now = self.clock()
                if d.heap[0][0] <= now:
                    return True
        return False

    def deadline(self):
        best = self.medium.deadline()
        for d in (self.din, self.dout):
            if d is not None and d.heap:
                t = d.heap[0][0]
                if best is None or t < best:
                    best = t
        return best

    def counters(self) -> dict:
        """{"in": {...}, "out": {...}} for the directions with faults."""
        out = {}
        if self.din is not None:
            out["in"] = self.din.counters()
        if self.dout is not None:
            out["out"] = self.dout.counters()
        return out
