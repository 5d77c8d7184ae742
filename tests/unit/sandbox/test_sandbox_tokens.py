"""Unit tests of WPAT and WOT minting and verification (contract §2.2, §2.3)."""

from __future__ import annotations

import base64
import json
import re
import uuid

import pytest
from jwcrypto import jwk
from nacl.public import PrivateKey

from ghga_sandbox.tokens import (
    CreateFileWorkOrder,
    DownloadWorkOrder,
    InvalidTokenError,
    UploadFileWorkOrder,
    ViewFileBoxWorkOrder,
    generate_signing_key,
    generate_wpat,
    hash_wpat,
    mint_wot,
    open_sealed,
    seal,
    validate_work_order,
    verify_wot,
)

NOW = 1_795_380_000.7


@pytest.fixture(scope="module")
def key() -> jwk.JWK:
    return generate_signing_key()


@pytest.fixture(scope="module")
def public(key: jwk.JWK) -> jwk.JWK:
    return jwk.JWK.from_json(key.export_public())


def user_key() -> tuple[bytes, str]:
    secret = PrivateKey.generate()
    return bytes(secret), base64.b64encode(bytes(secret.public_key)).decode()


def test_wpat_shape_and_hash() -> None:
    tokens = {generate_wpat() for _ in range(50)}
    assert len(tokens) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9]{24}", t) for t in tokens)
    assert hash_wpat("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_sealed_wpat_is_96_base64_chars_and_opens() -> None:
    secret, public_b64 = user_key()
    token = generate_wpat()
    sealed = seal(public_b64, token.encode())
    assert len(sealed) == 96
    assert open_sealed(secret, sealed).decode() == token


@pytest.mark.parametrize("bad", ["", "abc", base64.b64encode(b"x" * 31).decode(), "!" * 44])
def test_seal_rejects_bad_keys(bad: str) -> None:
    with pytest.raises(ValueError):
        seal(bad, b"x")


def test_wot_round_trip(key: jwk.JWK, public: jwk.JWK) -> None:
    _, user = user_key()
    box = str(uuid.uuid4())
    token = mint_wot(
        key, {"work_type": "view", "box_id": box, "user_public_crypt4gh_key": user}, now=NOW
    )
    header, _payload, signature = token.split(".")
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "ES256"}
    assert len(base64.urlsafe_b64decode(signature + "==")) == 64
    claims = verify_wot(public, token, now=int(NOW) + 30)
    assert claims["iat"] == int(NOW) and claims["exp"] == int(NOW) + 30
    order = validate_work_order(ViewFileBoxWorkOrder, claims)
    assert str(order.box_id) == box


def test_wot_expiry_and_leeway(key: jwk.JWK, public: jwk.JWK) -> None:
    token = mint_wot(key, {"work_type": "view"}, now=NOW, lifetime=30)
    verify_wot(public, token, now=int(NOW) + 30)
    with pytest.raises(InvalidTokenError):
        verify_wot(public, token, now=int(NOW) + 31)
    verify_wot(public, token, now=int(NOW) + 60, leeway=30)


def test_wot_signature_is_checked(key: jwk.JWK, public: jwk.JWK) -> None:
    token = mint_wot(key, {"work_type": "view"}, now=NOW)
    header, payload, signature = token.split(".")
    forged_payload = (
        base64.urlsafe_b64encode(b'{"work_type":"view","iat":1,"exp":9999999999}')
        .rstrip(b"=")
        .decode()
    )
    other = jwk.JWK.from_json(generate_signing_key().export_public())
    for bad, verifier in (
        (f"{header}.{forged_payload}.{signature}", public),
        (token, other),
        ("garbage", public),
        (f"{header}.{payload}", public),
    ):
        with pytest.raises(InvalidTokenError):
            verify_wot(verifier, bad, now=NOW)


def test_explicit_iat_and_exp_win(key: jwk.JWK, public: jwk.JWK) -> None:
    token = mint_wot(key, {"iat": 5, "exp": 10}, now=NOW)
    assert verify_wot(public, token, now=9)["exp"] == 10


def test_claims_must_be_integers(key: jwk.JWK, public: jwk.JWK) -> None:
    token = mint_wot(key, {"iat": "5", "exp": 10}, now=NOW)
    with pytest.raises(InvalidTokenError):
        verify_wot(public, token, now=9)


def test_claim_models() -> None:
    _, user = user_key()
    base = {"user_public_crypt4gh_key": user, "iat": 1, "exp": 31}
    file_id, box_id = str(uuid.uuid4()), str(uuid.uuid4())
    validate_work_order(
        UploadFileWorkOrder, {**base, "work_type": "upload", "file_id": file_id, "box_id": box_id}
    )
    validate_work_order(
        CreateFileWorkOrder, {**base, "work_type": "create", "alias": "a", "box_id": box_id}
    )
    validate_work_order(
        DownloadWorkOrder,
        {**base, "work_type": "download", "file_id": file_id, "accession": "GHGAF1"},
    )
    bad_cases = [
        (UploadFileWorkOrder, {**base, "work_type": "close", "file_id": file_id, "box_id": box_id}),
        (
            UploadFileWorkOrder,
            {**base, "work_type": "upload", "file_id": str(uuid.uuid1()), "box_id": box_id},
        ),
        (UploadFileWorkOrder, {**base, "work_type": "upload", "box_id": box_id}),
        (DownloadWorkOrder, {**base, "work_type": "download", "file_id": file_id}),
        (
            ViewFileBoxWorkOrder,
            {**base, "user_public_crypt4gh_key": "abc", "work_type": "view", "box_id": box_id},
        ),
    ]
    for model, claims in bad_cases:
        with pytest.raises(InvalidTokenError):
            validate_work_order(model, claims)
