"""The sink S3 (``serve --s3 sink``), synthetic objects and the sink's Data Hub check."""

from __future__ import annotations

import base64
import hashlib
import secrets
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from werkzeug.test import Client

from ghga_sandbox.c4gh import (
    CIPHER_SEGMENT_SIZE,
    SEGMENT_SIZE,
    body_size,
    encrypted_size,
    generate_key_pair,
    make_envelope,
)
from ghga_sandbox.datahub.sinkcheck import SinkCheckError, check_sink_upload
from ghga_sandbox.sinks3 import SinkS3App, SinkStore
from ghga_sandbox.state import FileUpload, now_utc
from ghga_sandbox.synthetic import SyntheticObject, plaintext_sha256

PLAIN = 3 * SEGMENT_SIZE + 1234  # three whole segments and a short last one


def _decrypt(body: bytes, key: bytes) -> bytes:
    aead = ChaCha20Poly1305(key)
    out = bytearray()
    for offset in range(0, len(body), CIPHER_SEGMENT_SIZE):
        segment = body[offset : offset + CIPHER_SEGMENT_SIZE]
        out += aead.decrypt(segment[:12], segment[12:], None)
    return bytes(out)


def test_synthetic_object_decrypts_to_the_seeded_stream_and_its_sha256(tmp_path: Path) -> None:
    obj = SyntheticObject(seed=5, plain_size=PLAIN)
    body = b"".join(obj.read(0, obj.size))
    assert len(body) == obj.size == body_size(PLAIN)
    plain = _decrypt(body, obj.data_key)
    assert plain == b"".join(obj.plaintext())
    assert len(plain) == PLAIN
    assert plaintext_sha256(obj, tmp_path) == hashlib.sha256(plain).hexdigest()
    # cached by seed and size: the second answer comes from the file
    assert plaintext_sha256(obj, tmp_path) == hashlib.sha256(plain).hexdigest()
    assert (tmp_path / f"synthetic-5-{PLAIN}.json").is_file()


def test_synthetic_ranges_are_slices_of_the_whole_and_segments_differ() -> None:
    obj = SyntheticObject(seed=9, plain_size=PLAIN)
    whole = b"".join(obj.read(0, obj.size))
    for start, length in [(0, 1), (100, CIPHER_SEGMENT_SIZE), (CIPHER_SEGMENT_SIZE - 5, 11)]:
        assert b"".join(obj.read(start, length, chunk=7)) == whole[start : start + length]
    assert obj.plain_segment(0) != obj.plain_segment(1)
    assert SyntheticObject(seed=10, plain_size=PLAIN).data_key != obj.data_key
    with pytest.raises(ValueError, match="outside"):
        list(obj.read(obj.size - 1, 2))


def _sink() -> tuple[SinkStore, Client]:
    store = SinkStore()
    store.create_bucket("b")
    return store, Client(SinkS3App(store))


def _start_upload(client: Client) -> str:
    answer = client.post("/b/k?uploads")
    assert answer.status_code == 200
    text = answer.get_data(as_text=True)
    return text.split("<UploadId>")[1].split("</UploadId>")[0]


def test_sink_rejects_a_part_whose_md5_mismatches() -> None:
    store, client = _sink()
    upload_id = _start_upload(client)
    data = b"x" * 1000
    wrong = base64.b64encode(hashlib.md5(b"y").digest()).decode()
    answer = client.put(
        f"/b/k?partNumber=1&uploadId={upload_id}", data=data, headers={"Content-MD5": wrong}
    )
    assert answer.status_code == 400
    assert "BadDigest" in answer.get_data(as_text=True)
    assert store.parts("b", "k", upload_id) == []
    assert store.stats()["bad_digest"] == 1


def test_sink_answers_the_md5_as_etag_and_completes_with_the_multipart_etag() -> None:
    _store, client = _sink()
    upload_id = _start_upload(client)
    md5s = []
    for number, data in [(1, b"a" * 700), (2, b"b" * 300)]:
        good = base64.b64encode(hashlib.md5(data).digest()).decode()
        answer = client.put(
            f"/b/k?partNumber={number}&uploadId={upload_id}",
            data=data,
            headers={"Content-MD5": good},
        )
        assert answer.status_code == 200
        md5s.append(hashlib.md5(data).hexdigest())
        assert answer.headers["ETag"] == f'"{md5s[-1]}"'
    body = "".join(
        f'<Part><PartNumber>{n}</PartNumber><ETag>"{m}"</ETag></Part>'
        for n, m in enumerate(md5s, 1)
    )
    wrong = client.post(
        f"/b/k?uploadId={upload_id}",
        data=f"<CompleteMultipartUpload>{body.replace(md5s[1], '0' * 32)}</CompleteMultipartUpload>",
    )
    assert wrong.status_code == 400
    assert "InvalidPart" in wrong.get_data(as_text=True)
    done = client.post(
        f"/b/k?uploadId={upload_id}",
        data=f"<CompleteMultipartUpload>{body}</CompleteMultipartUpload>",
    )
    assert done.status_code == 200
    joined = b"".join(bytes.fromhex(m) for m in md5s)
    expected = f"{hashlib.md5(joined).hexdigest()}-2"
    head = client.head("/b/k")
    assert head.headers["ETag"] == f'"{expected}"'
    assert head.headers["Content-Length"] == "1000"
    assert client.get("/b/k", headers={"Range": "bytes=0-9"}).get_data() == b"a" * 10
    assert client.get("/b/k", headers={"Range": "bytes=990-999"}).status_code == 501


def test_sink_serves_and_copies_synthetic_objects_by_range() -> None:
    store, client = _sink()
    obj = SyntheticObject(seed=1, plain_size=PLAIN)
    store.put_synthetic("b", "src", obj)
    store.create_bucket("c")
    whole = b"".join(obj.read(0, obj.size))
    upload_id = client.post("/c/dst?uploads").get_data(as_text=True)
    upload_id = upload_id.split("<UploadId>")[1].split("</UploadId>")[0]
    half = obj.size // 2
    etags = []
    for number, (first, last) in enumerate([(0, half - 1), (half, obj.size - 1)], 1):
        answer = client.put(
            f"/c/dst?partNumber={number}&uploadId={upload_id}",
            headers={
                "x-amz-copy-source": "/b/src",
                "x-amz-copy-source-range": f"bytes={first}-{last}",
            },
        )
        assert answer.status_code == 200
        etags.append(answer.get_data(as_text=True).split("<ETag>")[1].split("</ETag>")[0])
    parts = "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in enumerate(etags, 1)
    )
    assert client.post(f"/c/dst?uploadId={upload_id}", data=f"<X>{parts}</X>").status_code == 200
    ranged = client.get("/c/dst", headers={"Range": f"bytes=100-{half + 99}"})
    assert ranged.status_code == 206
    assert ranged.get_data() == whole[100 : half + 100]
    assert ranged.headers["Content-Range"] == f"bytes 100-{half + 99}/{obj.size}"


def _uploaded(
    store: SinkStore, hub_public: bytes, plain: bytes, part_size: int
) -> tuple[FileUpload, list[str]]:
    """A Crypt4GH upload of ``plain`` recorded by the sink as parts; returns it and its MD5s."""
    data_key = secrets.token_bytes(32)
    envelope = make_envelope(data_key, generate_key_pair().secret, hub_public)
    aead = ChaCha20Poly1305(data_key)
    body = bytearray()
    for offset in range(0, len(plain), SEGMENT_SIZE):
        nonce = secrets.token_bytes(12)
        body += nonce + aead.encrypt(nonce, plain[offset : offset + SEGMENT_SIZE], None)
    whole = envelope + bytes(body)
    store.create_bucket("hd01-inbox")
    store.create_bucket("hd01-interrogation")
    upload_id = store.create_upload("hd01-inbox", "obj")
    md5s = []
    for number, offset in enumerate(range(0, len(whole), part_size), 1):
        part = whole[offset : offset + part_size]
        md5s.append(hashlib.md5(part).hexdigest())
        head = part[: 1 << 20] if number == 1 else b""
        store.add_part("hd01-inbox", "obj", upload_id, number, len(part), md5s[-1], head)
    store.complete("hd01-inbox", "obj", upload_id, list(enumerate(md5s, 1)))
    now = now_utc()
    upload = FileUpload(
        id="u", box_id="b", alias="a", state="inbox", state_updated=now, storage_alias="HD01",
        bucket_id="hd01-inbox", object_id="obj", decrypted_size=len(plain),
        encrypted_size=encrypted_size(len(plain)), part_size=part_size, initiated=now,
        decrypted_sha256=hashlib.sha256(plain).hexdigest(), encrypted_parts_md5=md5s,
        encrypted_parts_sha256=["0" * 64] * len(md5s),
    )  # fmt: skip
    return upload, md5s


def test_sink_check_passes_a_true_upload_and_refuses_altered_records() -> None:
    hub = generate_key_pair()
    store = SinkStore()
    plain = secrets.token_bytes(PLAIN)
    upload, md5s = _uploaded(store, hub.public, plain, 100_000)
    result = check_sink_upload(store, upload, hub.secret)
    assert result.size == body_size(PLAIN)
    assert result.checked_segments == 1  # only part 1's first bytes are kept
    assert store.get(result.bucket, result.key).size == body_size(PLAIN)
    whole = SinkStore()
    one_part, _ = _uploaded(whole, hub.public, plain, 1 << 20)
    assert check_sink_upload(whole, one_part, hub.secret).checked_segments == 4
    with pytest.raises(SinkCheckError, match="SHA-256"):
        check_sink_upload(
            whole, FileUpload(**{**one_part.__dict__, "decrypted_sha256": "0" * 64}), hub.secret
        )

    wrong_md5 = FileUpload(**{**upload.__dict__, "encrypted_parts_md5": [*md5s[:-1], "0" * 32]})
    with pytest.raises(SinkCheckError, match="per-part MD5"):
        check_sink_upload(store, wrong_md5, hub.secret)
    wrong_size = FileUpload(**{**upload.__dict__, "decrypted_size": PLAIN + 1})
    with pytest.raises(SinkCheckError, match="size"):
        check_sink_upload(store, wrong_size, hub.secret)
    wrong_parts = FileUpload(**{**upload.__dict__, "part_size": 50_000})
    with pytest.raises(SinkCheckError, match="parts"):
        check_sink_upload(store, wrong_parts, hub.secret)
    with pytest.raises(SinkCheckError, match="envelope"):
        check_sink_upload(store, upload, generate_key_pair().secret)
