"""cli/tar_stream.py: a tar produced by a writer thread, read as chunks."""

from __future__ import annotations

import io
import tarfile
import threading
from pathlib import Path

import pytest

from pycompose.cli.tar_stream import tar_chunks


def test_chunks_make_the_same_archive(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "big").write_bytes(b"x" * 3_000_000)
    (tmp_path / "d" / "small").write_text("hi\n")
    chunks = list(tar_chunks(lambda tar: tar.add(tmp_path / "d", arcname="d")))
    assert len(chunks) > 4 and max(map(len, chunks)) <= 256 * 1024
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        assert sorted(tar.getnames()) == ["d", "d/big", "d/small"]
        big = tar.extractfile("d/big")
        assert big is not None and big.read() == b"x" * 3_000_000


def test_an_error_in_the_writer_is_raised_to_the_reader(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list(tar_chunks(lambda tar: tar.add(tmp_path / "missing")))


def test_stopping_early_stops_the_writer(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"y" * 20_000_000)
    before = threading.active_count()
    chunks = tar_chunks(lambda tar: tar.add(tmp_path / "big", arcname="big"))
    assert next(chunks)
    chunks.close()
    assert threading.active_count() == before
