"""Proxies: the ``proxy`` setting and HTTPS_PROXY/HTTP_PROXY/ALL_PROXY/NO_PROXY route each
request (GHGA services and presigned S3 URLs alike) directly or through a proxy."""

from __future__ import annotations

import httpx
import pytest

from ghga_connector.adapters.http import (
    ProxyRoutes,
    ProxyRoutingTransport,
    no_proxy_matches,
    proxy_routes,
    safe_proxy_url,
)
from ghga_connector.config import Config, load_config
from ghga_connector.errors import ConfigurationError

PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "REQUEST_METHOD")


@pytest.fixture(autouse=True)
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "expected"),
    [
        ("*", "data.ghga.de", 443, True),
        ("ghga.de", "data.ghga.de", 443, True),
        (".ghga.de", "data.ghga.de", 443, True),
        ("ghga.de", "ghga.de", 443, True),
        ("ghga.de", "notghga.de", 443, False),
        ("s3.example.org:9000", "s3.example.org", 9000, True),
        ("s3.example.org:9000", "s3.example.org", 443, False),
        ("127.0.0.1", "127.0.0.1", 8080, True),
        ("10.0.0.0/8", "10.1.2.3", 80, True),
        ("10.0.0.0/8", "192.168.1.1", 80, False),
        ("localhost, ghga.de ", "data.ghga.de", 443, True),
        ("", "data.ghga.de", 443, False),
    ],
)
def test_no_proxy_matching(no_proxy: str, host: str, port: int, expected: bool) -> None:
    assert no_proxy_matches(no_proxy, host, port) is expected


def test_environment_proxies_by_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://secure-proxy:3128")
    monkeypatch.setenv("ALL_PROXY", "http://any-proxy:3128")
    monkeypatch.setenv("NO_PROXY", "s3.internal")
    routes = proxy_routes(None)
    assert routes.proxy_for(httpx.URL("https://data.ghga.de/x")) == "http://secure-proxy:3128"
    assert routes.proxy_for(httpx.URL("http://data.ghga.de/x")) == "http://any-proxy:3128"
    assert routes.proxy_for(httpx.URL("https://bucket.s3.internal/o?sig=1")) is None


def test_lower_case_variables_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://upper:1")
    monkeypatch.setenv("https_proxy", "http://lower:1")
    assert proxy_routes(None).by_scheme["https"] == "http://lower:1"


def test_setting_wins_over_environment_and_no_proxy_still_applies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://env-proxy:3128")
    monkeypatch.setenv("NO_PROXY", "direct.example.org")
    routes = proxy_routes("http://setting-proxy:8080")
    assert routes.proxy_for(httpx.URL("https://data.ghga.de")) == "http://setting-proxy:8080"
    assert routes.proxy_for(httpx.URL("http://data.ghga.de")) == "http://setting-proxy:8080"
    assert routes.proxy_for(httpx.URL("https://direct.example.org")) is None


def test_no_proxy_without_variables() -> None:
    assert proxy_routes(None) == ProxyRoutes()


def test_unsupported_proxy_scheme_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://user:pw@proxy:1080")
    with pytest.raises(ConfigurationError) as info:
        proxy_routes(None)
    assert "pw" not in info.value.message
    assert "socks5://user:***@proxy:1080" in info.value.message


@pytest.mark.parametrize("port", ["99999", "abc", "-1", "0"])
def test_a_proxy_with_a_bad_port_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, port: str
) -> None:
    """Exit 2 with one line, not a crash later inside a task group."""
    monkeypatch.setenv("HTTPS_PROXY", f"http://user:pw@proxy:{port}")
    with pytest.raises(ConfigurationError) as info:
        proxy_routes(None)
    assert "port from 1 to 65535" in info.value.message
    assert "pw" not in info.value.message
    assert info.value.exit_code == 2
    with pytest.raises(ConfigurationError) as setting:
        load_config(None, proxy=f"http://user:hunter2@proxy:{port}")
    assert "hunter2" not in setting.value.message


def test_proxy_setting_is_validated_without_echoing_it() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_config(None, proxy="ftp://user:hunter2@proxy")
    assert "proxy" in info.value.message
    assert "hunter2" not in info.value.message
    assert Config(proxy="http://proxy.example.org:3128").proxy == "http://proxy.example.org:3128"


def test_safe_proxy_url_hides_the_password() -> None:
    assert safe_proxy_url("http://me:secret@proxy:3128") == "http://me:***@proxy:3128"
    assert safe_proxy_url("http://proxy:3128") == "http://proxy:3128"


async def test_routing_transport_sends_each_request_its_way() -> None:
    seen: dict[str, list[str]] = {"direct": [], "proxied": []}

    def recorder(label: str) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            seen[label].append(str(request.url.host))
            return httpx.Response(200)

        return httpx.MockTransport(handle)

    built: list[str] = []

    def make_proxied(proxy: str) -> httpx.AsyncBaseTransport:
        built.append(proxy)
        return recorder("proxied")

    routes = ProxyRoutes(by_scheme={"https": "http://proxy:3128"}, no_proxy="s3.local")
    transport = ProxyRoutingTransport(recorder("direct"), routes, make_proxied)
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get("https://data.ghga.de/.well-known/values")
        await client.get("https://data.ghga.de/wps/health")
        await client.get("https://s3.local/bucket/key")
        await client.get("http://plain.example.org/")
    assert seen == {"direct": ["s3.local", "plain.example.org"], "proxied": ["data.ghga.de"] * 2}
    assert built == ["http://proxy:3128"]  # one pooled transport per proxy


async def test_a_proxy_that_cannot_be_reached_is_named_a_proxy_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    routes = ProxyRoutes(by_scheme={"https": "http://me:pw@proxy:3128"}, no_proxy="direct.org")
    transport = ProxyRoutingTransport(
        httpx.MockTransport(refuse), routes, lambda proxy: httpx.MockTransport(refuse)
    )
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ProxyError, match="through the proxy proxy:3128") as info:
            await client.get("https://data.ghga.de/")
        assert "pw" not in str(info.value)
        with pytest.raises(httpx.ConnectError):
            await client.get("https://direct.org/")
