"""The Python API's config dict (client.yaml keys, 0.33 and 0.9-era) and its lazy import root."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
from fedclient.adapters.trainers.callback_trainer import Callbacks
from fedclient.domain.errors import ConfigError
from fedclient.network.clients._config import settings_from_config
from fedclient.network.clients.connect import ConnectorClient
from fedclient.network.clients.inprocess import InProcessClient


def test_0_9_era_keys_map_onto_settings() -> None:
    settings = settings_from_config(
        {
            "discover_host": "fedn.example.org",
            "discover_port": 8443,
            "force_ssl": True,
            "secure": True,
            "verify": False,
            "remote_compute_context": False,
            "preferred_combiner": "c1",
            "name": "site",
            "trainer": "ignored-without-a-warning",
        }
    )
    assert settings.api_url == "https://fedn.example.org" and settings.api_port == 8443
    assert settings.grpc_tls is True and settings.connect_api_secure is False
    assert str(settings.local_package) == "." and settings.preferred_combiner == "c1"


def test_0_33_names_win_over_legacy_ones_and_unknown_keys_warn() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        settings = settings_from_config(
            {"api_url": "a.example", "discover_host": "b.example", "api_port": 1, "colour": "blue"}
        )
    assert settings.api_url == "a.example"
    assert [str(w.message) for w in caught] == [
        "client config key 'colour' is not a fedclient setting; ignored"
    ]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"api_port": "many"},
            "invalid client config: api_port: 'many' is not a whole number; use a whole number from 1 to",
        ),
        ({"verify": "maybe"}, "connect_api_secure: 'maybe' is not a boolean; use true/false"),
        (["api_url"], "must be a dict"),
    ],
)
def test_bad_config_is_a_config_error(config: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from_config(config)  # type: ignore[arg-type]


def test_connector_client_builds_fedn_style_urls() -> None:
    plain = ConnectorClient("localhost", 8092, None, "n", True)
    secure = ConnectorClient("fedn.example.org", None, None, "n", False, force_ssl=True, id="x")
    try:
        assert plain.connect_string == "http://localhost:8092" and plain.package.value == "remote"
        assert secure.connect_string == "https://fedn.example.org" and secure.id == "x"
    finally:
        plain.close()
        secure.close()


def test_import_fedclient_is_cheap_and_the_api_loads_on_first_use() -> None:
    probe = (
        "import sys, fedclient\n"
        "print(sorted(m for m in ('fedclient.network', 'grpc', 'httpx', 'numpy') if m in sys.modules))\n"
        "from fedclient import Client, InProcessClient, log_metric\n"
        "print(Client.__module__, InProcessClient.__module__, log_metric.__module__)\n"
        "print('numpy' in sys.modules)\n"
        "try:\n    fedclient.nothing\nexcept AttributeError as e:\n    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "[]"
    assert lines[1] == (
        "fedclient.network.clients.client fedclient.network.clients.inprocess "
        "fedclient.adapters.trainers.callback_trainer"
    )
    assert lines[2] == "False"  # numpy only when models are numpy arrays
    assert lines[3] == "module 'fedclient' has no attribute 'nothing'"


def test_fedn_callback_setters_replace_the_in_process_callbacks() -> None:
    def train(model: object, settings: object) -> None: ...
    def validate(model: object) -> None: ...
    def predict(model: object) -> None: ...
    def forward(client_id: object, out: object, is_sl_inference: object) -> None: ...
    def backward(gradients: object, client_id: object) -> None: ...

    client = InProcessClient({"api_url": "http://127.0.0.1:1"}, train=predict, models="numpy")
    client.set_train_callback(train)
    client.set_validate_callback(validate)
    client.set_predict_callback(predict)
    client.set_forward_callback(forward)
    client.set_backward_callback(backward)
    assert client.callbacks == Callbacks(train, validate, predict, forward, backward, "numpy")
