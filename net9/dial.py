"""dial(2) for Python, over net9's /net: dial, announce, listen, accept,
reject and hangup with Plan 9's semantics (dial(2), and the /net files of
net9(4)), returning objects that behave like Python files and sockets.

    import net9
    with net9.dial("tcp!10.9.0.1!80") as c:          # Conn
        c.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        page = c.read()                            # everything, up to EOF

    ann = net9.announce("tcp!*!8080")              # Announcement
    call = ann.listen()                            # Call: blocks for one
    print(call.remote)                             # "10.9.0.1!51234"
    conn = call.accept()                           # Conn on its data file

Two ways to reach /net:

* over 9P, straight to a running `net9 serve` (the default): srv= names
  its socket, unix!PATH or tcp!HOST!PORT, by default the one net9 serve
  makes (/tmp/ns.$USER.$DISPLAY/net9, used only when that directory and
  socket are yours and closed to others: net9.namespace; or $NET9_SRV
  when set); user= is the 9P user name (default: yours; the server lets
  you attach as yourself only, unless you are root or its own user);
* through a mounted /net (9pfuse or v9fs): netdir="/mnt/net".

A Net object holds one such connection; the module functions make one per
call (net=Net(...) shares one, which is what several conversations in one
program should do).  Over 9P the requests of one operation go out back to
back and are answered together (net9 serve takes a connection's requests
in order), in one write: listen is one round trip (walk and open of
listen; the call's number is in the qid the open returns, as devip numbers
qids); accept writes its "accept N" and the walk and open of data and
returns, the Conn taking their answers when it first uses data or closes;
close is one round trip (every clunk); dial two (clone; connect, walk and
open of data).

Addresses use Plan 9's syntax: [net!]host!service[!r], net one of tcp, udp,
icmp, icmpv6 (or "net", meaning tcp); host a name, an IPv4 or IPv6 literal
(brackets allowed), or * (announce: any address); service a number or a
well-known name (getservbyname, then a built-in table).  dial asks the
served /net's connection server (/net/cs) for a name's addresses, as
dial(2) does, so that names resolve where the stack is; where there is
none (an older server), names are resolved here, with the host's resolver.
A name with several addresses is dialed address by address until one
answers, as dial(2) tries each of cs's answers.

Errors: a bad address raises AddrError (a ValueError); a name that does
not resolve, socket.gaierror (with cs's text when cs answered); no server, ServerUnreachable; a default name
space directory or socket another user could control,
net9.namespace.NamespaceError (a PermissionError); an attach the server
refuses (user= is not who we are), PermissionError with the server's text;
what the server refuses later, OSError with devip's text as strerror (errno
is the Linux one net9's 9P2000.L replies use: "connection refused" is
ConnectionRefusedError, "connection timed out" TimeoutError, "permission
denied" PermissionError...) and the file as filename.
"""

from __future__ import annotations

from typing import Any, Optional, TypeVar

import errno as _errno
import io
import ipaddress
import os
import pwd
import socket
import sys
import threading

from net9 import ninep
from net9.client import Client, NinepError, ORDWR, OREAD

__all__ = ["dial", "announce", "listen", "accept", "reject", "hangup", "Net", "Conn",
           "Announcement", "Call", "AddrError", "ServerUnreachable", "parseaddr",
           "default_srv", "SERVICES"]

# Well-known services, for when getservbyname does not know the name (no
# /etc/services): IANA's numbers and Plan 9's own (ndb/common).
SERVICES = {
    "echo": 7, "discard": 9, "systat": 11, "daytime": 13, "netstat": 15, "chargen": 19,
    "ftp-data": 20, "ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "time": 37,
    "whois": 43, "domain": 53, "dns": 53, "bootps": 67, "bootpc": 68, "tftp": 69,
    "gopher": 70, "finger": 79, "http": 80, "www": 80, "kerberos": 88, "pop3": 110,
    "sunrpc": 111, "ident": 113, "auth": 113, "nntp": 119, "ntp": 123, "imap": 143,
    "imap4": 143, "snmp": 161, "bgp": 179, "irc": 194, "ldap": 389, "https": 443,
    "submissions": 465, "syslog": 514, "submission": 587, "nfs": 2049, "ldaps": 636,
    "rsync": 873, "imaps": 993, "pop3s": 995, "socks": 1080, "openvpn": 1194,
    "9fs": 564, "9pfs": 564, "ticket": 567, "styx": 6666, "mysql": 3306,
    "postgresql": 5432, "x11": 6000, "http-alt": 8080, "exportfs": 17007,
    "rexexec": 17009, "ncpu": 17010, "cpu": 17013, "rcpu": 17019, "venti": 17034,
    "wiki": 17035, "vica": 17020, "vacfs": 17034,
}
SERVICEPROTOS = ("tcp", "udp")


class AddrError(ValueError):
    """A malformed address, or an unknown service name."""


class ServerUnreachable(OSError):
    """No net9 server answers at the address given (or the default one)."""


def default_srv() -> str:
    """$NET9_SRV, else the unix socket net9 serve makes by default, once
    net9.namespace has checked its directory and owner (NamespaceError, a
    PermissionError, when another user could have put it there)."""
    env = os.environ.get("NET9_SRV")
    if env:
        return env
    from net9.namespace import client_path
    return "unix!" + client_path()


def default_user() -> str:
    from net9.client import myname
    return myname()


# ---- addresses ------------------------------------------------------------

def service_port(svc: str, net: str) -> str:
    """The decimal port for a service (a number, * or a name)."""
    if svc == "*" or svc.isdigit():
        return svc
    if net not in SERVICEPROTOS and net != "net":
        raise AddrError("%s has no service names: %r" % (net, svc))
    try:
        return str(socket.getservbyname(svc, "tcp" if net == "net" else net))
    except OSError:
        pass
    if svc in SERVICES:
        return str(SERVICES[svc])
    raise AddrError("unknown service %r" % svc)


def port_name(port: str, net: str) -> str:
    """The service name for a port when there is a well-known one (netstat)."""
    if not port.isdigit() or net not in SERVICEPROTOS:
        return port
    try:
        return socket.getservbyport(int(port), net)
    except (OSError, OverflowError):
        for k, v in SERVICES.items():
            if str(v) == port:
                return k
    return port


def _literal(host: str) -> Optional[str]:
    h = host
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    try:
        return str(ipaddress.ip_address(h.split("%")[0]))
    except ValueError:
        return None


def resolve(host: str, net: str = "tcp") -> list:
    """The addresses (devip text) for host: a literal as it is, a name
    through the resolver (in its order, duplicates removed)."""
    lit = _literal(host)
    if lit is not None:
        return [lit]
    fam = socket.AF_INET6 if net == "icmpv6" else socket.AF_UNSPEC
    if net in ("icmp",):
        fam = socket.AF_INET
    try:
        infos = socket.getaddrinfo(host, None, fam, socket.SOCK_STREAM)
    except UnicodeError:
        raise socket.gaierror(socket.EAI_NONAME, "%s: bad host name" % host) from None
    except socket.gaierror as e:
        raise socket.gaierror(e.errno, "%s: %s" % (host, e.strerror)) from None
    out = []
    for i in infos:
        a = str(ipaddress.ip_address(i[4][0].split("%")[0]))
        if a not in out:
            out.append(a)
    return out


def parseaddr(addr: str, defnet: str = "tcp", announcing: bool = False) -> tuple[str, str, str, str]:
    """Split a Plan 9 address: (net, host, port, rest).  port is decimal
    (or * when announcing), rest the fields after it ("!r"...)."""
    if not isinstance(addr, str) or not addr or any(c.isspace() for c in addr):
        raise AddrError("bad address %r" % (addr,))
    f = addr.split("!")
    if len(f) == 1:
        if announcing:                 # a bare port: tcp!*!PORT
            f = [defnet, "*", f[0]]
        else:
            raise AddrError("bad address %r: want [net!]host!port" % addr)
    elif len(f) == 2:
        f = [defnet] + f
    net, host, svc, rest = f[0], f[1], f[2], f[3:]
    if net == "net":
        net = defnet
    if not net or not host or not svc:
        raise AddrError("bad address %r: want [net!]host!port" % addr)
    if svc == "*" and not announcing:
        raise AddrError("bad address %r: * is a port only when announcing" % addr)
    port = service_port(svc, net)
    return net, host, port, "".join("!" + x for x in rest)


# ---- errors -----------------------------------------------------------------

def oserror(text: str, path: str = None) -> OSError:
    """An OSError for devip's error text (subclass by errno)."""
    from net9.errors import errno_of
    e = errno_of(text)
    if text in ("i/o on hungup channel", "Hangup"):
        e = _errno.EPIPE
    if path is None:
        return OSError(e, text)
    return OSError(e, text, path)


# ---- the two ways to /net ---------------------------------------------------

class _Opening:
    """A walk and open sent and not yet waited for (_Files9p.openstart)."""

    __slots__ = ("path", "fid", "tags", "nnames", "haspre", "prereply")

    def __init__(self, path):
        self.path = path
        self.fid = None
        self.tags = None
        self.nnames = 0
        self.haspre = False
        self.prereply = None


class _Files9p:
    """Files under /net through a 9P Client.  Handles are fids."""

    blocking_timeouts = True

    def __init__(self, client: Client, prefix: str = "/net"):
        self.cl = client
        self.prefix = prefix
        self.orphans = []               # tags of forgotten openings (openforget)
        self.orphanlock = threading.Lock()

    def path(self, p):
        return self.prefix + "/" + p

    def _err(self, e, p):
        """What to raise for a 9P error on file p (the OSError of its text),
        or for the end of the 9P connection (EOFError: a reset)."""
        if isinstance(e, NinepError):
            return oserror(str(e), self.path(p))
        if isinstance(e, EOFError):
            return ConnectionResetError(_errno.ECONNRESET, "net9 server: %s" % e)
        return e

    def open(self, p, mode, timeout=-1, pre=None):
        """Walk to p and open it in one round trip; the fid.  pre: (fid,
        bytes) to write first in the same round trip, its answer ignored
        (accept's "accept N")."""
        return self.openq(p, mode, timeout, pre)[0]

    def openq(self, p, mode, timeout=-1, pre=None):
        """open, and the qid the open returned."""
        op = self.openstart(p, mode, pre)
        fid, qid, _ = self.openfinish(op, timeout)
        return fid, qid

    def openstart(self, p, mode, pre=None):
        """Send the walk to p and its open (after pre's write) in one
        write, and return without waiting: an _Opening for openfinish.
        The server takes a connection's requests in order, so the open
        finds the fid the walk made (or fails, when the walk did): one
        round trip, one wake-up of the server."""
        try:
            return self._openstart(p, mode, pre)
        except (NinepError, EOFError) as e:
            raise self._err(e, p) from None

    def _openstart(self, p, mode, pre):
        cl = self.cl
        op = _Opening(p)
        names = cl.names(p)
        if not names or len(names) > ninep.MAXWELEM:
            # (never for /net's paths) one request at a time
            if pre is not None:
                try:
                    op.prereply = cl.rpc(ninep.Twrite, pre[0], 0, bytes(pre[1]))
                except NinepError:
                    pass
            op.fid = cl.walkopen(p, mode)
            return op
        op.nnames = len(names)
        op.fid = cl.newfid()
        reqs = []
        if pre is not None:
            reqs.append((ninep.Twrite, pre[0], 0, bytes(pre[1])))
        reqs.append((ninep.Twalk, cl.root, op.fid, names))
        reqs.append((ninep.Topen, op.fid, mode))
        self._reap()
        try:
            op.tags = self._start(reqs)
        except BaseException:
            cl.clunk(op.fid)
            raise
        op.haspre = pre is not None
        return op

    def openfinish(self, op, timeout=-1, pretimeout=-1):
        """Wait for an _Opening's replies: (fid, qid of the open, the
        reply to pre's write or None).  timeout bounds the open (a listen
        waits for a call), pretimeout pre's write (a connect).  On an error
        or an interrupt the fid is clunked and what is still out taken
        back."""
        try:
            return self._openfinish(op, timeout, pretimeout)
        except (NinepError, EOFError) as e:
            raise self._err(e, op.path) from None

    def _openfinish(self, op, timeout, pretimeout):
        cl = self.cl
        if op.tags is None:
            return op.fid, None, op.prereply
        sent, op.tags = op.tags, None
        rs = []
        for i, t in enumerate(sent):
            if i == len(sent) - 1:
                tmo = timeout
            elif op.haspre and i == 0:
                tmo = pretimeout
            else:
                tmo = -1
            try:
                rs.append(cl.wait(t, tmo))
            except BaseException:
                # (wait flushed t itself; take back what is still out)
                for u in sent[i + 1:]:
                    self._abandon(u)
                cl.clunk(op.fid)
                raise
        rw, ro = rs[-2], rs[-1]
        pre = rs[0] if op.haspre else None
        if rw.type == ninep.Rerror or len(rw.wqid) != op.nnames:
            cl.clunk(op.fid)            # (no such fid there: this frees the number)
            raise NinepError(rw.ename if rw.type == ninep.Rerror else "file does not exist")
        if ro.type == ninep.Rerror:
            cl.clunk(op.fid)
            raise NinepError(ro.ename)
        return op.fid, ro.qid, pre

    def openforget(self, op, hs=()):
        """An _Opening no one will finish (a Conn collected unused): clunk
        its fid and hs after it without waiting; its replies are taken and
        dropped by a later request on this connection (it cannot wait:
        finalizers run in any thread)."""
        cl = self.cl
        if op.tags is not None:
            with self.orphanlock:
                self.orphans.extend(op.tags)
            op.tags = None
        for h in [op.fid] + list(hs):
            cl.clunk(h, wait=False)

    def _reap(self):
        """Drop the replies of forgotten openings that have come."""
        if not self.orphans:
            return
        with self.orphanlock:
            tags, self.orphans = self.orphans, []
        left = []
        for t in tags:
            try:
                if self.cl.done(t) is None:
                    left.append(t)
            except (OSError, EOFError):
                return              # (the connection is gone: nothing to take)
        if left:
            with self.orphanlock:
                self.orphans.extend(left)

    def _start(self, reqs):
        """Send requests ((type, args...) each) in one write, so that the
        server reads them with one wake-up; their tags.  (Client.start
        writes each by itself.)"""
        cl = self.cl
        send = getattr(cl, "_send", None)
        if send is None or len(reqs) == 1:
            tags = []
            try:
                for r in reqs:
                    tags.append(cl.start(*r))
            except BaseException:
                for t in tags:
                    self._abandon(t)
                raise
            return tags
        tags = []
        try:
            for _r in reqs:
                tags.append(cl.tag())
            send(b"".join([ninep.pack(r[0], t, *r[1:]) for r, t in zip(reqs, tags)]), tags[0])
        except BaseException:
            # (a dead connection, or an interrupt before the write: a flush
            # of a tag never sent is answered at once and frees it)
            for t in tags:
                self._abandon(t)
            raise
        return tags

    def _abandon(self, tag):
        """Take back a request whose answer will not be used."""
        try:
            self.cl.flush(tag)
        except Exception:
            pass

    @staticmethod
    def convnumber(qid):
        """The conversation number in the qid of an opened clone or listen
        file, or None.  Opening them makes the fid the new conversation's
        ctl, and devip's qid path says which (type in the low 5 bits, Qctl
        12, the conversation in the next 12): listen(2) and dial(2) read the
        number, this saves that round trip."""
        if qid is None or qid[0] & 0x80 or qid[2] & 0x1F != 12:
            return None
        return str((qid[2] >> 5) & 0xFFF)

    def read(self, h, n, p="", timeout=None):
        try:
            return self.cl.read(h, n, 0, timeout=timeout)
        except (NinepError, EOFError) as e:
            raise self._err(e, p) from None

    def write(self, h, data, p="", timeout=None):
        try:
            return self.cl.write(h, data, 0, timeout=timeout)
        except (NinepError, EOFError) as e:
            raise self._err(e, p) from None

    def opendata(self, p, pre=None):
        """(read handle, write handle) of a data file: one fid does both
        (the server answers requests out of order).  pre: as for open."""
        h = self.open(p, ORDWR, pre=pre)
        return h, h

    def readnum(self, h, p=""):
        """A ctl file's text: the conversation number."""
        try:
            return self.cl.read(h, 64, 0).decode().strip()
        except NinepError as e:
            raise self._err(e, p) from None

    def close(self, h, wait=True):
        self.cl.clunk(h, wait=wait)

    def closeall(self, hs, wait=True):
        """Close several handles in one round trip (the Tclunks go out back
        to back); errors are ignored, as clunk ignores them."""
        cl = self.cl
        if not wait or len(hs) == 1:
            for h in hs:
                cl.clunk(h, wait=wait)
            return
        try:
            sent = zip(hs, self._start([(ninep.Tclunk, h) for h in hs]))
        except (OSError, EOFError, NinepError):
            return
        self._reap()
        for h, t in sent:
            try:
                cl.wait(t)
            except (OSError, EOFError, TimeoutError, NinepError):
                continue
            cl._freefid(h)              # (as Client.clunk does after the answer)

    def closeopening(self, op, hs=()):
        """Close an _Opening's fid and hs: the clunks go out in one write
        right behind it, then every reply is taken (errors ignored)."""
        cl = self.cl
        pend, op.tags = op.tags, None
        hs = [op.fid] + list(hs)
        if pend is None:
            self.closeall(hs)
            return
        try:
            ctags = self._start([(ninep.Tclunk, h) for h in hs])
        except (OSError, EOFError, NinepError):
            ctags = []
        for t in pend:
            try:
                cl.wait(t)
            except (OSError, EOFError, TimeoutError, NinepError):
                pass
        for h, t in zip(hs, ctags):
            try:
                cl.wait(t)
            except (OSError, EOFError, TimeoutError, NinepError):
                continue
            cl._freefid(h)              # (as Client.clunk does after the answer)

    def cat(self, p) -> str:
        try:
            fid = self.cl.walkopen(p, OREAD)
            try:
                return self.cl.readall(fid).decode("utf-8", "replace")
            finally:
                self.cl.clunk(fid)
        except NinepError as e:
            raise self._err(e, p) from None

    def ls(self, p) -> list:
        """(name, uid, isdir) of each entry of directory p."""
        try:
            fid = self.cl.walkopen(p, OREAD)
            try:
                ents = self.cl.dirread(fid)
            finally:
                self.cl.clunk(fid)
        except NinepError as e:
            raise self._err(e, p) from None
        return [(st[7], st[8], bool(st[3] & 0x80000000)) for st in ents]

    def exists(self, p) -> bool:
        try:
            fid = self.cl.walk(p)
        except NinepError:
            return False
        self.cl.clunk(fid)
        return True

    def query(self, p, q) -> list:
        """cs(8)/dns(8): write q to file p, read its answers from offset 0
        (one per read) until an empty read.  NinepError with the text."""
        fid = self.cl.walkopen(p, ORDWR)
        try:
            self.cl.write(fid, q.encode(), 0)
            out, off = [], 0
            while True:
                d = self.cl.read(fid, 1024, off)
                if not d:
                    return out
                out.append(d.decode("utf-8", "replace"))
                off += len(d)
        finally:
            self.cl.clunk(fid)

    def shutdown(self):
        self.cl.close()


class _FilesMount:
    """Files under a mounted /net.  Handles are file descriptors."""

    blocking_timeouts = False

    def __init__(self, netdir: str):
        self.prefix = netdir.rstrip("/") or "/"

    def path(self, p):
        return os.path.join(self.prefix, p)

    def open(self, p, mode, timeout=-1, pre=None):
        if pre is not None:
            try:
                self.write(pre[0], pre[1])
            except OSError:
                pass
        return os.open(self.path(p), os.O_RDWR if mode == ORDWR else os.O_RDONLY)

    def openq(self, p, mode, timeout=-1, pre=None):
        return self.open(p, mode, timeout, pre), None

    @staticmethod
    def convnumber(qid):
        return None

    def read(self, h, n, p="", timeout=None):
        return os.read(h, n)

    def write(self, h, data, p="", timeout=None):
        view = memoryview(data)
        n = 0
        while n < len(view) or not view:
            w = os.write(h, view[n:])
            if not view:
                break
            n += w
        return n

    def opendata(self, p, pre=None):
        """(read fd, write fd) of a data file: a write through a FUSE mount
        waits for a read blocked on the same descriptor to finish, so each
        direction has its own (both count as references, as in devip)."""
        r = self.open(p, ORDWR, pre=pre)
        try:
            w = self.open(p, ORDWR)
        except BaseException:
            self.close(r)
            raise
        return r, w

    def readnum(self, h, p=""):
        return os.pread(h, 64, 0).decode().strip()

    def close(self, h, wait=True):
        try:
            os.close(h)
        except OSError:
            pass

    def closeall(self, hs, wait=True):
        for h in hs:
            self.close(h)

    def cat(self, p) -> str:
        fd = os.open(self.path(p), os.O_RDONLY)
        try:
            out = bytearray()
            while True:
                d = os.read(fd, 65536)
                if not d:
                    break
                out += d
            return out.decode("utf-8", "replace")
        finally:
            os.close(fd)

    def ls(self, p) -> list:
        out = []
        with os.scandir(self.path(p)) as it:
            for e in it:
                st = e.stat(follow_symlinks=False)
                try:
                    uid = pwd.getpwuid(st.st_uid).pw_name
                except KeyError:
                    uid = str(st.st_uid)
                out.append((e.name, uid, e.is_dir(follow_symlinks=False)))
        return out

    def exists(self, p) -> bool:
        return os.path.exists(self.path(p))

    def query(self, p, q) -> list:
        fd = os.open(self.path(p), os.O_RDWR)
        try:
            os.pwrite(fd, q.encode(), 0)
            out, off = [], 0
            while True:
                d = os.pread(fd, 1024, off)
                if not d:
                    return out
                out.append(d.decode("utf-8", "replace"))
                off += len(d)
        finally:
            os.close(fd)

    def shutdown(self):
        pass


class Net:
    """One way to reach a /net: over 9P (srv=, user=) or a mounted
    directory (netdir=).  dial and announce make conversations in it;
    close() ends the 9P connection (and with it every conversation it
    still holds)."""

    def __init__(self, srv: str = None, netdir: str = None, user: str = None,
                 timeout: float = 10.0):
        self.refs = 0
        self.implicit = False
        self.lock = threading.Lock()
        self.closed = False
        self.hascs = None             # does this /net have cs? (asked once)
        if netdir is not None:
            if srv is not None:
                raise ValueError("give srv or netdir, not both")
            if not os.path.isdir(netdir):
                raise FileNotFoundError(_errno.ENOENT, "no such directory", netdir)
            if not os.path.exists(os.path.join(netdir, "tcp")) and \
                    not os.path.exists(os.path.join(netdir, "udp")):
                raise FileNotFoundError(_errno.ENOENT, "not a mounted /net (no tcp, no udp)",
                                        netdir)
            self.srv = None
            self.netdir = netdir
            self.files = _FilesMount(netdir)
            self.user = user
            return
        self.srv = srv or default_srv()
        self.netdir = None
        self.user = user or default_user()
        try:
            cl = Client(self.srv, uname=self.user, timeout=timeout)
        except ValueError as e:
            raise ServerUnreachable(_errno.EINVAL, str(e), self.srv) from None
        except NinepError as e:
            if str(e).startswith("permission denied"):
                # the attach: we may not be self.user there
                raise PermissionError(_errno.EACCES, str(e), self.srv) from None
            raise ServerUnreachable(_errno.EPROTO, "9P: %s" % e, self.srv) from None
        except (OSError, EOFError) as e:
            en = getattr(e, "errno", None) or _errno.ECONNREFUSED
            why = getattr(e, "strerror", None) or str(e) or type(e).__name__
            raise ServerUnreachable(en, why, self.srv) from None
        self.files = _Files9p(cl)

    @property
    def client(self) -> Client:
        return getattr(self.files, "cl", None)

    def __repr__(self) -> str:
        return "Net(%s)" % (("srv=%r" % self.srv) if self.srv else ("netdir=%r" % self.netdir))

    # reference counting for the Nets the module functions make
    def _acquire(self):
        with self.lock:
            self.refs += 1

    def _release(self):
        with self.lock:
            self.refs -= 1
            last = self.refs <= 0 and self.implicit
        if last:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.files.shutdown()

    def __enter__(self) -> Net:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- dial(2) --

    def dial(self, addr: str, local: str = None, timeout: float = None) -> "Conn":
        """Connect to addr ([net!]host!service); a Conn.  local:
        [addr!]port to call from.  timeout bounds the connect (and is the
        Conn's timeout); None waits as devip does (up to ~5 min for TCP)."""
        if timeout is not None and not self.files.blocking_timeouts:
            raise io.UnsupportedOperation("timeouts need the 9P transport (srv=), "
                                          "not a mounted /net")
        net, host, port, rest = parseaddr(addr)
        if host == "*":
            raise AddrError("bad address %r: cannot dial *" % addr)
        lmsg = None
        if local:
            lmsg = _localpart(local, net)
        err = None
        for tnet, dest in self._translate(net, host, port, rest):
            try:
                return self._call(tnet, dest, lmsg, timeout)
            except (OSError, TimeoutError) as e:
                err = e
                if isinstance(e, (ServerUnreachable, ConnectionResetError)) or \
                        getattr(e, "strerror", "") in ("interrupted",):
                    break
                if getattr(e, "errno", None) == _errno.ENOENT:
                    break                    # no such network
        raise err

    def _translate(self, net, host, port, rest):
        """[(network, address)] to try for a dial: a literal as it is; a
        name through /net/cs when this /net has one (its answers, as
        dial(2) takes them), else through the host's resolver."""
        if _literal(host) is None:
            if self.hascs is None:
                self.hascs = self.files.exists("cs")
            if self.hascs:
                return self.cs("%s!%s!%s%s" % (net, host, port, rest), host)
        return [(net, "%s!%s%s" % (a, port, rest)) for a in resolve(host, net)]

    def cs(self, query: str, host: str = None) -> list:
        """cs(8)'s answers for query ([net!]host!service...) as
        [(network, address)]: /net/tcp/clone 10.9.0.1!80 is ("tcp",
        "10.9.0.1!80").  socket.gaierror with cs's text when it cannot
        translate."""
        try:
            answers = self.files.query("cs", query)
        except (NinepError, OSError) as e:
            text = str(e) if isinstance(e, NinepError) else (e.strerror or str(e))
            if isinstance(e, FileNotFoundError) and not text.startswith("cs:"):
                raise
            raise socket.gaierror(socket.EAI_NONAME, "%s: %s" % (host or query, text)) from None
        out = []
        for a in answers:
            clone, _, dest = a.strip().partition(" ")
            parts = clone.split("/")
            # /net/tcp/clone: this tree's networks only
            if len(parts) == 4 and parts[1] == "net" and parts[3] == "clone" and dest:
                out.append((parts[2], dest))
        if not out:
            raise socket.gaierror(socket.EAI_NONAME, "%s: cs: no answer" % (host or query))
        return out

    def _clone(self, net: str) -> tuple[Any, Any]:
        """A new conversation of net: (its ctl, opened, and its number).
        Raises FileNotFoundError for a network this /net does not have."""
        f = self.files
        try:
            ctl, qid = f.openq(net + "/clone", ORDWR)
        except FileNotFoundError:
            raise FileNotFoundError(_errno.ENOENT, "unknown network %s" % net,
                                    f.path(net)) from None
        try:
            return ctl, f.convnumber(qid) or f.readnum(ctl, net + "/clone")
        except BaseException:
            f.close(ctl)
            raise

    def _call(self, net, raddr, local, timeout):
        f = self.files
        ctl, n = self._clone(net)
        ok = False
        try:
            d = "%s/%s" % (net, n)
            msg = ("connect " + raddr + (" " + local if local else "")).encode()
            if isinstance(f, _Files9p):
                # the connect, and the walk and open of data behind it, in
                # one round trip (the open does not wait for the connect)
                op = f.openstart(d + "/data", ORDWR, pre=(ctl, msg))
                try:
                    h, _, r = f.openfinish(op, pretimeout=timeout)
                except TimeoutError:
                    raise TimeoutError(_errno.ETIMEDOUT, "timed out",
                                       f.path(d + "/ctl")) from None
                if r.type == ninep.Rerror:
                    f.close(h)
                    raise oserror(r.ename, f.path(d + "/ctl"))
                data = (h, h)
            else:
                f.write(ctl, msg, d + "/ctl", timeout=timeout)
                data = f.opendata(d + "/data")
            ok = True
        finally:
            if not ok:
                f.close(ctl)
        c = Conn(self, net, n, ctl, data)
        c._timeout = timeout
        return c

    def announce(self, addr: str) -> "Announcement":
        """Announce addr ([net!][host!]service; host * or absent: every
        address; service * (eve only): every port); an Announcement."""
        net, host, port, rest = parseaddr(addr, announcing=True)
        if host == "*":
            local = port + rest
        else:
            lit = resolve(host, net)
            local = "%s!%s%s" % (lit[0], port, rest)
        f = self.files
        ctl, n = self._clone(net)
        ok = False
        try:
            f.write(ctl, ("announce " + local).encode(), "%s/%s/ctl" % (net, n))
            ok = True
        finally:
            if not ok:
                f.close(ctl)
        return Announcement(self, net, n, ctl)

    # -- the files, for netstat and friends --

    def cat(self, path: str) -> str:
        """The text of a file under /net (e.g. "tcp/stats")."""
        return self.files.cat(path.strip("/"))

    def ls(self, path: str = "") -> list:
        """(name, owner, isdir) for each entry of a directory under /net."""
        return self.files.ls(path.strip("/"))

    def exists(self, path: str) -> bool:
        return self.files.exists(path.strip("/"))


def _localpart(local: str, net: str) -> str:
    f = local.split("!")
    if len(f) == 1:
        return service_port(f[0], net)
    host, port, rest = f[0], f[1], f[2:]
    if host != "*":
        a = _literal(host)
        if a is None:
            a = resolve(host, net)[0]
        host = a
    return "%s!%s%s" % (host, service_port(port, net), "".join("!" + x for x in rest))


# ---- conversations ------------------------------------------------------------

class _Conversation:
    """What Conn, Announcement and Call share: a directory and a ctl file."""

    def __init__(self, net: Net, proto: str, n: str, ctl):
        self.net = net
        self.proto = proto
        self.number = int(n)
        self.name = "%s/%s" % (proto, n)
        self.dir = net.files.path(self.name)
        self._ctl = ctl
        self._cache = {}
        self._gone = False
        net._acquire()

    def _file(self, name):
        return self.name + "/" + name

    def _text(self, name, cache=False):
        if cache and name in self._cache:
            return self._cache[name]
        t = self.net.files.cat(self._file(name)).strip()
        if cache:
            self._cache[name] = t
        return t

    @property
    def local(self) -> str:
        """The local address, as devip prints it: addr!port."""
        return self._text("local", cache=isinstance(self, (Conn, Call)))

    @property
    def remote(self) -> str:
        return self._text("remote", cache=isinstance(self, (Conn, Call)))

    def status(self) -> str:
        """The status file's line (its first word is the TCP state)."""
        return self._text("status")

    def ctl(self, msg: str) -> None:
        """Write one control message (keepalive, ttl 64, hangup...)."""
        if self._gone:
            raise ValueError("I/O operation on closed conversation")
        self.net.files.write(self._ctl, msg.encode(), self._file("ctl"))

    def hangup(self) -> None:
        """hangup(2): write "hangup" to ctl (TCP: a reset; every reader and
        writer of the conversation is woken)."""
        self.ctl("hangup")

    def _closectl(self, wait=True):
        if not self._gone:
            self._gone = True
            try:
                self.net.files.close(self._ctl, wait=wait)
            finally:
                self.net._release()

    def __del__(self):
        # garbage: close without waiting for replies (this may run in any
        # thread, even the 9P reader's); nothing at interpreter exit
        if sys.is_finalizing():
            return
        try:
            self._close(wait=False)
        except Exception:
            pass

    def _close(self, wait=True):
        self._closectl(wait)


def _hostport(text: str):
    a, _, p = text.rpartition("!")
    try:
        return a, int(p)
    except ValueError:
        return a, p


class Conn(_Conversation, io.RawIOBase):
    """A connected conversation: its data file, as a socket and a raw
    binary file.  recv/send/sendall/read/write/readline/makefile, iteration
    by lines, context manager; .dir (/net/tcp/N), .local, .remote
    (devip's addr!port text), getsockname()/getpeername() ((addr, port)),
    status(), ctl(msg), hangup(), settimeout() (9P only)."""

    def __init__(self, net, proto, n, ctl, data, opening=None):
        io.RawIOBase.__init__(self)
        _Conversation.__init__(self, net, proto, n, ctl)
        self._data, self._wdata = data
        # the open of data when it is still out (Call.accept over 9P): its
        # answers are taken at the first use of data, or by close
        self._opening = opening
        self._olock = threading.Lock()
        self._dataerr = None
        self._timeout = None
        self._eof = False
        self._pushback = b""
        self._rlock = threading.Lock()
        self.stream = proto not in ("udp", "icmp", "icmpv6")

    def __repr__(self) -> str:
        return "<net9.Conn %s%s>" % (self.dir, " closed" if self.closed else "")

    # -- socket-like --

    def settimeout(self, t: Optional[float]) -> None:
        """Seconds a recv/send may block (None: no limit) before
        TimeoutError; the request is flushed, nothing is lost."""
        if t is not None:
            if t <= 0:
                raise ValueError("timeout must be positive or None")
            if not self.net.files.blocking_timeouts:
                raise io.UnsupportedOperation("timeouts need the 9P transport (srv=)")
        self._timeout = t

    def gettimeout(self) -> Optional[float]:
        return self._timeout

    def _check(self):
        if self.closed:
            raise ValueError("I/O operation on closed conversation")
        if self._opening is not None or self._dataerr is not None:
            self._ready()

    def _ready(self):
        """Take the answers of the open of data (accept sent it)."""
        with self._olock:
            op, self._opening = self._opening, None
            if op is not None:
                try:
                    h, _, _ = self.net.files.openfinish(op)
                except OSError as e:
                    self._dataerr = e
                    raise
                except BaseException:
                    self._dataerr = OSError(_errno.EINTR, "interrupted while opening",
                                            self.net.files.path(self._file("data")))
                    raise
                self._data = self._wdata = h
        if self._dataerr is not None:
            raise self._dataerr

    def _recvraw(self, n):
        self._check()
        if self._eof:
            return b""
        try:
            d = self.net.files.read(self._data, n, self._file("data"), timeout=self._timeout)
        except TimeoutError:
            raise TimeoutError(_errno.ETIMEDOUT, "timed out") from None
        if not d and self.stream:
            self._eof = True
        return d

    def recv(self, bufsize: int = 65536) -> bytes:
        """At most bufsize bytes as soon as any are there (TCP), or one
        datagram (UDP, ICMP); b"" at end of file."""
        if bufsize <= 0:
            return b""
        with self._rlock:
            if self._pushback:
                d, self._pushback = self._pushback[:bufsize], self._pushback[bufsize:]
                return d
        return self._recvraw(bufsize)

    def sendall(self, data) -> None:
        self._check()
        try:
            self.net.files.write(self._wdata, data, self._file("data"), timeout=self._timeout)
        except TimeoutError:
            raise TimeoutError(_errno.ETIMEDOUT, "timed out") from None

    def send(self, data) -> int:
        self.sendall(data)
        return len(data)

    def getsockname(self) -> tuple:
        return _hostport(self.local)

    def getpeername(self) -> tuple:
        return _hostport(self.remote)

    def fileno(self) -> int:
        """The data file's descriptor (a mounted /net only)."""
        if isinstance(self.net.files, _FilesMount):
            return self._data
        raise io.UnsupportedOperation("a conversation over 9P has no file descriptor")

    # -- io.RawIOBase --

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        d = self.recv(len(b))
        b[:len(d)] = d
        return len(d)

    def write(self, b) -> int:
        self.sendall(b)
        return len(b)

    def readline(self, size=-1) -> bytes:
        """One line (up to and with b"\\n"), from as few reads as it takes."""
        self._check()
        with self._rlock:
            while True:
                i = self._pushback.find(b"\n")
                if i >= 0 or (0 <= size <= len(self._pushback)):
                    end = i + 1 if i >= 0 else size
                    if 0 <= size < end:
                        end = size
                    line, self._pushback = self._pushback[:end], self._pushback[end:]
                    return line
                d = self._recvraw(65536)
                if not d:
                    line, self._pushback = self._pushback, b""
                    return line
                self._pushback += d

    def makefile(self, mode="r", buffering=None, *, encoding=None, errors=None,
                 newline=None):
        """A file object on the connection, like socket.makefile (closing
        it leaves the connection open)."""
        if not set(mode) <= {"r", "w", "b"}:
            raise ValueError("invalid mode %r (only r, w, b allowed)" % mode)
        writing = "w" in mode
        reading = "r" in mode or not writing
        raw = _ConnIO(self, reading, writing)
        if buffering is None or buffering < 0:
            buffering = io.DEFAULT_BUFFER_SIZE
        if buffering == 0:
            if "b" not in mode:
                raise ValueError("unbuffered streams must be binary")
            return raw
        if reading and writing:
            buf = io.BufferedRWPair(raw, raw, buffering)
        elif reading:
            buf = io.BufferedReader(raw, buffering)
        else:
            buf = io.BufferedWriter(raw, buffering)
        if "b" in mode:
            return buf
        t = io.TextIOWrapper(buf, encoding, errors, newline, write_through=writing)
        t.mode = mode
        return t

    def close(self) -> None:
        """Close data and ctl: the last reference goes, so TCP closes
        gracefully (FIN after what was written)."""
        self._close(wait=True)

    def _close(self, wait=True):
        if self.closed:
            return
        try:
            with self._olock:
                op, self._opening = self._opening, None
            hs = []
            if op is None and self._data is not None:
                hs.append(self._data)
                if self._wdata != self._data:
                    hs.append(self._wdata)
            owns = not self._gone
            if owns:
                # ctl too, in the same round trip
                self._gone = True
                hs.append(self._ctl)
            try:
                f = self.net.files
                if op is not None:
                    if wait:
                        f.closeopening(op, hs)
                    else:
                        f.openforget(op, hs)
                elif hs:
                    f.closeall(hs, wait=wait)
            finally:
                if owns:
                    self.net._release()
        except Exception:
            pass
        finally:
            io.RawIOBase.close(self)

    __del__ = _Conversation.__del__


class _ConnIO(io.RawIOBase):
    """A raw stream on a Conn for makefile: closing it leaves the Conn."""

    def __init__(self, conn, reading, writing):
        super().__init__()
        self.conn = conn
        self._r = reading
        self._w = writing

    def readable(self) -> bool:
        return self._r

    def writable(self) -> bool:
        return self._w

    def readinto(self, b: Any) -> int:
        return self.conn.readinto(b)

    def write(self, b: Any) -> int:
        return self.conn.write(b)


class _CtlHeld(_Conversation):
    """A conversation held by its ctl file alone (Announcement, Call): a
    context manager whose close() closes the ctl."""

    def __repr__(self) -> str:
        return "<net9.%s %s%s>" % (type(self).__name__, self.dir,
                                   " closed" if self._gone else "")

    @property
    def closed(self) -> bool:
        return self._gone

    def close(self) -> None:
        self._closectl()

    def __enter__(self: _Held) -> _Held:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_Held = TypeVar("_Held", bound=_CtlHeld)


class Announcement(_CtlHeld):
    """An announced conversation (announce(2)): listen() for calls;
    close() (or hangup()) ends the announcement."""

    def listen(self, timeout: float = None) -> "Call":
        """listen(2): wait for the next call (timeout: seconds, 9P only;
        TimeoutError when none came; the wait is flushed, no call lost)."""
        if self._gone:
            raise ValueError("listen on a closed announcement")
        if timeout is not None and not self.net.files.blocking_timeouts:
            raise io.UnsupportedOperation("timeouts need the 9P transport (srv=)")
        f = self.net.files
        try:
            h, qid = f.openq(self._file("listen"), ORDWR, timeout=timeout)
        except TimeoutError:
            raise TimeoutError(_errno.ETIMEDOUT, "timed out", f.path(self._file("listen"))) \
                from None
        try:
            n = f.convnumber(qid) or f.readnum(h, self._file("listen"))
        except BaseException:
            f.close(h)
            raise
        return Call(self.net, self.proto, n, h)

    def accept(self, timeout: float = None) -> "Conn":
        """listen() then accept(): the next call's Conn."""
        return self.listen(timeout).accept()


class Call(_CtlHeld):
    """An incoming call from Announcement.listen(): accept() it for a Conn,
    or reject() it (close it: TCP sends FIN)."""

    def accept(self) -> Conn:
        """accept(2): write "accept N" to ctl (devip refuses it; the answer
        is ignored, as accept(2) ignores it), open data; the Conn takes
        over the call.  Over 9P this sends the requests and returns: the
        Conn takes their answers when it first reads or writes (an error
        opening data is raised there) or closes."""
        if self._gone:
            raise ValueError("accept of a closed call")
        f = self.net.files
        pre = (self._ctl, ("accept %d" % self.number).encode())
        if isinstance(f, _Files9p):
            # "accept N" and the walk and open of data go out now, and the
            # Conn takes their answers at its first use of data or at close
            # (opening a call's data fails only with the 9P connection:
            # the listen's fid holds the conversation, its owner is ours)
            op = f.openstart(self._file("data"), ORDWR, pre=pre)
            c = Conn(self.net, self.proto, str(self.number), self._ctl, (None, None),
                     opening=op)
        else:
            data = f.opendata(self._file("data"), pre=pre)
            c = Conn(self.net, self.proto, str(self.number), self._ctl, data)
        c._cache.update(self._cache)
        # the Conn holds the ctl (and its reference to the Net) now
        self._gone = True
        self.net._release()
        return c

    def reject(self, cause: str = "") -> None:
        """reject(2): write "reject N cause" (devip refuses it too), then
        close the call."""
        if self._gone:
            return
        try:
            self.ctl(("reject %d %s" % (self.number, cause)).rstrip())
        except OSError:
            pass
        self.close()


# ---- dial(2)'s functions ------------------------------------------------------

def _net(net, srv, netdir, user, timeout=10.0):
    if net is not None:
        return net
    n = Net(srv=srv, netdir=netdir, user=user, timeout=timeout)
    n.implicit = True
    return n


def dial(addr: str, local: str = None, *, srv: str = None, netdir: str = None,
         user: str = None, timeout: float = None, net: Net = None) -> Conn:
    """dial(2): a Conn to addr ([net!]host!service).  Without net=, a 9P
    connection (srv, user) or a mounted /net (netdir) is opened for it and
    closed with it."""
    n = _net(net, srv, netdir, user)
    try:
        return n.dial(addr, local=local, timeout=timeout)
    finally:
        if n.implicit and n.refs == 0:
            n.close()


def announce(addr: str, *, srv: str = None, netdir: str = None, user: str = None,
             net: Net = None) -> Announcement:
    """announce(2): an Announcement of addr ([net!][host!]service)."""
    n = _net(net, srv, netdir, user)
    try:
        return n.announce(addr)
    finally:
        if n.implicit and n.refs == 0:
            n.close()


def listen(ann: Announcement, timeout: float = None) -> Call:
    """listen(2): the next call to ann."""
    return ann.listen(timeout)


def accept(call: Call) -> Conn:
    """accept(2): the call's Conn."""
    return call.accept()


def reject(call: Call, cause: str = "") -> None:
    """reject(2): refuse (close) the call."""
    call.reject(cause)


def hangup(conv) -> None:
    """hangup(2): write "hangup" to a Conn's, Call's or Announcement's ctl."""
    conv.hangup()


class _DialModule(type(sys)):
    """This module's type: net9.dial is both this module (so that
    "import net9.dial as d" and "from net9.dial import Net" find it) and,
    called, dial() (so that net9.dial(addr) is dial(2)), since the package
    cannot bind one name to both."""

    def __call__(self, addr: str, local: str = None, **kw) -> Conn:
        return dial(addr, local, **kw)


sys.modules[__name__].__class__ = _DialModule
