/*
 * bench_server.c: what `accrue serve` sustains, beside what the machine and libwebsockets allow.
 *
 * Load comes from our own C client (epoll, one thread, pinned to the last CPU; a Python or Node
 * client saturates before the server does here), the servers run pinned to the other CPU(s):
 *
 *  1. WebSocket round trips, 64-byte messages, C connections: a bare libwebsockets 4.1.6 echo
 *     server (this file, in a child process: the physical limit) beside accrue with an echo agent
 *     (message -> run.started, message, usage, run.done: a round trip ends at run.done) and with
 *     an agent that calls a model on every message. Round trips per second, p50 and p99.
 *  2. Idle sessions: N sessions opened and held; the server's RSS per session.
 *  3. The OpenAI endpoint: a fixed-answer upstream (bare lws, in a child), called directly and
 *     through accrue (an `http` model pointing at it, called on kept-alive connections: the summary
 *     says how many it opened): the latency accrue adds at p50 and p99 and
 *     its CPU per request, at one connection and at the highest rate (32 connections, each
 *     sending its next request at once), then at half and 80% of that rate (open loop on 128
 *     connections, so that no request waits for a free one; the
 *     upstream alone beside it at the same rate); and the same through
 *     LiteLLM's proxy when ACCRUE_BENCH_LITELLM names its `litellm` executable
 *     (tools/bench_litellm.sh installs it in a venv of its own; never in CI).
 *
 * Run: zig build bench -Doptimize=ReleaseFast (bench_server ACCRUE_BIN). ACCRUE_BENCH_SECONDS sets
 * each measurement's length (default 3), ACCRUE_BENCH_SESSIONS the idle sessions (default 10000),
 * ACCRUE_BENCH_ONLY=ws,idle,openai the sections to run; in ws, ACCRUE_BENCH_AGENTS=echo,caller,metered
 * (or metered-sync, metered-nosync) the accrue rows and ACCRUE_BENCH_CONNS=1,32,128 the connection counts.
 * ACCRUE_BENCH_VS=OTHER_ACCRUE replaces the OpenAI section with this build against another, in
 * turns (bench_openai_vs).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int ncpu;
static double cpu_s(pid_t pid);
static double seconds = 3;

static void pin(int cpu_from, int cpu_to) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c = cpu_from; c <= cpu_to; c++) CPU_SET(c, &set);
    sched_setaffinity(0, sizeof set, &set);
}

/* ---- children: a bare lws echo server and a fixed-answer OpenAI upstream ------------------ */

typedef struct echo_pss {
    unsigned char buf[LWS_PRE + 1024];
    size_t len;
    bool pending;
} echo_pss;

static int echo_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
    echo_pss *p = user;
    switch (reason) {
    case LWS_CALLBACK_RECEIVE:
        if (len > sizeof p->buf - LWS_PRE) return -1;
        memcpy(p->buf + LWS_PRE, in, len);
        p->len = len;
        p->pending = true;
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (p->pending && lws_write(wsi, p->buf + LWS_PRE, p->len, LWS_WRITE_TEXT) < (int)p->len) return -1;
        p->pending = false;
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const char upstream_answer[] =
    "{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"bench\","
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"a fixed answer from the upstream\"},"
    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":6,\"total_tokens\":11}}";

static int upstream_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
    (void)user, (void)in, (void)len;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return 0; /* answer when the body is in */
    case LWS_CALLBACK_HTTP_BODY:
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION: {
        unsigned char buf[LWS_PRE + 2048], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf;
        size_t n = sizeof upstream_answer - 1;
        if (lws_add_http_common_headers(wsi, 200, "application/json", n, &p, end) ||
            lws_finalize_http_header(wsi, &p, end))
            return -1;
        memcpy(p, upstream_answer, n);
        p += n;
        if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_FINAL) < 0) return -1;
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static volatile sig_atomic_t child_stop;
static void on_term(int s) {
    (void)s;
    child_stop = 1;
}

/* Forks a child serving on port (0 = any): kind 'e' echo, 'u' upstream. Returns its pid; *port_out
 * gets the port (read back through a pipe). */
static pid_t spawn_lws(char kind, int cpu_from, int cpu_to, int *port_out) {
    int fds[2];
    if (pipe(fds)) return -1;
    pid_t pid = fork();
    if (pid) {
        close(fds[1]);
        if (read(fds[0], port_out, sizeof *port_out) != sizeof *port_out) *port_out = 0;
        close(fds[0]);
        return pid;
    }
    close(fds[0]);
    pin(cpu_from, cpu_to);
    signal(SIGTERM, on_term);
    lws_set_log_level(LLL_ERR, NULL);
    static struct lws_protocols echo_protos[] = {{"echo", echo_cb, sizeof(echo_pss), 1024, 0, NULL, 0},
                                                 {NULL, NULL, 0, 0, 0, NULL, 0}};
    static struct lws_protocols up_protos[] = {{"http", upstream_cb, 0, 4096, 0, NULL, 0}, {NULL, NULL, 0, 0, 0, NULL, 0}};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = 0;
    info.iface = "127.0.0.1";
    info.protocols = kind == 'e' ? echo_protos : up_protos;
    info.options = kind == 'e' ? LWS_SERVER_OPTION_VALIDATE_UTF8 : 0;
    info.vhost_name = "bench";
    struct lws_context *ctx = lws_create_context(&info);
    int port = ctx ? lws_get_vhost_listen_port(lws_get_vhost_by_name(ctx, "bench")) : 0;
    if (write(fds[1], &port, sizeof port) < 0) _exit(1);
    close(fds[1]);
    while (ctx && !child_stop && lws_service(ctx, 0) >= 0) {
    }
    if (ctx) lws_context_destroy(ctx);
    _exit(0);
}

/* ---- accrue serve in a child ----------------------------------------------------------------- */

typedef struct server {
    pid_t pid;
    int port;
    char key[128], admin[128];
    char db[600];
} server_t;

static char agent_dir[] = "/tmp/accrue-bench-XXXXXX";

static void write_file(const char *dir, const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static int db_no;

/* Runs a CLI command of accrue (quiet); 0 when it succeeded. */
static int accrue_cli(const char *bin, const char *fmt, ...) {
    char args[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s %s >/dev/null 2>&1", bin, args);
    return system(cmd);
}

/* Deploys the bench's agents into a fresh database, signed by a bench key. */
static void deploy_agents(const char *bin, const char *db) {
    char key[600], author[64] = "", cmd[800];
    snprintf(key, sizeof key, "%s/author.key", agent_dir);
    if (access(key, F_OK) != 0) accrue_cli(bin, "keygen --out %s", key);
    snprintf(cmd, sizeof cmd, "%s address --key %s", bin, key);
    FILE *p = popen(cmd, "r");
    if (p) {
        if (!fgets(author, sizeof author, p)) author[0] = 0;
        pclose(p);
    }
    author[strcspn(author, "\n")] = 0;
    const char *agents[][3] = {{"echo", "", "[]"}, {"caller", "", "[\"test/echo\"]"}, {"metered", "", "[\"demo/orchard-ngram\"]"}};
    for (size_t i = 0; i < 3; i++) {
        char m[600];
        snprintf(m, sizeof m, "%s/%s.json", agent_dir, agents[i][0]);
        FILE *f = fopen(m, "w");
        if (!f) continue;
        fprintf(f, "{\"name\":\"%s\",\"version\":\"1.0.0\",\"author\":\"%s\",\"models\":%s}", agents[i][0], author,
                agents[i][2]);
        fclose(f);
        accrue_cli(bin, "deploy %s/%s.lua --manifest %s --key %s --db %s", agent_dir, agents[i][0], m, key, db);
    }
}

/* Starts `accrue serve` on a fresh database (the demo registry, the bench's agents). */
static bool start_accrue(const char *bin, server_t *s, int cpu_from, int cpu_to, const char *workers,
                         const char *extra) {
    int fds[2];
    if (pipe(fds)) return false;
    char db[600];
    snprintf(db, sizeof db, "%s/bench%d.db", agent_dir, ++db_no);
    s->pid = fork();
    if (s->pid == 0) {
        pin(cpu_from, cpu_to);
        dup2(fds[1], 1);
        close(fds[0]);
        char logp[700]; /* its log, out of the tables */
        snprintf(logp, sizeof logp, "%s.log", db);
        int logfd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (logfd >= 0) dup2(logfd, 2);
        char *argv[] = {(char *)bin, "serve", "--listen", "127.0.0.1:0", "--db", db, "--workers", (char *)workers,
                        "--messages-per-second", "0", "--sessions-per-key", "1000000", (char *)extra, NULL};
        execv(bin, argv);
        _exit(127);
    }
    close(fds[1]);
    FILE *out = fdopen(fds[0], "r");
    char line[512];
    s->port = 0;
    s->key[0] = s->admin[0] = 0;
    while ((!s->port || !s->key[0] || !s->admin[0]) && fgets(line, sizeof line, out)) {
        char *p = strstr(line, "listening on http://127.0.0.1:");
        if (p) s->port = atoi(p + strlen("listening on http://127.0.0.1:"));
        if (sscanf(line, "demo API key: %127s", s->key) == 1) {
        }
        if (sscanf(line, "admin API key: %127s", s->admin) == 1) {
        }
    }
    /* Keep reading its stdout in the background so it never blocks. */
    if (fork() == 0) {
        char buf[4096];
        while (fread(buf, 1, sizeof buf, out) > 0) {
        }
        _exit(0);
    }
    fclose(out);
    snprintf(s->db, sizeof s->db, "%s", db);
    if (!s->port || !s->key[0]) return false;
    deploy_agents(bin, db);
    return true;
}

/* One counter from the server's /metrics (a blocking GET on a connection of its own), or -1. */
static double metric_of(int port, const char *name) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(0x7f000001)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) {
        if (fd >= 0) close(fd);
        return -1;
    }
    const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
        close(fd);
        return -1;
    }
    static char buf[1 << 16];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0) n += (size_t)r;
    close(fd);
    buf[n] = 0;
    size_t len = strlen(name);
    for (char *p = buf; (p = strstr(p, name)); p += len)
        if ((p == buf || p[-1] == '\n') && p[len] == ' ') return atof(p + len + 1);
    return -1;
}

static void stop(pid_t pid) {
    if (pid <= 0) return;
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

/* VmRSS from an open /proc/PID/status (read from its start each time). */
static long rss_kb_fd(int fd) {
    char buf[4096];
    ssize_t n = fd >= 0 ? pread(fd, buf, sizeof buf - 1, 0) : -1;
    if (n <= 0) return -1;
    buf[n] = 0;
    const char *p = strstr(buf, "VmRSS:");
    long kb = -1;
    if (p && sscanf(p, "VmRSS: %ld", &kb) != 1) kb = -1;
    return kb;
}

static int open_status(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    return open(path, O_RDONLY | O_CLOEXEC);
}

/* user + system CPU seconds of a process so far. */
static double cpu_s(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (p) sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* ---- the load generator ------------------------------------------------------------------------ */

enum mode { M_ECHO, M_SESSION, M_HTTP };

typedef struct conn {
    int fd;
    int state; /* 0 handshake sent, 1 open, 2 session ready / idle, 3 request in flight */
    char *rbuf;
    size_t rlen, rcap;
    double sent;
    double due; /* open loop: when its next request is due */
    bool counted;
} conn_t;

typedef struct load {
    enum mode mode;
    int port;
    const char *key, *agent, *path;
    const char *http_body;
    int nconns;
    bool measure;  /* count round trips now */
    bool one_shot; /* idle sessions: stop once ready */
    /* HTTP, open loop: requests at this many a second in all, spread over the connections (each
     * sends its next when it is due, or as soon as its answer comes when that is later). A trip's
     * latency counts from when its request was due, so a server that falls behind is charged for
     * the wait it causes. 0: closed loop (each connection sends its next at once). */
    double rate;
    double *lat;
    size_t nlat, caplat;
    uint64_t trips;
    int ready;
    int errors;
    conn_t *c;
    int ep;
    pid_t cpu_pid;  /* when set: the CPU this process spent during the measured window */
    double cpu_used;
    char *msg_frame;
    size_t msg_len;
} load_t;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *v, size_t n, double p) {
    if (!n) return 0;
    size_t i = (size_t)(p * (double)(n - 1));
    return v[i];
}

/* A masked client text frame (mask key zero: the payload goes as it is). */
static size_t ws_frame(char *out, const char *payload, size_t n) {
    size_t h = 0;
    out[h++] = (char)0x81;
    if (n < 126) out[h++] = (char)(0x80 | n);
    else {
        out[h++] = (char)(0x80 | 126);
        out[h++] = (char)(n >> 8);
        out[h++] = (char)(n & 255);
    }
    memset(out + h, 0, 4);
    h += 4;
    memcpy(out + h, payload, n);
    return h + n;
}

static void send_all(conn_t *c, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(c->fd, p, n);
        if (w < 0) {
            if (errno == EAGAIN) {
                struct timespec ts = {0, 50000};
                nanosleep(&ts, NULL);
                continue;
            }
            return;
        }
        p += w, n -= (size_t)w;
    }
}

static void send_msg(load_t *L, conn_t *c) {
    c->sent = now_s();
    if (L->mode == M_HTTP) {
        char req[2048];
        int n = snprintf(req, sizeof req,
                         "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                         "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                         L->path, L->key ? L->key : "x", strlen(L->http_body), L->http_body);
        send_all(c, req, (size_t)n);
    } else {
        send_all(c, L->msg_frame, L->msg_len);
    }
    c->state = 3;
}

static void trip_done(load_t *L, conn_t *c) {
    double now = now_s(), t = now - (L->rate > 0 ? c->due : c->sent);
    if (L->measure) {
        L->trips++;
        if (L->nlat < L->caplat) L->lat[L->nlat++] = t;
    }
    c->state = 2;
    if (L->rate > 0) { /* the next is due one interval after this one was */
        c->due += (double)L->nconns / L->rate;
        if (c->due <= now) send_msg(L, c);
        return;
    }
    if (!L->one_shot) send_msg(L, c);
}

/* Open loop: sends every idle connection's request that is due; returns the time until the next
 * one is (seconds, at most 10 ms). */
static double send_due(load_t *L) {
    double now = now_s(), next = now + 0.01;
    for (int i = 0; i < L->nconns; i++) {
        conn_t *c = &L->c[i];
        if (c->state != 2 || !c->counted) continue;
        if (c->due <= now) send_msg(L, c);
        else if (c->due < next) next = c->due;
    }
    return next - now;
}

/* Parses what arrived on c. */
static void on_bytes(load_t *L, conn_t *c) {
    for (;;) {
        if (c->state == 0) {
            char *e = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
            if (!e) return;
            if (memcmp(c->rbuf, "HTTP/1.1 101", 12) != 0) {
                L->errors++;
                c->state = -1;
                return;
            }
            size_t used = (size_t)(e + 4 - c->rbuf);
            memmove(c->rbuf, c->rbuf + used, c->rlen - used);
            c->rlen -= used;
            c->state = 1;
            if (L->mode == M_ECHO) {
                c->state = 2;
                L->ready++;
                send_msg(L, c);
            } else {
                char start[256], fr[300];
                int n = snprintf(start, sizeof start, "{\"type\":\"session.start\",\"agent\":\"%s\"}", L->agent);
                size_t fl = ws_frame(fr, start, (size_t)n);
                send_all(c, fr, fl);
            }
            continue;
        }
        if (L->mode == M_HTTP) {
            char *e = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
            if (!e) return;
            size_t hl = (size_t)(e + 4 - c->rbuf), body = 0;
            char *cl = strcasestr(c->rbuf, "content-length:");
            if (cl && cl < e) body = strtoul(cl + 15, NULL, 10);
            if (c->rlen < hl + body) return;
            if (memcmp(c->rbuf, "HTTP/1.1 200", 12) != 0) L->errors++;
            memmove(c->rbuf, c->rbuf + hl + body, c->rlen - hl - body);
            c->rlen -= hl + body;
            trip_done(L, c);
            continue;
        }
        /* WebSocket frames from the server (unmasked). */
        if (c->rlen < 2) return;
        unsigned char *b = (unsigned char *)c->rbuf;
        size_t n = b[1] & 0x7f, h = 2;
        if (n == 126) {
            if (c->rlen < 4) return;
            n = ((size_t)b[2] << 8) | b[3];
            h = 4;
        } else if (n == 127) {
            if (c->rlen < 10) return;
            n = 0;
            for (int i = 0; i < 8; i++) n = (n << 8) | b[2 + i];
            h = 10;
        }
        if (c->rlen < h + n) return;
        char *payload = c->rbuf + h;
        if (L->mode == M_ECHO) {
            trip_done(L, c);
        } else if (memmem(payload, n, "\"type\":\"run.done\"", 17)) {
            trip_done(L, c);
        } else if (memmem(payload, n, "\"type\":\"session.ready\"", 22)) {
            c->state = 2;
            L->ready++;
            if (!L->one_shot) send_msg(L, c);
        } else if (memmem(payload, n, "\"type\":\"error\"", 14)) {
            L->errors++;
        }
        memmove(c->rbuf, c->rbuf + h + n, c->rlen - h - n);
        c->rlen -= h + n;
    }
}

static bool connect_one(load_t *L, conn_t *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) return false;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)L->port)};
    a.sin_addr.s_addr = htonl(0x7f000001);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) return false;
    c->rcap = 1 << 16;
    c->rbuf = malloc(c->rcap);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
    epoll_ctl(L->ep, EPOLL_CTL_ADD, c->fd, &ev);
    return true;
}

static void on_writable_first(load_t *L, conn_t *c) {
    if (c->counted) return;
    c->counted = true;
    if (L->mode == M_HTTP) {
        c->state = 2;
        L->ready++;
        if (L->rate > 0) c->due = now_s() + (double)(c - L->c) / L->rate; /* staggered */
        else send_msg(L, c);
        return;
    }
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s%s%s\r\n",
                     L->path, L->key ? "Authorization: Bearer " : "", L->key ? L->key : "", L->key ? "\r\n" : "");
    send_all(c, req, (size_t)n);
}

/* Runs the event loop until `until` (absolute) or, when stop_when_ready, until every connection is
 * ready. */
static void pump(load_t *L, double until, bool stop_when_ready) {
    struct epoll_event evs[256];
    while (now_s() < until) {
        if (stop_when_ready && L->ready + L->errors >= L->nconns) return;
        double wait = L->rate > 0 ? send_due(L) : 0.01;
        struct timespec ts = {0, wait > 0 ? (long)(wait * 1e9) : 0};
        int n = epoll_pwait2(L->ep, evs, 256, &ts, NULL);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (evs[i].events & EPOLLOUT) on_writable_first(L, c);
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                for (;;) {
                    if (c->rcap - c->rlen < 4096) {
                        c->rcap *= 2;
                        c->rbuf = realloc(c->rbuf, c->rcap);
                    }
                    ssize_t r = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
                    if (r <= 0) break;
                    c->rlen += (size_t)r;
                }
                on_bytes(L, c);
            }
        }
    }
}

static void load_init(load_t *L) {
    L->ep = epoll_create1(0);
    L->c = calloc((size_t)L->nconns, sizeof *L->c);
    L->caplat = 20000000;
    L->lat = malloc(L->caplat * sizeof *L->lat);
    char msg[128] = "0123456789012345678901234567890123456789012345678901234567890123"; /* 64 bytes */
    char json[256];
    const char *payload = msg;
    size_t plen = 64;
    if (L->mode == M_SESSION) {
        plen = (size_t)snprintf(json, sizeof json, "{\"type\":\"message\",\"content\":\"%.40s\"}", msg);
        payload = json;
    }
    L->msg_frame = malloc(plen + 16);
    L->msg_len = ws_frame(L->msg_frame, payload, plen);
}

static void load_free(load_t *L) {
    for (int i = 0; i < L->nconns; i++) {
        if (L->c[i].fd > 0) close(L->c[i].fd);
        free(L->c[i].rbuf);
    }
    free(L->c);
    free(L->lat);
    free(L->msg_frame);
    close(L->ep);
}

typedef struct result {
    double rate, p50_ms, p99_ms, mean_ms;
    double cpu_us; /* the measured process's CPU per round trip (cpu_pid) */
    int errors, ready;
} result_t;

/* Opens the connections, lets them run 0.5 s to warm up, then measures for `seconds`. */
static result_t run_load(load_t *L) {
    load_init(L);
    for (int i = 0; i < L->nconns; i++) connect_one(L, &L->c[i]);
    pump(L, now_s() + 20, true);
    pump(L, now_s() + 0.5, false);
    L->measure = true;
    double c0 = L->cpu_pid > 0 ? cpu_s(L->cpu_pid) : 0;
    double t0 = now_s();
    pump(L, t0 + seconds, false);
    double t = now_s() - t0;
    L->measure = false;
    if (L->cpu_pid > 0) L->cpu_used = cpu_s(L->cpu_pid) - c0;
    result_t r = {.rate = (double)L->trips / t, .errors = L->errors, .ready = L->ready};
    r.cpu_us = L->trips ? L->cpu_used / (double)L->trips * 1e6 : 0;
    qsort(L->lat, L->nlat, sizeof *L->lat, cmp_double);
    r.p50_ms = pct(L->lat, L->nlat, 0.50) * 1e3;
    r.p99_ms = pct(L->lat, L->nlat, 0.99) * 1e3;
    double sum = 0;
    for (size_t i = 0; i < L->nlat; i++) sum += L->lat[i];
    r.mean_ms = L->nlat ? sum / (double)L->nlat * 1e3 : 0;
    load_free(L);
    return r;
}

static void row(const char *what, int conns, result_t r, const char *extra) {
    printf("| %s | %d | %.0f/s | %.3f ms | %.3f ms | %s%s |\n", what, conns, r.rate, r.p50_ms, r.p99_ms,
           r.errors ? "ERRORS " : "", extra ? extra : "");
    fflush(stdout);
}

/* The ledger's counters (/metrics) around a measurement: how its commits went. */
typedef struct ledger_figures {
    double commits, postings, commit_s, gather_s, durable_s;
} ledger_figures_t;

static ledger_figures_t ledger_figures(int port) {
    return (ledger_figures_t){metric_of(port, "accrue_ledger_commits_total"),
                              metric_of(port, "accrue_ledger_postings_total"),
                              metric_of(port, "accrue_ledger_commit_seconds_total"),
                              metric_of(port, "accrue_ledger_gather_seconds_total"),
                              metric_of(port, "accrue_ledger_durable_seconds_total")};
}

static ledger_figures_t ledger_figures_since(int port, const ledger_figures_t *before) {
    ledger_figures_t f = ledger_figures(port);
    f.commits -= before->commits, f.postings -= before->postings, f.commit_s -= before->commit_s;
    f.gather_s -= before->gather_s, f.durable_s -= before->durable_s;
    return f;
}

/* "; 21.6 postings a commit (gathered 310 µs, committed in 250 µs); queued to durable 1.10 ms" */
static int ledger_note(char *out, size_t cap, const ledger_figures_t *f) {
    if (f->commits <= 0 || f->postings <= 0) return 0;
    int n = snprintf(out, cap, "; %.1f postings a commit (gathered %.0f µs, committed in %.0f µs); queued to durable %.3f ms",
                    f->postings / f->commits, f->gather_s / f->commits * 1e6, f->commit_s / f->commits * 1e6,
                    f->durable_s / f->postings * 1e3);
    return n < 0 ? 0 : (size_t)n < cap ? n : (int)cap - 1;
}

/* ---- the sections -------------------------------------------------------------------------------- */

/* Whether the comma-separated list (NULL: everything) names word, or word followed by suffix. */
static bool listed(const char *list, const char *word, const char *suffix) {
    if (!list) return true;
    size_t wn = strlen(word), sn = suffix ? strlen(suffix) : 0;
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if ((n == wn || (suffix && n == wn + sn && memcmp(p + wn, suffix, sn) == 0)) && memcmp(p, word, wn) == 0)
            return true;
        p += n + (p[n] == ',');
    }
    return false;
}

/* ACCRUE_BENCH_CONNS=32 (comma-separated) runs only those connection counts' rows; 1000 runs only
 * when named there (a worker with many sessions to run: pool.c's jobs taken ahead). */
static bool conns_listed(int n) {
    if (n > 128 && !getenv("ACCRUE_BENCH_CONNS")) return false;
    char word[16];
    snprintf(word, sizeof word, "%d", n);
    return listed(getenv("ACCRUE_BENCH_CONNS"), word, NULL);
}

static void bench_ws(const char *bin) {
    int server_last = ncpu > 1 ? ncpu - 2 : 0, client = ncpu - 1;
    printf("\n### WebSocket round trips (64-byte messages; servers on CPU 0-%d, the client on CPU %d)\n\n",
           server_last, client);
    printf("| server | connections | round trips | p50 | p99 | note |\n|---|---|---|---|---|---|\n");
    pin(client, client);
    int conns[] = {1, 32, 128, 1000};
    int port;
    pid_t echo = spawn_lws('e', 0, server_last, &port);
    double bare32 = 0, bare32_cpu = 0;
    for (size_t i = 0; i < 4; i++) {
        if (!conns_listed(conns[i])) continue;
        load_t L = {.mode = M_ECHO, .port = port, .path = "/", .nconns = conns[i], .cpu_pid = echo};
        result_t r = run_load(&L);
        double cpu_us = r.cpu_us;
        char note[96];
        snprintf(note, sizeof note, "server CPU %.1f µs/trip", cpu_us);
        if (conns[i] == 32) bare32 = r.rate, bare32_cpu = cpu_us;
        row("bare lws 4.1.6 echo", conns[i], r, note);
    }
    stop(echo);

    const char *agents[][3] = {{"echo", "an echo agent", NULL},
                               {"caller", "an agent calling test/echo (unmetered)", NULL},
                               {"metered", "an agent calling demo/orchard-ngram (metered, attributed, booked)", NULL},
                               {"metered", "the same, --ledger-no-sync (commits without fsync)", "--ledger-no-sync"}};
    /* ACCRUE_BENCH_AGENTS=metered (comma-separated agents) runs only those accrue rows, for perf;
     * metered-sync and metered-nosync pick one of the metered rows. */
    const char *only_agents = getenv("ACCRUE_BENCH_AGENTS");
    for (size_t a = 0; a < 4; a++) {
        if (!listed(only_agents, agents[a][0], agents[a][2] ? "-nosync" : "-sync")) continue;
        server_t s;
        if (!start_accrue(bin, &s, 0, server_last, "1", agents[a][2])) {
            printf("| accrue serve did not start | | | | | |\n");
            continue;
        }
        for (size_t i = 0; i < 4; i++) {
            if (!conns_listed(conns[i])) continue;
            load_t L = {.mode = M_SESSION, .port = s.port, .path = "/v1/sessions", .key = s.key, .agent = agents[a][0],
                        .nconns = conns[i], .cpu_pid = s.pid};
            ledger_figures_t f0 = ledger_figures(s.port);
            result_t r = run_load(&L);
            ledger_figures_t f = ledger_figures_since(s.port, &f0);
            double cpu_us = r.cpu_us;
            char note[300];
            int n = snprintf(note, sizeof note, "server CPU %.1f µs/trip", cpu_us);
            n += ledger_note(note + n, sizeof note - (size_t)n, &f);
            if (conns[i] == 32 && bare32 > 0)
                snprintf(note + n, sizeof note - (size_t)n, "; %.2fx the bare echo's rate, %.2fx its CPU", r.rate / bare32,
                         cpu_us / bare32_cpu);
            char what[128];
            snprintf(what, sizeof what, "accrue, %s", agents[a][1]);
            row(what, conns[i], r, note);
        }
        stop(s.pid);
    }
}

static void bench_idle(const char *bin, int n) {
    printf("\n### Idle sessions\n\n");
    int client = ncpu - 1;
    pin(client, client);
    server_t s;
    if (!start_accrue(bin, &s, 0, ncpu > 1 ? ncpu - 2 : 0, "1", NULL)) {
        printf("accrue serve did not start\n");
        return;
    }
    /* Opened now: with every descriptor the client may have in use by sockets, no file opens later. */
    int status_fd = open_status(s.pid);
    long before = rss_kb_fd(status_fd);
    load_t L = {.mode = M_SESSION, .port = s.port, .path = "/v1/sessions", .key = s.key, .agent = "echo",
                .nconns = n, .one_shot = true};
    load_init(&L);
    int unconnected = 0; /* no socket (the client's descriptor limit, ulimit -n) or connect failed */
    double t0 = now_s();
    for (int i = 0; i < n; i += 500) { /* in waves: the listen backlog is finite */
        int upto = i + 500 < n ? i + 500 : n;
        for (int j = i; j < upto; j++) unconnected += !connect_one(&L, &L.c[j]);
        pump(&L, now_s() + 0.05, false);
    }
    L.errors += unconnected;
    pump(&L, now_s() + 60, true);
    double open_s = now_s() - t0;
    pump(&L, now_s() + 1, false);
    long after = rss_kb_fd(status_fd);
    if (status_fd >= 0) close(status_fd);
    printf("| sessions held | opened in | server RSS before | after | per session | target |\n|---|---|---|---|---|---|\n");
    printf("| %d of %d (%d errors, %d of them not connected) | %.2f s | %.1f MiB | %.1f MiB | %.1f KiB | 10,000 under 1 GiB |\n",
           L.ready, n, L.errors, unconnected, open_s, before / 1024.0, after / 1024.0,
           L.ready ? (double)(after - before) / L.ready : 0);
    /* With the sessions still held (idle, no traffic), the echo agent's round trips on a few
     * more: what each active round trip pays for the idle ones (a loop that scans every
     * descriptor on each wake-up pays for all of them). */
    printf("\n| server | connections | round trips | p50 | p99 | note |\n|---|---|---|---|---|---|\n");
    for (int i = 0; i < 2; i++) {
        int conns = i ? 32 : 1;
        load_t A = {.mode = M_SESSION, .port = s.port, .path = "/v1/sessions", .key = s.key, .agent = "echo",
                    .nconns = conns, .cpu_pid = s.pid};
        result_t r = run_load(&A);
        char note[160];
        snprintf(note, sizeof note, "server CPU %.1f µs/trip, with %d idle sessions held", r.cpu_us, L.ready);
        row("accrue, an echo agent, beside the idle sessions", conns, r, note);
    }
    load_free(&L);
    stop(s.pid);
}

/* Latency of one connection's requests in a row, and the rate at 32 connections, with the CPU the
 * measured process spent per request. */
static void http_rows(const char *what, int port, const char *path, const char *key, const char *body, pid_t gateway,
                      bool booked, result_t *one_out, result_t *many_out) {
    int conns[] = {1, 32};
    for (size_t i = 0; i < 2; i++) {
        load_t L = {.mode = M_HTTP, .port = port, .path = path, .key = key, .http_body = body, .nconns = conns[i],
                    .cpu_pid = gateway};
        ledger_figures_t before = booked ? ledger_figures(port) : (ledger_figures_t){0};
        result_t r = run_load(&L);
        char note[256] = "";
        int n = gateway > 0 && r.rate > 0 ? snprintf(note, sizeof note, "gateway CPU %.1f µs/request", r.cpu_us) : 0;
        if (booked) {
            ledger_figures_t f = ledger_figures_since(port, &before);
            ledger_note(note + n, sizeof note - (size_t)n, &f);
        }
        row(what, conns[i], r, note);
        if (i == 0 && one_out) *one_out = r;
        if (i == 1 && many_out) *many_out = r;
    }
}

/* The same requests at a fixed rate (open loop: latency counts from when each request was due), on
 * enough connections that a request never waits for a free one (on 32, a rate near the closed
 * loop's needs nearly all of them, and the row measures the connections, not the server). */
#define OPEN_CONNS 128
static result_t http_rate_row(const char *what, int port, const char *key, const char *body, pid_t gateway,
                              double rate) {
    load_t L = {.mode = M_HTTP, .port = port, .path = "/v1/chat/completions", .key = key, .http_body = body,
                .nconns = OPEN_CONNS, .cpu_pid = gateway, .rate = rate};
    ledger_figures_t before = gateway > 0 ? ledger_figures(port) : (ledger_figures_t){0};
    result_t r = run_load(&L);
    char note[320];
    int n = snprintf(note, sizeof note, "at %.0f requests/s, open loop", rate);
    if (gateway > 0 && r.rate > 0) {
        n += snprintf(note + n, sizeof note - (size_t)n, "; gateway CPU %.1f µs/request", r.cpu_us);
        ledger_figures_t f = ledger_figures_since(port, &before);
        ledger_note(note + n, sizeof note - (size_t)n, &f);
    }
    row(what, OPEN_CONNS, r, note);
    return r;
}

#define LITELLM_KEY "sk-accrue-bench-4f1c2a9e7b3d5f60"

/* The OpenAI section's call, to bench/model: an http model on the upstream at up_port, registered
 * in db (price 1 a call) by register_bench_model. */
static const char bench_model_body[] =
    "{\"model\":\"bench/model\",\"messages\":[{\"role\":\"user\",\"content\":\"hello there\"}],\"max_tokens\":16}";

static void register_bench_model(const char *bin, int up_port, const char *db) {
    accrue_cli(bin, "model register bench/model --kind http --url http://127.0.0.1:%d/v1 --upstream bench "
                    "--owner 0x%040d --price-per-call 1 --db %s",
               up_port, 0, db);
}

static void bench_openai(const char *bin) {
    int client = ncpu - 1, server_last = ncpu > 1 ? ncpu - 2 : 0;
    printf("\n### OpenAI endpoint: added latency and CPU per request (gateways on CPU 0-%d with the upstream, "
           "client on CPU %d)\n\n",
           server_last, client);
    printf("| path | connections | requests | p50 | p99 | note |\n|---|---|---|---|---|---|\n");
    pin(client, client);
    int up_port;
    pid_t up = spawn_lws('u', 0, server_last, &up_port);
    const char *body = bench_model_body;
    result_t direct, via, via_many;
    char summary[2048] = "";
    http_rows("upstream directly", up_port, "/v1/chat/completions", NULL, body, -1, false, &direct, NULL);
    /* Every call through accrue is metered: reserved, booked and committed to the ledger before the
     * answer's last bytes go out; the second run commits without fsync. */
    const char *runs[][2] = {{"through accrue (metered, booked)", NULL},
                             {"through accrue, --ledger-no-sync", "--ledger-no-sync"}};
    for (size_t k = 0; k < 2; k++) {
        server_t s;
        if (!start_accrue(bin, &s, 0, server_last, "1", runs[k][1])) continue;
        register_bench_model(bin, up_port, s.db);
        http_rows(runs[k][0], s.port, "/v1/chat/completions", s.key, body, s.pid, true, &via, &via_many);
        size_t n = strlen(summary);
        snprintf(summary + n, sizeof summary - n,
                 "- %s adds %.3f ms at p50 and %.3f ms at p99 at one connection; %.0f upstream requests on %.0f "
                 "connections.\n",
                 runs[k][0], via.p50_ms - direct.p50_ms, via.p99_ms - direct.p99_ms,
                 metric_of(s.port, "accrue_upstream_requests_total"), metric_of(s.port, "accrue_upstream_connections_total"));
        /* Below the highest rate (the 32 connections' closed loop above): what accrue adds to each
         * request when it keeps up, beside the upstream alone at the same rate. */
        for (int f = 0; via_many.rate > 0 && f < 2; f++) {
            double rate = (f ? 0.8 : 0.5) * via_many.rate;
            result_t at = http_rate_row(runs[k][0], s.port, s.key, body, s.pid, rate);
            result_t up_at = http_rate_row("upstream directly", up_port, NULL, body, -1, rate);
            n = strlen(summary);
            snprintf(summary + n, sizeof summary - n,
                     "- at %.0f requests/s (%.0f%% of its highest rate), %s adds %.3f ms at p50 and %.3f ms at p99.\n",
                     rate, f ? 80.0 : 50.0, runs[k][0], at.p50_ms - up_at.p50_ms, at.p99_ms - up_at.p99_ms);
        }
        if (k == 0) {
            /* The gateway without an upstream: the free test model (no ledger), and a metered
             * built-in model (reserved, run, attributed, booked; no network). */
            const char *inl[][2] = {
                {"accrue alone, test/echo (free, nothing booked)",
                 "{\"model\":\"test/echo\",\"messages\":[{\"role\":\"user\",\"content\":\"hello there\"}]}"},
                {"accrue alone, demo/orchard-ngram (metered built-in)",
                 "{\"model\":\"demo/orchard-ngram\",\"messages\":[{\"role\":\"user\",\"content\":\"plums\"}],"
                 "\"max_tokens\":8}"}};
            for (size_t j = 0; j < 2; j++)
                http_rows(inl[j][0], s.port, "/v1/chat/completions", s.key, inl[j][1], s.pid, j == 1, NULL, NULL);
        }
        stop(s.pid);
    }
    const char *litellm = getenv("ACCRUE_BENCH_LITELLM");
    if (litellm && *litellm) {
        char cfg[600];
        snprintf(cfg, sizeof cfg, "%s/litellm.yaml", agent_dir);
        FILE *f = fopen(cfg, "w");
        fprintf(f,
                "model_list:\n  - model_name: bench/model\n    litellm_params:\n      model: openai/bench\n"
                "      api_base: http://127.0.0.1:%d/v1\n      api_key: none\n"
                "general_settings:\n  master_key: %s\n", /* it refuses to start without one */
                up_port, LITELLM_KEY);
        fclose(f);
        int lport = 40000 + (int)(getpid() % 20000);
        pid_t lp = fork();
        if (lp == 0) {
            pin(0, server_last);
            int null = open("/dev/null", O_WRONLY);
            dup2(null, 1);
            dup2(null, 2);
            char portbuf[16];
            snprintf(portbuf, sizeof portbuf, "%d", lport);
            execl(litellm, litellm, "--config", cfg, "--port", portbuf, "--host", "127.0.0.1", "--num_workers", "1",
                  (char *)NULL);
            _exit(127);
        }
        /* LiteLLM takes a while to start: wait for its port. */
        bool up_ok = false;
        for (int i = 0; i < 1500 && !up_ok; i++) { /* 300 s: slow to start on a loaded machine */
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)lport)};
            a.sin_addr.s_addr = htonl(0x7f000001);
            up_ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
            close(fd);
            if (!up_ok) usleep(200000);
        }
        if (up_ok) {
            result_t lite;
            http_rows("through LiteLLM proxy", lport, "/v1/chat/completions", LITELLM_KEY, body, lp, false, &lite, NULL);
            size_t n = strlen(summary);
            snprintf(summary + n, sizeof summary - n,
                     "- LiteLLM adds %.3f ms at p50 and %.3f ms at p99 at one connection.\n",
                     lite.p50_ms - direct.p50_ms, lite.p99_ms - direct.p99_ms);
        } else {
            printf("\nLiteLLM did not start within 300 s.\n");
        }
        stop(lp);
    } else {
        printf("\n(LiteLLM not measured: set ACCRUE_BENCH_LITELLM to its `litellm` executable; "
               "tools/bench_litellm.sh installs one)\n");
    }
    printf("\n%s", summary);
    stop(up);
}

/* The median of n values (sorts them). */
static double median(double *v, size_t n) {
    qsort(v, n, sizeof *v, cmp_double);
    return n ? (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2) : 0;
}

/* ACCRUE_BENCH_VS=OTHER_ACCRUE: the OpenAI endpoint of this build beside another's, in turns. Both
 * servers (booked with fsync, one worker each) stay up, and short loads take turns between the
 * upstream alone and the two, round after round (ACCRUE_BENCH_ROUNDS, default 12), so the swings
 * of a shared machine's load and of its disk fall on both alike; each row is the median over the
 * rounds. A single run of the section above moves by more than the changes it is meant to show. */
static void bench_openai_vs(const char *bin, const char *other) {
    int client = ncpu - 1, server_last = ncpu > 1 ? ncpu - 2 : 0;
    const char *rs = getenv("ACCRUE_BENCH_ROUNDS");
    int rounds = rs && atoi(rs) > 0 ? atoi(rs) : 12;
    printf("\n### OpenAI endpoint, this build against %s (medians of %d rounds of %.1f s each, in turns)\n\n",
           other, rounds, seconds);
    printf("| path | connections | requests | p50 | p99 | note |\n|---|---|---|---|---|---|\n");
    pin(client, client);
    int up_port;
    pid_t up = spawn_lws('u', 0, server_last, &up_port);
    const char *body = bench_model_body;
    const char *bins[2] = {bin, other}, *names[3] = {"upstream directly", "this build, booked", "the other, booked"};
    server_t s[2] = {{.pid = 0}, {.pid = 0}};
    bool ok = true;
    for (int b = 0; b < 2 && ok; b++) {
        ok = start_accrue(bins[b], &s[b], 0, server_last, "1", NULL);
        if (ok) register_bench_model(bins[b], up_port, s[b].db);
    }
    int conns[] = {1, 32};
    double *v = calloc((size_t)rounds * 3 * 5, sizeof *v); /* [target][round][rate, p50, p99, cpu, batch] */
    for (size_t ci = 0; ok && v && ci < 2; ci++) {
        for (int r = 0; r < rounds; r++)
            for (int t = 0; t < 3; t++) {
                load_t L = {.mode = M_HTTP, .port = t ? s[t - 1].port : up_port, .path = "/v1/chat/completions",
                            .key = t ? s[t - 1].key : NULL, .http_body = body, .nconns = conns[ci],
                            .cpu_pid = t ? s[t - 1].pid : -1};
                double c0 = t ? metric_of(L.port, "accrue_ledger_commits_total") : 0;
                double p0 = t ? metric_of(L.port, "accrue_ledger_postings_total") : 0;
                result_t x = run_load(&L);
                double c1 = t ? metric_of(L.port, "accrue_ledger_commits_total") : 0;
                double p1 = t ? metric_of(L.port, "accrue_ledger_postings_total") : 0;
                double *o = v + ((size_t)t * (size_t)rounds + (size_t)r) * 5;
                o[0] = x.rate, o[1] = x.p50_ms, o[2] = x.p99_ms, o[3] = x.cpu_us, o[4] = c1 > c0 ? (p1 - p0) / (c1 - c0) : 0;
            }
        double med[3][5], col[256];
        for (int t = 0; t < 3; t++)
            for (int k = 0; k < 5; k++) {
                int n = 0;
                for (int r = 0; r < rounds && n < 256; r++) col[n++] = v[((size_t)t * (size_t)rounds + (size_t)r) * 5 + (size_t)k];
                med[t][k] = median(col, (size_t)n);
            }
        for (int t = 0; t < 3; t++) {
            char note[160] = "";
            if (t)
                snprintf(note, sizeof note, "gateway CPU %.1f µs/request; %.1f postings a commit; adds %.3f ms at p50, %.3f ms at p99",
                         med[t][3], med[t][4], med[t][1] - med[0][1], med[t][2] - med[0][2]);
            result_t x = {.rate = med[t][0], .p50_ms = med[t][1], .p99_ms = med[t][2]};
            row(names[t], conns[ci], x, note);
        }
    }
    if (!ok) printf("| accrue serve did not start | | | | | |\n");
    free(v);
    for (int b = 0; b < 2; b++) stop(s[b].pid);
    stop(up);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_server ACCRUE_BIN\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1) ncpu = 1;
    const char *s = getenv("ACCRUE_BENCH_SECONDS");
    if (s && atof(s) > 0) seconds = atof(s);
    int sessions = 10000;
    s = getenv("ACCRUE_BENCH_SESSIONS");
    if (s && atoi(s) > 0) sessions = atoi(s);
    if (!mkdtemp(agent_dir)) return 1;
    write_file(agent_dir, "echo.lua", "return { on_message = function(session, text) return text end }\n");
    write_file(agent_dir, "caller.lua",
               "return { on_message = function(session, text) return models.call(\"test/echo\", text).text end }\n");
    write_file(agent_dir, "metered.lua",
               "return { on_message = function(session, text)\n"
               "  return models.call(\"demo/orchard-ngram\", {prompt = \"plums\", max_tokens = 8}).text end }\n");
    printf("## accrue serve (bench_server, %d CPUs, %.1f s per measurement)\n", ncpu, seconds);
    const char *only = getenv("ACCRUE_BENCH_ONLY"); /* "ws", "idle", "openai", comma-separated */
    if (!only || strstr(only, "ws")) bench_ws(argv[1]);
    if (!only || strstr(only, "idle")) bench_idle(argv[1], sessions);
    const char *vs = getenv("ACCRUE_BENCH_VS"); /* another build's accrue, for bench_openai_vs */
    if ((!only || strstr(only, "openai")) && vs && *vs) bench_openai_vs(argv[1], vs);
    else if (!only || strstr(only, "openai")) bench_openai(argv[1]);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", agent_dir);
    if (system(cmd) != 0) return 1;
    return 0;
}
