"""The incremental copy-back, without Docker: only what a sandbox changed reaches the host.

A "sandbox" here is a copy of the workspace made when it was packed; it is changed,
then packed itself, which gives the same kind of tar the supervisor streams back.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox import WorkspaceSyncError, _apply, _untar
from sandbox.manifest import Manifest
from sandbox.workspace import SyncReport, pack, remove_tree, sync_back


class FakeSandbox:
    """What a sandbox would hold: the workspace as packed, in a directory of its own."""

    def __init__(self, workspace: Path, root: Path) -> None:
        tar, _, self.sent = pack(workspace)
        self.dir = root
        self.dir.mkdir()
        with tar, tarfile.open(fileobj=tar, mode="r") as archive:
            # Our own pack(), as the supervisor trusts it: extraction filters came with
            # Python 3.11.4 (Debian's 3.11.2 extracts as fully_trusted does, without one).
            if hasattr(tarfile, "fully_trusted_filter"):
                archive.extractall(self.dir, filter="fully_trusted")
            else:
                archive.extractall(self.dir)

    def tar(self) -> io.BytesIO:
        stream, _, _ = pack(self.dir)
        with stream:
            return io.BytesIO(stream.read())

    def sync(self, workspace: Path) -> SyncReport:
        return sync_back(self.tar(), workspace, self.sent)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "sub").mkdir(parents=True)
    for name in ("x.txt", "y.txt", "z.txt", "sub/w.txt"):
        (root / name).write_text(f"{name} original\n")
    return root


@pytest.fixture
def sandbox_of(tmp_path: Path) -> Callable[[Path], FakeSandbox]:
    made = 0

    def make(workspace: Path) -> FakeSandbox:
        nonlocal made
        made += 1
        return FakeSandbox(workspace, tmp_path / f"sandbox-{made}")

    return make


def snapshot(root: Path) -> dict[str, tuple[str, int, bytes | str]]:
    """Every entry under root: kind, mode and content (or link target)."""
    seen: dict[str, tuple[str, int, bytes | str]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            seen[rel] = ("link", 0, os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            seen[rel] = ("dir", stat.S_IMODE(st.st_mode), b"")
        elif stat.S_ISREG(st.st_mode):
            seen[rel] = ("file", stat.S_IMODE(st.st_mode), path.read_bytes())
        else:
            seen[rel] = ("other", stat.S_IMODE(st.st_mode), b"")
    return seen


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".sync-" in p.name)


# -- 11: incremental copy-back -----------------------------------------------------


def test_two_sandboxes_on_one_workspace_keep_each_others_changes(
    ws: Path, sandbox_of: Callable[[Path], FakeSandbox]
) -> None:
    first, second = sandbox_of(ws), sandbox_of(ws)  # both copied in before either is back
    before = snapshot(ws)
    (first.dir / "a.txt").write_text("from the first\n")
    (first.dir / "x.txt").unlink()
    (second.dir / "b.txt").write_text("from the second\n")
    (second.dir / "y.txt").write_text("changed by the second\n")

    one = first.sync(ws)
    two = second.sync(ws)

    expected = dict(before)
    del expected["x.txt"]
    expected["a.txt"] = ("file", 0o644, b"from the first\n")
    expected["b.txt"] = ("file", 0o644, b"from the second\n")
    expected["y.txt"] = ("file", 0o644, b"changed by the second\n")
    assert snapshot(ws) == expected
    assert (one.changed, one.deleted, one.skipped) == (["a.txt"], ["x.txt"], [])
    assert (two.changed, two.deleted, two.skipped) == (["b.txt", "y.txt"], [], [])
    assert leftovers(ws.parent) == []


def test_unchanged_entries_are_not_touched_at_all(
    ws: Path, sandbox_of: Callable[[Path], FakeSandbox]
) -> None:
    box = sandbox_of(ws)
    inodes = {p.name: p.stat().st_ino for p in ws.iterdir()}
    report = box.sync(ws)
    assert report == SyncReport([], [], [])
    assert {p.name: p.stat().st_ino for p in ws.iterdir()} == inodes


def test_a_change_made_meanwhile_on_the_host_survives(
    ws: Path, sandbox_of: Callable[[Path], FakeSandbox]
) -> None:
    box = sandbox_of(ws)
    (ws / "z.txt").write_text("edited on the host meanwhile\n")
    (ws / "sub" / "new-on-host.txt").write_text("host\n")
    (box.dir / "x.txt").write_text("sandbox\n")
    shutil.rmtree(box.dir / "sub")  # deletes a directory that now holds more on the host

    report = box.sync(ws)

    assert (ws / "z.txt").read_text() == "edited on the host meanwhile\n"
    assert (ws / "x.txt").read_text() == "sandbox\n"
    assert not (ws / "sub" / "w.txt").exists()  # sent, and gone in the sandbox
    assert (ws / "sub" / "new-on-host.txt").read_text() == "host\n"  # never seen: kept
    assert report.deleted == ["sub/w.txt"]
    assert report.skipped == ["sub: directory kept, it holds entries this sandbox did not have"]


def test_kind_mode_and_target_changes_are_applied(
    ws: Path, sandbox_of: Callable[[Path], FakeSandbox]
) -> None:
    (ws / "link").symlink_to("x.txt")
    (ws / "becomes-dir").write_text("file for now\n")
    box = sandbox_of(ws)
    (box.dir / "x.txt").chmod(0o600)
    (box.dir / "link").unlink()
    (box.dir / "link").symlink_to("y.txt")
    shutil.rmtree(box.dir / "sub")
    (box.dir / "sub").write_text("a file now\n")
    (box.dir / "becomes-dir").unlink()
    (box.dir / "becomes-dir" / "deep").mkdir(parents=True)
    (box.dir / "becomes-dir" / "deep" / "f").write_text("inside\n")
    (box.dir / "becomes-dir" / "deep").chmod(0o500)

    report = box.sync(ws)

    assert stat.S_IMODE((ws / "x.txt").stat().st_mode) == 0o600
    assert os.readlink(ws / "link") == "y.txt"
    assert (ws / "sub").read_text() == "a file now\n"
    assert (ws / "becomes-dir" / "deep" / "f").read_text() == "inside\n"
    assert stat.S_IMODE((ws / "becomes-dir" / "deep").stat().st_mode) == 0o500
    assert report.deleted == ["sub/w.txt"]
    assert sorted(report.changed) == [
        "becomes-dir",
        "becomes-dir/deep",
        "becomes-dir/deep/f",
        "link",
        "sub",
        "x.txt",
    ]
    (box.dir / "becomes-dir" / "deep").chmod(0o700)


def test_nothing_sent_means_nothing_deleted(ws: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "only-here.txt").write_text("new\n")
    stream, _, _ = pack(other)
    with stream:
        report = sync_back(stream, ws, {})
    assert report.changed == ["only-here.txt"]
    assert report.deleted == []
    assert (ws / "x.txt").exists()


# -- 7: hard links and FIFOs -------------------------------------------------------


def test_hard_links_are_packed_as_links(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("shared\n")
    os.link(src / "a", src / "b")
    stream, _, sent = pack(src)
    with stream, tarfile.open(fileobj=stream) as tar:
        kinds = {m.name: m.type for m in tar.getmembers()}
    assert kinds == {"a": tarfile.REGTYPE, "b": tarfile.LNKTYPE}
    assert sent["a"] == sent["b"]  # the manifest knows both, with the content's digest


def test_hard_links_and_fifos_the_sandbox_left_alone_stay(
    ws: Path, sandbox_of: Callable[[Path], FakeSandbox]
) -> None:
    os.link(ws / "x.txt", ws / "x-again.txt")
    os.mkfifo(ws / "pipe")
    os.mkfifo(ws / "sub" / "pipe")
    box = sandbox_of(ws)
    assert not (box.dir / "pipe").exists()  # never carried
    shutil.rmtree(box.dir / "sub")  # the FIFO's directory, as the sandbox saw it

    report = box.sync(ws)

    assert (ws / "x.txt").stat().st_ino == (ws / "x-again.txt").stat().st_ino
    assert stat.S_ISFIFO((ws / "pipe").lstat().st_mode)
    assert stat.S_ISFIFO((ws / "sub" / "pipe").lstat().st_mode)
    assert report.deleted == ["sub/w.txt"]


# -- 1: symlink chains -------------------------------------------------------------


def _tar_of(*members: tuple[str, str | bytes]) -> io.BytesIO:
    """Members by name: a str is a symlink target, bytes a file's content."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, what in members:
            info = tarfile.TarInfo(name)
            if isinstance(what, str):
                info.type, info.linkname = tarfile.SYMTYPE, what
                tar.addfile(info)
            else:
                info.size = len(what)
                tar.addfile(info, io.BytesIO(what))
    buf.seek(0)
    return buf


def test_a_later_link_cannot_redirect_an_earlier_one(tmp_path: Path) -> None:
    dest = tmp_path / "staging"
    dest.mkdir()
    (tmp_path / "SECRET").write_text("host secret\n")
    climb = "b/b/b/b/b/b/b/../../../../../../../etc/passwd"
    got = _untar.extract(
        _tar_of(
            ("a", climb), ("a2", "b/../SECRET"), ("b", "."), ("ok", "b/b/file"), ("file", b"x")
        ),
        dest,
    )
    assert sorted(p.name for p in dest.iterdir()) == ["b", "file", "ok"]
    assert (dest / "ok").read_bytes() == b"x"
    assert sorted(s.split(":")[0] for s in got.skipped) == ["a", "a2"]
    assert all("resolves outside" in s for s in got.skipped)
    for path in dest.iterdir():
        assert os.path.realpath(path).startswith(str(dest.resolve()))


def test_dangling_and_looping_links_are_removed_until_none_is_left(tmp_path: Path) -> None:
    dest = tmp_path / "staging"
    dest.mkdir()
    got = _untar.extract(
        _tar_of(("loop1", "loop2"), ("loop2", "loop1"), ("to-gone", "gone"), ("to-to", "to-gone")),
        dest,
    )
    assert list(dest.iterdir()) == []
    assert len(got.skipped) == 4
    assert got.kept == {"loop1", "loop2", "to-gone", "to-to"}


def test_a_link_chain_across_two_sandboxes_is_removed_on_the_host(
    tmp_path: Path, sandbox_of: Callable[[Path], FakeSandbox]
) -> None:
    ws = tmp_path / "ws"
    (ws / "b" / "b" / "b").mkdir(parents=True)
    (ws / "x").write_text("inside\n")
    first, second = sandbox_of(ws), sandbox_of(ws)
    (first.dir / "a").symlink_to("b/b/b/../../../x")  # inside, with b a real directory
    shutil.rmtree(second.dir / "b")
    (second.dir / "b").symlink_to(".")  # harmless on its own

    assert first.sync(ws).changed == ["a"]
    report = second.sync(ws)

    assert os.readlink(ws / "b") == "."
    assert not (ws / "a").is_symlink()  # it would now climb three levels out
    assert report.skipped == ["a: symlink removed, it now resolves outside"]


def test_the_hosts_own_outward_links_are_kept_quietly(
    ws: Path, sandbox_of: Callable[[Path], FakeSandbox]
) -> None:
    (ws / "python").symlink_to("/usr/bin/python3")  # a virtualenv's, say
    box = sandbox_of(ws)
    (box.dir / "escape").symlink_to("/etc/passwd")
    report = box.sync(ws)
    assert os.readlink(ws / "python") == "/usr/bin/python3"
    assert not (ws / "escape").is_symlink()
    assert report.skipped == ["escape: symlink to '/etc/passwd' points outside the workspace"]


# -- 2: failures are WorkspaceSyncErrors, nothing is lost, nothing is left --------


def test_a_failure_while_applying_loses_nothing_and_leaves_no_staging(
    ws: Path, sandbox_of: Callable[[Path], FakeSandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    box = sandbox_of(ws)
    for name in ("x.txt", "y.txt", "z.txt"):
        (box.dir / name).write_text(f"{name} new\n")
    real = _apply._Applier.put_other
    calls = 0

    def failing(self: _apply._Applier, rel: str, path: Path) -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError(5, "Input/output error")
        return real(self, rel, path)

    monkeypatch.setattr(_apply._Applier, "put_other", failing)
    with pytest.raises(WorkspaceSyncError, match="Input/output error"):
        box.sync(ws)
    texts = [(ws / name).read_text() for name in ("x.txt", "y.txt", "z.txt")]
    assert texts == ["x.txt new\n", "y.txt original\n", "z.txt original\n"]
    assert leftovers(ws.parent) == []


def test_a_recursion_error_is_a_workspace_sync_error_too(
    ws: Path, sandbox_of: Callable[[Path], FakeSandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    box = sandbox_of(ws)

    def deep(*_: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(_untar, "_drop_bad_links", deep)
    with pytest.raises(WorkspaceSyncError, match="recursion"):
        box.sync(ws)
    assert leftovers(ws.parent) == []


def test_a_deep_tree_is_deleted_and_removed_without_recursion(
    tmp_path: Path,
    sandbox_of: Callable[[Path], FakeSandbox],
    deep_tree: Callable[[Path], Path],
) -> None:
    ws = tmp_path / "ws"
    (deep_tree(ws) / "leaf").write_text("deep\n")
    box = sandbox_of(ws)
    remove_tree(box.dir / "d")  # the sandbox's rm -rf, iteratively
    report = box.sync(ws)
    assert list(ws.iterdir()) == []
    assert len(report.deleted) == 1201
    assert leftovers(tmp_path) == []


def _unprivileged(work: Callable[[], object]) -> object:
    """Run ``work`` as uid/gid 65534 in a forked child (here as root); return its result.

    As root, permissions never stop a copy-back; the bugs they cause need a user.
    """
    if os.geteuid() != 0:
        return work()
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            outcome = repr(work())
        except BaseException as exc:
            outcome = f"raised {type(exc).__name__}: {exc}"
        finally:
            os.write(write, outcome.encode())
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        said = pipe.read().decode()
    os.waitpid(pid, 0)
    return said


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory outside pytest's root-only tmp, owned by the unprivileged user."""
    path = Path(tempfile.mkdtemp(prefix="fm-sync-"))
    if os.geteuid() == 0:
        os.chown(path, 65534, 65534)
    yield path
    for sub in path.rglob("*"):
        if sub.is_dir() and not sub.is_symlink():
            sub.chmod(0o700)
    shutil.rmtree(path)


def test_read_only_directories_on_a_non_root_host(shared_dir: Path) -> None:
    def work() -> object:
        ws = shared_dir / "ws"
        (ws / "ro").mkdir(parents=True)
        for name in ("f", "g"):
            (ws / "ro" / name).write_text("original\n")
        (ws / "ro").chmod(0o555)
        box = FakeSandbox(ws, shared_dir / "box")
        (box.dir / "ro").chmod(0o755)
        (box.dir / "ro" / "f").unlink()
        (box.dir / "ro" / "g").write_text("changed\n")
        (box.dir / "ro").chmod(0o555)
        report = box.sync(ws)
        mode = stat.S_IMODE((ws / "ro").stat().st_mode)
        names = sorted(p.name for p in (ws / "ro").iterdir())
        left = leftovers(shared_dir)
        return (
            report.deleted,
            report.changed,
            oct(mode),
            names,
            (ws / "ro" / "g").read_text(),
            left,
        )

    said = _unprivileged(work)
    expected = (["ro/f"], ["ro/g"], "0o555", ["g"], "changed\n", [])
    assert said in (expected, repr(expected))


def test_removing_a_tree_opens_up_closed_directories(shared_dir: Path) -> None:
    def work() -> object:
        root = shared_dir / "tree"
        (root / "closed" / "inner").mkdir(parents=True)
        (root / "closed" / "inner" / "f").write_text("x")
        (root / "closed" / "inner").chmod(0)
        (root / "closed").chmod(0o500)
        remove_tree(root)
        return root.exists()

    assert _unprivileged(work) in (False, "False")


# -- 10: many entries ----------------------------------------------------------------


def test_more_entries_than_the_maximum_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_untar, "MAX_ENTRIES", 100)
    dest = tmp_path / "ws"
    dest.mkdir()
    with pytest.raises(WorkspaceSyncError, match="more than 100 entries"):
        sync_back(_tar_of(*[(f"f{i}", b"") for i in range(101)]), dest, {})
    assert list(dest.iterdir()) == []
    assert leftovers(tmp_path) == []


def test_extracting_many_entries_does_not_keep_them_all(tmp_path: Path) -> None:
    """tarfile keeps a TarInfo (≈ 700 bytes) per member unless told not to."""
    import tracemalloc

    count = 5_000
    archive = tmp_path / "many.tar"
    with tarfile.open(archive, mode="w") as tar:
        for i in range(count):
            info = tarfile.TarInfo(f"d{i % 20}/f{i}")
            tar.addfile(info, io.BytesIO(b""))
    dest = tmp_path / "ws"
    dest.mkdir()
    with archive.open("rb") as stream:
        tracemalloc.start()
        try:
            got = _untar.extract(stream, dest)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert len(got.got) == count + 20
    # ≈ 390 bytes an entry for the manifest; ≈ 830 when every TarInfo is kept as well
    assert peak < 600 * count


def test_manifest_type_is_a_plain_mapping(ws: Path) -> None:
    stream, size, sent = pack(ws)
    stream.close()
    assert isinstance(sent, dict)
    assert size > 0
    typed: Manifest = sent
    assert set(typed) == {"sub", "sub/w.txt", "x.txt", "y.txt", "z.txt"}


def test_concurrent_copy_backs_are_serialised_by_the_lock(
    ws: Path, sandbox_of: Callable[[Path], FakeSandbox]
) -> None:
    boxes = [sandbox_of(ws) for _ in range(6)]
    for i, box in enumerate(boxes):
        (box.dir / f"new-{i}.txt").write_text(f"{i}\n")
        (box.dir / "sub" / f"w{i}.txt").write_text(f"{i}\n")
    errors: list[BaseException] = []

    def run(box: FakeSandbox) -> None:
        try:
            box.sync(ws)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(box,)) for box in boxes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(p.name for p in ws.iterdir() if p.name.startswith("new-")) == [
        f"new-{i}.txt" for i in range(6)
    ]
    assert len(list((ws / "sub").iterdir())) == 7
    assert leftovers(ws.parent) == []
