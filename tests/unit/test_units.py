"""Durations and byte sizes: expected values were printed by docker compose v2.40 ``config``."""

from __future__ import annotations

import pytest

from pycompose.compose.units import (
    UnitError,
    format_duration,
    normalize_bytes,
    normalize_duration,
    parse_bytes,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "printed"),
    [
        ("1.5h", "1h30m0s"),
        ("1h30m", "1h30m0s"),
        ("90s", "1m30s"),
        ("100ms", "100ms"),
        ("1us", "1µs"),
        ("1µs", "1µs"),
        ("1.5us", "1.5µs"),
        ("500ns", "500ns"),
        ("-1s", "-1s"),
        ("+3s", "3s"),
        ("0", "0s"),
        ("-0", "0s"),
        ("0.0s", "0s"),
        ("1.s", "1s"),
        (".5s", "500ms"),
        ("1.5s", "1.5s"),
        ("1m0.5s", "1m0.5s"),
        ("2h", "2h0m0s"),
        ("5m", "5m0s"),
        ("1h1ns", "1h0m0.000000001s"),
        ("1d", "24h0m0s"),
        ("1.5d", "36h0m0s"),
        ("1d2h", "26h0m0s"),
        ("1w", "168h0m0s"),
        ("1d1w", "192h0m0s"),
        ("100000h", "100000h0m0s"),
        ("2562047h47m16.854775807s", "2562047h47m16.854775807s"),
        ("1.0000000001s", "1s"),
        ("0.9999999999s", "999.999999ms"),
        ("1.23456789012s", "1.23456789s"),
    ],
)
def test_durations_print_like_compose(text: str, printed: str) -> None:
    assert normalize_duration(text) == printed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10", "missing unit"),
        ("10x", 'unknown unit "x"'),
        ("1e3s", 'unknown unit "e"'),
        ("1S", 'unknown unit "S"'),
        ("1h 2m", 'unknown unit "h "'),
        ("1h-1s", 'unknown unit "h-"'),
        ("s", "invalid duration"),
        ("-", "invalid duration"),
        ("", "invalid duration"),
        ("3000000h", "out of range"),
        ("2562047h47m16.854775808s", "out of range"),
    ],
)
def test_bad_durations_are_rejected(text: str, message: str) -> None:
    with pytest.raises(UnitError, match=message):
        parse_duration(text)


def test_duration_must_be_a_string() -> None:
    with pytest.raises(UnitError, match="must be a string"):
        normalize_duration(10)


def test_duration_round_trip_in_nanoseconds() -> None:
    assert parse_duration("1m30s") == 90_000_000_000
    assert format_duration(-1_500_000) == "-1.5ms"
    assert format_duration(3_600_000_000_000) == "1h0m0s"


@pytest.mark.parametrize(
    ("value", "printed"),
    [
        ("1g", "1073741824"),
        ("1G", "1073741824"),
        ("1gb", "1073741824"),
        ("1GB", "1073741824"),
        ("1.5GB", "1610612736"),
        ("1024", "1024"),
        (1024, "1024"),
        (-1, "-1"),
        ("512k", "524288"),
        ("512kb", "524288"),
        ("1b", "1"),
        ("1B", "1"),
        ("1t", "1099511627776"),
        ("1p", "1125899906842624"),
        ("1 g", "1073741824"),
        ("1.5", "1"),
        ("1.5b", "1"),
        ("1KiB", "1024"),
        ("1m", "1048576"),
        ("0.5k", "512"),
        ("1e3", "1000"),
        ("2048.5", "2048"),
        ("9223372036854775808", "-9223372036854775808"),
    ],
)
def test_sizes_print_like_compose(value: object, printed: str) -> None:
    assert normalize_bytes(value) == printed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1e", "unknown suffix 'e'"),
        ("16e", "unknown suffix 'e'"),
        ("10x", "unknown suffix 'x'"),
        ("1gi", "unknown suffix 'gi'"),
        ("1gbb", "unknown suffix 'gbb'"),
        ("-1", "cannot be negative"),
        ("-1g", "cannot be negative"),
        (" 1g", "not a number"),
        ("1g ", "not a number"),
        ("g", "expected a number"),
        ("", "expected a number"),
    ],
)
def test_bad_sizes_are_rejected(text: str, message: str) -> None:
    with pytest.raises(UnitError, match=message):
        parse_bytes(text)


def test_size_rejects_booleans_and_other_types() -> None:
    with pytest.raises(UnitError):
        parse_bytes(True)
    with pytest.raises(UnitError):
        parse_bytes([1])
