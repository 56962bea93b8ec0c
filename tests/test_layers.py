"""Architecture checks: lower layers never import higher ones, and `import adaptroute` stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "adaptroute"

# Rank of each top-level module or package: a module may import only ranks <= its own.
LAYERS = {
    "errors": 0, "types": 1, "messages": 1, "secrecy": 1, "config": 2, "features": 3, "reward": 3, "policy": 4,
    "store": 5, "datasets": 5, "scorers": 6, "router": 7, "replay": 7, "testing": 8, "demo": 9, "server": 9, "cli_parser": 10, "cli": 10, "__main__": 11,
}
# Packages that must import without litellm (the design's promise).
NO_LITELLM = ("policy", "reward", "replay", "features", "store", "datasets", "config", "types", "errors")


def _layer(module_path: Path) -> str:
    rel = module_path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _imported_layers(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # imports only for type checkers do not count
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            node.body = []
    package = path.relative_to(SRC).parts[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and node.module.startswith("adaptroute."):
                    found.add(node.module.split(".")[1])
                continue
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            target = [*base, *(node.module.split(".") if node.module else [])]
            if target:
                found.add(target[0])
            else:  # "from . import x" at the package root
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("adaptroute."):
                    found.add(alias.name.split(".")[1])
    return found


@pytest.mark.parametrize("path", sorted(p for p in SRC.rglob("*.py") if p.name != "__init__.py" or p.parent != SRC), ids=lambda p: str(p.relative_to(SRC)))
def test_layers_only_import_downward(path: Path) -> None:
    own = _layer(path)
    if own not in LAYERS:
        pytest.fail(f"{path.relative_to(SRC)} is in no layer: add it to LAYERS")
    for other in _imported_layers(path):
        if other in LAYERS and other != own:
            assert LAYERS[other] <= LAYERS[own], f"{own} (rank {LAYERS[own]}) imports {other} (rank {LAYERS[other]})"


def test_import_is_light_and_litellm_free() -> None:
    code = (
        "import sys, adaptroute; from adaptroute import RewardWeights, read_log; "
        "import adaptroute.policy, adaptroute.reward, adaptroute.replay.simulate, adaptroute.replay.ope; "
        "print('litellm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_router_construction_loads_litellm() -> None:
    """Router() loads litellm (its import and first-call loading are not a request's latency); importing
    the Router class does not."""
    code = ("import sys; from adaptroute import Router; print('litellm' in sys.modules); "
            "Router(models=['gpt-4o-mini', 'gpt-4o']); print('litellm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
