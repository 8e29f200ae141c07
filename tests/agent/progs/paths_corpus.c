/* Syscalls that name files by path and by descriptor, for strace -P: everything happens
 * under the directory given as argv[1] (file1, sub/, link -> file1, other, target), plus a
 * few calls on paths outside it. No file stays open after it is replaced or removed. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

static char path_buf[8][4096];

static const char *at(int slot, const char *dir, const char *name)
{
    snprintf(path_buf[slot], sizeof(path_buf[slot]), "%s/%s", dir, name);
    return path_buf[slot];
}

int main(int argc, char **argv)
{
    const char *dir = argv[1];
    const char *file1 = at(0, dir, "file1");
    const char *sub = at(1, dir, "sub");
    const char *slink = at(2, dir, "link");
    const char *other = at(3, dir, "other");
    struct stat st;
    char buf[4096];

    /* set up */
    int fd = open(file1, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    write(fd, "hello\n", 6);
    close(fd);
    mkdir(sub, 0755);
    symlink(file1, slink);
    int ofd = openat(AT_FDCWD, other, O_CREAT | O_RDWR, 0600);

    /* by path */
    stat(file1, &st);
    lstat(slink, &st);
    fstatat(AT_FDCWD, file1, &st, 0);
    access(file1, R_OK);
    faccessat(AT_FDCWD, slink, R_OK, 0);
    readlink(slink, buf, sizeof(buf));
    chmod(file1, 0640);
    truncate(file1, 6);
    utimensat(AT_FDCWD, file1, NULL, 0);
    stat("/", &st);
    access("/etc/passwd", R_OK);

    /* by descriptor */
    fd = openat(AT_FDCWD, file1, O_RDWR);
    read(fd, buf, 3);
    pread(fd, buf, 3, 0);
    lseek(fd, 0, SEEK_SET);
    fstat(fd, &st);
    fcntl(fd, F_GETFL);
    int fd2 = dup(fd);
    dup2(ofd, 20);
    dup2(fd, 21);
    dup3(ofd, fd2, O_CLOEXEC);
    void *map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    munmap(map, 4096);
    write(ofd, "x", 1);
    sendfile(ofd, fd, NULL, 2);
    int fds[2];
    pipe(fds);
    struct pollfd pfd[2] = {{fds[0], POLLIN, 0}, {fd, POLLIN, 0}};
    poll(pfd, 2, 0);
    poll(pfd, 1, 0);
    fd_set rset;
    FD_ZERO(&rset);
    FD_SET(fd, &rset);
    struct timeval tv = {0, 0};
    select(fd + 1, &rset, NULL, NULL, &tv);
    FD_ZERO(&rset);
    FD_SET(fds[0], &rset);
    select(fds[0] + 1, &rset, NULL, NULL, &tv);
    int ep = epoll_create1(0);
    struct epoll_event ev = {EPOLLIN, {0}};
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &ev);
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);

    copy_file_range(fd, NULL, ofd, NULL, 1, 0);
#ifdef __i386__
    /* i386's select and mmap take a pointer to their arguments */
    unsigned long select_args[5] = {fd + 1, (unsigned long)&rset, 0, 0, (unsigned long)&tv};
    FD_ZERO(&rset);
    FD_SET(fd, &rset);
    syscall(SYS_select, select_args);
    unsigned long mmap_args[6] = {0, 4096, PROT_READ, MAP_SHARED, fd, 0};
    map = (void *)syscall(SYS_mmap, mmap_args);
    munmap(map, 4096);
#endif

    /* the file as a watch, a mark (a 64-bit mask before it) and a mount source */
    int ifd = inotify_init1(0);
    inotify_add_watch(ifd, file1, IN_OPEN);
    int fan = fanotify_init(0, O_RDONLY);
    fanotify_mark(fan, FAN_MARK_ADD, FAN_OPEN, AT_FDCWD, file1);
    fanotify_mark(fan, FAN_MARK_ADD, FAN_OPEN, fd, NULL);
    syscall(SYS_fsconfig, -1, 3, "source", file1, AT_FDCWD);
    syscall(SYS_fsconfig, -1, 5, "source", NULL, fd);
    syscall(SYS_fsconfig, -1, 1, "source", file1, fd);

    /* a directory: by fd and as dirfd */
    int dfd = open(sub, O_RDONLY | O_DIRECTORY);
    int sfd = openat(dfd, "inner", O_CREAT | O_WRONLY, 0600);
    fstatat(dfd, "inner", &st, 0);
    mkdirat(dfd, "deeper", 0700);
    syscall(SYS_getdents64, dfd, buf, sizeof(buf));
    fchdir(dfd);
    unlinkat(dfd, "deeper", AT_REMOVEDIR);
    symlinkat(file1, dfd, "ln");
    readlinkat(dfd, "ln", buf, sizeof(buf));
    linkat(AT_FDCWD, file1, dfd, "hard", 0);
    renameat(dfd, "hard", AT_FDCWD, at(7, dir, "target"));

    /* two paths */
    symlink(file1, at(4, dir, "link2"));
    symlink(other, file1);
    link(file1, at(5, dir, "link3"));
    link(other, file1);
    rename(at(5, dir, "link3"), at(6, dir, "link4"));
    rename(at(6, dir, "link4"), file1);
    rename(file1, at(7, dir, "file1b"));
    rename(at(7, dir, "file1b"), file1);

    /* getcwd's buffer is read as a path at entry */
    strcpy(buf, file1);
    syscall(SYS_getcwd, buf, sizeof(buf));

    close(ifd);
    close(fan);
    close(sfd);
    close(fd2);
    close(20);
    close(21);
    close(ep);
    close(fds[0]);
    close(fds[1]);
    close(dfd);
    close(fd);
    close(ofd);
    unlink(at(4, dir, "link2"));
    rmdir(sub);
    return 0;
}
