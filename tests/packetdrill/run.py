#!/usr/bin/env python3
"""Run packetdrill scripts against net9 through the shim (net9pd.so).

    tests/packetdrill/run.py --packetdrill PATH --scripts DIR [--scripts DIR ...]
        [--profile 9front|modern] [--jobs 2] [--table FILE] [--json FILE]
        [--relaxed] [--only GLOB] [-v]

Every *.pkt under each DIR (or a single file) runs in its own packetdrill
process (--so_filename=net9pd.so), --jobs at a time, and a table of
results is printed (or written to --table, markdown).  packetdrill and the
script sets are not part of net9: fetch and build them elsewhere (see
README.md); nothing here downloads or builds them.

A script that names its IP version (--ip_version=...) runs once; one that
does not runs in the three variants of packetdrill's own run_all.py
(ipv4, ipv4-mapped-ipv6, ipv6), as Linux's gtests expect.  Addresses are
fixed, never packetdrill's random ones, so runs repeat exactly.

Each run happens with tests/packetdrill/bin first on PATH: the scripts'
shell commands (sysctl, sockstat, tcpdrop, ...) reach those stand-ins,
which talk to the shim's stack, not to the host.  As root, each run is
also in its own network and mount namespace with /proc/sys read-only, so
a script that writes sysctls directly cannot change the host.

--relaxed: for every script whose first failure is at a line relax()
changes (the options of an outbound SYN or SYN-ACK, a getsockopt of
SO_RCVBUF/SO_SNDBUF), also run a copy with those expectations made
lenient (a file beside the script, removed at once) and report where that
copy fails, and why.  It is a diagnostic for finding net9 bugs behind a
first, explained failure; a relaxed run never turns a failure into a pass.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import build_shim as _build     # noqa: E402
import reasons as _reasons      # noqa: E402

V4 = dict(local="192.168.0.1", remote="192.0.2.1", gateway="192.168.0.1",
          netmask="255.255.0.0")
V6 = dict(local="fd3d:a0b:17d6::1", remote="fd3d:fa7b:d17d::1",
          gateway="fd3d:a0b:17d6:8888::1")
TIMEOUT = 120           # seconds of real time one packetdrill run may take


def find_scripts(paths, only=None):
    out = []
    for p in paths:
        if os.path.isfile(p):
            out.append(os.path.abspath(p))
            continue
        for d, dirs, files in os.walk(p):
            dirs.sort()
            for f in sorted(files):
                if f.endswith(".pkt"):
                    out.append(os.path.abspath(os.path.join(d, f)))
    if only:
        out = [s for s in out if any(fnmatch.fnmatch(s, "*" + g + "*") for g in only)]
    return out


_OPT = re.compile(r"^\s*--([a-z_]+)(?:=(\S+))?")
_PROFILE = re.compile(r"^//\s*net9-profile:\s*(9front|modern)\s*$")


def script_options(path):
    """The --name=value options at the top of a script, and "profile" if
    it names the profile it is written for (a `// net9-profile: modern`
    line: net9's own scripts of the modern profile; it then runs in that
    profile whatever --profile says)."""
    opts = {}
    with open(path, errors="replace") as f:
        for line in f:
            m = _OPT.match(line)
            if m:
                opts[m.group(1)] = m.group(2) if m.group(2) is not None else ""
            m = _PROFILE.match(line)
            if m:
                opts["profile"] = m.group(1)
    return opts


def run_profile(r):
    """The profile a Run ran in (its profile= flag)."""
    flags = r.flags.split(",") if isinstance(r.flags, str) else r.flags
    return next((f.split("=", 1)[1] for f in flags if f.startswith("profile=")), "9front")


def variants(path, opts, profile):
    """[(variant, packetdrill arguments, --so_flags)] for one script."""
    out = []
    ver = opts.get("ip_version")
    names = [ver] if ver else []
    if not ver:
        base = os.path.basename(path)
        if not base.endswith("v6.pkt"):
            names += ["ipv4", "ipv4-mapped-ipv6"]
        if not base.endswith("v4.pkt"):
            names.append("ipv6")
    for v in names:
        args = [] if ver else ["--ip_version=%s" % v]
        six = v == "ipv6"
        a = V6 if six else V4
        if ver:
            # the script names its version: its own addresses, if any, stand
            local = opts.get("local_ip", a["local"])
            remote = opts.get("remote_ip", a["remote"])
            for k, val in (("local_ip", local), ("remote_ip", remote),
                           ("gateway_ip", a["gateway"])):
                if k not in opts:
                    args.append("--%s=%s" % (k, val))
            if not six and "netmask_ip" not in opts:
                args.append("--netmask_ip=%s" % a["netmask"])
        else:
            # a variant: its addresses override the script's, as run_all.py's do
            local, remote = a["local"], a["remote"]
            args += ["--local_ip=%s" % local, "--remote_ip=%s" % remote,
                     "--gateway_ip=%s" % a["gateway"]]
            if not six:
                args.append("--netmask_ip=%s" % a["netmask"])
        mtu = opts.get("mtu")
        if mtu is None and six and not ver:
            mtu = "1520"            # run_all.py's ipv6 variant
            args.append("--mtu=1520")
        flags = ["profile=%s" % profile, "mtu=%s" % (mtu or "1500")]
        if six:
            flags += ["local6=%s" % local, "remote6=%s" % remote.split("/")[0]]
        else:
            flags += ["local4=%s" % local, "remote4=%s" % remote.split("/")[0]]
        if not ver:
            # run_all.py's definitions for the gtests
            args += ["-D", "TFO_COOKIE=3021b9d889017eeb", "-D", "CODE=host_unreachable",
                     "-D", "CMSG_LEVEL_IP=%s" % ("SOL_IPV6" if v != "ipv4" else "SOL_IP"),
                     "-D", "CMSG_TYPE_RECVERR=%s" % ("IPV6_RECVERR" if v != "ipv4"
                                                      else "IP_RECVERR")]
        out.append((v, args, ",".join(flags)))
    return out


def _isolation():
    """The command prefix that keeps a run off the host's settings."""
    if os.geteuid() != 0:
        return []
    pre = []
    if shutil.which("setpriv"):
        # no real-time scheduling for packetdrill (it asks for SCHED_RR):
        # the machine is shared, and virtual time needs none
        pre = ["setpriv", "--bounding-set", "-sys_nice"]
    if shutil.which("unshare"):
        pre += ["unshare", "--net", "--mount", "--propagation", "private", "--",
                "sh", "-c", "mount --bind /proc/sys /proc/sys && "
                "mount -o remount,bind,ro /proc/sys; exec \"$@\"", "net9pd"]
    return pre


def net9_path():
    """The sys.path entry whose net9 the harness imports, for the shim: the
    installed one, else this checkout's (an in-place build)."""
    try:
        import net9.conv    # noqa: F401
    except ImportError:
        sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
        for m in [m for m in sys.modules if m == "net9" or m.startswith("net9.")]:
            del sys.modules[m]
        import net9.conv    # noqa: F401
    import net9
    return os.path.dirname(os.path.dirname(os.path.abspath(net9.__file__)))


class Run:
    """One packetdrill run of one script variant."""

    def __init__(self, script, variant, args, flags):
        self.script = script
        self.variant = variant
        self.args = args
        self.flags = flags
        self.rc = None
        self.out = ""
        self.secs = 0.0
        self.failure = None         # parsed: dict
        self.reason = None
        self.relaxed = None         # (rc, failure) of the relaxed copy

    @property
    def passed(self):
        return self.rc == 0


def run_packetdrill(pd, so, script, args, flags, env, path_override=None, timeout=TIMEOUT):
    """(rc, combined output, seconds)."""
    target = path_override or script
    cmd = _isolation() + [pd, "--so_filename=%s" % so, "--so_flags=%s" % flags] + args \
        + [os.path.basename(target)]
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="net9pd-") as state:
        e = dict(env, NET9_PD_STATE=state)
        try:
            p = subprocess.run(cmd, cwd=os.path.dirname(target), env=e, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=timeout,
                               stdin=subprocess.DEVNULL)
            rc, out = p.returncode, p.stdout.decode("utf-8", "replace")
        except subprocess.TimeoutExpired as x:
            rc, out = "timeout", (x.stdout or b"").decode("utf-8", "replace")
        try:
            with open(os.path.join(state, "sysctl.log")) as f:
                sysctls = f.read()
        except OSError:
            sysctls = ""
    return rc, out, time.monotonic() - t0, sysctls


_ERRLINE = re.compile(r"^(?P<path>[^:\n]+\.pkt):(?P<line>\d+):\s*(?P<msg>.*)$", re.M)


def parse_failure(script, out):
    """What packetdrill said: dict(line, msg, script_pkt, actual_pkt, text)."""
    f = {"line": None, "msg": "", "script_pkt": None, "actual_pkt": None, "text": ""}
    m = None
    for m in _ERRLINE.finditer(out):
        break
    if m is not None:
        f["line"] = int(m.group("line"))
        f["msg"] = m.group("msg").strip()
        try:
            with open(script, errors="replace") as fh:
                lines = fh.read().split("\n")
            f["text"] = lines[f["line"] - 1].strip()
        except (OSError, IndexError):
            pass
    else:
        # no located error: the last non-empty lines
        tail = [x for x in out.strip().split("\n") if x.strip()][-3:]
        f["msg"] = " / ".join(t.strip() for t in tail)
    for name, key in (("script packet:", "script_pkt"), ("actual packet:", "actual_pkt")):
        i = out.find(name)
        if i >= 0:
            f[key] = out[i + len(name):].split("\n", 1)[0].strip()
    # "script packet" lines also appear as "script: ..." in newer packetdrill
    if f["script_pkt"] is None:
        mm = re.search(r"^script:\s*(.*)$", out, re.M)
        if mm:
            f["script_pkt"] = mm.group(1).strip()
    if f["actual_pkt"] is None:
        mm = re.search(r"^actual:\s*(.*)$", out, re.M)
        if mm:
            f["actual_pkt"] = mm.group(1).strip()
    return f


# ---------------------------------------------------------------- relaxed copies

_SYNOPT = re.compile(r"^(?P<head>\s*\S+\s+>\s+S\.?\s+.*?)(?P<opts><[^>]*>)(?P<tail>.*)$")
_BUFOPT = re.compile(r"^\s*\S+\s+getsockopt\(\s*\d+\s*,\s*SOL_SOCKET\s*,\s*SO_(RCV|SND)BUF\b")


_OUTWIN = re.compile(r"^(?P<head>\s*\S+\s+>\s+[.PFR]+\s+.*?)\s+win\s+\d+(?P<tail>.*)$")


def relax(text, profile="9front"):
    """The script with the expectations that describe the 9front profile's
    known differences made lenient: options of outbound SYNs and SYN-ACKs
    ignored (<...>), getsockopt of SO_RCVBUF/SO_SNDBUF dropped.  In the
    modern profile also the window of net9's other segments (packetdrill
    then does not check it: tcp.c's queue sizes, which the modern profile
    keeps, make it differ from the script's stack's).  Lines keep their
    numbers."""
    out = []
    for line in text.split("\n"):
        code = line.split("//", 1)[0]
        m = _SYNOPT.match(code)
        if m:
            line = m.group("head") + "<...>" + m.group("tail")
        elif _BUFOPT.match(code):
            line = "// (relaxed) " + line
        elif profile == "modern":
            mw = _OUTWIN.match(code)
            if mw:
                line = mw.group("head") + mw.group("tail")
        out.append(line)
    return "\n".join(out)


# ---------------------------------------------------------------- running

def run_all(pd, scripts, profile, jobs, relaxed=False, verbose=False, log=None):
    so = _build.build()
    env = dict(os.environ)
    env["PATH"] = os.path.join(HERE, "bin") + os.pathsep + env.get("PATH", "")
    env["NET9_PD_SYSPATH"] = os.pathsep.join([net9_path(), HERE])
    env["NET9_PD_DIR"] = HERE
    runs = []
    for s in scripts:
        opts = script_options(s)
        for v, args, flags in variants(s, opts, opts.get("profile", profile)):
            runs.append(Run(s, v, args, flags))

    def one(r):
        r.rc, r.out, r.secs, r.sysctls = run_packetdrill(pd, so, r.script, r.args, r.flags, env)
        if not r.passed:
            r.failure = parse_failure(r.script, r.out)
            if relaxed:
                with open(r.script, errors="replace") as f:
                    text = f.read()
                rtext = relax(text, run_profile(r))
                line = (r.failure or {}).get("line")
                changed = line is not None and text.split("\n")[line - 1:line] != \
                    rtext.split("\n")[line - 1:line]
                if changed:
                    # a copy beside the original, so that relative paths in
                    # its commands still resolve; removed at once (named by
                    # process: another run.py may be relaxing the same set)
                    tmp = os.path.join(os.path.dirname(r.script), ".net9pd-relaxed-%d-%s-%s" % (
                        os.getpid(), r.variant, os.path.basename(r.script)))
                    try:
                        with open(tmp, "w") as f:
                            f.write(rtext)
                        rc, out, _, _ = run_packetdrill(pd, so, r.script, r.args, r.flags, env,
                                                        path_override=tmp)
                    finally:
                        os.unlink(tmp)
                    rf = parse_failure(r.script, out) if rc != 0 else None
                    if rf is not None:
                        rf["output"] = out[-4000:]
                    r.relaxed = (rc, rf, _reasons.classify(r, rf, out) if rf else None)
            r.reason = _reasons.classify(r)
        return r

    done = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
        for r in ex.map(one, runs):
            done += 1
            if verbose or log:
                line = "%4d/%d %-4s %s (%s) %.1fs%s" % (
                    done, len(runs), "ok" if r.passed else "FAIL", r.script, r.variant,
                    r.secs, "" if r.passed else ": %s" % r.reason)
                print(line, file=log or sys.stderr, flush=True)
    return runs


def relpath(p, roots):
    for root in roots:
        root = os.path.abspath(root)
        if os.path.isfile(root):
            root = os.path.dirname(root)
        if p.startswith(root + os.sep):
            return os.path.relpath(p, os.path.dirname(root) if False else root)
    return p


def md_escape(s, limit=None):
    s = (s or "").replace("|", "\\|").replace("\n", " ").strip()
    s = re.sub(r"\s+", " ", s)
    if limit and len(s) > limit:
        s = s[:limit - 1] + "…"
    return s


def summary(runs):
    """Counts: (runs, passed, {reason: n}, {relaxed outcome: n})."""
    first, relaxed = {}, {}
    for r in runs:
        if r.passed:
            continue
        first[r.reason] = first.get(r.reason, 0) + 1
        if r.relaxed is not None:
            rrc, rf, rreason = r.relaxed
            k = "passes" if rrc == 0 else rreason
            relaxed[k] = relaxed.get(k, 0) + 1
    return len(runs), sum(1 for r in runs if r.passed), first, relaxed


def table(runs, roots, title=None):
    """Markdown: counts, reasons, and one row per run, failures explained."""
    n, npass, first, relaxed = summary(runs)
    lines = []
    if title:
        lines += ["### " + title, ""]
    lines += ["%d runs: %d pass, %d fail." % (n, npass, n - npass), ""]
    if first:
        lines += ["| reason of the first failure | runs |", "| --- | --- |"]
        for k, v in sorted(first.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append("| %s | %d |" % (k, v))
        lines.append("")
    if relaxed:
        lines += ["| relaxed copy (the profile's SYN options and buffer sizes let pass; "
                  "in modern also the window of net9's other segments) "
                  "| runs |", "| --- | --- |"]
        for k, v in sorted(relaxed.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append("| %s | %d |" % (k, v))
        lines.append("")
    lines.append("| script | variant | result | line | the script expects | net9 does "
                 "| reason | relaxed copy |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in runs:
        name = relpath(r.script, roots)
        if r.passed:
            lines.append("| %s | %s | pass | | | | | |" % (md_escape(name), r.variant))
            continue
        f = r.failure or {}
        expect, actual = _reasons.expect_actual(r)
        res = "timeout" if r.rc == "timeout" else "fail"
        rel = ""
        if r.relaxed is not None:
            rrc, rf, rreason = r.relaxed
            rel = "passes" if rrc == 0 else "line %s: %s" % ((rf or {}).get("line"), rreason)
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            md_escape(name), r.variant, res, f.get("line") or "", md_escape(expect, 90),
            md_escape(actual, 110), md_escape(r.reason), md_escape(rel)))
    return "\n".join(lines) + "\n"


def subject_table(runs, roots, title=None):
    """Markdown: the runs of the SACK, timestamps and loss-recovery
    scripts (reasons.subject), counted per subject and listed."""
    by = {}
    for r in runs:
        k = _reasons.subject(r.script)
        if k is not None:
            by.setdefault(k, []).append(r)
    lines = ["### " + title, ""] if title else []
    lines += ["| subject | runs | pass | fail |", "| --- | --- | --- | --- |"]
    for k in ("SACK", "timestamps", "loss recovery"):
        rs = by.get(k, [])
        n = sum(1 for r in rs if r.passed)
        lines.append("| %s | %d | %d | %d |" % (k, len(rs), n, len(rs) - n))
    lines += ["", "| subject | script | variant | result | line | the script expects "
              "| net9 does | reason | relaxed copy |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for k in ("SACK", "timestamps", "loss recovery"):
        for r in by.get(k, []):
            name = relpath(r.script, roots)
            if r.passed:
                lines.append("| %s | %s | %s | pass | | | | | |" % (k, md_escape(name), r.variant))
                continue
            f = r.failure or {}
            expect, actual = _reasons.expect_actual(r)
            rel = ""
            if r.relaxed is not None:
                rrc, rf, rreason = r.relaxed
                rel = "passes" if rrc == 0 else "line %s: %s" % ((rf or {}).get("line"), rreason)
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                k, md_escape(name), r.variant, "timeout" if r.rc == "timeout" else "fail",
                f.get("line") or "", md_escape(expect, 90), md_escape(actual, 110),
                md_escape(r.reason), md_escape(rel)))
    return "\n".join(lines) + "\n"


def legend():
    """The reasons, grouped, as markdown."""
    out = ["| reason | why |", "| --- | --- |"]
    for k, v in _reasons.REASONS.items():
        out.append("| %s | %s |" % (k, md_escape(v)))
    return "\n".join(out) + "\n"


def load_json(path):
    """The runs of an earlier --json, their reasons classified anew."""
    with open(path) as f:
        data = json.load(f)
    runs = []
    for d in data:
        r = Run(d["script"], d["variant"], [], ["profile=%s" % d.get("profile", "9front")])
        r.rc, r.secs, r.failure = d["rc"], d["secs"], d["failure"]
        r.out = d.get("output", "")
        if not r.passed:
            r.reason = _reasons.classify(r)
        rel = d.get("relaxed")
        if rel:
            rrc, rf = rel[0], rel[1]
            r.relaxed = (rrc, rf, _reasons.classify(r, rf, (rf or {}).get("output", ""))
                         if rf else None)
        runs.append(r)
    return runs


def main(argv=None):
    ap = argparse.ArgumentParser(description="Run packetdrill scripts against net9.")
    ap.add_argument("--packetdrill", help="the packetdrill binary")
    ap.add_argument("--scripts", action="append",
                    help="a directory of *.pkt (searched recursively) or one script")
    ap.add_argument("--profile", default="9front", choices=["9front", "modern"])
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    ap.add_argument("--only", action="append", help="only scripts whose path matches *GLOB*")
    ap.add_argument("--table", help="write the markdown table here (default: stdout)")
    ap.add_argument("--title", help="heading of the table")
    ap.add_argument("--json", help="write every run's details here")
    ap.add_argument("--relaxed", action="store_true",
                    help="also run relaxed copies of failing scripts (diagnostic)")
    ap.add_argument("--from-json", metavar="FILE",
                    help="render the table of an earlier --json run (reasons classified "
                         "anew) instead of running anything")
    ap.add_argument("--legend", action="store_true",
                    help="print the table of reasons (reasons.py) and exit")
    ap.add_argument("--subjects", metavar="FILE",
                    help="also write the table of the SACK, timestamps and loss-recovery "
                         "scripts here")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    if a.legend:
        sys.stdout.write(legend())
        return 0
    if a.from_json:
        runs = load_json(a.from_json)
        text = table(runs, a.scripts or [os.path.commonpath([r.script for r in runs])], a.title)
        if a.subjects:
            with open(a.subjects, "w") as f:
                f.write(subject_table(runs, a.scripts or [os.path.commonpath(
                    [r.script for r in runs])]))
        if a.table:
            with open(a.table, "w") as f:
                f.write(text)
        else:
            sys.stdout.write(text)
        return 0
    if not a.packetdrill or not a.scripts:
        ap.error("--packetdrill and --scripts are needed")
    net9_path()
    import pdshim
    try:
        pdshim.Shim("profile=%s" % a.profile).free()
    except ValueError as e:
        # not a failure of any script: there is nothing to run them against
        print("run.py: %s" % e, file=sys.stderr)
        return 2
    pd = os.path.abspath(a.packetdrill)
    if not os.access(pd, os.X_OK):
        ap.error("%s is not an executable packetdrill" % pd)
    scripts = find_scripts(a.scripts, a.only)
    if not scripts:
        ap.error("no *.pkt scripts in %s" % ", ".join(a.scripts))
    t0 = time.monotonic()
    runs = run_all(pd, scripts, a.profile, a.jobs, relaxed=a.relaxed, verbose=a.verbose)
    elapsed = time.monotonic() - t0
    text = table(runs, a.scripts, a.title)
    if a.subjects:
        with open(a.subjects, "w") as f:
            f.write(subject_table(runs, a.scripts))
    if a.table:
        with open(a.table, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    if a.json:
        with open(a.json, "w") as f:
            json.dump([dict(script=r.script, variant=r.variant, profile=run_profile(r),
                            rc=r.rc, secs=round(r.secs, 3),
                            failure=r.failure, reason=r.reason, relaxed=r.relaxed,
                            sysctls=getattr(r, "sysctls", ""),
                            output=r.out[-4000:] if not r.passed else "")
                       for r in runs], f, indent=1)
    npass = sum(1 for r in runs if r.passed)
    print("%d scripts, %d runs: %d pass, %d fail in %.0f s" % (
        len(scripts), len(runs), npass, len(runs) - npass, elapsed), file=sys.stderr)
    return 0 if npass == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
