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

LabelPageItemFn label_page_mode(LabelMode m) {
    static const LabelPageItemFn fns[] = {
        [LABEL_MODE_PAIR] = item_pair, [LABEL_MODE_THUMBS] = item_thumbs};
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
    label_page_add(p, "</table>\n<h2>Agreement on items judged by two annotators</h2>\n");
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

/* Keyboard shortcuts: a key press clicks the button whose data-key is that key (not
 * while typing in a field, not with a modifier). A body with data-refresh="S" (the
 * progress page) reloads itself every S seconds. */
const char label_page_js[] =
    "'use strict';\n"
    "document.addEventListener('keydown', function (e) {\n"
    "  if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;\n"
    "  var t = e.target;\n"
    "  if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA')) return;\n"
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
    "td:first-child { text-align: left; }\n";
