/*
 * echo_server.c - reference epoll echo server for bench/echo (Linux, one thread).
 *
 *   echo_server PORT
 *
 * Listens on 127.0.0.1:PORT and writes back whatever it reads. If the kernel will not
 * take a whole echo at once, the rest is kept and the connection stops reading until it
 * has been written (no unbounded buffering). Ends on SIGTERM/SIGINT (default action).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE 65536
#define MAX_EVENTS 256

struct pending {
    char *data; /* unsent rest of an echo, or NULL */
    size_t len, off;
};

static struct pending *pend; /* indexed by fd */
static int epfd;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void set_events(int fd, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(epfd, op, fd, &ev) < 0)
        die("epoll_ctl");
}

static void drop(int fd)
{
    free(pend[fd].data);
    pend[fd] = (struct pending){0};
    close(fd); /* also removes it from the epoll set */
}

/* Writes buf[0:len]; keeps what does not fit and switches the fd to EPOLLOUT. */
static int echo_out(int fd, const char *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, buf + off, len - off);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0)
            return -1;
        off += (size_t)n;
    }
    if (off < len) {
        struct pending *p = &pend[fd];
        p->data = malloc(len - off);
        if (!p->data)
            die("malloc");
        memcpy(p->data, buf + off, len - off);
        p->len = len - off;
        p->off = 0;
        set_events(fd, EPOLL_CTL_MOD, EPOLLOUT);
    }
    return 0;
}

static void on_readable(int fd)
{
    static char buf[BUF_SIZE];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0 && echo_out(fd, buf, (size_t)n) == 0)
        return;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    drop(fd); /* EOF or error */
}

static void on_writable(int fd)
{
    struct pending *p = &pend[fd];
    while (p->off < p->len) {
        ssize_t n = write(fd, p->data + p->off, p->len - p->off);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) {
            drop(fd);
            return;
        }
        p->off += (size_t)n;
    }
    free(p->data);
    *p = (struct pending){0};
    set_events(fd, EPOLL_CTL_MOD, EPOLLIN);
}

static void on_accept(int lfd, int max_fd)
{
    int one = 1;
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED)
                perror("accept4");
            return;
        }
        if (fd >= max_fd) {
            close(fd);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        set_events(fd, EPOLL_CTL_ADD, EPOLLIN);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: echo_server PORT\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("getrlimit");
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    int max_fd = (int)(rl.rlim_cur < 1000000 ? rl.rlim_cur : 1000000);
    pend = calloc((size_t)max_fd, sizeof *pend);
    if (!pend)
        die("calloc");

    int one = 1;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (lfd < 0)
        die("socket");
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)atoi(argv[1])),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("bind");
    if (listen(lfd, 1024) < 0)
        die("listen");

    epfd = epoll_create1(0);
    if (epfd < 0)
        die("epoll_create1");
    set_events(lfd, EPOLL_CTL_ADD, EPOLLIN);

    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(epfd, evs, MAX_EVENTS, -1);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd)
                on_accept(lfd, max_fd);
            else if (pend[fd].data)
                on_writable(fd);
            else
                on_readable(fd);
        }
    }
}
