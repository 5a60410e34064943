"""Artifacts: the files a run leaves behind (plan, logs, diff), one directory per run.

    <root>/<run_id>/plan.json, plan.md, diff.patch, logs/test.2.log, …
    <root>/<run_id>/workspace/, base/    the run's workspace (orchestrator.workspace),
                                         beside the artifacts but not among them

Writes are atomic (a temporary file beside the target, then ``os.replace``); files are
0600 and directories 0700. With a key (``FIRSTMATE_ENCRYPTION_KEY``) an artifact is
stored as ``MAGIC`` followed by a Fernet token; plain artifacts written before
encryption was turned on still read. Names are relative POSIX paths whose parts do not
start with a dot (dot names are this store's temporary files and the workspace's staging
directories); no symlink under the run directory is ever followed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from orchestrator.errors import ArtifactError
from orchestrator.workspace import BASE_DIR, WORKSPACE_DIR

MAGIC = b"\x00FMENC1\n"
"""First bytes of an encrypted artifact (starts with NUL, so no text artifact looks alike)."""

_RUN_ID = re.compile(r"[A-Za-z0-9_-]+")
_RESERVED = frozenset({WORKSPACE_DIR, BASE_DIR})
_NAME_HELP = "use a relative path such as 'plan.json' or 'logs/test.2.log'"
_KEY_HELP = (
    "a Fernet key is 32 random bytes in URL-safe base64 (44 characters ending in '='); "
    'make one with: python -c "from cryptography.fernet import Fernet; '
    'print(Fernet.generate_key().decode())"'
)


class ArtifactStore:
    """Per-run files under ``root`` (the engine's ``<data_dir>/runs``), encrypted with ``key``.

    ``key`` is a Fernet key or None for plain files; an invalid key is an
    ``ArtifactError`` here, at construction, not at the first write.
    """

    def __init__(self, root: Path, key: str | None = None) -> None:
        self.root = root
        self._fernet = _fernet(key)

    @property
    def encrypted(self) -> bool:
        """Whether new artifacts are written encrypted."""
        return self._fernet is not None

    def run_dir(self, run_id: str) -> Path:
        """The directory of ``run_id`` (not created here)."""
        if not _RUN_ID.fullmatch(run_id):
            raise ArtifactError(
                f"run id {run_id!r} is not allowed: use letters, digits, '_' and '-' only"
            )
        return self.root / run_id

    def write(self, run_id: str, name: str, data: bytes | str) -> Path:
        """Store ``data`` (``str`` as UTF-8) as ``name`` of ``run_id``, atomically; its path."""
        parts = _parts(name)
        payload = data.encode() if isinstance(data, str) else data
        if self._fernet is not None:
            payload = MAGIC + self._fernet.encrypt(payload)
        path = self.run_dir(run_id).joinpath(*parts)
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._walk_dirs(run_id, parts, create=True)
            _atomic_write(path, payload)
        except OSError as exc:
            raise ArtifactError(
                f"cannot write artifact {name!r} of run {run_id!r} to {str(path)!r}: "
                f"{exc.strerror}; check the data directory's permissions and free space"
            ) from exc
        return path

    def read(self, run_id: str, name: str) -> bytes:
        """The content of ``name`` of ``run_id``, decrypted if it was stored encrypted."""
        raw = self._read_raw(run_id, name)
        if not raw.startswith(MAGIC):
            return raw
        if self._fernet is None:
            raise ArtifactError(
                f"artifact {name!r} of run {run_id!r} is encrypted: set "
                "FIRSTMATE_ENCRYPTION_KEY to the key it was written with"
            )
        try:
            return self._fernet.decrypt(raw[len(MAGIC) :])
        except InvalidToken as exc:
            raise ArtifactError(
                f"artifact {name!r} of run {run_id!r} cannot be decrypted: "
                "FIRSTMATE_ENCRYPTION_KEY does not match the key it was written with "
                "(or the file is damaged)"
            ) from exc

    def read_text(self, run_id: str, name: str) -> str:
        """The content of ``name`` of ``run_id`` as UTF-8 text."""
        data = self.read(run_id, name)
        try:
            return data.decode()
        except UnicodeDecodeError as exc:
            raise ArtifactError(
                f"artifact {name!r} of run {run_id!r} is not UTF-8 text: read it as bytes"
            ) from exc

    def exists(self, run_id: str, name: str) -> bool:
        """Whether ``run_id`` has an artifact ``name`` (a regular file, not a link)."""
        parts = _parts(name)
        if not self._walk_dirs(run_id, parts, create=False):
            return False
        try:
            mode = os.lstat(self.run_dir(run_id).joinpath(*parts)).st_mode
        except FileNotFoundError:
            return False
        return stat.S_ISREG(mode)

    def list(self, run_id: str) -> list[str]:
        """The artifact names of ``run_id``, sorted; empty when the run has none."""
        top = self.run_dir(run_id)
        if top.is_symlink() or not top.is_dir():
            return []
        names: list[str] = []
        try:
            _collect(top, "", names)
        except OSError as exc:
            raise ArtifactError(
                f"cannot list the artifacts of run {run_id!r} in {str(top)!r}: {exc.strerror}"
            ) from exc
        return sorted(names)

    def _read_raw(self, run_id: str, name: str) -> bytes:
        parts = _parts(name)
        path = self.run_dir(run_id).joinpath(*parts)
        missing = ArtifactError(f"run {run_id!r} has no artifact {name!r} (no {str(path)!r})")
        if not self._walk_dirs(run_id, parts, create=False):
            raise missing
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as file:
                if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                    raise missing
                return file.read()
        except FileNotFoundError as exc:
            raise missing from exc
        except OSError as exc:
            why = "it is a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
            raise ArtifactError(f"cannot read artifact {name!r} of run {run_id!r}: {why}") from exc

    def _walk_dirs(self, run_id: str, parts: tuple[str, ...], *, create: bool) -> bool:
        """Check (or make) each directory from the run's down to the artifact's parent.

        False when one is missing (or a file) and ``create`` is off; an ``ArtifactError``
        when one is a symlink, so nothing is ever written or read through a link.
        """
        top = self.run_dir(run_id)
        for depth in range(len(parts)):
            current = top.joinpath(*parts[:depth])
            try:
                mode = os.lstat(current).st_mode
            except FileNotFoundError:
                if not create:
                    return False
                os.mkdir(current, 0o700)
                os.chmod(current, 0o700)  # exactly 0700, whatever the umask
                continue
            if stat.S_ISLNK(mode):
                raise ArtifactError(
                    f"{str(current)!r} is a symbolic link: artifacts are never written or "
                    "read through links; remove it"
                )
            if not stat.S_ISDIR(mode):
                if not create:
                    return False
                raise ArtifactError(
                    f"{str(current)!r} is a file, not a directory: choose another artifact "
                    "name or remove the file"
                )
        return True


def _fernet(key: str | None) -> Fernet | None:
    if key is None:
        return None
    try:
        return Fernet(key)
    except (ValueError, TypeError) as exc:  # never echo the key: it is a secret
        raise ArtifactError(f"FIRSTMATE_ENCRYPTION_KEY is not a valid key: {_KEY_HELP}") from exc


def _parts(name: str) -> tuple[str, ...]:
    """The parts of an artifact name, or an ``ArtifactError`` saying what is wrong with it."""
    why = ""
    parts = tuple(name.split("/"))
    if not name:
        why = "it is empty"
    elif name.startswith("/"):
        why = "it is absolute"
    elif "\x00" in name:
        why = "it contains a NUL byte"
    elif "" in parts:
        why = "it has an empty part"
    elif ".." in parts:
        why = "it has a '..' part"
    elif any(part.startswith(".") for part in parts):
        why = "a part starts with '.'"
    elif parts[0] in _RESERVED:
        why = f"{parts[0]!r} holds the run's workspace"
    if why:
        raise ArtifactError(f"artifact name {name!r} is not allowed: {why}; {_NAME_HELP}")
    return parts


def _atomic_write(path: Path, payload: bytes) -> None:
    """Write ``payload`` to a 0600 temporary file beside ``path``, then rename it over."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _collect(directory: Path, prefix: str, names: list[str]) -> None:
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith(".") or (not prefix and entry.name in _RESERVED):
                continue
            name = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                _collect(Path(entry.path), name + "/", names)
            elif entry.is_file(follow_symlinks=False):
                names.append(name)
