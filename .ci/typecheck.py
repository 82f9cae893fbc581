"""Type-check every part of lotledger, from the working tree, with mypy --strict.

Why a script: the parts live in top-level folders (`ledger/`, `signing/`...) that install as
`lotledger.<part>` through pyproject.toml's `package-dir`, and `lotledger` itself is a namespace
package with no folder. Given the folders, mypy would name the modules `ledger.log`; given
`-p lotledger.ledger`, it cannot find them (an editable install maps them with an import hook
that mypy does not run). So this script reads the mapping from pyproject.toml, names every file
of every package itself and hands mypy the list through its Python API (`mypy.build.build` with
`BuildSource(path, module)`). Errors carry the real paths (`ledger/log.py:12: error: ...`).

The generated `lotledger.v1` (`_generated/lotledger/v1`, made by setup.py during any install) is
checked too, through its `.pyi` stubs where protoc wrote one; pyproject.toml silences errors
inside it (generated code is not ours to fix) but every use of it is checked.

Settings come from pyproject.toml's [tool.mypy] (strict). Extra arguments go to mypy as flags:

    python .ci/typecheck.py                 # exit 0 when clean, 1 on type errors, 2 on setup problems
    python .ci/typecheck.py --no-incremental
"""

from __future__ import annotations

import pathlib
import sys
import tomllib

from mypy import build
from mypy.errors import CompileError
from mypy.main import process_options
from mypy.modulefinder import BuildSource
from mypy.nodes import ImportFrom, MypyFile
from mypy.options import Options
from mypy.plugin import Plugin, ReportConfigContext
from mypy.util import correct_relative_import

ROOT = pathlib.Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"


def package_dirs(pyproject: dict[str, object]) -> dict[str, pathlib.Path]:
    """Every package pyproject.toml declares, with the folder it is built from.

    Raises SystemExit (2) when a declared package has no folder or a folder with an
    `__init__.py` under a mapped part is not declared (it would be missing from the wheel).
    """
    setuptools_cfg = pyproject["tool"]["setuptools"]  # type: ignore[index]
    mapping: dict[str, str] = setuptools_cfg["package-dir"]
    declared: list[str] = setuptools_cfg["packages"]
    problems: list[str] = []
    dirs: dict[str, pathlib.Path] = {}
    for package in declared:
        prefix = max((p for p in mapping if package == p or package.startswith(p + ".")), key=len, default=None)
        if prefix is None:
            problems.append(f"pyproject.toml: package {package} has no package-dir entry")
            continue
        folder = ROOT / mapping[prefix] / package[len(prefix) + 1 :].replace(".", "/")
        if not (folder / "__init__.py").is_file():
            problems.append(f"pyproject.toml: package {package}: no {folder.relative_to(ROOT)}/__init__.py")
            continue
        dirs[package] = folder
    for prefix, top in mapping.items():
        for init in sorted((ROOT / top).rglob("__init__.py")):
            name = ".".join([prefix, *init.parent.relative_to(ROOT / top).parts])
            if name not in dirs and not any(part.startswith(".") for part in init.parts):
                problems.append(
                    f"{init.parent.relative_to(ROOT)}/: a package not listed in pyproject.toml's packages ({name})"
                )
    if problems:
        print("\n".join(problems), file=sys.stderr)
        raise SystemExit(2)
    return dirs


def sources(dirs: dict[str, pathlib.Path]) -> list[BuildSource]:
    """One BuildSource per module, named as it is imported; a `.pyi` stub wins over its `.py`."""
    found: list[BuildSource] = []
    for package, folder in sorted(dirs.items()):
        stems = {p.stem for p in folder.glob("*.py")} | {p.stem for p in folder.glob("*.pyi")}
        for stem in sorted(stems):
            path = folder / f"{stem}.pyi"
            if not path.is_file():
                path = folder / f"{stem}.py"
            module = package if stem == "__init__" else f"{package}.{stem}"
            found.append(BuildSource(str(path.relative_to(ROOT)), module, None, base_dir=str(ROOT)))
    return found


class SubmoduleImports(Plugin):
    """Tells mypy that `from lotledger.ledger import errors` depends on lotledger.ledger.errors.

    mypy finds that out by looking for the submodule on its search path, where our modules
    are not (no folder is named `lotledger`), and then checks the importer before the module
    ("Module has no attribute ..."). The sources are all known here, so the plugin hook for
    extra dependencies names them.
    """

    def __init__(self, options: Options, modules: set[str]) -> None:
        super().__init__(options)
        self.modules = modules

    def report_config_data(self, ctx: ReportConfigContext) -> str:
        # Part of each module's cache entry: caches written without these dependencies are stale.
        return "submodule-imports/1"

    def get_additional_deps(self, file: MypyFile) -> list[tuple[int, str, int]]:
        deps: list[tuple[int, str, int]] = []
        for imp in file.imports:
            if not isinstance(imp, ImportFrom):
                continue
            base, _ = correct_relative_import(file.fullname, imp.relative, imp.id, file.is_package_init_file())
            for name, _alias in imp.names:
                if f"{base}.{name}" in self.modules:
                    deps.append((build.import_priority(imp, build.PRI_MED), f"{base}.{name}", imp.line))
        return deps


def main(argv: list[str]) -> int:
    with PYPROJECT.open("rb") as f:
        pyproject = tomllib.load(f)
    dirs = package_dirs(pyproject)
    if "lotledger.v1" in dirs and not any(dirs["lotledger.v1"].glob("*_pb2.py*")):
        print("_generated/lotledger/v1 is empty: install first (pip install -e '.[test,dev]')", file=sys.stderr)
        return 2
    _, options = process_options(
        ["--config-file", str(PYPROJECT), *argv], require_targets=False, program="typecheck.py"
    )
    targets = sources(dirs)
    messages: list[str] = []

    def flush(filename: str | None, new_messages: list[str], serious: bool) -> None:
        messages.extend(new_messages)
        for line in new_messages:
            print(line, flush=True)

    try:
        plugin = SubmoduleImports(options, {t.module for t in targets})
        build.build(targets, options, flush_errors=flush, extra_plugins=[plugin])
    except CompileError as e:  # a blocking error (a syntax error, a bad config): already flushed
        if not messages:
            print("\n".join(e.messages))
        return 2
    errors = [m for m in messages if ": error:" in m]
    if errors:
        files = len({m.split(":", 1)[0] for m in errors})
        print(f"Found {len(errors)} error{'s'[: len(errors) - 1]} in {files} file{'s'[: files - 1]}")
        return 1
    print(f"Success: no issues found in {len(targets)} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
