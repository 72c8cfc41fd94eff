"""How devip's generic layer (net9.conv) and the protocols call each other
(issue 11): the protocol hooks raise Net9Error with devip's text (one call
per caller, nothing to check), the announcing user travels as an argument,
a read's kick is that read's result, and a ctl write is parsed once."""

from types import SimpleNamespace

import pytest

from net9 import errors
from net9.conv import ConvState, Fs, Proto
from net9.errors import Net9Error
from net9.ipaux import parsecmd
from net9.netfs import NetFs
from net9.tcp import TcpProto
from net9.udp import UdpProto


def raises(text, fn, *args):
    with pytest.raises(Net9Error) as e:
        fn(*args)
    assert str(e.value) == text


def test_default_hooks_raise_devips_texts():
    fs = Fs(seed=1)
    p = Proto(fs, "bare", -1)
    c = p.clone("glenda")
    raises(errors.Econnectns, p.pconnect, c, ["connect", "10.0.0.1!1"])
    raises(errors.Eannouncens, p.pannounce, c, ["announce", "1"], None)
    raises(errors.Eunknownctl, p.pctl, c, ["frob"])
    # and through ctl, the same texts
    raises(errors.Eunknownctl, p.ctl, c, "frob")
    raises(errors.Econnectns, p.ctl, c, "connect 10.0.0.1!1")


def test_tcp_hooks_return_0_or_raise():
    fs = Fs(seed=1)
    tcp = TcpProto(fs)
    c = tcp.clone("glenda")
    assert tcp.pctl(c, ["checksum", "0"]) == 0
    raises(errors.Ebadarg, tcp.pctl, c, ["checksum"])
    raises(errors.Ekanotestab, tcp.pctl, c, ["keepalive"])
    raises("unknown value for sack", tcp.pctl, c, ["sack", "maybe"])
    raises(errors.Eporthog, tcp.pctl, c, ["tcpporthogdefense", "x"])
    raises(errors.Eunknownctl, tcp.pctl, c, ["frob"])
    raises(errors.Ebadannounce, tcp.pannounce, c, ["announce"], None)
    assert tcp.pannounce(c, ["announce", "5555"], None) == 0
    assert c.lport == 5555
    raises(errors.Econinuse, tcp.pannounce, c, ["announce", "5556"], None)
    raises(errors.Econinuse, tcp.pconnect, c, ["connect", "10.0.0.1!1"])


def test_udp_connect_failure_still_connects():
    # udpconnect calls Fsconnected with the error: the conversation is
    # Connected with cerr set, and the caller gets the same text raised
    fs = Fs(seed=1)
    udp = UdpProto(fs)
    c = udp.clone("glenda")
    raises(errors.Emalformed, udp.ctl, c, "connect nowhere")
    assert c.state == ConvState.Connected and c.cerr == errors.Emalformed


def test_announcing_star_is_checked_against_the_caller_not_the_owner():
    fs = Fs(seed=1, eve="bootes")
    tcp = TcpProto(fs)
    # owned by eve, written by someone else: refused
    c = tcp.clone("bootes")
    raises(errors.Eperm, tcp.ctl, c, "announce *", "glenda")
    assert tcp.pannounce(tcp.clone("x"), ["announce", "*"], "bootes") == 0
    raises(errors.Eperm, tcp.pannounce, tcp.clone("bootes"), ["announce", "*"], "glenda")
    # no caller named: the owner
    c = tcp.clone("bootes")
    tcp.ctl(c, "announce *")
    assert c.state == ConvState.Announced and c.lport == 0
    c = tcp.clone("glenda")
    raises(errors.Eperm, tcp.ctl, c, "announce *")
    # the caller is not kept anywhere after the call
    assert not hasattr(tcp, "_user")


class Kicks(Proto):
    """A protocol that counts its receive kicks and reads."""

    def __init__(self, fs):
        Proto.__init__(self, fs, "kicks", -1)
        self.kicks = 0
        self.reads = 0

    def prcvkick(self, c):
        self.kicks += 1

    def prcvread(self, c):
        self.reads += 1


def test_read_that_clears_flow_kicks_once():
    fs = Fs(seed=1)
    p = Kicks(fs)
    c = p.clone("glenda")
    c.rq.setlimit(10)
    c.rq.write(b"0123456789")
    assert c.rq.flow
    assert p.read(c, 3) == b"012"           # 7 left: flow stays
    assert (p.kicks, p.reads) == (0, 1)
    assert p.read(c, 3) == b"345"           # 4 left, below half the limit
    assert (p.kicks, p.reads) == (1, 1)
    assert not c.rq.flow
    assert p.read(c, 3) == b"678"
    assert (p.kicks, p.reads) == (1, 2)
    assert p.read(c, 3) == b"9"
    assert p.read(c, 3) is None
    assert (p.kicks, p.reads) == (1, 3)


def test_ctl_takes_fields_or_text_alike():
    for msg in ("announce 7000", b"announce 7000\n", ["announce", "7000"]):
        fs = Fs(seed=1)
        tcp = TcpProto(fs)
        c = tcp.clone("glenda")
        tcp.ctl(c, msg)
        assert c.state == ConvState.Announced and c.lport == 7000
    fs = Fs(seed=1)
    tcp = TcpProto(fs)
    raises(errors.Eshortctl, tcp.ctl, tcp.clone("glenda"), [])
    raises(errors.Ebadbind, tcp.ctl, tcp.clone("glenda"), ["bind"])


class Seen(TcpProto):
    """TCP that records what each ctl call was given."""

    def __init__(self, fs):
        TcpProto.__init__(self, fs)
        self.seen = []

    def ctl(self, c, msg, user=None):
        self.seen.append((msg, user))
        return TcpProto.ctl(self, c, msg, user)


def test_netfs_hands_the_parsed_fields_to_ctl():
    fs = Fs(seed=1)
    tcp = Seen(fs)
    c = tcp.clone("glenda")
    fid = SimpleNamespace(conv=c, proto=tcp, uname="glenda")
    data = b"checksum 0\nannounce 7001\n"
    assert NetFs(fs).ctlwrite(fid, data, None) == len(data)
    assert tcp.seen == [(parsecmd("checksum 0"), "glenda"), (parsecmd("announce 7001"), "glenda")]
    assert all(type(m) is list for m, _ in tcp.seen)
    assert c.state == ConvState.Announced and c.lport == 7001
