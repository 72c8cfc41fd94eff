"""`net9 serve` against the Linux kernel's TCP, call after call: Linux in
a private network namespace calls a net9 announcement that a net9.dial
client serves over 9P (listen, accept, close: net9 closes first, so each
call ends in Time_wait there for MSL2 = 10 s), more times than devip has
conversations (4096), one right after the other.  Every call must be
taken and end with net9's FIN.  Before Time_wait conversations were
reused, the calls past the 4096th within 10 s were reset ("connection
reset by peer"), and a port Linux used again within those 10 s got the
old connection's ACK and its SYN went again a second later."""

import os
import shutil
import signal
import socket
import tempfile
import threading
import time


import linuxns

pytestmark = linuxns.skip_unless_linux()

from net9.dial import Net  # noqa: E402
from served import Serve  # noqa: E402

NCONV = 4096                    # devip's Nchans
PORT = 5301


def test_more_calls_than_conversations():
    ns = linuxns.Netns()
    d = tempfile.mkdtemp()
    sock = os.path.join(d, "net9")
    s = Serve("--netns", ns.name, "--srv", "unix!" + sock, wait=None)
    stop = threading.Event()
    try:
        s.expect(r"serving 9P on unix!", timeout=30)
        net = Net(srv="unix!" + sock)
        ann = net.announce("tcp!*!%d" % PORT)
        taken = []
        errors = []

        def server():
            while not stop.is_set():
                try:
                    call = ann.listen(timeout=0.5)
                except TimeoutError:
                    continue
                except OSError as e:
                    errors.append(e)
                    return
                conn = call.accept()
                conn.close()
                taken.append(call.number)
        t = threading.Thread(target=server, daemon=True)
        t.start()
        n = NCONV + 600
        failed = {}
        t0 = time.monotonic()
        for _i in range(n):
            c = ns.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.settimeout(30)
            try:
                c.connect(("10.9.0.2", PORT))
                while c.recv(64):               # to net9's FIN
                    pass
            except OSError as e:
                failed[str(e)] = failed.get(str(e), 0) + 1
            finally:
                c.close()
        took = time.monotonic() - t0
        stop.set()
        t.join(10)
        assert not errors
        assert failed == {}, "%d of %d calls failed in %.1f s: %s" % (
            sum(failed.values()), n, took, failed)
        assert len(taken) == n
        # the conversations past the table's size were slots reused
        assert max(taken) < NCONV
        convs = [name for name, _, isdir in net.ls("tcp") if isdir]
        assert len(convs) <= NCONV
        ann.close()
        net.close()
        assert s.stop(timeout=30) == 0
    finally:
        stop.set()
        s.stop(signal.SIGKILL, timeout=30)
        ns.close()
        shutil.rmtree(d, ignore_errors=True)
