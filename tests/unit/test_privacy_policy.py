"""The privacy section of the site policy, and the budget kept in the work dir (domain.privacy).

The accountant here is dp-accounting's (adapters.dp_accountant): the domain's rules are
checked against the figures the real library gives, never against a bound of our own.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from fedclient.adapters.dp_accountant import RdpAccountant
from fedclient.adapters.text_record import FileTextRecord
from fedclient.app.policy import site_policy
from fedclient.app.settings_load import load_settings
from fedclient.domain.errors import ConfigError
from fedclient.domain.policy import parse_policy
from fedclient.domain.privacy import (
    RECORD,
    BudgetExhausted,
    GaussianRounds,
    PrivacyBudget,
    PrivacyLedger,
    PrivacyPolicy,
    classic_noise_multiplier,
    parse_privacy,
    privacy_refusal,
)

NOISY = {"clipping_norm": 0.5, "noise_multiplier": 1.0, "delta": "1e-5", "epsilon_budget": 10}


def test_a_privacy_section_resolves_to_one_gaussian_mechanism() -> None:
    policy = parse_policy({"privacy": NOISY}, "site.yaml").privacy
    assert policy == PrivacyPolicy(0.5, 1.0, 1e-5, 10.0)
    assert policy.noise_stddev == 0.5 and policy.noisy
    assert policy.per_round == GaussianRounds(1.0, 1)


def test_epsilon_per_round_is_calibrated_as_flowers_local_dp_mod() -> None:
    """σ = Δ·√(2 ln(1.25/δ))/ε, Δ the clipping norm: Flower's LocalDpMod with sensitivity = clipping_norm."""
    section = {"clipping_norm": 2.0, "epsilon_per_round": 0.5, "delta": 1e-5, "epsilon_budget": 4}
    policy = parse_privacy(section, "p")
    assert policy.noise_stddev == pytest.approx(2.0 * math.sqrt(2 * math.log(1.25 / 1e-5)) / 0.5)
    assert policy.noise_multiplier == pytest.approx(classic_noise_multiplier(0.5, 1e-5))
    assert policy.epsilon_per_round == 0.5


def test_clipping_only_has_no_budget_and_no_delta() -> None:
    policy = parse_privacy({"clipping_norm": 1, "noise_multiplier": 0}, "p")
    assert policy == PrivacyPolicy(1.0, 0.0) and not policy.noisy
    assert "clipping only, no differential privacy" in "\n".join(policy.describe())


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (None, r"^site.yaml: privacy must be a mapping"),
        ([1], r"^site.yaml: privacy must be a mapping"),
        ({**NOISY, "sensitivity": 1}, r"^site.yaml: privacy: unknown key 'sensitivity'"),
        ({"noise_multiplier": 1}, r"^site.yaml: privacy.clipping_norm: required"),
        ({**NOISY, "clipping_norm": 0}, r"^site.yaml: privacy.clipping_norm: must be .* more than 0"),
        ({**NOISY, "clipping_norm": "wide"}, r"^site.yaml: privacy.clipping_norm: expected a number"),
        ({**NOISY, "clipping_norm": True}, r"^site.yaml: privacy.clipping_norm: expected a number"),
        ({**NOISY, "clipping_norm": float("inf")}, r"^site.yaml: privacy.clipping_norm: must be a finite"),
        ({**NOISY, "noise_multiplier": -1}, r"^site.yaml: privacy.noise_multiplier: must be .* at least 0"),
        (
            {**NOISY, "epsilon_per_round": 0.5},
            r"^site.yaml: privacy: give noise_multiplier or epsilon_per_round",
        ),
        ({"clipping_norm": 1, "delta": 1e-5}, r"^site.yaml: privacy.noise_multiplier: required"),
        (
            {"clipping_norm": 1, "noise_multiplier": 1, "epsilon_budget": 3},
            r"^site.yaml: privacy.delta: required",
        ),
        ({**NOISY, "delta": 1}, r"^site.yaml: privacy.delta: must be below 1"),
        ({**NOISY, "delta": 0}, r"^site.yaml: privacy.delta: must be .* more than 0"),
        (
            {"clipping_norm": 1, "noise_multiplier": 1, "delta": 1e-5},
            r"^site.yaml: privacy.epsilon_budget: required",
        ),
        ({**NOISY, "epsilon_budget": -2}, r"^site.yaml: privacy.epsilon_budget: must be"),
        (
            {"clipping_norm": 1, "noise_multiplier": 0, "epsilon_budget": 3},
            r"privacy.epsilon_budget: noise_multiplier 0",
        ),
        (
            {"clipping_norm": 1, "epsilon_per_round": 2, "delta": 1e-5, "epsilon_budget": 9},
            r"^site.yaml: privacy.epsilon_per_round: must be below 1, got 2 \(the classic Gaussian",
        ),
        (
            {"clipping_norm": 1, "epsilon_per_round": 0.5, "epsilon_budget": 9},
            r"^site.yaml: privacy.delta: required",
        ),
    ],
)
def test_policy_parsing_errors_name_the_key(section: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_policy({"privacy": section}, "site.yaml")


def test_only_the_policy_file_gives_privacy(
    tmp_path: Path, no_fedn_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No client.yaml key, policy flag or environment variable turns privacy off or loosens it."""
    policy_file = tmp_path / "site.yaml"
    policy_file.write_text(json.dumps({"privacy": NOISY}))
    init = tmp_path / "client.yaml"
    init.write_text("privacy:\n  noise_multiplier: 0\nnoise_multiplier: 0\nepsilon_budget: 1000\n")
    monkeypatch.setenv("FEDN_PRIVACY", "off")
    monkeypatch.setenv("FEDN_NOISE_MULTIPLIER", "0")
    values = {
        "policy_file": policy_file,
        "read_only_package": True,
        "limit_memory": "1GiB",
        "allow_package": ["ab" * 32],
    }
    policy = site_policy(load_settings(values, init))
    assert policy.privacy == PrivacyPolicy(0.5, 1.0, 1e-5, 10.0)
    assert policy.limits.memory_bytes == 1024**3  # the flags did apply: only privacy has none


def test_the_helper_rule() -> None:
    assert privacy_refusal("numpyhelper") is None
    for helper in ("binaryhelper", "androidhelper", "splitlearninghelper", "pytorchhelper"):
        reason = privacy_refusal(helper)
        assert (
            reason is not None
            and f"helper_type is '{helper}'" in reason
            and "no update is released" in reason
        )


# ------------------------------------------------------------------- budget --


def _budget(tmp_path: Path, **section: object) -> PrivacyBudget:
    return PrivacyBudget(
        parse_privacy({**NOISY, **section}, "p"), FileTextRecord(tmp_path / RECORD), RdpAccountant()
    )


def test_the_accounted_epsilon_is_the_librarys_for_the_same_mechanism(tmp_path: Path) -> None:
    import dp_accounting
    from dp_accounting.rdp import RdpAccountant as LibraryRdp

    budget = _budget(tmp_path, epsilon_budget=1000)
    for k in range(1, 8):
        spent = budget.charge()
        library = LibraryRdp()
        for _ in range(k):
            library.compose(dp_accounting.GaussianDpEvent(1.0))
        assert spent.epsilon == pytest.approx(library.get_epsilon(1e-5), rel=1e-12)
        assert spent.rounds == k


def test_rounds_of_different_noise_compose_as_the_library_composes_them(tmp_path: Path) -> None:
    import dp_accounting
    from dp_accounting.rdp import RdpAccountant as LibraryRdp

    ledger = PrivacyLedger().with_round(GaussianRounds(1.0, 1)).with_round(GaussianRounds(1.0, 1))
    ledger = ledger.with_round(GaussianRounds(2.5, 1))
    assert ledger.rounds == (GaussianRounds(1.0, 2), GaussianRounds(2.5, 1))
    library = LibraryRdp()
    library.compose(dp_accounting.GaussianDpEvent(1.0), 2)
    library.compose(dp_accounting.GaussianDpEvent(2.5))
    assert _budget(tmp_path).epsilon(ledger) == pytest.approx(library.get_epsilon(1e-5), rel=1e-12)


def test_the_budget_survives_a_restart_and_a_round_past_it_is_refused(tmp_path: Path) -> None:
    budget = _budget(tmp_path)  # z = 1: one round ≈ ε 4.73, two 7.08, three 9.01, four 10.7
    assert budget.spent().epsilon == 0.0 and budget.spent().rounds == 0
    budget.charge()
    budget.charge()
    spent = budget.spent()
    record = json.loads((tmp_path / RECORD).read_text())
    assert record == {
        "version": 1,
        "mechanism": "gaussian",
        "rounds": [{"noise_multiplier": 1.0, "count": 2}],
    }

    restarted = _budget(tmp_path)  # a new process reads the same work dir
    assert restarted.spent() == spent
    assert restarted.rounds_left() == 1 and restarted.rounds_left(PrivacyLedger()) == 3
    restarted.charge()  # the third round still fits
    with pytest.raises(BudgetExhausted) as refused:
        restarted.admit()
    message = str(refused.value)
    assert message.startswith("privacy budget exhausted: this site has spent ε = 9.01")
    assert "of its budget ε = 10 (δ = 1e-05) in 3 rounds" in message
    assert "privacy.epsilon_budget" in message and "validation and prediction are still served" in message
    with pytest.raises(BudgetExhausted):
        restarted.charge()
    assert _budget(tmp_path).spent().rounds == 3, "a refused round is never recorded"


def test_a_raised_budget_admits_more_rounds_but_the_spent_stays(tmp_path: Path) -> None:
    for _ in range(3):
        _budget(tmp_path).charge()
    assert _budget(tmp_path, epsilon_budget=20).admit().rounds == 4
    assert _budget(tmp_path, epsilon_budget=20).spent().rounds == 3


def test_rounds_released_without_noise_spend_an_infinite_epsilon(tmp_path: Path) -> None:
    clipping = PrivacyBudget(
        parse_privacy({"clipping_norm": 1, "noise_multiplier": 0}, "p"),
        FileTextRecord(tmp_path / RECORD),
        RdpAccountant(),
    )
    assert clipping.charge().epsilon == math.inf  # no budget: clipping only is allowed to run
    assert clipping.spent().describe() == "ε spent ∞ (no budget: clipping only) after 1 round"
    with pytest.raises(BudgetExhausted, match="spent ε = ∞"):
        _budget(tmp_path).admit()  # noise added later cannot undo what left without it


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "[]",
        '{"version": 2, "rounds": []}',
        '{"version": 1, "rounds": [{"noise_multiplier": -1, "count": 1}]}',
    ],
)
def test_an_unreadable_record_stops_the_client_rather_than_start_from_zero(tmp_path: Path, text: str) -> None:
    (tmp_path / RECORD).write_text(text)
    with pytest.raises(ConfigError, match=rf"the privacy record {tmp_path / RECORD}"):
        _budget(tmp_path)
