"""Chunked reads and atomic chunked writes: any size round-trips, failures leave nothing behind."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
from fedclient.adapters.combiner_grpc.chunked_io import (
    BackgroundFileWriter,
    ChunkFileWriter,
    ReadAhead,
    read_chunks,
)
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


# ------------------------------------------------- threaded reader and writer --


@settings(max_examples=60, deadline=None)
@given(sizes_and_chunks(), st.integers(min_value=1, max_value=4), st.randoms(use_true_random=False))
def test_read_ahead_and_background_writer_round_trip(
    size_and_chunk: tuple[int, int], depth: int, rnd: object
) -> None:
    size, chunk_size = size_and_chunk
    data = bytes(rnd.getrandbits(8) for _ in range(size))  # type: ignore[attr-defined]

    async def copy(src: Path, dest: Path) -> list[int]:
        lengths = []
        async with ReadAhead(src, lambda v: b"<" + bytes(v) + b">", chunk_size, depth) as chunks:
            async with BackgroundFileWriter(dest, depth) as writer:
                async for length, encoded in chunks:
                    assert encoded[:1] == b"<" and encoded[-1:] == b">"
                    lengths.append(length)
                    await writer.write(memoryview(encoded)[1:-1])
                assert not dest.exists()
                await writer.commit()
            assert writer.bytes_written == size
        return lengths

    with tempfile.TemporaryDirectory() as tmp:
        src, dest = Path(tmp) / "src", Path(tmp) / "out" / "dest"
        src.write_bytes(data)
        lengths = asyncio.run(copy(src, dest))
        assert dest.read_bytes() == data
        assert len(lengths) == -(-size // chunk_size)
        assert all(n == chunk_size for n in lengths[:-1])
        assert sorted(p.name for p in dest.parent.iterdir()) == ["dest"]


async def test_background_writer_failure_leaves_no_file(tmp_path: Path) -> None:
    dest = tmp_path / "model"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        async with BackgroundFileWriter(dest, depth=2) as writer:
            for _ in range(5):
                await writer.write(b"x" * 1000)
            raise RuntimeError("connection lost")
    assert list(tmp_path.iterdir()) == [dest]
    assert dest.read_bytes() == b"old"


async def test_background_write_error_surfaces(tmp_path: Path) -> None:
    async with BackgroundFileWriter(tmp_path / "m", depth=1) as writer:
        writer._writer._file.close()  # type: ignore[union-attr]  # the disk goes away under the worker
        with pytest.raises(ValueError, match="closed file"):
            await writer.write(b"data")
    assert list(tmp_path.iterdir()) == []


async def test_read_ahead_of_a_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        async with ReadAhead(tmp_path / "nope", bytes):
            pass
