"""/net/cs and /net/dns (net9.ndb): 9front's cs.c and dns.c protocols over
9P against stacks served in this process with a stand-in for the host's
resolver (its names are this file's fixtures), then `net9 serve` on the
host's resolver itself (getaddrinfo) with a fixture /etc/hosts, in a mount
namespace of its own (root only).

cs: answers per address, v4 then v6, one on the stack's own network
first; net!, *, ::, [v6], literals, unknown networks, $attr from /net/ndb,
!attr=val queries; cs's error texts; one answer per read from offset 0 and
lines for a read that follows its write (a shell's descriptor).  dns: ip,
ipv6, ptr, cname records as dns formats them, and its errors.  Lookups
never hold up the 9P server: many at once from several clients wait while
other requests are answered; bounded in number (too much activity) and
time (dns failure); cached; a flushed request leaves nothing behind.
net9.dial and `net9 dial` resolve names through the served cs."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

pytest.importorskip("net9.stack", reason="net9.stack not built")

import net9  # noqa: E402
from net9.client import NinepError, ORDWR  # noqa: E402
from net9.dial import Net  # noqa: E402
from net9.ndb import FAILURE, HostResolver, LookupFailure, NODATA, NXDOMAIN  # noqa: E402

from served import Served  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CMD = os.path.join(os.path.dirname(HERE), "cmd", "net9")

HOSTS = {
    "fix.example": (["10.1.2.3", "10.77.0.9"], ["fd09::9"]),
    "v6only.example": ([], ["fd00::6"]),
    "empty.example": ([], []),
    "authhost.example": (["10.5.5.5"], []),
    "svc.example": (["127.0.0.1"], []),
}
NAMES = {"10.1.2.3": "fix.example", "fd09::9": "fix.example"}
CNAMES = {"www.example": "fix.example"}


class Resolver(HostResolver):
    """The fixtures; "slow*" names wait for .go; counts its lookups."""

    def __init__(self):
        self.go = threading.Event()
        self.go.set()
        self.calls = []
        self.lock = threading.Lock()

    def _wait(self, name):
        with self.lock:
            self.calls.append(name)
        if name.startswith("slow"):
            self.go.wait(60)

    def addrs(self, name):
        self._wait(name)
        if name.startswith("slow"):
            return ["10.9.9.%d" % (sum(name.encode()) % 250 + 1)], []
        if name == "broken.example":
            raise LookupFailure(FAILURE)
        if name == "nodata.example":
            raise LookupFailure(NODATA)
        if name not in HOSTS:
            raise LookupFailure(NXDOMAIN)
        return HOSTS[name]

    def ptr(self, addr):
        self._wait(addr)
        if addr not in NAMES:
            raise LookupFailure(NXDOMAIN)
        return NAMES[addr]

    def cname(self, name):
        self._wait(name)
        if name in CNAMES:
            return CNAMES[name]
        if name in HOSTS:
            return None
        raise LookupFailure(NXDOMAIN)


@pytest.fixture
def served():
    r = Resolver()
    s = Served(resolver=r)
    s.resolver = r
    try:
        yield s
    finally:
        r.go.set()
        s.close()


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = os.path.dirname(os.path.dirname(net9.__file__))
    e.pop("NET9_SRV", None)
    return e


def query(cl, file, q, count=512, timeout=30):
    """Write q to a fresh open of file, read every answer from offset 0 as
    dial(2) does: [answers] or the error text."""
    f = cl.walkopen(file, ORDWR)
    try:
        try:
            cl.write(f, q.encode(), 0, timeout=timeout)
        except NinepError as e:
            return str(e)
        out, off = [], 0
        while True:
            d = cl.read(f, count, off)
            if not d:
                return out
            out.append(d.decode())
            off += len(d)
    finally:
        cl.clunk(f)


def cs(cl, q, **kw):
    return query(cl, "cs", q, **kw)


def dns(cl, q, **kw):
    return query(cl, "dns", q, **kw)


# ---- cs ---------------------------------------------------------------------------

def test_cs_translations(served):
    cl = Net(srv=served.addr, user="glenda").client
    # v4 then v6; the address on the stack's own network (10.77.0.2/24) first
    assert cs(cl, "tcp!fix.example!http") == ["/net/tcp/clone 10.77.0.9!80",
                                              "/net/tcp/clone 10.1.2.3!80",
                                              "/net/tcp/clone fd09::9!80"]
    assert cs(cl, "udp!fix.example!53") == ["/net/udp/clone 10.77.0.9!53",
                                            "/net/udp/clone 10.1.2.3!53",
                                            "/net/udp/clone fd09::9!53"]
    assert cs(cl, "net!v6only.example!9fs") == ["/net/tcp/clone fd00::6!564"]
    assert cs(cl, "icmp!authhost.example!1") == ["/net/icmp/clone 10.5.5.5!1"]
    # the announce forms, literals (as written), brackets, the rest fields
    assert cs(cl, "tcp!*!ssh") == ["/net/tcp/clone 22"]
    assert cs(cl, "tcp!::!564") == ["/net/tcp/clone 564"]
    assert cs(cl, "tcp!10.9.0.1!0080") == ["/net/tcp/clone 10.9.0.1!0080"]
    assert cs(cl, "tcp![fd09::1]!80") == ["/net/tcp/clone fd09::1!80"]
    assert cs(cl, "tcp!10.9.0.1!80!r") == ["/net/tcp/clone 10.9.0.1!80!r"]
    # a network cs does not know: untranslated
    assert cs(cl, "foo!bar!baz") == ["/net/foo/clone bar!baz"]
    assert cs(cl, "foo!bar") == ["/net/foo/clone bar"]
    # services: /etc/services or net9's table; a name for udp too
    assert cs(cl, "tcp!10.0.0.1!9fs") == ["/net/tcp/clone 10.0.0.1!564"]
    assert cs(cl, "udp!10.0.0.1!domain") == ["/net/udp/clone 10.0.0.1!53"]
    # a trailing newline (a shell's echo) is not part of the service
    assert cs(cl, "tcp!10.0.0.1!http\n") == ["/net/tcp/clone 10.0.0.1!80"]


def test_cs_errors(served):
    cl = Net(srv=served.addr, user="glenda").client
    assert cs(cl, "tcp!nosuch.example!80") == \
        "cs: can't translate address: dns: name does not exist"
    assert cs(cl, "tcp!nodata.example!80") == \
        "cs: can't translate address: dns: resource does not exist; negrcode 0"
    assert cs(cl, "tcp!empty.example!80") == \
        "cs: can't translate address: dns: resource does not exist; negrcode 0"
    assert cs(cl, "tcp!broken.example!80") == "cs: temporary problem: dns: dns failure"
    assert cs(cl, "tcp!fix.example!nosuchservice") == "cs: can't translate service"
    assert cs(cl, "tcp!fix.example!a_b") == "cs: can't translate service"
    assert cs(cl, "tcp!fix.example") == "cs: can't translate service"
    assert cs(cl, "fix.example") == "cs: can't translate service"
    assert cs(cl, "icmp!fix.example!echo") == "cs: can't translate service"
    assert cs(cl, "tcp!" + "x" * 130 + "!80") == "cs: request too long"
    assert cs(cl, "!") == "cs: bad query"
    assert cs(cl, "!sys") == "cs: bad query"
    assert cs(cl, "!sys=nothing") == "cs: no match"


def test_cs_ndb_attributes_and_queries(served):
    cl = Net(srv=served.addr, user="glenda").client
    f = cl.walkopen("ndb", ORDWR)
    cl.write(f, b"ip=10.77.0.2 sys=gnot dom=gnot.example\n\tdns=10.1.1.53 auth=authhost.example\n"
                b"ipnet=lab ip=10.77.0.0 ipmask=255.255.255.0\n\tfs=10.77.0.7\n", 0)
    cl.clunk(f)
    assert cs(cl, "tcp!$auth!567") == ["/net/tcp/clone 10.5.5.5!567"]
    assert cs(cl, "udp!$dns!53") == ["/net/udp/clone 10.1.1.53!53"]
    assert cs(cl, "tcp!$fs!9fs") == ["/net/tcp/clone 10.77.0.7!564"]
    assert cs(cl, "tcp!$nosuchattr!80") == "cs: can't translate address: dns: name does not exist"
    # generic queries: the entry's lines; dom= goes to the resolver
    assert cs(cl, "!sys=gnot") == ["ip=10.77.0.2 sys=gnot dom=gnot.example",
                                   "dns=10.1.1.53 auth=authhost.example"]
    assert cs(cl, "!sys=gnot dns=*") == ["ip=10.77.0.2 sys=gnot dom=gnot.example",
                                         "dns=10.1.1.53 auth=authhost.example"]
    assert cs(cl, "!sys=gnot dns=1.2.3.4") == "cs: no match"
    assert cs(cl, "!dom=fix.example") == ["dom=fix.example ip=10.1.2.3 ip=10.77.0.9 ip=fd09::9"]
    assert cs(cl, "!ipinfo ip=10.77.0.2 dns auth") == ["dns=10.1.1.53 auth=authhost.example"]


def test_cs_reads_one_answer_each_from_zero_and_lines_after_a_write(served):
    cl = Net(srv=served.addr, user="glenda").client
    f = cl.walkopen("cs", ORDWR)
    q = b"tcp!fix.example!80\n"
    assert cl.write(f, q, 0) == len(q)
    # dial(2): seek 0, then one answer per read, a short read continuing it
    a0 = b"/net/tcp/clone 10.77.0.9!80"
    assert cl.read(f, 512, 0) == a0
    assert cl.read(f, 5, len(a0)) == b"/net/"
    assert cl.read(f, 512, len(a0) + 5) == b"tcp/clone 10.1.2.3!80"
    cl.clunk(f)
    # a shell: echo >&4 leaves the descriptor at the end of what it wrote,
    # read <&4 goes on from there and gets lines
    f = cl.walkopen("cs", ORDWR)
    cl.write(f, q, 0)
    off = len(q)
    lines = []
    while True:
        d = cl.read(f, 128, off)
        if not d:
            break
        lines.append(d)
        off += len(d)
    assert lines == [b"/net/tcp/clone 10.77.0.9!80\n", b"/net/tcp/clone 10.1.2.3!80\n",
                     b"/net/tcp/clone fd09::9!80\n"]
    # the next request on the same file, where the shell's offset is now
    cl.write(f, b"tcp!*!80\n", off)
    assert cl.read(f, 128, off + 9) == b"/net/tcp/clone 80\n"
    assert cl.read(f, 128, off + 9 + 18) == b""
    cl.clunk(f)


def test_cs_eve_commands(served):
    cl = Net(srv=served.addr, user="glenda").client
    r = served.resolver
    assert cs(cl, "net!fix.example!80")[-1] == "/net/tcp/clone fd09::9!80"
    # ipv6 toggles v6 lookups (eve only; for others it is a query)
    assert cs(cl, "ipv6") == []
    assert cs(cl, "net!fix.example!80")[-1] == "/net/tcp/clone 10.1.2.3!80"
    bob = Net(srv=served.addr, user="bob").client
    assert cs(bob, "ipv6") == "cs: can't translate service"
    assert cs(cl, "ipv6") == []
    # answers are cached; refresh forgets them
    n = len(r.calls)
    cs(cl, "tcp!fix.example!80")
    assert len(r.calls) == n
    assert cs(cl, "refresh") == []
    cs(cl, "tcp!fix.example!80")
    assert len(r.calls) == n + 1


# ---- dns ----------------------------------------------------------------------------

def test_dns_queries_and_errors(served):
    cl = Net(srv=served.addr, user="glenda").client
    assert dns(cl, "fix.example ip") == ["fix.example ip\t10.1.2.3", "fix.example ip\t10.77.0.9"]
    assert dns(cl, "fix.example ipv6") == ["fix.example ipv6\tfd09::9"]
    assert dns(cl, "fix.example. ip\n") == ["fix.example ip\t10.1.2.3",
                                            "fix.example ip\t10.77.0.9"]
    assert dns(cl, "10.1.2.3 ptr") == ["3.2.1.10.in-addr.arpa ptr\tfix.example"]
    assert dns(cl, "3.2.1.10.in-addr.arpa ptr") == ["3.2.1.10.in-addr.arpa ptr\tfix.example"]
    # fd09:0:0:0:0:0:0:9, nibble by nibble from the end
    assert dns(cl, "fd09::9 ptr") == ["9." + "0." * 27 + "9.0.d.f.ip6.arpa ptr\tfix.example"]
    assert dns(cl, "www.example cname") == ["www.example cname\tfix.example"]
    assert dns(cl, "nosuch.example ip") == "dns: name does not exist"
    assert dns(cl, "v6only.example ip") == "dns: resource does not exist; negrcode 0"
    assert dns(cl, "fix.example cname") == "dns: resource does not exist; negrcode 0"
    assert dns(cl, "broken.example ip") == "dns: dns failure"
    assert dns(cl, "10.9.9.9 ptr") == "dns: name does not exist"
    assert dns(cl, "fix.example mx") == "dns: resolver cannot answer mx queries"
    assert dns(cl, "fix.example frob") == "dns: unknown type frob"
    assert dns(cl, "fix.example") == "dns: illegal request fix.example"
    assert dns(cl, "x" * 130 + " ip") == "dns: request too long"
    f = cl.walkopen("dns", ORDWR)
    with pytest.raises(NinepError, match="^dns: writing at non-zero offset$"):
        cl.write(f, b"fix.example ip", 3)
    cl.clunk(f)


# ---- never blocking the server --------------------------------------------------------

def test_many_lookups_at_once_do_not_hold_up_9p():
    r = Resolver()
    s = Served(resolver=r, workers=3, maxpending=64)
    try:
        r.go.clear()
        results = {}
        clients = [Net(srv=s.addr, user="glenda").client for _ in range(4)]

        def ask(i):
            results[i] = cs(clients[i % 4], "tcp!slow%d.example!80" % i, timeout=120)
        ts = [threading.Thread(target=ask, args=(i,)) for i in range(40)]
        for t in ts:
            t.start()
        # every request is in, none answered (the resolver is stuck) ...
        for _ in range(2000):
            if s.call(lambda: len(s.srv.netfs.nswaits)) == 40:
                break
            time.sleep(0.01)
        assert s.call(lambda: len(s.srv.netfs.nswaits)) == 40
        assert results == {}
        # ... and the server answers everything else meanwhile
        net = Net(srv=s.addr, user="glenda")
        assert net.cat("tcp/stats").startswith("MaxConn: ")
        assert cs(net.client, "tcp!10.1.1.1!80") == ["/net/tcp/clone 10.1.1.1!80"]
        ann = net.announce("tcp!127.0.0.1!7500")
        th = threading.Thread(target=lambda: ann.listen().accept().sendall(b"ok"))
        th.start()
        with net.dial("tcp!127.0.0.1!7500") as c:
            assert c.read(2) == b"ok"
        th.join(10)
        ann.close()
        # at most `workers` lookups run at once
        assert len(r.calls) <= 3
        r.go.set()
        for t in ts:
            t.join(60)
        assert sorted(results) == list(range(40))
        for i, a in results.items():
            assert a == ["/net/tcp/clone 10.9.9.%d!80" % (sum(("slow%d.example" % i).encode())
                                                         % 250 + 1)], a
        net.close()
    finally:
        r.go.set()
        s.close()


def test_lookups_bounded_in_number():
    r = Resolver()
    s = Served(resolver=r, workers=1, maxpending=2)
    try:
        r.go.clear()
        cl = Net(srv=s.addr, user="glenda").client
        out = {}
        ts = [threading.Thread(target=lambda i=i: out.__setitem__(
            i, cs(cl, "tcp!slow-b%d.example!80" % i))) for i in range(2)]
        for t in ts:
            t.start()
        for _ in range(2000):
            if s.call(lambda: len(s.ns.inflight)) == 2:
                break
            time.sleep(0.005)
        assert s.call(lambda: len(s.ns.inflight)) == 2
        # a third lookup while two wait: too much activity, at once
        assert cs(cl, "tcp!slow-c.example!80") == "cs: too much activity"
        assert dns(cl, "slow-c.example ip") == "dns: too much activity"
        # what is cached or literal needs no lookup
        assert cs(cl, "tcp!10.1.1.1!80") == ["/net/tcp/clone 10.1.1.1!80"]
        r.go.set()
        for t in ts:
            t.join(30)
        assert sorted(out) == [0, 1] and all(a[0].startswith("/net/tcp/clone 10.9.9.")
                                             for a in out.values()), out
    finally:
        r.go.set()
        s.close()


def test_lookups_bounded_in_time():
    r = Resolver()
    s = Served(resolver=r, timeout=0.3)
    try:
        r.go.clear()
        cl = Net(srv=s.addr, user="glenda").client
        assert cs(cl, "tcp!slow-t.example!80") == "cs: temporary problem: dns: dns failure"
        assert dns(cl, "slow-u.example ip") == "dns: dns failure"
        assert s.ns.timeouts == 2
        # a time-out is not remembered: once the resolver answers, so does cs
        r.go.set()
        for _ in range(1000):
            if not s.call(lambda: s.ns.inflight):
                break
            time.sleep(0.01)
        assert cs(cl, "tcp!slow-t.example!80")[0].startswith("/net/tcp/clone 10.9.9.")
    finally:
        r.go.set()
        s.close()


def test_flushed_lookup_leaves_nothing_behind(served):
    r = served.resolver
    r.go.clear()
    cl = Net(srv=served.addr, user="glenda").client
    f = cl.walkopen("cs", ORDWR)
    # the client's time-out flushes the parked write
    with pytest.raises(TimeoutError):
        cl.write(f, b"tcp!slow-f.example!80", 0, timeout=0.3)
    assert served.call(lambda: len(served.srv.netfs.nswaits)) == 0
    # the same file, while its lookup still runs: cs's rule
    with pytest.raises(NinepError, match="^cs: query already in progress$"):
        cl.write(f, b"tcp!fix.example!80", 0)
    r.go.set()
    for _ in range(1000):
        if not served.call(lambda: served.ns.inflight):
            break
        time.sleep(0.01)
    cl.write(f, b"tcp!fix.example!80", 0)
    assert cl.read(f, 512, 0) == b"/net/tcp/clone 10.77.0.9!80"
    cl.clunk(f)


# ---- dial through cs ----------------------------------------------------------------

def test_dial_resolves_names_through_cs(served):
    net = Net(srv=served.addr, user="glenda")
    ann = net.announce("tcp!127.0.0.1!7600")
    th = threading.Thread(target=lambda: ann.listen().accept().sendall(b"hi"))
    th.start()
    # svc.example is known to the server's resolver only
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("svc.example", None)
    with net.dial("tcp!svc.example!7600") as c:
        assert c.remote == "127.0.0.1!7600" and c.read(2) == b"hi"
    th.join(10)
    ann.close()
    assert "svc.example" in served.resolver.calls
    with pytest.raises(socket.gaierror, match="cs: can't translate address: dns: name does not"):
        net.dial("tcp!nosuch.example!80")
    net.close()


def test_net9_cs_dns_and_dial_commands(served):
    def run(*args, input=None):
        return subprocess.run([sys.executable, CMD] + list(args), input=input,
                              capture_output=True, text=True, env=env(), timeout=60)
    r = run("cs", "--srv", served.addr, "-u", "glenda", "tcp!fix.example!http")
    assert r.returncode == 0 and r.stdout == ("/net/tcp/clone 10.77.0.9!80\n"
                                              "/net/tcp/clone 10.1.2.3!80\n"
                                              "/net/tcp/clone fd09::9!80\n"), r.stderr
    r = run("cs", "--srv", served.addr, "-u", "glenda", "tcp!nosuch.example!http")
    assert r.returncode == 1 and r.stdout == "" and r.stderr == (
        "net9 cs: cs: can't translate address: dns: name does not exist\n")
    r = run("dns", "--srv", served.addr, "-u", "glenda", "fix.example", "ipv6")
    assert r.returncode == 0 and r.stdout == "fix.example ipv6\tfd09::9\n", r.stderr
    net = Net(srv=served.addr, user="glenda")
    ann = net.announce("tcp!*!7601")
    th = threading.Thread(target=lambda: ann.listen().accept().sendall(b"named\n"))
    th.start()
    r = run("dial", "--srv", served.addr, "-u", "glenda", "tcp!svc.example!7601", input="")
    th.join(10)
    assert r.returncode == 0 and r.stdout == "named\n", r.stderr
    r = run("dial", "--srv", served.addr, "-u", "glenda", "tcp!nosuch.example!7601", input="")
    assert r.returncode == 1 and r.stderr == (
        "net9 dial: unknown host: nosuch.example: cs: can't translate address: "
        "dns: name does not exist\n")
    ann.close()
    net.close()


# ---- the host's resolver ----------------------------------------------------------------

FIXTURE_HOSTS = """\
127.0.0.1 fixture.example
10.200.0.7 far.example
fd00:200::7 far.example
fd00:200::8 v6only.fixture
"""


@pytest.mark.kernel
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare(1) (a mount namespace with its own /etc/hosts)")
def test_host_resolver_with_fixture_hosts():
    """net9 serve in a mount namespace whose /etc/hosts is this test's and
    whose nsswitch.conf looks only there (no DNS: nothing to wait for)."""
    d = tempfile.mkdtemp()
    hosts = os.path.join(d, "hosts")
    nss = os.path.join(d, "nsswitch.conf")
    with open(hosts, "w") as f:
        f.write(FIXTURE_HOSTS)
    with open(nss, "w") as f:
        f.write("hosts: files\nservices: files\n")
    sock = os.path.join(d, "s")
    script = ('mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/nsswitch.conf && '
              'shift 2 && exec "$@"')
    p = subprocess.Popen(["unshare", "-m", "sh", "-c", script, "sh", hosts, nss,
                          sys.executable, CMD, "serve", "--tun", "none", "--srv", "unix!" + sock],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env=env(), text=True)
    try:
        lines = []
        while not any("serving 9P on" in x for x in lines):
            ln = p.stderr.readline()
            assert ln, "net9 serve exited: %s" % lines
            lines.append(ln)
        assert "net9: /net/cs and /net/dns answer from the host's resolver\n" in lines
        srv = "unix!" + sock
        net = Net(srv=srv)
        cl = net.client
        assert cs(cl, "tcp!far.example!http") == ["/net/tcp/clone 10.200.0.7!80",
                                                  "/net/tcp/clone fd00:200::7!80"]
        assert cs(cl, "tcp!v6only.fixture!9fs") == ["/net/tcp/clone fd00:200::8!564"]
        assert cs(cl, "tcp!unknown.fixture!80") == \
            "cs: can't translate address: dns: name does not exist"
        assert dns(cl, "far.example ip") == ["far.example ip\t10.200.0.7"]
        assert dns(cl, "far.example ipv6") == ["far.example ipv6\tfd00:200::7"]
        assert dns(cl, "10.200.0.7 ptr") == ["7.0.200.10.in-addr.arpa ptr\tfar.example"]
        assert dns(cl, "unknown.fixture ip") == "dns: name does not exist"
        # the names are the server's: this process's resolver does not know them
        with pytest.raises(socket.gaierror):
            socket.getaddrinfo("fixture.example", None)
        ann = net.announce("tcp!*!7700")
        th = threading.Thread(target=lambda: ann.listen().accept().sendall(b"by name\n"))
        th.start()
        r = subprocess.run([sys.executable, CMD, "dial", "--srv", srv, "tcp!fixture.example!7700"],
                           input="", capture_output=True, text=True, env=env(), timeout=60)
        th.join(10)
        assert r.returncode == 0 and r.stdout == "by name\n", r.stderr
        ann.close()
        net.close()
    finally:
        p.terminate()
        p.wait(20)
        shutil.rmtree(d, ignore_errors=True)


def test_any_request_is_an_answer_or_an_error():
    """Bad input never crashes cs or dns: every write is answered, or
    fails with Net9Error (an error reply), never another exception."""
    import random
    from net9.errors import Net9Error
    from net9.ndb import CsFile, DnsFile, NameService

    class Loop:
        def call_soon_threadsafe(self, fn, *a):
            pass

        def call_later(self, d, fn, *a):
            pass
    ns = NameService(Loop(), resolver=Resolver())
    ns.ndb = lambda: "ip=10.77.0.2 sys=x\n\tdns=1.2.3.4\n=\n==x\n a\n"
    ns.eve = "glenda"
    rnd = random.Random(9)
    alpha = "tcp!udp*$[]:.!10 fix.example ip ipv6 ptr cname \n\0xé!=@ipinfo/"
    for _ in range(3000):
        q = "".join(rnd.choice(alpha) for _ in range(rnd.randint(0, 40)))
        for write, F in ((ns.cswrite, CsFile), (ns.dnswrite, DnsFile)):
            f = F()
            try:
                job = write(f, q.encode(), rnd.choice([0, 0, 7]), rnd.choice(["glenda", "bob"]))
            except Net9Error:
                continue
            assert job.error is None or job.error.startswith(("cs: ", "dns: ")), job.error
            assert isinstance(f.read(rnd.randint(0, 64), rnd.randint(0, 64)), bytes)
    for q, want in (("10.1 ip", ["10.1 ip\t10.0.0.1"]),):
        f = DnsFile()
        job = ns.dnswrite(f, q.encode(), 0, "bob")
        assert job.finished and job.error is None and f.replies == want
