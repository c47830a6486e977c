"""The layers of the package: the engine and the augmentations know no algorithm.

`augssl.engine` and `augssl.augment` serve every entry; an algorithm (`augssl.search`,
`augssl.semisup`) or an entry script plugs into them (e.g. through
`augssl.augment.policy_schemes`), never the other way round.
"""

import ast
from pathlib import Path

CODE = Path(__file__).resolve().parents[2] / "code"
LAYERS = ("engine", "augment")
ENTRY_SCRIPTS = tuple(sorted(path.stem for path in CODE.glob("*.py")))
FORBIDDEN = ("augssl.search", "augssl.semisup", "augssl.semisup", *ENTRY_SCRIPTS)


def _imports(path: Path, root: Path = CODE) -> list[tuple[int, str]]:
    """(line, module) of every import in the file under ``root``, at any depth, relative ones made
    absolute; ``from a import b`` gives both ``a`` and ``a.b`` (b may be a module)."""
    package = path.relative_to(root).with_suffix("").parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[:len(package) - node.level + 1]
                base = ".".join((*parent, *([node.module] if node.module else [])))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def _forbidden(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in FORBIDDEN)


def test_the_entry_scripts_are_found():
    assert {"train", "aws_search", "main_uda"} <= set(ENTRY_SCRIPTS)


def test_lazy_and_relative_imports_are_seen(tmp_path):
    module = tmp_path / "augssl" / "engine" / "example.py"
    module.parent.mkdir(parents=True)
    module.write_text("from . import session\n\n\ndef later():\n"
                      "    from ..search import aws\n    import train\n")
    imports = _imports(module, root=tmp_path)
    assert {(1, "augssl.engine.session"), (5, "augssl.search.aws"), (6, "train")} <= set(imports)
    assert [name for _, name in imports if _forbidden(name)] == [
        "augssl.search", "augssl.search.aws", "train"]


def test_engine_and_augment_import_no_algorithm_and_no_entry_script():
    modules = [path for layer in LAYERS for path in sorted((CODE / "augssl" / layer).rglob("*.py"))]
    assert len(modules) > 10
    offences = {}  # one line an import statement: its first forbidden module
    for path in modules:
        for line, name in _imports(path):
            if _forbidden(name):
                offences.setdefault(f"{path.relative_to(CODE.parent)}:{line}", name)
    assert not offences, (
        "engine/ and augment/ must not depend on an algorithm or an entry script; "
        "register a hook instead (see augssl.augment.policy_schemes):\n  "
        + "\n  ".join(f"{where} imports {name}" for where, name in offences.items()))
