/*
 * net9pd.so: net9 behind packetdrill's shared-object interface.
 *
 * packetdrill --so_filename=net9pd.so loads this object, calls
 * packetdrill_interface_init() and from then on sends every socket call,
 * every packet and every question about time here instead of to the
 * kernel.  This file only embeds CPython and forwards each call to a
 * pdshim.Shim (pdshim.py, next to this file), which owns a net9 stack on a
 * virtual clock; see pdshim.py for the semantics.
 *
 * Build: python tests/packetdrill/build_shim.py (it knows the flags).
 *
 * struct packetdrill_interface (pdinterface.h, shared with pdselftest.c) is
 * our declaration of the table packetdrill's packetdrill.h defines.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef NET9PD_LIBPYTHON
#define NET9PD_LIBPYTHON ""
#endif
#ifndef NET9PD_PYTHON
#define NET9PD_PYTHON "python3"
#endif
#ifndef NET9PD_DIR
#define NET9PD_DIR "."
#endif
#ifndef NET9PD_SYSPATH
#define NET9PD_SYSPATH ""
#endif

#include "pdinterface.h"

/* ------------------------------------------------------------ helpers */

/* A failed call into Python: say why and fail with EIO. */
static void pyfail(const char *what)
{
	fprintf(stderr, "net9pd: %s raised:\n", what);
	if (PyErr_Occurred())
		PyErr_Print();
	fflush(stderr);
}

/* An int result: >= 0 is the value, < 0 is -errno. */
static long int_result(PyObject *r, const char *what)
{
	long v;

	if (r == NULL) {
		pyfail(what);
		errno = EIO;
		return -1;
	}
	v = PyLong_AsLong(r);
	Py_DECREF(r);
	if (v == -1 && PyErr_Occurred()) {
		pyfail(what);
		errno = EIO;
		return -1;
	}
	if (v < 0) {
		errno = (int)-v;
		return -1;
	}
	return v;
}

/* A result that is bytes on success or an int (-errno): copies at most
 * cap bytes to buf and returns the length of the bytes, or -1 with errno. */
static ssize_t bytes_result(PyObject *r, const char *what, void *buf,
			    size_t cap, size_t *full)
{
	char *p;
	Py_ssize_t n;

	if (r == NULL) {
		pyfail(what);
		errno = EIO;
		return -1;
	}
	if (PyLong_Check(r))
		return int_result(r, what);
	if (PyBytes_AsStringAndSize(r, &p, &n) < 0) {
		Py_DECREF(r);
		pyfail(what);
		errno = EIO;
		return -1;
	}
	if (full)
		*full = (size_t)n;
	if ((size_t)n > cap)
		n = (Py_ssize_t)cap;
	if (n > 0)
		memcpy(buf, p, (size_t)n);
	Py_DECREF(r);
	return n;
}

#define SHIM ((PyObject *)userdata)
#define ENTER PyGILState_STATE gil_ = PyGILState_Ensure()
#define LEAVE PyGILState_Release(gil_)
/* LEAVE keeping the errno the call into Python set (the release may not) */
#define LEAVE_KEEP_ERRNO do { int e_ = errno; LEAVE; errno = e_; } while (0)

/* ------------------------------------------------------------ sockets */

static int pd_socket(void *userdata, int domain, int type, int protocol)
{
	ENTER;
	long r = int_result(PyObject_CallMethod(SHIM, "socket", "iii", domain,
						type, protocol), "socket");
	LEAVE_KEEP_ERRNO;
	return (int)r;
}

/* bind or connect (what): the shim's method of that name with the address */
static int addr_call(void *userdata, const char *what, int fd,
		     const struct sockaddr *addr, socklen_t addrlen)
{
	if (addr == NULL) {
		errno = EFAULT;
		return -1;
	}
	ENTER;
	long r = int_result(PyObject_CallMethod(SHIM, what, "iy#", fd,
						(const char *)addr,
						(Py_ssize_t)addrlen), what);
	LEAVE_KEEP_ERRNO;
	return (int)r;
}

static int pd_bind(void *userdata, int fd, const struct sockaddr *addr,
		   socklen_t addrlen)
{
	return addr_call(userdata, "bind", fd, addr, addrlen);
}

static int pd_listen(void *userdata, int fd, int backlog)
{
	ENTER;
	long r = int_result(PyObject_CallMethod(SHIM, "listen", "ii", fd,
						backlog), "listen");
	LEAVE_KEEP_ERRNO;
	return (int)r;
}

static int pd_accept(void *userdata, int fd, struct sockaddr *addr,
		     socklen_t *addrlen)
{
	long r;
	ENTER;
	PyObject *t = PyObject_CallMethod(SHIM, "accept", "i", fd);
	if (t != NULL && PyTuple_Check(t) && PyTuple_GET_SIZE(t) == 2) {
		char *p;
		Py_ssize_t n;
		r = PyLong_AsLong(PyTuple_GET_ITEM(t, 0));
		if (PyBytes_AsStringAndSize(PyTuple_GET_ITEM(t, 1), &p, &n) == 0 &&
		    addr != NULL && addrlen != NULL) {
			memcpy(addr, p, (size_t)n < *addrlen ? (size_t)n : *addrlen);
			*addrlen = (socklen_t)n;
		}
		Py_DECREF(t);
		errno = 0;
	} else {
		r = int_result(t, "accept");
	}
	LEAVE_KEEP_ERRNO;
	return (int)r;
}

static int pd_connect(void *userdata, int fd, const struct sockaddr *addr,
		      socklen_t addrlen)
{
	return addr_call(userdata, "connect", fd, addr, addrlen);
}

static ssize_t do_recv(void *userdata, int fd, void *buf, size_t len,
		       int flags)
{
	if (buf == NULL && len > 0) {
		errno = EFAULT;
		return -1;
	}
	ENTER;
	ssize_t r = bytes_result(PyObject_CallMethod(SHIM, "read", "ini", fd,
						     (Py_ssize_t)len, flags),
				 "read", buf, len, NULL);
	LEAVE_KEEP_ERRNO;
	return r;
}

/* A buffer for the iovecs' total length (*total), or NULL and ENOMEM. */
static char *iovbuf(const struct iovec *iov, int iovcnt, size_t *total)
{
	char *b;
	int i;

	*total = 0;
	for (i = 0; i < iovcnt; i++)
		*total += iov[i].iov_len;
	b = malloc(*total ? *total : 1);
	if (b == NULL)
		errno = ENOMEM;
	return b;
}

/* Scatter a read of the iovecs' total length over them. */
static ssize_t do_recviov(void *userdata, int fd, const struct iovec *iov,
			  int iovcnt, int flags)
{
	size_t total, off = 0;
	ssize_t n;
	char *tmp = iovbuf(iov, iovcnt, &total);
	int i;

	if (tmp == NULL)
		return -1;
	n = do_recv(userdata, fd, tmp, total, flags);
	for (i = 0; n > 0 && i < iovcnt && off < (size_t)n; i++) {
		size_t k = iov[i].iov_len;
		if (k > (size_t)n - off)
			k = (size_t)n - off;
		memcpy(iov[i].iov_base, tmp + off, k);
		off += k;
	}
	free(tmp);
	return n;
}

static ssize_t pd_read(void *userdata, int fd, void *buf, size_t count)
{
	return do_recv(userdata, fd, buf, count, 0);
}

static ssize_t pd_readv(void *userdata, int fd, const struct iovec *iov,
			int iovcnt)
{
	return do_recviov(userdata, fd, iov, iovcnt, 0);
}

static ssize_t pd_recv(void *userdata, int fd, void *buf, size_t len,
		       int flags)
{
	return do_recv(userdata, fd, buf, len, flags);
}

static ssize_t pd_recvfrom(void *userdata, int fd, void *buf, size_t len,
			   int flags, struct sockaddr *src_addr,
			   socklen_t *addrlen)
{
	ssize_t n = do_recv(userdata, fd, buf, len, flags);
	/* TCP gives no source address (Linux sets the length to 0) */
	if (n >= 0 && src_addr != NULL && addrlen != NULL)
		*addrlen = 0;
	return n;
}

static ssize_t pd_recvmsg(void *userdata, int fd, struct msghdr *msg,
			  int flags)
{
	ssize_t n = do_recviov(userdata, fd, msg->msg_iov, (int)msg->msg_iovlen,
			       flags);
	if (n >= 0) {
		msg->msg_namelen = 0;
		msg->msg_controllen = 0;
		msg->msg_flags = 0;
	}
	return n;
}

static ssize_t do_send(void *userdata, int fd, const void *buf, size_t len,
		       int flags)
{
	if (buf == NULL && len > 0) {
		errno = EFAULT;
		return -1;
	}
	ENTER;
	ssize_t r = int_result(PyObject_CallMethod(SHIM, "write", "iy#i", fd,
						   (const char *)buf,
						   (Py_ssize_t)len, flags),
			       "write");
	LEAVE_KEEP_ERRNO;
	return r;
}

static ssize_t do_sendiov(void *userdata, int fd, const struct iovec *iov,
			  int iovcnt, int flags)
{
	size_t total, off = 0;
	ssize_t n;
	char *tmp = iovbuf(iov, iovcnt, &total);
	int i;

	if (tmp == NULL)
		return -1;
	for (i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len)
			memcpy(tmp + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	n = do_send(userdata, fd, tmp, total, flags);
	free(tmp);
	return n;
}

static ssize_t pd_write(void *userdata, int fd, const void *buf, size_t count)
{
	return do_send(userdata, fd, buf, count, 0);
}

static ssize_t pd_writev(void *userdata, int fd, const struct iovec *iov,
			 int iovcnt)
{
	return do_sendiov(userdata, fd, iov, iovcnt, 0);
}

static ssize_t pd_send(void *userdata, int fd, const void *buf, size_t len,
		       int flags)
{
	return do_send(userdata, fd, buf, len, flags);
}

static ssize_t pd_sendto(void *userdata, int fd, const void *buf, size_t len,
			 int flags, const struct sockaddr *dest_addr,
			 socklen_t addrlen)
{
	/* a connected stream socket ignores the address */
	(void)dest_addr;
	(void)addrlen;
	return do_send(userdata, fd, buf, len, flags);
}

static ssize_t pd_sendmsg(void *userdata, int fd, const struct msghdr *msg,
			  int flags)
{
	if (msg->msg_controllen != 0) {
		errno = EOPNOTSUPP;	/* no ancillary data on net9 */
		return -1;
	}
	return do_sendiov(userdata, fd, msg->msg_iov, (int)msg->msg_iovlen,
			  flags);
}

static int pd_fcntl(void *userdata, int fd, int cmd, ...)
{
	long arg = 0;
	va_list ap;

	if (cmd == F_SETFL || cmd == F_SETFD) {
		va_start(ap, cmd);
		arg = va_arg(ap, int);
		va_end(ap);
	}
	ENTER;
	long r = int_result(PyObject_CallMethod(SHIM, "fcntl", "iil", fd, cmd,
						arg), "fcntl");
	LEAVE_KEEP_ERRNO;
	return (int)r;
}

static int pd_ioctl(void *userdata, int fd, unsigned long request, ...)
{
	int *argp = NULL;
	long r;
	va_list ap;

	va_start(ap, request);
	argp = va_arg(ap, int *);
	va_end(ap);
	if (request != FIONREAD && request != TIOCOUTQ && request != FIONBIO)
		argp = NULL;
	ENTER;
	PyObject *t = PyObject_CallMethod(SHIM, "ioctl", "iki", fd, request,
					  argp != NULL ? *argp : 0);
	if (t != NULL && PyTuple_Check(t) && PyTuple_GET_SIZE(t) == 2) {
		r = PyLong_AsLong(PyTuple_GET_ITEM(t, 0));
		if (argp != NULL)
			*argp = (int)PyLong_AsLong(PyTuple_GET_ITEM(t, 1));
		Py_DECREF(t);
		errno = 0;
	} else {
		r = int_result(t, "ioctl");
	}
	LEAVE_KEEP_ERRNO;
	return (int)r;
}

static int pd_close(void *userdata, int fd)
{
	ENTER;
	long r = int_result(PyObject_CallMethod(SHIM, "close", "i", fd),
			    "close");
	LEAVE_KEEP_ERRNO;
	return (int)r;
}

static int pd_shutdown(void *userdata, int fd, int how)
{
	ENTER;
	long r = int_result(PyObject_CallMethod(SHIM, "shutdown", "ii", fd,
						how), "shutdown");
	LEAVE_KEEP_ERRNO;
	return (int)r;
}

static int pd_getsockopt(void *userdata, int fd, int level, int optname,
			 void *optval, socklen_t *optlen)
{
	size_t full = 0;
	if (optval == NULL || optlen == NULL) {
		errno = EFAULT;
		return -1;
	}
	ENTER;
	ssize_t r = bytes_result(PyObject_CallMethod(SHIM, "getsockopt", "iiii",
						     fd, level, optname,
						     (int)*optlen),
				 "getsockopt", optval, *optlen, &full);
	int e = errno;
	LEAVE;
	if (r >= 0) {
		*optlen = (socklen_t)r;
		r = 0;
	}
	errno = e;
	return (int)r;
}

static int pd_setsockopt(void *userdata, int fd, int level, int optname,
			 const void *optval, socklen_t optlen)
{
	if (optval == NULL && optlen > 0) {
		errno = EFAULT;
		return -1;
	}
	ENTER;
	long r = int_result(PyObject_CallMethod(SHIM, "setsockopt", "iiiy#",
						fd, level, optname,
						(const char *)optval,
						(Py_ssize_t)optlen),
			    "setsockopt");
	LEAVE_KEEP_ERRNO;
	return (int)r;
}

static int pd_poll(void *userdata, struct pollfd *fds, nfds_t nfds,
		   int timeout)
{
	long r = -1;
	int e = EIO;
	nfds_t i;
	ENTER;
	PyObject *l = PyList_New((Py_ssize_t)nfds);
	for (i = 0; l != NULL && i < nfds; i++)
		PyList_SET_ITEM(l, (Py_ssize_t)i,
				Py_BuildValue("(ii)", fds[i].fd,
					      (int)fds[i].events));
	PyObject *t = l ? PyObject_CallMethod(SHIM, "poll", "Oi", l, timeout)
			: NULL;
	Py_XDECREF(l);
	if (t != NULL && PyTuple_Check(t) && PyTuple_GET_SIZE(t) == 2) {
		PyObject *rev = PyTuple_GET_ITEM(t, 1);
		r = PyLong_AsLong(PyTuple_GET_ITEM(t, 0));
		for (i = 0; i < nfds && i < (nfds_t)PyList_Size(rev); i++)
			fds[i].revents = (short)PyLong_AsLong(
				PyList_GET_ITEM(rev, (Py_ssize_t)i));
		Py_DECREF(t);
		e = 0;
	} else {
		r = int_result(t, "poll");
		e = errno;
	}
	LEAVE;
	errno = e;
	return (int)r;
}

/* ------------------------------------------------------------ packets, time */

static int pd_netdev_send(void *userdata, const void *buf, size_t count)
{
	ENTER;
	long r = int_result(PyObject_CallMethod(SHIM, "netdev_send", "y#",
						(const char *)buf,
						(Py_ssize_t)count),
			    "netdev_send");
	LEAVE_KEEP_ERRNO;
	return r < 0 ? -1 : 0;
}

static int pd_netdev_receive(void *userdata, void *buf, size_t *count,
			     long long *time_usecs)
{
	int ret = 0;
	ENTER;
	PyObject *t = PyObject_CallMethod(SHIM, "netdev_receive", NULL);
	if (t == NULL) {
		pyfail("netdev_receive");
		*count = 0;
	} else if (t == Py_None) {
		/* nothing will come: an empty packet makes packetdrill stop */
		*count = 0;
		*time_usecs = 0;
	} else {
		char *p;
		Py_ssize_t n;
		*time_usecs = PyLong_AsLongLong(PyTuple_GET_ITEM(t, 0));
		if (PyBytes_AsStringAndSize(PyTuple_GET_ITEM(t, 1), &p, &n) == 0) {
			if ((size_t)n > *count)
				n = (Py_ssize_t)*count;
			memcpy(buf, p, (size_t)n);
			*count = (size_t)n;
		} else {
			pyfail("netdev_receive");
			*count = 0;
		}
	}
	Py_XDECREF(t);
	LEAVE;
	return ret;
}

static int pd_usleep(void *userdata, useconds_t usec)
{
	ENTER;
	long r = int_result(PyObject_CallMethod(SHIM, "usleep", "k",
						(unsigned long)usec), "usleep");
	LEAVE;
	return r < 0 ? -1 : 0;
}

static int pd_gettimeofday(void *userdata, struct timeval *tv,
			   struct timezone *tz)
{
	long long us;
	(void)tz;
	ENTER;
	PyObject *r = PyObject_CallMethod(SHIM, "gettimeofday", NULL);
	if (r == NULL) {
		pyfail("gettimeofday");
		us = 0;
	} else {
		us = PyLong_AsLongLong(r);
		Py_DECREF(r);
	}
	LEAVE;
	tv->tv_sec = (time_t)(us / 1000000);
	tv->tv_usec = (suseconds_t)(us % 1000000);
	return 0;
}

/* ------------------------------------------------------------ not offered */

static int pd_epoll_create(void *userdata, int size)
{
	(void)userdata; (void)size;
	errno = ENOSYS;
	return -1;
}

static int pd_epoll_ctl(void *userdata, int epfd, int op, int fd,
			struct epoll_event *event)
{
	(void)userdata; (void)epfd; (void)op; (void)fd; (void)event;
	errno = ENOSYS;
	return -1;
}

static int pd_epoll_wait(void *userdata, int epfd, struct epoll_event *events,
			 int maxevents, int timeout)
{
	(void)userdata; (void)epfd; (void)events; (void)maxevents;
	(void)timeout;
	errno = ENOSYS;
	return -1;
}

static int pd_pipe(void *userdata, int pipefd[2])
{
	(void)userdata; (void)pipefd;
	errno = ENOSYS;
	return -1;
}

static int pd_splice(void *userdata, int fd_in, loff_t *off_in, int fd_out,
		     loff_t *off_out, size_t len, unsigned int flags)
{
	(void)userdata; (void)fd_in; (void)off_in; (void)fd_out;
	(void)off_out; (void)len; (void)flags;
	errno = ENOSYS;
	return -1;
}

static void pd_free(void *userdata)
{
	ENTER;
	PyObject *r = PyObject_CallMethod(SHIM, "free", NULL);
	if (r == NULL)
		pyfail("free");
	Py_XDECREF(r);
	Py_DECREF(SHIM);
	LEAVE;
}

/* ------------------------------------------------------------ start-up */

/* Start the interpreter when the host program has none (packetdrill). */
static int start_python(void)
{
	PyConfig config;
	PyStatus st;

	if (Py_IsInitialized())
		return 0;
	/* extension modules (net9's) find the interpreter's symbols in the
	 * global scope; packetdrill opened us RTLD_LOCAL, so libpython (our
	 * dependency) is not there until promoted */
	if (NET9PD_LIBPYTHON[0] != '\0' &&
	    dlopen(NET9PD_LIBPYTHON, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD) == NULL)
		fprintf(stderr, "net9pd: cannot promote %s: %s\n",
			NET9PD_LIBPYTHON, dlerror());
	PyConfig_InitPythonConfig(&config);
	config.install_signal_handlers = 0;
	config.parse_argv = 0;
	/* leave the host program's C stdio alone (its buffers included) */
	config.configure_c_stdio = 0;
	/* the interpreter that built us: its prefix, its venv */
	st = PyConfig_SetBytesString(&config, &config.program_name,
				     NET9PD_PYTHON);
	if (!PyStatus_Exception(st))
		st = PyConfig_SetBytesString(&config, &config.executable,
					     NET9PD_PYTHON);
	if (!PyStatus_Exception(st))
		st = Py_InitializeFromConfig(&config);
	PyConfig_Clear(&config);
	if (PyStatus_Exception(st)) {
		fprintf(stderr, "net9pd: cannot start Python: %s\n",
			st.err_msg ? st.err_msg : "?");
		return -1;
	}
	/* the GIL is taken per call from now on, from any thread */
	PyEval_SaveThread();
	return 0;
}

/* Put dirs (separated by ':') at the front of sys.path. */
static int prepend_path(const char *dirs)
{
	PyObject *sys_path = PySys_GetObject("path");	/* borrowed */
	const char *p = dirs;
	Py_ssize_t at = 0;

	if (sys_path == NULL)
		return -1;
	while (p != NULL && *p != '\0') {
		const char *q = strchr(p, ':');
		size_t n = q ? (size_t)(q - p) : strlen(p);
		if (n > 0) {
			PyObject *s = PyUnicode_DecodeFSDefaultAndSize(p, (Py_ssize_t)n);
			if (s == NULL)
				return -1;
			if (PySequence_Contains(sys_path, s) == 0)
				PyList_Insert(sys_path, at++, s);
			Py_DECREF(s);
		}
		p = q ? q + 1 : NULL;
	}
	return 0;
}

static void stub(struct packetdrill_interface *ifc);

void packetdrill_interface_init(const char *flags,
				struct packetdrill_interface *ifc)
{
	PyObject *mod, *shim = NULL;
	const char *syspath = getenv("NET9_PD_SYSPATH");
	const char *dir = getenv("NET9_PD_DIR");

	memset(ifc, 0, sizeof(*ifc));
	if (start_python() < 0) {
		stub(ifc);
		return;
	}
	ENTER;
	if (prepend_path(syspath != NULL ? syspath : NET9PD_SYSPATH) < 0 ||
	    prepend_path(dir != NULL ? dir : NET9PD_DIR) < 0)
		pyfail("sys.path");
	mod = PyImport_ImportModule("pdshim");
	if (mod != NULL) {
		shim = PyObject_CallMethod(mod, "Shim", "s", flags ? flags : "");
		Py_DECREF(mod);
	}
	if (shim == NULL)
		pyfail("pdshim.Shim()");
	LEAVE;
	if (shim == NULL) {
		stub(ifc);
		return;
	}
	ifc->userdata = shim;
	ifc->free = pd_free;
	ifc->socket = pd_socket;
	ifc->bind = pd_bind;
	ifc->listen = pd_listen;
	ifc->accept = pd_accept;
	ifc->connect = pd_connect;
	ifc->read = pd_read;
	ifc->readv = pd_readv;
	ifc->recv = pd_recv;
	ifc->recvfrom = pd_recvfrom;
	ifc->recvmsg = pd_recvmsg;
	ifc->write = pd_write;
	ifc->writev = pd_writev;
	ifc->send = pd_send;
	ifc->sendto = pd_sendto;
	ifc->sendmsg = pd_sendmsg;
	ifc->fcntl = pd_fcntl;
	ifc->ioctl = pd_ioctl;
	ifc->close = pd_close;
	ifc->shutdown = pd_shutdown;
	ifc->getsockopt = pd_getsockopt;
	ifc->setsockopt = pd_setsockopt;
	ifc->poll = pd_poll;
	ifc->netdev_send = pd_netdev_send;
	ifc->netdev_receive = pd_netdev_receive;
	ifc->usleep = pd_usleep;
	ifc->gettimeofday = pd_gettimeofday;
	ifc->epoll_create = pd_epoll_create;
	ifc->epoll_ctl = pd_epoll_ctl;
	ifc->epoll_wait = pd_epoll_wait;
	ifc->pipe = pd_pipe;
	ifc->splice = pd_splice;
}

/* Without a stack there is nothing to test: stop the run at once. */
static void stub(struct packetdrill_interface *ifc)
{
	(void)ifc;
	fprintf(stderr, "net9pd: no net9 stack; giving up\n");
	fflush(stderr);
	_exit(2);
}
