"""A mount by the Linux kernel's v9fs: ../shared/tools/v9fs boots a small
Linux under qemu that mounts `net9 serve` (running here, on
tcp!127.0.0.1!PORT) and runs a shell script in the mount, for 9p2000.L and
9p2000: `ls -l` of the tree, `cat tcp/stats`, and the shell recipe of
devip.md 13.7 (hold clone open on a descriptor, echo connect > ctl, write
and read data) with the other end a listener announced through the same
mount, then the same with a name, through cs (echo the name to cs on a
descriptor, read the answer back as a line, clone and connect it).  Needs
the harness prepared (setup.sh, run by .ci/run as root)."""

import os
import shutil
import socket
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
V9FS = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "tools", "v9fs"))
RUN = os.path.join(V9FS, "run-v9fs.sh")


def _missing():
    if not os.path.exists(RUN):
        return "no v9fs harness at %s" % V9FS
    if shutil.which("qemu-system-x86_64") is None:
        return "qemu-system-x86_64 not installed (run %s/setup.sh)" % V9FS
    cache = os.path.join(os.environ.get("V9FS_WORK", "/tmp/v9fs"), "cache")
    if not os.path.isdir(cache) or not os.listdir(cache):
        return "v9fs kernel cache empty (run %s/setup.sh)" % V9FS
    return None


pytestmark = [pytest.mark.kernel, pytest.mark.skipif(_missing() is not None, reason=_missing() or "")]
pytest.importorskip("net9.stack", reason="net9.stack (the event loop) not built yet")

from served import Serve  # noqa: E402

SCRIPT = r"""
set -e
echo "## ls -l"
ls -l
echo "## order"
find . -maxdepth 1 -mindepth 1
echo "## ls -l tcp"
ls -l tcp
echo "## cat tcp/stats"
cat tcp/stats
echo "## recipe"
# the listening side: announce 8080, wait for a call in the background
exec 5<>tcp/clone
read -r s <&5 || true
echo "announce 8080" >&5
(
  exec 6<>tcp/$s/listen
  read -r m <&6 || true
  echo "listener: call on $m"
  dd if=tcp/$m/data bs=18 count=1 2>/dev/null > /tmp/req
  printf 'reply-from-listener\n' > tcp/$m/data
  exec 6>&-
) &
sleep 1
# devip.md 13.7: hold clone on fd 3, connect, write and read data
exec 3<>tcp/clone
read -r n <&3 || true
echo "conversation $n"
echo 'connect 127.0.0.1!8080' >&3
cat tcp/$n/remote
printf 'GET / HTTP/1.0\r\n\r\n' > tcp/$n/data
cat tcp/$n/data
exec 3>&-
wait
echo "request seen: $(tr -d '\r\n' < /tmp/req)"
echo "## status after close"
head -c 7 tcp/$n/status; echo
exec 5>&-
echo "## cs recipe"
# as Plan 9's dial does: ask cs, then clone and connect what it answered
exec 5<>tcp/clone
read -r s <&5 || true
echo "announce 8081" >&5
(
  exec 6<>tcp/$s/listen
  read -r m <&6 || true
  printf 'reply-by-name\n' > tcp/$m/data
  exec 6>&-
) &
sleep 1
exec 4<>cs
echo 'tcp!localhost!8081' >&4
read -r clone addr <&4 || true
exec 4>&-
echo "cs answered: $clone $addr"
exec 3<>"${clone#/net/}"
read -r n <&3 || true
echo "connect $addr" >&3
cat tcp/$n/data
exec 3>&-
wait
exec 5>&-
echo "## done"
"""


def freeport():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


@pytest.mark.parametrize("version", ["9p2000.L", "9p2000"])
def test_v9fs_mount(version, tmp_path):
    port = freeport()
    srv = Serve("--tun", "none", "--srv", "tcp!127.0.0.1!%d" % port)
    try:
        script = tmp_path / "t.sh"
        script.write_text(SCRIPT)
        env = dict(os.environ, V9FS_TIMEOUT="150")
        r = subprocess.run(["bash", RUN, str(port), version, str(script)],
                           capture_output=True, text=True, timeout=240, env=env)
        out = r.stdout
        print(out)
        assert r.returncode == 0, "rc %d\n%s\n%s" % (r.returncode, out, r.stderr)
        # ls -l of the root: devip's order and modes
        top = out.split("## ls -l\n")[1].split("## order")[0].splitlines()
        names = [ln.split()[-1] for ln in top if ln and not ln.startswith("total")]
        order = ["tcp", "udp", "ipifc", "icmp", "icmpv6", "arp", "bootp", "ndb", "iproute",
                 "ipselftab", "log", "cs", "dns"]
        assert names == sorted(order)
        # readdir order (find lists it unsorted): devip's
        found = out.split("## order\n")[1].split("## ls -l tcp")[0].split()
        assert found == ["./" + x for x in order]
        modes = {ln.split()[-1]: ln.split()[0] for ln in top if ln and not ln.startswith("total")}
        assert modes["tcp"] == "dr-xr-xr-x" and modes["iproute"] == "-rw-rw-r--"
        assert modes["ipselftab"] == "-r--r--r--"
        stats = out.split("## cat tcp/stats\n")[1].split("## recipe")[0].splitlines()
        # tcp.c's 28 counters in its order, then (net9 serve's default
        # profile, modern) the counters beyond tcp.c
        from net9.tcp import statnames, xstatnames
        names = [line.split(":")[0] for line in stats]
        assert stats[0] == "MaxConn: 4096"
        assert names == list(statnames) + list(xstatnames)
        assert "reply-from-listener" in out
        assert "request seen: GET / HTTP/1.0" in out
        assert "127.0.0.1!8080" in out
        # /net/cs from a shell: the answer as a line, then the usual recipe
        assert "cs answered: /net/tcp/clone 127.0.0.1!8081\n" in out
        assert "reply-by-name" in out.split("## cs recipe")[1]
        assert "## done" in out
    finally:
        assert srv.stop() == 0
