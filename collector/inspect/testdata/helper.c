/*
 * Test helper for the ELF core tests: a small process with a known command
 * line and two threads, cheap to dump.
 *
 *   helper ARGS...         prints "ready <pid>" once both threads exist,
 *                          then sleeps until killed (for gcore).
 *   helper ARGS... crash   dereferences NULL so that the kernel (or a
 *                          debugger) records a SIGSEGV core.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#ifndef PR_SET_PTRACER
#define PR_SET_PTRACER 0x59616d61
#endif
#ifndef PR_SET_PTRACER_ANY
#define PR_SET_PTRACER_ANY ((unsigned long)-1)
#endif

static void *idle(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_attr_t attr;
	pthread_t thread;

	/* With Yama ptrace_scope=1 only ancestors may attach; gcore is not one. */
	prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);

	/* A small stack keeps the core around 1 MB instead of 9 MB. */
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	if (pthread_create(&thread, &attr, idle, NULL) != 0)
		return 2;

	if (argc > 1 && strcmp(argv[argc - 1], "crash") == 0) {
		struct rlimit rl;
		volatile int *p = NULL;

		if (getrlimit(RLIMIT_CORE, &rl) == 0) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_CORE, &rl);
		}
		*p = 42;
	}

	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	for (;;)
		pause();
}
