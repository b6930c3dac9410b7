"""One model transfer client per process, for bench/transfer.py: upload a file, download it back.

    python bench/transfer_clients.py KIND HOST PORT SRC DEST MODEL_ID

KIND is one of:
  fedclient  our gRPC adapter (GrpcConnector -> link.upload / link.download), file to file;
  stock      FEDn 0.33's own client code (fedn.network.clients.grpc_handler.GrpcHandler):
             ``send_model_to_combiner`` from a BytesIO holding the file and
             ``get_model_from_combiner`` into a BytesIO. Run it with the FEDn venv's python.
             Only the gRPC calls are timed (reading the file into memory before the upload
             and writing the download out after it are not), which favours the stock client;
  ceiling    the raw-bytes ceiling: a sync stub sending one pre-encoded 1 MiB ModelRequest
             over and over (no disk, no protobuf objects), and downloading with an identity
             deserializer, data discarded. No real client can be faster through Python gRPC.

Prints one JSON line: seconds up and down, bytes, and the process's peak RSS (VmHWM).
Each kind runs in a fresh process so that its peak RSS is its own.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

CHUNK = 1 << 20
PEAK_AFTER_UPLOAD: list[float] = []  # VmHWM when the upload finished, to tell the directions apart


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_fedclient(host: str, port: int, src: Path, dest: Path, model_id: str) -> tuple[float, float, int]:
    import asyncio

    from fedclient.adapters.combiner_grpc.link import GrpcConnector
    from fedclient.domain.model import CombinerAddress, Identity

    async def go() -> tuple[float, float, int]:
        link = await GrpcConnector(token=None).connect(
            CombinerAddress(host, port), Identity("bench", "bench")
        )
        try:
            t0 = time.perf_counter()
            await link.upload(model_id, src)
            up = time.perf_counter() - t0
            PEAK_AFTER_UPLOAD.append(peak_rss_mib())
            t0 = time.perf_counter()
            got = await link.download(model_id, dest)
            down = time.perf_counter() - t0
        finally:
            await link.close()
        return up, down, got

    return asyncio.run(go())


def run_stock(host: str, port: int, src: Path, dest: Path, model_id: str) -> tuple[float, float, int]:
    import io

    from fedn.network.clients.grpc_handler import GrpcHandler

    handler = GrpcHandler(host=host, port=port, name="bench", token="", combiner_name="combiner")
    model = io.BytesIO(src.read_bytes())
    t0 = time.perf_counter()
    reply = handler.send_model_to_combiner(model, model_id)
    up = time.perf_counter() - t0
    PEAK_AFTER_UPLOAD.append(peak_rss_mib())
    assert reply.status == 0, reply
    del model
    t0 = time.perf_counter()
    data = handler.get_model_from_combiner(model_id, "bench")
    down = time.perf_counter() - t0
    assert data is not None
    dest.write_bytes(data.getbuffer())
    return up, down, data.getbuffer().nbytes


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def run_ceiling(host: str, port: int, src: Path, dest: Path, model_id: str) -> tuple[float, float, int]:
    import grpc

    size = src.stat().st_size
    raw_id = model_id.encode()
    id_field = b"\x22" + _varint(len(raw_id)) + raw_id
    # ModelRequest{data=3, id=4, status=5 IN_PROGRESS}, built by hand once.
    full = b"\x1a" + _varint(CHUNK) + bytes(CHUNK) + id_field + b"\x28\x01"
    tail_len = size % CHUNK
    tail = b"\x1a" + _varint(tail_len) + bytes(tail_len) + id_field + b"\x28\x01" if tail_len else b""
    # ModelRequest{sender={client_id=bench, role=CLIENT}, id}: the download request.
    sender = b"\x1a\x05bench\x10\x00"
    request = b"\x0a" + _varint(len(sender)) + sender + id_field
    options = [("grpc.max_receive_message_length", 16 << 20), ("grpc.max_send_message_length", 16 << 20)]
    with grpc.insecure_channel(f"{host}:{port}", options=options) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        upload = channel.stream_unary("/fedn.ModelService/Upload")
        download = channel.unary_stream("/fedn.ModelService/Download")

        def chunks():  # type: ignore[no-untyped-def]
            for _ in range(size // CHUNK):
                yield full
            if tail:
                yield tail
            yield id_field  # the OK terminator: status 0 is not written

        t0 = time.perf_counter()
        upload(chunks(), metadata=[("client", "bench")])
        up = time.perf_counter() - t0
        PEAK_AFTER_UPLOAD.append(peak_rss_mib())
        t0 = time.perf_counter()
        received = 0
        for message in download(request, metadata=[("client", "bench")]):
            received += len(message)
        down = time.perf_counter() - t0
    return up, down, received


RUNNERS = {"fedclient": run_fedclient, "stock": run_stock, "ceiling": run_ceiling}


def main() -> None:
    kind, host, port, src, dest, model_id = sys.argv[1:7]
    up, down, nbytes = RUNNERS[kind](host, int(port), Path(src), Path(dest), model_id)
    result = {"kind": kind, "up_s": up, "down_s": down, "bytes": nbytes, "peak_rss_mib": peak_rss_mib()}
    result["peak_rss_after_upload_mib"] = PEAK_AFTER_UPLOAD[0] if PEAK_AFTER_UPLOAD else None
    print(json.dumps(result))


if __name__ == "__main__":
    main()
