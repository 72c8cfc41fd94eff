# IP address and ctl-text helpers with the exact behaviour of 9front's
# libip (parseip.c, eipfmt.c, ipaux.c), the kernel's ipaux.c multicast
# tests, libc's strtoul/strtol/tokenize and the kernel's port/parse.c.
# devip's address and ctl syntax: net9(4).  Not a hot path:
# everything here works on Python bytes/str.
#
# Integer widths follow Plan 9, where long and ulong are 32 bits on every
# architecture; that decides overflow in strtoul/strtol.

from net9 import errors
from net9.errors import Net9Error

IPaddrlen = 16
IPv4addrlen = 4
IPv4off = 12
V4 = 4
V6 = 6

# libip ipaux.c: well known addresses
IPnoaddr = bytes(16)
v4prefix = bytes(10) + b"\xff\xff" + bytes(4)
IPv4bcast = bytes(10) + b"\xff\xff" + b"\xff\xff\xff\xff"
IPv4allsys = bytes(10) + b"\xff\xff" + b"\xe0\x00\x00\x01"
IPv4allrouter = bytes(10) + b"\xff\xff" + b"\xe0\x00\x00\x02"
IPallbits = b"\xff" * 16

_V4PFX12 = v4prefix[:IPv4off]

cdef unsigned long long ULONG_MAX = 0xffffffffULL
cdef long long LONG_MAX = 0x7fffffffLL
cdef long long LONG_MIN = -0x80000000LL


# ---------------------------------------------------------------------------
# byte strings with a C-style terminator

cdef bytes _cstr(object s):
    """s (str or bytes-like) as bytes cut at the first NUL, NUL-terminated,
    so that indexing one past the text reads 0 as in C."""
    cdef bytes b
    if isinstance(s, str):
        b = (<str>s).encode("utf-8", "surrogateescape")
    elif isinstance(s, (bytes, bytearray, memoryview)):
        b = bytes(s)
    else:
        raise TypeError("expected str or bytes, not %s" % type(s).__name__)
    cdef Py_ssize_t z = b.find(b"\0")
    if z >= 0:
        b = b[:z]
    return b + b"\0"


cdef inline int _isspace(int c):
    # the white space skipped by libc strtoul/strtol
    return c == 32 or c == 9 or c == 10 or c == 12 or c == 13 or c == 11


cdef inline int _digitval(int c):
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 122:
        return c - 97 + 10
    if 65 <= c <= 90:
        return c - 65 + 10
    return 99


cdef inline int _ishex(int c):
    return (48 <= c <= 57) or (97 <= c <= 102) or (65 <= c <= 70)


cdef int _isalnum(int c):
    return (48 <= c <= 57) or (97 <= c <= 122) or (65 <= c <= 90)


cdef tuple _strtoul(bytes b, Py_ssize_t nptr, int base):
    """libc port/strtoul.c on b starting at index nptr: (value, end index),
    value a 32-bit unsigned long."""
    cdef const unsigned char *s = b
    cdef Py_ssize_t p = nptr
    cdef unsigned long long n = 0, m, nn
    cdef int neg = 0, ovfl = 0, ndig = 0, v
    while _isspace(s[p]):
        p += 1
    if s[p] == b'-' or s[p] == b'+':
        if s[p] == b'-':
            neg = 1
        p += 1
    if base == 0:
        if s[p] != b'0':
            base = 10
        else:
            base = 8
            if s[p+1] == b'x' or s[p+1] == b'X':
                base = 16
    if base < 2 or base > 36:
        return 0, nptr
    if base == 16 and s[p] == b'0':
        if s[p+1] == b'x' or s[p+1] == b'X':
            if _ishex(s[p+2]):
                p += 2
    m = ULONG_MAX // base
    while True:
        v = _digitval(s[p])
        if v >= base:
            break
        if n > m:
            ovfl = 1
        nn = (n * base + v) & ULONG_MAX
        if nn < n:
            ovfl = 1
        n = nn
        p += 1
        ndig += 1
    if ndig == 0:
        p = nptr
    if ovfl:
        return ULONG_MAX, p
    if neg:
        return (-n) & ULONG_MAX, p
    return n, p


cdef inline long long _wrap32(long long x):
    x &= 0xffffffff
    if x >= 0x80000000:
        x -= 0x100000000
    return x


cdef tuple _strtol10(bytes b, Py_ssize_t nptr):
    """libc port/strtol.c, base 10, on b from index nptr: (value, end
    index), value a 32-bit signed long."""
    cdef const unsigned char *s = b
    cdef Py_ssize_t p = nptr
    cdef long long n = 0, nn
    cdef long long m = LONG_MAX // 10
    cdef int neg = 0, ovfl = 0, ndig = 0, v
    while _isspace(s[p]):
        p += 1
    if s[p] == b'-' or s[p] == b'+':
        if s[p] == b'-':
            neg = 1
        p += 1
    while True:
        v = _digitval(s[p])
        if v >= 10:
            break
        if n > m:
            ovfl = 1
        nn = _wrap32(n * 10 + v)
        if nn < n:
            ovfl = 1
        n = nn
        p += 1
        ndig += 1
    if ndig == 0:
        p = nptr
    if ovfl:
        return (LONG_MIN if neg else LONG_MAX), p
    if neg:
        return _wrap32(-n), p
    return n, p


def strtoul(s, int base=0):
    """libc strtoul on s: (value, index of the first unparsed character).
    With no digits the index is 0, as C sets *endptr = nptr."""
    b = _cstr(s)
    return _strtoul(b, 0, base)


def strtol(s):
    """libc strtol(s, &p, 10): (value, index of the first unparsed character)."""
    b = _cstr(s)
    return _strtol10(b, 0)


# ---------------------------------------------------------------------------
# parseip (libip/parseip.c)

cdef Py_ssize_t _v4parseip(bytearray to, Py_ssize_t off, bytes b, Py_ssize_t p):
    cdef const unsigned char *s = b
    cdef int i = 0
    cdef unsigned long long x
    while i < 4 and s[p] != 0:
        x, p = _strtoul(b, p, 0)
        to[off+i] = x & 0xff
        if s[p] == b'.':
            p += 1
        i += 1
    cdef int cls = to[off] >> 6
    if cls == 0 or cls == 1:        # class A: 1 byte net
        if i == 3:
            to[off+3] = to[off+2]
            to[off+2] = to[off+1]
            to[off+1] = 0
        elif i == 2:
            to[off+3] = to[off+1]
            to[off+1] = 0
    elif cls == 2:                  # class B: 2 byte net
        if i == 3:
            to[off+3] = to[off+2]
            to[off+2] = 0
    return p


cdef inline int _ipcharok(int c):
    return c == b'.' or c == b':' or (c < 128 and _ishex(c))


cdef inline int _delimchar(int c):
    if c == 0:
        return 1
    if c == b'.' or c == b':' or (c < 128 and _isalnum(c)):
        return 0
    return 1


def v4parseip(s):
    """libip v4parseip: dotted IPv4 with classful short forms, each part
    strtoul base 0.  Returns (4 bytes, index where parsing stopped); never
    fails by itself."""
    b = _cstr(s)
    to = bytearray(4)
    p = _v4parseip(to, 0, b, 0)
    return bytes(to), p


cdef object _parseip(bytes b):
    """parseip on the NUL-terminated b: 16 bytes, or None on a parse error."""
    cdef const unsigned char *s = b
    cdef bytearray to = bytearray(16)
    cdef int i = 0, elipsis = 0, v4 = 1
    cdef unsigned long long x
    cdef Py_ssize_t p = 0, op
    while i < IPaddrlen and _ipcharok(s[p]):
        op = p
        x, p = _strtoul(b, p, 16)
        if s[p] == b'.' or (s[p] == 0 and i == 0):     # ends with v4?
            if i > IPaddrlen - 4:
                return None
            p = _v4parseip(to, i, b, op)
            i += 4
            break
        # v6: at most 4 hex digits, followed by colon or delimiter
        if x > 0xffff or (s[p] != b':' and not _delimchar(s[p])):
            return None
        to[i] = (x >> 8) & 0xff
        to[i+1] = x & 0xff
        if s[p] == b':':
            v4 = 0
            p += 1
            if s[p] == b':':            # :: is elided zero groups
                if elipsis:
                    return None         # second ::
                elipsis = i + 2
                p += 1
        elif p == op:                   # no progress
            break
        i += 2
    if p == 0 or not _delimchar(s[p]):
        return None
    if i < IPaddrlen:
        to[elipsis+IPaddrlen-i:IPaddrlen] = to[elipsis:i]
        to[elipsis:elipsis+IPaddrlen-i] = bytes(IPaddrlen - i)
    if v4:
        to[10] = 0xff
        to[11] = 0xff
    return bytes(to)


def parseip(s):
    """Parse an IP address like 9front's libip parseip: 16 bytes, IPv4 as
    v4-mapped.  Like the original it stops at the first delimiter (any
    character other than '.', ':' or an ASCII letter or digit), so trailing
    text after, e.g., a blank is ignored.  Raises Net9Error("bad ip address
    syntax") where parseip returns -1."""
    r = _parseip(_cstr(s))
    if r is None:
        raise Net9Error(errors.Ebadip)
    return r


# ---------------------------------------------------------------------------
# address printing (libip/eipfmt.c %I) and ipaux helpers

cdef bytes _ip16(object a):
    cdef bytes b = bytes(a)
    if len(b) != IPaddrlen:
        raise ValueError("IP address must be 16 bytes, got %d" % len(b))
    return b


def fmtip(a):
    """eipfmt's %I: v4-mapped as a dotted quad, else lowercase hex groups
    with the longest run of zero groups (first on a tie, even a single
    group) written as '::'."""
    cdef bytes p = _ip16(a)
    cdef int i, j, eln = -1, eli = -1
    if p[:IPv4off] == _V4PFX12:
        return "%d.%d.%d.%d" % (p[12], p[13], p[14], p[15])
    # longest elision
    i = 0
    while i < 16:
        j = i
        while j < 16 and p[j] == 0 and p[j+1] == 0:
            j += 2
        if j > i and j - i > eln:
            eli = i
            eln = j - i
        i += 2
    out = []
    i = 0
    while i < 16:
        if i == eli:
            out.append("::")
            i += eln
            if i >= 16:
                break
        elif i != 0:
            out.append(":")
        out.append("%x" % ((p[i] << 8) | p[i+1]))
        i += 2
    return "".join(out)


def fmtipport(a, int port):
    """"%I!%d" as in the local and remote files (without the newline)."""
    return "%s!%d" % (fmtip(a), port)


def isv4(a):
    """ipaux.c isv4: the first 12 bytes are the v4 prefix (so IPnoaddr is
    not v4)."""
    return bytes(a[:IPv4off]) == _V4PFX12


def v4tov6(a):
    """4-byte IPv4 address -> 16-byte v4-mapped address."""
    cdef bytes b = bytes(a)
    if len(b) != IPv4addrlen:
        raise ValueError("IPv4 address must be 4 bytes, got %d" % len(b))
    return _V4PFX12 + b


def v6tov4(a):
    """The low 4 bytes of a v4-mapped address.  As in ipaux.c, any other
    address (including IPnoaddr) gives 0.0.0.0; use isv4 to tell them
    apart."""
    cdef bytes b = _ip16(a)
    if b[:IPv4off] == _V4PFX12:
        return b[IPv4off:]
    return bytes(4)


def isv4mcast(a):
    """ip.h isv4mcast on a 4-byte address: 224.0.0.0/4."""
    return 0xe0 <= a[0] < 0xf0


def isv6mcast(a):
    """ipv6.h isv6mcast: ff00::/8."""
    return a[0] == 0xff


def isv4multicast(a):
    """True for a v4 multicast address given as 4 bytes or v4-mapped 16 bytes."""
    if len(a) == IPv4addrlen:
        return isv4mcast(a)
    return isv4(_ip16(a)) and 0xe0 <= a[IPv4off] < 0xf0


def ipismulticast(a):
    """ipaux.c ipismulticast: V4 (4) for v4-mapped 224/4, V6 (6) for
    ff00::/8, else 0."""
    cdef bytes b = _ip16(a)
    if b[:IPv4off] == _V4PFX12:
        if 0xe0 <= b[IPv4off] < 0xf0:
            return V4
    elif b[0] == 0xff:
        return V6
    return 0


def ipcmp(a, b):
    """memcmp over 16 bytes: <0, 0 or >0 (0 means equal)."""
    cdef bytes x = _ip16(a), y = _ip16(b)
    return (x > y) - (x < y)


# ---------------------------------------------------------------------------
# ports: devip.c setraddrport / setladdrport

def parseport(s):
    """Parse a port as devip does: strtol base 10, then the next character
    must be the end or '!', else Net9Error("bad numeric port").  Returns
    (port modulo 65536, the rest of s from that character on)."""
    b = _cstr(s)
    n, p = _strtol10(b, 0)
    if p <= 0 or (b[p] != 0 and b[p] != 0x21):    # '!'
        raise Net9Error(errors.Ebadport)
    rest = b[p:len(b)-1]
    if isinstance(s, str):
        rest = rest.decode("utf-8", "surrogateescape")
    return n & 0xffff, rest


# ---------------------------------------------------------------------------
# ctl text: libc tokenize and port/parse.c parsecmd

cdef list _tokenize(str s):
    # libc tokenize: separators blank, tab, \r, \n; single quotes group,
    # '' inside quotes is one quote; an unclosed quote runs to the end.
    cdef list args = []
    cdef Py_ssize_t t = 0, n = len(s)
    cdef bint quoting
    cdef Py_UCS4 c
    while True:
        while t < n and s[t] in " \t\r\n":
            t += 1
        if t >= n:
            break
        out = []
        quoting = False
        while t < n and (quoting or s[t] not in " \t\r\n"):
            c = s[t]
            if c != u"'":
                out.append(c)
                t += 1
            elif not quoting:
                quoting = True
                t += 1
            elif t + 1 >= n or s[t+1] != u"'":
                quoting = False
                t += 1
            else:
                out.append(u"'")
                t += 2
        args.append("".join(out))
    return args


cdef str _text(object s):
    if isinstance(s, str):
        return s
    if isinstance(s, (bytes, bytearray, memoryview)):
        return bytes(s).decode("utf-8", "surrogateescape")
    raise TypeError("expected str or bytes, not %s" % type(s).__name__)


def tokenize(s):
    """libc tokenize(s, args, ∞): the fields of s (the text ends at a NUL)."""
    s = _text(s)
    z = s.find("\0")
    if z >= 0:
        s = s[:z]
    return _tokenize(s)


def parsecmd(s):
    """port/parse.c parsecmd: drop one trailing newline, then tokenize.
    Bytes are decoded as UTF-8 (undecodable bytes kept as surrogates)."""
    s = _text(s)
    if s.endswith("\n"):
        s = s[:len(s)-1]
    z = s.find("\0")
    if z >= 0:
        s = s[:z]
    return _tokenize(s)


def atoi(s):
    """Plan 9's atoi (libc atol): blanks and tabs, an optional sign (blanks
    may follow it), then 0x/0X hex, a leading 0 for octal, or decimal; stops
    at the first character that does not fit; 0 when there are no digits.
    The result wraps to 32 bits like Plan 9's long."""
    cdef bytes b = _cstr(s)
    cdef Py_ssize_t i = 0, n = len(b)
    cdef long long v = 0
    cdef bint neg = 0
    cdef int c, d
    while i < n and (b[i] == 0x20 or b[i] == 0x09):
        i += 1
    if i < n and (b[i] == 0x2d or b[i] == 0x2b):
        neg = b[i] == 0x2d
        i += 1
        while i < n and (b[i] == 0x20 or b[i] == 0x09):
            i += 1
    if i + 1 < n and b[i] == 0x30 and (b[i + 1] == 0x78 or b[i + 1] == 0x58):
        i += 2
        while i < n:
            c = b[i]
            if 0x30 <= c <= 0x39:
                d = c - 0x30
            elif 0x61 <= c <= 0x66:
                d = c - 0x61 + 10
            elif 0x41 <= c <= 0x46:
                d = c - 0x41 + 10
            else:
                break
            v = (v * 16 + d) & 0xffffffff
            i += 1
    elif i + 1 < n and b[i] == 0x30:
        while i < n and 0x30 <= b[i] <= 0x37:
            v = (v * 8 + b[i] - 0x30) & 0xffffffff
            i += 1
    else:
        while i < n and 0x30 <= b[i] <= 0x39:
            v = (v * 10 + b[i] - 0x30) & 0xffffffff
            i += 1
    if neg:
        v = (-v) & 0xffffffff
    return _wrap32(v)
