# cython: language_level=3
"""netlog (9front sys/src/9/ip/netlog.c): debugging messages by category,
kept in a bounded buffer and read through /net/log (devip.md section 11.4).

Callers test the mask before formatting a message:

    if log.mask & Logtcp:
        log.log(Logtcp, "sndrst: %s" % reason)

Differences from netlog.c, none visible through /net/log's contract:
messages are not cut at 255 bytes; whether anybody has /net/log open (the
kernel logs only then) is the file server's business; the buffer is a
bytearray with the oldest text at its front instead of a ring.
"""

import ipaddress

from net9.errors import Net9Error

Nlog = 16 * 1024
ERRMAX = 128

# Python-level copies of the categories (ip.h).  The ones in netlog.pxd are
# C enum constants there, so they are published through globals(); il and
# ilmsg (no IL in net9) exist only for the flag table.
Logil = 1 << 4
Logilmsg = 1 << 8
for _name, _value in (("Logip", Logip), ("Logtcp", Logtcp), ("Logfs", Logfs),
                      ("Logicmp", Logicmp), ("Logudp", Logudp),
                      ("Logcompress", Logcompress), ("Loggre", Loggre),
                      ("Logppp", Logppp), ("Logtcprxmt", Logtcprxmt),
                      ("Logigmp", Logigmp), ("Logudpmsg", Logudpmsg),
                      ("Logipmsg", Logipmsg), ("Logrudp", Logrudp),
                      ("Logrudpmsg", Logrudpmsg), ("Logesp", Logesp),
                      ("Logtcpwin", Logtcpwin), ("Logtrans", Logtrans)):
    globals()[_name] = _value
del _name, _value

# netlog.c's flag table as devip.md 11.4 lists it (names -> bits set/cleared)
FLAGS = {
    "ppp": Logppp,
    "ip": Logip,
    "fs": Logfs,
    "il": Logil,
    "tcp": Logtcp,
    "icmp": Logicmp,
    "igmp": Logigmp,
    "udp": Logudp,
    "compress": Logcompress,
    "logilmsg": Logilmsg,
    "gre": Loggre,
    "tcpwin": Logtcp | Logtcpwin,
    "tcprxmt": Logtcp | Logtcprxmt,
    "udpmsg": Logudp | Logudpmsg,
    "ipmsg": Logip | Logipmsg,
    "esp": Logesp,
    "trans": Logtrans,
}

Ebadnetctl = "too few arguments for netlog control message"

_WHITE = " \t\r\n"
_V4PREFIX = b"\x00" * 10 + b"\xff\xff"


def tokenize(s):
    """Plan 9 tokenize(2): fields separated by blanks, tabs, CR and
    newlines; single quotes protect blanks, '' inside quotes is a quote."""
    out = []
    i = 0
    n = len(s)
    while True:
        while i < n and s[i] in _WHITE:
            i += 1
        if i >= n:
            return out
        f = []
        quoting = False
        while i < n and (quoting or s[i] not in _WHITE):
            c = s[i]
            if c != "'":
                f.append(c)
                i += 1
            elif not quoting:
                quoting = True
                i += 1
            elif i + 1 < n and s[i + 1] == "'":
                f.append("'")
                i += 2
            else:
                quoting = False
                i += 1
        out.append("".join(f))


def _quote(f):
    """%q: quote a field if it is empty or holds a blank, control
    character or quote."""
    if f and not any(c <= " " or c == "'" for c in f):
        return f
    return "'" + f.replace("'", "''") + "'"


def parsecmd(msg):
    """parsecmd: drop one trailing newline, tokenize."""
    if msg.endswith("\n"):
        msg = msg[:len(msg) - 1]
    return tokenize(msg)


def cmderror(fields, s):
    """port/parse.c cmderror: s and the re-quoted message, cut to fit
    ERRMAX-10 bytes before the closing quote."""
    text = "%s \"%s" % (s, " ".join(_quote(f) for f in fields))
    b = text.encode("utf-8")
    if len(b) > ERRMAX - 11:
        text = b[:ERRMAX - 11].decode("utf-8", "ignore")
    return Net9Error(text + "\"")


def parseip(text):
    """libip parseip, roughly: 16 bytes (IPv4 as v4-mapped), or None when
    the text is not an address."""
    try:
        a = ipaddress.ip_address(text)
    except ValueError:
        return None
    if a.version == 4:
        return _V4PREFIX + a.packed
    return a.packed


cdef class Netlog:

    def __cinit__(self, *args, **kwargs):
        self.buf = bytearray()
        self.limit = Nlog

    def __init__(self, unsigned int mask=0, Py_ssize_t limit=Nlog):
        if limit <= 0:
            raise ValueError("netlog limit must be positive")
        self.mask = mask
        self.limit = limit
        self.iponly = None
        self.wakecb = None

    def __len__(self):
        return len(self.buf)

    cpdef log(self, unsigned int cat, str msg):
        """netlog: record msg (a newline is added if missing) when a bit of
        cat is enabled; the oldest text goes when the buffer is full."""
        cdef bytes b
        cdef Py_ssize_t over
        if not (cat & self.mask):
            return
        if not msg.endswith("\n"):
            msg += "\n"
        b = msg.encode("utf-8", "replace")
        if len(b) >= self.limit:
            self.buf[:] = b[len(b) - self.limit:]
        else:
            over = len(self.buf) + len(b) - self.limit
            if over > 0:
                del self.buf[:over]
            self.buf += b
        if self.wakecb is not None:
            self.wakecb()

    cpdef object read(self, Py_ssize_t n):
        """netlogread without the sleep: up to n bytes, b"" when empty (the
        caller parks the reader and retries when wakecb fires)."""
        cdef bytes out
        if n <= 0 or not self.buf:
            return b""
        if n >= len(self.buf):
            out = bytes(self.buf)
            self.buf.clear()
        else:
            out = bytes(self.buf[:n])
            del self.buf[:n]
        return out

    cpdef ctl(self, str msg):
        """netlogctl: "set flag...", "clear flag...", "only addr"."""
        cdef list f = parsecmd(msg)
        cdef unsigned int bits
        if len(f) < 2:
            raise Net9Error(Ebadnetctl)
        verb = f[0]
        if verb == "only":
            a = parseip(f[1])
            if a is None or a == bytes(16):
                self.iponly = None
            else:
                self.iponly = a
            return
        if verb == "set":
            for name in f[1:]:
                self.mask |= <unsigned int>FLAGS.get(name, 0)
        elif verb == "clear":
            bits = 0
            for name in f[1:]:
                bits |= <unsigned int>FLAGS.get(name, 0)
            self.mask &= ~bits
        else:
            raise cmderror(f, "unknown control message")
