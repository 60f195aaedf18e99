"""Imports go down the stack of docs/architecture.md ("Which way imports go"),
never up: each module of keras_lottery/ has its layer below, and may import
from its own layer or lower ones only, at the top of the file or inside a
function alike."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "keras_lottery"

# From the bottom, as in docs/architecture.md.
ORDER = [
    "checks, _keras", "data", "runtime", "pruning", "layers", "masking", "pruning.saliency",
    "structured", "sparse", "search", "models, metrics, schedules", "presets, plots", "cli, sweeps",
    "__init__",
]
# Each module's layer. A new module needs a line here.
LAYER = {
    "keras_lottery._keras": "checks, _keras",
    "keras_lottery.checks": "checks, _keras",
    "keras_lottery.runtime": "runtime",
    "keras_lottery.runtime.autodiff": "runtime",
    "keras_lottery.runtime.distribution": "runtime",
    "keras_lottery.runtime.evaluation": "runtime",
    "keras_lottery.runtime.speed": "runtime",
    "keras_lottery.pruning": "pruning",
    "keras_lottery.pruning.criteria": "pruning",
    "keras_lottery.pruning.dynamic": "pruning",
    "keras_lottery.pruning.planning": "pruning",
    "keras_lottery.pruning.rules": "pruning",
    "keras_lottery.layers": "layers",
    "keras_lottery.layers.attention": "layers",
    "keras_lottery.layers.conv": "layers",
    "keras_lottery.layers.dense": "layers",
    "keras_lottery.layers.embedding": "layers",
    "keras_lottery.layers.in_place": "layers",
    "keras_lottery.layers.masked_layer": "layers",
    "keras_lottery.layers.recurrent": "layers",
    "keras_lottery.masking": "masking",
    "keras_lottery.masking.conversion": "masking",
    "keras_lottery.masking.masks": "masking",
    "keras_lottery.masking.sparsity": "masking",
    "keras_lottery.pruning.saliency": "pruning.saliency",
    "keras_lottery.structured": "structured",
    "keras_lottery.structured.early_bird": "structured",
    "keras_lottery.structured.shrink": "structured",
    "keras_lottery.structured.structures": "structured",
    "keras_lottery.structured.unit_groups": "structured",
    "keras_lottery.structured.unit_masks": "structured",
    "keras_lottery.sparse": "sparse",
    "keras_lottery.sparse.dynamic": "sparse",
    "keras_lottery.sparse.gradual": "sparse",
    "keras_lottery.sparse.mask_updates": "sparse",
    "keras_lottery.sparse.schedules": "sparse",
    "keras_lottery.search": "search",
    "keras_lottery.search.aggregate": "search",
    "keras_lottery.search.callbacks": "search",
    "keras_lottery.search.export": "search",
    "keras_lottery.search.linear_path": "search",
    "keras_lottery.search.preflight": "search",
    "keras_lottery.search.progress": "search",
    "keras_lottery.search.results": "search",
    "keras_lottery.search.resume": "search",
    "keras_lottery.search.run_directory": "search",
    "keras_lottery.search.run_lock": "search",
    "keras_lottery.search.settings": "search",
    "keras_lottery.search.stability": "search",
    "keras_lottery.search.state": "search",
    "keras_lottery.search.ticket_search": "search",
    "keras_lottery.search.training": "search",
    "keras_lottery.search.joint": "search",
    "keras_lottery.search.together": "search",
    "keras_lottery.search.transfer": "search",
    "keras_lottery.data": "data",
    "keras_lottery.data.datasets": "data",
    "keras_lottery.data.text": "data",
    "keras_lottery.models": "models, metrics, schedules",
    "keras_lottery.models.blocks": "models, metrics, schedules",
    "keras_lottery.models.conv": "models, metrics, schedules",
    "keras_lottery.models.dropout": "models, metrics, schedules",
    "keras_lottery.models.language": "models, metrics, schedules",
    "keras_lottery.models.lenet": "models, metrics, schedules",
    "keras_lottery.models.mlp": "models, metrics, schedules",
    "keras_lottery.models.resnet": "models, metrics, schedules",
    "keras_lottery.models.sequence": "models, metrics, schedules",
    "keras_lottery.models.vgg": "models, metrics, schedules",
    "keras_lottery.metrics": "models, metrics, schedules",
    "keras_lottery.schedules": "models, metrics, schedules",
    "keras_lottery.plots": "presets, plots",
    "keras_lottery.presets": "presets, plots",
    "keras_lottery.cli": "cli, sweeps",
    "keras_lottery.sweeps": "cli, sweeps",
    "keras_lottery.sweeps.engines": "cli, sweeps",
    "keras_lottery.sweeps.sweep": "cli, sweeps",
    "keras_lottery": "__init__",
}
# The upward imports allowed, (importer, imported) -> why; each one fails this
# test once gone, so that its line goes too.
ALLOWED_UPWARD = {
    # A constructor on the class users hold; the presets load only when it is called.
    ("keras_lottery.search.ticket_search", "keras_lottery.presets"):
        "TicketSearch.from_preset builds through presets.build_search",
}


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules():
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(name, path, known):
    """`(line, imported module)` for each keras_lottery import in the module,
    wherever it is; `from package import name` counts as importing the
    submodule `name` where there is one, else the package."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "keras_lottery":
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            if source.split(".")[0] != "keras_lottery":
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                yield node.lineno, submodule if submodule in known else source
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)
              and str(node.args[0].value).split(".")[0] == "keras_lottery"):
            yield node.lineno, node.args[0].value


def test_every_module_has_a_layer():
    found = set(modules())
    assert not found - set(LAYER), (
        f"Expected each module of keras_lottery/ in LAYER here (its layer in "
        f"docs/architecture.md). Received modules without one: {sorted(found - set(LAYER))}")
    assert not set(LAYER) - found, (
        f"Expected LAYER to list existing modules only. Received: {sorted(set(LAYER) - found)}")
    assert set(LAYER.values()) <= set(ORDER)


def upward_imports():
    known = modules()
    found = {}
    for name, path in known.items():
        for line, imported in imports(name, path, known):
            assert imported in LAYER, (
                f"Expected {name} (line {line}) to import modules of keras_lottery. Received "
                f"an import of {imported}, which does not exist or has no layer in LAYER.")
            if ORDER.index(LAYER[imported]) > ORDER.index(LAYER[name]):
                found.setdefault((name, imported), []).append(line)
    return found


def test_imports_go_down_the_layers():
    found = upward_imports()
    upward = [
        f"{importer} ({LAYER[importer]}) imports {imported} ({LAYER[imported]}), line "
        f"{', '.join(map(str, lines))}"
        for (importer, imported), lines in sorted(found.items())
        if (importer, imported) not in ALLOWED_UPWARD
    ]
    assert not upward, (
        "Expected imports from the same layer or lower ones only (docs/architecture.md, "
        "'Which way imports go'). Received upward imports:\n" + "\n".join(upward))


@pytest.mark.parametrize("pair", sorted(ALLOWED_UPWARD))
def test_allowed_upward_imports_still_exist(pair):
    assert pair in upward_imports(), (
        f"{pair[0]} no longer imports {pair[1]}: remove its line from ALLOWED_UPWARD.")


def test_the_check_sees_imports_inside_functions(tmp_path):
    # A lazy upward import is an upward import all the same; relative ones count.
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from keras_lottery import presets\n"
                     "import keras_lottery.search.results\n"
                     "from . import masks\n"
                     "from .masks import masked_layers\n")
    found = sorted(imports("keras_lottery.masking.probe", probe, modules()))
    assert found == [(2, "keras_lottery.presets"), (3, "keras_lottery.search.results"),
                     (4, "keras_lottery.masking.masks"), (5, "keras_lottery.masking.masks")]
