"""A wide-area link for the benchmark: a bandwidth cap and a round-trip delay, both ways.

The ``wan`` cases run every client inside a network namespace that the harness creates
and removes itself. The namespace reaches the machine's servers (the sandbox's GHGA API
and its S3 endpoint, both on 127.0.0.1) only over a veth pair with link-local addresses
(``169.254.N.1`` on the host side, ``169.254.N.2`` inside; nothing is routed anywhere
else, so no byte leaves the machine):

    client ──lo── relay (namespace) ══veth, tbf both ways══ relay (host, delay) ──lo── servers
                 127.0.0.1:P          169.254.N.2 → 169.254.N.1:P                 127.0.0.1:P

- **Bandwidth**: a token bucket (``tc qdisc … tbf``) on the egress of both veth ends caps
  each direction at the link's rate. (``netem`` is not available on every kernel,
  including this project's benchmark machine; ``tbf`` is.)
- **Delay**: the relay on the host side holds every chunk it forwards for half the
  round-trip time in each direction (a delay line, so data stays pipelined: a stream is
  delayed, not slowed), and holds the first bytes of every new connection for one more
  round trip (the TCP handshake a real connection pays before its request leaves).
- **Same addresses**: the relay inside the namespace listens on 127.0.0.1 with the
  servers' own ports, so presigned URLs, the API URLs and the ``Host`` headers they were
  signed for stay unchanged.

What this models and what not: every request/response round trip (API calls, a part's
PUT and its answer, a connection's set-up) costs the configured round trip, and the
link's capacity is shared by all connections in each direction as on a real link. TCP's
own dynamics are only approximated: the TCP connections themselves run over a link with
no delay, so slow start and loss recovery happen at local speed, and the bytes one
connection has in flight are bounded by the relay's window (:data:`WINDOW`, the kernel's
default ``tcp_rmem`` maximum) plus socket buffers, not by a real receive window that
grows with the round trip. A single connection can therefore fill a long link a little
sooner than over a real WAN; many small requests see the full round trip cost.

Run by the harness through :func:`wan_link`; the relays are processes of this module
(``python -m benchmarks.wan relay …``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from benchmarks.env import REPO, Env
from benchmarks.model import GIB, MIB, Case, Summary

__all__ = [
    "CHUNK",
    "WAN_LINKS",
    "WINDOW",
    "DelayLine",
    "Link",
    "LinkPlan",
    "Relay",
    "WanUnavailableError",
    "case_link",
    "link_share",
    "main",
    "plan_link",
    "preflight",
    "remove_stale_links",
    "stale_namespaces",
    "wan_cases",
    "wan_link",
    "wan_table",
]

CHUNK = 256 * 1024
"""Bytes read from a socket at a time by a relay."""
WINDOW = 6 * 1024 * 1024
"""Bytes one direction of one connection may hold in the delay line (Linux's default
``tcp_rmem`` maximum, the most a receive window grows to without tuning)."""


class WanUnavailableError(RuntimeError):
    """The link cannot be emulated here (not root, no ``ip``/``tc``, no namespaces)."""


@dataclass(frozen=True)
class Link:
    """A link of ``mbit_s`` megabits per second (10^6) each way with ``rtt_ms`` round trip."""

    mbit_s: int
    rtt_ms: int

    @property
    def bytes_per_s(self) -> float:
        """The link's capacity in bytes per second, each way."""
        return self.mbit_s * 1e6 / 8

    @property
    def one_way_s(self) -> float:
        """Half the round trip, in seconds: the delay of each direction."""
        return self.rtt_ms / 2000

    @property
    def label(self) -> str:
        """``1000Mbit+30ms``."""
        return f"{self.mbit_s}Mbit+{self.rtt_ms}ms"

    @property
    def burst_bytes(self) -> int:
        """The token bucket's depth: 4 ms at the link rate, at least 64 KiB (a GSO packet)."""
        return max(64 * 1024, int(self.bytes_per_s * 0.004))

    @property
    def queue_bytes(self) -> int:
        """The bytes ``tbf`` may queue before it drops: 20 ms at the link rate, ≥ 256 KiB."""
        return max(256 * 1024, int(self.bytes_per_s * 0.02))


WAN_LINKS = (Link(1000, 30), Link(200, 100))
"""The links of the ``wan`` cases: a good national research network path and a long one."""


def link_share(mb_per_s: float | None, link_mbit_s: int | None) -> float | None:
    """Plaintext MB/s (10^6 B/s) as a share of the link's capacity (1.0 = full link)."""
    if not mb_per_s or not link_mbit_s:
        return None
    return mb_per_s / (link_mbit_s / 8)


# ---------------------------------------------------------------------------------------
# the delay line and the relay


class DelayLine:
    """One direction of one connection: chunks leave ``delay_s`` after they came in.

    ``not_before``: no chunk leaves before this monotonic time (plus ``delay_s``): one
    round trip after the connection was accepted for the client's direction, modelling
    the TCP handshake. :meth:`put` blocks while ``window`` bytes are waiting, so a fast
    sender is held back as a full receive window would hold it. Chunks keep their order.
    ``None`` marks the end of the stream.
    """

    def __init__(
        self,
        delay_s: float,
        window: int = WINDOW,
        not_before: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.delay_s = delay_s
        self.window = window
        self.not_before = not_before
        self._clock = clock
        self._items: deque[tuple[float, bytes | None]] = deque()
        self._queued = 0
        self._cond = threading.Condition()
        self._closed = False

    def due(self, now: float) -> float:
        """When a chunk that arrives at ``now`` may leave (the clock is monotonic, so never
        before an earlier chunk)."""
        return max(now, self.not_before) + self.delay_s

    def put(self, chunk: bytes | None) -> None:
        """Queue a chunk (``None``: end of stream); blocks while the window is full."""
        with self._cond:
            while chunk and self._queued >= self.window and not self._closed:
                self._cond.wait()
            self._items.append((self.due(self._clock()), chunk))
            self._queued += len(chunk or b"")
            self._cond.notify_all()

    def get(self, sleep: Callable[[float], None] = time.sleep) -> bytes | None:
        """The next chunk once it is due (``None``: end of stream or closed)."""
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait()
            if self._closed and not self._items:
                return None
            due, chunk = self._items[0]
        wait = due - self._clock()
        if wait > 0:
            sleep(wait)
        with self._cond:
            self._items.popleft()
            self._queued -= len(chunk or b"")
            self._cond.notify_all()
        return chunk

    def close(self) -> None:
        """Wake every waiter; :meth:`get` returns ``None`` once the queue is empty."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def _pump_plain(src: socket.socket, dst: socket.socket) -> None:
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with contextlib.suppress(OSError):
        while True:
            n = src.recv_into(buf)
            if not n:
                break
            dst.sendall(view[:n])
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def _pump_delayed(src: socket.socket, dst: socket.socket, line: DelayLine) -> None:
    def reader() -> None:
        with contextlib.suppress(OSError):
            while True:
                data = src.recv(CHUNK)
                if not data:
                    break
                line.put(data)
        line.put(None)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        while (chunk := line.get()) is not None:
            dst.sendall(chunk)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        with contextlib.suppress(OSError):
            src.shutdown(socket.SHUT_RDWR)
    finally:
        line.close()


@dataclass
class Relay:
    """Accepts on ``listen`` and forwards each connection to ``target`` (``(host, port)``).

    ``one_way_s`` > 0: every chunk is held that long in each direction, and the client's
    first bytes one round trip (``2 × one_way_s``) longer (the handshake).
    """

    listen: tuple[str, int]
    target: tuple[str, int]
    one_way_s: float = 0.0
    window: int = WINDOW
    _sock: socket.socket | None = field(default=None, repr=False)

    def start(self) -> None:
        """Bind, listen and accept in a daemon thread."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(self.listen)
        sock.listen(128)
        self._sock = sock
        self.listen = (self.listen[0], int(sock.getsockname()[1]))
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        """Stop accepting (open connections end with their peers)."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()

    def _accept(self) -> None:
        assert self._sock is not None
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        accepted = time.monotonic()
        try:
            upstream = socket.create_connection(self.target, timeout=30)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.one_way_s > 0:
            rtt = 2 * self.one_way_s
            up = DelayLine(self.one_way_s, self.window, not_before=accepted + rtt)
            down = DelayLine(self.one_way_s, self.window)
            jobs = [(_pump_delayed, client, upstream, up), (_pump_delayed, upstream, client, down)]
        else:
            jobs = [(_pump_plain, client, upstream), (_pump_plain, upstream, client)]
        threads = [threading.Thread(target=j[0], args=j[1:], daemon=True) for j in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for s in (client, upstream):
            s.close()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def relay_main(argv: Sequence[str]) -> int:
    """``relay --pair LISTEN=TARGET … [--one-way-ms MS]``: run until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.wan relay")
    parser.add_argument("--pair", action="append", required=True, metavar="HOST:PORT=HOST:PORT")
    parser.add_argument("--one-way-ms", type=float, default=0.0)
    parser.add_argument("--window", type=int, default=WINDOW)
    args = parser.parse_args(argv)
    relays = []
    for pair in args.pair:
        listen, _, target = pair.partition("=")
        relay = Relay(_address(listen), _address(target), args.one_way_ms / 1000, args.window)
        relay.start()
        relays.append(relay)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    for relay in relays:
        relay.close()
    return 0


# ---------------------------------------------------------------------------------------
# the namespace


@dataclass(frozen=True)
class LinkPlan:
    """Names and addresses of one emulated link (``pid`` keeps runs apart)."""

    link: Link
    pid: int
    ports: tuple[int, ...]

    @property
    def netns(self) -> str:
        """The namespace's name."""
        return f"{NETNS_PREFIX}{self.pid}"

    @property
    def host_if(self) -> str:
        """The host end of the veth pair (at most 15 characters)."""
        return f"gbw{self.pid % 1_000_000}h"

    @property
    def ns_if(self) -> str:
        """The namespace end of the veth pair."""
        return f"gbw{self.pid % 1_000_000}n"

    @property
    def host_ip(self) -> str:
        """The host end's link-local address."""
        return f"169.254.{1 + self.pid % 253}.1"

    @property
    def ns_ip(self) -> str:
        """The namespace end's link-local address."""
        return f"169.254.{1 + self.pid % 253}.2"

    def setup_commands(self) -> list[list[str]]:
        """``ip``/``tc`` commands that create the namespace, the veth pair and the shaping."""
        tbf = [
            "root",
            "tbf",
            "rate",
            f"{self.link.mbit_s}mbit",
            "burst",
            str(self.link.burst_bytes),
            "limit",
            str(self.link.queue_bytes),
        ]
        ns = ["ip", "netns", "exec", self.netns]
        return [
            ["ip", "netns", "add", self.netns],
            ["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if],
            ["ip", "link", "set", self.ns_if, "netns", self.netns],
            ["ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if],
            ["ip", "link", "set", self.host_if, "up"],
            ["ip", "-n", self.netns, "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if],
            ["ip", "-n", self.netns, "link", "set", self.ns_if, "up"],
            ["ip", "-n", self.netns, "link", "set", "lo", "up"],
            ["tc", "qdisc", "add", "dev", self.host_if, *tbf],
            [*ns, "tc", "qdisc", "add", "dev", self.ns_if, *tbf],
        ]

    def teardown_commands(self) -> list[list[str]]:
        """Remove the veth pair (both ends) and the namespace."""
        return [["ip", "link", "del", self.host_if], ["ip", "netns", "del", self.netns]]

    def host_relay_args(self) -> list[str]:
        """The host relay: the veth address → the servers on loopback, with the delay."""
        pairs = [f"--pair={self.host_ip}:{p}=127.0.0.1:{p}" for p in self.ports]
        return [*pairs, f"--one-way-ms={self.link.rtt_ms / 2}"]

    def ns_relay_args(self) -> list[str]:
        """The namespace relay: loopback with the servers' ports → the host relay."""
        return [f"--pair=127.0.0.1:{p}={self.host_ip}:{p}" for p in self.ports]

    @property
    def prefix(self) -> list[str]:
        """The command prefix that runs a client inside the namespace."""
        return ["ip", "netns", "exec", self.netns]


def plan_link(link: Link, urls: Sequence[str], pid: int | None = None) -> LinkPlan:
    """The plan for ``link`` in front of the servers at ``urls`` (``http://127.0.0.1:P``)."""
    ports = []
    for url in urls:
        parts = urlsplit(url)
        if parts.hostname != "127.0.0.1" or not parts.port:
            raise WanUnavailableError(f"the wan case needs servers on 127.0.0.1:PORT, not {url}")
        ports.append(parts.port)
    return LinkPlan(link, os.getpid() if pid is None else pid, tuple(dict.fromkeys(ports)))


def _run(cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=30, check=False)


def preflight() -> str | None:
    """``None`` if a link can be emulated here, else one line saying why not and what to do.

    Creates and removes a test namespace with a veth pair and ``tbf`` on it.
    """
    if os.geteuid() != 0:
        return (
            "the wan case needs root (it creates a network namespace with ip and tc); "
            "run it as root or leave it out of --cases"
        )
    missing = [t for t in ("ip", "tc") if shutil.which(t) is None]
    if missing:
        return f"the wan case needs {' and '.join(missing)} (iproute2); install it or leave wan out"
    plan = LinkPlan(WAN_LINKS[0], os.getpid(), ())
    try:
        for cmd in plan.setup_commands():
            done = _run(cmd)
            if done.returncode != 0:
                return (
                    f"the wan case cannot emulate a link here: `{' '.join(cmd)}` failed: "
                    f"{done.stderr.strip() or done.stdout.strip()}"
                )
    finally:
        for cmd in plan.teardown_commands():
            _run(cmd)
    return None


NETNS_PREFIX = "ghgabench-wan-"


def stale_namespaces(listing: str, alive: Callable[[int], bool]) -> list[LinkPlan]:
    """Links left by harness runs that are gone (``listing``: ``ip netns list`` output).

    A run removes its link itself, also on errors; one that was killed (SIGKILL, power)
    cannot, and its namespace and veth pair would stay until the next run removes them.
    """
    plans = []
    for line in listing.splitlines():
        name = line.split(" ", 1)[0]
        pid_text = name.removeprefix(NETNS_PREFIX)
        if name.startswith(NETNS_PREFIX) and pid_text.isdigit() and not alive(int(pid_text)):
            plans.append(LinkPlan(WAN_LINKS[0], int(pid_text), ()))
    return plans


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_links(log: Callable[[str], None]) -> None:
    """Remove the namespaces and veth pairs of harness runs that no longer exist."""
    for plan in stale_namespaces(_run(["ip", "netns", "list"]).stdout, _alive):
        for cmd in plan.teardown_commands():
            _run(cmd)
        log(f"removed the link left by run {plan.pid} ({plan.netns})")


def _start_relay(prefix: Sequence[str], args: Sequence[str]) -> subprocess.Popen[str]:
    cmd = [*prefix, sys.executable, "-m", "benchmarks.wan", "relay", *args]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        cwd=REPO,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        rest = proc.communicate(timeout=10)[0]
        raise WanUnavailableError(f"the link relay did not start: {line}{rest}".strip())
    return proc


def _stop_relay(proc: subprocess.Popen[str]) -> float:
    """Stop a relay; its CPU seconds (user + sys)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        _, _, usage = os.wait4(proc.pid, 0)
    except ChildProcessError:
        return 0.0
    proc.returncode = 0
    return usage.ru_utime + usage.ru_stime


@contextmanager
def wan_link(
    link: Link, urls: Sequence[str], log: Callable[[str], None]
) -> Iterator[tuple[list[str], tuple[int, ...]]]:
    """Create the link in front of the servers at ``urls``.

    Yields the command prefix that runs a client inside the namespace and the relays'
    process ids. Removes the relays, the veth pair and the namespace afterwards, whatever
    happens. Raises :class:`WanUnavailableError` if any step fails.
    """
    plan = plan_link(link, urls)
    remove_stale_links(log)
    relays: list[subprocess.Popen[str]] = []
    try:
        for cmd in plan.setup_commands():
            done = _run(cmd)
            if done.returncode != 0:
                raise WanUnavailableError(
                    f"`{' '.join(cmd)}` failed: {done.stderr.strip() or done.stdout.strip()}"
                )
        relays.append(_start_relay([], plan.host_relay_args()))
        relays.append(_start_relay(plan.prefix, plan.ns_relay_args()))
        log(
            f"link {link.label} up: namespace {plan.netns}, {plan.ns_ip} -> {plan.host_ip}, "
            f"tbf {link.mbit_s} Mbit/s both ways, {link.rtt_ms} ms round trip in the relay"
        )
        yield plan.prefix, tuple(p.pid for p in relays)
    finally:
        cpu = sum(_stop_relay(p) for p in relays)
        for cmd in plan.teardown_commands():
            _run(cmd)
        log(f"link {link.label} removed (relays used {cpu:.1f} CPU-s)")


@contextmanager
def case_link(env: Env, case: Case) -> Iterator[None]:
    """Run ``case``'s client commands over its link (nothing to do for a loopback case)."""
    if not case.link_mbit_s:
        yield
        return
    urls = [env.sandbox.url, env.sandbox.s3_url]
    with wan_link(Link(case.link_mbit_s, case.rtt_ms), urls, env.opts.log) as (prefix, pids):
        env.prefix, env.link_pids = prefix, pids
        try:
            yield
        finally:
            env.prefix, env.link_pids = [], ()


def wan_cases() -> list[Case]:
    """The ``wan`` cases: 1 GiB and 50 x 8 MiB over each of :data:`WAN_LINKS`."""
    return [
        Case("wan", count, size, "random", link_mbit_s=link.mbit_s, rtt_ms=link.rtt_ms)
        for count, size in ((1, GIB), (50, 8 * MIB))
        for link in WAN_LINKS
    ]


def wan_table(summaries: Sequence[Summary]) -> list[str]:
    """The ``## Over an emulated link`` section of ``latest.md`` (empty without wan rows)."""
    rows = [(s, r) for s in summaries for r in s.reps[:1] if r.link_mbit_s]
    if not rows:
        return []
    lines = [
        "",
        "## Over an emulated link",
        "",
        "Every client ran in a network namespace behind a veth pair with a `tbf` bandwidth "
        "cap on both ends and a relay adding the round trip (`benchmarks/wan.py`). share = "
        "plaintext MB/s over the link's capacity in MB/s (Mbit/s ÷ 8), start-up included. "
        "Relay CPU-s = the two relay processes' CPU while the command ran (they share the "
        "machine with client and servers).",
        "",
        "| link | case | direction | tool | MB/s | share of link | vs 4.0.1 | vs boto3 "
        "| client CPU-s/GiB | relay CPU-s |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s, r in rows:
        speed = s.median("mb_per_s")
        share = link_share(speed, r.link_mbit_s)
        cells = [
            f"{r.link_mbit_s} Mbit/s, {r.rtt_ms} ms",
            s.case.split("@", 1)[0],
            s.direction,
            s.tool,
            f"{speed:.1f}" if speed else "–",
            f"{share:.0%}" if share is not None else "–",
            f"{s.ratio_vs_401:.2f}" if s.ratio_vs_401 else "–",
            f"{s.ratio_vs_boto3:.2f}" if s.ratio_vs_boto3 else "–",
            f"{v:.2f}" if (v := s.median("cpu_s_per_gib")) is not None else "–",
            f"{v:.1f}" if (v := s.median("link_cpu_s")) else "–",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.wan relay …`` (used by :func:`wan_link`) or ``check``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["relay"]:
        return relay_main(args[1:])
    if args[:1] == ["check"]:
        problem = preflight()
        print(problem or "a link can be emulated here")
        return 1 if problem else 0
    print("usage: python -m benchmarks.wan {check | relay --pair L=T ...}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
