/*
 * echo_client.c - the load generator of bench/echo, bench/asyncore and bench/socketserver
 * (Linux, epoll, one thread). The message is SIZE bytes of letters; with ECHO_CLIENT_LINE=1
 * in the environment its last byte is '\n', for line echo servers.
 *
 *   echo_client load HOST PORT CONNS SIZE WARMUP_S DURATION_S
 *     Opens CONNS connections (at most MAX_CONNECTING at a time, within CONNECT_TIMEOUT_S),
 *     then each one sends the message, waits for the whole echo (checked byte for byte) and
 *     sends the next. Counting starts WARMUP_S seconds after the connect phase and lasts
 *     DURATION_S seconds; with ECHO_CLIENT_START=T in the environment (a CLOCK_MONOTONIC time
 *     in seconds) it starts at T instead, if that is later: two clients given the same T count
 *     over the same window. Prints "measuring" when counting starts, then
 *       messages=M seconds=S conns=C connected=N errors=E min_conn=A max_conn=B served=K
 *     where served is how many connections completed at least one echo while counting.
 *
 *   echo_client idle HOST PORT CONNS SIZE MAX_HOLD_S
 *     Opens CONNS connections and does one echo on each (a connection counts as pending
 *     until its echo is back), prints
 *       ready=R wanted=N failed=F
 *     then holds them open until stdin is closed (or MAX_HOLD_S passes) and exits.
 *
 *   echo_client scale HOST PORT CONNS SIZE DURATION_S PERIOD_S TIMEOUT_S
 *     Opens CONNS connections (within SCALE_CONNECT_TIMEOUT_S); once all are up (prints
 *     "connected N"), every connection sends one message every PERIOD_S seconds (spread
 *     evenly over the period) for DURATION_S seconds. A request fails if the connection
 *     breaks, the echo differs, or it takes longer than TIMEOUT_S. A send that falls due while
 *     the connection still waits for its last echo is skipped (counted: an overloaded server
 *     gets fewer requests, and the count says how far behind it is). Prints at the end
 *       connected=N connect_failed=F requests=R ok=O failed=X skipped=K p50_ms=A p99_ms=B
 *       max_ms=L
 *     with the echo latencies' median and 99th percentile (0.1 ms resolution, up to 10 s).
 *
 * Exit status 0 when nothing failed, 1 otherwise, 2 on bad usage.
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

#define MAX_CONNECTING 64             /* in-flight handshakes: keep below the servers' backlog */
#define CONNECT_TIMEOUT_S 30.0        /* load and idle modes: the whole connect phase */
#define SCALE_CONNECT_TIMEOUT_S 120.0 /* scale mode: 10,000 connects on a busy machine */
#define MAX_EVENTS 512
#define STDIN_TAG UINT32_MAX
#define LATENCY_SLOTS 100000 /* scale mode: 0.1 ms slots up to 10 s; the last holds the rest */

enum state { UNUSED, CONNECTING, IDLE, SENDING, RECEIVING, DEAD };

struct conn {
    int fd;
    enum state state;
    size_t sent, recvd;
    int pending; /* holds one of the MAX_CONNECTING slots */
    long count;  /* echoes completed (inside the measured window, in load mode) */
    double sent_at;
};

static struct conn *conns;
static int nconns, epfd, connecting, next_to_open, connected, connect_failed;
static int echo_first; /* idle mode: a connection holds its slot until its first echo */
static size_t msg_size;
static unsigned char *msg, *rbuf;
static struct sockaddr_in addr;

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

static void open_more(void);

/* Gives back a connection's slot so that the next connection can be opened. */
static void release(struct conn *c)
{
    c->pending = 0;
    connecting--;
    open_more();
}

static void kill_conn(struct conn *c)
{
    if (c->state == DEAD)
        return;
    close(c->fd);
    c->state = DEAD;
    if (c->pending) {
        connect_failed++;
        release(c);
    }
}

/* Starts connecting until MAX_CONNECTING connections are pending or all are opened. */
static void open_more(void)
{
    int one = 1;
    while (connecting < MAX_CONNECTING && next_to_open < nconns) {
        struct conn *c = &conns[next_to_open++];
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (c->fd < 0)
            die("socket");
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(c->fd, (const struct sockaddr *)&addr, sizeof addr) < 0 &&
            errno != EINPROGRESS) {
            complain("connect", errno);
            close(c->fd);
            c->state = DEAD;
            connect_failed++;
            continue;
        }
        c->state = CONNECTING;
        c->pending = 1;
        connecting++;
        watch(c, EPOLL_CTL_ADD, EPOLLOUT);
    }
}

/* Send (the rest of) the message; -1 on error, 0 if it would block, 1 when all is sent. */
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

static int start_send(struct conn *c, double t)
{
    c->sent = c->recvd = 0;
    c->sent_at = t;
    int r = send_rest(c);
    if (r < 0)
        return -1;
    c->state = r ? RECEIVING : SENDING;
    watch(c, EPOLL_CTL_MOD, r ? EPOLLIN : EPOLLOUT);
    return 0;
}

/* Read what has arrived of the echo; -1 on error, 0 if incomplete, 1 when complete. */
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

/* One readiness event. Returns 1 when an echo completed, -1 when the connection died. */
static int on_event(struct conn *c, uint32_t events)
{
    if (c->state == CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
            complain("connect", err);
            return -1;
        }
        connected++;
        c->state = IDLE;
        if (echo_first)
            return start_send(c, now());
        watch(c, EPOLL_CTL_MOD, EPOLLIN);
        release(c);
        return 0;
    }
    if (c->state == SENDING && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int r = send_rest(c);
        if (r < 0)
            return -1;
        if (r == 1) {
            c->state = RECEIVING;
            watch(c, EPOLL_CTL_MOD, EPOLLIN);
        }
        return 0;
    }
    if (c->state == RECEIVING && (events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
        int r = recv_some(c);
        if (r == 1) {
            c->state = IDLE;
            if (c->pending)
                release(c);
        }
        return r;
    }
    if (c->state == IDLE && (events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
        complain("server closed an idle connection", 0);
        return -1;
    }
    return 0;
}

static int poll_events(struct epoll_event *evs, double deadline, int max_ms)
{
    double left = deadline - now();
    int ms = left <= 0 ? 0 : (int)(left * 1000.0) + 1;
    int n = epoll_wait(epfd, evs, MAX_EVENTS, ms < max_ms ? ms : max_ms);
    if (n < 0 && errno != EINTR)
        die("epoll_wait");
    return n < 0 ? 0 : n;
}

static void connect_all(double timeout)
{
    struct epoll_event evs[MAX_EVENTS];
    double deadline = now() + timeout;
    open_more();
    while ((connecting > 0 || next_to_open < nconns) && now() < deadline) {
        int n = poll_events(evs, deadline, 100);
        for (int i = 0; i < n; i++) {
            struct conn *c = &conns[evs[i].data.u32];
            if (c->state != DEAD && on_event(c, evs[i].events) < 0)
                kill_conn(c); /* a refused connect, or the server closed one already up */
        }
    }
    for (int i = 0; i < nconns; i++)
        if (conns[i].pending)
            kill_conn(&conns[i]);
}

static int run_load(double warmup, double duration)
{
    struct epoll_event evs[MAX_EVENTS];
    int errors = 0;
    connect_all(CONNECT_TIMEOUT_S);
    for (int i = 0; i < nconns; i++)
        if (conns[i].state == IDLE && start_send(&conns[i], now()) < 0)
            kill_conn(&conns[i]), errors++;
    double start = now() + warmup;
    const char *start_at = getenv("ECHO_CLIENT_START");
    if (start_at != NULL && atof(start_at) > start)
        start = atof(start_at);
    double end = start + duration;
    int counting = 0;
    double t;
    for (;;) {
        t = now();
        if (!counting && t >= start) {
            counting = 1;
            start = t;
            printf("measuring\n"); /* lets the caller sample CPU counters for the window */
        }
        if (t >= end)
            break;
        int n = poll_events(evs, counting ? end : start, 100);
        for (int i = 0; i < n; i++) {
            struct conn *c = &conns[evs[i].data.u32];
            if (c->state == DEAD)
                continue;
            int r = on_event(c, evs[i].events);
            if (r == 1) {
                if (counting)
                    c->count++;
                r = start_send(c, t) < 0 ? -1 : 0;
            }
            if (r < 0) {
                kill_conn(c);
                errors++;
            }
        }
    }
    long total = 0, lo = -1, hi = 0;
    int served = 0;
    for (int i = 0; i < nconns; i++) {
        long k = conns[i].count;
        total += k;
        served += k > 0;
        lo = (lo < 0 || k < lo) ? k : lo;
        hi = k > hi ? k : hi;
    }
    printf("messages=%ld seconds=%.3f conns=%d connected=%d errors=%d min_conn=%ld max_conn=%ld "
           "served=%d\n",
           total, t - start, nconns, connected, errors + connect_failed, lo, hi, served);
    return errors == 0 && connect_failed == 0 && total > 0 ? 0 : 1;
}

static int run_idle(double hold)
{
    struct epoll_event evs[MAX_EVENTS];
    int ready = 0;
    echo_first = 1;
    connect_all(CONNECT_TIMEOUT_S);
    for (int i = 0; i < nconns; i++)
        ready += conns[i].state == IDLE;
    printf("ready=%d wanted=%d failed=%d\n", ready, nconns, nconns - ready);
    /* stdin must be a pipe or terminal to end the hold early; otherwise hold the full time */
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = STDIN_TAG};
    int have_stdin = epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev) == 0;
    double end = now() + hold;
    while (now() < end) {
        int n = poll_events(evs, end, 100);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u32 == STDIN_TAG) {
                if (have_stdin)
                    return ready == nconns ? 0 : 1;
                continue;
            }
            struct conn *c = &conns[evs[i].data.u32];
            if (c->state != DEAD && on_event(c, evs[i].events) < 0)
                kill_conn(c);
        }
    }
    return ready == nconns ? 0 : 1;
}

/* The latency below which `fraction` of the `count` echoes in `slots` came back, in ms. */
static double percentile(const long *slots, long count, double fraction)
{
    long seen = 0, rank = (long)(fraction * (double)count);
    for (int i = 0; i < LATENCY_SLOTS; i++) {
        seen += slots[i];
        if (seen > rank)
            return (i + 1) * 0.1;
    }
    return LATENCY_SLOTS * 0.1;
}

static int run_scale(double duration, double period, double timeout)
{
    struct epoll_event evs[MAX_EVENTS];
    long requests = 0, ok = 0, failed = 0, skipped = 0;
    long *slots = calloc(LATENCY_SLOTS, sizeof *slots);
    double worst = 0;
    if (!slots)
        die("calloc");
    connect_all(SCALE_CONNECT_TIMEOUT_S);
    printf("connected %d\n", connected);
    double t0 = now(), end = t0 + duration, next_check = t0;
    long round = 0;
    int next = 0;
    for (;;) {
        double t = now();
        /* sends due: connection i is due at t0 + round*period + i*period/nconns */
        while (t < end && t >= t0 + (double)round * period + (double)next * period / nconns) {
            struct conn *c = &conns[next];
            if (c->state == IDLE) {
                requests++;
                if (start_send(c, t) < 0)
                    kill_conn(c), failed++;
            } else if (c->state == SENDING || c->state == RECEIVING) {
                skipped++;
            }
            if (++next == nconns) {
                next = 0;
                round++;
            }
        }
        if (t >= next_check) { /* late echoes fail */
            next_check = t + 0.1;
            int busy = 0;
            for (int i = 0; i < nconns; i++) {
                struct conn *c = &conns[i];
                if (c->state == SENDING || c->state == RECEIVING) {
                    busy++;
                    if (t - c->sent_at > timeout) {
                        complain("echo late", 0);
                        kill_conn(c);
                        failed++;
                    }
                }
            }
            if (t >= end && busy == 0)
                break;
        }
        int n = poll_events(evs, t + 0.01, 10);
        for (int i = 0; i < n; i++) {
            struct conn *c = &conns[evs[i].data.u32];
            if (c->state == DEAD)
                continue;
            int r = on_event(c, evs[i].events);
            if (r == 1) {
                ok++;
                double took = now() - c->sent_at;
                worst = took > worst ? took : worst;
                long slot = (long)(took * 1e4);
                slots[slot < LATENCY_SLOTS ? slot : LATENCY_SLOTS - 1]++;
            } else if (r < 0) {
                if (c->state == SENDING || c->state == RECEIVING)
                    failed++;
                kill_conn(c);
            }
        }
    }
    printf("connected=%d connect_failed=%d requests=%ld ok=%ld failed=%ld skipped=%ld p50_ms=%.1f "
           "p99_ms=%.1f max_ms=%.1f\n",
           connected, connect_failed, requests, ok, failed, skipped, percentile(slots, ok, 0.5),
           percentile(slots, ok, 0.99), worst * 1000.0);
    return failed == 0 && connect_failed == 0 ? 0 : 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: echo_client load HOST PORT CONNS SIZE WARMUP_S DURATION_S\n"
                    "       echo_client idle HOST PORT CONNS SIZE MAX_HOLD_S\n"
                    "       echo_client scale HOST PORT CONNS SIZE DURATION_S PERIOD_S TIMEOUT_S\n"
                    "(ECHO_CLIENT_LINE=1: the message ends in a newline)\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 7)
        usage();
    const char *mode = argv[1];
    int want = strcmp(mode, "load") == 0 ? 8 : strcmp(mode, "idle") == 0 ? 7
             : strcmp(mode, "scale") == 0 ? 9 : 0;
    if (argc != want)
        usage();
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)atoi(argv[3]));
    if (inet_pton(AF_INET, argv[2], &addr.sin_addr) != 1)
        usage();
    nconns = atoi(argv[4]);
    msg_size = (size_t)atol(argv[5]);
    if (nconns <= 0 || msg_size == 0)
        usage();

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    conns = calloc((size_t)nconns, sizeof *conns);
    msg = malloc(msg_size);
    rbuf = malloc(msg_size);
    if (!conns || !msg || !rbuf)
        die("malloc");
    for (size_t i = 0; i < msg_size; i++)
        msg[i] = (unsigned char)('a' + i % 26);
    const char *line = getenv("ECHO_CLIENT_LINE");
    if (line && *line && strcmp(line, "0") != 0)
        msg[msg_size - 1] = '\n';
    epfd = epoll_create1(0);
    if (epfd < 0)
        die("epoll_create1");

    if (want == 8)
        return run_load(atof(argv[6]), atof(argv[7]));
    if (want == 7)
        return run_idle(atof(argv[6]));
    return run_scale(atof(argv[6]), atof(argv[7]), atof(argv[8]));
}
