/*
 * spawn COUNT PROGRAM [ARGS...]: runs PROGRAM COUNT times, one after the
 * other, and prints the mean nanoseconds of one whole run (spawn to reap).
 * The runs' own output goes to /dev/null. Fails if any run does not exit 0.
 */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: spawn COUNT PROGRAM [ARGS...]\n");
		return 2;
	}
	long count = atol(argv[1]);
	posix_spawn_file_actions_t quiet;
	posix_spawn_file_actions_init(&quiet);
	posix_spawn_file_actions_addopen(&quiet, 1, "/dev/null", O_WRONLY, 0);
	long long started = now_ns();
	for (long i = 0; i < count; i++) {
		pid_t child;
		int error = posix_spawnp(&child, argv[2], &quiet, NULL, &argv[2], environ);
		if (error != 0) {
			fprintf(stderr, "spawn %s: %s\n", argv[2], strerror(error));
			return 1;
		}
		int status;
		if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "spawn: %s did not exit 0 (status %d)\n", argv[2], status);
			return 1;
		}
	}
	printf("%lld\n", (now_ns() - started) / (count > 0 ? count : 1));
	return 0;
}
