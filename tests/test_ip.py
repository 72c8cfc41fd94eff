"""Tests of net9.ip, the IP layer (9front devip's ip.c, ipv6.c, ipifc.c,
iproute.c): interfaces and their texts, the self table, routes and source
address selection, IPv4/IPv6 input checks and counters, fragmentation and
reassembly, TCP through the IP layer, and a fuzz of ip.input.

Expected values are derived from devip's code; each test says where from.
The stacks are joined by tests/ipnet.py's in-memory link (no sim wire, no
media module)."""

import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ipnet import (Host, Net, Rec, ext, frag4, frag6, frags4, ip4, ip6)
from net9.conv import ConvState, Fs
from net9.csum import cksum
from net9.errors import Net9Error
from net9.ip import Ip, statnames
from net9.ipaux import fmtip, parseip

P = 253          # an IP protocol number for the recording protocol


class Sink:
    """A medium that keeps what it is given."""

    hsize = 0

    def __init__(self, mtu=1500, name="sink0", mintu=68):
        self.name = name
        self.maxtu = mtu
        self.mintu = mintu
        self.sent = []

    def transmit(self, pkt):
        self.sent.append(bytes(pkt))


def host(mtu=1500, addrs=(("10.0.0.1", 24),), mintu=68):
    fs = Fs(seed=1)
    ip = Ip(fs)
    sink = Sink(mtu, mintu=mintu)
    ifc = ip.addifc(sink)
    for a, m in addrs:
        ifc.add(a, m)
    return fs, ip, ifc, sink


def delta(ip, before):
    now = ip.stats()
    return {k: now[k] - before[k] for k in now if now[k] != before[k]}


def v4dgram(src, dst, proto, payload, ident=77):
    """An IPv4 datagram as the engines hand it to ipoput (id, frag, cksum 0)."""
    h = bytearray(ip4(src, dst, proto, payload, ident=0, ttl=255))
    h[10] = h[11] = 0
    return h


def v6dgram(src, dst, nh, payload):
    return bytearray(ip6(src, dst, nh, payload, hlim=255))


# ---------------------------------------------------------------- texts

STATNAMES = ["Forwarding", "DefaultTTL", "InReceives", "InHdrErrors", "InAddrErrors",
             "ForwDatagrams", "InUnknownProtos", "InDiscards", "InDelivers", "OutRequests",
             "OutDiscards", "OutNoRoutes", "ReasmTimeout", "ReasmReqds", "ReasmOKs",
             "ReasmFails", "FragOKs", "FragFails", "FragCreates"]


def test_statstext_names_order_and_defaults():
    # devip.md section 9: 19 lines "name: %llud" in ip.c's enum order;
    # DefaultTTL is MAXTTL (ip_init), Forwarding 0 until "iprouting"
    fs = Fs()
    ip = Ip(fs)
    assert fs.ip is ip
    lines = ip.statstext().splitlines()
    assert len(lines) == 19
    assert [l.split(": ")[0] for l in lines] == STATNAMES == list(statnames)
    assert lines[1] == "DefaultTTL: 255"
    assert all(l.endswith(": 0") for i, l in enumerate(lines) if i != 1)
    # /net/ipifc/stats is the same text (ipifcstats -> ipstats)
    assert fs.protos["ipifc"].stats() == ip.statstext()
    ifc = ip.addifc(Sink())
    ifc.ctl("iprouting")
    assert ip.stat("Forwarding") == 1
    ifc.ctl("iprouting 0")
    assert ip.stat("Forwarding") == 2


def test_ifc_status_local_and_counters():
    # ipifc.c sfixedformat and slineformat; lifetimes ~0UL; rp defaults
    # from ipv6.c ip_init_6 (maxraint 600000, minraint 200000, ttl 255,
    # routerlt 3*600000/1000); delay 40 (ipifcbind)
    fs, ip, ifc, sink = host(addrs=[("10.0.0.1", 24), ("fd00::1", 64)])
    st_ = ifc.statustext()
    first, l1, l2 = st_.split("\n")[:3]
    assert first == ("device sink0 maxtu 1500 sendra 0 recvra 0 mflag 0 oflag 0 maxraint 600000 "
                     "minraint 200000 linkmtu 0 reachtime 0 rxmitra 0 ttl 255 routerlt 1800 "
                     "pktin 0 pktout 0 errin 0 errout 0 speed 0 delay 40")
    assert l1 == "\t%-40s %-10s %-40s %-12d %-12d" % ("10.0.0.1", "/120", "10.0.0.0",
                                                     4294967295, 4294967295)
    assert l2 == "\t%-40s %-10s %-40s %-12d %-12d" % ("fd00::1", "/64", "fd00::",
                                                     4294967295, 4294967295)
    assert fs.protos["ipifc"].status(ifc.conv) == st_
    # an interface without addresses prints an empty line after the first
    ip2 = Ip(Fs())
    i2 = ip2.addifc(Sink(name="x"))
    assert i2.statustext().endswith("delay 40\n\n")
    # local: "%-40.40I ->" then " %-40.40I" per linked self address (newest first)
    loc = ifc.localtext().splitlines()
    assert loc[0].startswith("%-40s ->" % "10.0.0.1")
    linked = loc[0].split("->")[1].split()
    assert linked == ["224.0.0.1", "255.255.255.255", "10.255.255.255", "10.0.0.0",
                      "10.0.0.255", "10.0.0.1"]
    assert loc[1].split("->")[1].split() == ["ff02::1:ff00:1", "ff02::1", "fd00::1"]
    # counters: a datagram in, one out
    ifc.input(ip4("10.0.0.9", "10.0.0.1", P, b"x"))
    ip.ipoput(4, v4dgram("10.0.0.1", "10.0.0.9", P, b"y"), 255, 0, None)
    assert (ifc.pktin, ifc.pktout) == (1, 1)
    assert "pktin 1 pktout 1 errin 0 errout 0" in ifc.statustext()
    ifc.input(b"\x45")
    assert ifc.errin == 1


def test_selftab_v4_v6_text():
    # ipifc.c ipifcadd: unicast (Runi), subnet broadcast and network,
    # classful broadcast and network, 255.255.255.255 (Rbcast), 224.0.0.1
    # (Rmulti); v6: ff02::1 and the solicited-node address (Rmulti).
    # ipselftabread walks hash chains 0..63 (hash = last two bytes % 64),
    # newest entry first, "%-44.44I %2.2d %4.4s\n".
    fs, ip, ifc, sink = host(addrs=[("10.0.0.1", 24), ("fd00::1", 64)])
    expect = [
        ("10.0.0.0", 1, "4b"),            # bucket 0
        ("ff02::1:ff00:1", 1, "6m"),      # bucket 1, newest first
        ("ff02::1", 1, "6m"),
        ("fd00::1", 1, "6u"),
        ("224.0.0.1", 1, "4m"),
        ("10.0.0.1", 1, "4u"),
        ("255.255.255.255", 1, "4b"),     # bucket 63
        ("10.255.255.255", 1, "4b"),
        ("10.0.0.255", 1, "4b"),
    ]
    text = "".join("%-44.44s %02d %4.4s\n" % e for e in expect)
    assert ip.ipselftabtext() == text
    # a second interface in another subnet shares 255.255.255.255 and
    # 224.0.0.1: two links each
    ifc2 = ip.addifc(Sink(name="sink1"))
    ifc2.add("172.16.0.1", 16)
    tab = ip.selftab()
    assert tab["255.255.255.255"] == ("4b", 2)
    assert tab["224.0.0.1"] == ("4m", 2)
    assert tab["172.16.255.255"] == ("4b", 1)
    assert tab["172.16.0.1"] == ("4u", 1)
    # removing the address unlinks it (delselfcache) and drops its routes
    ifc2.remove("172.16.0.1", 16)
    tab = ip.selftab()
    assert "172.16.0.1" not in tab and "172.16.255.255" not in tab
    assert tab["255.255.255.255"] == ("4b", 1)
    assert not [r for r in ip.routes() if r["ifc"] == ifc2.x]


def test_selftab_point_to_point_and_isself():
    # a mask of all ones makes the interface point to point: only the
    # unicast self entry, no broadcasts (ipifcadd "goto done")
    fs, ip, ifc, sink = host(addrs=[])
    ifc.add("10.9.0.1", 32, remote="10.9.0.2")
    assert ip.selftab() == {"10.9.0.1": ("4u", 1)}
    routes = {(r["dst"], r["mask"], r["type"], r["src"]) for r in ip.routes()}
    assert ("10.9.0.2", "/128", "4ip", "10.9.0.1") in routes
    assert ip.isself(parseip("10.9.0.1"))
    assert not ip.isself(parseip("10.9.0.2"))
    assert not ip.isself(parseip("255.255.255.255"))


def test_multicast_membership():
    # ipifcaddmulti: the group becomes an Rmulti self address of the
    # interface with the given address (and a source-specific route);
    # joins are counted, the last leave removes it
    fs, ip, ifc, sink = host(addrs=[("10.0.0.1", 24), ("fd00::1", 64)])
    rec = Rec(fs, "rec", P)
    g = ip4("10.0.0.9", "239.1.2.3", P, b"group")
    ip.input(ifc, g)
    assert rec.got == [] and ip.stat("InAddrErrors") == 1
    assert ip.addmulti("239.1.2.3", "10.0.0.1")
    assert ip.addmulti("239.1.2.3", "10.0.0.1")
    assert ip.selftab()["239.1.2.3"] == ("4m", 1)
    assert ip.lookup("239.1.2.3", "10.0.0.1")["type"] == "4m"
    ip.input(ifc, g)
    assert rec.got == [g]
    ip.remmulti("239.1.2.3", "10.0.0.1")
    ip.input(ifc, g)
    assert len(rec.got) == 2
    ip.remmulti("239.1.2.3", "10.0.0.1")
    ip.input(ifc, g)
    assert len(rec.got) == 2 and "239.1.2.3" not in ip.selftab()
    assert ip.lookup("239.1.2.3", "10.0.0.1") is None
    assert not ip.addmulti("239.1.2.3", "10.9.9.9")
    with pytest.raises(Net9Error, match="^incompatible multicast/interface ip address$"):
        ip.addmulti("ff05::1", "10.0.0.1")
    assert ip.addmulti("ff05::1", "fd00::1")
    ip.input(ifc, ip6("fd00::9", "ff05::1", P, b"g6"))
    assert rec.got[-1][40:] == b"g6"


def test_iproute_text_exact():
    # iproute.c seprintroute "%-15I %-4M %-15I %-4s %4.4s %3s %-15I %-4M\n";
    # routes of "add 10.0.0.1 /24" and "add fd00::1 /64": the interface
    # route twice (source 10.0.0.1/128 and any), one per self address
    # (source-specific for broadcast/multicast), ff02::/16 for v6.
    # Order: v4 then v6; root bucket V4H/V6H, then ascending, containing first.
    fs, ip, ifc, sink = host(addrs=[("10.0.0.1", 24), ("fd00::1", 64)])
    rows = [
        ("224.0.0.1", "/128", "224.0.0.1", "4m", "10.0.0.1", "/128"),
        ("10.0.0.0", "/120", "10.0.0.0", "4i", "0.0.0.0", "/96"),
        ("10.0.0.0", "/120", "10.0.0.0", "4i", "10.0.0.1", "/128"),
        ("10.0.0.0", "/128", "10.0.0.0", "4b", "10.0.0.1", "/128"),
        ("10.0.0.1", "/128", "10.0.0.1", "4u", "0.0.0.0", "/96"),
        ("10.0.0.255", "/128", "10.0.0.255", "4b", "10.0.0.1", "/128"),
        ("10.255.255.255", "/128", "10.255.255.255", "4b", "10.0.0.1", "/128"),
        ("255.255.255.255", "/128", "255.255.255.255", "4b", "10.0.0.1", "/128"),
        ("fd00::", "/64", "fd00::", "6i", "::", "/0"),
        ("fd00::", "/64", "fd00::", "6i", "fd00::1", "/128"),
        ("fd00::1", "/128", "fd00::1", "6u", "::", "/0"),
        ("ff02::", "/16", "ff02::1", "6m", "fd00::1", "/128"),
        ("ff02::1", "/128", "ff02::1", "6m", "fd00::1", "/128"),
        ("ff02::1:ff00:1", "/128", "ff02::1:ff00:1", "6m", "fd00::1", "/128"),
    ]
    text = "".join("%-15s %-4s %-15s %-4s %4.4s %3s %-15s %-4s\n" % (d, m, g, t, "ifc ", "0", s, sm)
                   for d, m, g, t, s, sm in rows)
    assert ip.iproutetext() == text
    # a line in full, to pin the padding: "4i" in 4, tag in 4, ifc in 3
    assert text.splitlines()[1] == \
        "10.0.0.0        /120 10.0.0.0        4i   ifc    0 0.0.0.0         /96 "


def test_ifc_ctl_messages_and_errors():
    fs, ip, ifc, sink = host(addrs=[])
    ifc.ctl("add 10.1.0.1 255.255.0.0")
    assert ifc.addresses() == [("10.1.0.1", "/112", "10.1.0.0")]
    # adding an existing address is a no-op
    n = len(ip.routes())
    ifc.ctl("add 10.1.0.1 255.255.0.0")
    assert len(ip.routes()) == n and len(ifc.lifcs) == 1
    # default mask: classful (defmask): 10/8
    ifc.ctl("add 10.2.0.1")
    assert ifc.addresses()[1] == ("10.2.0.1", "/104", "10.0.0.0")
    with pytest.raises(Net9Error, match="^bad ip address syntax$"):
        ifc.ctl("add 10.1.0.x /24")
    with pytest.raises(Net9Error, match="^bad arg in system call$"):
        ifc.ctl("add")
    with pytest.raises(Net9Error, match="^address not on this interface$"):
        ifc.ctl("remove 10.9.9.9 /24")
    ifc.ctl("remove 10.2.0.1 /8")
    assert len(ifc.lifcs) == 1
    # mtu within the medium's mintu..maxtu (ipifcsetmtu)
    with pytest.raises(Net9Error, match="^bad arg in system call$"):
        ifc.ctl("mtu 9000")
    with pytest.raises(Net9Error, match="^bad arg in system call$"):
        ifc.ctl("mtu 67")
    ifc.ctl("mtu 1280")
    assert ifc.mtu == 1280 and "maxtu 1280" in ifc.statustext()
    # "add" with an mtu sets it too
    ifc.ctl("add 10.3.0.1 /16 10.3.0.0 576")
    assert ifc.mtu == 576
    with pytest.raises(Net9Error, match="^unsupported ctl$"):
        ifc.ctl("frob")
    ifc.ctl("delay 5000")
    assert ifc.delay == 1000
    ifc.ctl("ra6 mflag 1 maxraint 700000")
    assert ifc.rp["mflag"] == 1 and "maxraint 700000" in ifc.statustext()
    with pytest.raises(Net9Error, match="^bad arg in system call$"):
        ifc.ctl("ra6 mflag")
    # generic conversation messages reach ipifc too
    ifc.ctl("ttl 5")
    # unbound interfaces: a fresh ipifc conversation
    c = ip.ipifc.clone("u")
    with pytest.raises(Net9Error, match="^interface not bound$"):
        ip.ipifc.ctl(c, "mtu 1500")
    with pytest.raises(Net9Error, match="^interface not bound$"):
        ip.ipifc.ctl(c, "add 1.2.3.4 /8")
    with pytest.raises(Net9Error, match="^unknown interface type$"):
        ip.ipifc.ctl(c, "bind frob")
    ip.mediatypes["sink"] = lambda ifc_, argv: Sink(name="ignored")
    ip.ipifc.ctl(c, "bind sink")
    x = c.ptcl
    assert x.dev == "sink%d" % c.x and x.bound
    with pytest.raises(Net9Error, match="^interface already bound$"):
        ip.ipifc.ctl(c, "bind sink")
    # connect: removes all addresses then adds one; only once (devip state)
    ip.ipifc.ctl(c, "add 192.168.5.1 /24")
    ip.ipifc.ctl(c, "connect 192.168.6.1 /24")
    assert x.addresses() == [("192.168.6.1", "/120", "192.168.6.0")]
    with pytest.raises(Net9Error, match="^connection in use$"):
        ip.ipifc.ctl(c, "connect 192.168.7.1 /24")
    # unbind removes addresses, routes and the device name
    ip.ipifc.ctl(c, "unbind")
    assert not x.bound and x.dev == "" and x.lifcs == []
    assert not [r for r in ip.routes() if r["ifc"] == c.x]
    with pytest.raises(Net9Error, match="^interface not bound$"):
        ip.ipifc.ctl(c, "unbind")


# ---------------------------------------------------------------- routes

def test_routes_longest_prefix_gateway_delete_noroute():
    fs, ip, ifc, sink = host()
    ip.addroute("0.0.0.0", 0, gate="10.0.0.254")
    ip.addroute("192.168.0.0", 16, gate="10.0.0.253")
    ip.addroute("192.168.1.0", 24, gate="10.0.0.252")
    assert ip.lookup("192.168.1.5")["gate"] == "10.0.0.252"
    assert ip.lookup("192.168.2.5")["gate"] == "10.0.0.253"
    assert ip.lookup("8.8.8.8")["gate"] == "10.0.0.254"
    r = ip.lookup("10.0.0.7")
    assert (r["type"], r["dst"], r["mask"]) == ("4i", "10.0.0.0", "/120")
    # route(): (maxtu - hsize, direct): direct only for interface/unicast routes
    assert ip.route(4, parseip("192.168.1.5"), parseip("10.0.0.1")) == (1500, False)
    assert ip.route(4, parseip("10.0.0.9"), parseip("10.0.0.1")) == (1500, True)
    assert ip.route(4, parseip("10.0.0.1"), parseip("10.0.0.1")) == (1500, True)
    # the user's routes carry tag "none" and the interface number
    line = [l for l in ip.iproutetext().splitlines() if l.startswith("192.168.1.0")][0]
    assert line == "%-15s %-4s %-15s %-4s %4.4s %3s %-15s %-4s" % (
        "192.168.1.0", "/120", "10.0.0.252", "4", "none", "0", "0.0.0.0", "/96")
    # replacing: same target, new gateway (copygate)
    ip.addroute("192.168.1.0", 24, gate="10.0.0.251")
    assert ip.lookup("192.168.1.5")["gate"] == "10.0.0.251"
    assert len([r for r in ip.routes() if r["dst"] == "192.168.1.0"]) == 1
    # delete: back to the /16, then no default: no route
    assert ip.delroute("192.168.1.0", 24)
    assert ip.lookup("192.168.1.5")["gate"] == "10.0.0.253"
    assert not ip.delroute("192.168.1.0", 24)
    assert ip.delroute("0.0.0.0", 0, gate="10.0.0.254")
    assert ip.lookup("8.8.8.8") is None
    assert ip.route(4, parseip("8.8.8.8"), parseip("10.0.0.1")) is None
    before = ip.stats()
    n = len(sink.sent)
    assert ip.ipoput(4, v4dgram("10.0.0.1", "8.8.8.8", P, b"x"), 255, 0, None) == -1
    assert delta(ip, before) == {"OutRequests": 1, "OutNoRoutes": 1}
    assert len(sink.sent) == n
    # through a gateway the datagram leaves by the gateway's interface
    assert ip.ipoput(4, v4dgram("10.0.0.1", "192.168.2.9", P, b"x"), 255, 0, None) == 0
    assert sink.sent[-1][16:20] == bytes([192, 168, 2, 9])
    # no interface on the gateway's net
    with pytest.raises(Net9Error, match="^interface not found$"):
        ip.addroute("172.16.0.0", 12, gate="172.31.0.1")
    # an explicit interface (number)
    ip.addroute("172.16.0.0", 12, gate="172.31.0.1", ifc=0)
    assert ip.lookup("172.16.1.1")["ifc"] == 0


def test_routes_v6_and_source_specific():
    fs, ip, ifc, sink = host(addrs=[("fd00::1", 64), ("10.0.0.1", 24)])
    ip.addroute("::", 0, gate="fd00::fe")
    ip.addroute("2001:db8::", 32, gate="fd00::fd")
    assert ip.lookup("2001:db8::1")["gate"] == "fd00::fd"
    assert ip.lookup("2002::1")["gate"] == "fd00::fe"
    # v4 and v6 routes are separate (a v6 default does not take v4)
    assert ip.lookup("8.8.8.8") is None
    assert ip.route(6, parseip("2002::1"), parseip("fd00::1")) == (1500, False)
    # a source specific route wins only for its source (v4lookup's Rsrc)
    ip.addroute("2002::", 16, gate="fd00::fc", src="fd00::1", smask=128)
    assert ip.lookup("2002::1", "fd00::1")["gate"] == "fd00::fc"
    assert ip.lookup("2002::1", "fd00::2")["gate"] == "fd00::fe"
    # ipoput6 uses the source in the datagram
    assert ip.ipoput(6, v6dgram("fd00::1", "2002::5", P, b"z"), 255, 0, None) == 0
    before = ip.stats()
    ip.delroute("::", 0)
    assert ip.ipoput(6, v6dgram("fd00::7", "2003::5", P, b"z"), 255, 0, None) == -1
    assert delta(ip, before) == {"OutRequests": 1, "OutNoRoutes": 1}


def test_flush_and_routewrite():
    fs, ip, ifc, sink = host()
    assert ip.routewrite("add 192.168.0.0 255.255.0.0 10.0.0.253") == "none"
    assert ip.routewrite("tag abcd") == "abcd"
    ip.routewrite("add 172.16.0.0 /12 10.0.0.252", tag="abcd")
    tags = {r["dst"]: r["tag"] for r in ip.routes()}
    assert tags["192.168.0.0"] == "none" and tags["172.16.0.0"] == "abcd"
    for msg, err in [("", "short control request"),
                     ("add 1.2.3.4", "bad process or channel control request"),
                     ("frob", "bad process or channel control request"),
                     ("add 1.2.3.x /8 10.0.0.1", "bad ip address syntax"),
                     ("add 8.0.0.0 /8 172.31.0.1", "interface not found"),
                     ("tag", "bad arg in system call"),
                     ("add 8.0.0.0 /8 10.0.0.1 4q 0 0.0.0.0 /0", "bad process or channel control request")]:
        with pytest.raises(Net9Error) as e:
            ip.routewrite(msg)
        assert str(e.value) == err, msg
    # flush with a tag removes only those; flush removes every non-interface route
    ip.routewrite("flush abcd")
    assert "172.16.0.0" not in {r["dst"] for r in ip.routes()}
    assert "192.168.0.0" in {r["dst"] for r in ip.routes()}
    ip.routewrite("del 192.168.0.0 /16 10.0.0.253")
    assert "192.168.0.0" not in {r["dst"] for r in ip.routes()}
    ip.routewrite("add 192.168.0.0 /16 10.0.0.253")
    ip.routewrite("flush")
    # (devip's flush keeps only Rifc routes: the self routes go too)
    assert {r["type"] for r in ip.routes()} == {"4i"}


def test_unbind_flushes_routes():
    fs, ip, ifc, sink = host()
    ip.addroute("0.0.0.0", 0, gate="10.0.0.254")
    ifc.unbind()
    assert ip.routes() == []
    assert ip.lookup("8.8.8.8") is None
    assert ip.findlocalip(parseip("8.8.8.8")) == bytes(16)


# ---------------------------------------------------------------- findlocalip

def test_findlocalip_v4():
    # ipifc.c findlocalip: v4source (the best route whose interface has an
    # address; the one closest to the gateway or the remote), else the
    # first v4 address (findprimaryipv4), else ::
    fs = Fs()
    ip = Ip(fs)
    assert ip.findlocalip(parseip("10.0.0.9")) == bytes(16)
    i0 = ip.addifc(Sink(name="s0"))
    i1 = ip.addifc(Sink(name="s1"))
    i0.add("10.0.0.1", 24)
    i0.add("10.0.1.1", 24)
    i1.add("172.16.5.1", 16)
    def L(a):
        return fmtip(ip.findlocalip(parseip(a)))
    assert L("10.0.0.9") == "10.0.0.1"
    assert L("10.0.1.9") == "10.0.1.1"
    assert L("172.16.9.9") == "172.16.5.1"
    assert L("8.8.8.8") == "10.0.0.1"          # no route: first v4 address
    ip.addroute("0.0.0.0", 0, gate="172.16.0.1")
    assert L("8.8.8.8") == "172.16.5.1"        # the gateway's interface
    ip.addroute("9.0.0.0", 8, gate="10.0.1.254")
    assert L("9.1.2.3") == "10.0.1.1"          # closest to the gateway on i0
    # equally close addresses: the first one configured (ipv4local's a > b)
    i2 = ip.addifc(Sink(name="s2"))
    i2.add("10.0.4.1", 25)
    i2.add("10.0.4.129", 25)
    ip.addroute("11.0.0.0", 8, gate="10.0.5.1", ifc=i2)
    assert L("11.1.2.3") == "10.0.4.1"
    # a connecting TCP conversation takes it (Fsstdconnect -> setladdr)
    from net9.tcp import TcpProto
    tcp = TcpProto(fs)
    c = tcp.clone("u")
    try:
        tcp.ctl(c, "connect 9.9.9.9!80")
    except Net9Error:
        pass
    assert fmtip(c.localaddr) == "10.0.1.1"


def test_findlocalip_v6():
    # v6source with ipv6local's scope rules; findprimaryipv6 prefers
    # global > ULA > link-local (v6addrtype)
    fs = Fs()
    ip = Ip(fs)
    assert ip.findlocalip(parseip("2001:db8::9")) == bytes(16)
    ifc = ip.addifc(Sink())
    ifc.add("fe80::1", 64)
    def L(a):
        return fmtip(ip.findlocalip(parseip(a)))
    assert L("2600::1") == "fe80::1"
    ifc.add("fd00::1", 64)
    assert L("2600::1") == "fd00::1"
    ifc.add("2001:db8::1", 64)
    assert L("2600::1") == "2001:db8::1"
    assert L("2001:db8::9") == "2001:db8::1"
    assert L("fd00::9") == "fd00::1"
    assert L("fe80::9") == "fe80::1"
    ip.addroute("2600::", 16, gate="fd00::fe")
    assert L("2600::1") == "2001:db8::1"       # global remote: global address
    ip.addroute("fd01::", 16, gate="fd00::fe")
    assert L("fd01::1") == "fd00::1"           # ULA remote: longest common prefix
    # the link-local address has only the source-specific interface route
    assert [r["src"] for r in ip.routes() if r["dst"] == "fe80::" and r["type"] == "6i"] == ["fe80::1"]


# ---------------------------------------------------------------- IPv4 input

def rec_host():
    fs, ip, ifc, sink = host()
    rec = Rec(fs, "rec", P)
    return fs, ip, ifc, sink, rec


def test_v4_input_header_checks_count_and_drop():
    # ip.c ipiput4: each malformed datagram counts once in InReceives and
    # once in InHdrErrors and is dropped; nothing reaches the protocol
    fs, ip, ifc, sink, rec = rec_host()
    good = ip4("10.0.0.9", "10.0.0.1", P, b"hello world 1234")
    cases = {
        "empty": b"",
        "runt": good[:19],
        "version 5": ip4("10.0.0.9", "10.0.0.1", P, b"hello", version=5),
        "version 0": ip4("10.0.0.9", "10.0.0.1", P, b"hello", version=0),
        "ihl 4": ip4("10.0.0.9", "10.0.0.1", P, b"hello world 1234", ihl=4),
        "ihl beyond buffer": ip4("10.0.0.9", "10.0.0.1", P, b"hello", ihl=15),
        "checksum": ip4("10.0.0.9", "10.0.0.1", P, b"hello", badsum=True),
        "length below ihl": ip4("10.0.0.9", "10.0.0.1", P, b"hello", total=19),
        "length beyond buffer": ip4("10.0.0.9", "10.0.0.1", P, b"hello", total=26),
    }
    for name, pkt in cases.items():
        before = ip.stats()
        e = ifc.errin
        ip.input(ifc, pkt)
        assert delta(ip, before) == {"InReceives": 1, "InHdrErrors": 1}, name
        assert ifc.errin == e + 1, name
    assert rec.got == []
    before = ip.stats()
    ip.input(ifc, good)
    assert delta(ip, before) == {"InReceives": 1, "InDelivers": 1}
    assert rec.got == [good]


def test_v4_input_addresses():
    fs, ip, ifc, sink, rec = rec_host()
    # for another host: dropped (no forwarding), counted in InAddrErrors
    before = ip.stats()
    ip.input(ifc, ip4("10.0.0.9", "10.0.0.99", P, b"x"))
    assert delta(ip, before) == {"InReceives": 1, "InAddrErrors": 1}
    assert rec.got == []
    # broadcasts and 224.0.0.1 are in the self table
    for dst in ("10.0.0.255", "255.255.255.255", "224.0.0.1", "10.255.255.255"):
        ip.input(ifc, ip4("10.0.0.9", dst, P, b"x"))
    assert len(rec.got) == 4
    # an interface with 0.0.0.0 accepts everything (acceptall)
    ifc.add("0.0.0.0", 32, remote="0.0.0.0")
    ip.input(ifc, ip4("10.0.0.9", "1.2.3.4", P, b"x"))
    assert len(rec.got) == 5


def test_v4_options_stripped_and_trimmed():
    fs, ip, ifc, sink, rec = rec_host()
    opts = b"\x01\x01\x01\x00"         # NOP NOP NOP EOL
    pkt = ip4("10.0.0.9", "10.0.0.1", P, b"payload!", options=opts, ttl=9, tos=0x10, ident=4242)
    ip.input(ifc, pkt + b"trailing garbage")
    got = rec.got[-1]
    assert got[0] == 0x45
    assert struct.unpack("!H", got[2:4])[0] == 28 == len(got)
    assert got[20:] == b"payload!"
    assert got[12:20] == pkt[12:20] and got[8] == 9 and got[1] == 0x10
    assert struct.unpack("!H", got[4:6])[0] == 4242
    assert cksum(got[:20]) == 0
    # without options a longer buffer is trimmed to the IP length
    pkt = ip4("10.0.0.9", "10.0.0.1", P, b"abc")
    ip.input(ifc, bytearray(pkt + b"\0" * 7))
    assert rec.got[-1] == pkt


def test_v4_unknown_protocol_answers_protocol_unreachable():
    # ip.c counts InUnknownProtos and InDiscards; net9 also answers with
    # ICMP unreachable code 2 (icmp.c icmpsend: quote MIN(osz, v4MINTU 68
    # - 28) = 40 bytes, not for broadcasts or multicasts)
    h = Host("x", 1)
    h.end = sink = Sink()
    h.ifc = h.ip.addifc(sink)
    h.ifc.add("10.0.0.1", 24)
    pkt = ip4("10.0.0.9", "10.0.0.1", 200, bytes(range(60)))
    before = h.ip.stats()
    h.input(pkt)
    assert delta(h.ip, before) == {"InReceives": 1, "InUnknownProtos": 1, "InDiscards": 1,
                                   "OutRequests": 1}
    r = sink.sent[-1]
    assert len(r) == 20 + 8 + 40
    assert r[9] == 1 and r[12:16] == bytes([10, 0, 0, 1]) and r[16:20] == bytes([10, 0, 0, 9])
    assert (r[20], r[21]) == (3, 2)
    assert r[28:] == pkt[:40]
    assert cksum(r[20:]) == 0 and cksum(r[:20]) == 0
    assert h.icmp.typecounts(3) == (0, 1)
    n = len(sink.sent)
    h.input(ip4("10.0.0.9", "10.0.0.255", 200, b"x"))
    h.input(ip4("10.0.0.9", "224.0.0.1", 200, b"x"))
    assert len(sink.sent) == n


# ---------------------------------------------------------------- IPv6 input

def rec6_host():
    fs, ip, ifc, sink = host(addrs=[("fd00::1", 64), ("10.0.0.1", 24)])
    rec = Rec(fs, "rec", P)
    return fs, ip, ifc, sink, rec


def test_v6_input_checks():
    fs, ip, ifc, sink, rec = rec6_host()
    good = ip6("fd00::9", "fd00::1", P, b"payload")
    for name, pkt in {"runt": good[:39],
                      "version 7": ip6("fd00::9", "fd00::1", P, b"x", version=7),
                      "payload length beyond buffer": ip6("fd00::9", "fd00::1", P, b"x", plen=2)}.items():
        before = ip.stats()
        ip.input(ifc, pkt)
        assert delta(ip, before) == {"InReceives": 1, "InHdrErrors": 1}, name
    before = ip.stats()
    ip.input(ifc, ip6("fd00::9", "fd00::99", P, b"x"))
    assert delta(ip, before) == {"InReceives": 1, "InAddrErrors": 1}
    ip.input(ifc, good + b"xyz")                # trimmed
    ip.input(ifc, ip6("fd00::9", "ff02::1", P, b"m"))
    assert rec.got == [good, ip6("fd00::9", "ff02::1", P, b"m")]
    before = ip.stats()
    ip.input(ifc, ip6("fd00::9", "ff02::2", P, b"m"))
    assert delta(ip, before) == {"InReceives": 1, "InAddrErrors": 1}


def test_v6_extension_headers_removed():
    # hop-by-hop, routing (segments left 0) and destination options are
    # skipped; the transport sees a 40-byte header naming it
    fs, ip, ifc, sink, rec = rec6_host()
    chain = ext(43, 0, b"") + ext(60, 1, b"\0\0") + ext(P, 0)
    pkt = ip6("fd00::9", "fd00::1", 0, chain + b"data!")
    ip.input(ifc, pkt)
    got = rec.got[-1]
    assert got == ip6("fd00::9", "fd00::1", P, b"data!")
    # a header that runs past the datagram: InHdrErrors and InDiscards (procxtns)
    before = ip.stats()
    ip.input(ifc, ip6("fd00::9", "fd00::1", 0, bytes([P, 3]) + b"\0" * 6))
    assert delta(ip, before) == {"InReceives": 1, "InHdrErrors": 1, "InDiscards": 1}


def test_v6_unknown_next_header_parameter_problem():
    h = Host("x", 1)
    sink = Sink()
    h.ifc = h.ip.addifc(sink)
    h.ifc.add("fd00::1", 64)
    pkt = ip6("fd00::9", "fd00::1", 0, ext(200, 0) + b"zz")
    before = h.ip.stats()
    h.input(pkt)
    assert delta(h.ip, before) == {"InReceives": 1, "InUnknownProtos": 1, "InDiscards": 1,
                                   "OutRequests": 1}
    r = sink.sent[-1]
    assert r[6] == 58 and r[40:42] == bytes([4, 1])             # parameter problem, code 1
    assert struct.unpack("!I", r[44:48])[0] == 40               # the hop-by-hop's next header
    assert r[48:] == pkt and r[24:40] == parseip("fd00::9")
    # "no next header" (59) is dropped silently
    n = len(sink.sent)
    h.input(ip6("fd00::9", "fd00::1", 59, b""))
    assert len(sink.sent) == n


# ---------------------------------------------------------------- fragmentation (output)

def test_v4_fragmentation_to_mtu():
    # ip.c ipoput4: seglen = (medialen - hlen) & ~7 = (576-20)&~7 = 552;
    # 2980 data bytes = 5*552 + 220: six fragments, one id, MF but last
    fs, ip, ifc, sink = host(mtu=576)
    payload = random.Random(3).randbytes(2980)
    before = ip.stats()
    assert ip.ipoput(4, v4dgram("10.0.0.1", "10.0.0.9", P, payload), 64, 0x20, None) == 0
    assert delta(ip, before) == {"OutRequests": 1, "FragOKs": 1, "FragCreates": 6}
    fr = sink.sent
    assert [len(f) for f in fr] == [572] * 5 + [240]
    offs = [(struct.unpack("!H", f[6:8])[0] & 0x1FFF) * 8 for f in fr]
    assert offs == [0, 552, 1104, 1656, 2208, 2760]
    assert [bool(struct.unpack("!H", f[6:8])[0] & 0x2000) for f in fr] == [True] * 5 + [False]
    assert len({f[4:6] for f in fr}) == 1
    assert all(cksum(f[:20]) == 0 and f[8] == 64 and f[1] == 0x20 for f in fr)
    assert all(struct.unpack("!H", f[2:4])[0] == len(f) for f in fr)
    assert b"".join(f[20:] for f in fr) == payload
    # DF: FragFails and OutDiscards, nothing sent
    d = v4dgram("10.0.0.1", "10.0.0.9", P, payload)
    d[6] = 0x40
    before = ip.stats()
    n = len(sink.sent)
    assert ip.ipoput(4, d, 64, 0, None) == 0
    assert delta(ip, before) == {"OutRequests": 1, "FragFails": 1, "OutDiscards": 1}
    assert len(sink.sent) == n
    # a datagram that fits is not fragmented: id from the counter, frag 0
    ip.ipoput(4, v4dgram("10.0.0.1", "10.0.0.9", P, b"x" * 556), 64, 0, None)
    assert len(sink.sent[-1]) == 576 and sink.sent[-1][6:8] == b"\0\0"
    # too large for IP at all
    before = ip.stats()
    ip.ipoput(4, v4dgram("10.0.0.1", "10.0.0.9", P, b"x" * 65516), 64, 0, None)
    assert delta(ip, before) == {"OutRequests": 1, "OutDiscards": 1}


def test_v4_fragmentation_seglen_too_small():
    fs, ip, ifc, sink = host(mtu=27, mintu=0)
    before = ip.stats()
    ip.ipoput(4, v4dgram("10.0.0.1", "10.0.0.9", P, b"x" * 20), 64, 0, None)
    assert delta(ip, before) == {"OutRequests": 1, "FragFails": 1, "OutDiscards": 1}
    assert sink.sent == []


def test_v6_fragmentation_to_mtu():
    # ipv6.c ipoput6: seglen = (1280 - (40 + 8)) & ~7 = 1232; 2960 bytes =
    # 2*1232 + 496; fragment header: next header, offset|M, id
    fs, ip, ifc, sink = host(mtu=1280, addrs=[("fd00::1", 64)])
    payload = random.Random(4).randbytes(2960)
    assert ip.ipoput(6, v6dgram("fd00::1", "fd00::9", P, payload), 64, 0, None) == 0
    fr = sink.sent
    assert [len(f) for f in fr] == [1280, 1280, 40 + 8 + 496]
    assert all(f[6] == 44 and f[40] == P for f in fr)
    offm = [struct.unpack("!H", f[42:44])[0] for f in fr]
    assert [o & ~7 for o in offm] == [0, 1232, 2464] and [o & 1 for o in offm] == [1, 1, 0]
    assert len({f[44:48] for f in fr}) == 1
    assert all(struct.unpack("!H", f[4:6])[0] == len(f) - 40 for f in fr)
    assert b"".join(f[48:] for f in fr) == payload
    assert ip.stat("FragCreates") == 3 and ip.stat("FragOKs") == 1


@pytest.mark.parametrize("v6", [False, True])
def test_fragments_cross_the_link_and_reassemble(v6):
    net = Net(mtu=576)
    rec = Rec(net.b.fs, "rec", P)
    payload = random.Random(5).randbytes(5000)
    if v6:
        d = v6dgram("fd00::1", "fd00::2", P, payload)
    else:
        d = v4dgram("10.0.0.1", "10.0.0.2", P, payload)
    net.a.ip.ipoput(6 if v6 else 4, d, 64, 0, None)
    net.run(max_ms=10)
    assert len(rec.got) == 1
    assert rec.got[0][40 if v6 else 20:] == payload
    assert net.b.ip.stat("ReasmOKs") == 1 and net.b.ip.stat("ReasmReqds") == 1
    assert net.b.ip.stat("InDelivers") == 1
    assert net.a.ip.stat("FragCreates") > 1


# ---------------------------------------------------------------- reassembly

def v4frags(payload, ident=9, sizes=None):
    pkt = ip4("10.0.0.9", "10.0.0.1", P, payload, ident=ident)
    if sizes is None:
        sizes = [64] * (len(payload) // 64 + 1)
    return pkt, frags4(pkt, sizes)


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(1, 6))
def test_v4_reassembly_any_order_with_duplicates(rnd, ndup):
    fs, ip, ifc, sink, rec = rec_host()
    payload = bytes(rnd.randrange(256) for _ in range(1000))
    pkt, fr = v4frags(payload)
    fr = fr + [rnd.choice(fr) for _ in range(ndup)]
    rnd.shuffle(fr)
    for f in fr:
        ip.input(ifc, f)
    assert len(rec.got) == 1
    got = rec.got[0]
    assert got[20:] == payload
    assert struct.unpack("!H", got[2:4])[0] == len(got) and got[6:8] == b"\0\0"
    assert cksum(got[:20]) == 0
    assert ip.stat("ReasmOKs") == 1
    # duplicates after completion start a new (never completed) reassembly
    assert ip.stat("ReasmReqds") >= 1
    assert ip.stat("InDelivers") == 1


def test_v4_reassembly_overlaps_new_data_wins():
    # ip4reassemble: a new fragment cuts the tail of the one before it and
    # the head of those after it; one wholly inside the previous is dropped
    def run(order):
        fs, ip, ifc, sink, rec = rec_host()
        parts = {"A": (0, b"A" * 16, True), "B": (8, b"B" * 16, True), "C": (24, b"C" * 8, False),
                 "D": (8, b"D" * 8, True)}
        for k in order:
            off, data, mf = parts[k]
            ip.input(ifc, frag4("10.0.0.9", "10.0.0.1", P, 7, off, data, mf))
        return rec.got[0][20:] if rec.got else None
    assert run("ABC") == b"A" * 8 + b"B" * 16 + b"C" * 8
    assert run("BAC") == b"A" * 16 + b"B" * 8 + b"C" * 8
    assert run("CBA") == b"A" * 16 + b"B" * 8 + b"C" * 8
    assert run("AD") is None                      # incomplete
    # D (8..16) lies inside A (0..16): dropped; A's bytes stay
    assert run("ADBC") == b"A" * 8 + b"B" * 16 + b"C" * 8
    assert run("ABDC") == b"A" * 8 + b"D" * 8 + b"B" * 8 + b"C" * 8


def test_v4_reassembly_timeout():
    fs, ip, ifc, sink, rec = rec_host()
    pkt, fr = v4frags(b"x" * 300)
    ip.input(ifc, fr[0])
    ip.input(ifc, fr[1])
    assert len(ip.reasms) == 1
    # the reassembly timer is visible to the event loop (Fragtimeout 30 s)
    assert fs.nextdeadline() == 30000
    fs.advance(29999)
    assert len(ip.reasms) == 1 and ip.stat("ReasmTimeout") == 0
    fs.advance(30000)
    assert len(ip.reasms) == 0 and ip.stat("ReasmTimeout") == 1
    assert ip.reasmbytes == 0 and fs.nextdeadline() is None
    for f in fr[2:]:
        ip.input(ifc, f)
    assert rec.got == [] and ip.stat("ReasmReqds") == 2


def test_v4_reassembly_count_bound():
    # at most 64 reassemblies: the oldest makes room (ipfragallo4), counted
    # in ReasmFails
    fs, ip, ifc, sink, rec = rec_host()
    for ident in range(70):
        ip.input(ifc, frag4("10.0.0.9", "10.0.0.1", P, ident, 0, b"z" * 64, True))
    assert len(ip.reasms) == 64
    assert ip.stat("ReasmFails") == 6 and ip.stat("ReasmReqds") == 70
    idents = sorted(struct.unpack("!H", k[3])[0] for k in ip.reasms)
    assert idents == list(range(6, 70))
    # the survivors still complete
    ip.input(ifc, frag4("10.0.0.9", "10.0.0.1", P, 69, 64, b"y" * 8, False))
    assert rec.got and rec.got[0][20:] == b"z" * 64 + b"y" * 8


def test_v4_reassembly_byte_bound():
    fs, ip, ifc, sink, rec = rec_host()
    assert ip.maxreasmbytes == 1 << 20
    for ident in range(40):
        ip.input(ifc, frag4("10.0.0.9", "10.0.0.1", P, ident, 0, b"q" * 30000, True))
        assert ip.reasmbytes <= 1 << 20
    # 34 reassemblies of 30020 bytes fit in 1 MiB
    assert len(ip.reasms) == (1 << 20) // 30020
    assert ip.stat("ReasmFails") == 40 - len(ip.reasms)
    assert ip.reasmbytes == sum(r.nbytes for r in ip.reasms.values())
    # a fragment that can never fit in 64 KiB is refused
    before = ip.stats()
    ip.input(ifc, frag4("10.0.0.9", "10.0.0.1", P, 999, 65512, b"w" * 8, False))
    d = delta(ip, before)
    assert d["ReasmFails"] == 1 and "ReasmReqds" not in d


def test_v4_fragment_with_options():
    fs, ip, ifc, sink, rec = rec_host()
    a = ip4("10.0.0.9", "10.0.0.1", P, b"1" * 16, ident=5, frag=0x2000, options=b"\x01" * 4)
    b = ip4("10.0.0.9", "10.0.0.1", P, b"2" * 5, ident=5, frag=2)
    ip.input(ifc, a)
    ip.input(ifc, b)
    assert rec.got[0][0] == 0x45 and rec.got[0][20:] == b"1" * 16 + b"2" * 5


@settings(max_examples=40, deadline=None)
@given(st.randoms(use_true_random=False))
def test_v6_reassembly_any_order_with_extension_headers(rnd):
    # ip6reassemble: the unfragmentable part (here a hop-by-hop header)
    # comes from the first fragment; a destination options header in the
    # fragmentable part is skipped after reassembly
    fs, ip, ifc, sink, rec = rec6_host()
    payload = ext(P, 0) + bytes(rnd.randrange(256) for _ in range(700))
    pieces = []
    off = 0
    while off < len(payload):
        n = min(96, len(payload) - off)
        pieces.append(frag6("fd00::9", "fd00::1", 60, 0xABCD, off, payload[off:off + n],
                            off + n < len(payload), pre=ext(44, 0), prenh=0))
        off += n
    pieces += [rnd.choice(pieces)]
    rnd.shuffle(pieces)
    for p in pieces:
        ip.input(ifc, p)
    assert len(rec.got) == 1
    assert rec.got[0] == ip6("fd00::9", "fd00::1", P, payload[8:])
    assert ip.stat("ReasmOKs") == 1


def test_v6_atomic_fragment_timeout_and_errors():
    fs, ip, ifc, sink, rec = rec6_host()
    # offset 0 and no M: delivered at once without the fragment header
    ip.input(ifc, frag6("fd00::9", "fd00::1", P, 1, 0, b"atomic", False))
    assert rec.got == [ip6("fd00::9", "fd00::1", P, b"atomic")]
    assert ip.stat("ReasmReqds") == 0
    ip.input(ifc, frag6("fd00::9", "fd00::1", P, 2, 0, b"p" * 16, True))
    assert fs.nextdeadline() == 30000
    fs.advance(30000)
    assert ip.stat("ReasmTimeout") == 1 and not ip.reasms
    # a fragment header naming another fragment header (unfraglen: -1)
    before = ip.stats()
    ip.input(ifc, frag6("fd00::9", "fd00::1", 44, 3, 0, b"\0" * 16, True))
    assert delta(ip, before) == {"InReceives": 1, "InHdrErrors": 1, "InDiscards": 1}


# ---------------------------------------------------------------- TCP over IP

def connect(net, v6, port=80):
    A, B = net.a, net.b
    lc = B.tcp.clone("u")
    B.tcp.ctl(lc, "announce %d" % port)
    c = A.tcp.clone("u")
    A.tcp.ctl(c, "connect %s!%d" % ("fd00::2" if v6 else "10.0.0.2", port))
    assert net.run(lambda: c.state != ConvState.Connecting, 10_000)
    assert A.tcp.connectresult(c) is True
    calls = []
    assert net.run(lambda: calls.append(B.tcp.takecall(lc)) or calls[-1] is not None, 1000)
    return c, calls[-1]


@pytest.mark.parametrize("mtu", [576, 65535])
@pytest.mark.parametrize("v6", [False, True])
def test_tcp_transfer_through_ip(mtu, v6):
    # tcp.c tcpmtu: mss = route mtu - (IP + TCP headers); the segments fit
    # the interface, so the IP layer never fragments
    net = Net(mtu=mtu)
    c, call = connect(net, v6)
    mss = mtu - (60 if v6 else 40)
    assert net.a.tcp.tcb(c).mss == mss
    data = random.Random(mtu).randbytes(300_000)
    rx = bytearray()
    sent = 0

    def pump():
        nonlocal sent
        while sent < len(data) and not c.wq.flow:
            n = min(len(data) - sent, 65536)
            net.a.tcp.write(c, data[sent:sent + n])
            sent += n
        while True:
            r = net.b.tcp.read(call, 1 << 20)
            if not r:
                break
            rx.extend(r)
        return len(rx) >= len(data)
    assert net.run(pump, 600_000)
    assert bytes(rx) == data
    for h in (net.a, net.b):
        assert h.ip.stat("FragCreates") == 0 and h.ip.stat("ReasmReqds") == 0
        assert h.ip.stat("InHdrErrors") == 0 and h.ip.stat("OutNoRoutes") == 0
    biggest = max(len(p) for t, s, p in net.log if s == "a")
    assert biggest == mtu if mtu == 576 else biggest > 60000
    # and back
    net.b.tcp.write(call, b"bye")
    got = bytearray()
    assert net.run(lambda: got.extend(net.a.tcp.read(c, 100) or b"") or got == b"bye", 10_000)


def test_tcp_connect_no_route():
    # tcp.c: ipoput returns -1 on the first SYN: localclose(Enoroute);
    # the connect fails at once with "no route" (devip.md 3.7)
    net = Net()
    c = net.a.tcp.clone("u")
    with pytest.raises(Net9Error, match="^no route$"):
        net.a.tcp.ctl(c, "connect 192.168.7.7!80")
    assert net.a.ip.stat("OutNoRoutes") == 1
    c6 = net.a.tcp.clone("u")
    with pytest.raises(Net9Error, match="^no route$"):
        net.a.tcp.ctl(c6, "connect 2001:db8::7!80")


# ---------------------------------------------------------------- fuzz

def _fuzzhost():
    from net9.icmp import Icmp, Icmp6
    from net9.tcp import TcpProto
    fs, ip, ifc, sink = host(addrs=[("10.0.0.1", 24), ("fd00::1", 64)])
    TcpProto(fs)
    Icmp(fs)
    Icmp6(fs)
    rec = Rec(fs, "rec", P)
    return fs, ip, ifc, sink, rec


FUZZ = _fuzzhost()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=120))
def test_fuzz_input_arbitrary_bytes(data):
    fs, ip, ifc, sink, rec = FUZZ
    before = ip.stat("InReceives")
    ip.input(ifc, data)
    assert ip.stat("InReceives") == before + 1


def mutated(rnd, dst4="10.0.0.1", dst6="fd00::1"):
    """A datagram to dst4 or dst6 (tcp, udp, icmp, icmpv6, a
    fragment, extension headers, anything) with a few bytes changed."""
    version = rnd.choice([4, 6])
    proto = rnd.choice([1, 6, 17, 58, 0, 44, 60, 43, P, rnd.randrange(256)])
    payload = bytes(rnd.randrange(256) for _ in range(rnd.randrange(80)))
    if version == 4:
        pkt = bytearray(ip4("10.0.0.9", dst4, proto, payload, frag=rnd.choice([0, 0, 0x2000, 5])))
    else:
        pkt = bytearray(ip6("fd00::9", dst6, proto, payload))
    for _ in range(rnd.randrange(4)):
        pkt[rnd.randrange(len(pkt))] = rnd.randrange(256)
    if rnd.random() < 0.1:
        pkt = pkt[:rnd.randrange(len(pkt) + 1)]
    return bytes(pkt)


@settings(max_examples=300, deadline=None)
@given(st.randoms(use_true_random=False))
def test_fuzz_input_mutated_headers(rnd):
    fs, ip, ifc, sink, rec = FUZZ
    before = ip.stat("InReceives")
    ip.input(ifc, mutated(rnd))
    assert ip.stat("InReceives") == before + 1


def test_fuzz_counters_move_and_connection_survives():
    # a few thousand malformed datagrams into b while a connection is
    # established: nothing raises, the error counters move, and the
    # connection still carries data afterwards
    net = Net()
    c, call = connect(net, False)
    rnd = random.Random(11)
    before = net.b.ip.stats()
    for i in range(3000):
        if i % 3 == 0:
            net.b.input(bytes(rnd.randrange(256) for _ in range(rnd.randrange(100))))
        else:
            net.b.input(mutated(rnd, "10.0.0.2", "fd00::2"))
    net.deliver()
    d = delta(net.b.ip, before)
    assert d["InReceives"] == 3000
    for k in ("InHdrErrors", "InAddrErrors", "InDelivers", "InUnknownProtos", "ReasmReqds"):
        assert d.get(k, 0) > 0, k
    assert net.b.tcp.stat("InErrs") > 0 or net.b.tcp.stat("InSegs") > 0
    net.a.tcp.write(c, b"still here")
    got = bytearray()
    assert net.run(lambda: got.extend(net.b.tcp.read(call, 100) or b"") or got == b"still here", 10_000)


def test_route_hint_of_a_conversation_follows_route_changes():
    # ipoput with rh (a conversation) keeps the route in the conversation's
    # Routehint (ip.h's, v4lookup's rh): a datagram later takes the route
    # the table gives it now, however often the table changed meanwhile,
    # and two conversations keep a hint each
    from net9.conv import Conv
    fs, ip, ifc0, sink0 = host()
    sink1 = Sink(name="sink1")
    ifc1 = ip.addifc(sink1)
    ifc1.add("10.1.0.1", 24)
    ip.addroute("192.168.0.0", 16, gate="10.0.0.254")
    c1, c2 = Conv(), Conv()

    def out(c, dst):
        n0, n1 = len(sink0.sent), len(sink1.sent)
        r = ip.ipoput(4, v4dgram("10.0.0.1", dst, P, b"x"), 255, 0, c)
        return r, len(sink0.sent) - n0, len(sink1.sent) - n1

    for _ in range(2):
        assert out(c1, "192.168.5.5") == (0, 1, 0)
        assert out(c2, "10.1.0.9") == (0, 0, 1)
    ip.addroute("192.168.5.0", 24, gate="10.1.0.254")
    assert out(c1, "192.168.5.5") == (0, 0, 1)
    assert out(c1, "192.168.6.6") == (0, 1, 0)      # another destination, same hint
    assert out(c2, "10.1.0.9") == (0, 0, 1)
    assert ip.delroute("192.168.5.0", 24)
    assert out(c1, "192.168.5.5") == (0, 1, 0)
    ifc1.unbind()
    assert out(c2, "10.1.0.9") == (-1, 0, 0)
    assert out(c1, "192.168.5.5") == (0, 1, 0)
