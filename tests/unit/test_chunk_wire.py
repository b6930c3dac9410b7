"""The hand-written chunk codec speaks exactly the generated classes' wire format."""

from __future__ import annotations

import pytest
from fedclient.adapters.combiner_grpc import chunk_wire as wire
from fedclient.adapters.combiner_grpc.generated import fedn_pb2 as pb
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

ids = st.text(max_size=80)
payloads = st.binary(max_size=3000)
int32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)


def test_status_numbers_match_the_generated_enum() -> None:
    assert (wire.OK, wire.IN_PROGRESS, wire.IN_PROGRESS_OK, wire.FAILED, wire.UNKNOWN) == (
        pb.OK,
        pb.IN_PROGRESS,
        pb.IN_PROGRESS_OK,
        pb.FAILED,
        pb.UNKNOWN,
    )


def test_a_one_mib_chunk_is_byte_identical() -> None:
    data = bytes(range(256)) * 4096
    framing = wire.RequestFraming.for_model("model-7f3e")
    expected = pb.ModelRequest(id="model-7f3e", data=data, status=pb.IN_PROGRESS).SerializeToString()
    assert framing.chunk(data) == expected
    assert framing.chunk(memoryview(bytearray(data))) == expected
    assert framing.terminator == pb.ModelRequest(id="model-7f3e", status=pb.OK).SerializeToString()


@settings(max_examples=300, deadline=None)
@given(ids, payloads)
def test_upload_chunks_and_terminator_equal_protobufs_encoding(model_id: str, data: bytes) -> None:
    framing = wire.RequestFraming.for_model(model_id)
    assert (
        framing.chunk(data)
        == pb.ModelRequest(id=model_id, data=data, status=pb.IN_PROGRESS).SerializeToString()
    )
    assert framing.terminator == pb.ModelRequest(id=model_id, status=pb.OK).SerializeToString()
    parsed = pb.ModelRequest.FromString(framing.chunk(data))
    assert (parsed.id, parsed.data, parsed.status) == (model_id, data, pb.IN_PROGRESS)


@settings(max_examples=300, deadline=None)
@given(payloads, ids, int32, st.text(max_size=60))
def test_responses_decode_as_protobuf_parses_them(
    data: bytes, model_id: str, status: int, message: str
) -> None:
    encoded = pb.ModelResponse(data=data, id=model_id, status=status, message=message).SerializeToString()  # type: ignore[arg-type]
    got = wire.decode_response(encoded)
    assert (bytes(got.data), got.id, got.status, got.message) == (data, model_id, status, message)


def _same_as_protobuf(raw: bytes) -> None:
    try:
        expected = pb.ModelResponse.FromString(raw)
    except DecodeError:
        with pytest.raises(wire.WireError):
            wire.decode_response(raw)
        return
    try:
        got = wire.decode_response(raw)
    except wire.WireError:
        # The only thing protobuf accepts and we refuse: deprecated group fields, which no
        # ModelResponse carries.
        assert any(b & 7 in (3, 4) for b in raw)
        return
    assert (bytes(got.data), got.id, got.status, got.message) == (
        expected.data,
        expected.id,
        expected.status,
        expected.message,
    )


# Field keys of ModelResponse and its neighbours, with every wire type.
keys = st.sampled_from([(f << 3) | w for f in (1, 2, 3, 4, 5, 9, 300) for w in (0, 1, 2, 5)])


@st.composite
def field(draw: st.DrawFn) -> bytes:
    key = draw(keys)
    wire_type = key & 7
    if wire_type == 0:
        body = wire.varint(draw(st.integers(min_value=0, max_value=2**64 - 1)))
    elif wire_type == 1:
        body = draw(st.binary(min_size=8, max_size=8))
    elif wire_type == 5:
        body = draw(st.binary(min_size=4, max_size=4))
    else:
        value = draw(st.binary(max_size=40) | st.text(max_size=20).map(str.encode))
        body = wire.varint(len(value)) + value
    return wire.varint(key) + body


@settings(max_examples=400, deadline=None)
@given(st.lists(field(), max_size=8))
def test_merged_repeated_and_unknown_fields_decode_like_protobuf(fields: list[bytes]) -> None:
    _same_as_protobuf(b"".join(fields))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64))
def test_garbage_is_refused_where_protobuf_refuses_it(raw: bytes) -> None:
    _same_as_protobuf(raw)


def test_truncated_chunk_is_a_wire_error() -> None:
    whole = pb.ModelResponse(data=b"x" * 100, id="m", status=pb.IN_PROGRESS).SerializeToString()
    for cut in (1, 2, 50):
        with pytest.raises(wire.WireError):
            wire.decode_response(whole[:cut])


def test_decoded_data_is_a_view_not_a_copy() -> None:
    encoded = pb.ModelResponse(data=b"abc" * 1000, status=pb.IN_PROGRESS).SerializeToString()
    got = wire.decode_response(encoded)
    assert isinstance(got.data, memoryview)
    assert got.data.obj is encoded
