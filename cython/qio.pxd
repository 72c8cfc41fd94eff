# devip's queues (port/qio.c), the parts /net needs: a byte queue with a
# limit, flow control, hang-up with a reason, EOF counting and kick/wake-up
# rules of devip's qio (9front's port/qio.c; net9(4) on reads after a
# hang-up).  Data lives in one malloc'd
# ring buffer; no Python object per segment.  close/flush/reopen free it,
# trim() gives back an idle queue's (see qio.pyx).

cdef class Trimmer:
    cdef public Py_ssize_t busy        # queues that moved data since their last trim
    cdef public Py_ssize_t released    # bytes of buffer given back so far

cdef class Queue:
    cdef unsigned char *buf        # ring buffer
    cdef readonly Py_ssize_t cap   # allocated size of buf (0: none)
    cdef Py_ssize_t head           # index of first byte
    cdef Py_ssize_t len            # bytes queued
    cdef public Py_ssize_t limit   # flow-control limit
    cdef public bint flow          # Qflow: writer blocked / reader must kick
    cdef public bint msg           # Qmsg: datagram queue (udp/icmp later): one read = one message
    cdef object reason             # None while open; str once hung up
    cdef public bint closed        # qclose'd (data discarded)
    cdef public int eof            # EOF reads returned since hang-up
    cdef public object wakecb      # callable() or None: called on wake-ups below
    cdef public bint rwait         # a reader is parked: wake it on data or hang-up
    cdef public bint wwait         # a writer is parked: wake it when flow clears or on hang-up
    cdef object msglens            # deque of message lengths when msg is set
    cdef readonly bint used        # data moved since the last trim()
    cdef readonly Trimmer trimmer  # the stack's Trimmer (None: not counted)

    cdef inline Py_ssize_t qlen(self) noexcept:
        return self.len
    cdef int reserve(self, Py_ssize_t n) except -1
    # qpassnolim: append n bytes, ignoring the limit (sets flow when len >= limit)
    cdef int qpass(self, const unsigned char *p, Py_ssize_t n) except -1
    # qdiscard: drop up to n bytes from the head; returns bytes dropped;
    # clears flow and wakes a parked writer when len falls below limit/2
    cdef Py_ssize_t qdiscard(self, Py_ssize_t n) except -1
    # qcopy: copy up to n bytes starting offset bytes past the head into dst;
    # returns bytes copied (less than n when the queue is short)
    cdef Py_ssize_t qcopy(self, unsigned char *dst, Py_ssize_t n, Py_ssize_t offset) noexcept
    cdef void wake(self)
    cpdef hangup(self, reason=*)   # qhangup: reason None or "" -> Ehungup
    cpdef close(self)              # qclose: discard data, reason Ehungup
    cpdef flush(self)              # qflush: discard data, keep state
    cpdef reopen(self)             # qreopen: un-hang-up, eof=0, data discarded, flow cleared
    cpdef setlimit(self, Py_ssize_t limit)
    cpdef int trim(self) except -1       # give back an idle queue's buffer; 1: data moved since the last trim
    cpdef settrimmer(self, Trimmer t)
    cpdef bint ishungup(self)
    cpdef object getreason(self)
    # qread: bytes (1..n) when data is queued; None when it would block;
    # b"" for EOF; raises Net9Error(reason) per section 4.4.  *kicked is
    # set to whether this read cleared flow (the reader must kick).
    cdef object qread(self, Py_ssize_t n, bint *kicked)
    # read: qread from Python; kicked keeps what the last read() said
    cpdef object read(self, Py_ssize_t n)
    cdef readonly bint kicked
    # write: append data (bytes-like); raises Net9Error(reason) when hung up.
    # Returns the number of bytes queued.  Sets flow when len >= limit
    # (the caller then parks the writer until wwait is answered).
    cpdef Py_ssize_t write(self, data) except -1
