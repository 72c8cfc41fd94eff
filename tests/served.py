"""net9 served for tests, two ways.

Served: a net9 stack served over 9P inside the test process: the loopback
medium (127.0.0.1, ::1) and a black hole (10.77.0.2/24 on one end of a
media.Link nobody reads, so a SYN to 10.77.0.1 is never answered), the
server on a unix socket, the loop in a thread.  No root needed.
Served(ns=NameService-or-True) also serves /net/cs and /net/dns (True: on
the host's resolver; resolver=: a stand-in for it).

Serve: `net9 serve ARGS` as a user runs it, in its own process (CMD), with
its stderr lines; net9env(): the environment for it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CMD = os.path.join(os.path.dirname(HERE), "cmd", "net9")


class Served:
    def __init__(self, eve="glenda", ns=None, resolver=None, **nsopts):
        from net9.media import Link
        from net9.server import Server
        from net9.stack import Stack
        self.pair = Link()
        self.st = Stack(tun=None, medium=self.pair.a, addrs=["10.77.0.2/24"], loopback=True)
        self.dir = tempfile.mkdtemp(prefix="net9served.")
        os.chmod(self.dir, 0o755)
        self.sock = os.path.join(self.dir, "net9")
        if ns is True or resolver is not None:
            from net9.ndb import NameService
            ns = NameService(self.st.loop, resolver=resolver, **nsopts)
        self.ns = ns
        self.srv = Server(self.st.fs, self.st.loop, eve=eve, ns=ns)
        self.srv.listen("unix!" + self.sock)
        self.addr = "unix!" + self.sock
        self.eve = eve
        self.st.wakehooks.append(self.srv.woken)
        self._stop = []
        self.thread = threading.Thread(
            target=lambda: self.st.loop.run(until=lambda: bool(self._stop), timeout=600),
            daemon=True)
        self.thread.start()

    def call(self, fn, *args):
        """Run fn(*args) in the loop's thread; its result."""
        done = threading.Event()
        out = []

        def run():
            try:
                out.append((True, fn(*args)))
            except BaseException as e:      # handed back to the caller
                out.append((False, e))
            done.set()
        self.st.loop.call_soon_threadsafe(run)
        if not done.wait(10):
            raise TimeoutError("the loop did not run the call")
        ok, v = out[0]
        if not ok:
            raise v
        return v

    def close(self):
        self._stop.append(1)
        self.st.loop.call_soon_threadsafe(lambda: None)
        self.thread.join(10)
        self.srv.close()
        self.st.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def linux_www(d: str) -> str:
    """d/www with the index.html the tests fetch from Linux's HTTP server
    ("hello from linux\n"): its path."""
    www = os.path.join(d, "www")
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write("hello from linux\n")
    return www


def net9env(**kw):
    """The environment for a net9 command: the net9 these tests imported
    (installed package or in-place build) first on PYTHONPATH, no NET9_SRV
    from the caller's environment, then kw."""
    import net9
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(net9.__file__))
    env.pop("NET9_SRV", None)
    env.update(kw)
    return env


class StderrLines:
    """A process (self.p, made with stderr=PIPE) whose stderr lines a
    thread collects in .lines (None last, at EOF); expect() waits for one."""

    name = "the process"

    def _collect(self):
        self.lines = []
        self.cv = threading.Condition()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        for ln in self.p.stderr:
            with self.cv:
                self.lines.append(ln.decode(errors="replace").rstrip("\n"))
                self.cv.notify_all()
        with self.cv:
            self.lines.append(None)
            self.cv.notify_all()

    def expect(self, pattern, timeout=20):
        end = time.time() + timeout
        with self.cv:
            while True:
                for ln in self.lines:
                    if ln is not None and re.search(pattern, ln):
                        return ln
                if None in self.lines:
                    raise AssertionError("%s exited; stderr: %s" % (self.name, self.lines))
                left = end - time.time()
                if left <= 0:
                    raise AssertionError("no %r in %s" % (pattern, self.lines))
                self.cv.wait(left)


class Serve(StderrLines):
    """A running `net9 serve ARGS`; .lines: its stderr lines so far."""

    name = "net9 serve"

    def __init__(self, *args, netns=None, stdio=False, wait=r"serving 9P on"):
        argv = [sys.executable, CMD, "serve"] + list(args)
        if netns is not None:
            argv = netns.cmd(*argv)
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE if stdio else subprocess.DEVNULL,
                                  stdout=subprocess.PIPE if stdio else subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, env=net9env())
        self._collect()
        if wait:
            self.expect(wait)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        rc = self.p.wait(timeout)
        with self.cv:
            end = time.time() + 5
            while None not in self.lines and time.time() < end:
                self.cv.wait(0.1)
        return rc
