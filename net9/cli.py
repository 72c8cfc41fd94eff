"""The net9 command (cmd/net9 is a thin script that calls main()).

    net9 serve [--tun NAME] [--addr CIDR]... [--host-addr CIDR]... [--mtu N]
               [--srv ADDR]... [--pcap FILE] [--eve USER] [--netns NS]
               [--allow-remote [--trust-uname]] [-v]

starts a stack and serves its /net over 9P, in the foreground, logging to
standard error, until SIGINT or SIGTERM.

    net9 ping [-6alq] [-n COUNT] [-i MS] [-s SIZE] [-w MS] [--srv ADDR] HOST

is Plan 9's ping through a running net9 serve (net9.ping).

    net9 dial ADDR / net9 listen ADDR CMD... / net9 netstat / net9 stats
    net9 ls|cat|write|rdwr PATH / net9 mount DIR / net9 umount DIR
    net9 snoop [-i N] [-w FILE] / net9 cs QUERY / net9 dns QUERY

talk to a running net9 serve over 9P (or through a mounted /net with
--net DIR), through net9.dial.  Every user error is one line on standard
error ("net9 CMD: ...") and a non-zero exit status.  See net9(1)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

import contextlib
import ipaddress
import os
import pwd
import signal
import sys
import time

import click

from net9 import __version__

if TYPE_CHECKING:
    from net9.dial import Net
from net9.serve import DEFAULT_ADDRS, DEFAULT_HOST_ADDRS, Serving, ServeError, tun_usable


def say(msg: str) -> None:
    click.echo("net9: " + msg, err=True)


def _tunusable() -> tuple[bool, Optional[str]]:
    """(ok, reason): can this process create a TUN device?"""
    return tun_usable()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="net9",
                      message="%(prog)s %(version)s")
def main() -> None:
    """net9: Plan 9's /net on Linux, served over 9P.

    Start the server with `net9 serve`; the other commands talk to it over
    9P (its unix socket by default, --srv ADDR or $NET9_SRV otherwise), or
    through a mounted /net (--net DIR).  See net9(1) and net9(4)."""


@main.command()
@click.option("--tun", "tun", default=None, metavar="NAME",
              help="TUN interface to create (default net9 when root; 'none' for loopback only)")
@click.option("--addr", "addrs", multiple=True, metavar="CIDR",
              help="the stack's address on the TUN (repeatable, v4 and v6; "
                   "default 10.9.0.2/24 and fd09::2/64)")
@click.option("--host-addr", "host_addrs", multiple=True, metavar="CIDR",
              help="Linux's address on the TUN (repeatable; default 10.9.0.1/24 and fd09::1/64)")
@click.option("--mtu", default=1500, show_default=True, type=int, help="TUN MTU")
@click.option("--srv", "srvs", multiple=True, metavar="ADDR",
              help="serve 9P on unix!PATH, tcp!127.0.0.1!PORT or - (stdin/stdout); "
                   "repeatable; default unix!/tmp/ns.$USER.$DISPLAY/net9")
@click.option("--pcap", default=None, metavar="FILE", help="write a capture of the TUN")
@click.option("--eve", default=None, metavar="USER",
              help="the host owner (default: the user running net9)")
@click.option("--netns", default=None, metavar="NS",
              help="create the TUN in this network namespace")
@click.option("--allow-remote", is_flag=True,
              help="allow tcp!ADDR!PORT on a non-loopback address (9P has no authentication: "
                   "remote clients attach as none)")
@click.option("--trust-uname", is_flag=True,
              help="with --allow-remote: remote clients attach as the uname they send, "
                   "not as none")
@click.option("--msize", default=None, type=int, help="largest 9P message offered")
@click.option("--maxconv-per-user", "maxconv_per_user", default=0, type=click.IntRange(0),
              metavar="N",
              help="conversations one user may hold per protocol (default 0: no limit, as devip)")
@click.option("--no-offload", "no_offload", is_flag=True,
              help="open the TUN without Linux's checksum and segmentation offloads")
@click.option("--no-cs", "no_cs", is_flag=True,
              help="serve no /net/cs and /net/dns (devip's files only)")
@click.option("--tcp", "tcpprofile", type=click.Choice(["modern", "9front"]), default="modern",
              show_default=True,
              help="TCP profile: modern (SACK, timestamps, RFC 5961/6528/6298) or 9front (tcp.c exactly)")
@click.option("-v", "--verbose", count=True, help="log 9P connections (-vv: more)")
def serve(tun: Optional[str], addrs: tuple[str, ...], host_addrs: tuple[str, ...], mtu: int,
          srvs: tuple[str, ...], pcap: Optional[str], eve: Optional[str],
          netns: Optional[str], allow_remote: bool, trust_uname: bool,
          msize: Optional[int], verbose: int, maxconv_per_user: int, no_offload: bool,
          no_cs: bool, tcpprofile: str) -> None:
    """Start a stack and serve its /net over 9P until SIGINT or SIGTERM."""
    from net9 import namespace
    if trust_uname and not allow_remote:
        raise click.UsageError("--trust-uname is about remote clients: give --allow-remote too")
    if eve is None:
        eve = pwd.getpwuid(os.geteuid()).pw_name
    if eve == "none":
        raise click.BadParameter("none is the user of unauthenticated clients; it cannot "
                                 "be eve", param_hint="--eve")
    if not srvs:
        # the name space directory first: nothing is started in a bad one
        try:
            srvs = ("unix!" + namespace.serve_path(),)
        except OSError as e:
            say("cannot serve: %s" % (e if isinstance(e, namespace.NamespaceError)
                                      else "%s: %s" % (e.filename, e.strerror)))
            sys.exit(1)
    if tun is None:
        ok, why = _tunusable()
        if ok:
            tun = "net9"
        else:
            say("%s: no TUN device; running with the loopback medium only "
                "(127.0.0.1, ::1)" % why)
    elif tun == "none":
        tun = None
    if tun is not None:
        addrs = addrs or DEFAULT_ADDRS
        host_addrs = host_addrs or DEFAULT_HOST_ADDRS
        for a in list(addrs) + list(host_addrs):
            try:
                ipaddress.ip_interface(a)
            except ValueError:
                raise click.BadParameter("not an address/prefix: %r" % a)
    # net9.serve.Serving's keyword arguments; one it does not know goes on
    # to net9.stack.Stack (a new stack option is one more entry here)
    options = dict(tun=tun, addrs=addrs, host_addrs=host_addrs, mtu=mtu, srvs=srvs,
                   pcap=pcap, eve=eve, netns=netns, allow_remote=allow_remote,
                   trust_uname=trust_uname, msize=msize, verbose=verbose,
                   maxconv_per_user=maxconv_per_user, offload=not no_offload, cs=not no_cs,
                   tcp=tcpprofile)
    try:
        serving = Serving(say=say, **options)
    except ServeError as e:
        say(str(e))
        sys.exit(1)
    serving.run()


@main.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-n", "count", default=32, show_default=True, type=click.IntRange(0),
              help="echo requests to send")
@click.option("-i", "interval", default=1000, show_default=True, type=click.IntRange(0),
              help="milliseconds between requests (0: flood)")
@click.option("-s", "size", default=64, show_default=True, type=int,
              help="bytes per message, counting the IP header area (20, icmpv6 40)")
@click.option("-w", "wait", default=5000, show_default=True, type=click.IntRange(0),
              help="milliseconds to wait for replies after the last request")
@click.option("-6", "v6", is_flag=True, help="use icmpv6")
@click.option("-a", "addresses", is_flag=True, help="print the addresses of each reply")
@click.option("-l", "lostonly", is_flag=True, help="print only lost messages")
@click.option("-q", "quiet", is_flag=True, help="print nothing but errors")
@click.option("--srv", default=None, metavar="ADDR",
              help="the net9 serve to use: unix!PATH or tcp!HOST!PORT "
                   "(default unix!/tmp/ns.$USER.$DISPLAY/net9)")
@click.option("--user", default=None, metavar="USER", help="9P user name (default: yours)")
@click.argument("host")
def ping(count: int, interval: int, size: int, wait: int, v6: bool, addresses: bool,
         lostonly: bool, quiet: bool, srv: Optional[str], user: Optional[str],
         host: str) -> None:
    """Plan 9's ping through a running net9 serve: icmp!HOST!1 in its /net."""
    from net9.ping import ping as run
    if user is None:
        user = pwd.getpwuid(os.geteuid()).pw_name
    sys.exit(run(host, count=count, interval=interval, size=size, srv=srv, v6=v6,
                 quiet=quiet, addresses=addresses, lostonly=lostonly, wait=wait, uname=user))


# ---------------------------------------------------------------------------
# The client commands: dial, listen, netstat, stats, ls, cat, write, rdwr,
# mount, umount.  They use net9.dial (9P to a running net9 serve, or a
# mounted /net); a user's mistake is one line "net9 CMD: ..." on standard
# error and exit status 1, never a traceback.

class Fail(Exception):
    """A user-facing error: its text is printed after "net9 CMD: "."""


def errtext(e: BaseException) -> str:
    """One line for an exception a client command met."""
    import socket as _socket
    from net9.client import NinepError
    from net9.dial import AddrError, ServerUnreachable
    from net9.errors import Net9Error
    from net9.namespace import NamespaceError
    if isinstance(e, NamespaceError):
        return str(e)
    if isinstance(e, ServerUnreachable):
        hint = ""
        if e.errno in (2, 111):          # ENOENT, ECONNREFUSED
            hint = " (is net9 serve running?)"
        return "cannot reach net9 serve at %s: %s%s" % (e.filename, e.strerror, hint)
    if isinstance(e, _socket.gaierror):
        return "unknown host: %s" % (e.strerror or e)
    if isinstance(e, (Fail, AddrError, NinepError, Net9Error)):
        return str(e)
    if isinstance(e, OSError):
        msg = e.strerror or str(e)
        if e.filename:
            return "%s: %s" % (e.filename, msg)
        return msg
    if isinstance(e, EOFError):
        return "lost the connection to net9 serve: %s" % e
    return "%s: %s" % (type(e).__name__, e)


def client_command(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run the command body; turn the errors a user can cause into one
    line and exit 1; ^C exits 130 quietly."""
    import functools

    def deco(fn):
        @functools.wraps(fn)
        def run(*args, **kw):
            from net9.client import NinepError
            from net9.errors import Net9Error
            try:
                return fn(*args, **kw)
            except KeyboardInterrupt:
                sys.exit(130)
            except BrokenPipeError:
                # the reader of our output went away (net9 cat ... | head)
                try:
                    sys.stdout = None
                except Exception:
                    pass
                os._exit(0)
            except (Fail, OSError, EOFError, ValueError, NinepError, Net9Error) as e:
                click.echo("net9 %s: %s" % (name, errtext(e)), err=True)
                sys.exit(1)
        return run
    return deco


def srv_options(netdir: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--srv, -u/--user and (for the commands that can use one) --net."""
    def deco(f):
        f = click.option("-u", "--user", default=None, metavar="USER",
                         help="9P user name (default: yours)")(f)
        f = click.option("--srv", default=None, metavar="ADDR",
                         help="the net9 serve to talk to: unix!PATH or tcp!HOST!PORT "
                              "(default $NET9_SRV, else unix!/tmp/ns.$USER.$DISPLAY/net9)")(f)
        if netdir:
            f = click.option("--net", "netdir", default=None, metavar="DIR",
                             help="use the /net mounted on DIR instead of 9P")(f)
        return f
    return deco


def opennet(srv: Optional[str], user: Optional[str], netdir: Optional[str] = None) -> Net:
    from net9.dial import Net
    if srv and netdir:
        raise Fail("give --srv or --net, not both")
    return Net(srv=srv, netdir=netdir, user=user)


def binstream(f: Any) -> Any:
    """The binary stream under a text one (sys.stdin, sys.stdout; also
    under click's test runner)."""
    return getattr(f, "buffer", f)


def stdin_chunks(size: int = 65536) -> Iterator[bytes]:
    """Standard input as it arrives (one read each, like read(2))."""
    inp = binstream(sys.stdin)
    try:
        fd = inp.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    if fd is not None:
        # the descriptor itself: a thread blocked here holds no lock of the
        # buffered stdin, which the interpreter's exit would wait for
        def rd(n, fd=fd):
            return os.read(fd, n)
    else:
        rd = getattr(inp, "read1", None) or inp.read
    while True:
        d = rd(size)
        if not d:
            return
        yield d


@main.command(context_settings={"ignore_unknown_options": False})
@srv_options()
@click.option("-l", "--local", default=None, metavar="[ADDR!]PORT",
              help="the local address and port to call from")
@click.option("-q", "--quit", "quit_", is_flag=True,
              help="close the connection (and exit) at end of file on standard input")
@click.option("-t", "--timeout", default=None, type=click.FloatRange(min=0, min_open=True),
              metavar="SECS", help="give up connecting after SECS seconds (9P only)")
@click.option("-v", "--verbose", is_flag=True,
              help="report the connection's addresses on standard error")
@click.argument("addr")
@client_command("dial")
def dial(srv: Optional[str], user: Optional[str], netdir: Optional[str], local: Optional[str],
         quit_: bool, timeout: Optional[float], verbose: bool, addr: str) -> None:
    """Connect to ADDR ([net!]host!port, e.g. tcp!10.9.0.1!80) and copy
    standard input to the connection and the connection to standard
    output, like Plan 9's con or netcat.

    It exits when the connection ends (the peer closed it or reset it).
    End of file on standard input ends the sending only (devip has no
    half-close, so the peer is not told) and net9 dial goes on printing
    what arrives; with -q it closes the connection at once."""
    import threading
    net = opennet(srv, user, netdir)
    try:
        try:
            conn = net.dial(addr, local=local, timeout=timeout)
        except OSError as e:
            if isinstance(e, TimeoutError) or str(e.filename or "").endswith("/ctl"):
                raise Fail("%s: %s" % (addr, e.strerror or e))     # the connect failed
            raise
        conn.settimeout(None)
        if verbose:
            say("connected to %s from %s (%s)" % (conn.remote, conn.local, conn.dir))
        out = binstream(sys.stdout)
        problems = []

        def pump():
            try:
                for d in stdin_chunks():
                    conn.sendall(d)
                if quit_:
                    conn.ctl("close" if conn.proto == "tcp" else "hangup")
            except Exception as e:           # the connection failed under us
                if not conn.closed:
                    problems.append(e)
                    try:
                        conn.ctl("hangup")
                    except Exception:
                        pass
        t = threading.Thread(target=pump, name="stdin", daemon=True)
        t.start()
        try:
            while True:
                try:
                    d = conn.recv(65536)
                except OSError as e:
                    if problems:
                        break
                    if getattr(e, "strerror", "") == "i/o on hungup channel":
                        break                # EOF already reported (udp)
                    raise
                if not d:
                    break
                out.write(d)
                out.flush()
        finally:
            conn.close()
        if problems:
            raise problems[0]
    finally:
        net.close()


@main.command(context_settings={"allow_interspersed_args": False})
@srv_options()
@click.option("-v", "--verbose", is_flag=True,
              help="report each call on standard error (as listen1 -v)")
@click.option("-n", "--count", default=None, type=click.IntRange(min=1), metavar="N",
              help="take N calls, then wait for their commands and exit")
@click.option("-p", "--maxprocs", default=None, type=click.IntRange(min=1), metavar="N",
              help="run at most N commands at once (wait before taking more calls)")
@click.option("-e", "--keep-stderr", is_flag=True,
              help="leave the command's standard error on net9's (default: on the call)")
@click.argument("addr")
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
@client_command("listen")
def listen(srv: Optional[str], user: Optional[str], netdir: Optional[str], verbose: bool,
           count: Optional[int], maxprocs: Optional[int], keep_stderr: bool, addr: str,
           cmd: tuple[str, ...]) -> None:
    """Announce ADDR ([net!][host!]port, e.g. tcp!*!8080) and, for every
    call, run CMD with its standard input, output and error on the
    connection, like Plan 9's listen1.  The environment variable net
    names the call's directory (/net/tcp/N).  Runs until SIGINT or SIGTERM
    (or -n calls)."""
    import shutil
    import threading
    if shutil.which(cmd[0]) is None and not os.path.exists(cmd[0]):
        raise Fail("%s: command not found" % cmd[0])
    net = opennet(srv, user, netdir)
    stopping = []
    procs = {}
    lock = threading.Lock()
    slots = threading.Semaphore(maxprocs) if maxprocs else None
    threads = []

    def stop(signum, frame):
        if not stopping:
            stopping.append(signum)
            raise SystemExit(130 if signum == signal.SIGINT else 0)
    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    ann = None
    try:
        try:
            ann = net.announce(addr)
        except OSError as e:
            if e.filename and str(e.filename).endswith("/ctl"):
                raise Fail("%s: %s" % (addr, e.strerror))
            raise
        if verbose:
            say("announced %s in %s" % (ann.local, ann.dir))
        taken = 0
        while count is None or taken < count:
            if slots is not None:
                slots.acquire()
            call = ann.listen()
            taken += 1
            t = threading.Thread(target=_serve_call, daemon=True,
                                 args=(call, cmd, addr, verbose, keep_stderr, procs, lock, slots))
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        with lock:
            for p in procs.values():
                try:
                    p.terminate()
                except OSError:
                    pass
        if ann is not None:
            try:
                ann.close()
            except Exception:
                pass
        net.close()


def _serve_call(call, cmd, addr, verbose, keep_stderr, procs, lock, slots):
    """One call: accept it, run cmd on a socket pair and copy between the
    socket pair and the connection until both are done."""
    import socket
    import subprocess
    import threading
    try:
        try:
            remote = call.remote
            if verbose:
                say("incoming call for %s from %s in %s" % (addr, remote, call.dir))
            conn = call.accept()
        except Exception as e:
            say("listen: %s: %s" % (call.dir, errtext(e)))
            call.close()
            return
        a, b = socket.socketpair()
        env = dict(os.environ)
        env["net"] = conn.dir
        try:
            p = subprocess.Popen(list(cmd), stdin=b, stdout=b,
                                 stderr=None if keep_stderr else b, env=env,
                                 close_fds=True)
        except OSError as e:
            say("listen: %s: %s" % (cmd[0], e.strerror or e))
            b.close()
            a.close()
            conn.close()
            return
        b.close()
        with lock:
            procs[id(p)] = p

        def fromnet():
            try:
                while True:
                    d = conn.recv(65536)
                    if not d:
                        break
                    a.sendall(d)
            except OSError:
                pass
            try:
                a.shutdown(socket.SHUT_WR)       # the command's stdin ends
            except OSError:
                pass
        t = threading.Thread(target=fromnet, daemon=True)
        t.start()
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break                         # the command (and its children) closed it
                conn.sendall(d)
        except OSError:
            try:
                a.shutdown(socket.SHUT_RDWR)     # its writes fail now
            except OSError:
                pass
        p.wait()
        with lock:
            procs.pop(id(p), None)
        # close gracefully: FIN after what was written; wakes fromnet
        try:
            conn.ctl("close" if conn.proto == "tcp" else "hangup")
        except Exception:
            pass
        t.join(5)
        conn.close()
        a.close()
    finally:
        if slots is not None:
            slots.release()


@main.command()
@srv_options(netdir=False)
@click.option("-i", "interfaces", is_flag=True, help="list the interfaces instead")
@click.option("-n", "numeric", is_flag=True, help="numeric ports (no service names)")
@click.option("-p", "protos", multiple=True, metavar="PROTO",
              help="only this protocol (repeatable)")
@click.argument("netdir", required=False, metavar="[NETDIR]")
@client_command("netstat")
def netstat(srv: Optional[str], user: Optional[str], interfaces: bool, numeric: bool,
            protos: tuple[str, ...], netdir: Optional[str]) -> None:
    """One line per conversation, as Plan 9's netstat prints it: protocol,
    number, owner, state, local port, remote port, remote address.  NETDIR:
    a mounted /net to read instead of talking 9P."""
    from net9.dial import port_name
    net = opennet(srv, user, netdir)
    out = sys.stdout
    try:
        if interfaces:
            for ln in ifclines(net):
                out.write(ln + "\n")
            return
        if protos:
            names = list(protos)
            have = {n for n, _, isdir in net.ls("") if isdir}
            for n in names:
                if n not in have:
                    raise Fail("no protocol %s (have %s)" % (n, " ".join(sorted(have))))
        else:
            names = [n for n, _, isdir in net.ls("")
                     if isdir and n != "ipifc" and net.exists("%s/0/local" % n)]
        for proto in names:
            for name, uid, _isdir in net.ls(proto):
                if name in ("clone", "stats"):
                    continue
                ln = convline(net, proto, name, uid, numeric, port_name)
                if ln is not None:
                    out.write(ln + "\n")
                    out.flush()
    finally:
        net.close()


def convline(net: Net, proto: str, name: str, uid: str, numeric: bool,
             port_name: Callable[[str, str], str]) -> Optional[str]:
    """netstat.c's pip(): "%-4s %-4s %-10s %-12s %-10s %-10s %s"."""
    try:
        st = net.cat("%s/%s/status" % (proto, name))
    except OSError:
        return None
    state = st.split(" ", 1)[0].split("\n", 1)[0]
    line = "%-4s %-4s %-10s %-12s " % (proto, name, uid, state)
    try:
        local = net.cat("%s/%s/local" % (proto, name)).rstrip("\n")
        remote = net.cat("%s/%s/remote" % (proto, name)).rstrip("\n")
    except OSError:
        return line.rstrip()
    if "!" not in local:
        return line.rstrip()
    lport = local.rsplit("!", 1)[1]
    raddr, _, rport = remote.rpartition("!")
    if not numeric:
        lport, rport = port_name(lport, proto), port_name(rport, proto)
    return line + "%-10s %-10s %s" % (lport, rport, raddr)


def ifclines(net: Net) -> list[str]:
    """netstat -i (netstat.c's pipifc): device, mtu, address, mask,
    network, packets in and out, errors in and out, one line per address."""
    rows = []
    for name, _, isdir in net.ls("ipifc"):
        if not isdir:
            continue
        try:
            st = net.cat("ipifc/%s/status" % name)
        except OSError:
            continue
        lines = st.split("\n")
        f = lines[0].split()
        kv = dict(zip(f[0::2], f[1::2]))
        for ln in lines[1:]:
            a = ln.split()
            if len(a) < 3:
                continue
            rows.append((kv.get("device", ""), kv.get("maxtu", "0"), a[0], a[1], a[2],
                         kv.get("pktin", "0"), kv.get("pktout", "0"),
                         kv.get("errin", "0"), kv.get("errout", "0")))
    w = max([7] + [len(r[2]) for r in rows] + [len(r[4]) for r in rows])
    return ["%-12s %5s %-*s %5s %-*s %8s %8s %8s %8s" % (r[0], r[1], w, r[2], r[3], w, r[4],
                                                      r[5], r[6], r[7], r[8]) for r in rows]


@main.command()
@srv_options(netdir=True)
@click.argument("protos", nargs=-1, metavar="[PROTO]...")
@client_command("stats")
def stats(srv: Optional[str], user: Optional[str], netdir: Optional[str],
          protos: tuple[str, ...]) -> None:
    """Print /net/PROTO/stats (every protocol's, each under a
    "==> PROTO/stats <==" header, when no PROTO is given)."""
    net = opennet(srv, user, netdir)
    out = sys.stdout
    try:
        have = [n for n, _, isdir in net.ls("") if isdir]
        for p in protos:
            if p not in have:
                raise Fail("no protocol %s (have %s)" % (p, " ".join(have)))
        if len(protos) == 1:
            out.write(net.cat(protos[0] + "/stats"))
            return
        first = True
        for p in protos or [p for p in have if net.exists(p + "/stats")]:
            if not first:
                out.write("\n")
            first = False
            out.write("==> %s/stats <==\n" % p)
            out.write(net.cat(p + "/stats"))
    finally:
        net.close()


# -- snoop, cs, dns ----------------------------------------------------------------

@main.command()
@srv_options()
@click.option("-i", "ifc", default=0, show_default=True, type=click.IntRange(0),
              metavar="N", help="the interface: /net/ipifc/N/snoop")
@click.option("-w", "out", default="-", metavar="FILE",
              help="write the capture to FILE (default: standard output)")
@click.option("-c", "count", default=None, type=click.IntRange(1), metavar="COUNT",
              help="stop after COUNT packets")
@client_command("snoop")
def snoop(srv: Optional[str], user: Optional[str], netdir: Optional[str], ifc: int, out: str,
          count: Optional[int]) -> None:
    """Copy the packets in and out of interface N, as /net/ipifc/N/snoop
    gives them, to a pcap stream (LINKTYPE_RAW), for tshark -r - or
    Wireshark.  Runs until SIGINT or SIGTERM, COUNT packets, or the
    interface goes away."""
    import struct
    from net9.client import OREAD
    net = opennet(srv, user, netdir)
    path = "ipifc/%d/snoop" % ifc
    stopping = []

    def stop(signum, frame):
        stopping.append(signum)
        raise KeyboardInterrupt
    old = {sg: signal.signal(sg, stop) for sg in (signal.SIGINT, signal.SIGTERM)}
    f = None
    n = 0
    try:
        h = net.files.open(path, OREAD)
        f = binstream(sys.stdout) if out == "-" else open(out, "wb")
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))
        f.flush()
        try:
            while count is None or n < count:
                d = net.files.read(h, 65536 + 64, path)
                if not d:
                    break                        # the interface was unbound
                t = time.time_ns()
                f.write(struct.pack("<IIII", t // 1_000_000_000, (t // 1000) % 1_000_000,
                                    len(d), len(d)))
                f.write(d)
                f.flush()
                n += 1
        except KeyboardInterrupt:
            pass
    finally:
        for sg, hd in old.items():
            signal.signal(sg, hd)
        if f is not None and out != "-":
            f.close()
        net.close()


def _query(file: str, srv: Optional[str], user: Optional[str], netdir: Optional[str],
           query: str) -> None:
    net = opennet(srv, user, netdir)
    try:
        from net9.client import NinepError
        try:
            answers = net.files.query(file, query)
        except NinepError as e:
            raise Fail(str(e)) from None
        for a in answers:
            sys.stdout.write(a.rstrip("\n") + "\n")
    finally:
        net.close()


@main.command("cs")
@srv_options()
@click.argument("query")
@client_command("cs")
def cs_(srv: Optional[str], user: Optional[str], netdir: Optional[str], query: str) -> None:
    """Ask the served /net/cs to translate QUERY ([net!]host!service, e.g.
    'tcp!example.com!http') and print its answers, one per line, like
    Plan 9's ndb/csquery."""
    _query("cs", srv, user, netdir, query)


@main.command("dns")
@srv_options()
@click.argument("query", nargs=-1, required=True)
@client_command("dns")
def dns_(srv: Optional[str], user: Optional[str], netdir: Optional[str],
         query: tuple[str, ...]) -> None:
    """Ask the served /net/dns about QUERY (name type, e.g. example.com ip,
    example.com ipv6, 10.9.0.1 ptr) and print the records, like Plan 9's
    ndb/dnsquery."""
    _query("dns", srv, user, netdir, " ".join(query))


# -- a minimal 9P client, like plan9port's 9p ---------------------------------

def ninepath(path: str) -> str:
    """A path under the served /net: leading / and /net/ dropped."""
    p = path.strip()
    if p == "/net" or p.startswith("/net/"):
        p = p[4:]
    return p.strip("/")


def ninep_client(srv: Optional[str], user: Optional[str]) -> Any:
    from net9.dial import Net
    return Net(srv=srv, user=user).client


def modestr(mode: int) -> str:
    perm = ""
    for shift in (6, 3, 0):
        b = (mode >> shift) & 7
        perm += ("r" if b & 4 else "-") + ("w" if b & 2 else "-") + ("x" if b & 1 else "-")
    first = "d" if mode & 0x80000000 else "-"
    second = "a" if mode & 0x40000000 else ("l" if mode & 0x20000000 else "-")
    return first + second + perm


def lsline(st: tuple, long: bool) -> str:
    name = st[7]
    if not long:
        return name
    mt = time.localtime(st[5])
    if abs(time.time() - st[5]) < 180 * 86400:
        when = time.strftime("%b %e %H:%M", mt)
    else:
        when = time.strftime("%b %e  %Y", mt)
    return "%s %s %s %d %s %s" % (modestr(st[3]), st[8], st[9], st[6], when, name)


@main.command("ls")
@srv_options(netdir=False)
@click.option("-l", "long", is_flag=True, help="long listing: mode, owner, group, "
                                                 "length, time, name")
@click.argument("paths", nargs=-1, metavar="[PATH]...")
@client_command("ls")
def ls_(srv: Optional[str], user: Optional[str], long: bool, paths: tuple[str, ...]) -> None:
    """List directories under the served /net (default its root) over 9P,
    like plan9port's 9p ls."""
    from net9.client import NinepError, OREAD
    cl = ninep_client(srv, user)
    out = sys.stdout
    try:
        for path in paths or ("",):
            p = ninepath(path)
            try:
                fid = cl.walk(p)
                try:
                    st = cl.stat(fid)
                    if st[3] & 0x80000000:
                        cl.open(fid, OREAD)
                        ents = cl.dirread(fid)
                    else:
                        ents = [st]
                finally:
                    cl.clunk(fid)
            except NinepError as e:
                raise Fail("%s: %s" % (path or "/", e))
            for st in ents:
                out.write(lsline(st, long) + "\n")
    finally:
        cl.close()


@contextlib.contextmanager
def opened(cl: Any, path: str, mode: int) -> Iterator[int]:
    """The fid of path opened with mode on client cl, clunked after; a 9P
    error, in the open or in the body, fails the command as "path: error"."""
    from net9.client import NinepError
    try:
        fid = cl.walkopen(ninepath(path), mode)
        try:
            yield fid
        finally:
            cl.clunk(fid)
    except NinepError as e:
        raise Fail("%s: %s" % (path, e))


@main.command("cat")
@srv_options(netdir=False)
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@client_command("cat")
def cat_(srv: Optional[str], user: Optional[str], paths: tuple[str, ...]) -> None:
    """Print files under the served /net over 9P (a data file: what
    arrives, until end of file), like plan9port's 9p read."""
    from net9.client import OREAD
    cl = ninep_client(srv, user)
    out = binstream(sys.stdout)
    try:
        for path in paths:
            with opened(cl, path, OREAD) as fid:
                off = 0
                while True:
                    d = cl.read(fid, cl.iounit(), off, timeout=None)
                    if not d:
                        break
                    off += len(d)
                    out.write(d)
                    out.flush()
    finally:
        cl.close()


@main.command("write")
@srv_options(netdir=False)
@click.argument("path")
@client_command("write")
def write_(srv: Optional[str], user: Optional[str], path: str) -> None:
    """Write standard input to a file under the served /net over 9P, one
    write per read of standard input (a ctl message per line typed), like
    plan9port's 9p write.  The file is open only while net9 write runs."""
    from net9.client import OTRUNC, OWRITE
    cl = ninep_client(srv, user)
    try:
        with opened(cl, path, OWRITE | OTRUNC) as fid:
            off = 0
            wrote = False
            for d in stdin_chunks(cl.iounit()):
                off += cl.write(fid, d, off, timeout=None)
                wrote = True
            if not wrote:
                cl.write(fid, b"", 0)
    finally:
        cl.close()


@main.command("rdwr")
@srv_options(netdir=False)
@click.argument("path")
@client_command("rdwr")
def rdwr_(srv: Optional[str], user: Optional[str], path: str) -> None:
    """Open a file under the served /net for reading and writing and hold
    it: print what a read at offset 0 gives, then for each line of
    standard input write the line (without its newline) and print the file
    again, like plan9port's 9p rdwr.  On tcp/clone this makes a
    conversation that lives while net9 rdwr runs."""
    from net9.client import NinepError, ORDWR
    cl = ninep_client(srv, user)
    out = sys.stdout
    inp = sys.stdin
    try:
        try:
            fid = cl.walkopen(ninepath(path), ORDWR)
        except NinepError as e:
            raise Fail("%s: %s" % (path, e))
        try:
            while True:
                try:
                    d = cl.read(fid, cl.iounit(), 0, timeout=None)
                    out.write(d.decode("utf-8", "replace") + "\n")
                except NinepError as e:
                    say("rdwr: read: %s" % e)
                out.flush()
                ln = inp.readline()
                if not ln:
                    break
                try:
                    cl.write(fid, ln.rstrip("\n").encode(), 0, timeout=None)
                except NinepError as e:
                    say("rdwr: write: %s" % e)
        finally:
            cl.clunk(fid)
    finally:
        cl.close()


# -- mount ----------------------------------------------------------------------

PROC_FILESYSTEMS = "/proc/filesystems"
PROC_MOUNTS = "/proc/self/mounts"


def have_v9fs() -> bool:
    """The kernel's 9p file system: registered, or a module to load."""
    try:
        with open(PROC_FILESYSTEMS) as f:
            if any(ln.split()[-1:] == ["9p"] for ln in f):
                return True
    except OSError:
        pass
    rel = os.uname().release
    for ext in ("", ".xz", ".zst", ".gz"):
        if os.path.exists("/lib/modules/%s/kernel/fs/9p/9p.ko%s" % (rel, ext)):
            return True
    return False


def shq(argv: list[str]) -> str:
    import shlex
    return " ".join(shlex.quote(a) for a in argv)


def mounted(d: str) -> Optional[str]:
    """The file system type mounted on directory d, or None."""
    d = os.path.realpath(d)
    try:
        with open(PROC_MOUNTS) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    fstype = None
    for ln in lines:
        f = ln.split()
        if len(f) >= 3:
            mp = f[1].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
            if mp == d:
                fstype = f[2]          # the last one listed is on top
    return fstype


def run_shown(argv: list[str]) -> int:
    """Run argv after printing it; its output is passed on once it exits.
    (9pfuse leaves a daemon behind, which must not keep our standard
    output or error open: a caller reading them would wait for ever.  It
    gets a temporary file, unlinked.)"""
    import subprocess
    import tempfile
    click.echo("+ " + shq(argv), err=True)
    with tempfile.TemporaryFile() as out:
        try:
            rc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=out).returncode
        except OSError as e:
            raise Fail("%s: %s" % (argv[0], e.strerror))
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    if text:
        click.echo(text, err=True, nl=not text.endswith("\n"))
    return rc


@main.command()
@click.option("--srv", default=None, metavar="ADDR",
              help="the net9 serve to mount (default $NET9_SRV, else "
                   "unix!/tmp/ns.$USER.$DISPLAY/net9)")
@click.option("-u", "--user", default=None, metavar="USER",
              help="9P user name for v9fs and net9's FUSE client (default: yours; "
                   "FUSE as root: each local user as itself)")
@click.option("--with", "how", type=click.Choice(["9pfuse", "fuse", "v9fs"]), default=None,
              help="the client to use (default: 9pfuse if on PATH, else net9's own FUSE "
                   "client, else v9fs)")
@click.option("--fuse", "fuse_", is_flag=True, help="use net9's own FUSE client (--with fuse)")
@click.option("-o", "options", default=None, metavar="OPTS",
              help="extra v9fs mount options (e.g. msize=65560,access=any)")
@click.option("-f", "--foreground", is_flag=True,
              help="net9's FUSE client: stay in the foreground until unmounted")
@click.option("-d", "--debug", is_flag=True,
              help="net9's FUSE client: log each FUSE request on standard error (with -f)")
@click.argument("dir", type=click.Path(file_okay=False))
@client_command("mount")
def mount(srv: Optional[str], user: Optional[str], how: Optional[str], fuse_: bool,
          options: Optional[str], foreground: bool, debug: bool, dir: str) -> None:
    """Mount the served /net on DIR: with plan9port's 9pfuse when it is on
    PATH, else with net9's own FUSE client, else with the kernel's 9p file
    system (v9fs, as root).  Prints the command it runs (or, for net9's
    FUSE client, the process that serves the mount)."""
    import shutil
    from net9 import fuse as nfuse
    from net9.client import dial9p, parse_srv
    from net9.dial import default_srv, default_user
    if fuse_:
        if how not in (None, "fuse"):
            raise Fail("--fuse and --with %s: give one" % how)
        how = "fuse"
    srv = srv or default_srv()
    try:
        fam, where = parse_srv(srv)
    except ValueError as e:
        raise Fail(str(e))
    try:
        dial9p(srv, 5).close()
    except OSError as e:
        raise Fail("cannot reach net9 serve at %s: %s%s" % (
            srv, e.strerror or e, " (is net9 serve running?)"
            if isinstance(e, (FileNotFoundError, ConnectionRefusedError)) else ""))
    p9fuse = shutil.which("9pfuse")
    v9fs = have_v9fs()
    nofuse = nfuse.usable()
    if how is None:
        if p9fuse:
            how = "9pfuse"
        elif nofuse is None:
            how = "fuse"
        elif v9fs:
            how = "v9fs"
    if how is None:
        raise Fail("neither plan9port's 9pfuse (not on PATH) nor the kernel's 9p file "
                   "system (not in %s, no 9p module) is available; nor can net9's FUSE "
                   "client mount: %s; net9's own 9P client needs no mount: net9 ls, cat, "
                   "write, dial, listen" % (PROC_FILESYSTEMS, nofuse))
    if how == "9pfuse" and not p9fuse:
        raise Fail("9pfuse is not on PATH (it comes with plan9port)")
    if how == "v9fs" and not v9fs:
        raise Fail("the kernel has no 9p file system (not in %s, no 9p module)"
                   % PROC_FILESYSTEMS)
    if how == "fuse" and nofuse is not None:
        raise Fail("net9's FUSE client cannot mount: %s" % nofuse)
    if not os.path.isdir(dir):
        try:
            os.makedirs(dir)
        except OSError as e:
            raise Fail("%s: %s" % (dir, e.strerror))
        say("created %s" % dir)
    if mounted(dir) is not None:
        raise Fail("%s: something is mounted there already (%s); net9 umount %s"
                   % (dir, mounted(dir), dir))
    if how == "fuse":
        return mount_fuse(srv if fam == "tcp" else "unix!" + where, user, dir, foreground,
                          debug)
    if how == "9pfuse":
        argv = [p9fuse, "unix!" + where if fam == "unix" else srv, dir]
    else:
        if os.geteuid() != 0:
            raise Fail("mounting with the kernel's 9p file system needs root "
                       "(or install plan9port's 9pfuse)")
        opts = ["version=9p2000.L", "cache=none", "uname=" + (user or default_user())]
        if fam == "unix":
            opts.insert(0, "trans=unix")
            dev = where
        else:
            host, port = where
            opts[:0] = ["trans=tcp", "port=%d" % port]
            dev = host
        if options:
            opts.append(options)
        argv = ["mount", "-t", "9p", "-o", ",".join(opts), dev, dir]
    rc = run_shown(argv)
    if rc != 0:
        raise Fail("%s failed (exit status %d)" % (os.path.basename(argv[0]), rc))


def mount_fuse(srv: Optional[str], user: Optional[str], dir: str, foreground: bool,
               debug: bool) -> None:
    """net9's FUSE client: a process of its own (this one with -f) that
    mounts DIR and serves it until it is unmounted."""
    from net9 import fuse as nfuse
    from net9.client import myname
    who = user or ("each local user" if os.geteuid() == 0 else myname())
    if foreground:
        def ready(err):
            if err is not None:
                raise Fail(err)
            say("serving %s on %s with net9's FUSE client%s (pid %d)" % (
                srv, dir, " as " + who if who else "", os.getpid()))
        sys.exit(nfuse.run(srv, dir, user=user, debug=debug, ready=ready))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                         # the server
        code = 1
        try:
            os.close(r)
            os.setsid()
            nul = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(nul, fd)
            os.close(nul)
            os.closerange(3, w)                          # nothing of our caller's stays open
            os.closerange(w + 1, 65536)
            os.chdir("/")

            def ready(err):
                os.write(w, b"ok\n" if err is None else err.encode() + b"\n")
                os.close(w)
            code = nfuse.run(srv, os.path.abspath(dir), user=user, debug=False, ready=ready)
        except BaseException:
            pass
        finally:
            os._exit(code)
    os.close(w)
    out = b""
    while True:
        d = os.read(r, 4096)
        if not d:
            break
        out += d
    os.close(r)
    text = out.decode(errors="replace").strip()
    if text != "ok":
        if not text:
            os.waitpid(pid, 0)
            text = "net9's FUSE client exited before the mount was up"
        raise Fail(text)
    say("serving %s on %s with net9's FUSE client%s (pid %d); net9 umount %s to end it" % (
        srv, dir, " as " + who if who else "", pid, dir))


@main.command()
@click.argument("dir", type=click.Path(file_okay=False))
@client_command("umount")
def umount(dir: str) -> None:
    """Unmount what net9 mount mounted on DIR (fusermount -u for 9pfuse,
    umount for v9fs and, as root, net9's FUSE client, fusermount3 -u
    otherwise; the client then exits)."""
    import shutil
    fstype = mounted(dir)
    if fstype is None:
        raise Fail("%s: not mounted" % dir)
    if fstype == "fuse.net9":                  # net9's own FUSE client
        if os.geteuid() == 0:
            argv = ["umount", dir]
        else:
            fm = shutil.which("fusermount3") or shutil.which("fusermount")
            argv = [fm, "-u", dir] if fm else ["umount", dir]
    elif fstype.startswith("fuse"):
        fm = shutil.which("fusermount") or shutil.which("fusermount3")
        argv = [fm, "-u", dir] if fm else ["umount", dir]
    elif fstype == "9p":
        argv = ["umount", dir]
    else:
        raise Fail("%s: a %s file system is mounted there, not net9's" % (dir, fstype))
    rc = run_shown(argv)
    if rc != 0:
        raise Fail("%s failed (exit status %d)" % (os.path.basename(argv[0]), rc))


if __name__ == "__main__":
    main()
