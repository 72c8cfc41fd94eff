"""The 9P server against independent clients: python-9p's py9p.Client
(9P2000, threads sharing one connection) and diod's diodls/diodcat
(9P2000.L), over the unix socket and TCP (../shared/spec/9p-clients.md
sections 4, 5 and 7)."""

import shutil
import subprocess
import threading
import time

import pytest

from ninepenv import Env

py9p = pytest.importorskip("py9p", reason="python-9p not installed (pip install python-9p)")

ORDWR = 2


@pytest.fixture
def env():
    e = Env()
    yield e
    e.close()


def client(env, tcp=False):
    if tcp:
        c = py9p.Client.connect_tcp("127.0.0.1", env.port, timeout=10)
    else:
        c = py9p.Client.connect_unix(env.sock)
    v = c.negotiate()
    assert v.version == "9P2000" and c.msize == 8192
    c.attach(0, uname="glenda")
    return c


@pytest.mark.parametrize("tcp", [False, True])
def test_py9p_walk_stat_list(env, tcp):
    c = client(env, tcp)
    try:
        qids = c.walk(0, 1, "tcp/stats")
        assert [q.path for q in qids] == [8, 10]
        c.open(1)
        text = c.read(1).decode()
        assert text.splitlines()[0] == "MaxConn: 4096" and len(text.splitlines()) == 28
        d = c.stat(1)
        assert d.name == "stats" and d.uid == "network" and d.gid == "eve" and d.mode == 0o444
        c.clunk(1)
        # py9p keeps ".." in walks (9p-clients 5)
        c.walk(0, 2, "tcp/clone")
        c.open(2, ORDWR)
        assert c.read(2) == b"0"
        qids = c.walk(0, 3, "tcp/0/../0/status")
        assert qids[-1].path == 18
        c.open(3)
        assert c.read(3).startswith(b"Closed qin 0 qout 0")
        c.walk(0, 4, "tcp")
        c.open(4)
        raw = c.read(4)
        first = raw[:int.from_bytes(raw[:2], "little") + 2]
        names = [py9p.decode_dir(first)]
        assert names[0].name == "0" and names[0].uid == "glenda"
    finally:
        c.close()


def test_py9p_clone_connect_listen_exchange(env):
    """announce, a listen that blocks in one thread while another thread
    connects on the same py9p connection, data both ways."""
    c = client(env)
    try:
        c.walk(0, 1, "tcp/clone")
        c.open(1, ORDWR)
        lnum = int(c.read(1))
        assert c.write(1, b"announce 7100\n") == len(b"announce 7100\n")
        c.walk(0, 2, "tcp/%d/listen" % lnum)
        res = {}

        def listen():
            res["qid"] = c.open(2, ORDWR)[0]
        t = threading.Thread(target=listen)
        t.start()
        time.sleep(0.2)
        assert t.is_alive()                      # parked, not holding up others
        c.walk(0, 3, "tcp/clone")
        c.open(3, ORDWR)
        cnum = int(c.read(3))
        c.write(3, b"connect 127.0.0.1!7100")
        t.join(5)
        assert not t.is_alive()
        anum = (res["qid"].path >> 5) & 0xFFF
        assert int(c.read(2)) == anum
        c.walk(0, 4, "tcp/%d/data" % cnum)
        c.open(4, ORDWR)
        c.walk(0, 5, "tcp/%d/data" % anum)
        c.open(5, ORDWR)
        # a 20000-byte Twrite in an 8192 session (py9p never splits writes)
        big = bytes(range(256)) * 78 + b"xy"
        assert c.write(4, big) == len(big)
        got = b""
        while len(got) < len(big):
            got += c.read(5)
        assert got == big
        c.write(5, b"pong")
        assert c.read(4) == b"pong"
        # status of the accepted call: Established
        c.walk(0, 6, "tcp/%d/status" % anum)
        c.open(6)
        assert c.read(6).startswith(b"Established ")
    finally:
        c.close()


def test_py9p_flush_via_rpc(env):
    """A raw Tflush through py9p's rpc (it has no flush API): Rflush, and no
    reply for the flushed tag (9p-clients 5)."""
    c = client(env)
    try:
        c.walk(0, 1, "tcp/clone")
        c.open(1, ORDWR)
        num = int(c.read(1))
        c.walk(0, 2, "tcp/%d/data" % num)
        c.open(2, ORDWR)
        def read77():
            try:
                c.rpc(py9p.Tread(fid=2, offset=0, count=10), tag=77)
            except EOFError:
                pass                    # (the close below ends the wait)
        t = threading.Thread(target=read77, daemon=True)
        t.start()
        time.sleep(0.2)
        r = c.rpc(py9p.Tflush(oldtag=77), py9p.Rflush)
        assert isinstance(r, py9p.Rflush)
        assert c.stat(2).name == "data"
        t.join(0.3)
        assert t.is_alive()           # tag 77 got no reply (py9p's thread waits forever)
    finally:
        c.close()


def test_py9p_permission_denied_for_another_uname(env):
    a = client(env)
    b = py9p.Client.connect_unix(env.sock)
    b.negotiate()
    b.attach(0, uname="mallory")
    try:
        a.walk(0, 1, "tcp/clone")
        a.open(1, ORDWR)
        num = int(a.read(1))
        b.walk(0, 1, "tcp/%d/data" % num)
        with pytest.raises(py9p.RemoteError, match="permission denied"):
            b.open(1, ORDWR)
    finally:
        a.close()
        b.close()


diod = pytest.mark.skipif(shutil.which("diodls") is None or shutil.which("diodcat") is None,
                          reason="diod's diodls/diodcat not installed (apt-get install diod)")


def run(*args, timeout=20):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


@diod
@pytest.mark.parametrize("tcp", [False, True])
def test_diodls_diodcat(env, tcp):
    addr = "127.0.0.1:%d" % env.port if tcp else env.sock
    r = run("diodls", "-s", addr, "-a", "", "-l", "/")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    names = [ln.split()[-1] for ln in lines]
    assert names == [".", "..", "tcp", "arp", "bootp", "ndb", "iproute", "ipselftab", "log"]
    modes = {ln.split()[-1]: ln.split()[0].rstrip(".") for ln in lines}
    assert modes["tcp"] == "dr-xr-xr-x" and modes["arp"] == "-rw-rw-r--"
    assert modes["ipselftab"] == "-r--r--r--" and modes["log"] == "-rw-rw-rw-"
    r = run("diodcat", "-s", addr, "-a", "", "tcp/stats")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "MaxConn: 4096" and len(r.stdout.splitlines()) == 28
    # diodcat of clone: allocates conversation 0, reads "0", and the clunk
    # (or the dropped connection) frees it again
    r = run("diodcat", "-s", addr, "-a", "", "tcp/clone")
    assert r.returncode == 0 and r.stdout == "0"
    r = run("diodls", "-s", addr, "-a", "", "-l", "tcp/0")
    names = [ln.split()[-1] for ln in r.stdout.splitlines()]
    assert names == [".", "..", "ctl", "data", "err", "listen", "local", "remote", "status"]
    owner = {ln.split()[-1]: ln.split()[0].rstrip(".") for ln in r.stdout.splitlines()}
    assert owner["ctl"] == "-rw-rw----" and owner["status"] == "-r--r--r--"
    assert env.call(lambda: env.tcp.conv[0].inuse) == 0


@diod
def test_diodcat_blocked_then_dropped(env):
    """diodcat of a blocking file closes the connection without Tflush or
    Tclunk when it times out: the server ends the parked read and frees
    the conversation (9p-clients 4)."""
    c = client(env)
    try:
        c.walk(0, 1, "tcp/clone")
        c.open(1, ORDWR)
        num = int(c.read(1))
        c.write(1, b"announce 7101")
        # the idle announced conversation: eve only... make it readable by all
        from net9 import ninep
        c.wstat(1, ninep.packstat(0xFFFF, 0xFFFFFFFF, (0xFF, 0xFFFFFFFF, 2 ** 64 - 1), 0o666,
                                  0xFFFFFFFF, 0xFFFFFFFF, 2 ** 64 - 1, "", "", "", ""))
        r = run("diodcat", "-t", "1", "-s", env.sock, "-a", "", "tcp/%d/data" % num)
        assert r.returncode != 0 and "timed out" in (r.stderr + r.stdout).lower()
        deadline = time.time() + 5
        while time.time() < deadline:
            if env.call(lambda: (env.tcp.conv[num].inuse, len(env.tcp.conv[num].aux or []))) == (1, 0):
                break
            time.sleep(0.05)
        assert env.call(lambda: (env.tcp.conv[num].inuse, len(env.tcp.conv[num].aux or []))) == (1, 0)
    finally:
        c.close()
