"""Drive a FEDn 0.33 session through FEDn's own ``APIClient`` and print the result as JSON.

Runs INSIDE the FEDn venv (standard library + fedn only, never our src): the harness
writes one JSON object to stdin and reads the last stdout line. Actions:

* ``setup``: upload the compute package (.tgz) and make it active with its helper,
  then upload the seed model (npz), if one is given. Done before clients start, so a client asking
  for the package never gets FEDn's 203 "retry" and sleeps.
* ``predict``: run a prediction round and collect the clients' prediction records.
* ``validate``: a validation-only pass over an existing model. FEDn 0.33's REST API and
  ``APIClient`` cannot start one (no route; a session always trains first and asks for
  validations only after a round has committed a new model, ``Control.round`` step 4),
  so this does what the controller does in that step: ``CombinerInterface.submit`` with
  ``task: validation`` (the combiner's ``Control.Start``), for a session record created
  through ``POST /api/v1/sessions/`` and never started. Then it waits for the records.
* ``splitlearning``: a split-learning session through ``APIClient.start_splitlearning_session``
  (the harness shims FEDn 0.33.0's broken start route and its torch-only aggregator, see
  ``fedn_launch.py``); report its rounds and every status of the session.
* ``session``: wait until ``clients`` clients are online, start a session, poll until
  every round is finished and the validations of each round's model have arrived
  (they come *after* a round is marked Finished), and report per round.

The SQL statestore ignores most list filters, so every record is filtered here by
session id and model id. Any failure exits non-zero with the reason on stderr.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from typing import Any

import requests
from fedn.network.api.client import APIClient
from fedn.network.combiner.interfaces import CombinerInterface


def fail(message: str, **context: Any) -> None:
    print(f"fedn_session: {message} {json.dumps(context, default=str)[:4000]}", file=sys.stderr)
    sys.exit(1)


def records(reply: Any) -> list[dict[str, Any]]:
    if not isinstance(reply, dict) or "result" not in reply:
        fail("unexpected API reply", reply=reply)
    return list(reply["result"])


def setup(api: APIClient, args: dict[str, Any]) -> dict[str, Any]:
    uploaded = api.set_active_package(
        args["package"], args.get("helper", "numpyhelper"), args["package_name"]
    )
    package = api.get_active_package()
    if package.get("name") != args["package_name"]:
        fail("package upload failed", upload_reply=uploaded, active_package=package)
    if not args.get("seed"):  # split learning needs no seed model (FEDn's example uploads none)
        return {"package": package, "seed_model": None}
    seed = api.set_active_model(args["seed"])
    model = api.get_active_model()
    if not seed.get("success") or not model.get("model_id"):
        fail("seed model upload failed", reply=seed, active_model=model)
    return {"package": package, "seed_model": model}


def wait_for_clients(api: APIClient, count: int, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    online: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        online = [c for c in records(api.get_clients()) if c.get("status") == "online"]
        if len(online) >= count:
            return online
        time.sleep(0.5)
    fail(f"{count} clients not online after {timeout:.0f} s", clients=records(api.get_clients()))
    return online


def session(api: APIClient, args: dict[str, Any]) -> dict[str, Any]:
    n_clients, rounds = int(args["clients"]), int(args["rounds"])
    online = wait_for_clients(api, n_clients, float(args.get("client_timeout", 120)))
    started_at = time.monotonic()
    reply = api.start_session(
        name=args.get("name"),
        aggregator="fedavg",
        round_timeout=int(args.get("round_timeout", 120)),
        rounds=rounds,
        validate=True,
        helper=args.get("helper", "numpyhelper"),
        min_clients=n_clients,
        requested_clients=n_clients,
    )
    session_id = reply.get("session_id")
    if not session_id:
        fail("session did not start", reply=reply)
    deadline = time.monotonic() + float(args.get("timeout", 300))
    while api.get_session_status(session_id) != "Finished":
        if time.monotonic() > deadline:
            fail("session did not finish", session=api.get_session(session_id), rounds=api.get_rounds())
        time.sleep(0.5)
    finished_after = time.monotonic() - started_at
    result = collect(api, session_id, rounds, n_validations=n_clients, grace=float(args.get("grace", 30)))
    result.update(
        session_id=session_id,
        seconds_to_finish=round(finished_after, 2),
        online_at_start=[{k: c.get(k) for k in ("name", "client_id", "status")} for c in online],
    )
    return result


def collect(api: APIClient, session_id: str, rounds: int, n_validations: int, grace: float) -> dict[str, Any]:
    """Per round: status, input and output global model, aggregation count, validations."""
    deadline = time.monotonic() + grace
    while True:
        models = [m for m in records(api.get_models()) if m.get("session_id") == session_id]
        by_parent = {m.get("parent_model"): m for m in models}
        mine = [
            r for r in records(api.get_rounds()) if r.get("round_config", {}).get("session_id") == session_id
        ]
        mine.sort(key=lambda r: int(r["round_id"]))
        validations = [v for v in records(api.get_validations()) if v.get("session_id") == session_id]
        statuses = [s for s in records(api.get_statuses()) if s.get("session_id") == session_id]
        out = [summarize(r, by_parent, validations, statuses) for r in mine]
        complete = len(out) == rounds and all(len(r["validations"]) >= n_validations for r in out)
        if complete or time.monotonic() > deadline:
            return {"rounds": out, "complete": complete}
        time.sleep(0.5)


def summarize(
    rnd: dict[str, Any],
    by_parent: dict[Any, dict[str, Any]],
    validations: list[dict[str, Any]],
    statuses: list[dict[str, Any]],
) -> dict[str, Any]:
    config = rnd.get("round_config") or {}
    parent = config.get("model_id")
    model = by_parent.get(parent) or {}
    model_id = model.get("model_id")
    combiners = rnd.get("combiners") or []
    aggregated = [
        ((c.get("data") or {}).get("aggregation_time") or {}).get("nr_aggregated_models") for c in combiners
    ]
    return {
        "round_id": rnd["round_id"],
        "status": rnd.get("status"),
        "input_model_id": parent,
        "model_id": model_id,
        "nr_aggregated_models": aggregated,
        # The SQL store keeps only sender name and role of a validation (client_id is dropped).
        "validations": [
            {
                "sender_name": (v.get("sender") or {}).get("name"),
                "metrics": json.loads(v["data"]) if v.get("data") else {},
            }
            for v in validations
            if model_id and v.get("model_id") == model_id
        ],
        # The clients' own "Model update completed." status records for this round's input model.
        "update_statuses": [
            {"sender_name": (s.get("sender") or {}).get("name"), "status": s.get("status")}
            for s in statuses
            if s.get("type") == "MODEL_UPDATE"
            and "completed" in str(s.get("status"))
            and str(config.get("model_id")) in str(s.get("data"))
        ],
    }


def predict(api: APIClient, args: dict[str, Any]) -> dict[str, Any]:
    """Start a prediction round on ``model_id`` once ``clients`` are online and wait for their answers."""
    wait_for_clients(api, int(args["clients"]), float(args.get("client_timeout", 120)))
    prediction_id = str(uuid.uuid4())
    reply = api.start_predictions(prediction_id=prediction_id, model_id=args.get("model_id"))
    deadline = time.monotonic() + float(args.get("timeout", 60))
    while True:
        mine = [p for p in records(api.get_predictions()) if p.get("prediction_id") == prediction_id]
        if len(mine) >= int(args["clients"]) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    predictions = [
        {
            "sender_name": (p.get("sender") or {}).get("name"),
            "model_id": p.get("model_id"),
            "data": json.loads(p["data"]) if p.get("data") else None,
        }
        for p in mine
    ]
    return {"prediction_id": prediction_id, "start_reply": reply, "predictions": predictions}


def validate(api: APIClient, args: dict[str, Any]) -> dict[str, Any]:
    """Ask every connected client to validate ``model_id``, with no training, and collect the records."""
    n_clients, model_id = int(args["clients"]), args["model_id"]
    wait_for_clients(api, n_clients, float(args.get("client_timeout", 120)))
    config = {  # every field APIClient.start_session sends (the DTO requires them all)
        "aggregator": "fedavg",
        "aggregator_kwargs": None,
        "round_timeout": 60,
        "buffer_size": -1,
        "model_id": model_id,
        "delete_models_storage": True,
        "clients_required": n_clients,
        "requested_clients": n_clients,
        "validate": True,
        "helper_type": args.get("helper", "numpyhelper"),
        "server_functions": None,
    }
    name = args.get("name") or f"validate-{uuid.uuid4()}"
    reply = requests.post(
        api._get_url_api_v1("sessions/"),
        json={"name": name, "seed_model_id": model_id, "session_config": config},
        headers=api.headers,
        timeout=10,
    )
    if reply.status_code != 201:
        fail("session record not created", status=reply.status_code, body=reply.text)
    session_id = reply.json()["session_id"]
    [combiner] = records(api.get_combiners())
    certificate = None
    if os.environ.get("FEDN_GRPC_CERT_PATH"):  # the controller's own setting for a TLS combiner
        with open(os.environ["FEDN_GRPC_CERT_PATH"], "rb") as f:
            certificate = f.read()
    interface = CombinerInterface(
        combiner.get("parent"), combiner["name"], combiner["address"], combiner.get("fqdn"),
        combiner["port"], certificate=certificate,
    )  # fmt: skip
    round_config = {k: v for k, v in config.items() if v is not None}  # submit() sends str(value)
    job = interface.submit(
        {**round_config, "task": "validation", "session_id": session_id, "round_id": "validation-only"}
    )
    job_id = {p.key: p.value for p in job.parameter}.get("job_id")
    deadline = time.monotonic() + float(args.get("timeout", 60))
    while True:
        mine = [v for v in records(api.get_validations()) if v.get("session_id") == session_id]
        if len(mine) >= n_clients or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    time.sleep(float(args.get("settle", 1.0)))  # let any duplicate or stray record arrive too
    mine = [v for v in records(api.get_validations()) if v.get("session_id") == session_id]
    statuses = [s for s in records(api.get_statuses()) if s.get("session_id") == session_id]
    return {
        "session_id": session_id,
        "job_id": job_id,
        "session_status": api.get_session_status(session_id),
        "models": [m.get("model_id") for m in records(api.get_models())],
        "rounds": [r.get("round_id") for r in records(api.get_rounds())],
        "validations": [
            {
                "sender_name": (v.get("sender") or {}).get("name"),
                "model_id": v.get("model_id"),
                "metrics": json.loads(v["data"]) if v.get("data") else {},
            }
            for v in mine
        ],
        "status_types": sorted({str(s.get("type")) for s in statuses}),
    }


def splitlearning(api: APIClient, args: dict[str, Any]) -> dict[str, Any]:
    """A split-learning session (FORWARD then BACKWARD per round, and a FORWARD inference pass)."""
    n_clients, rounds = int(args["clients"]), int(args["rounds"])
    wait_for_clients(api, n_clients, float(args.get("client_timeout", 120)))
    reply = api.start_splitlearning_session(
        name=args.get("name"),
        model_id=args["model_id"],
        round_timeout=int(args.get("round_timeout", 60)),
        rounds=rounds,
        validate=bool(args.get("validate", True)),
        min_clients=n_clients,
        requested_clients=n_clients,
    )
    session_id = reply.get("session_id")
    if not session_id or "started" not in str(reply.get("message", "")).lower():
        fail("split-learning session did not start", reply=reply)
    deadline = time.monotonic() + float(args.get("timeout", 180))
    while api.get_session_status(session_id) != "Finished":
        if time.monotonic() > deadline:
            fail("split-learning session did not finish", session=api.get_session(session_id))
        time.sleep(0.5)
    # The inference pass runs after the last round, so its statuses can come later still:
    # wait (up to ``settle`` s) until ``expect`` = {status text: count} have arrived.
    expect: dict[str, int] = args.get("expect", {})
    deadline = time.monotonic() + float(args.get("settle", 30.0))
    while True:
        statuses = [s for s in records(api.get_statuses(n_max=5000)) if s.get("session_id") == session_id]
        texts = [s.get("status") for s in statuses]
        if all(texts.count(t) >= n for t, n in expect.items()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return {
        "session_id": session_id,
        "rounds": [
            {"round_id": r.get("round_id"), "status": r.get("status")}
            for r in records(api.get_rounds())
            if r.get("round_config", {}).get("session_id") == session_id
        ],
        "statuses": [
            {
                "sender_name": (s.get("sender") or {}).get("name"),
                "status": s.get("status"),
                "type": s.get("type"),
                "log_level": s.get("log_level"),
            }
            for s in statuses
        ],
    }


def main() -> None:
    args = json.loads(sys.stdin.read())
    api = APIClient(args["host"], args["port"], token=args.get("token"))
    actions = {
        "setup": setup,
        "session": session,
        "predict": predict,
        "validate": validate,
        "splitlearning": splitlearning,
    }
    if args.get("action") not in actions:
        fail("unknown action", action=args.get("action"))
    print(json.dumps(actions[args["action"]](api, args), default=str))


if __name__ == "__main__":
    main()
