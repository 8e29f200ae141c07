/* Signals with different siginfo layouts, for comparing the "--- SIG... ---" lines with
 * strace: a queued realtime signal with a value, a kernel timer signal, a tkill, and
 * finally a segmentation fault at a known address. */
#define _GNU_SOURCE
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

static void on_signal(int sig)
{
	(void)sig;
}

int main(void)
{
	struct sigaction sa;
	struct itimerval it;
	union sigval value;
	sigset_t empty, alarm_only;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGRTMIN + 1, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigemptyset(&empty);
	sigemptyset(&alarm_only);
	sigaddset(&alarm_only, SIGALRM);
	syscall(SYS_write, -1, "DECODE-SIGNALS-START", 20);
	value.sival_ptr = (void *)42;
	sigqueue(getpid(), SIGRTMIN + 1, value);
	/* SIGALRM stays blocked until sigsuspend, however slow the tracer makes us: a timer
	 * that fired before it would leave sigsuspend waiting forever */
	sigprocmask(SIG_BLOCK, &alarm_only, NULL);
	memset(&it, 0, sizeof it);
	it.it_value.tv_usec = 1000;
	setitimer(ITIMER_REAL, &it, NULL);
	syscall(SYS_rt_sigsuspend, &empty, 8);
	syscall(SYS_tkill, syscall(SYS_gettid), SIGUSR2);
	*(volatile int *)16 = 1;
	return 0;
}
