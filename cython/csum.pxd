# Internet ones-complement checksum (RFC 1071), in C.
#
# csum_partial adds the 16-bit big-endian words of p[0:n] to a 64-bit
# accumulator; an odd trailing byte is padded with zero, so only the last
# piece of a checksummed area may have odd length.  csum_fold folds the
# accumulator to 16 bits and complements it (the value to store in a header).
# A packet whose stored checksum is right folds to 0.

cdef unsigned long long csum_partial(const unsigned char *p, Py_ssize_t n,
                                     unsigned long long acc) noexcept nogil
cdef unsigned short csum_fold(unsigned long long acc) noexcept nogil
