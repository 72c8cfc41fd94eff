"""The 9P codec (net9.ninep): every T-message the clients of
../shared/spec/9p-clients.md send decodes to its fields, R-messages
encode to the byte layout of intro(5)/9P2000.L, and no input, however
malformed, crashes the parser or makes it read past a message."""

import struct

import pytest
from hypothesis import given, settings, strategies as st

from net9 import ninep as n


def msg(type, tag, body):
    return struct.pack("<IBH", 7 + len(body), type, tag) + body


def s(x):
    b = x.encode()
    return struct.pack("<H", len(b)) + b


def test_constants_match_the_protocol():
    # intro(5) / fcall.h and the 9P2000.L message numbers (diod's protocol.h)
    assert (n.Tversion, n.Rversion, n.Tauth, n.Tattach, n.Rerror, n.Tflush, n.Twalk,
            n.Topen, n.Tcreate, n.Tread, n.Twrite, n.Tclunk, n.Tremove, n.Tstat,
            n.Twstat) == (100, 101, 102, 104, 107, 108, 110, 112, 114, 116, 118, 120,
                          122, 124, 126)
    assert (n.Rlerror, n.Tstatfs, n.Tlopen, n.Tlcreate, n.Tgetattr, n.Tsetattr,
            n.Txattrwalk, n.Treaddir, n.Tfsync, n.Tlock, n.Tgetlock, n.Tmkdir,
            n.Tunlinkat) == (7, 8, 12, 14, 24, 26, 30, 40, 50, 52, 54, 72, 76)
    assert n.NOTAG == 0xFFFF and n.NOFID == 0xFFFFFFFF and n.IOHDRSZ == 24


def test_hand_built_messages_decode():
    # Tversion as 9pfuse sends it: NOTAG, msize 8192, "9P2000"
    m = msg(100, 0xFFFF, struct.pack("<I", 8192) + s("9P2000"))
    assert n.unpack(m, False) == (100, 0xFFFF, 8192, "9P2000")
    # Twalk(0->1, [tcp, clone])
    m = msg(110, 3, struct.pack("<IIH", 0, 1, 2) + s("tcp") + s("clone"))
    assert n.unpack(m, False) == (110, 3, 0, 1, ["tcp", "clone"])
    # Twrite fid 6 offset 1 "connect"
    m = msg(118, 9, struct.pack("<IQI", 6, 1, 7) + b"connect")
    assert n.unpack(m, False) == (118, 9, 6, 1, b"connect")
    # Tattach 9P2000 (no n_uname) and 9P2000.L (n_uname)
    body = struct.pack("<II", 0, n.NOFID) + s("glenda") + s("")
    assert n.unpack(msg(104, 1, body), False) == (104, 1, 0, n.NOFID, "glenda", "", None)
    assert n.unpack(msg(104, 1, body + struct.pack("<I", 1000)), True) == \
        (104, 1, 0, n.NOFID, "glenda", "", 1000)
    # Tgetattr fid 1 mask 0x3fff; Tsetattr as v9fs sends for ">": 0x68, size 0
    assert n.unpack(msg(24, 2, struct.pack("<IQ", 1, 0x3FFF)), True) == (24, 2, 1, 0x3FFF)
    m = msg(26, 4, struct.pack("<IIIIIQQQQQ", 5, 0x68, 0, 0, 0, 0, 1, 2, 3, 4))
    assert n.unpack(m, True) == (26, 4, 5, 0x68, 0, 0, 0, 0, 1, 2, 3, 4)
    # Tfsync with Linux's extra datasync field: trailing bytes are ignored
    assert n.unpack(msg(50, 5, struct.pack("<II", 7, 1)), True) == (50, 5, 7)
    # Tlock
    m = msg(52, 6, struct.pack("<IBIQQI", 1, 1, 0, 0, 0, 42) + s("host"))
    assert n.unpack(m, True) == (52, 6, 1, 1, 0, 0, 0, 42, "host")


def test_dialects_differ():
    # Tlopen exists only in 9P2000.L; Topen only in 9P2000
    m = msg(12, 1, struct.pack("<II", 1, 0))
    assert n.unpack(m, True) == (12, 1, 1, 0)
    assert n.unpack(m, False) == (n.UNKNOWN, 1, 12)
    m = msg(112, 1, struct.pack("<IB", 1, 0))
    assert n.unpack(m, False) == (112, 1, 1, 0)
    assert n.unpack(m, True) == (n.UNKNOWN, 1, 112)


def test_pack_layouts():
    assert n.pack(n.Rversion, 0xFFFF, 8192, "9P2000") == \
        msg(101, 0xFFFF, struct.pack("<I", 8192) + s("9P2000"))
    assert n.rerror(7, "permission denied") == msg(107, 7, s("permission denied"))
    assert n.rlerror(7, 13) == msg(7, 7, struct.pack("<I", 13))
    assert n.rread(3, b"abc") == msg(117, 3, struct.pack("<I", 3) + b"abc")
    assert n.pack(n.Rread, 3, b"abc") == n.rread(3, b"abc")
    q = (0x80, 0, 8)
    assert n.pack(n.Rattach, 1, q) == msg(105, 1, struct.pack("<BIQ", 0x80, 0, 8))
    assert n.pack(n.Rwalk, 2, [q, (0, 0, 9)]) == \
        msg(111, 2, struct.pack("<H", 2) + struct.pack("<BIQ", 0x80, 0, 8)
            + struct.pack("<BIQ", 0, 0, 9))
    assert n.pack(n.Ropen, 3, (0, 0, 12), 0) == msg(113, 3, struct.pack("<BIQI", 0, 0, 12, 0))
    assert n.pack(n.Rstatfs, 4, 0x01021997, 4096, 0, 0, 0, 0, 0, 0, 255) == \
        msg(9, 4, struct.pack("<IIQQQQQQI", 0x01021997, 4096, 0, 0, 0, 0, 0, 0, 255))
    # Rgetattr: valid[8] qid mode uid gid nlink rdev size blksize blocks
    # atime(2) mtime(2) ctime(2) btime(2) gen data_version
    r = n.pack(n.Rgetattr, 5, 0x7FF, q, 0o40555, 0, 0, 2, 0, 0, 4096, 0,
               1, 0, 2, 0, 3, 0, 0, 0, 0, 0)
    assert len(r) == 7 + 8 + 13 + 4 * 3 + 8 * 15
    assert n.unpackr(r)[2:6] == (0x7FF, q, 0o40555, 0)


def test_stat_roundtrip_and_layout():
    st_ = n.packstat(0, 0, (0x80, 0, 107), n.DMDIR | 0o555, 10, 20, 0, "3", "glenda",
                     "eve", "glenda")
    # size[2] counts the rest
    assert struct.unpack("<H", st_[:2])[0] == len(st_) - 2
    assert n.unpackstat(st_) == (0, 0, (0x80, 0, 107), n.DMDIR | 0o555, 10, 20, 0, "3",
                                 "glenda", "eve", "glenda")
    with pytest.raises(n.Malformed):
        n.unpackstat(st_[:-1])
    with pytest.raises(n.Malformed):
        n.unpackstat(b"\x01")
    assert n.unpackstats(st_ + st_) == [n.unpackstat(st_)] * 2


def test_dirent_layout():
    e = n.packdirent((0, 0, 9), 3, 8, "clone")
    assert e == struct.pack("<BIQQBH", 0, 0, 9, 3, 8, 5) + b"clone"
    assert n.unpackdirents(e + e) == [((0, 0, 9), 3, 8, "clone")] * 2


def test_malformed_messages_are_reported_not_crashed():
    # a string length running past the end of the message
    m = msg(110, 3, struct.pack("<IIH", 0, 1, 1) + struct.pack("<H", 50) + b"tcp")
    r = n.unpack(m, False)
    assert r[0] == n.BAD and r[1] == 3 and r[2] == 110 and "past" in r[3]
    # a Twrite count larger than the message
    m = msg(118, 4, struct.pack("<IQI", 1, 0, 100) + b"abc")
    assert n.unpack(m, False)[:3] == (n.BAD, 4, 118)
    # a truncated fixed field
    assert n.unpack(msg(116, 5, b"\x01\x00"), False)[:3] == (n.BAD, 5, 116)
    # unknown type
    assert n.unpack(msg(200, 6, b""), False) == (n.UNKNOWN, 6, 200)


def test_framing():
    a = n.pack(n.Tclunk, 1, 5)
    b = n.pack(n.Tread, 2, 1, 0, 10)
    items, used, fatal = n.parse(a + b + b[:5], 8192, False)
    assert [i[:2] for i in items] == [(120, 1), (116, 2)] and used == len(a + b)
    assert fatal is None
    # a size below the header or above the limit is fatal
    assert n.parse(struct.pack("<I", 6) + b"xxxx", 8192, False)[2] is not None
    assert n.parse(struct.pack("<I", 9000) + b"x" * 20, 8192, False)[2] is not None
    # the messages before a fatal frame are still decoded
    items, used, fatal = n.parse(a + struct.pack("<I", 3) + b"zz", 8192, False)
    assert len(items) == 1 and used == len(a) and fatal


def test_parse_stops_after_tversion():
    # the dialect of what follows a Tversion is only known once it is answered
    v = n.pack(n.Tversion, 0xFFFF, 8192, "9P2000.L")
    lo = n.pack(n.Tlopen, 1, 1, 0)
    items, used, fatal = n.parse(v + lo, 8192, False)
    assert [i[0] for i in items] == [n.Tversion] and used == len(v)
    assert n.parse(lo, 8192, True)[0] == [(n.Tlopen, 1, 1, 0)]


def test_roundtrip_every_t_message():
    cases = [
        (n.Tversion, 8192, "9P2000.L"), (n.Tauth, 5, "u", "", 0), (n.Tattach, 0, 5, "u", "a", 3),
        (n.Tflush, 9), (n.Twalk, 1, 2, ["a", "b", ".."]), (n.Tread, 1, 2 ** 40, 77),
        (n.Twrite, 1, 5, b"\0\xff"), (n.Tclunk, 1), (n.Tremove, 2),
        (n.Tstatfs, 1), (n.Tlopen, 1, 0o100002), (n.Tlcreate, 1, "x", 0, 0o644, 0),
        (n.Tsymlink, 1, "a", "b", 0), (n.Tmknod, 1, "a", 0, 1, 2, 3), (n.Trename, 1, 2, "n"),
        (n.Treadlink, 1), (n.Tgetattr, 1, 0x3FFF),
        (n.Tsetattr, 1, 0x68, 0, 0, 0, 0, 1, 2, 3, 4), (n.Txattrwalk, 1, 2, ""),
        (n.Txattrcreate, 1, "user.x", 3, 0), (n.Treaddir, 1, 0, 65512), (n.Tfsync, 1),
        (n.Tlock, 1, 1, 0, 0, 0, 1, "c"), (n.Tgetlock, 1, 1, 0, 0, 1, "c"),
        (n.Tlink, 1, 2, "x"), (n.Tmkdir, 1, "d", 0o755, 0), (n.Trenameat, 1, "a", 2, "b"),
        (n.Tunlinkat, 1, "a", 0),
    ]
    for c in cases:
        m = n.pack(c[0], 11, *c[1:])
        assert n.unpack(m, True) == (c[0], 11) + tuple(c[1:]), c
    for c in [(n.Topen, 1, 0x12), (n.Tcreate, 1, "x", 0o644, 1), (n.Tstat, 1),
              (n.Twstat, 1, b"\x02\x00ab"), (n.Tattach, 0, n.NOFID, "u", "")]:
        m = n.pack(c[0], 12, *c[1:])
        r = n.unpack(m, False)
        assert r[:len(c) + 1] == (c[0], 12) + tuple(c[1:]), c


def test_roundtrip_every_r_message_with_named_fields():
    q = (0x80, 1, 8)
    cases = [
        (n.Rversion, dict(msize=8192, version="9P2000")), (n.Rauth, dict(aqid=q)),
        (n.Rattach, dict(qid=q)), (n.Rerror, dict(ename="no")), (n.Rflush, {}),
        (n.Rwalk, dict(wqid=[q, (0, 0, 9)])), (n.Ropen, dict(qid=q, iounit=7)),
        (n.Rcreate, dict(qid=q, iounit=0)), (n.Rread, dict(data=b"\0\xff")),
        (n.Rwrite, dict(count=3)), (n.Rclunk, {}), (n.Rremove, {}),
        (n.Rstat, dict(stat=b"\x02\x00ab")), (n.Rwstat, {}), (n.Rlerror, dict(ecode=13)),
        (n.Rstatfs, dict(fstype=0x01021997, bsize=4096, blocks=1, bfree=2, bavail=3, files=4,
                         ffree=5, fsid=6, namelen=255)),
        (n.Rlopen, dict(qid=q, iounit=1)), (n.Rlcreate, dict(qid=q, iounit=2)),
        (n.Rsymlink, dict(qid=q)), (n.Rmknod, dict(qid=q)), (n.Rrename, {}),
        (n.Rreadlink, dict(target="t")),
        (n.Rgetattr, dict(valid=0x7FF, qid=q, mode=0o40555, uid=1, gid=2, nlink=3, rdev=4,
                          size=5, blksize=6, blocks=7, atime_sec=8, atime_nsec=9, mtime_sec=10,
                          mtime_nsec=11, ctime_sec=12, ctime_nsec=13, btime_sec=14,
                          btime_nsec=15, gen=16, data_version=17)),
        (n.Rsetattr, {}), (n.Rxattrwalk, dict(size=2 ** 40)), (n.Rxattrcreate, {}),
        (n.Rreaddir, dict(data=b"x")), (n.Rfsync, {}), (n.Rlock, dict(status=1)),
        (n.Rgetlock, dict(ltype=2, start=3, length=4, proc_id=5, client_id="c")),
        (n.Rlink, {}), (n.Rmkdir, dict(qid=q)), (n.Rrenameat, {}), (n.Runlinkat, {}),
    ]
    assert {t for t, _ in cases} == {t for t in range(256) if n.rmsgclass(t) is not None}
    for t, fields in cases:
        r = n.unpackr(n.pack(t, 11, *fields.values()))
        assert type(r) is n.rmsgclass(t) and n.msgclass(t, True) is None, t
        assert r._asdict() == dict(type=t, tag=11, **fields), t
        assert r == (t, 11) + tuple(fields.values()), t


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_fuzz_parse_never_crashes(data, dotl):
    items, used, fatal = n.parse(data, 8192, dotl)
    assert 0 <= used <= len(data)
    for it in items:
        assert isinstance(it, tuple) and len(it) >= 2
        assert 0 <= it[1] <= 0xFFFF


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(set([100, 102, 104, 108, 110, 112, 114, 116, 118, 120, 122,
                                   124, 126, 8, 12, 14, 16, 18, 20, 22, 24, 26, 30, 32, 40,
                                   50, 52, 54, 70, 72, 74, 76]))),
       st.binary(max_size=80), st.booleans())
def test_fuzz_bodies_of_every_type(type, body, dotl):
    """Random bodies under a valid frame: an item for exactly that message,
    never more, never an exception."""
    m = msg(type, 0x1234, body)
    items, used, fatal = n.parse(m + n.pack(n.Tclunk, 7, 1), 8192, dotl)
    if type == n.Tversion:                       # parse stops after a Tversion
        assert fatal is None and used == len(m) and len(items) == 1
        items, used2, fatal = n.parse(n.pack(n.Tclunk, 7, 1), 8192, dotl)
        items = [(n.Tversion, 0x1234)] + items
        used += used2
    assert fatal is None and used == len(m) + 11
    assert len(items) == 2 and items[0][1] == 0x1234 and items[1] == (n.Tclunk, 7, 1)
    if items[0][0] == n.BAD:
        assert items[0][2] == type


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=20), max_size=20), st.integers(0, 2 ** 32 - 1),
       st.binary(max_size=100))
def test_fuzz_roundtrip(names, fid, data):
    assert n.unpack(n.pack(n.Twalk, 1, fid, fid, names), False) == (110, 1, fid, fid, names)
    assert n.unpack(n.pack(n.Twrite, 2, fid, 9, data), True) == (118, 2, fid, 9, data)


# ---- the client's socket (ReplyReader, sendmsg_all) ---------------------------

def _replies(seq):
    """R-messages: Rread of growing sizes, Rclunk, Rflush, Rerror."""
    out = []
    for i, k in enumerate(seq):
        out.append(n.rread(i, bytes([i % 251]) * k))
    out.append(n.pack(n.Rclunk, 900))
    out.append(n.pack(n.Rerror, 901, "no such file"))
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 70000), min_size=1, max_size=6), st.data())
def test_reply_reader_reassembles_any_split(sizes, data):
    stream = b"".join(_replies(sizes))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    _reassemble(sizes, cuts)


def test_reply_reader_reassembles_more_than_the_socket_holds():
    # six 70000-byte Rreads in one piece: more than a socketpair buffers, so
    # the writer must let the reader drain (a blocking sendall hung CI)
    _reassemble([70000] * 6, [])


def _reassemble(sizes, cuts):
    import socket
    msgs = _replies(sizes)
    stream = b"".join(msgs)
    a, b = socket.socketpair()
    try:
        r = n.ReplyReader(70000 + 64)
        replies, discard, inflight = {}, {900}, set(range(902))
        got, prev = 0, 0
        a.setblocking(False)
        for c in cuts + [len(stream)]:
            # the piece goes in as the socket takes it, the reader draining
            # between writes (a piece can be more than the socket holds)
            piece = memoryview(stream)[prev:c]
            prev = c
            while True:
                if piece:
                    try:
                        piece = piece[a.send(piece):]
                    except BlockingIOError:
                        pass
                k = r.fill(b.fileno(), 0)
                if k == -1:
                    if not piece:
                        break
                    continue
                assert k > 0
                got += r.take(replies, discard, inflight, {})
        assert got == len(msgs) and r.pending == 0
        for i, k in enumerate(sizes):
            assert replies[i] == (n.Rread, i, bytes([i % 251]) * k)
        assert 900 not in replies and 900 not in discard and 900 not in inflight
        assert replies[901] == (n.Rerror, 901, "no such file")
    finally:
        a.close()
        b.close()


def test_reply_reader_flush_frees_both_tags_and_eof_and_timeout():
    import socket
    a, b = socket.socketpair()
    r = n.ReplyReader(8192)
    assert r.fill(b.fileno(), 0) == -1                 # nothing there: -1 at once
    replies, discard, inflight, flushing = {}, {7}, {7, 8}, {8: 7}
    a.sendall(n.pack(n.Rflush, 8))                     # the old tag 7 never answers
    assert r.fill(b.fileno(), 1000) > 0
    assert r.take(replies, discard, inflight, flushing) == 1
    assert replies == {} and discard == set() and inflight == set() and flushing == {}
    a.close()
    assert r.fill(b.fileno(), 1000) == 0               # end of file
    b.close()


def test_reply_reader_refuses_broken_framing():
    import socket
    for bad in (struct.pack("<IBH", 3, 101, 0), struct.pack("<IBH", 1 << 24, 117, 0)):
        a, b = socket.socketpair()
        r = n.ReplyReader(8192)
        a.sendall(bad)
        r.fill(b.fileno(), 1000)
        with pytest.raises(n.Malformed):
            r.take({}, set(), set(), {})
        a.close()
        b.close()


def test_sendmsg_all_writes_header_and_payload_whole():
    import socket
    import threading
    a, b = socket.socketpair()
    payload = bytes(range(256)) * 4096                 # 1 MiB: more than the socket holds
    got = bytearray()

    def drain():
        while len(got) < 5 + len(payload):
            d = b.recv(65536)
            if not d:
                break
            got.extend(d)
    t = threading.Thread(target=drain)
    t.start()
    n.sendmsg_all(a.fileno(), b"head:", memoryview(payload))
    t.join(10)
    assert bytes(got) == b"head:" + payload
    a.close()
    with pytest.raises(OSError):
        n.sendmsg_all(b.fileno(), b"x" * 10)           # peer gone: EPIPE, no SIGPIPE
    b.close()
