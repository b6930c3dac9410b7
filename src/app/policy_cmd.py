"""`fedclient policy show`, and the site-policy flags shared by `run`, `policy show` and `package check`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..domain.privacy import PrivacyBudget, PrivacyLedger
from .defaults import default_text
from .policy import privacy_budget, site_policy
from .settings_load import load_settings

POLICY_SETTINGS = (
    "policy_file",
    "allow_package",
    "limit_memory",
    "limit_cpu_seconds",
    "limit_wall_seconds",
    "limit_output",
    "limit_open_files",
    "read_only_package",
    "max_package_bytes",
    "max_unpacked_bytes",
    "max_member_bytes",
    "max_package_members",
    "max_compression_ratio",
    "max_model_bytes",
)


def add_policy_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("site policy (docs/SECURITY.md; flags override the policy file)")
    g.add_argument("--policy-file", type=Path, help="the data owner's site policy (YAML)")
    g.add_argument(
        "--allow-package",
        action="append",
        metavar="SHA256",
        help="only unpack packages with this SHA-256 (repeatable)",
    )
    g.add_argument("--limit-memory", metavar="SIZE", help="address-space limit per entry point, e.g. 4GiB")
    g.add_argument("--limit-cpu-seconds", type=int, metavar="S", help="CPU-time limit per entry point")
    g.add_argument("--limit-wall-seconds", type=float, metavar="S", help="wall-time limit per entry point")
    g.add_argument("--limit-output", metavar="SIZE", help="stdout+stderr limit per entry point, e.g. 50MiB")
    g.add_argument("--limit-open-files", type=int, metavar="N", help="open-files limit per entry point")
    g.add_argument(
        "--read-only-package",
        action="store_true",
        default=None,
        help="make the unpacked package directory read-only to its own code",
    )
    for flag, kind, metavar, what in (
        ("--max-package-bytes", None, "SIZE", "package download cap"),
        ("--max-unpacked-bytes", None, "SIZE", "total unpacked cap"),
        ("--max-member-bytes", None, "SIZE", "per-member cap"),
        ("--max-package-members", int, "N", "member-count cap"),
        ("--max-compression-ratio", float, "X", "unpacked/packed cap"),
        ("--max-model-bytes", None, "SIZE", "cap on a model from the combiner"),
    ):
        default = default_text(flag[2:].replace("-", "_"))
        g.add_argument(flag, type=kind, metavar=metavar, help=f"{what} (default: {default})")


def policy_values(args: argparse.Namespace) -> dict[str, Any]:
    return {key: getattr(args, key, None) for key in POLICY_SETTINGS}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("policy", help="the site policy in force")
    actions = p.add_subparsers(dest="action", required=True)
    show = actions.add_parser("show", help="print the site policy that `fedclient run` would enforce")
    show.add_argument("-in", "--init", type=Path, help="FEDn-style client.yaml with settings")
    show.add_argument(
        "--work-dir", type=Path, help="the client's work dir, where the privacy budget spent is kept"
    )
    add_policy_flags(show)


def run_policy(args: argparse.Namespace) -> int:
    values = policy_values(args)
    if getattr(args, "work_dir", None) is not None:
        values["work_dir"] = args.work_dir
    settings = load_settings(values, args.init)
    policy = site_policy(settings)
    for line in policy.describe():
        print(line)
    if policy.privacy is not None:
        for line in budget_lines(privacy_budget(settings, policy)):
            print(line)
    return 0


def budget_lines(budget: PrivacyBudget) -> list[str]:
    """What the data owner asks next: spent so far, the cost of one round, how many rounds remain."""
    spent = budget.spent()
    lines = [f"  spent so far:    {spent.describe()} (record: {budget.record.where})"]
    if not budget.policy.noisy:
        return lines
    one = budget.epsilon(PrivacyLedger((budget.policy.per_round,)))
    in_all, left = budget.rounds_left(PrivacyLedger()), budget.rounds_left()
    rounds = "more than a million rounds" if in_all is None else f"{in_all} rounds in all"
    lines.append(
        f"  one round:       ε {one:.4g} alone at δ = {budget.policy.delta:g}; the budget allows {rounds}"
    )
    lines.append(f"  rounds left:     {'more than a million' if left is None else left}")
    return lines
