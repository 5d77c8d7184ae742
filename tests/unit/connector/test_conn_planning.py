"""core/planning.py: contract §4.1/§4.2 table values and property tests."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghga_connector.core.planning import (
    CIPHER_DIFF,
    CIPHER_SEGMENT_SIZE,
    ENVELOPE_SIZE,
    MAX_ALIGNED_PART_SIZE,
    MAX_PART_COUNT,
    MIN_ALIGNED_PART_SIZE,
    SEGMENT_SIZE,
    ByteRange,
    body_size,
    byte_ranges,
    download_range_size,
    encrypted_size,
    plaintext_size,
    plaintext_span,
    segment_count,
    upload_part_size,
)

MiB = 1024 * 1024
TiB = 1024**4


def test_constants_follow_crypt4gh() -> None:
    assert SEGMENT_SIZE == 65536
    assert CIPHER_DIFF == 28
    assert CIPHER_SEGMENT_SIZE == 65564
    assert ENVELOPE_SIZE == 124
    assert MIN_ALIGNED_PART_SIZE == 5_245_120 == 80 * CIPHER_SEGMENT_SIZE
    assert MAX_ALIGNED_PART_SIZE == 5_368_708_140


@pytest.mark.parametrize(
    ("plain", "uploaded", "drs_size"),
    [(1, 153, 29), (65_536, 65_688, 65_564), (12_582_912, 12_588_412, 12_588_288)],
)
def test_contract_size_table(plain: int, uploaded: int, drs_size: int) -> None:
    assert encrypted_size(plain) == uploaded
    assert body_size(plain) == drs_size
    assert plaintext_size(drs_size) == plain


def test_empty_file_is_envelope_only() -> None:
    assert segment_count(0) == 0
    assert encrypted_size(0) == ENVELOPE_SIZE


def test_segment_count_rejects_negative() -> None:
    with pytest.raises(ValueError):
        segment_count(-1)


def test_default_part_size_rounds_up_to_whole_segments() -> None:
    assert upload_part_size(64 * MiB, encrypted_size(12_582_912)) == 67_137_536


def test_one_tebibyte_grows_the_part_size() -> None:
    total = encrypted_size(TiB)
    size = upload_part_size(64 * MiB, total)
    assert size == 110_081_956
    assert math.ceil(total / size) == 9993


def test_part_size_clamped_to_s3_limits() -> None:
    assert upload_part_size(1, 1000) == 5_245_120
    assert upload_part_size(5 * MiB, 12 * MiB) == 5_245_120
    assert upload_part_size(6 * 1024 * MiB, 10 * 1024 * MiB) == MAX_ALIGNED_PART_SIZE


def test_part_size_rejects_non_positive() -> None:
    with pytest.raises(ValueError):
        upload_part_size(0, 1000)
    with pytest.raises(ValueError):
        download_range_size(0)


def test_twelve_mib_at_five_mib_parts() -> None:
    total = encrypted_size(12 * MiB)
    ranges = byte_ranges(total, upload_part_size(5 * MiB, total))
    assert [r.length for r in ranges] == [5_245_120, 5_245_120, 2_098_172]
    assert [r.part_no for r in ranges] == [1, 2, 3]
    assert ranges[0].http_range == "bytes=0-5245119"


def test_download_range_size_is_segment_aligned() -> None:
    assert download_range_size(1) == CIPHER_SEGMENT_SIZE
    assert download_range_size(64 * MiB) == 67_137_536


def test_byte_ranges_edge_cases() -> None:
    assert byte_ranges(0, 10) == []
    assert byte_ranges(10, 10) == [ByteRange(1, 0, 10)]
    with pytest.raises(ValueError):
        byte_ranges(10, 0)
    with pytest.raises(ValueError):
        byte_ranges(-1, 10)


@pytest.mark.parametrize("rest", [1, 14, CIPHER_DIFF])
def test_plaintext_size_rejects_impossible_bodies(rest: int) -> None:
    with pytest.raises(ValueError):
        plaintext_size(3 * CIPHER_SEGMENT_SIZE + rest)


# --- properties ----------------------------------------------------------------------


@st.composite
def total_and_part(draw: st.DrawFn) -> tuple[int, int]:
    total = draw(st.integers(min_value=0, max_value=50_000_000))
    # at most ~2,000 ranges, to keep the test fast
    part = draw(st.integers(min_value=max(1, total // 2000), max_value=max(1, total + 10)))
    return total, part


@given(total_and_part())
def test_byte_ranges_tile_exactly(args: tuple[int, int]) -> None:
    total, part = args
    ranges = byte_ranges(total, part)
    position = 0
    for number, item in enumerate(ranges, start=1):
        assert item.part_no == number
        assert item.start == position
        assert 0 < item.length <= part
        if number < len(ranges):
            assert item.length == part
        position = item.stop
    assert position == total
    assert len(ranges) == math.ceil(total / part)


@settings(max_examples=300)
@given(
    plain=st.integers(min_value=1, max_value=5 * TiB),
    configured=st.integers(min_value=1, max_value=5 * 1024 * MiB),
)
def test_part_count_and_size_within_s3_limits(plain: int, configured: int) -> None:
    total = encrypted_size(plain)
    size = upload_part_size(configured, total)
    assert MIN_ALIGNED_PART_SIZE <= size <= MAX_ALIGNED_PART_SIZE
    assert size % CIPHER_SEGMENT_SIZE == 0
    assert math.ceil(total / size) <= MAX_PART_COUNT


@given(st.integers(min_value=0, max_value=10 * TiB))
def test_plaintext_size_inverts_body_size(plain: int) -> None:
    assert plaintext_size(body_size(plain)) == plain
    assert encrypted_size(plain) == body_size(plain) + ENVELOPE_SIZE


@st.composite
def plain_and_part(draw: st.DrawFn) -> tuple[int, int]:
    plain = draw(st.integers(min_value=1, max_value=3_000_000))
    total = encrypted_size(plain)
    part = draw(st.integers(min_value=max(1, total // 500), max_value=total + 10))
    return plain, part


@given(plain_and_part())
def test_plaintext_spans_tile_the_plaintext(args: tuple[int, int]) -> None:
    plain, part = args
    position = 0
    for item in byte_ranges(encrypted_size(plain), part):
        start, stop = plaintext_span(item, plain)
        assert start == position
        assert stop >= start
        position = stop
    assert position == plain


@settings(max_examples=50)
@given(st.integers(min_value=1, max_value=5 * TiB))
def test_plaintext_spans_tile_with_real_part_sizes(plain: int) -> None:
    total = encrypted_size(plain)
    spans = [plaintext_span(r, plain) for r in byte_ranges(total, upload_part_size(1, total))]
    assert spans[0][0] == 0
    assert spans[-1][1] == plain
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
