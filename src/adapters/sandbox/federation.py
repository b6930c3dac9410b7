"""A local FEDn-compatible federation: controller + combiner on loopback, running FedAvg rounds.

The servers speak the same wire protocol as FEDn 0.33, so the clients that join
are real fedclient clients on the same code path as `fedclient run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...domain.errors import FedClientError, PackageError
from ...domain.model import TaskKind
from ..package_archive import TarPackageUnpacker
from ..package_build import build_package
from .combiner import ONLINE_WINDOW, SandboxCombiner
from .controller import SandboxController
from .fedavg import fedavg
from .tokens import REFRESH_PATH, SandboxTokens

log = logging.getLogger("fedclient.sandbox")


class RoundFailed(FedClientError):
    pass


@dataclass(frozen=True)
class RoundResult:
    round: int
    model_id: str
    metrics: dict[str, float]
    updates: int
    validations: int
    seconds: float

    def as_json(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "model_id": self.model_id,
            "metrics": self.metrics,
            "updates": self.updates,
            "validations": self.validations,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class Federation:
    package_dir: Path
    work_dir: Path
    expected_clients: int
    token: str | None = None
    round_timeout: float = 180.0
    # Expiring tokens (seconds each lives) and a refresh endpoint; ``token`` is then the first one minted.
    token_ttl: float | None = None
    tokens: SandboxTokens | None = None
    # Keep only the last that many heartbeats and calls in the combiner's records (simulate's
    # thousands of clients); None keeps all.
    history: int | None = None
    online_window: float = ONLINE_WINDOW  # seconds a heartbeat keeps a client online
    session_id: str = field(default_factory=lambda: f"sandbox-{uuid.uuid4().hex[:8]}")
    combiner: SandboxCombiner | None = None
    controller: SandboxController | None = None
    seed_model_id: str = ""
    results: list[RoundResult] = field(default_factory=list)
    # The address both servers listen on and the controller hands out: other machines (the nodes
    # of a Ray cluster) reach the federation only on an address of theirs, never on loopback.
    host: str = "127.0.0.1"

    async def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        unpacker = TarPackageUnpacker()
        manifest = unpacker.load_manifest(self.package_dir)
        archive = self.work_dir / "package.tgz"
        build_package(self.package_dir, archive)
        seed = self.work_dir / "seed.npz"
        await _build_seed(self.package_dir, manifest.argv("build"), seed)
        if self.token_ttl is not None:
            self.tokens = SandboxTokens(self.token_ttl)
            self.token = self.tokens.mint()
        self.combiner = SandboxCombiner(
            self.work_dir / "models",
            require_token=self.token,
            tokens=self.tokens,
            history=self.history,
            online_window=self.online_window,
        )
        port = await self.combiner.start(self.host, 0)
        self.controller = SandboxController(
            self.host, port, package=archive, token=self.token, tokens=self.tokens
        )
        self.controller.start(self.host, 0)
        self.seed_model_id = str(uuid.uuid4())
        self.combiner.put_model(self.seed_model_id, seed)
        log.info("sandbox up: controller %s, combiner %s:%d", self.api_url, self.host, port)

    @property
    def api_url(self) -> str:
        assert self.controller is not None
        return f"http://{self.host}:{self.controller.port}"

    @property
    def refresh_uri(self) -> str:
        """The sandbox's token refresh endpoint (only with ``token_ttl``)."""
        return f"{self.api_url}{REFRESH_PATH}"

    async def wait_for_clients(self, timeout: float = 60.0) -> None:
        assert self.combiner is not None
        await self.combiner.wait_for_clients(self.expected_clients, timeout)

    async def run(
        self, rounds: int, on_round: Callable[[RoundResult], None] | None = None
    ) -> list[RoundResult]:
        """``on_round`` is called with each round's result as soon as the round is done."""
        model_id = self.seed_model_id
        for number in range(1, rounds + 1):
            result = await self.run_round(number, model_id)
            self.results.append(result)
            if on_round is not None:
                on_round(result)
            model_id = result.model_id
        return self.results

    async def run_until_stopped(self, rounds: int, stop: asyncio.Event) -> list[RoundResult]:
        """``run(rounds)`` cut short by ``stop`` (SIGINT/SIGTERM): the rounds done by then."""
        running = asyncio.ensure_future(self.run(rounds))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({running, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if running.done():
                return running.result()
            log.warning("stopped after %d of %d rounds", len(self.results), rounds)
            return list(self.results)
        finally:
            for job in (running, stopped):
                job.cancel()
                with contextlib.suppress(BaseException):
                    await job

    async def run_round(self, number: int, model_id: str) -> RoundResult:
        assert self.combiner is not None
        started = time.monotonic()
        clients = sorted(self.combiner.online_clients())
        if not clients:
            raise RoundFailed(f"round {number}: no clients online")
        config = {  # every value a string, as FEDn's controller sends it
            "round_id": str(number),
            "session_id": self.session_id,
            "task": "training",
            "aggregator": "fedavg",
            "round_timeout": str(self.round_timeout),
            "rounds": "1",
            "validate": "True",
            "helper_type": "numpyhelper",
            "model_id": model_id,
            "clients_required": str(len(clients)),
        }
        asks = [
            self.combiner.submit_task(cid, TaskKind.TRAIN, model_id, self.session_id, json.dumps(config))
            for cid in clients
        ]
        updates, failed = await self.combiner.wait_for_answers(
            self.combiner.updates, asks, self.round_timeout
        )
        if not updates and failed:
            who = (
                f"every client ({len(asks)}) failed"
                if len(failed) == len(asks)
                else f"{len(failed)} of {len(asks)} clients failed and the others sent nothing"
            )
            first = failed[0]
            raise RoundFailed(
                f"round {number}: {who}; the first, {first.sender_name}: {_one_line(first.text)}"
            )
        if not updates:
            raise RoundFailed(f"round {number}: no model updates arrived within {self.round_timeout:.0f} s")
        weighted = []
        for update in updates:
            examples = update.meta.get("training_metadata", {}).get("num_examples")
            if not isinstance(examples, (int, float)) or examples <= 0:
                log.warning("dropping update %s: no num_examples in its metadata", update.model_update_id)
                continue
            weighted.append((self.combiner.model_path(update.model_update_id), float(examples)))
        if not weighted:
            raise RoundFailed(f"round {number}: no usable model update (num_examples missing)")
        new_id = str(uuid.uuid4())
        aggregate = self.work_dir / f"round-{number}.npz"
        await asyncio.to_thread(fedavg, weighted, aggregate)
        self.combiner.put_model(new_id, aggregate)
        aggregate.unlink()
        checks = [
            self.combiner.submit_task(cid, TaskKind.VALIDATE, new_id, self.session_id) for cid in clients
        ]
        validations, _ = await self.combiner.wait_for_answers(
            self.combiner.validations, checks, self.round_timeout
        )
        return RoundResult(
            number,
            new_id,
            _mean_metrics([v.metrics for v in validations]),
            len(weighted),
            len(validations),
            time.monotonic() - started,
        )

    async def lose_clients(self, client_ids: list[str]) -> None:
        """These clients are gone for good (their process or machine died): rounds stop waiting for them."""
        if self.combiner is not None:
            await self.combiner.lose_clients(client_ids)

    async def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
        if self.combiner is not None:
            await self.combiner.stop()


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _mean_metrics(reports: list[dict[str, Any]]) -> dict[str, float]:
    keys = sorted({k for r in reports for k, v in r.items() if isinstance(v, (int, float))})
    return {
        k: statistics.fmean(float(r[k]) for r in reports if isinstance(r.get(k), (int, float))) for k in keys
    }


async def _build_seed(package_dir: Path, argv: tuple[str, ...], out: Path) -> None:
    """Run the package's build entry point; it writes the seed model to the path it is given."""
    command = [sys.executable if argv[0] in ("python", "python3") else argv[0], *argv[1:], str(out)]
    proc = await asyncio.create_subprocess_exec(
        *command, cwd=package_dir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(proc.communicate(), timeout=300)
    if proc.returncode != 0:
        tail = output.decode(errors="replace")[-2000:]
        raise PackageError(f"the package's build entry point failed (exit {proc.returncode}): {tail}")
    if not out.exists():
        fallback = package_dir / "seed.npz"
        if not fallback.exists():
            raise PackageError("the package's build entry point wrote no seed model")
        fallback.replace(out)
