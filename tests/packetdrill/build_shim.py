#!/usr/bin/env python3
"""Build the packetdrill shim: net9pd.so (and pdselftest, the small driver
its own tests use) from net9pd.c and pdselftest.c, for the Python running
this script, whose net9 the shim will import.

    python tests/packetdrill/build_shim.py [--out DIR] [--force]

Prints the path of net9pd.so.  The object embeds this interpreter: its
libpython, its executable (so a venv's site-packages are found) and its
sys.path are compiled in (NET9_PD_SYSPATH and NET9_PD_DIR override the
path at run time).  Nothing is rebuilt when the outputs are newer than
their sources.
"""

from __future__ import annotations

import argparse
import glob
import os
import shlex
import subprocess
import sys
import sysconfig

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "build")


class BuildError(Exception):
    pass


def _libpython():
    """(directory, link name, soname) of a shared libpython for this
    interpreter.  Debian's python3 is linked statically but ships
    libpythonX.Y.so for embedding (libpythonX.Y-dev)."""
    v = sysconfig.get_config_var("LDVERSION") or "%d.%d" % sys.version_info[:2]
    name = "python" + v
    soname = sysconfig.get_config_var("INSTSONAME") or ""
    if not soname.endswith(".a") and ".so" not in soname:
        soname = ""
    dirs = []
    for var in ("LIBDIR", "LIBPL"):
        d = sysconfig.get_config_var(var)
        if d:
            dirs.append(d)
            multi = sysconfig.get_config_var("MULTIARCH")
            if multi:
                dirs.append(os.path.join(d, multi))
    for d in dirs:
        hits = sorted(glob.glob(os.path.join(d, "lib%s.so*" % name)))
        if hits:
            if not soname or soname.endswith(".a"):
                soname = os.path.basename(hits[-1])
            return d, name, soname
    raise BuildError("no shared lib%s.so for this interpreter (looked in %s); "
                     "install the Python development package" % (name, ", ".join(dirs)))


def _cc():
    cc = sysconfig.get_config_var("CC") or "cc"
    return shlex.split(cc)


def _stale(out, srcs):
    if not os.path.exists(out):
        return True
    t = os.path.getmtime(out)
    return any(os.path.getmtime(s) > t for s in srcs)


def build(out_dir: str = DEFAULT_OUT, force: bool = False, quiet: bool = True) -> str:
    """Build (if needed) and return the path of net9pd.so."""
    os.makedirs(out_dir, exist_ok=True)
    so = os.path.join(out_dir, "net9pd.so")
    drv = os.path.join(out_dir, "pdselftest")
    src = os.path.join(HERE, "net9pd.c")
    drvsrc = os.path.join(HERE, "pdselftest.c")
    hdr = os.path.join(HERE, "pdinterface.h")      # the table both include
    me = os.path.abspath(__file__)
    libdir, libname, soname = _libpython()
    inc = sysconfig.get_paths()["include"]
    syspath = ":".join(p for p in sys.path if p and os.path.isabs(p))
    cstr = lambda s: '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')
    defs = [
        "-DNET9PD_LIBPYTHON=%s" % cstr(soname),
        "-DNET9PD_PYTHON=%s" % cstr(sys.executable),
        "-DNET9PD_DIR=%s" % cstr(HERE),
        "-DNET9PD_SYSPATH=%s" % cstr(syspath),
    ]
    stamp = os.path.join(out_dir, "net9pd.flags")
    flags_now = "\n".join(defs + [libdir, libname])
    old = open(stamp).read() if os.path.exists(stamp) else None
    cmds = []
    if force or old != flags_now or _stale(so, [src, hdr, me]):
        cmds.append(_cc() + ["-shared", "-fPIC", "-O2", "-Wall", "-Wno-unused-result",
                             "-o", so + ".tmp", src, "-I" + inc] + defs
                    + ["-L" + libdir, "-l" + libname, "-Wl,-rpath," + libdir, "-ldl"])
    if force or _stale(drv, [drvsrc, hdr, me]):
        cmds.append(_cc() + ["-O2", "-Wall", "-o", drv + ".tmp", drvsrc, "-ldl", "-lpthread"])
    for cmd in cmds:
        if not quiet:
            print(" ".join(shlex.quote(c) for c in cmd), file=sys.stderr)
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise BuildError("%s failed:\n%s" % (" ".join(cmd), r.stdout))
        tmp = cmd[cmd.index("-o") + 1]
        os.replace(tmp, tmp[:-len(".tmp")])
    with open(stamp, "w") as f:
        f.write(flags_now)
    return so


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="output directory (default %(default)s)")
    ap.add_argument("--force", action="store_true", help="rebuild even if up to date")
    a = ap.parse_args()
    try:
        print(build(a.out, a.force, quiet=False))
    except BuildError as e:
        sys.exit("build_shim.py: %s" % e)


if __name__ == "__main__":
    main()
