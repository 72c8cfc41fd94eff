"""Who a 9P client is, and the name space directory (net9(4) "Who a client
is", net9(1)).

* net9.peer: /proc/net/tcp{,6} entries decoded (IPv4, IPv6, v4-mapped),
  the owner of a loopback client's socket found (and not found once the
  client has gone), SO_PEERCRED.
* The server in this process (adopt with an explicit peer): an ordinary
  uid attaches as itself only, 9P2000 and 9P2000.L (n_uname); root and
  trusted peers as anyone; a remote peer is none, which owns what it clones
  and nothing else and is never eve; an unknown peer is refused; a loopback
  client whose socket is in another network namespace is refused.
* A real `net9 serve` on tcp!127.0.0.1!PORT and on a unix socket, with
  clients that are processes running as nobody, and root; `net9 serve
  --allow-remote` (with and without --trust-uname) in one network namespace
  reached over a veth pair from another.
* The name space directory: made 0700; one owned by nobody or open to
  others refused by net9 serve, net9 netstat, net9.dial's default and
  net9.ping; a socket in a good directory owned by another user refused
  by the clients before they connect.
"""

import encodings.idna  # noqa: F401 (children running as nobody cannot import it)
import errno
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

pytest.importorskip("net9.stack", reason="net9.stack not built")

import net9  # noqa: E402
import net9.ping  # noqa: E402
from net9 import ninep, namespace, peer as npeer  # noqa: E402
from net9.namespace import NamespaceError  # noqa: E402
from net9.peer import Peer  # noqa: E402

import linuxns  # noqa: E402
from linuxns import Netns  # noqa: E402
from ninepenv import Env, Raw  # noqa: E402
from test_cli_linux import as_user, collect, run, run_net9, one_error  # noqa: E402
from served import Serve  # noqa: E402

ROOT = os.geteuid() == 0
needroot = linuxns.needs_kernel(None if ROOT else "needs root (to run clients as nobody, "
                              "chown files to nobody)")
linux = linuxns.skip_unless_linux()
NOBODY = pwd.getpwnam("nobody").pw_uid if ROOT else 65534
OREAD, OWRITE, ORDWR = 0, 1, 2


def me():
    return npeer.username(os.geteuid())


# ---- a scripted 9P session (run here, or in a child running as nobody) -------------

def outcome(r):
    if r[0] == ninep.Rerror:
        return ["error", r[2]]
    if r[0] == ninep.Rlerror:
        return ["errno", r[2]]
    return ["ok"]


def dial(where):
    if isinstance(where, socket.socket):
        return where
    if where[0] == "tcp":
        return socket.create_connection((where[1], where[2]), timeout=10)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(where[1])
    return s


def session(where, uname, nuname=None, version="9P2000", ops=()):
    """Attach as uname (n_uname), then run ops: ["clone", proto] (result:
    the number and the owner of its ctl: a name in 9P2000, a uid in .L),
    ["ctl", text] (written to the last clone), ["open", path, mode].
    Opened files stay open until the end.  Returns a JSON-able dict."""
    r = Raw(sock=dial(where))
    try:
        r.version(version=version)
        res = {"version": r.dotl and "9P2000.L" or "9P2000",
               "attach": outcome(r.attach(0, uname, nuname))}
        out = res["ops"] = []
        if res["attach"] != ["ok"]:
            return res
        fid, last = 10, None
        for op in ops:
            fid += 1
            if op[0] == "clone":
                r.ok(ninep.Twalk, 0, fid, [op[1], "clone"])
                o = outcome(r.open(fid, ORDWR))
                if o != ["ok"]:
                    out.append(o)
                    continue
                n = int(r.ok(ninep.Tread, fid, 0, 100)[2])
                if r.dotl:
                    owner = r.ok(ninep.Tgetattr, fid, 0x3FFF)[5]
                else:
                    owner = ninep.unpackstat(r.ok(ninep.Tstat, fid)[2])[8]
                out.append(["ok", n, owner])
                last = fid
            elif op[0] == "ctl":
                out.append(outcome(r.write(last, op[1].encode())))
            elif op[0] == "open":
                w = r.walk(0, fid, op[1])
                if w[0] != ninep.Rwalk or len(w[2]) != len(op[1].split("/")):
                    out.append(outcome(w) if w[0] != ninep.Rwalk else ["error", "walk"])
                    continue
                out.append(outcome(r.open(fid, op[2])))
        return res
    finally:
        r.close()


def child_session(args):
    print(json.dumps(session(**args)), flush=True)
    return 0


def as_nobody(**args):
    """session(**args) in a child running as nobody: its result."""
    rc, out = collect(*as_user("nobody", child_session, args))
    assert rc == 0, out
    return json.loads(out.strip().splitlines()[-1])


def refused(res, uname, dotl=False):
    """The attach was refused with the server's text (9P2000) or EACCES."""
    if dotl:
        assert res["attach"] == ["errno", errno.EACCES], res
    else:
        assert res["attach"][0] == "error", res
        assert res["attach"][1].startswith("permission denied: "), res
        assert repr(uname) in res["attach"][1] or "uid" in res["attach"][1], res


EPERM = ["error", "permission denied"]


# ---- net9.peer: /proc/net/tcp ---------------------------------------------------------

def prochex(ip, port):
    """ip!port as the kernel prints it in /proc/net/tcp{,6}."""
    import ipaddress
    raw = ipaddress.ip_address(ip).packed
    words = ["%08X" % int.from_bytes(raw[i:i + 4], sys.byteorder)
             for i in range(0, len(raw), 4)]
    return "".join(words) + ":%04X" % port


def test_prochex_decodes_v4_v6_and_mapped():
    import ipaddress
    assert npeer._prochex(prochex("127.0.0.1", 8080)) == (ipaddress.ip_address("127.0.0.1"),
                                                          8080)
    assert npeer._prochex(prochex("::1", 22)) == (ipaddress.ip_address("::1"), 22)
    assert npeer._prochex(prochex("fd09::2", 564)) == (ipaddress.ip_address("fd09::2"), 564)
    # a v4-mapped entry in tcp6 is the IPv4 address
    assert npeer._prochex(prochex("::ffff:127.0.0.2", 1)) == (
        ipaddress.ip_address("127.0.0.2"), 1)
    if sys.byteorder == "little":
        assert npeer._prochex("0100007F:1F90")[1] == 8080
        assert str(npeer._prochex("0100007F:1F90")[0]) == "127.0.0.1"


def fakeproc(tmp_path, lines4=(), lines6=()):
    head = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt" \
           "   uid  timeout inode\n"
    for name, lines in (("tcp", lines4), ("tcp6", lines6)):
        (tmp_path / name).write_text(head + "".join(
            "%4d: %s %s %02X 00000000:00000000 00:00000000 00000000 %5d        0 %d 1 "
            "0000000000000000 100 0 0 10 0\n" % (i, l, r, st, uid, ino)
            for i, (l, r, st, uid, ino) in enumerate(lines)))
    return str(tmp_path)


def test_tcp_owner_reads_the_clients_entry_only(tmp_path):
    c, s = ("127.0.0.1", 40000), ("127.0.0.1", 564)
    d = fakeproc(tmp_path, lines4=[
        (prochex(*s), prochex("0.0.0.0", 0), 0x0A, 0, 11),        # our listener (root)
        (prochex(*s), prochex(*c), 0x01, 0, 12),                  # our accepted end
        (prochex(*c), prochex("127.0.0.1", 565), 0x01, 7, 13),    # another server's
        (prochex(*c), prochex(*s), 0x01, 1000, 14),               # the client: uid 1000
    ])
    assert npeer.tcp_owner(c, s, procdir=d) == 1000
    assert npeer.tcp_owner(("::ffff:127.0.0.1", 40000), ("::ffff:127.0.0.1", 564),
                           procdir=d) == 1000
    assert npeer.tcp_owner(("127.0.0.1", 40001), s, procdir=d) is None


def test_tcp_owner_ignores_time_wait_and_orphans(tmp_path):
    c, s = ("127.0.0.1", 40000), ("127.0.0.1", 564)
    d = fakeproc(tmp_path, lines4=[
        (prochex(*c), prochex(*s), 0x06, 0, 0),       # TIME_WAIT: uid 0, no inode
        (prochex(*c), prochex(*s), 0x05, 0, 0),       # FIN_WAIT2, closed by its process
    ])
    assert npeer.tcp_owner(c, s, procdir=d) is None


def test_tcp_owner_v6_and_mapped_in_tcp6(tmp_path):
    d = fakeproc(tmp_path, lines6=[
        (prochex("::1", 40000), prochex("::1", 564), 0x01, 1001, 21),
        (prochex("::ffff:127.0.0.1", 40002), prochex("::ffff:127.0.0.1", 564), 0x01,
         1002, 22),
    ])
    assert npeer.tcp_owner(("::1", 40000, 0, 0), ("::1", 564, 0, 0), procdir=d) == 1001
    assert npeer.tcp_owner(("127.0.0.1", 40002), ("::ffff:127.0.0.1", 564, 0, 0),
                           procdir=d) == 1002


def pair_tcp(family, listen_host, connect_host, client_family=None):
    ls = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_INET6:
        ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    ls.bind((listen_host, 0))
    ls.listen(1)
    cl = socket.socket(client_family or family, socket.SOCK_STREAM)
    cl.connect((connect_host, ls.getsockname()[1]))
    a, peer = ls.accept()
    ls.close()
    return cl, a, peer


@pytest.mark.parametrize("case", [
    (socket.AF_INET, "127.0.0.1", "127.0.0.1", None),
    (socket.AF_INET6, "::1", "::1", None),
    (socket.AF_INET6, "::", "127.0.0.1", socket.AF_INET),   # v4-mapped on a v6 listener
], ids=["v4", "v6", "mapped"])
def test_tcp_owner_of_a_real_client(case):
    try:
        cl, a, peer = pair_tcp(*case)
    except OSError as e:
        pytest.skip("no %s loopback here: %s" % (case[1], e))
    try:
        assert npeer.isloopback(peer[0])
        assert npeer.tcp_owner(peer, a.getsockname()) == os.geteuid()
        p = npeer.of_socket(a, peer)
        assert p.kind == npeer.LOCAL and p.uid == os.geteuid()
        cl.close()                      # gone: its owner can no longer be told
        time.sleep(0.05)
        assert npeer.tcp_owner(peer, a.getsockname()) is None
        assert npeer.of_socket(a, peer).kind == npeer.UNKNOWN
    finally:
        cl.close()
        a.close()


@needroot
def test_tcp_owner_of_a_nobody_client():
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    port = ls.getsockname()[1]

    def connect_and_wait():
        s = socket.create_connection(("127.0.0.1", port))
        s.recv(1)                       # until the parent has looked
        return 0
    pid, r = as_user("nobody", connect_and_wait)
    ls.settimeout(20)
    try:
        a, peer = ls.accept()
    except socket.timeout:
        a = None
    ls.close()
    try:
        assert a is not None, "no connection from nobody"
        assert npeer.tcp_owner(peer, a.getsockname()) == NOBODY
    finally:
        if a is not None:
            a.close()
        rc, out = collect(pid, r)
    assert rc == 0, out


def test_peercred_of_a_socketpair():
    a, b = socket.socketpair()
    try:
        assert npeer.peercred(a) == os.geteuid()
        p = npeer.of_socket(a)
        assert p.kind == npeer.LOCAL and p.uid == os.geteuid()
    finally:
        a.close()
        b.close()


def test_a_remote_peer_is_none_unless_trusted():
    cl, a, peer = pair_tcp(socket.AF_INET, "127.0.0.1", "127.0.0.1")
    try:
        fake = ("10.1.2.3", 4567)        # of_socket judges the address it is given
        assert npeer.of_socket(a, fake).kind == npeer.REMOTE
        assert npeer.of_socket(a, fake, trust_uname=True).kind == npeer.TRUSTED
        assert npeer.of_socket(a, ("::ffff:10.1.2.3", 1)).kind == npeer.REMOTE
    finally:
        cl.close()
        a.close()


# ---- the server in this process, peers given to adopt() ------------------------------

@pytest.fixture
def env():
    e = Env(eve="glenda", tcp=False)
    yield e
    e.close()


def adopted(env, peer):
    """Our end of a socketpair the server adopted with peer (for Raw(sock=...))."""
    a, b = socket.socketpair()
    env.call(lambda: env.server.adopt(a.fileno(), a.fileno(), peer, sock=a, name="pair"))
    return b


def test_adopt_wants_to_know_who(env):
    a, b = socket.socketpair()
    with pytest.raises(TypeError):
        env.call(lambda: env.server.adopt(a.fileno(), a.fileno()))
    with pytest.raises(ValueError):
        env.call(lambda: env.server.adopt(a.fileno(), a.fileno(), "somebody"))
    with pytest.raises(TypeError):
        env.call(lambda: env.server.adopt(a.fileno(), a.fileno(), None))
    a.close()
    b.close()


def test_eve_cannot_be_none():
    from net9.server import Server
    e = Env(eve="glenda", tcp=False)
    try:
        with pytest.raises(ValueError, match="none"):
            Server(e.fs, e.loop, eve="none")
    finally:
        e.close()


def test_a_socketpair_peer_is_its_creator(env):
    b = adopted(env, "socket")
    conn = env.call(lambda: [x for x in env.server.conns if x.name == "pair"][0])
    assert conn.peer.kind == npeer.LOCAL and conn.peer.uid == os.geteuid()
    res = session(b, me())
    assert res["attach"] == ["ok"]


def test_an_ordinary_uid_attaches_as_itself_only(env):
    uid = NOBODY
    name = npeer.username(uid)
    res = session(adopted(env, uid), "glenda")
    refused(res, "glenda")
    assert res["attach"][1] == ("permission denied: uid %d may attach only as %s, not "
                                "'glenda'" % (uid, name))
    refused(session(adopted(env, uid), ""), "")
    refused(session(adopted(env, uid), "none"), "none")
    res = session(adopted(env, uid), name, ops=[["clone", "tcp"], ["ctl", "announce *"],
                                                ["open", "iproute", OWRITE],
                                                ["open", "ndb", OWRITE],
                                                ["open", "arp", ORDWR],
                                                ["open", "iproute", OREAD]])
    assert res["attach"] == ["ok"]
    clone, star, iproute, ndb, arp, rd = res["ops"]
    assert clone[0] == "ok" and clone[2] == name        # it owns what it clones
    assert star == EPERM and iproute == EPERM and ndb == EPERM and arp == EPERM
    assert rd == ["ok"]
    # the log says who was refused
    assert any("refused" in ln and "'glenda'" in ln for ln in env.logs)


def test_nuname_in_9p2000L(env):
    uid, name = NOBODY, npeer.username(NOBODY)
    L = "9P2000.L"
    refused(session(adopted(env, uid), "", 0, version=L), "", dotl=True)
    refused(session(adopted(env, uid), name, 0, version=L), name, dotl=True)
    refused(session(adopted(env, uid), "root", uid, version=L), "root", dotl=True)
    refused(session(adopted(env, uid), "", ninep.NONUNAME, version=L), "", dotl=True)
    for un, nu in (("", uid), (name, uid), (name, ninep.NONUNAME)):
        res = session(adopted(env, uid), un, nu, version=L, ops=[["clone", "tcp"]])
        assert res["attach"] == ["ok"], (un, nu, res)
        assert res["ops"][0][:1] == ["ok"] and res["ops"][0][2] == uid
    # 9P2000 with a .u n_uname field: the same rule
    refused(session(adopted(env, uid), name, 0), name)


def test_root_and_the_servers_user_attach_as_anyone(env):
    for who in (0, os.geteuid(), "trusted"):
        for un, nu, v in (("glenda", None, "9P2000"), ("root", None, "9P2000"),
                          ("", 0, "9P2000.L"), ("alice", 1234, "9P2000.L")):
            res = session(adopted(env, who), un, nu, version=v, ops=[["clone", "tcp"]])
            assert res["attach"] == ["ok"], (who, un, res)
    # glenda is eve: she may announce *
    res = session(adopted(env, 0), "glenda", ops=[["clone", "tcp"], ["ctl", "announce *"],
                                                  ["open", "iproute", OWRITE]])
    assert res["ops"][1:] == [["ok"], ["ok"]]


def test_a_remote_peer_is_none_and_none_is_nobody_special(env):
    hold = Raw(sock=adopted(env, 0))       # glenda holds a conversation
    hold.version()
    hold.ok(ninep.Tattach, 0, ninep.NOFID, "glenda", "")
    hold.ok(ninep.Twalk, 0, 1, ["tcp", "clone"])
    hold.ok(ninep.Topen, 1, ORDWR)
    gn = int(hold.ok(ninep.Tread, 1, 0, 100)[2])
    for i, un in enumerate(("glenda", "root", "none", "")):
        res = session(adopted(env, "none"), un, ops=[
            ["clone", "tcp"], ["ctl", "announce *"], ["open", "iproute", OWRITE],
            ["open", "ndb", OWRITE], ["open", "tcp/%d/ctl" % gn, ORDWR],
            ["open", "tcp/%d/data" % gn, OREAD], ["open", "tcp/%d/status" % gn, OREAD],
            ["clone", "tcp"], ["ctl", "announce %d" % (7000 + i)]])
        assert res["attach"] == ["ok"], res
        clone, star, iproute, ndb, octl, odata, ostatus, clone2, ann = res["ops"]
        assert clone[0] == "ok" and clone[2] == "none"   # none owns what it clones
        assert [star, iproute, ndb, octl, odata] == [EPERM] * 5, res
        assert ostatus == ["ok"] and ann == ["ok"] and clone2[2] == "none"
    # in 9P2000.L too, whatever n_uname says
    res = session(adopted(env, "none"), "", 0, version="9P2000.L",
                  ops=[["clone", "tcp"], ["open", "iproute", OWRITE]])
    assert res["attach"] == ["ok"]
    assert res["ops"][0][2] == 65534 and res["ops"][1] == ["errno", errno.EACCES]
    hold.close()


def test_an_unknown_peer_is_refused(env):
    res = session(adopted(env, Peer.unknown("no idea")), "glenda")
    assert res["attach"] == ["error", "permission denied: cannot tell who the client is "
                                      "(no idea)"]
    res = session(adopted(env, Peer.unknown("no idea")), "", 0, version="9P2000.L")
    assert res["attach"] == ["errno", errno.EACCES]


@linux
def test_a_loopback_client_in_another_netns_is_refused():
    """The listener lives in a namespace the server's thread is not in: the
    client's /proc entry is not where the server looks, so it cannot be
    told and is refused rather than trusted."""
    from net9.media import innetns
    ns = Netns()
    e = Env(eve="glenda", tcp=False)
    try:
        def listen():
            with innetns(ns.name):
                return e.server.listen("tcp!127.0.0.1!0")
        port = int(e.call(listen).rsplit("!", 1)[1])
        s = ns.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect(("127.0.0.1", port))
        res = session(s, "root")
        assert res["attach"][0] == "error", res
        assert res["attach"][1].startswith("permission denied: cannot tell who the client "
                                           "is (no socket of this machine is the client "
                                           "tcp!127.0.0.1!"), res
    finally:
        e.close()
        ns.close()


# ---- a real net9 serve, clients running as nobody -------------------------------------

@pytest.fixture(scope="module")
def served():
    """net9 serve (as root: eve root) on tcp!127.0.0.1!PORT and a unix socket
    nobody may connect to."""
    if not ROOT:
        pytest.skip("needs root (clients run as nobody)")
    d = tempfile.mkdtemp(prefix="net9auth.")
    os.chmod(d, 0o755)
    sock = os.path.join(d, "net9")
    s = Serve("--tun", "none", "--srv", "tcp!127.0.0.1!0", "--srv", "unix!" + sock,
              "-v", wait=r"serving 9P on unix!")
    port = int(s.expect(r"serving 9P on tcp!").rsplit("!", 1)[1])
    os.chmod(sock, 0o666)           # let nobody connect: the attach decides
    yield {"tcp": ("tcp", "127.0.0.1", port), "unix": ("unix", sock), "serve": s}
    assert s.stop() == 0
    assert not any("Traceback" in (ln or "") for ln in s.lines), s.lines
    shutil.rmtree(d, ignore_errors=True)


@needroot
@pytest.mark.parametrize("via", ["tcp", "unix"])
def test_nobody_may_not_attach_as_root(served, via):
    res = as_nobody(where=served[via], uname="root", ops=[["open", "iproute", OWRITE]])
    assert res["attach"] == ["error", "permission denied: uid %d may attach only as "
                                      "nobody, not 'root'" % NOBODY], res
    assert res["ops"] == []
    served["serve"].expect(r"attach as 'root' \(n_uname none\) refused")
    for un in ("", "glenda", "none"):
        refused(as_nobody(where=served[via], uname=un), un)


@needroot
@pytest.mark.parametrize("via", ["tcp", "unix"])
def test_nobody_attaches_as_nobody_and_owns_its_conversations(served, via):
    res = as_nobody(where=served[via], uname="nobody", ops=[
        ["clone", "tcp"], ["ctl", "announce *"],
        ["clone", "tcp"], ["ctl", "announce 7123"],
        ["open", "iproute", OWRITE], ["open", "ndb", ORDWR], ["open", "iproute", OREAD]])
    assert res["attach"] == ["ok"], res
    c1, star, c2, ann, iproute, ndb, rd = res["ops"]
    assert c1[0] == "ok" and c1[2] == "nobody" and c2[2] == "nobody"
    assert star == EPERM and iproute == EPERM and ndb == EPERM
    assert ann == ["ok"] and rd == ["ok"]


@needroot
@pytest.mark.parametrize("via", ["tcp", "unix"])
def test_nobody_in_9p2000L(served, via):
    L = "9P2000.L"
    res = as_nobody(where=served[via], uname="", nuname=0, version=L,
                    ops=[["open", "iproute", OWRITE]])
    assert res["version"] == L and res["attach"] == ["errno", errno.EACCES], res
    refused(as_nobody(where=served[via], uname="root", nuname=NOBODY, version=L), "root",
            dotl=True)
    refused(as_nobody(where=served[via], uname="nobody", nuname=0, version=L), "nobody",
            dotl=True)
    res = as_nobody(where=served[via], uname="", nuname=NOBODY, version=L,
                    ops=[["clone", "tcp"], ["open", "iproute", OWRITE]])
    assert res["attach"] == ["ok"], res
    assert res["ops"][0][2] == NOBODY and res["ops"][1] == ["errno", errno.EACCES]


@needroot
@pytest.mark.parametrize("via", ["tcp", "unix"])
def test_root_attaches_as_anyone(served, via):
    for un, nu, v in (("glenda", None, "9P2000"), ("nobody", None, "9P2000"),
                      ("", 0, "9P2000.L"), ("", 1234, "9P2000.L"), ("root", None, "9P2000")):
        res = session(served[via], un, nu, version=v, ops=[["clone", "tcp"]])
        assert res["attach"] == ["ok"], (un, nu, res)
    res = session(served[via], "root", ops=[["clone", "tcp"], ["ctl", "announce *"],
                                            ["open", "iproute", OWRITE]])
    assert res["ops"][0][2] == "root" and res["ops"][1:] == [["ok"], ["ok"]]


@needroot
def test_net9_commands_as_nobody_over_tcp(served):
    addr = "tcp!127.0.0.1!%d" % served["tcp"][2]
    rc, out = collect(*as_user("nobody", run_net9, "cat", "--srv", addr, "tcp/stats"))
    assert rc == 0 and out.startswith("MaxConn: 4096\n"), out
    rc, out = collect(*as_user("nobody", run_net9, "cat", "--srv", addr, "-u", "root",
                               "tcp/stats"))
    assert rc == 1, out
    assert out == ("net9 cat: %s: permission denied: uid %d may attach only as nobody, "
                   "not 'root'\n" % (addr, NOBODY))


# ---- --allow-remote: a client in another network namespace ------------------------------

class Remote:
    """Two namespaces joined by a veth pair: the server's (10.97.x.1) and
    the client's (10.97.x.2)."""

    def __init__(self):
        self.a, self.b = Netns("n9auth"), Netns("n9auth")
        tag = uuid.uuid4().hex[:6]
        self.va, self.vb = "n9a" + tag, "n9b" + tag
        self.net = 10 + int(tag[:2], 16) % 200
        self.ip_a, self.ip_b = "10.97.%d.1" % self.net, "10.97.%d.2" % self.net
        r = subprocess.run(["ip", "link", "add", self.va, "netns", self.a.name, "type", "veth",
                            "peer", "name", self.vb, "netns", self.b.name],
                           capture_output=True, text=True)
        if r.returncode != 0:
            self.close()
            pytest.skip("cannot make a veth pair: %s" % r.stderr.strip())
        for ns, dev, ip in ((self.a, self.va, self.ip_a), (self.b, self.vb, self.ip_b)):
            ns.run("ip", "addr", "add", ip + "/24", "dev", dev, check=True)
            ns.run("ip", "link", "set", dev, "up", check=True)

    def client(self, port):
        s = self.b.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(10)
        end = time.time() + 10
        while True:
            try:
                s.connect((self.ip_a, port))
                return s
            except OSError:
                if time.time() > end:
                    raise
                time.sleep(0.1)

    def close(self):
        self.a.close()
        self.b.close()


@linux
def test_allow_remote_clients_are_none_unless_trust_uname():
    rem = Remote()
    try:
        s = Serve("--tun", "none", "--srv", "tcp!%s!0" % rem.ip_a, "--srv", "tcp!127.0.0.1!0",
                  "--allow-remote", "-v", netns=rem.a, wait=r"serving 9P on tcp!127")
        try:
            s.expect(r"remote clients attach as none")
            port = int(s.expect(r"serving 9P on tcp!10\.").rsplit("!", 1)[1])
            lport = int(s.expect(r"serving 9P on tcp!127").rsplit("!", 1)[1])
            for un, nu, v in (("root", None, "9P2000"), ("glenda", None, "9P2000"),
                              ("", 0, "9P2000.L"), ("root", 0, "9P2000.L")):
                res = session(rem.client(port), un, nu, version=v, ops=[
                    ["clone", "tcp"], ["ctl", "announce *"], ["clone", "tcp"],
                    ["ctl", "announce 7777"], ["open", "iproute", OWRITE]])
                assert res["attach"] == ["ok"], res
                c1, star, c2, ann, iproute = res["ops"]
                owner = 65534 if v == "9P2000.L" else "none"
                assert c1[2] == owner and c2[2] == owner, res
                e = ["errno", errno.EACCES] if v == "9P2000.L" else EPERM
                assert star == e and iproute == e and ann == ["ok"], res
            s.expect(r"tcp!%s!\d+: connected, remote \(attaches as none\)" % rem.ip_b)
            # a loopback client in the server's namespace is still told by its socket:
            # root, who may be anyone
            with rem.a.socket(socket.AF_INET, socket.SOCK_STREAM) as ls:
                ls.connect(("127.0.0.1", lport))
                res = session(ls, "glenda", ops=[["clone", "tcp"]])
            assert res["attach"] == ["ok"] and res["ops"][0][2] == "glenda", res
            s.expect(r"tcp!127\.0\.0\.1!\d+: connected, uid 0 \(root\)")
        finally:
            assert s.stop() == 0
        s = Serve("--tun", "none", "--srv", "tcp!%s!0" % rem.ip_a, "--allow-remote",
                  "--trust-uname", netns=rem.a, wait=r"serving 9P on tcp!")
        try:
            s.expect(r"remote clients attach as the uname they send")
            port = int(s.expect(r"serving 9P on tcp!").rsplit("!", 1)[1])
            res = session(rem.client(port), "glenda", ops=[["clone", "tcp"]])
            assert res["attach"] == ["ok"] and res["ops"][0][2] == "glenda", res
            res = session(rem.client(port), "root", ops=[["clone", "tcp"],
                                                         ["ctl", "announce *"],
                                                         ["open", "iproute", OWRITE]])
            assert res["ops"][0][2] == "root" and res["ops"][1:] == [["ok"], ["ok"]], res
        finally:
            assert s.stop() == 0
    finally:
        rem.close()


def test_trust_uname_needs_allow_remote():
    r = run("serve", "--tun", "none", "--srv", "tcp!127.0.0.1!0", "--trust-uname")
    assert r.returncode == 2
    assert b"--trust-uname is about remote clients: give --allow-remote too" in r.stderr
    r = run("serve", "--tun", "none", "--srv", "tcp!127.0.0.1!0", "--eve", "none")
    assert r.returncode == 2 and b"cannot be eve" in r.stderr


# ---- the name space directory -----------------------------------------------------------

@pytest.fixture
def tmpd():
    d = tempfile.mkdtemp(prefix="net9ns.")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_check_dir_rules(tmpd):
    good = os.path.join(tmpd, "good")
    os.mkdir(good, 0o700)
    namespace.check_dir(good)
    for mode in (0o777, 0o750, 0o705, 0o710):
        os.chmod(good, mode)
        with pytest.raises(NamespaceError) as ei:
            namespace.check_dir(good)
        assert str(ei.value) == (
            "name space directory %s has mode %04o, open to group or others: refusing to "
            "use it (they can replace the server's socket; plan9port wants 0700)"
            % (good, mode))
        assert ei.value.errno == errno.EACCES
    os.chmod(good, 0o700)
    link = os.path.join(tmpd, "link")
    os.symlink(good, link)
    with pytest.raises(NamespaceError, match="is a symbolic link"):
        namespace.check_dir(link)
    f = os.path.join(tmpd, "file")
    open(f, "w").close()
    os.chmod(f, 0o600)
    with pytest.raises(NamespaceError, match="is not a directory"):
        namespace.check_dir(f)
    with pytest.raises(FileNotFoundError):
        namespace.check_dir(os.path.join(tmpd, "nothing"))


@needroot
def test_check_dir_and_socket_owner(tmpd):
    d = os.path.join(tmpd, "ns")
    os.mkdir(d, 0o700)
    os.chown(d, NOBODY, -1)
    with pytest.raises(NamespaceError) as ei:
        namespace.check_dir(d)
    assert str(ei.value) == ("name space directory %s is owned by nobody, not root: refusing "
                             "to use it (its owner can replace the server's socket; "
                             "plan9port refuses it too)" % d)
    os.chown(d, 0, -1)
    namespace.check_dir(d)
    p = os.path.join(d, "net9")
    s = socket.socket(socket.AF_UNIX)
    s.bind(p)
    try:
        namespace.check_socket(p)
        os.chown(p, NOBODY, -1)
        with pytest.raises(NamespaceError) as ei:
            namespace.check_socket(p)
        assert str(ei.value) == ("%s is owned by nobody, not root: refusing to talk to it "
                                 "(a server someone else started)" % p)
    finally:
        s.close()


def ns_env(monkeypatch, path):
    monkeypatch.setenv("NAMESPACE", path)
    monkeypatch.delenv("NET9_SRV", raising=False)


def test_serve_makes_the_directory_0700(tmpd):
    d = os.path.join(tmpd, "fresh")
    p = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "..", "cmd",
                                                       "net9"), "serve", "--tun", "none"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE,
                         env=dict(os.environ, NAMESPACE=d,
                                  PYTHONPATH=os.path.dirname(os.path.dirname(net9.__file__))))
    try:
        lines = []
        while not any("serving 9P on" in ln for ln in lines):
            ln = p.stderr.readline().decode()
            assert ln, lines
            lines.append(ln)
        st = os.lstat(d)
        assert oct(st.st_mode & 0o777) == "0o700" and st.st_uid == os.geteuid()
        assert "net9: serving 9P on unix!%s/net9\n" % d in lines
        # and its own clients use it
        r = run("stats", "tcp", NAMESPACE=d)
        assert r.returncode == 0 and r.stdout.startswith(b"MaxConn: "), r.stderr
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(20)


def bad_dirs(tmpd):
    """(path, the message) for a directory owned by nobody (root only) and
    one with mode 0777."""
    out = []
    if ROOT:
        d = os.path.join(tmpd, "owned")
        os.mkdir(d, 0o700)
        os.chown(d, NOBODY, -1)
        out.append((d, "name space directory %s is owned by nobody, not %s: refusing to use "
                       "it (its owner can replace the server's socket; plan9port refuses it "
                       "too)" % (d, me())))
    d = os.path.join(tmpd, "open")
    os.mkdir(d)
    os.chmod(d, 0o777)
    out.append((d, "name space directory %s has mode 0777, open to group or others: "
                   "refusing to use it (they can replace the server's socket; plan9port "
                   "wants 0700)" % d))
    return out


def test_serve_refuses_a_bad_directory(tmpd):
    for d, msg in bad_dirs(tmpd):
        r = run("serve", "--tun", "none", NAMESPACE=d, timeout=20)
        assert r.returncode == 1, r.stderr
        assert r.stderr.decode() == "net9: cannot serve: %s\n" % msg
        assert not os.path.exists(os.path.join(d, "net9"))


def all_refuse(monkeypatch, d, msg, cmds):
    """With NAMESPACE=d: each net9 command of cmds fails with msg alone,
    and so do net9.dial (NamespaceError) and net9.ping.ping (status 2)."""
    for cmd in cmds:
        one_error(run(*cmd, NAMESPACE=d), "net9 %s: %s" % (cmd[0], re_escape(msg)))
    ns_env(monkeypatch, d)
    with pytest.raises(NamespaceError) as ei:
        net9.dial("tcp!127.0.0.1!9")
    assert str(ei.value) == msg
    lines = []
    assert net9.ping.ping("127.0.0.1", count=1, out=lines.append) == 2
    assert lines == ["ping: %s" % msg]


def test_clients_refuse_a_bad_directory(tmpd, monkeypatch):
    for d, msg in bad_dirs(tmpd):
        all_refuse(monkeypatch, d, msg, (["netstat"], ["stats", "tcp"], ["dial", "tcp!127.0.0.1!9"],
                                         ["mount", os.path.join(tmpd, "mnt")]))
        # an explicit address is the caller's business
        with pytest.raises(net9.ServerUnreachable):
            net9.dial("tcp!127.0.0.1!9", srv="unix!" + os.path.join(d, "net9"))


def re_escape(s):
    import re
    return re.escape(s)


@needroot
def test_default_directory_owned_by_another_user(monkeypatch):
    """/tmp/ns.$USER.$DISPLAY itself, made by nobody before root came."""
    user, disp = "n9t" + uuid.uuid4().hex[:6], ":%s" % uuid.uuid4().hex[:6]
    d = "/tmp/ns.%s.%s" % (user, disp)
    os.mkdir(d, 0o777)
    os.chmod(d, 0o777)
    os.chown(d, NOBODY, -1)
    try:
        env = dict(USER=user, DISPLAY=disp + ".0")       # ".0" is dropped, as plan9port does
        msg = ("name space directory %s is owned by nobody, not root: refusing to use it "
               "(its owner can replace the server's socket; plan9port refuses it too)" % d)
        r = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "..",
                                                         "cmd", "net9"),
                            "serve", "--tun", "none"], capture_output=True, timeout=60,
                           env=dict(os.environ, PYTHONPATH=os.path.dirname(
                               os.path.dirname(net9.__file__)), **env))
        assert r.returncode == 1 and r.stderr.decode() == "net9: cannot serve: %s\n" % msg
        one_error(run("netstat", **env), "net9 netstat: " + re_escape(msg))
        monkeypatch.delenv("NAMESPACE", raising=False)
        monkeypatch.delenv("NET9_SRV", raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        with pytest.raises(NamespaceError, match="owned by nobody"):
            net9.dial("tcp!127.0.0.1!9")
    finally:
        shutil.rmtree(d, ignore_errors=True)


@needroot
def test_clients_refuse_a_socket_owned_by_another_user(tmpd, monkeypatch):
    d = os.path.join(tmpd, "ns")
    os.mkdir(d, 0o700)
    p = os.path.join(d, "net9")
    ls = socket.socket(socket.AF_UNIX)
    ls.bind(p)
    ls.listen(4)
    ls.setblocking(False)
    os.chown(p, NOBODY, -1)          # as if nobody had put its own server there
    msg = "%s is owned by nobody, not root: refusing to talk to it (a server someone " \
          "else started)" % p
    try:
        all_refuse(monkeypatch, d, msg, (["netstat"], ["cat", "tcp/stats"]))
        with pytest.raises(BlockingIOError):
            ls.accept()                  # nobody ever connected
    finally:
        ls.close()
