"""net9's 9P server: 9P2000 and 9P2000.L over unix sockets, TCP and
standard input/output, serving devip's /net tree (net9.netfs).

Everything runs in one event-loop thread (net9.stack's Loop, or anything
with add_reader/remove_reader/add_writer/remove_writer/call_soon).  Each
connection is read without blocking; every T-message is answered on its
own, so replies go out of order.  A request that would block in devip (a
data read, a listen open, a connect, a data write under flow control, a log
read) is parked on its conversation and completed from woken(convs), the
list Fs.drain() returns, which the owner of the loop must hand over after
every turn of the engines.  Tflush cancels a parked request (devip.md
section 14 point 2); a clunk of its fid, hangup or close of its conversation
and the client going away end parked requests too.

Protocol rules (net9(4), CLIENT LIMITS, for what each client sends): Tversion offers
msize up to 128 KiB + IOHDRSZ by default and never replies larger than the
negotiated msize; "9P2000.L" selects 9P2000.L (Rlerror with errno),
"9P2000.u" and "9P2000" get 9P2000 (Rerror with devip's text); Tauth says no
authentication is needed (Rlerror ENOENT in .L, as diod's tools require).

Who a client is (net9.peer) is settled when the connection is accepted:
the peer's credentials on a unix socket, the owner of its socket on TCP
loopback, none for a remote TCP client, trusted on standard input/output.
Tattach then accepts a uname (and 9P2000.L n_uname) only if that peer may
use it: its own, or any for root and the server's own user
(Server.attacher; net9(4), "Who a client is").
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

import errno
import os
import pwd
import socket
import struct
import sys
import time
import weakref

from net9 import errors, namespace, ninep
from net9 import peer as _peer
from net9.errors import (ERRNO, Eattach, Efidinuse, Eisdir, Enoauth, Enotopen,  # noqa: F401
                         Enotsupp, Etagused, Etoomany, Eunknownfid, Eversion,
                         Net9Error, errno_of)
from net9.peer import Peer, TRUSTED, LOCAL, REMOTE, UNKNOWN, NONE
from net9.netfs import (NetFs, Fid, Wait, QID, TYPE, qidtype, QTDIR,
                        Qtopdir, Qprotodir, Qconvdir, Qndb)

_RREADHDR = struct.Struct("<IBHI")          # Rread: size type tag count

DEFAULT_MSIZE = 128 * 1024 + ninep.IOHDRSZ
MAXIN = 16 << 20            # largest T-message accepted (py9p ignores msize on writes)
OUTHIGH = 4 << 20           # stop reading a client that does not read its replies
FINISHTIME = 10             # seconds a client at end of file has to read the last replies

NOFID = ninep.NOFID
NO32 = 0xFFFFFFFF

# 9P2000.L constants
S_IFDIR = 0o040000
S_IFREG = 0o100000
GETATTR_BASIC = 0x7FF
SETATTR_MODE, SETATTR_UID, SETATTR_GID, SETATTR_SIZE = 0x1, 0x2, 0x4, 0x8
V9FS_MAGIC = 0x01021997
DT_DIR, DT_REG = 4, 8
LOCK_SUCCESS = 0
F_UNLCK = 2


class Session:
    """One 9P connection (a client's session with the server): its fids,
    its outstanding parked requests and its buffers."""

    def __init__(self, server: Server, rfd: int, wfd: int, peer: Peer,
                 sock: Optional[socket.socket] = None, name: str = "?",
                 owned: Iterable[Any] = ()) -> None:
        self.server = server
        self.peer = peer               # who the client is (net9.peer.Peer)
        self.rfd = rfd
        self.wfd = wfd
        self.sock = sock
        self.name = name
        self.owned = owned             # fds to close with the connection
        self.inbuf = bytearray()
        self.out = bytearray()
        self.msize = DEFAULT_MSIZE
        self.dotl = False
        self.version = None
        self.fids = {}
        self.pending = {}              # tag -> Wait
        self.closed = False
        self.reading = False
        self.writing = False
        self.eof = False               # the client sent its last byte: close once replies are out
        self.nreq = 0

    # ---- output ---------------------------------------------------------------

    def send(self, msg: bytes) -> None:
        if self.closed:
            return
        if len(msg) > self.msize and self.version is not None:
            # never larger than msize (a bug if it happens): answer an error
            self.server.log("%s: reply of %d bytes > msize %d" % (self.name, len(msg), self.msize))
            tag = msg[5] | (msg[6] << 8)
            msg = (ninep.rlerror(tag, errno.EIO) if self.dotl
                   else ninep.rerror(tag, errors.Eio))
        self.out += msg
        self.server.dirty.add(self)

    def sendread(self, tag: int, data: bytes) -> None:
        """Rread of data: its header, then data straight into the output
        buffer (one copy less than send(ninep.rread(...)) for the hot path)."""
        if self.closed:
            return
        n = len(data)
        if 11 + n > self.msize and self.version is not None:
            self.send(ninep.rread(tag, data))          # send's msize guard answers
            return
        self.out += _RREADHDR.pack(11 + n, ninep.Rread, tag, n)
        self.out += data
        self.server.dirty.add(self)

    def error(self, tag: int, text: str) -> None:
        if self.dotl:
            self.send(ninep.rlerror(tag, errno_of(text)))
        else:
            b = text.encode()
            if len(b) > self.msize - 9:
                text = b[:max(0, self.msize - 9)].decode("utf-8", "ignore")
            self.send(ninep.rerror(tag, text))

    def flush(self) -> None:
        """Write what we can; keep the rest for when the fd is writable."""
        if self.closed or not self.out:
            return
        try:
            n = os.write(self.wfd, self.out)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            self.server.drop(self)
            return
        if n:
            del self.out[:n]
        if self.eof and not self.out:
            self.server.drop(self)
            return
        lp = self.server.loop
        if self.out and not self.writing:
            self.writing = True
            lp.add_writer(self.wfd, self.onwritable)
        elif not self.out and self.writing:
            self.writing = False
            lp.remove_writer(self.wfd)
        if len(self.out) > OUTHIGH and self.reading:
            self.reading = False
            lp.remove_reader(self.rfd)
        elif len(self.out) <= OUTHIGH and not self.reading and not self.eof:
            self.reading = True
            lp.add_reader(self.rfd, self.onreadable)

    def onwritable(self) -> None:
        self.flush()

    # ---- input ----------------------------------------------------------------

    def onreadable(self) -> None:
        srv = self.server
        try:
            data = os.read(self.rfd, 1 << 18)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            srv.finish(self)
            srv.flushall()
            return
        self.inbuf += data
        while True:
            maxin = max(self.msize, MAXIN)
            items, used, fatal = ninep.parse(self.inbuf, maxin, self.dotl)
            if used:
                del self.inbuf[:used]
            for it in items:
                if self.closed:
                    break
                srv.handle(self, it)
            # parse stops after a message of Tversion's type (well formed
            # or not): go on, in the new dialect if it changed.  (Stopping
            # only after a well-formed one left whole messages unparsed
            # until more input came: a client waiting for their replies
            # hung.)
            if fatal is not None or self.closed or not used or len(self.inbuf) < 4:
                break
        if fatal is not None and not self.closed:
            srv.log("%s: %s; closing the connection" % (self.name, fatal))
            srv.finish(self)
        srv.flushall()


class Server:
    """A 9P server for the /net tree of one stack.

    Server(fs, loop, eve=None, msize=DEFAULT_MSIZE, protos=None, log=None,
           trust_uname=False)
    loop: add_reader/remove_reader/add_writer/remove_writer/call_soon.
    The loop's owner calls server.woken(fs.drain()) after the engines ran
    (net9.stack.Stack: append server.woken to stack.wakehooks).
    eve may not be none (the unauthenticated user).  trust_uname: remote
    TCP clients attach as the uname they send instead of as none.  ns: a
    net9.ndb.NameService, for /net/cs and /net/dns (none: no such files).
    """

    def __init__(self, fs: Any, loop: Any, eve: Optional[str] = None,
                 msize: int = DEFAULT_MSIZE, protos: Optional[Iterable[str]] = None,
                 log: Optional[Callable[[str], None]] = None, start: Optional[float] = None,
                 trust_uname: bool = False, ns: Any = None) -> None:
        if (eve if eve is not None else fs.eve) == NONE:
            raise ValueError("eve cannot be %s (the user of unauthenticated clients)" % NONE)
        self.fs = fs
        self.loop = loop
        self.netfs = NetFs(fs, eve=eve, protos=protos, start=start, ns=ns)
        if ns is not None:
            # lookups finish on the loop: send the replies (a weak
            # reference: no cycle through the name service)
            me = weakref.ref(self)
            ns.after = lambda: me() and me().flushall()
        self.trust_uname = trust_uname
        self.uid = os.geteuid()        # the server's own user: may attach as anyone
        self.msize = msize
        self.conns = set()
        self.dirty = set()
        self.listeners = []            # (sock, path or None)
        self.logfn = log
        self.nconn = 0
        self._logpending = False
        fs.log.wakecb = self._logwake

    def log(self, msg: str) -> None:
        if self.logfn is not None:
            self.logfn(msg)

    # ---- transports ---------------------------------------------------------------

    def listen(self, addr: str, allow_remote: bool = False) -> str:
        """Serve on addr: "unix!PATH", "tcp!HOST!PORT" (loopback only unless
        allow_remote), or "-" (standard input/output).  Returns a
        description of what it listens on."""
        if addr == "-":
            # whoever started us: as trusted as our caller
            self.adopt(sys.stdin.fileno(), sys.stdout.fileno(), Peer.trusted("stdio"),
                       name="stdio")
            return "stdio"
        parts = addr.split("!")
        if parts[0] == "unix" and len(parts) >= 2:
            path = "!".join(parts[1:])
            return self.listen_unix(path)
        if parts[0] == "tcp" and len(parts) == 3:
            return self.listen_tcp(parts[1], int(parts[2]), allow_remote)
        raise ValueError("bad address %r: want unix!PATH, tcp!HOST!PORT or -" % addr)

    def listen_unix(self, path: str) -> str:
        d = os.path.dirname(path)
        if d and not os.path.isdir(d):
            os.makedirs(d, mode=0o700, exist_ok=True)
        if os.path.exists(path):
            # a stale socket from a dead server: remove it; a live one: refuse
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)
            else:
                probe.close()
                raise OSError(errno.EADDRINUSE, "%s: a server is already listening" % path)
            finally:
                probe.close()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            s.bind(path)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        s.listen(64)
        s.setblocking(False)
        self.listeners.append((s, path))
        self.loop.add_reader(s.fileno(), self._accept, s)
        return "unix!" + path

    def listen_tcp(self, host: str, port: int, allow_remote: bool = False) -> str:
        import ipaddress
        if host in ("*", ""):
            host = "::" if allow_remote else "127.0.0.1"
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError("tcp address must be numeric: %r" % host)
        if not ip.is_loopback and not allow_remote:
            raise ValueError("refusing to serve 9P on non-loopback address %s "
                             "(no authentication); allow it explicitly" % host)
        fam = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(64)
        s.setblocking(False)
        self.listeners.append((s, None))
        self.loop.add_reader(s.fileno(), self._accept, s)
        return "tcp!%s!%d" % (host, s.getsockname()[1])

    def _accept(self, ls: socket.socket) -> None:
        while True:
            try:
                s, peer = ls.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self.log("accept: %s" % e)
                return
            s.setblocking(False)
            if s.family in (socket.AF_INET, socket.AF_INET6):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if isinstance(peer, tuple):
                name = "tcp!%s!%d" % (peer[0], peer[1])
            else:
                name = "unix!%s" % (peer or ls.getsockname() or "?")
            # who it is, now: a client that already went away can no longer be told
            who = _peer.of_socket(s, peer if isinstance(peer, tuple) else None,
                                  self.trust_uname)
            self.adopt(s.fileno(), s.fileno(), who, sock=s, name=name)

    def adopt(self, rfd: int, wfd: int, peer: Any, sock: Optional[socket.socket] = None,
              name: str = "?", owned: Iterable[Any] = ()) -> Session:
        """Serve 9P on an already connected descriptor pair.  peer says
        who the client is: a net9.peer.Peer; an int, a local uid;
        "trusted" (the uname as sent, as on standard input/output); "none"
        (a remote client); or "socket": ask the socket rfd (SO_PEERCRED on
        a unix socket or socketpair, the owner of a loopback TCP client,
        none for a remote one)."""
        if isinstance(peer, str):
            if peer == "socket":
                s = socket.socket(fileno=os.dup(rfd))
                try:
                    peer = _peer.of_socket(s, trust_uname=self.trust_uname)
                finally:
                    s.close()
            elif peer == TRUSTED:
                peer = Peer.trusted(name)
            elif peer == NONE:
                peer = Peer.remote(name)
            else:
                raise ValueError("adopt: peer %r: want a Peer, a uid, "
                                 "'trusted', 'none' or 'socket'" % peer)
        elif isinstance(peer, int) and not isinstance(peer, bool):
            peer = Peer.local(peer)
        elif not isinstance(peer, Peer):
            raise TypeError("adopt: peer must say who the client is, not %r" % (peer,))
        os.set_blocking(rfd, False)
        if wfd != rfd:
            os.set_blocking(wfd, False)
        c = Session(self, rfd, wfd, peer, sock=sock, name=name, owned=owned)
        self.nconn += 1
        self.conns.add(c)
        c.reading = True
        self.loop.add_reader(rfd, c.onreadable)
        self.log("%s: connected, %s" % (name, peer))
        return c

    def drop(self, c: Session) -> None:
        """The connection is gone: abort its parked requests (no replies),
        clunk its fids, release its conversations."""
        if c.closed:
            return
        self.reset(c)
        c.closed = True
        self.conns.discard(c)
        self.dirty.discard(c)
        lp = self.loop
        if c.reading:
            lp.remove_reader(c.rfd)
        if c.writing:
            lp.remove_writer(c.wfd)
        if c.sock is not None:
            try:
                c.sock.close()
            except OSError:
                pass
        for fd in c.owned:
            try:
                os.close(fd)
            except OSError:
                pass
        self.log("%s: gone" % c.name)

    def finish(self, c: Session) -> None:
        """The client has sent all it will (end of file, or a message the
        connection cannot go on after): stop reading, abort its parked
        requests and clunk its fids as drop does, but let the replies
        already made go out first (a client that half-closes still reads
        them); drop when they are out, or after FINISHTIME seconds."""
        if c.closed or c.eof:
            return
        c.eof = True
        if c.reading:
            c.reading = False
            self.loop.remove_reader(c.rfd)
        self.reset(c)
        if not c.out:
            self.drop(c)
            return
        self.dirty.add(c)
        later = getattr(self.loop, "call_later", None)
        if later is not None:
            later(FINISHTIME, self.drop, c)

    def reset(self, c: Session) -> None:
        """Abort every parked request and clunk every fid (Tversion, drop)."""
        for _tag, w in list(c.pending.items()):
            self.netfs.cancel(w)
        c.pending.clear()
        for f in list(c.fids.values()):
            self.netfs.clunk(f)
        c.fids.clear()

    def close(self) -> None:
        """Stop serving: close every connection and listener (removing the
        unix sockets this server created)."""
        for c in list(self.conns):
            self.drop(c)
        for s, path in self.listeners:
            try:
                self.loop.remove_reader(s.fileno())
            except Exception:
                pass
            s.close()
            if path is not None:
                try:
                    os.unlink(path)
                except OSError:
                    pass
        self.listeners = []
        ns = self.netfs.ns
        if ns is not None:
            ns.close()

    def flushall(self) -> None:
        while self.dirty:
            c = self.dirty.pop()
            c.flush()

    # ---- wake-ups -----------------------------------------------------------------

    def woken(self, convs: list) -> None:
        """Re-check the requests parked on the woken conversations."""
        try:
            self.netfs.woken(convs)
        except Exception:               # a bug: log it, never stop the loop
            import traceback
            self.log("wake-up: %s" % traceback.format_exc())
        self.flushall()

    def _logwake(self) -> None:
        if not self._logpending and self.netfs.logwaits:
            self._logpending = True
            self.loop.call_soon(self._logrun)

    def _logrun(self) -> None:
        self._logpending = False
        self.netfs.logwoken()
        self.flushall()

    # ---- dispatch -----------------------------------------------------------------

    def handle(self, c: Session, it: Any) -> None:
        typ = it.type
        tag = it.tag
        c.nreq += 1
        if typ == ninep.BAD:
            self.log("%s: malformed message type %d: %s" % (c.name, it.msgtype, it.reason))
            c.error(tag, "malformed message: %s" % it.reason if not c.dotl else errors.Ebadarg)
            return
        if typ == ninep.UNKNOWN:
            c.error(tag, Enotsupp)
            return
        if typ == ninep.Tversion:
            self.version(c, tag, it.msize, it.version)
            return
        if c.version is None:
            c.error(tag, Eversion)
            return
        if tag in c.pending:
            c.error(tag, Etagused)
            return
        fn = DISPATCH.get(typ)
        if fn is None:
            c.error(tag, Enotsupp)
            return
        try:
            fn(self, c, tag, it)
        except Net9Error as e:
            c.error(tag, str(e))
        except Exception:          # a bug: answer, log, keep serving
            import traceback
            self.log("%s: internal error on type %d: %s" % (c.name, typ, traceback.format_exc()))
            c.pending.pop(tag, None)
            c.error(tag, errors.Eio)

    def version(self, c: Session, tag: int, msize: int, version: str) -> None:
        self.reset(c)
        if version.startswith("9P2000.L"):
            v, dotl = "9P2000.L", True
        elif version.startswith("9P2000"):
            v, dotl = "9P2000", False
        else:
            v, dotl = "unknown", False
        m = min(msize, self.msize)
        if m < 64:
            m = 64
        c.msize = m
        c.dotl = dotl
        c.version = v if v != "unknown" else None
        c.out += ninep.pack(ninep.Rversion, tag, m, v)
        self.dirty.add(c)

    def getfid(self, c: Session, fid: int) -> Fid:
        f = c.fids.get(fid)
        if f is None:
            raise Net9Error(Eunknownfid)
        return f

    def qid(self, path: int) -> tuple[int, int, int]:
        return (qidtype(path), self.netfs.ndbvers if TYPE(path) == Qndb else 0, path)

    def uname_of(self, c: Session, uname: str, nuname: Optional[int]) -> str:
        """The user an attach names: its uname; in 9P2000.L an empty uname
        with an n_uname is that uid's passwd name (else the number)."""
        if c.dotl and not uname and nuname is not None and nuname != NO32:
            try:
                return pwd.getpwuid(nuname).pw_name
            except (KeyError, OverflowError):
                return str(nuname)
        return uname

    def privileged(self, peer: Peer) -> bool:
        """May this peer attach as anyone?  Trusted ones, root and the
        server's own user."""
        return peer.kind == TRUSTED or (peer.kind == LOCAL and peer.uid in (0, self.uid))

    def attacher(self, c: Session, uname: str, nuname: Optional[int]) -> tuple[str, Optional[int]]:
        """(user, numeric uid or None) of a Tattach from connection c, or
        Net9Error "permission denied: ..." when its peer may not be that
        user (net9(4), "Who a client is")."""
        p = c.peer
        nu = nuname if (nuname is not None and nuname != NO32) else None
        if p.kind == REMOTE:
            return NONE, None             # unauthenticated: whatever it says
        if p.kind == UNKNOWN:
            raise Net9Error("%s: cannot tell who the client is (%s)" % (Eattach, p.why))
        user = self.uname_of(c, uname, nuname)
        if not self.privileged(p):
            own = _peer.username(p.uid)
            if nu is not None and nu != p.uid:
                raise Net9Error("%s: uid %d (%s) may not attach as uid %d"
                                % (Eattach, p.uid, own, nu))
            if user != own:
                raise Net9Error("%s: uid %d may attach only as %s, not %r"
                                % (Eattach, p.uid, own, user))
        if nu is None and c.dotl:
            try:
                nu = pwd.getpwnam(user).pw_uid
            except KeyError:
                nu = None
        return user, nu

    # -- session --

    def t_auth(self, c: Session, tag: int, it: Any) -> None:
        if c.dotl:
            c.send(ninep.rlerror(tag, errno.ENOENT))
        else:
            c.send(ninep.rerror(tag, Enoauth))

    def t_attach(self, c: Session, tag: int, it: Any) -> None:
        fid, afid, uname, nuname = it.fid, it.afid, it.uname, it.n_uname
        if fid in c.fids:
            raise Net9Error(Efidinuse)
        if afid != NOFID:
            raise Net9Error(Enoauth)
        try:
            user, nuid = self.attacher(c, uname, nuname)
        except Net9Error as e:
            self.log("%s: attach as %r (n_uname %s) refused: %s" % (
                c.name, uname, "none" if nuname in (None, NO32) else nuname, e))
            raise
        f = Fid(fid, QID(0, 0, Qtopdir), user, nuid)
        c.fids[fid] = f
        c.send(ninep.pack(ninep.Rattach, tag, self.qid(f.path)))

    def t_flush(self, c: Session, tag: int, it: Any) -> None:
        oldtag = it.oldtag
        w = c.pending.pop(oldtag, None)
        if w is not None:
            self.netfs.cancel(w)
        c.send(ninep.pack(ninep.Rflush, tag))

    # -- walk --

    def t_walk(self, c: Session, tag: int, it: Any) -> None:
        fid, newfid, names = it.fid, it.newfid, it.wname
        f = self.getfid(c, fid)
        if len(names) > ninep.MAXWELEM:
            raise Net9Error(Etoomany)
        if newfid != fid and newfid in c.fids:
            raise Net9Error(Efidinuse)
        nfs = self.netfs
        path = f.path
        if not nfs.exists(path):
            raise Net9Error(errors.Enonexist)
        qids = []
        for i, name in enumerate(names):
            try:
                path = nfs.walk1(path, name)
            except Net9Error:
                if i == 0:
                    raise
                c.send(ninep.pack(ninep.Rwalk, tag, qids))
                return
            qids.append(self.qid(path))
        if newfid == fid:
            if f.omode is not None and names:
                raise Net9Error("cannot walk an open fid")
            f.path = path
            f.snap = None
            f.text = None
        else:
            nf = f.clone(newfid)
            nf.path = path
            c.fids[newfid] = nf
        c.send(ninep.pack(ninep.Rwalk, tag, qids))

    # -- open --

    def t_open(self, c: Session, tag: int, it: Any) -> None:
        f = self.getfid(c, it.fid)
        if f.xattr:
            raise Net9Error(errors.Eperm)
        r = self.netfs.open(f, it.flags if it.type == ninep.Tlopen else it.mode, c.dotl)
        f.snap = None
        f.text = None
        rtype = ninep.Rlopen if c.dotl else ninep.Ropen
        if isinstance(r, Wait):
            self.park(c, tag, r, lambda path: ninep.pack(rtype, tag, self.qid(path), 0))
            return
        c.send(ninep.pack(rtype, tag, self.qid(r), 0))

    def t_create(self, c: Session, tag: int, it: Any) -> None:
        self.getfid(c, it.fid)
        raise Net9Error(errors.Eperm)

    def t_refuse(self, c: Session, tag: int, it: Any) -> None:
        raise Net9Error(errors.Eperm)

    def t_readlink(self, c: Session, tag: int, it: Any) -> None:
        self.getfid(c, it.fid)
        c.send(ninep.rlerror(tag, errno.EINVAL))

    def t_xattrcreate(self, c: Session, tag: int, it: Any) -> None:
        self.getfid(c, it.fid)
        c.send(ninep.rlerror(tag, errno.EOPNOTSUPP))

    def t_xattrwalk(self, c: Session, tag: int, it: Any) -> None:
        fid, newfid, name = it.fid, it.newfid, it.name
        f = self.getfid(c, fid)
        if name:
            c.send(ninep.rlerror(tag, errno.ENODATA))
            return
        if newfid != fid and newfid in c.fids:
            raise Net9Error(Efidinuse)
        nf = f.clone(newfid)
        nf.xattr = True
        if newfid == fid:
            self.netfs.clunk(f)
        c.fids[newfid] = nf
        c.send(ninep.pack(ninep.Rxattrwalk, tag, 0))

    # -- read, write --

    def park(self, c: Session, tag: int, w: Wait,
             build: Optional[Callable[[Any], bytes]]) -> None:
        """Park w for tag; build(result) makes the reply when it completes
        (None: an Rread of the bytes it returns)."""
        def done(result: Any, err: Optional[str]) -> None:
            if c.closed or c.pending.get(tag) is not w:
                return
            del c.pending[tag]
            if err is not None:
                c.error(tag, err)
            elif build is None:
                c.sendread(tag, result)
            else:
                c.send(build(result))
        w.done = done
        c.pending[tag] = w
        self.netfs.park(w)

    def t_read(self, c: Session, tag: int, it: Any) -> None:
        fid, offset, count = it.fid, it.offset, it.count
        f = self.getfid(c, fid)
        lim = c.msize - 11
        if count > lim:
            count = lim
        if f.xattr:
            c.send(ninep.rread(tag, b""))
            return
        t = TYPE(f.path)
        if t in (Qtopdir, Qprotodir, Qconvdir):
            if f.omode is None:
                raise Net9Error(errors.Ebadusefd)
            if c.dotl:
                raise Net9Error(Eisdir)
            c.send(ninep.rread(tag, self.dirread(f, offset, count)))
            return
        r = self.netfs.read(f, offset, count)
        if isinstance(r, Wait):
            self.park(c, tag, r, None)
            return
        c.sendread(tag, r)

    def t_write(self, c: Session, tag: int, it: Any) -> None:
        fid, offset, data = it.fid, it.offset, it.data
        f = self.getfid(c, fid)
        if f.xattr:
            raise Net9Error(errors.Eperm)
        r = self.netfs.write(f, offset, data)
        if isinstance(r, Wait):
            self.park(c, tag, r, lambda n: ninep.pack(ninep.Rwrite, tag, n))
            return
        c.send(ninep.pack(ninep.Rwrite, tag, r))

    def abortfid(self, c: Session, f: Fid) -> None:
        """A clunk of a fid with parked requests: end them ("interrupted")."""
        if not f.parked:
            return
        for tag, w in list(c.pending.items()):
            if w.fid is f:
                del c.pending[tag]
                self.netfs.cancel(w)
                c.error(tag, errors.Eintr)

    def t_clunk(self, c: Session, tag: int, it: Any) -> None:
        f = self.getfid(c, it.fid)
        self.abortfid(c, f)
        del c.fids[f.fid]
        self.netfs.clunk(f)
        c.send(ninep.pack(ninep.Rclunk, tag))

    def t_remove(self, c: Session, tag: int, it: Any) -> None:
        f = self.getfid(c, it.fid)
        self.abortfid(c, f)
        del c.fids[f.fid]
        self.netfs.clunk(f)
        raise Net9Error(errors.Eperm)

    # -- stat --

    def statbytes(self, path: int, uname: Optional[str] = None) -> bytes:
        qid, mode, length, name, uid = self.netfs.dirinfo(path)
        q = (qid[0], qid[1], qid[2])
        return ninep.packstat(0, 0, q, mode, int(time.time()), self.netfs.mtime(path),
                              length, name, uid, self.fs.eve, uid)

    def t_stat(self, c: Session, tag: int, it: Any) -> None:
        f = self.getfid(c, it.fid)
        c.send(ninep.pack(ninep.Rstat, tag, self.statbytes(f.path)))

    def t_wstat(self, c: Session, tag: int, it: Any) -> None:
        f = self.getfid(c, it.fid)
        try:
            st = ninep.unpackstat(it.stat)
        except ninep.Malformed:
            raise Net9Error(errors.Eshortstat)
        self.netfs.wstat(f, st)
        c.send(ninep.pack(ninep.Rwstat, tag))

    def dirread(self, f: Fid, offset: int, count: int) -> bytes:
        """9P2000 directory read: whole stat entries; offset 0 restarts."""
        if offset == 0 or f.snap is None:
            f.snap = [self.statbytes(p) for p in self.netfs.listing(f.path)]
            f.snappos = 0
        out = bytearray()
        i = f.snappos
        while i < len(f.snap):
            e = f.snap[i]
            if len(out) + len(e) > count:
                break
            out += e
            i += 1
        if not out and i < len(f.snap):
            raise Net9Error(errors.Eshort)
        f.snappos = i
        return bytes(out)

    # -- 9P2000.L --

    def t_getattr(self, c: Session, tag: int, it: Any) -> None:
        f = self.getfid(c, it.fid)
        qid, mode, length, name, uid = self.netfs.dirinfo(f.path)
        m = (S_IFDIR if mode & 0x80000000 else S_IFREG) | (mode & 0o777)
        now = int(time.time())
        mt = self.netfs.mtime(f.path)
        nuid = self.netfs.numeric(uid, f)
        ngid = self.netfs.numeric(self.fs.eve, f)
        nlink = 2 if mode & 0x80000000 else 1
        c.send(ninep.pack(ninep.Rgetattr, tag, GETATTR_BASIC, qid, m, nuid, ngid, nlink,
                          0, length, 4096, 0, now, 0, mt, 0, mt, 0, 0, 0, 0, 0))

    def t_setattr(self, c: Session, tag: int, it: Any) -> None:
        f = self.getfid(c, it.fid)
        valid, mode, size = it.valid, it.mode, it.size
        nfs = self.netfs
        if valid & (SETATTR_UID | SETATTR_GID):
            raise Net9Error(errors.Eperm)
        if valid & SETATTR_SIZE and size != 0:
            raise Net9Error(errors.Eperm)
        if valid & SETATTR_MODE:
            nfs.convwstat(f, mode & 0o7777, None)
        elif valid:
            if not nfs.maywrite(f):
                raise Net9Error(errors.Eperm)
            if valid & SETATTR_SIZE and TYPE(f.path) == Qndb:
                nfs.ndbtrunc()
        c.send(ninep.pack(ninep.Rsetattr, tag))

    def t_readdir(self, c: Session, tag: int, it: Any) -> None:
        fid, offset, count = it.fid, it.offset, it.count
        f = self.getfid(c, fid)
        if f.omode is None:
            raise Net9Error(errors.Ebadusefd)
        t = TYPE(f.path)
        if t not in (Qtopdir, Qprotodir, Qconvdir):
            raise Net9Error(errors.Enotdir)
        lim = c.msize - 11
        if count > lim:
            count = lim
        nfs = self.netfs
        if offset == 0 or f.snap is None:
            ents = [(".", f.path), ("..", nfs.parent(f.path))]
            for p in nfs.listing(f.path):
                ents.append((nfs.dirinfo(p)[3], p))
            f.snap = ents
        out = bytearray()
        i = offset
        while i < len(f.snap):
            name, p = f.snap[i]
            e = ninep.packdirent(self.qid(p), i + 1,
                                 DT_DIR if qidtype(p) == QTDIR else DT_REG, name)
            if len(out) + len(e) > count:
                break
            out += e
            i += 1
        c.send(ninep.pack(ninep.Rreaddir, tag, bytes(out)))

    def t_statfs(self, c: Session, tag: int, it: Any) -> None:
        self.getfid(c, it.fid)
        c.send(ninep.pack(ninep.Rstatfs, tag, V9FS_MAGIC, 4096, 0, 0, 0, 0, 0, 0, 255))

    def t_fsync(self, c: Session, tag: int, it: Any) -> None:
        self.getfid(c, it.fid)
        c.send(ninep.pack(ninep.Rfsync, tag))

    def t_lock(self, c: Session, tag: int, it: Any) -> None:
        self.getfid(c, it.fid)
        c.send(ninep.pack(ninep.Rlock, tag, LOCK_SUCCESS))

    def t_getlock(self, c: Session, tag: int, it: Any) -> None:
        self.getfid(c, it.fid)
        start, length, procid, client = it.start, it.length, it.proc_id, it.client_id
        c.send(ninep.pack(ninep.Rgetlock, tag, F_UNLCK, start, length, procid, client))


DISPATCH = {
    ninep.Tauth: Server.t_auth,
    ninep.Tattach: Server.t_attach,
    ninep.Tflush: Server.t_flush,
    ninep.Twalk: Server.t_walk,
    ninep.Topen: Server.t_open,
    ninep.Tlopen: Server.t_open,
    ninep.Tcreate: Server.t_create,
    ninep.Tlcreate: Server.t_create,
    ninep.Tread: Server.t_read,
    ninep.Twrite: Server.t_write,
    ninep.Tclunk: Server.t_clunk,
    ninep.Tremove: Server.t_remove,
    ninep.Tstat: Server.t_stat,
    ninep.Twstat: Server.t_wstat,
    ninep.Tgetattr: Server.t_getattr,
    ninep.Tsetattr: Server.t_setattr,
    ninep.Treaddir: Server.t_readdir,
    ninep.Tstatfs: Server.t_statfs,
    ninep.Tfsync: Server.t_fsync,
    ninep.Tlock: Server.t_lock,
    ninep.Tgetlock: Server.t_getlock,
    ninep.Txattrwalk: Server.t_xattrwalk,
    ninep.Txattrcreate: Server.t_xattrcreate,
    ninep.Treadlink: Server.t_readlink,
    ninep.Tmkdir: Server.t_refuse,
    ninep.Tsymlink: Server.t_refuse,
    ninep.Tmknod: Server.t_refuse,
    ninep.Trename: Server.t_refuse,
    ninep.Trenameat: Server.t_refuse,
    ninep.Tunlinkat: Server.t_refuse,
    ninep.Tlink: Server.t_refuse,
}


def default_socket_path() -> str:
    """plan9port's namespace directory /tmp/ns.$USER.$DISPLAY (DISPLAY
    defaulting to :0, as plan9port's getns does), or $NAMESPACE, + /net9.
    Only the path: net9.namespace checks the directory and the socket."""
    return namespace.default_socket_path()
