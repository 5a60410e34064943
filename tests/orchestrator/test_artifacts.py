"""ArtifactStore: per-run files, atomic, private, optionally encrypted."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from orchestrator.artifacts import MAGIC, ArtifactStore
from orchestrator.errors import ArtifactError

SECRET = b"the launch code is 0000"


def key() -> str:
    return Fernet.generate_key().decode()


def test_round_trip_plain(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    path = store.write("r1", "plan.json", b'{"steps": []}')
    store.write("r1", "plan.md", "# Plan \u2713\n")

    assert path == tmp_path / "r1" / "plan.json"
    assert path.read_bytes() == b'{"steps": []}'
    assert store.read("r1", "plan.json") == b'{"steps": []}'
    assert store.read_text("r1", "plan.md") == "# Plan \u2713\n"
    assert not store.encrypted


def test_round_trip_encrypted_keeps_plaintext_off_disk(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, key())
    path = store.write("r1", "logs/test.1.log", SECRET)

    on_disk = path.read_bytes()
    assert on_disk.startswith(MAGIC)
    assert SECRET not in on_disk
    assert b"launch" not in on_disk
    assert store.read("r1", "logs/test.1.log") == SECRET
    assert store.encrypted


def test_encrypted_text_round_trip(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, key())
    store.write("r1", "plan.md", "caf\u00e9")
    assert store.read_text("r1", "plan.md") == "caf\u00e9"


def test_plain_artifact_reads_after_encryption_is_turned_on(tmp_path: Path) -> None:
    ArtifactStore(tmp_path).write("r1", "plan.json", b"{}")
    assert ArtifactStore(tmp_path, key()).read("r1", "plan.json") == b"{}"


def test_encrypted_artifact_without_key_says_to_set_it(tmp_path: Path) -> None:
    ArtifactStore(tmp_path, key()).write("r1", "plan.json", SECRET)
    with pytest.raises(ArtifactError, match="set FIRSTMATE_ENCRYPTION_KEY") as info:
        ArtifactStore(tmp_path).read("r1", "plan.json")
    assert "'plan.json'" in str(info.value)
    assert "'r1'" in str(info.value)


def test_encrypted_artifact_with_wrong_key_says_it_does_not_match(tmp_path: Path) -> None:
    ArtifactStore(tmp_path, key()).write("r1", "plan.json", SECRET)
    with pytest.raises(ArtifactError, match="does not match"):
        ArtifactStore(tmp_path, key()).read("r1", "plan.json")


@pytest.mark.parametrize("bad", ["", "not-a-key", "a" * 44, Fernet.generate_key().decode()[:-2]])
def test_invalid_key_is_refused_at_construction_without_echoing_it(
    tmp_path: Path, bad: str
) -> None:
    with pytest.raises(ArtifactError, match=r"Fernet\.generate_key") as info:
        ArtifactStore(tmp_path, bad)
    message = str(info.value)
    assert "FIRSTMATE_ENCRYPTION_KEY" in message
    assert "32" in message
    if bad:
        assert bad not in message


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/etc/passwd",
        "../escape",
        "logs/../../escape",
        "logs//x.log",
        "logs/",
        "./plan.json",
        "plan\x00.json",
        ".hidden",
        "workspace/evil.sh",
        "base/evil.sh",
    ],
)
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    store = ArtifactStore(tmp_path / "runs")
    with pytest.raises(ArtifactError, match="is not allowed"):
        store.write("r1", name, b"x")
    with pytest.raises(ArtifactError, match="is not allowed"):
        store.read("r1", name)
    with pytest.raises(ArtifactError, match="is not allowed"):
        store.exists("r1", name)
    assert not (tmp_path / "escape").exists()
    assert not (tmp_path / "runs" / "r1" / "workspace").exists()


@pytest.mark.parametrize("run_id", ["", "..", "a/b", "a b", "r\u00e9", "r1\n", "/abs"])
def test_bad_run_ids_are_refused(tmp_path: Path, run_id: str) -> None:
    store = ArtifactStore(tmp_path / "runs")
    with pytest.raises(ArtifactError, match="run id"):
        store.write(run_id, "plan.json", b"x")
    with pytest.raises(ArtifactError, match="run id"):
        store.run_dir(run_id)
    assert not (tmp_path / "runs").exists()


def test_write_through_a_symlinked_directory_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    store = ArtifactStore(tmp_path / "runs")
    store.write("r1", "plan.json", b"{}")
    (tmp_path / "runs" / "r1" / "logs").symlink_to(outside)

    with pytest.raises(ArtifactError, match="symbolic link"):
        store.write("r1", "logs/x.log", b"x")
    with pytest.raises(ArtifactError, match="symbolic link"):
        store.read("r1", "logs/x.log")
    assert list(outside.iterdir()) == []


def test_read_of_a_symlinked_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"private")
    store = ArtifactStore(tmp_path / "runs")
    store.write("r1", "plan.json", b"{}")
    (tmp_path / "runs" / "r1" / "leak.txt").symlink_to(secret)

    with pytest.raises(ArtifactError, match="symbolic link"):
        store.read("r1", "leak.txt")
    assert not store.exists("r1", "leak.txt")
    assert store.list("r1") == ["plan.json"]


def test_overwrite_is_atomic_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    store.write("r1", "logs/a.log", b"first")
    store.write("r1", "logs/a.log", b"second")

    assert store.read("r1", "logs/a.log") == b"second"
    assert sorted(os.listdir(tmp_path / "r1" / "logs")) == ["a.log"]


def test_failed_write_keeps_the_old_content_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ArtifactStore(tmp_path)
    store.write("r1", "plan.json", b"old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(ArtifactError, match="No space left on device") as info:
        store.write("r1", "plan.json", b"new")
    monkeypatch.undo()

    assert "'plan.json'" in str(info.value)
    assert store.read("r1", "plan.json") == b"old"
    assert sorted(os.listdir(tmp_path / "r1")) == ["plan.json"]


def test_files_are_0600_and_directories_0700(tmp_path: Path) -> None:
    old_umask = os.umask(0)  # the modes must not depend on a permissive umask
    try:
        store = ArtifactStore(tmp_path / "runs")
        path = store.write("r1", "logs/deep/test.1.log", b"x")
    finally:
        os.umask(old_umask)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for directory in (
        tmp_path / "runs",
        tmp_path / "runs" / "r1",
        tmp_path / "runs" / "r1" / "logs",
        tmp_path / "runs" / "r1" / "logs" / "deep",
    ):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory


def test_list_is_sorted_and_skips_workspace_and_temporary_files(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    for name in ["plan.md", "logs/test.2.log", "diff.patch", "logs/test.10.log", "plan.json"]:
        store.write("r1", name, b"x")
    run_dir = store.run_dir("r1")
    (run_dir / "workspace").mkdir()
    (run_dir / "workspace" / "main.py").write_text("print()\n")
    (run_dir / "base").mkdir()
    (run_dir / ".plan.json.abc123.tmp").write_bytes(b"partial")

    assert store.list("r1") == [
        "diff.patch",
        "logs/test.10.log",
        "logs/test.2.log",
        "plan.json",
        "plan.md",
    ]
    assert store.list("never-ran") == []


def test_exists(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    store.write("r1", "logs/a.log", b"x")

    assert store.exists("r1", "logs/a.log")
    assert not store.exists("r1", "logs/b.log")
    assert not store.exists("r1", "logs")
    assert not store.exists("r1", "other/a.log")
    assert not store.exists("r2", "logs/a.log")


def test_missing_artifact_is_an_artifact_error_naming_it(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    store.write("r1", "plan.json", b"{}")
    with pytest.raises(ArtifactError, match=r"run 'r1' has no artifact 'diff\.patch'"):
        store.read("r1", "diff.patch")
    with pytest.raises(ArtifactError, match="has no artifact"):
        store.read("r2", "plan.json")
    with pytest.raises(ArtifactError, match="has no artifact"):
        store.read("r1", "plan.json/inner")


def test_read_text_of_binary_is_an_artifact_error(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    store.write("r1", "blob.bin", b"\xff\xfe\x00")
    with pytest.raises(ArtifactError, match="not UTF-8"):
        store.read_text("r1", "blob.bin")
