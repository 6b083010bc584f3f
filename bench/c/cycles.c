/*
 * cycles MODE PATH COUNT: COUNT take-and-release cycles of a pidfile at PATH,
 * then the mean nanoseconds of one cycle on stdout.
 *
 *   floor  open(O_CREAT|O_CLOEXEC) + flock + write + unlink + close, and no
 *          safety check at all: the least any flock pidfile can do
 *   bsd    pidfile_open + pidfile_write + pidfile_remove (libbsd pidfile(3))
 *
 * COUNT 0 does nothing, so that strace of such a run counts start-up alone.
 */
#include <bsd/libutil.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int floor_cycle(const char *path, const char *text, size_t len)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0 || write(fd, text, len) != (ssize_t)len)
		return -1;
	if (unlink(path) != 0)
		return -1;
	return close(fd);
}

static int bsd_cycle(const char *path)
{
	pid_t other = 0;
	struct pidfh *pfh = pidfile_open(path, 0644, &other);
	if (pfh == NULL || pidfile_write(pfh) != 0)
		return -1;
	return pidfile_remove(pfh);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: cycles floor|bsd PATH COUNT\n");
		return 2;
	}
	const char *mode = argv[1], *path = argv[2];
	long count = atol(argv[3]);
	int bsd = strcmp(mode, "bsd") == 0;
	if (!bsd && strcmp(mode, "floor") != 0) {
		fprintf(stderr, "cycles: unknown mode %s\n", mode);
		return 2;
	}
	char text[16];
	int len = snprintf(text, sizeof text, "%d\n", (int)getpid());
	long long started = now_ns();
	for (long i = 0; i < count; i++) {
		if ((bsd ? bsd_cycle(path) : floor_cycle(path, text, (size_t)len)) != 0) {
			fprintf(stderr, "cycles %s: %s\n", mode, strerror(errno));
			return 1;
		}
	}
	printf("%lld\n", (now_ns() - started) / (count > 0 ? count : 1));
	return 0;
}
