"""simulate's scratch space: removed at once while running, moved aside once the group stops."""

from __future__ import annotations

from pathlib import Path

from fedclient.app.simulation.scratch import GroupScratch


def _task_dir(scratch: GroupScratch, parent: Path) -> Path:
    made = scratch.make(parent, "train-")
    (made / "model.npz").write_bytes(b"x" * 10)
    return made


def test_removed_while_running_moved_to_the_trash_once_stopping_and_the_trash_emptied(tmp_path: Path) -> None:
    scratch = GroupScratch(tmp_path / "trash")
    first = _task_dir(scratch, tmp_path / "client-0" / "tasks")
    scratch.remove(first)
    assert not first.exists() and not (tmp_path / "trash").exists()

    scratch.stopping()
    second = _task_dir(scratch, tmp_path / "client-1" / "tasks")
    third = _task_dir(scratch, tmp_path / "client-2" / "tasks")
    scratch.remove(second)
    scratch.remove(third)
    assert not second.exists() and not third.exists()
    assert len(list((tmp_path / "trash").iterdir())) == 2  # same names in two clients do not collide

    scratch.remove(tmp_path / "never-made")  # gone already: nothing to do, no error
    scratch.empty_trash()
    assert not (tmp_path / "trash").exists()
