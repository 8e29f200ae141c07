/* Processes, threads and signals for the strace engine tests; argv[1] picks a scenario.
 * Every syscall uses fixed arguments so strace and our tracer print the same lines. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void *thread_main(void *arg) {
    (void)arg;
    close(-5);
    return NULL;
}

static char *self_path;

static void *thread_exec(void *arg) {
    (void)arg;
    char *args[] = {self_path, "errors", NULL};
    execv(self_path, args);          /* a non-leader thread execs: it takes the leader's pid */
    return NULL;
}

static int forks(int n) {
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            close(-1);
            _exit(i % 7);
        }
        int status;
        waitpid(pid, &status, 0);
    }
    return 0;
}

static int many(int n) {          /* n children alive at once */
    for (int i = 0; i < n; i++)
        if (fork() == 0) {
            close(-1);
            _exit(0);
        }
    while (wait(NULL) > 0)
        ;
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "fork";
    if (!strcmp(mode, "fork"))
        return forks(1) + 3;
    if (!strcmp(mode, "forks"))
        return forks(atoi(argv[2]));
    if (!strcmp(mode, "many"))
        return many(atoi(argv[2]));
    if (!strcmp(mode, "thread")) {
        pthread_t t;
        pthread_create(&t, NULL, thread_main, NULL);
        pthread_join(t, NULL);
        close(-6);
        return 0;
    }
    if (!strcmp(mode, "thread-exec")) {
        pthread_t t;
        self_path = argv[0];
        pthread_create(&t, NULL, thread_exec, NULL);
        for (;;)
            pause();
    }
    if (!strcmp(mode, "signal")) {
        signal(SIGUSR2, SIG_IGN);
        raise(SIGUSR2);
        close(-7);
        raise(SIGUSR1);           /* default action: killed by SIGUSR1 */
        return 0;
    }
    if (!strcmp(mode, "errors")) {
        close(-1);
        getppid();
        close(-2);
        getpid();
        return 0;
    }
    if (!strcmp(mode, "exec")) {
        char *args[] = {argv[0], "errors", NULL};
        execv(argv[0], args);
        return 1;
    }
    if (!strcmp(mode, "loop")) {      /* for -p: a syscall now and then, forever */
        struct timespec ts = {0, 20 * 1000 * 1000};
        for (;;) {
            getppid();
            nanosleep(&ts, NULL);
        }
    }
    if (!strcmp(mode, "stop")) {
        raise(SIGSTOP);
        close(-8);
        return 0;
    }
    return 2;
}
