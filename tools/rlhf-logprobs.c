/*
 * tools/rlhf-logprobs.c — score token sequences with a checkpoint's model.
 *
 *   rlhf-logprobs CKPT [--group NAME] < tokens.jsonl
 *
 * CKPT is a checkpoint file or a run directory (its newest loadable checkpoint). Every
 * input line is a JSON array of token ids x_0..x_{T-1} (1 <= T <= max_seq_len, each id in
 * [0, vocab_size)); for each line one JSON object is printed:
 *   LM head     {"logprobs": [log p(x_1|x_0), ..., log p(x_{T-1}|x_<T-1)]}   (T-1 values)
 *   score head  {"score": r}       the reward model's score read at the last token
 *   value head  {"values": [V_0, ..., V_{T-1}]}
 * The group is --group, else the first of policy, reward, reference, value present.
 * Numbers are printed with 9 significant digits (float32 round-trips).
 *
 * A malformed line is an error naming its line number (stdin:N) and the program exits 1
 * at once, so output line i always answers input line i. It runs one sequence at a time
 * (batch 1) on one thread's worth of BLAS: a checking tool, not a throughput one.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "lora.h"
#include "gpt.h"
#include "util.h"

static void usage(FILE *f) {
    fprintf(f, "usage: rlhf-logprobs CKPT [--group policy|reward|reference|value] < tokens.jsonl\n"
               "Each input line: a JSON array of token ids. Output per line: {\"logprobs\": "
               "[...]} (LM),\n{\"score\": x} (reward model) or {\"values\": [...]} (value "
               "model).\n"
               "CKPT: a checkpoint file or a run directory (its newest checkpoint).\n"
               "Exit status: 0 done; 1 a bad input line (stdin:N) or checkpoint; 2 a usage "
               "error.\n");
}

static void print_num(double v) {
    if (isfinite(v)) printf("%.9g", v);
    else printf("null");
}

/* Parse one line into tokens[]; returns T or -1 with err. */
static int parse_line(const char *line, const GPTConfig *c, int *tokens, char *err) {
    json_error_t je;
    json_t *a = json_loads(line, 0, &je);
    int n = -1;
    if (!a) {
        errf(err, "invalid JSON at column %d: %s", je.column, je.text);
        return -1;
    }
    if (!json_is_array(a)) {
        errf(err, "expected a JSON array of token ids");
        goto done;
    }
    size_t T = json_array_size(a);
    if (T < 1 || T > (size_t)c->max_seq_len) {
        errf(err, "%zu tokens: must be between 1 and max_seq_len = %d", T, c->max_seq_len);
        goto done;
    }
    for (size_t i = 0; i < T; i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_integer(v)) {
            errf(err, "token %zu is not an integer", i);
            goto done;
        }
        json_int_t id = json_integer_value(v);
        if (id < 0 || id >= c->vocab_size) {
            errf(err, "token %zu = %lld is outside [0, %d)", i, (long long)id, c->vocab_size);
            goto done;
        }
        tokens[i] = (int)id;
    }
    n = (int)T;
done:
    json_decref(a);
    return n;
}

int main(int argc, char **argv) {
    const char *ckpt = NULL, *group = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--group") == 0 && i + 1 < argc) {
            group = argv[++i];
        } else if (!ckpt && argv[i][0] != '-') {
            ckpt = argv[i];
        } else {
            usage_error("rlhf-logprobs", "unexpected argument '%s'", argv[i]);
        }
    }
    if (!ckpt) usage_error("rlhf-logprobs", "missing CKPT");
    char err[ERRBUF_LEN] = "", path[CKPT_PATH_LEN];
    int r = ckpt_resolve(ckpt, "auto", path, sizeof path, err);
    if (r == 1) fatal("%s: the run directory holds no checkpoint", ckpt);
    if (r != 0) fatal("%s", err);
    if (err[0]) fprintf(stderr, "rlhf-logprobs: warning: %s\n", err);
    CkptReader *rd = ckpt_reader_open(path, err);
    if (!rd) fatal("%s", err);
    if (!group) {
        static const char *order[] = {"/policy", "/reward", "/reference", "/value"};
        for (size_t i = 0; i < 4 && !group; i++)
            if (ckpt_has(rd, order[i])) group = order[i] + 1;
        if (!group) fatal("%s: no model group (policy, reward, reference or value)", path);
    }
    GPT m;
    if (ckpt_load_model(rd, group, &m, err) != 0) fatal("%s", err);
    /* a LoRA checkpoint: base + adapters, the adapters applied on the fly */
    if (lora_ckpt_has(rd) && lora_ckpt_read(rd, &m, err) != 0) fatal("%s", err);
    ckpt_reader_free(rd);
    const GPTConfig *c = &m.config;
    gpt_reserve(&m, 1, c->max_seq_len);
    int *tokens = xcalloc((size_t)c->max_seq_len, sizeof(int));
    int *targets = xcalloc((size_t)c->max_seq_len, sizeof(int));
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    long lineno = 0;
    while ((got = getline(&line, &cap, stdin)) != -1) {
        lineno++;
        if ((size_t)got != strlen(line)) {
            fflush(stdout);
            fatal("stdin:%ld: the line contains a NUL byte", lineno);
        }
        int T = parse_line(line, c, tokens, err);
        if (T < 0) {
            fflush(stdout);
            fatal("stdin:%ld: %s", lineno, err);
        }
        gpt_forward(&m, tokens, 1, T);
        if (c->head == GPT_HEAD_LM) {
            for (int t = 0; t < T; t++) targets[t] = t + 1 < T ? tokens[t + 1] : -1;
            gpt_lm_forward(&m, targets, 1, T);
            printf("{\"logprobs\":[");
            for (int t = 0; t + 1 < T; t++) {
                if (t) putchar(',');
                print_num(m.logprobs[t]);
            }
            printf("]}\n");
        } else if (c->head == GPT_HEAD_SCORE) {
            gpt_score_forward(&m, &T, 1, T);
            printf("{\"score\":");
            print_num(m.scores[0]);
            printf("}\n");
        } else {
            gpt_value_forward(&m, 1, T);
            printf("{\"values\":[");
            for (int t = 0; t < T; t++) {
                if (t) putchar(',');
                print_num(m.values[t]);
            }
            printf("]}\n");
        }
    }
    if (ferror(stdin)) fatal("stdin: read error");
    free(line);
    free(tokens);
    free(targets);
    gpt_free(&m);
    if (fflush(stdout) != 0) fatal("stdout: write error");
    return 0;
}
