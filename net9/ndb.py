"""/net/cs and /net/dns: Plan 9's connection server (ndb/cs) and domain
name service (ndb/dns) protocols, answered from the host's resolver.

    ns = NameService(loop)              # loop: call_soon_threadsafe, call_later
    netfs = NetFs(fs, ns=ns)            # the tree gets /net/cs and /net/dns

cs (9front's cs.c): a write of [net!]host[!service[!rest]] translates it;
each read then returns one answer, "/net/tcp/clone 10.9.0.1!80", one per
address (IPv4 first, then IPv6; an address on one of the stack's own
networks first), as cs gives them, without a newline.  "net" means the
networks worth trying (tcp); a network cs does not know is passed through
untranslated; "*" and "::" are the announce forms; "$attr" is looked up in
/net/ndb (and $dns in the host's resolv.conf); "!attr=val ..." queries
search /net/ndb and, for dom= and ip=, the resolver.  Services are
/etc/services' (getservbyname), then net9's own table.  Errors are cs's
texts: "cs: can't translate address: dns: name does not exist", "cs: can't
translate service", "cs: temporary problem: dns: dns failure", "cs: request
too long", "cs: query already in progress", "cs: bad query", "cs: no
match", "cs: too much activity".

dns (9front's dns.c): a write of "name type" (ip, ipv6, ptr, cname; a
ptr query may name an address) looks it up; each read returns one record
as dns formats it, "example.com ip\t93.184.216.34".  Errors are dns's:
"dns: name does not exist", "dns: resource does not exist; negrcode 0",
"dns: dns failure", "dns: illegal request ...", "dns: unknown type ...",
"dns: writing at non-zero offset", "dns: request too long"; types the
host's resolver cannot answer (mx, ns, txt, ...) fail with "dns: resolver
cannot answer TYPE queries".

Beyond cs and dns (net9 extensions): one trailing newline of a cs request
is dropped, as dns does (shells write lines); and a read that comes at the
offset a write left the file at (what a shell's descriptor does: echo >&4;
read <&4) starts at the first answer and gets the answers as lines, each
ending in a newline.  A read at offset 0 (Plan 9's dial seeks there) gets
them exactly as cs and dns give them.

Resolution never blocks the caller: lookups run on worker threads (at
most `workers` at once, `maxpending` waiting; beyond that "too much
activity"), each given up after `timeout` seconds ("dns failure"), and
their results are cached (the host's resolver reports no TTLs: answers
are kept `ttl` seconds, failures `negttl`).  Requests that need a lookup
complete later, on the loop's thread, through Job.done.
"""

from __future__ import annotations

import collections
import ipaddress
import queue
import socket
import threading
import time

from net9.errors import Net9Error

__all__ = ["NameService", "HostResolver", "LookupFailure", "Job", "CsFile", "DnsFile",
           "NXDOMAIN", "NODATA", "FAILURE", "BUSY"]

# failure kinds
NXDOMAIN = "name does not exist"
NODATA = "resource does not exist; negrcode 0"
FAILURE = "dns failure"
BUSY = "too much activity"

Maxrequest = 128          # cs.c and dns.h
Nreply = 20               # cs.c: answers to one request

# cs.c's networks: the ones it translates with iplookup/iptrans
IPNETS = ("tcp", "il", "udp", "icmp", "icmpv6", "rudp", "ssh")
# tried for "net!" (cs.c network[] entries not "considered"), when the
# stack has them
DEFNETS = ("tcp", "il")
SERVICENETS = ("tcp", "udp", "il")

# dns.c's types (rrtype) and which of them the host's resolver answers
DNSTYPES = ("ip", "a", "ns", "md", "mf", "cname", "soa", "mb", "mg", "mr", "null", "wks",
            "ptr", "hinfo", "minfo", "mx", "txt", "rp", "afsdb", "x25", "isdn", "rt", "nsap",
            "nsap-ptr", "sig", "key", "px", "gpos", "ipv6", "aaaa", "loc", "nxt", "eid",
            "nimloc", "srv", "atma", "naptr", "kx", "cert", "a6", "dname", "sink", "opt",
            "apl", "ds", "sshfp", "ipseckey", "rrsig", "nsec", "dnskey", "spf", "uinfo",
            "uid", "gid", "unspec", "tkey", "tsig", "ixfr", "axfr", "mailb", "maila", "all",
            "any", "caa", "dnskey", "nsec3")
DNSALIAS = {"a": "ip", "aaaa": "ipv6"}


class LookupFailure(Exception):
    """A lookup that failed: .kind is NXDOMAIN, NODATA or FAILURE."""

    def __init__(self, kind):
        super().__init__(kind)
        self.kind = kind


class NsError(Exception):
    """A cs or dns error text (without the "cs: "/"dns: " prefix)."""


# ---------------------------------------------------------------- the host's resolver

_NODATA_EAI = {getattr(socket, n) for n in ("EAI_NODATA", "EAI_ADDRFAMILY") if hasattr(socket, n)}


class HostResolver:
    """The lookups cs and dns need, through the C library (getaddrinfo,
    getnameinfo/gethostbyaddr): /etc/hosts, DNS, whatever nsswitch.conf
    says.  Each method blocks; NameService calls them on worker threads.
    Raise LookupFailure."""

    def addrs(self, name: str):
        """(IPv4 addresses, IPv6 addresses) of name, as text, in the
        resolver's order."""
        infos = self._getaddrinfo(name, 0)
        v4, v6 = [], []
        for fam, _, _, _, sa in infos:
            a = str(ipaddress.ip_address(sa[0].split("%")[0]))
            if fam == socket.AF_INET and a not in v4:
                v4.append(a)
            elif fam == socket.AF_INET6 and a not in v6:
                v6.append(a)
        return v4, v6

    @staticmethod
    def _getaddrinfo(name: str, flags: int) -> list:
        """getaddrinfo(name) for stream sockets of either family, its
        failures as LookupFailure (NXDOMAIN, NODATA or FAILURE)."""
        if not name or len(name) > 253:
            raise LookupFailure(NXDOMAIN)
        try:
            return socket.getaddrinfo(name, None, socket.AF_UNSPEC, socket.SOCK_STREAM,
                                      0, flags)
        except (UnicodeError, ValueError):
            raise LookupFailure(NXDOMAIN) from None
        except socket.gaierror as e:
            if e.errno == socket.EAI_NONAME:
                raise LookupFailure(NXDOMAIN) from None
            if e.errno in _NODATA_EAI:
                raise LookupFailure(NODATA) from None
            raise LookupFailure(FAILURE) from None
        except OSError:
            raise LookupFailure(FAILURE) from None

    def ptr(self, addr: str) -> str:
        """The name of an address."""
        try:
            name = socket.gethostbyaddr(addr)[0]
        except socket.herror:
            raise LookupFailure(NXDOMAIN) from None
        except socket.gaierror as e:
            if e.errno == socket.EAI_NONAME:
                raise LookupFailure(NXDOMAIN) from None
            raise LookupFailure(FAILURE) from None
        except (OSError, UnicodeError, ValueError):
            raise LookupFailure(FAILURE) from None
        if not name or name == addr:
            raise LookupFailure(NXDOMAIN)
        return name

    def cname(self, name: str):
        """The canonical name of name, or None when it is its own."""
        infos = self._getaddrinfo(name, socket.AI_CANONNAME)
        for i in infos:
            c = i[3]
            if c and c.rstrip(".").lower() != name.rstrip(".").lower():
                return c.rstrip(".")
        return None


# ---------------------------------------------------------------- jobs

class Job:
    """A cs or dns request in progress.  finished: it is over; then error
    (a text, or None) and value.  done: called with the Job when it
    finishes later, on the loop's thread."""

    __slots__ = ("gen", "finished", "error", "value", "done", "fin")

    def __init__(self, gen, fin):
        self.gen = gen
        self.fin = fin            # fin(job): what finishing does to the file
        self.finished = False
        self.error = None
        self.value = None
        self.done = None


def _answered(job, f, cnt, who):
    """A query written to f (cnt bytes) finished: its answer becomes f's
    replies and the write returns cnt, or the write fails with its error,
    prefixed with who (cs, dns)."""
    if job.error is None:
        f.replies = job.value
        job.value = cnt
    else:
        f.replies = []
        job.error = who + ": " + job.error


class _File:
    """What an open cs or dns file holds: the answers of its last request
    and where reads find them."""

    __slots__ = ("replies", "wend", "mode", "busy")

    def __init__(self):
        self.replies = []
        self.wend = 0             # offset just past the last write
        self.mode = None          # None until the first read after a write; "abs" or "rel"
        self.busy = False         # a request is being resolved

    def read(self, offset: int, count: int) -> bytes:
        """cs.c/dns.c rread: the answer at offset (answers occupy
        consecutive offsets), from there to its end, at most count bytes.
        A read at the offset the last write ended (and not 0) starts the
        answers as lines (see the module documentation)."""
        if self.mode is None:
            self.mode = "rel" if (offset == self.wend and offset != 0) else "abs"
        if self.mode == "rel":
            if offset < self.wend:
                return b""
            offset -= self.wend
            items = [r + "\n" for r in self.replies]
        else:
            items = self.replies
        off = 0
        for r in items:
            b = r.encode()
            if offset < off + len(b):
                return b[offset - off:offset - off + count]
            off += len(b)
        return b""


class CsFile(_File):
    __slots__ = ()


class DnsFile(_File):
    __slots__ = ()


# ---------------------------------------------------------------- helpers

def _isliteral(host: str) -> bool:
    return _literal(host) is not None


def _literal(host: str):
    """A literal address as devip prints it (libip's parseip accepts
    classful forms: 10.1 is 10.0.0.1), or None."""
    from net9.ipaux import fmtip, parseip
    try:
        return fmtip(parseip(host))
    except (Net9Error, ValueError, TypeError):
        return None


def _services():
    from net9.dial import SERVICES
    return SERVICES


def ipserv(net: str, name: str):
    """cs.c ipserv: a service as a port ("*", the number as written, or
    the name looked up for the network), None when it cannot be."""
    if name == "*":
        return name
    alpha = False
    for ch in name:
        if ch.isdigit() and ch.isascii():
            continue
        if (ch.isalpha() and ch.isascii()) or ch in "-$":
            alpha = True
        else:
            return None
    if not alpha:
        return name
    if net not in SERVICENETS:
        return None
    proto = "tcp" if net == "il" else net
    try:
        return str(socket.getservbyname(name, proto))
    except (OSError, UnicodeError):
        pass
    port = _services().get(name)
    return None if port is None else str(port)


def parsendb(text: str) -> list:
    """ndb(6) entries: a list of entries, each a list of lines, each a list
    of (attr, value) pairs.  An entry starts at a line that does not begin
    with white space; # starts a comment."""
    entries = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0]
        if not line.strip():
            continue
        pairs = []
        for tok in line.split():
            a, _, v = tok.partition("=")
            pairs.append((a, v))
        if line[0] in " \t" and entries:
            entries[-1].append(pairs)
        else:
            entries.append([pairs])
    return entries


def _arpa(addr: str) -> str:
    return ipaddress.ip_address(addr).reverse_pointer


def _fromarpa(name: str):
    n = name.lower().rstrip(".")
    try:
        if n.endswith(".in-addr.arpa"):
            parts = n[:-len(".in-addr.arpa")].split(".")
            if len(parts) == 4:
                return str(ipaddress.IPv4Address(".".join(reversed(parts))))
        elif n.endswith(".ip6.arpa"):
            nib = n[:-len(".ip6.arpa")].split(".")
            if len(nib) == 32:
                h = "".join(reversed(nib))
                return str(ipaddress.IPv6Address(int(h, 16)))
    except ValueError:
        return None
    return None


def _resolvconf_dns():
    try:
        with open("/etc/resolv.conf") as f:
            for ln in f:
                w = ln.split()
                if len(w) >= 2 and w[0] == "nameserver":
                    return w[1]
    except OSError:
        pass
    return None


# ---------------------------------------------------------------- the service

class NameService:
    """cs and dns for a /net tree (see the module documentation).

    NameService(loop, resolver=None, workers=8, maxpending=256,
                timeout=10.0, ttl=60.0, negttl=10.0)

    loop: call_soon_threadsafe(fn, *args) and call_later(delay, fn,
    *args) (net9.stack.Loop, asyncio).  resolver: the blocking lookups
    (HostResolver()).  .ndb: callable -> the text of /net/ndb; .localnets:
    callable -> [(address, mask)] of the stack's interfaces, both 16 bytes;
    .nets: the networks the stack has; .eve: the user allowed cs's and dns's
    control messages; .after: called after completions (the 9P server sends
    its replies).  Set by NetFs."""

    def __init__(self, loop, resolver=None, workers: int = 8, maxpending: int = 256,
                 timeout: float = 10.0, ttl: float = 60.0, negttl: float = 10.0):
        self.loop = loop
        self.resolver = resolver if resolver is not None else HostResolver()
        self.workers = max(1, workers)
        self.maxpending = max(1, maxpending)
        self.timeout = timeout
        self.ttl = ttl
        self.negttl = negttl
        self.ndb = lambda: ""
        self.localnets = lambda: []
        self.nets = ("tcp", "udp", "icmp", "icmpv6")
        self.eve = None
        self.after = None
        self.ipv6lookups = True
        self.cache = collections.OrderedDict()   # key -> (expiry, result)
        self.maxcache = 4096
        self.inflight = {}                      # key -> [callbacks]
        self.jobs = queue.Queue()
        self.threads = []
        self.lookups = 0                        # lookups made (not from the cache)
        self.timeouts = 0
        self.closed = False
        self._lock = threading.Lock()

    # -- lookups --------------------------------------------------------------

    def _run(self, key):
        kind, arg = key
        try:
            if kind == "addr":
                return ("ok", self.resolver.addrs(arg))
            if kind == "ptr":
                return ("ok", self.resolver.ptr(arg))
            if kind == "cname":
                return ("ok", self.resolver.cname(arg))
            return ("err", FAILURE)
        except LookupFailure as e:
            return ("err", e.kind)
        except Exception:
            return ("err", FAILURE)

    def _worker(self):
        while True:
            key = self.jobs.get()
            if key is None:
                return
            r = self._run(key)
            try:
                self.loop.call_soon_threadsafe(self._finish, key, r)
            except RuntimeError:
                return              # the loop is gone

    def cached(self, key):
        """The cached result for key, or None."""
        e = self.cache.get(key)
        if e is None:
            return None
        if e[0] < time.monotonic():
            del self.cache[key]
            return None
        return e[1]

    def _start(self, key, cb):
        """Look key up off the loop thread; cb(result) on the loop thread.
        A result at once (too much activity) instead of None when the
        lookup cannot start."""
        w = self.inflight.get(key)
        if w is not None:
            w.append(cb)
            return None
        if self.closed or len(self.inflight) >= self.maxpending:
            return ("err", BUSY)
        self.inflight[key] = [cb]
        self.lookups += 1
        if len(self.threads) < self.workers:
            t = threading.Thread(target=self._worker, name="net9-resolver", daemon=True)
            t.start()
            self.threads.append(t)
        self.jobs.put(key)
        try:
            self.loop.call_later(self.timeout, self._expire, key)
        except AttributeError:
            pass
        return None

    def _store(self, key, r):
        ttl = self.ttl if r[0] == "ok" else self.negttl
        if ttl <= 0:
            return
        self.cache[key] = (time.monotonic() + ttl, r)
        self.cache.move_to_end(key)
        while len(self.cache) > self.maxcache:
            self.cache.popitem(last=False)

    def _finish(self, key, r):
        self._store(key, r)
        cbs = self.inflight.pop(key, None)
        if cbs:
            for cb in cbs:
                cb(r)
            if self.after is not None:
                self.after()

    def _expire(self, key):
        cbs = self.inflight.pop(key, None)
        if cbs:
            self.timeouts += 1
            for cb in cbs:
                cb(("err", FAILURE))
            if self.after is not None:
                self.after()

    def flushcache(self):
        self.cache.clear()

    def close(self):
        self.closed = True
        for _ in self.threads:
            self.jobs.put(None)

    # -- running a request ---------------------------------------------------------

    def _job(self, gen, fin):
        job = Job(gen, fin)
        self._step(job, None)
        return job

    def _step(self, job, value):
        while True:
            try:
                key = job.gen.send(value)
            except StopIteration as e:
                job.value = e.value
                break
            except NsError as e:
                job.error = str(e)
                break
            except Exception:               # a bug: a failure, never a crash
                job.error = FAILURE
                break
            r = self.cached(key)
            if r is None:
                r = self._start(key, lambda res, job=job: self._resume(job, res))
                if r is None:
                    return                      # later, through _resume
            value = r
        job.finished = True
        job.gen = None
        job.fin(job)
        if job.done is not None:
            done, job.done = job.done, None
            done(job)

    def _resume(self, job, r):
        if job.gen is not None:
            self._step(job, r)

    # -- cs -------------------------------------------------------------------

    def cswrite(self, f: CsFile, data, offset: int, user) -> Job:
        """A write to /net/cs (cs.c rwrite): a finished Job (error or
        value, the count) or one that finishes later.  Raises Net9Error for
        what fails at once."""
        data = bytes(data)
        cnt = len(data)
        if cnt >= Maxrequest:
            raise Net9Error("cs: request too long")
        text = data.decode("utf-8", "replace").split("\0", 1)[0]
        if text.endswith("\n"):
            text = text[:-1]        # net9: shells write lines
        if user is not None and user != "none" and user == self.eve:
            for cmd in ("debug", "ipv6", "paranoia", "add ", "refresh"):
                if text.startswith(cmd):
                    if cmd == "ipv6":
                        self.ipv6lookups = not self.ipv6lookups
                    elif cmd == "refresh":
                        self.flushcache()
                    f.wend = offset + cnt
                    f.mode = None
                    return self._done(cnt)
        if f.busy:
            raise Net9Error("cs: query already in progress")
        f.busy = True
        f.replies = []
        f.wend = offset + cnt
        f.mode = None

        def fin(job):
            f.busy = False
            _answered(job, f, cnt, "cs")
        if text.startswith("!"):
            return self._job(self._genquery(text[1:]), fin)
        return self._job(self._cs(text), fin)

    def _done(self, value):
        job = Job(None, lambda j: None)
        job.finished = True
        job.value = value
        return job

    def _cs(self, text):
        # getfields(data, field, 4, 1, "!")
        f = text.split("!", 3)
        serv = rem = None
        if len(f) == 1:
            net, host = "net", f[0]
        else:
            net, host = f[0], f[1]
            if len(f) >= 3:
                serv = f[2]
            if len(f) == 4:
                rem = f[3]
        if net == "net":
            nets = [n for n in DEFNETS if n in self.nets] or ["tcp"]
            err = "can't translate address"
            for n in nets:
                try:
                    out = yield from self._iplookup(n, host, serv, rem)
                except NsError as e:
                    err = str(e)
                    continue
                if out:
                    return out[:Nreply]
            raise NsError(err)
        if net in IPNETS:
            out = yield from self._iplookup(net, host, serv, rem)
            if not out:
                raise NsError("can't translate address")
            return out[:Nreply]
        # not a network cs knows: host and service untranslated
        if serv is not None:
            return ["/net/%s/clone %s!%s" % (net, host, serv)]
        return ["/net/%s/clone %s" % (net, host)]

    def _iplookup(self, net, host, serv, rem):
        """cs.c iplookup and iptrans: the answers for one network."""
        if serv is None:
            raise NsError("can't translate service")
        ts = ipserv(net, serv)
        if ts is None:
            raise NsError("can't translate service")
        x = "!" + rem if rem is not None else ""
        if host in ("*", "::"):
            return ["/net/%s/clone %s%s" % (net, ts, x)]
        if host.startswith("$"):
            v = self.ndbattr(host[1:])
            if v is not None:
                host = v
        if host.startswith("["):
            host = host[1:].split("]", 1)[0]
        if _isliteral(host):
            addrs = [host]
        else:
            r = yield ("addr", host)
            if r[0] != "ok":
                kind = r[1]
                if kind == BUSY:
                    raise NsError(BUSY)
                if kind == FAILURE:
                    raise NsError("temporary problem: dns: %s" % kind)
                raise NsError("can't translate address: dns: %s" % kind)
            v4, v6 = r[1]
            addrs = list(v4)
            if net != "il" and self.ipv6lookups:
                addrs += list(v6)
            if not addrs:
                raise NsError("can't translate address: dns: %s" % NODATA)
            addrs = self._reorder(addrs)
        return ["/net/%s/clone %s!%s%s" % (net, a, ts, x) for a in addrs]

    def _reorder(self, addrs):
        # cs.c iplookup: an address on one of our networks first
        from net9.ipaux import parseip
        try:
            nets = self.localnets()
        except Exception:
            nets = []
        for local, mask in nets:
            mynet = bytes(a & m for a, m in zip(local, mask))
            for i, a in enumerate(addrs):
                try:
                    b = parseip(a)
                except Net9Error:
                    continue
                if bytes(x & m for x, m in zip(b, mask)) == mynet:
                    return [a] + addrs[:i] + addrs[i + 1:]
        return addrs

    def ndbattr(self, attr):
        """cs.c ipattrlookup, as far as net9 has it: attr's value in /net/ndb
        (the entry with one of the stack's addresses first, then any entry
        that has it); $dns falls back to the host's resolv.conf."""
        from net9.ipaux import parseip
        try:
            entries = parsendb(self.ndb())
        except Exception:
            entries = []
        mine = set()
        try:
            mine = {l for l, m in self.localnets()}
        except Exception:
            pass

        def val(entry):
            for line in entry:
                for a, v in line:
                    if a == attr and v:
                        return v
            return None

        for e in entries:
            for line in e:
                for a, v in line:
                    if a == "ip":
                        try:
                            if parseip(v) in mine and val(e):
                                return val(e)
                        except Net9Error:
                            pass
        for e in entries:
            v = val(e)
            if v:
                return v
        if attr == "dns":
            return _resolvconf_dns()
        return None

    def _genquery(self, query):
        """cs.c genquery: attr=val pairs matched against /net/ndb (and the
        resolver for dom= and ip=); ipinfo queries against /net/ndb."""
        words = query.split()
        if not words:
            raise NsError("bad query")
        if words[0] == "ipinfo":
            return (yield from self._ipinfo(words[1:]))
        pairs = []
        for w in words:
            if "=" not in w:
                raise NsError("bad query")
            a, _, v = w.partition("=")
            pairs.append((a, v))
        a0, v0 = pairs[0]
        if a0 in ("dom", "ip") and v0:
            t = None
            if a0 == "dom":
                r = yield ("addr", v0)
                if r[0] == "ok":
                    t = [("dom", v0)] + [("ip", a) for a in r[1][0] + r[1][1]]
            elif _isliteral(v0):
                r = yield ("ptr", v0)
                if r[0] == "ok":
                    t = [("dom", r[1]), ("ip", v0)]
            if t and self._qmatch([t], pairs):
                return [" ".join("%s=%s" % p for p in t)]
        for e in parsendb(self.ndb()):
            if any(a == a0 and (v == v0) for line in e for a, v in line):
                if self._qmatch(e, pairs):
                    return [" ".join("%s=%s" % p for p in line) for line in e][:Nreply]
        raise NsError("no match")

    @staticmethod
    def _qmatch(entry, pairs):
        flat = [p for line in entry for p in line]
        for a, v in pairs[1:]:
            if not any(x == a and (v == "*" or y == v) for x, y in flat):
                return False
        return True

    def _ipinfo(self, words):
        if not words:
            raise NsError("bad query")
        if "=" in words[0]:
            attr, _, val = words[0].partition("=")
            words = words[1:]
        else:
            attr, val = "ip", None
        if not words:
            raise NsError("bad query")
        want = [w.lstrip("@") for w in words]
        for e in parsendb(self.ndb()):
            flat = [p for line in e for p in line]
            if val is None:
                ok = any(a == "ip" for a, v in flat)
            else:
                ok = any(a == attr and v == val for a, v in flat)
            if not ok:
                continue
            got = [(a, v) for a, v in flat if a in want]
            if got:
                return [" ".join("%s=%s" % p for p in got)]
        raise NsError("no match")
        yield                              # a generator like the others

    # -- dns -------------------------------------------------------------------

    def dnswrite(self, f: DnsFile, data, offset: int, user) -> Job:
        """A write to /net/dns (dns.c rwrite)."""
        data = bytes(data)
        cnt = len(data)
        if offset != 0:
            raise Net9Error("dns: writing at non-zero offset")
        if cnt >= Maxrequest:
            raise Net9Error("dns: request too long")
        text = data.decode("utf-8", "replace").split("\0", 1)[0]
        if text.endswith("\n"):
            text = text[:-1]
        f.wend = offset + cnt
        f.mode = None
        if user is not None and user != "none" and user == self.eve:
            if text in ("debug", "dump", "refresh", "stats") or text.startswith("target "):
                if text == "refresh":
                    self.flushcache()
                return self._done(cnt)
        f.replies = []
        if " " not in text:
            raise Net9Error("dns: illegal request %s" % text)
        name, atype = text.split(" ", 1)
        if atype == "trace":
            return self._done(cnt)
        t = atype.lower()
        if t not in DNSTYPES and not t.isdigit():
            raise Net9Error("dns: unknown type %s" % atype)
        t = DNSALIAS.get(t, t)
        if name.endswith("."):
            name = name[:-1]
        if name.startswith("!"):
            name = name[1:]

        return self._job(self._dns(name, t), lambda job: _answered(job, f, cnt, "dns"))

    def _dns(self, name, t):
        if t in ("ip", "ipv6"):
            a = _literal(name)
            if a is not None:
                if (":" not in a) == (t == "ip"):
                    return ["%s %s\t%s" % (name, t, a)]
                raise NsError(NODATA)
            r = yield ("addr", name)
            if r[0] != "ok":
                raise NsError(r[1])
            addrs = r[1][0] if t == "ip" else r[1][1]
            if not addrs:
                raise NsError(NODATA)
            return ["%s %s\t%s" % (name, t, a) for a in addrs]
        if t == "ptr":
            addr = _fromarpa(name)
            if addr is None:
                addr = _literal(name)
                if addr is None:
                    raise NsError(NXDOMAIN)
            owner = _arpa(addr)
            r = yield ("ptr", addr)
            if r[0] != "ok":
                raise NsError(r[1])
            return ["%s ptr\t%s" % (owner, r[1])]
        if t == "cname":
            r = yield ("cname", name)
            if r[0] != "ok":
                raise NsError(r[1])
            if not r[1]:
                raise NsError(NODATA)
            return ["%s cname\t%s" % (name, r[1])]
        raise NsError("resolver cannot answer %s queries" % t)
