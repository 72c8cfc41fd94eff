"""dial(2) for asyncio, over 9P to net9's /net: no threads, one 9P
connection shared by many conversations, requests multiplexed by tag.

    import asyncio, net9.aio

    async def main():
        c = await net9.aio.dial("tcp!10.9.0.1!80")        # AsyncConn
        c.write(b"GET / HTTP/1.0\\r\\n\\r\\n")
        await c.drain()
        page = await c.read()                           # to end of file
        c.close()
        await c.wait_closed()

        ann = await net9.aio.announce("tcp!*!8080")     # Announcement
        async for call in net9.aio.listen(ann):         # Call, one per caller
            conn = await call.accept()                  # AsyncConn
            ...

An AsyncConn has asyncio's StreamReader methods (read, readexactly, readline,
readuntil, at_eof, async iteration by lines) and StreamWriter's (write,
writelines, drain, close, is_closing, wait_closed, get_extra_info), so
open_connection() returns it twice, as (reader, writer), and
start_server() calls its callback with (reader, writer) for each call, as
asyncio's functions of those names do.  devip has no half-close:
can_write_eof() is False.

Cancelling a task that waits in a read, a listen or a connect flushes its
9P request (Tflush); nothing is lost: data that the server had already
sent is kept for the next read, and a call that had already come is
returned by the next listen.

Like net9.dial: srv= names the server (unix!PATH or tcp!HOST!PORT; default
$NET9_SRV, else the socket net9 serve makes), user= the 9P user name;
errors are OSError with devip's text as strerror and the matching errno
("connection refused" is ConnectionRefusedError); a server that cannot be
reached is net9.dial.ServerUnreachable.  The module functions share one
9P connection per event loop, server and user among all the conversations
they make (net= passes a Net of your own instead); it closes when its
last conversation does.
"""

from __future__ import annotations

import asyncio
import errno as _errno
import socket
import struct

from net9 import ninep
from net9.client import (DEFAULT_MSIZE, IOHDRSZ, NOFID, NOTAG, NinepError, ORDWR, OREAD,
                         myname, parse_srv)
from net9.dial import (AddrError, ServerUnreachable, _literal, _localpart, default_srv,
                       oserror, parseaddr)

__all__ = ["Client", "Net", "AsyncConn", "Conn", "Announcement", "Call", "Server", "dial", "announce",
           "listen", "accept", "reject", "hangup", "open_connection", "start_server",
           "AddrError", "ServerUnreachable"]

_TWRITE = struct.Struct("<IBHIQI")      # Twrite's header: size type tag fid offset count
_SIZE = struct.Struct("<I")
FLUSHWAIT = 10.0        # seconds rpc(keep=True) waits for an Rflush before giving up


class _Req:
    """One request in flight: the future its caller awaits; flushed (a
    Tflush is on its way: the tag stays taken until the Rflush); late (what
    to do with a reply that comes after all); reply (one that came while
    the caller was being cancelled); oldtag (for a Tflush: the request it
    takes back)."""

    __slots__ = ("fut", "flushed", "late", "reply", "oldtag")

    def __init__(self, fut, oldtag=None):
        self.fut = fut
        self.flushed = False
        self.late = None
        self.reply = None
        self.oldtag = oldtag


class Client(asyncio.Protocol):
    """One 9P2000 connection, for asyncio: await Client.connect(srv).

    rpc(type, *args) sends a T-message and returns its R-message tuple
    (ninep.unpackr's); an Rerror raises NinepError.  Any number of requests
    may be in flight at once, answered in any order.  A caller cancelled
    while it waits takes its request back with a Tflush (see rpc).  When
    the connection goes, every request in flight fails with
    ConnectionResetError and so does every later one."""

    def __init__(self, loop=None):
        self.loop = loop or asyncio.get_running_loop()
        self.transport = None
        self.buf = bytearray()
        self.reqs = {}                 # tag -> _Req
        self.tags = set()              # tags in use (until the reply or the Rflush)
        self.nexttag = 0
        self.nfids = 0
        self.freefids = []
        self.msize = DEFAULT_MSIZE
        self.dead = None               # the exception of a lost connection
        self.closed = self.loop.create_future()
        self._paused = False
        self._drainers = []
        self.root = None
        self.uname = None
        self.addr = None
        self.roots = {}                # uname -> its attach fid

    # -- connecting --

    @classmethod
    async def connect(cls, srv: str, uname: str = None, msize: int = DEFAULT_MSIZE,
                      aname: str = "", timeout: float = 10.0) -> "Client":
        """Connect, Tversion, Tattach as uname (default: the user running
        us).  ValueError for a bad address, OSError if nobody answers,
        NinepError if the server refuses."""
        loop = asyncio.get_running_loop()
        fam, where = parse_srv(srv)
        cl = cls(loop)
        cl.addr = srv
        if fam == "tcp":
            coro = loop.create_connection(lambda: cl, where[0], where[1])
        else:
            coro = loop.create_unix_connection(lambda: cl, where)
        await asyncio.wait_for(coro, timeout)
        try:
            r = await asyncio.wait_for(cl.rpc(ninep.Tversion, msize, "9P2000", tag=NOTAG),
                                       timeout)
            if r.version != "9P2000":
                raise NinepError("the server speaks %r, not 9P2000" % (r.version,))
            cl.msize = min(msize, r.msize)
            cl.uname = uname if uname is not None else myname()
            cl.root = await asyncio.wait_for(cl.attach(cl.uname, aname), timeout)
        except BaseException:
            cl.close()
            raise
        return cl

    async def attach(self, uname: str, aname: str = "") -> int:
        """A root fid attached as uname (kept: one per user name)."""
        fid = self.roots.get(uname)
        if fid is not None:
            return fid
        fid = self.newfid()
        try:
            await self.rpc(ninep.Tattach, fid, NOFID, uname, aname)
        except BaseException:
            self.freefids.append(fid)
            raise
        if uname in self.roots:                   # raced with another attach
            self.clunk_nowait(fid)
            return self.roots[uname]
        self.roots[uname] = fid
        return fid

    # -- asyncio.Protocol --

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def data_received(self, data):
        buf = self.buf
        buf += data
        n = len(buf)
        i = 0
        while n - i >= 4:
            size = _SIZE.unpack_from(buf, i)[0]
            if size < 7 or size > max(self.msize, 8192) + 64:
                self._die(ConnectionResetError(_errno.EPROTO, "9P: bad message size %d" % size))
                return
            if n - i < size:
                break
            try:
                r = ninep.unpackr(buf[i:i + size])
            except ninep.Malformed as e:
                self._die(ConnectionResetError(_errno.EPROTO, "9P: %s" % e))
                return
            i += size
            self._deliver(r)
            if self.dead is not None:
                return
        if i:
            del buf[:i]

    def connection_lost(self, exc):
        self._die(ConnectionResetError(_errno.ECONNRESET, "the 9P server closed the connection"
                                       if exc is None else "9P connection lost: %s" % exc))

    def pause_writing(self):
        self._paused = True

    def resume_writing(self):
        self._paused = False
        for f in self._drainers:
            if not f.done():
                f.set_result(None)
        self._drainers = []

    async def _drain(self):
        while self._paused and self.dead is None:
            f = self.loop.create_future()
            self._drainers.append(f)
            await f

    # -- replies --

    def _deliver(self, r):
        tag = r.tag
        q = self.reqs.pop(tag, None)
        if q is None:
            return                                  # nobody asked (a bug, or a late Rflush)
        if q.oldtag is not None:                    # the Rflush: both tags are free again
            old = self.reqs.pop(q.oldtag, None)
            self.tags.discard(q.oldtag)
            self.tags.discard(tag)
            if old is not None and old.late is not None:
                try:
                    old.late(None)                  # taken back: no reply will come
                except Exception:
                    pass
            if not q.fut.done():
                q.fut.set_result(r)
            return
        if q.flushed:
            # came before the Rflush: the request was done after all; the tag
            # stays taken until the Rflush
            self.reqs[tag] = q
            late, q.late = q.late, None
            q.flushed = None                        # answered: no late(None) at the Rflush
            if late is not None:
                try:
                    late(r)
                except Exception:
                    pass
            return
        if q.fut.done():
            # its caller is being cancelled: wait() finds the reply here; the
            # tag stays taken until then
            q.reply = r
            self.reqs[tag] = q
            return
        self.tags.discard(tag)
        q.fut.set_result(r)

    def _die(self, exc):
        if self.dead is not None:
            return
        self.dead = exc
        reqs, self.reqs = self.reqs, {}
        self.tags.clear()
        for q in reqs.values():
            if not q.fut.done():
                q.fut.set_exception(ConnectionResetError(*exc.args))
                q.fut.exception()                   # retrieved: no warning if nobody awaits
            if q.late is not None:
                try:
                    q.late(None)
                except Exception:
                    pass
        for f in self._drainers:
            if not f.done():
                f.set_result(None)
        self._drainers = []
        if not self.closed.done():
            self.closed.set_result(None)
        if self.transport is not None:
            self.transport.close()

    # -- requests --

    def _tag(self):
        for _ in range(NOTAG):
            self.nexttag = (self.nexttag + 1) % NOTAG
            t = self.nexttag
            if t not in self.tags:
                self.tags.add(t)
                return t
        raise NinepError("no free 9P tags")

    def _raisedead(self):
        raise ConnectionResetError(*self.dead.args)

    def start(self, type, *args, tag=None):
        """Send a request; (tag, future of its reply tuple)."""
        if self.dead is not None:
            self._raisedead()
        t = self._tag() if tag is None else tag
        fut = self.loop.create_future()
        self.reqs[t] = _Req(fut)
        self.transport.write(ninep.pack(type, t, *args))
        return t, fut

    def start_write(self, fid, offset, data):
        """Send a Twrite without copying data into the message."""
        if self.dead is not None:
            self._raisedead()
        t = self._tag()
        fut = self.loop.create_future()
        self.reqs[t] = _Req(fut)
        self.transport.writelines([_TWRITE.pack(_TWRITE.size + len(data), ninep.Twrite, t,
                                                fid, offset, len(data)), data])
        return t, fut

    @staticmethod
    def check(r):
        if r.type == ninep.Rerror:
            raise NinepError(r.ename)
        return r

    async def rpc(self, type, *args, tag=None, late=None, keep=False):
        """Send a request and return its reply (Rerror: NinepError).

        Cancelled while it waits, the request is taken back (Tflush) and
        CancelledError raised at once; a reply that comes before the Rflush
        (the server had done the request) is handed to late(reply) when
        given (late(None): it was taken back, nothing came).  keep=True
        waits for the Rflush instead and, when the reply beat it, returns
        that reply (the cancellation is dropped: the request was done); a
        second cancellation while it waits is ignored."""
        t, fut = self.start(type, *args, tag=tag)
        return await self.wait(t, fut, late=late, keep=keep)

    async def wait(self, t, fut, late=None, keep=False):
        """Await the reply to the request (t, fut) from start(), as rpc does."""
        try:
            return self.check(await fut)
        except asyncio.CancelledError:
            q = self.reqs.get(t)
            r = None
            if fut.done() and not fut.cancelled():
                r = fut.result()                      # delivered: the tag is free
            elif q is not None and q.reply is not None:
                r = q.reply                           # came while we were cancelled
                del self.reqs[t]
                self.tags.discard(t)
            if r is not None:
                if keep:
                    return self.check(r)
                if late is not None:
                    late(r)
                raise
            if q is None or q.flushed or q.oldtag is not None or self.dead is not None:
                raise
            box = []
            q.late = box.append if keep else late
            q.flushed = True
            ft, ffut = self._startflush(t)
            if not keep:
                raise
            deadline = self.loop.time() + FLUSHWAIT
            while not ffut.done():
                left = deadline - self.loop.time()
                if left <= 0:
                    break                             # a server that does not answer Tflush
                try:
                    await asyncio.wait_for(asyncio.shield(ffut), left)
                except asyncio.CancelledError:
                    continue
                except (ConnectionError, asyncio.TimeoutError):
                    break
            if box and box[0] is not None:
                return self.check(box[0])
            if late is not None:
                late(None)
            raise

    def _startflush(self, oldtag):
        t = self._tag()
        fut = self.loop.create_future()
        self.reqs[t] = _Req(fut, oldtag=oldtag)
        self.transport.write(ninep.pack(ninep.Tflush, t, oldtag))
        return t, fut

    def abort(self, tag, reply):
        """Take back a request someone else waits for (Tflush): when the
        Rflush comes and no reply did, its waiter gets reply instead."""
        q = self.reqs.get(tag)
        if q is None or q.flushed or q.oldtag is not None or self.dead is not None:
            return

        def taken(r, fut=q.fut):
            if not fut.done():
                fut.set_result(r if r is not None else reply)
        q.late = taken
        q.flushed = True
        self._startflush(tag)

    # -- fids --

    def newfid(self) -> int:
        if self.freefids:
            return self.freefids.pop()
        self.nfids += 1
        return self.nfids

    @staticmethod
    def names(path) -> list:
        if isinstance(path, (list, tuple)):
            return list(path)
        return [x for x in path.split("/") if x and x != "."]

    async def walk(self, path, root=None) -> int:
        """A new fid for path (from root, default the attach's);
        NinepError("file does not exist") if some element is missing."""
        names = self.names(path)
        if root is None:
            root = self.root
        fid = self.newfid()
        made = False
        try:
            while not made or names:
                step, names = names[:ninep.MAXWELEM], names[ninep.MAXWELEM:]
                r = await self.rpc(ninep.Twalk, fid if made else root, fid, step)
                if len(r.wqid) != len(step):
                    raise NinepError("file does not exist")
                made = True
        except BaseException:
            if made:
                self.clunk_nowait(fid)
            else:
                self.freefids.append(fid)
            raise
        return fid

    async def walkopen(self, path, mode, root=None, late=None, keep=False) -> int:
        """A new fid for path, opened; the Twalk and the Topen go in one
        write.  An open that waits (listen) and is cancelled is flushed:
        late(fid) is called if the open happened all the same (the fid is
        then the caller's), or, with keep=True, the fid returned."""
        names = self.names(path)
        if root is None:
            root = self.root
        if len(names) > ninep.MAXWELEM:
            fid = await self.walk(names, root)
            try:
                await self.rpc(ninep.Topen, fid, mode)
            except BaseException:
                self.clunk_nowait(fid)
                raise
            return fid
        if self.dead is not None:
            self._raisedead()
        fid = self.newfid()
        wt = self._tag()
        ot = self._tag()
        wfut = self.loop.create_future()
        ofut = self.loop.create_future()
        self.reqs[wt] = _Req(wfut)
        self.reqs[ot] = _Req(ofut)
        self.transport.write(ninep.pack(ninep.Twalk, wt, root, fid, names) +
                             ninep.pack(ninep.Topen, ot, fid, mode))
        try:
            rw = await asyncio.shield(wfut)
        except asyncio.CancelledError:
            # the walk is quick: let it finish, then take the open back
            self._afterwalk(wfut, ot, ofut, fid, late)
            raise
        except BaseException:
            raise
        if rw.type == ninep.Rerror or len(rw.wqid) != len(names):
            # no fid was made: the Topen fails at once; the fid number is
            # free again once its reply is in
            ofut.add_done_callback(lambda f, fid=fid: self._freefid_after(f, fid))
            raise NinepError(rw.ename if rw.type == ninep.Rerror else "file does not exist")

        def lateopen(r, fid=fid):
            if r is not None and r.type == ninep.Ropen and late is not None:
                late(fid)
            else:
                self.clunk_nowait(fid)
        try:
            await self.wait(ot, ofut, late=lateopen, keep=keep)
        except asyncio.CancelledError:
            raise                           # wait() handed the fid to lateopen
        except BaseException:
            self.clunk_nowait(fid)
            raise
        return fid

    def _afterwalk(self, wfut, ot, ofut, fid, late):
        def walked(f):
            ok = (not f.cancelled() and f.exception() is None and f.result().type == ninep.Rwalk)

            def lateopen(r):
                if r is not None and r.type == ninep.Ropen and late is not None:
                    late(fid)
                elif ok:
                    self.clunk_nowait(fid)
            q = self.reqs.get(ot)
            if q is not None and not q.flushed:
                q.late = lateopen
                q.flushed = True
                ofut.cancel()
                self._startflush(ot)
            elif ofut.done() and not ofut.cancelled() and ofut.exception() is None:
                lateopen(ofut.result())
        wfut.add_done_callback(walked)

    def _freefid_after(self, f, fid):
        self.freefids.append(fid)

    def clunk_nowait(self, fid):
        """Clunk fid; the reply (and any error) is not waited for."""
        if self.dead is not None:
            return
        try:
            t, fut = self.start(ninep.Tclunk, fid)
        except (ConnectionError, NinepError):
            return
        fut.add_done_callback(lambda f, fid=fid: self._clunked(f, fid))

    def _clunked(self, f, fid):
        if not f.cancelled():
            f.exception()
        if self.dead is None:
            self.freefids.append(fid)

    async def clunk(self, fid):
        """Clunk fid (errors and a lost connection are ignored)."""
        try:
            await self.rpc(ninep.Tclunk, fid)
        except (ConnectionError, NinepError):
            return
        if self.dead is None:
            self.freefids.append(fid)

    # -- I/O --

    def iounit(self) -> int:
        return self.msize - IOHDRSZ

    async def read(self, fid, count, offset=0, late=None, keep=False) -> bytes:
        count = min(count, self.iounit())
        return (await self.rpc(ninep.Tread, fid, offset, count, late=late, keep=keep)).data

    async def write(self, fid, data, offset=0, keep=False) -> int:
        """Write all of data, in iounit pieces; the count written."""
        data = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        if len(data) == 0:
            return (await self.rpc(ninep.Twrite, fid, offset, b"", keep=keep)).count
        n = 0
        unit = self.iounit()
        while n < len(data):
            if self._paused:
                await self._drain()
            piece = data[n:n + unit]
            t, fut = self.start_write(fid, offset + n, piece)
            w = (await self.wait(t, fut, keep=keep)).count
            if w <= 0:
                break
            n += w
        return n

    async def readall(self, fid, limit=16 << 20) -> bytes:
        out = bytearray()
        while len(out) < limit:
            d = await self.read(fid, self.iounit(), len(out))
            if not d:
                break
            out += d
        return bytes(out)

    async def stat(self, fid):
        """(type, dev, qid, mode, atime, mtime, length, name, uid, gid, muid)."""
        return ninep.unpackstat((await self.rpc(ninep.Tstat, fid)).stat)

    async def dirread(self, fid) -> list:
        out = []
        off = 0
        while True:
            d = await self.read(fid, self.iounit(), off)
            if not d:
                return out
            off += len(d)
            out.extend(ninep.unpackstats(d))

    def close(self):
        if self.transport is not None:
            self.transport.close()
        if self.dead is None:
            self._die(ConnectionResetError(_errno.ECONNRESET, "9P connection closed"))

    async def wait_closed(self):
        await asyncio.shield(self.closed)


# ---- errors --------------------------------------------------------------------

def _err(e, path):
    """The exception for what a request met: devip's text as OSError."""
    if isinstance(e, NinepError):
        return oserror(str(e), "/net/" + path)
    if isinstance(e, ConnectionResetError):
        return ConnectionResetError(_errno.ECONNRESET, "net9 server: %s" % (e.strerror or e))
    return e


# ---- Net: one 9P connection --------------------------------------------------------

class Net:
    """One 9P connection to a net9 serve, for any number of conversations:
    net = await Net.connect(srv=None, user=None); await net.dial(addr)...;
    net.close() (or async with)."""

    def __init__(self, client: Client, srv: str, user: str):
        self.cl = client
        self.srv = srv
        self.user = user
        self.refs = 0
        self.implicit = False
        self._key = None

    @classmethod
    async def connect(cls, srv: str = None, user: str = None, timeout: float = 10.0) -> "Net":
        srv = srv or default_srv()
        user = user or myname()
        try:
            cl = await Client.connect(srv, uname=user, timeout=timeout)
        except ValueError as e:
            raise ServerUnreachable(_errno.EINVAL, str(e), srv) from None
        except NinepError as e:
            if str(e).startswith("permission denied"):
                raise PermissionError(_errno.EACCES, str(e), srv) from None
            raise ServerUnreachable(_errno.EPROTO, "9P: %s" % e, srv) from None
        except asyncio.TimeoutError:
            raise ServerUnreachable(_errno.ETIMEDOUT, "timed out", srv) from None
        except (OSError, EOFError) as e:
            en = getattr(e, "errno", None) or _errno.ECONNREFUSED
            why = getattr(e, "strerror", None) or str(e) or type(e).__name__
            raise ServerUnreachable(en, why, srv) from None
        return cls(cl, srv, user)

    def __repr__(self):
        return "net9.aio.Net(srv=%r)" % self.srv

    @property
    def closed(self):
        return self.cl.dead is not None

    def _acquire(self):
        self.refs += 1

    def _release(self):
        self.refs -= 1
        if self.refs <= 0 and self.implicit:
            self.close()

    def close(self):
        if self._key is not None:
            _shared.pop(self._key, None)
            self._key = None
        self.cl.close()

    async def wait_closed(self):
        await self.cl.wait_closed()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()
        await self.wait_closed()

    # -- files --

    async def _open(self, path, mode, **kw):
        try:
            return await self.cl.walkopen(path, mode, **kw)
        except (NinepError, ConnectionResetError) as e:
            raise _err(e, path) from None

    async def _read(self, fid, n, path, **kw):
        try:
            return await self.cl.read(fid, n, 0, **kw)
        except (NinepError, ConnectionResetError) as e:
            raise _err(e, path) from None

    async def _write(self, fid, data, path, **kw):
        try:
            return await self.cl.write(fid, data, 0, **kw)
        except (NinepError, ConnectionResetError) as e:
            raise _err(e, path) from None

    async def cat(self, path: str) -> str:
        """The text of a file under /net (e.g. "tcp/stats")."""
        path = path.strip("/")
        fid = await self._open(path, OREAD)
        try:
            return (await self.cl.readall(fid)).decode("utf-8", "replace")
        except (NinepError, ConnectionResetError) as e:
            raise _err(e, path) from None
        finally:
            self.cl.clunk_nowait(fid)

    async def ls(self, path: str = "") -> list:
        """(name, owner, isdir) for each entry of a directory under /net."""
        path = path.strip("/")
        fid = await self._open(path, OREAD)
        try:
            ents = await self.cl.dirread(fid)
        except (NinepError, ConnectionResetError) as e:
            raise _err(e, path) from None
        finally:
            self.cl.clunk_nowait(fid)
        return [(st[7], st[8], bool(st[3] & ninep.DMDIR)) for st in ents]

    async def _clone(self, net):
        try:
            ctl = await self._open(net + "/clone", ORDWR)
        except FileNotFoundError:
            raise FileNotFoundError(_errno.ENOENT, "unknown network %s" % net,
                                    "/net/%s" % net) from None
        try:
            n = (await self._read(ctl, 64, net + "/clone")).decode().strip()
        except BaseException:
            self.cl.clunk_nowait(ctl)
            raise
        return ctl, n

    # -- dial(2) --

    async def dial(self, addr: str, local: str = None, timeout: float = None) -> AsyncConn:
        """Connect to addr ([net!]host!service); an AsyncConn.  local:
        [addr!]port to call from.  timeout: seconds for the connect
        (TimeoutError; None waits as devip does).  Cancelling it flushes
        the connect and frees the conversation."""
        net, host, port, rest = parseaddr(addr)
        if host == "*":
            raise AddrError("bad address %r: cannot dial *" % addr)
        lmsg = _localpart(local, net) if local else None
        err = None
        for a in await _resolve(host, net):
            try:
                if timeout is None:
                    return await self._call(net, "%s!%s%s" % (a, port, rest), lmsg)
                try:
                    return await asyncio.wait_for(
                        self._call(net, "%s!%s%s" % (a, port, rest), lmsg), timeout)
                except asyncio.TimeoutError:
                    raise TimeoutError(_errno.ETIMEDOUT, "timed out") from None
            except OSError as e:
                err = e
                if isinstance(e, (ServerUnreachable, ConnectionResetError)):
                    break
                if getattr(e, "errno", None) == _errno.ENOENT:
                    break
        raise err

    async def _call(self, net, raddr, local):
        ctl, n = await self._clone(net)
        d = "%s/%s" % (net, n)
        ok = False
        try:
            msg = "connect " + raddr + (" " + local if local else "")
            await self._write(ctl, msg.encode(), d + "/ctl")
            data = await self._open(d + "/data", ORDWR)
            ok = True
        finally:
            if not ok:
                self.cl.clunk_nowait(ctl)
        c = AsyncConn(self, net, n, ctl, data)
        c._peer = raddr.split("!", 2)[:2]
        return c

    async def announce(self, addr: str) -> "Announcement":
        """Announce addr ([net!][host!]service; host * or none: every
        address); an Announcement."""
        net, host, port, rest = parseaddr(addr, announcing=True)
        if host == "*":
            local = port + rest
        else:
            local = "%s!%s%s" % ((await _resolve(host, net))[0], port, rest)
        ctl, n = await self._clone(net)
        ok = False
        try:
            await self._write(ctl, ("announce " + local).encode(), "%s/%s/ctl" % (net, n))
            ok = True
        finally:
            if not ok:
                self.cl.clunk_nowait(ctl)
        return Announcement(self, net, n, ctl)


async def _resolve(host, net):
    lit = _literal(host)
    if lit is not None:
        return [lit]
    from net9.dial import resolve
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, resolve, host, net)


# one shared connection per (event loop, server, user) for the module functions
_shared = {}


async def _net(net, srv, user):
    if net is not None:
        return net
    srv = srv or default_srv()
    user = user or myname()
    key = (asyncio.get_running_loop(), srv, user)
    got = _shared.get(key)
    while got is not None:
        if isinstance(got, asyncio.Future):
            await asyncio.shield(got)
            got = _shared.get(key)
            continue
        if not got.closed:
            return got
        _shared.pop(key, None)
        got = None
    pending = asyncio.get_running_loop().create_future()
    _shared[key] = pending
    try:
        n = await Net.connect(srv, user)
    except BaseException:
        _shared.pop(key, None)
        pending.set_result(None)
        raise
    n.implicit = True
    n._key = key
    _shared[key] = n
    pending.set_result(None)
    return n


def _done_with(n):
    """A shared Net that got no conversation (a failed dial) goes."""
    if n.implicit and n.refs <= 0:
        n.close()


# ---- conversations ---------------------------------------------------------------

class _Conversation:
    def __init__(self, net: Net, proto: str, n: str, ctl: int):
        self.net = net
        self.proto = proto
        self.number = int(n)
        self.name = "%s/%s" % (proto, n)
        self.dir = "/net/" + self.name
        self._ctl = ctl
        self._gone = False
        net._acquire()

    def _file(self, name):
        return self.name + "/" + name

    async def _text(self, name):
        return (await self.net.cat(self._file(name))).strip()

    async def local(self) -> str:
        """The local address, as devip prints it: addr!port."""
        return await self._text("local")

    async def remote(self) -> str:
        return await self._text("remote")

    async def status(self) -> str:
        """The status file's line (its first word is the TCP state)."""
        return await self._text("status")

    async def ctl(self, msg: str) -> None:
        """Write one control message (keepalive, hangup...)."""
        if self._gone:
            raise ValueError("I/O operation on closed conversation")
        await self.net._write(self._ctl, msg.encode(), self._file("ctl"))

    async def hangup(self) -> None:
        """hangup(2): "hangup" to ctl: every reader and writer is woken."""
        await self.ctl("hangup")

    def _closectl(self):
        if not self._gone:
            self._gone = True
            self.net.cl.clunk_nowait(self._ctl)
            self.net._release()


def _hostport(text):
    a, _, p = text.rpartition("!")
    try:
        return a, int(p)
    except ValueError:
        return a, p


class AsyncConn(_Conversation):
    """A connected conversation: asyncio's StreamReader and StreamWriter in
    one object (see the module's docstring).  net9.aio.Conn is the same
    class (its name before the kinds of connection had names of their own)."""

    def __init__(self, net, proto, n, ctl, data):
        super().__init__(net, proto, n, ctl)
        self._data = data
        self._buf = bytearray()
        self._eof = False
        self._rerr = None              # an error a flushed read met after all
        self._reading = False
        self._rtag = None
        self._wbuf = bytearray()
        self._wtask = None
        self._werr = None
        self._wdone = []               # futures waiting for the writer to catch up
        self._closing = None
        self._peer = None
        self._sock = None
        self.stream = proto not in ("udp", "icmp", "icmpv6")
        self.limit = 1 << 16           # readline's, as StreamReader's

    def __repr__(self):
        return "<net9.aio.AsyncConn %s%s>" % (self.dir, " closing" if self._closing else "")

    # -- reading --

    def _late(self, r):
        """A flushed Tread answered after all: keep what it brought."""
        if r is None:
            return
        if r.type == ninep.Rread:
            if r.data:
                self._buf += r.data
            elif self.stream:
                self._eof = True
        elif r.type == ninep.Rerror:
            self._rerr = r.ename

    async def _fill(self, n=None):
        """One Tread on data; what it brings goes to the buffer."""
        if self._reading:
            raise RuntimeError("read() called while another coroutine is already "
                               "waiting for incoming data")
        if self._closing is not None:
            self._eof = True
            return
        if self._rerr is not None:
            e, self._rerr = self._rerr, None
            raise oserror(e, "/net/" + self._file("data"))
        cl = self.net.cl
        self._reading = True
        try:
            t, fut = cl.start(ninep.Tread, self._data, 0, cl.iounit() if n is None
                              else min(n, cl.iounit()))
            self._rtag = t
            r = await cl.wait(t, fut, late=self._late)
        except (NinepError, ConnectionResetError) as e:
            if self._closing is not None:
                self._eof = True
                return
            raise _err(e, self._file("data")) from None
        finally:
            self._reading = False
            self._rtag = None
        if r.data:
            self._buf += r.data
        elif self.stream or self._closing is not None:
            self._eof = True

    def at_eof(self) -> bool:
        return self._eof and not self._buf

    async def read(self, n: int = -1) -> bytes:
        """Up to n bytes as soon as any are there; n=-1: everything to end
        of file; b"" at end of file."""
        if n == 0:
            return b""
        if n < 0:
            while not self._eof:
                await self._fill()
            d = bytes(self._buf)
            self._buf.clear()
            return d
        if not self._buf and not self._eof:
            await self._fill()
        d = bytes(self._buf[:n])
        del self._buf[:n]
        return d

    async def datagram(self) -> bytes:
        """One read of data as it comes (UDP, ICMP: one datagram)."""
        if self._buf:
            d = bytes(self._buf)
            self._buf.clear()
            return d
        if self._eof:
            return b""
        if self._reading:
            raise RuntimeError("read() called while another coroutine is already "
                               "waiting for incoming data")
        await self._fill()
        d = bytes(self._buf)
        self._buf.clear()
        return d

    async def readexactly(self, n: int) -> bytes:
        if n < 0:
            raise ValueError("readexactly size can not be less than zero")
        while len(self._buf) < n:
            if self._eof:
                part = bytes(self._buf)
                self._buf.clear()
                raise asyncio.IncompleteReadError(part, n)
            await self._fill()
        d = bytes(self._buf[:n])
        del self._buf[:n]
        return d

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        if not separator:
            raise ValueError("Separator should be at least one-byte string")
        start = 0
        while True:
            i = self._buf.find(separator, start)
            if i >= 0:
                end = i + len(separator)
                if end > self.limit:
                    raise asyncio.LimitOverrunError("Separator is found, but chunk is "
                                                    "longer than limit", i)
                d = bytes(self._buf[:end])
                del self._buf[:end]
                return d
            if len(self._buf) > self.limit:
                raise asyncio.LimitOverrunError("Separator is not found, and chunk exceed "
                                                "the limit", len(self._buf))
            if self._eof:
                part = bytes(self._buf)
                self._buf.clear()
                raise asyncio.IncompleteReadError(part, None)
            start = max(0, len(self._buf) - len(separator) + 1)
            await self._fill()

    async def readline(self) -> bytes:
        """One line, with its b"\\n"; what is left at end of file."""
        try:
            return await self.readuntil(b"\n")
        except asyncio.IncompleteReadError as e:
            return e.partial
        except asyncio.LimitOverrunError as e:
            if self._buf.startswith(b"\n", e.consumed):
                del self._buf[:e.consumed + 1]
            else:
                self._buf.clear()
            raise ValueError(e.args[0])

    def __aiter__(self):
        return self

    async def __anext__(self):
        ln = await self.readline()
        if ln == b"":
            raise StopAsyncIteration
        return ln

    # -- writing --

    def write(self, data) -> None:
        """Queue data; a task writes it (one Twrite of up to iounit bytes
        at a time); drain() waits for it."""
        if self._closing is not None or self._gone:
            raise ConnectionResetError(_errno.EPIPE, "write to a closed conversation")
        if self._werr is not None:
            raise self._werr
        if not data:
            return
        self._wbuf += data
        if self._wtask is None:
            self._wtask = asyncio.get_running_loop().create_task(self._writer())

    def writelines(self, data) -> None:
        for d in data:
            self.write(d)

    async def _writer(self):
        cl = self.net.cl
        try:
            while self._wbuf:
                n = min(len(self._wbuf), cl.iounit())
                piece = bytes(self._wbuf[:n])
                del self._wbuf[:n]
                await self.net._write(self._data, piece, self._file("data"))
                self._wake_writers()
        except BaseException as e:
            if isinstance(e, asyncio.CancelledError):
                e = ConnectionResetError(_errno.EPIPE, "write cancelled")
            self._werr = e
            self._wbuf.clear()
        finally:
            self._wtask = None
            self._wake_writers(True)

    def _wake_writers(self, all_=False):
        keep = []
        for f, hw in self._wdone:
            if all_ or len(self._wbuf) <= hw:
                if not f.done():
                    f.set_result(None)
            else:
                keep.append((f, hw))
        self._wdone = keep

    async def drain(self, high: int = None) -> None:
        """Wait until what write() queued is down to high bytes (default:
        one 9P message's worth) or all written; the error a write met."""
        if high is None:
            high = self.net.cl.iounit()
        while self._werr is None and self._wtask is not None and len(self._wbuf) > high:
            f = asyncio.get_running_loop().create_future()
            self._wdone.append((f, high))
            await f
        if self._werr is not None:
            raise self._werr

    async def _flushed(self):
        while self._wtask is not None:
            f = asyncio.get_running_loop().create_future()
            self._wdone.append((f, -1))
            await f

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self):
        raise NotImplementedError("devip has no half-close")

    def is_closing(self) -> bool:
        return self._closing is not None

    def close(self) -> None:
        """Close: what was written is sent, then data and ctl are clunked
        (the last reference: TCP closes gracefully).  A read in progress
        ends with end of file."""
        if self._closing is not None:
            return
        loop = asyncio.get_running_loop()
        self._closing = loop.create_task(self._aclose())

    async def _aclose(self):
        try:
            await self._flushed()
        except Exception:
            pass
        cl = self.net.cl
        if self._rtag is not None:
            cl.abort(self._rtag, (ninep.Rread, self._rtag, b""))
        cl.clunk_nowait(self._data)
        self._closectl()

    async def wait_closed(self) -> None:
        if self._closing is not None:
            await asyncio.shield(self._closing)

    async def aclose(self):
        self.close()
        await self.wait_closed()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()

    def get_extra_info(self, name, default=None):
        """peername (dialed: the address dialed), sockname (after
        addresses()), the conversation's directory as 'dir'."""
        if name == "peername":
            if self._peer is None:
                return default
            return _hostport("!".join(self._peer))
        if name == "sockname":
            return self._sock if self._sock is not None else default
        if name == "dir":
            return self.dir
        if name == "net":
            return self.net
        return default

    async def addresses(self):
        """((local addr, port), (remote addr, port)), read from the
        conversation's files (and kept for get_extra_info)."""
        loc, rem = await asyncio.gather(self.local(), self.remote())
        self._sock = _hostport(loc)
        self._peer = rem.rsplit("!", 1)
        return self._sock, _hostport(rem)

    @property
    def transport(self):
        return self


Conn = AsyncConn          # the name before it had its own


class Announcement(_Conversation):
    """An announced conversation: await listen() for each call (or async
    for call in ann); close() ends the announcement."""

    def __init__(self, net, proto, n, ctl):
        super().__init__(net, proto, n, ctl)
        self._calls = []               # calls that came to a cancelled listen
        self._callwaiters = []

    def __repr__(self):
        return "<net9.aio.Announcement %s%s>" % (self.dir, " closed" if self._gone else "")

    @property
    def closed(self):
        return self._gone

    def _latecall(self, fid):
        """A flushed listen's open came through: keep the call."""
        loop = asyncio.get_running_loop()

        async def number():
            try:
                n = (await self.net.cl.read(fid, 64, 0)).decode().strip()
            except Exception:
                self.net.cl.clunk_nowait(fid)
                return
            self._calls.append(Call(self.net, self.proto, n, fid))
            for f in self._callwaiters:
                if not f.done():
                    f.set_result(None)
            self._callwaiters = []
        loop.create_task(number())

    async def listen(self) -> "Call":
        """listen(2): wait for the next call.  Cancelled, the wait is
        flushed; a call that came meanwhile goes to the next listen.  When
        the announcement is hung up: OSError "listen hungup"."""
        if self._gone:
            raise ValueError("listen on a closed announcement")
        if self._calls:
            return self._calls.pop(0)
        path = self._file("listen")
        h = await self.net._open(path, ORDWR, late=self._latecall)
        try:
            n = (await self.net._read(h, 64, path)).decode().strip()
        except BaseException:
            self.net.cl.clunk_nowait(h)
            raise
        return Call(self.net, self.proto, n, h)

    async def accept(self) -> AsyncConn:
        """listen(), then accept(): the next call's AsyncConn."""
        return await (await self.listen()).accept()

    def __aiter__(self):
        return self

    async def __anext__(self) -> "Call":
        try:
            return await self.listen()
        except (ValueError, ConnectionResetError):
            raise StopAsyncIteration
        except OSError as e:
            if e.strerror in ("listen hungup", "i/o on hungup channel"):
                raise StopAsyncIteration
            raise

    def close(self):
        self._closectl()

    async def wait_closed(self):
        pass

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()


class Call(_Conversation):
    """An incoming call: accept() it for an AsyncConn, or reject() it."""

    def __repr__(self):
        return "<net9.aio.Call %s%s>" % (self.dir, " closed" if self._gone else "")

    @property
    def closed(self):
        return self._gone

    async def accept(self) -> AsyncConn:
        """accept(2): "accept N" to ctl (devip refuses it; ignored), open
        data; the AsyncConn takes over the call."""
        if self._gone:
            raise ValueError("accept of a closed call")
        try:
            await self.ctl("accept %d" % self.number)
        except OSError:
            pass
        data = await self.net._open(self._file("data"), ORDWR)
        c = AsyncConn(self.net, self.proto, str(self.number), self._ctl, data)
        self._gone = True
        self.net._release()
        return c

    async def reject(self, cause: str = "") -> None:
        """reject(2): "reject N cause" (devip refuses it too), then close."""
        if self._gone:
            return
        try:
            await self.ctl(("reject %d %s" % (self.number, cause)).rstrip())
        except OSError:
            pass
        self.close()

    def close(self):
        self._closectl()


# ---- dial(2)'s functions ----------------------------------------------------------------

async def dial(addr: str, local: str = None, *, srv: str = None, user: str = None,
               timeout: float = None, net: Net = None) -> AsyncConn:
    """dial(2): an AsyncConn to addr ([net!]host!service)."""
    n = await _net(net, srv, user)
    try:
        return await n.dial(addr, local=local, timeout=timeout)
    finally:
        if net is None:
            _done_with(n)


async def announce(addr: str, *, srv: str = None, user: str = None,
                   net: Net = None) -> Announcement:
    """announce(2): an Announcement of addr ([net!][host!]service)."""
    n = await _net(net, srv, user)
    try:
        return await n.announce(addr)
    finally:
        if net is None:
            _done_with(n)


def listen(ann: Announcement) -> "_Listen":
    """listen(2): await listen(ann) for the next call, or async for call in
    listen(ann) for each (until the announcement is closed or hung up)."""
    return _Listen(ann)


class _Listen:
    def __init__(self, ann):
        self.ann = ann

    def __await__(self):
        return self.ann.listen().__await__()

    def __aiter__(self):
        return self.ann


async def accept(call: Call) -> AsyncConn:
    return await call.accept()


async def reject(call: Call, cause: str = "") -> None:
    await call.reject(cause)


async def hangup(conv) -> None:
    await conv.hangup()


async def open_connection(addr: str, local: str = None, *, srv: str = None,
                          user: str = None, timeout: float = None, net: Net = None):
    """(reader, writer) for a connection to addr, as asyncio's
    open_connection gives them: here both are the same AsyncConn."""
    c = await dial(addr, local, srv=srv, user=user, timeout=timeout, net=net)
    return c, c


class Server:
    """What start_server returns: accepts calls on an announcement and runs
    the callback for each, as asyncio.Server does."""

    def __init__(self, cb, ann: Announcement):
        self.cb = cb
        self.announcement = ann
        self._task = None
        self._conns = set()
        self._closed = asyncio.get_running_loop().create_future()

    def __repr__(self):
        return "<net9.aio.Server %s>" % self.announcement.dir

    def _start(self):
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self):
        loop = asyncio.get_running_loop()
        try:
            async for call in self.announcement:
                # accepted in its own task: the next listen goes out at once
                t = loop.create_task(self._serve(call))
                self._conns.add(t)
                t.add_done_callback(self._conns.discard)
        finally:
            if not self._closed.done():
                self._closed.set_result(None)

    async def _serve(self, call):
        try:
            conn = await call.accept()
        except OSError:
            call.close()
            return
        try:
            r = self.cb(conn, conn)
            if asyncio.iscoroutine(r):
                await r
        except Exception as e:
            asyncio.get_running_loop().call_exception_handler({
                "message": "net9.aio.Server callback failed", "exception": e,
                "protocol": conn})

    def is_serving(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start_serving(self):
        self._start()

    async def serve_forever(self):
        self._start()
        try:
            await asyncio.shield(self._closed)
        except asyncio.CancelledError:
            self.close()
            raise

    def close(self):
        """Stop taking calls (the announcement is closed); the
        connections already made go on."""
        self.announcement.close()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        elif not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self):
        if self._task is not None:
            try:
                await asyncio.shield(self._task)
            except (asyncio.CancelledError, Exception):
                pass

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()
        await self.wait_closed()

    @property
    def sockets(self):
        return ()


async def start_server(client_connected_cb, addr: str, *, srv: str = None, user: str = None,
                       net: Net = None, start_serving: bool = True) -> Server:
    """Announce addr and call client_connected_cb(reader, writer) (a
    coroutine function or a plain one) for each call, as
    asyncio.start_server does; both are the call's AsyncConn."""
    ann = await announce(addr, srv=srv, user=user, net=net)
    s = Server(client_connected_cb, ann)
    if start_serving:
        s._start()
    return s
