"""README.md's commands as written.  The test command is run by .ci/run
(it checks that README.md has it verbatim); here the install-and-serve
command runs exactly as the README gives it, in `sh -c`, from the
checkout, with a fresh venv's bin first on PATH (so that the pip install
does not touch the environment running the tests): as root inside a test
network namespace (the TUN net9 and Linux at 10.9.0.1 there), else as it
is (loopback only).  It must install, start, serve on the default socket
($NAMESPACE/net9) and stop cleanly on SIGTERM.  In the namespace the
walk-through's commands (net9 dial, net9 listen with curl, net9 cs and
net9 dial by name, net9 stats, net9 netstat) run against it as the README
writes them; the mount and the
shell recipe need 9pfuse or v9fs, which tests/test_cli.py's 9pfuse test
covers where plan9port is installed."""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from linuxns import Netns, missing

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
README = os.path.join(REPO, "README.md")
INSTALL = "pip install . && net9 serve"
TEST = "pip install '.[test]' && pytest -q tests"


def blocks():
    """The ```sh blocks of README.md, each as a list of lines."""
    text = open(README).read()
    return [b.strip("\n").split("\n") for b in re.findall(r"```sh\n(.*?)```", text, re.S)]


def test_the_two_commands_at_the_top():
    b = blocks()
    assert b[0] == [INSTALL]
    assert b[1] == [TEST]
    head = open(README).read().split("## ", 1)[0]
    assert head.count("```sh") == 2               # nothing else before the walk-through
    ci = open(os.path.join(REPO, ".ci", "run")).read()
    assert 'TEST_CMD="%s"' % TEST in ci


def walkthrough():
    """The walk-through's lines, for checking that what the test runs is
    what the README says."""
    return [ln for blk in blocks()[2:] for ln in blk]


DIAL = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | net9 dial 'tcp!10.9.0.1!8000'"
LISTEN = ("net9 listen -v 'tcp!*!8080' sh -c 'read req; printf \"HTTP/1.0 200 OK\\r\\n\\r\\n"
          "hello from $net\\n\"' &")
CURL = "curl http://10.9.0.2:8080/"
CS = "net9 cs 'tcp!localhost!8080'"
DIALNAME = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | net9 dial 'tcp!localhost!8080'"
HTTP = "python3 -m http.server 8000 --bind 10.9.0.1 --directory /tmp/www &"


def test_walkthrough_has_what_this_file_runs():
    w = walkthrough()
    for cmd in ("net9 mount /mnt/net", HTTP, "exec 3<>/mnt/net/tcp/clone",
                "echo 'connect 10.9.0.1!8000' >&3", DIAL, LISTEN, CURL, CS, DIALNAME,
                "exec 4<>/mnt/net/cs", "echo 'tcp!localhost!8080' >&4",
                "read -r clone addr <&4", "exec 3<>/mnt$clone", 'echo "connect $addr" >&3',
                "net9 snoop | tshark -r - &",
                "cat /mnt/net/tcp/stats", "net9 stats tcp", "net9 netstat"):
        assert cmd in w, cmd


class Installed:
    """INSTALL run by sh -c in the checkout; its output collected."""

    def __init__(self, ns, tmp):
        self.venv = os.path.join(tmp, "venv")
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", self.venv],
                       check=True, timeout=300)
        self.nsdir = os.path.join(tmp, "ns")
        os.mkdir(self.nsdir, 0o700)
        self.env = dict(os.environ)
        for k in ("PYTHONPATH", "NET9_SRV", "PYTHONHOME"):
            self.env.pop(k, None)
        self.env.update(PATH=os.path.join(self.venv, "bin") + ":" + os.environ.get("PATH", ""),
                        VIRTUAL_ENV=self.venv, NAMESPACE=self.nsdir,
                        PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
        argv = ["sh", "-c", INSTALL]
        if ns is not None:
            argv = ns.cmd(*argv)
        self.out = open(os.path.join(tmp, "out"), "w+b")
        self.p = subprocess.Popen(argv, cwd=REPO, env=self.env, stdin=subprocess.DEVNULL,
                                  stdout=self.out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        self.sock = os.path.join(self.nsdir, "net9")

    def text(self):
        self.out.flush()
        with open(self.out.name, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_for(self, pattern, timeout):
        end = time.time() + timeout
        while time.time() < end:
            t = self.text()
            if re.search(pattern, t, re.M):
                return t
            if self.p.poll() is not None:
                break
            time.sleep(0.5)
        t = self.text()
        if re.search(r"Could not find a version|Temporary failure in name resolution|"
                     r"Network is unreachable|No matching distribution", t):
            pytest.skip("pip cannot reach the package index: %s" % t[-300:])
        raise AssertionError("no %r; output:\n%s" % (pattern, t[-4000:]))

    def serve_pids(self):
        """net9 serve's process (sh may have exec'd it or forked it)."""
        pids = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                if os.getpgid(int(d)) != self.p.pid:
                    continue
                cmd = open("/proc/%s/cmdline" % d, "rb").read().split(b"\0")
            except (OSError, ProcessLookupError):
                continue
            if b"serve" in cmd and any(c.endswith(b"net9") for c in cmd):
                pids.append(int(d))
        return pids

    def kill(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.p.wait()


def run(inst, ns, cmd, timeout=60):
    argv = ["sh", "-c", cmd]
    if ns is not None:
        argv = ns.cmd(*argv)
    return subprocess.run(argv, env=inst.env, capture_output=True, timeout=timeout, cwd="/")


@pytest.mark.slow
def test_install_and_serve_as_written():
    if shutil.which("curl") is None and missing() is None:
        pytest.skip("no curl")
    ns = Netns() if missing() is None else None
    tmp = tempfile.mkdtemp()
    os.chmod(tmp, 0o755)
    inst = Installed(ns, tmp)
    http = lis = None
    try:
        t = inst.wait_for(r"^net9: serving 9P on unix!", 900)
        assert "net9: serving 9P on unix!%s" % inst.sock in t
        assert os.path.exists(inst.sock)
        # the net9 that runs is the one just installed, in the venv
        assert inst.serve_pids(), "no net9 serve process"
        if ns is not None:
            assert ("net9: created TUN net9 (MTU 1500): net9 is 10.9.0.2/24 fd09::2/64, "
                    "Linux is 10.9.0.1/24 fd09::1/64") in t
            www = os.path.join(tmp, "www")
            os.mkdir(www)
            with open(os.path.join(www, "index.html"), "w") as f:
                f.write("hello from linux\n")
            http = ns.popen(sys.executable, "-m", "http.server", "8000", "--bind", "10.9.0.1",
                            "--directory", www)
            for _ in range(100):
                r = run(inst, ns, DIAL)
                if b"connection refused" not in r.stderr:
                    break
                time.sleep(0.1)
            assert r.returncode == 0, r.stderr
            assert r.stdout.startswith(b"HTTP/1.0 200 ") and \
                r.stdout.endswith(b"hello from linux\n")
            argv = ["sh", "-c", LISTEN.rstrip(" &")]
            lis = subprocess.Popen(ns.cmd(*argv), env=inst.env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, start_new_session=True)
            assert b"announced ::!8080" in lis.stderr.readline()
            r = run(inst, ns, CURL.replace("curl ", "curl -s -m 20 "))
            assert re.fullmatch(rb"hello from /net/tcp/\d+\n", r.stdout), r
            # names, through the served cs: localhost is net9's own loopback
            r = run(inst, ns, CS)
            assert r.returncode == 0 and \
                r.stdout.startswith(b"/net/tcp/clone 127.0.0.1!8080\n"), r
            r = run(inst, ns, DIALNAME)
            assert re.fullmatch(rb"HTTP/1.0 200 OK\r\n\r\nhello from /net/tcp/\d+\n",
                                r.stdout), r
            os.killpg(lis.pid, signal.SIGTERM)      # sh and net9 listen: as kill %2
            lis.wait(20)
            err = lis.stderr.read()
            assert b"incoming call for tcp!*!8080 from 10.9.0.1!" in err
            assert b"Traceback" not in err
        r = run(inst, ns, "net9 stats tcp")
        assert r.returncode == 0 and r.stdout.startswith(b"MaxConn: 4096\n"), r
        r = run(inst, ns, "net9 netstat")
        assert r.returncode == 0 and r.stderr == b"", r
        if ns is not None:
            # the fetch's conversation keeps its addresses until reused
            assert re.search(rb"^tcp  \d+ +\S+ +\S+ +\S+ +\S+ +10\.9\.0\.1$", r.stdout, re.M), \
                r.stdout
        for pid in inst.serve_pids():
            os.kill(pid, signal.SIGTERM)
        rc = inst.p.wait(60)
        t = inst.text()
        assert rc == 0, t[-2000:]
        assert "net9: stopping (signal 15): resetting connections" in t
        assert "net9: removed %s" % inst.sock in t
        if ns is not None:
            assert "net9: removed TUN net9" in t
            assert ns.run("ip", "link", "show", "net9").returncode != 0
        assert "Traceback" not in t
        assert not os.path.exists(inst.sock)
    finally:
        for x in (http, lis):
            if x is not None and x.poll() is None:
                x.kill()
                x.wait()
        inst.kill()
        if ns is not None:
            ns.close()
        shutil.rmtree(tmp, ignore_errors=True)
