"""The workspace: copying a repository in, and the git-style diff of what changed."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from orchestrator import workspace
from orchestrator.errors import ConfigError


def make_repo(root: Path) -> Path:
    """A small repository: text, an executable, a nested dir, symlinks and a .git."""
    (root / "src").mkdir(parents=True)
    (root / "README.md").write_text("hello\n")
    (root / "src" / "main.py").write_text("print('hi')\n")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "private.txt").write_text("mine\n")
    (root / "private.txt").chmod(0o600)
    (root / "link-to-readme").symlink_to("README.md")
    (root / "dangling").symlink_to("nowhere/at/all")
    (root / ".git" / "refs").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return root


def trees(tmp_path: Path) -> tuple[Path, Path]:
    """Two empty trees to compare: base and current."""
    base, current = tmp_path / "base", tmp_path / "current"
    base.mkdir()
    current.mkdir()
    return base, current


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


# --- prepare ---------------------------------------------------------------------------


def test_prepare_without_repo_makes_empty_trees(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "r1"
    ws = workspace.prepare(run_dir, None)

    assert ws == run_dir / "workspace"
    assert list(ws.iterdir()) == []
    assert list((run_dir / "base").iterdir()) == []
    assert mode(ws) == 0o700


def test_prepare_copies_files_symlinks_modes_and_git(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    run_dir = tmp_path / "runs" / "r1"
    ws = workspace.prepare(run_dir, repo)

    for tree in (ws, run_dir / "base"):
        assert (tree / "README.md").read_text() == "hello\n"
        assert (tree / "src" / "main.py").read_text() == "print('hi')\n"
        assert mode(tree / "run.sh") == 0o755
        assert mode(tree / "private.txt") == 0o600
        assert (tree / "link-to-readme").is_symlink()
        assert os.readlink(tree / "link-to-readme") == "README.md"
        assert (tree / "dangling").is_symlink()
        assert os.readlink(tree / "dangling") == "nowhere/at/all"
        assert (tree / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n"
        assert (tree / ".git" / "refs").is_dir()
    assert workspace.diff(run_dir / "base", ws) == ""
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]  # no staging left


def test_prepare_skips_fifos(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    os.mkfifo(repo / "pipe")
    ws = workspace.prepare(tmp_path / "run", repo)

    assert not (ws / "pipe").exists()
    assert (ws / "README.md").exists()


def test_prepare_keeps_an_existing_workspace(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    run_dir = tmp_path / "run"
    ws = workspace.prepare(run_dir, repo)
    (ws / "README.md").write_text("edited by a step\n")

    assert workspace.prepare(run_dir, repo) == ws
    assert (ws / "README.md").read_text() == "edited by a step\n"
    assert (run_dir / "base" / "README.md").read_text() == "hello\n"


def test_prepare_leaves_out_a_data_dir_inside_the_repo(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / ".firstmate").mkdir()
    (repo / ".firstmate" / "firstmate.db").write_bytes(b"sqlite")
    ws = workspace.prepare(repo / ".firstmate" / "runs" / "r1", repo)

    assert not (ws / ".firstmate").exists()
    assert (ws / "README.md").exists()


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_prepare_refuses_a_repo_that_is_not_a_directory(tmp_path: Path, kind: str) -> None:
    repo = tmp_path / "repo"
    if kind == "file":
        repo.write_text("not a dir")
    with pytest.raises(ConfigError, match="--repo") as info:
        workspace.prepare(tmp_path / "run", repo)
    assert str(repo) in str(info.value)
    assert not (tmp_path / "run" / "workspace").exists()


# --- diff ------------------------------------------------------------------------------


def test_diff_exact_text_for_modified_added_and_removed(tmp_path: Path) -> None:
    base, current = trees(tmp_path)
    (base / "a.txt").write_text("one\ntwo\nthree\n")
    (current / "a.txt").write_text("one\n2\nthree\n")
    (base / "gone.txt").write_text("bye\n")
    (current / "sub").mkdir()
    (current / "sub" / "new.txt").write_text("hi\nthere\n")

    assert workspace.diff(base, current) == (
        "diff --git a/a.txt b/a.txt\n"
        "--- a/a.txt\n"
        "+++ b/a.txt\n"
        "@@ -1,3 +1,3 @@\n"
        " one\n"
        "-two\n"
        "+2\n"
        " three\n"
        "diff --git a/gone.txt b/gone.txt\n"
        "deleted file mode 100644\n"
        "--- a/gone.txt\n"
        "+++ /dev/null\n"
        "@@ -1 +0,0 @@\n"
        "-bye\n"
        "diff --git a/sub/new.txt b/sub/new.txt\n"
        "new file mode 100644\n"
        "--- /dev/null\n"
        "+++ b/sub/new.txt\n"
        "@@ -0,0 +1,2 @@\n"
        "+hi\n"
        "+there\n"
    )
    assert workspace.changed_files(base, current) == ["a.txt", "gone.txt", "sub/new.txt"]


def test_diff_marks_a_missing_final_newline(tmp_path: Path) -> None:
    base, current = trees(tmp_path)
    (base / "a.txt").write_text("x\ny")
    (current / "a.txt").write_text("x\ny\n")

    assert workspace.diff(base, current).endswith(
        "@@ -1,2 +1,2 @@\n x\n-y\n\\ No newline at end of file\n+y\n"
    )


def test_diff_reports_binary_files(tmp_path: Path) -> None:
    base, current = trees(tmp_path)
    (base / "img.png").write_bytes(b"\x89PNG\x00\x01")
    (current / "img.png").write_bytes(b"\x89PNG\x00\x02")
    (current / "latin1.txt").write_bytes("caf\u00e9\n".encode("latin-1"))

    assert workspace.diff(base, current) == (
        "diff --git a/img.png b/img.png\n"
        "Binary files a/img.png and b/img.png differ\n"
        "diff --git a/latin1.txt b/latin1.txt\n"
        "new file mode 100644\n"
        "Binary files /dev/null and b/latin1.txt differ\n"
    )


def test_diff_compares_symlinks_by_target(tmp_path: Path) -> None:
    base, current = trees(tmp_path)
    for tree, target in ((base, "one.txt"), (current, "two.txt")):
        (tree / "one.txt").write_text("same\n")
        (tree / "two.txt").write_text("same\n")
        (tree / "link").symlink_to(target)

    assert workspace.diff(base, current) == (
        "diff --git a/link b/link\n"
        "--- a/link\n"
        "+++ b/link\n"
        "@@ -1 +1 @@\n"
        "-one.txt\n"
        "\\ No newline at end of file\n"
        "+two.txt\n"
        "\\ No newline at end of file\n"
    )
    assert workspace.changed_files(base, current) == ["link"]


def test_diff_reports_a_file_that_became_a_symlink_as_delete_and_add(tmp_path: Path) -> None:
    base, current = trees(tmp_path)
    (base / "x").write_text("data\n")
    (current / "x").symlink_to("elsewhere")

    assert workspace.diff(base, current) == (
        "diff --git a/x b/x\n"
        "deleted file mode 100644\n"
        "--- a/x\n"
        "+++ /dev/null\n"
        "@@ -1 +0,0 @@\n"
        "-data\n"
        "diff --git a/x b/x\n"
        "new file mode 120000\n"
        "--- /dev/null\n"
        "+++ b/x\n"
        "@@ -0,0 +1 @@\n"
        "+elsewhere\n"
        "\\ No newline at end of file\n"
    )


def test_diff_reports_mode_only_changes_like_git(tmp_path: Path) -> None:
    base, current = trees(tmp_path)
    for tree in (base, current):
        (tree / "run.sh").write_text("echo hi\n")
        (tree / "notes.txt").write_text("n\n")
    (current / "run.sh").chmod(0o755)
    (current / "notes.txt").chmod(0o600)  # git tracks only the executable bit

    assert workspace.diff(base, current) == (
        "diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n"
    )
    assert workspace.changed_files(base, current) == ["run.sh"]


def test_diff_of_an_added_empty_file_has_no_hunk(tmp_path: Path) -> None:
    base, current = trees(tmp_path)
    (current / "empty").write_bytes(b"")

    assert workspace.diff(base, current) == "diff --git a/empty b/empty\nnew file mode 100644\n"


def test_diff_ignores_git_and_empty_directories(tmp_path: Path) -> None:
    base, current = trees(tmp_path)
    for tree in (base, current):
        (tree / ".git").mkdir()
        (tree / "same.txt").write_text("same\n")
    (base / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (current / ".git" / "HEAD").write_text("ref: refs/heads/feature\n")
    (current / ".git" / "index").write_bytes(b"\x00DIRC")
    (current / "vendor" / ".git").mkdir(parents=True)
    (current / "vendor" / ".git" / "config").write_text("[core]\n")
    (current / "empty-dir").mkdir()

    assert workspace.diff(base, current) == ""
    assert workspace.changed_files(base, current) == []


def test_changed_files_is_sorted(tmp_path: Path) -> None:
    base, current = trees(tmp_path)
    for name in ["b.txt", "a/z.txt", "a.txt", "c/d/e.txt"]:
        path = current / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)

    assert workspace.changed_files(base, current) == ["a.txt", "a/z.txt", "b.txt", "c/d/e.txt"]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git to check the patch applies")
def test_git_apply_replays_the_diff(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    ws = workspace.prepare(run_dir, make_repo(tmp_path / "repo"))
    (ws / "README.md").write_text("hello\nworld\n")
    (ws / "src" / "main.py").unlink()
    (ws / "src" / "new file.py").write_text("x = 1")
    (ws / "run.sh").chmod(0o644)
    (ws / "dangling").unlink()
    (ws / "dangling").symlink_to("README.md")
    patch = workspace.diff(run_dir / "base", ws)

    replay = tmp_path / "replay"
    shutil.copytree(run_dir / "base", replay, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    (tmp_path / "change.patch").write_text(patch)
    subprocess.run(  # outside any repository, git apply patches the working directory
        ["git", "apply", str(tmp_path / "change.patch")],
        cwd=replay,
        check=True,
        capture_output=True,
        env={**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path)},
    )
    assert workspace.diff(replay, ws) == ""
    assert workspace.changed_files(run_dir / "base", ws) == [
        "README.md",
        "dangling",
        "run.sh",
        "src/main.py",
        "src/new file.py",
    ]
