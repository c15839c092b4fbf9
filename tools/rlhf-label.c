/*
 * tools/rlhf-label.c — the terminal labelling tool for people, and its statistics.
 *
 *   rlhf-label [--annotator NAME] [--mode pair|thumbs|rank] [--layout auto|side|stacked]
 *              [--revisit-skips] --out PREFS.jsonl CANDIDATES.jsonl
 *   rlhf-label stats PREFS.jsonl [more.jsonl ...]
 *   rlhf-label export [--thumbs | --rankings] PREFS.jsonl [more.jsonl ...] > train.jsonl
 *   rlhf-label serve ...   the labelling web page (common/label_serve.c)
 *
 * Labelling shows a prompt and two responses side by side (or stacked when the terminal
 * is narrow, or by flag; one response in thumbs mode) and takes one key per judgment.
 * Every judgment is appended to PREFS.jsonl with write(2) + fsync(2) before the next
 * item is shown, so a killed run loses nothing; rank mode shows K responses numbered 1..K and
 * the annotator types their numbers best first ('=' ties the next with the previous,
 * Backspace takes the last back, Enter saves and places the one left over last); a restarted run skips what this
 * annotator has already judged. Undo appends an undo record (the log is never
 * rewritten). `stats` prints per-annotator counts and agreement (percent, Cohen's and
 * Fleiss' kappa; Kendall's tau-b for rankings); `export` writes the live judgments as a
 * training file (rankings as pairs weighted 1/C(K,2), or with --rankings as the ranking
 * file `learner rm` trains on). The formats and
 * rules live in common/label.h; the guide is docs/labelling.md.
 *
 * The terminal is driven with plain termios and ANSI escapes (works over ssh and in tmux;
 * no ncurses): raw-ish mode (no echo, no line buffering; ISIG kept so ^C/^Z/^\ arrive as
 * signals), the alternate screen, and one full redraw per key. The terminal is restored
 * on every exit path: normal quit, errors (atexit), SIGINT/SIGTERM/SIGHUP/SIGQUIT
 * (restore, then die of the same signal), and ^Z (restored while stopped, raw again on
 * SIGCONT). kill -9 cannot be caught: `reset` or `stty sane` repairs the terminal then.
 *
 * What it does not do: label automatically (build/rlhf-judge does), randomise which
 * response is shown left, or let two processes write one output file at once (a lock
 * refuses the second).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "label.h"
#include "label_serve.h"
#include "util.h"

#define MIN_COLS 40
#define MIN_ROWS 12
#define SIDE_AUTO_COLS 100 /* auto layout: side by side from this width */
#define SIDE_MIN_COLS 60   /* --layout side: below this, stacked anyway */
#define ANNOTATOR_MAX 64

static const char *const NOT_A_TTY =
    "rlhf-label needs an interactive terminal; to label automatically use build/rlhf-judge";

static void usage(FILE *f) {
    fprintf(f,
            "usage: rlhf-label [--annotator NAME] [--mode pair|thumbs|rank] "
            "[--layout auto|side|stacked]\n"
            "                  [--revisit-skips] --out PREFS.jsonl CANDIDATES.jsonl\n"
            "       rlhf-label stats PREFS.jsonl [more.jsonl ...]\n"
            "       rlhf-label export [--thumbs | --rankings] PREFS.jsonl [more.jsonl ...] > "
            "train.jsonl\n"
            "       rlhf-label serve ... (the web page; rlhf-label serve --help)\n"
            "\n"
            "CANDIDATES lines: pair mode {\"prompt\",\"a\",\"b\"[,\"category\",\"id\"]},\n"
            "                  thumbs mode {\"prompt\",\"response\"[,\"category\",\"id\"]},\n"
            "                  rank mode {\"prompt\",\"responses\":[3 to 9][,\"category\",\"id\"]}.\n"
            "Keys, pair mode:   a/1 A better  b/2 B better  t tie  s skip  u undo  q quit  "
            "? help\n"
            "Keys, thumbs mode: y/+ good  n/- bad  s skip  z undo  q quit  ? help\n"
            "Keys, rank mode:   1-9 next best  = tie with previous  Backspace take back  "
            "Enter save\n"
            "                   s skip  z/u undo  q quit  ? help\n"
            "Scrolling: j/k or arrows, space/PgDn, PgUp, g top.\n"
            "--annotator defaults to $RLHF_ANNOTATOR, then $USER. See docs/labelling.md.\n"
            "Exit status: 0 done (labelling: quit or every item judged); 1 an error (bad\n"
            "input file, no terminal, a write failed); 2 a usage error.\n");
}

// ----------------------------------------------------------------------------
// terminal state and signals

static struct termios g_saved;
static volatile sig_atomic_t g_raw = 0;
static volatile sig_atomic_t g_winch = 0;

static const char SCREEN_ENTER[] = "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J";
static const char SCREEN_LEAVE[] = "\x1b[0m\x1b[?25h\x1b[?1049l";

/* async-signal-safe: write(2) and tcsetattr(3) only */
static void term_restore(void) {
    if (!g_raw) return;
    g_raw = 0;
    ssize_t w = write(STDOUT_FILENO, SCREEN_LEAVE, sizeof(SCREEN_LEAVE) - 1);
    (void)w;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &g_saved);
}

/* async-signal-safe as well (used again after ^Z) */
static int term_enter_raw(void) {
    struct termios t = g_saved;
    t.c_lflag &= ~(tcflag_t)(ICANON | ECHO | IEXTEN);
    t.c_iflag &= ~(tcflag_t)(IXON | ICRNL | INPCK | ISTRIP);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) != 0) return -1;
    g_raw = 1;
    ssize_t w = write(STDOUT_FILENO, SCREEN_ENTER, sizeof(SCREEN_ENTER) - 1);
    (void)w;
    return 0;
}

static void on_fatal_signal(int sig) {
    term_restore();
    signal(sig, SIG_DFL);
    raise(sig); /* die of the same signal, so the shell sees what happened */
}

static void on_tstp(int sig) {
    (void)sig;
    int was_raw = g_raw;
    term_restore();
    kill(getpid(), SIGSTOP); /* stopped here until SIGCONT */
    if (was_raw) term_enter_raw();
    g_winch = 1; /* redraw */
}

static void on_winch(int sig) {
    (void)sig;
    g_winch = 1;
}

static void install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_fatal_signal;
    sa.sa_flags = SA_RESETHAND;
    int fatal_sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    for (size_t i = 0; i < sizeof(fatal_sigs) / sizeof(fatal_sigs[0]); i++)
        sigaction(fatal_sigs[i], &sa, NULL);
    sa.sa_flags = 0; /* no SA_RESTART: read() returns EINTR and we redraw */
    sa.sa_handler = on_winch;
    sigaction(SIGWINCH, &sa, NULL);
    sa.sa_handler = on_tstp;
    sigaction(SIGTSTP, &sa, NULL);
}

static void term_size(int *cols, int *rows) {
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
        *cols = ws.ws_col;
        *rows = ws.ws_row;
    } else {
        *cols = 80;
        *rows = 24;
    }
}

// ----------------------------------------------------------------------------
// an output buffer, so each screen is one write(2)

typedef struct {
    char *s;
    size_t n, cap;
} Buf;

static void buf_add(Buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void buf_str(Buf *b, const char *s) { buf_add(b, s, strlen(s)); }

static void buf_fmt(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_fmt(Buf *b, const char *fmt, ...) {
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) return;
    buf_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void buf_spaces(Buf *b, int n) {
    for (int i = 0; i < n; i++) buf_add(b, " ", 1);
}

/* Text cut to at most `width` columns, sanitised (no control characters); returns the
 * columns used. */
static int buf_fit(Buf *b, const char *text, int width) {
    if (width <= 0) return 0;
    LabelLines l = {0};
    label_wrap(&l, text, width);
    int w = 0;
    if (l.n > 0) {
        buf_str(b, l.line[0]);
        w = l.width[0];
    }
    label_lines_free(&l);
    return w;
}

static void write_all(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return;
        }
        s += w;
        n -= (size_t)w;
    }
}

// ----------------------------------------------------------------------------
// the labelling session

typedef enum { LAYOUT_AUTO, LAYOUT_SIDE, LAYOUT_STACKED } Layout;

typedef struct {
    LabelItems items;
    LabelLog log;
    LabelMode mode;
    Layout layout;
    const char *annotator;
    const char *cand_path;
    const char *out_path;
    int out_fd;
    int revisit_skips;
    unsigned char *skipped_now; /* skipped in this session (never re-shown in it) */
    int cur;                    /* item on screen; -1 when everything is judged */
    int forced;                 /* item to show next (after undo), or -1 */
    int scroll;
    int help;
    long session_judged, session_undone;
    long n_done;
    long counts[LABEL_COUNT];
    char status[512];
    /* rank mode: the order typed so far, best first; tie[p]: order[p] ties order[p-1] */
    int order[LABEL_RANK_ITEM_MAX], tie[LABEL_RANK_ITEM_MAX], n_order, pending_tie;
} App;

static int item_done(const App *app, int i) {
    if (app->skipped_now[i]) return 1;
    int l = label_log_live(&app->log, app->annotator, app->items.items[i].id);
    if (l < 0) return 0;
    if (app->revisit_skips && app->log.j[l].label == LABEL_SKIP) return 0;
    return 1;
}

/* progress: items of this file with a live judgment by this annotator, per label */
static void app_count(App *app) {
    memset(app->counts, 0, sizeof(app->counts));
    app->n_done = 0;
    for (int i = 0; i < app->items.n; i++) {
        int l = label_log_live(&app->log, app->annotator, app->items.items[i].id);
        if (l >= 0) app->counts[app->log.j[l].label]++;
        if (item_done(app, i)) app->n_done++;
    }
}

static void app_next(App *app) {
    app->scroll = 0;
    if (app->forced >= 0) {
        app->cur = app->forced;
        app->forced = -1;
        return;
    }
    app->cur = -1;
    for (int i = 0; i < app->items.n; i++)
        if (!item_done(app, i)) {
            app->cur = i;
            return;
        }
}

/* Record one judgment: append + fsync, then apply the same line in memory. A failed
 * write is fatal for the session (the caller restores the terminal and exits). */
static int app_judge(App *app, LabelKind k, char *err) {
    char t[32];
    label_time_iso8601(t, time(NULL));
    const LabelItem *it = &app->items.items[app->cur];
    int ranks[LABEL_RANK_ITEM_MAX];
    for (int p = 0; k == LABEL_RANK && p < app->n_order; p++)
        ranks[app->order[p]] = p > 0 && app->tie[p] ? ranks[app->order[p - 1]] : p + 1;
    char *line = k == LABEL_RANK ? label_record_rank(it, ranks, app->annotator, t)
                                 : label_record_judgment(it, app->mode, k, app->annotator, t);
    if (label_append_line(app->out_fd, line, app->out_path, err)) {
        free(line);
        return -1;
    }
    char why[ERRBUF_LEN];
    int rc = label_log_apply(&app->log, line, strlen(line) - 1, 0, 0, why);
    free(line);
    if (rc) fatal("internal error: the record just written does not read back: %s", why);
    if (k == LABEL_SKIP) app->skipped_now[app->cur] = 1;
    app->n_order = app->pending_tie = 0;
    app->session_judged++;
    snprintf(app->status, sizeof(app->status), "saved: %s for item %d (id %s)",
             label_kind_name(k), app->cur + 1, it->id);
    app_count(app);
    app_next(app);
    return 0;
}

/* Undo the last live judgment of this annotator on an item of this file (this session's
 * or an earlier run's), and show that item again. */
static int app_undo(App *app, char *err) {
    int found = -1, ix = -1;
    for (int i = app->log.n - 1; i >= 0 && found < 0; i--) {
        const LabelJudgment *j = &app->log.j[i];
        if (j->undone || strcmp(j->annotator, app->annotator) != 0) continue;
        if (!label_log_is_live(&app->log, i)) continue;
        ix = label_items_find(&app->items, j->id);
        if (ix >= 0) found = i;
    }
    if (found < 0) {
        snprintf(app->status, sizeof(app->status), "nothing to undo");
        return 0;
    }
    char t[32];
    label_time_iso8601(t, time(NULL));
    LabelKind was = app->log.j[found].label;
    char *line = label_record_undo(app->log.j[found].id, app->annotator, t);
    if (label_append_line(app->out_fd, line, app->out_path, err)) {
        free(line);
        return -1;
    }
    char why[ERRBUF_LEN];
    int rc = label_log_apply(&app->log, line, strlen(line) - 1, 0, 0, why);
    free(line);
    if (rc) fatal("internal error: the undo record just written does not read back: %s", why);
    app->skipped_now[ix] = 0;
    app->n_order = app->pending_tie = 0;
    app->session_undone++;
    snprintf(app->status, sizeof(app->status), "undone: %s for item %d; judge it again",
             label_kind_name(was), ix + 1);
    app->forced = ix;
    app_count(app);
    app_next(app);
    return 0;
}

// ----------------------------------------------------------------------------
// drawing

typedef struct {
    char **s;
    int n, cap;
} Rows;

static void rows_push(Rows *r, Buf *b) {
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 64;
        r->s = xrealloc(r->s, (size_t)r->cap * sizeof(char *));
    }
    r->s[r->n++] = b->s ? b->s : xstrdup("");
    memset(b, 0, sizeof(*b));
}

static void rows_free(Rows *r) {
    for (int i = 0; i < r->n; i++) free(r->s[i]);
    free(r->s);
}

static void rows_title(Rows *r, const char *title) {
    Buf b = {0};
    buf_fmt(&b, "\x1b[1m%s\x1b[0m", title);
    rows_push(r, &b);
}

static void rows_text(Rows *r, const char *text, int width) {
    LabelLines l = {0};
    label_wrap(&l, text, width);
    for (int i = 0; i < l.n; i++) {
        Buf b = {0};
        buf_str(&b, l.line[i]);
        rows_push(r, &b);
    }
    label_lines_free(&l);
}

static void rows_blank(Rows *r) {
    Buf b = {0};
    buf_str(&b, "");
    rows_push(r, &b);
}

static int use_side(const App *app, int cols) {
    if (app->mode == LABEL_MODE_THUMBS) return 0;
    if (app->layout == LAYOUT_SIDE) return cols >= SIDE_MIN_COLS;
    if (app->layout == LAYOUT_STACKED) return 0;
    return cols >= SIDE_AUTO_COLS;
}

static void body_help(const App *app, Rows *r, int w) {
    rows_title(r, "Keys");
    if (app->mode == LABEL_MODE_PAIR) {
        rows_text(r, "  a or 1   response A is better", w);
        rows_text(r, "  b or 2   response B is better", w);
        rows_text(r, "  t        tie: both equally good or bad (recorded, not a training pair)", w);
        rows_text(r, "  s        skip: no opinion (recorded, not shown again)", w);
        rows_text(r, "  u or z   undo the last judgment and show that item again", w);
    } else if (app->mode == LABEL_MODE_RANK) {
        rows_text(r, "  1-9      the next best response (type them best first)", w);
        rows_text(r, "  =        the next response ties with the one before it", w);
        rows_text(r, "  Bksp     take the last one back", w);
        rows_text(r, "  Enter    save the ranking (the one response left is placed last)", w);
        rows_text(r, "  s        skip: no opinion (recorded, not shown again)", w);
        rows_text(r, "  u or z   undo the last saved ranking and show that item again", w);
    } else {
        rows_text(r, "  y or +   the response is good (thumbs up)", w);
        rows_text(r, "  n or -   the response is bad (thumbs down)", w);
        rows_text(r, "  s        skip: no opinion (recorded, not shown again)", w);
        rows_text(r, "  z        undo the last judgment and show that item again", w);
    }
    rows_text(r, "  j k      scroll one line (or the arrow keys)", w);
    rows_text(r, "  space    page down (or PgDn); PgUp pages up; g goes to the top", w);
    rows_text(r, "  q        quit (every judgment is already saved)", w);
    rows_text(r, "  ?        this help; any key closes it", w);
    rows_blank(r);
    rows_text(r, "Every judgment is written to the output file and synced to disk at once. "
                 "Run the same command again to continue where you stopped.",
              w);
}

/* The place already given to response i in the order typed so far, or 0. */
static int rank_place(const App *app, int i) {
    int place = 0;
    for (int p = 0; p < app->n_order; p++) {
        place = p > 0 && app->tie[p] ? place : p + 1;
        if (app->order[p] == i) return place;
    }
    return 0;
}

static void body_rank(const App *app, const LabelItem *it, Rows *r, int w) {
    for (int i = 0; i < it->n_resp; i++) {
        char title[64];
        int place = rank_place(app, i);
        if (place)
            snprintf(title, sizeof(title), "[%d]  place %d", i + 1, place);
        else
            snprintf(title, sizeof(title), "[%d]", i + 1);
        rows_title(r, title);
        rows_text(r, it->resp[i], w);
        if (i + 1 < it->n_resp) rows_blank(r);
    }
}

static void body_item(const App *app, Rows *r, int cols) {
    const LabelItem *it = &app->items.items[app->cur];
    int w = cols - 1;
    rows_title(r, "Prompt");
    rows_text(r, it->prompt, w);
    rows_blank(r);
    if (app->mode == LABEL_MODE_RANK) {
        body_rank(app, it, r, w);
        return;
    }
    if (app->mode == LABEL_MODE_THUMBS) {
        rows_title(r, "[Response]");
        rows_text(r, it->a, w);
        return;
    }
    if (!use_side(app, cols)) {
        rows_title(r, "[A]");
        rows_text(r, it->a, w);
        rows_blank(r);
        rows_title(r, "[B]");
        rows_text(r, it->b, w);
        return;
    }
    int colw = (w - 3) / 2;
    LabelLines la = {0}, lb = {0};
    label_wrap(&la, it->a, colw);
    label_wrap(&lb, it->b, colw);
    Buf b = {0};
    buf_str(&b, "\x1b[1m[A]\x1b[0m");
    buf_spaces(&b, colw - 3);
    buf_str(&b, " | \x1b[1m[B]\x1b[0m");
    rows_push(r, &b);
    int n = la.n > lb.n ? la.n : lb.n;
    for (int i = 0; i < n; i++) {
        Buf x = {0};
        if (i < la.n) buf_str(&x, la.line[i]);
        buf_spaces(&x, colw - (i < la.n ? la.width[i] : 0));
        buf_str(&x, " | ");
        if (i < lb.n) buf_str(&x, lb.line[i]);
        rows_push(r, &x);
    }
    label_lines_free(&la);
    label_lines_free(&lb);
}

static void body_done(const App *app, Rows *r, int w) {
    char msg[512];
    rows_title(r, "All done");
    snprintf(msg, sizeof(msg), "Every item of %s has a judgment by %s (%d items).",
             app->cand_path, app->annotator, app->items.n);
    rows_text(r, msg, w);
    rows_blank(r);
    rows_text(r, app->mode != LABEL_MODE_THUMBS ? "u undoes the last judgment; q quits."
                                                : "z undoes the last judgment; q quits.",
              w);
}

/* " order: 3 > 1 = 4 > _" and what the next key does */
static void rank_order_text(const App *app, int k, char *out, size_t cap) {
    size_t l = (size_t)snprintf(out, cap, " order:");
    for (int p = 0; p < app->n_order && l < cap; p++)
        l += (size_t)snprintf(out + l, cap - l, "%s%d", p == 0 ? " " : app->tie[p] ? " = " : " > ",
                              app->order[p] + 1);
    if (l >= cap) return;
    if (app->n_order < k)
        snprintf(out + l, cap - l, "%s_   (type the %s best)",
                 app->n_order == 0 ? " " : app->pending_tie ? " = " : " > ",
                 app->n_order == 0 ? "first" : "next");
    else
        snprintf(out + l, cap - l, "   Enter saves, Backspace edits");
}

static void app_draw(App *app) {
    int cols, rows;
    term_size(&cols, &rows);
    Buf out = {0};
    buf_str(&out, "\x1b[H");
    if (cols < MIN_COLS || rows < MIN_ROWS) {
        buf_str(&out, "\x1b[2J\x1b[H");
        char msg[200];
        snprintf(msg, sizeof(msg), "terminal is %dx%d; rlhf-label needs at least %dx%d "
                                   "(columns x rows): enlarge it (q quits)",
                 cols, rows, MIN_COLS, MIN_ROWS);
        LabelLines l = {0};
        label_wrap(&l, msg, cols > 1 ? cols - 1 : 1);
        for (int i = 0; i < l.n && i < rows; i++) buf_fmt(&out, "\x1b[%d;1H%s", i + 1, l.line[i]);
        label_lines_free(&l);
        write_all(STDOUT_FILENO, out.s, out.n);
        free(out.s);
        return;
    }
    int w = cols - 1;
    Rows body = {0};
    if (app->help)
        body_help(app, &body, w);
    else if (app->cur < 0)
        body_done(app, &body, w);
    else
        body_item(app, &body, cols);
    int body_rows = rows - 4;
    int max_scroll = body.n > body_rows ? body.n - body_rows : 0;
    if (app->scroll > max_scroll) app->scroll = max_scroll;
    if (app->scroll < 0) app->scroll = 0;

    /* row 1: what is on screen */
    char head[1024];
    const LabelItem *it = app->cur >= 0 ? &app->items.items[app->cur] : NULL;
    if (it)
        snprintf(head, sizeof(head), " rlhf-label  item %d of %d  annotator %s  id %s%s%s",
                 app->cur + 1, app->items.n, app->annotator, it->id,
                 it->category ? "  category " : "", it->category ? it->category : "");
    else
        snprintf(head, sizeof(head), " rlhf-label  all %d items judged  annotator %s",
                 app->items.n, app->annotator);
    buf_str(&out, "\x1b[1;1H\x1b[7m");
    buf_spaces(&out, w - buf_fit(&out, head, w));
    buf_str(&out, "\x1b[0m\x1b[K");

    /* row 2: progress */
    char prog[512];
    if (app->mode == LABEL_MODE_PAIR)
        snprintf(prog, sizeof(prog), " judged %ld/%d   A %ld  B %ld  tie %ld  skip %ld   "
                                     "this session %ld (undone %ld)",
                 app->n_done, app->items.n, app->counts[LABEL_A], app->counts[LABEL_B],
                 app->counts[LABEL_TIE], app->counts[LABEL_SKIP], app->session_judged,
                 app->session_undone);
    else if (app->mode == LABEL_MODE_RANK)
        snprintf(prog, sizeof(prog), " judged %ld/%d   ranked %ld  skip %ld   "
                                     "this session %ld (undone %ld)",
                 app->n_done, app->items.n, app->counts[LABEL_RANK], app->counts[LABEL_SKIP],
                 app->session_judged, app->session_undone);
    else
        snprintf(prog, sizeof(prog), " judged %ld/%d   up %ld  down %ld  skip %ld   "
                                     "this session %ld (undone %ld)",
                 app->n_done, app->items.n, app->counts[LABEL_UP], app->counts[LABEL_DOWN],
                 app->counts[LABEL_SKIP], app->session_judged, app->session_undone);
    buf_str(&out, "\x1b[2;1H");
    buf_fit(&out, prog, w);
    buf_str(&out, "\x1b[K");

    for (int i = 0; i < body_rows; i++) {
        buf_fmt(&out, "\x1b[%d;1H", 3 + i);
        if (app->scroll + i < body.n) buf_str(&out, body.s[app->scroll + i]);
        buf_str(&out, "\x1b[0m\x1b[K");
    }

    /* status and keys */
    char st[600];
    if (app->status[0])
        snprintf(st, sizeof(st), " %s", app->status);
    else if (max_scroll > 0)
        snprintf(st, sizeof(st), " lines %d-%d of %d: j/k or arrows scroll, space/PgDn "
                                 "PgUp page",
                 app->scroll + 1, app->scroll + body_rows, body.n);
    else if (app->mode == LABEL_MODE_RANK && it)
        rank_order_text(app, it->n_resp, st, sizeof(st));
    else
        st[0] = 0;
    if (app->status[0] && max_scroll > 0) {
        size_t l = strlen(st);
        snprintf(st + l, sizeof(st) - l, "   (more: j/k scroll)");
    }
    buf_fmt(&out, "\x1b[%d;1H", rows - 1);
    buf_fit(&out, st, w);
    buf_str(&out, "\x1b[K");
    const char *keys =
        app->help ? " any key closes the help"
        : app->mode == LABEL_MODE_PAIR
            ? " a/1 A better  b/2 B better  t tie  s skip  u undo  q quit  ? help  j/k scroll"
        : app->mode == LABEL_MODE_RANK
            ? " 1-9 best first  = tie  Bksp back  Enter save  s skip  u undo  q quit  ? help"
            : " y/+ good  n/- bad  s skip  z undo  q quit  ? help  j/k scroll";
    buf_fmt(&out, "\x1b[%d;1H\x1b[2m", rows);
    buf_fit(&out, keys, w);
    buf_str(&out, "\x1b[0m\x1b[K");
    write_all(STDOUT_FILENO, out.s, out.n);
    free(out.s);
    rows_free(&body);
}

// ----------------------------------------------------------------------------
// keys

enum {
    KEY_NONE = -1,
    KEY_EOF = -2,
    KEY_UP = 1000,
    KEY_DOWN,
    KEY_PGUP,
    KEY_PGDN,
    KEY_HOME,
};

/* One key: a byte, or an escape sequence for arrows and paging. KEY_NONE when a signal
 * interrupted the wait (resize), KEY_EOF when the terminal is gone. */
static int read_key(void) {
    unsigned char c;
    ssize_t r = read(STDIN_FILENO, &c, 1);
    if (r == 0) return KEY_EOF;
    if (r < 0) return errno == EINTR || errno == EAGAIN ? KEY_NONE : KEY_EOF;
    if (c != 0x1b) return c;
    unsigned char seq[8];
    int n = 0;
    struct pollfd p = {STDIN_FILENO, POLLIN, 0};
    while (n < (int)sizeof(seq) && poll(&p, 1, 40) > 0) {
        if (read(STDIN_FILENO, &seq[n], 1) != 1) break;
        n++;
        unsigned char last = seq[n - 1];
        if (n >= 2 && ((last >= 'A' && last <= 'Z') || last == '~')) break;
    }
    if (n >= 2 && (seq[0] == '[' || seq[0] == 'O')) {
        switch (seq[1]) {
        case 'A': return KEY_UP;
        case 'B': return KEY_DOWN;
        case 'H': return KEY_HOME;
        case '5': return KEY_PGUP;
        case '6': return KEY_PGDN;
        default: break;
        }
    }
    return KEY_NONE; /* a lone ESC or a sequence we do not use */
}

typedef enum {
    ACT_NONE,
    ACT_JUDGE,
    ACT_UNDO,
    ACT_QUIT,
    ACT_HELP,
    ACT_SCROLL,
    ACT_UNKNOWN,
} Action;

static Action key_action(LabelMode mode, int c, LabelKind *k, int *scroll_by) {
    *scroll_by = 0;
    switch (c) {
    case 'q': case 'Q': case 4: return ACT_QUIT;
    case '?': case 'h': return ACT_HELP;
    case 's': case 'S': *k = LABEL_SKIP; return ACT_JUDGE;
    case 'j': case KEY_DOWN: *scroll_by = 1; return ACT_SCROLL;
    case 'k': case KEY_UP: *scroll_by = -1; return ACT_SCROLL;
    case ' ': case KEY_PGDN: *scroll_by = 1000000; return ACT_SCROLL; /* scaled by the caller */
    case KEY_PGUP: *scroll_by = -1000000; return ACT_SCROLL;
    case 'g': case KEY_HOME: *scroll_by = -2000000; return ACT_SCROLL;
    case 'z': case 'Z': return ACT_UNDO;
    default: break;
    }
    if (mode == LABEL_MODE_RANK) return c == 'u' || c == 'U' ? ACT_UNDO : ACT_UNKNOWN;
    if (mode == LABEL_MODE_PAIR) {
        switch (c) {
        case 'a': case 'A': case '1': *k = LABEL_A; return ACT_JUDGE;
        case 'b': case 'B': case '2': *k = LABEL_B; return ACT_JUDGE;
        case 't': case 'T': *k = LABEL_TIE; return ACT_JUDGE;
        case 'u': case 'U': return ACT_UNDO;
        default: return ACT_UNKNOWN;
        }
    }
    switch (c) {
    case 'y': case 'Y': case '+': *k = LABEL_UP; return ACT_JUDGE;
    case 'n': case 'N': case '-': *k = LABEL_DOWN; return ACT_JUDGE;
    default: return ACT_UNKNOWN;
    }
}

/* Rank mode's ordering keys (digits, '=', Backspace, Enter) on the item on screen.
 * Returns 1 when c was one of them, 0 when not, -1 when saving failed (err). */
static int rank_key(App *app, int c, char *err) {
    if (app->mode != LABEL_MODE_RANK || app->cur < 0) return 0;
    int k = app->items.items[app->cur].n_resp;
    if (c >= '1' && c <= '9') {
        int i = c - '1';
        if (i >= k)
            snprintf(app->status, sizeof(app->status), "there is no response %d (this item has %d)",
                     i + 1, k);
        else if (rank_place(app, i) || app->n_order == k)
            snprintf(app->status, sizeof(app->status),
                     "response %d is already placed (Backspace takes the last one back)", i + 1);
        else {
            app->tie[app->n_order] = app->n_order > 0 && app->pending_tie;
            app->order[app->n_order++] = i;
            app->pending_tie = 0;
        }
        return 1;
    }
    if (c == '=') {
        if (app->n_order == 0 || app->n_order == k)
            snprintf(app->status, sizeof(app->status),
                     "= ties the next response you type with the one before it");
        else
            app->pending_tie = 1;
        return 1;
    }
    if (c == 0x7f || c == 0x08) {
        if (app->pending_tie)
            app->pending_tie = 0;
        else if (app->n_order > 0)
            app->n_order--;
        return 1;
    }
    if (c != '\r' && c != '\n') return 0;
    if (app->n_order < k - 1) {
        snprintf(app->status, sizeof(app->status),
                 "place at least %d of the %d responses before Enter (%d so far)", k - 1, k,
                 app->n_order);
        return 1;
    }
    for (int i = 0; app->n_order < k && i < k; i++) /* the one left over goes last */
        if (!rank_place(app, i)) {
            app->tie[app->n_order] = app->pending_tie;
            app->order[app->n_order++] = i;
        }
    return app_judge(app, LABEL_RANK, err) ? -1 : 1;
}

// ----------------------------------------------------------------------------
// labelling: set-up, loop, exit

static int check_annotator(const char *a, char *err) {
    size_t n = strlen(a);
    if (n == 0) return errf(err, "--annotator: the name is empty");
    if (n > ANNOTATOR_MAX) return errf(err, "--annotator: longer than %d bytes", ANNOTATOR_MAX);
    if (!utf8_valid(a, n, NULL)) return errf(err, "--annotator: not valid UTF-8");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)a[i] < 0x20 || a[i] == 0x7f)
            return errf(err, "--annotator: control characters are not allowed");
    return 0;
}

static void print_warnings(const LabelLog *log) {
    for (int i = 0; i < log->n_warnings; i++)
        fprintf(stderr, "rlhf-label: warning: %s\n", log->warnings[i]);
}

static int cmd_label(int argc, char **argv) {
    const char *annotator = getenv("RLHF_ANNOTATOR");
    if (!annotator || !*annotator) annotator = getenv("USER");
    if (!annotator || !*annotator) annotator = "anonymous";
    const char *out_path = NULL, *cand = NULL;
    LabelMode mode = LABEL_MODE_PAIR;
    Layout layout = LAYOUT_AUTO;
    int revisit = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_val = i + 1 < argc;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--annotator") == 0 && has_val) {
            annotator = argv[++i];
        } else if (strcmp(a, "--out") == 0 && has_val) {
            out_path = argv[++i];
        } else if (strcmp(a, "--mode") == 0 && has_val) {
            const char *m = argv[++i];
            if (strcmp(m, "pair") == 0)
                mode = LABEL_MODE_PAIR;
            else if (strcmp(m, "thumbs") == 0)
                mode = LABEL_MODE_THUMBS;
            else if (strcmp(m, "rank") == 0)
                mode = LABEL_MODE_RANK;
            else {
                fprintf(stderr, "rlhf-label: --mode must be pair, thumbs or rank, not \"%s\"\n", m);
                return 2;
            }
        } else if (strcmp(a, "--layout") == 0 && has_val) {
            const char *m = argv[++i];
            if (strcmp(m, "auto") == 0)
                layout = LAYOUT_AUTO;
            else if (strcmp(m, "side") == 0)
                layout = LAYOUT_SIDE;
            else if (strcmp(m, "stacked") == 0)
                layout = LAYOUT_STACKED;
            else {
                fprintf(stderr, "rlhf-label: --layout must be auto, side or stacked, not "
                                "\"%s\"\n",
                        m);
                return 2;
            }
        } else if (strcmp(a, "--revisit-skips") == 0) {
            revisit = 1;
        } else if (a[0] == '-' && a[1] != 0) {
            fprintf(stderr, "rlhf-label: unknown option or missing value: %s (see rlhf-label "
                            "--help)\n", a);
            return 2;
        } else if (!cand) {
            cand = a;
        } else {
            fprintf(stderr, "rlhf-label: one candidates file only (got %s and %s)\n", cand, a);
            return 2;
        }
    }
    if (!cand || !out_path) {
        fprintf(stderr, "rlhf-label: %s (see rlhf-label --help)\n",
                !cand ? "no CANDIDATES.jsonl given" : "--out PREFS.jsonl is required");
        return 2;
    }
    char err[ERRBUF_LEN];
    if (check_annotator(annotator, err)) {
        fprintf(stderr, "rlhf-label: %s\n", err);
        return 2;
    }

    struct stat st_cand, st_out;
    if (stat(cand, &st_cand) == 0 && stat(out_path, &st_out) == 0 &&
        st_cand.st_dev == st_out.st_dev && st_cand.st_ino == st_out.st_ino) {
        fprintf(stderr, "rlhf-label: --out %s is the candidates file; judgments go to a file "
                        "of their own (e.g. prefs_%s.jsonl)\n",
                out_path, annotator);
        return 2;
    }

    App app;
    memset(&app, 0, sizeof(app));
    app.mode = mode;
    app.layout = layout;
    app.annotator = annotator;
    app.cand_path = cand;
    app.out_path = out_path;
    app.revisit_skips = revisit;
    app.forced = -1;
    app.out_fd = -1;
    label_log_init(&app.log);
    int rc = 1;
    if (label_items_load(&app.items, cand, mode, err)) {
        fprintf(stderr, "rlhf-label: %s\n", err);
        goto done;
    }
    if (label_log_read(&app.log, out_path, 1, err)) {
        fprintf(stderr, "rlhf-label: %s\n", err);
        goto done;
    }
    print_warnings(&app.log);
    app.out_fd = label_log_open(out_path, err);
    if (app.out_fd < 0) {
        fprintf(stderr, "rlhf-label: %s\n", err);
        goto done;
    }
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fprintf(stderr, "rlhf-label: %s\n", NOT_A_TTY);
        goto done;
    }
    int cols, rows;
    term_size(&cols, &rows);
    if (cols < MIN_COLS || rows < MIN_ROWS) {
        fprintf(stderr, "rlhf-label: terminal is %dx%d; rlhf-label needs at least %dx%d "
                        "(columns x rows): enlarge the window and run it again\n",
                cols, rows, MIN_COLS, MIN_ROWS);
        goto done;
    }
    app.skipped_now = xcalloc((size_t)app.items.n, 1);
    app_count(&app);
    app_next(&app);
    if (app.cur < 0) {
        printf("rlhf-label: all %d items of %s are already judged by %s (see %s); nothing "
               "to do\n",
               app.items.n, cand, annotator, out_path);
        rc = 0;
        goto done;
    }
    if (app.log.n_warnings)
        snprintf(app.status, sizeof(app.status),
                 "note: %d line(s) of %s were skipped (listed when you quit)",
                 app.log.n_warnings, out_path);

    if (tcgetattr(STDIN_FILENO, &g_saved) != 0) {
        fprintf(stderr, "rlhf-label: cannot read the terminal settings: %s\n", strerror(errno));
        goto done;
    }
    install_signals();
    atexit(term_restore);
    if (term_enter_raw() != 0) {
        fprintf(stderr, "rlhf-label: cannot set the terminal mode: %s\n", strerror(errno));
        goto done;
    }
    const char *failure = NULL;
    for (;;) {
        app_draw(&app);
        int c = read_key();
        if (g_winch) g_winch = 0;
        if (c == KEY_NONE) continue;
        if (c == KEY_EOF) {
            failure = "the terminal was closed";
            break;
        }
        if (app.help) {
            app.help = 0;
            continue;
        }
        app.status[0] = 0;
        int rk = rank_key(&app, c, err);
        if (rk < 0) {
            failure = err;
            break;
        }
        if (rk > 0) continue;
        LabelKind k = LABEL_SKIP;
        int by;
        Action act = key_action(mode, c, &k, &by);
        if (act == ACT_QUIT) break;
        if (act == ACT_HELP) {
            app.help = 1;
            app.scroll = 0;
        } else if (act == ACT_SCROLL) {
            int page;
            term_size(&cols, &rows);
            page = rows - 5 > 1 ? rows - 5 : 1;
            if (by == 1000000) by = page;
            if (by == -1000000) by = -page;
            if (by == -2000000) by = -app.scroll;
            app.scroll += by;
        } else if (act == ACT_UNDO) {
            if (app_undo(&app, err)) {
                failure = err;
                break;
            }
        } else if (act == ACT_JUDGE) {
            if (app.cur < 0) {
                snprintf(app.status, sizeof(app.status), "every item is judged: %s undoes, "
                                                         "q quits",
                         mode != LABEL_MODE_THUMBS ? "u" : "z");
            } else if (app_judge(&app, k, err)) {
                failure = err;
                break;
            }
        } else if (act == ACT_UNKNOWN) {
            if (mode == LABEL_MODE_THUMBS && (c == 'u' || c == 'U'))
                snprintf(app.status, sizeof(app.status),
                         "u is not a key in thumbs mode: y = good, n = bad, z = undo");
            else if (c >= 0x21 && c < 0x7f)
                snprintf(app.status, sizeof(app.status), "unknown key '%c': press ? for help", c);
            else
                snprintf(app.status, sizeof(app.status), "unknown key: press ? for help");
        }
    }
    term_restore();
    print_warnings(&app.log);
    if (failure && failure == err) {
        fprintf(stderr, "rlhf-label: %s; the last judgment was NOT recorded (everything "
                        "before it is); fix the problem and run the same command again\n",
                err);
    } else {
        rc = 0;
        printf("rlhf-label: %ld judgment(s) this session (%ld undone); %s has judged %ld of "
               "%d items of %s; log: %s%s%s\n",
               app.session_judged, app.session_undone, annotator, app.n_done, app.items.n,
               cand, out_path, failure ? "; stopped: " : "", failure ? failure : "");
    }
done:
    if (app.out_fd >= 0) close(app.out_fd);
    free(app.skipped_now);
    label_items_free(&app.items);
    label_log_free(&app.log);
    return rc;
}

// ----------------------------------------------------------------------------
// stats and export

static int read_logs(LabelLog *log, int argc, char **argv, int first, const char *cmd) {
    char err[ERRBUF_LEN];
    int nfiles = 0;
    for (int i = first; i < argc; i++) {
        if (label_log_read(log, argv[i], 0, err)) {
            fprintf(stderr, "rlhf-label %s: %s\n", cmd, err);
            return -1;
        }
        nfiles++;
    }
    if (nfiles == 0) {
        fprintf(stderr, "rlhf-label %s: no PREFS.jsonl given (see rlhf-label --help)\n", cmd);
        return -2;
    }
    print_warnings(log);
    return 0;
}

static int cmd_stats(int argc, char **argv) {
    for (int i = 2; i < argc; i++)
        if (argv[i][0] == '-') {
            fprintf(stderr, "rlhf-label stats: unknown option %s\n", argv[i]);
            return 2;
        }
    LabelLog log;
    label_log_init(&log);
    int rr = read_logs(&log, argc, argv, 2, "stats");
    if (rr) {
        label_log_free(&log);
        return rr == -2 ? 2 : 1;
    }
    LabelStats st;
    label_stats_compute(&st, &log);
    printf("rlhf-label stats: %d file(s), %d judgment records, %d undo records applied",
           log.n_files, log.n, log.n_undo);
    if (log.n_warnings) printf(", %d line(s) skipped (see the warnings)", log.n_warnings);
    printf("\n");
    label_stats_print(stdout, &st);
    label_stats_free(&st);
    label_log_free(&log);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int cmd_export(int argc, char **argv) {
    int thumbs = 0, rankings = 0, first = 2;
    while (first < argc && argv[first][0] == '-') {
        if (strcmp(argv[first], "--thumbs") == 0 && !rankings) {
            thumbs = 1;
            first++;
        } else if (strcmp(argv[first], "--rankings") == 0 && !thumbs) {
            rankings = 1;
            first++;
        } else {
            fprintf(stderr, "rlhf-label export: unknown option %s (--thumbs or --rankings, not "
                            "both)\n", argv[first]);
            return 2;
        }
    }
    LabelLog log;
    label_log_init(&log);
    int rr = read_logs(&log, argc, argv, first, "export");
    if (rr) {
        label_log_free(&log);
        return rr == -2 ? 2 : 1;
    }
    long n = rankings ? label_export_rankings(stdout, &log) : label_export(stdout, &log, thumbs);
    label_log_free(&log);
    if (n < 0) {
        fprintf(stderr, "rlhf-label export: write to stdout failed: %s\n", strerror(errno));
        return 1;
    }
    fprintf(stderr, "rlhf-label export: wrote %ld %s (undo honoured; %s left out)\n", n,
            thumbs     ? "up/down lines"
            : rankings ? "rankings"
                       : "pairs (rankings as pairs weighted 1/C(K,2))",
            thumbs     ? "skips, pair judgments"
            : rankings ? "skips, pair and thumbs judgments"
                       : "ties, skips, thumbs judgments");
    return 0;
}

int main(int argc, char **argv) {
    /* the web page (common/label_serve.c) has its own options and --help */
    if (argc >= 2 && strcmp(argv[1], "serve") == 0) return label_serve_main(argc - 1, argv + 1);
    for (int i = 1; i < argc; i++) /* any command's --help: the whole usage */
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
    if (argc >= 2 && strcmp(argv[1], "stats") == 0) return cmd_stats(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "export") == 0) return cmd_export(argc, argv);
    return cmd_label(argc, argv);
}
