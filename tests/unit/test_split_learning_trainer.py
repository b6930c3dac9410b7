"""The forward/backward entry points run with FEDn's argv, in real child processes."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from fedclient.adapters.trainers import SubprocessTrainer
from fedclient.domain.errors import TaskFailed
from fedclient.domain.package import Manifest

SCRIPTS = {
    # forward <client_id> <out> <is_sl_inference>: writes the embeddings and <out>-metadata
    "forward.py": """
        import json, sys
        client_id, out, inference = sys.argv[1:4]
        open(out, "wb").write(f"emb:{client_id}:{inference}".encode())
        json.dump({"num_examples": 5, "argv": sys.argv[1:]}, open(out + "-metadata", "w"))
    """,
    # np.savez(out) would write out.npz: the trainer sends that file
    "forward_npz.py": """
        import json, sys
        out = sys.argv[2]
        open(out + ".npz", "wb").write(b"npz-embeddings")
        json.dump({"num_examples": 5}, open(out + "-metadata", "w"))
    """,
    "forward_no_examples.py": """
        import json, sys
        open(sys.argv[2], "wb").write(b"e")
        json.dump({"rows": 5}, open(sys.argv[2] + "-metadata", "w"))
    """,
    # backward <gradients> <client_id>
    "backward.py": """
        import json, sys
        grad, client_id = sys.argv[1:3]
        json.dump({"argv": sys.argv[1:], "gradients": open(grad).read()}, open("backward-seen.json", "w"))
    """,
    "backward_fail.py": """
        import sys
        print("shape mismatch", file=sys.stderr)
        sys.exit(4)
    """,
}


def trainer(tmp_path: Path, **entries: str) -> SubprocessTrainer:
    package = tmp_path / "package"
    package.mkdir(exist_ok=True)
    for name, text in SCRIPTS.items():
        (package / name).write_text(textwrap.dedent(text))
    manifest = Manifest(entry_points={e: ("python", script) for e, script in entries.items()})
    return SubprocessTrainer(package, manifest, timeout=30)


@pytest.mark.parametrize(("inference", "flag"), [(False, "False"), (True, "True")])
async def test_forward_argv_and_metadata(tmp_path: Path, inference: bool, flag: str) -> None:
    out = tmp_path / "embeddings"
    meta = await trainer(tmp_path, forward="forward.py").forward("cid-9", out, inference)
    assert meta == {"num_examples": 5, "argv": ["cid-9", str(out), flag]}
    assert out.read_bytes() == f"emb:cid-9:{flag}".encode()


async def test_forward_output_written_with_an_npz_suffix_is_sent(tmp_path: Path) -> None:
    out = tmp_path / "embeddings"
    await trainer(tmp_path, forward="forward_npz.py").forward("c", out, False)
    assert out.read_bytes() == b"npz-embeddings"


async def test_forward_without_num_examples_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(TaskFailed, match="needs 'num_examples'"):
        await trainer(tmp_path, forward="forward_no_examples.py").forward("c", tmp_path / "e", False)


async def test_backward_argv(tmp_path: Path) -> None:
    grads = tmp_path / "gradients"
    grads.write_text("g-bytes")
    t = trainer(tmp_path, backward="backward.py")
    await t.backward(grads, "cid-9")
    seen = json.loads((tmp_path / "package" / "backward-seen.json").read_text())
    assert seen == {"argv": [str(grads), "cid-9"], "gradients": "g-bytes"}


async def test_backward_failure_and_missing_entry_point_fail_the_task(tmp_path: Path) -> None:
    with pytest.raises(TaskFailed, match=r"(?s)backward failed \(exit code 4\).*shape mismatch"):
        await trainer(tmp_path, backward="backward_fail.py").backward(tmp_path / "g", "c")
    with pytest.raises(TaskFailed, match="no 'forward' entry point"):
        await trainer(tmp_path, backward="backward.py").forward("c", tmp_path / "e", False)
