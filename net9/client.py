"""A small 9P2000 client for net9's /net: enough for the dial API, the
net9 commands and ping (version, attach, walk, open, read, write, stat,
clunk, flush).

One Client is one 9P connection (a unix socket or TCP).  It is
thread-safe: any number of requests may be outstanding at once and be
answered out of order (a data read may wait while writes go on the same
connection).  There is no reader thread: a thread waiting for a reply
reads the socket itself when no other thread is reading it, and hands
every reply it takes off to the thread that waits for it (a leader and
followers), so a program with one thread pays no thread switch per
request.  Blocking
calls take a timeout; a call that times out or is interrupted
(KeyboardInterrupt) flushes its request (Tflush) before it raises, so the
server is left with nothing parked for it.

Errors from the server (Rerror) raise NinepError with the server's text,
which for net9 is devip's (e.g. "connection refused").  A connection that
cannot be made raises OSError; one the server closes raises EOFError.

    cl = Client("unix!/tmp/ns.glenda.:0/net9", uname="glenda")
    fid = cl.walkopen("tcp/stats", OREAD)
    print(cl.readall(fid).decode())
    cl.clunk(fid)
    cl.close()
"""

from __future__ import annotations

import select
import socket
import threading
import time

from net9 import ninep

NOTAG = ninep.NOTAG
NOFID = ninep.NOFID
IOHDRSZ = ninep.IOHDRSZ
DEFAULT_MSIZE = 128 * 1024 + IOHDRSZ

# 9P open modes
OREAD, OWRITE, ORDWR, OEXEC = 0, 1, 2, 3
OTRUNC = 0x10

DMDIR = ninep.DMDIR


class NinepError(Exception):
    """An Rerror from the server: its text."""

    def __str__(self):
        return self.args[0] if self.args else ""


class Flushed(Exception):
    """Internal: a request was flushed before its reply came."""


def parse_srv(addr: str):
    """(family, address) of a 9P server address: unix!PATH, tcp!HOST!PORT,
    or a bare path."""
    parts = addr.split("!")
    if parts[0] == "tcp":
        if len(parts) != 3:
            raise ValueError("bad 9P server address %r: want tcp!HOST!PORT" % addr)
        host = parts[1].strip("[]")
        try:
            port = int(parts[2])
        except ValueError:
            try:
                port = socket.getservbyname(parts[2], "tcp")
            except OSError:
                raise ValueError("bad port in 9P server address %r" % addr)
        return "tcp", (host, port)
    if parts[0] == "unix":
        if len(parts) < 2 or not parts[1]:
            raise ValueError("bad 9P server address %r: want unix!PATH" % addr)
        return "unix", "!".join(parts[1:])
    return "unix", addr


def dial9p(addr: str, timeout: float) -> socket.socket:
    """A connected stream socket to the 9P server at addr (see parse_srv)."""
    fam, a = parse_srv(addr)
    if fam == "tcp":
        s = socket.create_connection(a, timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(a)
    except OSError:
        s.close()
        raise
    return s


def myname() -> str:
    """The name of the effective user: its passwd entry, else the number
    (the name net9 serve knows a local client by, net9.peer.username)."""
    import os
    import pwd
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


class Client:
    """A 9P2000 client connection (see the module's docstring).

    Client(addr, msize=DEFAULT_MSIZE, uname=None, timeout=10.0, aname="")
    uname None: the user running us (net9 serve lets a local client attach
    as itself only, unless it is root or the server's own user).
    timeout bounds connecting and the replies to non-blocking requests
    (version, attach, walk, stat, clunk...); requests that may block in
    devip (reads, writes, opens of listen) wait as long as their own
    timeout argument says (None: for ever)."""

    def __init__(self, addr: str, msize: int = DEFAULT_MSIZE, uname: str = None,
                 timeout: float = 10.0, aname: str = ""):
        if uname is None:
            uname = myname()
        self.addr = addr
        self.timeout = timeout
        self.sock = dial9p(addr, timeout)
        self.sock.settimeout(None)
        self.lock = threading.Lock()
        self.cv = threading.Condition(self.lock)
        self.sendlock = threading.Lock()
        self.replies = {}              # tag -> reply tuple
        self.inflight = set()          # tags sent and not yet taken back
        self.discard = set()           # tags whose replies nobody waits for
        self.tags = 0
        self.fids = 0
        self.freefids = []
        self.arrivals = 0              # replies seen so far (for poll)
        self.dead = None               # why the connection is gone
        self.closed = False
        self.msize = msize
        self.rbuf = bytearray()        # bytes read and not yet a whole reply (leader's)
        self.reading = False           # a thread is reading the socket (the leader)
        self.poller = select.poll()
        self.poller.register(self.sock.fileno(), select.POLLIN)
        try:
            r = self.wait(self._send(ninep.pack(ninep.Tversion, NOTAG, msize, "9P2000"), NOTAG))
            if r[0] != ninep.Rversion or r[3] != "9P2000":
                raise NinepError("the server speaks %r, not 9P2000" % (r[3],)
                                 if r[0] == ninep.Rversion else r[2])
            self.msize = min(msize, r[2])
            self.root = self.newfid()
            self.check(self.rpc(ninep.Tattach, self.root, NOFID, uname, aname))
        except BaseException:
            self.close()
            raise
        self.uname = uname

    # -- transport ---------------------------------------------------------

    def _readsome(self, timeout):
        """One recv (timeout: None blocks, 0 polls) by the leader, without
        the lock; the whole replies it completes."""
        s = self.sock
        if timeout is not None:
            # the socket stays blocking (a timeout on it would also bind a
            # sendall in another thread): poll first
            if not self.poller.poll(max(0, int(timeout * 1000 + 0.999))):
                return []
        try:
            d = s.recv(1 << 20)
        except InterruptedError:
            return []
        if not d:
            raise EOFError("the 9P server closed the connection")
        buf = self.rbuf
        buf += d
        got = []
        off = 0
        nb = len(buf)
        while nb - off >= 4:
            n = int.from_bytes(buf[off:off + 4], "little")
            if n < 7:
                raise ninep.Malformed("message of %d bytes" % n)
            if nb - off < n:
                break
            got.append(ninep.unpackr(bytes(buf[off:off + n])))
            off += n
        if off:
            del buf[:off]
        return got

    def _lead(self, timeout):
        """Called with the lock held by a thread that waits while nobody
        reads: read once, deliver what came, wake the others; returns with
        the lock held."""
        self.reading = True
        self.cv.release()
        got = []
        err = None
        try:
            got = self._readsome(timeout)
        except (OSError, EOFError, ninep.Malformed) as e:
            err = e
        finally:
            self.cv.acquire()
            self.reading = False
            for r in got:
                if r[1] in self.discard:
                    self.discard.discard(r[1])
                    self.inflight.discard(r[1])
                    continue
                self.replies[r[1]] = r
            self.arrivals += len(got)
            if err is not None and self.dead is None:
                self.dead = EOFError("connection closed") if self.closed else err
            self.cv.notify_all()

    def _send(self, msg: bytes, tag: int) -> int:
        with self.sendlock:
            if self.dead is not None:
                self._raisedead()
            try:
                self.sock.sendall(msg)
            except OSError as e:
                with self.cv:
                    self.inflight.discard(tag)
                    if self.dead is None:
                        self.dead = e
                raise EOFError("the 9P server connection failed: %s" % e)
        return tag

    def _raisedead(self):
        d = self.dead
        if isinstance(d, EOFError):
            raise EOFError(str(d))
        raise EOFError("the 9P server connection failed: %s" % d)

    def close(self):
        """Close the connection (the server clunks every fid, which ends
        every conversation held only by this connection)."""
        with self.cv:
            if self.closed:
                return
            self.closed = True
            if self.dead is None:
                self.dead = EOFError("connection closed")
            self.cv.notify_all()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- requests ----------------------------------------------------------

    def tag(self) -> int:
        with self.lock:
            for _ in range(NOTAG):
                self.tags = (self.tags + 1) % NOTAG
                t = self.tags
                if t not in self.inflight and t not in self.replies:
                    self.inflight.add(t)
                    return t
        raise NinepError("no free 9P tags")

    def start(self, type, *args) -> int:
        """Send a request; its tag (take the reply with wait or done)."""
        t = self.tag()
        return self._send(ninep.pack(type, t, *args), t)

    def wait(self, tag, timeout=-1):
        """The reply for tag.  timeout: seconds, None for ever, -1 (the
        default) the client's timeout.  On a timeout or an interrupt the
        request is flushed and TimeoutError (or the interrupt) raised; a
        reply that beat the Rflush is returned instead."""
        if timeout == -1:
            timeout = self.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with self.cv:
                while tag not in self.replies:
                    if self.dead is not None:
                        self.inflight.discard(tag)
                        self._raisedead()
                    left = None
                    if deadline is not None:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                    if not self.reading:
                        self._lead(left)
                    else:
                        self.cv.wait(left)
                else:
                    self.inflight.discard(tag)
                    return self.replies.pop(tag)
        except BaseException:
            # interrupted (KeyboardInterrupt, SystemExit from a signal
            # handler...): take the request back, then let it go on
            if tag != NOTAG and self.dead is None:
                try:
                    self.flush(tag)
                except Exception:
                    pass
            raise
        if tag == NOTAG:
            raise TimeoutError("no reply from the 9P server")
        r = self.flush(tag)
        if r is not None:
            return r
        raise TimeoutError("timed out")

    def flush(self, oldtag, timeout=None):
        """Tflush oldtag and wait for the Rflush.  The reply to oldtag if it
        came first (the request was done), else None (it never will)."""
        if timeout is None:
            timeout = max(self.timeout, 1.0)
        ft = self.start(ninep.Tflush, oldtag)
        deadline = time.monotonic() + timeout
        with self.cv:
            while ft not in self.replies:
                if self.dead is not None:
                    self.inflight.discard(ft)
                    self.inflight.discard(oldtag)
                    self.replies.pop(oldtag, None)
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    # the server does not answer: leave both tags reserved
                    raise TimeoutError("the 9P server does not answer Tflush")
                if not self.reading:
                    self._lead(left)
                else:
                    self.cv.wait(left)
            self.replies.pop(ft)
            self.inflight.discard(ft)
            self.inflight.discard(oldtag)
            return self.replies.pop(oldtag, None)

    def done(self, tag):
        """The reply for tag if it came, else None (never blocks)."""
        with self.cv:
            if tag not in self.replies and not self.reading and self.dead is None:
                self._lead(0)
            r = self.replies.pop(tag, None)
            if r is not None:
                self.inflight.discard(tag)
            elif self.dead is not None:
                self._raisedead()
            return r

    def poll(self, timeout: float) -> bool:
        """Wait up to timeout seconds for a reply to arrive; True if one did."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self.cv:
            seen = self.arrivals
            while self.arrivals == seen:
                if self.dead is not None:
                    self._raisedead()
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if not self.reading:
                    self._lead(left)
                else:
                    self.cv.wait(left)
            return True

    def rpc(self, type, *args, timeout=-1):
        return self.wait(self.start(type, *args), timeout)

    @staticmethod
    def check(r):
        if r[0] == ninep.Rerror:
            raise NinepError(r[2])
        return r

    # -- fids ----------------------------------------------------------------

    def newfid(self) -> int:
        with self.lock:
            if self.freefids:
                return self.freefids.pop()
            self.fids += 1
            return self.fids

    def _freefid(self, fid):
        with self.lock:
            self.freefids.append(fid)

    @staticmethod
    def names(path) -> list:
        if isinstance(path, (list, tuple)):
            return list(path)
        return [x for x in path.split("/") if x and x != "."]

    def walk(self, path, fid=None) -> int:
        """A new fid for path (relative to fid, default the root);
        NinepError("file does not exist") if some element is missing."""
        if fid is None:
            fid = self.root
        names = self.names(path)
        newfid = self.newfid()
        made = False
        try:
            while not made or names:
                step, names = names[:ninep.MAXWELEM], names[ninep.MAXWELEM:]
                r = self.check(self.rpc(ninep.Twalk, newfid if made else fid, newfid, step))
                if len(r[2]) != len(step):
                    raise NinepError("file does not exist")
                made = True
        except BaseException:
            if made:
                self.clunk(newfid)
            else:
                self._freefid(newfid)
            raise
        return newfid

    def open(self, fid, mode, timeout=-1):
        """Open fid; (qid, iounit).  An open of listen blocks: pass
        timeout=None to wait for ever."""
        r = self.check(self.rpc(ninep.Topen, fid, mode, timeout=timeout))
        return r[2], r[3]

    def walkopen(self, path, mode, timeout=-1) -> int:
        fid = self.walk(path)
        try:
            self.open(fid, mode, timeout=timeout)
        except BaseException:
            self.clunk(fid)
            raise
        return fid

    def iounit(self) -> int:
        return self.msize - IOHDRSZ

    def read(self, fid, count=8192, offset=0, timeout=-1) -> bytes:
        count = min(count, self.iounit())
        return self.check(self.rpc(ninep.Tread, fid, offset, count, timeout=timeout))[2]

    def readall(self, fid, limit=16 << 20) -> bytes:
        """A whole text file from offset 0 (reads until one returns 0 bytes)."""
        out = bytearray()
        while len(out) < limit:
            d = self.read(fid, self.iounit(), len(out))
            if not d:
                break
            out += d
        return bytes(out)

    def write(self, fid, data, offset=0, timeout=-1) -> int:
        """Write all of data (in msize pieces); the count written."""
        data = memoryview(bytes(data) if not isinstance(data, (bytes, bytearray)) else data)
        if len(data) == 0:
            return self.check(self.rpc(ninep.Twrite, fid, offset, b"", timeout=timeout))[2]
        n = 0
        unit = self.iounit()
        while n < len(data):
            piece = data[n:n + unit]
            w = self.check(self.rpc(ninep.Twrite, fid, offset + n, bytes(piece),
                                    timeout=timeout))[2]
            if w <= 0:
                break
            n += w
        return n

    def stat(self, fid):
        """(type, dev, qid, mode, atime, mtime, length, name, uid, gid, muid)."""
        r = self.check(self.rpc(ninep.Tstat, fid))
        return ninep.unpackstat(r[2])

    def dirread(self, fid) -> list:
        """Every entry of an opened directory, as stat tuples."""
        out = []
        off = 0
        while True:
            d = self.read(fid, self.iounit(), off)
            if not d:
                return out
            off += len(d)
            out.extend(ninep.unpackstats(d))

    def clunk(self, fid, wait=True):
        """Clunk fid; errors (and a dead connection) are ignored.  With
        wait=False the Tclunk is sent and its reply dropped (for finalizers,
        which may run in any thread)."""
        if not wait:
            try:
                t = self.tag()
                with self.lock:
                    self.discard.add(t)
                self._send(ninep.pack(ninep.Tclunk, t, fid), t)
            except (OSError, EOFError, NinepError):
                pass
            return
        try:
            self.rpc(ninep.Tclunk, fid)
        except (OSError, EOFError, TimeoutError, NinepError):
            return
        if fid != getattr(self, "root", None):
            self._freefid(fid)
