/*
 * common/label_page.c — HTML templates of the labelling web page, escaping, and the
 * embedded script and style sheet (see label_page.h). The markup is plain forms so that
 * the page works without the script and under a strict Content-Security-Policy.
 */
#include "label_page.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static void page_addn(LabelPage *p, const char *s, size_t n) {
    if (p->n + n + 1 > p->cap) {
        p->cap = (p->n + n + 1) * 2;
        p->s = xrealloc(p->s, p->cap);
    }
    memcpy(p->s + p->n, s, n);
    p->n += n;
    p->s[p->n] = 0;
}

void label_page_add(LabelPage *p, const char *s) {
    page_addn(p, s, strlen(s));
}

void label_page_fmt(LabelPage *p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    char *tmp = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(tmp, (size_t)n + 1, fmt, ap);
    va_end(ap);
    page_addn(p, tmp, (size_t)n);
    free(tmp);
}

void label_page_text(LabelPage *p, const char *s) {
    const char *run = s;
    for (; *s; s++) {
        const char *ent = NULL;
        switch (*s) {
        case '&':
            ent = "&amp;";
            break;
        case '<':
            ent = "&lt;";
            break;
        case '>':
            ent = "&gt;";
            break;
        case '"':
            ent = "&quot;";
            break;
        case '\'':
            ent = "&#39;";
            break;
        default:
            continue;
        }
        page_addn(p, run, (size_t)(s - run));
        label_page_add(p, ent);
        run = s + 1;
    }
    page_addn(p, run, (size_t)(s - run));
}

void label_page_free(LabelPage *p) {
    free(p->s);
    memset(p, 0, sizeof(*p));
}

// ----------------------------------------------------------------------------
// the frame of every page

/* refresh: seconds after which the script reloads the page (0: never) */
static void page_begin(LabelPage *p, const char *title, const char *annotator, int refresh) {
    label_page_add(p, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                      "<title>");
    label_page_text(p, title);
    label_page_add(p, " — rlhf-label</title><link rel=\"stylesheet\" href=\"/style.css\">"
                      "<script src=\"/app.js\" defer></script></head>\n");
    if (refresh > 0) label_page_fmt(p, "<body data-refresh=\"%d\">\n", refresh);
    else label_page_add(p, "<body>\n");
    label_page_add(p, "<header><span class=\"brand\">rlhf-label</span>");
    if (annotator) {
        label_page_add(p, "<nav><a href=\"/\">label</a> <a href=\"/progress\">progress</a> "
                          "<span class=\"who\">");
        label_page_text(p, annotator);
        label_page_add(p, "</span><form method=\"post\" action=\"/logout\" class=\"inline\">"
                          "<button type=\"submit\" id=\"logout\">log out</button></form></nav>");
    }
    label_page_add(p, "</header>\n<main>\n");
}

static void page_end(LabelPage *p) {
    label_page_add(p, "</main>\n</body></html>\n");
}

static void page_status(LabelPage *p, const LabelPageInfo *in) {
    label_page_fmt(p,
                   "<p class=\"status\" id=\"status\">%s mode · you have judged "
                   "<b id=\"done\">%ld</b> of %ld items · up to %d annotator%s per item",
                   in->mode_name, in->n_done, in->n_items, in->overlap,
                   in->overlap == 1 ? "" : "s");
    if (in->note) {
        label_page_add(p, " · <span id=\"note\">");
        label_page_text(p, in->note);
        label_page_add(p, "</span>");
    }
    label_page_add(p, "</p>\n");
}

static void page_undo_form(LabelPage *p) {
    label_page_add(p, "<form method=\"post\" action=\"/undo\" class=\"undo\">"
                      "<button type=\"submit\" id=\"undo\" data-key=\"u\">undo my last "
                      "judgment <kbd>u</kbd></button></form>\n");
}

// ----------------------------------------------------------------------------
// item templates, one per mode

static void item_block(LabelPage *p, const char *cls, const char *title, const char *text) {
    label_page_fmt(p, "<section class=\"%s\"><h2>%s</h2><div class=\"text\">", cls, title);
    label_page_text(p, text);
    label_page_add(p, "</div></section>\n");
}

static void item_head(LabelPage *p, const LabelItem *it) {
    label_page_add(p, "<p class=\"meta\">item <code id=\"item-id\">");
    label_page_text(p, it->id);
    label_page_add(p, "</code>");
    if (it->category) {
        label_page_add(p, " · category <span class=\"category\">");
        label_page_text(p, it->category);
        label_page_add(p, "</span>");
    }
    label_page_add(p, "</p>\n");
    item_block(p, "prompt", "Prompt", it->prompt);
}

/* one form per judgment: the item id travels with the label, so a stale page can never
 * judge another item than the one it shows */
static void judge_button(LabelPage *p, const LabelItem *it, const char *label, const char *key,
                         const char *text) {
    label_page_add(p, "<form method=\"post\" action=\"/judge\" class=\"inline\">"
                      "<input type=\"hidden\" name=\"id\" value=\"");
    label_page_text(p, it->id);
    label_page_fmt(p,
                   "\"><button type=\"submit\" name=\"label\" value=\"%s\" "
                   "id=\"judge-%s\" data-key=\"%s\">%s <kbd>%s</kbd></button></form>\n",
                   label, label, key, text, key);
}

static void item_pair(LabelPage *p, const LabelItem *it) {
    item_head(p, it);
    label_page_add(p, "<div class=\"pair\">\n");
    item_block(p, "response", "Response A", it->a);
    item_block(p, "response", "Response B", it->b);
    label_page_add(p, "</div>\n<div class=\"buttons\">\n");
    judge_button(p, it, "A", "a", "A is better");
    judge_button(p, it, "B", "b", "B is better");
    judge_button(p, it, "tie", "t", "tie");
    judge_button(p, it, "skip", "s", "skip");
    label_page_add(p, "</div>\n");
}

static void item_thumbs(LabelPage *p, const LabelItem *it) {
    item_head(p, it);
    item_block(p, "response", "Response", it->a);
    label_page_add(p, "<div class=\"buttons\">\n");
    judge_button(p, it, "up", "y", "good");
    judge_button(p, it, "down", "n", "bad");
    judge_button(p, it, "skip", "s", "skip");
    label_page_add(p, "</div>\n");
}

/* One form for the whole ranking: a place select per response (fields r1..rK, which
 * work without the script), and the buttons the script shows (hidden without it) to
 * place responses best first by click or key 1..K, tie the next with the previous (=),
 * take back (Backspace); the item id travels with the places. Skip is its own form. */
static void item_rank(LabelPage *p, const LabelItem *it) {
    item_head(p, it);
    int k = it->n_resp;
    label_page_add(p, "<form method=\"post\" action=\"/judge\" id=\"rank-form\" class=\"rank\">"
                      "<input type=\"hidden\" name=\"id\" value=\"");
    label_page_text(p, it->id);
    label_page_add(p, "\">\n");
    for (int i = 1; i <= k; i++) {
        label_page_fmt(p,
                       "<section class=\"response\"><h2>Response %d "
                       "<button type=\"button\" class=\"place\" id=\"place-%d\" data-key=\"%d\" "
                       "data-resp=\"%d\" hidden>place next <kbd>%d</kbd></button> "
                       "<label>place <select name=\"r%d\" id=\"r%d\"><option value=\"\">–</option>",
                       i, i, i, i, i, i, i);
        for (int v = 1; v <= k; v++) label_page_fmt(p, "<option>%d</option>", v);
        label_page_add(p, "</select></label></h2><div class=\"text\">");
        label_page_text(p, it->resp[i - 1]);
        label_page_add(p, "</div></section>\n");
    }
    label_page_fmt(p,
                   "<p class=\"hint\">Give each response a place: 1 is the best, equal places "
                   "are ties, and the places a tie takes are skipped (1, 1, 3).</p>\n"
                   "<p class=\"order\" id=\"order\" hidden></p>\n<div class=\"buttons\">"
                   "<button type=\"button\" id=\"rank-tie\" data-key=\"=\" hidden>tie the next "
                   "with the previous <kbd>=</kbd></button>"
                   "<button type=\"button\" id=\"rank-back\" data-key=\"Backspace\" hidden>take "
                   "back <kbd>Backspace</kbd></button>"
                   "<button type=\"submit\" name=\"label\" value=\"rank\" id=\"judge-rank\" "
                   "data-key=\"Enter\">save the ranking of %d <kbd>Enter</kbd></button></div>"
                   "</form>\n<div class=\"buttons\">\n",
                   k);
    judge_button(p, it, "skip", "s", "skip");
    label_page_add(p, "</div>\n");
}

LabelPageItemFn label_page_mode(LabelMode m) {
    static const LabelPageItemFn fns[] = {[LABEL_MODE_PAIR] = item_pair,
                                          [LABEL_MODE_THUMBS] = item_thumbs,
                                          [LABEL_MODE_RANK] = item_rank};
    if ((int)m < 0 || (size_t)m >= sizeof(fns) / sizeof(fns[0])) return NULL;
    return fns[m];
}

// ----------------------------------------------------------------------------
// pages

void label_page_login(LabelPage *p, const char *error) {
    page_begin(p, "log in", NULL, 0);
    label_page_add(p, "<h1>Log in</h1>\n");
    if (error) {
        label_page_add(p, "<p class=\"error\" id=\"error\">");
        label_page_text(p, error);
        label_page_add(p, "</p>\n");
    }
    label_page_add(p, "<form method=\"post\" action=\"/login\"><label>token "
                      "<input type=\"password\" name=\"token\" id=\"token\" "
                      "autocomplete=\"off\" autofocus></label> "
                      "<button type=\"submit\" id=\"login\">log in</button></form>\n"
                      "<p class=\"hint\">The token is the one printed by <code>rlhf-label "
                      "serve</code> or given in its tokens file.</p>\n");
    page_end(p);
}

void label_page_item(LabelPage *p, LabelMode m, const LabelItem *it, const LabelPageInfo *in) {
    page_begin(p, "label", in->annotator, 0);
    page_status(p, in);
    label_page_mode(m)(p, it);
    page_undo_form(p);
    page_end(p);
}

void label_page_done(LabelPage *p, const LabelPageInfo *in) {
    page_begin(p, "done", in->annotator, 0);
    page_status(p, in);
    label_page_add(p, "<h1 id=\"all-done\">Nothing left for you to judge</h1>\n<p>Every "
                      "item is judged by you or by enough other annotators. Thank you.</p>\n");
    page_undo_form(p);
    page_end(p);
}

static void cell_kappa(LabelPage *p, double k) {
    if (isnan(k)) label_page_add(p, "<td>n/a</td>");
    else label_page_fmt(p, "<td>%.3f</td>", k);
}

static void fmt_stat(LabelPage *p, double v) {
    if (isnan(v)) label_page_add(p, "n/a");
    else label_page_fmt(p, "%.3f", v);
}

/* Kendall's tau-b per annotator pair and pooled, Krippendorff's alpha (ordinal). */
static void page_rank_agreement(LabelPage *p, const LabelStats *st) {
    label_page_fmt(p, "<h2>Ranking agreement</h2>\n<p id=\"rank-summary\">%ld items ranked.",
                   st->n_rank_items);
    if (st->n_rank_pairs == 0) {
        label_page_add(p, " No item was ranked by two annotators yet (serve with --overlap 2 or "
                          "more to measure agreement).</p>\n");
        return;
    }
    label_page_add(p, "</p>\n<table id=\"rank-pairs\"><tr><th>annotators</th><th>items in "
                      "common</th><th>with tau-b defined</th><th>mean Kendall tau-b</th></tr>\n");
    for (int i = 0; i < st->n_rank_pairs; i++) {
        const LabelRankPairStat *ps = &st->rank_pairs[i];
        label_page_add(p, "<tr><td>");
        label_page_text(p, st->annotators[ps->a]);
        label_page_add(p, " / ");
        label_page_text(p, st->annotators[ps->b]);
        label_page_fmt(p, "</td><td>%ld</td><td>%ld</td>", ps->n_common, ps->n_defined);
        cell_kappa(p, ps->tau_mean);
        label_page_add(p, "</tr>\n");
    }
    label_page_add(p, "</table>\n<p id=\"rank-pooled\">All pairs: mean Kendall tau-b ");
    fmt_stat(p, st->rank_pooled_tau);
    label_page_fmt(p,
                   " over %ld ranking pairs; Krippendorff's alpha (ordinal, every response "
                   "of the items ranked by two or more) ",
                   st->rank_pooled_defined);
    fmt_stat(p, st->rank_alpha);
    label_page_add(p, ".</p>\n");
}

void label_page_progress(LabelPage *p, const LabelStats *st, const LabelPageInfo *in,
                         long n_items_full) {
    page_begin(p, "progress", in->annotator, 5);
    label_page_fmt(p,
                   "<h1>Progress</h1>\n<p id=\"summary\">%ld of %ld items have a "
                   "judgment (skips aside); %ld have the %d wanted per item.</p>\n",
                   st->n_items, in->n_items, n_items_full, in->overlap);
    label_page_add(p, "<table id=\"annotators\"><tr><th>annotator</th>");
    static const char *const cols[LABEL_COUNT] = {"A", "B", "tie", "skip", "up", "down", "rank"};
    for (int k = 0; k < LABEL_COUNT; k++) label_page_fmt(p, "<th>%s</th>", cols[k]);
    label_page_add(p, "<th>undone</th></tr>\n");
    for (int a = 0; a < st->n_annotators; a++) {
        label_page_add(p, "<tr><td>");
        label_page_text(p, st->annotators[a]);
        label_page_add(p, "</td>");
        for (int k = 0; k < LABEL_COUNT; k++) label_page_fmt(p, "<td>%ld</td>", st->counts[a][k]);
        label_page_fmt(p, "<td>%ld</td></tr>\n", st->undone[a]);
    }
    label_page_add(p, "</table>\n");
    if (st->n_rank_items > 0) page_rank_agreement(p, st);
    if (st->n_rank_items > 0 && st->n_pairs == 0) {
        page_end(p);
        return;
    }
    label_page_add(p, "<h2>Agreement on items judged by two annotators</h2>\n");
    if (st->n_pairs == 0) {
        label_page_add(p, "<p id=\"no-pairs\">No item has two judgments yet (serve with "
                          "--overlap 2 or more to measure agreement).</p>\n");
    } else {
        label_page_add(p, "<table id=\"pairs\"><tr><th>annotators</th><th>items in common"
                          "</th><th>agree</th><th>Cohen's kappa</th></tr>\n");
        for (int i = 0; i < st->n_pairs; i++) {
            const LabelPairStat *ps = &st->pairs[i];
            label_page_add(p, "<tr><td>");
            label_page_text(p, st->annotators[ps->a]);
            label_page_add(p, " / ");
            label_page_text(p, st->annotators[ps->b]);
            label_page_fmt(p, "</td><td>%ld</td><td>%.1f%%</td>", ps->n_common,
                           100.0 * (double)ps->n_agree / (double)ps->n_common);
            cell_kappa(p, ps->kappa);
            label_page_add(p, "</tr>\n");
        }
        label_page_add(p, "</table>\n");
        if (st->pooled_common > 0)
            label_page_fmt(p,
                           "<p id=\"pooled\">All pairs: %.1f%% agreement over %ld "
                           "comparisons.</p>\n",
                           100.0 * (double)st->pooled_agree / (double)st->pooled_common,
                           st->pooled_common);
        for (int g = 0; g < st->n_groups; g++) {
            label_page_fmt(p,
                           "<p class=\"fleiss\">%ld items with %d raters each: Fleiss' "
                           "kappa ",
                           st->groups[g].n_items, st->groups[g].n_raters);
            if (isnan(st->groups[g].kappa)) label_page_add(p, "n/a");
            else label_page_fmt(p, "%.3f", st->groups[g].kappa);
            label_page_add(p, "</p>\n");
        }
    }
    page_end(p);
}

void label_page_error(LabelPage *p, int status, const char *message) {
    char title[32];
    snprintf(title, sizeof(title), "error %d", status);
    page_begin(p, title, NULL, 0);
    label_page_fmt(p, "<h1>Error %d</h1>\n<p class=\"error\" id=\"error\">", status);
    label_page_text(p, message);
    label_page_add(p, "</p>\n<p><a href=\"/\">back to labelling</a></p>\n");
    page_end(p);
}

// ----------------------------------------------------------------------------
// the static files

/* Rank mode: clicking a response's "place next" (or its key 1..K) places it after those
 * placed so far, best first; "=" ties the next one placed with the previous; Backspace
 * takes back the last step; saving with all but one placed puts the one left last (as
 * in the terminal tool). Every step writes the place selects, which are what the form
 * sends (places of tied responses are shared, later places skipped: 1, 1, 3). Changing
 * a select by hand starts the click order afresh. */
#define RANK_JS                                                                                    \
    "function rankSetup(form) {\n"                                                                 \
    "  var sel = form.querySelectorAll('select'), k = sel.length;\n"                               \
    "  var order = [], tie = [], pending = false;\n"                                               \
    "  var out = document.getElementById('order');\n"                                              \
    "  function show() {\n"                                                                        \
    "    var t = '';\n"                                                                            \
    "    for (var p = 0; p < order.length; p++)\n"                                                 \
    "      t += (p ? (tie[p] ? ' = ' : ' > ') : '') + (order[p] + 1);\n"                           \
    "    if (pending) t += ' =';\n"                                                                \
    "    out.textContent = t ? 'order, best first: ' + t :\n"                                      \
    "      'place the responses best first: click them or press 1-' + k;\n"                        \
    "  }\n"                                                                                        \
    "  function apply() {\n"                                                                       \
    "    var r = [];\n"                                                                            \
    "    for (var p = 0; p < order.length; p++)\n"                                                 \
    "      r[order[p]] = p > 0 && tie[p] ? r[order[p - 1]] : p + 1;\n"                             \
    "    for (var i = 0; i < k; i++) sel[i].value = r[i] === undefined ? '' : String(r[i]);\n"     \
    "    show();\n"                                                                                \
    "  }\n"                                                                                        \
    "  function place(i) {\n"                                                                      \
    "    if (i < 0 || i >= k || order.indexOf(i) >= 0) return;\n"                                  \
    "    tie.push(order.length > 0 && pending);\n"                                                 \
    "    order.push(i);\n"                                                                         \
    "    pending = false;\n"                                                                       \
    "    apply();\n"                                                                               \
    "  }\n"                                                                                        \
    "  form.querySelectorAll('button[hidden]').forEach(function (b) { b.hidden = false; });\n"     \
    "  out.hidden = false;\n"                                                                      \
    "  form.querySelectorAll('button.place').forEach(function (b) {\n"                             \
    "    b.addEventListener('click', function () {\n"                                              \
    "      place(Number(b.getAttribute('data-resp')) - 1);\n"                                      \
    "    });\n"                                                                                    \
    "  });\n"                                                                                      \
    "  document.getElementById('rank-tie').addEventListener('click', function () {\n"              \
    "    if (order.length > 0 && order.length < k) pending = !pending;\n"                          \
    "    show();\n"                                                                                \
    "  });\n"                                                                                      \
    "  document.getElementById('rank-back').addEventListener('click', function () {\n"             \
    "    if (pending) pending = false;\n"                                                          \
    "    else { order.pop(); tie.pop(); }\n"                                                       \
    "    apply();\n"                                                                               \
    "  });\n"                                                                                      \
    "  document.getElementById('judge-rank').addEventListener('click', function () {\n"            \
    "    if (order.length === k - 1)\n"                                                            \
    "      for (var i = 0; i < k; i++) if (order.indexOf(i) < 0) place(i);\n"                      \
    "  });\n"                                                                                      \
    "  sel.forEach(function (s) {\n"                                                               \
    "    s.addEventListener('change', function () {\n"                                             \
    "      order = []; tie = []; pending = false; show();\n"                                       \
    "    });\n"                                                                                    \
    "  });\n"                                                                                      \
    "  show();\n"                                                                                  \
    "}\n"

/* Keyboard shortcuts: a key press clicks the button whose data-key is that key (not
 * while typing in a field, not with a modifier). A body with data-refresh="S" (the
 * progress page) reloads itself every S seconds. */
const char label_page_js[] =
    "'use strict';\n" RANK_JS "document.addEventListener('keydown', function (e) {\n"
    "  if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;\n"
    "  var t = e.target;\n"
    "  if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' ||\n"
    "      t.tagName === 'SELECT')) return;\n"
    "  var buttons = document.querySelectorAll('button[data-key]');\n"
    "  for (var i = 0; i < buttons.length; i++) {\n"
    "    if (buttons[i].getAttribute('data-key') === e.key) {\n"
    "      e.preventDefault();\n"
    "      buttons[i].click();\n"
    "      return;\n"
    "    }\n"
    "  }\n"
    "});\n"
    "document.addEventListener('DOMContentLoaded', function () {\n"
    "  var s = Number(document.body.getAttribute('data-refresh'));\n"
    "  var rf = document.getElementById('rank-form');\n"
    "  if (rf) rankSetup(rf);\n"
    "  if (s > 0) setTimeout(function () { location.reload(); }, 1000 * s);\n"
    "  // one submission per page: a double click must not send a judgment twice\n"
    "  document.querySelectorAll('form').forEach(function (f) {\n"
    "    f.addEventListener('submit', function () {\n"
    "      document.querySelectorAll('button').forEach(function (b) {\n"
    "        setTimeout(function () { b.disabled = true; }, 0);\n"
    "      });\n"
    "    });\n"
    "  });\n"
    "});\n";

const char label_page_css[] =
    "body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1d1d1f; }\n"
    "header { display: flex; justify-content: space-between; align-items: center;\n"
    "  padding: .5em 1em; background: #23395d; color: #fff; }\n"
    "header a, header button { color: #fff; margin-left: .8em; }\n"
    "header button { background: none; border: 1px solid #fff; border-radius: 4px; }\n"
    ".brand { font-weight: bold; }\n"
    ".who { margin-left: .8em; font-style: italic; }\n"
    "main { padding: 1em; max-width: 1400px; margin: auto; }\n"
    ".status, .meta, .hint { color: #555; }\n"
    ".error { color: #a00; font-weight: bold; }\n"
    ".text { white-space: pre-wrap; overflow-wrap: anywhere; background: #f6f6f8;\n"
    "  border: 1px solid #ddd; border-radius: 6px; padding: .6em .8em; }\n"
    ".pair { display: flex; gap: 1em; }\n"
    ".pair > section { flex: 1; min-width: 0; }\n"
    "@media (max-width: 800px) { .pair { display: block; } }\n"
    ".buttons { margin: 1em 0; display: flex; flex-wrap: wrap; gap: .6em; }\n"
    ".buttons button { font-size: 1.1em; padding: .4em 1.2em; }\n"
    "form.inline { display: inline; }\n"
    "kbd { font-size: .8em; border: 1px solid #aaa; border-radius: 3px; padding: 0 .3em; }\n"
    "table { border-collapse: collapse; margin: .5em 0 1em; }\n"
    "td, th { border: 1px solid #ccc; padding: .2em .6em; text-align: right; }\n"
    "td:first-child { text-align: left; }\n"
    ".rank h2 { display: flex; flex-wrap: wrap; align-items: center; gap: .6em; }\n"
    ".rank h2 label, .rank h2 button { font-size: .7em; font-weight: normal; }\n"
    ".order { font-weight: bold; }\n";
