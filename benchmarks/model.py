"""Typed benchmark results: cases, one measured row per repetition, summaries over them.

A :class:`Row` is one tool x case x direction x repetition as measured. A
:class:`Summary` groups the repetitions of one tool x case x direction: median, minimum
and maximum of each figure over the repetitions that passed their check, and the ratios
to 4.0.1, to boto3 and to the crypto floor computed from the medians.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

__all__ = [
    "BOTO3",
    "FLOOR",
    "GIB",
    "MIB",
    "OURS",
    "OURS_2STEP",
    "V401",
    "Case",
    "ClientRun",
    "Direction",
    "FloorRow",
    "Row",
    "Spread",
    "Summary",
    "human_size",
    "jain_fairness",
    "rotated",
    "summarize",
]

OURS = "ghga-connector"
OURS_2STEP = "ghga-connector-2step"
V401 = "ghga-connector-4.0.1"
BOTO3 = "boto3"
FLOOR = "crypto-floor"

MIB = 1 << 20
GIB = 1 << 30

Direction = Literal["upload", "download"]
T = TypeVar("T")


def human_size(n: int) -> str:
    """``1GiB``, ``256MiB``, ``8MiB`` (binary units, no fraction when exact)."""
    for unit, factor in (("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n}B"


@dataclass(frozen=True)
class Case:
    """One workload: ``count`` files of ``size`` bytes on a sandbox with ``latency_ms``.

    ``clients`` > 1: the files are shared out to that many client processes that run at
    once, each with its own box or work package. ``multi``: one of the multi-client
    comparison's cases, named ``/1client`` or ``/4clients``. ``pool``: the number of
    generated files the case takes its first ``count`` from (0: ``count``), so that the
    one-client case uses one of the multi-client case's files. ``tools`` limits the tools
    of the case (empty: all selected ones).
    """

    key: str
    count: int
    size: int
    source: str  # "bam" or "random"
    latency_ms: int = 0
    clients: int = 1
    multi: bool = False
    pool: int = 0
    tools: tuple[str, ...] = ()
    link_mbit_s: int = 0
    """With ``rtt_ms``: the clients reach the servers over an emulated link
    (:mod:`benchmarks.wan`) of this many Mbit/s each way; 0: loopback."""
    rtt_ms: int = 0

    @property
    def data_name(self) -> str:
        """The label of the input files, e.g. ``200x8MiB`` (the same with and without latency)."""
        label = f"{self.pool or self.count}x{human_size(self.size)}"
        return label + "-bam" if self.source == "bam" else label

    @property
    def name(self) -> str:
        """The case label in results, e.g. ``1x1GiB-bam``, ``200x8MiB+50ms``, ``4x1GiB/4clients``."""
        name = f"{self.count}x{human_size(self.size)}" + ("-bam" if self.source == "bam" else "")
        name += f"+{self.latency_ms}ms" if self.latency_ms else ""
        name += f"@{self.link_mbit_s}Mbit+{self.rtt_ms}ms" if self.link_mbit_s else ""
        if self.multi:
            name += "/1client" if self.clients == 1 else f"/{self.clients}clients"
        return name

    @property
    def total_bytes(self) -> int:
        """Plaintext bytes of the whole case."""
        return self.count * self.size

    def runs(self, tool: str) -> bool:
        """Whether ``tool`` takes part in this case."""
        return not self.tools or tool in self.tools


@dataclass(frozen=True)
class ClientRun:
    """One client process of a multi-client row: its own wall time, CPU and memory."""

    files: int
    bytes: int
    wall_s: float
    cpu_s: float
    peak_rss_bytes: int
    ok: bool

    @property
    def mb_per_s(self) -> float | None:
        """Its own plaintext MB/s (10^6 bytes per second)."""
        return self.bytes / self.wall_s / 1e6 if self.wall_s > 0 else None


@dataclass
class Row:
    """One tool x case x direction x repetition, as measured.

    Times in seconds, sizes in bytes. ``cpu_s`` is user + sys of the client's process
    tree (for several clients: their sum); ``peak_rss_bytes`` is the client's own peak
    (for several clients: the largest one). ``sandbox_cpu_s`` / ``s3_cpu_s`` are the CPU
    seconds the sandbox and the S3 server spent while the command ran and ``api_calls``
    the GHGA API requests the sandbox answered meanwhile (``None``: not measured).
    """

    tool: str
    case: str
    direction: Direction
    files: int
    bytes: int
    ok: bool
    rep: int = 1
    error: str | None = None
    check: str | None = None
    wall_s: float | None = None
    cpu_s: float | None = None
    user_s: float | None = None
    sys_s: float | None = None
    peak_rss_bytes: int | None = None
    api_latency_ms: int = 0
    s3: str | None = None
    reused_from: str | None = None
    sandbox_cpu_s: float | None = None
    s3_cpu_s: float | None = None
    api_calls: int | None = None
    steps: list[dict[str, object]] = field(default_factory=list)
    clients: list[ClientRun] = field(default_factory=list)
    link_mbit_s: int | None = None
    """The emulated link's capacity each way (``None``: loopback, no link)."""
    rtt_ms: int | None = None
    """The emulated link's round trip in milliseconds (``None``: loopback)."""
    link_cpu_s: float | None = None
    """CPU seconds of the link's relays while the command ran (``None``: no link)."""

    @property
    def mb_per_s(self) -> float | None:
        """Plaintext MB/s (10^6 bytes per wall-clock second, start-up included)."""
        if self.wall_s is None or self.wall_s <= 0:
            return None
        return self.bytes / self.wall_s / 1e6

    @property
    def cpu_s_per_gib(self) -> float | None:
        """Client CPU seconds per GiB of plaintext."""
        if self.cpu_s is None or not self.bytes:
            return None
        return self.cpu_s * GIB / self.bytes

    @property
    def fairness(self) -> float | None:
        """Jain's fairness index of the clients' own MB/s (1.0 = all equal), if several."""
        speeds = [c.mb_per_s for c in self.clients if c.mb_per_s is not None]
        return jain_fairness(speeds) if len(speeds) > 1 else None

    def fail(self, error: str) -> None:
        """Mark the row failed, keeping an earlier error first."""
        self.ok = False
        self.error = error if not self.error else f"{self.error}; {error}"

    def to_json(self) -> dict[str, Any]:
        """A JSON object with the derived figures rounded for reading."""
        data: dict[str, Any] = {
            "rep": self.rep,
            "ok": self.ok,
            "error": self.error,
            "check": self.check,
            "wall_s": _round(self.wall_s, 3),
            "mb_per_s": _round(self.mb_per_s, 2),
            "cpu_s": _round(self.cpu_s, 3),
            "user_s": _round(self.user_s, 3),
            "sys_s": _round(self.sys_s, 3),
            "cpu_s_per_gib": _round(self.cpu_s_per_gib, 3),
            "peak_rss_bytes": self.peak_rss_bytes,
            "sandbox_cpu_s": _round(self.sandbox_cpu_s, 3),
            "s3_cpu_s": _round(self.s3_cpu_s, 3),
            "api_calls": self.api_calls,
            "reused_from": self.reused_from,
        }
        if self.link_mbit_s:
            data["link_mbit_s"] = self.link_mbit_s
            data["rtt_ms"] = self.rtt_ms
            data["link_cpu_s"] = _round(self.link_cpu_s, 3)
        if self.steps:
            data["steps"] = self.steps
        if self.clients:
            data["fairness"] = _round(self.fairness, 3)
            data["clients"] = [
                {
                    "files": c.files,
                    "bytes": c.bytes,
                    "wall_s": round(c.wall_s, 3),
                    "mb_per_s": _round(c.mb_per_s, 2),
                    "cpu_s": round(c.cpu_s, 3),
                    "peak_rss_bytes": c.peak_rss_bytes,
                    "ok": c.ok,
                }
                for c in self.clients
            ]
        return data


@dataclass(frozen=True)
class FloorRow:
    """The crypto floor of one direction: CPU-s per GiB on one core, fastest AEAD."""

    direction: Direction
    bytes: int
    cpu_s: float
    aead: str
    by_aead: dict[str, float]

    @property
    def cpu_s_per_gib(self) -> float:
        """CPU seconds per GiB of plaintext."""
        return self.cpu_s * GIB / self.bytes

    def to_json(self) -> dict[str, Any]:
        """A JSON object."""
        return {
            "tool": FLOOR,
            "direction": self.direction,
            "bytes": self.bytes,
            "cpu_s": round(self.cpu_s, 3),
            "cpu_s_per_gib": round(self.cpu_s_per_gib, 3),
            "mb_per_s_per_core": round(self.bytes / self.cpu_s / 1e6, 1),
            "aead": self.aead,
            "cpu_s_per_gib_by_aead": self.by_aead,
        }


@dataclass(frozen=True)
class Spread:
    """Median, minimum and maximum of one figure over repetitions."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Spread | None:
        """The spread of the values that are not ``None`` (``None`` if there are none)."""
        xs = [float(v) for v in values if v is not None]
        if not xs:
            return None
        return cls(statistics.median(xs), min(xs), max(xs), len(xs))

    def to_json(self, digits: int = 3) -> dict[str, float | int]:
        """``{"median", "min", "max", "n"}``."""
        return {
            "median": round(self.median, digits),
            "min": round(self.low, digits),
            "max": round(self.high, digits),
            "n": self.n,
        }


def jain_fairness(values: Sequence[float]) -> float:
    """Jain's index ``(Σx)² / (n·Σx²)``: 1.0 when all are equal, 1/n when one gets all."""
    square_sum = sum(x * x for x in values)
    if not values or square_sum == 0:
        return 1.0
    return sum(values) ** 2 / (len(values) * square_sum)


def rotated(items: Sequence[T], rep: int) -> list[T]:
    """``items`` rotated left by ``rep - 1`` (repetition 1 keeps the order)."""
    if not items:
        return []
    k = (rep - 1) % len(items)
    return [*items[k:], *items[:k]]


@dataclass
class Summary:
    """All repetitions of one tool x case x direction, with medians and ratios.

    Spreads are over the repetitions that passed (``ok``); the summary is ``ok`` only if
    every repetition passed. Ratios use medians: ``ratio_vs_401`` / ``ratio_vs_boto3``
    are throughput ratios in the same case and direction, ``cpu_vs_floor`` divides the
    median CPU-s/GiB by the crypto floor of the direction, ``transport_cpu_s_per_gib``
    subtracts it (not for boto3, which does no crypto), ``vs_one_client`` divides a multi-client case's median aggregate MB/s
    by the same tool's median MB/s with one client on the same files.
    """

    tool: str
    case: str
    direction: Direction
    files: int
    bytes: int
    api_latency_ms: int
    reps: list[Row]
    clients: int = 1
    ratio_vs_401: float | None = None
    ratio_vs_boto3: float | None = None
    cpu_vs_floor: float | None = None
    transport_cpu_s_per_gib: float | None = None
    vs_one_client: float | None = None

    @property
    def ok(self) -> bool:
        """Every repetition passed its check."""
        return bool(self.reps) and all(r.ok for r in self.reps)

    @property
    def good(self) -> list[Row]:
        """The repetitions that passed."""
        return [r for r in self.reps if r.ok]

    @property
    def file_size(self) -> int:
        """Bytes per file."""
        return self.bytes // self.files if self.files else 0

    @property
    def reused_from(self) -> str | None:
        """The case the rows were copied from (boto3 in a latency case), if any."""
        return next((r.reused_from for r in self.reps if r.reused_from), None)

    def spread(self, name: str) -> Spread | None:
        """Median/min/max of a :class:`Row` attribute over the passing repetitions."""
        return Spread.of(getattr(r, name) for r in self.good)

    def median(self, name: str) -> float | None:
        """The median of a :class:`Row` attribute over the passing repetitions."""
        spread = self.spread(name)
        return spread.median if spread else None

    def per_file(self, name: str) -> float | None:
        """The median of a :class:`Row` attribute divided by the number of files."""
        value = self.median(name)
        return None if value is None or not self.files else value / self.files

    def to_json(self) -> dict[str, Any]:
        """A JSON object: identity, spreads, ratios and every repetition."""

        def spread(name: str, digits: int = 3) -> dict[str, float | int] | None:
            s = self.spread(name)
            return s.to_json(digits) if s else None

        return {
            "tool": self.tool,
            "case": self.case,
            "direction": self.direction,
            "files": self.files,
            "bytes": self.bytes,
            "clients": self.clients,
            "api_latency_ms": self.api_latency_ms,
            "ok": self.ok,
            "reused_from": self.reused_from,
            "mb_per_s": spread("mb_per_s", 2),
            "wall_s": spread("wall_s"),
            "cpu_s_per_gib": spread("cpu_s_per_gib"),
            "peak_rss_bytes": spread("peak_rss_bytes", 0),
            "sandbox_cpu_s": spread("sandbox_cpu_s"),
            "s3_cpu_s": spread("s3_cpu_s"),
            "api_calls": spread("api_calls", 1),
            "fairness": spread("fairness"),
            "per_file": {
                "cpu_s": _round(self.per_file("cpu_s"), 4),
                "api_calls": _round(self.per_file("api_calls"), 2),
                "sandbox_cpu_s": _round(self.per_file("sandbox_cpu_s"), 4),
            },
            "ratio_vs_401": _round(self.ratio_vs_401, 3),
            "ratio_vs_boto3": _round(self.ratio_vs_boto3, 3),
            "cpu_vs_floor": _round(self.cpu_vs_floor, 2),
            "transport_cpu_s_per_gib": _round(self.transport_cpu_s_per_gib, 3),
            "vs_one_client": _round(self.vs_one_client, 3),
            **self._link_json(),
            "reps": [r.to_json() for r in self.reps],
        }

    def _link_json(self) -> dict[str, Any]:
        """``link_mbit_s``, ``rtt_ms`` and ``link_share`` (MB/s over the link's MB/s) if any."""
        link = next((r for r in self.reps if r.link_mbit_s), None)
        if link is None or link.link_mbit_s is None:
            return {}
        speed = self.median("mb_per_s")
        share = speed / (link.link_mbit_s / 8) if speed else None
        return {
            "link_mbit_s": link.link_mbit_s,
            "rtt_ms": link.rtt_ms,
            "link_share": _round(share, 3),
            "link_cpu_s": self.spread("link_cpu_s").to_json()
            if self.spread("link_cpu_s")
            else None,
        }


def summarize(rows: Sequence[Row], floors: Sequence[FloorRow] = ()) -> list[Summary]:
    """Group rows by tool x case x direction (in first-seen order) and fill the ratios."""
    groups: dict[tuple[str, str, str], Summary] = {}
    for row in rows:
        key = (row.tool, row.case, row.direction)
        if key not in groups:
            groups[key] = Summary(
                tool=row.tool,
                case=row.case,
                direction=row.direction,
                files=row.files,
                bytes=row.bytes,
                api_latency_ms=row.api_latency_ms,
                reps=[],
                clients=max(1, len(row.clients)),
            )
        groups[key].reps.append(row)
    summaries = list(groups.values())
    floor = {f.direction: f.cpu_s_per_gib for f in floors}
    for s in summaries:
        speed = s.median("mb_per_s")
        if not s.ok or not speed:
            continue
        for ref_tool, attr in ((V401, "ratio_vs_401"), (BOTO3, "ratio_vs_boto3")):
            ref = groups.get((ref_tool, s.case, s.direction))
            ref_speed = ref.median("mb_per_s") if ref and ref.ok else None
            if ref_speed:
                setattr(s, attr, speed / ref_speed)
        cpu = s.median("cpu_s_per_gib")
        if s.direction in floor and cpu is not None:
            s.cpu_vs_floor = cpu / floor[s.direction]
            if s.tool != BOTO3:  # boto3 does no crypto: all its CPU is transport
                s.transport_cpu_s_per_gib = cpu - floor[s.direction]
    _fill_vs_one_client(summaries)
    return summaries


def _fill_vs_one_client(summaries: list[Summary]) -> None:
    """Multi-client summaries: aggregate median MB/s over the one-client median."""
    single = {
        (s.tool, s.direction, s.file_size): s
        for s in summaries
        if s.clients == 1 and s.ok and s.case.endswith("/1client")
    }
    for s in summaries:
        if s.clients > 1 and s.ok:
            one = single.get((s.tool, s.direction, s.file_size))
            speed, one_speed = s.median("mb_per_s"), one.median("mb_per_s") if one else None
            if speed and one_speed:
                s.vs_one_client = speed / one_speed


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
