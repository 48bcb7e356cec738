/*
 * test_corpus.c: runs the adversarial sandbox corpus (tests/corpus/NAME.lua) through the real accrue
 * binary and checks each script's declared outcome.
 *
 * Every script runs as `accrue run NAME.lua --no-demo [--input TEXT] LIMITS...` in a fresh temporary
 * directory that holds only a read-only copy of the script and a canary file, with a clean
 * environment plus a canary variable, stdin from /dev/null, stdout and stderr captured to files
 * outside that directory, and a hard SIGKILL after a generous timeout so a hung binary fails the
 * test instead of hanging CI. Two scripts run at a time (the CI machine has 2 cores).
 *
 * Header grammar: the leading lines of a script that start with "-- " and hold "key: value"
 * (the header ends at the first line that is not a "--" comment). Unknown keys fail the script,
 * so a typo cannot silently drop an expectation.
 *
 *   -- expect: exit=N [stderr~TEXT]   required. Exit status (0 ok, 1 failure or limit, 2 usage).
 *                                     stderr~TEXT: stderr must contain TEXT (the rest of the line);
 *                                     "A|B" accepts either alternative.
 *   -- stderr~: TEXT                  another required substring of stderr (repeatable, "|" ok).
 *   -- stderr!~: TEXT                 stderr must not contain TEXT (repeatable).
 *   -- args: FLAGS...                 overrides of the default limits (whitespace-separated
 *                                     "--flag value" pairs); a flag given here replaces the
 *                                     default one. Defaults: --mem-limit 16777216
 *                                     --instr-limit 10000000 --time-limit 1000 --output-limit 65536
 *   -- input: TEXT                    passes --input TEXT (rest of the line, may be empty), so
 *                                     on_message runs as a second turn.
 *   -- stdout: LINE                   the exact expected stdout, one header line per output line
 *                                     (repeatable; "-- stdout:" alone is an empty line). Absent:
 *                                     stdout is not compared exactly.
 *   -- stdout-file: FILE              the exact expected stdout is the file tests/corpus/FILE
 *                                     (for long outputs, e.g. results compared with stock lua5.4).
 *   -- stdout~: TEXT                  stdout must contain TEXT (repeatable).
 *   -- stdout!~: TEXT                 stdout must not contain TEXT (repeatable).
 *   -- stdout-max: BYTES              stdout must be at most BYTES long (output floods).
 *   -- max-ms: MS                     wall-time bound for the whole process (default 3000).
 *   -- max-rss-mb: MB                 bound on the process's peak RSS (default: the --mem-limit in
 *                                     MB plus 40): memory the host spends outside the Lua cap.
 *   -- note: TEXT                     free text (what the script attacks, its source).
 *
 * Always checked, whatever the header says:
 *   - the process was not killed by a signal (a crash is always a failure) and did not hang (it
 *     runs in its own process group, killed whole after 3 x max-ms + 5 s);
 *   - its peak RSS is within the bound above;
 *   - exit 1 or 2: stderr is exactly one non-empty line with no control character (the host
 *     escapes the script's text); exit 0: stderr is empty;
 *   - a script that expects exit 1 or 2 names the error it expects (a stderr~ check);
 *   - the binary is position-independent (checked once);
 *   - stdout and stderr never show the canary env value or the canary file's contents;
 *   - the temp directory still holds exactly the script and the canary, both unchanged;
 *   - no file whose name contains "ACCRUE_PWNED" appeared there or in /tmp (the escape scripts
 *     try to create files with that marker in their names).
 *
 * `test_corpus [SUBSTRING]` (or CORPUS_ONLY=SUBSTRING) runs only the scripts whose name contains
 * SUBSTRING; CORPUS_VERBOSE=1 also prints each passing script with its wall time. ACCRUE_BIN names
 * the binary (default zig-out/bin/accrue).
 */
#include <dirent.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/base/file.h"
#include "tests/check.h"

#define CORPUS_DIR "tests/corpus"
#define MARKER "ACCRUE_PWNED"
#define CANARY_ENV_NAME "ACCRUE_CANARY"
#define CANARY_ENV_VALUE "canary-env-7f3a9c1e5b"
#define CANARY_FILE "canary.txt"
#define CANARY_FILE_TEXT "canary-file-4d2b8e6a0c: the sandbox must not read or change this\n"
#define DEFAULT_MAX_MS 3000
#define DEFAULT_MEM_LIMIT 16777216L
#define RSS_MARGIN_MB 40 /* the host's own memory besides the Lua heap: code, jemalloc, buffers */
#define PARALLEL 2
#define MAX_LIST 16 /* repeatable header keys */
#define MAX_ARGS 48

typedef struct expect {
    int exit_code;
    int has_exit;
    char *stderr_has[MAX_LIST];
    int n_stderr_has;
    char *stderr_not[MAX_LIST];
    int n_stderr_not;
    char *stdout_has[MAX_LIST];
    int n_stdout_has;
    char *stdout_not[MAX_LIST];
    int n_stdout_not;
    char *stdout_exact; /* NULL: not compared */
    long stdout_max;    /* -1: none */
    long max_ms;
    long max_rss_mb; /* -1: memory cap + RSS_MARGIN_MB */
    char *input; /* NULL: no --input */
    char *args[MAX_ARGS];
    int n_args;
    char header_error[256];
} expect_t;

typedef struct job {
    char name[256];   /* file name, e.g. escape_io.lua */
    char *source;     /* script text */
    size_t source_len;
    expect_t ex;
    char dir[64];     /* the sandbox's working directory */
    char outdir[64];  /* captured stdout/stderr */
    pid_t pid;
    double start_ms;
    long timeout_ms;
    int killed;
} job_t;

static char accrue_bin[4096];
static int marker_baseline;

/* ---- small helpers ---- */

static char *xstrdup(const char *s) {
    char *p = strdup(s);
    if (!p) {
        perror("strdup");
        exit(99);
    }
    return p;
}

/* Reads a whole file; returns malloc'd text (NUL-terminated, caller frees) or NULL. */
static char *read_file(const char *path, size_t *len) {
    char *text;
    size_t n;
    if (acc_read_file(path, (size_t)1 << 30, &text, &n, NULL) != ACC_OK) return NULL;
    if (len) *len = n;
    return text;
}

static int write_file(const char *path, const char *text, size_t len, mode_t mode) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return -1;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    close(fd);
    return chmod(path, mode);
}

/* Counts entries whose name contains MARKER in a directory. */
static int count_markers(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, MARKER)) n++;
    closedir(d);
    return n;
}

/* Does hay contain any of the '|'-separated alternatives in pat? */
static int contains_alt(const char *hay, const char *pat) {
    const char *p = pat;
    for (;;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        char alt[512];
        if (n >= sizeof alt) n = sizeof alt - 1;
        memcpy(alt, p, n);
        alt[n] = 0;
        if (strstr(hay, alt)) return 1;
        if (!bar) return 0;
        p = bar + 1;
    }
}

/* ---- header ---- */

static void add_to(char **list, int *n, const char *v, expect_t *ex) {
    if (*n >= MAX_LIST) {
        snprintf(ex->header_error, sizeof ex->header_error, "too many repeated header keys");
        return;
    }
    list[(*n)++] = xstrdup(v);
}

static void append_stdout_line(expect_t *ex, const char *line) {
    size_t old = ex->stdout_exact ? strlen(ex->stdout_exact) : 0;
    char *s = realloc(ex->stdout_exact, old + strlen(line) + 2);
    if (!s) exit(99);
    memcpy(s + old, line, strlen(line));
    s[old + strlen(line)] = '\n';
    s[old + strlen(line) + 1] = 0;
    ex->stdout_exact = s;
}

static void parse_args(expect_t *ex, char *v) {
    for (char *tok = strtok(v, " \t"); tok; tok = strtok(NULL, " \t")) {
        if (ex->n_args >= MAX_ARGS) {
            snprintf(ex->header_error, sizeof ex->header_error, "too many args");
            return;
        }
        ex->args[ex->n_args++] = xstrdup(tok);
    }
}

static void parse_header(const char *src, expect_t *ex) {
    memset(ex, 0, sizeof *ex);
    ex->stdout_max = -1;
    ex->max_ms = DEFAULT_MAX_MS;
    ex->max_rss_mb = -1;
    const char *p = src;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        if (n < 2 || p[0] != '-' || p[1] != '-') break;
        char line[1024];
        if (n >= sizeof line) n = sizeof line - 1;
        memcpy(line, p, n);
        line[n] = 0;
        if (n && line[n - 1] == '\r') line[--n] = 0;
        p = eol ? eol + 1 : p + n;
        if (strncmp(line, "-- ", 3) != 0) continue; /* "--" alone or "---": a plain comment */
        char *key = line + 3;
        char *colon = strstr(key, ": ");
        char *v;
        if (colon) {
            *colon = 0;
            v = colon + 2;
        } else if (n >= 4 && line[n - 1] == ':') { /* "-- stdout:" with an empty value */
            line[n - 1] = 0;
            v = line + n;
        } else {
            continue; /* ordinary comment text */
        }
        if (strchr(key, ' ')) continue; /* "-- some prose: ..." is not a key */
        if (strcmp(key, "expect") == 0) {
            char *s = strstr(v, "exit=");
            if (!s) {
                snprintf(ex->header_error, sizeof ex->header_error, "expect without exit=");
                continue;
            }
            ex->exit_code = atoi(s + 5);
            ex->has_exit = 1;
            char *t = strstr(v, "stderr~");
            if (t) add_to(ex->stderr_has, &ex->n_stderr_has, t + 7, ex);
        } else if (strcmp(key, "stderr~") == 0) {
            add_to(ex->stderr_has, &ex->n_stderr_has, v, ex);
        } else if (strcmp(key, "stderr!~") == 0) {
            add_to(ex->stderr_not, &ex->n_stderr_not, v, ex);
        } else if (strcmp(key, "stdout~") == 0) {
            add_to(ex->stdout_has, &ex->n_stdout_has, v, ex);
        } else if (strcmp(key, "stdout!~") == 0) {
            add_to(ex->stdout_not, &ex->n_stdout_not, v, ex);
        } else if (strcmp(key, "stdout") == 0) {
            append_stdout_line(ex, v);
        } else if (strcmp(key, "stdout-file") == 0) {
            char path[512];
            snprintf(path, sizeof path, "%s/%s", CORPUS_DIR, v);
            char *text = read_file(path, NULL);
            if (!text) {
                snprintf(ex->header_error, sizeof ex->header_error, "cannot read stdout-file %s", path);
                continue;
            }
            free(ex->stdout_exact);
            ex->stdout_exact = text;
        } else if (strcmp(key, "stdout-max") == 0) {
            ex->stdout_max = atol(v);
        } else if (strcmp(key, "max-rss-mb") == 0) {
            ex->max_rss_mb = atol(v);
        } else if (strcmp(key, "max-ms") == 0) {
            ex->max_ms = atol(v);
        } else if (strcmp(key, "input") == 0) {
            free(ex->input);
            ex->input = xstrdup(v);
        } else if (strcmp(key, "args") == 0) {
            parse_args(ex, v);
        } else if (strcmp(key, "note") == 0) {
        } else {
            snprintf(ex->header_error, sizeof ex->header_error, "unknown header key '%s'", key);
        }
    }
    if (!ex->has_exit && !ex->header_error[0])
        snprintf(ex->header_error, sizeof ex->header_error, "no '-- expect: exit=N' header");
    if (ex->has_exit && ex->exit_code != 0 && ex->n_stderr_has == 0 && !ex->header_error[0])
        snprintf(ex->header_error, sizeof ex->header_error,
                 "an expected failure must say which: stderr~TEXT on the expect line or a stderr~: line");
}

static void free_expect(expect_t *ex) {
    for (int i = 0; i < ex->n_stderr_has; i++) free(ex->stderr_has[i]);
    for (int i = 0; i < ex->n_stderr_not; i++) free(ex->stderr_not[i]);
    for (int i = 0; i < ex->n_stdout_has; i++) free(ex->stdout_has[i]);
    for (int i = 0; i < ex->n_stdout_not; i++) free(ex->stdout_not[i]);
    for (int i = 0; i < ex->n_args; i++) free(ex->args[i]);
    free(ex->stdout_exact);
    free(ex->input);
}

/* ---- running one script ---- */

static int header_has_flag(const expect_t *ex, const char *flag) {
    for (int i = 0; i < ex->n_args; i++)
        if (strcmp(ex->args[i], flag) == 0) return 1;
    return 0;
}

/* Starts the binary for a job; 0 ok, -1 with reason written into why. */
static int start_job(job_t *j, char *why, size_t why_len) {
    strcpy(j->dir, "/tmp/accrue-corpus-XXXXXX");
    strcpy(j->outdir, "/tmp/accrue-corpus-out-XXXXXX");
    if (!mkdtemp(j->dir) || !mkdtemp(j->outdir)) {
        snprintf(why, why_len, "mkdtemp: %s", strerror(errno));
        return -1;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/%s", j->dir, CANARY_FILE);
    if (write_file(path, CANARY_FILE_TEXT, strlen(CANARY_FILE_TEXT), 0644) != 0) {
        snprintf(why, why_len, "cannot write canary: %s", strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/%s", j->dir, j->name);
    if (write_file(path, j->source, j->source_len, 0444) != 0) {
        snprintf(why, why_len, "cannot copy script: %s", strerror(errno));
        return -1;
    }

    static const char *defaults[][2] = {
        {"--mem-limit", "16777216"}, /* DEFAULT_MEM_LIMIT */
        {"--instr-limit", "10000000"},
        {"--time-limit", "1000"},
        {"--output-limit", "65536"},
    };
    char *argv[9 + 2 * 4 + MAX_ARGS];
    int argc = 0;
    argv[argc++] = accrue_bin;
    argv[argc++] = "run";
    argv[argc++] = j->name;
    argv[argc++] = "--no-demo"; /* the corpus tries the sandbox: no demo registry to make in each run */
    if (j->ex.input) {
        argv[argc++] = "--input";
        argv[argc++] = j->ex.input;
    }
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        if (header_has_flag(&j->ex, defaults[i][0])) continue;
        argv[argc++] = (char *)defaults[i][0];
        argv[argc++] = (char *)defaults[i][1];
    }
    for (int i = 0; i < j->ex.n_args; i++) argv[argc++] = j->ex.args[i];
    argv[argc] = NULL;
    /* A sanitized binary runs several times slower: stretch its time limits to match. */
    static char scaled[4][32];
    for (int i = 0, k = 0; test_slow_tool() && i + 1 < argc && k < 4; i++)
        if (strcmp(argv[i], "--time-limit") == 0) {
            snprintf(scaled[k], sizeof scaled[k], "%ld", (long)test_scaled_ms((double)atol(argv[i + 1])));
            argv[i + 1] = scaled[k++];
        }

    char *envp[] = {CANARY_ENV_NAME "=" CANARY_ENV_VALUE, "PATH=/usr/bin:/bin", "LC_ALL=C", NULL};

    char out_path[512], err_path[512];
    snprintf(out_path, sizeof out_path, "%s/stdout", j->outdir);
    snprintf(err_path, sizeof err_path, "%s/stderr", j->outdir);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addchdir_np(&fa, j->dir);
    /* Its own process group, so a hard kill also takes any child it might have started. */
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    j->start_ms = test_now_ms();
    int rc = posix_spawn(&j->pid, accrue_bin, &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        snprintf(why, why_len, "posix_spawn %s: %s", accrue_bin, strerror(rc));
        return -1;
    }
    /* Generous: a hung binary is killed well after every limit should have fired. */
    j->ex.max_ms = (long)test_scaled_ms((double)j->ex.max_ms);
    j->timeout_ms = j->ex.max_ms * 3 + 5000;
    j->killed = 0;
    return 0;
}

typedef struct reasons {
    char text[2048];
    size_t len;
} reasons_t;

static void fail(reasons_t *r, const char *fmt, ...) {
    if (r->len + 4 >= sizeof r->text) return;
    if (r->len) r->len += (size_t)snprintf(r->text + r->len, sizeof r->text - r->len, "; ");
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->text + r->len, sizeof r->text - r->len, fmt, ap);
    va_end(ap);
    if (n > 0) r->len += (size_t)n;
    if (r->len >= sizeof r->text) r->len = sizeof r->text - 1;
}

/* A printable excerpt of at most 120 bytes of the first line of s (static buffer). */
static const char *first_line(const char *s) {
    static char buf[128];
    size_t n = 0;
    while (s[n] && s[n] != '\n' && n < 120) n++;
    memcpy(buf, s, n);
    buf[n] = 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)buf[i] < 32 || (unsigned char)buf[i] > 126) buf[i] = '?';
    return buf;
}

/* Checks that the sandbox's directory holds exactly the canary and the script, unchanged. */
static void check_directory(job_t *j, reasons_t *r) {
    DIR *d = opendir(j->dir);
    if (!d) {
        fail(r, "sandbox directory vanished");
        return;
    }
    struct dirent *e;
    int entries = 0;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        entries++;
        if (strcmp(e->d_name, CANARY_FILE) != 0 && strcmp(e->d_name, j->name) != 0)
            fail(r, "new file in the sandbox directory: %s", first_line(e->d_name));
    }
    closedir(d);
    if (entries != 2) fail(r, "sandbox directory has %d entries, want 2", entries);
    char path[512];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/%s", j->dir, CANARY_FILE);
    char *canary = read_file(path, &len);
    if (!canary || len != strlen(CANARY_FILE_TEXT) || memcmp(canary, CANARY_FILE_TEXT, len) != 0)
        fail(r, "canary file changed or missing");
    free(canary);
    snprintf(path, sizeof path, "%s/%s", j->dir, j->name);
    char *script = read_file(path, &len);
    if (!script || len != j->source_len || memcmp(script, j->source, len) != 0)
        fail(r, "script file changed or missing");
    free(script);
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & 07777) != 0444) fail(r, "script mode changed");
}

/* Called once the process is reaped: checks every expectation, counts the script. */
static void finish_job(job_t *j, int status, long elapsed_ms, long maxrss_kb) {
    reasons_t r = {{0}, 0};
    char path[512];
    size_t out_len = 0, err_len = 0;
    snprintf(path, sizeof path, "%s/stdout", j->outdir);
    char *out = read_file(path, &out_len);
    snprintf(path, sizeof path, "%s/stderr", j->outdir);
    char *err = read_file(path, &err_len);
    if (!out) out = xstrdup("");
    if (!err) err = xstrdup("");
    const expect_t *ex = &j->ex;

    if (j->killed) {
        fail(&r, "hung: killed after %ld ms", j->timeout_ms);
    } else if (WIFSIGNALED(status)) {
        fail(&r, "crashed: killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    } else if (WIFEXITED(status) && WEXITSTATUS(status) != ex->exit_code) {
        fail(&r, "exit %d, want %d", WEXITSTATUS(status), ex->exit_code);
    }
    if (elapsed_ms > ex->max_ms) fail(&r, "took %ld ms, bound %ld ms", elapsed_ms, ex->max_ms);
    long rss_bound = ex->max_rss_mb;
    if (rss_bound < 0) {
        long mem = DEFAULT_MEM_LIMIT;
        for (int i = 0; i + 1 < ex->n_args; i++)
            if (strcmp(ex->args[i], "--mem-limit") == 0) mem = atol(ex->args[i + 1]);
        rss_bound = mem / (1024 * 1024) + RSS_MARGIN_MB;
    }
    /* A sanitized build's shadow memory counts in its peak: it says nothing then. */
    if (!test_slow_tool() && maxrss_kb / 1024 > rss_bound)
        fail(&r, "peak RSS %ld MB, bound %ld MB (host memory outside the Lua cap?)", maxrss_kb / 1024, rss_bound);

    /* stderr's shape */
    if (ex->exit_code != 0) {
        const char *nl = memchr(err, '\n', err_len);
        if (err_len == 0)
            fail(&r, "stderr empty, want one line");
        else if (nl && (size_t)(nl - err) + 1 != err_len)
            fail(&r, "stderr has more than one line");
        else if (strlen(err) != err_len)
            fail(&r, "stderr has a NUL byte");
        for (size_t i = 0; i + 1 < err_len; i++)
            if ((unsigned char)err[i] < 0x20 || err[i] == 0x7F) {
                fail(&r, "stderr has a raw control character (0x%02X at byte %zu)", (unsigned char)err[i], i);
                break;
            }
    } else if (ex->exit_code == 0 && err_len != 0) {
        fail(&r, "stderr not empty");
    }
    for (int i = 0; i < ex->n_stderr_has; i++)
        if (!contains_alt(err, ex->stderr_has[i])) fail(&r, "stderr lacks \"%s\"", ex->stderr_has[i]);
    for (int i = 0; i < ex->n_stderr_not; i++)
        if (contains_alt(err, ex->stderr_not[i])) fail(&r, "stderr has \"%s\"", ex->stderr_not[i]);

    /* stdout */
    if (ex->stdout_exact && (out_len != strlen(ex->stdout_exact) || memcmp(out, ex->stdout_exact, out_len) != 0)) {
        /* show the first line that differs */
        const char *a = out, *b = ex->stdout_exact;
        int line = 1;
        for (;;) {
            const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
            size_t la = ea ? (size_t)(ea - a) : strlen(a), lb = eb ? (size_t)(eb - b) : strlen(b);
            if (la != lb || memcmp(a, b, la) != 0 || !ea || !eb) break;
            a = ea + 1;
            b = eb + 1;
            line++;
        }
        char want[128];
        snprintf(want, sizeof want, "%s", first_line(b));
        fail(&r, "stdout differs (%zu bytes, want %zu; line %d is \"%s\", want \"%s\")", out_len,
             strlen(ex->stdout_exact), line, first_line(a), want);
    }
    for (int i = 0; i < ex->n_stdout_has; i++)
        if (!contains_alt(out, ex->stdout_has[i])) fail(&r, "stdout lacks \"%s\"", ex->stdout_has[i]);
    for (int i = 0; i < ex->n_stdout_not; i++)
        if (contains_alt(out, ex->stdout_not[i])) fail(&r, "stdout has \"%s\"", ex->stdout_not[i]);
    if (ex->stdout_max >= 0 && (long)out_len > ex->stdout_max)
        fail(&r, "stdout is %zu bytes, bound %ld", out_len, ex->stdout_max);

    /* nothing outside the sandbox leaked or changed */
    if (strstr(out, CANARY_ENV_VALUE) || strstr(err, CANARY_ENV_VALUE))
        fail(&r, "the canary environment variable leaked into the output");
    if (strstr(out, "canary-file-4d2b8e6a0c") || strstr(err, "canary-file-4d2b8e6a0c"))
        fail(&r, "the canary file's contents leaked into the output");
    check_directory(j, &r);
    int markers = count_markers("/tmp");
    if (markers > marker_baseline) {
        fail(&r, "a file named *%s* appeared in /tmp", MARKER);
        marker_baseline = markers; /* report it once */
    }

    check_current = j->name;
    check_current_failed = 0;
    if (r.len) {
        fprintf(stderr, "FAIL %s: %s | stderr: \"%s\"\n", j->name, r.text, first_line(err));
        check_failed++;
    } else {
        check_passed++;
        if (getenv("CORPUS_VERBOSE") && *getenv("CORPUS_VERBOSE"))
            fprintf(stderr, "ok %s (%ld ms, %ld MB)\n", j->name, elapsed_ms, maxrss_kb / 1024);
    }
    free(out);
    free(err);
    test_remove_dir(j->dir);
    test_remove_dir(j->outdir);
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
    const char *only = argc > 1 ? argv[1] : getenv("CORPUS_ONLY");
    const char *bin = getenv("ACCRUE_BIN");
    if (!bin || !*bin) bin = "zig-out/bin/accrue";
    if (!realpath(bin, accrue_bin)) {
        fprintf(stderr, "test_corpus: accrue binary %s: %s\n", bin, strerror(errno));
        check_failed++;
        return check_finish("corpus");
    }
    marker_baseline = count_markers("/tmp");
    /* Position-independent, so a script's tostring(function) shows addresses that change from run
     * to run (issue 15, "also seen"): the ELF type is ET_DYN. */
    unsigned char ehdr[18] = {0};
    FILE *bf = fopen(accrue_bin, "rb");
    size_t got = bf ? fread(ehdr, 1, sizeof ehdr, bf) : 0;
    if (bf) fclose(bf);
    CHECK_MSG(got == sizeof ehdr && memcmp(ehdr, "\177ELF", 4) == 0 && (ehdr[16] | ehdr[17] << 8) == 3,
              "%s is not a position-independent executable (ELF type %d)", accrue_bin, ehdr[16] | ehdr[17] << 8);

    DIR *d = opendir(CORPUS_DIR);
    if (!d) {
        fprintf(stderr, "test_corpus: cannot open %s (run from the repo root)\n", CORPUS_DIR);
        check_failed++;
        return check_finish("corpus");
    }
    char **names = NULL;
    size_t n_names = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".lua") != 0) continue;
        if (only && *only && !strstr(e->d_name, only)) continue;
        names = realloc(names, (n_names + 1) * sizeof *names);
        names[n_names++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (n_names) qsort(names, n_names, sizeof *names, by_name);
    if (n_names == 0) {
        fprintf(stderr, "test_corpus: no scripts in %s\n", CORPUS_DIR);
        check_failed++;
        return check_finish("corpus");
    }

    job_t *slots[PARALLEL] = {0};
    size_t next = 0;
    int running = 0;
    while (next < n_names || running > 0) {
        /* fill free slots */
        for (int s = 0; s < PARALLEL && next < n_names; s++) {
            if (slots[s]) continue;
            job_t *j = calloc(1, sizeof *j);
            snprintf(j->name, sizeof j->name, "%s", names[next]);
            char path[512];
            snprintf(path, sizeof path, "%s/%s", CORPUS_DIR, names[next]);
            next++;
            j->source = read_file(path, &j->source_len);
            char why[512] = "";
            if (!j->source) snprintf(why, sizeof why, "cannot read %s", path);
            else parse_header(j->source, &j->ex);
            if (!why[0] && j->ex.header_error[0]) snprintf(why, sizeof why, "bad header: %s", j->ex.header_error);
            if (!why[0]) start_job(j, why, sizeof why);
            if (why[0]) {
                fprintf(stderr, "FAIL %s: %s\n", j->name, why);
                check_failed++;
                if (j->dir[0]) test_remove_dir(j->dir);
                if (j->outdir[0]) test_remove_dir(j->outdir);
                free_expect(&j->ex);
                free(j->source);
                free(j);
                s--; /* try this slot again with the next script */
                continue;
            }
            slots[s] = j;
            running++;
        }
        /* reap or kill */
        int reaped = 0;
        for (int s = 0; s < PARALLEL; s++) {
            job_t *j = slots[s];
            if (!j) continue;
            int status = 0;
            struct rusage ru;
            memset(&ru, 0, sizeof ru);
            pid_t w = wait4(j->pid, &status, WNOHANG, &ru);
            long elapsed = (long)(test_now_ms() - j->start_ms);
            if (w == j->pid) {
                finish_job(j, status, elapsed, ru.ru_maxrss);
            } else if (w < 0) {
                fprintf(stderr, "FAIL %s: waitpid: %s\n", j->name, strerror(errno));
                check_failed++;
                test_remove_dir(j->dir);
                test_remove_dir(j->outdir);
            } else {
                if (elapsed > j->timeout_ms && !j->killed) {
                    kill(-j->pid, SIGKILL); /* the process group we spawned, by its id */
                    j->killed = 1;
                }
                continue;
            }
            free_expect(&j->ex);
            free(j->source);
            free(j);
            slots[s] = NULL;
            running--;
            reaped = 1;
        }
        if (!reaped && running > 0) {
            struct timespec ts = {0, 2 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    for (size_t i = 0; i < n_names; i++) free(names[i]);
    free(names);
    return check_finish("corpus");
}
