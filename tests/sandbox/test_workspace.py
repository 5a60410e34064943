"""A workspace directory round-trips through a real sandbox; the way back is untrusted."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from sandbox import Limits, OperationFailed, SandboxPool, WorkspaceSyncError
from sandbox.workspace import extract, replace_from_tar

BINARY = bytes(range(256)) * 1000


def _make_repo(root: Path) -> None:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    (root / "data.bin").write_bytes(BINARY)
    (root / "run.sh").write_text("#!/bin/sh\necho ran\n")
    (root / "run.sh").chmod(0o755)
    (root / "readonly.txt").write_text("do not touch\n")
    (root / "readonly.txt").chmod(0o444)
    (root / "doomed.txt").write_text("delete me\n")
    (root / "link").symlink_to("pkg/__init__.py")


@pytest.mark.docker
def test_workspace_round_trips_changes_binaries_modes_and_ownership(
    pool: SandboxPool, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    _make_repo(repo)
    script = " && ".join(
        [
            "./run.sh > ran.txt",
            "cat link >> ran.txt",
            "echo 'VALUE = 2' > pkg/__init__.py",
            "rm doomed.txt",
            "mkdir -p new/deeper && printf 'fresh' > new/deeper/file.txt",
            "chmod 700 new/deeper/file.txt",
            "python3 -c \"open('out.bin','wb').write(open('data.bin','rb').read()[::-1])\"",
            "ln -s new/deeper/file.txt inner-link",
            "ln -s /etc/passwd escape-link",
            "stat -c '%u %a' /workspace/run.sh",
        ]
    )
    with pool.acquire(workspace=repo) as sb:
        result = sb.exec(script)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "1000 755"  # inside, files belong to the sandbox user

    assert (repo / "ran.txt").read_text() == "ran\nVALUE = 1\n"
    assert (repo / "pkg" / "__init__.py").read_text() == "VALUE = 2\n"
    assert not (repo / "doomed.txt").exists()
    assert (repo / "new" / "deeper" / "file.txt").read_text() == "fresh"
    assert (repo / "out.bin").read_bytes() == BINARY[::-1]
    assert (repo / "data.bin").read_bytes() == BINARY
    assert stat.S_IMODE((repo / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((repo / "readonly.txt").stat().st_mode) == 0o444
    assert stat.S_IMODE((repo / "new" / "deeper" / "file.txt").stat().st_mode) == 0o700
    assert os.readlink(repo / "inner-link") == "new/deeper/file.txt"
    assert os.readlink(repo / "link") == "pkg/__init__.py"
    assert not (repo / "escape-link").exists() and not (repo / "escape-link").is_symlink()
    for path in repo.rglob("*"):
        assert path.lstat().st_uid == os.getuid(), path
        assert path.lstat().st_gid == os.getgid(), path


@pytest.mark.docker
def test_workspace_is_copied_back_when_the_block_raises(pool: SandboxPool, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    with pytest.raises(RuntimeError, match="step failed"), pool.acquire(workspace=repo) as sb:
        sb.exec("echo partial > progress.txt")
        raise RuntimeError("step failed")
    assert (repo / "progress.txt").read_text() == "partial\n"


@pytest.mark.docker
def test_a_sparse_file_bomb_is_refused_and_the_workspace_kept(
    pool: SandboxPool, tmp_path: Path
) -> None:
    """A huge sparse file costs nothing in tmpfs but would stream gigabytes back."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "keep.txt").write_text("original\n")
    limits = Limits(workspace_mb=8, fsize_mb=4096, memory_mb=256)
    with pytest.raises(WorkspaceSyncError, match="over the limit"):
        with pool.acquire(limits=limits, workspace=repo) as sb:
            made = sb.exec("truncate -s 1G sparse && rm keep.txt && du -k sparse")
            assert made.exit_code == 0, made.stderr
    assert sorted(p.name for p in repo.iterdir()) == ["keep.txt"]


@pytest.mark.docker
def test_files_in_and_out_with_put_file_and_get_file(pool: SandboxPool) -> None:
    with pool.acquire() as sb:
        sb.put_file("tool.sh", b"#!/bin/sh\necho tool\n", mode=0o750)
        sb.put_file("/tmp/blob", BINARY)
        ran = sb.exec("./tool.sh && stat -c %a tool.sh && sha256sum /tmp/blob")
        back = sb.get_file("/tmp/blob")
        with pytest.raises(OperationFailed, match="No such file"):
            sb.get_file("missing.txt")
        with pytest.raises(OperationFailed, match="Read-only"):
            sb.put_file("/etc/evil", b"x")
    assert ran.stdout.splitlines()[:2] == ["tool", "750"]
    assert back == BINARY


# -- the way back, without Docker: hostile archives --------------------------------


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return buf


def _file(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def test_names_that_climb_out_are_skipped(tmp_path: Path) -> None:
    dest = tmp_path / "ws"
    dest.mkdir()
    skipped = extract(
        _tar(
            _file("../evil", b"x"),
            _file("/abs/evil", b"x"),
            _file("ok/../../evil", b"x"),
            _file("fine.txt", b"fine"),
        ),
        dest,
    )
    assert [p.name for p in dest.iterdir()] == ["fine.txt"]
    assert not (tmp_path / "evil").exists()
    assert len(skipped) == 3


def test_symlinks_out_are_skipped_and_never_written_through(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "ws"
    dest.mkdir()
    skipped = extract(
        _tar(
            _link("up", ".."),
            _link("abs", str(outside)),
            _link("deep/../../x", "y"),
            _file("up/written", b"through the link"),
            _link("chain", "sub"),
            _file("sub/real", b"real"),
            _link("sub/hop", "../../outside"),
        ),
        dest,
    )
    assert list(outside.iterdir()) == []
    assert not (dest / "up").is_symlink()
    assert (dest / "up" / "written").read_bytes() == b"through the link"  # a plain dir now
    assert not (dest / "abs").exists()
    assert os.readlink(dest / "chain") == "sub"
    assert not (dest / "sub" / "hop").is_symlink()
    assert len(skipped) == 4


def test_devices_hard_links_and_setuid_bits_do_not_survive(tmp_path: Path) -> None:
    dest = tmp_path / "ws"
    dest.mkdir()
    device = tarfile.TarInfo("dev")
    device.type = tarfile.CHRTYPE
    device.devmajor, device.devminor = 1, 3
    skipped = extract(
        _tar(
            (device, None),
            _link("hard", "/etc/passwd", tarfile.LNKTYPE),
            _file("suid", b"#!/bin/sh\n", mode=0o4755),
        ),
        dest,
    )
    assert sorted(p.name for p in dest.iterdir()) == ["suid"]
    assert stat.S_IMODE((dest / "suid").stat().st_mode) == 0o755
    assert len(skipped) == 2


def test_a_corrupt_archive_leaves_the_workspace_untouched(tmp_path: Path) -> None:
    dest = tmp_path / "ws"
    dest.mkdir()
    (dest / "keep.txt").write_text("keep")
    good = _tar(_file("a.txt", b"a" * 5000)).getvalue()
    with pytest.raises(WorkspaceSyncError):
        replace_from_tar(io.BytesIO(good[:1000]), dest)
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["ws"]  # no staging left behind


@pytest.mark.docker
def test_a_workspace_too_big_for_the_sandbox_is_refused_clearly(
    pool: SandboxPool, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "big.bin").write_bytes(os.urandom(12 * 1024 * 1024))
    with pytest.raises(WorkspaceSyncError, match="No space left"):
        with pool.acquire(limits=Limits(workspace_mb=8, memory_mb=256), workspace=repo):
            pass
    assert [p.name for p in repo.iterdir()] == ["big.bin"]
    assert (repo / "big.bin").stat().st_size == 12 * 1024 * 1024


@pytest.mark.docker
def test_unreadable_entries_hard_links_and_deep_trees_come_back(
    pool: SandboxPool, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    script = " && ".join(
        [
            "echo hidden > secret.txt && chmod 000 secret.txt",
            "mkdir locked && echo inside > locked/f && chmod 000 locked",
            "echo shared > a && ln a b",
            "deep=$(python3 -c \"print('/'.join(['d'] * 1200))\")",
            'mkdir -p "$deep" && echo deep > "$deep/leaf"',
        ]
    )
    with pool.acquire(workspace=repo) as sb:
        made = sb.exec(script)
        assert made.exit_code == 0, made.stderr
    assert stat.S_IMODE((repo / "secret.txt").stat().st_mode) == 0
    assert stat.S_IMODE((repo / "locked").stat().st_mode) == 0
    (repo / "secret.txt").chmod(0o600)
    (repo / "locked").chmod(0o700)
    assert (repo / "secret.txt").read_text() == "hidden\n"
    assert (repo / "locked" / "f").read_text() == "inside\n"
    assert (repo / "a").read_text() == (repo / "b").read_text() == "shared\n"
    assert (repo / "/".join(["d"] * 1200) / "leaf").read_text() == "deep\n"
