"""Build net9: every cython/*.pyx becomes the extension module net9.<name>;
cmd/net9 is installed as the net9 command and man/ pages under share/man."""

import glob
import os
import sys

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def extensions():
    exts = []
    # NET9_EXT=csum,qio builds only those modules (for work on a few of them)
    only = [n for n in os.environ.get("NET9_EXT", "").split(",") if n]
    pyxs = sorted(glob.glob(os.path.join("cython", "*.pyx")))
    if not pyxs:
        # an sdist without its sources would install a package that cannot
        # import a single extension: refuse to build it at all
        raise SystemExit("setup.py: no cython/*.pyx here (%s): nothing to compile; "
                         "a net9 without its extensions does not work" % os.getcwd())
    for pyx in pyxs:
        name = os.path.splitext(os.path.basename(pyx))[0]
        if only and name not in only:
            continue
        exts.append(Extension("net9." + name, [pyx],
                              extra_compile_args=["-O2", "-Wno-unused-function"]))
    if only and not exts:
        raise SystemExit("setup.py: NET9_EXT=%s names no module of cython/" % ",".join(only))
    try:
        from Cython.Build import cythonize
    except ImportError:
        # an sdist only packs the sources (MANIFEST.in); anything that
        # compiles needs Cython ("pip install ." gets it from pyproject.toml)
        if set(sys.argv[1:]) & {"sdist", "egg_info", "--name", "--version"}:
            return exts
        raise SystemExit("setup.py: Cython is needed to compile net9's extensions "
                         "(pip install . fetches it; or pip install Cython)")
    # "from net9.qio cimport Queue" must find cython/qio.pxd under the
    # package's name: an include directory whose net9 is cython/ (a link made
    # here, so that neither the checkout nor the sdist needs to carry one)
    inc = os.path.join(HERE, "build", "pxd")
    link = os.path.join(inc, "net9")
    os.makedirs(inc, exist_ok=True)
    if os.path.realpath(link) != os.path.realpath(os.path.join(HERE, "cython")):
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.join(HERE, "cython"), link)
    return cythonize(exts, include_path=[inc, "cython"], language_level=3,
                     compiler_directives={"boundscheck": False,
                                          "wraparound": False,
                                          "cdivision": True,
                                          "embedsignature": True})


def manpages():
    out = {}
    for page in sorted(glob.glob(os.path.join("man", "*.[0-9]"))):
        sect = page.rsplit(".", 1)[1]
        out.setdefault("share/man/man" + sect, []).append(page)
    return sorted(out.items())


setup(
    name="net9",
    version="0.1.0",
    description="Plan 9's /net on Linux: a 9P file server over a userspace TCP/IP stack "
                "whose TCP is a port of 9front's tcp.c",
    packages=["net9"],
    # the extension modules' type stubs (tools/stubgen.py) and PEP 561's marker
    package_data={"net9": ["*.pyi", "py.typed"]},
    ext_modules=extensions(),
    scripts=[p for p in glob.glob(os.path.join("cmd", "*")) if os.path.isfile(p)],
    data_files=manpages(),
    python_requires=">=3.9",
    install_requires=["click>=8", "pyroute2"],
    extras_require={"test": ["pytest", "pytest-asyncio", "pytest-timeout", "hypothesis", "python-9p", "ruff"]},
    zip_safe=False,
)
