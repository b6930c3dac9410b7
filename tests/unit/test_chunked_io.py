"""Chunked reads and atomic chunked writes: any size round-trips, failures leave nothing behind."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from fedclient.adapters.combiner_grpc.chunked_io import ChunkFileWriter, read_chunks
from hypothesis import given, settings
from hypothesis import strategies as st


@st.composite
def sizes_and_chunks(draw: st.DrawFn) -> tuple[int, int]:
    chunk = draw(st.integers(min_value=1, max_value=64))
    # Bias towards the edges: empty, exact multiples of the chunk size, one byte either side.
    multiple = draw(st.integers(min_value=0, max_value=8)) * chunk
    size = draw(st.sampled_from([0, multiple, multiple + 1, max(multiple - 1, 0)]) | st.integers(0, 600))
    return size, chunk


@settings(max_examples=150, deadline=None)
@given(sizes_and_chunks(), st.randoms(use_true_random=False))
def test_round_trip(size_and_chunk: tuple[int, int], rnd: object) -> None:
    size, chunk_size = size_and_chunk
    data = bytes(rnd.getrandbits(8) for _ in range(size))  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as tmp:
        src, dest = Path(tmp) / "src", Path(tmp) / "out" / "dest"
        src.write_bytes(data)
        chunks = list(read_chunks(src, chunk_size))
        assert all(len(c) == chunk_size for c in chunks[:-1])
        assert all(0 < len(c) <= chunk_size for c in chunks)
        assert len(chunks) == -(-size // chunk_size)  # ceil; no empty chunk for 0 bytes or exact multiples
        with ChunkFileWriter(dest) as writer:
            for c in chunks:
                writer.write(c)
            assert not dest.exists()  # invisible until committed
            writer.commit()
        assert writer.bytes_written == size
        assert dest.read_bytes() == data
        assert sorted(p.name for p in dest.parent.iterdir()) == ["dest"]


def test_failure_leaves_no_file(tmp_path: Path) -> None:
    dest = tmp_path / "model"
    with pytest.raises(RuntimeError), ChunkFileWriter(dest) as writer:
        writer.write(b"half a model")
        raise RuntimeError("connection lost")
    assert list(tmp_path.iterdir()) == []


def test_uncommitted_writer_keeps_the_previous_file(tmp_path: Path) -> None:
    dest = tmp_path / "model"
    dest.write_bytes(b"old")
    with ChunkFileWriter(dest) as writer:
        writer.write(b"new but unfinished")
    assert dest.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [dest]


def test_commit_replaces_the_previous_file(tmp_path: Path) -> None:
    dest = tmp_path / "model"
    dest.write_bytes(b"old")
    with ChunkFileWriter(dest) as writer:
        writer.write(b"new")
        writer.commit()
    assert dest.read_bytes() == b"new"


def test_write_after_commit_is_refused(tmp_path: Path) -> None:
    with ChunkFileWriter(tmp_path / "m") as writer:
        writer.commit()
        with pytest.raises(RuntimeError):
            writer.write(b"late")


def test_chunk_size_must_be_positive(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(ValueError, match="positive"):
        list(read_chunks(tmp_path / "f", 0))
