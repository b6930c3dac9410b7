"""The background stderr writer: a logging call never blocks, a stalled reader costs counted lines."""

from __future__ import annotations

import os
import re
import threading

from fedclient.app.stderr_writer import StderrWriter

NOTE = re.compile(r"fedclient: (\d+) log line\(s\) dropped: stderr was not being read")


def _read_all(fd: int) -> bytes:
    out = bytearray()
    while chunk := os.read(fd, 1 << 16):
        out += chunk
    return bytes(out)


def test_writes_into_a_full_pipe_return_at_once_and_the_dropped_lines_are_counted() -> None:
    read_end, write_end = os.pipe()
    writer = StderrWriter(write_end, limit=100)
    line = "y" * 1000 + "\n"
    done = threading.Event()

    def flood() -> None:
        for _ in range(500):  # 500 kB into a 64 KiB pipe nobody reads
            writer.write(line)
        done.set()

    threading.Thread(target=flood, daemon=True).start()
    assert done.wait(10), "write() blocked on a full pipe"
    assert not writer.flush(0.2), "nothing can be flushed while nobody reads"
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.append(_read_all(read_end)))
    reader.start()
    writer.write("last\n")
    assert writer.flush(10)
    os.close(write_end)
    reader.join(10)
    text = out[0].decode()
    counts = [int(n) for n in NOTE.findall(text)]
    assert counts and all(counts), "each note counts the lines dropped since the last one"
    assert text.count(line) + sum(counts) == 500, "every line written or counted, none lost silently"
    assert text.endswith("last\n")


def test_a_closed_reader_ends_the_writing_without_an_error() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    writer = StderrWriter(write_end)
    writer.write("nobody hears this\n")
    assert writer.flush(5)
    os.close(write_end)
