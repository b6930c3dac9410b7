"""Run a real FEDn 0.33.0 network in the foreground for manual runs (``scripts/fedn-network``).

Starts moto S3, the controller and one combiner on 127.0.0.1 (building the FEDn venv
first if needed), prints where they are and how to join, and stops exactly those
processes on Ctrl-C or SIGTERM. It exits 1 with the log tails if a server dies.
``--tls`` puts the combiner on TLS at 127.0.0.1:443 (needs root; a CA is made in the workdir).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from tests.interop.fednnet import FednNetwork, NetworkError
from tests.interop.procs import HOST


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fedn-network", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument(
        "--auth", action="store_true", help="turn JWT auth on (prints client and admin tokens)"
    )
    parser.add_argument(
        "--tls", action="store_true", help="combiner serves TLS on 127.0.0.1:443 (needs root)"
    )
    parser.add_argument(
        "--workdir", type=Path, help="where config, SQLite db and logs go (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    network = FednNetwork(args.workdir, auth=args.auth, tls=args.tls)
    try:
        with network:
            print(f"FEDn 0.33.0 API:  {network.api_url}")
            print(
                f"combiner (gRPC):  {HOST}:{network.combiner_port}    S3 (moto): http://{HOST}:{network.s3_port}"
            )
            print(f"config and logs:  {network.workdir}")
            token = ""
            if args.auth:
                token = f" --token {network.make_token('client')}"
                print(f"admin token:      {network.make_token('admin')}")
            ours = stock = ""
            if args.tls:
                print(f"combiner CA:      {network.ca_cert}")
                ours = f"FEDN_GRPC_ROOT_CERT_PATH={network.ca_cert} "
                stock = f"GRPC_DEFAULT_SSL_ROOTS_FILE_PATH={network.ca_cert} "
            print(f"join:  {ours}fedclient run --api-url {network.api_url}{token}")
            stock += f"fedn client start --api-url http://{HOST} --api-port {network.api_port}"
            print(f"       {stock}{token}")
            print("Ctrl-C stops it.", flush=True)
            while True:
                network.check_alive()
                time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopped.")
        return 0
    except NetworkError as exc:
        print(exc, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
