"""The manual pages: every man/*.N renders with `groff -man -Tutf8 -ww`
without a warning; net9(1) names every command and option the net9
command has (taken from the click group itself), net9(4) every file, ctl
message and error string of the tree."""

import glob
import os
import re
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
MAN = os.path.join(os.path.dirname(HERE), "man")
PAGES = sorted(glob.glob(os.path.join(MAN, "*.[0-9]")))

needgroff = pytest.mark.skipif(shutil.which("groff") is None,
                               reason="no groff (apt-get install groff-base)")


def render(page, hyphenate=True):
    argv = ["groff", "-man", "-Tutf8", "-ww", page]
    if not hyphenate:
        argv.insert(2, "-rHY=0")        # no words broken across lines
    r = subprocess.run(argv, capture_output=True, timeout=60)
    text = r.stdout.decode("utf-8")
    # undo the overstriking of bold and underline; plain hyphens and quotes
    text = re.sub(r".\x08", "", text)
    text = text.replace("\u2010", "-").replace("\u2212", "-").replace("\u2019", "'")
    return r.returncode, r.stderr.decode("utf-8", "replace"), text


def test_pages_exist():
    names = [os.path.basename(p) for p in PAGES]
    assert "net9.1" in names and "net9.4" in names


@needgroff
@pytest.mark.parametrize("page", PAGES, ids=os.path.basename)
def test_renders_without_warnings(page):
    rc, err, text = render(page)
    assert rc == 0 and err == "", err
    assert text.startswith("NET9(%s)" % page.rsplit(".", 1)[1])


@needgroff
def test_net9_1_has_every_command_and_option():
    pytest.importorskip("net9.stack", reason="net9 not built")
    from net9.cli import main
    rc, err, text = render(os.path.join(MAN, "net9.1"), hyphenate=False)
    flat = " ".join(text.split())
    missing = []
    for name, cmd in sorted(main.commands.items()):
        if "net9 %s" % name not in flat:
            missing.append("command " + name)
        for p in cmd.params:
            for opt in getattr(p, "opts", []) + getattr(p, "secondary_opts", []):
                if opt.startswith("-") and opt not in ("-h", "--help"):
                    if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(opt), flat):
                        missing.append("%s %s" % (name, opt))
    assert not missing, missing
    assert "--version" in flat and "NET9_SRV" in flat


@needgroff
def test_net9_4_has_every_file_message_and_error():
    rc, err, text = render(os.path.join(MAN, "net9.4"), hyphenate=False)
    flat = " ".join(text.split())
    words = set(re.findall(r"\w+", flat))
    files = ["clone", "stats", "ctl", "data", "err", "listen", "local", "remote", "status",
             "snoop", "arp", "bootp", "ndb", "iproute", "ipselftab", "log",
             "tcp", "udp", "ipifc", "icmp", "icmpv6", "cs", "dns"]
    msgs = ["connect", "announce", "bind", "ttl", "tos", "ignoreadvice", "addmulti",
            "delmulti", "remmulti", "close", "hangup", "keepalive", "checksum",
            "tcpporthogdefense", "headers", "add", "try", "del", "remove", "unbind",
            "mtu", "speed", "delay", "reflect", "reassemble", "iprouting", "ra6",
            "flush", "tag", "set", "clear", "accept", "reject", "pkt", "loopback", "tun",
            "ipv6", "refresh", "ptr", "cname"]
    missing = [w for w in files + msgs if w not in words]
    errors = ["file does not exist", "permission denied", "no free devices",
              "connection in use", "short control request", "unknown control request",
              "bad args to connect", "bad args to announce", "bad args to bind",
              "malformed address", "bad ip address syntax", "bad numeric port",
              "not a local IP address", "address in use", "no ports available",
              "not announced", "listen hungup", "connection refused",
              "connection timed out", "no route", "i/o on hungup channel", "Hangup",
              "connection must be in Establised state",
              "unknown value for tcpporthogdefense", "interrupted", "unsupported ctl",
              "interface not bound", "unknown interface type", "no interface",
              "bad arg in system call", "port unreachable", "interface already bound",
              "address not on this interface", "device or object already in use",
              "cs: can't translate address: dns: name does not exist",
              "cs: can't translate address: dns: resource does not exist; negrcode 0",
              "cs: temporary problem: dns: dns failure", "cs: can't translate service",
              "cs: request too long", "cs: query already in progress", "cs: bad query",
              "cs: no match", "cs: too much activity", "dns: name does not exist",
              "dns: dns failure", "dns: illegal request", "dns: unknown type",
              "dns: resolver cannot answer", "dns: writing at non-zero offset",
              "dns: request too long"]
    missing += [e for e in errors if e not in flat]
    # the mount recipes and the client limits
    for s in ["trans=unix,version=9p2000.L,cache=none", "version=9p2000", "9pfuse",
              "fusermount -u", "Tflush", "echo hangup", "exec 3<>/mnt/net/tcp/clone",
              "echo 'connect 10.9.0.1!80' >&3", "exec 3>&-", "exec 4<>/mnt/net/cs",
              "read -r clone addr <&4", "echo 'bind tun t2 ns2' >&6",
              "net9 snoop -i 0 | tshark -r -"]:
        if s not in flat:
            missing.append(s)
    assert not missing, missing


def test_setup_installs_every_page():
    src = open(os.path.join(os.path.dirname(HERE), "setup.py")).read()
    assert 'glob.glob(os.path.join("man", "*.[0-9]"))' in src
    assert "share/man/man" in src
