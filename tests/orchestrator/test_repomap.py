"""The repository map: modules and signatures, test layouts, symlinks, digests and caps."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator import repomap
from orchestrator.repomap import RepoMap, build, content_digest, default_test_command

CALC = Path(__file__).resolve().parents[2] / "examples" / "calc"
SECRET = "hunter2-do-not-leak"


def write(root: Path, files: dict[str, str]) -> Path:
    """A repository at ``root`` with these files (relative path → text)."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def everything(repo: RepoMap) -> str:
    """All a map shows anyone: its JSON, its outputs and its summary."""
    return repo.model_dump_json() + str(repo.outputs()) + repo.summary()


def test_the_calc_example_is_mapped() -> None:
    repo = build(CALC)
    assert repo.files == ["calc/__init__.py", "calc/ops.py", "pyproject.toml", "tests/test_ops.py"]
    assert repo.languages == {"Python": 3, "TOML": 1}
    ops = repo.modules["calc/ops.py"]
    assert ops.functions == [
        "add(a: float, b: float) -> float",
        "multiply(a: float, b: float) -> float",
        "divide(a: float, b: float) -> float",
        "mean(values: list[float]) -> float",
    ]
    assert repo.modules["calc/__init__.py"].doc.startswith("A tiny calculator package")
    assert repo.tests.files == ["tests/test_ops.py"]
    assert repo.tests.dirs == ["tests"]
    assert repo.tests.framework == "pytest"
    assert repo.test_command == "python3 -m pytest"
    assert repo.unparsable == {} and repo.symlinks == [] and not repo.truncated


def test_classes_methods_and_async_functions(tmp_path: Path) -> None:
    source = '''"""Shapes.

More text."""
import math

async def fetch(url, *, retries=3, **kw): ...

class Circle(Base):
    def __init__(self, r: float) -> None: ...
    async def area(self, /, scale=1.0): ...
    @property
    def name(self): ...
    class Inner:
        def hidden(self): ...

def _private(*args): ...
'''
    repo = build(write(tmp_path, {"shapes.py": source}))
    shapes = repo.modules["shapes.py"]
    assert shapes.doc == "Shapes."
    assert shapes.functions == ["async fetch(url, *, retries=3, **kw)", "_private(*args)"]
    assert shapes.classes == {
        "Circle": [
            "__init__(self, r: float) -> None",
            "async area(self, /, scale=1.0)",
            "name(self)",
        ]
    }
    out = repo.outputs()
    assert out["modules"]["shapes.py"]["classes"]["Circle"][0] == "__init__(self, r: float) -> None"
    assert "class Circle: __init__(self, r: float) -> None" in repo.summary()


@pytest.mark.parametrize(
    ("files", "framework", "command"),
    [
        ({"pyproject.toml": "[tool.pytest.ini_options]\naddopts = '-q'\n"}, "pytest", None),
        ({"pytest.ini": "[pytest]\n"}, "pytest", None),
        ({"setup.cfg": "[metadata]\nname = x\n\n[tool:pytest]\n"}, "pytest", None),
        ({"tox.ini": "[tox]\n\n[pytest]\naddopts = -q\n"}, "pytest", None),
        ({"conftest.py": ""}, "pytest", None),
        ({"tests/test_a.py": "def test_a():\n    assert 1\n"}, "pytest", None),
        ({"tests/test_a.py": "import pytest\nimport unittest\n"}, "pytest", None),
        (
            {"tests/test_a.py": "import unittest\nclass A(unittest.TestCase): pass\n"},
            "unittest",
            "python3 -m unittest discover -s tests",
        ),
        (
            {"tests/__init__.py": "", "tests/test_a.py": "from unittest import TestCase\n"},
            "unittest",
            "python3 -m unittest discover",
        ),
        ({"test_a.py": "import unittest\n"}, "unittest", "python3 -m unittest discover"),
        ({"Makefile": "all:\n\ttrue\n\ntest: all\n\t./run-tests\n"}, "make", "make test"),
        ({"Makefile": "test := 1\n"}, None, None),
        ({"package.json": '{"scripts": {"test": "jest"}}', "a.test.js": ""}, "npm", "npm test"),
        (
            {"package.json": '{"scripts": {"test": "echo \\"Error: no test specified\\""}}'},
            None,
            None,
        ),
        ({"package.json": "not json"}, None, None),
        ({"pyproject.toml": "this is [not toml"}, None, None),
        # the order: a Python test suite comes before the Makefile
        (
            {"Makefile": "test:\n\tpytest\n", "tests/test_a.py": "def test_a(): ...\n"},
            "pytest",
            None,
        ),
        ({"main.py": "print(1)\n"}, None, None),
    ],
)
def test_the_test_command_follows_the_layout(
    tmp_path: Path, files: dict[str, str], framework: str | None, command: str | None
) -> None:
    repo = build(write(tmp_path, files))
    assert repo.tests.framework == framework
    assert repo.test_command == (command or "python3 -m pytest")
    assert default_test_command(tmp_path) == repo.test_command


def test_default_test_command_without_a_repository(tmp_path: Path) -> None:
    assert default_test_command(None) == "python3 -m pytest"
    assert default_test_command(tmp_path / "missing") == "python3 -m pytest"
    assert default_test_command(CALC) == "python3 -m pytest"


def test_a_sub_directory_is_mapped_with_workspace_paths(tmp_path: Path) -> None:
    write(tmp_path, {"pkg/a.py": "def f(x): ...\n", "pkg/tests/test_a.py": "import unittest\n"})
    write(tmp_path, {"other.py": "def g(): ...\n"})
    repo = build(tmp_path, "./pkg/")
    assert repo.path == "pkg"
    assert repo.files == ["pkg/a.py", "pkg/tests/test_a.py"]
    assert repo.modules["pkg/a.py"].functions == ["f(x)"]
    assert repo.tests.files == ["pkg/tests/test_a.py"]
    assert repo.test_command == "cd pkg && python3 -m unittest discover -s tests"


@pytest.mark.parametrize("sub", ["..", "../x", "/etc", "pkg/../../x", "missing", "file.py"])
def test_a_path_outside_the_workspace_or_not_a_directory_is_refused(
    tmp_path: Path, sub: str
) -> None:
    write(tmp_path, {"pkg/a.py": "", "file.py": ""})
    with pytest.raises(ValueError, match=repr(sub)):
        build(tmp_path, sub)


def test_symlinks_are_listed_by_name_and_never_read(tmp_path: Path) -> None:
    outside = write(
        tmp_path / "outside",
        {
            "secret.txt": SECRET,
            "pkg/leak.py": f"def {SECRET.replace('-', '_')}(): ...\n",
            "pyproject.toml": "[tool.pytest.ini_options]\n",
        },
    )
    root = write(tmp_path / "repo", {"main.py": "def main(): ...\n"})
    (root / "secrets").symlink_to(outside / "secret.txt")
    (root / "README.md").symlink_to(outside / "secret.txt")
    (root / "leak.py").symlink_to(outside / "pkg" / "leak.py")
    (root / "pyproject.toml").symlink_to(outside / "pyproject.toml")
    (root / "linked").symlink_to(outside / "pkg", target_is_directory=True)
    (root / "dangling").symlink_to("/nowhere")
    repo = build(root)
    links = ["README.md", "dangling", "leak.py", "linked", "pyproject.toml", "secrets"]
    assert repo.symlinks == links
    assert repo.files == sorted([*links, "main.py"])
    assert list(repo.modules) == ["main.py"]
    assert repo.tests.framework is None  # the linked pyproject.toml was not read
    assert repo.readme == ""
    assert SECRET not in everything(repo)
    assert "hunter2" not in everything(repo)
    assert "README.md (symlink)" in repo.summary()
    with pytest.raises(ValueError, match="symlink"):
        build(root, "linked")


def test_unparsable_files_are_findings(tmp_path: Path) -> None:
    deep = "x = " + "-" * 200_000 + "1\n"
    repo = build(
        write(
            tmp_path,
            {
                "ok.py": "def fine(): ...\n",
                "broken.py": "def f(:\n",
                "nul.py": "x = 1\0\n",
                "cookie.py": "# -*- coding: no-such-codec -*-\nx = 1\n",
                "deep.py": deep,
                "big.py": "x = 1\n" * 100_000,
            },
        )
    )
    assert list(repo.modules) == ["ok.py"]
    assert set(repo.unparsable) == {"broken.py", "nul.py", "cookie.py", "deep.py", "big.py"}
    assert repo.unparsable["broken.py"].startswith("SyntaxError: ")
    assert "(line 1)" in repo.unparsable["broken.py"]
    assert repo.unparsable["big.py"] == "larger than 512 KiB, not parsed"
    assert "broken.py: unparsable (SyntaxError" in repo.summary()


def test_a_fifo_is_never_opened(tmp_path: Path) -> None:
    write(tmp_path, {"a.py": ""})
    os.mkfifo(tmp_path / "pipe.py")  # opening it for reading would block forever
    repo = build(tmp_path)
    assert repo.files == ["a.py"]


def test_the_digest_follows_the_content(tmp_path: Path) -> None:
    root = write(tmp_path, {"a.py": "x = 1\n", "pkg/b.py": "y = 2\n"})
    first = content_digest(root)
    assert first.startswith("sha256:") and content_digest(root) == first
    assert build(root).digest == first
    (root / "a.py").write_text("x = 1\n")  # rewritten, same content
    write(root, {"__pycache__/a.pyc": "junk", ".git/HEAD": "ref", "node_modules/m.js": "1"})
    assert content_digest(root) == first

    def relink() -> None:
        (root / "link").unlink()
        (root / "link").symlink_to("pkg")

    changes: list[Callable[[], object]] = [
        lambda: (root / "a.py").write_text("x = 2\n"),
        lambda: (root / "c.py").write_text(""),
        lambda: (root / "c.py").rename(root / "d.py"),
        lambda: os.symlink("a.py", root / "link"),
        relink,  # a link's target counts, though it is never read
    ]
    seen = {first}
    for change in changes:
        change()
        now = content_digest(root)
        assert now not in seen
        assert build(root).digest == now
        seen.add(now)


def test_the_walk_stops_at_the_file_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repomap, "MAX_FILES", 3)
    write(tmp_path, {f"m{i}.py": "" for i in range(6)})
    repo = build(tmp_path)
    assert len(repo.files) == 3 and repo.truncated
    assert "(the walk stopped at 3 files)" in repo.summary()


def test_large_files_are_hashed_by_size_and_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(repomap, "MAX_READ_BYTES", 10)
    write(tmp_path, {"README.md": "a readme longer than ten bytes", "small.py": "x = 1\n"})
    repo = build(tmp_path)
    assert repo.readme == ""  # too large to read under this cap
    assert repo.unparsable == {}
    assert list(repo.modules) == ["small.py"]
    first = content_digest(tmp_path)
    (tmp_path / "README.md").write_text("a readme longer than ten bytes, changed")
    assert content_digest(tmp_path) != first


def test_the_summary_is_capped_and_keeps_tests_and_readme(tmp_path: Path) -> None:
    many = {
        f"mod{i:03}.py": "".join(f"def f{j}(a, b): ...\n" for j in range(20)) for i in range(80)
    }
    write(tmp_path, {**many, "README.md": "# Project\nDoes things.\n"})
    repo = build(tmp_path)
    text = repo.summary(max_chars=3000)
    assert len(text) <= 3000
    assert "Test command: python3 -m pytest" in text
    assert "README (start):\n# Project\nDoes things." in text
    assert "… and 21 more files" in text
    assert "mod000.py:\n  def f0(a, b)" in text
    assert len(repo.summary()) <= repomap.SUMMARY_CHARS


def test_summarize_without_a_repository(tmp_path: Path) -> None:
    assert repomap.summarize(None) == "(no repository)"
    assert repomap.summarize(tmp_path / "missing") == "(no repository)"
    assert repomap.summarize(tmp_path) == "(an empty repository)"
    assert "calc/ops.py:\n  def add(a: float, b: float) -> float" in repomap.summarize(CALC)


def test_outputs_are_the_contract_shape() -> None:
    out = build(CALC).outputs()
    assert {"summary", "files", "modules", "test_command"} <= set(out)
    assert out["modules"]["calc/ops.py"]["functions"][0] == "add(a: float, b: float) -> float"
    assert out["tests"] == {
        "files": ["tests/test_ops.py"],
        "dirs": ["tests"],
        "framework": "pytest",
    }
    assert RepoMap.model_validate_json(build(CALC).model_dump_json()) == build(CALC)
