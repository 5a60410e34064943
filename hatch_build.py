"""Builds the screening core's C extensions (``orchestrator/injection/_words.c``, the
model's word weigher and the views' fold and latin, ``_wordseq.c``, the word-chain
scanner, ``_engine.c``, the signal matching around them, ``orchestrator/_pii.c``,
the PII numbers and e-mail addresses, and ``orchestrator/_needles.c``, the fixed
strings credentials start at).

Run by hatchling for every wheel, the editable one ``uv sync`` installs included (the
module is compiled next to its source, where an editable install imports it from), and
by ``bin/setup`` when the module is missing (``python hatch_build.py``): a uv cache
can hold an editable build made before the source tree was.

Only the compiler that built Python is needed (``gcc``, from ``sysconfig``); without
one the build says so and goes on, and screening falls back to the same computation in
Python, about 8 times slower (``Screener`` reports which one it uses).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
SOURCES = {
    "orchestrator/injection/_words": "orchestrator/injection/_words.c",
    "orchestrator/injection/_wordseq": "orchestrator/injection/_wordseq.c",
    "orchestrator/injection/_engine": "orchestrator/injection/_engine.c",
    "orchestrator/_pii": "orchestrator/_pii.c",
    "orchestrator/_needles": "orchestrator/_needles.c",
}


def build(root: Path = ROOT) -> list[Path]:
    """Compile each extension next to its source when missing or older; their paths."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    include = sysconfig.get_paths()["include"]
    cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
    flags = shlex.split(sysconfig.get_config_var("CCSHARED") or "-fPIC")
    built = []
    for name, source in SOURCES.items():
        src, out = root / source, root / f"{name}{suffix}"
        if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
            command = [*cc, *flags, "-O3", "-Wall", "-shared", f"-I{include}", str(src)]
            subprocess.run([*command, "-o", str(out)], check=True)
        built.append(out)
    return built


try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # run as a script, outside a build
    BuildHookInterface = object


class ExtensionBuild(BuildHookInterface):
    """Compiles the extensions; a wheel carries them (and is then platform-specific)."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        try:
            built = build(Path(self.root))
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"firstmate: the screening core was not compiled ({e})", file=sys.stderr)
            return
        if version != "editable":
            build_data["pure_python"] = False
            build_data["infer_tag"] = True
            for path in built:
                relative = path.relative_to(self.root).as_posix()
                build_data["force_include"][str(path)] = relative


if __name__ == "__main__":
    for path in build():
        print(path.relative_to(ROOT))
