"""plan9port's name space directory, where net9 serve puts its socket by
default and where the client commands, net9.dial and net9.ping look for it:
$NAMESPACE, else /tmp/ns.$USER.$DISPLAY (DISPLAY defaulting to :0).

/tmp is everybody's: another user can make /tmp/ns.root.:0 before root
does, and whoever owns that directory can put a socket of their own in it,
to which root's clients would then send their 9P.  So, as plan9port's
getns() does for the directory it derives from $DISPLAY, net9 uses a name
space directory only when it is a real directory (not a symbolic link)
owned by the user (the effective uid) and closed to group and others; it
makes a missing one with mode 0700.  Unlike plan9port, the same rule
applies to a $NAMESPACE given explicitly.  A client also insists that the
socket in it is owned by the user: a server started by someone else is
not ours.

Every check lives here (check_dir, check_socket); serve_path() is for
net9 serve, client_path() for everything that talks to it by default.
Addresses given explicitly (--srv, $NET9_SRV, srv=) are not checked.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat

SOCKNAME = "net9"


class NamespaceError(PermissionError):
    """A name space directory or socket that is not safe to use.  str() is
    the whole message."""

    def __init__(self, path, msg):
        super().__init__(errno.EACCES, msg, path)
        self.msg = msg

    def __str__(self):
        return self.msg


def _user(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def nsdir():
    """The name space directory's path (no checks): $NAMESPACE, else
    /tmp/ns.$USER.$DISPLAY, with plan9port's canonical DISPLAY (a trailing
    screen ".0" dropped, / turned into _)."""
    ns = os.environ.get("NAMESPACE")
    if ns:
        return ns
    user = os.environ.get("USER") or _user(os.getuid())
    disp = os.environ.get("DISPLAY") or ":0"
    if disp.endswith(".0"):
        disp = disp[:-2]
    disp = disp.replace("/", "_")
    return "/tmp/ns.%s.%s" % (user, disp)


def default_socket_path():
    """$NAMESPACE/net9 or /tmp/ns.$USER.$DISPLAY/net9 (no checks)."""
    return os.path.join(nsdir(), SOCKNAME)


def check_dir(path):
    """Raise NamespaceError unless path is a directory owned by the
    effective user with no permissions for group and others; an OSError
    (ENOENT...) when it cannot be looked at."""
    st = os.lstat(path)
    me = os.geteuid()
    what = "name space directory %s" % path
    if stat.S_ISLNK(st.st_mode):
        raise NamespaceError(path, "%s is a symbolic link: refusing to use it (whoever "
                             "owns its target decides whose server we talk to)" % what)
    if not stat.S_ISDIR(st.st_mode):
        raise NamespaceError(path, "%s is not a directory" % what)
    if st.st_uid != me:
        raise NamespaceError(path, "%s is owned by %s, not %s: refusing to use it (its "
                             "owner can replace the server's socket; plan9port refuses it "
                             "too)" % (what, _user(st.st_uid), _user(me)))
    if st.st_mode & 0o077:
        raise NamespaceError(path, "%s has mode %04o, open to group or others: refusing "
                             "to use it (they can replace the server's socket; plan9port "
                             "wants 0700)" % (what, stat.S_IMODE(st.st_mode)))


def check_socket(path):
    """Raise NamespaceError unless the existing file path is a unix socket
    owned by the effective user.  A missing one is left to connect() to
    report."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    me = os.geteuid()
    if not stat.S_ISSOCK(st.st_mode):
        raise NamespaceError(path, "%s is not a socket" % path)
    if st.st_uid != me:
        raise NamespaceError(path, "%s is owned by %s, not %s: refusing to talk to it "
                             "(a server someone else started)"
                             % (path, _user(st.st_uid), _user(me)))


def serve_path():
    """For net9 serve: the default socket's path, its directory made (mode
    0700) when missing, else checked."""
    d = nsdir()
    try:
        os.makedirs(d, 0o700)
    except FileExistsError:
        pass
    check_dir(d)
    return os.path.join(d, SOCKNAME)


def client_path():
    """For the clients: the default socket's path, its directory and the
    socket checked.  A missing directory or socket is not an error here (a
    connect() finds nothing there: is net9 serve running?)."""
    d = nsdir()
    try:
        check_dir(d)
    except FileNotFoundError:
        return os.path.join(d, SOCKNAME)
    p = os.path.join(d, SOCKNAME)
    check_socket(p)
    return p
