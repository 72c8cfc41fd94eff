"""net9.stack: the event loop (callbacks, timers, descriptors, threads) and
stacks on in-process media: two stacks joined by a Link on one loop (also
under FaultyMedium and Capture), the loopback medium, and the dial helper's
errors.  No root needed; real time, each test bounded to a few seconds."""

import hashlib
import os
import threading
import time

import pytest

from net9.errors import Net9Error
from net9.media import FaultyMedium, Link, read_pcap
from net9.stack import Loop, Stack, parse_addr


# ---------------------------------------------------------------- the loop

def test_call_soon_runs_in_order_and_cancel():
    lp = Loop()
    out = []
    lp.call_soon(out.append, 1)
    h = lp.call_soon(out.append, 2)
    lp.call_soon(out.append, 3)
    h.cancel()
    lp.run_once(0)
    assert out == [1, 3]
    lp.close()


def test_call_later_fires_in_time_order():
    lp = Loop()
    out = []
    t0 = time.monotonic()
    lp.call_later(0.06, out.append, "b")
    lp.call_later(0.02, out.append, "a")
    lp.call_later(0.04, out.append, "x").cancel()
    assert lp.run(until=lambda: len(out) == 2, timeout=2)
    assert out == ["a", "b"]
    assert time.monotonic() - t0 >= 0.06
    lp.close()


def test_run_timeout_returns_false():
    lp = Loop()
    t0 = time.monotonic()
    assert lp.run(until=lambda: False, timeout=0.1) is False
    assert 0.09 <= time.monotonic() - t0 < 1
    lp.close()


def test_readers_and_writers():
    lp = Loop()
    r, w = os.pipe()
    got = []

    def rd():
        got.append(os.read(r, 100))
    lp.add_reader(r, rd)
    assert lp.run(until=lambda: got, timeout=0.05) is False   # nothing to read yet
    os.write(w, b"hello")
    assert lp.run(until=lambda: got, timeout=2)
    assert got == [b"hello"]
    assert lp.remove_reader(r) and not lp.remove_reader(r)
    os.write(w, b"more")
    lp.run_once(0.01)
    assert got == [b"hello"]
    wrote = []
    lp.add_writer(w, lambda: (wrote.append(1), lp.remove_writer(w)))
    assert lp.run(until=lambda: wrote, timeout=2) and wrote == [1]
    os.close(r)
    os.close(w)
    lp.close()


def test_threadsafe_wakeup_and_stop():
    lp = Loop()
    out = []

    def other():
        time.sleep(0.05)
        lp.call_soon_threadsafe(out.append, "from thread")
        time.sleep(0.05)
        lp.stop()
    th = threading.Thread(target=other)
    t0 = time.monotonic()
    th.start()
    lp.run(timeout=5)                     # no until: sleeps in select until woken
    th.join()
    assert out == ["from thread"]
    assert time.monotonic() - t0 < 2
    lp.close()


def test_parse_addr():
    assert parse_addr("10.9.0.2/24") == ("10.9.0.2", 24)
    assert parse_addr("fd09::2/64") == ("fd09::2", 64)
    assert parse_addr("10.1.2.3") == ("10.1.2.3", 32)
    assert parse_addr("::1") == ("::1", 128)


# ---------------------------------------------------------------- stacks

def two_stacks(mtu=1500, faults=None, pcap=None, seed=1):
    """Stacks a (10.0.0.1, fd00::1) and b (10.0.0.2, fd00::2) joined by a
    Link on one loop."""
    lp = Loop()
    ea, eb = Link(mtu=mtu)
    if faults:
        ea = FaultyMedium(ea, seed=seed, **faults)
    a = Stack(tun=None, medium=ea, addrs=["10.0.0.1/24", "fd00::1/64"], loop=lp,
              strict=True, seed=seed, pcap=pcap)
    b = Stack(tun=None, medium=eb, addrs=["10.0.0.2/24", "fd00::2/64"], loop=lp,
              strict=True, seed=seed + 1)
    return lp, a, b


def close_all(lp, *stacks):
    for s in stacks:
        s.close()
    lp.close()


def transfer(a, b, addr, n, timeout=20):
    """b announces, a dials addr and sends n bytes; returns what b got."""
    ln = b.announce("7000")
    data = os.urandom(n)
    c = a.dial(addr + "!7000", timeout=5)
    s = ln.accept(timeout=5)
    got = bytearray()
    # one thread drives both stacks: write in pieces, read what arrived
    off = 0
    end = time.monotonic() + timeout
    while len(got) < n:
        assert time.monotonic() < end, "transfer stalled at %d/%d" % (len(got), n)
        if off < n and not c.c.wq.flow:
            c.p.write(c.c, data[off:off + 65536])
            off += min(65536, n - off)
        d = s.p.read(s.c, 1 << 20)
        if d:
            got += d
        else:
            a.loop.run_once(0.01)
    c.close()
    assert s.read(timeout=5) == b""      # the FIN arrives
    s.close()
    ln.close()
    return data, bytes(got)


@pytest.mark.parametrize("v6", [False, True])
def test_pair_transfer(v6):
    lp, a, b = two_stacks()
    try:
        data, got = transfer(a, b, "fd00::2" if v6 else "10.0.0.2", 2_000_000)
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
        assert a.inputerrors == b.inputerrors == 0
    finally:
        close_all(lp, a, b)


def test_pair_transfer_under_faults_retransmits():
    lp, a, b = two_stacks(faults=dict(loss=0.03, reorder=0.05, dup=0.01, delay=1,
                                      reorder_delay=4))
    try:
        data, got = transfer(a, b, "10.0.0.2", 1_000_000, timeout=30)
        assert got == data
        assert a.tcp.stat("RetransSegs") > 0
        fc = a.medium.counters()
        assert fc["out"]["lost"] > 0 and fc["in"]["lost"] > 0
        assert fc["out"]["reordered"] > 0 and fc["out"]["duplicated"] >= 0
    finally:
        close_all(lp, a, b)


def test_pair_capture(tmp_path):
    path = tmp_path / "pair.pcap"
    lp, a, b = two_stacks(pcap=path)
    try:
        data, got = transfer(a, b, "10.0.0.2", 100_000)
        assert got == data
    finally:
        close_all(lp, a, b)
    recs = read_pcap(path)
    syn = [r for _, _, r in recs if r[0] >> 4 == 4 and r[9] == 6 and r[33] & 0x3F == 0x02]
    assert len(syn) == 1                                     # a's SYN, captured going out
    payload = sum(len(r) - 20 - (r[32] >> 4) * 4 for _, _, r in recs
                  if r[0] >> 4 == 4 and r[9] == 6 and r[12:16] == bytes([10, 0, 0, 1]))
    assert payload == 100_000


def test_mss_follows_pair_mtu():
    lp, a, b = two_stacks(mtu=9000)
    try:
        ln = b.announce("7001")
        c = a.dial("10.0.0.2!7001")
        s = ln.accept()
        # tcpmtu: MSS = interface MTU - 40 (IP + TCP headers)
        assert a.tcp.tcb(c.c).mss == 9000 - 40
        assert b.tcp.tcb(s.c).mss == 9000 - 40
        c.close()
        s.close()
        ln.close()
    finally:
        close_all(lp, a, b)


@pytest.mark.parametrize("addr", ["127.0.0.1", "::1"])
def test_loopback_talks_to_itself(addr):
    st = Stack(tun=None, loopback=True, strict=True)
    try:
        assert st.loifc is not None
        ln = st.announce("7002")
        c = st.dial(addr + "!7002")
        s = ln.accept()
        msg = os.urandom(100_000)
        c.write(msg)
        got = b""
        while len(got) < len(msg):
            got += s.read(timeout=5)
        assert got == msg
        s.write(b"pong")
        assert c.read(timeout=5) == b"pong"
        c.close()
        assert s.read(timeout=5) == b""
        s.close()
        ln.close()
    finally:
        st.close()


def test_dial_errors():
    st = Stack(tun=None, loopback=True, strict=True)
    try:
        t0 = time.monotonic()
        with pytest.raises(Net9Error, match="connection refused"):
            st.dial("127.0.0.1!7003", timeout=5)        # nobody announced: RST
        assert time.monotonic() - t0 < 1
        with pytest.raises(Net9Error, match="no route"):
            st.dial("10.200.0.1!80", timeout=5)         # no interface, no route
        assert all(c is None or c.inuse == 0 for c in st.tcp.conv)
    finally:
        st.close()


def test_stack_timers_run_from_the_monotonic_clock():
    # a connection to a host that never answers: the SYN is retransmitted by
    # the engine's timers, which only run if the loop advances fs
    a_end, b_end = Link()
    st = Stack(tun=None, medium=a_end, addrs=["10.0.0.1/24"], loopback=False, strict=True)
    try:
        c = st.tcp.clone("none")
        st.tcp.ctl(c, "connect 10.0.0.2!80")
        st.run(until=lambda: len(b_end.q) >= 2, timeout=5)
        syns = b_end.receive()
        assert len(syns) >= 2                           # the first SYN and a retransmission
        assert st.tcp.stat("RetransSegs") >= 1
        assert 0 < st.fs.now < 6000
        st.tcp.closeconv(c)
    finally:
        st.close()


def test_watch_and_wakehooks():
    lp, a, b = two_stacks()
    try:
        ln = b.announce("7004")
        seen = []
        b.watch(ln.c, lambda conv: seen.append(conv))
        hooked = []
        b.wakehooks.append(lambda woken: hooked.extend(woken))
        c = a.dial("10.0.0.2!7004")
        assert lp.run(until=lambda: seen, timeout=5)
        assert seen[0] is ln.c and ln.c in hooked
        c.close()
        ln.close()
    finally:
        close_all(lp, a, b)


class DeadMedium:
    """A medium whose descriptor is always readable and whose receive()
    fails, as a TUN deleted under the stack does (EBADFD)."""
    name, hsize, mintu, maxtu = "dead", 0, 0, 1500

    def __init__(self):
        self.r, self.w = os.pipe()
        os.write(self.w, b"x")
        self.calls = 0

    def fileno(self):
        return self.r

    def receive(self):
        self.calls += 1
        raise OSError(77, "tun read")

    def transmit(self, pkt):
        pass

    def pending(self):
        return False

    def deadline(self):
        return None

    def close(self):
        os.close(self.r)
        os.close(self.w)


@pytest.mark.parametrize("strict", [False, True])
def test_failing_medium_is_detached(strict):
    m = DeadMedium()
    st = Stack(tun=None, medium=m, addrs=["10.0.0.1/24"], loopback=False, strict=strict)
    try:
        if strict:
            with pytest.raises(OSError):
                st.run(timeout=0.2)
        else:
            assert st.run(until=lambda: False, timeout=0.2) is False
        assert m.calls == 1 and st.mediumerrors == 1    # read once, then no longer polled
        st.run(timeout=0.05)
        assert m.calls == 1
    finally:
        st.close()
