# The hot path of the TUN medium (net9.media.Tun): read every datagram
# waiting on a non-blocking TUN descriptor into one reusable buffer, and
# write one datagram without blocking.  Everything else about the device
# (opening, ioctls, netlink configuration) is plain Python in media.py.

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from libc.errno cimport errno, EAGAIN, EINTR

from net9.csum cimport csum_partial, csum_fold
from net9.wire cimport ipver, ip4hl, tcphl

cdef extern from "unistd.h" nogil:
    ssize_t read(int fd, void *buf, size_t count)
    ssize_t write(int fd, const void *buf, size_t count)

cdef extern from "sys/uio.h" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len
    ssize_t writev(int fd, const iovec *iov, int iovcnt)

cdef enum:
    VNETHDR = 10               # struct virtio_net_hdr (linux/virtio_net.h)
    # the largest TUN datagram (MTU 65535, or a GSO super-packet of up to
    # 64 KiB) with its virtio_net_hdr, and a bit
    BUFSIZE = 65536 + 256
    F_NEEDS_CSUM = 1           # VIRTIO_NET_HDR_F_NEEDS_CSUM
    GSO_TCPV4 = 1              # VIRTIO_NET_HDR_GSO_TCPV4
    GSO_TCPV6 = 4              # VIRTIO_NET_HDR_GSO_TCPV6

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


# ---- IFF_VNET_HDR: each datagram behind a struct virtio_net_hdr
#   u8 flags, u8 gso_type, u16 hdr_len, u16 gso_size, u16 csum_start,
#   u16 csum_offset (host byte order: little-endian here; TUNSETVNETLE is
#   not needed on little-endian hosts)

cpdef list readpkts_vnet(int fd, Py_ssize_t maxpkts=4096, list gsos=None):
    """readpkts for a TUN opened with IFF_VNET_HDR and offloads: strips the
    header and, for a datagram whose transport checksum Linux left partial
    (VIRTIO_NET_HDR_F_NEEDS_CSUM: the field holds the pseudo-header sum),
    completes it, so the layers above see an ordinary datagram (which may
    be a TCP super-packet larger than the MTU).  Malformed headers pass the
    datagram on unchanged, for the IP layer to judge.  gsos: a list that
    gets, for each datagram returned, the segment size of a TCP
    super-packet (the header's gso_size) or 0."""
    cdef list out = []
    cdef ssize_t n
    cdef int e
    cdef unsigned int start, off
    cdef unsigned char *p
    cdef unsigned long long acc
    cdef unsigned short c
    while len(out) < maxpkts:
        n = read(fd, rbuf, BUFSIZE)
        if n > VNETHDR:
            p = rbuf + VNETHDR
            n -= VNETHDR
            if rbuf[0] & F_NEEDS_CSUM:
                start = rbuf[6] | (rbuf[7] << 8)
                off = rbuf[8] | (rbuf[9] << 8)
                if start + off + 2 <= <size_t>n:
                    acc = csum_partial(p + start, n - start, 0)
                    c = csum_fold(acc)
                    p[start + off] = c >> 8
                    p[start + off + 1] = c & 0xFF
            out.append(PyBytes_FromStringAndSize(<char*>p, n))
            if gsos is not None:
                if (rbuf[1] & 0x7F) == GSO_TCPV4 or (rbuf[1] & 0x7F) == GSO_TCPV6:
                    gsos.append(rbuf[4] | (rbuf[5] << 8))
                else:
                    gsos.append(0)
            continue
        if n > 0:
            continue                # a header without a datagram
        if n == 0:
            break
        e = errno
        if e == EINTR:
            continue
        if e == EAGAIN:
            break
        if out:
            break
        raise OSError(e, "tun read")
    return out


cpdef Py_ssize_t writepkt_vnet(int fd, object pkt, int gsosize=0):
    """writepkt for a TUN opened with IFF_VNET_HDR: the datagram behind a
    virtio_net_hdr.  gsosize 0: an ordinary datagram (its checksums done).
    gsosize > 0: pkt is a TCP super-packet (one IP header, one TCP header,
    payload of several segments, checksums done over the whole) for Linux
    to cut into segments of gsosize payload bytes (TSO).  Returns the
    datagram's byte count or -errno."""
    cdef Py_buffer view
    cdef ssize_t n
    cdef unsigned char hdr[VNETHDR]
    cdef iovec iov[2]
    cdef const unsigned char *p
    cdef unsigned int hl
    PyObject_GetBuffer(pkt, &view, PyBUF_SIMPLE)
    try:
        p = <const unsigned char*>view.buf
        for i in range(VNETHDR):
            hdr[i] = 0
        if gsosize > 0 and view.len > 40:
            if ipver(p) == 4:
                hl = ip4hl(p)
                hdr[1] = GSO_TCPV4
            else:
                hl = 40
                hdr[1] = GSO_TCPV6
            if hl + 20 <= <size_t>view.len:
                hl += tcphl(p + hl)
                hdr[2] = hl & 0xFF
                hdr[3] = hl >> 8
                hdr[4] = gsosize & 0xFF
                hdr[5] = (gsosize >> 8) & 0xFF
            else:
                hdr[1] = 0
        iov[0].iov_base = hdr
        iov[0].iov_len = VNETHDR
        iov[1].iov_base = view.buf
        iov[1].iov_len = view.len
        while True:
            n = writev(fd, iov, 2)
            if n >= 0:
                return n - VNETHDR if n >= VNETHDR else 0
            if errno != EINTR:
                return -errno
    finally:
        PyBuffer_Release(&view)
