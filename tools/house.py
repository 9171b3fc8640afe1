"""Print the package's import floors and its largest functions (the 'house' of STYLE.md).

    python tools/house.py [PACKAGE_DIR] [--top N]

A module's floor is 0 when it imports no other module of the package, else one more than the
highest floor it imports (imports inside functions count: they are still arrows).
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def module_name(root: Path, file: Path) -> str:
    parts = list(file.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(tree: ast.AST, package: str, modules: set[str]) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found |= {n for n in names if n in modules and n != package}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", nargs="?", default="kard_chain")
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    root = Path(args.package).resolve()
    files = {module_name(root, f): f for f in sorted(root.rglob("*.py"))}
    trees = {m: ast.parse(f.read_text()) for m, f in files.items()}
    deps = {m: imports_of(t, root.name, set(files)) - {m} for m, t in trees.items()}
    floors: dict[str, int] = {}

    def floor(m: str, seen: tuple = ()) -> int:
        if m not in floors:
            floors[m] = 1 + max((floor(d, seen + (m,)) for d in deps[m] if d not in seen), default=-1)
        return floors[m]

    for m in files:
        floor(m)
    print(f"{len(files)} modules on {max(floors.values()) + 1} floors")
    for f in range(max(floors.values()), -1, -1):
        print(f"  floor {f}: " + ", ".join(sorted(m.removeprefix(root.name + ".") for m, v in floors.items() if v == f)))
    sizes = []
    for m, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                sizes.append((node.end_lineno - node.lineno + 1, f"{m}.{node.name}"))
    print(f"largest functions (lines, of {len(sizes)}):")
    for n, name in sorted(sizes, reverse=True)[: args.top]:
        print(f"  {n:>4}  {name}")


if __name__ == "__main__":
    main()
