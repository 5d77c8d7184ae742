"""Unit tests of the size math (contract §4.1, §4.2, §4.4, §3.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ghga_sandbox.c4gh import (
    CIPHER_DIFF,
    CIPHER_SEGMENT_SIZE,
    ENVELOPE_SIZE,
    SEGMENT_SIZE,
    body_size,
    encrypted_size,
    generate_key_pair,
    make_envelope,
    open_envelope,
    plain_size,
)
from ghga_sandbox.routes.dcs import retry_after_seconds
from ghga_sandbox.uploads import part_count, parts_are_uniform, valid_part_size

MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("plain", "upload", "drs"),
    [(1, 153, 29), (65_536, 65_688, 65_564), (12_582_912, 12_588_412, 12_588_288)],
)
def test_contract_size_table(plain: int, upload: int, drs: int) -> None:
    assert encrypted_size(plain) == upload
    assert body_size(plain) == drs
    assert plain_size(drs) == plain


def test_constants() -> None:
    assert (SEGMENT_SIZE, CIPHER_DIFF, CIPHER_SEGMENT_SIZE, ENVELOPE_SIZE) == (
        65_536,
        28,
        65_564,
        124,
    )


@given(st.integers(min_value=0, max_value=1 << 42))
def test_plain_size_inverts_body_size(n: int) -> None:
    assert plain_size(body_size(n)) == n
    assert encrypted_size(n) - body_size(n) == ENVELOPE_SIZE


@pytest.mark.parametrize("impossible", [1, 28, CIPHER_SEGMENT_SIZE + 5])
def test_impossible_body_sizes(impossible: int) -> None:
    with pytest.raises(ValueError):
        plain_size(impossible)


def test_part_size_rules() -> None:
    assert part_count(12_588_412, 5_245_120) == 3
    assert valid_part_size(12_588_412, 5 * MiB)
    assert not valid_part_size(12_588_412, 5 * MiB - 1)
    assert not valid_part_size(12_588_412, 5 * 1024 * MiB + 1)
    assert valid_part_size(10_000 * 5 * MiB, 5 * MiB)
    assert not valid_part_size(10_000 * 5 * MiB + 1, 5 * MiB)


@pytest.mark.parametrize(
    ("sizes", "ok"),
    [
        ([], False),
        ([5], True),
        ([5, 5, 3], True),
        ([5, 5, 5], True),
        ([5, 4, 3], False),
        ([5, 6], False),
    ],
)
def test_parts_are_uniform(sizes: list[int], ok: bool) -> None:
    assert parts_are_uniform(sizes) is ok


def test_retry_after_is_clamped() -> None:
    assert retry_after_seconds(10, 1) == 1
    assert retry_after_seconds(10, 5) == 5
    assert retry_after_seconds(1_000 * 10**6, 1) == 10
    assert retry_after_seconds(10**15, 1) == 300


def test_envelope_round_trip() -> None:
    writer, reader = generate_key_pair(), generate_key_pair()
    secret = bytes(range(32))
    envelope = make_envelope(secret, writer.secret, reader.public)
    assert len(envelope) == ENVELOPE_SIZE
    assert open_envelope(envelope, reader.secret) == secret
    with pytest.raises(ValueError):
        open_envelope(envelope, writer.secret)
