# netlog (9front netlog.c): log messages by category into a bounded buffer,
# read by /net/log.  Callers test the mask first so that formatting costs
# nothing when a category is off:
#     if fs.log.mask & Logtcp: fs.log.log(Logtcp, "text %d" % x)

cdef enum:
    Logip = 1 << 1
    Logtcp = 1 << 2
    Logfs = 1 << 3
    Logicmp = 1 << 5
    Logudp = 1 << 6
    Logcompress = 1 << 7
    Loggre = 1 << 9
    Logppp = 1 << 10
    Logtcprxmt = 1 << 11
    Logigmp = 1 << 12
    Logudpmsg = 1 << 13
    Logipmsg = 1 << 14
    Logrudp = 1 << 15
    Logrudpmsg = 1 << 16
    Logesp = 1 << 17
    Logtcpwin = 1 << 18
    Logtrans = 1 << 19

cdef class Netlog:
    cdef public unsigned int mask
    cdef public Py_ssize_t limit      # bytes kept (Nlog = 16 KiB)
    cdef bytearray buf
    cdef public object iponly         # bytes16 or None ("only" address filter)
    cdef public object wakecb         # callable() or None, called when text arrives
    cpdef log(self, unsigned int cat, str msg)
    cpdef object read(self, Py_ssize_t n)   # bytes, b"" when empty
    cpdef ctl(self, str msg)                # "set tcp ...", "clear ...", "only ADDR"
