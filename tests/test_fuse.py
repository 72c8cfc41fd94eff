"""`net9 mount` with net9's own FUSE client (net9.fuse), used through the
kernel as a shell user would: bash's recipes for a call and a listener,
^C on a `cat data` (and a listen, and a connect) that waits, the errno of
every devip error a shell user meets, owners and modes, permissions
refused by the server to another local user, many opens at once, a server
that goes away and comes back, an unprivileged mount through fusermount3,
umount.  The same suite runs through plan9port's 9pfuse where it is
installed (client "9pfuse"), with what 9pfuse does instead (net9(4),
CLIENT LIMITS, compares them).

Needs /dev/fuse and root (CI runs as root); elsewhere it skips.  The
server is net9.stack on the loopback medium in this process (served.py):
no TUN needed, except for the README's recipe against Linux's web server
at the end, which runs net9 serve in a network namespace."""

import errno
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest

import encodings.idna  # noqa: F401  (the children that drop to nobody may not read the stdlib)

pytest.importorskip("net9.stack", reason="net9.stack not built")

import net9.fuse  # noqa: E402
from served import Served  # noqa: E402
from net9.cli import main as net9main  # noqa: E402
from test_cli_linux import CMD, as_user, collect, net9env, run_net9  # noqa: E402
import linuxns  # noqa: E402
from linuxns import Netns, missing  # noqa: E402


def _nofuse():
    if os.geteuid() != 0:
        return "needs root (mounts FUSE for other users to use too)"
    why = net9.fuse.usable()
    if why is not None:
        return why
    return None


pytestmark = linuxns.needs_kernel(_nofuse())


def _no9pfuse():
    if shutil.which("9pfuse") is None:
        return "no 9pfuse on PATH (plan9port)"
    if shutil.which("fusermount") is None:
        return "no fusermount (Debian 12's fuse3 links it to fusermount3)"
    return None


CLIENTS = ["fuse", pytest.param("9pfuse", marks=pytest.mark.skipif(
    _no9pfuse() is not None, reason=_no9pfuse() or ""))]


def net9cmd(*args, timeout=60):
    return subprocess.run([sys.executable, CMD] + list(args), capture_output=True, text=True,
                          env=net9env(), timeout=timeout)


def mount(srv, mnt, client="fuse"):
    r = net9cmd("mount", "--with", client, "--srv", srv, mnt)
    assert r.returncode == 0, r.stderr
    return r


def umount(mnt):
    r = net9cmd("umount", mnt)
    for _ in range(100):                      # the client exits once unmounted
        if not _mounted(mnt):
            break
        time.sleep(0.05)
    return r


def _mounted(mnt):
    with open("/proc/self/mounts") as f:
        return any(ln.split()[1] == mnt for ln in f if len(ln.split()) > 2)


def bash(script, timeout=30, **kw):
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                          timeout=timeout, **kw)


def blocked(pid, timeout=30, tid=None):
    """Wait until process pid (or its thread tid) sleeps in a FUSE request
    (its wait channel is the kernel's request_wait_answer)."""
    end = time.monotonic() + timeout
    path = "/proc/%d/wchan" % pid if tid is None else "/proc/%d/task/%d/wchan" % (pid, tid)
    while time.monotonic() < end:
        try:
            with open(path) as f:
                if f.read().strip() == "request_wait_answer":
                    return True
        except OSError:
            return False
        time.sleep(0.02)
    return False


# plan9port's src/cmd/9pfuse/errstr.c, in its order: the first entry whose
# text is in the error (case ignored) gives the errno, ERANGE when none is
# (so "connection refused" is ERANGE).  The table is restated here, not
# copied; the 9pfuse cases check it against the real thing.
P9P_ERRORS = (
    ("permitted", errno.EPERM), ("permission", errno.EACCES), ("access", errno.EACCES),
    ("exists", errno.EEXIST), ("exist", errno.ENOENT), ("no such", errno.ENOENT),
    ("not found", errno.ENOENT), ("not implemented", errno.ENOSYS),
    ("input/output", errno.EIO), ("timeout", errno.ETIMEDOUT),
    ("timed out", errno.ETIMEDOUT), ("i/o", errno.EIO), ("too long", errno.E2BIG),
    ("interrupt", errno.EINTR), ("bad file", errno.EBADF), (" fid ", errno.EBADF),
    ("temporar", errno.EAGAIN), ("memory", errno.ENOMEM), ("is a directory", errno.EISDIR),
    ("directory", errno.ENOTDIR), ("argument", errno.EINVAL), ("pipe", errno.EPIPE),
    ("in use", errno.EBUSY), ("busy", errno.EBUSY), ("illegal", errno.EINVAL),
    ("invalid", errno.EINVAL), ("read-only", errno.EROFS), ("read only", errno.EROFS),
    ("stale ", errno.ESTALE), ("proto", errno.EPROTO), ("entry", errno.ENOENT))


def p9p_errno(text):
    t = text.lower()
    for sub, e in P9P_ERRORS:
        if sub in t:
            return e
    return errno.ERANGE


def want_errno(client, text):
    from net9.server import errno_of
    return errno_of(text) if client == "fuse" else p9p_errno(text)


@pytest.fixture(scope="module", params=CLIENTS)
def mnt(request):
    s = Served(eve="glenda")
    d = os.path.join(s.dir, "mnt")
    os.mkdir(d)
    mount(s.addr, d, request.param)
    try:
        yield request.param, d, s
    finally:
        umount(d)
        s.close()


# ---- the shell's recipes ----------------------------------------------------------------

def test_tree_owners_and_modes(mnt):
    client, d, s = mnt
    assert sorted(os.listdir(d)) == sorted(["tcp", "udp", "ipifc", "icmp", "icmpv6", "arp",
                                            "bootp", "ndb", "iproute", "ipselftab", "log"])
    assert sorted(os.listdir(d + "/tcp")) == ["clone", "stats"]
    fd = os.open(d + "/tcp/clone", os.O_RDWR)
    try:
        n = os.read(fd, 64).decode()
        st = os.stat("%s/tcp/%s/ctl" % (d, n))
        assert oct(st.st_mode) == oct(0o100660)
        if client == "fuse":              # the server's owner: root made it
            assert st.st_uid == 0
        st = os.stat("%s/tcp/%s/status" % (d, n))
        assert oct(st.st_mode) == oct(0o100444)
        assert os.stat("%s/tcp/%s" % (d, n)).st_mode & 0o170000 == 0o040000
    finally:
        os.close(fd)


def test_call_and_listener_from_bash(mnt):
    """A listener made with bash's redirections alone, and a call to it by
    the README's recipe: direct I/O, so each cat prints what came."""
    client, d, s = mnt
    listener = ("cd %s/tcp; exec 3<>clone; read -r a <&3; echo 'announce 7600' >&3; "
                "echo announced >&2; "
                "exec 4<>$a/listen; read -r m <&4; read -r line <$m/data; "
                "echo \"hi $line from $(cat $m/remote)\" >$m/data; exec 4>&- 3>&-" % d)
    p = subprocess.Popen(["bash", "-c", listener], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stderr.readline() == "announced\n"
        caller = ("exec 3<>%s/tcp/clone; read -r n <&3; "
                  "echo 'connect 127.0.0.1!7600' >&3; "
                  "echo there >%s/tcp/$n/data; cat %s/tcp/$n/data; exec 3>&-" % (d, d, d))
        r = bash(caller)
        assert re.fullmatch(r"hi there from 127\.0\.0\.1!\d+\n", r.stdout), (r.stdout, r.stderr)
        assert p.wait(30) == 0, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_data_reads_return_what_came(mnt):
    """direct_io: a read(2) of 128 KiB returns the 5 bytes one Tread
    brought, not a buffer filled (v9fs's way)."""
    client, d, s = mnt
    a = os.open(d + "/tcp/clone", os.O_RDWR)
    c = os.open(d + "/tcp/clone", os.O_RDWR)
    try:
        an = os.read(a, 64).decode()
        os.write(a, b"announce 7601")
        cn = os.read(c, 64).decode()
        os.write(c, b"connect 127.0.0.1!7601")
        lf = os.open("%s/tcp/%s/listen" % (d, an), os.O_RDWR)
        sn = os.read(lf, 64).decode()
        sd = os.open("%s/tcp/%s/data" % (d, sn), os.O_RDWR)
        cd = os.open("%s/tcp/%s/data" % (d, cn), os.O_RDWR)
        os.write(sd, b"hello")
        assert os.read(cd, 128 * 1024) == b"hello"
        big = bytes(range(256)) * 1024                  # 256 KiB through one write(2)
        os.write(cd, big)
        got = b""
        while len(got) < len(big):
            got += os.read(sd, 1 << 20)
        assert got == big
        for fd in (sd, cd, lf):
            os.close(fd)
    finally:
        os.close(a)
        os.close(c)


# ---- errors ------------------------------------------------------------------------

SHELL_ERRORS = [
    # (what bash runs with fd 3 on a fresh conversation's ctl, devip's text)
    ("echo 'connect 127.0.0.1!1' >&3", "connection refused"),
    ("echo 'frobnicate' >&3", "unknown control request"),
    ("echo 'connect 127.0.0.1' >&3", "malformed address"),
    ("echo 'connect www.example.com!80' >&3", "bad ip address syntax"),
    ("echo 'connect 127.0.0.1!http' >&3", "bad numeric port"),
    ("echo 'connect' >&3", "bad args to connect"),
    ("echo 'announce 7602' >&3; exec 5<>$D/tcp/clone; echo 'announce 7602' >&5",
     "address in use"),
    ("echo 'announce 7603' >&3; echo 'announce 7604' >&3", "connection in use"),
    ("exec 5<>$D/tcp/$n/listen", "not announced"),
    ("echo 'connect 192.0.2.1!80' >&3", "no route"),
    ("echo x >$D/tcp/stats", "permission denied"),
    ("cat $D/tcp/99999/status", "file does not exist"),
    ("echo hangup >&3; echo x >$D/tcp/$n/data", "i/o on hungup channel"),
]


@pytest.mark.parametrize("cmd,text", SHELL_ERRORS, ids=[t for _, t in SHELL_ERRORS])
def test_errno_of_devip_errors(mnt, cmd, text):
    client, d, s = mnt
    r = bash("D=%s; exec 3<>$D/tcp/clone; read -r n <&3; %s; echo \"rc=$?\"" % (d, cmd))
    e = want_errno(client, text)
    assert r.stdout == "rc=1\n", (r.stdout, r.stderr)
    assert r.stderr.rstrip("\n").endswith(": " + os.strerror(e)), (text, r.stderr)


def test_listen_hungup_is_econnaborted(mnt):
    client, d, s = mnt
    fd = os.open(d + "/tcp/clone", os.O_RDWR)
    n = os.read(fd, 64).decode()
    os.write(fd, b"announce 7605")
    got = []
    tid = []

    def lis():
        tid.append(threading.get_native_id())
        try:
            os.close(os.open("%s/tcp/%s/listen" % (d, n), os.O_RDWR))
            got.append(0)
        except OSError as e:
            got.append(e.errno)
    t = threading.Thread(target=lis)
    t.start()
    try:
        while not tid:
            time.sleep(0.01)
        assert blocked(os.getpid(), tid=tid[0])
        os.write(fd, b"hangup")
        t.join(30)
        assert got == [want_errno(client, "listen hungup")]
    finally:
        os.close(fd)


def test_permissions_are_the_servers(mnt):
    """Another local user (nobody) through the same mount: the server
    refuses root's conversation to it, lets it make its own (which it
    owns)."""
    client, d, s = mnt
    if client == "9pfuse":
        # real 9pfuse runs fusermount without allow_other: the kernel
        # refuses every other user at the mount itself, before any 9P
        def outsider():
            for path in (d, d + "/tcp/clone"):
                try:
                    os.stat(path)
                    print("stat ok")
                except OSError as e:
                    print("stat", errno.errorcode[e.errno])
            return 0
        pid, r = as_user("nobody", outsider)
        rc, out = collect(pid, r)
        assert rc == 0, out
        assert out.splitlines() == ["stat EACCES", "stat EACCES"], out
        return
    fd = os.open(d + "/tcp/clone", os.O_RDWR)
    try:
        n = os.read(fd, 64).decode()

        def child():
            try:
                os.open("%s/tcp/%s/ctl" % (d, n), os.O_RDWR)
                print("opened")
            except OSError as e:
                print("open", errno.errorcode[e.errno])
            print(open("%s/tcp/%s/status" % (d, n)).read().split()[0])
            c = os.open(d + "/tcp/clone", os.O_RDWR)
            m = os.read(c, 64).decode()
            st = os.stat("%s/tcp/%s/ctl" % (d, m))
            print("own", st.st_uid == os.getuid(), oct(st.st_mode))
            os.close(c)
            return 0
        pid, r = as_user("nobody", child)
        rc, out = collect(pid, r)
        assert rc == 0, out
        assert out.splitlines() == ["open EACCES", "Closed", "own True 0o100660"], out
    finally:
        os.close(fd)


# ---- interrupts ------------------------------------------------------------------

def _pair(d, port):
    """A connected pair through the mount: (fds to close, client data path,
    server data path)."""
    a = os.open(d + "/tcp/clone", os.O_RDWR)
    an = os.read(a, 64).decode()
    os.write(a, b"announce %d" % port)
    c = os.open(d + "/tcp/clone", os.O_RDWR)
    cn = os.read(c, 64).decode()
    os.write(c, b"connect 127.0.0.1!%d" % port)
    lf = os.open("%s/tcp/%s/listen" % (d, an), os.O_RDWR)
    sn = os.read(lf, 64).decode()
    return [a, c, lf], "%s/tcp/%s/data" % (d, cn), "%s/tcp/%s/data" % (d, sn)


def test_interrupt_a_waiting_cat(mnt):
    """^C on `cat data` that waits: cat dies of SIGINT at once (the read
    was flushed), and what the peer sends next is read by the next cat:
    nothing was lost."""
    client, d, s = mnt
    fds, cdata, sdata = _pair(d, 7610)
    try:
        before = parked(s)
        cat = subprocess.Popen(["cat", cdata], stdout=subprocess.PIPE)
        assert blocked(cat.pid)
        if client == "9pfuse":
            assert wait_parked(s, before + 1)       # 9pfuse has sent the Tread
        cat.send_signal(signal.SIGINT)
        if client == "9pfuse":
            # real 9pfuse has no FUSE_INTERRUPT handler and never sends
            # Tflush; the signal is fatal to cat and the kernel then waits,
            # uninterruptibly (SIGKILL too), for the answer to the request
            # 9pfuse has read.  cat dies when the peer's next bytes answer
            # that Tread, and they die with it: lost.
            cat.send_signal(signal.SIGKILL)
            assert parked(s) == before + 1
            with open(sdata, "wb", buffering=0) as f:
                f.write(b"gone with the cat\n")
        assert cat.wait(30) == -signal.SIGINT
        assert cat.stdout.read() == b""
        with open(sdata, "wb", buffering=0) as f:
            f.write(b"after the interrupt\n")
        r = subprocess.run(["head", "-c", "20", cdata], capture_output=True, timeout=30)
        assert r.stdout == b"after the interrupt\n"
    finally:
        for fd in fds:
            os.close(fd)


EINTR_CHILD = r"""
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
signal.signal(signal.SIGUSR1, lambda *a: None)     # caught: the syscall returns EINTR
what, path = sys.argv[1], sys.argv[2]
if what == "read":
    fd = os.open(path, os.O_RDONLY)
    buf = ctypes.create_string_buffer(64)
    r = libc.read(fd, buf, 64)
    print(r, ctypes.get_errno(), flush=True)
    r = libc.read(fd, buf, 64)                      # the same descriptor, later
    print(r, buf.raw[:max(r, 0)].decode(), flush=True)
elif what == "open":
    r = libc.open(path.encode(), os.O_RDWR)
    print(r, ctypes.get_errno(), flush=True)
elif what == "write":
    fd = os.open(path, os.O_RDWR)
    msg = sys.argv[3].encode()
    r = libc.write(fd, msg, len(msg))
    print(r, ctypes.get_errno(), flush=True)
"""


def parked(s):
    """How many requests net9's server holds waiting (a read, an open of
    listen, a connect), over all its 9P connections."""
    return s.call(lambda: sum(len(c.pending) for c in s.srv.conns))


def wait_parked(s, n, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if parked(s) >= n:
            return True
        time.sleep(0.02)
    return False


def _interrupted(s, argv):
    """The child of argv, sent SIGUSR1 once its read, open or write waits
    at the server.  (Waiting in FUSE is not enough: its os.open of the
    file waits there too, briefly, and Python retries an open that a
    caught signal interrupted, so the signal would be spent before the
    call meant to wait, which then waits for the server: under load a
    connect to the black hole timed out, ETIMEDOUT instead of EINTR.)"""
    before = parked(s)
    p = subprocess.Popen([sys.executable, "-c", EINTR_CHILD] + argv, stdout=subprocess.PIPE,
                         text=True)
    assert blocked(p.pid)
    assert wait_parked(s, before + 1)
    p.send_signal(signal.SIGUSR1)
    return p


def test_interrupt_returns_eintr_and_loses_nothing(mnt):
    client, d, s = mnt
    fds, cdata, sdata = _pair(d, 7611)
    try:
        p = _interrupted(s, ["read", cdata])
        if client == "9pfuse":
            # real 9pfuse answers the kernel's FUSE_INTERRUPT with ENOSYS:
            # the caught signal does not end the read, which returns what
            # comes next (then the handler runs)
            with open(sdata, "wb", buffering=0) as f:
                f.write(b"still here")
                assert p.stdout.readline().split()[0] == "10"
                f.write(b"and more")
            assert p.stdout.readline() == "8 and more\n"
            assert p.wait(30) == 0
            return
        assert p.stdout.readline() == "-1 %d\n" % errno.EINTR
        with open(sdata, "wb", buffering=0) as f:
            f.write(b"still here")
        assert p.stdout.readline() == "10 still here\n"
        assert p.wait(30) == 0
    finally:
        for fd in fds:
            os.close(fd)


def test_interrupt_a_waiting_listen_and_connect(mnt):
    client, d, s = mnt
    a = os.open(d + "/tcp/clone", os.O_RDWR)
    try:
        an = os.read(a, 64).decode()
        os.write(a, b"announce 7612")
        p = _interrupted(s, ["open", "%s/tcp/%s/listen" % (d, an)])
        if client == "9pfuse":
            # real 9pfuse: not interrupted (see above); the open of listen
            # goes on waiting, and a call ends it
            c = os.open(d + "/tcp/clone", os.O_RDWR)
            os.read(c, 64)
            os.write(c, b"connect 127.0.0.1!7612")
            assert int(p.stdout.readline().split()[0]) >= 0
            assert p.wait(30) == 0
            os.close(c)
            # and a connect nobody answers goes on waiting until a hangup
            # from another shell (net9(4)'s advice) makes it fail.  Not at
            # once: the kernel lets one direct write at a time into an
            # inode (9pfuse does not offer FOPEN_PARALLEL_DIRECT_WRITES),
            # and a ctl opened within 9pfuse's entry timeout (1 s) of the
            # connect's lookup is the same inode, so such a hangup would
            # wait behind the connect; after it a lookup is a new node
            c = os.open(d + "/tcp/clone", os.O_RDWR)
            cn = os.read(c, 64).decode()
            ctl = "%s/tcp/%s/ctl" % (d, cn)
            p = _interrupted(s, ["write", ctl, "connect 10.77.0.1!80"])
            time.sleep(1.5)                       # past 9pfuse's entry timeout
            h = subprocess.Popen(["bash", "-c", "echo hangup >" + ctl],
                                 stderr=subprocess.PIPE, text=True)
            try:
                assert h.wait(30) == 0, h.stderr.read()
            except subprocess.TimeoutExpired:     # free the writers over 9P, then fail
                subprocess.run([sys.executable, CMD, "write", "--srv", s.addr,
                                "/net/tcp/%s/ctl" % cn], input="hangup\n", text=True,
                               env=net9env(), timeout=60)
                h.wait(30)
                raise
            assert p.stdout.readline() == "-1 %d\n" % p9p_errno("i/o on hungup channel")
            assert p.wait(30) == 0
            os.close(c)
            return
        assert p.stdout.readline() == "-1 %d\n" % errno.EINTR
        assert p.wait(30) == 0
        # a call after the interrupted listen is the next listen's
        c = os.open(d + "/tcp/clone", os.O_RDWR)
        os.read(c, 64)
        os.write(c, b"connect 127.0.0.1!7612")
        lf = os.open("%s/tcp/%s/listen" % (d, an), os.O_RDWR)
        assert os.read(lf, 64).decode().isdigit()
        os.close(lf)
        os.close(c)
        # a connect nobody answers (10.77.0.1: served.py's black hole)
        c = os.open(d + "/tcp/clone", os.O_RDWR)
        cn = os.read(c, 64).decode()
        p = _interrupted(s, ["write", "%s/tcp/%s/ctl" % (d, cn), "connect 10.77.0.1!80"])
        assert p.stdout.readline() == "-1 %d\n" % errno.EINTR
        assert p.wait(30) == 0
        os.close(c)
    finally:
        os.close(a)


# ---- many at once --------------------------------------------------------------------

def test_many_opens_and_waiting_reads_at_once(mnt):
    """64 conversations cloned by 64 threads at once, each a distinct
    number; then 32 reads waiting at once, all answered."""
    client, d, s = mnt
    fds = [None] * 64
    nums = [None] * 64

    def clone(i):
        fds[i] = os.open(d + "/tcp/clone", os.O_RDWR)
        nums[i] = os.read(fds[i], 64).decode()
    ts = [threading.Thread(target=clone, args=(i,)) for i in range(64)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    try:
        assert None not in nums and len(set(nums)) == 64
    finally:
        for fd in fds:
            if fd is not None:
                os.close(fd)
    pairs = [_pair(d, 7620 + i) for i in range(32)]
    got = [None] * 32

    def reader(i):
        with open(pairs[i][1], "rb", buffering=0) as f:
            got[i] = f.read(100)
    ts = [threading.Thread(target=reader, args=(i,)) for i in range(32)]
    for t in ts:
        t.start()
    try:
        for i in range(32):
            with open(pairs[i][2], "wb", buffering=0) as f:
                f.write(b"to %d" % i)
        for t in ts:
            t.join(60)
        assert got == [b"to %d" % i for i in range(32)]
    finally:
        for fds_, _, _ in pairs:
            for fd in fds_:
                os.close(fd)


# ---- the server goes away ------------------------------------------------------------

class Relinked:
    """A Served server reached through a symlink (link) in a scratch
    directory, with a mount point (mnt) there; restart() puts another
    server behind the same address (after the test closed the first)."""

    def __init__(self):
        self.served = Served()
        self.d = tempfile.mkdtemp(prefix="net9fuse.")
        self.link = os.path.join(self.d, "sock")
        os.symlink(self.served.sock, self.link)
        self.mnt = os.path.join(self.d, "mnt")
        os.mkdir(self.mnt)

    def restart(self):
        self.served = Served()
        os.unlink(self.link)
        os.symlink(self.served.sock, self.link)

    def close(self):
        self.served.close()
        shutil.rmtree(self.d, ignore_errors=True)


def test_server_restart_is_enotconn_then_works():
    """The mount outlives its server: what was open fails with ENOTCONN (a
    waiting read at once), so does everything while no server answers,
    and a server back at the same address is used again."""
    srv = Relinked()
    a, link, mnt = srv.served, srv.link, srv.mnt
    try:
        mount("unix!" + link, mnt)
        fds, cdata, sdata = _pair(mnt, 7700)
        cat = subprocess.Popen(["cat", cdata], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        assert blocked(cat.pid)
        a.close()
        assert cat.wait(30) == 1
        assert cat.stderr.read().endswith(": " + os.strerror(errno.ENOTCONN) + "\n")
        with pytest.raises(OSError) as e:
            os.read(fds[0], 64)
        assert e.value.errno == errno.ENOTCONN
        with pytest.raises(OSError) as e:
            os.listdir(mnt + "/tcp")
        assert e.value.errno == errno.ENOTCONN
        for fd in fds:
            os.close(fd)
        srv.restart()
        assert sorted(os.listdir(mnt + "/tcp")) == ["clone", "stats"]
        r = bash("exec 3<>%s/tcp/clone; read -r n <&3; cat %s/tcp/$n/status" % (mnt, mnt))
        assert r.stdout.startswith("Closed "), r.stderr
    finally:
        umount(mnt)
        srv.close()


@pytest.mark.skipif(_no9pfuse() is not None, reason=_no9pfuse() or "")
def test_server_gone_under_9pfuse():
    """What real 9pfuse does instead: it sees the server go only when a
    9P reply is awaited; then it exits (the request waiting fails with
    ECONNABORTED, what was open with ENOTCONN) and unmounts itself lazily
    (fusermount -u -z), leaving the empty directory.  A server back at
    the address is not used: mount again."""
    srv = Relinked()
    a, link, mnt = srv.served, srv.link, srv.mnt
    try:
        mount("unix!" + link, mnt, "9pfuse")
        fds, cdata, sdata = _pair(mnt, 7701)
        before = parked(a)
        cat = subprocess.Popen(["cat", cdata], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        assert blocked(cat.pid)
        assert wait_parked(a, before + 1)
        a.close()
        assert cat.wait(30) == 1
        err = cat.stderr.read().splitlines()
        assert err[0].endswith(": " + os.strerror(errno.ECONNABORTED)), err
        with pytest.raises(OSError) as e:
            os.read(fds[0], 64)
        assert e.value.errno == errno.ENOTCONN
        for fd in fds:
            try:
                os.close(fd)                      # the kernel still sends FLUSH: ENOTCONN
            except OSError as e:
                assert e.errno == errno.ENOTCONN
        for _ in range(200):                      # 9pfuse's fusermount -u -z at exit
            if not _mounted(mnt):
                break
            time.sleep(0.05)
        assert not _mounted(mnt)
        assert os.listdir(mnt) == []
        srv.restart()
        assert os.listdir(mnt) == []
        mount("unix!" + link, mnt, "9pfuse")
        r = bash("exec 3<>%s/tcp/clone; read -r n <&3; cat %s/tcp/$n/status" % (mnt, mnt))
        assert r.stdout.startswith("Closed "), r.stderr
    finally:
        if _mounted(mnt):
            umount(mnt)
        srv.close()


# ---- without root: fusermount3 ------------------------------------------------------

@pytest.mark.skipif(shutil.which("fusermount3") is None and shutil.which("fusermount") is None,
                    reason="no fusermount3 (Debian package fuse3)")
def test_unprivileged_mount():
    s = Served()
    addr = s.call(s.srv.listen, "tcp!127.0.0.1!0")
    pw = pwd.getpwnam("nobody")
    mnt = os.path.join(s.dir, "mnt")
    os.mkdir(mnt)
    os.chown(mnt, pw.pw_uid, pw.pw_gid)

    def child():
        code = net9main.main(["mount", "--fuse", "--srv", addr, mnt], prog_name="net9",
                             standalone_mode=False) or 0
        with open(mnt + "/tcp/clone", "r+b", buffering=0) as f:
            n = f.read(64).decode()
            st = os.stat("%s/tcp/%s/ctl" % (mnt, n))
            print("own", st.st_uid == os.getuid())
            try:
                f.write(b"connect 127.0.0.1!1")
            except OSError as e:
                print(errno.errorcode[e.errno])
        print(open("/proc/self/mounts").read().count(" %s fuse.net9 " % mnt))
        return code
    mode = os.stat(net9.fuse.DEV_FUSE).st_mode & 0o777
    try:
        # fusermount3 opens /dev/fuse as its caller: 0666 as Debian's udev
        # rules make it (a container may have it 0600); put back after
        os.chmod(net9.fuse.DEV_FUSE, 0o666)
        pid, r = as_user("nobody", child)
        rc, out = collect(pid, r)
        assert rc == 0, out
        lines = out.splitlines()
        assert re.fullmatch(r"net9: serving tcp!127\.0\.0\.1!\d+ on .*/mnt with net9's FUSE "
                            r"client as nobody \(pid \d+\); net9 umount .*", lines[0]), out
        assert lines[1:] == ["own True", "ECONNREFUSED", "1"], out

        def unmount():
            return run_net9("umount", mnt)
        pid, r = as_user("nobody", unmount)
        rc, out = collect(pid, r)
        assert rc == 0 and "fusermount" in out, out
        assert not _mounted(mnt)
    finally:
        os.chmod(net9.fuse.DEV_FUSE, mode)
        if _mounted(mnt):
            subprocess.run(["umount", "-l", mnt])
        s.close()


# ---- the README's recipe against Linux -------------------------------------------------

@pytest.mark.skipif(missing() is not None, reason=missing() or "")
@pytest.mark.parametrize("client", CLIENTS)
def test_readme_recipe_against_linux(client):
    from served import Serve, linux_www
    ns = Netns()
    d = tempfile.mkdtemp(prefix="net9fuse.")
    www = linux_www(d)
    sock = os.path.join(d, "net9")
    s = Serve("--netns", ns.name, "--srv", "unix!" + sock)
    http = ns.popen(sys.executable, "-m", "http.server", "8000", "--bind", "10.9.0.1", cwd=www)
    mnt = os.path.join(d, "mnt")
    try:
        mount("unix!" + sock, mnt, client)
        recipe = ("exec 3<>{m}/tcp/clone\nread -r n <&3\n"
                  "echo 'connect 10.9.0.1!8000' >&3\n"
                  "printf 'GET / HTTP/1.0\\r\\n\\r\\n' >{m}/tcp/$n/data\n"
                  "cat {m}/tcp/$n/data\nexec 3>&-\n").format(m=mnt)
        for _ in range(100):                    # until http.server is up
            r = bash(recipe)
            if "refused" not in r.stderr:
                break
            time.sleep(0.1)
        assert r.stdout.startswith("HTTP/1.0 200 "), r.stderr
        assert r.stdout.endswith("\n\nhello from linux\n")          # (text mode: no \\r)
        r = bash("exec 3<>%s/tcp/clone; echo 'connect 10.9.0.1!9' >&3" % mnt)
        assert r.stderr.rstrip().endswith(": " + os.strerror(want_errno(client,
                                                                        "connection refused")))
        assert "InSegs: " in open(mnt + "/tcp/stats").read()
    finally:
        umount(mnt)
        http.kill()
        http.wait()
        s.stop()
        ns.close()
        shutil.rmtree(d, ignore_errors=True)


# ---- which client net9 mount picks ------------------------------------------------------

def test_mount_picks_its_own_fuse_without_9pfuse():
    path = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
    if shutil.which("9pfuse", path=path):
        pytest.skip("9pfuse is installed: net9 mount would use it")
    s = Served()
    mnt = os.path.join(s.dir, "mnt")
    env = net9env(PATH=path)
    try:
        r = subprocess.run([sys.executable, CMD, "mount", "--srv", s.addr, mnt],
                           capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stderr.splitlines()[-1] == (
            "net9: serving %s on %s with net9's FUSE client as each local user (pid %s); "
            "net9 umount %s to end it" % (s.addr, mnt, r.stderr.split("(pid ")[1].split(")")[0],
                                          mnt))
        with open("/proc/self/mounts") as f:
            assert "net9 %s fuse.net9 rw,nosuid,nodev," % mnt in f.read()
        r = subprocess.run([sys.executable, CMD, "umount", mnt], capture_output=True,
                           text=True, env=env, timeout=60)
        assert r.returncode == 0 and r.stderr == "+ umount %s\n" % mnt, r.stderr
        assert not _mounted(mnt)
    finally:
        if _mounted(mnt):
            subprocess.run(["umount", "-l", mnt])
        s.close()
