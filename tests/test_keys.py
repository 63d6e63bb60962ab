"""Every Redis key name lives in hub/core/keys.py, and no local name hides one of the hub's modules.

Both are read from the source with `ast`, so a new module is checked without being listed here.
"""
from __future__ import annotations

import ast
from pathlib import Path

from hub.core import keys

ROOT = Path(__file__).resolve().parent.parent
HUB = ROOT / "hub"
KEYS = HUB / "core" / "keys.py"


def sources() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), str(path))) for path in sorted(HUB.rglob("*.py"))]


def names_prefix(node: ast.AST) -> bool:
    """A reference to the key prefix itself (`PREFIX`, `keys.PREFIX`, `ledger.PREFIX` ...)."""
    return (isinstance(node, ast.Name) and node.id == "PREFIX") or \
        (isinstance(node, ast.Attribute) and node.attr == "PREFIX")


def key_built_by_hand(node: ast.AST) -> str | None:
    """What is wrong with `node` when it spells a key name outside keys.py, else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        if node.value.startswith(keys.PREFIX):
            return f"string {node.value!r}"
        if f"'{keys.PREFIX}" in node.value or f'"{keys.PREFIX}' in node.value:
            return "a key name quoted inside a script"
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.Constant) and str(first.value).startswith(keys.PREFIX):
            return f"f-string starting {first.value!r}"
        if isinstance(first, ast.FormattedValue) and names_prefix(first.value):
            return "f-string starting with PREFIX"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and names_prefix(node.left):
        return "PREFIX + ..."
    return None


def test_the_known_key_names_are_named_in_keys_py() -> None:
    assert keys.CONTACT_INDEX == "hub:contacts" and keys.TIMELINE.format("a@x") == "hub:tl:a@x"
    assert keys.FAIL_INDEX.format("all") == "hub:fx:all" and keys.JOB.format("j") == "hub:job:j"
    assert keys.LAYOUT == "hub:layout" and keys.RESYNC_RUN.format("k") == "hub:resync:run:k"


def test_no_key_name_is_spelled_outside_keys_py() -> None:
    found = []
    for path, tree in sources():
        if path == KEYS:
            continue
        # Docstrings describe keys in prose; they name nothing Redis reads.
        docstrings = {id(body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and (body := node.body) and isinstance(body[0], ast.Expr)
                      and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)}
        inside_fstrings = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
        for node in ast.walk(tree):
            if id(node) in docstrings or id(node) in inside_fstrings:
                continue
            what = key_built_by_hand(node)
            if what:
                found.append(f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}: {what}")
    assert not found, "key names belong in hub/core/keys.py:\n" + "\n".join(found)


def test_the_check_catches_a_key_spelled_by_hand() -> None:
    spelled = ['X = "hub:thing:{}"', 'x = f"hub:thing:{name}"', 'x = keys.PREFIX + "thing"', 'x = f"{PREFIX}thing"',
               "S = \"redis.call('GET', 'hub:c:' .. email)\""]
    for line in spelled:
        tree = ast.parse(line)
        assert any(key_built_by_hand(node) for node in ast.walk(tree)), line
    assert not any(key_built_by_hand(node) for node in ast.walk(ast.parse('x = keys.CONTACT.format(email)')))


def hub_module_aliases(tree: ast.Module) -> dict[str, str]:
    """Module-level names bound to a module of ours: `from hub.core import keys` -> {"keys": ...}."""
    bound: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "hub" and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if (HUB.parent / full.replace(".", "/")).with_suffix(".py").exists() or \
                        (HUB.parent / full.replace(".", "/") / "__init__.py").exists():
                    bound[alias.asname or alias.name] = full
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "hub" and alias.asname:
                    bound[alias.asname] = alias.name
    return bound


def test_no_local_name_hides_a_module_of_ours() -> None:
    found = []
    for path, tree in sources():
        modules = hub_module_aliases(tree)
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            args = func.args
            bound = [(a.arg, func.lineno) for a in args.posonlyargs + args.args + args.kwonlyargs]
            bound += [(a.arg, func.lineno) for a in (args.vararg, args.kwarg) if a]
            for node in ast.walk(func):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    bound.append((node.id, node.lineno))
            for name, line in bound:
                if name in modules:
                    found.append(f"{path.relative_to(ROOT)}:{line}: {name!r} hides {modules[name]}")
    assert not found, "rename these locals:\n" + "\n".join(sorted(set(found)))
