# The hot path of the TUN medium (net9.media.Tun): read every datagram
# waiting on a non-blocking TUN descriptor into one reusable buffer, and
# write one datagram without blocking.  Everything else about the device
# (opening, ioctls, netlink configuration) is plain Python in media.py.

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from libc.errno cimport errno, EAGAIN, EINTR

cdef extern from "unistd.h" nogil:
    ssize_t read(int fd, void *buf, size_t count)
    ssize_t write(int fd, const void *buf, size_t count)

cdef enum:
    BUFSIZE = 65536 + 4        # the largest TUN datagram (MTU 65535) and a bit

cdef unsigned char rbuf[BUFSIZE]


cpdef list readpkts(int fd, Py_ssize_t maxpkts=4096):
    """Read datagrams from fd until it would block (or maxpkts were read):
    a list of bytes, possibly empty.  Raises OSError for errors other than
    EAGAIN/EINTR; an end of file (0) stops the batch."""
    cdef list out = []
    cdef ssize_t n
    cdef int e
    while len(out) < maxpkts:
        n = read(fd, rbuf, BUFSIZE)
        if n > 0:
            out.append(PyBytes_FromStringAndSize(<char*>rbuf, n))
            continue
        if n == 0:
            break
        e = errno
        if e == EINTR:
            continue
        if e == EAGAIN:      # EWOULDBLOCK is EAGAIN on Linux
            break
        if out:
            break          # hand over what was read; the error shows next time
        raise OSError(e, "tun read")
    return out


cpdef Py_ssize_t writepkt(int fd, object pkt):
    """Write one datagram: the byte count, or -errno (EAGAIN when the device
    queue is full).  Never raises for I/O errors and never blocks on a
    non-blocking descriptor."""
    cdef Py_buffer view
    cdef ssize_t n
    PyObject_GetBuffer(pkt, &view, PyBUF_SIMPLE)
    try:
        while True:
            n = write(fd, view.buf, view.len)
            if n >= 0:
                return n
            if errno != EINTR:
                return -errno
    finally:
        PyBuffer_Release(&view)
