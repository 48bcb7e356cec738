/*
 * cli_chat.c: `accrue chat`: a session with an agent of a running `accrue serve`, from a terminal.
 *
 * Connects to URL/v1/sessions with the API key, starts a session with AGENT, sends each MESSAGE
 * (or each line of standard input when none is given) in turn, and prints the reply as it streams
 * in (delta frames), then a one-line receipt per run on stderr (calls and cost). Exit 0 when every
 * run completed, 1 when one failed or the server refused something (its error on stderr), 2 for a
 * usage error. A WebSocket client on libwebsockets, like the server.
 */
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "runtime/base/buf.h"
#include "runtime/cli.h"

static const char chat_usage[] =
    "usage: accrue chat [--url URL] --key KEY AGENT[@VERSION] [MESSAGE...]\n"
    "\n"
    "Starts a session with AGENT on a running `accrue serve` (URL default ws://127.0.0.1:8080) and\n"
    "sends each MESSAGE, or each line of standard input when none is given. The reply is printed as\n"
    "it streams in; each run's receipt (calls, cost) goes to stderr. KEY may also come from the\n"
    "ACCRUE_API_KEY environment variable.\n"
    "\n"
    "Exit status: 0 every run completed; 1 a run failed or the server refused; 2 usage error.\n";

typedef struct chat {
    const char *key, *agent;
    char **messages;
    int nmessages, next;
    bool from_stdin;
    bool ready, waiting, done;
    int status;
    size_t streamed; /* bytes of this run's answer printed from deltas */
    acc_buf rx;
    acc_buf tx; /* the frame to send next */
    struct lws *wsi;
} chat_t;

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

static void queue_frame(chat_t *c, json_t *frame) {
    char *s = json_dumps(frame, JSON_COMPACT);
    json_decref(frame);
    if (!s) return;
    acc_buf_reset(&c->tx);
    acc_buf_puts(&c->tx, s);
    free(s);
    lws_callback_on_writable(c->wsi);
}

/* The next message: from the arguments, or a line of stdin. false when there is none left. */
static bool send_next(chat_t *c) {
    char id[32];
    snprintf(id, sizeof id, "m%d", c->next + 1);
    if (!c->from_stdin) {
        if (c->next >= c->nmessages) return false;
        queue_frame(c, json_pack("{s:s,s:s,s:s}", "type", "message", "id", id, "content", c->messages[c->next++]));
        return true;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) {
        free(line);
        return false;
    }
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    c->next++;
    queue_frame(c, json_pack("{s:s,s:s,s:s%}", "type", "message", "id", id, "content", line, (size_t)n));
    free(line);
    return true;
}

static void finish(chat_t *c, int status) {
    if (status > c->status) c->status = status;
    c->done = true;
}

static void on_frame(chat_t *c, const char *data, size_t len) {
    json_t *f = json_loadb(data, len, 0, NULL);
    const char *type = json_string_value(json_object_get(f, "type"));
    if (!type) {
        fprintf(stderr, "accrue chat: the server sent a frame that is not JSON\n");
        finish(c, 1);
    } else if (!strcmp(type, "session.ready")) {
        c->ready = true;
        if (!send_next(c)) finish(c, 0);
    } else if (!strcmp(type, "delta")) {
        json_t *t = json_object_get(f, "text");
        fwrite(json_string_value(t), 1, json_string_length(t), stdout);
        fflush(stdout);
        c->streamed += json_string_length(t);
    } else if (!strcmp(type, "message")) {
        /* The final message holds the whole answer: the streamed part is printed already. */
        json_t *content = json_object_get(f, "content");
        size_t n = json_string_length(content);
        if (c->streamed < n) fwrite(json_string_value(content) + c->streamed, 1, n - c->streamed, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    } else if (!strcmp(type, "usage")) {
        json_t *calls = json_object_get(f, "calls");
        fprintf(stderr, "[%s: %zu call%s, cost %" JSON_INTEGER_FORMAT, json_string_value(json_object_get(f, "run")),
                json_array_size(calls), json_array_size(calls) == 1 ? "" : "s",
                json_integer_value(json_object_get(f, "cost")));
        json_t *bal = json_object_get(f, "balance");
        if (json_is_integer(bal)) fprintf(stderr, ", balance %" JSON_INTEGER_FORMAT, json_integer_value(bal));
        fputs("]\n", stderr);
    } else if (!strcmp(type, "error")) {
        fprintf(stderr, "accrue chat: %s: %s\n", json_string_value(json_object_get(f, "code")),
                json_string_value(json_object_get(f, "message")));
        if (!c->ready) finish(c, 1);
        else c->status = 1;
    } else if (!strcmp(type, "run.done")) {
        const char *st = json_string_value(json_object_get(f, "status"));
        if (st && strcmp(st, "completed") != 0) c->status = 1;
        c->streamed = 0;
        if (!send_next(c)) finish(c, 0);
    }
    json_decref(f);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
    chat_t *c = lws_context_user(lws_get_context(wsi));
    (void)user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        unsigned char **p = (unsigned char **)in, *end = (*p) + len;
        char auth[300];
        int n = snprintf(auth, sizeof auth, "Bearer %s", c->key);
        if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, (unsigned char *)auth, n, p, end))
            return -1;
        return 0;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        queue_frame(c, json_pack("{s:s,s:s,s:s}", "type", "session.start", "id", "start", "agent", c->agent));
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        fprintf(stderr, "accrue chat: cannot connect: %s\n", in ? (const char *)in : "connection failed");
        c->wsi = NULL;
        finish(c, 1);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        acc_buf_append(&c->rx, in, len);
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
            on_frame(c, c->rx.data, c->rx.len);
            acc_buf_reset(&c->rx);
        }
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (c->tx.len) {
            unsigned char *buf = malloc(LWS_PRE + c->tx.len);
            if (!buf) return -1;
            memcpy(buf + LWS_PRE, c->tx.data, c->tx.len);
            int w = lws_write(wsi, buf + LWS_PRE, c->tx.len, LWS_WRITE_TEXT);
            free(buf);
            acc_buf_reset(&c->tx);
            if (w < 0) return -1;
        }
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        c->wsi = NULL;
        if (!c->done) {
            fprintf(stderr, "accrue chat: the server closed the connection\n");
            finish(c, 1);
        }
        return 0;
    default:
        return 0;
    }
}

int cli_chat(int argc, char **argv) {
    const char *url = "ws://127.0.0.1:8080", *key = getenv("ACCRUE_API_KEY");
    chat_t c = {0};
    int first_msg = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(chat_usage, stdout);
            return 0;
        } else if (!strcmp(a, "--url") || !strcmp(a, "--key")) {
            if (++i == argc) {
                fprintf(stderr, "accrue chat: %s needs a value\n", a);
                return 2;
            }
            if (a[2] == 'u') url = argv[i];
            else key = argv[i];
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "accrue chat: unknown flag '%s' (see accrue chat --help)\n", a);
            return 2;
        } else if (!c.agent) {
            c.agent = a;
        } else {
            first_msg = i;
            break;
        }
    }
    if (!c.agent || !key || !*key) {
        fprintf(stderr, "accrue chat: %s\n", !c.agent ? "which agent? (accrue chat --key KEY AGENT MESSAGE)"
                                                      : "--key KEY is required (or ACCRUE_API_KEY)");
        return 2;
    }
    c.key = key;
    if (first_msg) {
        c.messages = argv + first_msg;
        c.nmessages = argc - first_msg;
    } else {
        c.from_stdin = true;
    }
    /* ws://host:port[/...] */
    const char *proto, *address, *path;
    int port;
    char urlbuf[512];
    snprintf(urlbuf, sizeof urlbuf, "%s", url);
    if (lws_parse_uri(urlbuf, &proto, &address, &port, &path) || (strcmp(proto, "ws") && strcmp(proto, "wss"))) {
        fprintf(stderr, "accrue chat: --url needs ws://HOST:PORT or wss://HOST:PORT, got '%s'\n", url);
        return 2;
    }
    lws_set_log_level(0, NULL);
    static const struct lws_protocols protocols[] = {{"accrue.v1", callback, 0, 4096, 0, NULL, 0}, {NULL, NULL, 0, 0, 0, NULL, 0}};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.user = &c;
    info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT | LWS_SERVER_OPTION_VALIDATE_UTF8;
    struct lws_context *ctx = lws_create_context(&info);
    if (!ctx) {
        fputs("accrue chat: cannot start the WebSocket client\n", stderr);
        return 1;
    }
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = ctx;
    ci.address = address;
    ci.port = port;
    ci.path = "/v1/sessions";
    ci.host = address;
    ci.origin = address;
    ci.ssl_connection = strcmp(proto, "wss") == 0 ? LCCSCF_USE_SSL : 0;
    ci.protocol = "accrue.v1";
    ci.pwsi = &c.wsi;
    signal(SIGINT, on_sigint);
    if (!lws_client_connect_via_info(&ci)) c.done = true, c.status = 1;
    while (!c.done && !interrupted)
        if (lws_service(ctx, 0) < 0) break;
    lws_context_destroy(ctx);
    acc_buf_free(&c.rx);
    acc_buf_free(&c.tx);
    if (interrupted) return 1;
    return c.status;
}
