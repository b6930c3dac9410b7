"""One client's object graph: the domain's parts wired over the ports the app ``Container`` gives.

``ClientGraph``'s singletons are one client's parts: the link holder shared by the task
runner, the outbox and the connection; the outbox and its ledger; the assigner; the package
setup; the heartbeats; the connection and its supervisor; the task runner's parts (its calls
and status reports, the outbox's result filer, a handler per task kind); and the lifecycle
that runs them. The task runner's factory is bound to those parts; the lifecycle calls it
once the trainer is known.

The app ``Container`` keeps one graph and ``build_client`` resets its parts for every client
it builds, so ``simulate``'s thousands of clients from one container each get their own
links, outbox and supervisor (a reset and build: about 0.4 ms a client; a fresh graph: 2.7 ms).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from dependency_injector import containers, providers

from ..domain.assigner import Assigner
from ..domain.connection import Connection
from ..domain.lifecycle import Lifecycle
from ..domain.links import LinkHolder
from ..domain.model import TaskKind
from ..domain.observe import NULL_OBSERVER
from ..domain.outbox import Outbox, OutboxLedger
from ..domain.package_setup import PackageSetup
from ..domain.plan import ClientPlan
from ..domain.pulse import Pulse
from ..domain.session import Supervisor
from ..domain.state import StateMachine
from ..domain.task_calls import StatusReporter, TaskCalls, direct_retry
from ..domain.task_kinds import Evaluation, SplitLearning, Training, unsupported
from ..domain.task_results import ResultFiler
from ..domain.tasks import TaskRunner


def _tasks_dir(plan: ClientPlan) -> Path:
    return plan.work_dir / "tasks"


class ClientGraph(containers.DeclarativeContainer):
    # The ports (given by the app Container, or by a test).
    plan = providers.Dependency(instance_of=ClientPlan)
    discovery = providers.Object(None)  # None: attached straight to a combiner
    package_source = providers.Object(None)
    unpacker = providers.Dependency()
    connector = providers.Dependency()
    trainer_factory = providers.Dependency()
    credentials = providers.Dependency()
    clock = providers.Dependency()
    ids = providers.Dependency()
    random = providers.Dependency()
    observer = providers.Object(NULL_OBSERVER)
    usage_probe = providers.Object(None)  # None: heartbeats carry no usage, no telemetry is sent
    outbox_store = providers.Dependency()
    package_cache = providers.Dependency()
    scratch = providers.Dependency()

    # The client's parts.
    state = providers.Singleton(StateMachine)
    links = providers.Singleton(LinkHolder, plan.provided.link_wait)
    ledger = providers.Singleton(OutboxLedger, outbox_store)
    outbox = providers.Singleton(
        Outbox,
        ledger,
        links,
        clock,
        plan.provided.delivery_retry,
        settle=plan.provided.outbox_settle,
        ids=ids,
        random=random,
    )
    assigner = providers.Singleton(Assigner, plan, discovery, credentials, clock, random)
    package = providers.Singleton(
        PackageSetup,
        plan.provided.package,
        package_source,
        unpacker,
        credentials,
        package_cache,
        clock,
        random,
    )
    pulse = providers.Singleton(Pulse, plan, links, observer, clock, usage_probe)
    connection = providers.Singleton(
        Connection, connector, links, credentials, observer, clock, pulse, outbox
    )
    supervisor = providers.Singleton(Supervisor, plan, connection, assigner, credentials, clock, random)
    # The task runner's parts: its calls and status reports, the outbox's filer, one handler per kind.
    client_id = supervisor.provided.client_id
    task_calls = providers.Singleton(
        TaskCalls, links, clock, random, providers.Callable(direct_retry, plan.provided.delivery_retry)
    )
    statuses = providers.Singleton(StatusReporter, links)
    results = providers.Singleton(ResultFiler, outbox, clock, ids)
    training = providers.Singleton(Training, task_calls, statuses, results)
    evaluation = providers.Singleton(Evaluation, task_calls, statuses, results)
    split_learning = providers.Singleton(SplitLearning, task_calls, statuses, ids, client_id)
    handlers = providers.Dict(
        {
            TaskKind.TRAIN: training.provided.train,
            TaskKind.VALIDATE: evaluation.provided.validate,
            TaskKind.PREDICT: evaluation.provided.predict,
            TaskKind.FORWARD: split_learning.provided.forward,
            TaskKind.BACKWARD: split_learning.provided.backward,
            TaskKind.UNSUPPORTED: providers.Object(unsupported),
        }
    )
    # The task runner's factory, bound to this client's parts: the lifecycle calls it with
    # trainer= and model_suffix= once the package is ready.
    task_runner = providers.Factory(
        functools.partial,
        TaskRunner,
        handlers,
        task_calls,
        statuses,
        outbox,
        state,
        scratch,
        providers.Callable(_tasks_dir, plan),
        observer=observer,
    )
    lifecycle = providers.Singleton(
        Lifecycle,
        plan=plan,
        assigner=assigner,
        package=package,
        trainer_factory=trainer_factory,
        make_runner=task_runner,
        supervisor=supervisor,
        outbox=outbox,
        state=state,
    )


# One client's parts: reset before each client is built.
PARTS = (
    "state",
    "links",
    "ledger",
    "outbox",
    "assigner",
    "package",
    "pulse",
    "connection",
    "supervisor",
    "task_calls",
    "statuses",
    "results",
    "training",
    "evaluation",
    "split_learning",
    "lifecycle",
)


def build_client(graph: ClientGraph, **ports: Any) -> Lifecycle:
    """A new client from ``graph`` over ``ports`` (named as ClientGraph's ports): new parts, its lifecycle.

    The ports are the graph's only for the build; what was built keeps them.
    """
    with graph.override_providers(**{name: providers.Object(port) for name, port in ports.items()}):
        for part in PARTS:
            getattr(graph, part).reset()
        return graph.lifecycle()


def client_graph_lifecycle(**ports: Any) -> Lifecycle:
    """A client over ``ports`` from a graph of its own (tests; the Container keeps one graph)."""
    return build_client(ClientGraph(), **ports)
