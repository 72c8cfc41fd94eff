"""A user-space link between two net9 stacks, as a Plan 9 program would
make one with the pkt medium: on each stack, clone /net/ipifc, write
"bind pkt" and "add ADDR MASK" to its ctl, open its data, then copy every
datagram read from one stack's data to the other's (each read is one
datagram the stack sent, each write one it receives).  Closing the files
unbinds the interfaces.

    python pktrelay.py SRV1 ADDR1/PREFIX SRV2 ADDR2/PREFIX [--user U]

prints "ipifc N1 N2" when both interfaces are up and relays until SIGTERM
or SIGINT (or either stack unbinds its interface); then prints the
datagrams moved each way."""

from __future__ import annotations

import argparse
import ipaddress
import signal
import sys
import threading

from net9.client import ORDWR
from net9.dial import Net


class Side:
    """One stack's pkt interface over 9P."""

    def __init__(self, srv, cidr, user):
        self.net = Net(srv=srv, user=user)
        f = self.net.files
        iface = ipaddress.ip_interface(cidr)
        self.ctl = f.open("ipifc/clone", ORDWR)
        self.n = f.readnum(self.ctl)
        f.write(self.ctl, b"bind pkt")
        f.write(self.ctl, ("add %s %s" % (iface.ip, iface.network.netmask
                                          if iface.version == 4 else
                                          "/%d" % iface.network.prefixlen)).encode())
        self.data = f.open("ipifc/%s/data" % self.n, ORDWR)
        self.moved = 0

    def close(self):
        f = self.net.files
        try:
            f.write(self.ctl, b"unbind")      # readers of data see end of file
        except Exception:
            pass
        self.net.close()


def pump(a: Side, b: Side, stop: threading.Event):
    fa, fb = a.net.files, b.net.files
    try:
        while not stop.is_set():
            d = fa.read(a.data, 65536)
            if not d:
                break                          # unbound
            fb.write(b.data, d)
            a.moved += 1
    except Exception as e:                     # the other side went away
        if not stop.is_set():
            print("pktrelay: %s" % e, file=sys.stderr)
    stop.set()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("srv1")
    ap.add_argument("addr1")
    ap.add_argument("srv2")
    ap.add_argument("addr2")
    ap.add_argument("--user", default=None)
    o = ap.parse_args(argv)
    stop = threading.Event()

    def onsignal(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, onsignal)
    signal.signal(signal.SIGINT, onsignal)
    a = Side(o.srv1, o.addr1, o.user)
    b = Side(o.srv2, o.addr2, o.user)
    ts = [threading.Thread(target=pump, args=(x, y, stop), daemon=True)
          for x, y in ((a, b), (b, a))]
    for t in ts:
        t.start()
    print("ipifc %s %s" % (a.n, b.n), flush=True)
    while not stop.wait(0.5):
        pass
    a.close()
    b.close()
    for t in ts:
        t.join(10)
    print("moved %d %d" % (a.moved, b.moved), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
