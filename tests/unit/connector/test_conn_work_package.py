"""core/work_package.py: WOT opening, key-claim check and caching with an injected clock."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from nacl.public import PublicKey, SealedBox

from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.core.work_package import WOT_SAFETY_MARGIN, WorkPackageAccessor
from ghga_connector.errors import KeyFileError, ServerResponseError, UserInputError
from ghga_connector.models import WorkPackage

RDUB = "11111111-2222-4333-8444-555555555555"
FUB = "66666666-7777-4888-9999-aaaaaaaaaaaa"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jws(claims: dict[str, Any]) -> str:
    header = _b64url(json.dumps({"alg": "ES256"}).encode())
    payload = _b64url(json.dumps(claims).encode())
    return f"{header}.{payload}.{_b64url(b'x' * 64)}"


def seal(text: str, public: bytes) -> str:
    return base64.b64encode(SealedBox(PublicKey(public)).encrypt(text.encode())).decode()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeWps:
    """Duck-typed WpsClient: issues WOTs sealed to ``seal_to`` claiming ``claim_key``."""

    def __init__(
        self,
        package: WorkPackage,
        *,
        seal_to: bytes,
        claim_key: str,
        max_age: float | None = 30.0,
    ) -> None:
        self.package = package
        self.seal_to = seal_to
        self.claim_key = claim_key
        self.max_age = max_age
        self.calls: list[tuple[Any, ...]] = []
        self.package_reads = 0

    def _wot(self, **claims: Any) -> tuple[str, float | None]:
        number = len(self.calls)
        jws = make_jws({"user_public_crypt4gh_key": self.claim_key, "n": number, **claims})
        return seal(jws, self.seal_to), self.max_age

    async def get_work_package(self) -> WorkPackage:
        self.package_reads += 1
        return self.package

    async def create_upload_wot(
        self, box_id: str, work_type: str, *, alias: str | None = None, file_id: str | None = None
    ) -> tuple[str, float | None]:
        self.calls.append(("upload", box_id, work_type, alias, file_id))
        return self._wot(work_type=work_type, box_id=FUB)

    async def create_download_wot(self, accession: str) -> tuple[str, float | None]:
        self.calls.append(("download", accession))
        return self._wot(work_type="download", accession=accession)


UPLOAD = WorkPackage(
    type="upload", files={}, research_data_upload_box_id=RDUB, file_upload_box_id=FUB
)
DOWNLOAD = WorkPackage(type="download", files={"GHGAF001": ".bam"})


def _claims(jws: str) -> dict[str, Any]:
    payload = jws.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _accessor(
    keys: KeyPair, package: WorkPackage = DOWNLOAD, **wps: Any
) -> tuple[WorkPackageAccessor, FakeWps, Clock]:
    fake = FakeWps(
        package,
        seal_to=wps.pop("seal_to", keys.public),
        claim_key=wps.pop("claim_key", keys.public_b64),
        **wps,
    )
    clock = Clock()
    return WorkPackageAccessor(fake, None, keys, clock=clock), fake, clock


async def test_work_package_fetched_once(user_keys: KeyPair) -> None:
    accessor, fake, _ = _accessor(user_keys)
    assert await accessor.get_work_package() == DOWNLOAD
    assert await accessor.get_work_package() == DOWNLOAD
    assert fake.package_reads == 1


async def test_download_wot_is_opened(user_keys: KeyPair) -> None:
    accessor, fake, _ = _accessor(user_keys)
    jws = await accessor.download_wot("GHGAF001")
    claims = _claims(jws)
    assert claims["accession"] == "GHGAF001"
    assert claims["user_public_crypt4gh_key"] == user_keys.public_b64
    assert fake.calls == [("download", "GHGAF001")]


async def test_wot_cached_until_max_age_minus_margin(user_keys: KeyPair) -> None:
    accessor, fake, clock = _accessor(user_keys, max_age=30.0)
    first = await accessor.download_wot("GHGAF001")
    clock.now += 30.0 - WOT_SAFETY_MARGIN - 0.01
    assert await accessor.download_wot("GHGAF001") == first
    assert accessor.tokens_fetched == 1
    clock.now += 0.01  # exactly max-age - 5 s: no longer used
    second = await accessor.download_wot("GHGAF001")
    assert second != first
    assert accessor.tokens_fetched == 2
    assert len(fake.calls) == 2


async def test_wot_lifetime_defaults_to_30_seconds(user_keys: KeyPair) -> None:
    accessor, _, clock = _accessor(user_keys, max_age=None)
    first = await accessor.download_wot("GHGAF001")
    clock.now += 24.9
    assert await accessor.download_wot("GHGAF001") == first
    clock.now += 0.1
    assert await accessor.download_wot("GHGAF001") != first


async def test_force_new_refetches(user_keys: KeyPair) -> None:
    accessor, fake, _ = _accessor(user_keys)
    first = await accessor.download_wot("GHGAF001")
    second = await accessor.download_wot("GHGAF001", force_new=True)
    assert first != second
    assert len(fake.calls) == 2
    # the new one is cached
    assert await accessor.download_wot("GHGAF001") == second


async def test_wots_cached_per_accession(user_keys: KeyPair) -> None:
    accessor, fake, _ = _accessor(user_keys)
    await accessor.download_wot("GHGAF001")
    await accessor.download_wot("GHGAF002")
    await accessor.download_wot("GHGAF001")
    assert fake.calls == [("download", "GHGAF001"), ("download", "GHGAF002")]


async def test_upload_wots_use_rdub_and_cache_per_purpose(user_keys: KeyPair) -> None:
    accessor, fake, _ = _accessor(user_keys, UPLOAD)
    await accessor.upload_wot("create", alias="a.bam")
    await accessor.upload_wot("upload", file_id="f1")
    await accessor.upload_wot("upload", file_id="f1")
    await accessor.upload_wot("upload", file_id="f2")
    assert fake.calls == [
        ("upload", RDUB, "create", "a.bam", None),
        ("upload", RDUB, "upload", None, "f1"),
        ("upload", RDUB, "upload", None, "f2"),
    ]
    assert accessor.file_upload_box_id == FUB


async def test_upload_wot_for_download_package(user_keys: KeyPair) -> None:
    accessor, fake, _ = _accessor(user_keys, DOWNLOAD)
    with pytest.raises(UserInputError, match="download work package"):
        await accessor.upload_wot("view")
    assert fake.calls == []


async def test_key_claim_differs_from_user_key(user_keys: KeyPair, other_keys: KeyPair) -> None:
    accessor, _, _ = _accessor(user_keys, claim_key=other_keys.public_b64)
    with pytest.raises(KeyFileError, match="another public key"):
        await accessor.download_wot("GHGAF001")


async def test_key_claim_missing(user_keys: KeyPair) -> None:
    accessor, _, _ = _accessor(user_keys, claim_key=None)
    with pytest.raises(KeyFileError):
        await accessor.download_wot("GHGAF001")


async def test_wot_sealed_for_another_key(user_keys: KeyPair, other_keys: KeyPair) -> None:
    accessor, _, _ = _accessor(user_keys, seal_to=other_keys.public)
    with pytest.raises(KeyFileError, match="could not be opened"):
        await accessor.download_wot("GHGAF001")


async def test_wot_that_is_not_a_jws(user_keys: KeyPair) -> None:
    class NotJws(FakeWps):
        async def create_download_wot(self, accession: str) -> tuple[str, float | None]:
            return seal("not-a-jws", self.seal_to), 30.0

    fake = NotJws(DOWNLOAD, seal_to=user_keys.public, claim_key=user_keys.public_b64)
    accessor = WorkPackageAccessor(fake, None, user_keys)
    with pytest.raises(ServerResponseError, match="not a valid JWS"):
        await accessor.download_wot("GHGAF001")


@pytest.mark.parametrize("answer", ["not base64!", "", "AAAA" * 3])
async def test_malformed_wot_answer_is_a_server_error_of_that_file(
    user_keys: KeyPair, answer: str
) -> None:
    # a malformed answer fails the one file (ServerResponseError), not the whole batch
    # (KeyFileError is about the user's key); the message never repeats the answer
    class Garbage(FakeWps):
        async def create_download_wot(self, accession: str) -> tuple[str, float | None]:
            return answer, 30.0

    fake = Garbage(DOWNLOAD, seal_to=user_keys.public, claim_key=user_keys.public_b64)
    accessor = WorkPackageAccessor(fake, None, user_keys)
    with pytest.raises(ServerResponseError, match="malformed work order token") as info:
        await accessor.download_wot("GHGAF001")
    assert not isinstance(info.value, KeyFileError)
    assert answer not in info.value.message or not answer


async def test_failed_token_is_not_cached(user_keys: KeyPair, other_keys: KeyPair) -> None:
    accessor, fake, _ = _accessor(user_keys, claim_key=other_keys.public_b64)
    with pytest.raises(KeyFileError):
        await accessor.download_wot("GHGAF001")
    fake.claim_key = user_keys.public_b64
    await accessor.download_wot("GHGAF001")
    assert len(fake.calls) == 2
