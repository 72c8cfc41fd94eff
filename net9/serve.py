"""`net9 serve` as a library: a stack (TUN and loopback, or loopback
only), its 9P server on the given addresses, and a run until SIGINT or
SIGTERM that resets live connections on the way out.

    from net9.serve import serve
    serve(tun="net9", srvs=["unix!/tmp/net9.sock"])       # returns at a signal

or, step by step (a program with its own loop or signals):

    s = Serving(tun=None, srvs=["tcp!127.0.0.1!5640"])     # started
    s.run()                                                 # or drive s.stack.loop
    s.close()

net9.cli's `serve` command parses its options and calls serve(); what it
prints is what this module says through `say`.  Keyword arguments serve()
does not know go to net9.stack.Stack (a new stack option needs no change
here)."""

from __future__ import annotations

import os
import signal
from typing import Any, Callable, Iterable, Optional

from net9.conv import ConvState
from net9.server import Server, default_socket_path

__all__ = ["DEFAULT_ADDRS", "DEFAULT_HOST_ADDRS", "ServeError", "Serving", "serve",
           "tun_usable", "reset_conversations"]

DEFAULT_ADDRS = ("10.9.0.2/24", "fd09::2/64")
DEFAULT_HOST_ADDRS = ("10.9.0.1/24", "fd09::1/64")


class ServeError(Exception):
    """The stack or a listener could not start: the message says why
    (`net9 serve` prints it and exits 1)."""


def tun_usable() -> tuple[bool, Optional[str]]:
    """(ok, reason): can this process create a TUN device?"""
    if os.geteuid() != 0:
        return False, "not running as root"
    if not os.path.exists("/dev/net/tun"):
        return False, "/dev/net/tun does not exist"
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR)
        os.close(fd)
    except OSError as e:
        return False, "/dev/net/tun: %s" % e.strerror
    return True, None


def reset_conversations(fs: Any) -> None:
    """Before exiting: reset every live TCP connection (RST, as a hangup)."""
    for _name, p in fs.protos.items():
        for c in getattr(p, "conv", []):
            if c.inuse > 0 or c.state in (ConvState.Connecting, ConvState.Connected):
                try:
                    p.ctl(c, "hangup")
                except Exception:
                    pass


def _quiet(msg: str) -> None:
    pass


class Serving:
    """A started stack and 9P server (see the module's docstring).

    tun: a TUN name, or None for the loopback medium only.  addrs and
    host_addrs: net9's and Linux's addresses on the TUN (defaults
    DEFAULT_ADDRS, DEFAULT_HOST_ADDRS).  srvs: 9P listen addresses
    (net9.server.Server.listen).  eve: the host owner.  maxconv_per_user:
    conversations a user may hold per protocol (0: no limit).  cs: serve
    /net/cs and /net/dns.  tcp: the TCP profile, "modern" (as net9 serve)
    or "9front" (tcp.c exactly).  say(msg): where progress is reported.
    verbose: log 9P connections through say.  stack_options: more keyword
    arguments of net9.stack.Stack.  Raises ServeError when the stack or a
    listener does not start (nothing is left running then)."""

    def __init__(self, *, tun: Optional[str], srvs: Iterable[str], eve: str,
                 addrs: Iterable[str] = (), host_addrs: Iterable[str] = (),
                 mtu: int = 1500, pcap: Optional[str] = None,
                 netns: Optional[str] = None, allow_remote: bool = False,
                 trust_uname: bool = False, msize: Optional[int] = None,
                 verbose: int = 0, maxconv_per_user: int = 0, offload: bool = True,
                 cs: bool = True, tcp: str = "modern",
                 say: Callable[[str], None] = _quiet,
                 **stack_options: Any) -> None:
        from net9.stack import Stack
        self.say = say
        self.tun = tun
        self.srvs = list(srvs)
        self.eve = eve
        self.addrs = list(addrs or (DEFAULT_ADDRS if tun is not None else ()))
        self.host_addrs = list(host_addrs or (DEFAULT_HOST_ADDRS if tun is not None else ()))
        self.unixpaths: list[str] = []
        self.stopping: list[int] = []
        self.closed = False
        try:
            self.stack = Stack(tun=tun, addrs=self.addrs, host_addrs=self.host_addrs,
                               mtu=mtu, pcap=pcap, loopback=True, netns=netns, user=eve,
                               offload=offload, tcp=tcp, **stack_options)
        except Exception as e:
            raise ServeError("cannot start the stack: %s" % e) from e
        st = self.stack
        if maxconv_per_user:
            for p in st.fs.protos.values():
                p.maxperuser = maxconv_per_user
            say("at most %d conversations per user and protocol" % maxconv_per_user)
        if tun is not None:
            say("created TUN %s%s (MTU %d): net9 is %s, Linux is %s" % (
                tun, " in namespace " + netns if netns else "", mtu, " ".join(self.addrs),
                " ".join(self.host_addrs)))
            if st.tun.offload:
                say("TUN offloads on: checksums and TCP segmentation both ways "
                    "(super-packets of up to 64 KiB; --no-offload to turn them off)")
            elif not offload:
                say("TUN offloads off (--no-offload)")
            else:
                say("TUN offloads unavailable: the kernel refused IFF_VNET_HDR/TUNSETOFFLOAD")
        say("loopback medium: 127.0.0.1/8 ::1")
        say("tcp profile: %s" % tcp)
        if pcap:
            say("capturing the TUN to %s" % pcap)

        def logfn(msg: str) -> None:
            if verbose:
                say(msg)
        kw: dict[str, Any] = {}
        if msize:
            kw["msize"] = msize
        if cs:
            from net9.ndb import NameService
            kw["ns"] = NameService(st.loop)
            say("/net/cs and /net/dns answer from the host's resolver")
        self.server = srv = Server(st.fs, st.loop, eve=eve, log=logfn,
                                   trust_uname=trust_uname, **kw)
        st.wakehooks.append(srv.woken)
        try:
            for a in self.srvs:
                where = srv.listen(a, allow_remote=allow_remote)
                say("serving 9P on %s" % where)
                if where.startswith("unix!"):
                    self.unixpaths.append(where[5:])
        except (OSError, ValueError) as e:
            srv.close()
            st.close()
            raise ServeError("cannot serve: %s" % e) from e
        say("eve (host owner) is %s" % eve)
        if allow_remote and any(a.startswith("tcp!") for a in self.srvs):
            say("remote clients attach as %s" % ("the uname they send (--trust-uname)"
                                                if trust_uname else "none"))
        for p in self.unixpaths:
            how = ("net9 mount" if p == default_socket_path()
                   else "net9 mount --srv 'unix!%s'" % p)
            say("mount it:  %s /mnt/net   (that is 9pfuse 'unix!%s' /mnt/net, or as root "
                "mount -t 9p -o trans=unix,version=9p2000.L,cache=none,uname=%s %s /mnt/net)"
                % (how, p, eve, p))

    def stop(self, signum: int = 0) -> None:
        """Make run() return (any thread, or a signal handler, may call it)."""
        self.stopping.append(signum)
        self.stack.loop.stop()

    def run(self, signals: Iterable[int] = (signal.SIGINT, signal.SIGTERM)) -> None:
        """Serve until one of signals (or stop()); then close()."""
        def handler(signum: int, frame: Any) -> None:
            self.stop(signum)
        old = {s: signal.signal(s, handler) for s in signals}
        try:
            while not self.stopping:
                self.stack.loop.run(until=lambda: bool(self.stopping))
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            self.close()

    def close(self) -> None:
        """Reset live connections, let the resets go out, and take the
        server, the listeners' sockets and the TUN down (once)."""
        if self.closed:
            return
        self.closed = True
        say = self.say
        say("stopping (signal %d): resetting connections" %
            (self.stopping[0] if self.stopping else 0))
        reset_conversations(self.stack.fs)
        self.server.close()
        try:
            self.stack.loop.run(timeout=0.1)
        except Exception:
            pass
        self.stack.close()
        for p in self.unixpaths:
            say("removed %s" % p)
        if self.tun is not None:
            say("removed TUN %s" % self.tun)


def serve(**options: Any) -> None:
    """Start a stack and serve its /net over 9P until SIGINT or SIGTERM
    (Serving's arguments).  Raises ServeError when it cannot start."""
    Serving(**options).run()
