"""Why a packetdrill script fails against net9: classify() names the
reason of one failure (a key of REASONS), from what packetdrill said, the
script line it stopped at and what the shim printed.

The reasons are grouped (the first word of each key):

  profile   net9 follows tcp.c on purpose (the 9front profile): no SACK,
            no timestamps, no ECN, RFC 3390's initial window, tcp.c's
            timers, buffer sizes and window scale, MSS rules
  departure one of net9's documented departures from tcp.c (net9(4),
            DEPARTURES)
  os        behaviour of the stack the script was written for (FreeBSD,
            Linux) that neither tcp.c nor the RFCs ask of net9
  socket    the shim's socket layer over devip: a BSD socket call or
            option devip has no equivalent for
  tool      packetdrill itself, or the script's environment (nplab
            packetdrill syntax, FreeBSD-only names, the host kernel's
            tools, code events that bypass the shared object)
  bug       a net9 bug (fixed or to fix; RESULTS.md says which)

In the modern profile's runs (run.flags has profile=modern) a "profile"
reason names tcp.c behaviour the modern profile keeps (its window scale,
MSS rules, queue sizes, timers); the rules that say "no SACK" or "no
timestamps" do not apply there, and a few "modern" reasons are its own.

A failure no rule explains is "unexplained: ..." and is a bug of this
table until someone looks at it.
"""

from __future__ import annotations

import re

REASONS = {
    # ---- the 9front profile (tcp.c as ported)
    "profile: SYN options":
        "The script expects SACK-permitted and/or timestamp options on a SYN or SYN-ACK. "
        "tcp.c sends MSS and window scale only: no SACK (RFC 2018), no timestamps "
        "(RFC 7323) in the 9front profile.",
    "profile: window scale":
        "The SYN's window-scale option differs: tcp.c offers shift 4 (Defadvscale) on a "
        "SYN, answers a SYN-ACK with its own shift only when the peer's was not 0, and "
        "on IPv4 always carries the option, even with shift 0 (tcp.c's \"always offer\").",
    "profile: IPv6 MSS":
        "tcp.c offers DEF_MSS6 (1220) on IPv6 unless the route to the peer is an "
        "interface route; packetdrill's peer sits behind a gateway.",
    "profile: SACK blocks":
        "The script expects SACK blocks on ACKs (or sends SACK and expects the sender "
        "to use them): no SACK in the 9front profile.",
    "profile: timestamps":
        "The script sends or expects TCP timestamps: none in the 9front profile.",
    "profile: ECN":
        "The script expects ECN (ECE/CWR flags, ECT marks): tcp.c has no ECN.",
    "profile: initial window":
        "tcp.c's initial window is RFC 3390's (4380 bytes: three 1460-byte segments, "
        "four of 1000); the script expects Linux's ten segments (RFC 6928).",
    "profile: initial RTO":
        "tcp.c's first retransmission timer comes from its initial round-trip estimate "
        "(DEF_RTT 500 ms) on 50 ms ticks and backs off from there; the script expects "
        "RFC 6298's 1 s (and its own stack's back-off).",
    "profile: retransmission timer":
        "tcp.c's retransmission timer (srtt + 4 mdev on 50 ms ticks, bounded 0.3..64 s) "
        "fires at another time than the script's stack's.",
    "profile: delayed ACK":
        "tcp.c acknowledges from its ack timer, run by the 50 ms tick of tcpackproc, "
        "where the script's stack acknowledges at once or after its own delay.",
    "profile: buffer sizes":
        "SO_RCVBUF/SO_SNDBUF report net9's queue limits (tcp.c's QMAX, 64 KiB-1, "
        "scaled once the window scale is agreed), not the script's stack's defaults.",
    "profile: receive window":
        "The advertised window differs: tcp.c offers QMAX (65535) shifted by its scale "
        "and its queue limits follow the peer's scale; a script that aims a segment at "
        "its stack's window edge (FreeBSD's 65700 bytes) lands outside net9's and is "
        "dropped without an answer (RFC 9293), where the script expects the in-window "
        "answer.",
    "profile: no fast retransmit":
        "The script expects a fast retransmit or limited transmit that tcp.c's "
        "recovery (NewReno after three duplicate ACKs, no limited transmit) does not "
        "make at that point.",
    "profile: simultaneous open":
        "tcp.c answers a SYN received in SYN-SENT by moving to SYN-RECEIVED and sends "
        "its SYN-ACK only when the SYN's retransmission timer fires (RFC 9293 "
        "3.10.7.3 sends it at once, as the modern profile does).",
    "profile: ICMP not checked":
        "tcp.c takes any ICMP unreachable for a connection in SYN-SENT as fatal, "
        "without checking the quoted sequence number (RFC 5927 section 4.1 advises "
        "checking it), and ignores ICMP for other states and for calls in limbo.",
    "profile: ICMP quote checksum":
        "packetdrill quotes the datagram in an ICMPv4 error with a zero IP header "
        "checksum; icmp.c (and net9) ignore an error whose quoted header does not "
        "check, as a router never sends one.",
    "profile: RST in TIME-WAIT":
        "A RST in the window ends a connection in TIME-WAIT in tcp.c (RFC 1337 advises "
        "ignoring it; FreeBSD does).",
    "profile: data in SYN":
        "tcp.c does not keep data or a FIN carried by a SYN or SYN-ACK (nor does it "
        "acknowledge it); the script's stack queues it.",
    "profile: FIN in LISTEN":
        "tcp.c answers any segment without SYN to a listener with a RST (tcpiput: no call "
        "in limbo, \"reset\"), also one with neither SYN nor ACK (here a FIN), which RFC "
        "9293 3.10.7.2 and the script's stack drop.",
    "profile: limbo SYN-ACK timer":
        "tcp.c's limbo resends its SYN-ACK after 250 ms, then 500 ms more, ... "
        "(SYNACK_RXTIMER * n); the script's stack (and RFC 6298, which the modern profile "
        "follows) waits 1 s, so the resent SYN-ACK comes where the script expects "
        "another segment.",
    "profile: limbo RST":
        "tcp.c's limbo (its SYN cache) drops a call only on a RST whose sequence number is "
        "exactly the SYN's + 1 (limborst) and ignores any other RST without an answer; "
        "the script's stack takes any RST in the window (insecure) or answers it with an "
        "RFC 5961 challenge ACK (secure).",
    "profile: keepalive interval":
        "tcp.c's keepalive interval is DEF_KAT, 120 s; the script expects its stack's "
        "(FreeBSD's keepidle, 7200 s).",
    "profile: keepalive":
        "tcp.c's keepalive probe carries one byte (BSD's old form) where the script "
        "expects none, or its timing differs.",
    # ---- the modern profile (issue 12)
    "modern: initial RTO":
        "The script (net9's own, written for tcp.c) expects tcp.c's first SYN or SYN-ACK "
        "retransmission (after DEF_RTT, 500 ms; limbo's after 250 ms * n); the modern "
        "profile waits 1 s, doubling, as RFC 6298 (2.1, 5.5) asks.",
    "modern: SYN-ACK window scale":
        "The script (net9's own, written for tcp.c) expects tcp.c's window scale on the "
        "SYN-ACK to a SYN that offered none; the modern profile leaves it off, as RFC "
        "7323 section 2.2 asks.",
    "modern: simultaneous open":
        "The script (net9's own, written for tcp.c) expects tcp.c's SYN-ACK of a "
        "simultaneous open, sent when the SYN's retransmission timer fires; the modern "
        "profile sends it at once, as RFC 9293 3.10.7.3 asks.",
    "modern: SYN options":
        "The script (net9's own, written for tcp.c) expects the 9front profile's SYN "
        "options; the modern profile also offers SACK-permitted and timestamps.",
    "modern: retransmission timer":
        "The modern profile's retransmission timer (RFC 6298 with a 200 ms floor, "
        "tcp.c's 50 ms ticks) fires at another time than the script's stack's (or, in "
        "net9's own scripts, tcp.c's).",
    "modern: RFC 5961 old ACK":
        "An ACK older than SND.UNA - MAX.SND.WND is dropped with a challenge ACK in the "
        "modern profile (RFC 5961 section 5); the script (net9's own) models tcp.c, "
        "which takes it as old news.",
    "modern: limbo challenge ACK":
        "In the modern profile limbo (tcp.c's SYN cache) follows RFC 5961 section 3.2: a "
        "RST in the SYN-ACK's window but not at IRS+1 gets a challenge ACK and the call "
        "stays; the script (FreeBSD's insecure_rst=1, RFC 793's rule) expects the call "
        "reset.",
    "tool: relaxed SYN hides TSval":
        "In a relaxed copy the SYN's options are not checked (<...>), so packetdrill "
        "knows no TSval of net9's to map the script's TS ecr to; the first run stopped "
        "earlier, at the SYN's layout.",
    "os: Linux drops an ACK of unsent data":
        "Linux drops a segment that acknowledges data not yet sent without an answer; "
        "net9 answers it with an ACK and drops it, as RFC 9293 (3.10.7.4) and RFC 5961 "
        "(5.2) ask. (TS.Recent is left alone, as the script checks next.)",
    "os: Linux RACK timer":
        "RACK's reordering timer: net9 marks the segment lost at RACK.rtt + reo_wnd "
        "(min_RTT/4) after it was sent (RFC 8985 6.2), 15 ms before Linux's timer "
        "(its own reo_wnd and timer slack) that the script expects within 5 ms.",
    "os: Linux resends a partly SACKed segment whole":
        "A segment whose last byte alone was SACKed: net9 resends only the bytes not "
        "SACKed (RFC 6675 NextSeg, which resends no SACKed data), where Linux, which "
        "cannot SACK-tag part of a one-MSS packet, resends the whole segment.",
    "os: SYN option layout":
        "net9 sends the options the script expects on a SYN or SYN-ACK, with the same "
        "values, in another layout: tcp.c's order (MSS, window scale, then the modern "
        "profile's SACK-permitted and timestamps) padded with NOPs, where FreeBSD pads "
        "with EOLs and Linux orders MSS, SACK-permitted, timestamps, NOP, window scale. "
        "RFC 9293 fixes neither; packetdrill compares the bytes.",
    "os: FreeBSD SACK excludes FIN":
        "FreeBSD's SACK blocks end at the last data byte of an out-of-order FIN "
        "segment; net9 (as Linux) covers the FIN's sequence number too. RFC 2018 "
        "does not say which.",
    "profile: no ACK ends a closing connection":
        "A segment without ACK in FIN-WAIT, CLOSING, LAST-ACK or TIME-WAIT takes tcp.c's "
        "raise path, whose tcpkick closes the conversation (\"Hangup\"); the peer's next "
        "segment finds none and is reset, where the script's stack acknowledges it.",
    "os: FreeBSD drop_synfin":
        "The script turns FreeBSD's net.inet.tcp.drop_synfin on, which drops SYN|FIN "
        "segments; tcp.c takes a SYN|FIN as a SYN (its FIN and data are not kept) and "
        "answers it.",
    # ---- documented departures
    "departure: challenge ACK":
        "net9 answers a SYN in a synchronized state with an RFC 5961 challenge ACK "
        "(net9(4) DEPARTURES); the script (an RFC 793 \"insecure\" variant) expects a RST.",
    # ---- the script's operating system
    "os: FreeBSD FIN in CLOSING":
        "FreeBSD sends its FIN again with the ACK of the peer's FIN in CLOSING (and the "
        "states around it); tcp.c sends a bare ACK, as RFC 9293 does.",
    "os: FreeBSD drops FIN without ACK":
        "FreeBSD drops a FIN without ACK in TIME-WAIT; tcp.c acknowledges it as an "
        "unacceptable segment (RFC 9293 3.10.7.4).",
    "os: FreeBSD ACK in TIME-WAIT":
        "FreeBSD acknowledges a segment beyond RCV.NXT in TIME-WAIT; tcp.c, as RFC 9293 "
        "(only a retransmitted FIN is looked for there), stays silent.",
    "os: FreeBSD drops at LISTEN":
        "FreeBSD drops a SYN-ACK sent to a listener; tcp.c answers an ACK-bearing segment "
        "to a listener with a RST, as RFC 9293 3.10.7.2 asks.",
    "os: Linux behaviour":
        "The script tests Linux-only behaviour (its congestion control, pacing, RACK/TLP, "
        "TSO sizing, autocorking, tcp_info counters).",
    "os: FreeBSD window update":
        "After a read FreeBSD announces the reopened window at once; net9 sends a "
        "window update on a read only when the window at least doubles (RFC 9293 "
        "3.8.6.2.2's receiver SWS avoidance, as Linux's tcp_cleanup_rbuf), so the "
        "script waits for an ACK that does not come (the next segment is a keepalive).",
    "os: FreeBSD socket error":
        "The script expects the socket error FreeBSD reports (e.g. ECONNREFUSED after an "
        "ICMP hard error, or an error after a RST in a closing state); the shim reports "
        "what ended the connection in net9, or nothing when tcp.c did not end it.",
    # ---- the socket layer
    "socket: no half-close":
        "devip has no half-close: shutdown(SHUT_WR) is the close ctl (a FIN after "
        "queued data), which also discards input; tcp.c then resets a peer that sends "
        "more data, where BSD would deliver it.",
    "socket: option net9 lacks":
        "A socket option net9 has no equivalent for fails with ENOPROTOOPT "
        "(SO_SNDBUF/SO_RCVBUF sizes, TCP_MAXSEG, TCP_CORK, TCP_NOTSENT_LOWAT, "
        "TCP_USER_TIMEOUT, TCP_INQ, SO_ZEROCOPY, TCP_CONGESTION, ...).",
    "socket: TCP Fast Open":
        "TCP Fast Open (RFC 7413): net9 has none (TCP_FASTOPEN* fail with "
        "ENOPROTOOPT, MSG_FASTOPEN with EOPNOTSUPP).",
    "socket: send flags":
        "A send or recv flag net9 has no equivalent for (MSG_MORE, MSG_EOR, "
        "MSG_ZEROCOPY, ...) fails with EOPNOTSUPP.",
    "socket: epoll, pipe, splice, sendfile":
        "epoll, pipes, splice and sendfile are not offered by the shim (ENOSYS).",
    "socket: tcp_info":
        "getsockopt(TCP_INFO) gives the fields tcp.c has (state, RTO, MSS, srtt, "
        "cwnd); the script checks one it does not have.",
    # ---- tools
    "tool: nplab packetdrill syntax":
        "The script needs nplab's packetdrill (FreeBSD's fork: #ifdef blocks, other "
        "syntax); google/packetdrill cannot parse it.",
    "tool: FreeBSD-only name":
        "The script names a FreeBSD-only constant (TCP_NOOPT, TCP_KEEPINIT, "
        "TCP_FUNCTION_BLK, ...) that Linux's packetdrill does not know.",
    "tool: TCP over UDP / MD5 options":
        "The script uses packetdrill options google/packetdrill lacks "
        "(udp_encapsulation, tcp_md5_secret).",
    "tool: ICMP code":
        "The script names an ICMP code google/packetdrill does not know.",
    "tool: code event":
        "packetdrill's code events (%{ ... }%) read tcp_info with the kernel's getsockopt "
        "on the live descriptor; with --so_filename that descriptor is not the shared "
        "object's, so the event cannot run.",
    "tool: empty socket tuple":
        "google/packetdrill sends the segments for a bound, unconnected socket from and "
        "to 0.0.0.0!0 (its live tuple is empty), so they reach no stack.",
    "tool: host kernel":
        "The script configures or reads the host kernel (sysctls through /proc/sys, "
        "routes, offloads, qdiscs, counters, /proc/net); a net9 run does not use it.",
    "tool: blocking call":
        "A call the script does not mark as blocking would block for ever (no event "
        "could end it); the shim fails it with EINTR.",
    "tool: addresses":
        "The script's fixed addresses do not fit the variant it runs in.",
}

GROUPS = ("profile", "departure", "os", "socket", "tool", "bug")

# ------------------------------------------------------------ helpers

_OPTS = re.compile(r"<([^>]*)>")
_FLAGS = re.compile(r"^\s*[\d.]+\s+(?P<flags>[A-Z.]+)\s")


def _opts(pkt):
    """Option names of a packet as packetdrill prints it."""
    if not pkt:
        return []
    m = _OPTS.search(pkt)
    if not m:
        return []
    out = []
    for o in m.group(1).split(","):
        o = o.strip()
        if not o:
            continue
        w = o.split()
        out.append(w[0] if w[0] != "TS" else "TS")
    return out


def _optval(pkt, name):
    m = _OPTS.search(pkt or "")
    if not m:
        return None
    for o in m.group(1).split(","):
        w = o.strip().split()
        if w and w[0] == name and len(w) > 1:
            return w[1]
    return None


def _flags(pkt):
    m = _FLAGS.match(pkt or "")
    return m.group("flags") if m else ""


def _syscall(text):
    m = re.match(r"^\s*[+]?[\d.]*\s*(?:\.\.\.\s*[\d.]+\s*)?(\w+)\(", text or "")
    return m.group(1) if m else None


def expect_actual(run, failure=None):
    """(what the script expects, what net9 does) for a failure."""
    f = failure if failure is not None else (run.failure or {})
    if f.get("script_pkt") or f.get("actual_pkt"):
        exp = f.get("text") or f.get("script_pkt") or ""
        act = f.get("actual_pkt") or "(nothing)"
        m = f.get("msg", "")
        if "timing error" in m:
            mm = re.search(r"happened at ([\d.]+) sec", m)
            if mm:
                act = "%s, at %s s" % (act, mm.group(1))
        return exp, act
    msg = f.get("msg", "")
    if "nothing to send" in (getattr(run, "out", "") or "") and "0 bytes" in msg:
        return f.get("text", ""), "sends nothing"
    return f.get("text", ""), msg


# ------------------------------------------------------------ rules

def is_modern(run):
    flags = getattr(run, "flags", None) or []
    if isinstance(flags, str):
        flags = flags.split(",")
    return "profile=modern" in flags


def _facts(run, failure=None, out=None):
    """What the rules read of a failure (run.failure unless given): the
    failure, packetdrill's output, its message, the script line, the
    script's and net9's packets, the script's path."""
    f = failure if failure is not None else (run.failure or {})
    out = out if out is not None else (getattr(run, "out", "") or "")
    return (f, out, f.get("msg", "") or "", f.get("text", "") or "",
            f.get("script_pkt"), f.get("actual_pkt"), getattr(run, "script", "") or "")


def classify(run, failure=None, out=None):
    """The reason key of a failure (run.failure unless given)."""
    if is_modern(run):
        k = _classify_modern(run, failure, out)
        if k is None:
            k = _classify(run, failure, out)
        _, _, msg, text, _, apkt, path = _facts(run, failure, out)
        if k in ("profile: timestamps", "profile: SACK blocks") and "/fastopen/" in path:
            k = "socket: TCP Fast Open"
        if k == "profile: timestamps":
            if re.search(r">\s+S\s", text) and "wscale 8" in text and "wscale 4" in (
                    apkt or ""):
                k = "profile: window scale"
        if k == "profile: SACK blocks":
            if "fack-last-mss" in path and "timing error" in msg:
                k = "os: Linux RACK timer"
            elif "fack-last-byte" in path and "tcp_seq" in msg:
                k = "os: Linux resends a partly SACKed segment whole"
        if k == "profile: limbo RST":
            # limborst follows RFC 5961 section 3.2 in the modern profile
            # (tcpdd): only a script that wants RFC 793's rule still stops
            k = ("modern: limbo challenge ACK" if "insecure" in path
                 else "unexplained: modern limbo RST")
        return {"profile: retransmission timer": "modern: retransmission timer"}.get(k, k)
    return _classify(run, failure, out)


def _classify(run, failure=None, out=None):
    f, out, msg, text, spkt, apkt, path = _facts(run, failure, out)
    name = path.rsplit("/", 1)[-1]
    sysc = _syscall(text)

    # -- packetdrill and the environment
    if "option 'udp_encapsulation' unknown" in msg or "option 'tcp_md5_secret'" in msg:
        return "tool: TCP over UDP / MD5 options"
    if "parse error" in msg or "syntax error" in msg:
        return "tool: nplab packetdrill syntax"
    if "unknown symbol" in msg:
        return "tool: FreeBSD-only name"
    if "bad ICMP code" in msg:
        return "tool: ICMP code"
    if "can't find getsockopt to get TCP info" in msg:
        return "tool: code event"
    if "unspecified address" in out and ("0 bytes" in msg or "sockstat" in msg):
        return "tool: empty socket tuple"
    if "error executing" in msg and (
            "Read-only file system" in out or "/proc/" in msg or "/proc/sys" in out
            or re.search(r"net9pd: (ip|tc|ethtool|nstat|setkey) ", out)):
        return "tool: host kernel"
    if re.search(r"bad IPv[46] address", msg):
        return "tool: addresses"
    if "would block for ever" in out and "Interrupted system call" in msg:
        return "tool: blocking call"

    # -- scripts whose subject net9 handles by tcp.c's rules (by path)
    if "S" in _flags(apkt) and "." in _flags(apkt) and "S" not in _flags(spkt) \
            and "via-listen" in name and not is_modern(run):
        return "profile: limbo SYN-ACK timer"
    if "rcv-rst" in path and "syn-rcvd" in path and "via-listen" in name and (
            "sockstat" in msg or "total_length" in msg or "payload_len" in msg):
        return "profile: limbo RST"
    if "rcv-rst" in path and "right-edge" in name and (
            "SO_ERROR" in text or "live packet payload" in msg or "tcp_fin" in msg):
        return "profile: receive window"
    if "rcv-rst" in path and "via-syn-sent-right-edge" in name and (
            "total_length" in msg or "payload_len" in msg):
        # a RST at FreeBSD's window edge is outside net9's: dropped, no
        # challenge ACK; the next segment is the SYN-ACK's retransmission
        return "profile: receive window"
    if "rcv-fin-time-wait" in path and "tcp_rst" in msg and "expected: 0" in msg:
        return "profile: no ACK ends a closing connection"
    if "dropping-enabled" in name:
        return "os: FreeBSD drop_synfin"
    if "rcv-ack-time-wait" in path and "0 bytes" in msg:
        return "os: FreeBSD ACK in TIME-WAIT"
    if "rcv-syn-ack-listen" in path and "tcp_syn" in msg:
        return "os: FreeBSD drops at LISTEN"
    if "rcv-fin-listen" in path and "tcp_syn" in msg:
        return "profile: FIN in LISTEN"
    if "KEEPIDLE" in text and "Bad getsockopt" in msg:
        return "profile: keepalive interval"
    if "sendfile" in path:
        return "socket: epoll, pipe, splice, sendfile"
    script_sack = False
    try:
        with open(path, errors="replace") as fh:
            script_sack = bool(re.search(r"<[^>]*\bsack \d", fh.read()))
    except OSError:
        pass

    # -- system calls
    if sysc in ("epoll_create", "epoll_ctl", "epoll_wait", "pipe", "splice", "sendfile"):
        return "socket: epoll, pipe, splice, sendfile"
    if "FASTOPEN" in text or "TFO" in text:
        return "socket: TCP Fast Open"
    if sysc in ("setsockopt", "getsockopt") and "Protocol not available" in msg:
        return "socket: option net9 lacks"
    if sysc == "getsockopt" and "Bad getsockopt optval" in msg:
        if re.search(r"SO_(RCV|SND)BUF", text):
            return "profile: buffer sizes"
        if "SO_ERROR" in text:
            if "rcv-icmp" in path:
                return ("profile: ICMP quote checksum" if "ipv4" in name
                        else "profile: ICMP not checked")
            return "os: FreeBSD socket error"
        if "TCP_INFO" in text:
            return "socket: tcp_info"
    if sysc in ("send", "sendto", "sendmsg", "recv", "recvmsg") and \
            "Operation not supported" in msg:
        return "socket: send flags"

    # -- packets
    sf, af = _flags(spkt), _flags(apkt)
    sopts, aopts = _opts(spkt), _opts(apkt)
    if spkt is not None and ("E" in sf or "W" in sf or "[ect" in (text or "")
                             or "[ce]" in (text or "")):
        return "profile: ECN"
    if "sack" in sopts and "sack" not in aopts:
        return "profile: SACK blocks"
    if "S" in sf and ("S" in af or apkt is None):
        if ("sackOK" in sopts or "TS" in sopts) and "sackOK" not in aopts:
            return "profile: SYN options"
        if "S" in af and "timing error" in msg:
            if "." in sf and "." in af and "syn-sent" in path or "via-syn-sent" in path:
                return "profile: simultaneous open"
            return "profile: initial RTO"
        if "S" in af:
            smss, amss = _optval(spkt, "mss"), _optval(apkt, "mss")
            if smss != amss and amss == "1220":
                return "profile: IPv6 MSS"
            if _optval(spkt, "wscale") != _optval(apkt, "wscale") or \
                    ("wscale" in sopts) != ("wscale" in aopts):
                return "profile: window scale"
            if "tcp_ack_seq" in msg:
                return "profile: data in SYN"
        if af and "S" not in af and ("listen" in path or "syn-sent" in path):
            if "fin" in name or "R" in af:
                return "profile: FIN in LISTEN" if "listen" in path else "profile: data in SYN"
    if "TS" in sopts or "unable to infer live TS" in msg or "TS val" in text:
        return "profile: timestamps"
    if script_sack and spkt is not None:
        return "profile: SACK blocks"
    if "tcp_win" in msg or "tcp_window" in msg:
        return "profile: receive window"
    if "fragment payload" in msg or ("tcp_seq" in msg and re.search(r"expected: \d+", msg)
                                     and "P." in sf and re.search(r"1:\d+\(\d+\)", spkt or "")):
        return "profile: initial window"
    if "timing error" in msg:
        if "." in af and "S" not in af and re.search(r"\(0\)", apkt or "") and "ack" in (apkt or ""):
            if "time-wait" in path and "rcv-fin" in path:
                return "os: FreeBSD drops FIN without ACK"
            return "profile: delayed ACK"
        if "S" in af:
            return ("profile: simultaneous open" if "." in af else "profile: initial RTO")
        return "profile: retransmission timer"
    if "tcp_fin" in msg and "expected: 1" in msg and ("closing" in path or "closing" in name
                                                     or "rcv-rst" in path or "rcv-syn" in path):
        return "os: FreeBSD FIN in CLOSING"
    if "tcp_rst" in msg and "expected: 1" in msg and "insecure" in name:
        return "departure: challenge ACK"
    if "tcp_rst" in msg and "expected: 0" in msg:
        if "shutdown" in path or "shutdown" in name:
            return "socket: no half-close"
    if "live packet payload" in msg and "actual 1 bytes" in msg:
        return "profile: keepalive"
    if "tcp_ack_seq" in msg and "syn" in path:
        return "profile: data in SYN"
    if "0 bytes" in msg and "nothing to send" in out:
        if "icmp" in name:
            return "profile: ICMP not checked"
        if "closed" in path or "closed" in name:
            return "tool: empty socket tuple"
        return "unexplained: net9 sends nothing"
    if "sockstat" in msg:
        if "TIME_WAIT" in msg:
            return "profile: RST in TIME-WAIT"
        return "unexplained: sockstat"
    if "/fastopen/" in path:
        # what a Fast Open script does after its first TFO step
        return "socket: TCP Fast Open"
    return "unexplained: " + re.sub(r"\d+", "N", msg)[:80]


def group(key):
    return key.split(":", 1)[0]


def _after_read(path, line):
    """Whether the script line before line (1-based) reads the socket."""
    try:
        with open(path, errors="replace") as fh:
            lines = fh.read().split("\n")
    except OSError:
        return False
    for k in range((line or 1) - 2, -1, -1):
        code = lines[k].split("//", 1)[0].strip()
        if code:
            return re.search(r"\b(read|recv|recvfrom|recvmsg|readv)\(", code) is not None
    return False


def _classify_modern(run, failure=None, out=None):
    """The modern profile's own rules, tried before the common ones; None
    when they have nothing to say.  Where classify()'s rules assume the
    9front profile (no SACK, no timestamps), this decides instead."""
    f, out, msg, text, spkt, apkt, path = _facts(run, failure, out)
    sf, af = _flags(spkt), _flags(apkt)
    sopts, aopts = _opts(spkt), _opts(apkt)
    relaxed = failure is not None and failure is not getattr(run, "failure", None)
    if relaxed and "unable to infer live TS" in msg:
        return "tool: relaxed SYN hides TSval"
    if "invalid_ack" in path and "tcp_ack_seq" in msg:
        return "os: Linux drops an ACK of unsent data"
    if "live packet payload" in msg and "actual 1 bytes" in msg and \
            _after_read(path, f.get("line")):
        return "os: FreeBSD window update"
    if spkt is None or "dropping-enabled" in path or "/fastopen/" in path:
        return None
    if "bad outbound TCP timestamp value" in msg and "." in af and "S" not in af \
            and re.search(r"\(0\)", apkt or ""):
        return "profile: delayed ACK"
    late = re.search(r"expected outbound packet at ([\d.]+) sec but happened at ([\d.]+)", msg)
    if late and af == "." and re.search(r"\(0\)", apkt or "") and "sack" not in sopts \
            and 0 < float(late.group(2)) - float(late.group(1)) <= 0.2:
        return "profile: delayed ACK"
    mlen = re.search(r"\d+:\d+\((\d+)\)", spkt)
    if mlen and int(mlen.group(1)) > 4380 and "S" not in sf and (
            "timing error" in msg or "tcp_seq" in msg
            or re.search(r"total payload: expected \d+ bytes vs actual 4380 bytes", msg)):
        return "profile: initial window"
    if "porthog-off" in path and "tcp_ack_seq" in msg and apkt is not None:
        return "modern: RFC 5961 old ACK"
    if "time-wait" in path and "sack" in aopts and "sack" not in sopts:
        return "unexplained: modern SACK in TIME-WAIT"     # (fixed: nothing is queued there)
    if "E" in sf or "W" in sf or "[ect" in text or "[ce]" in text:
        return "profile: ECN"
    m = re.search(r"expected: sack (\d+):(\d+) actual: sack (\d+):(\d+)", msg)
    if m and m.group(1) == m.group(3) and int(m.group(4)) == int(m.group(2)) + 1:
        try:
            with open(path, errors="replace") as fh:
                body = fh.read()
        except OSError:
            body = ""
        if re.search(r"<\s*F\.?\s+%s:%s\(0\)" % (m.group(2), m.group(2)), body):
            return "os: FreeBSD SACK excludes FIN"
    if "S" in sf and "S" in af:
        if "timing error" in msg:
            if "." in sf and "." in af and ("syn-sent" in path or "simultaneous" in path):
                # the modern profile sends it at once (RFC 9293 3.10.7.3)
                if "/net9/" in path:
                    return "modern: simultaneous open"
                return "unexplained: modern simultaneous open SYN-ACK time"
            if "/net9/" in path:
                return "modern: initial RTO"
            return "unexplained: modern SYN retransmission time"     # (RFC 6298's, fixed)
        smss, amss = _optval(spkt, "mss"), _optval(apkt, "mss")
        if smss != amss and amss == "1220":
            return "profile: IPv6 MSS"
        if "." in sf and "wscale" in sopts and "wscale" not in aopts:
            return "modern: SYN-ACK window scale"
        if ("sackOK" in aopts and "sackOK" not in sopts or "TS" in aopts and "TS" not in sopts) \
                and "/net9/" in path:
            return "modern: SYN options"
        if _optval(spkt, "wscale") != _optval(apkt, "wscale") or \
                ("wscale" in sopts) != ("wscale" in aopts):
            return "profile: window scale"
        if ("sackOK" in sopts) != ("sackOK" in aopts) or ("TS" in sopts) != ("TS" in aopts):
            return "unexplained: modern SYN options"
        pad = ("nop", "eol")
        if sopts != aopts and sorted(o for o in sopts if o not in pad) == \
                sorted(o for o in aopts if o not in pad):
            return "os: SYN option layout"
        return None
    if "tcp_win" in msg or "tcp_window" in msg:
        return "profile: receive window"
    if "sack" in sopts and "sack" not in aopts and apkt is not None:
        return "unexplained: modern sends no SACK block"
    if ("TS" in sopts or "unable to infer live TS" in msg) and "TS" not in aopts \
            and apkt is not None:
        return "unexplained: modern sends no timestamp"
    return None


# ------------------------------------------------------------ subjects

_SUBJECTS = (
    ("SACK", re.compile(r"sack|reordering", re.I),
     re.compile(r"<[^>]*\bsack \d")),
    ("timestamps", re.compile(r"ts_recent|timestamp|tsval|paws|rfc1323", re.I),
     re.compile(r"^\s*\S+\s+[<>]\s+[.PFR]+ [^\n]*TS val", re.M)),
    ("loss recovery", re.compile(
        r"fast_re(transmit|covery)|limited_transmit|rto|rtx|retrans|tlp|rack|frto|undo|"
        r"loss|recovery|cwnd", re.I), None),
)


def subject(path):
    """The modern profile's subjects a script tests (issue 15): "SACK",
    "timestamps", "loss recovery", or None; by its path, or for SACK also
    by SACK blocks in its packets."""
    name = path.replace("\\", "/")
    tail = "/".join(name.split("/")[-2:])
    for key, byname, bybody in _SUBJECTS:
        if byname.search(tail):
            return key
    for key, byname, bybody in _SUBJECTS:
        if bybody is not None:
            try:
                with open(path, errors="replace") as fh:
                    if bybody.search(fh.read()):
                        return key
            except OSError:
                pass
    return None
