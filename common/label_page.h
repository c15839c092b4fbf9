/*
 * common/label_page.h — the HTML of the labelling web page (`rlhf-label serve`, served by
 * common/label_serve.c): a growing text buffer, HTML escaping, one template per page and
 * one item template per labelling mode, and the page's two static files (script and
 * style sheet) embedded in the program.
 *
 * Every string that comes from the data (prompts, responses, categories, ids, annotator
 * names, error messages quoting input) goes through label_page_text, which escapes
 * & < > " ' : the candidates are model outputs and are treated as hostile, so a
 * response containing <script> is shown as text. The pages have no inline script or
 * style (the server sends Content-Security-Policy: default-src 'self'); the script only
 * adds keyboard shortcuts, the progress page's refresh and rank mode's click-to-place
 * ordering: every action is a plain HTML form (rank mode: a place select per response),
 * and works without it.
 *
 * Modes: label_page_mode() returns the item template of a mode (the item and its
 * buttons): pair, thumbs, rank. A new mode is one more template here and one more entry in the
 * table.
 *
 * What this does not do: HTTP, authentication, or choosing items (label_serve.c).
 */
#ifndef RLHF_LABEL_PAGE_H
#define RLHF_LABEL_PAGE_H

#include <stddef.h>

#include "label.h"

typedef struct {
    char *s; /* NUL-terminated */
    size_t n, cap;
} LabelPage;

void label_page_add(LabelPage *p, const char *s);
void label_page_fmt(LabelPage *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s with & < > " ' escaped as entities: safe in element text and quoted attributes */
void label_page_text(LabelPage *p, const char *s);
void label_page_free(LabelPage *p);

/* What the labelling page shows around the item. */
typedef struct {
    const char *annotator;
    const char *mode_name;
    long n_items;     /* in the candidates file */
    long n_done;      /* judged (or skipped) by this annotator */
    int overlap;      /* K: judgments wanted per item */
    const char *note; /* the last action's outcome ("saved: A ..."), or NULL */
} LabelPageInfo;

/* An item template: the item's texts and the buttons of its mode (forms posting to
 * /judge with the item id and a label). */
typedef void (*LabelPageItemFn)(LabelPage *p, const LabelItem *it);
LabelPageItemFn label_page_mode(LabelMode m);

/* Whole pages (a complete HTML document each). */
void label_page_login(LabelPage *p, const char *error);
void label_page_item(LabelPage *p, LabelMode m, const LabelItem *it, const LabelPageInfo *in);
void label_page_done(LabelPage *p, const LabelPageInfo *in);
void label_page_progress(LabelPage *p, const LabelStats *st, const LabelPageInfo *in,
                         long n_items_full);
void label_page_error(LabelPage *p, int status, const char *message);

/* The static files, served as /app.js and /style.css. */
extern const char label_page_js[];
extern const char label_page_css[];

#endif
