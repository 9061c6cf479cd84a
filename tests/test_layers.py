"""The import rules of docs/INTERNALS.md: a module imports only its own layer or lower ones, the task packages
(search, evaluate, train, compare) do not import each other, and no import cycle exists. Every import counts, also one
inside a function (a lazy import does not make an upward edge acceptable)."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "mrl_dna"

# layer of each module (longest dotted prefix wins); data flows up this list, imports only point down it
LAYERS = {
    0: ["mrl_dna.version", "mrl_dna.errors", "mrl_dna.dna", "mrl_dna.console", "mrl_dna.device", "mrl_dna.runtime"],
    1: ["mrl_dna.inputs", "mrl_dna.windows", "mrl_dna.kmer", "mrl_dna.evolve", "mrl_dna.vectors",
        "mrl_dna.distributed"],
    2: ["mrl_dna.model"],
    3: ["mrl_dna.store"],
    4: ["mrl_dna.embed", "mrl_dna.homology"],
    5: ["mrl_dna.search", "mrl_dna.evaluate", "mrl_dna.train", "mrl_dna.compare", "mrl_dna.api", "mrl_dna.hf"],
    6: ["mrl_dna.cli", "mrl_dna.__main__"],
    7: ["mrl_dna"],  # the package itself: the Python API's names, loaded on first use (only this exact name)
}
# layer-5 families that must not import one another
FAMILIES = {"search": "mrl_dna.search", "evaluate": "mrl_dna.evaluate", "train": "mrl_dna.train",
            "compare": "mrl_dna.compare"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PKG.rglob("*.py")}


def layer_of(mod: str) -> int:
    best, layer = -1, None
    for n, prefixes in LAYERS.items():
        for p in prefixes:
            if (mod == p or (mod.startswith(p + ".") and p != "mrl_dna")) and len(p) > best:
                best, layer = len(p), n
    assert layer is not None, f"{mod} has no layer in tests/test_layers.py LAYERS; add it"
    return layer


def family_of(mod: str) -> str | None:
    for name, prefix in FAMILIES.items():
        if mod == prefix or mod.startswith(prefix + "."):
            return name
    return None


def imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """mrl_dna modules imported anywhere in the file (`from mrl_dna import x` is module x when it is one)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "mrl_dna"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "mrl_dna" and not node.level:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add(sub if sub in modules else node.module)
    return out


def graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {m: imports(p, modules) - {m} for m, p in modules.items()}


def test_every_module_has_a_layer():
    for m in all_modules():
        layer_of(m)


def test_no_module_imports_a_higher_layer_or_a_sibling_task():
    bad = []
    for mod, deps in graph().items():
        for dep in deps:
            if layer_of(dep) > layer_of(mod):
                bad.append(f"{mod} (layer {layer_of(mod)}) imports {dep} (layer {layer_of(dep)})")
            fm, fd = family_of(mod), family_of(dep)
            if fm and fd and fm != fd:
                bad.append(f"{mod} ({fm}) imports {dep} ({fd}): the task packages do not import each other")
    assert not bad, "\n".join(sorted(bad))


def test_no_import_cycles():
    g = graph()
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in g:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_rule_catches_an_upward_import(tmp_path):
    """The check itself: a model module importing train is reported."""
    mod = {"mrl_dna.model.x": Path("x"), "mrl_dna.train.trainer": Path("y")}
    src = tmp_path / "x.py"
    src.write_text("def f():\n    from mrl_dna.train import trainer\n")
    deps = imports(src, mod)
    assert deps == {"mrl_dna.train.trainer"} and layer_of("mrl_dna.train.trainer") > layer_of("mrl_dna.model.x")
