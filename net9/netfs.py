"""devip's /net tree over net9's conversation layer, as the 9P server sees
it (the files, their formats and permissions as net9(4) describes them).

Files are named by their devip qid path, (proto << 17) | (conv << 5) |
type.  A Fid records where it points, who attached (the uname), how it was
opened and, once an open of ctl/data/err (clone and listen included)
succeeded, the conversation reference it holds.  NetFs does the walks,
stats, opens, reads, writes, wstats and clunks; an operation that would
block in devip returns a Wait, which the caller parks (NetFs.park) and which
NetFs completes from NetFs.woken(convs) (Fs.drain's list) through the
Wait's done callback.

The server knows nothing of TCP: it uses the Proto calls (clone, ctl,
connectresult, read, write, closeconv, takecall, incref, status, stats,
localtext, remotetext; ipifc's snoopopen, snoopread, snoopclose) and the
Conv fields (x, state, owner, perm, inuse, incall, rq/wq/eq with
rwait/wwait, cerr).

With a name service (NetFs(fs, ns=net9.ndb.NameService(...))) the root
also has cs and dns, after devip's files, as Plan 9 unions them into
/net; their requests that need a lookup return a Wait of kind "ns".
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional, Union

import pwd
import time
import weakref

from net9 import errors
from net9.errors import Net9Error
from net9.conv import ConvState
from net9.ipaux import parsecmd

# qid types (devip.c)
Qtopdir = 1
Qarp = 2
Qbootp = 3
Qndb = 4
Qiproute = 5
Qipselftab = 6
Qlog = 7
Qprotodir = 8
Qclone = 9
Qstats = 10
Qconvdir = 11
Qctl = 12
Qdata = 13
Qerr = 14
Qlisten = 15
Qlocal = 16
Qremote = 17
Qstatus = 18
Qsnoop = 19
# beyond devip: the connection server and dns (net9.ndb), which Plan 9
# mounts on /net after devip's files
Qcs = 20
Qdns = 21

QTDIR = 0x80
QTFILE = 0
DMDIR = 0x80000000

# devip's protocol indices on a stock amd64 9front kernel (spec 1.2)
PROTOINDEX = {"tcp": 0, "udp": 1, "rudp": 2, "ipifc": 3, "icmp": 4, "icmpv6": 5,
              "igmp": 6, "mld": 7, "gre": 8, "ipmux": 9, "esp": 10, "il": 11}

TOPFILES = ((Qarp, "arp"), (Qbootp, "bootp"), (Qndb, "ndb"), (Qiproute, "iproute"),
            (Qipselftab, "ipselftab"), (Qlog, "log"))
TOPPERM = {Qarp: 0o664, Qbootp: 0o666, Qndb: 0o666, Qiproute: 0o664,
           Qipselftab: 0o444, Qlog: 0o666}
CONVFILES = ((Qctl, "ctl"), (Qdata, "data"), (Qerr, "err"), (Qlisten, "listen"),
             (Qlocal, "local"), (Qremote, "remote"), (Qstatus, "status"))
NAMES = {Qctl: "ctl", Qdata: "data", Qerr: "err", Qlisten: "listen", Qlocal: "local",
         Qremote: "remote", Qstatus: "status", Qsnoop: "snoop", Qclone: "clone",
         Qstats: "stats", Qarp: "arp", Qbootp: "bootp", Qndb: "ndb",
         Qiproute: "iproute", Qipselftab: "ipselftab", Qlog: "log", Qcs: "cs", Qdns: "dns"}
NSFILES = ((Qcs, "cs"), (Qdns, "dns"))

# 9P open modes
OREAD, OWRITE, ORDWR, OEXEC = 0, 1, 2, 3
OTRUNC, OCEXEC, ORCLOSE = 0x10, 0x20, 0x40
M2P = {OREAD: 4, OWRITE: 2, ORDWR: 6, OEXEC: 4}

NDBMAX = 32768
Ebadarp = "bad arp"
Enointerface = "no interface"


def QID(p: int, c: int, t: int) -> int:
    return (p << 17) | (c << 5) | t


def TYPE(path: int) -> int:
    return path & 0x1F


def CONV(path: int) -> int:
    return (path >> 5) & 0xFFF


def PROTO(path: int) -> int:
    return (path >> 17) & 0xFF


def qidtype(path: int) -> int:
    t = path & 0x1F
    return QTDIR if t in (Qtopdir, Qprotodir, Qconvdir) else QTFILE


def readstr(offset: int, count: int, text: Union[str, bytes]) -> bytes:
    """readstr: the part of text at offset (bytes)."""
    if isinstance(text, str):
        text = text.encode()
    if offset >= len(text):
        return b""
    return text[offset:offset + count]


class Fid:
    """A 9P fid on the /net tree."""

    __slots__ = ("fid", "path", "uname", "nuid", "omode", "conv", "proto", "snap",
                 "snappos", "text", "parked", "routetag", "islog", "xattr", "trunc",
                 "nsf", "snoop")

    def __init__(self, fid: int, path: int, uname: str, nuid: Optional[int] = None) -> None:
        self.fid = fid
        self.path = path
        self.uname = uname
        self.nuid = nuid          # numeric uid of the attach (9P2000.L), or None
        self.omode = None         # None: not open; else OREAD/OWRITE/ORDWR
        self.conv = None          # Conv this fid holds a reference to
        self.proto = None         # its Proto
        self.snap = None          # directory snapshot (list of entries)
        self.snappos = 0
        self.text = None          # text snapshot taken at the offset-0 read
        self.parked = 0           # requests parked on this fid
        self.routetag = "none"
        self.islog = False
        self.xattr = False        # a Txattrwalk fid (empty attribute list)
        self.nsf = None           # an open cs or dns file's state (net9.ndb)
        self.snoop = None         # (Proto, Conv) of an open snoop file

    def clone(self, newfid: int) -> Fid:
        f = Fid(newfid, self.path, self.uname, self.nuid)
        f.xattr = self.xattr
        return f


class Wait:
    """A parked request.  kind: read eread write connect listen log snoop
    ns (a cs or dns request waiting for a lookup).
    done(result, error) is called once when it completes; NetFs drops it
    then, and when the request is cancelled, so that a callback that refers
    to its Wait leaves no reference cycle behind (garbage the cyclic
    collector may not look at for a long time in an idle server)."""

    __slots__ = ("kind", "fid", "conv", "proto", "count", "result", "rest", "done",
                 "active", "user")

    def __init__(self, kind: str, fid: Optional[Fid], conv: Any, proto: Any,
                 count: int = 0) -> None:
        self.kind = kind
        self.fid = fid
        self.conv = conv
        self.proto = proto
        self.count = count
        self.result = None
        self.rest = None
        self.done = None
        self.active = True
        self.user = None


class NetFs:
    """The /net tree of one stack (its Fs), with a host owner (eve)."""

    def __init__(self, fs: Any, eve: Optional[str] = None,
                 protos: Optional[Iterable[str]] = None, start: Optional[float] = None,
                 ns: Any = None) -> None:
        self.fs = fs
        if eve is not None:
            fs.eve = eve
        self.start = int(start if start is not None else time.time())
        self.only = set(protos) if protos is not None else None
        self.ndb = bytearray()
        self.ndbvers = 0
        self.ndbmtime = self.start
        self.logreaders = 0
        self.logwaits = []
        self.lognotify = None     # callable() the server gives: log text arrived
        self._protokey = None     # protolist's cache
        self._protos = []
        self._protoindex = {}
        self.ns = ns
        self.nswaits = []
        if ns is not None:
            me = weakref.ref(self)         # no cycle through the name service
            ns.ndb = lambda: bytes(me().ndb).decode("utf-8", "replace") if me() else ""
            ns.localnets = lambda: me().localnets() if me() else []
            ns.nets = tuple(n for n, p in fs.protos.items() if getattr(p, "nc", 0) > 0)
            ns.eve = fs.eve

    def localnets(self) -> list[tuple[bytes, bytes]]:
        """[(address, mask)] of the stack's interfaces (16 bytes each)."""
        ip = getattr(self.fs, "ip", None)
        out = []
        for ifc in getattr(ip, "ifcs", None) or []:
            if ifc is None:
                continue
            for l in ifc.lifcs:
                out.append((l.local, l.mask))
        return out

    def topfiles(self) -> tuple:
        if self.ns is None:
            return TOPFILES
        return TOPFILES + NSFILES

    @property
    def eve(self) -> str:
        return self.fs.eve

    # ---- protocols --------------------------------------------------------

    def protolist(self) -> list:
        """[(index, name, Proto)] in index order: the protocol directories.
        (Rebuilt only when the stack's protocols change: every walk and
        open asks.)"""
        key = tuple(self.fs.protos.values())
        if key != self._protokey:
            self._protos = self._protolist()
            self._protoindex = dict((i, (name, p)) for i, name, p in self._protos)
            self._protokey = key
        return self._protos

    def _protolist(self):
        out = []
        extra = 12
        for name, p in self.fs.protos.items():
            if self.only is not None and name not in self.only:
                continue
            if getattr(p, "nc", 0) <= 0:
                continue
            i = PROTOINDEX.get(name)
            if i is None:
                i = extra
                extra += 1
            out.append((i, name, p))
        out.sort(key=lambda t: t[0])
        return out

    def protobyindex(self, i: int) -> tuple:
        self.protolist()
        return self._protoindex.get(i, (None, None))

    def convof(self, path: int) -> tuple:
        """(Proto, Conv) for a conversation path, or (Proto, None)."""
        name, p = self.protobyindex(PROTO(path))
        if p is None:
            return None, None
        n = CONV(path)
        if n < len(p.conv):
            return p, p.conv[n]
        return p, None

    # ---- walk ---------------------------------------------------------------

    def parent(self, path: int) -> int:
        t = TYPE(path)
        if t == Qtopdir or t in (Qarp, Qbootp, Qndb, Qiproute, Qipselftab, Qlog, Qprotodir,
                                 Qcs, Qdns):
            return QID(0, 0, Qtopdir)
        if t in (Qclone, Qstats, Qconvdir):
            return QID(PROTO(path), 0, Qprotodir)
        return QID(PROTO(path), CONV(path), Qconvdir)

    def exists(self, path: int) -> bool:
        t = TYPE(path)
        if t == Qtopdir or t in TOPPERM:
            return True
        if t in (Qcs, Qdns):
            return self.ns is not None and path == QID(0, 0, t)
        name, p = self.protobyindex(PROTO(path))
        if p is None:
            return False
        if t in (Qprotodir, Qclone, Qstats):
            return True
        if CONV(path) >= len(p.conv):
            return False
        if t == Qsnoop:
            return name == "ipifc"
        return True

    def walk1(self, path: int, name: str) -> Optional[int]:
        """The qid path of name in directory path; raises Net9Error."""
        t = TYPE(path)
        if t not in (Qtopdir, Qprotodir, Qconvdir):
            raise Net9Error(errors.Enotdir)
        if name == "." or name == "":
            return path
        if name == "..":
            return self.parent(path)
        if t == Qtopdir:
            for i, pname, _p in self.protolist():
                if pname == name:
                    return QID(i, 0, Qprotodir)
            for q, fname in self.topfiles():
                if fname == name:
                    return QID(0, 0, q)
            raise Net9Error(errors.Enonexist)
        pi = PROTO(path)
        pname, p = self.protobyindex(pi)
        if p is None:
            raise Net9Error(errors.Enonexist)
        if t == Qprotodir:
            if name == "clone":
                return QID(pi, 0, Qclone)
            if name == "stats":
                return QID(pi, 0, Qstats)
            if name.isdigit() and name.isascii() and (name == "0" or name[0] != "0"):
                n = int(name)
                if n < len(p.conv):
                    return QID(pi, n, Qconvdir)
            raise Net9Error(errors.Enonexist)
        n = CONV(path)
        if n >= len(p.conv):
            raise Net9Error(errors.Enonexist)
        for q, fname in CONVFILES:
            if fname == name:
                return QID(pi, n, q)
        if name == "snoop" and pname == "ipifc":
            return QID(pi, n, Qsnoop)
        raise Net9Error(errors.Enonexist)

    # ---- stat ---------------------------------------------------------------

    def dirinfo(self, path: int) -> tuple:
        """(qid, mode, length, name, uid) of a file as devip lists it."""
        t = TYPE(path)
        qid = (qidtype(path), self.ndbvers if t == Qndb else 0, path)
        net = self.fs.network
        if t == Qtopdir:
            return qid, DMDIR | 0o555, 0, "/", self.eve
        if t in TOPPERM:
            length = len(self.ndb) if t == Qndb else 0
            return qid, TOPPERM[t], length, NAMES[t], net
        if t in (Qcs, Qdns):
            if self.ns is None:
                raise Net9Error(errors.Enonexist)
            return qid, 0o666, 0, NAMES[t], self.eve
        pname, p = self.protobyindex(PROTO(path))
        if p is None:
            raise Net9Error(errors.Enonexist)
        if t == Qprotodir:
            return qid, DMDIR | 0o555, 0, pname, net
        if t == Qclone:
            return qid, 0o666, 0, "clone", net
        if t == Qstats:
            return qid, 0o444, 0, "stats", net
        n = CONV(path)
        if n >= len(p.conv):
            raise Net9Error(errors.Enonexist)
        c = p.conv[n]
        if t == Qconvdir:
            return qid, DMDIR | 0o555, 0, str(n), c.owner
        if t in (Qctl, Qlisten):
            return qid, c.perm, 0, NAMES[t], c.owner
        if t == Qdata:
            return qid, c.perm, len(c.rq) if c.rq is not None else 0, "data", c.owner
        if t == Qerr:
            return qid, c.perm, len(c.eq) if c.eq is not None else 0, "err", c.owner
        if t in (Qlocal, Qremote, Qstatus):
            return qid, 0o444, 0, NAMES[t], c.owner
        if t == Qsnoop:
            return qid, 0o400, 0, "snoop", c.owner
        raise Net9Error(errors.Enonexist)

    def mtime(self, path: int) -> float:
        if TYPE(path) == Qndb:
            return max(self.ndbmtime, self.start)
        return self.start

    def listing(self, path: int) -> list[int]:
        """The entries of a directory in devip's order (qid paths)."""
        t = TYPE(path)
        if t == Qtopdir:
            out = [QID(i, 0, Qprotodir) for i, n, p in self.protolist()]
            out += [QID(0, 0, q) for q, n in self.topfiles()]
            return out
        pi = PROTO(path)
        pname, p = self.protobyindex(pi)
        if p is None:
            raise Net9Error(errors.Enonexist)
        if t == Qprotodir:
            out = [QID(pi, n, Qconvdir) for n in range(len(p.conv))]
            out += [QID(pi, 0, Qclone), QID(pi, 0, Qstats)]
            return out
        if t == Qconvdir:
            n = CONV(path)
            out = [QID(pi, n, q) for q, fname in CONVFILES]
            if pname == "ipifc":
                out.append(QID(pi, n, Qsnoop))
            return out
        raise Net9Error(errors.Enotdir)

    # ---- users ----------------------------------------------------------------

    def iseve(self, fid: Fid) -> bool:
        # none (an unauthenticated client) is never eve, whatever eve is
        return fid.uname == self.fs.eve and fid.uname != "none"

    def convperm(self, fid: Fid, c: Any, acc: int) -> None:
        """devip's check for ctl/data/err/listen (spec 1.7)."""
        want = M2P[acc]
        if fid.uname == c.owner:
            want <<= 6
        if (want & c.perm) != want and not self.iseve(fid):
            raise Net9Error(errors.Eperm)

    def maywrite(self, fid: Fid) -> bool:
        """Would an OWRITE open of this file be allowed (no side effects)?"""
        t = TYPE(fid.path)
        if t in (Qclone, Qlog, Qcs, Qdns):
            return True
        if t in (Qarp, Qiproute, Qndb):
            return self.iseve(fid)
        if t in (Qctl, Qdata, Qerr, Qlisten):
            c = fid.conv
            if c is None:
                p, c = self.convof(fid.path)
            if c is None:
                return False
            try:
                self.convperm(fid, c, OWRITE)
            except Net9Error:
                return False
            return True
        return False

    # ---- open -----------------------------------------------------------------

    def open(self, fid: Fid, mode: int, dotl: bool = False) -> Union[int, Wait]:
        """Open fid.  mode: the 9P2000 mode byte, or Linux flags when dotl.
        Returns the qid path the fid now has, or a Wait (listen)."""
        if fid.omode is not None:
            raise Net9Error("file already open")
        if dotl:
            acc = mode & 3
            if acc == 3:
                acc = OREAD
            readonly = acc == OREAD
            trunc = False
        else:
            acc = mode & 3
            readonly = (mode & ~OCEXEC) in (OREAD, OEXEC)
            trunc = bool(mode & OTRUNC)
            if acc == OEXEC:
                acc = OREAD
        path = fid.path
        t = TYPE(path)
        if not self.exists(path):
            raise Net9Error(errors.Enonexist)
        if t in (Qtopdir, Qprotodir, Qconvdir, Qstatus, Qlocal, Qremote, Qstats,
                 Qbootp, Qipselftab):
            if not readonly:
                raise Net9Error(errors.Eperm)
        elif t in (Qarp, Qiproute):
            if acc != OREAD and not self.iseve(fid):
                raise Net9Error(errors.Eperm)
        elif t == Qndb:
            if (acc != OREAD or trunc) and not self.iseve(fid):
                raise Net9Error(errors.Eperm)
            if trunc:
                self.ndbtrunc()
        elif t == Qlog:
            self.logreaders += 1
            fid.islog = True
        elif t == Qclone:
            pname, p = self.protobyindex(PROTO(path))
            c = p.clone(fid.uname)
            fid.conv, fid.proto = c, p
            fid.path = QID(PROTO(path), c.x, Qctl)
        elif t in (Qctl, Qdata, Qerr):
            p, c = self.convof(path)
            self.convperm(fid, c, acc)
            if c.inuse == 0:
                p.checkowner(fid.uname)     # it becomes fid.uname's
            p.incref(c)
            if c.inuse == 1:
                c.owner = fid.uname
                c.perm = 0o660
            fid.conv, fid.proto = c, p
        elif t == Qlisten:
            p, c = self.convof(path)
            self.convperm(fid, c, acc)
            if c.state != ConvState.Announced:
                raise Net9Error(errors.Enotannounced)
            p.incref(c)                # held while the listen waits
            w = Wait("listen", fid, c, p)
            w.count = acc
            r = self.listentry(w)
            if r is None:
                return w
            return r
        elif t == Qsnoop:
            p, c = self.convof(path)
            if not readonly:
                raise Net9Error(errors.Eperm)
            if fid.uname != c.owner and not self.iseve(fid):
                raise Net9Error(errors.Eperm)
            opn = getattr(p, "snoopopen", None)
            if opn is not None:
                opn(c)
                fid.snoop = (p, c)
        elif t == Qcs:
            from net9.ndb import CsFile
            fid.nsf = CsFile()
        elif t == Qdns:
            from net9.ndb import DnsFile
            fid.nsf = DnsFile()
        fid.omode = acc
        return fid.path

    def listentry(self, w: Wait) -> Optional[int]:
        """Try to complete a listen: the new ctl path, None to wait; raises
        (dropping the temporary reference) when the announcement is gone."""
        c, p, fid = w.conv, w.proto, w.fid
        if c.rq.ishungup():
            w.active = False
            p.closeconv(c)
            raise Net9Error(errors.Elistenhungup)
        nc = p.takecall(c)
        if nc is None:
            return None
        w.active = False
        fid.conv, fid.proto = nc, p
        fid.path = QID(PROTO(fid.path), nc.x, Qctl)
        fid.omode = w.count
        p.closeconv(c)
        return fid.path

    # ---- read -----------------------------------------------------------------

    def text(self, fid: Fid, offset: int, gen: Callable[[], str]) -> bytes:
        """Offset-honouring text: generated at offset 0 and kept on the fid
        for the reads that follow (clients read long text in pieces)."""
        if offset == 0 or fid.text is None:
            fid.text = gen().encode()
        return readstr(offset, 1 << 30, fid.text)

    def read(self, fid: Fid, offset: int, count: int) -> Union[bytes, Wait]:
        """bytes, or a Wait; raises Net9Error."""
        if fid.omode is None or fid.omode == OWRITE:
            raise Net9Error(errors.Ebadusefd)
        path = fid.path
        t = TYPE(path)
        if t in (Qtopdir, Qprotodir, Qconvdir):
            raise Net9Error("is a directory")      # the server reads directories itself
        if t == Qctl:
            c = fid.conv
            return readstr(offset, count, str(c.x))
        if t == Qdata:
            c, p = fid.conv, fid.proto
            d = p.read(c, count)
            if d is None:
                c.rq.rwait = True
                return Wait("read", fid, c, p, count)
            return d
        if t == Qerr:
            c, p = fid.conv, fid.proto
            d = c.eq.read(count)
            if d is None:
                c.eq.rwait = True
                return Wait("eread", fid, c, p, count)
            return d
        if t == Qsnoop:
            if fid.snoop is None:
                p, c = self.convof(path)
                return Wait("snoop", fid, c, p, count)
            p, c = fid.snoop
            d = p.snoopread(c, count)
            if d is None:
                return Wait("snoop", fid, c, p, count)
            return d
        if t in (Qcs, Qdns):
            return fid.nsf.read(offset, count)
        if t == Qlog:
            d = self.fs.log.read(count)
            if not d:
                return Wait("log", fid, None, None, count)
            return d
        if t in (Qlocal, Qremote, Qstatus):
            p, c = self.convof(path)
            gen = {Qlocal: p.localtext, Qremote: p.remotetext, Qstatus: p.status}[t]
            return readstr(0, count, self.text(fid, offset, lambda: gen(c)))
        if t == Qstats:
            pname, p = self.protobyindex(PROTO(path))
            return readstr(0, count, self.text(fid, offset, p.stats))
        if t == Qbootp:
            return b""
        if t == Qndb:
            return bytes(self.ndb[offset:offset + count])
        if t == Qiproute:
            ip = self.fs.ip
            gen = getattr(ip, "iproutetext", None)
            return readstr(0, count, self.text(fid, offset, gen if gen else str))
        if t == Qipselftab:
            # line-granular offsets (ipselftabread)
            gen = getattr(self.fs.ip, "ipselftabtext", None)
            return linegranular(gen() if gen else "", offset, count)
        if t == Qarp:
            return b""                 # no medium with a MAC: always empty (spec 11.3)
        raise Net9Error(errors.Eperm)

    # ---- write ----------------------------------------------------------------

    def write(self, fid: Fid, offset: int, data: bytes) -> Union[int, Wait]:
        """count, or a Wait (a connect that must wait, a data write under
        flow control); raises Net9Error."""
        if fid.omode is None or fid.omode == OREAD:
            raise Net9Error(errors.Ebadusefd)
        t = TYPE(fid.path)
        if t == Qctl:
            if len(data) == 0:
                return 0                # 9p write with empty stdin (9p-clients 7.11)
            return self.ctlwrite(fid, data, None)
        if t == Qdata:
            c, p = fid.conv, fid.proto
            n = p.write(c, data)
            if c.wq.flow and not c.wq.ishungup():
                c.wq.wwait = True
                w = Wait("write", fid, c, p, n)
                w.result = n
                return w
            return n
        if t == Qerr:
            raise Net9Error(errors.Eperm)
        if t == Qiproute:
            gen = getattr(self.fs.ip, "routewrite", None)
            if gen is None:
                raise Net9Error(errors.Ebadctl)
            fid.routetag = gen(bytes(data).decode("utf-8", "replace"), fid.routetag)
            return len(data)
        if t == Qarp:
            f = parsecmd(bytes(data).decode("utf-8", "replace"))
            if not f:
                raise Net9Error(Ebadarp)
            if f[0] == "flush":
                return len(data)
            if f[0] in ("add", "del", "garp"):
                raise Net9Error(Enointerface)
            raise Net9Error(Ebadarp)
        if t == Qndb:
            if offset > len(self.ndb) or offset + len(data) >= NDBMAX:
                raise Net9Error(errors.Eio)
            self.ndb[offset:offset + len(data)] = data
            self.ndbvers += 1
            self.ndbmtime = int(time.time())
            return len(data)
        if t == Qlog:
            self.fs.log.ctl(bytes(data).decode("utf-8", "replace"))
            return len(data)
        if t in (Qcs, Qdns):
            ns = self.ns
            if t == Qcs:
                job = ns.cswrite(fid.nsf, data, offset, fid.uname)
            else:
                job = ns.dnswrite(fid.nsf, data, offset, fid.uname)
            if job.finished:
                if job.error is not None:
                    raise Net9Error(job.error)
                return job.value
            w = Wait("ns", fid, None, None)
            w.rest = job
            job.done = lambda j, w=w: self.nsdone(w, j)
            return w
        raise Net9Error(errors.Eperm)

    def nsdone(self, w: Wait, job: Any) -> None:
        """A cs or dns request that waited for a lookup finished."""
        w.rest = None
        if not w.active:
            return
        w.active = False
        self.unpark(w)
        done, w.done = w.done, None
        if done is not None:
            if job.error is not None:
                done(None, job.error)
            else:
                done(job.value, None)

    def ctlwrite(self, fid: Fid, data: Optional[bytes], w: Optional[Wait]) -> Union[int, Wait]:
        """One ctl write; several newline-separated commands run in order
        (9p-clients 7.11).  A connect that has to wait parks the rest."""
        c, p = fid.conv, fid.proto
        if w is None:
            text = bytes(data).decode("utf-8", "replace")
            lines = [text]
            if "\n" in text.rstrip("\n"):
                lines = [x for x in text.split("\n") if x.strip()]
            total = len(data)
        else:
            lines, total = w.rest, w.result
        while lines:
            f = parsecmd(lines.pop(0))
            verb = f[:1]
            was = c.state
            p.ctl(c, f, fid.uname)
            if was == ConvState.Connecting and verb in (["hangup"], ["close"]) and c.aux:
                # the decision (devip.md 15.3 b, not copied): a
                # hangup during a blocked connect makes that connect fail
                for x in c.aux:
                    if x.kind == "connect":
                        x.user = errors.Ehungup
            if c.state == ConvState.Connecting and verb == ["connect"]:
                w = Wait("connect", fid, c, p)
                w.rest, w.result = lines, total
                return w
        return total

    def connectdone(self, w: Wait) -> Optional[int]:
        """Try to finish a parked connect: count, None to wait; raises."""
        c, p = w.conv, w.proto
        if p.connectresult(c) is None:
            return None
        if w.user is not None:
            raise Net9Error(w.user)
        if w.rest:
            r = self.ctlwrite(w.fid, None, w)
            if isinstance(r, Wait):
                w.rest = r.rest
                return None
            return r
        return w.result

    # ---- parking ----------------------------------------------------------------

    def waits(self, w: Wait, make: bool = False) -> Optional[list]:
        """The list w parks on: the log's, the name services', or its
        conversation's (c.aux; made when make is set, else maybe None)."""
        if w.kind == "log":
            return self.logwaits
        if w.kind == "ns":
            return self.nswaits
        c = w.conv
        if c is not None and c.aux is None and make:
            c.aux = []
        return c.aux if c is not None else None

    def park(self, w: Wait) -> None:
        """Put w on its wait list."""
        w.fid.parked += 1
        self.waits(w, True).append(w)

    def unpark(self, w: Wait) -> None:
        if w.fid.parked > 0:
            w.fid.parked -= 1
        ws = self.waits(w)
        if ws and w in ws:
            ws.remove(w)

    def retry(self, w: Wait) -> tuple[bool, Any]:
        """(True, result) when w completed, (False, None) to keep waiting;
        raises Net9Error for an error reply."""
        k = w.kind
        if k == "read":
            d = w.proto.read(w.conv, w.count)
            if d is None:
                w.conv.rq.rwait = True
                return False, None
            return True, d
        if k == "eread":
            d = w.conv.eq.read(w.count)
            if d is None:
                w.conv.eq.rwait = True
                return False, None
            return True, d
        if k == "write":
            wq = w.conv.wq
            if wq.flow and not wq.ishungup():
                wq.wwait = True
                return False, None
            return True, w.result
        if k == "connect":
            r = self.connectdone(w)
            return (r is not None), r
        if k == "listen":
            r = self.listentry(w)
            return (r is not None), r
        if k == "log":
            d = self.fs.log.read(w.count)
            return (True, d) if d else (False, None)
        if k == "snoop" and w.fid.snoop is not None:
            d = w.proto.snoopread(w.conv, w.count)
            return (d is not None), d
        return False, None                       # ns: completed by nsdone

    def cancel(self, w: Wait) -> None:
        """A parked request is flushed or aborted: undo what devip undoes
        (spec 14 point 2): a listen drops its temporary reference and
        consumes no call; a connect keeps connecting; queued write data stays
        queued."""
        if not w.active:
            return
        w.active = False
        w.done = None          # the server's callback refers to w: no cycle left for the GC
        self.unpark(w)
        if w.kind == "listen":
            w.proto.closeconv(w.conv)

    def complete(self, w: Wait) -> bool:
        """Retry w; when it finishes, unpark it and call w.done."""
        try:
            ok, r = self.retry(w)
        except Net9Error as e:
            w.active = False
            self.unpark(w)
            done, w.done = w.done, None      # see cancel
            done(None, str(e))
            return True
        if not ok:
            return False
        w.active = False
        self.unpark(w)
        done, w.done = w.done, None
        done(r, None)
        return True

    def woken(self, convs: list) -> None:
        """Fs.drain()'s list: re-check every request parked on each."""
        for c in convs:
            ws = c.aux
            if not ws:
                continue
            for w in list(ws):
                if w.active:
                    self.complete(w)

    def logwoken(self) -> None:
        for w in list(self.logwaits):
            if w.active and not self.complete(w):
                break

    # ---- clunk, wstat -------------------------------------------------------------

    def clunk(self, fid: Fid) -> None:
        """Release what an opened fid holds (spec 1.9, 2.3)."""
        if fid.omode is None:
            return
        fid.omode = None
        if fid.conv is not None:
            c, p = fid.conv, fid.proto
            fid.conv = fid.proto = None
            p.closeconv(c)
        if fid.islog:
            fid.islog = False
            self.logreaders -= 1
            if self.logreaders <= 0:
                self.logreaders = 0
                self.fs.log.read(1 << 30)        # last close discards the text
        if fid.snoop is not None:
            p, c = fid.snoop
            fid.snoop = None
            p.snoopclose(c)
        fid.nsf = None

    def ndbtrunc(self) -> None:
        del self.ndb[:]
        self.ndbvers += 1
        self.ndbmtime = int(time.time())

    def wstat(self, fid: Fid, st: tuple) -> None:
        """Twstat with a decoded stat (type, dev, qid, mode, atime, mtime,
        length, name, uid, gid, muid)."""
        (typ, dev, qid, mode, atime, mtime, length, name, uid, gid, muid) = st
        NO32, NO64 = 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF
        # only length 0 and/or times, or nothing at all: a no-op on any file
        # the user may write (the decision; shells truncate on ">")
        if (mode == NO32 and not name and not uid and not gid and not muid
                and (length == NO64 or length == 0)):
            if length == NO64 and atime == NO32 and mtime == NO32:
                return                       # a "sync" wstat
            if not self.maywrite(fid):
                raise Net9Error(errors.Eperm)
            if length == 0 and TYPE(fid.path) == Qndb:
                self.ndbtrunc()
            return
        self.convwstat(fid, mode if mode != NO32 else None, uid or None)

    def convwstat(self, fid: Fid, mode: Optional[int], uid: Optional[str]) -> None:
        """devip's ipwstat: ctl and data only, by the owner or eve."""
        t = TYPE(fid.path)
        if t not in (Qctl, Qdata):
            raise Net9Error(errors.Eperm)
        c = fid.conv
        if c is None:
            p, c = self.convof(fid.path)
        if c is None:
            raise Net9Error(errors.Enonexist)
        if fid.uname != c.owner and not self.iseve(fid):
            raise Net9Error(errors.Eperm)
        if uid:
            if uid != fid.uname and not self.iseve(fid):
                raise Net9Error(errors.Eperm)
            c.owner = uid
        if mode is not None:
            c.perm = mode & 0o666

    # ---- 9P2000.L attributes ------------------------------------------------------

    def numeric(self, name: str, fid: Fid) -> int:
        """A numeric id for a devip user name: the attach's own uid for its
        uname, else the host's passwd entry, else nobody (65534)."""
        if fid.nuid is not None and name == fid.uname:
            return fid.nuid
        try:
            return pwd.getpwnam(name).pw_uid
        except (KeyError, TypeError):
            return 65534


def linegranular(text: Union[str, bytes], offset: int, count: int) -> bytes:
    """ipselftabread/arpread: a non-zero offset skips whole lines."""
    lines = text.encode().splitlines(keepends=True)
    out = bytearray()
    pos = 0
    for ln in lines:
        if pos >= offset:
            if len(out) + len(ln) > count:
                break
            out += ln
        pos += len(ln)
    return bytes(out)
