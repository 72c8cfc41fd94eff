# cython: language_level=3
"""Internet ones-complement checksum (RFC 1071), in C.

csum_partial(p, n, acc) adds the big-endian 16-bit words of p[0:n] to acc
(an odd trailing byte is padded with a zero low byte); csum_fold(acc) folds
an accumulator to 16 bits and complements it.

The accumulator returned by csum_partial is the ones-complement sum kept in
64 bits: it is congruent modulo 0xffff to acc plus the plain sum of the
words, and it is zero only if acc was zero and every word was zero, so
folding it gives exactly the same 16 bits as folding the plain sum.  (It is
not always numerically equal to the plain sum: the data's contribution is
folded to 16 bits before it is added.)  Accumulators may therefore be
chained, and other terms (pseudo-header fields) may be added to them with
ordinary + before csum_fold, as long as the total stays below 2**64.

The loop sums native-order 32-bit halves of 64-bit loads into two 64-bit
accumulators (no carries to propagate), folds the result to 16 bits and, on
a little-endian machine, byte-swaps it: the ones-complement sum is byte-order
independent (RFC 1071 section 2(B)).
"""

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>

    #if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && \\
        __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    #define NET9_CSUM_BIGENDIAN 1
    #else
    #define NET9_CSUM_BIGENDIAN 0
    #endif

    /* ones-complement fold of a 64-bit sum of native 16-bit words to 16 bits;
       non-zero stays non-zero */
    static inline uint32_t net9_fold16(uint64_t s)
    {
        s = (s & 0xffffffffu) + (s >> 32);      /* < 2^33 */
        s = (s & 0xffffffffu) + (s >> 32);      /* < 2^32 */
        s = (s & 0xffffu) + (s >> 16);          /* < 2^17 */
        s = (s & 0xffffu) + (s >> 16);          /* <= 0xffff */
        return (uint32_t)s;
    }

    static inline uint64_t net9_load64(const unsigned char *p)
    {
        uint64_t w;
        memcpy(&w, p, 8);
        return w;
    }

    static uint64_t net9_csum_partial(const unsigned char *p, Py_ssize_t n,
                                      uint64_t acc)
    {
        /* a and b hold sums of 32-bit halves: each of the 4 lanes gets at
           most 2^32-1 per 8 bytes, so 2^31 iterations (16 GiB) cannot
           overflow; larger areas are done in chunks. */
        uint64_t a0 = 0, a1 = 0, b0 = 0, b1 = 0, w, s;
        uint32_t r;
        Py_ssize_t chunk;

        s = 0;
        while(n > 0){
            chunk = n;
            if(chunk > ((Py_ssize_t)1 << 30))
                chunk = (Py_ssize_t)1 << 30;
            n -= chunk;
            while(chunk >= 32){
                w = net9_load64(p);
                a0 += w & 0xffffffffu; b0 += w >> 32;
                w = net9_load64(p + 8);
                a1 += w & 0xffffffffu; b1 += w >> 32;
                w = net9_load64(p + 16);
                a0 += w & 0xffffffffu; b0 += w >> 32;
                w = net9_load64(p + 24);
                a1 += w & 0xffffffffu; b1 += w >> 32;
                p += 32;
                chunk -= 32;
            }
            while(chunk >= 8){
                w = net9_load64(p);
                a0 += w & 0xffffffffu; b0 += w >> 32;
                p += 8;
                chunk -= 8;
            }
            if(chunk > 0){
                /* only the very last chunk can have a tail: chunks before it
                   are a multiple of 32 bytes long.  Zero padding keeps the
                   bytes at their offsets (an odd last byte is a high byte). */
                w = 0;
                memcpy(&w, p, (size_t)chunk);
                a0 += w & 0xffffffffu; b0 += w >> 32;
                p += chunk;
            }
            /* fold the lanes into s, ones-complement style */
            r = net9_fold16(a0) + net9_fold16(a1) + net9_fold16(b0) + net9_fold16(b1);
            s += r;
            a0 = a1 = b0 = b1 = 0;
        }
        r = net9_fold16(s);
    #if !NET9_CSUM_BIGENDIAN
        r = ((r & 0xffu) << 8) | (r >> 8);
    #endif
        acc += r;
        if(acc < r)         /* end-around carry: 2^64 == 1 (mod 0xffff) */
            acc++;
        return acc;
    }

    static inline unsigned short net9_csum_fold(uint64_t acc)
    {
        acc = (acc & 0xffffffffu) + (acc >> 32);
        acc = (acc & 0xffffffffu) + (acc >> 32);
        acc = (acc & 0xffffu) + (acc >> 16);
        acc = (acc & 0xffffu) + (acc >> 16);
        return (unsigned short)~acc;
    }
    """
    unsigned long long net9_csum_partial(const unsigned char *p, Py_ssize_t n,
                                         unsigned long long acc) nogil
    unsigned short net9_csum_fold(unsigned long long acc) nogil


cdef unsigned long long csum_partial(const unsigned char *p, Py_ssize_t n,
                                     unsigned long long acc) noexcept nogil:
    if n <= 0:
        return acc
    return net9_csum_partial(p, n, acc)


cdef unsigned short csum_fold(unsigned long long acc) noexcept nogil:
    return net9_csum_fold(acc)


cdef unsigned long long _sum_range(object data, Py_ssize_t start, Py_ssize_t length,
                                   unsigned long long acc) except? 0xffffffffffffffff:
    cdef Py_buffer view
    cdef unsigned long long r
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        if start < 0 or start > view.len:
            raise ValueError("cksum: start %d outside 0..%d" % (start, view.len))
        if length < 0:
            length = view.len - start
        elif length > view.len - start:
            raise ValueError("cksum: range %d+%d beyond %d bytes" % (start, length, view.len))
        with nogil:
            r = csum_partial(<const unsigned char *>view.buf + start, length, acc)
    finally:
        PyBuffer_Release(&view)
    return r


def cksum(data, Py_ssize_t start=0, Py_ssize_t length=-1):
    """Checksum (folded and complemented, as stored in a header) of
    data[start:start+length] (length -1: to the end).  data is any
    contiguous bytes-like object.  A correct packet sums to 0."""
    return csum_fold(_sum_range(data, start, length, 0))


def cksum_acc(data, acc=0):
    """Unfolded accumulator: acc plus the big-endian 16-bit words of data
    (see the module documentation for its exact value).  acc must be
    0 <= acc < 2**64."""
    return _sum_range(data, 0, -1, <unsigned long long>acc)


def fold(acc):
    """csum_fold(acc): fold to 16 bits and complement."""
    return csum_fold(<unsigned long long>acc)
