"""An import-linter contract that no module is part of an import cycle, however long."""

from __future__ import annotations

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
