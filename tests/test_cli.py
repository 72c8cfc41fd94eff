"""The net9 command's client side: dial, listen, netstat, stats, ls, cat,
write, rdwr, mount and umount, through click's CliRunner and as
processes, against a stack served in this process (tests/served.py;
loopback and a black hole, no root), and every documented error path: one
line "net9 CMD: ..." on standard error, exit status 1, no traceback.
Against Linux, serve itself and the README: tests/test_cli_linux.py."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from click.testing import CliRunner

pytest.importorskip("net9.stack", reason="net9.stack not built")

import net9  # noqa: E402
from net9 import cli  # noqa: E402
from net9.cli import main  # noqa: E402

from served import Served, StderrLines, net9env  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CMD = os.path.join(os.path.dirname(HERE), "cmd", "net9")


@pytest.fixture(scope="module")
def served(served_module):
    return served_module           # one server for the module (conftest)


def run(served, *args, input=None, user="glenda", env=None):
    """net9 ARGS through CliRunner with --srv and -u filled in."""
    argv = list(args)
    if argv[0] not in ("mount", "umount"):
        argv[1:1] = ["--srv", served.addr, "-u", user]
    r = CliRunner(env=env).invoke(main, argv, input=input)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r


def one_error(r, pattern):
    """Exit status 1 and exactly one line on stderr, matching pattern."""
    assert r.exit_code == 1, (r.exit_code, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert re.fullmatch(pattern, lines[0]), lines[0]
    return lines[0]


def serve_once(ann, fn):
    out = {}

    def go():
        try:
            with ann.accept(timeout=20) as c:
                out["result"] = fn(c)
        except BaseException as e:
            out["error"] = e
    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t, out


# ---- dial ------------------------------------------------------------------------

def test_dial_copies_both_ways(served, net):
    ann = net.announce("tcp!*!7100")

    def echo(c):
        got = b""
        while b"\n\n" not in got:
            got += c.recv(100)
        c.sendall(b"you said: " + got)
        return got
    t, out = serve_once(ann, echo)
    r = run(served, "dial", "tcp!127.0.0.1!7100", input=b"one\ntwo\n\n")
    t.join(10)
    # stdin's EOF ends the sending only: the reply still came, then the
    # peer's close ended net9 dial
    assert r.exit_code == 0, r.stderr
    assert r.stdout_bytes == b"you said: one\ntwo\n\n"
    assert out["result"] == b"one\ntwo\n\n"
    ann.close()


def test_dial_verbose_and_service_names(served, net):
    ann = net.announce("tcp!127.0.0.1!7101")
    t, out = serve_once(ann, lambda c: c.sendall(b"hi"))
    r = run(served, "dial", "-v", "127.0.0.1!7101", input=b"")
    t.join(10)
    assert r.exit_code == 0 and r.stdout_bytes == b"hi"
    assert re.fullmatch(r"net9: connected to 127\.0\.0\.1!7101 from 127\.0\.0\.1!\d+ "
                        r"\(/net/tcp/\d+\)\n", r.stderr)
    ann.close()


def test_dial_quit_on_eof(served, net):
    ann = net.announce("tcp!*!7102")
    done = threading.Event()

    def hold(c):
        got = c.recv(100)
        rest = c.recv(100)                 # the close (FIN) of -q
        done.set()
        return got, rest
    t, out = serve_once(ann, hold)
    t0 = time.monotonic()
    r = run(served, "dial", "-q", "tcp!127.0.0.1!7102", input=b"bye\n")
    assert r.exit_code == 0 and r.stdout_bytes == b""
    assert time.monotonic() - t0 < 10
    t.join(10)
    assert out["result"] == (b"bye\n", b"")
    ann.close()


def test_dial_errors(served, monkeypatch):
    real = socket.getaddrinfo

    def gai(host, *a, **kw):               # no DNS needed for the unknown host
        if host == "no-such-host.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *a, **kw)
    monkeypatch.setattr(socket, "getaddrinfo", gai)
    for addr, err in [
            ("tcp!127.0.0.1!7199", r"tcp!127\.0\.0\.1!7199: connection refused"),
            ("foo", r"bad address 'foo': want \[net!\]host!port"),
            ("tcp!127.0.0.1!no-such-service", r"unknown service 'no-such-service'"),
            ("bogus!127.0.0.1!80", r"/net/bogus: unknown network bogus"),
            ("tcp!no-such-host.invalid!80",
             r"unknown host: no-such-host\.invalid: Name or service not known"),
            ("tcp!10.9.9.9!80", r"tcp!10\.9\.9\.9!80: no route")]:
        one_error(run(served, "dial", addr), "net9 dial: " + err)
    t0 = time.monotonic()
    one_error(run(served, "dial", "-t", "0.5", "tcp!10.77.0.1!80"),
              r"net9 dial: tcp!10\.77\.0\.1!80: timed out")
    assert time.monotonic() - t0 < 5
    r = CliRunner().invoke(main, ["dial", "--srv", "unix!" + served.dir + "/none",
                                  "tcp!127.0.0.1!80"])
    one_error(r, r"net9 dial: cannot reach net9 serve at unix!%s/none: "
                 r"No such file or directory \(is net9 serve running\?\)" % re.escape(served.dir))
    r = CliRunner().invoke(main, ["dial", "--srv", "tcp!127.0.0.1", "tcp!127.0.0.1!80"])
    one_error(r, r"net9 dial: cannot reach net9 serve at tcp!127\.0\.0\.1: bad 9P server "
                 r"address 'tcp!127\.0\.0\.1': want tcp!HOST!PORT")
    # the default server comes from $NET9_SRV
    r = CliRunner(env={"NET9_SRV": "unix!/nonexistent/net9"}).invoke(
        main, ["dial", "tcp!127.0.0.1!80"])
    one_error(r, r"net9 dial: cannot reach net9 serve at unix!/nonexistent/net9: .*")
    r = CliRunner().invoke(main, ["dial", "--srv", served.addr, "--net", "/tmp",
                                  "tcp!127.0.0.1!80"])
    one_error(r, r"net9 dial: give --srv or --net, not both")
    r = CliRunner().invoke(main, ["dial", "--net", served.dir, "tcp!127.0.0.1!80"])
    one_error(r, r"net9 dial: %s: not a mounted /net \(no tcp, no udp\)" % re.escape(served.dir))


def test_dial_usage_error_is_not_a_traceback():
    r = CliRunner().invoke(main, ["dial"])
    assert r.exit_code == 2 and "Missing argument 'ADDR'" in r.stderr
    assert "Traceback" not in r.stderr


# ---- listen ------------------------------------------------------------------------

class Proc(StderrLines):
    """net9 ARGS as a process; its stderr lines collected (.lines)."""

    name = "net9"

    def __init__(self, *args, env=None):
        self.p = subprocess.Popen([sys.executable, CMD] + list(args), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=env or net9env())
        self._collect()

    def wait(self, timeout=20):
        try:
            return self.p.wait(timeout)
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait()

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def ask(net, addr, line, timeout=20):
    """Dial addr, send line, read to EOF."""
    with net.dial(addr) as c:
        c.settimeout(timeout)
        c.sendall(line)
        return c.read()


def test_listen_runs_a_command_per_call(served, net):
    p = Proc("listen", "--srv", served.addr, "-u", "glenda", "-v", "-n", "2",
             "tcp!*!7200", "sh", "-c", 'read l; echo "got $l on $net"; echo oops >&2')
    try:
        p.expect(r"^net9: announced ::!7200 in /net/tcp/\d+$")
        a = ask(net, "tcp!127.0.0.1!7200", b"first\n")
        b = ask(net, "tcp!::1!7200", b"second\n")
        assert re.fullmatch(rb"got first on /net/tcp/\d+\noops\n", a), a
        assert re.fullmatch(rb"got second on /net/tcp/\d+\noops\n", b), b
        assert p.wait() == 0                       # -n 2: done after two calls
        calls = [ln for ln in p.lines if ln and "incoming call" in ln]
        assert len(calls) == 2
        assert re.fullmatch(r"net9: incoming call for tcp!\*!7200 from 127\.0\.0\.1!\d+ in "
                            r"/net/tcp/\d+", calls[0])
        assert re.fullmatch(r"net9: incoming call for tcp!\*!7200 from ::1!\d+ in "
                            r"/net/tcp/\d+", calls[1])
        # the announcement is gone with it
        with pytest.raises(ConnectionRefusedError):
            net.dial("tcp!127.0.0.1!7200")
    finally:
        p.kill()


def test_listen_keep_stderr_and_maxprocs(served, net):
    p = Proc("listen", "--srv", served.addr, "-u", "glenda", "-e", "-p", "1", "-n", "2",
             "tcp!127.0.0.1!7201", "sh", "-c", 'read l; echo "[$l]"; echo "log $l" >&2')
    try:
        first = None
        for _ in range(100):
            try:
                first = net.dial("tcp!127.0.0.1!7201")
                break
            except ConnectionRefusedError:
                time.sleep(0.1)
        second = net.dial("tcp!127.0.0.1!7201")
        second.sendall(b"two\n")
        second.settimeout(1)
        with pytest.raises(TimeoutError):
            second.recv(10)                    # -p 1: its command waits for the first's
        first.sendall(b"one\n")
        first.settimeout(20)
        assert first.read() == b"[one]\n"      # stderr stayed on net9's (-e)
        second.settimeout(20)
        assert second.read() == b"[two]\n"
        assert p.wait() == 0
        assert "log one" in p.lines and "log two" in p.lines
        first.close()
        second.close()
    finally:
        p.kill()


def test_listen_sigterm_stops_it(served, net):
    p = Proc("listen", "--srv", served.addr, "-u", "glenda", "-v", "tcp!*!7202", "cat")
    try:
        p.expect(r"announced")
        c = net.dial("tcp!127.0.0.1!7202")
        c.settimeout(20)
        c.sendall(b"echoed by cat\n")
        assert c.recv(100) == b"echoed by cat\n"
        p.p.send_signal(signal.SIGTERM)
        assert p.wait() == 0
        assert not [ln for ln in p.lines if ln and "Traceback" in ln]
        assert c.read() == b""                 # its cat was ended, the call closed
        c.close()
        with pytest.raises(ConnectionRefusedError):
            net.dial("tcp!127.0.0.1!7202")
    finally:
        p.kill()


def test_listen_errors(served, net):
    one_error(run(served, "listen", "tcp!*!7203", "no-such-command-here"),
              r"net9 listen: no-such-command-here: command not found")
    one_error(run(served, "listen", "tcp!*!*", "cat", user="alice"),
              r"net9 listen: tcp!\*!\*: permission denied")
    ann = net.announce("tcp!127.0.0.1!7204")
    one_error(run(served, "listen", "tcp!127.0.0.1!7204", "cat"),
              r"net9 listen: tcp!127\.0\.0\.1!7204: address in use")
    ann.close()
    one_error(run(served, "listen", "tcp!10.1.2.3!7205", "cat"),
              r"net9 listen: tcp!10\.1\.2\.3!7205: not a local IP address")
    one_error(run(served, "listen", "tcp!x!y!", "cat"),
              r"net9 listen: unknown service 'y'")
    r = CliRunner().invoke(main, ["listen", "tcp!*!7206"])
    assert r.exit_code == 2 and "Missing argument 'CMD...'" in r.stderr


# ---- netstat, stats ------------------------------------------------------------------

def test_netstat(served, net):
    ann = net.announce("tcp!*!564")
    c = net.dial("tcp!127.0.0.1!564")
    call = ann.listen(timeout=5)
    u = net.announce("udp!*!7300")
    r = run(served, "netstat", "-n")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    # netstat.c: "%-4s %-4s %-10s %-12s %-10s %-10s %s"
    assert "tcp  %-4d glenda     Listen       564        0          ::" % ann.number in lines
    lport = c.getsockname()[1]
    assert ("tcp  %-4d glenda     Established  %-10d 564        127.0.0.1" % (c.number, lport)
            in lines)
    assert ("tcp  %-4d glenda     Established  564        %-10d 127.0.0.1" % (call.number, lport)
            in lines)
    assert "udp  %-4d glenda     Open         7300       0          ::" % u.number in lines
    assert all(ln.split()[0] in ("tcp", "udp", "icmp", "icmpv6") for ln in lines)
    # without -n, well-known ports by name (564 is 9fs, /etc/services says 9pfs)
    names = run(served, "netstat").stdout.splitlines()
    want = "tcp  %-4d glenda     Listen       " % ann.number
    got = [ln for ln in names if ln.startswith(want)][0]
    assert got.split()[4] in ("9fs", "9pfs")
    only = run(served, "netstat", "-n", "-p", "udp").stdout.splitlines()
    assert only and all(ln.startswith("udp ") for ln in only)
    one_error(run(served, "netstat", "-p", "bogus"),
              r"net9 netstat: no protocol bogus \(have icmp icmpv6 ipifc tcp udp\)")
    for x in (call, c, ann, u):
        x.close()


def test_netstat_interfaces(served):
    r = run(served, "netstat", "-i")
    assert r.exit_code == 0
    # netstat.c's pipifc: "%-12s %5d %-*I %5M %-*I %8lud %8lud %8lud %8lud"
    lines = r.stdout.splitlines()
    # the address columns are as wide as the widest address (9 here)
    want = ["pair          1500 10.77.0.2  /120 10.77.0.0 ",
            "loopback     16384 127.0.0.1  /104 127.0.0.0 ",
            "loopback     16384 ::1        /128 ::1       "]
    assert len(lines) == 3
    for ln, w in zip(lines, want):
        assert ln.startswith(w), (ln, w)
        assert re.fullmatch(r" *\d+ +\d+ +0 +0", ln[len(w):]) and len(ln) == len(w) + 35


def test_stats(served, net):
    r = run(served, "stats", "tcp")
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert len(lines) == 28 and lines[0] == "MaxConn: 4096"        # devip.md 9
    assert lines[-1].startswith("RecoveryPA: ")
    r = run(served, "stats", "udp", "icmp")
    assert r.stdout.startswith("==> udp/stats <==\nInDatagrams: ")
    assert "\n\n==> icmp/stats <==\nInMsgs: " in r.stdout
    r = run(served, "stats")
    heads = re.findall(r"^==> (\w+)/stats <==$", r.stdout, re.M)
    assert heads == ["tcp", "udp", "ipifc", "icmp", "icmpv6"]
    assert "\nForwarding: " in r.stdout
    one_error(run(served, "stats", "nope"),
              r"net9 stats: no protocol nope \(have tcp udp ipifc icmp icmpv6\)")


def test_stats_counts_what_dial_did(served, net):
    def opens():
        return int(re.search(r"ActiveOpens: (\d+)", run(served, "stats", "tcp").stdout)[1])
    before = opens()
    with pytest.raises(ConnectionRefusedError):
        net.dial("tcp!127.0.0.1!7399")
    assert opens() == before + 1


# ---- ls, cat, write, rdwr --------------------------------------------------------------

def test_ls(served):
    r = run(served, "ls")
    assert r.stdout.splitlines() == ["tcp", "udp", "ipifc", "icmp", "icmpv6", "arp", "bootp",
                                     "ndb", "iproute", "ipselftab", "log"]
    r = run(served, "ls", "-l", "/net/tcp")
    lines = r.stdout.splitlines()
    assert re.fullmatch(r"--rw-rw-rw- network glenda 0 \w{3} [ \d]\d \d\d:\d\d clone",
                        lines[-2]), lines
    assert re.fullmatch(r"--r--r--r-- network glenda 0 .* stats", lines[-1]), lines
    assert run(served, "ls", "tcp/stats").stdout == "stats\n"
    d = run(served, "ls", "-l", "/")
    assert re.search(r"^d-r-xr-xr-x network glenda 0 .* tcp$", d.stdout, re.M)
    one_error(run(served, "ls", "tcp/99999"), r"net9 ls: tcp/99999: file does not exist")


def test_cat_and_write(served, net):
    r = run(served, "cat", "tcp/stats", "/net/udp/stats")
    assert r.stdout.startswith("MaxConn: 4096\n") and "\nInDatagrams: " in r.stdout
    r = run(served, "write", "ndb", input=b"ip=10.9.0.2 sys=net9\n")
    assert r.exit_code == 0, r.stderr
    assert run(served, "cat", "ndb").stdout == "ip=10.9.0.2 sys=net9\n"
    one_error(run(served, "write", "ndb", input=b"x", user="alice"),
              r"net9 write: ndb: permission denied")
    one_error(run(served, "cat", "nothere"), r"net9 cat: nothere: file does not exist")
    one_error(run(served, "cat", "tcp/clone/x"), r"net9 cat: tcp/clone/x: .*")
    # a ctl message from standard input, to a conversation we hold
    ann = net.announce("tcp!*!7400")
    assert run(served, "write", "tcp/%d/ctl" % ann.number, input=b"ttl 64\n").exit_code == 0
    one_error(run(served, "write", "tcp/%d/ctl" % ann.number, input=b"bogus\n"),
              r"net9 write: tcp/\d+/ctl: unknown control request")
    one_error(run(served, "write", "tcp/%d/ctl" % ann.number, input=b"ttl 1\n", user="alice"),
              r"net9 write: tcp/\d+/ctl: permission denied")
    # empty standard input: one zero-length write (a no-op on ctl)
    assert run(served, "write", "tcp/%d/ctl" % ann.number, input=b"").exit_code == 0
    ann.close()


def test_cat_of_a_data_file_streams_until_eof(served, net):
    ann = net.announce("tcp!*!7401")
    c = net.dial("tcp!127.0.0.1!7401")
    call = ann.listen(timeout=5)
    d = call.accept()
    c.sendall(b"streamed ")
    res = {}
    t = threading.Thread(target=lambda: res.setdefault("r", run(served, "cat", "tcp/%d/data"
                                                                 % d.number)))
    t.start()
    time.sleep(0.3)
    c.sendall(b"bytes")
    c.close()                                    # FIN: cat ends
    t.join(20)
    assert res["r"].exit_code == 0 and res["r"].stdout == "streamed bytes"
    d.close()
    ann.close()


def test_rdwr_holds_a_clone(served, net):
    ann = net.announce("tcp!*!7402")
    r = run(served, "rdwr", "tcp/clone", input=b"connect 127.0.0.1!7402\nbogus\n")
    assert r.exit_code == 0
    out = r.stdout.splitlines()
    assert len(out) == 3 and out[0] == out[1] == out[2] and out[0].isdigit()
    assert r.stderr == "net9: rdwr: write: unknown control request\n"
    call = ann.listen(timeout=5)                 # its connect made a call
    assert call.local == "127.0.0.1!7402"
    call.close()
    ann.close()


# ---- mount, umount -----------------------------------------------------------------------

def fakebin(d, name, code=0):
    """A command that records its arguments in d/name.args."""
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write("#!/bin/sh\nfor a in \"$@\"; do printf '%%s\\n' \"$a\"; done > %s/%s.args\n"
                "exit %d\n" % (d, name, code))
    os.chmod(p, 0o755)
    return p


@pytest.fixture
def bindir(monkeypatch):
    d = tempfile.mkdtemp()
    monkeypatch.setenv("PATH", d + ":/usr/bin:/bin:/usr/sbin:/sbin")
    monkeypatch.setattr(cli, "PROC_FILESYSTEMS", os.path.join(d, "filesystems"))
    monkeypatch.setattr(cli, "PROC_MOUNTS", os.path.join(d, "mounts"))
    import net9.fuse
    monkeypatch.setattr(net9.fuse, "DEV_FUSE", os.path.join(d, "fuse"))    # no FUSE here
    with open(cli.PROC_FILESYSTEMS, "w") as f:
        f.write("nodev\tsysfs\nnodev\tproc\n\text4\n")
    with open(cli.PROC_MOUNTS, "w") as f:
        f.write("/dev/root / ext4 rw 0 0\n")
    monkeypatch.setattr(os, "uname", lambda: os.uname_result(("Linux", "h", "0.0-test", "", "x")))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_mount_with_neither_client(served, bindir):
    r = CliRunner().invoke(main, ["mount", "--srv", served.addr, bindir + "/mnt"])
    one_error(r, r"net9 mount: neither plan9port's 9pfuse \(not on PATH\) nor the kernel's "
                 r"9p file system \(not in .*filesystems, no 9p module\) is available; .*")
    assert not os.path.exists(bindir + "/mnt")
    one_error(CliRunner().invoke(main, ["mount", "--srv", served.addr, "--with", "v9fs",
                                        bindir + "/mnt"]),
              r"net9 mount: the kernel has no 9p file system .*")
    one_error(CliRunner().invoke(main, ["mount", "--srv", served.addr, "--with", "9pfuse",
                                        bindir + "/mnt"]),
              r"net9 mount: 9pfuse is not on PATH \(it comes with plan9port\)")


def test_mount_with_9pfuse_prints_the_command(served, bindir):
    fakebin(bindir, "9pfuse")
    mnt = os.path.join(bindir, "mnt")
    r = CliRunner().invoke(main, ["mount", "--srv", served.addr, mnt])
    assert r.exit_code == 0, r.stderr
    assert r.stderr.splitlines() == [
        "net9: created %s" % mnt,
        "+ %s/9pfuse 'unix!%s' %s" % (bindir, served.sock, mnt)]
    assert open(bindir + "/9pfuse.args").read().splitlines() == ["unix!" + served.sock, mnt]
    assert os.path.isdir(mnt)
    # a failing 9pfuse is reported
    fakebin(bindir, "9pfuse", code=3)
    r = CliRunner().invoke(main, ["mount", "--srv", served.addr, mnt])
    assert r.stderr.splitlines()[-1] == "net9 mount: 9pfuse failed (exit status 3)"
    assert r.exit_code == 1


def test_mount_with_v9fs(served, bindir, monkeypatch):
    with open(cli.PROC_FILESYSTEMS, "a") as f:
        f.write("nodev\t9p\n")
    fakebin(bindir, "mount")
    mnt = os.path.join(bindir, "m")
    os.mkdir(mnt)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    r = CliRunner().invoke(main, ["mount", "--srv", served.addr, "-u", "glenda", mnt])
    assert r.exit_code == 0, r.stderr
    opts = "trans=unix,version=9p2000.L,cache=none,uname=glenda"
    assert r.stderr.splitlines() == ["+ mount -t 9p -o %s %s %s" % (opts, served.sock, mnt)]
    assert open(bindir + "/mount.args").read().splitlines() == [
        "-t", "9p", "-o", opts, served.sock, mnt]
    # over TCP, with extra options
    r = CliRunner().invoke(main, ["mount", "--srv", "tcp!127.0.0.1!1", mnt])
    one_error(r, r"net9 mount: cannot reach net9 serve at tcp!127\.0\.0\.1!1: .*")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    r = CliRunner().invoke(main, ["mount", "--srv", served.addr, mnt])
    one_error(r, r"net9 mount: mounting with the kernel's 9p file system needs root "
                 r"\(or install plan9port's 9pfuse\)")


def test_mount_v9fs_tcp_options(bindir, monkeypatch):
    with open(cli.PROC_FILESYSTEMS, "a") as f:
        f.write("nodev\t9p\n")
    fakebin(bindir, "mount")
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    port = ls.getsockname()[1]
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    try:
        r = CliRunner().invoke(main, ["mount", "--srv", "tcp!127.0.0.1!%d" % port, "-u", "g",
                                      "-o", "msize=65560", bindir + "/m"])
    finally:
        ls.close()
    assert r.exit_code == 0, r.stderr
    assert r.stderr.splitlines()[-1] == (
        "+ mount -t 9p -o trans=tcp,port=%d,version=9p2000.L,cache=none,uname=g,"
        "msize=65560 127.0.0.1 %s/m" % (port, bindir))


def test_mount_refuses_a_mounted_dir_and_umount(served, bindir):
    mnt = os.path.join(bindir, "mnt")
    os.mkdir(mnt)
    fakebin(bindir, "9pfuse")
    fakebin(bindir, "fusermount")
    one_error(CliRunner().invoke(main, ["umount", mnt]),
              r"net9 umount: %s: not mounted" % re.escape(mnt))
    with open(cli.PROC_MOUNTS, "a") as f:
        f.write("/dev/fuse %s fuse rw,nosuid 0 0\n" % mnt)
    one_error(CliRunner().invoke(main, ["mount", "--srv", served.addr, mnt]),
              r"net9 mount: %s: something is mounted there already \(fuse\); net9 umount %s"
              % (re.escape(mnt), re.escape(mnt)))
    r = CliRunner().invoke(main, ["umount", mnt])
    assert r.exit_code == 0
    assert r.stderr == "+ %s/fusermount -u %s\n" % (bindir, mnt)
    with open(cli.PROC_MOUNTS, "a") as f:
        f.write("net9 %s 9p rw 0 0\n" % mnt)                 # on top now
    fakebin(bindir, "umount")
    r = CliRunner().invoke(main, ["umount", mnt])
    assert r.exit_code == 0 and r.stderr == "+ umount %s\n" % mnt
    with open(cli.PROC_MOUNTS, "a") as f:
        f.write("/dev/sda1 %s ext4 rw 0 0\n" % mnt)
    one_error(CliRunner().invoke(main, ["umount", mnt]),
              r"net9 umount: .*: a ext4 file system is mounted there, not net9's")


def test_mount_server_not_running(bindir):
    one_error(CliRunner().invoke(main, ["mount", "--srv", "unix!" + bindir + "/no", bindir]),
              r"net9 mount: cannot reach net9 serve at unix!.*/no: .* "
              r"\(is net9 serve running\?\)")


# ---- as processes --------------------------------------------------------------------------

def test_help_of_every_command():
    out = subprocess.run([sys.executable, CMD, "--help"], capture_output=True, text=True,
                         env=net9env(), timeout=60)
    assert out.returncode == 0
    cmds = ["cat", "dial", "listen", "ls", "mount", "netstat", "ping", "rdwr", "serve",
            "stats", "umount", "write"]
    for c in cmds:
        assert re.search(r"^  %s " % c, out.stdout, re.M), c
    v = subprocess.run([sys.executable, CMD, "--version"], capture_output=True, text=True,
                       env=net9env(), timeout=60)
    assert v.stdout == "net9 %s\n" % net9.__version__
    for c in cmds:
        r = CliRunner().invoke(main, [c, "-h"])
        assert r.exit_code == 0 and r.stdout.startswith("Usage: main %s " % c), (c, r.stdout)


def test_dial_process_interrupted(served, net):
    """^C on a net9 dial blocked in a read: exit 130, no traceback, and the
    read flushed and the conversation closed on the server."""
    ann = net.announce("tcp!*!7500")
    p = subprocess.Popen([sys.executable, CMD, "dial", "--srv", served.addr, "-u", "glenda",
                          "tcp!127.0.0.1!7500"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=net9env())
    try:
        call = ann.listen(timeout=20)
        conn = call.accept()
        p.stdin.write(b"ping\n")
        p.stdin.flush()
        conn.settimeout(20)
        assert conn.recv(10) == b"ping\n"
        p.send_signal(signal.SIGINT)
        rc = p.wait(20)
        err = p.stderr.read()
        assert rc == 130, err.decode()
        assert err == b""
        assert conn.read() == b""                 # the dialer closed: FIN
        conn.close()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        ann.close()


def test_broken_pipe_is_quiet(served):
    p = subprocess.run("%s %s stats --srv %s | head -c 10 >/dev/null" % (
        sys.executable, CMD, served.addr), shell=True, capture_output=True, env=net9env(),
        timeout=60)
    assert p.returncode == 0 and b"Traceback" not in p.stderr and b"Broken" not in p.stderr


# ---- a real 9pfuse mount, where plan9port is installed --------------------------------------

def _no9pfuse():
    if shutil.which("9pfuse") is None:
        return "no 9pfuse on PATH (plan9port)"
    if shutil.which("fusermount") is None:
        return "no fusermount (Debian 12's fuse3 links it to fusermount3)"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    return None


@pytest.mark.skipif(_no9pfuse() is not None, reason=_no9pfuse() or "")
def test_9pfuse_mount_shell_recipe_and_netdir():
    s = Served()
    mnt = os.path.join(s.dir, "mnt")
    env = net9env()
    try:
        r = subprocess.run([sys.executable, CMD, "mount", "--srv", s.addr, mnt],
                           capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stderr.splitlines()[-1].endswith("9pfuse 'unix!%s' %s" % (s.sock, mnt))
        assert sorted(os.listdir(mnt)) == sorted(["tcp", "udp", "ipifc", "icmp", "icmpv6",
                                                  "arp", "bootp", "ndb", "iproute",
                                                  "ipselftab", "log"])
        lis = Proc("listen", "--net", mnt, "-n", "2", "tcp!*!7600", "sh", "-c",
                   'read l; echo "hi $l"', env=env)
        time.sleep(1)
        # devip.md 13.7's recipe, as the README gives it
        recipe = ("exec 3<>%s/tcp/clone; read -r n <&3; "
                  "echo 'connect 127.0.0.1!7600' >&3; "
                  "echo there >%s/tcp/$n/data; cat %s/tcp/$n/data; exec 3>&-" % (mnt, mnt, mnt))
        r = subprocess.run(["bash", "-c", recipe], capture_output=True, text=True, timeout=30)
        assert r.stdout == "hi there\n", r.stderr
        r = subprocess.run([sys.executable, CMD, "dial", "--net", mnt, "tcp!127.0.0.1!7600"],
                           input=b"mounted\n", capture_output=True, env=env, timeout=30)
        assert r.stdout == b"hi mounted\n" and r.returncode == 0
        assert lis.wait() == 0
        n = subprocess.run([sys.executable, CMD, "netstat", "-n", mnt], capture_output=True,
                           text=True, env=env, timeout=30)
        assert re.search(r"^tcp  \d+ +\S+ +(Closed|Time_wait|Finwait\d) +\d+ +7600 +127\.0\.0\.1$",
                         n.stdout, re.M), n.stdout
    finally:
        r = subprocess.run([sys.executable, CMD, "umount", mnt], capture_output=True,
                           text=True, env=env, timeout=60)
        s.close()
    assert r.returncode == 0 and "fusermount -u" in r.stderr
