"""net9's own FUSE client: the served /net mounted through the kernel's
FUSE device, speaking 9P with net9.aio (asyncio, one 9P connection, no
threads).  `net9 mount --fuse DIR` runs it (see net9(1) and net9(4)).

It reads the kernel's FUSE requests from /dev/fuse itself (the protocol of
linux/fuse.h) rather than through libfuse, and mounts with mount(2) as root
or with fusermount3 (fusermount) otherwise, as libfuse does.  pyfuse3, the
maintained binding of libfuse 3, was the first choice, but it has no way to
see FUSE_INTERRUPT (libfuse's fuse_req_interrupt_func is not exposed), and
turning an interrupt into a Tflush is the point: a ^C on a read, an open or
a write that waits must take the 9P request back.

What the kernel sees:
  * one 9P fid per FUSE open (walked and opened in one write), clunked at
    release; every open has FOPEN_DIRECT_IO (no page cache: a read(2)
    returns what one Tread returned) and FOPEN_PARALLEL_DIRECT_WRITES (a
    write to ctl does not wait for another write to finish); entries and
    attributes are valid for 0 seconds (nothing cached);
  * errors as errno from devip's texts, with net9 serve's own 9P2000.L table
    (net9.errors.errno_of): "connection refused" is ECONNREFUSED...;
  * FUSE_INTERRUPT cancels the request's task: its 9P request is flushed,
    the syscall gets EINTR, or, when the reply beat the Rflush, that reply
    (nothing is lost);
  * owners and modes as the server reports them (its user names mapped to
    local uids and gids through passwd and group), and no
    default_permissions: the server decides who may open what.  Mounted by
    root (without -u), the mount allows other users and each local user
    attaches as itself (like v9fs access=user): the server's permissions
    apply to each;
  * when the 9P connection is lost (net9 serve stopped or restarted),
    every request in flight and every file opened before fails with
    ENOTCONN; the next lookup connects again.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import grp
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

from net9 import ninep
from net9.aio import Client
from net9.client import NinepError, OTRUNC, myname
from net9.errors import errno_of

# ---- the kernel's FUSE protocol (linux/fuse.h) -------------------------------

LOOKUP, FORGET, GETATTR, SETATTR, READLINK, SYMLINK = 1, 2, 3, 4, 5, 6
MKNOD, MKDIR, UNLINK, RMDIR, RENAME, LINK, OPEN, READ, WRITE = 8, 9, 10, 11, 12, 13, 14, 15, 16
STATFS, RELEASE, FSYNC, SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR = 17, 18, 20, 21, 22, 23, 24
FLUSH, INIT, OPENDIR, READDIR, RELEASEDIR, FSYNCDIR = 25, 26, 27, 28, 29, 30
ACCESS, CREATE, INTERRUPT, DESTROY, BATCH_FORGET = 34, 35, 36, 38, 42
OPNAMES = {v: k for k, v in dict(globals()).items() if k.isupper() and isinstance(v, int)}

IN_HEADER = struct.Struct("<IIQQIIIHH")      # len opcode unique nodeid uid gid pid extlen pad
OUT_HEADER = struct.Struct("<IiQ")           # len error unique
ATTR = struct.Struct("<QQQQQQIIIIIIIIII")    # fuse_attr (88 bytes)
ENTRY_OUT = struct.Struct("<QQQQII")         # nodeid generation entry_valid attr_valid ns ns
ATTR_OUT = struct.Struct("<QII")             # attr_valid attr_valid_nsec dummy
INIT_IN = struct.Struct("<IIII")
INIT_OUT = struct.Struct("<IIIIHHIIHHII24x")  # 64 bytes
OPEN_IN = struct.Struct("<II")
OPEN_OUT = struct.Struct("<QIi")
READ_IN = struct.Struct("<QQIIQII")          # fh offset size read_flags lock_owner flags pad
WRITE_IN = struct.Struct("<QQIIQII")
WRITE_OUT = struct.Struct("<II")
RELEASE_IN = struct.Struct("<QIIQ")
GETATTR_IN = struct.Struct("<IIQ")
SETATTR_IN = struct.Struct("<IIQQQQQQIIIIIIII")
ACCESS_IN = struct.Struct("<II")
CREATE_IN = struct.Struct("<IIII")
MKDIR_IN = struct.Struct("<II")
MKNOD_IN = struct.Struct("<IIII")
RENAME_IN = struct.Struct("<Q")
INTERRUPT_IN = struct.Struct("<Q")
FORGET_IN = struct.Struct("<Q")
BATCH_FORGET_IN = struct.Struct("<II")
FORGET_ONE = struct.Struct("<QQ")
KSTATFS = struct.Struct("<QQQQQIII4x24x")
DIRENT = struct.Struct("<QQII")

# INIT flags
ASYNC_READ, ATOMIC_O_TRUNC, BIG_WRITES = 1 << 0, 1 << 3, 1 << 5
PARALLEL_DIROPS, MAX_PAGES = 1 << 18, 1 << 22
# open reply flags
FOPEN_DIRECT_IO, FOPEN_PARALLEL_DIRECT_WRITES = 1 << 0, 1 << 6
# setattr valid bits
FATTR_MODE, FATTR_UID, FATTR_GID, FATTR_SIZE = 1, 2, 4, 8
FATTR_ATIME, FATTR_MTIME, FATTR_FH, FATTR_ATIME_NOW, FATTR_MTIME_NOW = 16, 32, 64, 128, 256
GETATTR_FH = 1

S_IFDIR, S_IFREG = 0o040000, 0o100000
DT_DIR, DT_REG = 4, 8
ROOT = 1
MAXPAGES = 256
NOTOUCH4 = 0xFFFFFFFF
NOTOUCH8 = 0xFFFFFFFFFFFFFFFF


class FuseError(Exception):
    def __init__(self, e):
        super().__init__(e)
        self.errno = e


class Node:
    __slots__ = ("path", "nlookup")

    def __init__(self, path):
        self.path = path
        self.nlookup = 0


class Handle:
    __slots__ = ("fid", "cl", "path", "ents", "isdir")

    def __init__(self, fid, cl, path, isdir=False):
        self.fid = fid
        self.cl = cl                   # the 9P connection the fid belongs to
        self.path = path
        self.ents = None
        self.isdir = isdir


def _cstr(b, i=0):
    j = b.index(b"\0", i)
    return bytes(b[i:j]).decode("utf-8", "surrogateescape"), j + 1


def _idof(cache, name, lookups):
    """The numeric id of a 9P user or group name (cached): the first of
    lookups that knows it, else the number itself, else nobody (65534)."""
    v = cache.get(name)
    if v is None:
        for look in lookups:
            try:
                v = look(name)
                break
            except KeyError:
                pass
        else:
            v = int(name) if name.isdigit() else 65534
        cache[name] = v
    return v


class FuseFs:
    """Serve FUSE requests read from fd with 9P to srv.

    user: the 9P user name for every request; None: each request's local
    user (its passwd name, else its uid), for a mount that allows others."""

    def __init__(self, fd: int, srv: str, user: str = None, debug=None, msize: int = None):
        self.fd = fd
        self.srv = srv
        self.user = user
        self.debug = debug
        self.msize = msize
        self.cl = None
        self.connecting = None
        self.nodes = {ROOT: Node(())}
        self.bypath = {(): ROOT}
        self.nextnode = ROOT + 1
        self.handles = {}
        self.nextfh = 1
        self.tasks = {}                 # unique -> task
        self.done = None
        self.inited = None
        self.bufsize = 0
        self.uids = {}
        self.gids = {}
        self.unames = {}

    def log(self, msg):
        if self.debug is not None:
            print("net9 fuse: " + msg, file=self.debug, flush=True)

    # -- the 9P connection --

    async def client(self) -> Client:
        """The live 9P connection, made again if the last one was lost
        (ENOTCONN if the server cannot be reached)."""
        cl = self.cl
        if cl is not None and cl.dead is None:
            return cl
        if self.connecting is None:
            self.connecting = asyncio.ensure_future(self._connect())
        try:
            return await asyncio.shield(self.connecting)
        finally:
            if self.connecting is not None and self.connecting.done():
                self.connecting = None

    async def _connect(self):
        try:
            kw = {} if self.msize is None else {"msize": self.msize}
            cl = await Client.connect(self.srv, uname=self.user or myname(), timeout=10.0,
                                      **kw)
        except NinepError as e:
            self.log("connect %s: %s" % (self.srv, e))
            raise FuseError(errno_of(str(e)))
        except (OSError, asyncio.TimeoutError, ValueError) as e:
            self.log("connect %s: %s" % (self.srv, e))
            raise FuseError(errno.ENOTCONN)
        if self.cl is not None:
            self.log("connected to %s again" % self.srv)
        self.cl = cl
        return cl

    def uname(self, uid):
        if self.user is not None:
            return self.user
        n = self.unames.get(uid)
        if n is None:
            try:
                n = pwd.getpwuid(uid).pw_name
            except KeyError:
                n = str(uid)
            self.unames[uid] = n
        return n

    async def root(self, h):
        cl = await self.client()
        try:
            return cl, await cl.attach(self.uname(h[4]))
        except NinepError as e:
            raise FuseError(errno_of(str(e)))

    # -- attributes --

    def uid_of(self, name):
        return _idof(self.uids, name, (lambda n: pwd.getpwnam(n).pw_uid,))

    def gid_of(self, name):
        # a group's name, else the primary group of a user of that name
        return _idof(self.gids, name, (lambda n: grp.getgrnam(n).gr_gid,
                                       lambda n: pwd.getpwnam(n).pw_gid))

    def attr(self, st, ino):
        mode = st[3]
        isdir = bool(mode & ninep.DMDIR)
        return ATTR.pack(ino, st[6], 0, st[4], st[5], st[5], 0, 0, 0,
                         (S_IFDIR if isdir else S_IFREG) | (mode & 0o777), 2 if isdir else 1,
                         self.uid_of(st[8]), self.gid_of(st[9]), 0, 4096, 0)

    def node(self, nodeid):
        n = self.nodes.get(nodeid)
        if n is None:
            raise FuseError(errno.ESTALE)
        return n

    def remember(self, path):
        nid = self.bypath.get(path)
        if nid is None:
            nid = self.nextnode
            self.nextnode += 1
            self.nodes[nid] = Node(path)
            self.bypath[path] = nid
        n = self.nodes[nid]
        n.nlookup += 1
        return nid

    def forget(self, nid, k):
        n = self.nodes.get(nid)
        if n is None or nid == ROOT:
            return
        n.nlookup -= k
        if n.nlookup <= 0:
            del self.nodes[nid]
            self.bypath.pop(n.path, None)

    async def walkstat(self, h, path):
        """The stat of path for the request's user: Twalk, Tstat and Tclunk
        in one go."""
        cl, root = await self.root(h)
        fid = cl.newfid()
        wt, wf = cl.start(ninep.Twalk, root, fid, list(path))
        st_, sf = cl.start(ninep.Tstat, fid)
        ct, cf = cl.start(ninep.Tclunk, fid)
        try:
            rw = await wf
            rs = await sf
            await cf
        finally:
            if cl.dead is None:
                cf.add_done_callback(lambda f: cl.freefids.append(fid))
        if rw.type == ninep.Rerror:
            raise NinepError(rw.ename)
        if len(rw.wqid) != len(path):
            raise FuseError(errno.ENOENT)
        return ninep.unpackstat(Client.check(rs).stat)

    async def walkfid(self, h, path):
        cl, root = await self.root(h)
        return cl, await cl.walk(list(path), root)

    def handle(self, fh):
        hd = self.handles.get(fh)
        if hd is None:
            raise FuseError(errno.EBADF)
        if hd.cl.dead is not None:
            raise FuseError(errno.ENOTCONN)      # opened on a connection since lost
        return hd

    # -- requests --

    async def op_LOOKUP(self, h, body):
        name, _ = _cstr(body)
        path = self.node(h[3]).path + (name,)
        st = await self.walkstat(h, path)
        nid = self.remember(path)
        return ENTRY_OUT.pack(nid, 0, 0, 0, 0, 0) + self.attr(st, nid)

    async def op_GETATTR(self, h, body):
        flags, _, fh = GETATTR_IN.unpack_from(body) if len(body) >= 16 else (0, 0, 0)
        if flags & GETATTR_FH and fh in self.handles:
            hd = self.handle(fh)
            st = await hd.cl.stat(hd.fid)
        else:
            st = await self.walkstat(h, self.node(h[3]).path)
        return ATTR_OUT.pack(0, 0, 0) + self.attr(st, h[3])

    async def op_SETATTR(self, h, body):
        (valid, _, fh, size, _lo, atime, mtime, _ct, _an, _mn, _cn, mode, _u4, uid, gid,
         _u5) = SETATTR_IN.unpack_from(body)
        path = self.node(h[3]).path
        now = int(time.time())
        wmode = NOTOUCH4
        wat = wmt = NOTOUCH4
        wlen = NOTOUCH8
        wgid = ""
        if valid & FATTR_MODE:
            st = await self.walkstat(h, path)
            wmode = (st[3] & ~0o777 & 0xFFFFFFFF) | (mode & 0o777)
        if valid & FATTR_SIZE:
            wlen = size
        if valid & FATTR_ATIME:
            wat = now if valid & FATTR_ATIME_NOW else atime & 0xFFFFFFFF
        if valid & FATTR_MTIME:
            wmt = now if valid & FATTR_MTIME_NOW else mtime & 0xFFFFFFFF
        if valid & FATTR_UID:
            raise FuseError(errno.EPERM)          # 9P2000 cannot change a file's owner
        if valid & FATTR_GID:
            try:
                wgid = grp.getgrgid(gid).gr_name
            except KeyError:
                wgid = str(gid)
        if (wmode, wat, wmt, wlen, wgid) != (NOTOUCH4, NOTOUCH4, NOTOUCH4, NOTOUCH8, ""):
            stat = ninep.packstat(0xFFFF, NOTOUCH4, (0xFF, NOTOUCH4, NOTOUCH8), wmode, wat, wmt,
                                  wlen, "", "", wgid, "")
            if valid & FATTR_FH and fh in self.handles:
                hd = self.handle(fh)
                await hd.cl.rpc(ninep.Twstat, hd.fid, stat)
            else:
                cl, fid = await self.walkfid(h, path)
                try:
                    await cl.rpc(ninep.Twstat, fid, stat)
                finally:
                    cl.clunk_nowait(fid)
        st = await self.walkstat(h, path)
        return ATTR_OUT.pack(0, 0, 0) + self.attr(st, h[3])

    async def _open(self, h, path, mode, isdir=False):
        cl, root = await self.root(h)
        fid = await cl.walkopen(list(path), mode, root=root, keep=True)
        fh = self.nextfh
        self.nextfh += 1
        self.handles[fh] = Handle(fid, cl, path, isdir)
        return fh

    async def op_OPEN(self, h, body):
        flags, _ = OPEN_IN.unpack_from(body)
        mode = flags & os.O_ACCMODE
        if mode == 3:
            raise FuseError(errno.EINVAL)
        if flags & os.O_TRUNC:
            mode |= OTRUNC
        fh = await self._open(h, self.node(h[3]).path, mode)
        return OPEN_OUT.pack(fh, FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES, 0)

    async def op_OPENDIR(self, h, body):
        fh = await self._open(h, self.node(h[3]).path, 0, isdir=True)
        return OPEN_OUT.pack(fh, 0, 0)

    async def op_READ(self, h, body):
        fh, offset, size = READ_IN.unpack_from(body)[:3]
        hd = self.handle(fh)
        return await hd.cl.read(hd.fid, size, offset, keep=True)

    async def op_WRITE(self, h, body):
        fh, offset, size = WRITE_IN.unpack_from(body)[:3]
        hd = self.handle(fh)
        data = body[WRITE_IN.size:WRITE_IN.size + size]
        cl = hd.cl
        t, fut = cl.start_write(hd.fid, offset, data)
        n = (await cl.wait(t, fut, keep=True)).count
        return WRITE_OUT.pack(n, 0)

    async def op_RELEASE(self, h, body):
        fh = RELEASE_IN.unpack_from(body)[0]
        hd = self.handles.pop(fh, None)
        if hd is not None and hd.cl.dead is None:
            await hd.cl.clunk(hd.fid)
        return b""

    op_RELEASEDIR = op_RELEASE

    async def op_READDIR(self, h, body):
        fh, offset, size = READ_IN.unpack_from(body)[:3]
        hd = self.handle(fh)
        if hd.ents is None or offset == 0:
            ents = [(".", True), ("..", True)]
            for st in await hd.cl.dirread(hd.fid):
                ents.append((st[7], bool(st[3] & ninep.DMDIR)))
            hd.ents = ents
        out = bytearray()
        for i in range(offset, len(hd.ents)):
            name, isdir = hd.ents[i]
            b = name.encode("utf-8", "surrogateescape")
            rec = DIRENT.size + len(b)
            pad = (8 - rec % 8) % 8
            if len(out) + rec + pad > size:
                break
            nid = self.bypath.get(hd.path + (name,)) or (0x100000 + i)
            out += DIRENT.pack(nid, i + 1, len(b), DT_DIR if isdir else DT_REG) + b + \
                b"\0" * pad
        return bytes(out)

    async def op_ACCESS(self, h, body):
        mask = ACCESS_IN.unpack_from(body)[0]
        if mask == 0:                         # F_OK
            await self.walkstat(h, self.node(h[3]).path)
            return b""
        st = await self.walkstat(h, self.node(h[3]).path)
        perm = st[3] & 0o777
        uid = h[4]
        if uid == 0:
            if mask & 1 and not perm & 0o111 and not st[3] & ninep.DMDIR:
                raise FuseError(errno.EACCES)
            return b""
        me = self.uname(uid)
        if st[8] == me:
            bits = perm >> 6
        elif st[9] == me:
            bits = perm >> 3
        else:
            bits = perm
        if mask & ~bits & 7:
            raise FuseError(errno.EACCES)
        return b""

    async def op_STATFS(self, h, body):
        return KSTATFS.pack(0, 0, 0, 0, 0, 4096, 255, 4096)

    async def op_FLUSH(self, h, body):
        return b""

    op_FSYNC = op_FLUSH
    op_FSYNCDIR = op_FLUSH

    async def _create(self, h, parent, name, perm, mode):
        cl, fid = await self.walkfid(h, parent)
        try:
            await cl.rpc(ninep.Tcreate, fid, name, perm, mode)
        except BaseException:
            cl.clunk_nowait(fid)
            raise
        return cl, fid

    async def op_CREATE(self, h, body):
        flags, mode, _umask, _of = CREATE_IN.unpack_from(body)
        name, _ = _cstr(body, CREATE_IN.size)
        parent = self.node(h[3]).path
        omode = flags & os.O_ACCMODE
        cl, fid = await self._create(h, parent, name, mode & 0o777, omode)
        path = parent + (name,)
        fh = self.nextfh
        self.nextfh += 1
        self.handles[fh] = Handle(fid, cl, path)
        st = await self.walkstat(h, path)
        nid = self.remember(path)
        return (ENTRY_OUT.pack(nid, 0, 0, 0, 0, 0) + self.attr(st, nid) +
                OPEN_OUT.pack(fh, FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES, 0))

    async def _mk(self, h, name, perm):
        parent = self.node(h[3]).path
        cl, fid = await self._create(h, parent, name, perm, 0)
        cl.clunk_nowait(fid)
        path = parent + (name,)
        st = await self.walkstat(h, path)
        nid = self.remember(path)
        return ENTRY_OUT.pack(nid, 0, 0, 0, 0, 0) + self.attr(st, nid)

    async def op_MKDIR(self, h, body):
        mode, _ = MKDIR_IN.unpack_from(body)
        name, _ = _cstr(body, MKDIR_IN.size)
        return await self._mk(h, name, ninep.DMDIR | (mode & 0o777))

    async def op_MKNOD(self, h, body):
        mode = MKNOD_IN.unpack_from(body)[0]
        name, _ = _cstr(body, MKNOD_IN.size)
        if mode & 0o170000 not in (S_IFREG, 0):
            raise FuseError(errno.EPERM)
        return await self._mk(h, name, mode & 0o777)

    async def op_UNLINK(self, h, body):
        name, _ = _cstr(body)
        cl, fid = await self.walkfid(h, self.node(h[3]).path + (name,))
        await cl.rpc(ninep.Tremove, fid)         # clunks the fid, whatever it answers
        return b""

    op_RMDIR = op_UNLINK

    async def op_RENAME(self, h, body):
        newdir = RENAME_IN.unpack_from(body)[0]
        old, i = _cstr(body, RENAME_IN.size)
        new, _ = _cstr(body, i)
        if newdir != h[3]:
            raise FuseError(errno.EXDEV)
        cl, fid = await self.walkfid(h, self.node(h[3]).path + (old,))
        try:
            stat = ninep.packstat(0xFFFF, NOTOUCH4, (0xFF, NOTOUCH4, NOTOUCH8), NOTOUCH4,
                                  NOTOUCH4, NOTOUCH4, NOTOUCH8, new, "", "", "")
            await cl.rpc(ninep.Twstat, fid, stat)
        finally:
            cl.clunk_nowait(fid)
        return b""

    # -- the device --

    def reply(self, unique, err=0, body=b""):
        if err:
            msg = OUT_HEADER.pack(OUT_HEADER.size, -err, unique)
        else:
            msg = OUT_HEADER.pack(OUT_HEADER.size + len(body), 0, unique) + body
        try:
            os.write(self.fd, msg)
        except OSError as e:
            # ENOENT: the request was interrupted and is gone already
            if e.errno != errno.ENOENT:
                self.log("reply to %d: %s" % (unique, e))

    def init(self, h, body):
        major, minor, readahead, flags = INIT_IN.unpack_from(body)
        flags2 = 0
        if major != 7:
            self.reply(h[2], errno.EPROTO)
            return
        want = ATOMIC_O_TRUNC | BIG_WRITES | PARALLEL_DIROPS | MAX_PAGES
        flags &= want
        maxwrite = 128 * 1024
        if self.cl is not None:
            maxwrite = min(maxwrite, self.cl.iounit())
        self.bufsize = maxwrite + 4096 * 2
        self.minor = min(minor, 36)
        self.reply(h[2], 0, INIT_OUT.pack(7, self.minor, readahead, flags, 64, 48, maxwrite, 1,
                                          MAXPAGES if flags & MAX_PAGES else 0, 0, flags2, 0))
        self.log("INIT: kernel 7.%d, flags %#x, max_write %d" % (minor, flags, maxwrite))
        if self.inited is not None and not self.inited.done():
            self.inited.set_result(None)

    def readable(self):
        while True:
            try:
                buf = os.read(self.fd, max(self.bufsize, 256 * 1024 + 8192))
            except BlockingIOError:
                return
            except InterruptedError:
                continue
            except OSError as e:
                if e.errno == errno.ENOENT:       # interrupted before we read it
                    continue
                if e.errno == errno.ENODEV:       # unmounted
                    self.log("unmounted")
                else:
                    self.log("reading the FUSE device: %s" % e)
                self.stop()
                return
            if not buf:
                self.stop()
                return
            self.request(buf)

    def request(self, buf):
        h = IN_HEADER.unpack_from(buf)
        op, unique = h[1], h[2]
        body = memoryview(buf)[IN_HEADER.size:h[0]]
        if self.debug is not None and op not in (FORGET, BATCH_FORGET):
            self.log("%s unique %d node %d uid %d pid %d" % (OPNAMES.get(op, op), unique, h[3],
                                                              h[4], h[6]))
        if op == INIT:
            self.init(h, body)
        elif op == FORGET:
            self.forget(h[3], FORGET_IN.unpack_from(body)[0])
        elif op == BATCH_FORGET:
            count = BATCH_FORGET_IN.unpack_from(body)[0]
            for i in range(count):
                nid, k = FORGET_ONE.unpack_from(body, BATCH_FORGET_IN.size + i * FORGET_ONE.size)
                self.forget(nid, k)
        elif op == INTERRUPT:
            orig = INTERRUPT_IN.unpack_from(body)[0]
            t = self.tasks.get(orig)
            self.log("INTERRUPT of %d%s" % (orig, "" if t is not None else " (done)"))
            if t is not None:
                # after the task's first step (scheduled when it was made):
                # a task cancelled before it starts never runs its handler,
                # and the request would go unanswered
                asyncio.get_running_loop().call_soon(t.cancel)
        elif op == DESTROY:
            self.reply(unique)
            self.stop()
        else:
            fn = getattr(self, "op_" + OPNAMES.get(op, "?"), None)
            if fn is None:
                self.reply(unique, errno.ENOSYS)
                return
            self.tasks[unique] = asyncio.ensure_future(self.run(fn, h, bytes(body)))

    async def run(self, fn, h, body):
        unique = h[2]
        try:
            out = await fn(h, body)
        except asyncio.CancelledError:
            self.log("%s %d: interrupted" % (OPNAMES.get(h[1]), unique))
            self.reply(unique, errno.EINTR)
        except FuseError as e:
            self.reply(unique, e.errno)
        except NinepError as e:
            self.log("%s %d: %s" % (OPNAMES.get(h[1]), unique, e))
            self.reply(unique, errno_of(str(e)))
        except ConnectionError as e:
            self.log("%s %d: %s" % (OPNAMES.get(h[1]), unique, e))
            self.reply(unique, errno.ENOTCONN)
        except Exception as e:
            self.log("%s %d: %r" % (OPNAMES.get(h[1]), unique, e))
            self.reply(unique, errno.EIO)
        else:
            self.reply(unique, 0, out)
        finally:
            self.tasks.pop(unique, None)

    def stop(self):
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    async def serve(self, ready=None):
        """Serve until unmounted (or stop()); ready() is called once the
        kernel's INIT is answered."""
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        self.inited = loop.create_future()
        os.set_blocking(self.fd, False)
        try:
            await self.client()
        except FuseError:
            pass                                  # ENOTCONN until it comes
        loop.add_reader(self.fd, self.readable)
        try:
            if ready is not None:
                await asyncio.wait([self.inited, self.done], return_when=asyncio.FIRST_COMPLETED)
                if self.inited.done():
                    ready()
            await self.done
        finally:
            loop.remove_reader(self.fd)
            for t in list(self.tasks.values()):
                t.cancel()
            if self.cl is not None:
                self.cl.close()


# ---- mounting ------------------------------------------------------------------

MS_NOSUID, MS_NODEV = 2, 4
MNT_DETACH = 2
DEV_FUSE = "/dev/fuse"


def fusermount():
    """fusermount3 (Debian's fuse3), else fusermount (fuse), else None."""
    return shutil.which("fusermount3") or shutil.which("fusermount")


def usable():
    """Why net9's FUSE client cannot mount here, or None."""
    if not os.path.exists(DEV_FUSE):
        return "no %s (the kernel's FUSE module is not loaded or not in this container)" \
            % DEV_FUSE
    if os.geteuid() != 0:
        if fusermount() is None:
            return "no fusermount3 to mount without root (Debian package fuse3)"
        if not os.access(DEV_FUSE, os.R_OK | os.W_OK):
            return "%s is not open to you (fusermount3 opens it as you; it is mode 0666 " \
                "where the fuse3 package set it up)" % DEV_FUSE
    return None


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def mount(mountpoint: str, allow_other: bool = False, fsname: str = "net9") -> int:
    """Mount a FUSE file system of type fuse.net9 on mountpoint; the
    /dev/fuse descriptor to serve it.  Root: mount(2); others:
    fusermount3, which passes the descriptor back over a socket."""
    mountpoint = os.path.abspath(mountpoint)
    if os.geteuid() == 0:
        fd = os.open(DEV_FUSE, os.O_RDWR | os.O_CLOEXEC)
        st = os.stat(mountpoint)
        opts = "fd=%d,rootmode=%o,user_id=%d,group_id=%d%s" % (
            fd, st.st_mode & 0o170000, os.getuid(), os.getgid(),
            ",allow_other" if allow_other else "")
        r = _libc().mount(fsname.encode(), mountpoint.encode(), b"fuse.net9",
                          MS_NOSUID | MS_NODEV, opts.encode())
        if r != 0:
            e = ctypes.get_errno()
            os.close(fd)
            raise OSError(e, "mount: %s" % os.strerror(e), mountpoint)
        return fd
    fm = fusermount()
    if fm is None:
        raise OSError(errno.ENOENT, "no fusermount3 (Debian package fuse3) to mount without root")
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        env = dict(os.environ, _FUSE_COMMFD=str(b.fileno()))
        opts = "fsname=%s,subtype=net9%s" % (fsname, ",allow_other" if allow_other else "")
        p = subprocess.run([fm, "-o", opts, "--", mountpoint], env=env, pass_fds=[b.fileno()],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        b.close()
        if p.returncode != 0:
            raise OSError(errno.EPERM, "%s: %s" % (os.path.basename(fm),
                                                  p.stdout.decode(errors="replace").strip()
                                                  or "exit status %d" % p.returncode),
                          mountpoint)
        msg, fds, _, _ = socket.recv_fds(a, 16, 1)
        if not fds:
            raise OSError(errno.EIO, "%s passed no descriptor" % os.path.basename(fm), mountpoint)
        os.set_inheritable(fds[0], False)
        return fds[0]
    finally:
        a.close()
        b.close()


def unmount(mountpoint: str, lazy: bool = False):
    """Undo mount(): umount2 as root, fusermount3 -u otherwise."""
    mountpoint = os.path.abspath(mountpoint)
    if os.geteuid() == 0:
        r = _libc().umount2(mountpoint.encode(), MNT_DETACH if lazy else 0)
        if r != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e), mountpoint)
        return
    fm = fusermount()
    if fm is None:
        raise OSError(errno.ENOENT, "no fusermount3 to unmount without root")
    p = subprocess.run([fm, "-u"] + (["-z"] if lazy else []) + [mountpoint],
                       stdin=subprocess.DEVNULL, capture_output=True)
    if p.returncode != 0:
        raise OSError(errno.EBUSY, p.stderr.decode(errors="replace").strip(), mountpoint)


def run(srv: str, mountpoint: str, user: str = None, foreground: bool = False,
        debug: bool = False, ready=None):
    """Mount and serve until unmounted (or SIGINT/SIGTERM, which unmount).
    user None: as root, each local user as itself (allow_other); else the
    running user.  ready(None) once serving, ready(error text) on failure."""
    allow_other = os.geteuid() == 0 and user is None
    if user is None and not allow_other:
        user = myname()
    try:
        fd = mount(mountpoint, allow_other=allow_other)
    except OSError as e:
        if ready is not None:
            ready("%s: %s" % (mountpoint, e.strerror or e))
            return 1
        raise
    fs = FuseFs(fd, srv, user=user, debug=sys.stderr if debug else None)

    async def main():
        loop = asyncio.get_running_loop()
        stopping = []

        def stop():
            if not stopping:
                stopping.append(1)
                try:
                    unmount(mountpoint, lazy=True)
                except OSError as e:
                    fs.log("unmount: %s" % e)
                fs.stop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            try:
                loop.add_signal_handler(sig, stop)
            except (ValueError, RuntimeError):
                pass
        await fs.serve(ready=(lambda: ready(None)) if ready is not None else None)
    try:
        asyncio.run(main())
    finally:
        os.close(fd)
    return 0
