"""net9: Plan 9's /net on Linux, over a userspace TCP/IP stack whose TCP is
a port of 9front's tcp.c (see ../shared/seeds/tcp.c)."""

__version__ = "0.1.0"
