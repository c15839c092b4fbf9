/*
 * fuzz/fuzz_label.c — libFuzzer target for the feedback-collection readers, common/label.h
 * (the judgment log PREFS.jsonl that rlhf-label appends to and `stats`/`export` read, and
 * the candidates file it shows).
 *
 * Each input is a whole file, put in a memfd. It is read as a judgment log
 * (label_log_read: bad lines are warnings, never fatal), then the agreement statistics
 * are computed and printed and the three exports written (to /dev/null); it is also loaded
 * as a candidates file in pair, thumbs and rank mode, read as a ranking training file
 * (common/rankfile.h), and word-wrapped for display (label_wrap at a width taken from the
 * input's length). Properties checked besides "no crash, leak, UB or hang":
 *   - a readable log always loads (bad lines only produce warnings);
 *   - every live judgment is live by label_log_is_live and found by label_log_live;
 *   - a live ranking has 2..LABEL_RANK_MAX places, each in 1..K; Kendall tau-b means are
 *     NaN or within [-1, 1]; a loaded ranking file holds valid records;
 *   - kappas are NaN or within [-1, 1]; every wrapped line is valid UTF-8, has no
 *     control characters and is no wider than the width;
 *   - a failed candidates or ranking-file load has an error message naming the file.
 * Seeds: fuzz/corpus/fuzz_label/, records written by label_record_judgment and
 * label_record_undo, and candidate lines (seeds.c).
 * Not here: the terminal UI of rlhf-label (tests/t_label.sh).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "label.h"
#include "rankfile.h"
#include "util.h"

static FILE *devnull(void) {
    static FILE *f;
    if (!f) f = fopen("/dev/null", "w");
    return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FuzzFile f;
    fuzz_memfile(&f, data, size);
    char err[ERRBUF_LEN] = "";

    LabelLog log;
    label_log_init(&log);
    if (label_log_read(&log, f.path, 0, err) != 0) {
        fprintf(stderr, "a readable log must load (bad lines are warnings): %s\n", err);
        abort();
    }
    for (int i = 0; i < log.n; i++) {
        const LabelJudgment *j = &log.j[i];
        FUZZ_REQUIRE(j->label >= 0 && j->label < LABEL_COUNT);
        FUZZ_REQUIRE((j->label == LABEL_RANK) == (j->ranks != NULL));
        for (int k = 0; j->ranks && k < j->n_ranks; k++)
            FUZZ_REQUIRE(j->n_ranks >= 2 && j->n_ranks <= LABEL_RANK_MAX && j->ranks[k] >= 1 &&
                         j->ranks[k] <= j->n_ranks);
        if (label_log_is_live(&log, i)) {
            FUZZ_REQUIRE(!j->undone);
            FUZZ_REQUIRE(label_log_live(&log, j->annotator, j->id) == i);
        }
    }
    LabelStats st;
    label_stats_compute(&st, &log);
    for (int p = 0; p < st.n_pairs; p++) {
        double k = st.pairs[p].kappa;
        FUZZ_REQUIRE(isnan(k) || (k >= -1.0 - 1e-9 && k <= 1.0 + 1e-9));
        FUZZ_REQUIRE(st.pairs[p].n_agree <= st.pairs[p].n_common);
    }
    for (int g = 0; g < st.n_groups; g++) {
        double k = st.groups[g].kappa;
        FUZZ_REQUIRE(isnan(k) || k <= 1.0 + 1e-9);
    }
    for (int p = 0; p < st.n_rank_pairs; p++) {
        double t = st.rank_pairs[p].tau_mean;
        FUZZ_REQUIRE(isnan(t) || (t >= -1.0 - 1e-9 && t <= 1.0 + 1e-9));
        FUZZ_REQUIRE(st.rank_pairs[p].n_defined <= st.rank_pairs[p].n_common);
    }
    label_stats_print(devnull(), &st);
    label_stats_free(&st);
    FUZZ_REQUIRE(label_export(devnull(), &log, 0) >= 0);
    FUZZ_REQUIRE(label_export(devnull(), &log, 1) >= 0);
    FUZZ_REQUIRE(label_export_rankings(devnull(), &log) >= 0);
    label_log_free(&log);

    for (int mode = LABEL_MODE_PAIR; mode <= LABEL_MODE_RANK; mode++) {
        LabelItems it;
        err[0] = '\0';
        if (label_items_load(&it, f.path, (LabelMode)mode, err) == 0) {
            for (int i = 0; i < it.n; i++) {
                FUZZ_REQUIRE(label_items_find(&it, it.items[i].id) == i);
                FUZZ_REQUIRE(mode != LABEL_MODE_RANK || (it.items[i].n_resp >= LABEL_RANK_ITEM_MIN &&
                                                         it.items[i].n_resp <= LABEL_RANK_ITEM_MAX));
            }
            label_items_free(&it);
        } else {
            FUZZ_REQUIRE(strstr(err, f.path) != NULL);
        }
    }
    RankFile rf;
    err[0] = '\0';
    if (rank_file_load(&rf, f.path, err) == 0) {
        FUZZ_REQUIRE(rf.n > 0 && rf.k_max >= 2 && rf.k_max <= LABEL_RANK_MAX);
        for (int64_t i = 0; i < rf.n; i++)
            for (int k = 0; k < rf.rec[i].k; k++)
                FUZZ_REQUIRE(rf.rec[i].rank[k] >= 1 && rf.rec[i].rank[k] <= rf.rec[i].k);
        rank_file_free(&rf);
    } else {
        FUZZ_REQUIRE(strstr(err, f.path) != NULL);
    }
    fuzz_memfile_close(&f);

    char *text = fuzz_cstr(data, size);
    int width = 1 + (int)(size % 97);
    LabelLines lines;
    memset(&lines, 0, sizeof lines);
    label_wrap(&lines, text, width);
    for (int i = 0; i < lines.n; i++) {
        const char *s = lines.line[i];
        FUZZ_REQUIRE(utf8_valid(s, strlen(s), NULL));
        for (const char *p = s; *p; p++) FUZZ_REQUIRE((unsigned char)*p >= 0x20 && *p != 0x7f);
        FUZZ_REQUIRE(lines.width[i] <= width);
    }
    label_lines_free(&lines);
    free(text);
    return 0;
}
