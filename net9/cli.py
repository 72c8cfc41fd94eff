"""The net9 command (cmd/net9 is a thin script that calls main()).

    net9 serve [--tun NAME] [--addr CIDR]... [--host-addr CIDR]... [--mtu N]
               [--srv ADDR]... [--pcap FILE] [--eve USER] [--netns NS]
               [--allow-remote] [-v]

starts a stack and serves its /net over 9P, in the foreground, logging to
standard error, until SIGINT or SIGTERM.

    net9 ping [-6alq] [-n COUNT] [-i MS] [-s SIZE] [-w MS] [--srv ADDR] HOST

is Plan 9's ping through a running net9 serve (net9.ping).  See net9(1)."""

from __future__ import annotations

import ipaddress
import os
import pwd
import selectors
import signal
import sys
import time

import click

from net9.server import Server, default_socket_path

DEFAULT_ADDRS = ("10.9.0.2/24", "fd09::2/64")
DEFAULT_HOST_ADDRS = ("10.9.0.1/24", "fd09::1/64")


def say(msg):
    click.echo("net9: " + msg, err=True)


def _tunusable():
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


def make_stack(tun, addrs, host_addrs, mtu, pcap, netns, eve):
    """A net9.stack.Stack (TUN + loopback, or loopback only)."""
    from net9.stack import Stack
    return Stack(tun=tun, addrs=addrs, host_addrs=host_addrs, mtu=mtu, pcap=pcap,
                 loopback=True, netns=netns, user=eve)


def reset_conversations(fs):
    """Before exiting: reset every live TCP connection (RST, as a hangup)."""
    for name, p in fs.protos.items():
        for c in getattr(p, "conv", []):
            if c.inuse > 0 or c.state in (3, 4):
                try:
                    p.ctl(c, "hangup")
                except Exception:
                    pass


@click.group()
def main():
    """net9: Plan 9's /net on Linux, served over 9P."""


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
              help="allow tcp!ADDR!PORT on a non-loopback address (9P has no authentication)")
@click.option("--msize", default=None, type=int, help="largest 9P message offered")
@click.option("-v", "--verbose", count=True, help="log 9P connections (-vv: more)")
def serve(tun, addrs, host_addrs, mtu, srvs, pcap, eve, netns, allow_remote, msize, verbose):
    """Start a stack and serve its /net over 9P until SIGINT or SIGTERM."""
    if eve is None:
        eve = pwd.getpwuid(os.geteuid()).pw_name
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
    try:
        st = make_stack(tun, list(addrs), list(host_addrs), mtu, pcap, netns, eve)
    except Exception as e:
        say("cannot start the stack: %s" % e)
        sys.exit(1)
    if tun is not None:
        say("created TUN %s%s (MTU %d): net9 is %s, Linux is %s" % (
            tun, " in namespace " + netns if netns else "", mtu, " ".join(addrs),
            " ".join(host_addrs)))
    say("loopback medium: 127.0.0.1/8 ::1")
    if pcap:
        say("capturing the TUN to %s" % pcap)

    def logfn(msg):
        if verbose:
            say(msg)
    kw = {}
    if msize:
        kw["msize"] = msize
    srv = Server(st.fs, st.loop, eve=eve, log=logfn, **kw)
    st.wakehooks.append(srv.woken)
    if not srvs:
        srvs = ("unix!" + default_socket_path(),)
    unixpaths = []
    try:
        for a in srvs:
            where = srv.listen(a, allow_remote=allow_remote)
            say("serving 9P on %s" % where)
            if where.startswith("unix!"):
                unixpaths.append(where[5:])
    except (OSError, ValueError) as e:
        say("cannot serve: %s" % e)
        srv.close()
        st.close()
        sys.exit(1)
    say("eve (host owner) is %s" % eve)
    for p in unixpaths:
        say("mount it:  9pfuse 'unix!%s' /mnt/net   or   "
            "mount -t 9p -o trans=unix,version=9p2000.L,uname=%s %s /mnt/net" % (p, eve, p))

    stopping = []

    def stop(signum, frame):
        stopping.append(signum)
        st.loop.stop()
    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopping:
            st.loop.run(until=lambda: bool(stopping))
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        say("stopping (signal %d): resetting connections" % (stopping[0] if stopping else 0))
        reset_conversations(st.fs)
        srv.close()
        # let the resets go out
        try:
            st.loop.run(timeout=0.1)
        except Exception:
            pass
        st.close()
        for p in unixpaths:
            say("removed %s" % p)
        if tun is not None:
            say("removed TUN %s" % tun)


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
def ping(count, interval, size, wait, v6, addresses, lostonly, quiet, srv, user, host):
    """Plan 9's ping through a running net9 serve: icmp!HOST!1 in its /net."""
    from net9.ping import ping as run
    if user is None:
        user = pwd.getpwuid(os.geteuid()).pw_name
    sys.exit(run(host, count=count, interval=interval, size=size, srv=srv, v6=v6,
                 quiet=quiet, addresses=addresses, lostonly=lostonly, wait=wait, uname=user))


if __name__ == "__main__":
    main()
