"""What a task's own code may report while it runs: metrics and attributes, in the task's context.

The task runner opens a ``TaskContext`` around each task and makes it the current
one (a ``ContextVar``, so it follows the task into the thread that runs the user's
code). ``log_metric`` / ``log_attributes`` called from there find it, number the
metric steps as FEDn does and hand the reports to the sender the runner gave it.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from .model import AttributeReport, MetricReport, Task

CURRENT_TASK: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar(
    "fedclient_current_task", default=None
)


def check_metrics(metrics: object) -> dict[str, float]:
    """Metric values as floats; a user mistake is a ValueError that says which key is wrong.

    An empty mapping is refused too: a FEDn combiner fails on a metric message with no values.
    """
    if not isinstance(metrics, Mapping):
        raise ValueError(f"log_metric takes a dict of name -> number, got {type(metrics).__name__}")
    if not metrics:
        raise ValueError("log_metric needs at least one metric")
    values: dict[str, float] = {}
    for key, value in metrics.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"metric names must be non-empty strings, got {key!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            # numpy scalars are not int/float subclasses (except float64); accept what converts exactly.
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"metric {key!r} must be a number, got {type(value).__name__}") from None
        else:
            number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"metric {key!r} must be a finite number, got {number}")
        values[key] = number
    return values


def check_attributes(attributes: object) -> dict[str, str]:
    """Attribute values as text (the wire carries strings); keys must be non-empty strings."""
    if not isinstance(attributes, Mapping):
        raise ValueError(f"log_attributes takes a dict of name -> value, got {type(attributes).__name__}")
    if not attributes:
        raise ValueError("log_attributes needs at least one attribute")
    values: dict[str, str] = {}
    for key, value in attributes.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"attribute names must be non-empty strings, got {key!r}")
        values[key] = value if isinstance(value, str) else str(value)
    return values


@dataclass
class TaskContext:
    """One running task as its code sees it: the ids to tag reports with, and the step counter."""

    task: Task
    send_metric: Callable[[MetricReport], Awaitable[None]]
    send_attributes: Callable[[AttributeReport], Awaitable[None]]
    step: int = 0

    def metric_report(self, metrics: object, step: int | None = None, commit: bool = True) -> MetricReport:
        """The report for one ``log_metric`` call, as FEDn numbers it.

        Without ``step`` the context's counter is used; an explicit ``step`` resets it.
        ``commit`` moves the counter on after this report, so steps read 0, 1, 2, …
        """
        values = check_metrics(metrics)
        if step is not None:
            if isinstance(step, bool) or not isinstance(step, int) or step < 0:
                raise ValueError(f"log_metric's step must be an integer >= 0, got {step!r}")
            self.step = step
        report = MetricReport(values, self.step, self.task.model_id, self.task.round_id, self.task.session_id)
        if commit:
            self.step += 1
        return report


def current_task() -> TaskContext | None:
    return CURRENT_TASK.get()
