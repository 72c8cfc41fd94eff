# cython: language_level=3
"""devip's queues (9front port/qio.c), the parts /net needs.

A Queue is a byte queue (or, with msg set, a datagram queue) kept in one
ring buffer (PyMem_RawMalloc, so that tracemalloc sees it) that grows with
realloc as data comes.  Memory goes back when nothing needs it: close(),
flush() and reopen() free the buffer (a closed conversation holds none),
and trim(), which the stack calls about once a second, shrinks the buffer
of a queue that moved no data since the previous trim to the bytes still
queued (none: freed).  Nothing is reallocated on the data path to give
memory back, so a steady stream keeps its buffer.

There are no processes to put to sleep here: a caller that would block
parks its request and sets rwait (reader) or wwait (writer); the queue
calls wakecb() when something happens that a parked party waits for,
clearing the flag it answers:

  * data queued (qpass, write)          -> rwait
  * flow cleared (read, qdiscard, flush) -> wwait
  * hangup, close                        -> rwait and wwait

wakecb is called at most once per event, and only when a flag it answers
was set.  EOF and error rules are those of devip.md section 4.4.
"""

from libc.string cimport memcpy, memmove
from cpython.mem cimport PyMem_RawMalloc, PyMem_RawRealloc, PyMem_RawFree
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE

from collections import deque

from net9.errors import Net9Error, Ehungup

cdef enum:
    MINCAP = 256


# bytes of ring buffer held by every Queue in the process, and how many
# buffers (tests, benchmarks)
cdef Py_ssize_t _held = 0
cdef Py_ssize_t _nbufs = 0


def held():
    """(bytes, buffers): ring buffer memory held by all queues."""
    return _held, _nbufs


cdef class Trimmer:
    """What the queues of one stack share for trimming: busy counts the
    queues that moved data since their last trim() (they need another
    look), released the bytes of buffer freed or shrunk so far."""

    def __cinit__(self):
        self.busy = 0
        self.released = 0


cdef int _setcap(Queue self, Py_ssize_t newcap) except -1:
    """Resize the ring to newcap >= len bytes (0: free it), straightening
    it when it wraps or would not fit."""
    global _held, _nbufs
    cdef unsigned char *nb
    cdef Py_ssize_t first
    if newcap == self.cap:
        return 0
    if newcap < self.cap and self.trimmer is not None:
        self.trimmer.released += self.cap - newcap
    if newcap == 0:
        PyMem_RawFree(self.buf)
        _nbufs -= 1
        _held -= self.cap
        self.buf = NULL
        self.cap = 0
        self.head = 0
        return 0
    if self.head + self.len <= self.cap:
        # contiguous (or empty): realloc keeps the bytes where they are;
        # move them to the front first when the new size would cut them
        if self.len == 0:
            self.head = 0
        elif self.head + self.len > newcap:
            memmove(self.buf, self.buf + self.head, <size_t>self.len)
            self.head = 0
        nb = <unsigned char *>PyMem_RawRealloc(self.buf, <size_t>newcap)
        if nb == NULL:
            raise MemoryError()
        if self.buf == NULL:
            _nbufs += 1
        self.buf = nb
    else:
        # wrapped: copy into a new buffer, straightened out
        nb = <unsigned char *>PyMem_RawMalloc(<size_t>newcap)
        if nb == NULL:
            raise MemoryError()
        first = self.cap - self.head
        memcpy(nb, self.buf + self.head, <size_t>first)
        memcpy(nb + first, self.buf, <size_t>(self.len - first))
        PyMem_RawFree(self.buf)
        self.buf = nb
        self.head = 0
    _held += newcap - self.cap
    self.cap = newcap
    return 0


cdef inline void _touch(Queue self) noexcept:
    """Data moved: the next trim() leaves the buffer alone."""
    if not self.used:
        self.used = True
        if self.trimmer is not None:
            self.trimmer.busy += 1


cdef inline void _untouch(Queue self) noexcept:
    if self.used:
        self.used = False
        if self.trimmer is not None:
            self.trimmer.busy -= 1


cdef inline void _drop(Queue self, Py_ssize_t n) noexcept:
    """Remove n <= len bytes from the head (no flow handling)."""
    self.len -= n
    if self.len == 0:
        self.head = 0
    else:
        self.head += n
        if self.head >= self.cap:
            self.head -= self.cap

cdef inline bint _unflow(Queue self) noexcept:
    """After data left the queue: clear flow when below half the limit."""
    if self.flow and self.len < self.limit // 2:
        self.flow = False
        return True
    return False

cdef int _discardall(Queue self) except -1:
    """Drop every byte and free the buffer."""
    self.len = 0
    self.head = 0
    if self.msglens:
        self.msglens.clear()
    _untouch(self)
    return _setcap(self, 0)

cdef int _wakeboth(Queue self) except -1:
    if self.rwait or self.wwait:
        self.rwait = False
        self.wwait = False
        self.wake()
    return 0

cdef object _empty(Queue self):
    if self.reason is None:
        return None
    self.eof += 1
    if self.eof <= 3 and self.reason == Ehungup:
        return b""
    raise Net9Error(self.reason)


cdef class Queue:

    def __cinit__(self, Py_ssize_t limit=65535):
        self.buf = NULL
        self.cap = 0
        self.head = 0
        self.len = 0
        self.limit = limit
        self.flow = False
        self.msg = False
        self.reason = None
        self.closed = False
        self.eof = 0
        self.wakecb = None
        self.rwait = False
        self.wwait = False
        self.kicked = False
        self.msglens = deque()

    def __dealloc__(self):
        global _held, _nbufs
        if self.buf != NULL:
            PyMem_RawFree(self.buf)
            self.buf = NULL
            _held -= self.cap
            _nbufs -= 1
            self.cap = 0
        if self.used and self.trimmer is not None:
            self.trimmer.busy -= 1

    def __len__(self):
        return self.len

    def __repr__(self):
        return "<Queue len %d limit %d%s%s%s>" % (
            self.len, self.limit, " flow" if self.flow else "",
            " msg" if self.msg else "",
            (" hungup(%r)" % self.reason) if self.reason is not None else "")

    # -- storage -----------------------------------------------------------

    cdef int reserve(self, Py_ssize_t n) except -1:
        """Make room for n more bytes."""
        cdef Py_ssize_t need = self.len + n
        cdef Py_ssize_t newcap
        if n < 0 or need < self.len:
            raise OverflowError("queue too large")
        if need <= self.cap:
            return 0
        newcap = self.cap * 2 if self.cap < (<Py_ssize_t>1 << 60) else need
        if newcap < need:
            newcap = need
        if newcap < MINCAP:
            newcap = MINCAP
        return _setcap(self, newcap)

    # -- hot path ----------------------------------------------------------

    cdef int qpass(self, const unsigned char *p, Py_ssize_t n) except -1:
        # qpassnolim: returns the bytes queued (0 when dropped because the
        # queue is hung up)
        cdef Py_ssize_t tail, first
        if self.reason is not None:
            return 0                    # qio: a hung-up queue drops data
        if n <= 0:
            if not self.msg:
                return 0
            n = 0                       # empty datagram
        if n > 0:
            if self.len + n > self.cap:
                self.reserve(n)
            tail = self.head + self.len
            if tail >= self.cap:
                tail -= self.cap
            first = self.cap - tail
            if first >= n:
                memcpy(self.buf + tail, p, <size_t>n)
            else:
                memcpy(self.buf + tail, p, <size_t>first)
                memcpy(self.buf, p + first, <size_t>(n - first))
            self.len += n
            _touch(self)
        if self.msg:
            self.msglens.append(n)
        if self.len >= self.limit:
            self.flow = True
        if self.rwait:
            self.rwait = False
            self.wake()
        return <int>n if n <= 0x7fffffff else 0x7fffffff

    cdef Py_ssize_t qdiscard(self, Py_ssize_t n) except -1:
        cdef Py_ssize_t done, m
        if n <= 0:
            return 0
        if n > self.len:
            n = self.len
        if self.msg:
            done = 0
            while self.msglens and done < n:
                m = self.msglens[0]
                if m <= n - done:
                    self.msglens.popleft()
                    done += m
                else:
                    self.msglens[0] = m - (n - done)
                    done = n
        _drop(self, n)
        _touch(self)
        if _unflow(self) and self.wwait:
            self.wwait = False
            self.wake()
        return n

    cdef Py_ssize_t qcopy(self, unsigned char *dst, Py_ssize_t n, Py_ssize_t offset) noexcept:
        cdef Py_ssize_t start, first
        if offset < 0 or n <= 0 or offset >= self.len:
            return 0
        if n > self.len - offset:
            n = self.len - offset
        start = self.head + offset
        if start >= self.cap:
            start -= self.cap
        first = self.cap - start
        if first >= n:
            memcpy(dst, self.buf + start, <size_t>n)
        else:
            memcpy(dst, self.buf + start, <size_t>first)
            memcpy(dst + first, self.buf, <size_t>(n - first))
        return n

    cdef void wake(self):
        if self.wakecb is not None:
            self.wakecb()

    # -- state -------------------------------------------------------------

    cpdef hangup(self, reason=None):
        """qhangup: no more data will be queued; what is queued stays
        readable.  reason None or "" means "i/o on hungup channel"."""
        if reason is None or reason == "":
            reason = Ehungup
        elif not isinstance(reason, str):
            reason = str(reason)
        self.reason = reason
        _wakeboth(self)

    cpdef close(self):
        """qclose: discard the data, hang up with Ehungup."""
        _discardall(self)
        self.flow = False
        self.reason = Ehungup
        self.closed = True
        _wakeboth(self)

    cpdef flush(self):
        """qflush: discard the data; the hung-up state is kept."""
        _discardall(self)
        if self.flow:
            self.flow = False
            if self.wwait:
                self.wwait = False
                self.wake()

    cpdef reopen(self):
        """qreopen: an empty, open queue again (the limit is kept)."""
        _discardall(self)
        self.reason = None
        self.closed = False
        self.eof = 0
        self.flow = False
        self.kicked = False

    cpdef setlimit(self, Py_ssize_t limit):
        """qsetlimit.  Flow is re-evaluated only when data next moves."""
        self.limit = limit

    cpdef int trim(self) except -1:
        """Called now and then (net9.stack: about once a second): when no
        data moved since the last trim, shrink the buffer to the bytes
        queued, freeing it when there are none.  A queue that moved data
        is left alone (a steady stream never reallocates for this) and
        1 returned: it needs another look later; else 0."""
        cdef Py_ssize_t fit
        if self.used:
            _untouch(self)
            return 1
        if self.len == 0:
            _setcap(self, 0)
        elif self.cap > 2 * self.len and self.cap > MINCAP:
            fit = self.len if self.len > MINCAP else MINCAP
            _setcap(self, fit)
        return 0

    cpdef settrimmer(self, Trimmer t):
        """Count this queue in t (a stack's Trimmer) from now on."""
        if self.used:
            if self.trimmer is not None:
                self.trimmer.busy -= 1
            if t is not None:
                t.busy += 1
        self.trimmer = t

    cpdef bint ishungup(self):
        return self.reason is not None

    cpdef object getreason(self):
        return self.reason

    # -- Python-level I/O --------------------------------------------------

    cdef object qread(self, Py_ssize_t n, bint *kicked):
        """One read of at most n bytes: bytes when data (or, for a msg
        queue, a message) is queued; None when the reader would block; b""
        at EOF; Net9Error(reason) per devip.md section 4.4.  *kicked: this
        read cleared flow control."""
        cdef Py_ssize_t m, take
        cdef object out
        kicked[0] = False
        if n <= 0:
            return b""
        if self.msg:
            if not self.msglens:
                return _empty(self)
            m = self.msglens.popleft()
            take = m if m < n else n
        else:
            if self.len == 0:
                return _empty(self)
            m = take = self.len if self.len < n else n
        out = PyBytes_FromStringAndSize(NULL, take)
        self.qcopy(<unsigned char *>PyBytes_AS_STRING(out), take, 0)
        _drop(self, m)
        _touch(self)
        if _unflow(self):
            kicked[0] = True
            if self.wwait:
                self.wwait = False
                self.wake()
        return out

    cpdef object read(self, Py_ssize_t n):
        """qread from Python (tests, Python callers); the queue's kicked
        says whether this read cleared flow."""
        return self.qread(n, &self.kicked)

    # Python access to the C-level operations (tests, Python callers)

    def passnolim(self, data):
        """qpass from Python: append data ignoring the limit; dropped (0
        returned) when the queue is hung up."""
        cdef Py_buffer view
        cdef int r
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            r = self.qpass(<const unsigned char *>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)
        return r

    def discard(self, Py_ssize_t n):
        """qdiscard from Python: bytes dropped."""
        return self.qdiscard(n)

    def copy(self, Py_ssize_t n, Py_ssize_t offset=0):
        """qcopy from Python: up to n bytes from offset past the head, left
        in the queue."""
        cdef Py_ssize_t m
        if offset < 0 or n <= 0 or offset >= self.len:
            return b""
        m = self.len - offset
        if n < m:
            m = n
        out = PyBytes_FromStringAndSize(NULL, m)
        self.qcopy(<unsigned char *>PyBytes_AS_STRING(out), m, offset)
        return out

    cpdef Py_ssize_t write(self, data) except -1:
        """qwrite: queue all of data (bytes-like; one message on a msg
        queue) regardless of the limit.  Net9Error(reason) when hung up.
        Sets flow when the queue reaches its limit: the caller parks the
        writer and sets wwait."""
        cdef Py_buffer view
        cdef Py_ssize_t n
        if self.reason is not None:
            raise Net9Error(self.reason)
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            n = view.len
            self.qpass(<const unsigned char *>view.buf, n)
        finally:
            PyBuffer_Release(&view)
        return n
