"""Which interpreter runs a package, and the python_env cache: key, reuse, atomic build."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest
from fedclient.adapters.trainers import PackageEnvs, SubprocessTrainer
from fedclient.domain.errors import ConfigError, PackageError
from fedclient.domain.model_files import choose_helper, model_suffix
from fedclient.domain.package import Manifest
from fedclient.domain.package_env import (
    BUILD_MARKER,
    Source,
    choose_interpreter,
    env_cache_key,
    is_usable_build,
    parse_python_env,
    python_commands,
    requested_minor,
)
from hypothesis import given
from hypothesis import strategies as st

# ------------------------------------------------------------ pure policy --


def test_interpreter_order_is_override_then_env_then_path_then_own() -> None:
    env = {"python": "/env/bin/python"}.get
    path = {"python": "/usr/bin/python", "python3": "/usr/bin/python3"}.get
    pick = choose_interpreter
    assert pick("python", override="/o/python", env_bin=env, on_path=path, own="/me").path == "/o/python"
    assert pick("python", override=None, env_bin=env, on_path=path, own="/me").source == Source.MANAGED_ENV
    # an env without python3 still runs `python3` with its own interpreter
    assert pick("python3", override=None, env_bin=env, on_path=path, own="/me").path == "/env/bin/python"
    chosen = pick("python3", override=None, env_bin=None, on_path=path, own="/me")
    assert (chosen.path, chosen.source, chosen.fallback) == ("/usr/bin/python3", Source.PATH, False)
    fallback = pick("python", override=None, env_bin=None, on_path={}.get, own="/me")
    assert (fallback.path, fallback.source, fallback.fallback) == ("/me", Source.OWN, True)
    assert "no 'python' on PATH" in fallback.describe()


def test_python_commands_lists_the_names_entry_points_use() -> None:
    commands = {"train": ("python3", "t.py"), "validate": ("bash", "v.sh"), "x": ("python", "x.py")}
    assert python_commands(commands) == ["python", "python3"]
    assert python_commands({"train": ("./train.sh",)}) == []


def test_python_env_defaults_and_types_follow_fedn() -> None:
    spec = parse_python_env(None, "env.yaml")
    assert (spec.name, spec.python, spec.build_dependencies, spec.dependencies) == ("fedn_env", None, (), ())
    spec = parse_python_env(
        {"name": ".load-test", "python": 3.1, "dependencies": ["fedn", "numpy"], "channels": ["x"]}, "e"
    )
    assert spec.name == ".load-test" and spec.dependencies == ("fedn", "numpy")
    assert spec.python == "3.1" and requested_minor(spec) == "3.1"
    assert spec.extra_keys == ("channels",)
    for bad in ({"dependencies": "numpy"}, {"name": ""}, {"build_dependencies": [1]}, ["numpy"]):
        with pytest.raises(PackageError):
            parse_python_env(bad, "env.yaml")
    assert requested_minor(parse_python_env({"python": "3.10.12"}, "e")) == "3.10"
    assert requested_minor(parse_python_env({"python": "latest"}, "e")) is None


def test_cache_key_is_the_file_bytes_and_the_python_version() -> None:
    key = env_cache_key(b"dependencies: [numpy]\n", "3.11.9")
    assert key == env_cache_key(b"dependencies: [numpy]\n", "3.11.9")
    assert key != env_cache_key(b"dependencies: [numpy]\n", "3.12.1")
    assert key != env_cache_key(b"dependencies: [numpy, six]\n", "3.11.9")
    # length-prefixed parts: moving bytes between the version and the file changes the key
    assert env_cache_key(b"1x", "3.1") != env_cache_key(b"x", "3.11")


def test_only_a_finished_build_with_an_interpreter_is_usable() -> None:
    assert is_usable_build("abc\n", "abc", has_python=True)
    assert not is_usable_build(None, "abc", has_python=True)  # interrupted: no marker
    assert not is_usable_build("abc", "abc", has_python=False)
    assert not is_usable_build("other", "abc", has_python=True)


def test_model_suffix_per_fedn_helper() -> None:
    assert [model_suffix(h) for h in ("numpyhelper", "binaryhelper", "splitlearninghelper")] == [".npz"] * 3
    assert model_suffix("androidhelper") == ""
    assert model_suffix("torchhelper") is None
    assert choose_helper("androidhelper", "numpyhelper") == "androidhelper"  # the client's -hp wins
    assert choose_helper(None, "binaryhelper") == "binaryhelper"
    assert choose_helper("", "") == "numpyhelper"


# -------------------------------------------------- interpreter in a trainer --


def _exe(path: Path, body: str) -> Path:
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _site_python(bin_dir: Path, name: str = "python") -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    return _exe(bin_dir / name, f'#!/bin/sh\nexec {sys.executable} "$@"\n')


def _manifest(*commands: str) -> Manifest:
    return Manifest(entry_points={f"e{i}": (c, "x.py") for i, c in enumerate(commands)})


async def test_trainer_takes_python_from_the_startup_path_and_logs_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    site = _site_python(tmp_path / "site" / "bin")
    t = SubprocessTrainer(tmp_path, _manifest("python"), extra_env={"PATH": str(site.parent)})
    await t.prepare()
    assert t.command("e0") == [str(site), "x.py"]
    [line] = [m for m in caplog.messages if m.startswith("package interpreter:")]
    assert f"python -> {site} (found on PATH)" in line


async def test_trainer_falls_back_to_its_own_interpreter_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    t = SubprocessTrainer(
        tmp_path, _manifest("python3"), extra_env={"PATH": str(empty)}, own_python="/own/py"
    )
    await t.prepare()
    assert t.command("e0")[0] == "/own/py"
    [record] = [r for r in caplog.records if r.getMessage().startswith("package interpreter:")]
    assert record.levelno == logging.WARNING and "no 'python3' on PATH" in record.getMessage()


async def test_path_is_left_alone_when_the_commands_used_are_found(tmp_path: Path) -> None:
    site = _site_python(tmp_path / "site" / "bin", "python3")  # no `python` there, and none is used
    t = SubprocessTrainer(tmp_path, _manifest("python3"), extra_env={"PATH": str(site.parent)})
    await t.prepare()
    assert t.command("e0")[0] == str(site)
    assert t._env["PATH"] == str(site.parent)


async def test_override_wins_and_a_missing_one_is_a_config_error(tmp_path: Path) -> None:
    site = _site_python(tmp_path / "site" / "bin")
    other = _site_python(tmp_path / "other" / "bin", "python3.99")
    manifest = Manifest(entry_points={"train": ("python", "t.py")}, python_env="env.yaml")
    t = SubprocessTrainer(
        tmp_path, manifest, extra_env={"PATH": str(site.parent)}, python=str(other), envs=None
    )
    await t.prepare()
    assert t.command("train")[0] == str(other)
    assert t._env["PATH"].split(os.pathsep)[0] == str(other.parent)
    with pytest.raises(ConfigError, match="--python /no/such/python"):
        SubprocessTrainer(tmp_path, manifest, python="/no/such/python")


# ------------------------------------------------------------- env cache --

# A stand-in for `python -m venv`: makes <target>/bin/python (a link to this interpreter).
# With FAKE_VENV_SLOW set it then hangs, so a test can interrupt a build half way.
FAKE_BASE = f"""#!{sys.executable}
import os, sys, time
if sys.argv[1] == "-c":
    print("3.99.1")
    sys.exit(0)
target = sys.argv[3]
os.makedirs(os.path.join(target, "bin"))
os.symlink(sys.executable, os.path.join(target, "bin", "python"))
print("created", target)
if os.environ.get("FAKE_VENV_SLOW"):
    time.sleep(60)
"""


@pytest.fixture
def package(tmp_path: Path) -> Path:
    root = tmp_path / "package"
    root.mkdir()
    (root / "python_env.yaml").write_text(textwrap.dedent("name: .demo\nbuild_dependencies: []\n"))
    return root


@pytest.fixture
def envs(tmp_path: Path) -> PackageEnvs:
    base = _exe(tmp_path / "fake-python", FAKE_BASE)
    return PackageEnvs(tmp_path / "work" / "envs", uv="", base_python=str(base))


async def test_env_is_built_once_then_reused_across_package_versions(
    tmp_path: Path, package: Path, envs: PackageEnvs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fedclient.env")
    first = await envs.ensure(package, "python_env.yaml")
    assert not first.reused and first.tool == "venv+pip" and first.python_version == "3.99.1"
    assert first.path.is_symlink() and (first.path / BUILD_MARKER).read_text().strip() == first.key
    assert any("[1/1] creating the env with venv" in m for m in caplog.messages)
    assert any(m.startswith("python_env: created") for m in caplog.messages)  # build output streamed
    # a new package version (another directory) with the same env file reuses it
    newer = tmp_path / "package-v2"
    newer.mkdir()
    (newer / "python_env.yaml").write_bytes((package / "python_env.yaml").read_bytes())
    second = await envs.ensure(newer, "python_env.yaml")
    assert second.reused and second.path == first.path and second.path.resolve() == first.path.resolve()
    # a changed env file is another env
    (newer / "python_env.yaml").write_text("name: .demo\ndependencies: []\n")
    third = await envs.ensure(newer, "python_env.yaml")
    assert not third.reused and third.key != first.key


async def test_an_interrupted_build_is_never_used(
    package: Path, envs: PackageEnvs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VENV_SLOW", "1")
    build = asyncio.create_task(envs.ensure(package, "python_env.yaml"))
    for _ in range(200):  # until the half-made env has its interpreter
        if any(envs.root.glob(".build-*/bin/python")):
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the fake build never started")
    build.cancel()
    with pytest.raises(asyncio.CancelledError):
        await build
    assert not [p for p in envs.root.iterdir() if p.is_symlink()], "an interrupted build was published"
    # As if killed (SIGKILL: no clean-up ran): a half-made build dir and a link to an unfinished one.
    [lock] = list(envs.root.glob("*.lock"))
    name = lock.name.removesuffix(".lock")
    key = name.rsplit("-", 1)[1]
    orphan = envs.root / f".build-{key}-dead"
    (orphan / "bin").mkdir(parents=True)
    os.symlink(sys.executable, orphan / "bin" / "python")
    os.symlink(orphan.name, envs.root / name)
    monkeypatch.delenv("FAKE_VENV_SLOW")
    built = await envs.ensure(package, "python_env.yaml")
    assert not built.reused, "a build without its completion marker was reused"
    assert built.path.resolve() != orphan.resolve() and not orphan.exists()
    assert (await envs.ensure(package, "python_env.yaml")).reused


async def test_a_failed_build_is_one_clear_error_and_leaves_nothing(tmp_path: Path, package: Path) -> None:
    base = _exe(
        tmp_path / "broken-python",
        f"#!{sys.executable}\nimport sys\nprint('3.99.1')\nsys.exit(0 if sys.argv[1] == '-c' else 4)\n",
    )
    envs = PackageEnvs(tmp_path / "envs", uv="", base_python=str(base))
    with pytest.raises(Exception, match=r"python_env build failed while creating the env .*\(exit 4\)"):
        await envs.ensure(package, "python_env.yaml")
    assert not [p for p in envs.root.iterdir() if not p.name.endswith(".lock")]
    with pytest.raises(PackageError, match="no such file"):
        await envs.ensure(package, "missing.yaml")
    with pytest.raises(PackageError, match="outside the compute package"):
        await envs.ensure(package, "../python_env.yaml")
    (package / "broken.yaml").write_text("name: x\ndependencies: [numpy\n")
    with pytest.raises(PackageError) as refused:
        await envs.ensure(package, "broken.yaml")
    assert str(refused.value) == "broken.yaml:3:1: expected ',' or ']', but got '<stream end>'"


async def test_trainer_runs_entry_points_with_the_built_env(package: Path, envs: PackageEnvs) -> None:
    manifest = Manifest(entry_points={"train": ("python", "t.py")}, python_env="python_env.yaml")
    t = SubprocessTrainer(package, manifest, envs=envs)
    with pytest.raises(Exception, match="not been prepared"):
        t.command("train")
    await t.prepare()
    assert t.env is not None
    assert t.command("train")[0] == str(t.env.bin_dir / "python")
    assert t._env["PATH"].split(os.pathsep)[0] == str(t.env.bin_dir)
    assert t._env["VIRTUAL_ENV"] == str(t.env.path)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(["name", "python", "build_dependencies", "dependencies", "x"]),
                inner,
                max_size=4,
            )
        ),
        max_leaves=12,
    )
)
def test_any_yaml_document_parses_or_is_a_package_error(data: object) -> None:
    try:
        spec = parse_python_env(data, "python_env.yaml")
    except PackageError as exc:
        assert str(exc).startswith("python_env.yaml: ")
    else:
        assert spec.name and all(isinstance(d, str) and d for d in spec.dependencies)


async def test_the_python_key_picks_that_version_from_path(
    tmp_path: Path, package: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    _exe(tools / "python3.99", FAKE_BASE)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    (package / "python_env.yaml").write_text("name: .demo\npython: 3.99.0\n")
    envs = PackageEnvs(tmp_path / "envs", uv="")  # our own interpreter is not 3.99
    built = await envs.ensure(package, "python_env.yaml")
    assert built.python_version == "3.99.1"  # made by python3.99 from PATH
    (package / "python_env.yaml").write_text("name: .demo\npython: '3.98'\n")
    monkeypatch.setenv("PATH", str(tools))
    ours = PackageEnvs(tmp_path / "envs2", uv="", base_python=str(tools / "python3.99"))
    fallback = await ours.ensure(package, "python_env.yaml")  # no python3.98: ours, as FEDn does
    assert fallback.python_version == "3.99.1"
    assert any("no python3.98 is on PATH" in m for m in caplog.messages)


async def test_a_failed_uv_build_is_tried_again_with_venv_and_pip(
    tmp_path: Path, package: Path, caplog: pytest.LogCaptureFixture
) -> None:
    uv = _exe(tmp_path / "uv", "#!/bin/sh\necho 'error: index not reachable'\nexit 2\n")
    base = _exe(tmp_path / "fake-python", FAKE_BASE)
    built = await PackageEnvs(tmp_path / "envs", uv=str(uv), base_python=str(base)).ensure(
        package, "python_env.yaml"
    )
    assert built.tool == "venv+pip" and not built.reused
    assert any("build with uv failed" in m and "index not reachable" in m for m in caplog.messages)


# A stand-in for uv: `uv venv ... <target>` makes the env, `uv pip install ...` is recorded.
FAKE_UV = f"""#!{sys.executable}
import json, os, sys
if sys.argv[1] == "venv":
    target = sys.argv[-1]
    os.makedirs(os.path.join(target, "bin"))
    os.symlink(sys.executable, os.path.join(target, "bin", "python"))
else:
    with open(os.environ["FAKE_UV_LOG"], "a") as log:
        log.write(json.dumps(sys.argv[1:]) + "\\n")
"""


async def test_uv_installs_compile_bytecode_as_pip_does(
    tmp_path: Path, package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (package / "python_env.yaml").write_text("name: .demo\nbuild_dependencies: [pip]\ndependencies: [six]\n")
    record = tmp_path / "uv.log"
    monkeypatch.setenv("FAKE_UV_LOG", str(record))
    uv = _exe(tmp_path / "uv", FAKE_UV)
    base = _exe(tmp_path / "fake-python", FAKE_BASE)
    built = await PackageEnvs(tmp_path / "envs", uv=str(uv), base_python=str(base)).ensure(
        package, "python_env.yaml"
    )
    assert built.tool == "uv" and not built.reused
    installs = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(installs) == 2, installs  # build dependencies, then dependencies
    assert all(argv[:3] == ["pip", "install", "--compile-bytecode"] for argv in installs), installs
