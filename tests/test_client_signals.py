"""net9.client under signals: the thread that waits for a reply reads the
9P socket itself (no reader thread), and that thread is often the main
thread, where a signal handler's exception (KeyboardInterrupt, SystemExit
from SIGTERM) surfaces between any two statements.  A signal must never
lose bytes of the stream, leave the socket unread (a stale leader flag),
or leave other threads waiting: after any number of interrupts the same
client keeps answering every request with its own reply.

An interval timer fires every few hundred microseconds in the main thread
while it and a second thread run requests on one client; the handler raises
(as a SIGINT handler does) and the main thread goes on."""

import random
import signal
import threading
import time

import pytest

pytest.importorskip("net9.stack", reason="net9.stack not built")

from net9.client import OREAD, Client, NinepError  # noqa: E402



class Tick(Exception):
    pass


def listing(cl, path):
    fid = cl.walkopen(path, OREAD)
    try:
        return sorted(d[7] for d in cl.dirread(fid))
    finally:
        cl.clunk(fid)


def test_interrupts_in_the_main_thread_lose_nothing(served):
    assert threading.current_thread() is threading.main_thread()
    cl = Client(served.addr, uname="glenda", timeout=10)
    want_net = listing(cl, "")
    want_tcp = listing(cl, "tcp")
    assert "tcp" in want_net and "clone" in want_tcp
    stop = threading.Event()
    other = {"n": 0, "err": None}

    def second():
        # the second thread: sometimes the leader while the main thread
        # follows, sometimes the follower of an interrupted leader
        try:
            while not stop.is_set():
                assert listing(cl, "tcp") == want_tcp
                other["n"] += 1
        except BaseException as e:
            other["err"] = e
    t = threading.Thread(target=second, daemon=True)

    armed = [False]

    def handler(signum, frame):
        # raise only inside the client's calls, not in the test's own lines
        # at random moments: some calls finish, some are cut anywhere
        signal.setitimer(signal.ITIMER_REAL, random.uniform(0.0001, 0.002))
        if armed[0]:
            armed[0] = False
            raise Tick()
    old = signal.signal(signal.SIGALRM, handler)
    interrupted = done = 0
    try:
        t.start()
        signal.setitimer(signal.ITIMER_REAL, 0.001)
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline and interrupted < 400:
            try:
                armed[0] = True
                got = listing(cl, "")
                armed[0] = False
                assert got == want_net, got
                done += 1
            except Tick:
                interrupted += 1
            except NinepError as e:
                armed[0] = False
                # a clunk or open that raced an interrupted walk is the
                # only error the server may rightly give
                assert "fid" in str(e), e
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)
        stop.set()
    t.join(20)
    assert not t.is_alive(), "the second thread is stuck: a reply was lost"
    assert other["err"] is None, repr(other["err"])
    assert interrupted >= 20 and done >= 20 and other["n"] >= 20, (interrupted, done, other)
    # after all that the connection is in step: every request gets its own
    # reply, promptly (the client's 10 s time-out would raise otherwise)
    for _ in range(50):
        assert listing(cl, "") == want_net
        assert listing(cl, "tcp") == want_tcp
    # no reply left behind; every request taken back but for the rare
    # interrupt that lands between a tag's allocation and the statement
    # that would store it (its number stays reserved: 1 of 65,535)
    assert not cl.replies, cl.replies
    assert not cl.discard and not cl.flushing, (cl.discard, cl.flushing)
    assert len(cl.inflight) <= interrupted // 40 + 1, (len(cl.inflight), interrupted)
    cl.close()
