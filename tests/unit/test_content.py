"""ContentStore: verified, atomic, resumable blob storage."""

from __future__ import annotations

import hashlib
import os
import pathlib
import threading

import pytest

from pycompose.engine.errors import InvalidArgument, NotFound
from pycompose.engine.images.content import ContentStore


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: pathlib.Path) -> ContentStore:
    return ContentStore(tmp_path / "content")


def partials(store: ContentStore) -> list[str]:
    return sorted(os.listdir(store.root / "ingest"))


def test_put_read_has_size_delete(store: ContentStore) -> None:
    d = store.put_bytes(b"hello")
    assert d == digest(b"hello")
    assert store.has(d) and store.size(d) == 5 and store.read(d) == b"hello"
    assert store.path(d) == store.root / "blobs/sha256" / d[7:]
    assert list(store.digests()) == [d]
    store.delete(d)
    assert not store.has(d)
    with pytest.raises(NotFound):
        store.delete(d)
    with pytest.raises(NotFound):
        store.read(d)


@pytest.mark.parametrize("bad", ["sha256:../../x", "sha256:" + "A" * 64, "md5:abcd",
                                 "sha256:" + "0" * 63, "sha256:" + "0" * 64 + "/..", ""])
def test_malformed_digests_refused(store: ContentStore, bad: str) -> None:
    with pytest.raises(InvalidArgument):
        store.path(bad)
    with pytest.raises(InvalidArgument):
        store.ingest(bad)
    with pytest.raises(InvalidArgument):
        store.has(bad)
    assert not any(store.root.parent.rglob("x"))


def test_put_bytes_digest_mismatch(store: ContentStore) -> None:
    with pytest.raises(InvalidArgument, match="digest mismatch"):
        store.put_bytes(b"data", digest(b"other"))
    assert list(store.digests()) == []


def test_ingest_verifies_digest_and_discards_partial(store: ContentStore) -> None:
    want = digest(b"good data")
    with store.ingest(want, 9) as ing:
        ing.write(b"bad  data")
        with pytest.raises(InvalidArgument, match=f"expected {want}"):
            ing.commit()
    assert not store.has(want)
    assert partials(store) == []


def test_ingest_size_limits(store: ContentStore) -> None:
    with store.ingest(digest(b"abc"), 3) as ing, pytest.raises(InvalidArgument, match="larger"):
        ing.write(b"abcd")
    assert partials(store) == []
    with store.ingest(digest(b"abc"), 3) as ing:
        ing.write(b"ab")
        with pytest.raises(InvalidArgument, match="size mismatch"):
            ing.commit()
    assert partials(store) == []


def test_ingest_resumes_after_interruption(store: ContentStore) -> None:
    data = os.urandom(300_000)
    want = digest(data)
    with store.ingest(want, len(data)) as ing:
        assert ing.offset == 0
        ing.write(data[:100_000])
        # leaving without commit: the partial stays for resumption
    assert len(partials(store)) == 1
    with store.ingest(want, len(data)) as ing:
        assert ing.offset == 100_000
        ing.write(data[ing.offset:])
        assert ing.commit() == want
    assert store.read(want) == data
    assert partials(store) == []


def test_ingest_reset_when_range_ignored(store: ContentStore) -> None:
    data = b"x" * 1000
    with store.ingest(digest(data), len(data)) as ing:
        ing.write(data[:10])
    with store.ingest(digest(data), len(data)) as ing:
        assert ing.offset == 10
        ing.reset()
        ing.write(data)
        assert ing.commit() == digest(data)


def test_ingest_without_expected_digest(store: ContentStore) -> None:
    with store.ingest() as ing:
        ing.write(b"anything")
        assert ing.commit() == digest(b"anything")
    with store.ingest() as ing:
        ing.write(b"abandoned")
    assert partials(store) == []  # no digest to resume by: the partial is dropped


def test_corrupt_blob_detected_on_read(store: ContentStore) -> None:
    d = store.put_bytes(b"original")
    path = store.path(d)
    os.chmod(path, 0o644)
    path.write_bytes(b"tampered")
    with pytest.raises(InvalidArgument, match="corrupt"):
        store.read(d)


def test_read_max_size(store: ContentStore) -> None:
    d = store.put_bytes(b"x" * 100)
    with pytest.raises(InvalidArgument, match="over the limit"):
        store.read(d, max_size=99)
    assert store.read(d, max_size=100) == b"x" * 100


def test_concurrent_ingests_of_same_blob(store: ContentStore) -> None:
    data = os.urandom(200_000)
    want = digest(data)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with store.ingest(want, len(data)) as ing:
                ing.reset()
                for i in range(0, len(data), 10_000):
                    ing.write(data[i:i + 10_000])
                ing.commit()
        except BaseException as err:  # collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.read(want) == data
    assert partials(store) == []


def test_discard_partials(store: ContentStore) -> None:
    with store.ingest(digest(b"abc"), 3) as ing:
        ing.write(b"a")
    assert partials(store)
    store.discard_partials()
    assert partials(store) == []
