"""The receive window on the path users take: Linux in a network namespace
sends 64 MB to a `net9 serve` process, read by a 9P client through
net9.dial in 128 KiB reads.  net9's queue used to stop just short of its
limit (less than one unit of the window scale left: window 0, but no flow
control), the reader drained it, and no window update went out: Linux
waited for its persist timer, 200 ms at a time.  The capture of the TUN
(net9 serve --pcap) must show no zero-window probe from Linux and no
pause over 20 ms after net9 offered less than an MSS.

Skipped with the reason when not root or without /dev/net/tun, ip or
pyroute2.
"""

import hashlib
import os
import random
import shutil
import signal
import socket
import tempfile
import threading


import linuxns

pytestmark = linuxns.skip_unless_linux()

from net9 import sim  # noqa: E402
from net9.media import read_pcap  # noqa: E402

from served import Serve  # noqa: E402

SIZE = 64 << 20
READ = 128 << 10


def analyse(pcap, lport):
    """(zero-window probes from Linux, the longest pause after net9 offered
    less than an MSS, packets) of the transfer to net9's port lport."""
    pkts = [(t, sim.parse(b)) for t, _, b in read_pcap(pcap)]
    pkts = [(t, g) for t, g in pkts if g.sport == lport or g.dport == lport]
    scale = 0
    mss = 1460
    una = None                  # highest ACK net9 sent
    probes = 0
    worst = 0.0
    small_since = None          # time net9 last offered < MSS, still offered
    for t, g in pkts:
        if g.sport == lport:                         # net9 -> Linux
            if "S" in g.flags:
                scale = g.options.get("ws", 0)
                mss = g.options.get("mss", mss)
                continue
            una = g.ack
            win = g.window << scale
            if win < mss:
                if small_since is None:
                    small_since = t
            else:
                small_since = None
        else:                                        # Linux -> net9
            if small_since is not None:
                worst = max(worst, t - small_since)
            if ("S" not in g.flags and "F" not in g.flags and not g.payload
                    and una is not None and g.seq == (una - 1) & 0xFFFFFFFF):
                probes += 1
    return probes, worst, len(pkts)


def test_64mb_to_net9_through_9p_no_window_stall(tmp_path):
    from net9.dial import Net
    ns = linuxns.Netns()
    d = tempfile.mkdtemp()
    os.chmod(d, 0o700)
    sock = os.path.join(d, "net9")
    pcap = str(tmp_path / "w.pcap")
    s = Serve("--netns", ns.name, "--srv", "unix!" + sock, "--pcap", pcap)
    net = None
    sender = None
    data = random.Random(64).randbytes(SIZE)
    try:
        net = Net(srv="unix!" + sock, user="root")
        ann = net.announce("tcp!*!7500")
        err = []

        def send():
            try:
                c = ns.socket(socket.AF_INET, socket.SOCK_STREAM)
                c.settimeout(60)
                c.connect(("10.9.0.2", 7500))
                c.sendall(data)
                c.close()
            except Exception as e:          # reported below
                err.append(e)
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        call = ann.listen()
        conn = call.accept()
        conn.settimeout(60)
        h = hashlib.sha256()
        n = 0
        while True:
            b = conn.recv(READ)
            if not b:
                break
            h.update(b)
            n += len(b)
        sender.join(30)
        assert not err, err
        assert n == SIZE and h.digest() == hashlib.sha256(data).digest()
        conn.close()
        ann.close()
        net.close()
        net = None
        assert s.stop() == 0
        probes, worst, npk = analyse(pcap, 7500)
        print("window: %d packets, %d zero-window probes, longest pause after a small "
              "window %.1f ms" % (npk, probes, worst * 1000))
        assert npk > SIZE // 65536
        assert probes == 0
        assert worst < 0.020
    finally:
        if net is not None:
            net.close()
        s.stop(signal.SIGKILL)
        ns.close()
        shutil.rmtree(d, ignore_errors=True)
