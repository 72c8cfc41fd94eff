"""packetdrill scripts against net9 (tests/packetdrill/run.py), when
packetdrill is at hand: NET9_PACKETDRILL names a packetdrill binary built
from google/packetdrill (see tests/packetdrill/README.md), NET9_PD_SCRIPTS
the script directories (os.pathsep-separated: freebsd-net/tcp-testsuite,
google/packetdrill's gtests/net/tcp, ...).

net9's own scripts (tests/packetdrill/net9) model tcp.c and must all pass
in the 9front profile (in the modern profile they stop at the SYN-ACK's
window scale, RESULTS.md).  Of the others, in both profiles, every failure
must have a reason in tests/packetdrill/reasons.py (the tables of
RESULTS.md): a failure no rule explains fails this test.
"""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

PD = os.environ.get("NET9_PACKETDRILL")
SCRIPTS = [d for d in os.environ.get("NET9_PD_SCRIPTS", "").split(os.pathsep) if d]

pytestmark = pytest.mark.skipif(
    not PD, reason="NET9_PACKETDRILL does not name a packetdrill binary (the suite "
                   "needs google/packetdrill built outside net9: tests/packetdrill/README.md)")


def runs(paths, profile="9front"):
    import run
    scripts = run.find_scripts(paths)
    assert scripts, "no scripts in %s" % paths
    return run.run_all(os.path.abspath(PD), scripts, profile, jobs=2)


def test_net9_scripts_pass():
    bad = [r for r in runs([os.path.join(HERE, "net9")]) if not r.passed]
    assert not bad, "\n".join("%s (%s): line %s: %s" % (
        r.script, r.variant, (r.failure or {}).get("line"), (r.failure or {}).get("msg"))
        for r in bad)


@pytest.mark.skipif(not SCRIPTS, reason="NET9_PD_SCRIPTS names no script directories")
@pytest.mark.parametrize("profile", ["9front", "modern"])
def test_every_failure_explained(profile):
    bad = [r for r in runs(SCRIPTS, profile)
           if not r.passed and r.reason.startswith("unexplained")]
    assert not bad, "\n".join("%s (%s): line %s: %s" % (
        r.script, r.variant, (r.failure or {}).get("line"), r.reason) for r in bad)
