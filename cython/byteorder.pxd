# Big-endian field access and v4-mapped address tests for the packet code
# (9front's nhgets/nhgetl/hnputs/hnputl, isv4/v4tov6).  Inline only: there
# is no byteorder module at run time.

from libc.string cimport memcpy

cdef inline unsigned int nhgets(const unsigned char *p) noexcept nogil:
    return (<unsigned int>p[0] << 8) | p[1]

cdef inline unsigned int nhgetl(const unsigned char *p) noexcept nogil:
    return ((<unsigned int>p[0] << 24) | (<unsigned int>p[1] << 16)
            | (<unsigned int>p[2] << 8) | p[3])

cdef inline void hnputs(unsigned char *p, unsigned int v) noexcept nogil:
    p[0] = (v >> 8) & 0xff
    p[1] = v & 0xff

cdef inline void hnputl(unsigned char *p, unsigned int v) noexcept nogil:
    p[0] = (v >> 24) & 0xff
    p[1] = (v >> 16) & 0xff
    p[2] = (v >> 8) & 0xff
    p[3] = v & 0xff

cdef inline bint isv4c(const unsigned char *a) noexcept nogil:
    # the v4-mapped prefix ::ffff:0:0/96
    cdef int i
    for i in range(10):
        if a[i] != 0:
            return 0
    return a[10] == 0xff and a[11] == 0xff

cdef inline void v4tov6c(unsigned char *v6, const unsigned char *v4) noexcept nogil:
    cdef int i
    for i in range(10):
        v6[i] = 0
    v6[10] = 0xff
    v6[11] = 0xff
    memcpy(v6 + 12, v4, 4)
