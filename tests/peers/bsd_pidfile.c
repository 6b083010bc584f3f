/*
 * BSD pidfile(3), from libbsd, as a peer for the interoperability tests.
 *
 *   bsd_pidfile hold PATH   prints "locked PID", holds until stdin closes
 *   bsd_pidfile try PATH    prints "ok" (and releases) or "refused ERRNO OTHERPID"
 */
#include <bsd/libutil.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	pid_t other = 0;
	struct pidfh *pfh = pidfile_open(argv[2], 0644, &other);
	if (pfh == NULL) {
		int error = errno;
		if (error == EEXIST)
			printf("refused EEXIST %d\n", (int)other);
		else if (error == EINVAL)
			printf("refused EINVAL %d\n", (int)other);
		else
			printf("refused errno-%d %d\n", error, (int)other);
		return 1;
	}
	if (pidfile_write(pfh) != 0) {
		printf("error write %s\n", strerror(errno));
		return 2;
	}
	if (strcmp(argv[1], "hold") == 0) {
		printf("locked %d\n", (int)getpid());
		fflush(stdout);
		char buf[64];
		while (read(0, buf, sizeof buf) > 0)
			;
	} else {
		printf("ok\n");
	}
	pidfile_remove(pfh);
	return 0;
}
