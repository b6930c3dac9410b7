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
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

# gRPC's C core logs every failed TLS handshake to stderr; our one-line errors say it better.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from ..domain.errors import AuthError, ConfigError, FedClientError
from . import package_cmd, policy_cmd
from .logs import configure_logging, scrub
from .settings import Settings, load_settings

log = logging.getLogger("fedclient")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _run_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="join a FEDn network and serve its tasks (like `fedn client start`)")
    p.add_argument("-u", "--api-url", help="controller URL (scheme optional)")
    p.add_argument("-p", "--api-port", type=int, help="controller port")
    p.add_argument("--token", help="authentication token (or FEDN_AUTH_TOKEN); visible in `ps`")
    p.add_argument("--token-file", type=Path, help="read the token from this file (or FEDN_AUTH_TOKEN_FILE)")
    p.add_argument(
        "--refresh-token-file",
        type=Path,
        help="read the refresh token from this file (or FEDN_AUTH_REFRESH_TOKEN_FILE)",
    )
    p.add_argument("-n", "--name", help="client display name")
    p.add_argument("-i", "--client-id", help="client id (default: a new UUID)")
    p.add_argument(
        "--local-package",
        nargs="?",
        const=".",
        metavar="DIR",
        help="use a local compute package (default ./client or .) instead of the controller's",
    )
    p.add_argument("-c", "--preferred-combiner", help="ask the controller for this combiner")
    p.add_argument("--combiner", help="attach straight to this combiner host (needs --combiner-port)")
    p.add_argument("--combiner-port", type=int, help="port of --combiner")
    p.add_argument("-in", "--init", type=Path, help="FEDn-style client.yaml with settings")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")
    p.add_argument(
        "-hp", "--helper_type", "--helper-type", dest="helper_type", help="model helper (numpyhelper)"
    )
    p.add_argument("--package-checksum", help="expected SHA-256 of the compute package")
    p.add_argument(
        "--require-checksum",
        action="store_true",
        default=None,
        help="refuse a package whose checksum cannot be verified",
    )
    p.add_argument("--work-dir", type=Path, help="where packages and models are kept (default .fedclient)")
    p.add_argument(
        "--grpc-tls",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="force TLS to the combiner on or off (default: on for port 443 or with a root cert)",
    )
    p.add_argument(
        "--grpc-root-cert",
        dest="grpc_root_cert_path",
        type=Path,
        help="CA certificate (PEM) to trust for the combiner and an https controller "
        "(or FEDN_GRPC_ROOT_CERT_PATH)",
    )
    p.add_argument("--client-cert", dest="client_cert_path", type=Path, help="mTLS client certificate (PEM)")
    p.add_argument("--client-key", dest="client_key_path", type=Path, help="mTLS client private key (PEM)")
    p.add_argument(
        "--insecure",
        action="store_true",
        default=None,
        help="use TLS without verifying the servers' certificates (not for production)",
    )
    p.add_argument("--train-timeout", type=float, help="seconds a train/validate/predict run may take")
    policy_cmd.add_policy_flags(p)
    p.add_argument(
        "--refresh-token", help="refresh token (or FEDN_AUTH_REFRESH_TOKEN; the environment keeps it off ps)"
    )
    p.add_argument(
        "--refresh-token-uri", help="where to refresh an expired token (or FEDN_AUTH_REFRESH_TOKEN_URI)"
    )
    p.add_argument(
        "--shutdown-grace",
        type=float,
        help="on SIGINT/SIGTERM, seconds the running task may take to finish (default 120)",
    )
    p.add_argument(
        "--heartbeat-miss-limit", type=int, help="heartbeats missed in a row before reconnecting (default 3)"
    )
    p.add_argument(
        "--python",
        help="interpreter for the package's `python` commands (default: its python_env, else PATH's)",
    )
    p.add_argument(
        "--no-managed-env",
        dest="managed_env",
        action="store_false",
        default=None,
        help="do not build the package's python_env; run it with PATH's python",
    )
    # Accepted for compatibility with `fedn client start`; FEDn 0.33 ignores them too.
    p.add_argument("-va", "--validator", help=argparse.SUPPRESS)
    p.add_argument("-tr", "--trainer", help=argparse.SUPPRESS)


def _sandbox_parser(sub: Any) -> None:
    p = sub.add_parser("sandbox", help="run a local federation (controller + combiner + clients) on loopback")
    p.add_argument("--rounds", type=int, default=3, help="training rounds (default 3)")
    p.add_argument("--clients", type=int, default=2, help="number of clients (default 2)")
    p.add_argument("--package", type=Path, default=Path("examples/digits"), help="compute package directory")
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


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="fedclient", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = top.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    _sandbox_parser(sub)
    package_cmd.add_parser(sub)
    policy_cmd.add_parser(sub)
    return top


def _settings_from(args: argparse.Namespace) -> Settings:
    cli = {
        key: getattr(args, key)
        for key in (
            "api_url",
            "api_port",
            "token",
            "token_file",
            "refresh_token_file",
            "name",
            "client_id",
            "local_package",
            "preferred_combiner",
            "combiner",
            "combiner_port",
            "log_level",
            "helper_type",
            "package_checksum",
            "require_checksum",
            "work_dir",
            "train_timeout",
            "grpc_tls",
            "grpc_root_cert_path",
            "client_cert_path",
            "client_key_path",
            "insecure",
            "refresh_token",
            "refresh_token_uri",
            "shutdown_grace",
            "heartbeat_miss_limit",
            "python",
            "managed_env",
        )
    }
    cli.update(policy_cmd.policy_values(args))
    return load_settings(cli, args.init)


async def _run(settings: Settings) -> None:
    from .container import build_container, close_adapters

    lifecycle = build_container(settings).lifecycle()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        log.info("stopping (a second signal ends the process at once)")
        stop.set()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    log.info("fedclient %s (%s) starting", settings.name, settings.client_id)
    try:
        await lifecycle.run(stop)
    finally:
        await close_adapters(lifecycle)
    log.info("fedclient stopped")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "run":
            settings = _settings_from(args)
            configure_logging(settings.log_level, settings.secrets)
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
            asyncio.run(_run(settings))
        elif args.command == "package":
            return package_cmd.run_package(args)
        elif args.command == "policy":
            return policy_cmd.run_policy(args)
        else:
            from .sandbox import run_sandbox

            configure_logging(args.log_level)
            return run_sandbox(args)
    except ValidationError as exc:
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
    except Exception as exc:  # a bug: one line for the user, the traceback for DEBUG logs
        log.debug("unexpected error", exc_info=True)
        return _fail(
            f"unexpected {type(exc).__name__}: {exc} (run with --log-level DEBUG for details)", EXIT_FAILED
        )
    return EXIT_OK


def _fail(message: str, code: int) -> int:
    print(f"fedclient: error: {scrub(' '.join(message.split()))}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
