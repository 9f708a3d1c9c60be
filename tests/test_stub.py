"""The type stub `combiner/_core.pyi` describes the built extension exactly: the same public
names, and for every function the same parameters (names, kinds and defaults' presence)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from combiner import _core

STUB = Path(_core.__file__).with_name("_core.pyi")
if not STUB.exists():  # an installed package ships the stub beside the source tree's copy
    STUB = Path(__file__).resolve().parents[1] / "python" / "combiner" / "_core.pyi"


def _stub_names() -> tuple[dict[str, ast.FunctionDef], set[str]]:
    tree = ast.parse(STUB.read_text())
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    others = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    others |= {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    return functions, others


def _public(module) -> set[str]:
    return {n for n in dir(module) if not n.startswith("_")}


def test_the_stub_names_exactly_the_public_members():
    functions, others = _stub_names()
    assert set(functions) | others == _public(_core)


def test_every_function_has_the_stubs_parameters():
    functions, _ = _stub_names()
    for name, node in functions.items():
        actual = inspect.signature(getattr(_core, name)).parameters.values()
        args = node.args
        stub = [(a.arg, "POSITIONAL_OR_KEYWORD") for a in args.posonlyargs + args.args]
        stub += [(a.arg, "KEYWORD_ONLY") for a in args.kwonlyargs]
        got = [(p.name, "KEYWORD_ONLY" if p.kind is p.KEYWORD_ONLY else "POSITIONAL_OR_KEYWORD") for p in actual]
        assert got == stub, name
        defaults_stub = len(args.defaults) + sum(d is not None for d in args.kw_defaults)
        defaults_got = sum(p.default is not p.empty for p in actual)
        assert defaults_got == defaults_stub, name
