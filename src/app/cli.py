"""The `fedclient` command: `run` joins a FEDn network, `sandbox` runs a local federation.

`fedclient run` takes the flags of `fedn client start`, so replacing one with the
other is the only change a FEDn user makes. User mistakes end in one line on
stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

# gRPC's C core logs every failed TLS handshake to stderr; our one-line errors say it better.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from .. import __version__
from ..domain.errors import AuthError, ConfigError, FedClientError
from ..domain.model import Identity
from ..domain.status import StatusBoard
from . import config_show, package_cmd, policy_cmd, settings_rules
from .cli_flags import OneLineParser, add_settings_flags, cli_values
from .extras import extra_for_missing, require_extra
from .logs import configure_logging, scrub
from .operators import operator_views
from .settings import Settings
from .settings_load import Loaded, load
from .signals import stop_on_signals
from .stderr_writer import flush_background_stderr

log = logging.getLogger("fedclient")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


RUN_EXAMPLES = """\
examples:
  # join a controller, the token read from a file (not visible in `ps` or the environment)
  fedclient run --api-url https://fedn.example.org --token-file ~/.fedn/token --name site-a

  # a FEDn client.yaml (the one `fedn client start --init` takes) works as is
  fedclient run --init client.yaml

  # a compute package from a local directory instead of the controller's
  fedclient run --api-url localhost --api-port 8092 --local-package ./client

  # your own Python callbacks (train, validate, ...) in this process, no compute package
  fedclient run --api-url localhost --api-port 8092 --entrypoint mypkg.callbacks

  # what these settings add up to, and where each came from, without joining
  fedclient config show --init client.yaml
"""


def _run_parser(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="join a FEDn network and serve its tasks (like `fedn client start`)",
        description="Join a FEDn network and serve its tasks. Precedence: flags > FEDN_* env > --init file.",
        epilog=RUN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_settings_flags(p)


def _config_parser(sub: Any) -> None:
    p = sub.add_parser("config", help="look at the effective configuration")
    actions = p.add_subparsers(dest="action", required=True, parser_class=OneLineParser)
    show = actions.add_parser(
        "show", help="print every setting, its value (secrets masked) and where it came from"
    )
    add_settings_flags(show)


def _sandbox_parser(sub: Any) -> None:
    p = sub.add_parser("sandbox", help="run a local federation (controller + combiner + clients) on loopback")
    p.add_argument("--rounds", type=int, default=3, help="training rounds (default 3)")
    p.add_argument("--clients", type=int, default=2, help="number of clients (default 2)")
    p.add_argument(
        "--package",
        type=Path,
        help="compute package directory (default: the digits demo package shipped with fedclient)",
    )
    p.add_argument("--json", type=Path, help="also write the per-round results to this JSON file")
    p.add_argument("--work-dir", type=Path, help="scratch directory (default: a temporary one)")
    p.add_argument(
        "--log-level",
        default="WARNING",
        type=str.upper,
        choices=LOG_LEVELS,
        help="log level of the servers and clients",
    )
    p.add_argument("--round-timeout", type=float, default=180.0, help="seconds to wait for a round's updates")
    p.add_argument("--plot", type=Path, metavar="FILE", help="write a PNG of the per-round metrics to FILE")
    p.add_argument(
        "--policy-file",
        type=Path,
        help="a site policy every client enforces (with a privacy section: ε spent per round is shown)",
    )


def parser() -> argparse.ArgumentParser:
    top = OneLineParser(prog="fedclient", description=__doc__.splitlines()[0] if __doc__ else None)
    top.add_argument("--version", action="version", version=f"fedclient {__version__}")
    sub = top.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    _run_parser(sub)
    _config_parser(sub)
    _sandbox_parser(sub)
    package_cmd.add_parser(sub)
    policy_cmd.add_parser(sub)
    from .simulation.simulate import add_parser as simulate_parser

    simulate_parser(sub)
    return top


def _loaded_from(args: argparse.Namespace) -> Loaded:
    return load(cli_values(args), Path(args.init) if args.init else None)


async def _run(settings: Settings, extract_dir_origin: str) -> None:
    from dependency_injector import providers

    from .container import build_container, client_lifecycle

    def views(identity: Identity) -> AbstractContextManager[StatusBoard]:
        # The identity kept in the work dir, settled before the metrics endpoint labels it.
        return operator_views(
            settings.model_copy(update={"name": identity.name, "client_id": identity.client_id})
        )

    container = build_container(settings)
    container.extract_dir_origin.override(providers.Object(extract_dir_origin))
    stop = asyncio.Event()
    async with client_lifecycle(container, views) as lifecycle:
        identity = lifecycle.plan.identity
        log.info("fedclient %s (%s) starting", identity.name, identity.client_id)
        with stop_on_signals(stop, lifecycle.stop_outlook):
            await lifecycle.run(stop)
    log.info("fedclient stopped")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "run":
            loaded = _loaded_from(args)
            settings = loaded.settings
            configure_logging(settings.log_level, settings.secrets, settings.log_format)
            settings_rules.check(loaded)
            for flag in ("token", "refresh_token"):
                if getattr(args, flag, None) is not None:
                    log.warning(
                        "the %s was given with --%s, so any user of this machine can read it in `ps`; "
                        "use --%s-file or FEDN_AUTH_%s_FILE instead",
                        flag.replace("_", " "),
                        flag.replace("_", "-"),
                        flag.replace("_", "-"),
                        "TOKEN" if flag == "token" else "REFRESH_TOKEN",
                    )
            # The work dir's lock and identity, the operator views and the client: app.container.
            asyncio.run(_run(settings, loaded.origin("package_extract_dir")))
        elif args.command == "config":
            loaded = _loaded_from(args)
            configure_logging("WARNING", loaded.settings.secrets)
            print(config_show.render(loaded))
            settings_rules.check(loaded)
        elif args.command == "package":
            return package_cmd.run_package(args)
        elif args.command == "policy":
            return policy_cmd.run_policy(args)
        elif args.command == "simulate":
            from .simulation.simulate import run_simulate

            configure_logging(args.log_level, [args.token] if args.token else [])
            return run_simulate(args)
        else:
            require_extra("sandbox", "numpy")
            from .sandbox import run_sandbox

            configure_logging(args.log_level)
            return run_sandbox(args)
    except ValidationError as exc:
        # app.settings.load names each problem by its flag; this is the fallback for any other model.
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        return _fail(f"invalid settings: {problems}", EXIT_USAGE)
    except (AuthError, ConfigError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except FedClientError as exc:
        return _fail(str(exc), EXIT_FAILED)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(f"{where}{exc.strerror or exc}", EXIT_FAILED)
    except KeyboardInterrupt:
        return EXIT_OK
    except ModuleNotFoundError as exc:
        missing = extra_for_missing(exc)
        if missing is None:
            log.debug("unexpected error", exc_info=True)
            return _fail(f"unexpected {type(exc).__name__}: {exc}", EXIT_FAILED)
        return _fail(str(missing), EXIT_USAGE)
    except Exception as exc:  # a bug: one line for the user, the traceback for DEBUG logs
        log.debug("unexpected error", exc_info=True)
        return _fail(
            f"unexpected {type(exc).__name__}: {exc} (run with --log-level DEBUG for details)", EXIT_FAILED
        )
    return EXIT_OK


def _fail(message: str, code: int) -> int:
    flush_background_stderr(2.0)  # the log lines before it come first
    print(f"fedclient: error: {scrub(' '.join(message.split()))}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
