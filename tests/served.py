"""A net9 stack served over 9P inside the test process: the loopback
medium (127.0.0.1, ::1) and a black hole (10.77.0.2/24 on one end of a
media.Link nobody reads, so a SYN to 10.77.0.1 is never answered), the
server on a unix socket, the loop in a thread.  No root needed.
Served(ns=NameService-or-True) also serves /net/cs and /net/dns (True: on
the host's resolver; resolver=: a stand-in for it)."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading


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
