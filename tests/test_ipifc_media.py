"""Media bound at run time through /net/ipifc (devip.md section 10), over
9P against stacks served in this process (tests/served.py; no root): the
pkt medium (pktmedium.c: data reads are the datagrams the stack sends, one
per read, a short read leaving the rest for the next; writes are datagrams
received; unbound on the last close), a second loopback, bind and unbind
errors with devip's texts and nothing left behind by a failed bind, and a
program (tests/pktrelay.py) relaying the data files of two stacks so that
net9 ping and a TCP conversation cross it.  snoop: copies of what goes in
and out while it is open, devip's permission rule, and a reader that never
reads costs the stack nothing but lost copies (counted)."""

import os
import re
import socket
import struct
import subprocess
import sys
import threading

import pytest

pytest.importorskip("net9.stack", reason="net9.stack not built")

import net9  # noqa: E402
from net9.client import NinepError, ORDWR, OREAD  # noqa: E402
from net9.csum import cksum  # noqa: E402
from net9.dial import Net  # noqa: E402

from served import Served  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CMD = os.path.join(os.path.dirname(HERE), "cmd", "net9")


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(net9.__file__)), HERE])
    e.pop("NET9_SRV", None)
    return e


def ctlerr(cl, fid, msg):
    with pytest.raises(NinepError) as e:
        cl.write(fid, msg.encode())
    return str(e.value)


def icmpecho(src, dst, ident, seq, payload):
    icmp = bytearray(struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload)
    struct.pack_into("!H", icmp, 2, cksum(bytes(icmp)))
    h = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 1, 0, 64, 1, 0,
                              socket.inet_aton(src), socket.inet_aton(dst)))
    struct.pack_into("!H", h, 10, cksum(bytes(h)))
    return bytes(h + icmp)


# ---- bind and unbind ----------------------------------------------------------------

def test_bind_errors_and_nothing_left_behind(served):
    cl = Net(srv=served.addr, user="glenda").client
    before = [x[7] for x in cl.dirread(cl.walkopen("ipifc", OREAD))]
    c = cl.walkopen("ipifc/clone", ORDWR)
    n = int(cl.read(c, 64))
    assert ctlerr(cl, c, "bind") == "bad arg in system call"
    assert ctlerr(cl, c, "bind frob") == "unknown interface type"
    assert ctlerr(cl, c, "bind tun") == "bad arg in system call"            # no name
    assert ctlerr(cl, c, "bind tun no/slash") == "bad arg in system call"
    assert ctlerr(cl, c, "bind tun abcdefghijklmnop") == "bad arg in system call"  # > 15
    assert ctlerr(cl, c, "bind tun t9 /nonexistent/netns") == \
        "tun t9: netns /nonexistent/netns: file does not exist"
    assert ctlerr(cl, c, "add 10.1.1.1 255.0.0.0") == "interface not bound"
    assert ctlerr(cl, c, "unbind") == "interface not bound"
    # the conversation is still unbound and, once closed, free again
    assert served.call(lambda: served.st.ip.ipifc.conv[n].ptcl.bound) is False
    cl.clunk(c)
    c2 = cl.walkopen("ipifc/clone", ORDWR)
    assert int(cl.read(c2, 64)) == n
    cl.clunk(c2)
    st = cl.walkopen("ipifc/%d/status" % n, OREAD)
    assert cl.read(st, 8192).startswith(b"device  maxtu ")
    cl.clunk(st)
    after = [x[7] for x in cl.dirread(cl.walkopen("ipifc", OREAD))]
    # devip keeps a slot once allocated: listed, idle
    assert after == before[:-2] + [str(n)] + before[-2:]
    assert served.call(lambda: [r for r in served.st.ip.routes() if r["ifc"] == n]) == []


def test_bind_is_eve_s(served):
    # root may attach as anyone: be a user who is not eve (glenda)
    cl = Net(srv=served.addr, user="bob").client
    c = cl.walkopen("ipifc/clone", ORDWR)
    assert ctlerr(cl, c, "bind pkt") == "permission denied"
    assert ctlerr(cl, c, "bind loopback") == "permission denied"
    cl.clunk(c)


def test_second_loopback_and_unbind(served):
    cl = Net(srv=served.addr, user="glenda").client
    c = cl.walkopen("ipifc/clone", ORDWR)
    n = int(cl.read(c, 64))
    cl.write(c, b"bind loopback")
    assert ctlerr(cl, c, "bind pkt") == "interface already bound"
    cl.write(c, b"add 127.1.0.1 255.255.0.0")
    cl.write(c, b"mtu 1280")
    cl.clunk(c)                               # a loopback stays bound
    st = cl.walkopen("ipifc/%d/status" % n, OREAD)
    text = cl.read(st, 8192).decode()
    cl.clunk(st)
    assert text.startswith("device loopback%d maxtu 1280 " % n)
    assert "\t127.1.0.1 " in text
    # a TCP conversation over it
    net = Net(srv=served.addr, user="glenda")
    ann = net.announce("tcp!127.1.0.1!7101")
    got = []
    t = threading.Thread(target=lambda: got.append(ann.listen().accept().read(5)))
    t.start()
    with net.dial("tcp!127.1.0.1!7101") as conn:
        conn.sendall(b"hello")
        t.join(10)
    assert got == [b"hello"]
    ann.close()
    # unbind: addresses and routes go, the conversation is free
    c = cl.walkopen("ipifc/%d/ctl" % n, ORDWR)
    cl.write(c, b"unbind")
    cl.clunk(c)
    assert served.call(lambda: served.st.ip.ipifc.conv[n].inuse) == 0
    assert served.call(lambda: [r for r in served.st.ip.routes() if r["ifc"] == n]) == []
    assert served.call(lambda: len([m for m, i in served.st.media if i.x == n])) == 0
    net.close()


# ---- the pkt medium -----------------------------------------------------------------

def pkt_ifc(served):
    """A new interface bound to the pkt medium: (client, its ctl fid, its
    number)."""
    cl = Net(srv=served.addr, user="glenda").client
    ctl = cl.walkopen("ipifc/clone", ORDWR)
    n = int(cl.read(ctl, 64))
    cl.write(ctl, b"bind pkt")
    return cl, ctl, n


def test_pkt_data_file(served):
    cl, ctl, n = pkt_ifc(served)
    st = cl.walkopen("ipifc/%d/status" % n, OREAD)
    assert cl.read(st, 8192).startswith(b"device pkt%d maxtu 4096 " % n)
    cl.clunk(st)
    data = cl.walkopen("ipifc/%d/data" % n, ORDWR)
    # without an address, what is written is dropped (pktin)
    cl.write(data, icmpecho("10.60.0.9", "10.60.0.1", 7, 1, b"x" * 8))
    cl.write(ctl, b"add 10.60.0.1 255.255.255.0")
    # an echo request written is received; the reply is read, one
    # datagram per read, a short read leaving the rest for the next
    cl.write(data, icmpecho("10.60.0.9", "10.60.0.1", 7, 2, b"ping-payload"))
    first = cl.read(data, 10, timeout=10)
    rest = cl.read(data, 65536, timeout=10)
    reply = first + rest
    assert len(first) == 10 and len(reply) == 20 + 8 + 12
    assert socket.inet_ntoa(reply[12:16]) == "10.60.0.1"
    assert socket.inet_ntoa(reply[16:20]) == "10.60.0.9"
    assert reply[20] == 0 and reply[28:] == b"ping-payload"       # echo reply
    assert cksum(reply[:20]) == 0 and cksum(reply[20:]) == 0
    # a datagram the stack sends to the pkt network is read whole
    net = Net(srv=served.addr, user="glenda")
    u = net.dial("udp!10.60.0.5!9")
    u.sendall(b"datagram")
    d = cl.read(data, 65536, timeout=10)
    assert d[9] == 17 and d[-8:] == b"datagram" and len(d) == 20 + 8 + 8
    u.close()
    net.close()
    # the last close unbinds it
    cl.clunk(data)
    cl.clunk(ctl)
    assert served.call(lambda: served.st.ip.ipifc.conv[n].ptcl.bound) is False
    assert served.call(lambda: [r for r in served.st.ip.routes() if r["ifc"] == n]) == []


def test_pkt_unbind_ends_a_waiting_read(served):
    cl, ctl, n = pkt_ifc(served)
    data = cl.walkopen("ipifc/%d/data" % n, ORDWR)
    out = []
    t = threading.Thread(target=lambda: out.append(cl.read(data, 65536)))
    t.start()
    t.join(0.3)
    assert t.is_alive()                        # waits: nothing sent yet
    cl.write(ctl, b"unbind")
    t.join(10)
    assert out == [b""]
    cl.clunk(data)
    cl.clunk(ctl)


def relay(s1, a1, s2, a2):
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "pktrelay.py"), s1, a1, s2, a2,
                          "--user", "glenda"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env(), text=True)
    line = p.stdout.readline()
    assert re.fullmatch(r"ipifc \d+ \d+\n", line), (line, p.stderr.read() if not line else "")
    return p, [int(x) for x in line.split()[1:]]


def test_pkt_relay_between_two_stacks_ping_and_tcp():
    s1, s2 = Served(), Served()
    p = None
    try:
        p, (n1, n2) = relay(s1.addr, "10.50.0.1/24", s2.addr, "10.50.0.2/24")
        r = subprocess.run([sys.executable, CMD, "ping", "--srv", s1.addr, "-n", "3", "-i", "100",
                            "--user", "glenda", "10.50.0.2"],
                           capture_output=True, text=True, env=env(), timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr      # every request answered
        # TCP across the relay, both ways, more than fits one datagram
        n1net, n2net = Net(srv=s1.addr, user="glenda"), Net(srv=s2.addr, user="glenda")
        ann = n2net.announce("tcp!*!7300")
        blob = os.urandom(300 * 1024)
        got = {}

        def serve():
            with ann.listen().accept() as c:
                req = b""
                while len(req) < len(blob):
                    d = c.recv(65536)
                    if not d:
                        break
                    req += d
                got["req"] = req
                c.sendall(req[::-1])
        t = threading.Thread(target=serve)
        t.start()
        with n1net.dial("tcp!10.50.0.2!7300") as c:
            assert c.remote == "10.50.0.2!7300" and c.local.startswith("10.50.0.1!")
            c.sendall(blob)
            back = b""
            while len(back) < len(blob):
                d = c.recv(65536)
                assert d
                back += d
        t.join(30)
        assert got["req"] == blob and back == blob[::-1]
        ann.close()
        n1net.close()
        n2net.close()
        st = Net(srv=s1.addr, user="glenda").cat("ipifc/%d/status" % n1)
        assert st.startswith("device pkt%d maxtu 4096 " % n1)
        assert int(re.search(r"pktout (\d+)", st)[1]) > len(blob) // 4096   # 4 KB datagrams
    finally:
        if p is not None:
            p.terminate()
            out, err = p.communicate(timeout=30)
            assert p.returncode == 0, err
            assert re.search(r"moved \d+ \d+", out), out
        # the relay's files are closed: both interfaces are gone
        for s in (s1, s2):
            assert s.call(lambda s=s: [i for i in s.st.ip.ifcs if i is not None
                                       and i.medium is not None and i.medium.name == "pkt"]) == []
            s.close()


# ---- snoop ---------------------------------------------------------------------------

def test_snoop_sees_both_directions_and_permissions(served):
    cl = Net(srv=served.addr, user="glenda").client
    lo = served.st.loifc.x
    # devip's rule: OREAD only, by the interface's owner or eve
    other = Net(srv=served.addr, user="bob").client
    with pytest.raises(NinepError, match="^permission denied$"):
        other.walkopen("ipifc/%d/snoop" % lo, OREAD)
    with pytest.raises(NinepError, match="^permission denied$"):
        cl.walkopen("ipifc/%d/snoop" % lo, ORDWR)
    sn = cl.walkopen("ipifc/%d/snoop" % lo, OREAD)
    net = Net(srv=served.addr, user="glenda")
    ann = net.announce("tcp!127.0.0.1!7400")
    read = threading.Event()

    def serve():
        # held open until the other side has read: data arriving after
        # our FIN is acknowledged would be answered with a reset (tcp.c's
        # "send to Finwait2")
        with ann.listen().accept() as c2:
            c2.sendall(b"from-listener")
            read.wait(10)
    t = threading.Thread(target=serve)
    t.start()
    with net.dial("tcp!127.0.0.1!7400") as c:
        c.sendall(b"from-dialer")
        assert c.read(13) == b"from-listener"
        read.set()
    t.join(10)
    ann.close()
    pkts = []
    def seen(w):
        return sum(w in x for x in pkts)
    while (seen(b"from-listener") < 2 or seen(b"from-dialer") < 2) and len(pkts) < 1000:
        pkts.append(cl.read(sn, 65536, timeout=10))
    # every copy is a whole IPv4 datagram; on the loopback each one is
    # seen going out and coming back in
    for d in pkts:
        assert d[0] >> 4 == 4 and struct.unpack("!H", d[2:4])[0] == len(d)
    assert sum(b"from-dialer" in d for d in pkts) == 2
    syn = [d for d in pkts if d[9] == 6 and d[33] & 0x12 == 0x02]
    assert len(syn) == 2
    cl.clunk(sn)
    net.close()
    # nothing is copied once the last reader is gone
    assert served.call(lambda: (served.st.ip.ifc(lo).snoopers, len(served.st.ip.ifc(lo).sq)))\
        == (0, 0)


def test_snoop_stalled_reader_costs_only_lost_copies(served):
    cl = Net(srv=served.addr, user="glenda").client
    lo = served.st.loifc.x
    sn = cl.walkopen("ipifc/%d/snoop" % lo, OREAD)       # opened, never read
    log = cl.walkopen("log", ORDWR)
    cl.write(log, b"set ip")
    net = Net(srv=served.addr, user="glenda")
    ann = net.announce("tcp!127.0.0.1!7401")
    blob = os.urandom(6 << 20)
    got = []

    def sink():
        with ann.listen().accept() as c:
            n = 0
            h = []
            while n < len(blob):
                d = c.recv(1 << 20)
                if not d:
                    break
                h.append(d)
                n += len(d)
            got.append(b"".join(h))
    t = threading.Thread(target=sink)
    t.start()
    with net.dial("tcp!127.0.0.1!7401") as c:
        c.sendall(blob)
        t.join(120)
    assert got and got[0] == blob
    ifc = served.st.ip.ifc(lo)
    qlen, limit, drops = served.call(lambda: (ifc.sq.qlen, ifc.sq.limit, ifc.snoopdrops))
    # qpass: nothing is added once the limit is reached (so at most one
    # datagram beyond it); the rest is lost and counted
    assert limit <= qlen < limit + 65536 and drops > 0
    # the losses are in the log (ip), at the 1st, 2nd, 4th... one
    text = b""
    while b"copies lost" not in text or len(text) < 100:
        d = cl.read(log, 65536, timeout=10)
        if not d:
            break
        text += d
    assert b"ipifc %d snoop: 1 copies lost" % lo in text
    assert b"ipifc %d snoop: 16 copies lost" % lo in text
    cl.clunk(log)
    # the reader still gets whole datagrams when it starts
    d = cl.read(sn, 65536, timeout=10)
    assert d[0] >> 4 == 4 and struct.unpack("!H", d[2:4])[0] == len(d)
    cl.clunk(sn)
    ann.close()
    net.close()


def test_net9_snoop_writes_a_pcap(served, tmp_path):
    from net9.media import read_pcap
    lo = served.st.loifc.x
    out = tmp_path / "cap.pcap"
    p = subprocess.Popen([sys.executable, CMD, "snoop", "--srv", served.addr, "-u", "glenda",
                          "-i", str(lo), "-c", "4", "-w", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env())
    net = Net(srv=served.addr, user="glenda")
    u = net.dial("udp!127.0.0.1!9")
    try:
        # datagrams on the loopback until snoop has taken 4 copies and quit
        for i in range(600):
            u.sendall(b"datagram %d" % i)
            try:
                p.wait(0.05)
                break
            except subprocess.TimeoutExpired:
                pass
        assert p.wait(10) == 0, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
        u.close()
        net.close()
    recs = read_pcap(str(out))
    assert len(recs) == 4
    for _, n, d in recs:
        assert n == len(d) and d[0] >> 4 == 4 and struct.unpack("!H", d[2:4])[0] == len(d)
    assert any(b"datagram " in d for _, _, d in recs)
    # an interface that does not exist: one line, exit status 1
    r = subprocess.run([sys.executable, CMD, "snoop", "--srv", served.addr, "-u", "glenda",
                        "-i", "31"], capture_output=True, text=True, env=env(), timeout=30)
    assert r.returncode == 1 and r.stderr.startswith("net9 snoop: ") \
        and "file does not exist" in r.stderr and len(r.stderr.splitlines()) == 1


def test_ipifc_ctl_and_pkt_data_take_any_input():
    """Bad input never crashes an interface: random ctl messages (bind
    among them) fail with Net9Error or work; random datagrams written to a
    pkt interface's data file, with forwarding on, are taken."""
    import random
    from net9.errors import Net9Error
    from net9.stack import Stack
    st = Stack(tun=None, user="glenda")
    try:
        p = st.ip.ipifc
        rnd = random.Random(5)
        # (no tun: it would make Linux interfaces)
        words = ["bind", "pkt", "loopback", "frob", "add", "del", "unbind", "mtu",
                 "iprouting", "10.50.0.1", "255.255.255.0", "/64", "fd50::1", "0", "1",
                 "4096", "99999", "reflect", "reassemble", "x/y", "''", "ra6", "speed"]
        convs = []
        bound = injected = 0
        for _ in range(3000):
            if not convs or rnd.random() < 0.05:
                try:
                    convs.append(p.clone("glenda"))
                except Net9Error:                # every interface bound: no free devices
                    pass
            if not convs:
                continue
            c = rnd.choice(convs)
            msg = " ".join(rnd.choice(words) for _ in range(rnd.randint(0, 5)))
            if rnd.random() < 0.1:
                msg = "bind " + rnd.choice(["pkt", "loopback"])
            try:
                p.ctl(c, msg, "glenda")
                bound += msg.startswith("bind")
            except Net9Error:
                pass
            if rnd.random() < 0.3:
                pkt = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 80)))
                if rnd.random() < 0.5:
                    pkt = bytes([0x45]) + pkt[1:] if pkt else pkt
                try:
                    p.write(c, pkt)
                    injected += c.ptcl.bound and c.ptcl.medium.name == "pkt"
                    p.read(c, rnd.randint(0, 100))
                except Net9Error:
                    pass
            if rnd.random() < 0.05 and convs:
                p.closeconv(convs.pop(rnd.randrange(len(convs))))
            st.fs.drain()
        for c in convs:
            p.closeconv(c)
        assert bound > 10 and injected > 10 and st.inputerrors == 0
    finally:
        st.close()


def _bind_tun_as_this_user():
    from net9.errors import Net9Error
    from net9.stack import Stack
    st = Stack(tun=None, user="nobody")
    try:
        c = st.ip.ipifc.clone("nobody")
        try:
            st.ip.ipifc.ctl(c, "bind tun n9nobody", "nobody")
        except Net9Error as e:
            print(str(e))
            return 0 if not c.ptcl.bound else 3
        print("bound")
        return 2
    finally:
        st.close()


@pytest.mark.kernel
@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                    reason="needs root to become nobody, and /dev/net/tun")
def test_bind_tun_needs_root():
    from test_cli_linux import as_user, collect
    rc, out = collect(*as_user("nobody", _bind_tun_as_this_user))
    assert rc == 0 and out == "tun n9nobody: permission denied\n", out
    assert subprocess.run(["ip", "link", "show", "n9nobody"], capture_output=True).returncode != 0
