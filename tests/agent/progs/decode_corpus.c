/* Syscalls with known arguments, for comparing our decoder with the real strace.
 *
 * Everything before the marker write(-1, "DECODE-CORPUS-START", 19) is libc start-up and is
 * not compared. Run in an empty scratch directory (it creates and removes files there).
 * Raw syscall() is used where libc would pick another syscall or the vDSO.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/futex.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/random.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define S(...) syscall(__VA_ARGS__)

static volatile int got_usr1;

static void on_usr1(int sig)
{
	got_usr1 = sig;
}

static void files(void)
{
	char buf[256];
	struct stat st;
	struct iovec iov[2];
	long fd, fd2;

	fd = S(SYS_openat, AT_FDCWD, "/etc/hostname", O_RDONLY | O_CLOEXEC);
	S(SYS_read, fd, buf, 0);
	S(SYS_close, fd);
	S(SYS_open, "/nonexistent/file", O_RDONLY);
	S(SYS_openat, AT_FDCWD, "", O_RDONLY);
	fd = S(SYS_openat, AT_FDCWD, "corpus.tmp", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	S(SYS_write, fd, "hello\n\tworld \"quoted\" back\\slash \x01\x7f\xff 0123\0z", 48);
	S(SYS_write, fd, "\0011\0022\003x\r\v\f\a\b\x1b[0m end", 19);
	S(SYS_write, fd, "0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", 72);
	S(SYS_write, fd, "caf\xc3\xa9 \xe2\x82\xac utf8", 15);
	iov[0].iov_base = "first ";
	iov[0].iov_len = 6;
	iov[1].iov_base = "second\n";
	iov[1].iov_len = 7;
	S(SYS_writev, fd, iov, 2);
	S(SYS_pwrite64, fd, "AT100", 5, 100);
	S(SYS_fsync, fd);
	S(SYS_fdatasync, fd);
	S(SYS_ftruncate, fd, 300);
	S(SYS_fstat, fd, &st);
	S(SYS_close, fd);
	fd = S(SYS_openat, AT_FDCWD, "corpus.tmp", O_RDWR | O_APPEND | O_NONBLOCK | O_NOFOLLOW);
	S(SYS_lseek, fd, 0, SEEK_SET);
	S(SYS_read, fd, buf, 10);
	S(SYS_read, fd, buf, sizeof buf);
	S(SYS_lseek, fd, -5, SEEK_END);
	S(SYS_lseek, fd, 3, SEEK_CUR);
	S(SYS_pread64, fd, buf, 5, 100);
	iov[0].iov_base = buf;
	iov[0].iov_len = 4;
	iov[1].iov_base = buf + 10;
	iov[1].iov_len = 200;
	S(SYS_preadv, fd, iov, 2, 0, 0);
	S(SYS_readv, fd, iov, 2);
	S(SYS_fcntl, fd, F_GETFL);
	S(SYS_fcntl, fd, F_SETFL, O_RDWR | O_NONBLOCK);
	S(SYS_fcntl, fd, F_GETFD);
	S(SYS_fcntl, fd, F_SETFD, FD_CLOEXEC);
	fd2 = S(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 10);
	S(SYS_close, fd2);
	fd2 = S(SYS_dup, fd);
	S(SYS_dup2, fd, 20);
	S(SYS_dup3, fd, 21, O_CLOEXEC);
	S(SYS_close, 20);
	S(SYS_close, 21);
	S(SYS_close, fd2);
	S(SYS_flock, fd, LOCK_EX | LOCK_NB);
	S(SYS_flock, fd, LOCK_UN);
	S(SYS_ioctl, fd, TCGETS, buf);
	S(SYS_ioctl, fd, FIONREAD, buf);
	S(SYS_close, fd);
	S(SYS_close, 999);
	S(SYS_stat, "corpus.tmp", &st);
	S(SYS_lstat, "corpus.tmp", &st);
	S(SYS_newfstatat, AT_FDCWD, "corpus.tmp", &st, AT_SYMLINK_NOFOLLOW);
	S(SYS_newfstatat, AT_FDCWD, "missing", &st, 0);
	S(SYS_stat, "/dev/null", &st);
	S(SYS_access, "corpus.tmp", R_OK | W_OK);
	S(SYS_access, "corpus.tmp", F_OK);
	S(SYS_faccessat, AT_FDCWD, "missing", X_OK);
	S(SYS_chmod, "corpus.tmp", 0600);
	S(SYS_truncate, "corpus.tmp", 10);
	S(SYS_mkdir, "corpus.dir", 0755);
	S(SYS_mkdirat, AT_FDCWD, "corpus.dir/sub", 0700);
	S(SYS_symlink, "corpus.tmp", "corpus.lnk");
	S(SYS_readlink, "corpus.lnk", buf, sizeof buf);
	S(SYS_readlinkat, AT_FDCWD, "corpus.lnk", buf, 4);
	S(SYS_link, "corpus.tmp", "corpus.hard");
	S(SYS_rename, "corpus.hard", "corpus.dir/hard");
	S(SYS_renameat2, AT_FDCWD, "corpus.dir/hard", AT_FDCWD, "corpus.hard2", RENAME_NOREPLACE);
	S(SYS_unlink, "corpus.hard2");
	S(SYS_unlinkat, AT_FDCWD, "corpus.lnk", 0);
	S(SYS_unlinkat, AT_FDCWD, "corpus.dir/sub", AT_REMOVEDIR);
	fd = S(SYS_openat, AT_FDCWD, "corpus.dir", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	S(SYS_fchdir, fd);
	S(SYS_getcwd, buf, sizeof buf);
	S(SYS_chdir, "..");
	S(SYS_getdents64, fd, buf, sizeof buf);
	S(SYS_getdents64, fd, buf, sizeof buf);
	S(SYS_close, fd);
	S(SYS_rmdir, "corpus.dir");
	S(SYS_umask, 022);
	S(SYS_unlink, "corpus.tmp");
	S(SYS_faccessat2, AT_FDCWD, "/etc/hostname", R_OK, AT_EACCESS);
}

static void memory(void)
{
	void *p;

	p = (void *)S(SYS_mmap, NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	S(SYS_mprotect, p, 4096, PROT_READ);
	S(SYS_madvise, p, 8192, MADV_DONTNEED);
	S(SYS_msync, p, 4096, MS_ASYNC);
	S(SYS_mlock, p, 4096);
	S(SYS_munlock, p, 4096);
	p = (void *)S(SYS_mremap, p, 8192, 16384, MREMAP_MAYMOVE);
	S(SYS_munmap, p, 16384);
	S(SYS_mmap, NULL, 4096, PROT_NONE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	S(SYS_mmap, NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, 99, 4096);
	S(SYS_munmap, 0, 4096);
	S(SYS_brk, 0);
}

static void process(void)
{
	char buf[256];
	struct rlimit rl;
	struct utsname un;
	struct rusage ru;
	unsigned long fsbase;
	cpu_set_t set;

	S(SYS_getpid);
	S(SYS_getppid);
	S(SYS_gettid);
	S(SYS_getuid);
	S(SYS_geteuid);
	S(SYS_getgid);
	S(SYS_getegid);
	S(SYS_getpgrp);
	S(SYS_getpgid, 0);
	S(SYS_getsid, 0);
	S(SYS_setpgid, 0, 0);
	S(SYS_getrlimit, RLIMIT_NOFILE, &rl);
	S(SYS_prlimit64, 0, RLIMIT_STACK, NULL, &rl);
	rl.rlim_cur = 1024;
	rl.rlim_max = RLIM_INFINITY;
	S(SYS_prlimit64, 0, RLIMIT_CORE, &rl, NULL);
	S(SYS_setrlimit, RLIMIT_CORE, &rl);
	S(SYS_getrusage, RUSAGE_SELF, &ru);
	S(SYS_uname, &un);
	S(SYS_prctl, PR_SET_NAME, "corpus-name", 0, 0, 0);
	S(SYS_prctl, PR_GET_DUMPABLE, 0, 0, 0, 0);
	S(SYS_prctl, PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
	S(SYS_arch_prctl, 0x1003 /* ARCH_GET_FS */, &fsbase);
	S(SYS_sched_yield);
	S(SYS_sched_getaffinity, 0, sizeof set, &set);
	S(SYS_getrandom, buf, 0, GRND_NONBLOCK);
	S(SYS_getcpu, NULL, NULL, NULL);
	S(SYS_kill, S(SYS_getpid), 0);
	S(SYS_setuid, 0);
	S(SYS_getgroups, 0, NULL);
	S(SYS_capget, NULL, NULL);
	S(SYS_personality, 0xffffffff);
	S(SYS_set_tid_address, &fsbase);
}

static void on_chld(int sig)
{
	(void)sig;
}

/* SIGCHLD is blocked until rt_sigsuspend, so its line comes at the same place every run */
static void children(void)
{
	struct sigaction sa;
	sigset_t chld, empty;
	int status;
	pid_t pid;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_chld;
	sigaction(SIGCHLD, &sa, NULL);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigemptyset(&empty);
	S(SYS_rt_sigprocmask, SIG_BLOCK, &chld, NULL, 8);
	pid = fork();
	if (pid == 0)
		_exit(3);
	S(SYS_rt_sigsuspend, &empty, 8);
	S(SYS_wait4, pid, &status, 0, NULL);
	pid = fork();
	if (pid == 0) {
		pause();
		_exit(0);
	}
	S(SYS_kill, pid, SIGTERM);
	S(SYS_rt_sigsuspend, &empty, 8);
	S(SYS_wait4, -1, &status, __WALL, NULL);
	S(SYS_wait4, -1, &status, WNOHANG, NULL);
	S(SYS_rt_sigprocmask, SIG_UNBLOCK, &chld, NULL, 8);
}

static void signals(void)
{
	struct sigaction sa;
	sigset_t set, old;
	stack_t ss;
	struct itimerval it;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGINT);
	sigaddset(&sa.sa_mask, SIGRTMIN + 2);
	sa.sa_flags = SA_RESTART | SA_SIGINFO;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR1, NULL, &sa);
	sa.sa_handler = SIG_IGN;
	sa.sa_flags = 0;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGHUP);
	S(SYS_rt_sigprocmask, SIG_BLOCK, &set, &old, 8);
	S(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, 8);
	sigfillset(&set);
	S(SYS_rt_sigprocmask, SIG_UNBLOCK, &set, NULL, 8);
	S(SYS_kill, S(SYS_getpid), SIGUSR1);
	S(SYS_tgkill, S(SYS_getpid), S(SYS_gettid), SIGUSR1);
	S(SYS_rt_sigpending, &set, 8);
	S(SYS_sigaltstack, NULL, &ss);
	S(SYS_alarm, 0);
	memset(&it, 0, sizeof it);
	S(SYS_getitimer, ITIMER_REAL, &it);
	S(SYS_setitimer, ITIMER_REAL, &it, NULL);
	S(SYS_kill, 1 << 30, SIGKILL);
}

static void times_(void)
{
	struct timespec ts = {0, 1000};
	struct timeval tv;

	S(SYS_nanosleep, &ts, NULL);
	S(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &ts, NULL);
	S(SYS_clock_getres, CLOCK_REALTIME, &ts);
	S(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
	S(SYS_clock_gettime, CLOCK_BOOTTIME, &ts);
	S(SYS_gettimeofday, &tv, NULL);
	S(SYS_time, NULL);
}

static void network(void)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr_un sun;
	struct sockaddr_nl snl;
	struct msghdr mh;
	struct iovec iov[2];
	socklen_t len;
	int sv[2], one = 1, val;
	char buf[64];
	long s, c, a;

	s = S(SYS_socket, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
	S(SYS_setsockopt, s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	len = sizeof val;
	S(SYS_getsockopt, s, SOL_SOCKET, SO_TYPE, &val, &len);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	S(SYS_bind, s, &sin, sizeof sin);
	S(SYS_listen, s, 5);
	len = sizeof sin;
	S(SYS_getsockname, s, &sin, &len);
	c = S(SYS_socket, AF_INET, SOCK_STREAM, 0);
	S(SYS_connect, c, &sin, sizeof sin);
	len = sizeof sin;
	a = S(SYS_accept4, s, &sin, &len, SOCK_NONBLOCK);
	S(SYS_sendto, c, "ping", 4, MSG_NOSIGNAL, NULL, 0);
	S(SYS_recvfrom, a, buf, sizeof buf, 0, NULL, NULL);
	S(SYS_shutdown, c, SHUT_WR);
	S(SYS_close, a);
	S(SYS_close, c);
	S(SYS_close, s);

	s = S(SYS_socket, AF_INET6, SOCK_DGRAM, 0);
	memset(&sin6, 0, sizeof sin6);
	sin6.sin6_family = AF_INET6;
	sin6.sin6_addr = in6addr_loopback;
	sin6.sin6_port = htons(9);
	S(SYS_connect, s, &sin6, sizeof sin6);
	S(SYS_close, s);

	S(SYS_socketpair, AF_UNIX, SOCK_STREAM, 0, sv);
	iov[0].iov_base = "msg-one ";
	iov[0].iov_len = 8;
	iov[1].iov_base = "msg-two";
	iov[1].iov_len = 7;
	memset(&mh, 0, sizeof mh);
	mh.msg_iov = iov;
	mh.msg_iovlen = 2;
	S(SYS_sendmsg, sv[0], &mh, 0);
	iov[0].iov_base = buf;
	iov[0].iov_len = sizeof buf;
	mh.msg_iovlen = 1;
	S(SYS_recvmsg, sv[1], &mh, MSG_DONTWAIT);
	S(SYS_close, sv[0]);
	S(SYS_close, sv[1]);

	s = S(SYS_socket, AF_UNIX, SOCK_DGRAM, 0);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, "corpus.sock");
	S(SYS_bind, s, &sun, offsetof(struct sockaddr_un, sun_path) + strlen(sun.sun_path) + 1);
	S(SYS_connect, s, &sun, sizeof sun);
	S(SYS_unlink, "corpus.sock");
	S(SYS_close, s);

	s = S(SYS_socket, AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
	memset(&snl, 0, sizeof snl);
	snl.nl_family = AF_NETLINK;
	S(SYS_bind, s, &snl, sizeof snl);
	S(SYS_close, s);
}

static void events(void)
{
	struct pollfd pfd[2];
	struct epoll_event ev, evs[4];
	struct timespec ts = {0, 0};
	struct itimerspec its;
	fd_set rfds;
	struct timeval tv = {0, 0};
	int p[2];
	long ep, e, t;

	S(SYS_pipe2, p, O_CLOEXEC);
	S(SYS_write, p[1], "x", 1);
	pfd[0].fd = p[0];
	pfd[0].events = POLLIN;
	pfd[1].fd = p[1];
	pfd[1].events = POLLOUT | POLLPRI;
	S(SYS_poll, pfd, 2, 0);
	pfd[1].events = POLLPRI;
	S(SYS_poll, pfd + 1, 1, 0);
	S(SYS_ppoll, pfd, 2, &ts, NULL, 8);
	FD_ZERO(&rfds);
	FD_SET(p[0], &rfds);
	S(SYS_select, p[0] + 1, &rfds, NULL, NULL, &tv);
	ep = S(SYS_epoll_create1, EPOLL_CLOEXEC);
	ev.events = EPOLLIN | EPOLLET;
	ev.data.u64 = 7;
	S(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, p[0], &ev);
	S(SYS_epoll_wait, ep, evs, 4, 0);
	S(SYS_epoll_pwait, ep, evs, 4, 0, NULL, 8);
	S(SYS_epoll_ctl, ep, EPOLL_CTL_DEL, p[0], NULL);
	S(SYS_close, ep);
	e = S(SYS_eventfd2, 0, EFD_CLOEXEC | EFD_NONBLOCK);
	S(SYS_close, e);
	t = S(SYS_timerfd_create, CLOCK_MONOTONIC, TFD_CLOEXEC);
	memset(&its, 0, sizeof its);
	its.it_value.tv_sec = 100;
	S(SYS_timerfd_settime, t, 0, &its, NULL);
	S(SYS_close, t);
	S(SYS_close, p[0]);
	S(SYS_close, p[1]);
	S(SYS_futex, &p[0], FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	S(SYS_memfd_create, "corpus-memfd", MFD_CLOEXEC);
}

int main(int argc, char **argv, char **envp)
{
	char *args[] = {"/nonexistent/prog", "arg one", "arg\ttwo", NULL};

	(void)argc;
	(void)argv;
	S(SYS_write, -1, "DECODE-CORPUS-START", 19);
	files();
	memory();
	process();
	signals();
	children();
	times_();
	network();
	events();
	S(SYS_execve, args[0], args, envp);
	S(SYS_exit_group, 0);
	return 0;
}
