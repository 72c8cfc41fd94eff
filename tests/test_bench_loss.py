"""bench/loss.py without namespaces: its options, its table on canned
results, and its drivers over loopback (the figures themselves are the
benchmark's business; nothing here is timed)."""

import importlib.util
import io
import json
import os
import socket
import threading

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = os.path.join(os.path.dirname(HERE), "bench", "loss.py")


@pytest.fixture(scope="module")
def loss():
    spec = importlib.util.spec_from_file_location("bench_loss", PATH)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def test_options(loss):
    a = loss.parse_args([])
    assert a.losses == [0.0, 1.0, 2.0, 5.0]
    assert a.profile_list == ["modern", "9front"]
    assert (a.mbytes, a.seconds, a.stall, a.repeat) == (20.0, 30.0, 30.0, 1)
    a = loss.parse_args(["--loss", "0.5,3", "--profiles", "9front", "--repeat", "2",
                         "--mbytes", "4"])
    assert a.losses == [0.5, 3.0] and a.profile_list == ["9front"]
    assert a.repeat == 2 and a.mbytes == 4.0
    for bad in (["--loss", "x"], ["--loss", "100"], ["--loss", "-1"], ["--repeat", "0"],
                ["--profiles", ","], ["--seconds", "0"]):
        with pytest.raises(SystemExit):
            loss.parse_args(bad)


def run(mb, stall, status="ok", nbytes=None, error=None, seconds=1.0):
    return {"MBps": mb, "stall": stall, "status": status, "error": error,
            "bytes": nbytes if nbytes is not None else int(mb * 1e6 * seconds),
            "seconds": seconds}


def meta(keys, has_tcp=True, repeat=1):
    return {"date": "2026-12-03 07:00:00 +0000", "host": "h", "cpus": 2, "kernel": "k",
            "python": "3.11", "git": "abc", "loadavg_start": [0.1, 0.2, 0.3],
            "loadavg_end": [0.4, 0.5, 0.6], "mbytes": 20, "seconds": 30, "stall": 30,
            "mtu": 1500, "repeat": repeat, "has_tcp": has_tcp, "keys": keys,
            "drops": {"1": {"ab": {"pkts": 1000, "dropped": 10},
                            "ba": {"pkts": 500, "dropped": 6}}}}


def table(loss, results, m):
    out = io.StringIO()
    loss.report(json.loads(json.dumps(results)), m, out)
    return out.getvalue()


def rows(text):
    return {tuple(ln.split()[:2]): ln.split()[2:] for ln in text.splitlines()
            if ln.startswith("  ") and ln.split()[0].endswith("%")}


def test_report_two_profiles(loss):
    keys = ["linux", "net9 modern", "net9 9front"]
    res = {
        "0": {"sink": {"linux": [run(300, 0.001)], "net9 modern": [run(150, 0.002)],
                       "net9 9front": [run(12, 0.01)]},
              "source": {"linux": [run(400, 0.0)], "net9 modern": [run(100, 0.0)],
                         "net9 9front": [run(190, 0.0)]}},
        "1": {"sink": {"linux": [run(200, 0.2)], "net9 modern": [run(120, 0.3)],
                       "net9 9front": [run(4.8, 1.5)]},
              "source": {"linux": [run(200, 0.2)], "net9 modern": [run(90, 0.4)],
                         "net9 9front": [run(13.4, 2.0)]}},
        "5": {"sink": {"linux": [run(96, 0.6)], "net9 modern": [run(60, 1.9)],
                       "net9 9front": [run(0.02, 30.0, "failed", 600000,
                                           "stall: no data for 30 s", 30.0)]},
              "source": {"linux": [run(18, 0.4)], "net9 modern": [run(10, 2.5)],
                         "net9 9front": [run(0.26, 3.0, "capped", 7800000, None, 30.0)]}},
    }
    t = table(loss, res, meta(keys))
    r = rows(t)
    assert r[("0%", "Linux->server")][:5] == ["300.00", "0.00", "150.00", "0.500", "0.00"]
    # no target at 0%: no verdict, the 9front column follows
    assert r[("0%", "Linux->server")][5] == "12.00"
    assert r[("1%", "Linux->server")][2:5] == ["120.00", "0.600", "0.30"]
    assert r[("1%", "Linux->server")][5] == "ok"
    assert r[("1%", "server->Linux")][5] == "MISS"          # 90 / 200 < 1/2
    assert r[("5%", "Linux->server")][5] == "ok"            # 0.625, stall 1.9 s
    assert r[("5%", "server->Linux")][5] == "MISS"          # 0.556 but a 2.5 s stall
    # the 9front column has no verdicts; a failed and a capped transfer are marked
    assert r[("5%", "Linux->server")][6:] == ["0.02!", "0.0002", "30.00"]
    assert r[("5%", "server->Linux")][6:] == ["0.26c", "0.014", "3.00"]
    assert "net9 9front 5% Linux->server: failed, 0.6 MB in 30.0 s: stall: no data for 30 s" in t
    assert "net9 9front 5% server->Linux: capped, 7.8 MB in 30.0 s" in t
    assert "net9 profiles: modern, 9front (net9 serve --tcp)" in t
    assert "missed in 2 of 4 (1% server->Linux, 5% server->Linux)" in t
    assert "1%: 1.00% of 1000, 1.20% of 500" in t


def test_report_without_tcp_option_and_repeats(loss):
    keys = ["linux", "net9 " + loss.NOTCP]
    res = {"1": {"sink": {"linux": [run(200, 0.2), run(100, 0.3), run(300, 0.1)],
                          "net9 tcp.c": [run(10, 1.0), run(60, 4.0), run(30, 0.5)]}}}
    t = table(loss, res, meta(keys, has_tcp=False, repeat=3))
    assert "net9 serve has no --tcp option: one profile, tcp.c's" in t
    assert "this net9 has no --tcp" in t
    r = rows(t)[("1%", "Linux->server")]
    # medians of MB/s, the median of the paired ratios (0.05, 0.6, 0.1), the worst stall
    assert r[:2] == ["200.00", "0.30"]
    assert r[2:5] == ["30.00", "0.100", "4.00"]
    assert r[5] == "MISS"
    assert "missed in 1 of 1 (1% Linux->server)" in t


def test_target_verdict(loss):
    assert loss.target_verdict(0.0, 0.1, 10.0) == ""
    assert loss.target_verdict(2.0, 0.1, 10.0) == ""
    assert loss.target_verdict(1.0, 0.5, 10.0) == "ok"      # no stall target at 1%
    assert loss.target_verdict(1.0, 0.49, 0.0) == "MISS"
    assert loss.target_verdict(5.0, 0.9, 2.0) == "ok"
    assert loss.target_verdict(5.0, 0.9, 2.01) == "MISS"
    assert loss.target_verdict(5.0, None, 0.0) == "MISS"
    assert loss.target_verdict(5.0, 0.9, None) == "MISS"


def free_ports():
    """A base port with base+0 and base+3 free on loopback."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + 3 > 65535:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", base + 3))
            return base
        except OSError:
            continue
    pytest.skip("no two free ports")


def test_drivers_over_loopback(loss):
    lines = []
    cv = threading.Condition()

    def out(ln):
        with cv:
            lines.append(ln)
            cv.notify_all()
    base = free_ports()
    loss.serve_linux("127.0.0.1", base, 10.0, 20.0, out)
    n = 3 * 1000 * 1000 + 17
    r = loss.client_sink("127.0.0.1", base, n, 20.0, 10.0)
    assert r["status"] == "ok" and r["bytes"] == n == r["sent"], r
    with cv:
        cv.wait_for(lambda: any(x.startswith("SINK ") for x in lines), 10)
    sink = [json.loads(x[5:]) for x in lines if x.startswith("SINK ")]
    assert sink and sink[0]["peer"] == r["local_port"] and sink[0]["bytes"] == n
    assert sink[0]["error"] is None and 0 <= sink[0]["gap"] <= sink[0]["t_end"] - sink[0]["t0"]
    r = loss.client_source("127.0.0.1", base, n, 20.0, 10.0)
    assert r["status"] == "ok" and r["bytes"] == n, r
    assert 0 <= r["stall"] <= r["seconds"]
    # a time cap of 0 cuts the transfer before it starts: "capped", not failed
    r = loss.client_source("127.0.0.1", base, n, 0.0, 10.0)
    assert r["status"] == "capped" and r["bytes"] < n


def test_source_driver_stall_fails(loss):
    """A server that accepts and sends nothing: the driver gives up after
    its stall limit and says so (with the bytes it had: none)."""
    base = free_ports()
    lst = socket.socket()
    lst.bind(("127.0.0.1", base + loss.SOURCE))
    lst.listen(1)
    held = []
    t = threading.Thread(target=lambda: held.append(lst.accept()[0]), daemon=True)
    t.start()
    try:
        r = loss.client_source("127.0.0.1", base, 1000, 20.0, 0.3)
    finally:
        t.join(5)
        for c in held:
            c.close()
        lst.close()
    assert r["status"] == "failed" and r["bytes"] == 0
    assert "stall" in r["error"] and r["stall"] >= 0.3


def test_report_without_linux(loss):
    """--no-linux: no ratio, so no verdict (not a MISS)."""
    res = {"5": {"source": {"net9 modern": [run(3.0, 0.5)]}}}
    t = table(loss, res, meta(["net9 modern"]))
    r = rows(t)[("5%", "server->Linux")]
    assert r == ["-", "-", "3.00", "-", "0.50"]
    assert "no stall over 2 s at 5%: not measured" in t
