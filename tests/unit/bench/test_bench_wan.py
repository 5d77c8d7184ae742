"""The emulated link of the ``wan`` cases: delay line, relay, namespace plan, row fields."""

from __future__ import annotations

import socket
import threading

import pytest
from benchmarks import wan
from benchmarks.model import GIB, Case, Row, summarize
from benchmarks.runner import make_cases, row_from
from benchmarks.wan import DelayLine, Link, Relay, link_share, plan_link


class FakeClock:
    """A clock that only moves when told to (or when :meth:`sleep` is called)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_delay_line_holds_every_chunk_for_the_one_way_delay() -> None:
    clock = FakeClock()
    line = DelayLine(0.015, clock=clock)
    line.put(b"a")
    clock.now += 0.005
    line.put(b"b")
    assert line.get(clock.sleep) == b"a"
    assert clock.slept == [pytest.approx(0.010)]  # arrived 5 ms ago, due after 15 ms
    assert line.get(clock.sleep) == b"b"
    assert clock.slept[-1] == pytest.approx(0.005)


def test_delay_line_first_bytes_wait_for_the_handshake() -> None:
    clock = FakeClock()
    rtt = 0.1
    line = DelayLine(rtt / 2, clock=clock, not_before=clock.now + rtt)
    line.put(b"request")
    assert line.get(clock.sleep) == b"request"
    assert sum(clock.slept) == pytest.approx(rtt + rtt / 2)  # handshake + one way


def test_delay_line_keeps_order_and_ends_with_none() -> None:
    clock = FakeClock()
    line = DelayLine(0.05, clock=clock, not_before=clock.now + 0.1)
    line.put(b"1")
    clock.now += 0.2  # past not_before: a later chunk would be due earlier than the first
    line.put(b"2")
    line.put(None)
    assert [line.get(clock.sleep), line.get(clock.sleep), line.get(clock.sleep)] == [
        b"1",
        b"2",
        None,
    ]


def test_delay_line_put_waits_while_the_window_is_full() -> None:
    clock = FakeClock()
    line = DelayLine(0.0, window=4, clock=clock)
    line.put(b"abcd")
    done = threading.Event()

    def second() -> None:
        line.put(b"efgh")
        done.set()

    thread = threading.Thread(target=second, daemon=True)
    thread.start()
    assert not done.wait(0.2)  # blocked: 4 bytes of a 4-byte window are waiting
    assert line.get(clock.sleep) == b"abcd"
    thread.join(10)
    assert done.is_set()
    assert line.get(clock.sleep) == b"efgh"


def _echo_server() -> tuple[socket.socket, int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data[::-1])

    threading.Thread(target=serve, daemon=True).start()
    return srv, int(srv.getsockname()[1])


@pytest.mark.parametrize("one_way_s", [0.0, 0.002])
def test_relay_forwards_bytes_unchanged_both_ways(one_way_s: float) -> None:
    srv, port = _echo_server()
    relay = Relay(("127.0.0.1", 0), ("127.0.0.1", port), one_way_s, window=100_000)
    relay.start()
    payload = bytes(range(256)) * 2000  # 512,000 bytes: several chunks and windows
    try:
        with socket.create_connection(relay.listen, timeout=30) as conn:
            sender = threading.Thread(target=conn.sendall, args=(payload,), daemon=True)
            sender.start()
            got = bytearray()
            while len(got) < len(payload):
                data = conn.recv(65536)
                assert data, "relay closed early"
                got += data
            sender.join(30)
        # the echo server reverses each of its reads; compare as multisets of bytes
        assert sorted(got) == sorted(payload)
    finally:
        relay.close()
        srv.close()


def test_link_plan_shapes_both_ends_and_uses_link_local_addresses() -> None:
    plan = plan_link(Link(200, 100), ["http://127.0.0.1:8080", "http://127.0.0.1:9000/"], 4242)
    cmds = plan.setup_commands()
    tbf = [c for c in cmds if "tbf" in c]
    assert len(tbf) == 2
    assert {plan.host_if, plan.ns_if} <= {c[c.index("dev") + 1] for c in tbf}
    assert all("200mbit" in c for c in tbf)
    assert plan.host_ip.startswith("169.254.") and plan.ns_ip.startswith("169.254.")
    assert len(plan.host_if) <= 15 and len(plan.ns_if) <= 15
    assert plan.ports == (8080, 9000)
    assert "--one-way-ms=50.0" in plan.host_relay_args()
    assert not any("one-way" in a for a in plan.ns_relay_args())
    assert plan.ns_relay_args() == [
        f"--pair=127.0.0.1:8080={plan.host_ip}:8080",
        f"--pair=127.0.0.1:9000={plan.host_ip}:9000",
    ]
    assert plan.prefix == ["ip", "netns", "exec", plan.netns]
    teardown = plan.teardown_commands()
    assert ["ip", "netns", "del", plan.netns] in teardown
    assert ["ip", "link", "del", plan.host_if] in teardown


def test_plan_link_refuses_servers_off_loopback() -> None:
    with pytest.raises(wan.WanUnavailableError, match=r"127\.0\.0\.1"):
        plan_link(Link(1000, 30), ["http://10.0.0.5:8080"])


def test_preflight_says_root_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wan.os, "geteuid", lambda: 1000)
    problem = wan.preflight()
    assert problem is not None and "root" in problem and "\n" not in problem


def test_wan_cases_rows_carry_the_link() -> None:
    cases = make_cases(False, None, 50)["wan"]
    assert {(c.link_mbit_s, c.rtt_ms) for c in cases} == {(1000, 30), (200, 100)}
    assert {(c.count, c.size) for c in cases} == {(1, GIB), (50, 8 << 20)}
    case = cases[0]
    assert case.name == "1x1GiB@1000Mbit+30ms"
    row = row_from("boto3", case, "upload", None, [], 1)
    assert (row.link_mbit_s, row.rtt_ms) == (1000, 30)
    row.wall_s, row.cpu_s, row.link_cpu_s = 10.0, 5.0, 2.0
    data = row.to_json()
    assert (data["link_mbit_s"], data["rtt_ms"], data["link_cpu_s"]) == (1000, 30, 2.0)
    summary = summarize([row])[0].to_json()
    assert summary["link_mbit_s"] == 1000 and summary["rtt_ms"] == 30
    assert summary["link_share"] == pytest.approx(GIB / 10 / 1e6 / 125, abs=1e-3)


def test_loopback_rows_have_no_link_fields() -> None:
    row = row_from("boto3", Case("small", 2, 1 << 20, "random"), "upload", None, [], 1)
    assert row.link_mbit_s is None and "link_mbit_s" not in row.to_json()
    assert "link_mbit_s" not in summarize([row])[0].to_json()


def test_link_share() -> None:
    assert link_share(112.5, 1000) == pytest.approx(0.9)
    assert link_share(None, 1000) is None and link_share(10.0, None) is None


def test_wan_table_lists_share_of_link() -> None:
    case = make_cases(False, None, 50)["wan"][1]  # 1 GiB over 200 Mbit/s
    row = Row("boto3", case.name, "download", 1, GIB, True, link_mbit_s=200, rtt_ms=100)
    row.wall_s = GIB / 22.5e6  # 22.5 MB/s = 90 % of 25 MB/s
    lines = wan_table_lines([row])
    assert any(
        "| 200 Mbit/s, 100 ms | 1x1GiB | download | boto3 | 22.5 | 90% |" in ln for ln in lines
    )


def wan_table_lines(rows: list[Row]) -> list[str]:
    return wan.wan_table(summarize(rows))


def test_two_step_commands_add_up_their_relay_cpu() -> None:
    from benchmarks.measure import ProcResult, combine

    fetch = ProcResult(["download"], 0, 2.0, 1.0, 0.0, 10, link_cpu_s=1.5)
    decrypt = ProcResult(["decrypt"], 0, 1.0, 1.0, 0.0, 10, link_cpu_s=0.25)
    assert combine([("download", fetch), ("decrypt", decrypt)]).link_cpu_s == 1.75
    plain = ProcResult(["x"], 0, 1.0, 1.0, 0.0, 10)
    assert combine([("download", plain), ("decrypt", plain)]).link_cpu_s is None


def test_stale_links_are_those_of_runs_that_are_gone() -> None:
    listing = "ghgabench-wan-111 (id: 0)\nghgabench-wan-222\nother-ns (id: 3)\nghgabench-wan-x\n"
    stale = wan.stale_namespaces(listing, alive=lambda pid: pid == 222)
    assert [p.netns for p in stale] == ["ghgabench-wan-111"]
    assert ["ip", "link", "del", stale[0].host_if] in stale[0].teardown_commands()
