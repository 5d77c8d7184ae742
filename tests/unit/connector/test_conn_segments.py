"""c4gh/segments.py and c4gh/envelope.py: upload parts decrypt with the reference library."""

from __future__ import annotations

import hashlib
import io
import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from crypt4gh import lib as c4gh_lib
from nacl.public import PrivateKey

from ghga_connector.c4gh.envelope import (
    EnvelopeError,
    make_envelope,
    new_data_secret,
    open_envelope,
)
from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.c4gh.segments import (
    EncryptedPart,
    SegmentAuthenticationError,
    SegmentCipher,
    build_upload_part,
    encrypt_range,
    hash_part_plaintext,
    part_fingerprint,
)
from ghga_connector.core.planning import (
    CIPHER_SEGMENT_SIZE,
    ENVELOPE_SIZE,
    SEGMENT_SIZE,
    ByteRange,
    byte_ranges,
    encrypted_size,
    upload_part_size,
)
from ghga_connector.core.scheduler import OrderAborted, OrderedDigest


@pytest.fixture
def hub_secret() -> PrivateKey:
    """The Data Hub's key pair (recipient of uploads)."""
    return PrivateKey.generate()


def _write(tmp_path: Path, size: int, seed: int = 0) -> tuple[Path, bytes]:
    data = random.Random(seed).randbytes(size)
    path = tmp_path / f"plain-{size}.bin"
    path.write_bytes(data)
    return path, data


def _build_all(
    path: Path, size: int, ranges: list[ByteRange], envelope: bytes, cipher: SegmentCipher
) -> tuple[list[EncryptedPart], OrderedDigest]:
    digest = OrderedDigest()
    parts = [build_upload_part(str(path), size, r, envelope, cipher, digest) for r in ranges]
    return parts, digest


def _reference_decrypt(stream: bytes, hub: PrivateKey, sender: bytes | None = None) -> bytes:
    out = io.BytesIO()
    c4gh_lib.decrypt([(0, bytes(hub), None)], io.BytesIO(stream), out, sender_pubkey=sender)
    return out.getvalue()


CASES = [
    # (plain size, part size of the uploaded object)
    (1, None),
    (65_535, None),
    (65_536, None),
    (65_537, None),
    (65_537, 100),  # parts much smaller than a segment; part 1 is inside the envelope
    (3 * 1024 * 1024 + 17, None),
    (3 * 1024 * 1024 + 17, 100_003),  # unaligned: segments straddle part boundaries
    (3 * 1024 * 1024 + 17, CIPHER_SEGMENT_SIZE),  # aligned to segments, not to the body
    (2 * SEGMENT_SIZE, CIPHER_SEGMENT_SIZE + ENVELOPE_SIZE),  # aligned to the body
]


@pytest.mark.parametrize(("size", "part_size"), CASES)
def test_upload_parts_decrypt_with_reference_library(
    tmp_path: Path, user_keys: KeyPair, hub_secret: PrivateKey, size: int, part_size: int | None
) -> None:
    path, data = _write(tmp_path, size)
    total = encrypted_size(size)
    part_size = part_size or upload_part_size(16 * 1024 * 1024, total)
    ranges = byte_ranges(total, part_size)
    secret = new_data_secret()
    envelope = make_envelope(secret, user_keys.secret, bytes(hub_secret.public_key))
    assert len(envelope) == ENVELOPE_SIZE

    parts, digest = _build_all(path, size, ranges, envelope, SegmentCipher(secret))

    stream = b"".join(bytes(p.data) for p in parts)
    assert len(stream) == total
    for part, item in zip(parts, ranges, strict=True):
        assert part.part_no == item.part_no
        assert len(part.data) == item.length
        assert part.md5 == hashlib.md5(part.data).hexdigest()
        assert part.sha256 == hashlib.sha256(part.data).hexdigest()
    assert digest.parts_done == len(ranges)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert _reference_decrypt(stream, hub_secret, sender=user_keys.public) == data


def test_parts_built_out_of_order_from_threads(
    tmp_path: Path, user_keys: KeyPair, hub_secret: PrivateKey
) -> None:
    size = 2 * 1024 * 1024 + 12345
    path, data = _write(tmp_path, size, seed=7)
    ranges = byte_ranges(encrypted_size(size), 150_001)
    secret = new_data_secret()
    envelope = make_envelope(secret, user_keys.secret, bytes(hub_secret.public_key))
    cipher = SegmentCipher(secret)
    digest = OrderedDigest()
    order = list(ranges)
    random.Random(3).shuffle(order)
    # one thread per part: every part can wait for its predecessors without deadlock
    with ThreadPoolExecutor(max_workers=len(order)) as pool:
        futures = {
            r.part_no: pool.submit(build_upload_part, str(path), size, r, envelope, cipher, digest)
            for r in order
        }
        parts = [futures[r.part_no].result(timeout=30) for r in ranges]
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    stream = b"".join(bytes(p.data) for p in parts)
    assert _reference_decrypt(stream, hub_secret) == data


def test_rebuilding_a_part_is_byte_identical(
    tmp_path: Path, user_keys: KeyPair, hub_secret: PrivateKey
) -> None:
    size = 400_000
    path, data = _write(tmp_path, size)
    ranges = byte_ranges(encrypted_size(size), 100_000)
    secret = new_data_secret()
    envelope = make_envelope(secret, user_keys.secret, bytes(hub_secret.public_key))
    cipher = SegmentCipher(secret)
    parts, digest = _build_all(path, size, ranges, envelope, cipher)
    first = [bytes(p.data) for p in parts]
    # a retried part: the digest ignores it, the bytes and checksums are the same
    again = build_upload_part(str(path), size, ranges[2], envelope, cipher, digest)
    assert bytes(again.data) == first[2]
    assert again.md5 == parts[2].md5
    # a new cipher with the same secret (resume after a restart) gives the same bytes
    rebuilt, digest2 = _build_all(path, size, ranges, envelope, SegmentCipher(secret))
    assert [bytes(p.data) for p in rebuilt] == first
    assert digest.hexdigest() == digest2.hexdigest() == hashlib.sha256(data).hexdigest()


def test_build_into_reused_buffer(tmp_path: Path, user_keys: KeyPair) -> None:
    size = 200_000
    path, _ = _write(tmp_path, size)
    ranges = byte_ranges(encrypted_size(size), 70_000)
    secret = new_data_secret()
    envelope = make_envelope(secret, user_keys.secret, user_keys.public)
    cipher = SegmentCipher(secret)
    expected, _ = _build_all(path, size, ranges, envelope, cipher)
    buffer = bytearray(70_000)
    digest = OrderedDigest()
    for item, want in zip(ranges, expected, strict=True):
        got = build_upload_part(str(path), size, item, envelope, cipher, digest, out=buffer)
        assert bytes(got.data) == bytes(want.data)


def test_shrunken_file_is_detected(tmp_path: Path, user_keys: KeyPair) -> None:
    path, _ = _write(tmp_path, 100_000)
    secret = new_data_secret()
    envelope = make_envelope(secret, user_keys.secret, user_keys.public)
    ranges = byte_ranges(encrypted_size(200_000), 10_000_000)
    with pytest.raises(ValueError, match="shorter"):
        build_upload_part(
            str(path), 200_000, ranges[0], envelope, SegmentCipher(secret), OrderedDigest()
        )


def test_hash_part_plaintext_matches_build(tmp_path: Path, user_keys: KeyPair) -> None:
    size = 300_001
    path, data = _write(tmp_path, size)
    ranges = byte_ranges(encrypted_size(size), 90_000)
    digest = OrderedDigest()
    for item in ranges:
        hash_part_plaintext(str(path), size, item, digest)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()


# --- SegmentCipher ---------------------------------------------------------------------


def _encrypt_segments(cipher: SegmentCipher, plain: bytes) -> bytearray:
    out = bytearray()
    for index, start in enumerate(range(0, len(plain), SEGMENT_SIZE)):
        chunk = plain[start : start + SEGMENT_SIZE]
        buffer = bytearray(len(chunk) + 28)
        cipher.encrypt_segment_into(index, memoryview(chunk), memoryview(buffer))
        out += buffer
    return out


def test_decrypt_into_roundtrip() -> None:
    cipher = SegmentCipher(os.urandom(32))
    plain = os.urandom(2 * SEGMENT_SIZE + 5)
    encrypted = _encrypt_segments(cipher, plain)
    out = bytearray(len(plain))
    assert cipher.decrypt_into(memoryview(encrypted), memoryview(out)) == len(plain)
    assert bytes(out) == plain


@pytest.mark.parametrize("position", [0, 12, 100, CIPHER_SEGMENT_SIZE - 1, CIPHER_SEGMENT_SIZE + 3])
def test_flipped_bit_fails_authentication(position: int) -> None:
    cipher = SegmentCipher(os.urandom(32))
    encrypted = _encrypt_segments(cipher, os.urandom(SEGMENT_SIZE + 100))
    encrypted[position] ^= 0x01
    with pytest.raises(SegmentAuthenticationError):
        cipher.decrypt_into(memoryview(encrypted), memoryview(bytearray(SEGMENT_SIZE + 100)))


def test_truncated_segment_fails() -> None:
    cipher = SegmentCipher(os.urandom(32))
    encrypted = _encrypt_segments(cipher, os.urandom(SEGMENT_SIZE + 100))
    truncated = encrypted[: CIPHER_SEGMENT_SIZE + 20]
    with pytest.raises(SegmentAuthenticationError):
        cipher.decrypt_into(memoryview(truncated), memoryview(bytearray(2 * SEGMENT_SIZE)))


def test_wrong_secret_fails_authentication() -> None:
    encrypted = _encrypt_segments(SegmentCipher(os.urandom(32)), b"hello")
    with pytest.raises(SegmentAuthenticationError):
        SegmentCipher(os.urandom(32)).decrypt_into(memoryview(encrypted), memoryview(bytearray(10)))


def test_secret_must_be_32_bytes() -> None:
    with pytest.raises(ValueError):
        SegmentCipher(b"short")


def test_nonces_are_distinct_and_deterministic() -> None:
    secret = os.urandom(32)
    a, b = SegmentCipher(secret), SegmentCipher(secret)
    same = hashlib.sha256(b"x").digest()
    nonces = [a.nonce(i, same) for i in range(1000)]
    assert len(set(nonces)) == 1000
    assert all(len(n) == 12 for n in nonces)
    assert nonces == [b.nonce(i, same) for i in range(1000)]
    assert SegmentCipher(os.urandom(32)).nonce(0, same) != nonces[0]


def _segment(cipher: SegmentCipher, index: int, plain: bytes) -> bytes:
    out = bytearray(len(plain) + 28)
    cipher.encrypt_segment_into(index, memoryview(plain), memoryview(out))
    return bytes(out)


def test_different_plaintext_at_the_same_index_gets_a_different_nonce() -> None:
    """A file changed between an interrupted upload and its resume (same data secret)
    must never have two plaintexts encrypted under one key and nonce."""
    cipher = SegmentCipher(os.urandom(32))
    old, new = os.urandom(SEGMENT_SIZE), os.urandom(SEGMENT_SIZE)
    c_old, c_new = _segment(cipher, 7, old), _segment(cipher, 7, new)
    assert c_old[:12] != c_new[:12]
    # The keystream is not shared: XOR of the ciphertexts is not XOR of the plaintexts.
    xor_c = bytes(x ^ y for x, y in zip(c_old[12:64], c_new[12:64], strict=True))
    xor_p = bytes(x ^ y for x, y in zip(old[:52], new[:52], strict=True))
    assert xor_c != xor_p
    # One byte of difference is enough.
    tweaked = bytearray(old)
    tweaked[-1] ^= 1
    assert _segment(cipher, 7, bytes(tweaked))[:12] != c_old[:12]


def test_a_retried_segment_is_byte_identical() -> None:
    secret = os.urandom(32)
    plain = os.urandom(SEGMENT_SIZE - 3)
    first = _segment(SegmentCipher(secret), 3, plain)
    assert _segment(SegmentCipher(secret), 3, plain) == first
    assert SegmentCipher(secret).decrypt_into(
        memoryview(bytearray(first)), memoryview(bytearray(len(plain)))
    ) == len(plain)


def test_equal_segments_at_different_indexes_get_different_nonces() -> None:
    cipher = SegmentCipher(os.urandom(32))
    plain = bytes(SEGMENT_SIZE)
    assert _segment(cipher, 0, plain)[:12] != _segment(cipher, 1, plain)[:12]


def test_part_fingerprints_match_between_build_and_resume_read(tmp_path: Path) -> None:
    size = 700_001
    path, data = _write(tmp_path, size)
    cipher = SegmentCipher(os.urandom(32))
    envelope = bytes(ENVELOPE_SIZE)
    ranges = byte_ranges(encrypted_size(size), 200_000)
    parts, _ = _build_all(path, size, ranges, envelope, cipher)
    reread = [hash_part_plaintext(str(path), size, r, None) for r in ranges]
    assert [p.plaintext_fingerprint for p in parts] == reread
    assert len(set(reread)) == len(reread)
    # One changed byte changes exactly the fingerprint of the part that owns it.
    changed = bytearray(data)
    changed[450_000] ^= 0xFF
    path.write_bytes(bytes(changed))
    after = [hash_part_plaintext(str(path), size, r, None) for r in ranges]
    assert sum(a != b for a, b in zip(after, reread, strict=True)) == 1


@pytest.mark.parametrize("window", [1, 2, 3])  # in cipher segments
def test_windows_of_a_part_are_the_part(tmp_path: Path, window: int) -> None:
    """A part encrypted window by window (a streamed part) is byte for byte the part
    built whole, with the same segment digests and the same plaintext fed in order; the
    plaintext read again in windows gives the same fingerprint and SHA-256."""
    size = 700_001
    path, data = _write(tmp_path, size)
    cipher = SegmentCipher(os.urandom(32))
    envelope = os.urandom(ENVELOPE_SIZE)
    ranges = byte_ranges(encrypted_size(size), 4 * CIPHER_SEGMENT_SIZE)
    parts, _ = _build_all(path, size, ranges, envelope, cipher)
    step = window * CIPHER_SEGMENT_SIZE
    fed = hashlib.sha256()
    reread = OrderedDigest()
    for part, item in zip(parts, ranges, strict=True):
        out = bytearray(item.length)
        digests: list[bytes] = []
        for lo in range(item.start, item.stop, step):
            sub = ByteRange(item.part_no, lo, min(lo + step, item.stop))
            view = memoryview(out)[lo - item.start : sub.stop - item.start]
            digests += encrypt_range(str(path), size, sub, envelope, cipher, view, None, fed.update)
        assert bytes(out) == bytes(part.data)
        assert part_fingerprint(digests) == part.plaintext_fingerprint
        again = hash_part_plaintext(str(path), size, item, reread, None, step)
        assert again == part.plaintext_fingerprint
    assert fed.hexdigest() == reread.hexdigest() == hashlib.sha256(data).hexdigest()


# --- OrderedDigest ---------------------------------------------------------------------


def test_ordered_digest_ignores_repeated_parts() -> None:
    digest = OrderedDigest()
    digest.update(1, b"ab")
    digest.update(1, b"XX")
    digest.update(2, b"cd")
    assert digest.parts_done == 2
    assert digest.hexdigest() == hashlib.sha256(b"abcd").hexdigest()


def test_abort_releases_a_waiting_thread() -> None:
    digest = OrderedDigest()
    caught: list[BaseException] = []

    def waiter() -> None:
        try:
            digest.update(2, b"part two")  # blocks: part 1 has not arrived
        except BaseException as error:
            caught.append(error)

    thread = threading.Thread(target=waiter)
    thread.start()
    thread.join(timeout=0.05)
    assert thread.is_alive()  # still waiting for part 1
    digest.abort()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert len(caught) == 1
    assert isinstance(caught[0], OrderAborted)
    with pytest.raises(OrderAborted):
        digest.update(1, b"too late")


# --- envelope --------------------------------------------------------------------------


def test_envelope_opens_for_recipient_only(user_keys: KeyPair, other_keys: KeyPair) -> None:
    secret = new_data_secret()
    envelope = make_envelope(secret, other_keys.secret, user_keys.public)
    assert envelope.startswith(b"crypt4gh\x01\x00\x00\x00\x01\x00\x00\x00")
    assert open_envelope(envelope, user_keys.secret) == secret
    with pytest.raises(EnvelopeError):
        open_envelope(envelope, other_keys.secret)
    with pytest.raises(EnvelopeError):
        open_envelope(b"not an envelope", user_keys.secret)


def test_make_envelope_checks_key_sizes(user_keys: KeyPair) -> None:
    with pytest.raises(ValueError):
        make_envelope(b"x" * 31, user_keys.secret, user_keys.public)
    with pytest.raises(ValueError):
        make_envelope(new_data_secret(), user_keys.secret, b"short")
