"""The layering of docs/architecture.md, read from the code's import statements (ast, not text).

Inside redemption_core: domain <- ledger <- engine <- imports and distribution <- simulate and
demo <- api <- cli (a layer imports only itself and the layers before it; siblings not each other).
Across folders: redemption_core and models_ml import nothing of ours but themselves, and the
other folders use redemption_core only through its public door (`redemption_core/__init__.py`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "redemption_core"

ALLOWED: dict[str, set[str]] = {
    "domain": {"domain"},
    "ledger": {"domain", "ledger"},
    "engine": {"domain", "ledger", "engine"},
    "imports": {"domain", "ledger", "engine", "imports"},
    "distribution": {"domain", "ledger", "engine", "distribution"},
    "simulate": {"domain", "ledger", "engine", "distribution", "simulate"},
    "demo": {"domain", "ledger", "engine", "distribution", "demo"},
    "api": {"domain", "ledger", "engine", "imports", "distribution", "simulate", "demo", "api"},
    "cli": {
        "domain",
        "ledger",
        "engine",
        "imports",
        "distribution",
        "simulate",
        "demo",
        "api",
        "cli",
    },
}
OUR_FOLDERS = ("redemption_core", "models_ml", "pipelines", "app_streamlit")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports (also inside functions and TYPE_CHECKING blocks), absolute."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # `from redemption_core import engine` imports the subpackage engine.
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def subpackage(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "redemption_core" or len(parts) < 2 or parts[1] not in ALLOWED:
        return None
    return parts[1]


def python_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*.py") if ".venv" not in path.parts)


def test_every_module_of_redemption_core_lives_in_a_layer() -> None:
    loose = [
        path.name
        for path in CORE.glob("*.py")
        if path.name != "__init__.py"  # the public door
    ]

    assert loose == []
    assert {
        path.name for path in CORE.iterdir() if path.is_dir() and path.name != "__pycache__"
    } == set(ALLOWED)


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_itself_and_the_layers_before_it(layer: str) -> None:
    offences = []
    for path in python_files(CORE / layer):
        for line, module in imported_modules(path):
            target = subpackage(module)
            if target is not None and target not in ALLOWED[layer]:
                offences.append(f"{path.relative_to(ROOT)}:{line} imports {module}")

    assert offences == []


def test_the_domain_imports_no_other_subpackage_and_does_no_io() -> None:
    io_modules = {
        "sqlite3",
        "pathlib",
        "shutil",
        "socket",
        "smtplib",
        "urllib",
        "duckdb",
        "subprocess",
    }
    offences = []
    for path in python_files(CORE / "domain"):
        for line, module in imported_modules(path):
            if module.split(".")[0] in io_modules:
                offences.append(f"{path.relative_to(ROOT)}:{line} imports {module}")

    assert offences == []


@pytest.mark.parametrize("folder", ["redemption_core", "models_ml"])
def test_the_core_and_the_models_import_nothing_of_ours_but_themselves(folder: str) -> None:
    others = set(OUR_FOLDERS) - {folder}
    offences = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in python_files(ROOT / folder)
        for line, module in imported_modules(path)
        if module.split(".")[0] in others
    ]

    assert offences == []


@pytest.mark.parametrize("folder", ["pipelines", "app_streamlit", "models_ml"])
def test_other_folders_use_redemption_core_only_through_its_public_door(folder: str) -> None:
    import redemption_core

    public = set(redemption_core.__all__)
    offences = []
    for path in python_files(ROOT / folder):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "redemption_core"
            ):
                names = {alias.name for alias in node.names}
                if node.module != "redemption_core" or not names <= public:
                    offences.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.module}")
            elif isinstance(node, ast.Import):
                offences += [
                    f"{path.relative_to(ROOT)}:{node.lineno} {alias.name}"
                    for alias in node.names
                    if alias.name.startswith("redemption_core.")
                ]

    assert offences == []


def test_the_layering_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = CORE / "domain" / "_layering_probe.py"
    module.write_text("from redemption_core.ledger.sqlite import SqliteLedgerStore\n")
    try:
        found = [subpackage(m) for _, m in imported_modules(module)]
    finally:
        module.unlink()

    assert "ledger" in found
