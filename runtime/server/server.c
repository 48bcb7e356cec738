/*
 * server.c: the lws context, the loop, the inbox, signals and shutdown (server.h).
 *
 * The inbox is how other threads hand work to the loop: a linked list of intrusive events under
 * a mutex. Posting to an empty inbox calls lws_cancel_service, which wakes the loop (libuv's
 * epoll_wait, or lws's poll() without its libuv plugin) and delivers
 * LWS_CALLBACK_EVENT_WAIT_CANCELLED to every protocol of the vhost; the "accrue"
 * protocol alone drains the inbox there (the others ignore it), so one wake-up serves every event
 * posted since.
 *
 * Shutdown (SIGINT, SIGTERM): new connections and requests are refused at once, running turns are
 * cancelled (their reservations voided when their calls end), the loop keeps serving until every
 * turn has come back (or a few seconds pass), the WebSocket connections are closed with 1001, the
 * ledger is flushed, and rt_serve returns 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "runtime/server/internal.h"
#include "registry/factory/factory.h"
#include "runtime/demo.h"
#include "runtime/server/keepalive.h"
#include "runtime/server/outbound.h"

volatile sig_atomic_t rt_stop_signal;
static struct lws_context *volatile signal_ctx;

#define TICK_US (250 * 1000)
#define DRAIN_TIMEOUT_NS (5ull * 1000000000ull)

void rt_post(rt_server *srv, rt_event *ev) { rt_net_post(&srv->net, ev); }

/* Runs every queued event, including those posted while running them, then writes what they
 * gave the WebSocket connections and the HTTP requests to send. */
static void drain_inbox(rt_server *srv) {
    rt_net_drain(&srv->net);
    rt_ws_flush(srv);
    rt_http_flush(srv);
}

static void on_tick(lws_sorted_usec_list_t *sul) {
    rt_server *srv = (rt_server *)((char *)sul - offsetof(rt_server, tick));
    rt_sessions_tick(srv);
    rt_settle_tick(srv);
    lws_sul_schedule(srv->net.ctx, 0, &srv->tick, on_tick, TICK_US);
}

static int callback_main(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
    rt_server *srv = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (srv) drain_inbox(srv);
        return 0;
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        return srv && srv->draining ? -1 : 0; /* shutting down: accept nothing new */
    case LWS_CALLBACK_HTTP:
    case LWS_CALLBACK_HTTP_BODY:
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    case LWS_CALLBACK_HTTP_WRITEABLE:
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL: {
        /* A response to this connection that an event of the drain makes is written from a later
         * callback (rt_http_flush): lws is not done with the connection's state yet. */
        struct lws *outer = srv->http_cb_wsi;
        srv->http_cb_wsi = wsi;
        int rc = rt_http_callback(wsi, reason, user, in, len);
        drain_inbox(srv); /* events the handler posted to the loop itself */
        srv->http_cb_wsi = outer;
        return rc;
    }
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
    case LWS_CALLBACK_ESTABLISHED:
    case LWS_CALLBACK_RECEIVE:
    case LWS_CALLBACK_SERVER_WRITEABLE:
    case LWS_CALLBACK_CLOSED:
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: {
        int rc = rt_ws_callback(wsi, reason, user, in, len);
        drain_inbox(srv);
        return rc;
    }
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static int callback_client(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
    if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED) return 0; /* the "accrue.v1" protocol drains */
    rt_server *srv = lws_context_user(lws_get_context(wsi));
    int rc = rt_out_callback(wsi, reason, user, in, len);
    if (srv) drain_inbox(srv);
    return rc;
}

static struct lws_protocols protocols[] = {
    /* rx_buffer_size bounds what one RECEIVE delivers and costs every connection its size;
     * tx_packet_size lets one write hand the kernel a whole response. */
    {"accrue.v1", callback_main, sizeof(rt_conn), 1024, 0, NULL, 1u << 20},
    {"accrue-client", callback_client, 0, 4096, 0, NULL, 0}, /* outbound.c, keepalive.c */
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void on_signal(int sig) {
    (void)sig;
    rt_stop_signal = 1;
    if (signal_ctx) lws_cancel_service(signal_ctx);
}

/* Closes a loop lws no longer uses, with any handle left on it. */
static void close_uv_handle(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* Runs before the loop blocks: what timers (the tick, upstream timeouts) posted or queued to write
 * during this pass goes out now, not after the next wake-up. */
static void on_prepare(uv_prepare_t *h) { drain_inbox(h->data); }

static void close_uv(uv_loop_t *uv) {
    uv_walk(uv, close_uv_handle, NULL);
    uv_run(uv, UV_RUN_DEFAULT);
    if (uv_loop_close(uv) != 0) fprintf(stderr, "accrue serve: the event loop still had handles at exit\n");
}

static void lws_log(int level, const char *line) {
    if (level & LLL_ERR) fprintf(stderr, "accrue serve: lws: %s", line);
}

/* The folder of the web page: --web, else beside the binary (zig-out/share/accrue/web, or the
 * repository's runtime/web for a binary in .zig-cache), else ./runtime/web. */
static const char *find_web_dir(const char *given, char *buf, size_t n) {
    if (given) return given;
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        /* installed (zig-out/bin), or a build tree's cached binary (.zig-cache/o/HASH) */
        const char *rel[] = {"../share/accrue/web", "../../../runtime/web"};
        for (size_t i = 0; i < 2; i++) {
            snprintf(buf, n, "%s/%s", exe, rel[i]);
            if (access(buf, R_OK) == 0) return buf;
        }
    }
    snprintf(buf, n, "runtime/web");
    return access(buf, R_OK) == 0 ? buf : NULL;
}

/* Can host:port be bound? Checked before lws tries (it logs several lines and leaks a little on
 * that path). A host that is not a numeric address is left to lws. */
static int check_listen(const char *host, int port, acc_err *err) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        len = sizeof *a4;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        len = sizeof *a6;
    } else {
        return ACC_OK;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return ACC_OK;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* as lws does */
    int rc = bind(fd, (struct sockaddr *)&ss, len);
    int e = errno;
    close(fd);
    if (rc == 0) return ACC_OK;
    return acc_fail(err, ACC_EIO, "cannot listen on %s:%d: %s", host, port, strerror(e));
}

/* The host key: --key FILE, else NAME.host.key beside the database (made, mode 0600, on first
 * start). *made says whether it was made now. */
static int host_key(rt_server *srv, char *path, size_t n, bool *made, acc_err *err) {
    *made = false;
    if (srv->cfg.key_path) snprintf(path, n, "%s", srv->cfg.key_path);
    else {
        const char *db = srv->cfg.db_path;
        size_t len = strlen(db);
        if (len > 3 && strcmp(db + len - 3, ".db") == 0) len -= 3;
        snprintf(path, n, "%.*s.host.key", (int)len, db);
    }
    acc_err e = {0};
    if (access(path, F_OK) != 0) {
        if (srv->cfg.key_path) return acc_fail(err, ACC_EIO, "--key %s: no such file", path);
        eth_key *k = NULL;
        if (eth_key_generate(&k, &e) != ACC_OK || eth_key_write_file(k, path, &e) != ACC_OK) {
            eth_key_free(k);
            return acc_fail(err, ACC_EIO, "cannot make the host key %s: %s", path, e.msg);
        }
        eth_key_free(k);
        *made = true;
    }
    if (eth_key_read_file(&srv->host_key, path, &e) != ACC_OK)
        return acc_fail(err, ACC_EPERM, "host key %s: %s", path, e.msg);
    uint8_t a[ETH_ADDRESS_SIZE];
    eth_key_address(srv->host_key, a);
    eth_address_to_text(a, srv->host_address);
    return ACC_OK;
}

#define DEMO_CREDIT (100 * LEDGER_UNITS_PER_CREDIT) /* what the demo account starts with */
#define OPERATOR_ACCOUNT "operator"

/* The ledger's writer, around a batch's answers: one wake-up of the loop for all of them. */
static void hold_loop_wakes(void *ud, bool begin) {
    rt_server *srv = ud;
    rt_net_hold_wakes(&srv->net, begin);
}

/* The registry (seeded with the demo registry when it holds nothing), the ledger, the meters. New
 * keys go into demo_key and admin_key ("" when none was made now). */
static int open_stores(rt_server *srv, char demo_key[REGISTRY_API_KEY_TEXT_SIZE],
                       char admin_key[REGISTRY_API_KEY_TEXT_SIZE], bool *seeded, acc_err *err) {
    demo_key[0] = admin_key[0] = 0;
    int rc = registry_open(srv->cfg.db_path, REGISTRY_OPEN_CREATE, &srv->reg, err);
    if (rc) return rc;
    if ((rc = rt_demo_seed(srv->reg, seeded, demo_key, err))) return acc_err_prefix(err, "seeding the demo registry");
    if (registry_account_get(srv->reg, OPERATOR_ACCOUNT, NULL, NULL) == ACC_ENOTFOUND &&
        (rc = registry_account_create(srv->reg, OPERATOR_ACCOUNT, true, admin_key, NULL, err)))
        return rc;
    ledger_opts_t lo = {.no_sync = srv->cfg.ledger_no_sync != 0, .on_done_batch = hold_loop_wakes, .on_done_batch_ud = srv};
    if ((rc = ledger_open(srv->cfg.db_path, &lo, &srv->ledger, err))) return rc;
    meter_config_t mc = meter_config_default();
    if ((rc = meter_open(srv->ledger, &mc, &srv->meter, err))) return rc;
    if (demo_key[0] && (rc = rt_topup(srv->ledger, RT_DEMO_ACCOUNT, DEMO_CREDIT, NULL, err)))
        return acc_err_prefix(err, "crediting the demo account");
    if ((rc = rt_settle_init(srv, err))) return rc;
    rt_metered_config_t rc_cfg = {.meter = srv->meter, .http = rt_upstream_hook(&srv->net)};
    return rt_metered_open(&rc_cfg, &srv->metered, err);
}

static void close_stores(rt_server *srv) {
    rt_metered_close(srv->metered);
    if (srv->meter) meter_close(srv->meter);
    if (srv->ledger) ledger_close(srv->ledger); /* commits what is queued: the ledger is flushed */
    registry_close(srv->reg);
    eth_key_free(srv->host_key);
    factory_cache_clear();
}

int rt_serve(const rt_serve_config *cfg_in, acc_err *err) {
    rt_server *srv = calloc(1, sizeof *srv);
    if (!srv) return acc_fail(err, ACC_ENOMEM, "out of memory");
    srv->cfg = *cfg_in;
    char webbuf[PATH_MAX];
    srv->cfg.web_dir = find_web_dir(cfg_in->web_dir, webbuf, sizeof webbuf);
    if (!srv->cfg.workers) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        srv->cfg.workers = n > 0 ? (unsigned)n : 2;
    }
    srv->started_ms = rt_wall_ms();
    srv->net.loop_thread = pthread_self();
    pthread_mutex_init(&srv->net.inbox_mu, NULL);
    srv->net.srv = srv;
    srv->net.connect_ms = srv->cfg.upstream_connect_ms;
    srv->net.total_ms = srv->cfg.upstream_total_ms;

    int rc = ACC_OK;
    char demo_key[REGISTRY_API_KEY_TEXT_SIZE], admin_key[REGISTRY_API_KEY_TEXT_SIZE], key_path[4096];
    bool seeded = false, key_made = false;
    if ((rc = check_listen(srv->cfg.host, srv->cfg.port, err)) ||
        (rc = host_key(srv, key_path, sizeof key_path, &key_made, err)) ||
        (rc = open_stores(srv, demo_key, admin_key, &seeded, err)))
        goto out;
    srv->pool = rt_pool_start(srv->cfg.workers, err);
    if (!srv->pool || rt_out_init(&srv->net, err) != ACC_OK) {
        rc = err ? err->code : ACC_ENOMEM;
        goto out;
    }
    rt_ka_tls_warm();

    lws_set_log_level(LLL_ERR, lws_log);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = srv->cfg.port;
    info.iface = srv->cfg.host;
    info.protocols = protocols;
    info.user = srv;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.max_http_header_pool = 1024;
    info.timeout_secs = 30;
    info.vhost_name = "accrue";
    /* lws's own loop calls poll() over every descriptor on each wake-up: with thousands of idle
     * sessions that is most of an active one's cost. Its libuv event library (epoll) is a plugin
     * Debian ships beside it (libwebsockets-evlib-uv); the loop is ours (a foreign loop), so this
     * function keeps running it. Without the plugin, lws's loop serves, slower. */
    uv_loop_t uv;
    bool on_uv = uv_loop_init(&uv) == 0;
    struct lws_context *final_ctx = NULL; /* lws sets it to NULL when the context is gone */
    if (on_uv) {
        void *loops[1] = {&uv};
        info.options |= LWS_SERVER_OPTION_LIBUV;
        info.foreign_loops = loops;
        info.pcontext = &final_ctx;
        final_ctx = srv->net.ctx = lws_create_context(&info);
        info.foreign_loops = NULL;
        info.pcontext = NULL;
        if (!srv->net.ctx) {
            close_uv(&uv);
            on_uv = false;
            info.options &= ~(uint64_t)LWS_SERVER_OPTION_LIBUV;
        }
    }
    if (!on_uv) {
        srv->net.ctx = lws_create_context(&info);
        if (srv->net.ctx && !srv->cfg.quiet)
            fprintf(stderr, "accrue serve: lws's libuv event library is missing (Debian's libwebsockets-evlib-uv): "
                            "serving with poll(), which slows down as connections are held\n");
    }
    srv->event_loop = on_uv ? "libuv" : "poll";
    if (!srv->net.ctx) {
        rc = acc_fail(err, ACC_EIO, "cannot listen on %s:%d (address in use, or not an address of this machine)",
                      srv->cfg.host, srv->cfg.port);
        goto out;
    }
    srv->net.vh = lws_get_vhost_by_name(srv->net.ctx, "accrue");
    int port = srv->net.vh ? lws_get_vhost_listen_port(srv->net.vh) : srv->cfg.port;

    signal_ctx = srv->net.ctx;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (!srv->cfg.quiet) {
        printf("accrue serve: listening on http://%s:%d (the web page, /v1/... and ws://%s:%d/v1/sessions)\n",
               srv->cfg.host, port, srv->cfg.host, port);
        printf("accrue serve: host key %s%s, signer %s\n", key_path, key_made ? " (made now, mode 0600)" : "",
               srv->host_address);
        if (seeded)
            printf("accrue serve: made the demo registry in %s: datanet %s, agents orchard-guide and "
                   "orchard-sources, account %s with %" PRIu64 " credits\n",
                   srv->cfg.db_path, RT_DEMO_DATANET, RT_DEMO_ACCOUNT, (uint64_t)(DEMO_CREDIT / LEDGER_UNITS_PER_CREDIT));
        if (demo_key[0]) printf("demo API key: %s (shown once)\n", demo_key);
        if (admin_key[0]) printf("admin API key: %s (shown once; admin calls need it)\n", admin_key);
        if (demo_key[0])
            printf("try a session: accrue chat --url ws://%s:%d --key %s orchard-guide \"what grows on vines\"\n",
                   srv->cfg.host, port, demo_key);
        else
            printf("accrue serve: API keys are shown once, when made (accrue account create NAME makes one)\n");
        if (!srv->cfg.web_dir) printf("accrue serve: no web page folder found (--web DIR serves one)\n");
        fflush(stdout);
    }
    memset(demo_key, 0, sizeof demo_key);
    memset(admin_key, 0, sizeof admin_key);

    lws_sul_schedule(srv->net.ctx, 0, &srv->tick, on_tick, TICK_US);
    uv_prepare_t prepare;
    if (on_uv) {
        uv_prepare_init(&uv, &prepare);
        prepare.data = srv;
        uv_prepare_start(&prepare, on_prepare);
    }
    uint64_t drain_start = 0, close_start = 0;
    bool closing = false;
    for (;;) {
        if (on_uv)
            uv_run(&uv, UV_RUN_ONCE); /* returns after the events of one wait were handled */
        else if (lws_service(srv->net.ctx, 0) < 0)
            break;
        drain_inbox(srv);
        if (rt_stop_signal && !srv->draining) {
            srv->draining = true;
            drain_start = rt_now_ns();
            if (!srv->cfg.quiet) fprintf(stderr, "accrue serve: shutting down\n");
        }
        if (srv->draining && !closing) {
            bool quiet = rt_sessions_drain(srv);
            if (quiet || rt_now_ns() - drain_start > DRAIN_TIMEOUT_NS) {
                rt_sessions_close_all(srv);
                closing = true;
                close_start = rt_now_ns();
            }
        }
        /* Closing: the close frames go out, every session's sandbox is closed on a worker and
         * freed here; then the loop ends (or after two seconds, whatever is still stuck). */
        if (closing) {
            uint64_t t = rt_now_ns() - close_start;
            if ((t > 200000000ull && srv->sessions_alive == 0) || t > 2000000000ull) break;
        }
    }
    lws_sul_cancel(&srv->tick);
    if (on_uv) uv_close((uv_handle_t *)&prepare, NULL);
    rt_pool_stop(srv->pool); /* no job is left running after this */
    srv->pool = NULL;
    signal_ctx = NULL;
    lws_context_destroy(srv->net.ctx);
    if (on_uv) {
        /* On a foreign loop the context goes in steps: its handles close as the loop runs, then a
         * second destroy frees what is left (lws 4.1.6 leaves that to its caller). */
        uv_run(&uv, UV_RUN_DEFAULT);
        if (final_ctx) lws_context_destroy(final_ctx);
        close_uv(&uv);
    }
    srv->net.ctx = NULL;
out:
    rt_out_shutdown();
    rt_pool_stop(srv->pool);
    close_stores(srv);
    rt_auth_forget(srv);
    rt_map_free(&srv->sessions);
    rt_map_free(&srv->key_sessions);
    pthread_mutex_destroy(&srv->net.inbox_mu);
    free(srv);
    return rc;
}
