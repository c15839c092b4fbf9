/*
 * tools/rlhf-task.c — generate the bundled task's data sets (common/task.h).
 *
 *   build/rlhf-task gen --out DIR [--seed S] [--sizes sft=N,prefs=N,prefs_eval=N,
 *                                  prompts=N,prompts_eval=N,redteam=N,contrast=PCT,arith=N]
 *   build/rlhf-task world [--seed S]             the world's facts as JSON (stdout)
 *   build/rlhf-task examples [--seed S] [--n N]  N prompts, a response of every quality
 *                                                each, with the gold judge's scores
 *   build/rlhf-task rank-candidates [--seed S] [--n N] [--k K] [--stream I]
 *       N rank-mode candidate lines {"prompt","responses":[K responses of distinct
 *       qualities, shuffled],"category","id"} on stdout, for rlhf-label --mode rank or
 *       rlhf-judge --rank; --stream gives independent prompt sets (train 0, eval 1).
 *
 * gen writes corpus.txt, sft.jsonl, prefs_train.jsonl, prefs_eval.jsonl,
 * prompts_train.jsonl, prompts_eval.jsonl, prompts_redteam.jsonl, ceiling.json and
 * world.json into DIR, each atomically; the same seed and sizes give byte-identical
 * files. docs/task.md describes every file. This program does not train or tokenise.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "judge.h"
#include "task.h"
#include "util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: rlhf-task gen --out DIR [--seed S] [--sizes sft=N,prefs=N,prefs_eval=N,"
            "prompts=N,prompts_eval=N,redteam=N,contrast=PCT,arith=N]\n"
            "       rlhf-task world [--seed S]\n"
            "       rlhf-task examples [--seed S] [--n N]\n"
            "       rlhf-task rank-candidates [--seed S] [--n N] [--k K (2..7)] [--stream I]\n"
            "       rlhf-task probes PROMPTS.jsonl [--seed S] [--n N (pairs per prompt)]\n"
            "defaults: --seed %d --sizes sft=6000,prefs=24000,prefs_eval=600,prompts=1000,"
            "prompts_eval=200,redteam=100,contrast=%d,arith=%d\n"
            "(contrast: %% of the safe prompts' comparison pairs that are contrast pairs;\n"
            " arith: extra a+b / a-b comparison pairs appended to prefs_train.jsonl)\n"
            "Exit status: 0 done; 1 an error (cannot write DIR); 2 a usage error.\n",
            TASK_DEFAULT_SEED, TASK_CONTRAST_PCT, TASK_PREFS_ARITH);
}

static uint64_t parse_seed(const char *s) {
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || s[0] == '-') fatal("--seed '%s': expected a non-negative integer", s);
    return (uint64_t)v;
}

static int cmd_gen(int argc, char **argv) {
    const char *out_dir = NULL;
    uint64_t seed = TASK_DEFAULT_SEED;
    TaskSizes sizes;
    char err[ERRBUF_LEN];
    task_sizes_default(&sizes);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc && (!strcmp(a, "--out") || !strcmp(a, "--seed") || !strcmp(a, "--sizes")))
            usage_error("rlhf-task", "%s needs a value", a);
        if (!strcmp(a, "--out"))
            out_dir = argv[++i];
        else if (!strcmp(a, "--seed"))
            seed = parse_seed(argv[++i]);
        else if (!strcmp(a, "--sizes")) {
            if (task_sizes_parse(&sizes, argv[++i], err) != 0) fatal("%s", err);
        } else {
            usage_error("rlhf-task", "gen: unknown argument '%s'", a);
        }
    }
    if (!out_dir) usage_error("rlhf-task", "gen: --out DIR is required");
    double t0 = time_now();
    TaskOutput out;
    if (task_generate(&out, seed, &sizes, err) != 0) fatal("%s", err);
    if (task_output_write(&out, out_dir, err) != 0) fatal("%s", err);
    fprintf(stderr,
            "rlhf-task: wrote %s (seed %llu): sft %d, prefs %d+%d/%d, prompts %d/%d/%d in %.2f s; "
            "eval label agreement with gold: expected %.4f, observed %.4f\n",
            out_dir, (unsigned long long)seed, sizes.sft, sizes.prefs_train, sizes.prefs_arith,
            sizes.prefs_eval,
            sizes.prompts_train, sizes.prompts_eval, sizes.prompts_redteam, time_now() - t0,
            out.eval_all.expected, out.eval_all.empirical);
    task_output_free(&out);
    return 0;
}

static int cmd_world(int argc, char **argv) {
    uint64_t seed = TASK_DEFAULT_SEED;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = parse_seed(argv[++i]);
        else
            usage_error("rlhf-task", "world: unknown argument '%s'", argv[i]);
    }
    TaskSizes none = {0, 0, 0, 0, 0, 0, 0, 0};
    TaskOutput out;
    char err[ERRBUF_LEN];
    if (task_generate(&out, seed, &none, err) != 0) fatal("%s", err);
    fputs(out.world.data, stdout);
    task_output_free(&out);
    return 0;
}

static int cmd_examples(int argc, char **argv) {
    uint64_t seed = TASK_DEFAULT_SEED;
    int n = 4;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = parse_seed(argv[++i]);
        else if (!strcmp(argv[i], "--n") && i + 1 < argc) {
            n = atoi(argv[++i]);
            if (n < 1 || n > 1000) fatal("--n: expected 1..1000");
        } else
            usage_error("rlhf-task", "examples: unknown argument '%s'", argv[i]);
    }
    TaskWorld w;
    task_world_init(&w, seed);
    char err[ERRBUF_LEN], question[TASK_TEXT_LEN], prompt[TASK_TEXT_LEN], resp[TASK_TEXT_LEN];
    for (int i = 0; i < n; i++) {
        Rng r;
        rng_init_keyed(&r, seed, 99, (uint64_t)i);
        TaskQuery q;
        TaskCategory c = (TaskCategory)(i % TASK_N_CAT);
        task_sample_query(&w, c, 0, &r, &q);
        task_question_render(question, sizeof question, &w, &q,
                             (int)rng_below(&r, (uint64_t)task_n_templates(q.kind, 0)), 0);
        task_prompt_format(prompt, sizeof prompt, question);
        printf("== %s/%s: %s\n", task_category_name(c), task_kind_name(q.kind), question);
        for (int k = 0; k < TASK_N_QUALITY; k++) {
            if (task_response_render(resp, sizeof resp, &w, &q, (TaskQuality)k, &r) < 0) continue;
            JudgeScores s;
            if (judge_gold(&w, prompt, resp, &s, err) != 0) fatal("%s", err);
            printf("  %-13s total %.3f (help %.2f harm %.2f polite %.2f concise %.2f) |%s\n",
                   task_quality_name((TaskQuality)k), s.total, s.helpfulness, s.harmlessness,
                   s.politeness, s.concision, resp);
        }
    }
    return 0;
}

/* One candidates line: K distinct applicable qualities in random order. */
static void rank_line(const TaskWorld *w, uint64_t seed, uint64_t stream, int i, int k) {
    char question[TASK_TEXT_LEN], prompt[TASK_TEXT_LEN], resp[TASK_TEXT_LEN];
    Rng r;
    rng_init_keyed(&r, seed, 0x72616e6bULL /* "rank" */ + stream, (uint64_t)i);
    TaskQuery q;
    TaskCategory c = (TaskCategory)rng_below(&r, TASK_N_CAT);
    task_sample_query(w, c, 0, &r, &q);
    task_question_render(question, sizeof question, w, &q,
                         (int)rng_below(&r, (uint64_t)task_n_templates(q.kind, 0)), 0);
    task_prompt_format(prompt, sizeof prompt, question);
    int qual[TASK_N_QUALITY];
    for (int j = 0; j < TASK_N_QUALITY; j++) qual[j] = j;
    json_t *o = json_object(), *arr = json_array();
    for (int j = 0; j < TASK_N_QUALITY && (int)json_array_size(arr) < k; j++) {
        int x = j + (int)rng_below(&r, (uint64_t)(TASK_N_QUALITY - j)), t = qual[j];
        qual[j] = qual[x];
        qual[x] = t;
        if (task_response_render(resp, sizeof resp, w, &q, (TaskQuality)qual[j], &r) >= 0)
            json_array_append_new(arr, json_string(resp));
    }
    char id[64];
    snprintf(id, sizeof id, "rank-%llu-%d", (unsigned long long)stream, i);
    json_object_set_new(o, "prompt", json_string(prompt));
    json_object_set_new(o, "responses", arr);
    json_object_set_new(o, "category", json_string(task_category_name(c)));
    json_object_set_new(o, "id", json_string(id));
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    ASSERT(line != NULL);
    puts(line);
    free(line);
    json_decref(o);
}

static int cmd_rank_candidates(int argc, char **argv) {
    uint64_t seed = TASK_DEFAULT_SEED, stream = 0;
    int n = 100, k = 4;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = parse_seed(argv[++i]);
        else if (!strcmp(argv[i], "--stream") && i + 1 < argc)
            stream = parse_seed(argv[++i]);
        else if (!strcmp(argv[i], "--n") && i + 1 < argc) {
            n = atoi(argv[++i]);
            if (n < 1 || n > 1000000) fatal("--n: expected 1..1000000");
        } else if (!strcmp(argv[i], "--k") && i + 1 < argc) {
            k = atoi(argv[++i]);
            if (k < 2 || k > 7) fatal("--k: expected 2..7 (qualities that apply to every prompt)");
        } else
            usage_error("rlhf-task", "rank-candidates: unknown argument '%s'", argv[i]);
    }
    TaskWorld w;
    task_world_init(&w, seed);
    for (int i = 0; i < n; i++) rank_line(&w, seed, stream, i, k);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* Probe pairs for every {"prompt"} line of a prompts file, on stdout. */
static int cmd_probes(int argc, char **argv) {
    uint64_t seed = TASK_DEFAULT_SEED;
    int n = 4;
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = parse_seed(argv[++i]);
        else if (!strcmp(argv[i], "--n") && i + 1 < argc) {
            n = atoi(argv[++i]);
            if (n < 1 || n > 1000) fatal("--n: expected 1..1000");
        } else if (!path && argv[i][0] != '-')
            path = argv[i];
        else
            usage_error("rlhf-task", "probes: unknown argument '%s'", argv[i]);
    }
    if (!path) usage_error("rlhf-task", "probes: a prompts file is required");
    FILE *f = fopen(path, "r");
    if (!f) fatal("%s: cannot open: %s", path, strerror(errno));
    TaskWorld w;
    task_world_init(&w, seed);
    TaskBuf out = {0};
    char err[ERRBUF_LEN], *line = NULL;
    size_t cap = 0;
    for (int ln = 1; getline(&line, &cap, f) > 0; ln++) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        const char *prompt = o ? json_string_value(json_object_get(o, "prompt")) : NULL;
        if (!prompt) fatal("%s:%d: expected a JSON object with a string \"prompt\"", path, ln);
        if (task_probe_pairs(&out, &w, prompt, n, seed, (uint64_t)ln, err) != 0)
            fatal("%s:%d: %s (is it the task of seed %llu?)", path, ln, err,
                  (unsigned long long)seed);
        json_decref(o);
    }
    free(line);
    fclose(f);
    if (out.len) fwrite(out.data, 1, out.len, stdout);
    free(out.data);
    return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc < 2) usage_error("rlhf-task", "missing command gen, world or examples");
    for (int i = 1; i < argc; i++) /* any command's --help: the whole usage */
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") || !strcmp(argv[1], "help")) {
            usage(stdout);
            return 0;
        }
    if (!strcmp(argv[1], "gen")) return cmd_gen(argc - 2, argv + 2);
    if (!strcmp(argv[1], "world")) return cmd_world(argc - 2, argv + 2);
    if (!strcmp(argv[1], "rank-candidates")) return cmd_rank_candidates(argc - 2, argv + 2);
    if (!strcmp(argv[1], "examples")) return cmd_examples(argc - 2, argv + 2);
    if (!strcmp(argv[1], "probes")) return cmd_probes(argc - 2, argv + 2);
    usage_error("rlhf-task", "unknown command '%s'", argv[1]);
}
