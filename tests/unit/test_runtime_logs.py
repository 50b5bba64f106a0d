"""json-file logs: records, partial lines, rotation, and reading with filters and follow."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from pycompose.engine.errors import InvalidArgument
from pycompose.engine.runtime import logs
from pycompose.engine.runtime.logs import LogConfig, LogRecord, LogWriter

T0 = 1_795_000_000_123_456_789


async def collect(directory: Path, **kw: object) -> list[LogRecord]:
    return [r async for r in logs.read_logs(directory, **kw)]  # type: ignore[arg-type]


def test_lines_become_docker_json_records(tmp_path: Path) -> None:
    w = LogWriter(tmp_path)
    w.write("stdout", b"hello\nwor", T0)
    w.write("stdout", b"ld\n", T0 + 1)
    w.write("stderr", b"oops", T0 + 2)
    w.close()
    lines = [json.loads(x) for x in (tmp_path / "json.log").read_text().splitlines()]
    assert lines[:2] == [
        {"log": "hello\n", "stream": "stdout", "time": logs.format_timestamp(T0)},
        {"log": "world\n", "stream": "stdout", "time": logs.format_timestamp(T0 + 1)},
    ]
    assert lines[2]["log"] == "oops" and lines[2]["stream"] == "stderr"
    assert logs.format_timestamp(T0) == "2026-11-18T11:06:40.123456789Z"
    records = anyio.run(collect, tmp_path)
    assert [(r.stream, r.data) for r in records] == [
        ("stdout", b"hello\n"),
        ("stdout", b"world\n"),
        ("stderr", b"oops"),
    ]
    assert records[0].timestamp == T0


def test_long_lines_are_split_and_bytes_survive(tmp_path: Path) -> None:
    w = LogWriter(tmp_path)
    raw = b"\xff\xfe" + b"x" * (logs.MAX_RECORD + 10) + b"\n"
    w.write("stdout", raw, T0)
    w.close()
    records = anyio.run(collect, tmp_path)
    assert len(records) == 2 and len(records[0].data) == logs.MAX_RECORD
    assert b"".join(r.data for r in records) == raw


def test_rotation_keeps_max_file(tmp_path: Path) -> None:
    w = LogWriter(tmp_path, LogConfig(max_size=300, max_file=3))
    for i in range(40):
        w.write("stdout", f"line{i:02d}\n".encode(), T0 + i)
    w.close()
    files = logs.log_files(tmp_path)
    assert [f.name for f in files] == ["json.log.2", "json.log.1", "json.log"]
    assert all(f.stat().st_size <= 300 for f in files)
    data = [r.data for r in anyio.run(collect, tmp_path)]
    assert data[-1] == b"line39\n"
    assert data == [f"line{i:02d}\n".encode() for i in range(40 - len(data), 40)]


def test_rotation_with_one_file_truncates(tmp_path: Path) -> None:
    w = LogWriter(tmp_path, LogConfig(max_size=200, max_file=1))
    for i in range(20):
        w.write("stdout", f"line{i:02d}\n".encode(), T0 + i)
    w.close()
    assert [f.name for f in logs.log_files(tmp_path)] == ["json.log"]


def test_since_until_tail_and_streams(tmp_path: Path) -> None:
    w = LogWriter(tmp_path)
    for i in range(10):
        w.write("stdout" if i % 2 else "stderr", f"{i}\n".encode(), T0 + i)
    w.close()

    def data(**kw: object) -> list[bytes]:
        return [r.data for r in anyio.run(lambda: collect(tmp_path, **kw))]

    assert data(since=T0 + 7) == [b"7\n", b"8\n", b"9\n"]
    assert data(until=T0 + 1) == [b"0\n", b"1\n"]
    assert data(tail=2) == [b"8\n", b"9\n"]
    assert data(tail=0) == []
    assert data(stderr=False, tail=2) == [b"7\n", b"9\n"]


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    w = LogWriter(tmp_path)
    w.write("stdout", b"ok\n", T0)
    w.close()
    with open(tmp_path / "json.log", "ab") as f:
        f.write(b'{"log": "half')
    assert [r.data for r in anyio.run(collect, tmp_path)] == [b"ok\n"]


def test_follow_sees_new_lines_and_rotation_then_stops(tmp_path: Path) -> None:
    w = LogWriter(tmp_path, LogConfig(max_size=250, max_file=2))
    w.write("stdout", b"first\n", T0)
    done = False

    async def scenario() -> list[bytes]:
        nonlocal done
        got: list[bytes] = []

        async def produce() -> None:
            nonlocal done
            for i in range(8):
                await anyio.sleep(0.02)
                w.write("stdout", f"more{i}\n".encode(), T0 + i + 1)
            done = True

        async with anyio.create_task_group() as tg:
            tg.start_soon(produce)
            async for rec in logs.read_logs(
                tmp_path, follow=True, finished=lambda: done, poll_interval=0.01
            ):
                got.append(rec.data)
        return got

    got = anyio.run(scenario)
    w.close()
    assert got == [b"first\n"] + [f"more{i}\n".encode() for i in range(8)]


def test_log_opts() -> None:
    assert logs.parse_log_opts({"max-size": "10m", "max-file": "3"}) == LogConfig(10 << 20, 3)
    assert logs.parse_log_opts({}) == LogConfig()
    with pytest.raises(InvalidArgument, match="unsupported json-file log option"):
        logs.parse_log_opts({"compress": "true"})
    with pytest.raises(InvalidArgument, match="needs max-size"):
        logs.parse_log_opts({"max-file": "3"})
    with pytest.raises(InvalidArgument, match="invalid size"):
        logs.parse_size("ten")
    assert logs.parse_size("1.5k") == 1536


def test_timestamps_round_trip() -> None:
    text = logs.format_timestamp(T0)
    assert text.endswith(".123456789Z") and logs.parse_timestamp(text) == T0
    whole = T0 - 123_456_789
    assert logs.parse_timestamp(logs.format_timestamp(whole)[:-11] + ".5Z") == whole + 500_000_000


def test_follow_does_not_repeat_the_backlog(tmp_path: Path) -> None:
    w = LogWriter(tmp_path)
    w.write("stdout", b"old\n", T0)
    with open(tmp_path / "json.log", "ab") as f:  # a record being written right now
        f.write(b'{"log": "new\\n", "stream": "stdout", "ti')
    assert logs._complete_size(tmp_path / "json.log")[0] == len(
        (tmp_path / "json.log").read_bytes().split(b"\n")[0]
    ) + 1
    with open(tmp_path / "json.log", "ab") as f:
        f.write(b'me": "' + logs.format_timestamp(T0 + 1).encode() + b'"}\n')
    got = anyio.run(lambda: collect(tmp_path, follow=True, finished=lambda: True))
    assert [r.data for r in got] == [b"old\n", b"new\n"]
    w.close()
