"""Hand-written wire encoding of the two model-chunk messages (the transfer hot path).

A model moves as a stream of 1 MiB ``ModelRequest`` (upload) and ``ModelResponse``
(download) messages. Building a generated protobuf object per chunk and
serializing or parsing it costs an extra copy and a few Python objects per
megabyte; benchmarks put that at roughly a third of the achievable throughput.
So the two messages are encoded and decoded here with the protobuf wire format
spelled out, and the gRPC calls pass bytes straight through.

The bytes are IDENTICAL to what the generated classes produce for the same
message (fields in field-number order, proto3 defaults left out), which
tests/unit/test_chunk_wire.py checks byte for byte and with hypothesis.

Field numbers, from protos/fedn.proto::

    message ModelRequest  { Client sender = 1; Client receiver = 2; bytes data = 3;
                            string id = 4; ModelStatus status = 5; }
    message ModelResponse { bytes data = 1; string id = 2; ModelStatus status = 3;
                            string message = 4; }
"""

from __future__ import annotations

from dataclasses import dataclass

# ModelStatus values (protos/fedn.proto).
OK = 0
IN_PROGRESS = 1
IN_PROGRESS_OK = 2
FAILED = 3
UNKNOWN = 4

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_MAX_FIELD = (1 << 29) - 1

# Tags: (field_number << 3) | wire_type, each one byte for these small field numbers.
_REQ_DATA = bytes([(3 << 3) | _LEN])
_REQ_ID = bytes([(4 << 3) | _LEN])
_REQ_STATUS = bytes([(5 << 3) | _VARINT])


class WireError(ValueError):
    """A message that is not valid protobuf wire format."""


def varint(value: int) -> bytes:
    """``value`` as a protobuf varint; negative int32 enums take ten bytes, as protobuf writes them."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _id_field(model_id: str) -> bytes:
    raw = model_id.encode("utf-8")
    return _REQ_ID + varint(len(raw)) + raw if raw else b""


@dataclass(frozen=True)
class RequestFraming:
    """The constant parts of one upload's ``ModelRequest`` chunks, encoded once per upload.

    A chunk on the wire is ``data`` (field 3), then ``id`` (4), then ``status`` (5);
    only the data length changes from chunk to chunk.
    """

    trailer: bytes  # id + IN_PROGRESS status, after the data
    terminator: bytes  # the whole closing message: id only (OK = 0 is the default)

    @classmethod
    def for_model(cls, model_id: str) -> RequestFraming:
        id_field = _id_field(model_id)
        return cls(trailer=id_field + _REQ_STATUS + varint(IN_PROGRESS), terminator=id_field)

    def header(self, data_len: int) -> bytes:
        """What goes before ``data_len`` bytes of data (nothing for an empty chunk)."""
        return _REQ_DATA + varint(data_len) if data_len else b""

    def chunk(self, data: bytes | bytearray | memoryview) -> bytes:
        """One IN_PROGRESS chunk as bytes (one copy of ``data``)."""
        return b"".join((self.header(len(data)), data, self.trailer))


@dataclass(frozen=True)
class Response:
    """A decoded ``ModelResponse``; ``data`` is a view into the received message, not a copy."""

    data: memoryview
    id: str
    status: int
    message: str


_EMPTY = memoryview(b"")


def _read_varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint longer than ten bytes")


def _enum(value: int) -> int:
    """An enum varint as protobuf reads it into an int32 (sign from the low 32 bits)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _utf8(raw: memoryview, field: str) -> str:
    try:
        return str(raw, "utf-8")
    except UnicodeDecodeError as exc:
        raise WireError(f"ModelResponse.{field} is not valid UTF-8") from exc


def decode_response(message: bytes) -> Response:
    """Parse a serialized ``ModelResponse``, as protobuf would (last value wins, unknown fields skipped)."""
    buf = memoryview(message)
    end = len(buf)
    pos = 0
    data = _EMPTY
    model_id = ""
    status = 0
    text = ""
    while pos < end:
        key, pos = _read_varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if field == 0 or key > 0xFFFFFFFF or field > _MAX_FIELD:
            raise WireError(f"invalid field key {key}")
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos, end)
            if field == 3:
                status = _enum(value)
        elif wire == _LEN:
            size, pos = _read_varint(buf, pos, end)
            if size > end - pos:
                raise WireError("length-delimited field runs past the end of the message")
            raw = buf[pos : pos + size]
            pos += size
            if field == 1:
                data = raw
            elif field == 2:
                model_id = _utf8(raw, "id")
            elif field == 4:
                text = _utf8(raw, "message")
        elif wire == _I64:
            pos += 8
        elif wire == _I32:
            pos += 4
        else:
            raise WireError(f"unsupported wire type {wire} (field {field})")
        if pos > end:
            raise WireError("fixed-width field runs past the end of the message")
    return Response(data, model_id, status, text)
