"""devip's error strings (the texts of 9front's sys/src/9/ip; net9(4)
ERRORS lists them) and the
exception that carries them.  The text is the contract: 9P replies carry it
verbatim in Rerror."""


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
