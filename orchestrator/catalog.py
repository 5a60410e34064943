"""Finding playbooks: by file path, or by name in the playbooks folder.

A playbook that a run uses is recorded in the ``playbooks`` table (name, version,
source), so what a run ran can be read back even after the file changed.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine as SAEngine

from orchestrator.errors import NotFound, PlaybookError
from orchestrator.models import PlaybookRecord, utcnow
from orchestrator.plan import PlanSpec
from orchestrator.playbooks import load_playbook, load_playbooks

RELIST_S = 1.0


class Catalog:
    """The playbooks in ``folder``. The folder is looked at again at most once a second
    (a playbook edited, added or removed counts within a second), and a file is parsed
    again only when its size or modification time changed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._parsed: dict[Path, tuple[tuple[int, int], PlanSpec | PlaybookError]] = {}
        self._listed: tuple[float, int, dict[str, PlanSpec]] | None = None

    def _load(self, path: Path) -> PlanSpec:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._parsed.get(path)
        if cached is None or cached[0] != stamp:
            try:
                result: PlanSpec | PlaybookError = load_playbook(path)
            except PlaybookError as exc:
                result = exc
            with self._lock:
                self._parsed[path] = (stamp, result)
        else:
            result = cached[1]
        if isinstance(result, PlaybookError):
            raise result
        return result

    def get(self, name_or_path: str) -> PlanSpec:
        """A playbook by file path (if such a file exists) or by name."""
        path = Path(name_or_path)
        if path.suffix in (".yaml", ".yml") and path.is_file():
            return load_playbook(path)
        found = self.all()
        if name_or_path not in found:
            known = ", ".join(sorted(found)) or "none"
            raise NotFound(
                f"no playbook {name_or_path!r} in {self.folder} (known: {known}); "
                "give a file path or set FIRSTMATE_PLAYBOOKS"
            )
        return found[name_or_path]

    def named(self, name: str) -> PlanSpec:
        """A playbook of the folder by name, never by path: what a request from outside
        (Slack, GitHub, n8n, the API) may run. A path would run any YAML file the server
        can read, with whatever approvers it names."""
        found = self.all()
        if name not in found:
            known = ", ".join(sorted(found)) or "none"
            raise NotFound(f"no playbook {name!r} (known: {known})")
        return found[name]

    def all(self) -> dict[str, PlanSpec]:
        """Every playbook of the folder. The folder is listed again when a file was added
        or removed, else at most once a second (a busy front door asks several times per
        request; listing and stat-ing every file is not free)."""
        now = time.monotonic()
        try:
            stamp = self.folder.stat().st_mtime_ns  # a file added, removed or renamed
        except OSError:
            stamp = -1
        with self._lock:
            listed = self._listed
        if listed is not None and listed[1] == stamp and now - listed[0] < RELIST_S:
            return listed[2]
        found = load_playbooks(self.folder, self._load) if self.folder.is_dir() else {}
        with self._lock:
            self._listed = (now, stamp, found)
        return found


def record(engine: SAEngine, plan: PlanSpec) -> None:
    """Upsert the playbook a run uses into the ``playbooks`` table."""
    if plan.name is None:
        return
    values = {
        "name": plan.name,
        "version": plan.version,
        "description": plan.description,
        "source": plan.model_dump_json(by_alias=True),
        "updated_at": utcnow(),
    }
    table = PlaybookRecord.__table__  # type: ignore[attr-defined]
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(table).values(**values)
    update = {k: insert.excluded[k] for k in values if k != "name"}
    with engine.begin() as connection:
        connection.execute(insert.on_conflict_do_update(index_elements=["name"], set_=update))
