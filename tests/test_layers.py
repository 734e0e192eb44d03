"""The package layers of docs/design.md: each package imports only the ones below it (its own modules aside)."""

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "catdog"
ENTRY_POINTS = {"entry", "train", "evaluate", "predict", "export", "explore", "report", "bench", "tune"}
# what each package may import, besides itself; entry points may import anything
ALLOWED = {
    "errors": set(),
    "backend": {"errors"},
    "utils": {"errors"},
    "data": {"errors", "backend", "utils"},
    "models": {"errors", "backend", "utils"},
    "tasks": {"errors", "backend", "utils", "models"},
    "analysis": {"errors", "backend", "utils", "models"},
    "callbacks": {"errors", "backend", "utils", "analysis"},
    "loggers": {"errors", "backend", "utils", "analysis", "callbacks"},
    "training": {"errors", "backend", "utils", "data", "models", "analysis", "callbacks"},
    "__init__": {"backend", "tasks"},
}


def owner(module: str) -> str:
    """catdog.<package>[.x] -> package; catdog.<module> -> module; catdog -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_each_package_imports_only_the_layers_below_it():
    wrong = []
    for path in SRC.rglob("*.py"):
        me = owner(".".join(path.relative_to(SRC.parent).with_suffix("").parts))
        if me in ENTRY_POINTS:
            continue
        for imported in re.findall(r"^\s*(?:from|import) (catdog[\w.]*)", path.read_text(), re.M):
            other = owner(imported)
            if other != me and other not in ALLOWED[me]:
                wrong.append(f"{path.relative_to(SRC)} imports {imported}")
    assert not wrong, wrong


def test_the_top_of_the_package_holds_entry_points_and_few_modules():
    modules = {p.stem for p in SRC.glob("*.py")}
    assert modules - ENTRY_POINTS == {"__init__", "errors", "backend"} and len(modules) <= 12
    too_long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > 300}
    assert not too_long, too_long
