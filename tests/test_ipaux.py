"""net9.ipaux: libip parseip/%I, ipaux.c helpers, tokenize/parsecmd and
devip's port parsing (devip.md sections 3.2, 3.4, 6)."""

import ipaddress

import pytest
from hypothesis import given, strategies as st

from net9 import errors, ipaux
from net9.errors import Net9Error
from net9.ipaux import (IPnoaddr, IPv4bcast, fmtip, ipcmp, ipismulticast, isv4,
                        isv4multicast, parsecmd, parseip, parseport, tokenize,
                        v4prefix, v4tov6, v6tov4)


def v4(a, b, c, d):
    return bytes(10) + b"\xff\xff" + bytes([a, b, c, d])


def v6(text):
    return ipaddress.IPv6Address(text).packed


# --- parseip ---------------------------------------------------------------

@pytest.mark.parametrize("text, want", [
    ("10.0.0.1", v4(10, 0, 0, 1)),
    ("10.1", v4(10, 0, 0, 1)),                 # class A short form
    ("10.1.2", v4(10, 0, 1, 2)),
    ("128.32.1", v4(128, 32, 0, 1)),           # class B short form
    ("128.32", v4(128, 32, 0, 0)),
    ("192.168.1", v4(192, 168, 1, 0)),         # class C: no shuffling
    ("10", v4(10, 0, 0, 0)),
    ("0x0a.0.0.1", v4(10, 0, 0, 1)),           # strtoul base 0: hex
    ("012.0.0.1", v4(10, 0, 0, 1)),            # and octal
    ("0xa.0X1.0.1", v4(10, 1, 0, 1)),
    ("255.255.255.255", IPv4bcast),
    ("0.0.0.0", v4prefix),
    ("256.1.1.1", v4(0, 1, 1, 1)),             # parts are truncated to a byte
    ("1.2.3.4.", v4(1, 2, 3, 4)),
    ("10.0.0.1 trailing", v4(10, 0, 0, 1)),    # stops at a delimiter
    ("fe80::1%eth0", v6("fe80::1")),
    ("::", IPnoaddr),
    ("::1", v6("::1")),
    ("1::", v6("1::")),
    ("fe80::1", v6("fe80::1")),
    ("FE80::1", v6("fe80::1")),
    ("2001:db8::1", v6("2001:db8::1")),
    ("1:0:2:3:4:5:6:7", v6("1:0:2:3:4:5:6:7")),
    ("1:2:3:4:5:6:7:8", v6("1:2:3:4:5:6:7:8")),
    ("::ffff:10.0.0.1", v4(10, 0, 0, 1)),
    ("::10.0.0.1", v6("::10.0.0.1")),
    ("1:2:3:4:5:6:1.2.3.4", v6("1:2:3:4:5:6:1.2.3.4")),
    ("0:0:0:0:0:ffff:a00:1", v4(10, 0, 0, 1)),
])
def test_parseip(text, want):
    assert parseip(text) == want
    assert parseip(text.encode()) == want


@pytest.mark.parametrize("text", [
    "", "example.com", "delete", "localhost", "abc.com", "1.2.3.4.5",
    "1::2::3", "10000::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:1.2.3.4",
    "::g", "1.2.3.x", "-1::", "*", "!", "fe80::1x",
])
def test_parseip_bad(text):
    with pytest.raises(Net9Error) as e:
        parseip(text)
    assert str(e.value) == errors.Ebadip == "bad ip address syntax"


def test_parseip_type():
    with pytest.raises(TypeError):
        parseip(1234)


# --- fmtip -----------------------------------------------------------------

@pytest.mark.parametrize("addr, text", [
    (IPnoaddr, "::"),
    (v6("::1"), "::1"),
    (v6("1::"), "1::"),
    (v6("fe80::1"), "fe80::1"),
    (v6("2001:db8::1"), "2001:db8::1"),
    (v6("1:0:2:3:4:5:6:7"), "1::2:3:4:5:6:7"),           # a single zero group too
    (v6("1:2:3:4:5:6:7:0"), "1:2:3:4:5:6:7::"),
    (v6("1:0:0:2:0:0:3:4"), "1::2:0:0:3:4"),             # first on a tie
    (v6("1:0:2:0:0:3:0:0"), "1:0:2::3:0:0"),
    (v6("1:0:0:2:0:0:0:3"), "1:0:0:2::3"),               # longest wins
    (v6("2001:DB8:0:0:0:0:0:ABCD"), "2001:db8::abcd"),
    (v6("1:2:3:4:5:6:7:8"), "1:2:3:4:5:6:7:8"),
    (v4(10, 0, 0, 1), "10.0.0.1"),
    (v4prefix, "0.0.0.0"),
    (IPv4bcast, "255.255.255.255"),
    (v6("::10.0.0.1"), "::a00:1"),
    (v6("::fffe:a00:1"), "::fffe:a00:1"),
])
def test_fmtip(addr, text):
    assert fmtip(addr) == text
    assert fmtip(bytearray(addr)) == text


def test_fmtip_bad_length():
    with pytest.raises(ValueError):
        fmtip(b"\0" * 4)


def test_spec_section6_examples():
    # the local/remote table of devip.md section 6
    assert ipaux.fmtipport(IPnoaddr, 0) == "::!0"
    assert ipaux.fmtipport(parseip("10.0.0.1"), 80) == "10.0.0.1!80"
    assert ipaux.fmtipport(parseip("2001:db8::1"), 22) == "2001:db8::1!22"
    assert ipaux.fmtipport(parseip("fe80::1"), 5000) == "fe80::1!5000"


@given(st.binary(min_size=16, max_size=16))
def test_fmt_parse_fmt(a):
    s = fmtip(a)
    assert fmtip(parseip(s)) == s


@given(st.binary(min_size=16, max_size=16))
def test_parse_fmt_roundtrip(a):
    # %I output parses back to the same address (v4-mapped via dotted quad)
    assert parseip(fmtip(a)) == a


@given(st.binary(min_size=16, max_size=16))
def test_parse_python_text(a):
    assert parseip(str(ipaddress.IPv6Address(a))) == a
    assert parseip(ipaddress.IPv6Address(a).exploded) == a


@given(st.binary(min_size=4, max_size=4))
def test_v4_roundtrip(a):
    text = str(ipaddress.IPv4Address(a))
    assert parseip(text) == v4tov6(a)
    assert fmtip(v4tov6(a)) == text


# --- ipaux.c helpers -------------------------------------------------------

def test_constants():
    assert IPnoaddr == bytes(16)
    assert v4prefix == bytes(10) + b"\xff\xff" + bytes(4)
    assert IPv4bcast == bytes(10) + b"\xff" * 6
    assert ipaux.IPallbits == b"\xff" * 16


def test_v4_conversions():
    assert v4tov6(b"\x0a\x00\x00\x01") == v4(10, 0, 0, 1)
    assert v6tov4(v4(10, 0, 0, 1)) == b"\x0a\x00\x00\x01"
    assert v6tov4(IPnoaddr) == bytes(4)
    assert v6tov4(v6("fe80::1")) == bytes(4)
    with pytest.raises(ValueError):
        v4tov6(b"\0" * 16)
    assert isv4(v4(1, 2, 3, 4))
    assert isv4(v4prefix)
    assert not isv4(IPnoaddr)             # memcmp with the 12-byte v4 prefix
    assert not isv4(v6("::1"))


def test_multicast():
    assert ipismulticast(v4(224, 0, 0, 1)) == ipaux.V4
    assert ipismulticast(v4(239, 255, 255, 255)) == ipaux.V4
    assert ipismulticast(v4(240, 0, 0, 1)) == 0
    assert ipismulticast(v4(223, 255, 255, 255)) == 0
    assert ipismulticast(v6("ff02::1")) == ipaux.V6
    assert ipismulticast(v6("fe80::1")) == 0
    assert ipismulticast(IPnoaddr) == 0
    assert isv4multicast(v4(224, 1, 2, 3))
    assert isv4multicast(b"\xe0\x01\x02\x03")
    assert not isv4multicast(v6("ff02::1"))
    assert ipaux.isv6mcast(v6("ff02::1"))


def test_ipcmp():
    assert ipcmp(IPnoaddr, bytes(16)) == 0
    assert ipcmp(IPnoaddr, v6("::1")) < 0
    assert ipcmp(v6("::2"), v6("::1")) > 0


# --- ports -----------------------------------------------------------------

@pytest.mark.parametrize("text, port, rest", [
    ("80", 80, ""),
    ("0", 0, ""),
    ("564!r", 564, "!r"),
    ("80!fasttimeout", 80, "!fasttimeout"),
    ("-1", 65535, ""),
    ("70000", 4464, ""),
    ("65536", 0, ""),
    ("+22", 22, ""),
    ("99999999999", 65535, ""),          # strtol overflow -> LONG_MAX
    ("-99999999999", 0, ""),             # -> LONG_MIN
    (" 80", 80, ""),                     # strtol skips leading blanks
])
def test_parseport(text, port, rest):
    assert parseport(text) == (port, rest)


@pytest.mark.parametrize("text", ["", "http", "80x", "0x50", "80 ", "*", "!80", "-", "8.0"])
def test_parseport_bad(text):
    with pytest.raises(Net9Error) as e:
        parseport(text)
    assert str(e.value) == "bad numeric port"


# --- tokenize / parsecmd ---------------------------------------------------

@pytest.mark.parametrize("text, fields", [
    ("", []),
    ("   \t\r\n ", []),
    ("connect 10.0.0.1!80", ["connect", "10.0.0.1!80"]),
    ("  a\tb\r\nc  ", ["a", "b", "c"]),
    ("'a b'", ["a b"]),
    ("x 'a b' y", ["x", "a b", "y"]),
    ("''", [""]),
    ("a '' b", ["a", "", "b"]),
    ("'it''s'", ["it's"]),
    ("''''", ["'"]),
    ("a'b c'd", ["ab cd"]),
    ("a''b", ["ab"]),
    ("'unterminated quote", ["unterminated quote"]),
    ("a\0b c", ["a"]),
])
def test_tokenize(text, fields):
    assert tokenize(text) == fields


def test_parsecmd():
    assert parsecmd("connect 10.0.0.1!80\n") == ["connect", "10.0.0.1!80"]
    assert parsecmd(b"announce 564\n") == ["announce", "564"]
    assert parsecmd("\n") == []
    assert parsecmd("") == []
    assert parsecmd("a\n\n") == ["a"]
    assert parsecmd("'a\n'\n") == ["a\n"]          # only one newline removed
    assert parsecmd("'a\n") == ["a"]


@given(st.lists(st.text(alphabet="ab '\t", min_size=0, max_size=6), max_size=6))
def test_tokenize_quoted_roundtrip(words):
    # quoting every word the way Plan 9's quotestrfmt does gives them back
    text = " ".join("'" + w.replace("'", "''") + "'" for w in words)
    assert tokenize(text) == words


@pytest.mark.parametrize("text,value", [
    ("", 0), ("x", 0), ("42", 42), ("  42abc", 42), ("\t-7", -7), ("- 7", -7),
    ("+12", 12), ("0x1F", 31), ("0X10", 16), ("010", 8), ("09", 0), ("0", 0),
    ("1000", 1000), ("4294967296", 0), ("2147483648", -2147483648),
])
def test_atoi_is_plan9_atol(text, value):
    # libc atol: blanks, sign (blanks may follow), 0x hex, 0 octal, decimal;
    # 32-bit long
    assert ipaux.atoi(text) == value
