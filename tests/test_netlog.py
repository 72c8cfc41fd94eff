"""net9.netlog: /net/log (netlog.c, devip.md section 11.4)."""

import pytest
from hypothesis import given, settings, strategies as st

from net9 import netlog
from net9.errors import Net9Error
from net9.netlog import Netlog


class Waker:
    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1


def test_category_values_as_ip_h():
    want = dict(Logip=1 << 1, Logtcp=1 << 2, Logfs=1 << 3, Logil=1 << 4,
                Logicmp=1 << 5, Logudp=1 << 6, Logcompress=1 << 7,
                Logilmsg=1 << 8, Loggre=1 << 9, Logppp=1 << 10,
                Logtcprxmt=1 << 11, Logigmp=1 << 12, Logudpmsg=1 << 13,
                Logipmsg=1 << 14, Logrudp=1 << 15, Logrudpmsg=1 << 16,
                Logesp=1 << 17, Logtcpwin=1 << 18, Logtrans=1 << 19)
    for name, v in want.items():
        assert getattr(netlog, name) == v, name
    assert netlog.Nlog == 16 * 1024


def test_defaults():
    n = Netlog()
    assert n.mask == 0 and n.limit == 16384
    assert n.iponly is None and n.wakecb is None
    assert n.read(100) == b""
    assert Netlog(mask=netlog.Logtcp).mask == netlog.Logtcp
    assert Netlog(netlog.Logip).mask == netlog.Logip


def test_mask_filters_and_newline():
    n = Netlog()
    w = Waker()
    n.wakecb = w
    n.log(netlog.Logtcp, "dropped")
    assert n.read(100) == b"" and w.calls == 0
    n.mask = netlog.Logtcp | netlog.Logudp
    n.log(netlog.Logtcp, "one")
    n.log(netlog.Logudp, "two\n")               # no second newline
    n.log(netlog.Logip, "three")                # category off
    n.log(netlog.Logip | netlog.Logudp, "four")  # any bit enabled is enough
    assert w.calls == 3
    assert n.read(1000) == b"one\ntwo\nfour\n"
    assert n.read(1000) == b""


def test_partial_reads_consume():
    n = Netlog(netlog.Logfs)
    n.log(netlog.Logfs, "abcdef")
    assert n.read(2) == b"ab"
    assert n.read(0) == b""
    assert n.read(3) == b"cde"
    assert n.read(10) == b"f\n"


def test_bounded_buffer_drops_oldest():
    n = Netlog(netlog.Logtcp)
    lines = ["line %05d" % i for i in range(3000)]   # 11 bytes each
    for l in lines:
        n.log(netlog.Logtcp, l)
    everything = "".join(l + "\n" for l in lines).encode()
    assert len(n) == 16384
    got = n.read(1 << 20)
    assert got == everything[-16384:]


def test_small_limit_and_oversized_message():
    n = Netlog(netlog.Logtcp, 10)
    n.log(netlog.Logtcp, "12345")
    n.log(netlog.Logtcp, "678")
    assert len(n) == 10
    n.log(netlog.Logtcp, "ab")
    assert n.read(100) == b"45\n678\nab\n"
    n.log(netlog.Logtcp, "x" * 30)
    assert n.read(100) == b"x" * 9 + b"\n"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet="abc xyz\n", max_size=40), max_size=60),
       st.integers(1, 200))
def test_property_tail_of_log(msgs, limit):
    n = Netlog(netlog.Logip, limit)
    text = b""
    for m in msgs:
        n.log(netlog.Logip, m)
        text += (m if m.endswith("\n") else m + "\n").encode()
    assert n.read(10000) == text[-limit:]
    assert len(n) == 0


def test_ctl_set_clear():
    n = Netlog()
    n.ctl("set tcp udp")
    assert n.mask == netlog.Logtcp | netlog.Logudp
    n.ctl("clear udp")
    assert n.mask == netlog.Logtcp
    n.ctl("set bogus ip\n")                     # unknown names are ignored
    assert n.mask == netlog.Logtcp | netlog.Logip
    n.ctl("clear tcp ip")
    assert n.mask == 0


def test_ctl_implied_flags():
    n = Netlog()
    n.ctl("set tcpwin")
    assert n.mask == netlog.Logtcp | netlog.Logtcpwin
    n.ctl("set tcprxmt udpmsg ipmsg")
    assert n.mask & netlog.Logtcprxmt and n.mask & netlog.Logudp
    assert n.mask & netlog.Logudpmsg and n.mask & netlog.Logip and n.mask & netlog.Logipmsg
    n.ctl("clear tcprxmt")                      # clears tcp too, as netlog.c does
    assert not n.mask & netlog.Logtcp and not n.mask & netlog.Logtcprxmt
    assert n.mask & netlog.Logtcpwin


def test_ctl_every_flag_name():
    names = {"ppp": netlog.Logppp, "ip": netlog.Logip, "fs": netlog.Logfs,
             "il": netlog.Logil, "tcp": netlog.Logtcp, "icmp": netlog.Logicmp,
             "igmp": netlog.Logigmp, "udp": netlog.Logudp,
             "compress": netlog.Logcompress, "logilmsg": netlog.Logilmsg,
             "gre": netlog.Loggre, "esp": netlog.Logesp, "trans": netlog.Logtrans}
    for name, bit in names.items():
        n = Netlog()
        n.ctl("set " + name)
        assert n.mask == bit, name
    n = Netlog()
    n.ctl("set ilmsg rudp")                     # not in the table
    assert n.mask == 0


def test_ctl_errors():
    n = Netlog()
    for msg in ("", "\n", "set", "set\n", "clear", "only", "   ", "bogus"):
        with pytest.raises(Net9Error) as e:
            n.ctl(msg)
        assert str(e.value) == "too few arguments for netlog control message", msg
    with pytest.raises(Net9Error) as e:
        n.ctl("frob tcp")
    assert str(e.value) == 'unknown control message "frob tcp"'
    with pytest.raises(Net9Error) as e:
        n.ctl("  frob   tcp  ip\n")
    assert str(e.value) == 'unknown control message "frob tcp ip"'
    with pytest.raises(Net9Error) as e:
        n.ctl("frob 'a b' 'it''s' x''y ''")
    # tokenize(2): quotes group and vanish, '' inside quotes is a quote;
    # %q puts quotes back where needed
    assert str(e.value) == "unknown control message \"frob 'a b' 'it''s' xy ''\""
    with pytest.raises(Net9Error) as e:
        n.ctl("SET tcp")                        # verbs are case sensitive
    assert str(e.value) == 'unknown control message "SET tcp"'
    assert n.mask == 0


def test_ctl_error_cut_to_errmax():
    n = Netlog()
    with pytest.raises(Net9Error) as e:
        n.ctl("frob " + "x" * 300)
    s = str(e.value)
    assert len(s) == 118
    assert s.startswith('unknown control message "frob xxx') and s.endswith('x"')


def test_ctl_only():
    n = Netlog(netlog.Logtcp)
    n.ctl("only 10.0.0.1")
    assert n.iponly == bytes(10) + b"\xff\xff" + bytes([10, 0, 0, 1])
    n.ctl("only 2001:db8::1")
    assert n.iponly == bytes.fromhex("20010db8000000000000000000000001")
    n.ctl("only ::")
    assert n.iponly is None
    n.ctl("only 10.0.0.1")
    n.ctl("only not-an-address")
    assert n.iponly is None
    assert n.mask == netlog.Logtcp              # only changes nothing else
    n.log(netlog.Logtcp, "still logged")
    assert n.read(100) == b"still logged\n"
