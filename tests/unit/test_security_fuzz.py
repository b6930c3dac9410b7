"""Fuzzing the parsers that read untrusted input: whatever arrives, only our typed errors come out.

Manifests (any YAML-shaped document), TaskRequest payloads, controller replies (any
status, any body) and archive member names.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from fedclient.adapters.combiner_grpc.conversions import task_from_pb
from fedclient.adapters.combiner_grpc.generated import fedn_pb2 as pb
from fedclient.adapters.combiner_grpc.vocabulary import task_problem
from fedclient.adapters.controller_http import ControllerEndpoint, HttpxDiscovery, HttpxPackageSource
from fedclient.adapters.controller_http._transport import MAX_REPLY_BYTES
from fedclient.domain.archive_rules import ArchiveMember, MemberChecker, MemberType, shown
from fedclient.domain.errors import FedClientError, PackageError
from fedclient.domain.model import AssignmentRequest, AssignmentStatus, Identity, PackageMode
from fedclient.domain.package import parse_manifest
from fedclient.domain.redaction import forget_secret, redact, register_secret
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ENDPOINT = ControllerEndpoint.build("http://ctl:8092")
REQUEST = AssignmentRequest(Identity("alice", "cid"), PackageMode.REMOTE)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
documents = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
commands = st.text(max_size=60) | st.sampled_from(
    ["python train.py", "python ../x.py", "a && b", "'unclosed"]
)
manifests = st.fixed_dictionaries(
    {
        "entry_points": st.dictionaries(
            st.text(max_size=10) | st.integers(),
            st.fixed_dictionaries({"command": commands | scalars}) | documents,
            max_size=3,
        )
        | documents
    },
    optional={"python_env": st.text(max_size=30) | scalars, "junk": documents},
)


@FUZZ
@given(manifests | documents)
def test_manifest_parsing_raises_only_package_error(doc: Any) -> None:
    try:
        manifest = parse_manifest(doc)
    except PackageError:
        return
    for argv in manifest.entry_points.values():  # what passes is runnable as argv, inside the package
        assert argv and all(isinstance(a, str) for a in argv)
        assert not any(a.startswith("/") or ".." in a.split("/") for a in argv[1:])
    if manifest.python_env is not None:
        assert not manifest.python_env.startswith("/") and ".." not in manifest.python_env.split("/")


payloads = (
    st.text(max_size=200)
    | documents.map(json.dumps)
    | st.dictionaries(st.text(max_size=8), documents, max_size=4).map(json.dumps)
    | st.sampled_from(["", "null", "[1,2]", '"s"', "{", "[" * 5000, '{"round_id": "1"}'])
)


@FUZZ
@given(
    payloads,
    st.text(max_size=30),
    st.sampled_from([pb.MODEL_UPDATE, pb.MODEL_VALIDATION, pb.MODEL_PREDICTION, pb.LOG, 99]),
    st.sampled_from([pb.COMBINER, pb.CLIENT, pb.OTHER]),
)
def test_task_request_payloads_never_raise(data: str, model_id: str, type_: int, role: int) -> None:
    request = pb.TaskRequest(model_id=model_id, data=data, type=type_)  # type: ignore[arg-type]
    request.sender.role = role  # type: ignore[assignment]
    task = task_from_pb(request)
    if task is None:
        return
    problem = task.problem
    parsed_ok = False
    try:
        parsed_ok = isinstance(json.loads(data), dict) if data.strip() else True
    except (ValueError, RecursionError):
        parsed_ok = False
    if model_id and model_id.isprintable() and len(model_id) <= 256:
        assert (problem is None) == parsed_ok  # a payload that is not a JSON object is always refused
    assert task_problem(model_id, data) == problem


bodies = (
    st.binary(max_size=300)
    | documents.map(lambda d: json.dumps(d).encode())
    | st.sampled_from([b"<html><body>proxy</body></html>", b"", b"{" * 3000, b"x" * (MAX_REPLY_BYTES + 10)])
)
statuses = st.sampled_from([200, 201, 203, 204, 301, 400, 401, 403, 404, 410, 418, 429, 500, 502, 503])


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _with(handler: Any, call: Any) -> Any:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        return await call(client)


@FUZZ
@given(statuses, bodies)
def test_controller_replies_give_an_assignment_or_a_typed_error(status: int, body: bytes) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body)

    answer = _run(
        _with(handler, lambda c: HttpxDiscovery(ENDPOINT, "tok-secret-123", client=c).assign(REQUEST))
    )
    assert isinstance(answer.status, AssignmentStatus)
    assert "tok-secret-123" not in answer.message
    if status >= 500 or status == 429:
        assert answer.status is AssignmentStatus.UNREACHABLE  # transient where the status says so
    if answer.status is AssignmentStatus.ASSIGNED:
        assert answer.combiner is not None and 0 < answer.combiner.port < 65536


@FUZZ
@given(statuses, bodies)
def test_checksum_replies_give_a_checksum_or_a_typed_error(status: int, body: bytes) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body)

    try:
        value = _run(_with(handler, lambda c: HttpxPackageSource(ENDPOINT, client=c).checksum()))
    except FedClientError as exc:
        assert "\n" not in str(exc)
        return
    assert value is None or (len(value) == 64 and int(value, 16) >= 0)


@FUZZ
@given(
    st.lists(
        st.text(max_size=40) | st.binary(max_size=20).map(lambda b: b.decode("utf-8", "surrogateescape")),
        max_size=8,
    )
)
def test_member_names_are_judged_with_package_errors_only(names: list[str]) -> None:
    checker = MemberChecker()
    for name in names:
        try:
            checker.check(ArchiveMember(name, MemberType.FILE, 1))
        except PackageError as exc:
            text = str(exc)
            assert all(ch.isprintable() for ch in text), text  # no escape sequence reaches a terminal
            continue
        assert not name.startswith("/") and ".." not in Path(name.replace("\\", "/")).parts
    assert all(ch.isprintable() for ch in shown("".join(names)))


@FUZZ
@given(
    st.text(min_size=6, max_size=40).filter(lambda s: s.strip() == s and "*" not in s), st.text(max_size=60)
)
def test_a_registered_secret_never_survives_redaction(secret: str, noise: str) -> None:
    register_secret(secret)
    try:
        assert secret not in redact(noise + secret + noise)
    finally:
        forget_secret(secret)  # the registry is process-wide: do not scrub other tests' text
