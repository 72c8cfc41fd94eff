"""net9: Plan 9's /net on Linux, over a userspace TCP/IP stack whose TCP is
a port of 9front's tcp.c (sys/src/9/ip/tcp.c; docs/tcp-port.md follows
it function by function).

The dial(2) API (net9.dial module; see its docstring):

    net9.dial(addr, local=None, srv=, netdir=, user=, timeout=)  -> Conn
    net9.announce(addr, ...)                                      -> Announcement
    net9.listen(ann) -> Call    net9.accept(call) -> Conn
    net9.reject(call, cause)    net9.hangup(conv)
    net9.Net(srv=, netdir=, user=)   one connection to /net for several
"""

__version__ = "0.1.0"

try:
    # net9.dial is the submodule, which is callable: net9.dial(addr) is
    # dial(2), and "import net9.dial as d" is the module (see net9.dial's end)
    import net9.dial  # noqa: F401
    from net9.dial import (announce, listen, accept, reject, hangup,  # noqa: F401
                           Net, Conn, Announcement, Call, AddrError, ServerUnreachable)
except ImportError:         # a source checkout without the compiled modules
    pass
