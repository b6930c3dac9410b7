"""src/domain imports only the standard library and itself (relative imports that stay inside it)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[2] / "src" / "domain"


def offending_imports(path: Path, root: Path = DOMAIN) -> set[str]:
    """Imports in ``path`` that are neither the standard library nor inside ``root`` (the domain)."""
    depth = len(path.relative_to(root).parent.parts)  # packages between this module and the root
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.split(".")[0] not in sys.stdlib_module_names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and node.module.split(".")[0] not in sys.stdlib_module_names | {"__future__"}:
                    names.add(node.module)
            elif node.level - 1 > depth:  # climbs out of fedclient.domain into adapters or app
                names.add("." * node.level + (node.module or ""))
    return names


def test_domain_imports_only_the_standard_library() -> None:
    files = sorted(DOMAIN.rglob("*.py"))
    assert files, "no domain modules found"
    offenders = {f"{p.relative_to(DOMAIN)}: {name}" for p in files for name in offending_imports(p)}
    assert not offenders, f"domain must stay pure: {sorted(offenders)}"


def test_the_purity_check_sees_an_escape(tmp_path: Path) -> None:
    root = tmp_path / "domain"
    (root / "sub").mkdir(parents=True)
    probe = root / "_purity_probe.py"
    probe.write_text("from ..adapters import memory\nimport numpy\nfrom . import model\n")
    assert offending_imports(probe, root) == {"..adapters", "numpy"}
    nested = root / "sub" / "_purity_probe.py"  # one package down, `..` is still the domain
    nested.write_text("from .. import model\nfrom ...app import settings\n")
    assert offending_imports(nested, root) == {"...app"}


# ------------------------------------------------------------ no I/O, no clock --

# Importing one of these in src/domain means file system, environment, processes, sockets,
# or a clock, randomness or ids read directly. Those come in through the ports in
# domain/ports.py (Clock, Ids, Random, Scratch, PackageCache, OutboxStore…) instead.
IO_MODULES = frozenset(
    {
        "os",
        "shutil",
        "tempfile",
        "glob",
        "fcntl",
        "subprocess",
        "multiprocessing",
        "signal",
        "socket",
        "ssl",
        "select",
        "selectors",
        "http",
        "urllib",
        "uuid",
        "random",
        "secrets",
        "time",
        "datetime",
    }
)
# Calls that do I/O whatever they are called on (a pathlib.Path is fine as a value; asking
# the file system about it is not), configure logging, or wait on the event loop's own clock.
IO_CALLS = frozenset(
    {
        "open",
        "read_text",
        "write_text",
        "read_bytes",
        "write_bytes",
        "mkdir",
        "rmdir",
        "unlink",
        "touch",
        "iterdir",
        "glob",
        "rglob",
        "exists",
        "is_file",
        "is_dir",
        "stat",
        "resolve",
        "chmod",
        "rename",
        "getenv",
        "setLogRecordFactory",
        "basicConfig",
        "dictConfig",
        "fileConfig",
        "addHandler",
        "removeHandler",
        "get_running_loop",
        "get_event_loop",
        "wait_for",
    }
)
IO_NAMES = frozenset({"environ"})  # os.environ, however it was reached

# What src/domain still does of the above: (module, name) -> why, and what would move it out.
ALLOWED_IO = {
    # LinkHolder.wait bounds a task's wait for a reconnect with the event loop's clock
    # (loop.time() and asyncio.wait_for): a test replays it by running the loop on virtual
    # time. Moving it to the Clock port means racing Clock.sleep against the reconnect, which
    # changes how the FakeClock-driven tests (their sleeps take no time) wait for a link.
    ("links.py", "get_running_loop"): "the event loop's clock bounds the wait for a reconnect",
    ("links.py", "wait_for"): "the same wait, as an event-loop timeout",
    # Shutdown is bounded in real time (cancelled tasks, hooks, closing the link), and the
    # outbox's flush on the way out too: event-loop timeouts, replayable on a virtual-time
    # loop. A Clock-based timeout helper (racing Clock.sleep) in the domain would move them.
    ("worker.py", "wait_for"): "shutdown: cancelling the task loop, bounded by an event-loop timeout",
    ("session.py", "wait_for"): "shutdown hooks bounded by event-loop timeouts",
    ("connection.py", "wait_for"): "closing the link, bounded by an event-loop timeout",
    ("outbox.py", "wait_for"): "flush_within bounds the flush on stop by an event-loop timeout",
}


def io_escapes(source: str) -> set[str]:
    """What ``source`` (a domain module) imports or calls of the I/O and clock lists above."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] in IO_MODULES)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in IO_MODULES:
                found.add(node.module)
        elif isinstance(node, ast.Call):
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            if name in IO_CALLS:
                found.add(name)
        elif isinstance(node, ast.Attribute) and node.attr in IO_NAMES:
            found.add(node.attr)
    return found


def test_the_domain_does_no_io_and_reads_no_clock_except_through_ports() -> None:
    found = {(p.name, name) for p in sorted(DOMAIN.rglob("*.py")) for name in io_escapes(p.read_text())}
    assert not found - ALLOWED_IO.keys(), f"I/O or a clock in src/domain: {sorted(found - ALLOWED_IO.keys())}"
    assert not ALLOWED_IO.keys() - found, f"allowed but gone, drop: {sorted(ALLOWED_IO.keys() - found)}"
    assert io_escapes(
        "import time, os.path\nfrom random import random\nfrom pathlib import Path\n"
        "Path('x').write_text('y')\nopen('f')\nprint(os.environ)\nclock.time()\n"
    ) == {"time", "os.path", "random", "write_text", "open", "environ"}, "the check must see an escape"
