"""Test scaffolding for the 9P server: a server with its own stack running
in a background thread, and a raw 9P client for what the real clients
cannot send (Tflush, malformed input, many outstanding requests).

The stack is a net9.conv.Fs with TCP over LoopIp, an in-process loopback
IP layer (127.0.0.1 and ::1 are local; every datagram sent comes back in to
the same Fs on the next turn of the loop), so conversations can connect to
and announce on 127.0.0.1 without net9.ip.  Everything touching the engine
runs in the loop thread; tests use env.call(fn) to look at the state."""

from __future__ import annotations

import os
import selectors
import socket
import tempfile
import threading
import time
import queue

from net9 import ninep
from net9.conv import Fs, IpLayer
from net9.tcp import TcpProto
from net9.server import Server

V4 = b"\0" * 10 + b"\xff\xff"
LO4 = V4 + bytes([127, 0, 0, 1])
LO6 = b"\0" * 15 + b"\x01"
BLACKHOLE = bytes([192, 0, 2])     # 192.0.2.0/24 routes but nothing answers


class LoopIp(IpLayer):
    """Loopback only: datagrams come straight back in."""

    def __init__(self, fs, loop):
        self.fs = fs
        self.loop = loop
        self.sent = 0

    def ipoput(self, version, pkt, ttl, tos, rh):
        if version == 4 and pkt[16:19] == BLACKHOLE:
            return 0                   # routed, never answered
        dst = V4 + bytes(pkt[16:20]) if version == 4 else bytes(pkt[24:40])
        if not self.isself(dst):
            return -1                  # no route
        proto = pkt[9] if version == 4 else pkt[6]
        self.sent += 1
        self.loop.call_soon(self.fs.iput, proto, bytes(pkt))
        return 0

    def route(self, version, raddr, laddr):
        if self.isself(raddr) or raddr[12:15] == BLACKHOLE:
            return (16384, True)
        return None

    def findlocalip(self, raddr):
        if raddr == LO6:
            return LO6
        return LO4

    def isself(self, addr):
        return (addr[:12] == V4 and addr[12] == 127) or addr == LO6


class MiniLoop:
    """A selectors loop with the hooks the server needs, driving one Fs:
    its timers (fs.now = ms since start) and its wake-ups (server.woken)."""

    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.ready = []
        self.t0 = time.monotonic()
        self.fs = None
        self.wake = None
        self.stopping = False
        self.rp, self.wp = os.pipe()
        os.set_blocking(self.rp, False)
        self.sel.register(self.rp, selectors.EVENT_READ, None)
        self.calls = queue.Queue()

    def _set(self, fd, ev, slot, fn):
        try:
            key = self.sel.get_key(fd)
            r, w = key.data
            mask = key.events
        except KeyError:
            r = w = None
            mask = 0
        if slot == 0:
            r = fn
        else:
            w = fn
        mask = (selectors.EVENT_READ if r else 0) | (selectors.EVENT_WRITE if w else 0)
        try:
            if mask:
                self.sel.modify(fd, mask, (r, w))
            else:
                self.sel.unregister(fd)
        except KeyError:
            if mask:
                self.sel.register(fd, mask, (r, w))

    def add_reader(self, fd, fn, *args):
        self._set(fd, 0, 0, (lambda: fn(*args)))

    def remove_reader(self, fd):
        self._set(fd, 0, 0, None)

    def add_writer(self, fd, fn, *args):
        self._set(fd, 0, 1, (lambda: fn(*args)))

    def remove_writer(self, fd):
        self._set(fd, 0, 1, None)

    def call_soon(self, fn, *args):
        self.ready.append((fn, args))

    def threadsafe(self, fn):
        self.calls.put(fn)
        os.write(self.wp, b"x")

    def nowms(self):
        return int((time.monotonic() - self.t0) * 1000) & 0xFFFFFFFF

    def turn(self):
        fs = self.fs
        timeout = 0.2
        if self.ready:
            timeout = 0
        elif fs is not None:
            d = fs.nextdeadline()
            if d is not None:
                timeout = min(timeout, max(0, ((d - self.nowms()) & 0xFFFFFFFF) / 1000.0)
                              if ((d - self.nowms()) & 0xFFFFFFFF) < 0x80000000 else 0)
        for key, mask in self.sel.select(timeout):
            if key.fd == self.rp:
                try:
                    os.read(self.rp, 4096)
                except BlockingIOError:
                    pass
                while not self.calls.empty():
                    self.calls.get()()
                continue
            r, w = key.data
            if mask & selectors.EVENT_READ and r:
                r()
            if mask & selectors.EVENT_WRITE and w:
                w()
        rd, self.ready = self.ready, []
        for fn, args in rd:
            fn(*args)
        if fs is not None:
            now = self.nowms()
            fs.now = now
            d = fs.nextdeadline()
            if d is not None and ((now - d) & 0xFFFFFFFF) < 0x80000000:
                fs.advance(now)
            if fs.woken and self.wake is not None:
                self.wake(fs.drain())

    def run(self):
        while not self.stopping:
            self.turn()


class Env:
    """A running server: env.sock (unix path), env.port (tcp port)."""

    def __init__(self, eve="eve", msize=None, tcp=True, nc=None):
        self.loop = MiniLoop()
        self.fs = Fs(seed=1, eve=eve)
        self.ip = LoopIp(self.fs, self.loop)
        self.fs.ip = self.ip
        self.tcp = TcpProto(self.fs) if nc is None else TcpProto(self.fs, nc)
        self.loop.fs = self.fs
        self.dir = tempfile.mkdtemp(prefix="net9-9p-")
        kw = {}
        if msize is not None:
            kw["msize"] = msize
        self.logs = []
        self.server = Server(self.fs, self.loop, eve=eve, log=self.logs.append, **kw)
        self.loop.wake = self.server.woken
        self.sock = os.path.join(self.dir, "net9")
        self.server.listen("unix!" + self.sock)
        self.port = None
        if tcp:
            a = self.server.listen("tcp!127.0.0.1!0")
            self.port = int(a.split("!")[2])
        self.thread = threading.Thread(target=self.loop.run, daemon=True)
        self.thread.start()

    def call(self, fn, timeout=10):
        """Run fn() in the loop thread; return its result."""
        box = queue.Queue()

        def run():
            try:
                box.put((True, fn()))
            except BaseException as e:
                box.put((False, e))
        self.loop.threadsafe(run)
        ok, v = box.get(timeout=timeout)
        if not ok:
            raise v
        return v

    def close(self):
        try:
            self.call(self.server.close)
        except Exception:
            pass
        self.loop.stopping = True
        self.loop.threadsafe(lambda: None)
        self.thread.join(5)
        try:
            os.rmdir(self.dir)
        except OSError:
            pass


class Raw:
    """A raw 9P client: send T-messages, receive R-messages by tag."""

    def __init__(self, env=None, path=None, port=None, timeout=10, sock=None):
        """On env's unix socket, path's, or TCP port on 127.0.0.1; or on
        sock, a socket already connected."""
        if sock is not None:
            self.s = sock
            sock.settimeout(timeout)
        elif port is not None:
            self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        else:
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.settimeout(timeout)
            self.s.connect(path or env.sock)
        self.buf = bytearray()
        self.got = {}
        self.dotl = False
        self.msize = None
        self.nexttag = 0

    def close(self):
        self.s.close()

    def send(self, data):
        self.s.sendall(data)

    def tag(self):
        t = self.nexttag
        self.nexttag = (self.nexttag + 1) % 0xFFFF
        return t

    def _readone(self):
        while True:
            if len(self.buf) >= 4:
                n = int.from_bytes(self.buf[:4], "little")
                if len(self.buf) >= n:
                    m = bytes(self.buf[:n])
                    del self.buf[:n]
                    return m
            d = self.s.recv(1 << 20)
            if not d:
                raise EOFError("server closed the connection")
            self.buf += d

    def recvraw(self):
        return self._readone()

    def recv(self, tag=None):
        """The next reply (for tag, if given), decoded."""
        if tag is not None and tag in self.got:
            return self.got.pop(tag)
        while True:
            m = self._readone()
            r = ninep.unpackr(m)
            if tag is None or r[1] == tag:
                return r
            self.got[r[1]] = r

    def pending(self, timeout=0.2):
        """Is a reply waiting (within timeout)?"""
        if self.buf:
            return True
        self.s.settimeout(timeout)
        try:
            d = self.s.recv(1 << 20)
        except (socket.timeout, BlockingIOError):
            return False
        finally:
            self.s.settimeout(10)
        if not d:
            raise EOFError("server closed the connection")
        self.buf += d
        return True

    def rpc(self, type, *args):
        t = self.tag()
        self.send(ninep.pack(type, t, *args))
        return self.recv(t)

    def version(self, msize=8192, version="9P2000"):
        self.send(ninep.pack(ninep.Tversion, 0xFFFF, msize, version))
        r = self.recv(0xFFFF)
        self.dotl = r[3] == "9P2000.L"
        self.msize = r[2]
        return r

    def attach(self, fid=0, uname="glenda", nuname=None):
        if self.dotl or nuname is not None:
            return self.rpc(ninep.Tattach, fid, ninep.NOFID, uname, "",
                            ninep.NONUNAME if nuname is None else nuname)
        return self.rpc(ninep.Tattach, fid, ninep.NOFID, uname, "")

    def ok(self, type, *args):
        r = self.rpc(type, *args)
        if r[0] in (ninep.Rerror, ninep.Rlerror):
            raise AssertionError("error reply %r to %d%r" % (r, type, args))
        return r

    def walk(self, fid, newfid, path):
        names = [x for x in path.split("/") if x] if isinstance(path, str) else list(path)
        return self.rpc(ninep.Twalk, fid, newfid, names)

    def open(self, fid, mode):
        return self.rpc(ninep.Tlopen if self.dotl else ninep.Topen, fid, mode)

    def read(self, fid, count=8000, offset=0):
        return self.rpc(ninep.Tread, fid, offset, count)

    def write(self, fid, data, offset=0):
        return self.rpc(ninep.Twrite, fid, offset, data)

    def clunk(self, fid):
        return self.rpc(ninep.Tclunk, fid)


def errtext(r):
    assert r[0] == ninep.Rerror, r
    return r[2]
