/*
 * bench/bench_ensemble.c — held-out accuracy of reward models alone and as an ensemble,
 * per category, next to the verifiers (common/verify.c) on the pairs they can check:
 *
 *   build/bench/bench_ensemble PREFS.jsonl RM [RM ...] [--lambda L]
 *
 * Every pair {"prompt","chosen","rejected"[,"category"]} is encoded as the reward
 * trainer does (prompt and response encoded apart, EOS after the response, 64 + 64
 * tokens kept) with the tokenizer of the first RM's checkpoint, and scored by every RM
 * (normalised by its /reward_norm). A pair counts as right when the chosen response
 * scores higher (a tie counts half). Rows: the record's category and, from the prompt
 * text, the verifier kinds (arith, count, repeat). Columns: each RM, the mean of the
 * single-model accuracies, the ensemble under mean, mean - L * std (default L = 1) and
 * min (common/ensemble.c), and rule:verify on the verifiable rows (a pair where both
 * responses pass or both fail is a tie for it: it says nothing about style; the pairs
 * it decides and how many of them it gets right are printed too). The category field is
 * used only to group the report. Not a test: nothing is checked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "ckpt.h"
#include "dataset.h"
#include "ensemble.h"
#include "gpt.h"
#include "judge.h"
#include "ops.h"
#include "util.h"
#include "verify.h"

#define MAX_RM 8
#define MAXP 64
#define MAXR 64
#define BATCH 32
/* report rows: the 4 task categories, the 3 verifier kinds, all */
#define N_ROWS 8
static const char *const ROW_NAMES[N_ROWS] = {"fact",  "instruct", "unsafe", "chat",
                                              "arith", "count",    "repeat", "all"};
enum { COL_MEAN = MAX_RM, COL_MEANSTD, COL_MIN, COL_VERIFY, N_COLS };

static void die(const char *what, const char *err) {
    fprintf(stderr, "bench_ensemble: %s: %s\n", what, err);
    exit(1);
}

static void load_rm(const char *arg, GPT *m, double norm[2], BPE *tok) {
    char err[ERRBUF_LEN], path[CKPT_PATH_LEN];
    if (ckpt_resolve(arg, "auto", path, sizeof path, err) != 0) die(arg, "no checkpoint there");
    CkptReader *r = ckpt_reader_open(path, err);
    if (!r) die(path, err);
    if (!ckpt_has(r, "/reward")) die(path, "no /reward group");
    if (ckpt_load_model(r, "reward", m, err) != 0) die(path, err);
    norm[0] = 0;
    norm[1] = 1;
    if (ckpt_has(r, "/reward_norm") && ckpt_read_f64(r, "/reward_norm", norm, 2, err) != 0)
        die(path, err);
    const CkptMeta *meta = ckpt_reader_meta(r);
    if (tok && (!meta->tok_vocab || bpe_load_strings(tok, meta->tok_vocab, meta->tok_merges, err) != 0))
        die(path, "no usable tokenizer in the checkpoint");
    ckpt_reader_free(r);
}

/* Append prompt + response + EOS (cut to MAXP + MAXR) as one row of stride T. */
static int encode_row(BPE *tok, const char *p, const char *resp, int *row, int T) {
    int *ids = NULL;
    size_t cap = 0;
    int np = (int)bpe_encode(tok, p, strlen(p), 0, &ids, &cap);
    int off = np > MAXP ? np - MAXP : 0, n = 0;
    for (int i = off; i < np; i++) row[n++] = ids[i];
    free(ids);
    ids = NULL;
    cap = 0;
    int nr = (int)bpe_encode(tok, resp, strlen(resp), 0, &ids, &cap);
    if (nr > MAXR - 1) nr = MAXR - 1;
    for (int i = 0; i < nr; i++) row[n++] = ids[i];
    free(ids);
    row[n++] = tok->eos_id;
    for (int i = n; i < T; i++) row[i] = tok->pad_id;
    return n;
}

static void print_table(double right[N_ROWS][N_COLS], const double *count, const double *nver,
                        const double *ndec, const double *rdec, int K, double lambda) {
    printf("%-9s %5s", "rows", "pairs");
    for (int k = 0; k < K; k++) printf("   rm%-2d", k + 1);
    printf("  single   mean  m-%.1fsd    min  verify\n", lambda);
    for (int r = 0; r < N_ROWS; r++) {
        if (count[r] == 0) continue;
        double single = 0;
        printf("%-9s %5.0f", ROW_NAMES[r], count[r]);
        for (int k = 0; k < K; k++) {
            printf("  %.3f", right[r][k] / count[r]);
            single += right[r][k] / count[r] / K;
        }
        printf("   %.3f  %.3f   %.3f  %.3f", single, right[r][COL_MEAN] / count[r],
               right[r][COL_MEANSTD] / count[r], right[r][COL_MIN] / count[r]);
        if (nver[r] > 0)
            printf("  %.3f (%.0f pairs; decides %.0f, %.0f right)", right[r][COL_VERIFY] / nver[r],
                   nver[r], ndec[r], rdec[r]);
        printf("\n");
    }
}

int main(int argc, char **argv) {
    const char *rms[MAX_RM];
    int K = 0;
    double lambda = 1.0;
    const char *prefs = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--lambda") && i + 1 < argc) lambda = atof(argv[++i]);
        else if (!prefs) prefs = argv[i];
        else if (K < MAX_RM) rms[K++] = argv[i];
    }
    if (!prefs || K < 1) {
        fprintf(stderr, "usage: build/bench/bench_ensemble PREFS.jsonl RM [RM ...] [--lambda L]\n");
        return 2;
    }
    ops_blas_setup(0);
    BPE tok;
    memset(&tok, 0, sizeof tok);
    GPT m[MAX_RM];
    double norm[MAX_RM][2];
    for (int k = 0; k < K; k++) load_rm(rms[k], &m[k], norm[k], k == 0 ? &tok : NULL);
    char err[ERRBUF_LEN];
    Dataset ds;
    DataOptions dopt = {0};
    if (dataset_open(&ds, prefs, DATA_PREF, &dopt, err) != 0) die(prefs, err);
    const int T = MAXP + MAXR;
    int *tokens = xmalloc((size_t)2 * BATCH * T * sizeof(int)), lengths[2 * BATCH];
    for (int k = 0; k < K; k++) gpt_reserve(&m[k], 2 * BATCH, T);
    /* table 0: against the annotators' labels; table 1: against the gold judge's order */
    static double right[2][N_ROWS][N_COLS], count[2][N_ROWS], nver[2][N_ROWS];
    static double ndec[2][N_ROWS], rdec[2][N_ROWS]; /* pairs the verifier decides, right ones */
    Judge gold;
    if (judge_init(&gold, "gold", TASK_DEFAULT_SEED, err) != 0) die("gold judge", err);
    int gsign[BATCH];
    float sc[2 * BATCH][MAX_RM];
    int rowsof[BATCH][3];
    double vres[BATCH];
    for (int64_t at = 0; at < ds.n; at += BATCH) {
        int n = ds.n - at < BATCH ? (int)(ds.n - at) : BATCH;
        for (int i = 0; i < n; i++) {
            DataRecord rec = {0};
            if (dataset_get(&ds, at + i, &rec, err) != 0) die(prefs, err);
            lengths[2 * i] = encode_row(&tok, rec.prompt, rec.chosen, tokens + (size_t)2 * i * T, T);
            lengths[2 * i + 1] =
                encode_row(&tok, rec.prompt, rec.rejected, tokens + (size_t)(2 * i + 1) * T, T);
            int c = -1;
            for (int r = 0; r < 4 && rec.category; r++)
                if (!strcmp(rec.category, ROW_NAMES[r])) c = r;
            VerifyQuery q;
            VerifyKind vk = verify_parse(rec.prompt, &q);
            rowsof[i][0] = c;
            rowsof[i][1] = vk != VERIFY_NONE ? 3 + (int)vk : -1;
            rowsof[i][2] = N_ROWS - 1;
            vres[i] = -1;
            JudgeScores gc, gr;
            gsign[i] = 0;
            if (judge_score(&gold, rec.prompt, rec.chosen, &gc, err) == 0 &&
                judge_score(&gold, rec.prompt, rec.rejected, &gr, err) == 0)
                gsign[i] = gc.total > gr.total ? 1 : gc.total < gr.total ? -1 : 0;
            if (vk != VERIFY_NONE) {
                double a = verify_score(&q, rec.chosen), b = verify_score(&q, rec.rejected);
                vres[i] = a > b ? 1.0 : a == b ? 0.5 : 0.0;
            }
            data_record_free(&rec);
        }
        for (int k = 0; k < K; k++) {
            gpt_forward(&m[k], tokens, 2 * n, T);
            gpt_score_forward(&m[k], lengths, 2 * n, T);
            for (int j = 0; j < 2 * n; j++)
                sc[j][k] = (float)((m[k].scores[j] - norm[k][0]) / norm[k][1]);
        }
        for (int i = 0; i < n; i++) {
            const float *a = sc[2 * i], *b = sc[2 * i + 1];
            double col[N_COLS] = {0};
            for (int k = 0; k < K; k++) col[k] = a[k] > b[k] ? 1.0 : a[k] == b[k] ? 0.5 : 0.0;
            double ea[3] = {ensemble_combine(a, K, ENSEMBLE_MEAN_STD, 0.0),
                            ensemble_combine(a, K, ENSEMBLE_MEAN_STD, lambda),
                            ensemble_combine(a, K, ENSEMBLE_MIN, 0.0)};
            double eb[3] = {ensemble_combine(b, K, ENSEMBLE_MEAN_STD, 0.0),
                            ensemble_combine(b, K, ENSEMBLE_MEAN_STD, lambda),
                            ensemble_combine(b, K, ENSEMBLE_MIN, 0.0)};
            for (int e = 0; e < 3; e++)
                col[COL_MEAN + e] = ea[e] > eb[e] ? 1.0 : ea[e] == eb[e] ? 0.5 : 0.0;
            col[COL_VERIFY] = vres[i];
            for (int t = 0; t < 2; t++) {
                if (t == 1 && gsign[i] == 0) continue; /* gold ties say nothing */
                int flip = t == 1 && gsign[i] < 0;      /* gold prefers the "rejected" */
                for (int r = 0; r < 3; r++) {
                    int row = rowsof[i][r];
                    if (row < 0) continue;
                    count[t][row] += 1;
                    for (int c = 0; c < N_COLS; c++)
                        if (c != COL_VERIFY) right[t][row][c] += flip ? 1.0 - col[c] : col[c];
                    if (vres[i] >= 0) {
                        double v = flip ? 1.0 - vres[i] : vres[i];
                        right[t][row][COL_VERIFY] += v;
                        nver[t][row] += 1;
                        ndec[t][row] += v != 0.5;
                        rdec[t][row] += v == 1.0;
                    }
                }
            }
        }
    }
    for (int t = 0; t < 2; t++) {
        printf("%s\n", t == 0 ? "accuracy against the annotators' labels"
                              : "\naccuracy against the gold judge's order (gold ties left out)");
        print_table(right[t], count[t], nver[t], ndec[t], rdec[t], K, lambda);
    }
    judge_free(&gold);
    for (int k = 0; k < K; k++) gpt_free(&m[k]);
    bpe_free(&tok);
    dataset_free(&ds);
    free(tokens);
    return 0;
}
