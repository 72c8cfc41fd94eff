"""The net9 command against Linux and as a user runs it: `net9 serve` with
its defaults as root inside a network namespace (TUN net9, 10.9.0.2 /
fd09::2, the socket in plan9port's namespace directory) and without root
(a child that dropped to nobody: loopback only), started and stopped
cleanly; `net9 dial` and `net9 listen` against Linux peers in the
namespace (python's http.server, curl), v4 and v6, with service names;
refused, unanswered and forbidden calls as one-line errors."""

import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

import pytest

pytest.importorskip("net9.stack", reason="net9.stack not built")

import net9  # noqa: E402
from net9.cli import main as net9main  # noqa: E402
import net9.media  # noqa: E402,F401
import net9.server  # noqa: E402,F401
import net9.stack  # noqa: E402,F401
from net9.dial import Net  # noqa: E402

import linuxns  # noqa: E402
from linuxns import Netns  # noqa: E402
from served import net9env  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CMD = os.path.join(os.path.dirname(HERE), "cmd", "net9")


def run(*args, input=None, timeout=60, **env):
    return subprocess.run([sys.executable, CMD] + list(args), input=input,
                          capture_output=True, timeout=timeout, env=net9env(**env))


def one_error(r, pattern):
    err = r.stderr.decode()
    assert r.returncode == 1, (r.returncode, err)
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert re.fullmatch(pattern, err.rstrip("\n")), err


# ---- serve without root ---------------------------------------------------------------

def as_user(name, fn, *args):
    """Fork; the child drops to user name, runs fn(*args) with standard
    output and error on a pipe and exits with its result (an int).
    Everything the child needs is imported before the fork: the CI venv may
    be unreadable for other users.  Returns (pid, read end of the pipe)."""
    pw = pwd.getpwnam(name)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                   # child
        code = 99
        try:
            os.close(r)
            os.dup2(w, 1)
            os.dup2(w, 2)
            nul = os.open(os.devnull, os.O_RDONLY)
            os.dup2(nul, 0)
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            os.environ["USER"] = name
            os.environ["HOME"] = "/"
            sys.stdout = os.fdopen(1, "w", buffering=1)
            sys.stderr = os.fdopen(2, "w", buffering=1)
            code = fn(*args)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except Exception:
                pass
            os._exit(code if isinstance(code, int) else 1)
    os.close(w)
    return pid, r


def run_net9(*args):
    """net9 ARGS in this process (a forked child): its exit status."""
    net9main.main(list(args), prog_name="net9")
    return 0


def collect(pid, r, timeout=30):
    """Wait for an as_user child: (exit status, its output)."""
    out = b""
    end = time.time() + timeout
    os.set_blocking(r, False)
    while True:
        try:
            d = os.read(r, 65536)
            if d:
                out += d
                continue
            if d == b"":
                break
        except BlockingIOError:
            pass
        if time.time() > end:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def read_until(r, pattern, timeout=30):
    out = b""
    end = time.time() + timeout
    os.set_blocking(r, False)
    while time.time() < end:
        try:
            d = os.read(r, 65536)
        except BlockingIOError:
            time.sleep(0.05)
            continue
        if not d:
            break
        out += d
        if re.search(pattern, out.decode(errors="replace")):
            return out.decode(errors="replace")
    raise AssertionError("no %r in %r" % (pattern, out))


@linuxns.needs_kernel("needs root to become another user" if os.geteuid() != 0 else None)
def test_serve_without_root():
    d = tempfile.mkdtemp()
    nsdir = os.path.join(d, "ns.nobody")
    os.chmod(d, 0o755)
    os.mkdir(nsdir, 0o700)                     # as net9.namespace insists
    nob = pwd.getpwnam("nobody")
    os.chown(nsdir, nob.pw_uid, nob.pw_gid)
    os.environ["NAMESPACE"] = nsdir            # the default socket: $NAMESPACE/net9
    try:
        pid, r = as_user("nobody", run_net9, "serve")
    finally:
        del os.environ["NAMESPACE"]
    sock = os.path.join(nsdir, "net9")
    try:
        text = read_until(r, r"serving 9P on unix!")
        assert ("net9: not running as root: no TUN device; running with the loopback "
                "medium only (127.0.0.1, ::1)") in text
        assert "net9: serving 9P on unix!%s" % sock in text
        st = os.stat(sock)
        assert st.st_uid == nob.pw_uid and oct(st.st_mode & 0o777) == "0o600"
        # its /net works (root may use any socket) ...
        n = Net(srv="unix!" + sock, user="nobody")
        assert n.cat("tcp/stats").startswith("MaxConn: 4096\n")
        ann = n.announce("tcp!*!7700")
        with n.dial("tcp!127.0.0.1!7700") as c:
            assert c.remote == "127.0.0.1!7700"
        ann.close()
        n.close()
        # ... another user may not: one line, exit 1
        rc, out = collect(*as_user("daemon", run_net9, "stats", "--srv", "unix!" + sock))
        assert rc == 1, out
        assert out == ("net9 stats: cannot reach net9 serve at unix!%s: Permission denied\n"
                       % sock)
        os.kill(pid, signal.SIGTERM)
        rc, out = collect(pid, r)
        assert rc == 0, out
        assert "net9: stopping (signal 15): resetting connections" in out
        assert "net9: removed %s" % sock in out
        assert "Traceback" not in out
        assert not os.path.exists(sock)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        shutil.rmtree(d, ignore_errors=True)


# ---- serve as root with its defaults, in a namespace ---------------------------------

linux = linuxns.skip_unless_linux()


@linux
def test_serve_defaults_as_root_in_a_namespace():
    ns = Netns()
    d = tempfile.mkdtemp()
    env = net9env(NAMESPACE=d)
    p = subprocess.Popen(ns.cmd(sys.executable, CMD, "serve"), stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        lines = []
        while not any("serving 9P on" in ln for ln in lines):
            ln = p.stderr.readline().decode()
            assert ln, "net9 serve exited: %s" % lines
            lines.append(ln.rstrip("\n"))
        sock = os.path.join(d, "net9")
        assert ("net9: created TUN net9 (MTU 1500): net9 is 10.9.0.2/24 fd09::2/64, "
                "Linux is 10.9.0.1/24 fd09::1/64") in lines
        assert "net9: serving 9P on unix!%s" % sock in lines
        r = ns.run("ping", "-c", "1", "-W", "5", "10.9.0.2")
        assert r.returncode == 0, r.stdout + r.stderr
        r = run("stats", "ipifc", NET9_SRV="unix!" + sock)
        assert r.returncode == 0 and b"InReceives: " in r.stdout
        p.send_signal(signal.SIGTERM)
        rest = p.stderr.read().decode()
        assert p.wait(20) == 0
        assert "net9: removed TUN net9" in rest and "Traceback" not in rest
        assert not os.path.exists(sock)
        assert ns.run("ip", "link", "show", "net9").returncode != 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        ns.close()
        shutil.rmtree(d, ignore_errors=True)


# ---- dial and listen against Linux ---------------------------------------------------------


def fetch(srv, addr, path="/index.html", tries=50):
    req = b"GET %s HTTP/1.0\r\n\r\n" % path.encode()
    for _ in range(tries):
        r = run("dial", "--srv", srv, addr, input=req)
        if b"connection refused" not in r.stderr:
            return r
        time.sleep(0.2)                  # http.server not up yet
    return r


@pytest.mark.parametrize("addr", ["tcp!10.9.0.1!8080", "10.9.0.1!http-alt",
                                  "tcp!fd09::1!8080", "tcp![fd09::1]!http-alt"])
def test_dial_http_to_linux(linuxhttp, addr):
    ns, srv = linuxhttp
    r = fetch(srv, addr)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"HTTP/1.0 200 ")
    assert r.stdout.endswith(b"\r\n\r\nhello from linux\n")
    assert r.stderr == b""


def test_dial_errors_against_linux(linuxhttp):
    ns, srv = linuxhttp
    one_error(run("dial", "--srv", srv, "tcp!10.9.0.1!9"),            # Linux answers RST
              r"net9 dial: tcp!10\.9\.0\.1!9: connection refused")
    t0 = time.monotonic()
    one_error(run("dial", "--srv", srv, "-t", "1", "tcp!10.9.0.77!80"),  # nobody there
              r"net9 dial: tcp!10\.9\.0\.77!80: timed out")
    assert time.monotonic() - t0 < 20


@pytest.mark.parametrize("v6", [False, True])
def test_listen_answers_curl(linuxhttp, v6):
    ns, srv = linuxhttp
    port = 9001 + v6
    p = subprocess.Popen([sys.executable, CMD, "listen", "--srv", srv, "-v", "-n", "1",
                          "tcp!*!%d" % port, "sh", "-c",
                          r'read l; printf "HTTP/1.0 200 OK\r\n\r\nhello from %s for %s\n" '
                          r'"$net" "$l"'],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env=net9env())
    try:
        ln = p.stderr.readline().decode()
        assert re.fullmatch(r"net9: announced ::!%d in /net/tcp/\d+\n" % port, ln), ln
        host = "[fd09::2]" if v6 else "10.9.0.2"
        r = ns.run("curl", "-s", "-g", "-m", "20", "http://%s:%d/x" % (host, port))
        assert r.returncode == 0, r.stderr
        assert re.fullmatch(r"hello from /net/tcp/\d+ for GET /x HTTP/1\.1\n", r.stdout), \
            r.stdout
        assert p.wait(20) == 0
        err = p.stderr.read().decode()
        peer = r"fd09::1" if v6 else r"10\.9\.0\.1"
        assert re.fullmatch(r"net9: incoming call for tcp!\*!%d from %s!\d+ in /net/tcp/\d+\n"
                            % (port, peer), err), err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_netstat_sees_a_linux_connection(linuxhttp):
    ns, srv = linuxhttp
    n = Net(srv=srv)
    try:
        for _ in range(50):
            try:
                c = n.dial("tcp!10.9.0.1!8080")
                break
            except ConnectionRefusedError:
                time.sleep(0.2)
        r = run("netstat", "-n", "--srv", srv, "-p", "tcp")
        lport = c.getsockname()[1]
        want = "tcp  %-4d %-10s Established  %-10d 8080       10.9.0.1" % (
            c.number, pwd.getpwuid(os.geteuid()).pw_name, lport)
        assert want in r.stdout.decode().splitlines(), r.stdout
        c.close()
        s = run("stats", "--srv", srv, "tcp").stdout.decode()
        assert int(re.search(r"^InSegs: (\d+)$", s, re.M)[1]) > 0
    finally:
        n.close()
