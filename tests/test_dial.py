"""net9.dial: dial(2)'s functions over 9P against a stack served in this
process (tests/served.py: loopback plus a black hole, no root): Plan 9
addresses (service names with and without /etc/services, IPv6 literals,
names tried address by address), the socket and file behaviour of Conn,
announce/listen/accept/reject/hangup as devip.md section 13 describes
them, devip's errors as OSError subclasses, and time-outs that flush their
request so nothing is lost."""

import errno
import io
import socket
import threading
import time

import pytest

pytest.importorskip("net9.stack", reason="net9.stack not built")

import net9  # noqa: E402
from net9.dial import (AddrError, Net, ServerUnreachable, parseaddr, port_name,  # noqa: E402
                       resolve)



def serve_once(ann, fn):
    """Accept one call on ann in a thread and run fn(conn) on it."""
    out = {}

    def run():
        try:
            call = ann.listen()
            out["call"] = (call.dir, call.local, call.remote)
            with call.accept() as c:
                out["result"] = fn(c)
        except BaseException as e:          # reported by the test
            out["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def echo_line(c):
    line = c.readline()
    c.sendall(b"echo: " + line)
    return line


# ---- addresses ------------------------------------------------------------

@pytest.mark.parametrize("addr,want", [
    ("tcp!10.9.0.1!80", ("tcp", "10.9.0.1", "80", "")),
    ("10.9.0.1!80", ("tcp", "10.9.0.1", "80", "")),            # netmkaddr: tcp by default
    ("net!10.9.0.1!80", ("tcp", "10.9.0.1", "80", "")),        # "net": any network = tcp
    ("udp!10.9.0.1!53", ("udp", "10.9.0.1", "53", "")),
    ("tcp!fd09::1!80", ("tcp", "fd09::1", "80", "")),
    ("tcp![fd09::1]!80", ("tcp", "[fd09::1]", "80", "")),
    ("tcp!h!80!r", ("tcp", "h", "80", "!r")),                  # restricted port flag kept
    ("icmp!10.9.0.1!1", ("icmp", "10.9.0.1", "1", "")),
])
def test_parseaddr(addr, want):
    assert parseaddr(addr) == want


def test_parseaddr_announcing():
    assert parseaddr("tcp!*!8080", announcing=True) == ("tcp", "*", "8080", "")
    assert parseaddr("*!8080", announcing=True) == ("tcp", "*", "8080", "")
    assert parseaddr("8080", announcing=True) == ("tcp", "*", "8080", "")
    assert parseaddr("tcp!*!*", announcing=True) == ("tcp", "*", "*", "")


@pytest.mark.parametrize("addr", ["foo", "", "tcp!!80", "!h!80", "tcp!h!", "tcp!h!*",
                                  "tcp!h!no-such-service", "tcp!h 1!80", "icmp!h!echo"])
def test_parseaddr_errors(addr):
    with pytest.raises(AddrError):
        parseaddr(addr)


def test_service_names_with_and_without_etc_services(monkeypatch):
    want = {"http": "80", "ssh": "22", "domain": "53", "9fs": "564"}
    assert parseaddr("tcp!h!http")[2] == "80"

    def nothing(*a):
        raise OSError("no /etc/services")
    monkeypatch.setattr(socket, "getservbyname", nothing)
    monkeypatch.setattr(socket, "getservbyport", nothing)
    for name, port in want.items():
        assert parseaddr("tcp!h!" + name)[2] == port
    assert parseaddr("udp!h!domain")[2] == "53"
    assert port_name("564", "tcp") == "9fs"
    assert port_name("80", "tcp") in ("http", "www")
    assert port_name("40001", "tcp") == "40001"
    assert port_name("80", "icmp") == "80"


def test_resolve(monkeypatch):
    assert resolve("10.9.0.1") == ["10.9.0.1"]
    assert resolve("[fd09::0001]") == ["fd09::1"]          # devip prints v6 compressed
    assert resolve("FD09:0:0::1") == ["fd09::1"]
    assert "127.0.0.1" in resolve("localhost")             # /etc/hosts

    def nxdomain(*a):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    monkeypatch.setattr(socket, "getaddrinfo", nxdomain)    # no DNS needed
    with pytest.raises(socket.gaierror, match="no-such-host.invalid: Name or service"):
        resolve("no-such-host.invalid")


# ---- dial, announce, listen, accept ------------------------------------------

def test_dial_and_accept_v4_v6(net):
    ann = net.announce("tcp!*!7000")
    assert ann.local == "::!7000" and ann.dir == "/net/tcp/%d" % ann.number
    for addr, host in (("tcp!127.0.0.1!7000", "127.0.0.1"), ("tcp!::1!7000", "::1"),
                       ("[::1]!7000", "::1"), ("net!localhost!7000", "127.0.0.1")):
        t, out = serve_once(ann, echo_line)
        with net.dial(addr) as c:
            assert c.remote == "%s!7000" % host
            lhost, lport = c.getsockname()
            assert lhost == host and 32768 <= lport <= 65535     # devip.md 3.6
            assert c.getpeername() == (host, 7000)
            assert c.dir == "/net/tcp/%d" % c.number
            assert c.status().startswith("Established ")
            c.sendall(b"hi " + host.encode() + b"\n")
            assert c.readline() == b"echo: hi " + host.encode() + b"\n"
        t.join(10)
        assert "error" not in out
        # the call's local and remote are the dialer's remote and local
        d, loc, rem = out["call"]
        assert (loc, rem) == ("%s!7000" % host, "%s!%d" % (host, lport))
    ann.close()


def test_conn_is_a_file_and_a_socket(net):
    ann = net.announce("tcp!127.0.0.1!7002")

    def talk(c):
        f = c.makefile("rw", encoding="ascii", newline="")
        got = [f.readline(), f.readline()]
        f.write("one\ntwo\nthree")
        f.flush()
        f.close()                         # leaves the Conn open
        c.sendall(b"\n")
        return got
    t, out = serve_once(ann, talk)
    c = net9.dial("tcp!127.0.0.1!7002", net=net)
    assert isinstance(c, io.RawIOBase) and c.readable() and c.writable()
    assert c.write(b"a\nb") == 3 and c.send(b"\n") == 1
    lines = list(c)                       # by lines, to EOF
    t.join(10)
    assert out["result"] == ["a\n", "b\n"]
    assert lines == [b"one\n", b"two\n", b"three\n"]
    assert c.read() == b"" and c.recv(10) == b""          # EOF stays EOF
    with pytest.raises(io.UnsupportedOperation):
        c.fileno()                        # no descriptor over 9P
    c.close()
    assert c.closed
    with pytest.raises(ValueError):
        c.recv(1)
    ann.close()


def test_read_until_eof_and_close_frees_the_conversation(net):
    ann = net.announce("tcp!*!7003")
    body = bytes(range(256)) * 800            # 200 KiB: several 9P reads

    def send(c):
        c.sendall(body)
    t, out = serve_once(ann, send)
    c = net.dial("tcp!127.0.0.1!7003")
    assert c.read() == body
    n = c.number
    owners = dict((name, uid) for name, uid, _ in net.ls("tcp"))
    assert owners[str(n)] == "glenda"
    c.close()
    t.join(10)
    # the last reference went: devip gives the slot back to "network"
    owners = dict((name, uid) for name, uid, _ in net.ls("tcp"))
    assert owners[str(n)] == "network"
    ann.close()


def test_refused_and_unknown_network(net):
    with pytest.raises(ConnectionRefusedError) as ei:
        net.dial("tcp!127.0.0.1!7999")
    e = ei.value
    assert e.errno == errno.ECONNREFUSED and e.strerror == "connection refused"
    assert e.filename.startswith("/net/tcp/") and e.filename.endswith("/ctl")
    with pytest.raises(FileNotFoundError, match="unknown network bogus"):
        net.dial("bogus!127.0.0.1!80")
    with pytest.raises(AddrError):
        net.dial("tcp!*!80")


def test_dial_tries_every_address_of_a_name(net, monkeypatch):
    ann = net.announce("tcp!127.0.0.1!7004")
    asked = []

    def gai(host, port, fam=0, typ=0, *a):
        asked.append(host)
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", 0, 0, 0)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0))]
    monkeypatch.setattr(socket, "getaddrinfo", gai)
    t, out = serve_once(ann, echo_line)
    with net.dial("tcp!both.example!7004") as c:       # ::1 refuses, 127.0.0.1 answers
        assert c.remote == "127.0.0.1!7004"
        c.sendall(b"x\n")
        assert c.readline() == b"echo: x\n"
    t.join(10)
    assert asked == ["both.example"]
    ann.close()
    # every address refused: the last error is the one reported
    with pytest.raises(ConnectionRefusedError):
        net.dial("tcp!both.example!7004")


def test_unknown_host_and_unreachable_server(served, monkeypatch):
    def gai(*a):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    monkeypatch.setattr(socket, "getaddrinfo", gai)
    with pytest.raises(socket.gaierror, match="nowhere.example: Name or service"):
        net9.dial("tcp!nowhere.example!80", srv=served.addr)
    with pytest.raises(ServerUnreachable) as ei:
        net9.dial("tcp!127.0.0.1!80", srv="unix!" + served.dir + "/nothing")
    assert ei.value.errno == errno.ENOENT and ei.value.filename.endswith("/nothing")
    with pytest.raises(ServerUnreachable):
        Net(srv="tcp!127.0.0.1")                       # malformed server address


def test_permission_denied(served, net):
    alice = Net(srv=served.addr, user="alice")
    try:
        with pytest.raises(PermissionError, match="permission denied"):
            alice.announce("tcp!*!*")                 # every port: eve only (3.4)
        ann = net.announce("tcp!*!7005")               # glenda's
        with pytest.raises(PermissionError) as ei:
            alice.files.open("tcp/%d/ctl" % ann.number, 2)
        assert ei.value.filename == "/net/tcp/%d/ctl" % ann.number
        ann.close()
    finally:
        alice.close()


def test_recv_timeout_loses_nothing(net):
    ann = net.announce("tcp!*!7006")
    go = threading.Event()

    def late(c):
        go.wait(10)
        c.sendall(b"late")
        c.readline()
    t, out = serve_once(ann, late)
    c = net.dial("tcp!127.0.0.1!7006")
    c.settimeout(0.3)
    assert c.gettimeout() == 0.3
    t0 = time.monotonic()
    with pytest.raises(TimeoutError) as ei:
        c.recv(100)
    assert ei.value.errno == errno.ETIMEDOUT and 0.25 < time.monotonic() - t0 < 5
    go.set()
    c.settimeout(None)
    assert c.recv(100) == b"late"          # the flushed read took nothing
    c.sendall(b"\n")
    t.join(10)
    c.close()
    ann.close()


def test_listen_timeout_loses_no_call(net):
    ann = net.announce("tcp!*!7007")
    with pytest.raises(TimeoutError):
        ann.listen(timeout=0.3)
    c = net.dial("tcp!127.0.0.1!7007")
    call = ann.listen(timeout=5)           # the call that came after the flush
    assert call.remote == c.local
    call.reject("busy")
    assert c.recv(10) == b""               # reject closes the call: FIN, EOF here
    c.close()
    ann.close()


def test_dial_timeout_into_a_black_hole(net):
    t0 = time.monotonic()
    with pytest.raises(TimeoutError) as ei:
        net.dial("tcp!10.77.0.1!80", timeout=0.5)
    assert 0.4 < time.monotonic() - t0 < 5
    assert ei.value.errno == errno.ETIMEDOUT
    # the abandoned attempt freed its conversation (close in Syn_sent, 2.4)
    n = int(ei.value.filename.split("/")[3])
    for _ in range(50):
        if net.cat("tcp/%d/status" % n).startswith("Closed"):
            break
        time.sleep(0.1)
    assert net.cat("tcp/%d/status" % n).startswith("Closed")
    assert dict((a, u) for a, u, _ in net.ls("tcp"))[str(n)] == "network"


def test_hangup_resets_both_ends(net):
    ann = net.announce("tcp!*!7008")
    got = {}

    def waitfor(c):
        got["read"] = c.recv(10)           # the reset reads as EOF (4.4)
    t, out = serve_once(ann, waitfor)
    c = net.dial("tcp!127.0.0.1!7008")
    time.sleep(0.2)
    net9.hangup(c)
    t.join(10)
    assert got["read"] == b""
    with pytest.raises(BrokenPipeError) as ei:
        c.sendall(b"after")
    assert ei.value.strerror == "i/o on hungup channel"
    c.close()
    ann.close()


def test_hangup_of_an_announcement_ends_its_listen(net):
    ann = net.announce("tcp!*!7009")
    res = {}

    def lis():
        try:
            res["call"] = net9.listen(ann)
        except OSError as e:
            res["err"] = e
    t = threading.Thread(target=lis, daemon=True)
    t.start()
    time.sleep(0.3)
    net9.hangup(ann)
    t.join(10)
    assert str(res.get("err", "")).endswith("listen hungup") or \
        getattr(res.get("err"), "strerror", None) == "listen hungup"
    ann.close()


def test_accept_and_reject_functions(net):
    ann = net9.announce("tcp!*!7011", net=net)
    c1 = net.dial("tcp!127.0.0.1!7011")
    call = net9.listen(ann)
    conn = net9.accept(call)
    assert call.closed and not conn.closed and conn.remote == c1.local
    conn.sendall(b"ok")
    assert c1.recv(10) == b"ok"
    c2 = net.dial("tcp!127.0.0.1!7011")
    net9.reject(net9.listen(ann), "go away")
    assert c2.recv(10) == b""
    for x in (c1, c2, conn, ann):
        x.close()


def test_udp_datagrams(net):
    ann = net.announce("udp!*!7010")
    c = net.dial("udp!127.0.0.1!7010")
    c.send(b"first datagram")
    call = ann.listen(timeout=5)           # made by the first datagram (5)
    s = call.accept()
    assert s.recv(100) == b"first datagram"
    c.send(b"two")
    c.send(b"three")
    assert [s.recv(100), s.recv(100)] == [b"two", b"three"]   # boundaries kept
    s.send(b"reply")
    assert c.recv(2) == b"re"              # the rest of a datagram is discarded (4.2)
    s.send(b"next")
    assert c.recv(100) == b"next"
    for x in (s, c, ann):
        x.close()


def test_local_address(net):
    ann = net.announce("tcp!*!7012")
    c = net.dial("tcp!127.0.0.1!7012", local="127.0.0.1!7777")
    assert c.local == "127.0.0.1!7777"
    call = ann.listen(timeout=5)
    assert call.remote == "127.0.0.1!7777"
    call.close()
    c.close()
    ann.close()


def test_module_functions_own_their_connection(served):
    ann = net9.announce("tcp!*!7013", srv=served.addr, user="glenda")
    cl = ann.net.client
    c = net9.dial("tcp!127.0.0.1!7013", srv=served.addr, user="glenda")
    call = ann.listen(timeout=5)
    conn = call.accept()
    assert conn.net is ann.net and not cl.closed
    conn.close()
    assert not cl.closed                   # the announcement still holds it
    ann.close()
    assert cl.closed                       # the last one closed it
    c.close()
    assert c.net.client.closed
    # and a failed dial leaves nothing open
    with pytest.raises(ConnectionRefusedError):
        net9.dial("tcp!127.0.0.1!7013", srv=served.addr)


def test_a_shared_net_outlives_its_conversations(net):
    ann = net.announce("tcp!*!7014")
    for _ in range(3):
        c = net.dial("tcp!127.0.0.1!7014")
        ann.listen(timeout=5).close()
        c.close()
    assert not net.client.closed
    ann.close()
    assert not net.client.closed


def test_garbage_conversations_are_closed(net):
    """A Conn dropped without close() is clunked by its finalizer (which
    does not wait for the reply: it may run in the 9P reader's thread)."""
    ann = net.announce("tcp!*!7015")
    c = net.dial("tcp!127.0.0.1!7015")
    n = c.number
    del c
    call = ann.listen(timeout=5)
    conn = call.accept()
    assert conn.recv(10) == b""            # the dropped Conn's FIN
    owners = dict((name, uid) for name, uid, _ in net.ls("tcp"))
    assert owners[str(n)] == "network"
    conn.close()
    ann.close()


# ---- round trips -----------------------------------------------------------------

class Flights:
    """Counts what a Client does: writes to the server ("s") and waits for
    replies ("w").  A round trip is a run of writes followed by waits."""

    def __init__(self, cl):
        self.cl = cl
        self.events = []
        self.send0, self.wait0 = cl._send, cl.wait

    def __enter__(self):
        def send(*a, **k):
            self.events.append("s")
            return self.send0(*a, **k)

        def wait(*a, **k):
            self.events.append("w")
            return self.wait0(*a, **k)
        self.cl._send, self.cl.wait = send, wait
        return self

    def __exit__(self, *exc):
        self.cl._send, self.cl.wait = self.send0, self.wait0

    def take(self):
        """(round trips, writes) since the last take."""
        ev = "".join(self.events)
        self.events = []
        return ev.count("sw"), ev.count("s")


def test_listen_accept_close_and_dial_round_trips(served, net):
    """listen is one round trip and one write (walk and open of listen go
    together, the call's number is in the qid of the opened file); accept
    one write and no wait (write of "accept N", walk and open of data: the
    Conn takes their answers when it first uses data or closes); close one
    round trip (the clunks of data and ctl); dial two (clone; connect,
    walk and open of data).  Before: 3, 3, 2 and 6 round trips, a write per
    request."""
    ann = net.announce("tcp!*!7011")
    other = Net(srv=served.addr, user="glenda")
    got = []

    def dialer():
        with Flights(other.client) as f:
            for _ in range(2):
                c = other.dial("tcp!127.0.0.1!7011")
                d = f.take()
                data = c.read()
                f.take()
                c.close()
                got.append((d, data, f.take()))
    t = threading.Thread(target=dialer, daemon=True)
    with Flights(net.client) as f:
        t.start()
        # a call that is used
        call = ann.listen(timeout=10)
        assert f.take() == (1, 1)
        conn = call.accept()
        assert f.take() == (0, 1)
        conn.sendall(b"hello")
        assert f.take() == (1, 1)       # (the accept's answers, then the write's)
        n = conn.number
        conn.close()
        assert f.take() == (1, 1)
        # accept and close
        call = ann.listen(timeout=10)
        assert f.take() == (1, 1)
        conn = call.accept()
        conn.close()
        assert f.take() == (1, 2)
    t.join(10)
    assert got == [((2, 2), b"hello", (1, 1)), ((2, 2), b"", (1, 1))]
    # the number from the qid is the one devip's files give
    assert call.local == "127.0.0.1!7011"
    owners = dict((name, uid) for name, uid, _ in net.ls("tcp"))
    assert owners[str(n)] == "network"              # closed: every reference went
    other.close()
    ann.close()


def test_pipelined_open_errors(net):
    """A walk that fails fails the open sent with it; an open that fails
    (listen of a conversation not announced) is clunked; neither leaks a
    reference or a fid."""
    cl = net.client
    with pytest.raises(FileNotFoundError):
        net.dial("nosuchnet!127.0.0.1!80")
    c = net.announce("tcp!*!7012")
    ctl = net.files.open("tcp/clone", 2)                  # an Idle conversation
    n = net.files.readnum(ctl)
    with pytest.raises(OSError, match="not announced"):
        net.files.open("tcp/%s/listen" % n, 2)
    net.files.close(ctl)
    fids = cl.fids
    for _ in range(3):
        with pytest.raises(OSError, match="not announced"):
            net.files.open("tcp/%s/listen" % n, 2)
    assert cl.fids == fids                                # the numbers are reused
    owners = dict((name, uid) for name, uid, _ in net.ls("tcp"))
    assert owners[n] == "network"
    c.close()


def test_accepted_conns_dropped_or_closed_unused(net):
    """A Conn from accept whose data file's open is still out: closed
    unused (its answers taken with the clunks'), or dropped (the finalizer
    sends the clunks; a later request takes the answers): either way the
    call closes (FIN: EOF for the dialer) and the client keeps no tag and
    no reply."""
    ann = net.announce("tcp!*!7016")
    cl = net.client
    for how in ("close", "drop"):
        c = net.dial("tcp!127.0.0.1!7016")
        call = ann.listen(timeout=5)
        conn = call.accept()
        n = conn.number
        if how == "close":
            conn.close()
        else:
            del conn
        assert c.recv(10) == b""                 # the call's FIN
        c.close()
        owners = dict((name, uid) for name, uid, _ in net.ls("tcp"))
        assert owners[str(n)] == "network"
    ann.close()                                  # (a request after the drop)
    net.ls("tcp")
    assert not net.files.orphans
    assert not cl.replies and not cl.inflight


def test_open_in_flight_errors():
    """An open sent without waiting that fails (no such conversation)
    raises when its answers are taken, and gives its fid number back."""
    from served import Served
    s = Served()
    try:
        net = Net(srv=s.addr, user="glenda")
        f = net.files
        op = f.openstart("tcp/999/data", 2)
        with pytest.raises(FileNotFoundError):
            f.openfinish(op)
        fid = op.fid
        op = f.openstart("tcp/clone", 2)
        assert op.fid == fid                     # reused
        h, qid, _ = f.openfinish(op)
        assert f.convnumber(qid) == f.readnum(h)
        f.close(h)
        net.close()
    finally:
        s.close()
