# cython: language_level=3
"""The 9P2000 and 9P2000.L wire codec of net9's /net server.

Messages are parsed by a small format language, one character per field:

    1 2 4 8   unsigned little-endian integers of that many bytes
    s         string: u16 length + UTF-8 bytes (invalid UTF-8 is replaced)
    w         walk names: u16 count + that many strings
    d         data: u32 count + that many bytes (Twrite, Rread, Rreaddir)
    S         stat: u16 count + that many bytes (Twstat, Rstat)
    Q         qid: type[1] vers[4] path[8] (a tuple (type, vers, path))
    W         Rwalk qids: u16 count + that many qids (a sequence of tuples)
    ?         the fields after it may be missing (None), e.g. Tattach's
              n_uname, which 9P2000 clients do not send

Every length is checked against the message: a string or a count that runs
past the end makes the message malformed, never a read out of bounds.
Trailing bytes after the last field are ignored (Linux's Tfsync has grown a
field).

parse(buf, maxsize, dotl) splits a byte buffer into whole messages and
decodes each: it returns (items, consumed, fatal) where each item is a
named tuple (type, tag, field...) of the message's class (msgclass: e.g.
Tread(type, tag, fid, offset, count)) or, for a message that could not be
decoded, Bad(BAD, tag, type, reason) or Unknown(UNKNOWN, tag, type); fatal is a reason string
when the framing itself is broken (size < 7 or > maxsize): the connection
cannot continue.  parse stops after a Tversion (it may change the dialect
of the messages that follow): call it again for the rest.

R-messages have named fields too, from the same kind of table: unpackr and
ReplyReader give e.g. Ropen(type, tag, qid, iounit), Rerror(type, tag,
ename); the server packs its replies positionally (pack(Rwrite, tag, n)),
so its reply path makes no message object.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from libc.string cimport memcpy, memmove
from libc.stdlib cimport malloc, realloc, free
from libc.errno cimport errno, EINTR, EAGAIN
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from cpython.object cimport PyObject, PyTypeObject

cdef extern from "Python.h":
    object PyType_GenericAlloc(PyTypeObject *type, Py_ssize_t nitems)
    void PyTuple_SET_ITEM(PyObject *p, Py_ssize_t pos, PyObject *o)
    void Py_INCREF(PyObject *o)
    PyObject *PyList_GET_ITEM(object l, Py_ssize_t i)


cdef inline object _named(object cls, list items):
    """A named tuple of class cls (a tuple subclass) holding items: made as
    tuple.__new__ would, without its argument tuple and temporary copy."""
    cdef Py_ssize_t i, n = len(items)
    cdef object t = PyType_GenericAlloc(<PyTypeObject *>cls, n)   # a new reference
    cdef PyObject *o = <PyObject *>t
    cdef PyObject *x
    for i in range(n):
        x = PyList_GET_ITEM(items, i)
        Py_INCREF(x)
        PyTuple_SET_ITEM(o, i, x)
    return t

from collections import namedtuple

# ---- message types -------------------------------------------------------

# 9P2000
Tversion = 100
Rversion = 101
Tauth = 102
Rauth = 103
Tattach = 104
Rattach = 105
Terror = 106
Rerror = 107
Tflush = 108
Rflush = 109
Twalk = 110
Rwalk = 111
Topen = 112
Ropen = 113
Tcreate = 114
Rcreate = 115
Tread = 116
Rread = 117
Twrite = 118
Rwrite = 119
Tclunk = 120
Rclunk = 121
Tremove = 122
Rremove = 123
Tstat = 124
Rstat = 125
Twstat = 126
Rwstat = 127

# 9P2000.L
Tlerror = 6
Rlerror = 7
Tstatfs = 8
Rstatfs = 9
Tlopen = 12
Rlopen = 13
Tlcreate = 14
Rlcreate = 15
Tsymlink = 16
Rsymlink = 17
Tmknod = 18
Rmknod = 19
Trename = 20
Rrename = 21
Treadlink = 22
Rreadlink = 23
Tgetattr = 24
Rgetattr = 25
Tsetattr = 26
Rsetattr = 27
Txattrwalk = 30
Rxattrwalk = 31
Txattrcreate = 32
Rxattrcreate = 33
Treaddir = 40
Rreaddir = 41
Tfsync = 50
Rfsync = 51
Tlock = 52
Rlock = 53
Tgetlock = 54
Rgetlock = 55
Tlink = 70
Rlink = 71
Tmkdir = 72
Rmkdir = 73
Trenameat = 74
Rrenameat = 75
Tunlinkat = 76
Runlinkat = 77

BAD = -1          # parse item: (BAD, tag, type, reason)
UNKNOWN = -2      # parse item: (UNKNOWN, tag, type)

NOTAG = 0xFFFF
NOFID = 0xFFFFFFFF
NONUNAME = 0xFFFFFFFF
cdef enum:
    C_HDRSZ = 7
IOHDRSZ = 24      # Twrite/Rread header allowance (size tag fid offset count)
HDRSZ = C_HDRSZ   # size[4] type[1] tag[2]
MAXWELEM = 16

QTDIR = 0x80
QTFILE = 0
DMDIR = 0x80000000

# The messages: a row each, "Name type format field...", the format (the
# letters above; - for none) driving the codec, the names making the
# message classes parse and unpackr return (msgclass, rmsgclass).

cdef dict _table(str text):
    """type -> (format, "Name field...") of a table's rows (a row indented
    further holds more fields of the row above)."""
    cdef dict out = {}
    t = None
    for row in text.splitlines():
        if not row.strip():
            continue
        if row.startswith("        "):
            fmt, names = out[t]
            out[t] = (fmt, names + " " + " ".join(row.split()))
            continue
        name, t, fmt, *fields = row.split()
        t = int(t)
        out[t] = ("" if fmt == "-" else fmt, " ".join([name] + fields))
    return out


# T-messages common to both dialects (Tauth and Tattach may carry
# 9P2000.u's n_uname, which .L sends too)
cdef dict _TCOMMONDEF = _table("""
    Tversion      100  4s                    msize version
    Tflush        108  2                     oldtag
    Twalk         110  44w                   fid newfid wname
    Tread         116  484                   fid offset count
    Twrite        118  48d                   fid offset data
    Tclunk        120  4                     fid
    Tremove       122  4                     fid
    Tauth         102  4ss?4                 afid uname aname n_uname
    Tattach       104  44ss?4                fid afid uname aname n_uname
""")

# 9P2000 only
cdef dict _T9PDEF = dict(_TCOMMONDEF)
_T9PDEF.update(_table("""
    Topen         112  41                    fid mode
    Tcreate       114  4s41                  fid name perm mode
    Tstat         124  4                     fid
    Twstat        126  4S                    fid stat
"""))

# 9P2000.L (Tfsync's datasync, which newer Linux sends, is ignored;
# Tlock's and Tgetlock's lock type is ltype: type is the message's)
cdef dict _TLDEF = dict(_TCOMMONDEF)
_TLDEF.update(_table("""
    Tstatfs         8  4                     fid
    Tlopen         12  44                    fid flags
    Tlcreate       14  4s444                 fid name flags mode gid
    Tsymlink       16  4ss4                  fid name symtgt gid
    Tmknod         18  4s4444                dfid name mode major minor gid
    Trename        20  44s                   fid dfid name
    Treadlink      22  4                     fid
    Tgetattr       24  48                    fid request_mask
    Tsetattr       26  4444488888            fid valid mode uid gid size atime_sec atime_nsec
                                             mtime_sec mtime_nsec
    Txattrwalk     30  44s                   fid newfid name
    Txattrcreate   32  4s84                  fid name attr_size flags
    Treaddir       40  484                   fid offset count
    Tfsync         50  4                     fid
    Tlock          52  414884s               fid ltype flags start length proc_id client_id
    Tgetlock       54  41884s                fid ltype start length proc_id client_id
    Tlink          70  44s                   dfid fid name
    Tmkdir         72  4s44                  dfid name mode gid
    Trenameat      74  4s4s                  olddirfid oldname newdirfid newname
    Tunlinkat      76  4s4                   dirfd name flags
"""))

cdef dict _T9P = {t: d[0] for t, d in _T9PDEF.items()}
cdef dict _TL = {t: d[0] for t, d in _TLDEF.items()}


def _msgclasses(dict defs):
    """A named tuple class per message of defs: (type, tag, field...)."""
    out = {}
    for t, (fmt, names) in defs.items():
        name, *fields = names.split()
        if len(fields) != len(fmt.replace("?", "")):
            raise AssertionError("%s: %d names for format %r" % (name, len(fields), fmt))
        cls = namedtuple(name, ["type", "tag"] + fields)
        cls.__module__ = __name__
        out[t] = cls
    return out


cdef dict _T9PCLS = _msgclasses(_T9PDEF)
cdef dict _TLCLS = _msgclasses(_TLDEF)
_TLCLS.update({t: c for t, c in _T9PCLS.items() if t in _TLCLS and
               _T9PDEF[t] == _TLDEF[t]})     # one class where the dialects agree

# what parse gives for a message it cannot decode or does not know: type
# is BAD or UNKNOWN (as every item's type says what it is), msgtype the
# message's own type
Bad = namedtuple("Bad", "type tag msgtype reason")
Unknown = namedtuple("Unknown", "type tag msgtype")
Bad.__module__ = Unknown.__module__ = __name__


def msgclass(int type, bint dotl):
    """The named tuple class parse returns for a T-message type in a
    dialect (fields type, tag, then the message's own), or None."""
    return (_TLCLS if dotl else _T9PCLS).get(type)


def rmsgclass(int type):
    """The named tuple class unpackr returns for an R-message type (either
    dialect: fields type, tag, then the message's own), or None."""
    return _RCLS.get(type)


# R-messages, as the T-messages: one table, the types do not overlap
# between the dialects.  (Rstatfs's and Rgetlock's own type fields are
# fstype and ltype: type is the message's.)
cdef dict _RDEF = _table("""
    Rversion      101  4s                    msize version
    Rauth         103  Q                     aqid
    Rattach       105  Q                     qid
    Rerror        107  s                     ename
    Rflush        109  -
    Rwalk         111  W                     wqid
    Ropen         113  Q4                    qid iounit
    Rcreate       115  Q4                    qid iounit
    Rread         117  d                     data
    Rwrite        119  4                     count
    Rclunk        121  -
    Rremove       123  -
    Rstat         125  S                     stat
    Rwstat        127  -
    Rlerror         7  4                     ecode
    Rstatfs         9  448888884             fstype bsize blocks bfree bavail files ffree fsid
                                             namelen
    Rlopen         13  Q4                    qid iounit
    Rlcreate       15  Q4                    qid iounit
    Rsymlink       17  Q                     qid
    Rmknod         19  Q                     qid
    Rrename        21  -
    Rreadlink      23  s                     target
    Rgetattr       25  8Q444888888888888888  valid qid mode uid gid nlink rdev size blksize
                                             blocks atime_sec atime_nsec mtime_sec mtime_nsec
                                             ctime_sec ctime_nsec btime_sec btime_nsec gen
                                             data_version
    Rsetattr       27  -
    Rxattrwalk     31  8                     size
    Rxattrcreate   33  -
    Rreaddir       41  d                     data
    Rfsync         51  -
    Rlock          53  1                     status
    Rgetlock       55  1884s                 ltype start length proc_id client_id
    Rlink          71  -
    Rmkdir         73  Q                     qid
    Rrenameat      75  -
    Runlinkat      77  -
""")
cdef dict _RFMT = {t: d[0] for t, d in _RDEF.items()}
cdef dict _RCLS = _msgclasses(_RDEF)


def tformat(int type, bint dotl):
    """The field format of a T-message type in a dialect, or None."""
    return (_TL if dotl else _T9P).get(type)


class Malformed(Exception):
    """A message or stat buffer that does not decode."""


# ---- low level -----------------------------------------------------------

cdef inline uint32_t g16(const uint8_t *p) noexcept:
    return p[0] | (<uint32_t>p[1] << 8)

cdef inline uint32_t g32(const uint8_t *p) noexcept:
    return p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)

cdef inline uint64_t g64(const uint8_t *p) noexcept:
    return g32(p) | (<uint64_t>g32(p + 4) << 32)

cdef inline void p16(uint8_t *p, uint32_t v) noexcept:
    p[0] = v & 0xFF
    p[1] = (v >> 8) & 0xFF

cdef inline void p32(uint8_t *p, uint32_t v) noexcept:
    p[0] = v & 0xFF
    p[1] = (v >> 8) & 0xFF
    p[2] = (v >> 16) & 0xFF
    p[3] = (v >> 24) & 0xFF

cdef inline void p64(uint8_t *p, uint64_t v) noexcept:
    p32(p, <uint32_t>(v & 0xFFFFFFFF))
    p32(p + 4, <uint32_t>(v >> 32))


cdef object _decode(const uint8_t *p, Py_ssize_t n, str fmt, list out=None):
    """Decode the fields of fmt from p[0:n]: a list (out, if given, with
    the fields appended), or a str reason."""
    cdef Py_ssize_t i = 0, k, m, cnt, j
    cdef bint optional = False
    cdef list names
    if out is None:
        out = []
    for ch in fmt:
        if ch == "?":
            optional = True
            continue
        if optional and i >= n:
            out.append(None)
            continue
        if ch == "1":
            if i + 1 > n:
                return "short message"
            out.append(p[i])
            i += 1
        elif ch == "2":
            if i + 2 > n:
                return "short message"
            out.append(g16(p + i))
            i += 2
        elif ch == "4":
            if i + 4 > n:
                return "short message"
            out.append(g32(p + i))
            i += 4
        elif ch == "8":
            if i + 8 > n:
                return "short message"
            out.append(g64(p + i))
            i += 8
        elif ch == "s":
            if i + 2 > n:
                return "short message"
            m = g16(p + i)
            i += 2
            if i + m > n:
                return "string runs past the message"
            out.append((<const char*>p)[i:i + m].decode("utf-8", "replace"))
            i += m
        elif ch == "w":
            if i + 2 > n:
                return "short message"
            cnt = g16(p + i)
            i += 2
            names = []
            for j in range(cnt):
                if i + 2 > n:
                    return "walk names run past the message"
                m = g16(p + i)
                i += 2
                if i + m > n:
                    return "string runs past the message"
                names.append((<const char*>p)[i:i + m].decode("utf-8", "replace"))
                i += m
            out.append(names)
        elif ch == "d":
            if i + 4 > n:
                return "short message"
            m = g32(p + i)
            i += 4
            if m > n - i:
                return "count runs past the message"
            out.append((<const char*>p)[i:i + m])
            i += m
        elif ch == "S":
            if i + 2 > n:
                return "short message"
            m = g16(p + i)
            i += 2
            if i + m > n:
                return "stat runs past the message"
            out.append((<const char*>p)[i:i + m])
            i += m
        elif ch == "Q":
            if i + 13 > n:
                return "short message"
            out.append((p[i], g32(p + i + 1), g64(p + i + 5)))
            i += 13
        else:
            raise ValueError("bad format character %r" % ch)
    return out


def parse(buf, Py_ssize_t maxsize, bint dotl):
    """Split buf (bytes-like) into whole 9P messages and decode them.
    Returns (items, consumed, fatal); see the module docstring."""
    cdef Py_buffer view
    cdef const uint8_t *p
    cdef Py_ssize_t n, off = 0
    cdef uint32_t size, typ, tag
    cdef list items = []
    cdef dict table = _TL if dotl else _T9P
    cdef dict classes = _TLCLS if dotl else _T9PCLS
    fatal = None
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    try:
        p = <const uint8_t *>view.buf
        n = view.len
        while n - off >= 4:
            size = g32(p + off)
            if size < C_HDRSZ or size > <uint64_t>maxsize:
                fatal = "bad message size %d" % size
                break
            if n - off < <Py_ssize_t>size:
                break
            typ = p[off + 4]
            tag = g16(p + off + 5)
            fmt = table.get(typ)
            if fmt is None:
                items.append(Unknown(UNKNOWN, tag, typ))
            else:
                d = _decode(p + off + C_HDRSZ, size - C_HDRSZ, fmt, [typ, tag])
                if type(d) is str:
                    items.append(Bad(BAD, tag, typ, d))
                else:
                    # not the named tuple's Python-level __new__: near a
                    # plain tuple's cost
                    items.append(_named(classes[typ], d))
            off += size
            if typ == 100:
                break       # Tversion may change the dialect of what follows
    finally:
        PyBuffer_Release(&view)
    return items, off, fatal


def unpack(msg, bint dotl):
    """Decode exactly one message (bytes): the item parse would give.
    Raises Malformed when the size field does not match len(msg)."""
    items, used, fatal = parse(msg, len(msg), dotl)
    if fatal is not None:
        raise Malformed(fatal)
    if len(items) != 1 or used != len(msg):
        raise Malformed("size field does not match the message")
    return items[0]


# ---- packing -------------------------------------------------------------

cdef Py_ssize_t _size(str fmt, tuple args) except -1:
    cdef Py_ssize_t n = 0, k = 0
    cdef bint opt = False
    for ch in fmt:
        if ch == "?":
            continue
        a = args[k]
        k += 1
        if ch == "1":
            n += 1
        elif ch == "2":
            n += 2
        elif ch == "4":
            n += 4
        elif ch == "8":
            n += 8
        elif ch == "s":
            if isinstance(a, str):
                a = (<str>a).encode("utf-8")
            if len(a) > 0xFFFF:
                raise ValueError("string too long")
            n += 2 + len(a)
        elif ch == "w":
            n += 2
            for x in a:
                n += 2 + len(x.encode("utf-8"))
        elif ch == "d":
            n += 4 + len(a)
        elif ch == "S":
            if len(a) > 0xFFFF:
                raise ValueError("stat too long")
            n += 2 + len(a)
        elif ch == "Q":
            n += 13
        elif ch == "W":
            n += 2 + 13 * len(a)
        else:
            raise ValueError("bad format character %r" % ch)
    if k != len(args):
        raise ValueError("%d arguments for format %r" % (len(args), fmt))
    return n


cdef inline Py_ssize_t _putqid(uint8_t *p, Py_ssize_t i, q) except -1:
    p[i] = <uint8_t>(q[0] & 0xFF)
    p32(p + i + 1, <uint32_t>q[1])
    p64(p + i + 5, <uint64_t>q[2])
    return i + 13


cdef Py_ssize_t _putbytes(uint8_t *p, Py_ssize_t i, object b) except -1:
    cdef Py_buffer view
    PyObject_GetBuffer(b, &view, PyBUF_SIMPLE)
    try:
        memcpy(p + i, view.buf, view.len)
        i += view.len
    finally:
        PyBuffer_Release(&view)
    return i


def pack(int type, int tag, *args):
    """One R- or T-message: pack(Rread, tag, data) etc.  T-messages use the
    9P2000.L table when the type exists only there; Tattach/Tauth are packed
    with their n_uname when one is given."""
    fmt = _RFMT.get(type)
    if fmt is None:
        fmt = _TL.get(type) if type < 100 else _T9P.get(type)
        if fmt is None:
            raise ValueError("unknown message type %d" % type)
        if "?" in fmt:
            # drop optional trailing fields not given
            head, tail = fmt.split("?")
            fmt = head + tail[:max(0, len(args) - len(head))]
    return _pack(type, tag, fmt, args)


cdef bytes _pack(int type, int tag, str fmt, tuple args):
    cdef Py_ssize_t n = C_HDRSZ + _size(fmt, args)
    cdef Py_ssize_t i = C_HDRSZ, k = 0
    cdef bytes out
    cdef uint8_t *p
    if n > 0xFFFFFFFF:
        raise ValueError("message too long")
    out = PyBytes_FromStringAndSize(NULL, n)
    p = <uint8_t *>PyBytes_AS_STRING(out)
    p32(p, <uint32_t>n)
    p[4] = <uint8_t>type
    p16(p + 5, <uint32_t>tag)
    for ch in fmt:
        if ch == "?":
            continue
        a = args[k]
        k += 1
        if ch == "1":
            p[i] = <uint8_t>(a & 0xFF)
            i += 1
        elif ch == "2":
            p16(p + i, <uint32_t>a)
            i += 2
        elif ch == "4":
            p32(p + i, <uint32_t>(a & 0xFFFFFFFF))
            i += 4
        elif ch == "8":
            p64(p + i, <uint64_t>(a & 0xFFFFFFFFFFFFFFFF))
            i += 8
        elif ch == "s":
            if isinstance(a, str):
                a = (<str>a).encode("utf-8")
            p16(p + i, <uint32_t>len(a))
            i = _putbytes(p, i + 2, a)
        elif ch == "w":
            p16(p + i, <uint32_t>len(a))
            i += 2
            for x in a:
                b = x.encode("utf-8")
                p16(p + i, <uint32_t>len(b))
                i = _putbytes(p, i + 2, b)
        elif ch == "d":
            p32(p + i, <uint32_t>len(a))
            i = _putbytes(p, i + 4, a)
        elif ch == "S":
            p16(p + i, <uint32_t>len(a))
            i = _putbytes(p, i + 2, a)
        elif ch == "Q":
            i = _putqid(p, i, a)
        elif ch == "W":
            p16(p + i, <uint32_t>len(a))
            i += 2
            for q in a:
                i = _putqid(p, i, q)
    return out


def rread(int tag, data):
    """Rread (the hot path): size[4] 117 tag[2] count[4] data."""
    cdef Py_buffer view
    cdef bytes out
    cdef uint8_t *p
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        out = PyBytes_FromStringAndSize(NULL, 11 + view.len)
        p = <uint8_t *>PyBytes_AS_STRING(out)
        p32(p, <uint32_t>(11 + view.len))
        p[4] = 117
        p16(p + 5, <uint32_t>tag)
        p32(p + 7, <uint32_t>view.len)
        memcpy(p + 11, view.buf, view.len)
    finally:
        PyBuffer_Release(&view)
    return out


def rerror(int tag, str ename):
    return _pack(107, tag, "s", (ename,))


def rlerror(int tag, uint32_t ecode):
    return _pack(7, tag, "4", (ecode,))


# ---- stat and directory entries ------------------------------------------

def packstat(int type, uint32_t dev, qid, uint32_t mode, uint32_t atime, uint32_t mtime,
             uint64_t length, str name, str uid, str gid, str muid):
    """A 9P2000 stat entry (with its leading size[2]), as in a directory
    read or inside Rstat."""
    cdef bytes bn = name.encode("utf-8"), bu = uid.encode("utf-8")
    cdef bytes bg = gid.encode("utf-8"), bm = muid.encode("utf-8")
    cdef Py_ssize_t n = 2 + 2 + 4 + 13 + 4 + 4 + 4 + 8 + 8 + len(bn) + len(bu) + len(bg) + len(bm)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n)
    cdef uint8_t *p = <uint8_t *>PyBytes_AS_STRING(out)
    cdef Py_ssize_t i
    p16(p, <uint32_t>(n - 2))
    p16(p + 2, <uint32_t>type)
    p32(p + 4, dev)
    i = _putqid(p, 8, qid)
    p32(p + i, mode)
    p32(p + i + 4, atime)
    p32(p + i + 8, mtime)
    p64(p + i + 12, length)
    i += 20
    for b in (bn, bu, bg, bm):
        p16(p + i, <uint32_t>len(b))
        i = _putbytes(p, i + 2, b)
    return out


def unpackstat(data):
    """Decode one stat entry (with its size[2]): (type, dev, qid, mode,
    atime, mtime, length, name, uid, gid, muid).  Raises Malformed."""
    cdef const uint8_t *p
    cdef Py_ssize_t n
    cdef bytes b = bytes(data)
    p = <const uint8_t *>PyBytes_AS_STRING(b)
    n = PyBytes_GET_SIZE(b)
    if n < 2:
        raise Malformed("stat buffer too small")
    if <Py_ssize_t>g16(p) + 2 > n:
        raise Malformed("stat buffer too small")
    n = g16(p) + 2
    r = _decode(p + 2, n - 2, "24Q4448ssss")
    if type(r) is str:
        raise Malformed("stat buffer too small")
    return tuple(r)


def packdirent(qid, uint64_t offset, int dtype, str name):
    """A 9P2000.L Treaddir entry: qid[13] offset[8] type[1] name[s]."""
    cdef bytes bn = name.encode("utf-8")
    cdef Py_ssize_t n = 13 + 8 + 1 + 2 + len(bn)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n)
    cdef uint8_t *p = <uint8_t *>PyBytes_AS_STRING(out)
    _putqid(p, 0, qid)
    p64(p + 13, offset)
    p[21] = <uint8_t>dtype
    p16(p + 22, <uint32_t>len(bn))
    memcpy(p + 24, <const char*>bn, len(bn))
    return out


def unpackdirents(data):
    """Decode Rreaddir data: a list of (qid, offset, type, name)."""
    cdef bytes b = bytes(data)
    cdef const uint8_t *p = <const uint8_t *>PyBytes_AS_STRING(b)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(b), i = 0, m
    out = []
    while i < n:
        if i + 24 > n:
            raise Malformed("short directory entry")
        m = g16(p + i + 22)
        if i + 24 + m > n:
            raise Malformed("directory entry name runs past the data")
        out.append(((p[i], g32(p + i + 1), g64(p + i + 5)), g64(p + i + 13), p[i + 21],
                    (<const char*>p)[i + 24:i + 24 + m].decode("utf-8", "replace")))
        i += 24 + m
    return out


def unpackstats(data):
    """Decode a 9P2000 directory read: a list of stat tuples."""
    cdef bytes b = bytes(data)
    cdef const uint8_t *p = <const uint8_t *>PyBytes_AS_STRING(b)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(b), i = 0, m
    out = []
    while i < n:
        if i + 2 > n:
            raise Malformed("short stat entry")
        m = g16(p + i) + 2
        if i + m > n:
            raise Malformed("stat entry runs past the data")
        out.append(unpackstat(b[i:i + m]))
        i += m
    return out


def unpackr(msg):
    """Decode one R-message (bytes; for clients and tests): a named tuple
    (type, tag, field...) of its class (rmsgclass: e.g. Ropen(type, tag,
    qid, iounit)).  Raises Malformed."""
    cdef bytes b = bytes(msg)
    return _unpackr(<const uint8_t *>PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))


cdef object _unpackr(const uint8_t *p, Py_ssize_t n):
    cdef Py_ssize_t k, j
    if n < C_HDRSZ or g32(p) != <uint32_t>n:
        raise Malformed("bad size")
    typ = p[4]
    tag = g16(p + 5)
    fmt = _RFMT.get(typ)
    if fmt is None:
        raise Malformed("unknown reply type %d" % typ)
    if typ == 111:      # Rwalk: qids
        if n < 9:
            raise Malformed("short message")
        k = g16(p + 7)
        if 9 + 13 * k > n:
            raise Malformed("qids run past the message")
        return _named(_RCLS[typ], [typ, tag, [
            (p[9 + 13 * j], g32(p + 10 + 13 * j), g64(p + 14 + 13 * j)) for j in range(k)]])
    r = _decode(p + C_HDRSZ, n - C_HDRSZ, fmt, [typ, tag])
    if type(r) is str:
        raise Malformed(r)
    return _named(_RCLS[typ], r)


# ---- a client's socket ---------------------------------------------------
#
# A client reads and writes its 9P connection from whichever thread waits
# (net9.client: no reader thread).  That thread may be the main thread, where
# a signal handler's exception (KeyboardInterrupt, SystemExit from SIGTERM)
# can surface between any two Python statements: between a recv and the
# append of what it returned, or in the middle of a sendall.  Bytes lost
# there would desynchronise the stream for good.  So the read and the
# bookkeeping of what was read, and a message's whole write, are done here,
# in C, where no Python code runs between the system call and the state it
# changes.

cdef extern from "<poll.h>" nogil:
    struct pollfd:
        int fd
        short events
        short revents
    int poll(pollfd *fds, unsigned long nfds, int timeout)
    enum:
        POLLIN

cdef extern from "<sys/socket.h>" nogil:
    ssize_t recv(int fd, void *buf, size_t n, int flags)
    ssize_t send(int fd, const void *buf, size_t n, int flags)
    int shutdown(int fd, int how)
    enum:
        MSG_NOSIGNAL
        SHUT_RDWR

cdef extern from "Python.h":
    int PyErr_CheckSignals() except -1


cdef class ReplyReader:
    """The receive side of a client's 9P connection: a buffer that fill()
    reads into and take() splits into whole R-messages, delivered into the
    client's reply table.  Not thread-safe: one reader (the leader) at a
    time, take() under the client's lock."""
    cdef uint8_t *buf
    cdef Py_ssize_t cap, start, end, maxmsg

    def __cinit__(self, Py_ssize_t maxmsg):
        self.maxmsg = max(maxmsg, 64)
        self.cap = max(2 * self.maxmsg, 65536)
        self.buf = <uint8_t *>malloc(self.cap)
        if self.buf == NULL:
            raise MemoryError()
        self.start = 0
        self.end = 0

    def __dealloc__(self):
        free(self.buf)

    @property
    def pending(self):
        """Bytes read and not yet part of a whole reply."""
        return self.end - self.start

    def setmax(self, Py_ssize_t maxmsg):
        """The largest reply that may come (msize, once negotiated)."""
        self.maxmsg = max(maxmsg, 64)

    def fill(self, int fd, int timeout_ms=-1):
        """One recv on fd (after waiting for input up to timeout_ms when it
        is not negative): the count of bytes read, 0 at end of file, -1 when
        nothing came (the time-out passed, or a signal came: its handler
        runs when this returns, with nothing lost).  OSError on errors."""
        cdef pollfd pfd
        cdef int r, e = 0
        cdef ssize_t n
        cdef Py_ssize_t room
        cdef uint8_t *nb
        if self.start == self.end:
            self.start = self.end = 0
        elif self.end == self.cap:
            # compact: a partial reply moves to the front
            memmove(self.buf, self.buf + self.start, self.end - self.start)
            self.end -= self.start
            self.start = 0
        if self.end == self.cap:
            # one reply larger than the buffer (take() allowed it)
            nb = <uint8_t *>realloc(self.buf, 2 * self.cap)
            if nb == NULL:
                raise MemoryError()
            self.buf = nb
            self.cap *= 2
        if timeout_ms >= 0:
            pfd.fd = fd
            pfd.events = POLLIN
            pfd.revents = 0
            with nogil:
                r = poll(&pfd, 1, timeout_ms)
                if r < 0:
                    e = errno
            if r == 0 or (r < 0 and e == EINTR):
                return -1
            if r < 0:
                raise OSError(e, "poll: %s" % _strerror(e))
        room = self.cap - self.end
        with nogil:
            n = recv(fd, self.buf + self.end, room, 0)
            if n < 0:
                e = errno
        if n < 0:
            if e == EINTR or e == EAGAIN:
                return -1
            raise OSError(e, _strerror(e))
        self.end += n
        return n

    def take(self, dict replies, set discard, set inflight, dict flushing):
        """Deliver every whole reply in the buffer: into replies by tag, or
        dropped when its tag is in discard (the tag leaves discard and
        inflight); an Rflush whose tag is in flushing (flush tag -> old tag)
        is dropped too and frees both tags (after it, no reply to the old
        tag can come).  The number of replies seen.  Malformed when the
        framing is broken (the connection cannot go on)."""
        cdef Py_ssize_t n, got = 0
        cdef uint32_t size
        cdef object r
        cdef uint8_t *nb
        while self.end - self.start >= 4:
            size = g32(self.buf + self.start)
            if size < C_HDRSZ:
                raise Malformed("message of %d bytes" % size)
            if <Py_ssize_t>size > self.maxmsg:
                raise Malformed("message of %d bytes, more than msize %d" % (size, self.maxmsg))
            n = size
            if self.end - self.start < n:
                if self.start + n > self.cap:
                    # make room for the rest of it: compact, grow if need be
                    memmove(self.buf, self.buf + self.start, self.end - self.start)
                    self.end -= self.start
                    self.start = 0
                    if n > self.cap:
                        nb = <uint8_t *>realloc(self.buf, n)
                        if nb == NULL:
                            raise MemoryError()
                        self.buf = nb
                        self.cap = n
                break
            r = _unpackr(self.buf + self.start, n)
            self.start += n
            got += 1
            tag = r[1]
            if tag in flushing:
                old = flushing.pop(tag)
                inflight.discard(tag)
                inflight.discard(old)
                discard.discard(old)
                replies.pop(old, None)
            elif tag in discard:
                discard.discard(tag)
                inflight.discard(tag)
            else:
                replies[tag] = r
        if self.start == self.end:
            self.start = self.end = 0
        return got


cdef str _strerror(int e):
    import os
    return os.strerror(e)


def sendmsg_all(int fd, msg, data=None):
    """Write msg (and then data, when given: a Twrite's payload without a
    copy into msg) whole on the socket fd.  A signal whose handler raises
    before anything was written leaves the connection as it was; one that
    raises in the middle of the message shuts the socket down first (a
    half-written 9P message cannot be taken back).  OSError on errors (the
    socket is shut down when part of the message went)."""
    cdef Py_buffer a, b
    cdef Py_ssize_t done = 0, total, k
    cdef ssize_t w
    cdef int e = 0
    cdef const uint8_t *p
    cdef bint hasb = data is not None
    PyObject_GetBuffer(msg, &a, PyBUF_SIMPLE)
    if hasb:
        try:
            PyObject_GetBuffer(data, &b, PyBUF_SIMPLE)
        except BaseException:
            PyBuffer_Release(&a)
            raise
    try:
        total = a.len + (b.len if hasb else 0)
        while done < total:
            if done < a.len:
                p = <const uint8_t *>a.buf + done
                k = a.len - done
            else:
                p = <const uint8_t *>b.buf + (done - a.len)
                k = total - done
            with nogil:
                w = send(fd, p, k, MSG_NOSIGNAL)
                if w < 0:
                    e = errno
            if w >= 0:
                done += w
                continue
            if e == EINTR:
                try:
                    PyErr_CheckSignals()
                except BaseException:
                    if done:
                        shutdown(fd, SHUT_RDWR)
                    raise
                continue
            if done:
                shutdown(fd, SHUT_RDWR)
            raise OSError(e, _strerror(e))
    finally:
        PyBuffer_Release(&a)
        if hasb:
            PyBuffer_Release(&b)
