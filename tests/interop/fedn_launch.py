"""Start a real FEDn 0.33.0 controller or combiner, loopback-only, with run-time shims.

Runs INSIDE the FEDn venv (``.fedn-venv/bin/python fedn_launch.py controller|combiner``),
so it imports only the standard library and fedn's own dependencies, never our src.

Why each piece exists (details in docs/PROTOCOL.md §5):

* fedn 0.33.0's SQL statestore has three bugs that kill the combiner or the REST API
  on SQLite; they are shimmed here at run time, without editing fedn:
  1. DateTime columns are fed strings -> SQLite's DATETIME bind parses ``str`` values;
  2. a NOT NULL column (combiner_preferred) is never filled -> every non-primary-key
     column is made nullable just before ``create_all``;
  3. round config booleans arrive as strings ('True') -> Boolean accepts such strings.
  A fourth bug is not in the statestore: with BOTO3 storage every prediction round
  crashes the combiner's round thread (``shim_presigned_put_url``).
* The controller and the combiner are started together with the storage, and each imports
  fedn (most of its start-up time) before it waits for what it needs (``--after URL``: the
  storage for the controller, the controller for the combiner). Started one after the
  other, a network took some 16 s to come up; in parallel the imports overlap.
* Stock fedn binds ``0.0.0.0`` / ``[::]`` and forks a Flask reloader in debug mode; we
  bind 127.0.0.1 and run Flask threaded without a reloader, so the pid our harness
  records is the only process.
* In combiner mode every ModelUpdate the combiner receives, and every update its
  aggregator actually loads, is appended as one JSON line to ``$INTEROP_EVENTS``: the
  interop tests read it to prove *which* clients' updates were aggregated (the SQL
  statestore keeps only the count). Every Heartbeat it receives is recorded there too,
  with its utilisation fields, which FEDn itself reads but never stores. This only
  observes; the originals still run.
* With ``INTEROP_KEEP_UPDATES`` set, the combiner keeps every model update it received
  in its temporary model storage after aggregating it (FedAvg deletes them), so a test can
  download an update back by its id over the combiner's own ModelService and check what a
  client really sent (tests/interop/test_privacy.py). Only the deletion is skipped.
* Split learning (FORWARD/BACKWARD tasks) cannot be started on stock 0.33.0: the
  ``start_splitlearning_session`` route calls ``_get_number_of_available_clients()``
  without its required argument and always answers HTTP 500 (fixed after the tag).
  The controller gets that argument a default of None (= count every client). FEDn's
  ``splitlearningagg`` needs torch and a labels file (``FEDN_LABELS_PATH``). When that
  variable is set (the combiner runs from ``.fedn-torch-venv``), FEDn's own aggregator
  runs; otherwise the combiner gets a numpy-only stand-in of the same name, which checks
  the embeddings (an npz keyed by client id), answers each with gradients of 0.5, and
  records what it received (``sl_forward`` events). One more 0.33.0 bug kills the
  combiner's round thread after the first backward pass on the SQL statestore: the
  backward round data has no ``aggregation_time``, which the round store indexes; it
  gets an empty one, whichever aggregator runs. The client side of the protocol is
  untouched.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import threading
from typing import Any

LOOPBACK = "127.0.0.1"
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}


def shim_statestore() -> None:
    from sqlalchemy.dialects.sqlite.base import DATETIME
    from sqlalchemy.sql.schema import MetaData
    from sqlalchemy.sql.sqltypes import Boolean

    original_bind = DATETIME.bind_processor

    def bind_processor(self: Any, dialect: Any) -> Any:
        process = original_bind(self, dialect)

        def parse_strings(value: Any) -> Any:
            if isinstance(value, str):
                parsed = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
                value = parsed.replace(tzinfo=None)
            return process(value) if process else value

        return parse_strings

    DATETIME.bind_processor = bind_processor

    original_create_all = MetaData.create_all

    def create_all(self: Any, *args: Any, **kwargs: Any) -> Any:
        for table in self.tables.values():
            for column in table.columns:
                if not column.primary_key:
                    column.nullable = True
        return original_create_all(self, *args, **kwargs)

    MetaData.create_all = create_all

    original_strict = Boolean._strict_as_bool

    def strict_as_bool(self: Any, value: Any) -> Any:
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
        return original_strict(self, value)

    Boolean._strict_as_bool = strict_as_bool


def shim_presigned_put_url() -> None:
    """Bug 4: ``Repository.presigned_put_url`` calls MinIO's API on every storage type, so with
    BOTO3 each prediction round dies with AttributeError (and takes the combiner's round
    thread with it). Ask boto3 for the presigned PUT URL instead."""
    from fedn.network.storage.s3.repository import Repository

    original = Repository.presigned_put_url

    def presigned_put_url(self: Any, bucket: str, object_name: str, *args: Any, **kwargs: Any) -> Any:
        s3 = getattr(self.client, "s3_client", None)
        if s3 is None:
            return original(self, bucket, object_name, *args, **kwargs)
        return s3.generate_presigned_url(
            "put_object", Params={"Bucket": bucket, "Key": object_name}, ExpiresIn=3600
        )

    Repository.presigned_put_url = presigned_put_url


def bind_grpc_to_loopback() -> None:
    """Rewrite '[::]:port' / '0.0.0.0:port' to 127.0.0.1:port on every gRPC server."""
    import grpc._server

    server_cls: Any = grpc._server._Server
    for name in ("add_insecure_port", "add_secure_port"):
        original = getattr(server_cls, name)

        def wrapped(self: Any, address: str, *args: Any, _original: Any = original) -> Any:
            port = address.rsplit(":", 1)[-1]
            return _original(self, f"{LOOPBACK}:{port}", *args)

        setattr(server_cls, name, wrapped)


def record_updates(path: str) -> None:
    from fedn.network.combiner.updatehandler import UpdateHandler

    lock = threading.Lock()

    def emit(event: dict[str, Any]) -> None:
        with lock, open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(event) + "\n")

    original_receive = UpdateHandler.on_model_update
    original_load = UpdateHandler.load_model_update

    def on_model_update(self: Any, update: Any) -> Any:
        try:
            meta = json.loads(update.meta or "{}")
            config = json.loads(meta.get("config") or update.config or "{}")
        except ValueError:
            meta, config = {}, {}
        emit(
            {
                "event": "received",
                "model_update_id": update.model_update_id,
                "model_id": update.model_id,
                "sender_name": update.sender.name,
                "sender_client_id": update.sender.client_id,
                "sender_role": int(update.sender.role),
                "receiver_name": update.receiver.name,
                "round_id": config.get("round_id"),
                "session_id": config.get("session_id"),
                "meta_keys": sorted(meta),
                "num_examples": (meta.get("training_metadata") or {}).get("num_examples"),
            }
        )
        return original_receive(self, update)

    def load_model_update(self: Any, update: Any, helper: Any) -> Any:
        model, metadata = original_load(self, update, helper)
        emit({"event": "aggregated", "model_update_id": update.model_update_id, **metadata})
        return model, metadata

    UpdateHandler.on_model_update = on_model_update
    UpdateHandler.load_model_update = load_model_update


def keep_updates() -> None:
    from fedn.network.combiner.updatehandler import UpdateHandler

    def delete_model(self: Any, _model_update: Any) -> None:
        return None  # kept in the temporary storage, downloadable by its id

    UpdateHandler.delete_model = delete_model


def record_heartbeats(path: str) -> None:
    from fedn.network.combiner.combiner import Combiner

    lock = threading.Lock()
    original = Combiner.SendHeartbeat

    def send_heartbeat(self: Any, heartbeat: Any, context: Any) -> Any:
        event = {
            "event": "heartbeat",
            "sender_name": heartbeat.sender.name,
            "sender_client_id": heartbeat.sender.client_id,
            "memory_utilisation": heartbeat.memory_utilisation,
            "cpu_utilisation": heartbeat.cpu_utilisation,
        }
        with lock, open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(event) + "\n")
        return original(self, heartbeat, context)

    Combiner.SendHeartbeat = send_heartbeat


def shim_splitlearning_start() -> None:
    from fedn.network.api.v1 import session_routes

    original = session_routes._get_number_of_available_clients

    def available(client_ids: Any = None) -> Any:
        return original(client_ids)

    session_routes._get_number_of_available_clients = available


def stub_splitlearning_aggregator(path: str | None) -> None:
    import types

    import numpy as np
    from fedn.network.combiner.aggregators.aggregatorbase import AggregatorBase

    lock = threading.Lock()

    class Aggregator(AggregatorBase):
        def __init__(self, update_handler: Any) -> None:
            super().__init__(update_handler)
            self.name = "splitlearningagg"

        def combine_models(
            self, helper: Any = None, delete_models: bool = True, is_sl_inference: Any = False
        ) -> Any:
            embeddings: dict[str, Any] = {}
            while not self.update_handler.model_updates.empty():
                update = self.update_handler.next_model_update()
                embedding, _ = self.update_handler.load_model_update(update, helper)
                embeddings.update(embedding)
                if delete_models:
                    self.update_handler.delete_model(update)
            inference = str(is_sl_inference) == "True"
            if path:
                event = {
                    "event": "sl_forward",
                    "inference": inference,
                    "clients": sorted(embeddings),
                    "shapes": {k: list(np.asarray(v).shape) for k, v in embeddings.items()},
                }
                with lock, open(path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(event) + "\n")
            data = {"time_model_load": 0.0, "time_model_aggregation": 0.0}
            if inference:
                return {"gradients": None, "validation_data": {"clients": sorted(embeddings)}, "data": data}
            gradients = {k: np.full_like(np.asarray(v, dtype=float), 0.5) for k, v in embeddings.items()}
            return {"gradients": gradients, "validation_data": None, "data": data}

    name = "fedn.network.combiner.aggregators.splitlearningagg"
    module = types.ModuleType(name)
    module.Aggregator = Aggregator  # type: ignore[attr-defined]
    sys.modules[name] = module


def shim_backward_round_data() -> None:
    from fedn.network.combiner.roundhandler import RoundHandler

    original_backward = RoundHandler.execute_backward_pass

    def execute_backward_pass(self: Any, config: Any) -> Any:
        data = original_backward(self, config)
        if isinstance(data.get("data"), dict):
            empty = {"nr_aggregated_models": 0, "time_model_aggregation": 0.0, "time_model_load": 0.0}
            data["data"].setdefault("aggregation_time", empty)
        return data

    RoundHandler.execute_backward_pass = execute_backward_pass


def wait_for(urls: list[str], timeout: float = 90.0) -> None:
    """Return once every URL answers HTTP (any status): what this server needs up before it starts."""
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    for url in urls:
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except urllib.error.HTTPError:
                break  # it answered
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit(f"interop: {url} did not answer within {timeout:.0f} s")
                time.sleep(0.1)


def run_controller(port: int, after: list[str]) -> None:
    from fedn.common.config import get_modelstorage_config, get_network_config, get_statestore_config
    from fedn.network.api.server import app
    from fedn.network.controller.control import Control
    from fedn.network.storage.dbconnection import DatabaseConnection
    from fedn.network.storage.s3.repository import Repository

    wait_for(after)
    shim_splitlearning_start()
    network_id = get_network_config()
    storage = get_modelstorage_config()
    db = DatabaseConnection(get_statestore_config(), network_id, connect=False)
    repository = Repository(storage["storage_config"], storage_type=storage["storage_type"])
    Control.create_instance(network_id, repository, db)
    db.initialize_connection()
    print(f"interop: controller on http://{LOOPBACK}:{port}", flush=True)
    app.run(host=LOOPBACK, port=port, debug=False, threaded=True, use_reloader=False)


def run_combiner(init_yaml: str, after: list[str]) -> None:
    bind_grpc_to_loopback()  # before fedn's CLI imports build any server
    shim_presigned_put_url()
    events = os.environ.get("INTEROP_EVENTS")
    if events:
        record_updates(events)
        record_heartbeats(events)
    if os.environ.get("INTEROP_KEEP_UPDATES"):
        keep_updates()
    shim_backward_round_data()
    if not os.environ.get("FEDN_LABELS_PATH"):
        stub_splitlearning_aggregator(events)
    from fedn.cli.main import main

    wait_for(after)
    main(["combiner", "start", "--init", init_yaml], standalone_mode=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="role", required=True)
    controller = sub.add_parser("controller")
    controller.add_argument("--port", type=int, required=True)
    combiner = sub.add_parser("combiner")
    combiner.add_argument("--init", required=True)
    for role in (controller, combiner):
        role.add_argument("--after", action="append", default=[], help="wait until this URL answers")
    args = parser.parse_args(argv)
    shim_statestore()
    if args.role == "controller":
        run_controller(args.port, args.after)
    else:
        run_combiner(args.init, args.after)


if __name__ == "__main__":
    main(sys.argv[1:])
