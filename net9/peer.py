"""Who a 9P client is: the identity net9.server judges a Tattach's uname
by (net9(4), "Who a client is").

A Peer is fixed when a connection is accepted and lasts as long as it;
nothing is cached across connections.

* Peer.trusted(why): the uname is taken as sent.  Standard input/output
  (whoever started the server), and remote clients under --trust-uname.
* Peer.local(uid): a process of this machine running as uid: over a unix
  socket its SO_PEERCRED, over TCP on loopback the owner of its socket,
  found as identd finds it (the /proc/net/tcp or tcp6 entry whose local
  end is the client's address and port and whose remote end is ours).
  It may attach as its own user name only, unless it is root or the
  server's own user.
* Peer.remote(where): a TCP client on another machine: unauthenticated,
  it is the user none whatever it sends.
* Peer.unknown(why): we could not tell (no /proc entry: the client went
  away, or lives in another network namespace): every attach is refused.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import socket
import struct
import sys

TRUSTED, LOCAL, REMOTE, UNKNOWN = "trusted", "local", "remote", "unknown"
NONE = "none"               # the unauthenticated user: owns nothing, never eve

TCP_TIME_WAIT = 0x06


class Peer:
    __slots__ = ("kind", "uid", "why")

    def __init__(self, kind, uid=None, why=""):
        self.kind = kind
        self.uid = uid
        self.why = why

    @classmethod
    def trusted(cls, why="trusted"):
        return cls(TRUSTED, why=why)

    @classmethod
    def local(cls, uid, why=""):
        return cls(LOCAL, uid=int(uid), why=why)

    @classmethod
    def remote(cls, why="remote"):
        return cls(REMOTE, why=why)

    @classmethod
    def unknown(cls, why):
        return cls(UNKNOWN, why=why)

    def __repr__(self):
        if self.kind == LOCAL:
            return "uid %d (%s)" % (self.uid, username(self.uid))
        if self.kind == REMOTE:
            return "remote (attaches as none)"
        if self.kind == TRUSTED:
            return "trusted (%s)" % self.why
        return "unknown (%s)" % self.why

    __str__ = __repr__


def username(uid):
    """The user name of uid: its passwd entry, else the number."""
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return str(uid)


def peercred(sock):
    """The uid of the process at the other end of a unix socket
    (SO_PEERCRED: who connected, or made the socketpair)."""
    b = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", b)
    return uid


def _canon(addr):
    """An ipaddress for a socket address's host part; v4-mapped IPv6
    addresses become the IPv4 address (a v4 client of a v6 socket appears
    in /proc/net/tcp, a v6 one in tcp6, either may be mapped)."""
    a = ipaddress.ip_address(addr.split("%", 1)[0])
    if a.version == 6 and a.ipv4_mapped is not None:
        return a.ipv4_mapped
    return a


def isloopback(addr):
    return _canon(addr).is_loopback


def _prochex(h):
    """A /proc/net/tcp{,6} address "0100007F:1F90": (ipaddress, port).  The
    address is printed as 32-bit words in the host's byte order."""
    a, p = h.split(":")
    raw = b"".join(int(a[i:i + 8], 16).to_bytes(4, sys.byteorder)
                   for i in range(0, len(a), 8))
    ip = ipaddress.ip_address(raw)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip, int(p, 16)


def procnet():
    """The /proc directory for the calling thread's network namespace."""
    for d in ("/proc/thread-self/net", "/proc/self/net"):
        if os.path.isdir(d):
            return d
    return "/proc/net"


def tcp_owner(client, server, procdir=None):
    """The uid owning the TCP socket whose local end is client (the address
    and port accept() returned) and whose remote end is server (our end,
    getsockname() of the accepted socket), or None when there is no such
    live socket in this network namespace.  An entry without an inode (a
    socket its process already closed, or one in TIME_WAIT) does not count:
    its owner can no longer be told."""
    want_local = (_canon(client[0]), int(client[1]))
    want_remote = (_canon(server[0]), int(server[1]))
    procdir = procdir or procnet()
    for name in ("tcp", "tcp6"):
        try:
            with open(os.path.join(procdir, name)) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for ln in lines:
            fl = ln.split()
            if len(fl) < 10:
                continue
            try:
                if _prochex(fl[1]) != want_local or _prochex(fl[2]) != want_remote:
                    continue
                st, uid, inode = int(fl[3], 16), int(fl[7]), int(fl[9])
            except ValueError:
                continue
            if st == TCP_TIME_WAIT or inode == 0:
                continue
            return uid
    return None


def of_socket(sock, peeraddr=None, trust_uname=False):
    """The Peer at the other end of a connected socket: SO_PEERCRED for a
    unix socket; for TCP, the owner of the client's socket when it comes
    from loopback, else a remote client (trusted only with trust_uname)."""
    if sock.family == socket.AF_UNIX:
        try:
            return Peer.local(peercred(sock), why="SO_PEERCRED")
        except OSError as e:
            return Peer.unknown("SO_PEERCRED: %s" % e.strerror)
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return Peer.unknown("not a unix or TCP socket")
    try:
        if peeraddr is None:
            peeraddr = sock.getpeername()
        here = sock.getsockname()
    except OSError as e:
        return Peer.unknown("%s" % e.strerror)
    where = "%s!%d" % (peeraddr[0], peeraddr[1])
    if not isloopback(peeraddr[0]):
        if trust_uname:
            return Peer.trusted("remote %s, --trust-uname" % where)
        return Peer.remote(where)
    uid = tcp_owner(peeraddr, here)
    if uid is None:
        return Peer.unknown("no socket of this machine is the client tcp!%s in %s/tcp "
                            "or tcp6" % (where, procnet()))
    return Peer.local(uid, why="owner of tcp!%s" % where)
