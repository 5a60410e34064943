"""A workspace directory round-trips through a real sandbox; the way back is untrusted."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox import Limits, OperationFailed, SandboxPool, SyncReport, WorkspaceSyncError
from sandbox._untar import extract
from sandbox.workspace import sync_back

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
    assert result.stdout.strip() == f"{sb.uid} 755"  # inside, files belong to the sandbox user

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
    limits = Limits(workspace_mb=8, fsize_mb=4096, memory_mb=320)
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
    ).skipped
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
    ).skipped
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
    ).skipped
    assert sorted(p.name for p in dest.iterdir()) == ["suid"]
    assert stat.S_IMODE((dest / "suid").stat().st_mode) == 0o755
    assert len(skipped) == 2


def test_a_corrupt_archive_leaves_the_workspace_untouched(tmp_path: Path) -> None:
    dest = tmp_path / "ws"
    dest.mkdir()
    (dest / "keep.txt").write_text("keep")
    good = _tar(_file("a.txt", b"a" * 5000)).getvalue()
    with pytest.raises(WorkspaceSyncError):
        sync_back(io.BytesIO(good[:1000]), dest, {})
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
        with pool.acquire(limits=Limits(workspace_mb=8, memory_mb=320), workspace=repo):
            pass
    assert [p.name for p in repo.iterdir()] == ["big.bin"]
    assert (repo / "big.bin").stat().st_size == 12 * 1024 * 1024


@pytest.mark.docker
@pytest.mark.usefixtures("deep_tree")  # removes the deep tree afterwards, iteratively
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


# -- copy-back: parallel sandboxes, links, FIFOs, bombs --------------------------------


def _state(root: Path) -> dict[str, tuple[int, int, bytes | str]]:
    """Every entry under root: inode, mode, and content or link target."""
    seen: dict[str, tuple[int, int, bytes | str]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if path.is_symlink():
            what: bytes | str = os.readlink(path)
        elif path.is_file():
            what = path.read_bytes()
        else:
            what = ""
        seen[path.relative_to(root).as_posix()] = (st.st_ino, stat.S_IMODE(st.st_mode), what)
    return seen


@pytest.mark.docker
def test_two_parallel_sandboxes_on_one_workspace_keep_both_changes(
    pool: SandboxPool, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    for name in ("x.txt", "y.txt", "z.txt", "sub/w.txt"):
        (repo / name).write_text(f"{name}\n")
    before = _state(repo)
    both_in = threading.Barrier(2, timeout=30)
    reports: dict[str, SyncReport | None] = {}
    failures: list[BaseException] = []

    def step(name: str, script: str) -> None:
        try:
            with pool.acquire(workspace=repo) as sb:
                both_in.wait()  # each copied in before either copies back
                assert sb.exec(script).exit_code == 0
                if name == "second":
                    time.sleep(0.5)  # finish last: the old copy-back wiped the first's work
            reports[name] = sb.synced
        except BaseException as exc:
            failures.append(exc)

    steps = [
        threading.Thread(target=step, args=("first", "echo A > a.txt && rm x.txt")),
        threading.Thread(target=step, args=("second", "echo B > b.txt && echo Y2 > y.txt")),
    ]
    for thread in steps:
        thread.start()
    for thread in steps:
        thread.join(60)

    assert failures == []
    after = _state(repo)
    assert after.pop("a.txt")[2] == b"A\n"
    assert after.pop("b.txt")[2] == b"B\n"
    assert after.pop("y.txt")[2] == b"Y2\n"
    expected = {k: v for k, v in before.items() if k not in {"x.txt", "y.txt"}}
    assert after == expected  # nothing else changed, not even an inode
    assert reports["first"] == SyncReport(["a.txt"], ["x.txt"], [])
    assert reports["second"] == SyncReport(["b.txt", "y.txt"], [], [])
    assert [p.name for p in tmp_path.iterdir() if ".sync-" in p.name] == []


@pytest.mark.docker
def test_hard_links_and_fifos_survive_a_round_trip(pool: SandboxPool, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a").write_text("shared\n")
    os.link(repo / "a", repo / "b")
    os.mkfifo(repo / "pipe")
    with pool.acquire(workspace=repo) as sb:
        inside = sb.exec("stat -c '%h %i' a b && echo more > other.txt")
    assert inside.exit_code == 0, inside.stderr
    (links_a, inode_a), (links_b, inode_b) = (line.split() for line in inside.stdout.splitlines())
    assert (links_a, links_b) == ("2", "2") and inode_a == inode_b  # a link inside too
    assert (repo / "a").stat().st_ino == (repo / "b").stat().st_ino
    assert stat.S_ISFIFO((repo / "pipe").lstat().st_mode)
    assert (repo / "other.txt").read_text() == "more\n"


@pytest.mark.docker
def test_a_symlink_chain_made_in_the_sandbox_points_nowhere_outside(
    pool: SandboxPool, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (tmp_path / "SECRET").write_text("host secret\n")
    climb = "b/b/b/b/b/b/b/../../../../../../../etc/passwd"
    chain = f"ln -s {climb} a && ln -s b/../SECRET a2 && ln -s . b"
    with pool.acquire(workspace=repo) as sb:
        made = sb.exec(chain)
    assert made.exit_code == 0, made.stderr
    assert os.readlink(repo / "b") == "."
    assert not (repo / "a").is_symlink() and not (repo / "a2").is_symlink()
    real = os.path.realpath(repo)
    for path in repo.iterdir():
        assert os.path.realpath(path).startswith(real), path
    assert sb.synced is not None
    assert sorted(s.split(":")[0] for s in sb.synced.skipped) == ["a", "a2"]


@pytest.mark.docker
def test_a_deep_tree_deleted_in_the_sandbox_is_deleted_on_the_host(
    pool: SandboxPool, tmp_path: Path, deep_tree: Callable[[Path], Path]
) -> None:
    repo = tmp_path / "repo"
    (deep_tree(repo) / "leaf").write_text("deep\n")
    (repo / "keep.txt").write_text("keep\n")
    with pool.acquire(workspace=repo) as sb:
        assert sb.exec("rm -rf d").exit_code == 0
    assert [p.name for p in repo.iterdir()] == ["keep.txt"]
    assert sb.synced is not None and len(sb.synced.deleted) == 1201
    assert [p.name for p in tmp_path.iterdir() if ".sync-" in p.name] == []


@pytest.mark.docker
def test_hard_links_to_a_sparse_file_are_refused_before_reading(
    pool: SandboxPool, tmp_path: Path
) -> None:
    """16 names of one 400 MB sparse file: 6.4 GB on the wire if each were sent."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "keep.txt").write_text("original\n")
    before = _state(repo)
    script = "truncate -s 400M big && for i in $(seq 16); do ln big link$i; done && rm keep.txt"
    started = 0.0
    with pytest.raises(WorkspaceSyncError, match="over the limit"):
        with pool.acquire(limits=Limits(workspace_mb=64), workspace=repo) as sb:
            made = sb.exec(script)
            assert made.exit_code == 0, made.stderr
            started = time.monotonic()
    assert time.monotonic() - started < 5
    assert _state(repo) == before


@pytest.mark.docker
def test_too_many_entries_are_refused_by_the_supervisor(
    pool: SandboxPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sandbox.sandbox.MAX_ENTRIES", 50)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "keep.txt").write_text("original\n")
    with pytest.raises(WorkspaceSyncError, match="more than 50 entries"):
        with pool.acquire(workspace=repo) as sb:
            assert sb.exec("touch $(seq 60) && rm keep.txt").exit_code == 0
    assert [p.name for p in repo.iterdir()] == ["keep.txt"]


@pytest.mark.docker
def test_fifos_devices_and_big_files_are_refused_at_once(pool: SandboxPool) -> None:
    with pool.acquire() as sb:
        assert sb.exec("mkfifo pipe && truncate -s 10M big").exit_code == 0
        started = time.monotonic()
        with pytest.raises(OperationFailed, match="not a regular file"):
            sb.get_file("pipe")
        with pytest.raises(OperationFailed, match="not a regular file"):
            sb.put_file("pipe", b"into a fifo nobody reads")
        with pytest.raises(OperationFailed, match="not a regular file"):
            sb.get_file("/dev/zero")
        with pytest.raises(OperationFailed, match="over the limit"):
            sb.get_file("big", limit=1024 * 1024)
        elapsed = time.monotonic() - started
        still = sb.exec("echo alive && ls")
        back = sb.get_file("big", limit=10 * 1024 * 1024)
    assert elapsed < 3
    assert still.stdout == "alive\nbig\npipe\n"
    assert back == bytes(10 * 1024 * 1024)
