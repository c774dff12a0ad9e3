/*
 * echo_client.c - load generator for bench/asyncore (Linux, epoll, one thread).
 * A copy of bench/echo/echo_client.c whose messages can end in a newline, for line echo
 * servers: set ECHO_CLIENT_LINE=1 in the environment.
 *
 *   echo_client load HOST PORT CONNS SIZE WARMUP_S DURATION_S
 *     Opens CONNS connections (at most MAX_CONNECTING at a time), then each one
 *     sends SIZE bytes, waits for the whole echo (checked byte for byte) and sends
 *     again. Counting starts WARMUP_S seconds after all connections are up and lasts
 *     DURATION_S seconds. Prints "measuring" when counting starts, then at the end
 *       messages=M seconds=S conns=C errors=E min_conn=A max_conn=B
 *
 *   echo_client idle HOST PORT CONNS SIZE MAX_HOLD_S
 *     Opens CONNS connections, does one SIZE-byte echo round trip on each, prints
 *       ready=R wanted=N failed=F
 *     then holds them open until stdin is closed (or MAX_HOLD_S passes) and exits.
 *
 * Exit status 0 when every connection worked, 1 otherwise, 2 on bad usage.
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
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTING 64     /* in-flight handshakes: keep below the servers' backlog */
#define CONNECT_TIMEOUT_S 30.0 /* the whole connect phase must finish within this */
#define MAX_EVENTS 256
#define STDIN_TAG UINT32_MAX

enum state { UNUSED, CONNECTING, SENDING, RECEIVING, IDLE, DEAD };

struct conn {
    int fd;
    enum state state;
    size_t sent, recvd;
    long count; /* messages completed inside the measured window */
};

static struct conn *conns;
static int nconns, epfd;
static size_t msg_size;
static unsigned char *msg, *rbuf;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* Reports a per-connection failure; only the first few, so a dead server is not 10,000 lines. */
static void complain(const char *what, int err)
{
    static int reported;
    if (reported++ < 3)
        fprintf(stderr, "%s%s%s\n", what, err ? ": " : "", err ? strerror(err) : "");
    else if (reported == 4)
        fprintf(stderr, "(further connection errors not shown)\n");
}

static void watch(struct conn *c, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.u32 = (uint32_t)(c - conns)};
    if (epoll_ctl(epfd, op, c->fd, &ev) < 0)
        die("epoll_ctl");
}

static void kill_conn(struct conn *c, int *failed)
{
    if (c->state == DEAD)
        return;
    close(c->fd);
    c->state = DEAD;
    (*failed)++;
}

static int open_conn(struct conn *c, const struct sockaddr_in *addr)
{
    int one = 1;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0)
        die("socket");
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (const struct sockaddr *)addr, sizeof *addr) < 0 && errno != EINPROGRESS) {
        complain("connect", errno);
        close(c->fd);
        c->state = DEAD;
        return -1;
    }
    c->state = CONNECTING;
    c->sent = c->recvd = 0;
    watch(c, EPOLL_CTL_ADD, EPOLLOUT);
    return 0;
}

/* Write the rest of the message; returns -1 on error, 0 if it would block, 1 when done. */
static int send_rest(struct conn *c)
{
    while (c->sent < msg_size) {
        ssize_t n = write(c->fd, msg + c->sent, msg_size - c->sent);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n < 0) {
            complain("write", errno);
            return -1;
        }
        c->sent += (size_t)n;
    }
    return 1;
}

/* Start (or continue) sending; switches epoll interest as needed. Returns -1 on error. */
static int pump_send(struct conn *c)
{
    int r = send_rest(c);
    if (r < 0)
        return -1;
    if (r == 0 && c->state != SENDING) {
        c->state = SENDING;
        watch(c, EPOLL_CTL_MOD, EPOLLOUT);
    } else if (r == 1) {
        int was_sending = c->state == SENDING || c->state == CONNECTING;
        c->state = RECEIVING;
        c->recvd = 0;
        if (was_sending)
            watch(c, EPOLL_CTL_MOD, EPOLLIN);
    }
    return 0;
}

/* Read what has arrived of the echo; returns -1 on error, 0 if incomplete, 1 when complete. */
static int recv_some(struct conn *c)
{
    ssize_t n = read(c->fd, rbuf, msg_size - c->recvd);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    if (n < 0) {
        complain("read", errno);
        return -1;
    }
    if (n == 0) {
        complain("server closed a connection", 0);
        return -1;
    }
    if (memcmp(rbuf, msg + c->recvd, (size_t)n) != 0) {
        complain("echo mismatch", 0);
        return -1;
    }
    c->recvd += (size_t)n;
    return c->recvd == msg_size;
}

static int connect_done(struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
        complain("connect", err);
        return -1;
    }
    c->sent = 0;
    return pump_send(c);
}

/* Progress of opening the connections: at most MAX_CONNECTING pending at a time. */
struct phase {
    const struct sockaddr_in *addr;
    int idle_mode;
    int next_to_open, connecting, ready, failed;
};

static void open_more(struct phase *p)
{
    while (p->connecting < MAX_CONNECTING && p->next_to_open < nconns) {
        struct conn *c = &conns[p->next_to_open++];
        if (open_conn(c, p->addr) < 0)
            p->failed++;
        else
            p->connecting++;
    }
}

/* Settles a connection that has finished connecting (load) or its first echo (idle). */
static void settle(struct phase *p)
{
    p->connecting--;
    p->ready++;
    open_more(p);
}

static void handle(struct phase *p, struct conn *c, uint32_t events, int counting)
{
    int was_pending = p->idle_mode ? c->state != IDLE : c->state == CONNECTING;
    int bad = 0;

    if (c->state == DEAD)
        return;
    if (c->state == CONNECTING) {
        bad = connect_done(c) < 0;
        if (!bad && !p->idle_mode)
            settle(p);
    } else if (c->state == SENDING && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        bad = pump_send(c) < 0;
    } else if (c->state == RECEIVING && (events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
        int r = recv_some(c);
        bad = r < 0;
        if (r == 1 && p->idle_mode) {
            c->state = IDLE;
            settle(p);
        } else if (r == 1) {
            if (counting)
                c->count++;
            c->sent = 0;
            bad = pump_send(c) < 0;
        }
    } else if (c->state == IDLE) {
        complain("server closed an idle connection", 0);
        bad = 1;
    }
    if (bad) {
        kill_conn(c, &p->failed);
        if (was_pending) {
            p->connecting--;
            open_more(p);
        }
    }
}

/*
 * Drive every connection until `deadline`. In load mode a finished echo is counted
 * (when `counting`) and the next message sent; in idle mode it parks the connection.
 * `stop_when_ready` ends the loop once no connection is pending any more; `watch_stdin`
 * ends it when stdin becomes readable or closed.
 */
static void run_until(struct phase *p, double deadline, int stop_when_ready, int counting,
                      int watch_stdin)
{
    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        double t = now();
        if (t >= deadline)
            return;
        if (stop_when_ready && p->connecting == 0 && p->next_to_open >= nconns)
            return;
        int ms = (int)((deadline - t) * 1000.0) + 1;
        int n = epoll_wait(epfd, evs, MAX_EVENTS, ms < 100 ? ms : 100);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u32 == STDIN_TAG) {
                if (watch_stdin)
                    return;
                continue;
            }
            handle(p, &conns[evs[i].data.u32], evs[i].events, counting);
        }
    }
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: echo_client load HOST PORT CONNS SIZE WARMUP_S DURATION_S\n"
                    "       echo_client idle HOST PORT CONNS SIZE MAX_HOLD_S\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 7)
        usage();
    int load = strcmp(argv[1], "load") == 0;
    if ((load && argc != 8) || (!load && (strcmp(argv[1], "idle") != 0 || argc != 7)))
        usage();

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3]))};
    if (inet_pton(AF_INET, argv[2], &addr.sin_addr) != 1)
        usage();
    nconns = atoi(argv[4]);
    msg_size = (size_t)atol(argv[5]);
    if (nconns <= 0 || msg_size == 0)
        usage();

    raise_nofile();
    setvbuf(stdout, NULL, _IOLBF, 0);
    conns = calloc((size_t)nconns, sizeof *conns);
    msg = malloc(msg_size);
    rbuf = malloc(msg_size);
    if (!conns || !msg || !rbuf)
        die("malloc");
    for (size_t i = 0; i < msg_size; i++)
        msg[i] = (unsigned char)('a' + i % 26);
    if (getenv("ECHO_CLIENT_LINE") && msg_size > 0)
        msg[msg_size - 1] = '\n';
    epfd = epoll_create1(0);
    if (epfd < 0)
        die("epoll_create1");

    struct phase p = {.addr = &addr, .idle_mode = !load};
    open_more(&p);

    if (load) {
        double warmup = atof(argv[6]), duration = atof(argv[7]);
        run_until(&p, now() + CONNECT_TIMEOUT_S, 1, 0, 0);
        if (p.connecting > 0 || p.failed > 0) {
            fprintf(stderr, "connect phase: %d up, %d failed, %d pending\n", p.ready, p.failed,
                    p.connecting);
            return 1;
        }
        run_until(&p, now() + warmup, 0, 0, 0);
        printf("measuring\n"); /* lets the caller sample CPU counters for the window */
        double start = now();
        run_until(&p, start + duration, 0, 1, 0);
        double seconds = now() - start;
        long total = 0, lo = -1, hi = 0;
        for (int i = 0; i < nconns; i++) {
            long k = conns[i].count;
            total += k;
            lo = (lo < 0 || k < lo) ? k : lo;
            hi = k > hi ? k : hi;
        }
        printf("messages=%ld seconds=%.3f conns=%d errors=%d min_conn=%ld max_conn=%ld\n",
               total, seconds, nconns, p.failed, lo, hi);
        return p.failed == 0 && total > 0 ? 0 : 1;
    }

    double hold = atof(argv[6]);
    run_until(&p, now() + CONNECT_TIMEOUT_S, 1, 0, 0);
    printf("ready=%d wanted=%d failed=%d\n", p.ready, nconns, p.failed);
    /* stdin must be a pipe or terminal to end the hold early; otherwise hold the full time */
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = STDIN_TAG};
    int have_stdin = epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev) == 0;
    run_until(&p, now() + hold, 0, 0, have_stdin);
    return p.ready == nconns && p.failed == 0 ? 0 : 1;
}
