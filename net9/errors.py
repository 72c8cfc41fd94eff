"""devip's error strings (the texts of 9front's sys/src/9/ip; net9(4)
ERRORS lists them) and the
exception that carries them.  The text is the contract: 9P replies carry it
verbatim in Rerror; errno_of gives the errno a client that speaks numbers
gets for one (9P2000.L's Rlerror)."""

import errno


class Net9Error(Exception):
    """An error with devip's exact text as its only argument."""

    def __str__(self):
        return self.args[0] if self.args else ""


# port/error.h
Enonexist = "file does not exist"
Enotdir = "not a directory"
Eperm = "permission denied"
Eshort = "i/o count too small"
Eshortstat = "stat buffer too small"
Eintr = "interrupted"
Ebadusefd = "inappropriate use of fd"
Enodev = "no free devices"
Ehungup = "i/o on hungup channel"
Eio = "i/o error"
Enomem = "kernel allocate failed"
Ebadarg = "bad arg in system call"
Ebadctl = "bad process or channel control request"
Ebadip = "bad ip address syntax"
Econinuse = "connection in use"
Econrefused = "connection refused"
Etimedout = "connection timed out"
Enoport = "network port not available"

# devip.c
Eshortctl = "short control request"
Eunknownctl = "unknown control request"
Ebadconnect = "bad args to connect"
Ebadannounce = "bad args to announce"
Ebadbind = "bad args to bind"
Emalformed = "malformed address"
Ebadport = "bad numeric port"
Enotlocal = "not a local IP address"
Eaddrinuse = "address in use"
Enoports = "no ports available"
Enotannounced = "not announced"
Elistenhungup = "listen hungup"
Eaddmulti = "addmulti needs interface address"
Edelmulti = "delmulti needs interface address"
Enotmulti = "addmulti for a non multicast address"
Eincompatmulti = "incompatible multicast/interface ip address"
Econnectns = "connect not supported"
Eannouncens = "announce not supported"
Estatsns = "stats not implemented"

# tcp.c
Enoroute = "no route"
Ehangup = "Hangup"
Ekanotestab = "connection must be in Establised state"
Eporthog = "unknown value for tcpporthogdefense"
Estatelesshog = "stateless hog"


# -- the 9P server's own texts, and the errno of every text ------------------------

Eunknownfid = "unknown fid"
Efidinuse = "fid in use"
Enotopen = "file not open"
Etoomany = "too many names in walk"
Enoauth = "authentication not required"
Enotsupp = "not supported"
Eversion = "version not negotiated"
Eisdir = "is a directory"
Etagused = "tag in use"
Eattach = "permission denied"       # the start of every refused attach's text

# Linux errno for devip's texts (9P2000.L answers with numbers)
ERRNO = {
    Enonexist: errno.ENOENT, Enotdir: errno.ENOTDIR,
    Eperm: errno.EACCES, Eshort: errno.EINVAL,
    Eshortstat: errno.EINVAL, Eintr: errno.EINTR,
    Ebadusefd: errno.EBADF, Enodev: errno.ENODEV,
    Ehungup: errno.EPIPE, Eio: errno.EIO, Enomem: errno.ENOMEM,
    Ebadarg: errno.EINVAL, Ebadctl: errno.EINVAL, Ebadip: errno.EINVAL,
    Econinuse: errno.EBUSY, Econrefused: errno.ECONNREFUSED,
    Etimedout: errno.ETIMEDOUT, Enoport: errno.EADDRNOTAVAIL,
    Eshortctl: errno.EINVAL, Eunknownctl: errno.EINVAL,
    Ebadconnect: errno.EINVAL, Ebadannounce: errno.EINVAL,
    Ebadbind: errno.EINVAL, Emalformed: errno.EINVAL,
    Ebadport: errno.EINVAL, Enotlocal: errno.EADDRNOTAVAIL,
    Eaddrinuse: errno.EADDRINUSE, Enoports: errno.EADDRNOTAVAIL,
    Enotannounced: errno.EINVAL, Elistenhungup: errno.ECONNABORTED,
    Econnectns: errno.EOPNOTSUPP, Eannouncens: errno.EOPNOTSUPP,
    Estatsns: errno.EOPNOTSUPP, Enoroute: errno.EHOSTUNREACH,
    Ehangup: errno.EPIPE, Ekanotestab: errno.EINVAL,
    Eporthog: errno.EINVAL, Estatelesshog: errno.ECONNRESET,
    "net unreachable": errno.ENETUNREACH, "host unreachable": errno.EHOSTUNREACH,
    "protocol unreachable": errno.ECONNREFUSED, "port unreachable": errno.ECONNREFUSED,
    "destination network unknown": errno.ENETUNREACH,
    "destination host unknown": errno.EHOSTUNREACH,
    "fragmentation needed and DF set": errno.EMSGSIZE,
    "file already open": errno.EBUSY,
    Eunknownfid: errno.EBADF, Efidinuse: errno.EBADF, Enotopen: errno.EBADF,
    Etoomany: errno.E2BIG, Enotsupp: errno.EOPNOTSUPP, Eisdir: errno.EISDIR,
    Etagused: errno.EINVAL, Eversion: errno.EPROTO,
    "bad arp": errno.EINVAL, "no interface": errno.ENODEV,
    "interface not found": errno.ENODEV, "interface not bound": errno.ENODEV,
    "interface already bound": errno.EBUSY, "unknown interface type": errno.EINVAL,
    "unsupported ctl": errno.EINVAL, "address not on this interface": errno.EADDRNOTAVAIL,
    "destination unreachable": errno.EHOSTUNREACH,
    "too few arguments for netlog control message": errno.EINVAL,
}


def errno_of(text: str) -> int:
    """The errno a 9P2000.L client (and net9's FUSE client, and dial's
    OSError) gets for one of devip's error texts."""
    e = ERRNO.get(text)
    if e is not None:
        return e
    if text.startswith("unknown control message"):
        return errno.EINVAL
    if "unreachable" in text or text.startswith("ttl exceeded"):
        return errno.EHOSTUNREACH
    if "prohibited" in text or text.startswith(Eattach):
        return errno.EACCES
    return errno.EIO
