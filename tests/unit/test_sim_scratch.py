"""simulate's scratch space: one for the group, removed at once while running, moved aside once stopping."""

from __future__ import annotations

from pathlib import Path

from fedclient.app.simulation.scratch import SCRATCH, GroupScratch


def _task_dir(scratch: GroupScratch, parent: Path) -> Path:
    made = scratch.make(parent, "train-")
    (made / "model.npz").write_bytes(b"x" * 10)
    return made


def test_removed_while_running_moved_to_the_trash_once_stopping(tmp_path: Path) -> None:
    scratch = GroupScratch(tmp_path)
    first = _task_dir(scratch, tmp_path / "client-0" / "tasks")
    assert first.parent == tmp_path / SCRATCH / "tasks"  # the group's, not a directory for each client
    scratch.remove(first)
    assert not first.exists() and not (tmp_path / SCRATCH / "trash").exists()

    scratch.stopping()
    second = _task_dir(scratch, tmp_path / "client-1" / "tasks")
    third = _task_dir(scratch, tmp_path / "client-2" / "tasks")
    scratch.remove(second)
    scratch.remove(third)
    assert not second.exists() and not third.exists()
    # same prefixes in two clients do not collide
    assert len(list((tmp_path / SCRATCH / "trash").iterdir())) == 2

    scratch.remove(tmp_path / "never-made")  # gone already: nothing to do, no error
    assert scratch.trash == tmp_path / SCRATCH / "trash"  # removed once the event loop has ended
    assert not (tmp_path / "client-0").exists()


def test_remove_tree_removes_everything_and_a_missing_dir_is_no_error(tmp_path: Path) -> None:
    from fedclient.app.simulation.scratch import remove_scratch, remove_tree

    work = tmp_path / "work"
    scratch = GroupScratch(work)
    for index in range(40):
        _task_dir(scratch, work / f"client-{index}")
    (work / SCRATCH / "outbox").mkdir()
    (work / SCRATCH / "outbox" / "0-key.model").write_bytes(b"m")
    (work / "server" / "models").mkdir(parents=True)
    (work / "tasks").mkdir()  # the user's own, in a --work-dir: not the group's
    (work / "link").symlink_to(tmp_path / "elsewhere-kept")
    (tmp_path / "elsewhere-kept").mkdir()
    (tmp_path / "elsewhere-kept" / "file").write_bytes(b"k")

    remove_scratch(work)
    assert sorted(p.name for p in work.iterdir()) == ["link", "server", "tasks"]
    remove_tree(work / "link")  # a link is never followed
    assert (tmp_path / "elsewhere-kept" / "file").exists()
    remove_tree(work)
    assert not work.exists()
    assert (tmp_path / "elsewhere-kept" / "file").exists()
    remove_tree(work)  # gone already: no error
