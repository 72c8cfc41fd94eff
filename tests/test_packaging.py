"""What pip users get: an sdist made from this checkout carries the Cython
sources (MANIFEST.in), a wheel built from that sdist alone holds every
extension module, and a fresh venv with only that wheel imports each of
them; net9.dial is the module and, called, dial(2)."""

import glob
import os
import subprocess
import sys
import tarfile
import types

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MODULES = sorted(os.path.splitext(os.path.basename(p))[0]
                 for p in glob.glob(os.path.join(REPO, "cython", "*.pyx")))


def test_net9_dial_is_the_module_and_callable():
    pytest.importorskip("net9.stack", reason="net9's extensions not built")
    import net9
    import net9.dial as d
    from net9 import dial
    assert isinstance(d, types.ModuleType) and d is dial is net9.dial
    assert d.Net is net9.Net and callable(d) and callable(d.dial)
    with pytest.raises(OSError):
        net9.dial("tcp!127.0.0.1!9", srv="unix!/nonexistent/net9", timeout=1)


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=900, **kw)


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_sdist_to_wheel_to_import(tmp_path):
    assert MODULES and "tcp" in MODULES
    r = run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path)], cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    (sdist,) = glob.glob(str(tmp_path / "net9-*.tar.gz"))
    with tarfile.open(sdist) as t:
        names = t.getnames()
    for m in MODULES:
        assert any(n.endswith("/cython/%s.pyx" % m) for n in names), m
    assert not any(n.endswith(".c") or n.endswith(".so") for n in names)
    assert any(n.endswith("/MANIFEST.in") for n in names)
    # the wheel is built from the sdist alone, in pip's isolated build
    # environment (setuptools and Cython from the package index)
    r = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "wheels"),
             sdist])
    if r.returncode != 0 and not os.environ.get("CI") and (
            "Could not find a version" in r.stderr or "Failed to establish" in r.stderr
            or "No matching distribution" in r.stderr):
        pytest.skip("the package index is out of reach (CI runs this)")
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-2000:])
    (wheel,) = glob.glob(str(tmp_path / "wheels" / "net9-*.whl"))
    venv = tmp_path / "venv"
    r = run([sys.executable, "-m", "venv", str(venv)])
    assert r.returncode == 0, r.stderr
    py = str(venv / "bin" / "python")
    r = run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel])
    assert r.returncode == 0, r.stderr[-2000:]
    code = ("import importlib, types, sys\n"
            "for m in %r:\n"
            "    importlib.import_module('net9.' + m)\n"
            "import net9.dial as d\n"
            "assert isinstance(d, types.ModuleType) and callable(d)\n"
            "print('ok', len(%r))\n" % (MODULES, MODULES))
    # from a directory without the checkout: only the installed wheel counts
    r = run([py, "-c", code], cwd=str(tmp_path))
    assert r.returncode == 0 and r.stdout.strip() == "ok %d" % len(MODULES), r.stderr[-3000:]


def test_a_tree_without_sources_refuses_to_build(tmp_path):
    # a setup.py with nothing to compile fails loudly instead of making a
    # package whose every extension import fails
    import shutil
    shutil.copy(os.path.join(REPO, "setup.py"), tmp_path / "setup.py")
    r = run([sys.executable, "setup.py", "build_ext"], cwd=str(tmp_path))
    assert r.returncode != 0
    assert "nothing to compile" in (r.stderr + r.stdout)
