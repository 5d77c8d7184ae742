"""adapters/http.py: the retry transport over httpx.MockTransport."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest

from ghga_connector.adapters.http import make_http_client
from ghga_connector.adapters.retry import RetryTransport
from ghga_connector.config import Config
from ghga_connector.retrying import RetryPolicy, RetryStats, staging_wait

URL = "https://ucs.example.org/boxes"


class Recorder:
    """A mock server answering from a script, recording each request it saw."""

    def __init__(self, script: list[httpx.Response | Exception]) -> None:
        self.script = list(script)
        self.requests: list[httpx.Request] = []
        self.request_ids: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.request_ids.append(request.headers["X-Request-Id"])
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise type(item)(str(item), request=request)  # type: ignore[call-arg]
        return item


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _client(
    handler: Callable[[httpx.Request], httpx.Response],
    *,
    attempts: int = 5,
    sleeps: Sleeps,
    stats: RetryStats | None = None,
    **policy: object,
) -> tuple[httpx.AsyncClient, RetryTransport]:
    transport = RetryTransport(
        httpx.MockTransport(handler),
        RetryPolicy(attempts=attempts, **policy),  # type: ignore[arg-type]
        stats,
        sleep=sleeps,
    )
    return httpx.AsyncClient(transport=transport), transport


async def test_retries_503_then_succeeds() -> None:
    server = Recorder([httpx.Response(503), httpx.Response(200, json={"ok": True})])
    sleeps = Sleeps()
    client, transport = _client(server, sleeps=sleeps)
    async with client:
        response = await client.get(URL)
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert len(server.requests) == 2
    assert _backoff_matches(sleeps, [1.0])
    assert transport.stats.by_reason == {"503": 1}
    assert transport.stats.total == 1


def _backoff_matches(sleeps: list[float], nominal: list[float]) -> bool:
    """Each wait is the nominal backoff plus at most 10 % jitter."""
    return len(sleeps) == len(nominal) and all(
        n <= s <= 1.1 * n for s, n in zip(sleeps, nominal, strict=True)
    )


async def test_exponential_backoff_capped() -> None:
    server = Recorder([httpx.Response(500)] * 5 + [httpx.Response(200)])
    sleeps = Sleeps()
    client, _ = _client(server, attempts=6, backoff_max=5.0, sleeps=sleeps)
    async with client:
        assert (await client.get(URL)).status_code == 200
    assert _backoff_matches(sleeps, [1.0, 2.0, 4.0, 5.0, 5.0])


@pytest.mark.parametrize("status", [429, 503])
async def test_honours_retry_after_seconds(status: int) -> None:
    server = Recorder([httpx.Response(status, headers={"Retry-After": "7"}), httpx.Response(200)])
    sleeps = Sleeps()
    client, _ = _client(server, sleeps=sleeps)
    async with client:
        assert (await client.get(URL)).status_code == 200
    assert sleeps == [7.0]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("100000", 60.0), ("1e308", 60.0), ("-5", 0.0), ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0)],
)
async def test_retry_after_is_clamped_to_the_longest_backoff(value: str, expected: float) -> None:
    """Huge values wait ``client_exponential_backoff_max`` (60 s), negative ones 0 s."""
    server = Recorder([httpx.Response(503, headers={"Retry-After": value}), httpx.Response(200)])
    sleeps = Sleeps()
    client, _ = _client(server, sleeps=sleeps, backoff_max=60.0)
    async with client:
        await client.get(URL)
    assert sleeps == [expected]


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "soon", ""])
async def test_unusable_retry_after_falls_back_to_backoff(value: str) -> None:
    server = Recorder([httpx.Response(503, headers={"Retry-After": value}), httpx.Response(200)])
    sleeps = Sleeps()
    client, _ = _client(server, sleeps=sleeps)
    async with client:
        await client.get(URL)
    assert _backoff_matches(sleeps, [1.0])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, 5.0),
        ("nan", 5.0),
        ("inf", 5.0),
        ("x", 5.0),
        ("-3", 1.0),
        ("0", 1.0),
        ("42", 42.0),
        ("1e12", 300.0),
    ],
)
def test_staging_wait_is_clamped(value: str | None, expected: float) -> None:
    assert staging_wait(value) == expected


async def test_body_dropped_mid_answer_is_retried_with_backoff() -> None:
    """A JSON answer whose connection breaks mid-body is retried by the transport, after a wait."""

    class Broken(httpx.AsyncByteStream):
        async def __aiter__(self):  # type: ignore[no-untyped-def]
            yield b'{"ok": '
            raise httpx.RemoteProtocolError("peer closed connection")

    answers = [
        httpx.Response(200, headers={"Content-Length": "12"}, stream=Broken()),
        httpx.Response(200, json={"ok": True}),
    ]
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return answers.pop(0)

    sleeps = Sleeps()
    client, transport = _client(handler, sleeps=sleeps)
    async with client:
        response = await client.get(URL)
    assert response.json() == {"ok": True}
    assert len(calls) == 2
    assert _backoff_matches(sleeps, [1.0])
    assert transport.stats.by_reason == {"RemoteProtocolError": 1}


async def test_invalid_retry_after_falls_back_to_backoff() -> None:
    server = Recorder([httpx.Response(503, headers={"Retry-After": "soon"}), httpx.Response(200)])
    sleeps = Sleeps()
    client, _ = _client(server, sleeps=sleeps)
    async with client:
        await client.get(URL)
    assert _backoff_matches(sleeps, [1.0])


async def test_gives_up_after_attempts() -> None:
    server = Recorder([httpx.Response(503, json={"message": "down"})])
    sleeps = Sleeps()
    stats = RetryStats()
    client, _ = _client(server, attempts=3, sleeps=sleeps, stats=stats)
    async with client:
        response = await client.get(URL)
    assert response.status_code == 503
    assert response.json() == {"message": "down"}  # the last response is readable
    assert len(server.requests) == 3
    assert _backoff_matches(sleeps, [1.0, 2.0])
    assert stats.by_reason == {"503": 2}


async def test_does_not_retry_other_statuses() -> None:
    server = Recorder([httpx.Response(404), httpx.Response(200)])
    sleeps = Sleeps()
    client, _ = _client(server, sleeps=sleeps)
    async with client:
        assert (await client.get(URL)).status_code == 404
    assert len(server.requests) == 1
    assert sleeps == []


async def test_request_marked_not_retryable_is_sent_once() -> None:
    server = Recorder([httpx.Response(503), httpx.Response(201)])
    sleeps = Sleeps()
    client, transport = _client(server, sleeps=sleeps)
    async with client:
        response = await client.post(URL, json={}, extensions={"ghga_retry": False})
    assert response.status_code == 503
    assert len(server.requests) == 1
    assert "X-Request-Id" in server.requests[0].headers
    assert transport.stats.total == 0


async def test_retries_connect_error() -> None:
    server = Recorder([httpx.ConnectError("refused"), httpx.Response(200)])
    sleeps = Sleeps()
    client, transport = _client(server, sleeps=sleeps)
    async with client:
        assert (await client.get(URL)).status_code == 200
    assert len(server.requests) == 2
    assert transport.stats.by_reason == {"ConnectError": 1}


async def test_reraises_transport_error_after_attempts() -> None:
    server = Recorder([httpx.ReadTimeout("slow")])
    sleeps = Sleeps()
    client, transport = _client(server, attempts=2, sleeps=sleeps)
    async with client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(URL)
    assert len(server.requests) == 2
    assert transport.stats.by_reason == {"ReadTimeout": 1}


async def test_fresh_request_id_per_attempt() -> None:
    server = Recorder([httpx.Response(502), httpx.Response(504), httpx.Response(200)])
    client, _ = _client(server, sleeps=Sleeps())
    async with client:
        await client.get(URL)
        await client.get(URL)
    ids = server.request_ids
    assert len(ids) == 4
    assert len(set(ids)) == 4
    for value in ids:
        assert uuid.UUID(value).version == 4


async def test_retry_stats_count_by_reason() -> None:
    stats = RetryStats()
    server = Recorder(
        [
            httpx.Response(503),
            httpx.ConnectError("x"),
            httpx.Response(429),
            httpx.Response(503),
            httpx.Response(200),
        ]
    )
    client, _ = _client(server, attempts=10, sleeps=Sleeps(), stats=stats)
    async with client:
        assert (await client.get(URL)).status_code == 200
    assert stats.by_reason == {"503": 2, "ConnectError": 1, "429": 1}
    assert stats.total == 4


async def test_retried_request_body_is_resent() -> None:
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.read())
        return httpx.Response(503 if len(bodies) == 1 else 200)

    client, _ = _client(handler, sleeps=Sleeps())
    async with client:
        await client.put(URL, content=b"part bytes")
    assert bodies == [b"part bytes", b"part bytes"]


def test_backoff_with_jitter_stays_in_bounds() -> None:
    policy = RetryPolicy(jitter=0.5, backoff_max=60.0)
    for attempt in range(1, 10):
        base = min(2.0 ** (attempt - 1), 60.0)
        assert base <= policy.backoff(attempt) <= 1.1 * base + 0.5


async def test_make_http_client_wraps_transport() -> None:
    # "Retry-After: 0" makes the real sleep instantaneous
    server = Recorder([httpx.Response(404, headers={"Retry-After": "0"})])
    stats = RetryStats()
    config = Config(client_num_retries=2, client_retry_status_codes=[404])
    async with make_http_client(
        config, user_agent="ghga-connector/test", stats=stats, transport=httpx.MockTransport(server)
    ) as client:
        response = await client.get(URL)
    assert response.status_code == 404
    assert len(server.requests) == 2
    assert server.requests[0].headers["User-Agent"] == "ghga-connector/test"
    assert stats.by_reason == {"404": 1}
