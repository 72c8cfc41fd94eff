/*
 * pdselftest: drives net9pd.so the way packetdrill does (dlopen with
 * RTLD_LOCAL|RTLD_DEEPBIND, packetdrill_interface_init, calls through the
 * table) from commands on standard input, so the shim's tests run where
 * packetdrill is absent.  One command a line, one result line each:
 *
 *   init FLAGS             (first; the rest of the line is --so_flags)
 *   socket D T P | bind FD HEXSA | listen FD N | accept FD | connect FD HEXSA
 *   read FD N | recv FD N FLAGS | write FD HEX | close FD | shutdown FD HOW
 *   getsockopt FD LEVEL NAME LEN | setsockopt FD LEVEL NAME HEX
 *   fcntl FD CMD [ARG] | ioctl FD REQ ARG | poll FD EVENTS TIMEOUT
 *   inject HEX             (netdev_send)
 *   sniff                  (netdev_receive)
 *   usleep US | time       (gettimeofday) | free
 *   bg CMD ...             run CMD (read/accept/connect/write/poll) in a
 *                          second thread, as packetdrill runs a blocking
 *                          call; it reads the clock when the call returns
 *   join                   wait for it: its result line plus the time
 *
 * Result lines: "RET ERRNO [EXTRA]" (EXTRA: hex data, a value or a time).
 */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* the table (pdinterface.h, shared with net9pd.c) */
#include "pdinterface.h"

static struct packetdrill_interface ifc;
#define U ifc.userdata

static size_t unhex(const char *s, unsigned char *out, size_t cap)
{
	size_t n = 0;
	while (s && s[0] && s[1] && n < cap) {
		unsigned int b;
		if (sscanf(s, "%2x", &b) != 1)
			break;
		out[n++] = (unsigned char)b;
		s += 2;
	}
	return n;
}

static void puthex(char *out, const unsigned char *p, size_t n)
{
	size_t i;
	for (i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
	out[2 * n] = '\0';
}

static long long now(void)
{
	struct timeval tv;
	ifc.gettimeofday(U, &tv, NULL);
	return (long long)tv.tv_sec * 1000000 + tv.tv_usec;
}

/* Run one command; the result line goes to out. */
static void run(char *line, char *out)
{
	static unsigned char buf[1 << 17];
	static char hex[(1 << 18) + 1];
	char *w[8] = { 0 };
	int n = 0, r = 0;
	char *save = NULL, *t;
	long long extra = 0;
	int have_extra = 0;

	for (t = strtok_r(line, " \t\n", &save); t && n < 8;
	     t = strtok_r(NULL, " \t\n", &save))
		w[n++] = t;
	hex[0] = '\0';
	if (n == 0) {
		strcpy(out, "");
		return;
	}
	errno = 0;
#define A(i) (w[i] ? strtol(w[i], NULL, 0) : 0)
	if (!strcmp(w[0], "socket")) {
		r = ifc.socket(U, A(1), A(2), A(3));
	} else if (!strcmp(w[0], "bind") || !strcmp(w[0], "connect")) {
		size_t k = unhex(w[2], buf, sizeof(buf));
		r = (w[0][0] == 'b' ? ifc.bind : ifc.connect)(
			U, A(1), (struct sockaddr *)buf, (socklen_t)k);
	} else if (!strcmp(w[0], "listen")) {
		r = ifc.listen(U, A(1), A(2));
	} else if (!strcmp(w[0], "accept")) {
		socklen_t len = sizeof(struct sockaddr_storage);
		r = ifc.accept(U, A(1), (struct sockaddr *)buf, &len);
		if (r >= 0)
			puthex(hex, buf, len);
	} else if (!strcmp(w[0], "read")) {
		ssize_t k = ifc.read(U, A(1), buf, (size_t)A(2));
		r = (int)k;
		if (k > 0)
			puthex(hex, buf, (size_t)k);
	} else if (!strcmp(w[0], "recv")) {
		ssize_t k = ifc.recv(U, A(1), buf, (size_t)A(2), (int)A(3));
		r = (int)k;
		if (k > 0)
			puthex(hex, buf, (size_t)k);
	} else if (!strcmp(w[0], "write")) {
		size_t k = unhex(w[2], buf, sizeof(buf));
		r = (int)ifc.write(U, A(1), buf, k);
	} else if (!strcmp(w[0], "close")) {
		r = ifc.close(U, A(1));
	} else if (!strcmp(w[0], "shutdown")) {
		r = ifc.shutdown(U, A(1), A(2));
	} else if (!strcmp(w[0], "getsockopt")) {
		socklen_t len = (socklen_t)A(4);
		r = ifc.getsockopt(U, A(1), A(2), A(3), buf, &len);
		if (r == 0)
			puthex(hex, buf, len);
	} else if (!strcmp(w[0], "setsockopt")) {
		size_t k = unhex(w[4], buf, sizeof(buf));
		r = ifc.setsockopt(U, A(1), A(2), A(3), buf, (socklen_t)k);
	} else if (!strcmp(w[0], "fcntl")) {
		if (n > 3)
			r = ifc.fcntl(U, A(1), A(2), (int)A(3));
		else
			r = ifc.fcntl(U, A(1), A(2));
	} else if (!strcmp(w[0], "ioctl")) {
		int v = (int)A(3);
		r = ifc.ioctl(U, A(1), (unsigned long)A(2), &v);
		extra = v;
		have_extra = 1;
	} else if (!strcmp(w[0], "poll")) {
		struct pollfd p = { .fd = (int)A(1), .events = (short)A(2) };
		r = ifc.poll(U, &p, 1, (int)A(3));
		extra = p.revents;
		have_extra = 1;
	} else if (!strcmp(w[0], "inject")) {
		size_t k = unhex(w[1], buf, sizeof(buf));
		r = ifc.netdev_send(U, buf, k);
	} else if (!strcmp(w[0], "sniff")) {
		size_t k = sizeof(buf);
		long long tu = 0;
		r = ifc.netdev_receive(U, buf, &k, &tu);
		puthex(hex, buf, k);
		sprintf(out, "%d %d %lld %s", (int)k, r, tu, hex);
		return;
	} else if (!strcmp(w[0], "usleep")) {
		r = ifc.usleep(U, (useconds_t)A(1));
	} else if (!strcmp(w[0], "time")) {
		extra = now();
		have_extra = 1;
	} else if (!strcmp(w[0], "free")) {
		ifc.free(U);
	} else {
		sprintf(out, "? unknown command %s", w[0]);
		return;
	}
	if (have_extra)
		sprintf(out, "%d %d %lld", r, r < 0 ? errno : 0, extra);
	else
		sprintf(out, "%d %d%s%s", r, r < 0 ? errno : 0, hex[0] ? " " : "", hex);
}

/* the second thread */
static pthread_t bg;
static char bgline[1 << 19], bgout[(1 << 18) + 64];
static long long bgend;
static int bgrunning;

static void *bgmain(void *arg)
{
	(void)arg;
	run(bgline, bgout);
	bgend = now();		/* packetdrill's end_syscall */
	return NULL;
}

int main(int argc, char **argv)
{
	static char line[1 << 19], out[(1 << 18) + 64];
	void (*init)(const char *, struct packetdrill_interface *);
	void *h;

	if (argc != 2) {
		fprintf(stderr, "usage: pdselftest net9pd.so < commands\n");
		return 2;
	}
	h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE | RTLD_DEEPBIND);
	if (h == NULL) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	init = (void (*)(const char *, struct packetdrill_interface *))
		dlsym(h, "packetdrill_interface_init");
	if (init == NULL) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), stdin) != NULL) {
		if (!strncmp(line, "init", 4)) {
			char *f = line + 4;
			f += strspn(f, " \t");
			f[strcspn(f, "\n")] = '\0';
			init(f, &ifc);
			printf("0 0\n");
		} else if (!strncmp(line, "bg ", 3)) {
			strcpy(bgline, line + 3);
			bgrunning = 1;
			pthread_create(&bg, NULL, bgmain, NULL);
			/* let it get to its call (packetdrill waits until the
			 * thread sleeps) */
			usleep(100000);
			printf("0 0\n");
		} else if (!strncmp(line, "join", 4)) {
			if (bgrunning)
				pthread_join(bg, NULL);
			bgrunning = 0;
			printf("%s %lld\n", bgout, bgend);
		} else {
			run(line, out);
			printf("%s\n", out);
		}
	}
	return 0;
}
