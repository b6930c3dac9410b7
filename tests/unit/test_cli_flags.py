"""`fedclient run` flags come from the Settings model: FEDn's spellings, precedence, sources, rejections."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fedclient import __version__
from fedclient.app.cli import main, parser
from fedclient.app.defaults import default_text
from fedclient.app.settings import Settings, env_names, flags_of
from fedclient.app.settings_load import parse_init_file

# Every option of FEDn 0.33's `fedn client start`.
FEDN_START_FLAGS = [
    "-u", "--api-url", "-p", "--api-port", "--token", "-n", "--name", "-i", "--client-id",
    "--local-package", "--log-level", "-c", "--preferred-combiner", "--combiner", "--combiner-port",
    "-va", "--validator", "-tr", "--trainer", "-hp", "--helper_type", "-in", "--init",
]  # fmt: skip
# Every key FEDn 0.33 reads from a client.yaml (and `fedn client create` writes).
FEDN_YAML_KEYS = [
    "api_url", "api_port", "token", "name", "client_id", "preferred_combiner", "combiner",
    "combiner_port", "validator", "trainer", "package_checksum", "helper_type",
    "discover_host", "discover_port", "refresh_token",
]  # fmt: skip


pytestmark = pytest.mark.usefixtures("no_fedn_env", "restore_root_logger")


def run_options() -> set[str]:
    sub = next(a for a in parser()._actions if a.dest == "command")
    return {s for action in sub.choices["run"]._actions for s in action.option_strings}  # type: ignore[attr-defined]


def test_every_fedn_client_start_flag_is_accepted() -> None:
    assert set(FEDN_START_FLAGS) <= run_options()


def test_every_settings_field_is_a_flag_and_an_env_name() -> None:
    options = run_options()
    for name in Settings.model_fields:
        assert set(flags_of(name)) <= options, name
        assert env_names(name)[0].startswith("FEDN_")


def test_every_fedn_client_yaml_key_is_read(tmp_path: Path) -> None:
    init = tmp_path / "client.yaml"
    init.write_text("".join(f"{key}: '1'\n" for key in FEDN_YAML_KEYS))
    parsed = parse_init_file(init)
    assert parsed.ignored == []
    assert {"api_url", "api_port", "validator", "trainer"} <= set(parsed.values)
    for key in set(FEDN_YAML_KEYS) - set(Settings.model_fields) - {"discover_host", "discover_port"}:
        assert key in parsed.unused, f"{key} is neither read nor warned about"


def test_fedn_file_keys_unused_here_are_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    init = tmp_path / "client.yaml"
    init.write_text("api_url: h\nnetwork_id: fedn-network\n")
    assert main(["config", "show", "--init", str(init)]) == 0
    assert "the --init file's key 'network_id' is FEDn's and does nothing here" in capsys.readouterr().err


def show(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, tuple[str, str]]:
    """``config show``'s rows: setting -> (value, source); columns are two or more spaces apart."""
    assert main(["config", "show", *argv]) == 0
    cells = [re.split(r"\s{2,}", line) for line in capsys.readouterr().out.splitlines()[1:]]
    return {row[0]: (row[1], row[2]) for row in cells}


def test_precedence_flag_over_env_over_file_over_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    init = tmp_path / "client.yaml"
    init.write_text("api_url: file-host\nname: file-name\napi_port: 1111\ncombiner_port: 9\ncombiner: c\n")
    monkeypatch.setenv("FEDN_API_URL", "env-host")
    monkeypatch.setenv("FEDN_API_PORT", "2222")
    rows = show(capsys, "-in", str(init), "--api-port", "3333", "--log-format", "json")
    assert rows["api_port"] == ("3333", "flag")
    assert rows["api_url"] == ("env-host", "env")
    assert rows["name"] == ("file-name", "file")
    assert rows["combiner"] == ("c", "file")
    assert rows["log_format"] == ("json", "flag")
    assert rows["heartbeat_interval"] == ("2", "default")


def test_config_show_masks_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FEDN_AUTH_TOKEN", "a-very-secret-token-123")
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert "a-very-secret-token-123" not in out
    assert [line.split()[1:3] for line in out.splitlines() if line.startswith("token ")] == [["***", "env"]]


def test_refresh_and_shutdown_settings_are_generated_flags(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "r-very-secret-refresh-0123456789"
    argv = ["--refresh-token", secret, "--refresh-token-uri", "https://auth.example/refresh/"]
    argv += ["--shutdown-grace", "7", "--heartbeat-miss-limit", "5"]
    assert main(["config", "show", *argv]) == 0
    out = capsys.readouterr().out
    assert secret not in out
    rows = {line.split()[0]: line.split()[1:3] for line in out.splitlines()[1:]}
    assert rows["refresh_token"] == ["***", "flag"]
    assert rows["refresh_token_uri"] == ["https://auth.example/refresh/", "flag"]
    assert rows["shutdown_grace"] == ["7", "flag"]
    assert rows["heartbeat_miss_limit"] == ["5", "flag"]


def test_config_show_gives_the_value_the_client_applies_to_an_unset_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    rows = show(capsys)
    assert rows["max_package_bytes"] == ("512MiB", "default")
    assert rows["max_unpacked_bytes"] == ("2GiB", "default")
    assert rows["max_package_members"] == ("10000", "default")
    assert rows["max_compression_ratio"] == ("200", "default")
    assert rows["max_model_bytes"] == ("8GiB", "default")
    assert rows["read_only_package"] == ("false", "default")
    assert rows["limit_memory"] == ("(no limit)", "default")
    assert rows["metrics_port"] == ("(off)", "default")
    assert rows["custom_url_prefix"] == ('""', "default")
    assert rows["token"] == ("-", "default")
    assert rows["name"] == ("(made at the first start)", "default")
    assert not (tmp_path / ".fedclient").exists()  # looking made nothing


def test_config_show_names_the_policy_file_and_the_kept_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fedclient.app.workdir import resolve_identity

    monkeypatch.chdir(tmp_path)
    kept = resolve_identity(tmp_path / "work", None, None)
    policy = tmp_path / "site.yaml"
    policy.write_text("archive:\n  max_download: 64MiB\nlimits:\n  memory: 4GiB\n")
    rows = show(capsys, "--policy-file", str(policy), "--work-dir", "work", "--max-member-bytes", "10MiB")
    assert rows["max_package_bytes"] == ("64MiB", "policy file")
    assert rows["limit_memory"] == ("4GiB", "policy file")
    assert rows["max_member_bytes"] == ("10MiB", "flag")
    assert rows["max_unpacked_bytes"] == ("2GiB", "default")
    assert rows["name"] == (kept.name, "work dir")
    assert rows["client_id"] == (kept.client_id, "work dir")


@pytest.mark.parametrize(
    ("url", "port"),
    [("fedn.example.org", "443"), ("localhost", "80"), ("localhost:8092", "8092"), ("http://h:9/x", "9")],
)
def test_config_show_gives_the_port_the_url_implies(
    url: str, port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert show(capsys, "-u", url)["api_port"] == (port, "default")


def test_quiet_and_verbose_set_the_log_level(capsys: pytest.CaptureFixture[str]) -> None:
    assert show(capsys, "--quiet")["log_level"] == ("WARNING", "flag")
    assert show(capsys, "-v")["log_level"] == ("DEBUG", "flag")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"fedclient {__version__}"


def test_unused_fedn_flags_are_accepted_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    assert show(capsys, "-va", "True", "--trainer", "False")["validator"] == ("True", "flag")
    assert main(["config", "show", "-va", "True"]) == 0
    err = capsys.readouterr().err
    assert "--validator is accepted for compatibility with fedn client start and does nothing here" in err


def test_unknown_file_keys_are_warned_about(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    init = tmp_path / "client.yaml"
    init.write_text("api_url: h\nnot_a_setting: 1\n")
    assert main(["config", "show", "--init", str(init)]) == 0
    assert (
        "the --init file's key 'not_a_setting' is not a fedclient setting; ignored" in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--bogus"], {}, "unrecognized argument --bogus (see fedclient run --help)"),
        (["--metrics-po", "1"], {}, "unrecognized argument --metrics-po; did you mean --metrics-port?"),
        (["--log-format", "xml"], {}, "argument --log-format: invalid choice: 'xml'"),
        (["-q", "-v"], {}, "argument -v/--verbose: not allowed with argument -q/--quiet"),
        (["-q", "--log-level", "DEBUG"], {}, "--quiet/--verbose and --log-level contradict each other"),
        (
            ["--api-port", "70000"],
            {},
            "invalid settings: --api-port: '70000' is out of range; use a whole number from 1 to 65535",
        ),
        (
            [],
            {"FEDN_API_PORT": "x"},
            "invalid settings: FEDN_API_PORT: 'x' is not a whole number; use a whole number from 1 to 65535",
        ),
        (
            ["--log-level", "LOUD"],
            {},
            "--log-level: log level must be DEBUG, INFO, WARNING, ERROR or CRITICAL",
        ),
        (
            ["--api-port", "x8"],
            {},
            "--api-port: 'x8' is not a whole number; use a whole number from 1 to 65535",
        ),
        (
            ["--name", "a b"],
            {},
            "--name: client names may hold letters, digits and _ . @ : - only (got 'a b')",
        ),
        (["--train-timeout", "0"], {}, "--train-timeout: '0' is out of range; use a number greater than 0"),
        (
            ["-u", "h", "--entrypoint", "m:cb", "--local-package"],
            {},
            "--entrypoint runs your callbacks instead of a compute package: drop --local-package",
        ),
        (
            ["-u", "h", "--refresh-token-file", "f"],
            {"FEDN_AUTH_REFRESH_TOKEN": "r-0123456789"},
            "FEDN_AUTH_REFRESH_TOKEN and --refresh-token-file both give the refresh token",
        ),
        (
            ["--heartbeat-miss-limit", "0"],
            {},
            "--heartbeat-miss-limit: '0' is out of range; use a whole number of 1 or more",
        ),
        (
            [],
            {"FEDN_SHUTDOWN_GRACE": "-1"},
            "FEDN_SHUTDOWN_GRACE: '-1' is out of range; use a number of 0 or more",
        ),
        (["-u", "h", "--combiner-port", "9"], {}, "--combiner-port without --combiner"),
        (
            ["--combiner", "c", "--combiner-port", "9", "-c", "other"],
            {},
            "--combiner attaches straight to a combiner, so --preferred-combiner cannot apply",
        ),
        (
            ["-u", "h", "--local-package", "--package-checksum", "ab"],
            {},
            "--package-checksum checks the controller's package, but --local-package uses a local one",
        ),
        (
            ["-u", "h", "--local-package"],
            {"FEDN_REQUIRE_CHECKSUM": "true"},
            "FEDN_REQUIRE_CHECKSUM checks the controller's package",
        ),
        (
            ["-u", "h", "--api-ca-bundle", "ca.pem"],
            {"FEDN_CONNECT_API_SECURE": "false"},
            "--api-ca-bundle names a CA to verify the controller with, but FEDN_CONNECT_API_SECURE turns",
        ),
        (["-u", "h", "--metrics-host", "0.0.0.0"], {}, "--metrics-host has no effect without --metrics-port"),
        (
            ["-u", "h", "--insecure", "--grpc-root-cert", "ca.pem"],
            {},
            "--insecure turns certificate checks off, but --grpc-root-cert names a CA",
        ),
        (["-u", "h", "--insecure"], {"FEDN_API_CA_BUNDLE": "ca.pem"}, "but FEDN_API_CA_BUNDLE names a CA"),
        (["-u", "h", "--insecure", "--no-grpc-tls"], {}, "but --grpc-tls turns TLS off"),
        (
            ["-u", "h", "--token", "t0k3n-value", "--token-file", "f"],
            {},
            "--token and --token-file both give",
        ),
        ([], {}, "say where to join: --api-url"),
        (["--combiner", "h", "--combiner-port", "1"], {}, "needs --local-package"),
    ],
)
def test_rejections_are_one_line_and_exit_2(
    argv: list[str],
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        code = main(["run", *argv])
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("fedclient: error:")
    assert message in lines[0]


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["run", "--tokn", "abc"],
            "unrecognized argument --tokn; did you mean --token? (see fedclient run --help)",
        ),
        (
            ["run", "--tokn=abc", "--nme", "x"],
            "unrecognized arguments --tokn (did you mean --token?), --nme (did you mean --name?) "
            "(see fedclient run --help)",
        ),
        (
            ["config", "show", "--heartbeat-intreval", "3"],
            "unrecognized argument --heartbeat-intreval; did you mean --heartbeat-interval? "
            "(see fedclient config show --help)",
        ),
        (
            ["sandbox", "--round", "3"],
            "unrecognized argument --round; did you mean --rounds? (see fedclient sandbox --help)",
        ),
        (
            ["package", "check", "pkg", "--package-chksum", "ab"],
            "unrecognized argument --package-chksum; did you mean --package-checksum? "
            "(see fedclient package check --help)",
        ),
        (["run", "--zzzzzzzz"], "unrecognized argument --zzzzzzzz (see fedclient run --help)"),
        (["run", "stray"], "unrecognized argument stray (see fedclient run --help)"),
        (
            ["run", "--log-format", "xml"],
            "argument --log-format: invalid choice: 'xml' (choose from 'text', 'json') "
            "(see fedclient run --help)",
        ),
    ],
)
def test_an_unknown_flag_names_the_closest_flag_of_its_subcommand(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [f"fedclient: error: {line}"]


def test_a_bad_value_in_the_file_is_named_by_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    init = tmp_path / "client.yaml"
    init.write_text("api_url: h\napi_port: nope\n")
    assert main(["run", "--init", str(init)]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == (
        "fedclient: error: invalid settings: api_port in the --init file: 'nope' is not a whole number; "
        "use a whole number from 1 to 65535"
    )


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"FEDN_CONNECT_API_SECURE": "maybe"},
            "FEDN_CONNECT_API_SECURE: 'maybe' is not a boolean; use true/false, 1/0, yes/no, on/off",
        ),
        ({"FEDN_LOG_FORMAT": "xml"}, "FEDN_LOG_FORMAT: 'xml' is not one of the choices; use text or json"),
        (
            {"FEDN_PROGRESS": "sometimes"},
            "FEDN_PROGRESS: 'sometimes' is not one of the choices; use auto, on or off",
        ),
        (
            {"FEDN_TASK_QUEUE_LIMIT": "2.5"},
            "FEDN_TASK_QUEUE_LIMIT: '2.5' is not a whole number; use a whole number from 1 to 1024",
        ),
        (
            {"FEDN_TRAIN_TIMEOUT": "soon"},
            "FEDN_TRAIN_TIMEOUT: 'soon' is not a number; use a number greater than 0",
        ),
        (
            {"FEDN_MAX_PACKAGE_BYTES": "lots"},
            "FEDN_MAX_PACKAGE_BYTES: 'lots' is not a size; use a number of bytes, or a number with "
            "B, KiB, MiB, GiB, TiB, KB, MB, GB or TB (e.g. 512MiB)",
        ),
        (
            {"FEDN_LIMIT_MEMORY": "0"},
            "FEDN_LIMIT_MEMORY: '0' is too small; use a size of more than 0 bytes (e.g. 512MiB)",
        ),
        (
            {"FEDN_INSECURE": "2", "FEDN_METRICS_PORT": "-1"},
            "FEDN_INSECURE: '2' is not a boolean; use true/false, 1/0, yes/no, on/off; "
            "FEDN_METRICS_PORT: '-1' is out of range; use a whole number from 0 to 65535",
        ),
    ],
)
def test_a_refused_value_says_what_is_accepted(
    env: dict[str, str], line: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["config", "show"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"fedclient: error: invalid settings: {line}"]


def test_every_typed_setting_says_what_it_accepts() -> None:
    """A new bool, choice, number or size setting gets its accepted values listed with no other change."""
    from typing import Literal, get_origin

    from fedclient.app.cli_flags import inner_type
    from fedclient.app.settings import extra
    from fedclient.app.settings_errors import accepted

    typed = {bool, int, float}
    for name, info in Settings.model_fields.items():
        kind = inner_type(info.annotation)
        if kind in typed or get_origin(kind) is Literal or extra(info).get("metavar") == "SIZE":
            assert accepted(name), name


def test_a_size_in_the_file_may_be_a_plain_number(tmp_path: Path) -> None:
    from fedclient.app.policy import site_policy
    from fedclient.app.settings_load import load_settings

    init = tmp_path / "client.yaml"
    init.write_text("max_package_bytes: 1048576\n")
    assert site_policy(load_settings({}, init)).archive.max_download_bytes == 1048576


def test_a_secret_is_never_repeated_in_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    from fedclient.app.settings_errors import problem

    error = {
        "type": "string_type",
        "loc": ("token",),
        "msg": "Input should be a valid string",
        "input": 12345,
    }
    assert "12345" not in problem("token", error)  # type: ignore[arg-type]


def _three_values(name: str) -> tuple[object, object, object] | None:
    """A flag value, an env value and a file value for ``name`` that all pass validation."""
    from typing import Literal, get_args, get_origin

    from fedclient.app.cli_flags import inner_type
    from pydantic import SecretStr

    overrides: dict[str, tuple[object, object, object]] = {
        "log_level": ("DEBUG", "ERROR", "CRITICAL"),
        "name": ("flag-name", "env-name", "file-name"),
        "validator": ("a", "b", "c"),
        "trainer": ("a", "b", "c"),
        "package_extract_dir": ("/flag/p", "/env/p", "/file/p"),
        **{
            size: ("1048576", "2k", "3m")
            for size, info in Settings.model_fields.items()
            if info.json_schema_extra and info.json_schema_extra.get("metavar") == "SIZE"  # type: ignore[union-attr]
        },
    }
    if name in overrides:
        return overrides[name]
    validated = {
        f for dec in Settings.__pydantic_decorators__.field_validators.values() for f in dec.info.fields
    }
    if name in validated:
        return None  # a new field with its own validator: add it to the overrides above
    kind = inner_type(Settings.model_fields[name].annotation)
    if get_origin(kind) is Literal:
        choices = get_args(kind)
        return (choices[0], choices[1], choices[0]) if len(choices) >= 2 else None
    by_type: dict[object, tuple[object, object, object]] = {
        bool: (True, False, True),
        int: (101, 102, 103),
        float: (1.5, 2.5, 3.5),
        str: ("from-flag", "from-env", "from-file"),
        SecretStr: ("from-flag", "from-env", "from-file"),
        Path: ("/flag/p", "/env/p", "/file/p"),
    }
    return by_type.get(kind)


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_each_setting_flag_beats_env_beats_file(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Generated for every field, so a setting added later gets its precedence checked too."""
    from typing import get_origin

    import yaml
    from fedclient.app.cli_flags import cli_values, inner_type
    from fedclient.app.settings import long_flag
    from fedclient.app.settings_load import load

    if get_origin(inner_type(Settings.model_fields[name].annotation)) is list:
        pytest.skip("a list setting: its env value is JSON and its flag repeats")
    values = _three_values(name)
    assert values is not None, f"{name}: give it test values in _three_values"
    flag_value, env_value, file_value = values
    init = tmp_path / "client.yaml"
    init.write_text(yaml.safe_dump({name: file_value}))

    def effective(*argv: str) -> tuple[str, str]:
        loaded = load(cli_values(parser().parse_args(["run", *argv])), init)
        value = getattr(loaded.settings, name)
        value = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        return str(value), loaded.sources[name]

    assert effective() == (str(file_value), "file")
    monkeypatch.setenv(env_names(name)[0], str(env_value).lower())
    assert effective() == (str(env_value), "env")
    flag_argv = [long_flag(name)] if flag_value is True else [long_flag(name), str(flag_value)]
    assert effective(*flag_argv) == (str(flag_value), "flag")


def run_help() -> str:
    sub = next(a for a in parser()._actions if a.dest == "command")
    return sub.choices["run"].format_help()  # type: ignore[attr-defined, no-any-return]


def flag_help(flag: str) -> str:
    """The help of one flag, its lines joined (argparse wraps them at the terminal's width)."""
    sub = next(a for a in parser()._actions if a.dest == "command")
    action = next(a for a in sub.choices["run"]._actions if flag in a.option_strings)  # type: ignore[attr-defined]
    return " ".join(str(action.help).split())


@pytest.mark.parametrize(
    ("flag", "default"),
    [
        ("--train-timeout", "3600"),
        ("--shutdown-grace", "120"),
        ("--work-dir", ".fedclient"),
        ("--heartbeat-interval", "2"),
        ("--connect-api-secure", "true"),
        ("--log-format", "text"),
        ("--max-package-bytes", "512MiB"),
        ("--max-model-bytes", "8GiB"),
    ],
)
def test_run_help_shows_each_flags_default(flag: str, default: str) -> None:
    assert f"(default: {default}) [" in flag_help(flag)


@pytest.mark.parametrize(
    "flag", ["--api-url", "--token", "--combiner-port", "--limit-memory", "--metrics-port"]
)
def test_a_flag_without_a_default_says_none(flag: str) -> None:
    assert "(default:" not in flag_help(flag)


@pytest.mark.parametrize("name", [n for n in Settings.model_fields if default_text(n) is not None])
def test_the_default_the_help_shows_is_the_one_the_client_uses(name: str) -> None:
    """Given as a value, the shown default changes nothing: the help cannot drift from the code."""
    from fedclient.app.policy import max_model_bytes, site_policy
    from fedclient.app.settings_load import load_settings

    shown = default_text(name)
    given, unset = load_settings({name: shown}), load_settings({})
    assert site_policy(given).archive == site_policy(unset).archive
    assert site_policy(given).read_only_package == site_policy(unset).read_only_package
    assert max_model_bytes(given) == max_model_bytes(unset)
    if getattr(unset, name) is not None:
        assert getattr(given, name) == getattr(unset, name)


def test_run_help_ends_with_examples_that_parse() -> None:
    import shlex

    text = run_help()
    assert "\nexamples:\n" in text
    examples = [line.strip() for line in text.split("\nexamples:\n", 1)[1].splitlines()]
    commands = [shlex.split(line)[1:] for line in examples if line.startswith("fedclient ")]
    assert 3 <= len(commands) <= 5
    for argv in commands:
        parser().parse_args(argv)  # an example that no longer parses exits 2 here
    used = {arg for argv in commands for arg in argv}
    assert {"--token-file", "--init", "--local-package", "--entrypoint"} <= used


@pytest.mark.parametrize(
    ("argv", "name", "text", "line"),
    [
        (
            ["run", "--init", "client.yaml"],
            "client.yaml",
            "api_url: h\nname: a\nbad: x: y\n",
            "client.yaml:3:7: mapping values are not allowed here",
        ),
        (
            ["config", "show", "--init", "client.yaml"],
            "client.yaml",
            "api_url: h\n\tname: a\n",
            "client.yaml:2:1: found character '\\t' that cannot start any token",
        ),
        (
            ["policy", "show", "--policy-file", "site.yaml"],
            "site.yaml",
            "limits:\n  memory: [4GiB\n",
            "site.yaml:3:1: expected ',' or ']', but got '<stream end>'",
        ),
        (
            ["run", "-u", "h", "--policy-file", "site.yaml"],
            "site.yaml",
            "limits: {memory: 1\x01}\n",
            "site.yaml:1:19: unacceptable character #x0001: special characters are not allowed",
        ),
    ],
)
def test_a_yaml_error_is_file_line_column_and_the_problem(
    argv: list[str],
    name: str,
    text: str,
    line: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_text(text)
    assert main(argv) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"fedclient: error: {line}"


def test_package_check_names_a_broken_python_env_by_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "fedn.yaml").write_text(
        "python_env: env.yaml\nentry_points:\n  train: {command: python t.py}\n"
    )
    (tmp_path / "env.yaml").write_text("name: x\ndependencies:\n  - numpy\n - scipy\n")
    assert main(["package", "check", str(tmp_path)]) == 1
    problems = [line for line in capsys.readouterr().out.splitlines() if line.startswith("problem: ")]
    assert problems == ["problem: env.yaml:4:2: expected <block end>, but found '<block sequence start>'"]


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["sandbox", "--package", "gone"], "--package gone: no such directory"),
        (["simulate", "--package", "gone"], "--package gone: no such directory"),
        (["package", "check", "gone"], "gone: no such file or directory"),
        (["package", "build", "gone"], "gone: no such directory"),
        (["policy", "show", "--policy-file", "gone"], "policy file gone: no such file"),
        (["run", "-u", "h", "--local-package", "gone"], "--local-package gone: no such directory"),
        (["run", "-u", "h", "--local-package", "a-file"], "--local-package a-file: not a directory"),
        (["run", "--init", "gone"], "--init gone: no such file"),
        (["config", "show", "--init", "gone"], "--init gone: no such file"),
        (["package", "check", ".", "--init", "gone"], "--init gone: no such file"),
        (["sandbox", "--package", "a-file"], "--package a-file: not a directory"),
        (["sandbox", "--package", "."], "--package .: no fedn.yaml in that directory"),
        (["package", "build", "."], ".: no fedn.yaml in that directory"),
        (
            ["sandbox", "--package", "pkg", "--json", "gone/out.json"],
            "--json gone/out.json: no such directory",
        ),
        (
            ["simulate", "--package", "pkg", "--json", "gone/out.json"],
            "--json gone/out.json: no such directory",
        ),
    ],
)
def test_a_path_that_does_not_exist_is_a_usage_error_in_every_subcommand(
    argv: list[str],
    line: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "fedn.yaml").write_text("entry_points: {}\n")
    assert main(argv) == 2
    [error] = capsys.readouterr().err.splitlines()
    assert error.startswith(f"fedclient: error: {line}")
    assert not (tmp_path / "package.tgz").exists()  # refused before any work


async def test_clients_that_do_not_join_are_a_failure_not_a_usage_error() -> None:
    """Exit 1 (FedClientError), not 2: the command line was fine, the federation was not."""
    import asyncio

    from fedclient.app.simulation.simulate import _wait_joined
    from fedclient.app.simulation.task_timing import TaskTimes
    from fedclient.domain.errors import FatalError, FedClientError

    with pytest.raises(FedClientError, match="only 0 of 2 clients connected within 0 s") as failed:
        await _wait_joined(TaskTimes(), 2, [], 0.0, None, asyncio.Event())
    assert not isinstance(failed.value, FatalError)
