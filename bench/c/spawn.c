/*
 * spawn COUNT PROGRAM [ARGS...] [-- PROGRAM2 [ARGS...]]: runs PROGRAM COUNT
 * times, one after the other, and prints the mean nanoseconds of one whole
 * run (spawn to reap). Given a second program, runs the two in turn, so that
 * a busy moment of the machine falls on both alike, and prints both means.
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

/* Runs argv once; returns the nanoseconds it took, or -1. */
static long long run_once(char **argv, const posix_spawn_file_actions_t *quiet)
{
	long long started = now_ns();
	pid_t child;
	int error = posix_spawnp(&child, argv[0], quiet, NULL, argv, environ);
	if (error != 0) {
		fprintf(stderr, "spawn %s: %s\n", argv[0], strerror(error));
		return -1;
	}
	int status;
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "spawn: %s did not exit 0 (status %d)\n", argv[0], status);
		return -1;
	}
	return now_ns() - started;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: spawn COUNT PROGRAM [ARGS...] [-- PROGRAM2 [ARGS...]]\n");
		return 2;
	}
	long count = atol(argv[1]);
	char **first = &argv[2], **second = NULL;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			argv[i] = NULL;
			second = &argv[i + 1];
			break;
		}
	}
	posix_spawn_file_actions_t quiet;
	posix_spawn_file_actions_init(&quiet);
	posix_spawn_file_actions_addopen(&quiet, 1, "/dev/null", O_WRONLY, 0);
	long long total[2] = {0, 0};
	for (long i = 0; i < count; i++) {
		for (int which = 0; which < (second ? 2 : 1); which++) {
			long long took = run_once(which ? second : first, &quiet);
			if (took < 0)
				return 1;
			total[which] += took;
		}
	}
	long runs = count > 0 ? count : 1;
	if (second)
		printf("%lld %lld\n", total[0] / runs, total[1] / runs);
	else
		printf("%lld\n", total[0] / runs);
	return 0;
}
