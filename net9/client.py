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
request.  That thread may be the main thread, where signal handlers raise
(KeyboardInterrupt): the read and the bookkeeping of what it brought, and
each message's whole write, are done in C (ninep.ReplyReader,
ninep.sendmsg_all), and the lock and wake-ups are juggled so that an
exception at any point leaves the connection in step.  Blocking
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

from typing import Any, Optional

import socket
import struct
import threading
from _thread import allocate_lock as _allocate_lock
import time

from net9 import ninep

NOTAG = ninep.NOTAG
NOFID = ninep.NOFID
IOHDRSZ = ninep.IOHDRSZ
DEFAULT_MSIZE = 128 * 1024 + IOHDRSZ
_TWRITE = struct.Struct("<IBHIQI")     # Twrite's header: size type tag fid offset count

# 9P open modes
OREAD, OWRITE, ORDWR, OEXEC = 0, 1, 2, 3
OTRUNC = 0x10

DMDIR = ninep.DMDIR


class NinepError(Exception):
    """An Rerror from the server: its text."""

    def __str__(self) -> str:
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
        # reentrant: a finalizer (Conn.__del__ -> clunk(wait=False)) may
        # run in a thread that holds it; and its owner is known, which lets
        # _relock tell whether an interrupted acquire got it
        self.lock = threading.RLock()
        self.waiters = []              # followers' locks (released to wake them)
        self.sendlock = threading.RLock()
        self.replies = {}              # tag -> reply tuple
        self.inflight = set()          # tags sent and not yet taken back
        self.discard = set()           # tags whose replies nobody waits for
        self.flushing = {}             # Tflush tag -> tag it takes back (nobody waits)
        self.tags = 0
        self.fids = 0
        self.freefids = []
        self.arrivals = 0              # replies seen so far (for poll)
        self.dead = None               # why the connection is gone
        self.closed = False
        self.msize = msize
        self.fd = self.sock.fileno()
        self.reader = ninep.ReplyReader(max(msize, 8192))   # the leader's buffer
        self.reading = False           # a thread is reading the socket (the leader)
        try:
            r = self.wait(self._send(ninep.pack(ninep.Tversion, NOTAG, msize, "9P2000"), NOTAG))
            if r.type != ninep.Rversion or r.version != "9P2000":
                raise NinepError("the server speaks %r, not 9P2000" % (r.version,)
                                 if r.type == ninep.Rversion else r.ename)
            self.msize = min(msize, r.msize)
            self.reader.setmax(max(self.msize, 8192))
            self.root = self.newfid()
            self.check(self.rpc(ninep.Tattach, self.root, NOFID, uname, aname))
        except BaseException:
            self.close()
            raise
        self.uname = uname

    # -- transport ---------------------------------------------------------

    # A signal handler's exception can surface in the main thread after any
    # call returns or at the entry of any Python function (not inside a C
    # call).  The lock juggling below is written so that one such exception
    # anywhere leaves the lock held by the thread it interrupts, no stale
    # leader, and no follower asleep with nobody to wake it: no helper
    # function is called where the lock might not be held, and the
    # wake-up is done again when interrupted.

    def _follow(self, timeout):
        """Called with the lock held by a thread that waits while another
        reads: sleep until the leader delivers (or timeout seconds pass;
        None: no limit); returns or raises with the lock held."""
        w = _allocate_lock()
        w.acquire()
        self.waiters.append(w)
        pending = None
        try:
            self.lock.release()
            if timeout is None:
                w.acquire()
            else:
                w.acquire(True, max(0.0, timeout))
        except BaseException as e:
            pending = e
        finally:
            while True:
                try:
                    self.lock.acquire()
                    break
                except BaseException as e:
                    pending = e
                    if self.lock._is_owned():
                        break
        try:
            self.waiters.remove(w)
        except ValueError:
            pass
        if pending is not None:
            raise pending

    def _wake(self):
        """Wake every follower (lock held).  A follower leaves the list
        itself, once it holds the lock again; releasing it twice is
        harmless."""
        for w in self.waiters:
            try:
                w.release()
            except RuntimeError:
                pass

    def _lead(self, timeout):
        """Called with the lock held by a thread that waits while nobody
        reads: read once, deliver what came, wake the others; returns (or
        raises) with the lock held.  The read and the delivery are
        ReplyReader's (C): an exception from a signal handler (the leader
        may be the main thread) cannot come between a recv and the
        bookkeeping of what it brought."""
        self.reading = True
        err = None
        try:
            try:
                self.lock.release()
                n = self.reader.fill(self.fd, -1 if timeout is None
                                     else max(0, int(timeout * 1000 + 0.999)))
                if n == 0:
                    err = EOFError("the 9P server closed the connection")
            except OSError as e:
                err = e
            finally:
                pending = None
                while True:
                    try:
                        self.lock.acquire()
                        break
                    except BaseException as e:
                        pending = e
                        if self.lock._is_owned():
                            break
                if pending is not None:
                    raise pending
        finally:
            self.reading = False
            try:
                self.arrivals += self.reader.take(self.replies, self.discard, self.inflight,
                                                  self.flushing)
            except ninep.Malformed as e:
                err = e
            if err is not None and self.dead is None:
                self.dead = EOFError("connection closed") if self.closed else err
            if self.closed:
                self._closesock()
            try:
                self._wake()
            except BaseException:
                self._wake()
                raise

    def _send(self, msg: bytes, tag: int, data=None) -> int:
        """Write a whole message (msg, then data when given: a Twrite's
        payload) from any thread."""
        with self.sendlock:
            if self.dead is not None:
                self._raisedead()
            try:
                ninep.sendmsg_all(self.fd, msg, data)
            except OSError as e:
                with self.lock:
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

    def close(self) -> None:
        """Close the connection (the server clunks every fid, which ends
        every conversation held only by this connection)."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            if self.dead is None:
                self.dead = EOFError("connection closed")
            self._wake()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)     # ends a blocked read or write
        except OSError:
            pass
        # the descriptor is closed when nobody uses it any more: a write or
        # a read under way could otherwise land on a descriptor reused by
        # an open elsewhere in the program
        with self.sendlock:
            with self.lock:
                if not self.reading:
                    self._closesock()
                # else the leader closes it when its read returns

    def _closesock(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
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

    def wait(self, tag: int, timeout: Optional[float] = -1) -> tuple:
        """The reply for tag.  timeout: seconds, None for ever, -1 (the
        default) the client's timeout.  On a timeout or an interrupt the
        request is flushed and TimeoutError (or the interrupt) raised; a
        reply that beat the Rflush is returned instead."""
        if timeout == -1:
            timeout = self.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with self.lock:
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
                        self._follow(left)
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

    def flush(self, oldtag: int, timeout: Optional[float] = None) -> Optional[tuple]:
        """Tflush oldtag and wait for the Rflush.  The reply to oldtag if it
        came first (the request was done), else None (it never will)."""
        if timeout is None:
            timeout = max(self.timeout, 1.0)
        ft = self.start(ninep.Tflush, oldtag)
        deadline = time.monotonic() + timeout
        with self.lock:
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
                    self._follow(left)
            self.replies.pop(ft)
            self.inflight.discard(ft)
            self.inflight.discard(oldtag)
            return self.replies.pop(oldtag, None)

    def done(self, tag: int) -> Optional[tuple]:
        """The reply for tag if it came, else None (never blocks)."""
        with self.lock:
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
        with self.lock:
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
                    self._follow(left)
            return True

    def rpc(self, type: int, *args: Any, timeout: Optional[float] = -1) -> tuple:
        t = self.tag()
        return self._call(t, ninep.pack(type, t, *args), timeout)

    def _call(self, t, msg, timeout, data=None):
        """Send msg (tag t, data after it) and wait for its reply; an
        interrupt before the wait took charge of the tag drops its reply."""
        try:
            self._send(msg, t, data)
            return self.wait(t, timeout)
        except BaseException:
            self._drop(t)
            raise

    @staticmethod
    def check(r: tuple) -> tuple:
        if r.type == ninep.Rerror:
            raise NinepError(r.ename)
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
                if len(r.wqid) != len(step):
                    raise NinepError("file does not exist")
                made = True
        except BaseException:
            if made:
                self.clunk(newfid)
            else:
                self._freefid(newfid)
            raise
        return newfid

    def open(self, fid: int, mode: int, timeout: Optional[float] = -1) -> tuple:
        """Open fid; (qid, iounit).  An open of listen blocks: pass
        timeout=None to wait for ever."""
        r = self.check(self.rpc(ninep.Topen, fid, mode, timeout=timeout))
        return r.qid, r.iounit

    def walkopen(self, path, mode, timeout=-1) -> int:
        """A new fid for path, opened: the Twalk and the Topen go together
        (one write, one wait for both replies when the walk succeeds)."""
        names = self.names(path)
        if len(names) > ninep.MAXWELEM:
            fid = self.walk(names)
            try:
                self.open(fid, mode, timeout=timeout)
            except BaseException:
                self.clunk(fid)
                raise
            return fid
        fid = self.newfid()
        wt = self.tag()
        ot = None
        try:
            ot = self.tag()
            self._send(ninep.pack(ninep.Twalk, wt, self.root, fid, names)
                       + ninep.pack(ninep.Topen, ot, fid, mode), wt)
            rw = self.wait(wt)
        except BaseException:
            self._drop(wt)
            if ot is not None:
                self._drop(ot)
            self.clunk(fid, wait=False)
            raise
        if rw.type == ninep.Rerror or len(rw.wqid) != len(names):
            # no fid was made: the Topen fails at once (its reply is dropped;
            # the fid number is not reused, so no later walk can meet it)
            self._drop(ot)
            raise NinepError(rw.ename if rw.type == ninep.Rerror else "file does not exist")
        try:
            self.check(self.wait(ot, timeout))
        except BaseException:
            self._drop(ot)
            self.clunk(fid)
            raise
        return fid

    def _drop(self, tag):
        """Nobody will wait for tag (an interrupt came between its tag() and
        its wait: it may or may not have been sent): its reply, come or to
        come, is dropped, and a Tflush sent without waiting takes the
        request back (a parked read must not consume data nobody reads);
        the tag is free again at the Rflush.  Nothing when the tag is no
        longer in flight (a wait took it back)."""
        with self.lock:
            if tag not in self.inflight:
                return
            if tag in self.replies:
                del self.replies[tag]
                self.inflight.discard(tag)
                return
            if self.dead is not None:
                self.inflight.discard(tag)
                return
            self.discard.add(tag)
            ft = self.tag()
            self.flushing[ft] = tag
        try:
            self._send(ninep.pack(ninep.Tflush, ft, tag), ft)
        except (OSError, EOFError):
            pass

    def iounit(self) -> int:
        return self.msize - IOHDRSZ

    def read(self, fid, count=8192, offset=0, timeout=-1) -> bytes:
        count = min(count, self.iounit())
        return self.check(self.rpc(ninep.Tread, fid, offset, count, timeout=timeout)).data

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
        try:
            data = memoryview(data).cast("B")
        except (TypeError, ValueError):
            data = memoryview(bytes(data))
        if len(data) == 0:
            return self.check(self.rpc(ninep.Twrite, fid, offset, b"", timeout=timeout)).count
        n = 0
        unit = self.iounit()
        while n < len(data):
            piece = data[n:n + unit]
            t = self.tag()
            # the header alone, the payload written from data as it is
            hdr = _TWRITE.pack(_TWRITE.size + len(piece), ninep.Twrite, t, fid, offset + n,
                               len(piece))
            w = self.check(self._call(t, hdr, timeout, piece)).count
            if w <= 0:
                break
            n += w
        return n

    def stat(self, fid: int) -> tuple:
        """(type, dev, qid, mode, atime, mtime, length, name, uid, gid, muid)."""
        r = self.check(self.rpc(ninep.Tstat, fid))
        return ninep.unpackstat(r.stat)

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

    def clunk(self, fid: int, wait: bool = True) -> None:
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
