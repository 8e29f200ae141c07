"""strace's filtering expressions against the real strace 6.1.

A C program makes some 250 syscalls with harmless invalid arguments (fd -1, NULL pointers,
unknown ids: they fail with EBADF, EFAULT, EINVAL...) and catches two signals. The real
strace traces it under each class, trace= set, status= set and signal= set; what it shows
must be exactly what our Filters select from the complete trace. Fault injection is
compared the same way on a loop of getppid() calls, and the error messages word for word.
"""

import os
import re
import shutil
import subprocess

import pytest

from target.arch import abi as abis
from target.cli import AgentError
from target.strace import classes, filters, signals

pytestmark = [
    pytest.mark.skipif(shutil.which("strace") is None,
                       reason="the reference strace is not installed (apt-get install strace)"),
    pytest.mark.skipif(shutil.which("cc") is None,
                       reason="no C compiler to build the test program (apt-get install gcc)"),
]

# (syscall, C arguments): every call fails or does nothing; none may harm the test run
CALLS = [
    ("read", "-1, 0, 0"), ("write", "-1, 0, 0"), ("open", "0, 0"), ("close", "-1"),
    ("stat", "0, 0"), ("fstat", "-1, 0"), ("lstat", "0, 0"), ("poll", "0, 0, 0"),
    ("lseek", "-1, 0, 0"), ("mmap", "0, 0, 0, 0x22, -1, 0"), ("mprotect", "0, 0, 0"),
    ("munmap", "0, 0"), ("brk", "0"), ("rt_sigaction", "0, 0, 0, 8"),
    ("rt_sigprocmask", "0, 0, 0, 8"), ("ioctl", "-1, 0, 0"), ("pread64", "-1, 0, 0, 0"),
    ("pwrite64", "-1, 0, 0, 0"), ("readv", "-1, 0, 0"), ("writev", "-1, 0, 0"),
    ("access", "0, 0"), ("pipe", "0"), ("select", "-1, 0, 0, 0, 0"), ("sched_yield", ""),
    ("mremap", "0, 0, 0, 0"), ("msync", "0, 0, 0"), ("mincore", "0, 0, 0"),
    ("madvise", "0, 0, 0"), ("shmget", "0x7e57, 0, 0"), ("shmat", "-1, 0, 0"),
    ("shmctl", "-1, 2, 0"), ("dup", "-1"), ("dup2", "-1, -1"), ("nanosleep", "0, 0"),
    ("getitimer", "99, 0"), ("alarm", "0"), ("getpid", ""), ("sendfile", "-1, -1, 0, 0"),
    ("socket", "-1, 0, 0"), ("connect", "-1, 0, 0"), ("accept", "-1, 0, 0"),
    ("sendto", "-1, 0, 0, 0, 0, 0"), ("recvfrom", "-1, 0, 0, 0, 0, 0"),
    ("sendmsg", "-1, 0, 0"), ("recvmsg", "-1, 0, 0"), ("shutdown", "-1, 0"),
    ("bind", "-1, 0, 0"), ("listen", "-1, 0"), ("getsockname", "-1, 0, 0"),
    ("getpeername", "-1, 0, 0"), ("socketpair", "-1, 0, 0, 0"),
    ("setsockopt", "-1, 0, 0, 0, 0"), ("getsockopt", "-1, 0, 0, 0, 0"),
    ("clone", "0x10000, 0, 0, 0, 0"), ("execve", "0, 0, 0"), ("wait4", "-1, 0, 1, 0"),
    ("kill", "getpid(), 0"), ("uname", "0"), ("semget", "0x7e57, 0, 0"),
    ("semop", "-1, 0, 0"), ("semctl", "-1, 0, 2, 0"), ("shmdt", "0"),
    ("msgget", "0x7e57, 0"), ("msgsnd", "-1, 0, 0, 0"), ("msgrcv", "-1, 0, 0, 0, 04000"),
    ("msgctl", "-1, 2, 0"), ("fcntl", "-1, 0"), ("flock", "-1, 0"), ("fsync", "-1"),
    ("fdatasync", "-1"), ("truncate", "0, 0"), ("ftruncate", "-1, 0"),
    ("getdents", "-1, 0, 0"), ("getcwd", "0, 0"), ("chdir", "0"), ("fchdir", "-1"),
    ("rename", "0, 0"), ("mkdir", "0, 0"), ("rmdir", "0"), ("creat", "0, 0"),
    ("link", "0, 0"), ("unlink", "0"), ("symlink", "0, 0"), ("readlink", "0, 0, 0"),
    ("chmod", "0, 0"), ("fchmod", "-1, 0"), ("chown", "0, -1, -1"),
    ("fchown", "-1, -1, -1"), ("lchown", "0, -1, -1"), ("umask", "022"),
    ("gettimeofday", "0, 0"), ("getrlimit", "99, 0"), ("getrusage", "99, 0"),
    ("sysinfo", "0"), ("times", "0"), ("getuid", ""), ("getgid", ""), ("setuid", "-1"),
    ("setgid", "-1"), ("geteuid", ""), ("getegid", ""), ("setpgid", "-1, 0"),
    ("getppid", ""), ("getpgrp", ""), ("setreuid", "-1, -1"), ("setregid", "-1, -1"),
    ("getgroups", "0, 0"), ("setgroups", "-1, 0"), ("setresuid", "-1, -1, -1"),
    ("getresuid", "0, 0, 0"), ("setresgid", "-1, -1, -1"), ("getresgid", "0, 0, 0"),
    ("getpgid", "-1"), ("setfsuid", "-1"), ("setfsgid", "-1"), ("getsid", "-1"),
    ("capget", "0, 0"), ("capset", "0, 0"), ("rt_sigpending", "0, 8"),
    ("rt_sigtimedwait", "0, 0, 0, 8"), ("rt_sigqueueinfo", "getpid(), 0, 0"),
    ("rt_sigsuspend", "0, 8"), ("sigaltstack", "0, 0"), ("utime", "0, 0"),
    ("mknod", "0, 0, 0"), ("personality", "0xffffffff"), ("ustat", "0, 0"),
    ("statfs", "0, 0"), ("fstatfs", "-1, 0"), ("getpriority", "99, 0"),
    ("sched_getparam", "-1, 0"), ("sched_getscheduler", "-1"),
    ("sched_get_priority_max", "0"), ("mlock", "0, 0"), ("munlock", "0, 0"),
    ("mlockall", "0"), ("prctl", "-1, 0, 0, 0, 0"), ("arch_prctl", "0, 0"),
    ("adjtimex", "0"), ("chroot", "0"), ("mount", "0, 0, 0, 0, 0"), ("umount2", "0, 0"),
    ("swapon", "0, 0"), ("swapoff", "0"), ("gettid", ""), ("readahead", "-1, 0, 0"),
    ("setxattr", "0, 0, 0, 0, 0"), ("lsetxattr", "0, 0, 0, 0, 0"),
    ("fsetxattr", "-1, 0, 0, 0, 0"), ("getxattr", "0, 0, 0, 0"),
    ("lgetxattr", "0, 0, 0, 0"), ("fgetxattr", "-1, 0, 0, 0"), ("listxattr", "0, 0, 0"),
    ("llistxattr", "0, 0, 0"), ("flistxattr", "-1, 0, 0"), ("removexattr", "0, 0"),
    ("lremovexattr", "0, 0"), ("fremovexattr", "-1, 0"), ("tkill", "tid, 0"),
    ("time", "0"), ("futex", "0, 1, 0, 0, 0, 0"), ("sched_getaffinity", "0, 0, 0"),
    ("io_setup", "0, 0"), ("io_destroy", "0"), ("epoll_create", "0"),
    ("getdents64", "-1, 0, 0"), ("semtimedop", "-1, 0, 0, 0"),
    ("fadvise64", "-1, 0, 0, 0"), ("timer_create", "99, 0, 0"),
    ("timer_gettime", "0x7fffffff, 0"), ("clock_settime", "99, 0"),
    ("clock_gettime", "99, 0"), ("clock_getres", "99, 0"),
    ("clock_nanosleep", "99, 0, 0, 0"), ("epoll_wait", "-1, 0, 1, 0"),
    ("epoll_ctl", "-1, 0, -1, 0"), ("tgkill", "getpid(), tid, 0"), ("utimes", "0, 0"),
    ("mbind", "0, 0, 0, 0, 0, 0"), ("set_mempolicy", "99, 0, 0"),
    ("get_mempolicy", "0, 0, 0, 0, 0"), ("mq_open", "0, 0, 0, 0"), ("mq_unlink", "0"),
    ("mq_timedsend", "-1, 0, 0, 0, 0"), ("mq_timedreceive", "-1, 0, 0, 0, 0"),
    ("mq_notify", "-1, 0"), ("mq_getsetattr", "-1, 0, 0"), ("waitid", "0, 0, 0, 5, 0"),
    ("ioprio_get", "99, 0"), ("inotify_init1", "-1"), ("inotify_add_watch", "-1, 0, 0"),
    ("inotify_rm_watch", "-1, 0"), ("openat", "-1, 0, 0"), ("mkdirat", "-1, 0, 0"),
    ("mknodat", "-1, 0, 0, 0"), ("fchownat", "-1, 0, -1, -1, 0"),
    ("futimesat", "-1, 0, 0"), ("newfstatat", "-1, 0, 0, 0"), ("unlinkat", "-1, 0, 0"),
    ("renameat", "-1, 0, -1, 0"), ("linkat", "-1, 0, -1, 0, 0"),
    ("symlinkat", "0, -1, 0"), ("readlinkat", "-1, 0, 0, 0"), ("fchmodat", "-1, 0, 0"),
    ("faccessat", "-1, 0, 0"), ("pselect6", "-1, 0, 0, 0, 0, 0"),
    ("ppoll", "0, 0, &zero, 0, 8"), ("unshare", "-1"), ("splice", "-1, 0, -1, 0, 0, 0"),
    ("tee", "-1, -1, 0, 0"), ("sync_file_range", "-1, 0, 0, 0"),
    ("vmsplice", "-1, 0, 0, 0"), ("move_pages", "0, 0, 0, 0, 0, 0"),
    ("utimensat", "-1, 0, 0, 0"), ("epoll_pwait", "-1, 0, 1, 0, 0, 8"),
    ("signalfd", "-1, 0, 8"), ("timerfd_create", "-1, 0"), ("fallocate", "-1, 0, 0, 0"),
    ("timerfd_settime", "-1, 0, 0, 0"), ("timerfd_gettime", "-1, 0"),
    ("accept4", "-1, 0, 0, 0"), ("signalfd4", "-1, 0, 8, 0"), ("eventfd2", "0, -1"),
    ("epoll_create1", "-1"), ("dup3", "-1, -1, 0"), ("pipe2", "0, 0"),
    ("preadv", "-1, 0, 0, 0, 0"), ("pwritev", "-1, 0, 0, 0, 0"),
    ("rt_tgsigqueueinfo", "getpid(), tid, 0, 0"), ("perf_event_open", "0, 0, -1, -1, 0"),
    ("recvmmsg", "-1, 0, 0, 0, 0"), ("fanotify_init", "-1, 0"),
    ("fanotify_mark", "-1, 0, 0, -1, 0"), ("prlimit64", "0, 99, 0, 0"),
    ("name_to_handle_at", "-1, 0, 0, 0, 0"), ("open_by_handle_at", "-1, 0, 0"),
    ("clock_adjtime", "99, 0"), ("syncfs", "-1"), ("sendmmsg", "-1, 0, 0, 0"),
    ("setns", "-1, 0"), ("getcpu", "0, 0, 0"), ("sched_getattr", "0, 0, 0, 0"),
    ("renameat2", "-1, 0, -1, 0, 0"), ("seccomp", "99, 0, 0"), ("getrandom", "0, 0, 0"),
    ("memfd_create", "0, 0"), ("bpf", "-1, 0, 0"), ("execveat", "-1, 0, 0, 0, 0"),
    ("userfaultfd", "-1"), ("membarrier", "99, 0, 0"), ("mlock2", "0, 0, -1"),
    ("copy_file_range", "-1, 0, -1, 0, 0, 0"), ("preadv2", "-1, 0, 0, 0, 0, 0"),
    ("pwritev2", "-1, 0, 0, 0, 0, 0"), ("pkey_mprotect", "0, 0, 0, -1"),
    ("pkey_alloc", "-1, 0"), ("pkey_free", "-1"), ("statx", "-1, 0, 0, 0, 0"),
    ("io_pgetevents", "0, 0, 0, 0, 0, 0"), ("pidfd_send_signal", "-1, 0, 0, 0"),
    ("io_uring_setup", "0, 0"), ("io_uring_enter", "-1, 0, 0, 0, 0, 0"),
    ("io_uring_register", "-1, 0, 0, 0"), ("open_tree", "-1, 0, 0"),
    ("move_mount", "-1, 0, -1, 0, 0"), ("fsopen", "0, 0"), ("fsconfig", "-1, 0, 0, 0, 0"),
    ("fsmount", "-1, 0, 0"), ("fspick", "-1, 0, 0"), ("pidfd_open", "-1, 0"),
    ("clone3", "0, 0"), ("close_range", "10, 5, 0"), ("openat2", "-1, 0, 0, 0"),
    ("pidfd_getfd", "-1, 0, 0"), ("faccessat2", "-1, 0, 0, 0"),
    ("process_madvise", "-1, 0, 0, 0, 0"), ("epoll_pwait2", "-1, 0, 1, 0, 0, 0"),
    ("mount_setattr", "-1, 0, 0, 0, 0"), ("quotactl_fd", "-1, 0, 0, 0"),
    ("landlock_create_ruleset", "0, 0, 0"), ("landlock_add_rule", "-1, 0, 0, 0"),
    ("landlock_restrict_self", "-1, 0"), ("memfd_secret", "-1"),
    ("process_mrelease", "-1, 0"), ("futex_waitv", "0, 0, 0, 0, 0"),
    ("quotactl", "0, 0, 0, 0"), ("pivot_root", "0, 0"), ("uselib", "0"),
    ("getpmsg", "0, 0, 0, 0, 0"),
]

PROGRAM = r"""
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static struct timespec zero;
static void handler(int sig) { (void) sig; }

static int loop(int n)      /* getppid() n times: E for an error, R for 42, . otherwise */
{
    char out[256];
    int i;
    for (i = 0; i < n && i < 255; i++) {
        long r = syscall(SYS_getppid);
        out[i] = r == -1 ? 'E' : r == 42 ? 'R' : '.';
    }
    out[i++] = '\n';
    return write(1, out, i) == i ? 0 : 1;
}

int main(int argc, char **argv)
{
    long tid = syscall(SYS_gettid);
    (void) tid;
    if (argc > 2 && strcmp(argv[1], "loop") == 0)
        return loop(atoi(argv[2]));
%s
    signal(SIGUSR1, handler);
    signal(SIGUSR2, handler);
    raise(SIGUSR1);
    raise(SIGUSR2);
    return 0;
}
"""

CLASS_TOKENS = ["%file", "%process", "%net", "%network", "%signal", "%ipc", "%desc",
                "%memory", "%creds", "%stat", "%lstat", "%fstat", "%%stat", "%statfs",
                "%fstatfs", "%%statfs", "%clock", "%pure", "file", "desc", "network"]
LINE = re.compile(r"^([a-z_0-9]+)\(.* = (.*)$")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("filters")
    source = directory / "corpus.c"
    body = "".join("#ifdef SYS_%s\n    syscall(SYS_%s%s);\n#endif\n"
                   % (name, name, ", " + args if args else "") for name, args in CALLS)
    source.write_text(PROGRAM % body)
    exe = str(directory / "corpus")
    subprocess.run(["cc", "-O1", "-o", exe, str(source)], check=True)
    return exe


def strace(options, argv, tmp_path):
    """The lines the real strace writes with -qq -o: [("call", name, result)] and
    [("signal", name, None)]."""
    out = str(tmp_path / "trace.txt")
    run = subprocess.run(["strace", "-qq", "-o", out] + options + argv,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         universal_newlines=True, timeout=60)
    assert run.returncode == 0, run.stderr
    events = []
    with open(out) as f:
        for line in f:
            if line.startswith("--- SIG"):
                events.append(("signal", line.split()[1], None))
                continue
            match = LINE.match(line.rstrip("\n"))
            assert match, line
            events.append(("call", match.group(1), match.group(2)))
    return events


@pytest.fixture(scope="module")
def complete(corpus, tmp_path_factory):
    """The whole trace of the corpus: every call and signal, in order."""
    return strace([], [corpus], tmp_path_factory.mktemp("complete"))


def calls_of(events):
    return [name for kind, name, _ in events if kind == "call"]


def status_of(result):
    if result == "?":                 # exit_group: strace counts it as unfinished
        return {"is_error": False, "unfinished": True}
    return {"is_error": result.startswith("-1 ")}


def test_corpus_makes_the_calls(complete):
    made = set(calls_of(complete))
    native = abis.native()
    missing = [name for name, _ in CALLS if name in native.numbers and name not in made]
    assert missing == []
    assert ("signal", "SIGUSR1", None) in complete


def test_class_names_exist():
    """Every name in a class is a syscall of some architecture we know (no typos)."""
    known = set()
    for abi in abis.ABIS.values():
        known.update(abi.names.values())
    for token, members in classes.CLASSES.items():
        assert sorted(members - known) == [], token


@pytest.mark.parametrize("token", CLASS_TOKENS)
def test_class_like_strace(token, corpus, complete, tmp_path):
    shown = calls_of(strace(["-e", "trace=" + token], [corpus], tmp_path))
    ours = filters.parse(["trace=" + token])
    assert shown == [name for name in calls_of(complete) if ours.traced(name)]


@pytest.mark.parametrize("expressions", [
    ["trace=openat,close"], ["t=getpid"], ["getppid"], ["trace=/^sched_"],
    ["trace=/xattr$"], ["trace=?nosuch,?/^zzz,read"], ["trace=!%file"], ["trace=!!read"],
    ["trace=all"], ["trace=!all"], ["trace=none"], ["trace=!none"],
    ["trace=%clock,%pure"], ["trace=%desc", "trace=read"], ["trace=39,110"],
    ["trace=open,all"], ["trace=read,,write"], ["trace=%%statfs"],
])
def test_trace_set_like_strace(expressions, corpus, complete, tmp_path):
    options = [arg for e in expressions for arg in ("-e", e)]
    shown = calls_of(strace(options, [corpus], tmp_path))
    ours = filters.parse(expressions)
    assert shown == [name for name in calls_of(complete) if ours.traced(name)]


@pytest.mark.parametrize("options,expressions,z", [
    (["-e", "status=failed"], ["status=failed"], {}),
    (["-e", "status=successful"], ["status=successful"], {}),
    (["-e", "status=!failed"], ["status=!failed"], {}),
    (["-e", "status=unavailable,failed"], ["status=unavailable,failed"], {}),
    (["-e", "status=unfinished"], ["status=unfinished"], {}),
    (["-e", "status=Failed"], ["status=Failed"], {}),
    (["-e", "status=none"], ["status=none"], {}),
    (["-e", "status=all"], ["status=all"], {}),
    (["-z"], [], {"successful_only": True}),
    (["-Z"], [], {"failed_only": True}),
    (["-e", "status=failed", "-z"], ["status=failed"], {"successful_only": True}),
])
def test_status_like_strace(options, expressions, z, corpus, complete, tmp_path):
    shown = calls_of(strace(options + ["-e", "signal=none"], [corpus], tmp_path))
    ours = filters.parse(expressions, **z)
    assert shown == [name for kind, name, result in complete
                     if kind == "call" and ours.status_shown(**status_of(result))]


@pytest.mark.parametrize("expression", [
    "signal=SIGUSR1", "signal=usr2", "signal=!SIGUSR1", "signal=10", "signal=none",
    "signal=all", "s=SIGUSR1,SIGUSR2", "signals=!!USR1", "signal=SIGRTMIN,sigchld",
])
def test_signal_like_strace(expression, corpus, complete, tmp_path):
    shown = [name for kind, name, _ in strace(["-e", expression, "-e", "trace=none"],
                                               [corpus], tmp_path) if kind == "signal"]
    ours = filters.parse([expression])
    assert shown == [name for kind, name, _ in complete
                     if kind == "signal" and ours.signal_shown(signals.SIGNUMS[name])]


WHENS = ["", ":when=1", ":when=2", ":when=2..4", ":when=3+", ":when=2+3", ":when=2..9+3",
         ":when=2..3+", ":when= 4", ":when=+3", ":when=65535", ":when=1:when=5"]


@pytest.mark.parametrize("when", WHENS)
def test_injection_when_like_strace(when, corpus):
    expression = "inject=getppid:error=EIO" + when
    run = subprocess.run(["strace", "-o", "/dev/null", "-e", expression, corpus, "loop", "20"],
                         stdout=subprocess.PIPE, universal_newlines=True, timeout=30, check=True)
    ours = filters.parse([expression])
    pattern = "".join("E" if ours.injection("getppid", count) else "."
                      for count in range(1, 21))
    assert run.stdout.strip() == pattern


@pytest.mark.parametrize("expressions", [
    ["inject=getppid:retval=42:when=3"],
    ["inject=getppid:retval=42", "inject=getppid:error=EIO:when=2"],
    ["inject=getppid,getpid:retval=42", "inject=getpid:error=EIO"],
    ["inject=getppid:retval=42:when=2", "inject=%pure:when=4:error=EIO"],
    ["fault=getppid:when=2+2"],
    ["inject=?nosuch,getppid:error=EPERM:when=5"],
    ["inject=/ppid$:retval=42:when=3..4"],
])
def test_later_injections_win_like_strace(expressions, corpus):
    options = [arg for e in expressions for arg in ("-e", e)]
    run = subprocess.run(["strace", "-o", "/dev/null"] + options + [corpus, "loop", "6"],
                         stdout=subprocess.PIPE, universal_newlines=True, timeout=30, check=True)
    ours = filters.parse(expressions)
    pattern = ""
    for count in range(1, 7):
        injection = ours.injection("getppid", count)
        pattern += "." if injection is None else "R" if injection.retval == 42 else "E"
    assert run.stdout.strip() == pattern


def test_injection_values():
    ours = filters.parse(["inject=openat:error=enoent:signal=usr1:delay_enter=1.5ms:"
                          "delay_exit=2s:syscall=getpid"])
    injection = ours.injection("openat", 1)
    assert (injection.error, injection.signal, injection.syscall) == (2, 10, "getpid")
    assert (injection.delay_enter, injection.delay_exit) == (0.0015, 2.0)
    assert filters.parse(["fault=openat"]).injection("openat", 1).error == 38   # ENOSYS
    assert filters.parse(["inject=openat:error=ERESTARTSYS"]).injection("openat", 1).error == 512
    assert filters.parse(["inject=openat:retval=0x10"]).injection("openat", 1).retval == 16
    assert filters.parse(["inject=openat:retval=010"]).injection("openat", 1).retval == 8
    assert filters.parse(["inject=openat:retval=-1"]).injection("openat", 1).retval == -1
    assert filters.parse(["inject=openat:error=EIO"]).injection("close", 1) is None


@pytest.mark.parametrize("expression", [
    "inject=getppid:retval=-1", "inject=getppid:retval=-4095", "inject=getppid:retval=-4096",
    "inject=getppid:retval=4294967296", "inject=getppid:retval=4294967295",
    "inject=getppid:retval=8589934591", "inject=getppid:retval=8589930496",
    "inject=getppid:retval=42",
])
def test_injection_warnings_like_strace(expression, corpus):
    run = subprocess.run(["strace", "-o", "/dev/null", "-e", expression, corpus, "loop", "1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         universal_newlines=True, timeout=30, check=True)
    theirs = [line[len("strace: "):] for line in run.stderr.splitlines()]
    assert filters.parse([expression]).warnings == theirs


def test_every_errno_name_strace_takes():
    """One strace run with an inject=...:error=NAME for each errno name we know (strace
    rejects the whole command line if one is wrong), in lower case too; the alias names
    strace does not know are refused by both."""
    names = [name for name, _ in signals.ERRNOS.values()] + [
        name for name in signals.KERNEL_ERRNOS.values() if name not in filters.NOT_IN_STRACE]
    options = []
    for name in names + [names[0].lower()]:
        options += ["-e", "inject=getppid:error=%s" % name]
        filters.parse(["inject=getppid:error=%s" % name])
    run = subprocess.run(["strace", "-o", "/dev/null"] + options + ["true"],
                         stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
    assert run.returncode == 0, run.stderr
    for alias in ("EWOULDBLOCK", "ENOTSUP", "EDEADLOCK") + filters.NOT_IN_STRACE:
        message = error_of(["inject=getppid:error=" + alias])
        assert message == strace_error(["inject=getppid:error=" + alias])


def test_every_signal_name_strace_takes():
    names = [signals.SIGNALS[n] for n in range(1, signals.NSIG + 1)]
    value = ",".join(names + [name[3:].lower() for name in names] + ["0", "255"])
    run = subprocess.run(["strace", "-o", "/dev/null", "-e", "signal=" + value, "true"],
                         stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert filters.parse(["signal=" + value]).signals.items == set(range(1, 65)) | {0, 255}


def strace_error(expressions, extra=()):
    options = [arg for e in expressions for arg in ("-e", e)]
    run = subprocess.run(["strace"] + list(extra) + options + ["true"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
    assert run.returncode == 1, run.stderr
    return run.stderr.splitlines()[0][len("strace: "):]


def error_of(expressions, **kw):
    with pytest.raises(AgentError) as caught:
        filters.parse(expressions, **kw)
    return str(caught.value)


@pytest.mark.parametrize("expression", [
    "trace=foo", "trace=", "trace=!", "trace=,", "trace=%foo", "trace=%%foo", "trace=net",
    "trace=creds", "trace=OPEN", "trace=all,!open", "trace=open, close", "trace=/^zzz",
    "trace=9999", "trace=59x", "trace=open@foo", "foo=bar", "trace-fds=1", "abbrev=foo",
    "signal=FOO", "signal=", "signal=SIGINT,!SIGTERM", "signal=256", "signal=-1",
    "signal=SIGRT_33", "signal=SIGIOT", "signal=_0", "status=foo", "status=!",
    "status=all,failed", "quiet=foo", "quiet=all,attach", "read=x", "write=-1",
    "decode-fds=foo", "decode-pids=foo", "kvm=foo",
    "inject=open", "inject=foo:error=EIO", "inject=:error=EIO", "inject=open:error=FOO",
    "inject=open:error=0", "inject=open:error=4096", "inject=open:error=-5",
    "inject=open:error=0x5", "inject=open:error=ENOENT:retval=1",
    "inject=open:error=EIO:error=EPERM", "inject=open:retval=1:retval=2",
    "inject=open:retval=foo", "inject=open:retval=18446744073709551616",
    "inject=open:signal=0", "inject=open:signal=65", "inject=open:signal=FOO",
    "inject=open:signal=SIGINT:signal=SIGTERM", "inject=open:foo=1",
    "inject=open:error=EIO:when=0", "inject=open:error=EIO:when=2..1",
    "inject=open:error=EIO:when=65536", "inject=open:error=EIO:when=2+0",
    "inject=open:error=EIO:when=2+65536", "inject=open:error=EIO:when=2..65535",
    "inject=open:error=EIO:when=..5", "inject=open:error=EIO:when=+",
    "inject=open:error=EIO:when=2..", "inject=open:error=EIO:when=foo",
    "inject=open:error=EIO:when=3: ", "inject=open:syscall=getpid",
    "inject=open:syscall=read:error=EIO", "inject=open:syscall=getuid32:error=EIO",
    "inject=open:error=EIO:syscall=getpid:syscall=getpid", "inject=open:delay_enter=-1",
    "inject=open:delay_exit=1h", "inject=open:delay_enter=1:delay_enter=2",
    "fault=open:retval=1", "fault=open:signal=SIGINT", "fault=open:delay_enter=1",
    "fault=open:error=4096",
])
def test_errors_like_strace(expression):
    assert error_of([expression]) == strace_error([expression])


def test_accepted_like_strace():
    """Expressions strace takes (it runs `true` under them) and we take too."""
    accepted = ["trace=stat", "trace=?foo@64", "quiet=all", "quiet=superseded",
                "decode-fds=path,socket,dev,pidfd", "decode-pids=comm", "kvm=vcpu",
                "read=1,2", "write=all", "a=all", "v=none", "x=open", "raw=!read",
                "verbose=%file", "silent=exit", "silence=exit", "q=attach", "r=1", "w=1",
                "inject=open:error=EIO:when=65535", "inject=open:error=EIO:when=2+65535",
                "inject=open:error=eio", "inject=open:error=05", "inject=open:error= 5",
                "inject=open:signal=64", "inject=open:signal=INT",
                "inject=open:signal=SIGINT:syscall=getpid", "inject=open::error=EIO",
                "inject=open:error=EIO:syscall=geteuid", "fault=open:syscall=getpid",
                "fault=open:error=4095", "inject=open:delay_enter=1.5ms",
                "inject=open:error=EIO:delay_exit=1"]
    options = [arg for e in accepted for arg in ("-e", e)]
    run = subprocess.run(["strace", "-o", "/dev/null"] + options + ["true"],
                         stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
    assert run.returncode == 0, run.stderr
    ours = filters.parse(accepted)
    assert ours.quiet.items == {"attach"} and ours.kvm_vcpu and ours.read_fds.matches(1)


def test_our_own_refusals():
    """What strace takes and we do not: one clear line each."""
    assert error_of(["trace=open@64"]) == "personality designators are not supported: 'open@64'"
    assert error_of(["inject=open:poke_enter=@arg1=00"]) == "inject: poke_enter= is not supported"
    assert error_of(["trace=/["]).startswith("regcomp: [: ")
    assert strace_error(["trace=/["]).startswith("regcomp: [: ")


def test_z_and_big_z_together_warn_like_strace():
    run = subprocess.run(["strace", "-o", "/dev/null", "-z", "-Z", "true"],
                         stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
    ours = filters.parse([], successful_only=True, failed_only=True)
    assert ours.warnings == [line[len("strace: "):] for line in run.stderr.splitlines()]


# --- -P ------------------------------------------------------------------------------------

def test_path_resolution_notice_like_strace(tmp_path):
    (tmp_path / "real").write_text("x")
    os.symlink("real", str(tmp_path / "link"))
    given = [str(tmp_path / "link"), str(tmp_path / "." / "real"), str(tmp_path / "nosuch")]
    options = [arg for path in given for arg in ("-P", path)]
    run = subprocess.run(["strace", "-o", "/dev/null"] + options + ["true"],
                         stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
    ours = filters.parse([], paths=given)
    assert ours.notices() == [line[len("strace: "):] for line in run.stderr.splitlines()]
    assert filters.parse(["quiet=path-resolution"], paths=given).notices() == []


def test_path_matches(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    os.symlink("file", str(tmp_path / "link"))
    other = tmp_path / "other"
    other.write_text("y")
    ours = filters.parse([], paths=[str(tmp_path / "link")])
    assert ours.tracing_paths
    assert ours.path_matches(os.getpid(), paths=[str(tmp_path / "link")])
    assert ours.path_matches(os.getpid(), paths=[os.fsencode(str(target))])   # resolved into
    assert not ours.path_matches(os.getpid(), paths=["link"])          # names, as given
    fd, fd_other = os.open(str(target), os.O_RDONLY), os.open(str(other), os.O_RDONLY)
    try:
        assert ours.path_matches(os.getpid(), fds=[fd_other, fd])
        assert not ours.path_matches(os.getpid(), fds=[fd_other, -100])
    finally:
        os.close(fd)
        os.close(fd_other)
    assert filters.parse([]).path_matches(os.getpid())


def test_traced_numbers():
    native = abis.native()
    assert filters.parse([]).traced_numbers(native) is None
    assert filters.parse(["trace=!none"]).traced_numbers(native) is None
    assert filters.parse(["trace=all"]).traced_numbers(native) is None
    assert filters.parse(["trace=none"]).traced_numbers(native) == set()
    assert filters.parse(["trace=getpid"]).traced_numbers(native) == {native.numbers["getpid"]}
    every_but_one = filters.parse(["trace=!getpid"]).traced_numbers(native)
    assert every_but_one == set(native.names) - {native.numbers["getpid"]}
