"""net9/*.pyi, the type stubs of the extension modules, are what
tools/stubgen.py makes from the built modules now: a changed signature,
attribute or constant in cython/ that the stubs do not show fails here."""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(os.path.dirname(HERE), "tools")


def test_stubs_are_current():
    if not os.path.exists(os.path.join(TOOLS, "stubgen.py")):
        pytest.skip("no tools/stubgen.py beside the tests")
    sys.path.insert(0, TOOLS)
    try:
        import stubgen
    finally:
        sys.path.remove(TOOLS)
    import net9
    pkg = os.path.dirname(net9.__file__)
    for m in stubgen.MODULES:
        path = os.path.join(pkg, m + ".pyi")
        assert os.path.exists(path), "no stub %s (python tools/stubgen.py)" % path
        with open(path) as f:
            assert f.read() == stubgen.stub(m), "%s is stale: python tools/stubgen.py" % path


def test_stubs_name_what_the_modules_have():
    import ast
    import importlib

    import net9
    pkg = os.path.dirname(net9.__file__)
    for m in ("ninep", "conv", "tcp"):
        mod = importlib.import_module("net9." + m)
        with open(os.path.join(pkg, m + ".pyi")) as f:
            tree = ast.parse(f.read())
        names = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
        assert names and all(hasattr(mod, n) for n in names), m
