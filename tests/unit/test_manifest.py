"""fedn.yaml: what a valid manifest turns into, and what every invalid one is told."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fedclient.adapters.package_archive import TarPackageUnpacker
from fedclient.domain.errors import PackageError
from fedclient.domain.package import Manifest, parse_manifest
from hypothesis import given
from hypothesis import strategies as st

# The layout of FEDn's mnist-pytorch example client.
MNIST_STYLE = """\
python_env: python_env.yaml
entry_points:
  build:
    command: python model.py
  startup:
    command: python data.py
  train:
    command: python train.py
  validate:
    command: python validate.py
  predict:
    command: python predict.py
"""


def test_fedn_example_manifest_parses() -> None:
    manifest = parse_manifest(yaml.safe_load(MNIST_STYLE))
    assert manifest.python_env == "python_env.yaml"
    assert manifest.argv("train") == ("python", "train.py")
    assert set(manifest.entry_points) == {"build", "startup", "train", "validate", "predict"}
    assert manifest.has("predict") and not manifest.has("forward")


def test_quoted_arguments_are_split_like_a_shell_would_without_running_one() -> None:
    doc = {"entry_points": {"train": {"command": "python 'my train.py' --epochs 3"}}}
    assert parse_manifest(doc).argv("train") == ("python", "my train.py", "--epochs", "3")


def test_missing_entry_point_lists_the_ones_there_are() -> None:
    manifest = parse_manifest({"entry_points": {"train": {"command": "python t.py"}}})
    with pytest.raises(PackageError, match=r"no 'predict' entry point.*it has: train"):
        manifest.argv("predict")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (None, "expected a mapping at the top level, got NoneType"),
        (["entry_points"], "expected a mapping at the top level, got list"),
        ("train: x", "expected a mapping"),
        ({}, "'entry_points' must be a non-empty mapping"),
        ({"entry_points": {}}, "'entry_points' must be a non-empty mapping"),
        ({"entry_points": ["train"]}, "'entry_points' must be a non-empty mapping"),
        ({"entry_points": {"train": "python train.py"}}, "'train' must be a mapping with a 'command' key"),
        (
            {"entry_points": {"train": {"cmd": "python train.py"}}},
            "'train' must be a mapping with a 'command'",
        ),
        ({"entry_points": {"train": {"command": ""}}}, "'train' has an empty or non-text command"),
        ({"entry_points": {"train": {"command": "   "}}}, "'train' has an empty or non-text command"),
        ({"entry_points": {"train": {"command": 42}}}, "'train' has an empty or non-text command"),
        ({"entry_points": {"train": {"command": None}}}, "'train' has an empty or non-text command"),
        ({"entry_points": {5: {"command": "python t.py"}}}, "names must be short words"),
        ({"entry_points": {"train": {"command": "python 'unclosed"}}}, "cannot be split"),
        (
            {"entry_points": {"t": {"command": "python t.py"}}, "python_env": ""},
            "'python_env' must be a file",
        ),
        ({"entry_points": {"t": {"command": "python t.py"}}, "python_env": 3}, "'python_env' must be a file"),
    ],
)
def test_invalid_manifest_says_what_is_wrong(doc: object, message: str) -> None:
    with pytest.raises(PackageError) as raised:
        parse_manifest(doc)
    assert message in str(raised.value)
    assert str(raised.value).startswith("fedn.yaml: ")


@pytest.mark.parametrize(
    "command",
    [
        "pip install -r req.txt && python train.py",
        "python train.py | tee log",
        "python train.py; rm -rf /",
        "python $(which train).py",
        "python `which train.py`",
        "python train.py > out.txt",
        "python train.py || true",
        "python $SCRIPT",
    ],
)
def test_shell_syntax_is_refused_with_advice(command: str) -> None:
    with pytest.raises(
        PackageError, match=r"uses shell syntax .*without a shell, so put that logic in a script"
    ):
        parse_manifest({"entry_points": {"train": {"command": command}}})


def test_the_source_name_appears_in_the_message() -> None:
    with pytest.raises(PackageError, match=r"^/pkg/fedn\.yaml: "):
        parse_manifest([], source="/pkg/fedn.yaml")


_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
_names = ["entry_points", "python_env", "command", "train", "validate", ""]
_keys = st.sampled_from(_names) | st.text(max_size=8)
_json_like = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys | st.integers(), inner, max_size=4),
    max_leaves=20,
)
_commands = st.text(max_size=30) | st.sampled_from(["python train.py", "python 'a b.py' x", "a && b"])
_nearly_valid = st.fixed_dictionaries(
    {
        "entry_points": st.dictionaries(
            _keys, st.fixed_dictionaries({"command": _commands}) | _json_like, max_size=3
        )
    },
    optional={"python_env": _json_like},
)


@given(doc=_json_like | _nearly_valid)
def test_any_document_either_parses_or_raises_package_error(doc: object) -> None:
    try:
        manifest = parse_manifest(doc)
    except PackageError:
        return
    assert isinstance(manifest, Manifest)
    assert manifest.entry_points
    for argv in manifest.entry_points.values():
        assert argv and all(isinstance(a, str) for a in argv)


# ------------------------------------------------- reading the file itself --


def test_load_manifest_reads_the_file(tmp_path: Path) -> None:
    (tmp_path / "fedn.yaml").write_text(MNIST_STYLE)
    assert TarPackageUnpacker().load_manifest(tmp_path).argv("validate") == ("python", "validate.py")


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "fedn.yaml").write_text("entry_points:\n  train:\n    command: [python, train.py\n")
    with pytest.raises(PackageError) as refused:
        TarPackageUnpacker().load_manifest(tmp_path)
    assert str(refused.value) == "fedn.yaml:4:1: expected ',' or ']', but got '<stream end>'"


def test_tab_indentation_error_names_line_3(tmp_path: Path) -> None:
    (tmp_path / "fedn.yaml").write_text("entry_points:\n  train:\n\tcommand: python train.py\n")
    with pytest.raises(
        PackageError, match=r"^fedn\.yaml:3:1: found character '\\t' that cannot start any token$"
    ):
        TarPackageUnpacker().load_manifest(tmp_path)


def test_missing_or_unreadable_manifest(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match=r"no fedn\.yaml"):
        TarPackageUnpacker().load_manifest(tmp_path)
    (tmp_path / "fedn.yaml").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(PackageError, match="cannot read"):
        TarPackageUnpacker().load_manifest(tmp_path)


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    (tmp_path / "fedn.yaml").write_text("entry_points: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(
        PackageError, match=r"^fedn\.yaml:1:15: could not determine a constructor for the tag"
    ):
        TarPackageUnpacker().load_manifest(tmp_path)
