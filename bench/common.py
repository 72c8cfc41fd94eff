"""What the bench scripts share: a run's bookkeeping (Run: its scratch
directory, its time, what failed, its --json record), the facts every run
records (run_meta), the checks before a run (needs), a command (sh), a
socket's exact read (recvexact) and a net9 server's listen loop
(serve_calls).  bench/path.py, bench/loss.py and
bench/soak.py import it from their own directory."""

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time


class Failure(Exception):
    """The run cannot go on (a process died, a transfer hung...)."""


def needs(prog, tools, why="network namespaces, TUN devices"):
    """Exit unless root with every one of tools on PATH (what a run needs)."""
    if os.geteuid() != 0:
        sys.exit("%s: needs root (%s)" % (prog, why))
    for tool in tools:
        if shutil.which(tool) is None:
            sys.exit("%s: no %s on PATH" % (prog, tool))


def run_meta(a, **more):
    """What every run records of when, where and how it ran (and more)."""
    return dict({"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "host": platform.node(),
                 "kernel": platform.release(), "cpus": os.cpu_count(),
                 "python": platform.python_version(), "loadavg_start": os.getloadavg(),
                 "args": dict(vars(a))}, **more)


class Run:
    """One run's bookkeeping (bench/path.py's and bench/loss.py's):

        with Run(meta, results, a.json, "n9path-") as run:
            tunwire = run.build_tunwire(wire)
            ...   run.fail("part: why") for a part that failed

    A SIGTERM or SIGHUP unwinds like ^C, through every finally.  A Failure
    or an interrupt ends the block with run.failed saying so; either way
    the scratch directory goes, meta gets seconds_key (the run's time),
    loadavg_end and failed, and the --json file (jsonpath) is written."""

    def __init__(self, meta, results, jsonpath, prefix, seconds_key="seconds"):
        self.meta, self.results, self.jsonpath = meta, results, jsonpath
        self.seconds_key = seconds_key
        self.failed = None

        def bye(signum, frame):
            raise KeyboardInterrupt("signal %d" % signum)
        signal.signal(signal.SIGTERM, bye)
        signal.signal(signal.SIGHUP, bye)
        self.bindir = tempfile.mkdtemp(prefix=prefix + "tunwire-")

    def build_tunwire(self, wire):
        tunwire = os.path.join(self.bindir, "tunwire")
        sh("gcc", "-O2", "-pthread", "-o", tunwire, os.path.join(wire, "tunwire.c"), timeout=120)
        return tunwire

    def fail(self, why):
        self.failed = (self.failed + "; " if self.failed else "") + why

    def __enter__(self):
        self.t_start = time.monotonic()
        return self

    def __exit__(self, etype, e, tb):
        if etype is not None and issubclass(etype, Failure):
            self.failed = str(e)
        elif etype is not None and issubclass(etype, KeyboardInterrupt):
            self.failed = "interrupted%s" % (" (%s)" % e if str(e) else "")
        shutil.rmtree(self.bindir, ignore_errors=True)
        self.meta[self.seconds_key] = time.monotonic() - self.t_start
        self.meta["loadavg_end"] = os.getloadavg()
        self.meta["failed"] = self.failed
        if self.jsonpath:
            with open(self.jsonpath, "w") as f:
                json.dump({"meta": self.meta, "results": self.results}, f, indent=1)
        return etype is not None and issubclass(etype, (Failure, KeyboardInterrupt))

    def exit_if_failed(self, prog):
        if self.failed:
            print("\n%s FAILED: %s" % (prog, self.failed), file=sys.stderr)
            sys.exit(1)


def sh(*argv, timeout=30, check=True):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise Failure("%s: exit %d: %s" % (" ".join(map(str, argv)), r.returncode,
                                          r.stderr.strip()))
    return r


def recvexact(s, n, why="short header", exc=EOFError):
    """Exactly n bytes from s (anything with recv); exc(why) at EOF before."""
    b = bytearray()
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            raise exc(why)
        b += d
    return bytes(b)


def serve_calls(ann, handle, deadline, dead, say):
    """Take the calls of ann (a net9.dial Announcement) until deadline or
    until dead (a list) has something: each accepted Conn goes to
    handle(conn) in a thread of its own (handle None: closed at once).
    When the 9P connection is gone, or after 100 listen errors, the reason
    goes into dead and the loop ends.  say(text) logs."""
    errors = 0
    while time.monotonic() < deadline and not dead:
        try:
            call = ann.listen(timeout=1.0)
        except TimeoutError:
            continue
        except Exception as e:
            cl = ann.net.client
            if cl is not None and cl.dead is not None:
                why = "the 9P connection is gone: %s" % cl.dead
            else:
                errors += 1
                say("listen: %s: %s" % (type(e).__name__, e))
                if errors <= 100:
                    time.sleep(0.01)
                    continue
                why = "too many listen errors"
            say(why)
            dead.append(why)
            return
        try:
            conn = call.accept()
        except Exception as e:
            say("accept: %s: %s" % (type(e).__name__, e))
            call.close()
            continue
        if handle is None:                      # accept-and-close
            try:
                conn.close()
            except Exception as e:
                say("close: %s" % e)
            continue
        threading.Thread(target=handle, args=(conn,), daemon=True).start()
