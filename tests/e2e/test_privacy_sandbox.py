"""The site's privacy policy on a whole local federation: examples/digits still learns under noise.

Two sandbox clients enforce one policy file with a moderate setting (clip 0.5, noise
multiplier 0.3, δ 1e-5): every update they send is clipped and noised, the ε each has
spent is composed by dp-accounting round by round and kept in its work dir, and
`fedclient policy show` reads it back from there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import run_cli

POLICY = """\
privacy:
  clipping_norm: 0.5
  noise_multiplier: 0.3
  delta: 1e-5
  epsilon_budget: 100
"""
ROUNDS = 5


def _library_epsilon(rounds: int) -> float:
    import dp_accounting
    from dp_accounting.rdp import RdpAccountant

    accountant = RdpAccountant()
    accountant.compose(dp_accounting.GaussianDpEvent(0.3), rounds)
    return float(accountant.get_epsilon(1e-5))


def test_digits_learns_under_the_privacy_policy_and_the_budget_is_kept(tmp_path: Path, digits: Path) -> None:
    policy = tmp_path / "site.yaml"
    policy.write_text(POLICY)
    out, plot, work = tmp_path / "out.json", tmp_path / "rounds.png", tmp_path / "sandbox"
    result = run_cli(
        "sandbox",
        "--rounds",
        str(ROUNDS),
        "--clients",
        "2",
        "--package",
        str(digits),
        "--policy-file",
        str(policy),
        "--work-dir",
        str(work),
        "--json",
        str(out),
        "--plot",
        str(plot),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rounds = json.loads(out.read_text())["rounds"]
    print("\nexamples/digits, 2 sandbox clients, clip 0.5, noise multiplier 0.3, δ 1e-5:")
    print("round  accuracy  ε spent")
    for r in rounds:
        print(f"{r['round']:>5}  {r['metrics']['test_accuracy']:.4f}    {r['epsilon_spent']:.2f}")
    assert all(r["updates"] == 2 for r in rounds)
    assert rounds[-1]["metrics"]["test_accuracy"] > rounds[0]["metrics"]["test_accuracy"] + 0.1, (
        "it still learns"
    )
    spent = [r["epsilon_spent"] for r in rounds]
    assert spent == pytest.approx([_library_epsilon(k) for k in range(1, ROUNDS + 1)], rel=1e-9)

    lines = result.stdout.splitlines()
    assert "ε spent" in lines[0].split("  ")
    summary = next(line for line in lines if "privacy (the client that spent most)" in line)
    assert f"ε spent {spent[-1]:.4g} of budget 100 at δ = 1e-05 after {ROUNDS} rounds" in summary
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    for client in ("client-0", "client-1"):  # the budget stays in each client's work dir
        record = json.loads((work / client / "privacy.json").read_text())
        assert record["rounds"] == [{"noise_multiplier": 0.3, "count": ROUNDS}]
    shown = run_cli(
        "policy", "show", "--policy-file", str(policy), "--work-dir", str(work / "client-0"), cwd=tmp_path
    )
    assert shown.returncode == 0, shown.stderr
    assert (
        f"spent so far:    ε spent {spent[-1]:.4g} of budget 100 at δ = 1e-05 after {ROUNDS} rounds"
        in shown.stdout
    )
    assert "one round:       ε 20.39 alone at δ = 1e-05; the budget allows 9 rounds in all" in shown.stdout
    assert "rounds left:     4" in shown.stdout
