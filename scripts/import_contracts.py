"""import-linter contracts of our own: no import cycle, and nothing imported too early."""

from __future__ import annotations

import ast
import importlib.util
from collections import deque
from collections.abc import Iterable
from pathlib import Path

import grimp
from importlinter import Contract, ContractCheck, fields, output


class AcyclicModulesContract(Contract):
    """No module of `packages` imports, directly or not, a module that imports it back.

    import-linter's own acyclic_siblings contract looks at packages; this looks at modules,
    across packages, type-checking imports included: a cycle hidden behind TYPE_CHECKING
    is still one.
    """

    type_name = "acyclic_modules"
    packages = fields.ListField(subfield=fields.StringField())

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        """Find each import that closes a cycle, with the way back."""
        roots = [str(package) for package in self.packages]  # type: ignore[attr-defined]
        inside = {m for m in graph.modules if any(m == r or m.startswith(f"{r}.") for r in roots)}
        cycles: list[list[str]] = []
        for module in sorted(inside):
            for imported in sorted(graph.find_modules_directly_imported_by(module) & inside):
                back = graph.find_shortest_chain(importer=imported, imported=module)
                if back is not None and module < imported:
                    cycles.append([module, *back])
        return ContractCheck(kept=not cycles, warnings=None, metadata={"cycles": cycles})

    def render_broken_contract(self, check: ContractCheck) -> None:
        """Print each cycle as the chain of imports that forms it."""
        for cycle in check.metadata["cycles"]:
            output.print_error(" -> ".join(cycle))
            output.new_line()


def _under(module: str, roots: Iterable[str]) -> bool:
    return any(module == root or module.startswith(f"{root}.") for root in roots)


def _eager_lines(module: str) -> frozenset[int]:
    """Return the lines of the import statements `module` runs when it is imported.

    Imports in a function body run only when it is called, and those under
    `if TYPE_CHECKING:` never run; every other import in the module's body (in an `if`,
    `try`, `with` or class body included) runs at import.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return frozenset()
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    lines: set[int] = set()
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            lines.add(node.lineno)
        elif isinstance(node, ast.If):
            test = node.test
            if not (
                isinstance(test, ast.Name | ast.Attribute) and "TYPE_CHECKING" in ast.unparse(test)
            ):
                pending.extend(node.body)
            pending.extend(node.orelse)
        elif isinstance(node, ast.Try | ast.TryStar):
            pending.extend([*node.body, *node.orelse, *node.finalbody])
            pending.extend(stmt for handler in node.handlers for stmt in handler.body)
        elif isinstance(node, ast.With | ast.ClassDef):
            pending.extend(node.body)
    return frozenset(lines)


class ForbiddenAtImportContract(Contract):
    """Importing a module of `source_modules` imports no module of `forbidden_modules`.

    Unlike import-linter's forbidden contract, an import inside a function, made only when
    a command needs it, is allowed: the command line may run the server's code on demand
    (`kavach server …`), but importing any of its modules, directly or through other
    modules of the same root package, must not load the server.
    """

    type_name = "forbidden_at_import"
    source_modules = fields.ListField(subfield=fields.StringField())
    forbidden_modules = fields.ListField(subfield=fields.StringField())

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        """Follow the imports made at import time from each source module."""
        sources = [str(module) for module in self.source_modules]  # type: ignore[attr-defined]
        forbidden = [str(module) for module in self.forbidden_modules]  # type: ignore[attr-defined]
        root = sources[0].split(".")[0]
        eager: dict[str, list[str]] = {}

        def imported_eagerly(module: str) -> list[str]:
            if module not in eager:
                lines = _eager_lines(module)
                eager[module] = sorted(
                    imported
                    for imported in graph.find_modules_directly_imported_by(module)
                    if _under(imported, [root])
                    and any(
                        detail["line_number"] in lines
                        for detail in graph.get_import_details(importer=module, imported=imported)
                    )
                )
            return eager[module]

        # One chain per offending import (the shortest found), not one per module above it.
        chains: dict[tuple[str, str], list[str]] = {}
        for start in sorted(m for m in graph.modules if _under(m, sources)):
            seen = {start}
            queue: deque[list[str]] = deque([[start]])
            while queue:
                chain = queue.popleft()
                for imported in imported_eagerly(chain[-1]):
                    if _under(imported, forbidden):
                        edge = (chain[-1], imported)
                        if len(chains.get(edge, chain * 2)) > len(chain):
                            chains[edge] = [*chain, imported]
                    elif imported not in seen:
                        seen.add(imported)
                        queue.append([*chain, imported])
        found = [chains[edge] for edge in sorted(chains)]
        return ContractCheck(kept=not found, warnings=None, metadata={"chains": found})

    def render_broken_contract(self, check: ContractCheck) -> None:
        """Print each chain of imports, made at import time, that reaches a forbidden module."""
        for chain in check.metadata["chains"]:
            output.print_error(" -> ".join(chain))
            output.new_line()
