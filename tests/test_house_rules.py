"""The rules of the house (../DESIGN.md, docs/ADDING_A_METHOD.md), checked on the tree: which room may import which,
no import circle, the loop reads a method only through its declared members, no tracker words in the product."""
import ast
import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers import checkout_files

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("dataset", "formatter", "pretrained", "model", "efficiency", "evaluator", "init", "optim_scheduler",
            "process", "utils", "tools", "experiments", "benchmarks", "deploy")


def module_name(path):
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules():
    return {module_name(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py") if "tests" not in p.parts}


def imports_of(path, modules):
    """Project modules `path` imports anywhere in the file (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module for a in node.names]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] in PACKAGES)
    return found


@pytest.fixture(scope="module")
def graph():
    modules = project_modules()
    return {name: imports_of(path, modules) for name, path in modules.items()}


def offenders(graph, room, forbidden):
    return sorted(f"{m} imports {i}" for m, deps in graph.items() if m.split(".")[0] == room
                  for i in deps if i.split(".")[0] in forbidden)


@pytest.mark.parametrize("room, forbidden", [
    ("model", {"process", "init", "formatter", "dataset", "evaluator", "tools", "experiments", "benchmarks"}),
    ("formatter", {"model", "init", "process"}),
    ("dataset", {"model", "init", "process", "formatter"}),
    ("pretrained", {"model", "formatter", "dataset", "init", "process", "efficiency"}),
    ("efficiency", {"model", "formatter", "dataset", "init", "process", "evaluator"}),
    ("deploy", {"tools", "experiments", "benchmarks"}),
    ("utils", set(PACKAGES) - {"utils"}),
])
def test_rooms_import_one_way(graph, room, forbidden):
    assert offenders(graph, room, forbidden) == []


def test_no_import_circle(graph):
    """Depth-first search over module imports; a back edge is a circle."""
    state, stack, circles = {}, [], []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for dep in sorted(graph.get(module, ())):
            if dep not in graph:
                continue
            if state.get(dep) == "open":
                circles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert circles == []


def test_loop_reads_methods_only_through_declared_members():
    """No getattr/hasattr on a model in process/ or the efficiency report, no private model state outside model/."""
    bad = []
    for path in list((REPO / "process").rglob("*.py")) + list((REPO / "efficiency").rglob("*.py")):
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
                    and "model" in ast.get_source_segment(source, node.args[0])):
                bad.append(f"{path.relative_to(REPO)}:{node.lineno}")
    for path in (REPO / name for name in checkout_files() if name.endswith(".py")):
        if path.parts[len(REPO.parts)] not in ("model", "tests") and "_frozen" in path.read_text():
            bad.append(f"{path.relative_to(REPO)}: _frozen")
    assert bad == []


def test_declared_members_cover_what_the_loop_reads():
    """Every member process/ reads of a method (`model.x`, `run.model.x`) is declared on DistillModel (model/base.py)."""
    from model.base import DistillModel
    read = set()
    for path in (REPO / "process").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute):
                owner = node.value
                if (isinstance(owner, ast.Name) and owner.id == "model") or \
                        (isinstance(owner, ast.Attribute) and owner.attr == "model"):
                    read.add(node.attr)
    assert {"teacher", "uses_hidden", "learns_without_labels", "two_tower", "analytic_flops"} <= read  # the scan sees them
    probe = DistillModel()
    assert sorted(m for m in read if not hasattr(probe, m)) == []


def test_no_tracker_words_in_the_product():
    """Users know papers and docs, not issue or seed-file numbers."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "*.py", "*.sh", "*.config", "*.md", "*.toml"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    pattern = re.compile(r"issues? #?[0-9]|seeds? 00[0-9]", re.IGNORECASE)
    hits = [f"{f}:{n}" for f in files if (REPO / f).is_file()
            for n, line in enumerate((REPO / f).read_text(errors="replace").splitlines(), 1) if pattern.search(line)]
    assert hits == []
