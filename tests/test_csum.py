"""net9.csum: Internet checksum (RFC 1071) against a plain Python reference."""

import random
import struct

import pytest
from hypothesis import given, settings, strategies as st

from net9 import csum


def ref_sum(data, acc=0):
    """Plain sum of big-endian 16-bit words (odd byte padded with zero)."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    return acc + sum(struct.unpack("!%dH" % (len(data) // 2), data))


def ref_fold(total):
    while total >> 16:
        total = (total & 0xffff) + (total >> 16)
    return total


def ref_cksum(data, acc=0):
    return (~ref_fold(ref_sum(data, acc))) & 0xffff


RNG = random.Random(1071)
BLOB = bytes(RNG.getrandbits(8) for _ in range(2100))


def test_all_lengths_against_reference():
    for n in range(0, 2001):
        d = BLOB[:n]
        assert csum.cksum(d) == ref_cksum(d), n
        assert ref_fold(csum.cksum_acc(d)) == ref_fold(ref_sum(d)), n


def test_all_lengths_all_alignments():
    # memcpy loads: the start address must not matter
    buf = bytearray(BLOB)
    mv = memoryview(buf)
    for off in range(8):
        for n in range(0, 300):
            d = mv[off:off + n]
            assert csum.cksum(d) == ref_cksum(bytes(d)), (off, n)


def test_start_length_arguments():
    for start in (0, 1, 2, 3, 7, 100, 999):
        for length in (0, 1, 2, 15, 16, 33, 500):
            want = ref_cksum(BLOB[start:start + length])
            assert csum.cksum(BLOB, start, length) == want
    assert csum.cksum(BLOB, 10) == ref_cksum(BLOB[10:])
    assert csum.cksum(BLOB, len(BLOB)) == 0xffff       # empty range


def test_bad_ranges():
    with pytest.raises(ValueError):
        csum.cksum(b"abcd", 5)
    with pytest.raises(ValueError):
        csum.cksum(b"abcd", -1)
    with pytest.raises(ValueError):
        csum.cksum(b"abcd", 2, 3)
    with pytest.raises(TypeError):
        csum.cksum("not bytes")
    with pytest.raises(OverflowError):
        csum.cksum_acc(b"ab", -1)


def test_split_points_even_and_odd():
    """An even split chains exactly; an odd first piece is padded with a
    zero byte, as the reference pads it."""
    for n in (0, 1, 2, 3, 17, 64, 65, 1000, 1501):
        d = BLOB[:n]
        for k in range(0, n + 1):
            a = csum.cksum_acc(d[:k])
            a = csum.cksum_acc(d[k:], a)
            want = ref_sum(d[:k]) + ref_sum(d[k:])
            assert ref_fold(a) == ref_fold(want), (n, k)
            assert csum.fold(a) == (~ref_fold(want)) & 0xffff
            if k % 2 == 0:
                assert csum.fold(a) == ref_cksum(d), (n, k)


def test_ipv4_header_vector():
    # the classic example header: checksum 0xb861
    hdr = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert csum.cksum(hdr) == 0xb861
    full = hdr[:10] + struct.pack("!H", 0xb861) + hdr[12:]
    assert csum.cksum(full) == 0               # a correct header verifies to 0


def test_rfc1071_example():
    # RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2
    d = bytes.fromhex("0001f203f4f5f6f7")
    assert ref_fold(csum.cksum_acc(d)) == 0xddf2
    assert csum.cksum(d) == 0x220d


def test_small_exact_values():
    assert csum.cksum_acc(b"") == 0
    assert csum.cksum_acc(b"", 12345) == 12345
    assert csum.cksum_acc(b"\x01\x02") == 0x0102
    assert csum.cksum_acc(b"\x01") == 0x0100        # odd byte is the high byte
    assert csum.cksum_acc(b"\x01\x02\x03") == 0x0402


def test_zero_versus_all_ones():
    # +0 and -0 differ after complementing: only all-zero data folds to 0
    for n in (1, 2, 7, 8, 9, 64, 1000):
        assert csum.cksum(bytes(n)) == 0xffff
        assert csum.cksum(b"\xff" * n) == (0 if n % 2 == 0 else 0x00ff)
    assert csum.cksum(b"\xff\xff" * 1000) == 0


def test_accumulator_carry_at_2_64():
    top = (1 << 64) - 1
    for d in (b"\x00\x01", b"\xff\xff", BLOB[:999]):
        a = csum.cksum_acc(d, top)
        assert 0 <= a < 1 << 64
        assert csum.fold(a) == ref_cksum(d, top)
    # pseudo-header style: add terms with + then fold
    a = csum.cksum_acc(BLOB[:40]) + 6 + 40
    assert csum.fold(a) == ref_cksum(BLOB[:40], 46)


def test_large_area():
    big = bytes(RNG.getrandbits(8) for _ in range(1 << 16)) * 16 + b"\x7f"
    assert csum.cksum(big) == ref_cksum(big)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=3000), st.integers(0, (1 << 64) - 1))
def test_property_matches_reference(data, acc):
    assert csum.cksum(data) == ref_cksum(data)
    assert csum.fold(csum.cksum_acc(data, acc)) == ref_cksum(data, acc)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=600), st.data())
def test_property_even_chaining(data, draw):
    k = draw.draw(st.integers(0, len(data) // 2)) * 2
    a = csum.cksum_acc(data[k:], csum.cksum_acc(data[:k]))
    assert csum.fold(a) == csum.cksum(data)
