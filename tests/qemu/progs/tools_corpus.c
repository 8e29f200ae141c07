/* A known set of syscalls for comparing the agent's strace with the real strace on the QEMU
 * boards: files, pipes, sockets, mmap, signals, a thread, fork + exec. Fixed arguments only;
 * run it in a scratch directory (it creates and removes "tools.tmp" and "tools.dir" there).
 * `tools_corpus child` is what the forked child execs: a few calls, exit 7. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got;

static void on_usr1(int sig) { got = sig; }

static void *thread_main(void *arg) {
    (void)arg;
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);         /* pthread_join waits (futex) in every run */
    close(-5);
    return NULL;
}

static void files(void) {
    char buf[16];
    struct stat st;
    int fd = openat(AT_FDCWD, "tools.tmp", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    write(fd, "hello, board\n", 13);
    pwrite(fd, "AT", 2, 20);
    fstat(fd, &st);
    close(fd);
    fd = openat(AT_FDCWD, "tools.tmp", O_RDONLY);
    read(fd, buf, sizeof buf);
    lseek(fd, 0, SEEK_SET);
    int fd2 = dup(fd);
    dup3(fd2, 10, O_CLOEXEC);
    fcntl(10, F_GETFD);
    close(10);
    close(fd2);
    close(fd);
    openat(AT_FDCWD, "/nonexistent/file", O_RDONLY);
    mkdirat(AT_FDCWD, "tools.dir", 0755);
    renameat(AT_FDCWD, "tools.tmp", AT_FDCWD, "tools.dir/moved");
    unlinkat(AT_FDCWD, "tools.dir/moved", 0);
    unlinkat(AT_FDCWD, "tools.dir", AT_REMOVEDIR);
    close(-1);
}

static void pipes_and_sockets(void) {
    int p[2], s[2];
    char buf[8];
    pipe2(p, O_CLOEXEC);
    write(p[1], "pipe", 4);
    read(p[0], buf, sizeof buf);
    close(p[0]);
    close(p[1]);
    socketpair(AF_UNIX, SOCK_STREAM, 0, s);
    send(s[0], "ping", 4, 0);
    recv(s[1], buf, sizeof buf, 0);
    shutdown(s[0], SHUT_WR);
    close(s[0]);
    close(s[1]);
    int one = 1, t = socket(AF_INET, SOCK_DGRAM, 0);
    setsockopt(t, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    close(t);
}

static void memory(void) {
    char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    m[0] = 1;
    mprotect(m, 4096, PROT_READ);
    munmap(m, 8192);
}

static void signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    kill(getpid(), SIGUSR1);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "child")) {
        close(-3);
        getppid();
        return 7;
    }
    write(-1, "TOOLS-CORPUS-START", 18);
    files();
    pipes_and_sockets();
    memory();
    signals();
    pthread_t th;
    pthread_create(&th, NULL, thread_main, NULL);
    pthread_join(th, NULL);
    pid_t pid = fork();
    if (pid == 0) {
        char *args[] = {argv[0], "child", NULL};
        execv(argv[0], args);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    close(-4);
    return WEXITSTATUS(status) == 7 ? 0 : 1;
}
