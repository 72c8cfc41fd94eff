# The wire formats, in one place (smoltcp's wire/ is the model): IPv4 and
# IPv6 header put and parse, the pseudo-header sums of RFC 793 / RFC 768 /
# RFC 8200 section 8.1, the TCP header and its options, the UDP and ICMP
# headers.  Inline C functions over raw bytes, no Python object, no I/O:
# every protocol (tcp, udp, icmp) and the IP layer (ip) build and read
# their headers here; wire.pyx gives Python (net9.sim, tests) the same
# functions on bytes.
#
# Layout notes (offsets into the header):
#   IPv4: 0 vhl, 1 tos, 2 length, 4 id, 6 flags|fragment offset, 8 ttl,
#         9 protocol, 10 checksum, 12 source, 16 destination
#   IPv6: 0 version|class|flow, 4 payload length, 6 next header, 7 hop
#         limit, 8 source, 24 destination
#   TCP:  0 source port, 2 destination port, 4 seq, 8 ack, 12 data offset
#         (and flags), 14 window, 16 checksum, 18 urgent pointer
#   UDP:  0 source port, 2 destination port, 4 length, 6 checksum
#   ICMP: 0 type, 1 code, 2 checksum, 4 id (echo) or argument

from libc.string cimport memcpy, memset
from net9.csum cimport csum_partial, csum_fold
from net9.byteorder cimport nhgets, nhgetl, hnputs, hnputl, v4tov6c

cdef enum:
    IP4HDRLEN = 20
    IP6HDRLEN = 40
    TCPHDRLEN = 20
    TCPMAXHDR = 60
    UDPHDRLEN = 8
    ICMPHDRLEN = 8

    # TCP header flags
    URG = 0x20
    ACK = 0x10
    PSH = 0x08
    RST = 0x04
    SYN = 0x02
    FIN = 0x01

    # TCP option kinds and lengths (tcp.c's, and beyond tcp.c those of
    # RFC 2018 and RFC 7323)
    EOLOPT = 0
    NOOPOPT = 1
    MSSOPT = 2
    MSS_LENGTH = 4
    WSOPT = 3
    WS_LENGTH = 3
    SACKPERMOPT = 4
    SACKPERM_LENGTH = 2
    SACKOPT = 5
    TSOPT = 8
    TS_LENGTH = 10
    TSOPTALIGNED = 12        # NOP NOP TS
    MAXSACK = 4              # SACK blocks parsed from one segment


cdef struct Tcp:
    # a TCP header as tcp.c's Tcp: the fields, and the options parsed
    unsigned short source
    unsigned short dest
    unsigned int seq
    unsigned int ack
    unsigned char flags
    unsigned char update
    unsigned short ws
    unsigned int wnd
    unsigned short urg
    unsigned short mss
    unsigned short len
    # beyond tcp.c: RFC 2018 / RFC 7323 options of a received segment
    unsigned char sackok           # SACK-permitted seen
    unsigned char hasts            # timestamps option seen
    unsigned char hasws            # window scale option seen (a SYN-ACK answers it)
    unsigned char nsack            # SACK blocks in sack[]
    unsigned char optout           # (sending) 1: put TS/SACK options on it
    unsigned int tsval
    unsigned int tsecr
    unsigned int sack[8]           # left, right edge pairs


# ---------------------------------------------------------------- either version

cdef inline int ipver(const unsigned char *p) noexcept nogil:
    # the version nibble of the header at p
    return p[0] >> 4

cdef inline void ipaddrs(const unsigned char *p, bint v4, unsigned char *src,
                         unsigned char *dst) noexcept nogil:
    # the source and destination of the v4 or v6 header at p, as 16-byte
    # addresses (v4-mapped for v4)
    if v4:
        v4tov6c(src, p + 12)
        v4tov6c(dst, p + 16)
    else:
        memcpy(src, p + 8, 16)
        memcpy(dst, p + 24, 16)


# ---------------------------------------------------------------- IPv4

cdef inline int ip4hl(const unsigned char *p) noexcept nogil:
    # the header length (bytes) the v4 header at p states
    return (p[0] & 0xf) << 2

cdef inline unsigned short ip4csum(const unsigned char *p) noexcept nogil:
    # ip.c ipcsum: the checksum of the header whose length is in p[0]
    return csum_fold(csum_partial(p, ip4hl(p), 0))

cdef inline void ip4setcsum(unsigned char *p) noexcept nogil:
    p[10] = 0
    p[11] = 0
    hnputs(p + 10, ip4csum(p))

cdef inline void ip4put(unsigned char *p, int tos, unsigned int length, int ttl, int proto,
                        const unsigned char *src4, const unsigned char *dst4) noexcept nogil:
    # a 20-byte header; id, fragment and checksum zero (the IP layer's)
    p[0] = 0x45
    p[1] = tos
    hnputs(p + 2, length & 0xffff)
    p[4] = p[5] = p[6] = p[7] = 0
    p[8] = ttl
    p[9] = proto
    p[10] = p[11] = 0
    memcpy(p + 12, src4, 4)
    memcpy(p + 16, dst4, 4)

cdef inline void ip4fill(unsigned char *p, unsigned int length, unsigned int id,
                         unsigned int frag) noexcept nogil:
    # what ipoput4 fills in for each datagram (or fragment) it sends
    hnputs(p + 2, length & 0xffff)
    hnputs(p + 4, id & 0xffff)
    hnputs(p + 6, frag & 0xffff)
    ip4setcsum(p)

cdef inline void ip4area(unsigned char *p, int proto, const unsigned char *src4,
                         const unsigned char *dst4) noexcept nogil:
    # what a transport writes into the header area of a datagram whose
    # tos, ttl, length, id, fragment and checksum ipoput4 fills in (icmp.c's
    # icmpkick, icmpsend, mkechoreply): version, protocol, addresses; the
    # other bytes stay as they are
    p[0] = 0x40              # IP_VER4: the IP layer adds the header length
    p[9] = proto
    memcpy(p + 12, src4, 4)
    memcpy(p + 16, dst4, 4)

# the fields of a v4 header, read and written (ip.c's Ip4hdr)
cdef inline unsigned int ip4len(const unsigned char *p) noexcept nogil:
    return nhgets(p + 2)

cdef inline unsigned int ip4id(const unsigned char *p) noexcept nogil:
    return nhgets(p + 4)

cdef inline unsigned int ip4frag(const unsigned char *p) noexcept nogil:
    # the flags and fragment offset word
    return nhgets(p + 6)

cdef inline const unsigned char *ip4src(const unsigned char *p) noexcept nogil:
    return p + 12

cdef inline const unsigned char *ip4dst(const unsigned char *p) noexcept nogil:
    return p + 16

cdef inline int ip4ttl(const unsigned char *p) noexcept nogil:
    return p[8]

cdef inline int ip4proto(const unsigned char *p) noexcept nogil:
    return p[9]

cdef inline void ip4setvtt(unsigned char *p, int tos, int ttl) noexcept nogil:
    # ipoput4's: version with a 20-byte header, tos, ttl
    p[0] = 0x45
    p[1] = tos
    p[8] = ttl

cdef inline void ip4setvhl(unsigned char *p, int hl) noexcept nogil:
    # version 4 and a header of hl bytes
    p[0] = 0x40 | ((hl >> 2) & 0xf)

cdef inline void ip4setttl(unsigned char *p, int ttl) noexcept nogil:
    p[8] = ttl

cdef inline void ip4setlen(unsigned char *p, unsigned int length) noexcept nogil:
    hnputs(p + 2, length & 0xffff)

cdef inline void ip4setfrag(unsigned char *p, unsigned int frag) noexcept nogil:
    hnputs(p + 6, frag & 0xffff)

cdef inline int ip4hdrlen(const unsigned char *p, Py_ssize_t n) noexcept nogil:
    # the header length of the v4 datagram p[0:n], -1 when it is not one
    cdef int hl
    if n < IP4HDRLEN or ipver(p) != 4:
        return -1
    hl = ip4hl(p)
    if hl < IP4HDRLEN or hl > n:
        return -1
    return hl


# ---------------------------------------------------------------- IPv6

cdef inline void ip6put(unsigned char *p, int tos, unsigned int paylen, int nh, int hop,
                        const unsigned char *src, const unsigned char *dst) noexcept nogil:
    # traffic class tos, flow label 0
    p[0] = 0x60 | ((tos >> 4) & 0x0f)
    p[1] = (tos << 4) & 0xf0
    p[2] = p[3] = 0
    hnputs(p + 4, paylen & 0xffff)
    p[6] = nh
    p[7] = hop
    memcpy(p + 8, src, 16)
    memcpy(p + 24, dst, 16)


# the fields of a v6 header, read and written (ip.c's Ip6hdr)
cdef inline unsigned int ip6plen(const unsigned char *p) noexcept nogil:
    return nhgets(p + 4)

cdef inline int ip6nh(const unsigned char *p) noexcept nogil:
    return p[6]

cdef inline int ip6hop(const unsigned char *p) noexcept nogil:
    return p[7]

cdef inline const unsigned char *ip6src(const unsigned char *p) noexcept nogil:
    return p + 8

cdef inline const unsigned char *ip6dst(const unsigned char *p) noexcept nogil:
    return p + 24

cdef inline void ip6setvtt(unsigned char *p, int tos, int hop) noexcept nogil:
    # ipoput6's: version, traffic class tos (flow label's top bits 0), hop limit
    p[0] = 0x60 | ((tos >> 4) & 0x0f)
    p[1] = (tos << 4) & 0xf0
    p[7] = hop

cdef inline void ip6setplen(unsigned char *p, unsigned int paylen) noexcept nogil:
    hnputs(p + 4, paylen & 0xffff)

cdef inline void ip6fragput(unsigned char *fh, int nh, unsigned int offmore,
                            unsigned int id) noexcept nogil:
    # a fragment header (RFC 8200 4.5): next header, offset | M flag, id
    fh[0] = nh
    fh[1] = 0
    hnputs(fh + 2, offmore & 0xffff)
    hnputl(fh + 4, id)

cdef inline unsigned int ip6fragoff(const unsigned char *fh) noexcept nogil:
    # the offset (bytes) and M flag word of the fragment header at fh
    return nhgets(fh + 2)

cdef inline unsigned int ip6fragid(const unsigned char *fh) noexcept nogil:
    return nhgetl(fh + 4)

cdef inline void ip6addrs(unsigned char *p, const unsigned char *src,
                          const unsigned char *dst) noexcept nogil:
    memcpy(p + 8, src, 16)
    memcpy(p + 24, dst, 16)

cdef inline void ip6area(unsigned char *p, const unsigned char *src,
                         const unsigned char *dst) noexcept nogil:
    # icmp6.c's header area: version (class and hop limit are ipoput6's),
    # addresses; the other bytes stay as they are
    p[0] = 0x60
    ip6addrs(p, src, dst)

cdef inline void ip6setlen(unsigned char *p, unsigned int paylen, int nh) noexcept nogil:
    # payload length and next header (icmp6.c's set_cksum)
    hnputs(p + 4, paylen & 0xffff)
    p[6] = nh


# ---------------------------------------------------------------- pseudo-headers

cdef inline unsigned long long pseudo4(const unsigned char *src4, const unsigned char *dst4,
                                       int proto, unsigned int length) noexcept nogil:
    # RFC 793/768: source, destination, zero, protocol, 16-bit length
    cdef unsigned char ph[12]
    memcpy(ph, src4, 4)
    memcpy(ph + 4, dst4, 4)
    ph[8] = 0
    ph[9] = proto
    hnputs(ph + 10, length & 0xffff)
    return csum_partial(ph, 12, 0)

cdef inline unsigned long long pseudo6(const unsigned char *src, const unsigned char *dst,
                                       int proto, unsigned int length) noexcept nogil:
    # RFC 8200 section 8.1: source, destination, 32-bit length, zero, next header
    cdef unsigned char ph[40]
    memcpy(ph, src, 16)
    memcpy(ph + 16, dst, 16)
    hnputl(ph + 32, length)
    ph[36] = ph[37] = ph[38] = 0
    ph[39] = proto
    return csum_partial(ph, 40, 0)

cdef inline unsigned long long pseudoip(const unsigned char *ip, bint v4, int proto,
                                        unsigned int length) noexcept nogil:
    # the pseudo-header sum of the datagram whose (v4 or v6) IP header is at ip
    if v4:
        return pseudo4(ip + 12, ip + 16, proto, length)
    return pseudo6(ip + 8, ip + 24, proto, length)

cdef inline unsigned short l4csum(const unsigned char *ip, bint v4, int proto,
                                  const unsigned char *l4, Py_ssize_t length) noexcept nogil:
    # the folded checksum of the transport message l4[0:length] (0 when its
    # stored checksum is right)
    return csum_fold(csum_partial(l4, length, pseudoip(ip, v4, proto, <unsigned int>length)))

cdef inline void l4setcsum(const unsigned char *ip, bint v4, int proto, unsigned char *l4,
                           Py_ssize_t length, int off, bint nozero) noexcept nogil:
    # store the checksum at l4[off]; nozero: a computed 0 goes as 0xffff
    # (-0, RFC 768), which receivers do not take for "no checksum"
    cdef unsigned short c
    l4[off] = 0
    l4[off + 1] = 0
    c = l4csum(ip, v4, proto, l4, length)
    if c == 0 and nozero:
        c = 0xffff
    hnputs(l4 + off, c)


# ---------------------------------------------------------------- UDP and ICMP

cdef inline void udpput(unsigned char *u, unsigned int sport, unsigned int dport,
                        unsigned int ulen) noexcept nogil:
    hnputs(u, sport)
    hnputs(u + 2, dport)
    hnputs(u + 4, ulen & 0xffff)
    u[6] = u[7] = 0

cdef inline unsigned char *ipput(unsigned char *p, bint v4, int tos, int ttl, int proto,
                                 const unsigned char *src, const unsigned char *dst,
                                 unsigned int l4len) noexcept nogil:
    # the IP header (v4: 20 bytes, v6: 40) in front of an l4len-byte
    # transport message, between 16-byte addresses; returns where the
    # transport header goes
    if v4:
        ip4put(p, tos, IP4HDRLEN + l4len, ttl, proto, src + 12, dst + 12)
        return p + IP4HDRLEN
    ip6put(p, tos, l4len, proto, ttl, src, dst)
    return p + IP6HDRLEN

cdef inline void icmpput(unsigned char *h, int type, int code, unsigned int rest) noexcept nogil:
    # an ICMP (v4 or v6) header, checksum zero; rest the 4 bytes after it
    # (echo: id and sequence; v4 unreachable: unused and next-hop MTU;
    # v6: MTU or pointer)
    h[0] = type
    h[1] = code
    h[2] = h[3] = 0
    hnputl(h + 4, rest)

cdef inline int icmptype(const unsigned char *h) noexcept nogil:
    return h[0]

cdef inline int icmpcode(const unsigned char *h) noexcept nogil:
    return h[1]

cdef inline unsigned int icmprest(const unsigned char *h) noexcept nogil:
    # the 4 bytes after the checksum (v6 packet too big: the MTU)
    return nhgetl(h + 4)

cdef inline void icmpsetid(unsigned char *h, unsigned int id) noexcept nogil:
    # an echo message's identifier (its sequence number stays)
    hnputs(h + 4, id & 0xffff)

cdef inline unsigned int icmpid(const unsigned char *h) noexcept nogil:
    return nhgets(h + 4)

cdef inline unsigned short icmpcsum(const unsigned char *p, Py_ssize_t n) noexcept nogil:
    # ICMP (v4) has no pseudo-header
    return csum_fold(csum_partial(p, n, 0))

cdef inline void icmpsetcsum(unsigned char *p, Py_ssize_t n) noexcept nogil:
    p[2] = 0
    p[3] = 0
    hnputs(p + 2, icmpcsum(p, n))


# ---------------------------------------------------------------- TCP

cdef inline int tcpoptsize(const Tcp *t, bint wsopt, int *nsack) noexcept nogil:
    # the header length (options and padding included) tcpput writes for
    # t; a SYN carries MSS (when t.mss), WS (when wsopt), and with optout
    # SACK-permitted and TS; any other segment with optout NOP NOP TS and
    # NOP NOP SACK blocks (at most 3 beside TS, else 4)
    cdef int hdrlen = TCPHDRLEN, n
    nsack[0] = 0
    if t.flags & SYN:
        if t.mss:
            hdrlen += MSS_LENGTH
        if wsopt:
            hdrlen += WS_LENGTH
        if t.optout:
            if t.sackok:
                hdrlen += SACKPERM_LENGTH
            if t.hasts:
                hdrlen += TS_LENGTH
        return (hdrlen + 3) & ~3
    if t.optout:
        if t.hasts:
            hdrlen += TSOPTALIGNED
        n = t.nsack
        if n > (3 if t.hasts else 4):
            n = 3 if t.hasts else 4
        if n > 0:
            hdrlen += 4 + 8 * n
        nsack[0] = n
    return hdrlen

cdef inline void tcpput(unsigned char *h, const Tcp *t, int hdrlen, bint wsopt, int nsack,
                        unsigned int wnd) noexcept nogil:
    # the header (checksum zero) and the options tcpoptsize counted
    cdef unsigned char *opt = h + TCPHDRLEN
    cdef unsigned char *end = h + hdrlen
    cdef int i
    hnputs(h, t.source)
    hnputs(h + 2, t.dest)
    hnputl(h + 4, t.seq)
    hnputl(h + 8, t.ack)
    hnputs(h + 12, (<unsigned int>hdrlen << 10) | t.flags)
    hnputs(h + 14, wnd)
    h[16] = h[17] = 0
    hnputs(h + 18, t.urg)
    if t.flags & SYN:
        if t.mss != 0:
            opt[0] = MSSOPT
            opt[1] = MSS_LENGTH
            hnputs(opt + 2, t.mss)
            opt += MSS_LENGTH
        if wsopt:
            opt[0] = WSOPT
            opt[1] = WS_LENGTH
            opt[2] = t.ws
            opt += WS_LENGTH
        if t.optout and t.sackok:
            opt[0] = SACKPERMOPT
            opt[1] = SACKPERM_LENGTH
            opt += SACKPERM_LENGTH
        if t.optout and t.hasts:
            opt[0] = TSOPT
            opt[1] = TS_LENGTH
            hnputl(opt + 2, t.tsval)
            hnputl(opt + 6, t.tsecr)
            opt += TS_LENGTH
        while opt < end:
            opt[0] = NOOPOPT
            opt += 1
        return
    if t.optout and t.hasts:
        opt[0] = NOOPOPT
        opt[1] = NOOPOPT
        opt[2] = TSOPT
        opt[3] = TS_LENGTH
        hnputl(opt + 4, t.tsval)
        hnputl(opt + 8, t.tsecr)
        opt += TSOPTALIGNED
    if nsack > 0:
        opt[0] = NOOPOPT
        opt[1] = NOOPOPT
        opt[2] = SACKOPT
        opt[3] = 2 + 8 * nsack
        opt += 4
        for i in range(nsack):
            hnputl(opt, t.sack[2 * i])
            hnputl(opt + 4, t.sack[2 * i + 1])
            opt += 8

cdef inline int tcpoptnext(const unsigned char *opt, int n, int *kind) noexcept nogil:
    # the length of the option at opt (n bytes left of the option area),
    # its kind in kind[0]; 0 at the end of the list (EOL or none left),
    # -1 when the option's length does not fit (a malformed list)
    if n <= 0 or opt[0] == EOLOPT:
        return 0
    kind[0] = opt[0]
    if opt[0] == NOOPOPT:
        return 1
    # DEVIATION: tcp.c reads optr[1] even when only one option byte is
    # left; stop there instead of reading past the header
    if n < 2 or opt[1] < 2 or opt[1] > n:
        return -1
    return opt[1]

cdef inline int tcphl(const unsigned char *h) noexcept nogil:
    # the data offset (bytes) the TCP header at h states
    return (h[12] >> 4) << 2

cdef inline int tcphdrparse(Tcp *t, const unsigned char *h) noexcept nogil:
    # the fixed 20 bytes at h (the caller knows they are there): ports,
    # sequence numbers, flags, window, urgent pointer; returns the data
    # offset the header states, in bytes (options untouched)
    t.source = nhgets(h)
    t.dest = nhgets(h + 2)
    t.seq = nhgetl(h + 4)
    t.ack = nhgetl(h + 8)
    t.flags = h[13]
    t.wnd = nhgets(h + 14)
    t.urg = nhgets(h + 18)
    return tcphl(h)

cdef inline int tcpparse(Tcp *t, const unsigned char *h, Py_ssize_t avail) noexcept nogil:
    # ntohtcp4/6 after the IP header: h is the TCP header, avail the bytes
    # of the segment present.  The header length, or -1 when the header
    # or its options are not all there.  Options of the wrong length are
    # ignored; a malformed list ends the parse (what came before stands).
    cdef int hdrlen, n, optlen, kind = 0, i
    cdef const unsigned char *optr
    if avail < TCPHDRLEN:
        return -1
    memset(t, 0, sizeof(Tcp))    # every option field starts absent
    hdrlen = tcphdrparse(t, h)
    if hdrlen < TCPHDRLEN:
        return -1
    if hdrlen > avail:
        return -1            # the pullupblock of the options fails
    optr = h + TCPHDRLEN
    n = hdrlen - TCPHDRLEN
    while True:
        optlen = tcpoptnext(optr, n, &kind)
        if optlen <= 0:
            break
        if kind == MSSOPT:
            if optlen == MSS_LENGTH:
                t.mss = nhgets(optr + 2)
        elif kind == WSOPT:
            if optlen == WS_LENGTH and optr[2] <= 14:
                t.ws = optr[2]
                t.hasws = 1
        # beyond tcp.c: RFC 2018 and RFC 7323 options (used only by
        # conversations of the modern profile)
        elif kind == SACKPERMOPT:
            if optlen == SACKPERM_LENGTH:
                t.sackok = 1
        elif kind == SACKOPT:
            if optlen >= 10 and (optlen - 2) % 8 == 0:
                i = 0
                while i < (optlen - 2) // 8 and t.nsack < MAXSACK:
                    t.sack[2 * t.nsack] = nhgetl(optr + 2 + 8 * i)
                    t.sack[2 * t.nsack + 1] = nhgetl(optr + 6 + 8 * i)
                    t.nsack += 1
                    i += 1
        elif kind == TSOPT:
            if optlen == TS_LENGTH:
                t.hasts = 1
                t.tsval = nhgetl(optr + 2)
                t.tsecr = nhgetl(optr + 6)
        n -= optlen
        optr += optlen
    return hdrlen
