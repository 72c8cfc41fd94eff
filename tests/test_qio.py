"""net9.qio: devip queues (port/qio.c semantics, devip.md section 4.4)."""

import random

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, precondition

from net9 import errors
from net9.errors import Net9Error, Ehungup
from net9 import qio
from net9.qio import Queue, Trimmer


class Waker:
    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1


def mkq(limit=65535, msg=False):
    q = Queue(limit)
    q.msg = msg
    w = Waker()
    q.wakecb = w
    return q, w


# -- basics ---------------------------------------------------------------

def test_defaults():
    q = Queue()
    assert q.limit == 65535
    assert len(q) == 0
    assert not q.flow and not q.msg and not q.closed and not q.kicked
    assert q.eof == 0
    assert q.wakecb is None
    assert not q.ishungup() and q.getreason() is None
    assert q.read(10) is None                   # empty and open: would block
    assert Queue(7).limit == 7


def test_write_read_partial():
    q = Queue()
    assert q.write(b"hello, world") == 12
    assert len(q) == 12
    assert q.read(5) == b"hello"
    assert q.read(100) == b", world"
    assert q.read(100) is None
    assert len(q) == 0


def test_write_bytes_like():
    q = Queue()
    q.write(bytearray(b"ab"))
    q.write(memoryview(b"xcdx")[1:3])
    q.write(b"")
    assert q.read(10) == b"abcd"
    with pytest.raises(TypeError):
        q.write("text")


def test_zero_count_read():
    q = Queue()
    q.write(b"abc")
    assert q.read(0) == b""
    assert len(q) == 3
    q.hangup()
    q.discard(3)
    assert q.read(0) == b""
    assert q.eof == 0                           # not counted as an EOF read


# -- ring buffer ----------------------------------------------------------

def test_wraparound_against_model():
    rng = random.Random(42)
    q = Queue(1 << 30)
    model = bytearray()
    counter = 0
    for _ in range(5000):
        if rng.random() < 0.5:
            n = rng.choice((1, 3, 17, 100, 255, 256, 257, 1000, 4000))
            d = bytes((counter + i) & 0xff for i in range(n))
            counter += n
            q.write(d)
            model += d
        else:
            n = rng.choice((1, 2, 50, 300, 5000))
            got = q.read(n)
            if not model:
                assert got is None
            else:
                assert got == bytes(model[:n])
                del model[:n]
        assert len(q) == len(model)
        if model:
            off = rng.randrange(len(model))
            n = rng.randrange(1, 600)
            assert q.copy(n, off) == bytes(model[off:off + n])


def test_qcopy_across_wrap():
    q = Queue(1 << 20)
    q.write(bytes(range(200)))                  # first buffer is 256 bytes
    assert q.read(150) == bytes(range(150))
    tail = bytes(range(100, 250))
    q.write(tail)                               # 50 + 150 = 200: wraps the ring
    model = bytes(range(150, 200)) + tail
    for off in range(len(model) + 2):
        for n in (1, 7, 49, 50, 51, 106, 200, 300):
            assert q.copy(n, off) == model[off:off + n], (off, n)
    assert q.copy(10, -1) == b""
    assert q.copy(0, 0) == b""
    assert len(q) == len(model)                 # copy leaves the data queued
    # growing while wrapped keeps the order
    q.write(b"Z" * 1000)
    model += b"Z" * 1000
    assert q.copy(5000, 0) == model
    assert q.read(5000) == model


def test_discard():
    q = Queue()
    assert q.discard(10) == 0
    q.write(b"0123456789")
    assert q.discard(3) == 3
    assert q.discard(0) == 0
    assert q.discard(-5) == 0
    assert q.read(2) == b"34"
    assert q.discard(100) == 5
    assert len(q) == 0


def test_large_transfer():
    rng = random.Random(7)
    data = bytes(rng.getrandbits(8) for _ in range(1 << 20))
    q = Queue(1 << 30)
    out = []
    i = 0
    while i < len(data) or len(q):
        if i < len(data):
            n = rng.randrange(1, 70000)
            q.write(data[i:i + n])
            i += n
        got = q.read(rng.randrange(1, 90000))
        if got:
            out.append(got)
    assert b"".join(out) == data


# -- buffer memory: trim and close ----------------------------------------

def test_buffer_grows_on_demand_and_close_frees_it():
    q = Queue(1 << 20)
    assert q.cap == 0                           # nothing allocated until data comes
    q.write(b"x" * 1000)
    assert q.cap >= 1000
    with pytest.raises(AttributeError):
        q.cap = 0                               # read-only
    q.close()
    assert q.cap == 0 and len(q) == 0


def test_flush_and_reopen_free_the_buffer():
    q = Queue(1 << 20)
    q.write(b"x" * 5000)
    q.flush()
    assert q.cap == 0
    q.write(b"y" * 5000)
    q.hangup()
    q.reopen()
    assert q.cap == 0
    q.write(b"z")
    assert q.read(5) == b"z"


def test_drained_queue_releases_its_buffer():
    q = Queue(1 << 20)
    q.write(b"x" * 300000)
    assert q.read(1 << 20) == b"x" * 300000
    cap = q.cap
    assert cap >= 300000 and q.used             # kept while data moves
    assert q.trim() == 1 and q.cap == cap       # moved since the last trim: left alone
    assert not q.used
    assert q.trim() == 0 and q.cap == 0         # idle and empty: freed
    assert q.trim() == 0 and q.cap == 0
    q.write(b"abc")                             # and usable again
    assert q.read(10) == b"abc"


@pytest.mark.parametrize("wrapped", [False, True])
def test_idle_queue_shrinks_to_its_data(wrapped):
    q = Queue(1 << 30)
    if wrapped:
        q.write(b"-" * 200000)                  # the first buffer fits: cap 200000
        q.discard(199900)                       # 100 bytes left at the end of the ring
        data = bytes(range(256)) * 20           # 5120 more go to its start
    else:
        data = bytes(range(256)) * 1024
        q.write(b"-" * 1000000)
        q.discard(1000000)
    q.write(data)
    want = q.copy(1 << 30)
    big = q.cap
    assert q.trim() == 1 and q.cap == big
    assert q.trim() == 0
    assert len(q) <= q.cap < big and q.cap == max(len(q), 256)
    assert q.copy(1 << 30) == want              # straightened, intact
    assert q.read(1 << 30) == want


def test_idle_queue_less_than_half_empty_keeps_its_buffer():
    q = Queue(1 << 20)
    q.write(b"a" * 40000)                       # cap 65536 by doubling
    cap = q.cap
    q.trim()
    q.trim()
    assert q.cap == cap                         # 40000 > cap/2: not worth it


def test_steady_stream_keeps_one_buffer():
    q = Queue(65535)
    caps = set()
    for i in range(200):
        q.write(b"y" * 5000)
        assert q.read(5000) == b"y" * 5000      # drained every time
        if i % 10 == 0:
            assert q.trim() == 1                # data moved: never touched
        caps.add(q.cap)
    assert len(caps) == 1


def test_msg_queue_trim_keeps_empty_messages():
    q = Queue(1 << 20)
    q.msg = True
    q.write(b"datagram")
    assert q.read(100) == b"datagram"
    q.write(b"")                                # an empty datagram: no bytes
    q.trim()
    q.trim()
    assert q.cap == 0
    assert q.read(100) == b""                   # still one message
    assert q.read(100) is None


def test_trimmer_counts_busy_queues_and_released_bytes():
    t = Trimmer()
    a, b = Queue(1 << 20), Queue(1 << 20)
    a.write(b"early")                           # busy before it is counted
    a.settrimmer(t)
    b.settrimmer(t)
    assert a.trimmer is t and t.busy == 1
    a.write(b"x")
    b.write(b"y" * 1000)
    assert t.busy == 2
    assert a.trim() == 1 and t.busy == 1        # a looked at: not busy any more
    a.read(100)
    assert t.busy == 2                          # moved again
    capb = b.cap
    b.close()
    assert t.busy == 1 and t.released == capb   # close forgets it and frees
    a.trim()
    capa = a.cap
    assert a.trim() == 0 and a.cap == 0 and t.busy == 0
    assert t.released == capb + capa
    a.write(b"z")
    assert t.busy == 1
    a.settrimmer(None)
    assert t.busy == 0 and a.trimmer is None
    del a
    assert t.busy == 0


def test_held_counts_every_queue_buffer():
    before = qio.held()
    q = Queue(1 << 20)
    q.write(b"x" * 3000)
    nbytes, nbufs = qio.held()
    assert nbufs == before[1] + 1 and nbytes == before[0] + q.cap
    q.trim()
    q.read(1 << 20)
    q.trim()
    q.trim()
    assert qio.held() == before
    q.write(b"x")
    del q                                       # freed with the queue
    assert qio.held() == before


# -- flow control ---------------------------------------------------------

def test_flow_and_kicked():
    q, w = mkq(100)
    q.write(b"x" * 99)
    assert not q.flow
    q.write(b"x")                               # len >= limit
    assert q.flow
    q.write(b"y" * 500)                         # write never refuses data
    assert len(q) == 600
    assert q.read(549) is not None              # 51 left: not below limit/2
    assert q.flow and not q.kicked
    assert q.read(1) == b"y"                    # 50 left: 50 < 50 is false
    assert q.flow and not q.kicked
    assert q.read(1) == b"y"                    # 49 < 50: flow clears
    assert not q.flow and q.kicked
    assert q.read(1) == b"y"
    assert not q.kicked                         # only the read that cleared it
    assert w.calls == 0                         # nobody was waiting


def test_passnolim_sets_flow():
    q = Queue(10)
    assert q.passnolim(b"0123456789") == 10
    assert q.flow
    assert q.discard(6) == 6                    # 4 < 5
    assert not q.flow


def test_setlimit():
    q = Queue(10)
    q.setlimit(1000)
    assert q.limit == 1000
    q.write(b"a" * 999)
    assert not q.flow
    q.write(b"a")
    assert q.flow


def test_read_clearing_flow_wakes_writer():
    q, w = mkq(10)
    q.write(b"0123456789")
    assert q.flow
    q.wwait = True                              # writer parked
    q.read(3)                                   # 7 left: still flow
    assert w.calls == 0 and q.wwait
    q.read(3)                                   # 4 left
    assert w.calls == 1 and not q.wwait and q.kicked and not q.flow


def test_discard_clearing_flow_wakes_writer():
    q, w = mkq(10)
    q.write(b"0123456789")
    q.wwait = True
    q.discard(5)                                # 5 left, not < 5
    assert w.calls == 0 and q.flow
    q.discard(1)
    assert w.calls == 1 and not q.wwait and not q.flow


def test_flush_clears_flow_and_wakes_writer():
    q, w = mkq(10)
    q.write(b"0123456789")
    q.wwait = True
    q.flush()
    assert len(q) == 0 and not q.flow
    assert w.calls == 1 and not q.wwait
    assert q.read(5) is None                    # flush does not hang up


# -- wake-ups -------------------------------------------------------------

def test_data_wakes_parked_reader_only():
    q, w = mkq()
    q.write(b"a")
    assert w.calls == 0                         # no reader parked
    q.rwait = True
    q.write(b"b")
    assert w.calls == 1 and not q.rwait
    q.write(b"c")
    assert w.calls == 1                         # flag was answered
    q.wwait = True
    q.write(b"d")                               # data does not concern writers
    assert w.calls == 1 and q.wwait
    q.rwait = True
    q.passnolim(b"e")
    assert w.calls == 2 and not q.rwait
    q.rwait = True
    q.write(b"")                                # nothing queued, nothing to wake
    assert w.calls == 2 and q.rwait


def test_read_does_not_wake_reader():
    q, w = mkq()
    q.write(b"abc")
    q.rwait = True
    q.read(1)
    q.discard(1)
    assert w.calls == 0


def test_hangup_and_close_wake_both_once():
    for op in ("hangup", "close"):
        q, w = mkq()
        getattr(q, op)()
        assert w.calls == 0                     # nobody parked
        q, w = mkq()
        q.rwait = True
        q.wwait = True
        getattr(q, op)()
        assert w.calls == 1
        assert not q.rwait and not q.wwait
        q, w = mkq()
        q.wwait = True
        getattr(q, op)()
        assert w.calls == 1 and not q.wwait


def test_wakecb_none_is_fine():
    q = Queue(4)
    q.rwait = True
    q.write(b"abcd")
    assert not q.rwait
    q.wwait = True
    q.read(4)
    assert not q.wwait


def test_wakecb_exception_propagates():
    q = Queue()

    def boom():
        raise RuntimeError("boom")

    q.wakecb = boom
    q.rwait = True
    with pytest.raises(RuntimeError):
        q.write(b"x")
    assert len(q) == 1                          # the data was queued first


# -- hang-up, close, EOF (devip.md 4.4) -----------------------------------

def test_hangup_keeps_data_then_three_eofs_then_error():
    q = Queue()
    q.write(b"last words")
    q.hangup()
    assert q.ishungup() and q.getreason() == Ehungup
    assert not q.closed
    assert q.read(5) == b"last "
    assert q.read(100) == b"words"
    assert [q.read(10) for _ in range(3)] == [b"", b"", b""]
    assert q.eof == 3
    for _ in range(3):
        with pytest.raises(Net9Error) as e:
            q.read(10)
        assert str(e.value) == "i/o on hungup channel"


def test_hangup_empty_reason_means_ehungup():
    for r in (None, ""):
        q = Queue()
        q.hangup(r)
        assert q.getreason() == "i/o on hungup channel"
        assert q.read(1) == b""


def test_hangup_with_other_reason_errors_at_once():
    q = Queue()
    q.write(b"data")
    q.hangup("connection refused")
    assert q.getreason() == "connection refused"
    assert q.read(10) == b"data"                # queued data is still readable
    for _ in range(5):
        with pytest.raises(Net9Error) as e:
            q.read(10)
        assert e.value.args == ("connection refused",)


def test_write_after_hangup_fails_with_reason():
    q = Queue()
    q.hangup("Hangup")
    with pytest.raises(Net9Error) as e:
        q.write(b"x")
    assert str(e.value) == errors.Ehangup
    assert len(q) == 0
    assert q.passnolim(b"dropped") == 0         # qpass drops on a hung-up queue
    assert len(q) == 0


def test_close_discards_data():
    q, w = mkq(4)
    q.write(b"unread data")
    assert q.flow
    q.close()
    assert q.closed and len(q) == 0 and not q.flow
    assert q.getreason() == Ehungup
    assert [q.read(10) for _ in range(3)] == [b"", b"", b""]
    with pytest.raises(Net9Error, match="^i/o on hungup channel$"):
        q.read(10)
    with pytest.raises(Net9Error, match="^i/o on hungup channel$"):
        q.write(b"x")


def test_close_after_hangup_with_reason():
    q = Queue()
    q.hangup("connection timed out")
    q.close()
    assert q.getreason() == Ehungup
    assert q.read(1) == b""


def test_flush_keeps_hangup():
    q = Queue()
    q.write(b"abc")
    q.hangup()
    q.flush()
    assert q.ishungup()
    assert q.read(10) == b""


def test_eof_counter_and_reopen():
    q = Queue(10)
    q.write(b"0123456789")
    q.hangup()
    q.flush()
    assert q.read(1) == b"" and q.read(1) == b""
    assert q.eof == 2
    q.reopen()
    assert q.eof == 0 and not q.ishungup() and q.getreason() is None
    assert not q.closed and not q.flow and len(q) == 0
    assert q.read(1) is None
    q.write(b"again")
    assert q.read(10) == b"again"
    q.close()
    q.reopen()
    assert not q.closed
    q.hangup()
    assert [q.read(1) for _ in range(3)] == [b""] * 3
    with pytest.raises(Net9Error):
        q.read(1)


def test_reopen_clears_kicked():
    q = Queue(4)
    q.write(b"abcd")
    q.read(4)
    assert q.kicked
    q.reopen()
    assert not q.kicked


# -- msg queues -----------------------------------------------------------

def test_msg_one_message_per_read():
    q, w = mkq(msg=True)
    q.write(b"abc")
    q.write(b"defgh")
    q.write(b"ij")
    assert len(q) == 10
    assert q.read(100) == b"abc"
    assert q.read(2) == b"de"                   # truncated, rest discarded
    assert len(q) == 2
    assert q.read(100) == b"ij"
    assert q.read(100) is None


def test_msg_empty_message():
    q = Queue()
    q.msg = True
    q.rwait = True
    w = Waker()
    q.wakecb = w
    q.write(b"")
    assert w.calls == 1                         # an empty datagram is an arrival
    q.write(b"x")
    assert q.read(10) == b""
    assert q.read(10) == b"x"
    assert q.read(10) is None


def test_msg_hangup_and_flow():
    q, w = mkq(10, msg=True)
    q.write(b"12345")
    q.write(b"67890")
    assert q.flow
    q.wwait = True
    q.read(1)                                   # whole message leaves: 5 left
    assert q.flow and w.calls == 0
    q.hangup()
    assert w.calls == 1
    assert q.read(100) == b"67890"
    assert q.read(100) == b""


def test_msg_discard_and_flush():
    q = Queue()
    q.msg = True
    for m in (b"aa", b"bbb", b"cccc"):
        q.write(m)
    assert q.discard(5) == 5                    # two whole messages
    assert q.read(10) == b"cccc"
    for m in (b"aa", b"bbb"):
        q.write(m)
    assert q.discard(3) == 3                    # "aa" and 1 byte of "bbb"
    assert q.read(10) == b"bb"
    q.write(b"x")
    q.flush()
    assert q.read(10) is None
    q.write(b"y")
    assert q.read(10) == b"y"


# -- stateful model -------------------------------------------------------

class QueueMachine(RuleBasedStateMachine):
    """Byte queue against a bytearray model: contents, flow, kicked and
    wake-ups, across ring wrap-around and growth."""

    def __init__(self):
        super().__init__()
        self.limit = 300
        self.q = Queue(self.limit)
        self.w = Waker()
        self.q.wakecb = self.w
        self.model = bytearray()
        self.flow = False
        self.calls = 0
        self.rwait = False
        self.wwait = False
        self.n = 0

    def _data(self, n):
        d = bytes((self.n + i) * 7 & 0xff for i in range(n))
        self.n += n
        return d

    def _removed(self, read):
        if self.flow and len(self.model) < self.limit // 2:
            self.flow = False
            if self.wwait:
                self.wwait = False
                self.calls += 1
            return read
        return False

    @rule(n=st.integers(0, 700), nolim=st.booleans())
    def write(self, n, nolim):
        d = self._data(n)
        if nolim:
            assert self.q.passnolim(d) == n
        else:
            assert self.q.write(d) == n
        self.model += d
        if n:
            if len(self.model) >= self.limit:
                self.flow = True
            if self.rwait:
                self.rwait = False
                self.calls += 1

    @rule(n=st.integers(1, 800))
    def read(self, n):
        got = self.q.read(n)
        if not self.model:
            assert got is None
            assert not self.q.kicked
            return
        assert got == bytes(self.model[:n])
        del self.model[:n]
        assert self.q.kicked == bool(self._removed(True))

    @rule(n=st.integers(0, 800))
    def discard(self, n):
        want = min(max(n, 0), len(self.model))
        assert self.q.discard(n) == want
        del self.model[:want]
        self._removed(False)

    @rule(n=st.integers(0, 800), off=st.integers(0, 900))
    def copy(self, n, off):
        assert self.q.copy(n, off) == bytes(self.model[off:off + n])

    @rule()
    def park_reader(self):
        self.q.rwait = self.rwait = True

    @precondition(lambda self: self.flow)
    @rule()
    def park_writer(self):
        self.q.wwait = self.wwait = True

    @rule()
    def trim(self):
        busy = self.q.trim()
        assert self.q.cap >= len(self.model)
        if not busy and not self.model:
            assert self.q.cap == 0

    @invariant()
    def agrees(self):
        assert len(self.q) == len(self.model)
        assert self.q.flow == self.flow
        assert self.w.calls == self.calls
        assert self.q.rwait == self.rwait
        assert self.q.wwait == self.wwait


QueueMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=60,
                                          deadline=None)
TestQueueMachine = QueueMachine.TestCase
