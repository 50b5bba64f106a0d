"""Docker stream formats: multiplexed frames, JSON document streams, progress messages."""

from __future__ import annotations

import json

import pytest

from pycompose.engine.api.streams import (
    STDERR,
    STDOUT,
    FrameDecoder,
    JsonStreamDecoder,
    error_message,
    frame,
    human_size,
    json_line,
    progress_bar,
    progress_message,
)


def test_frame_header_layout() -> None:
    assert frame(STDOUT, b"hi\n") == b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n"
    assert frame(STDERR, b"") == b"\x02\x00\x00\x00\x00\x00\x00\x00"
    with pytest.raises(ValueError, match="stream id"):
        frame(7, b"x")


def test_frame_decoder_handles_any_split() -> None:
    data = frame(STDOUT, b"out1") + frame(STDERR, b"err" * 100) + frame(STDOUT, b"")
    for size in (1, 3, 8, 9, 50, len(data)):
        dec = FrameDecoder()
        got = []
        for i in range(0, len(data), size):
            got += dec.feed(data[i : i + size])
        assert got == [(STDOUT, b"out1"), (STDERR, b"err" * 100), (STDOUT, b"")], size
        assert dec.pending == 0
    dec = FrameDecoder()
    assert dec.feed(frame(STDOUT, b"abcdef")[:10]) == []
    assert dec.pending == 10  # truncated frame is visible to the caller
    with pytest.raises(ValueError, match="invalid multiplexed stream header"):
        FrameDecoder().feed(b"\x09\x00\x00\x00\x00\x00\x00\x01x")


def test_json_stream_decoder_newlines_adjacent_and_split_utf8() -> None:
    text = '{"status":"a"}\n{"status":"b"}{"id":"\u00e9t\u00e9"}\r\n  [1,2]'.encode()
    for size in (1, 2, 5, len(text)):
        dec = JsonStreamDecoder()
        got = []
        for i in range(0, len(text), size):
            got += list(dec.feed(text[i : i + size]))
        assert got == [{"status": "a"}, {"status": "b"}, {"id": "\u00e9t\u00e9"}, [1, 2]], size
        assert dec.pending == ""
    dec = JsonStreamDecoder()
    assert list(dec.feed(b'{"a": ')) == []
    assert dec.pending == '{"a":'


def test_progress_messages_have_dockers_shape() -> None:
    msg = progress_message("Downloading", id="abc123", current=500, total=1000)
    assert msg["status"] == "Downloading" and msg["id"] == "abc123"
    assert msg["progressDetail"] == {"current": 500, "total": 1000}
    assert (
        msg["progress"].startswith("[=========================>") and "500B/1kB" in msg["progress"]
    )
    assert progress_message("Pull complete", id="abc123") == {
        "status": "Pull complete",
        "progressDetail": {},
        "id": "abc123",
    }
    assert error_message("boom") == {"errorDetail": {"message": "boom"}, "error": "boom"}
    assert json.loads(json_line({"a": 1})) == {"a": 1} and json_line({}).endswith(b"\n")


def test_sizes_and_bars() -> None:
    assert human_size(999) == "999B"
    assert human_size(1_234_567) == "1.23MB"
    assert progress_bar(10, 0) == "10B"
    assert progress_bar(1000, 1000, width=10) == "[==========]      1kB/1kB"
