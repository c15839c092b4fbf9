/*
 * tools/rlhf-ckpt.c — look inside rlhf-c checkpoints.
 *
 *   build/rlhf-ckpt info CKPT.h5|RUN_DIR     stage, step, models (sizes), verification
 *                                            (checksums; every weight finite), exit 1 if bad
 *   build/rlhf-ckpt diff A.h5 B.h5           compare every model, LoRA adapter (policy and
 *                                            critic) and optimizer buffer:
 *                                            exit 0 if bit-identical, 1 if not (with the
 *                                            largest difference per buffer), 2 on error
 *
 * `diff` is how the resume and reproducibility tests prove bit-exactness. A RUN_DIR is
 * resolved to its newest good checkpoint.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "lora.h"
#include "toksrc.h"
#include "util.h"

static const char *groups[] = {"policy", "value", "reward", "reference"};
#define N_GROUPS (sizeof groups / sizeof groups[0])

static CkptReader *open_any(const char *arg, char *path, size_t cap) {
    char err[ERRBUF_LEN] = "";
    int rc = ckpt_resolve(arg, "auto", path, cap, err);
    if (rc != 0) {
        fprintf(stderr, "rlhf-ckpt: %s: %s\n", arg, rc == 1 ? "no checkpoint there" : err);
        return NULL;
    }
    CkptReader *r = ckpt_reader_open(path, err);
    if (!r) fprintf(stderr, "rlhf-ckpt: %s\n", err);
    return r;
}

static int cmd_info(const char *arg) {
    char path[CKPT_PATH_LEN], err[ERRBUF_LEN] = "";
    CkptReader *r = open_any(arg, path, sizeof path);
    if (!r) return 2;
    const CkptMeta *m = ckpt_reader_meta(r);
    int bad = 0;
    printf("%s\n  stage %s, step %lld, policy_version %lld, tokenizer %s\n", path, m->stage,
           (long long)m->step, (long long)m->policy_version, toksrc_meta_form(m));
    for (size_t g = 0; g < N_GROUPS; g++) {
        char gp[64];
        snprintf(gp, sizeof gp, "/%s", groups[g]);
        if (!ckpt_has(r, gp)) continue;
        GPTConfig c;
        if (ckpt_read_model_config(r, groups[g], &c, err) != 0) {
            printf("  /%s: %s\n", groups[g], err);
            continue;
        }
        char op[80];
        snprintf(op, sizeof op, "/optim/%s/m", groups[g]);
        char fam[96] = "gpt2";
        if (c.family == GPT_FAMILY_LLAMA)
            snprintf(fam, sizeof fam, "llama NKV%d F%d%s", c.n_kv_head, c.d_ff,
                     c.tie_embeddings ? " tied" : " untied");
        printf("  /%s: %s head, %s V%d T%d L%d NH%d C%d, %zu parameters%s\n", groups[g],
               ckpt_head_name(c.head), fam, c.vocab_size, c.max_seq_len, c.n_layer, c.n_head,
               c.n_embd, gpt_config_num_params(&c),
               ckpt_has(r, op) ? ", with AdamW state" : "");
        GPT x;
        if (ckpt_load_model(r, groups[g], &x, err) != 0) {
            printf("  /%s: %s\n", groups[g], err);
            bad = 1;
            continue;
        }
        size_t nonfinite = 0;
        for (size_t i = 0; i < x.num_params; i++) nonfinite += !isfinite(x.params[i]);
        if (nonfinite) {
            printf("  /%s: %zu non-finite weights\n", groups[g], nonfinite);
            bad = 1;
        }
        gpt_free(&x);
    }
    int ok = ckpt_verify(r, err) == 0 && !bad;
    printf("  verification: %s\n", ok ? "every dataset's checksum matches, every weight is finite"
                                       : bad ? "FAILED (above)" : err);
    ckpt_reader_free(r);
    return ok ? 0 : 1;
}

/* Compare two float buffers; prints and returns 1 when they differ. */
static int compare(const char *what, const float *a, const float *b, size_t n) {
    size_t ndiff = 0, worst = 0;
    double maxd = 0;
    for (size_t i = 0; i < n; i++) {
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) {
            ndiff++;
            double d = fabs((double)a[i] - (double)b[i]);
            if (d > maxd || ndiff == 1) {
                maxd = d;
                worst = i;
            }
        }
    }
    if (ndiff == 0) {
        printf("  %-24s identical (%zu values)\n", what, n);
        return 0;
    }
    printf("  %-24s DIFFER: %zu of %zu values, max |a-b| = %.3g at %zu (%.9g vs %.9g)\n", what,
           ndiff, n, maxd, worst, a[worst], b[worst]);
    return 1;
}

/* AdamW's m, v and step of a group (/optim/<group>) when both files hold them; *rc = 2 on
 * a read error. Returns 1 when they differ. */
static int diff_adamw(const CkptReader *a, const CkptReader *b, const char *group, size_t n,
                      int *rc) {
    char op[96], err[ERRBUF_LEN] = "";
    snprintf(op, sizeof op, "/optim/%s/m", group);
    if (!ckpt_has(a, op) || !ckpt_has(b, op)) return 0;
    int differ = 0;
    float *m1 = xalloc_floats(n), *v1 = xalloc_floats(n), *m2 = xalloc_floats(n),
          *v2 = xalloc_floats(n);
    int64_t s1 = 0, s2 = 0;
    if (ckpt_read_adamw(a, group, m1, v1, n, &s1, err) == 0 &&
        ckpt_read_adamw(b, group, m2, v2, n, &s2, err) == 0) {
        char what[96];
        snprintf(what, sizeof what, "/optim/%s/m", group);
        differ |= compare(what, m1, m2, n);
        snprintf(what, sizeof what, "/optim/%s/v", group);
        differ |= compare(what, v1, v2, n);
        if (s1 != s2) {
            printf("  /optim/%s/step DIFFER: %lld vs %lld\n", group, (long long)s1, (long long)s2);
            differ = 1;
        }
    } else {
        fprintf(stderr, "rlhf-ckpt: %s\n", err);
        *rc = 2;
    }
    free(m1);
    free(v1);
    free(m2);
    free(v2);
    return differ;
}

/* The LoRA adapters of the policy (/lora, lora.h) and their AdamW state (/optim/lora):
 * read onto the loaded policies x and y, which must then have the same adapter config. */
static int diff_lora(const CkptReader *a, const CkptReader *b, GPT *x, GPT *y, int *rc) {
    int ha = lora_ckpt_has(a), hb = lora_ckpt_has(b);
    if (ha != hb) {
        printf("  /%-23s only in %s\n", "lora", ha ? "A" : "B");
        return 1;
    }
    if (!ha) return 0;
    char err[ERRBUF_LEN] = "";
    if (lora_ckpt_read(a, x, err) != 0 || lora_ckpt_read(b, y, err) != 0) {
        fprintf(stderr, "rlhf-ckpt: adapters: %s\n", err);
        *rc = 2;
        return 0;
    }
    if (x->lora->n != y->lora->n || x->lora->rank != y->lora->rank ||
        x->lora->targets != y->lora->targets) {
        printf("  /%-23s DIFFER in shape: rank %d vs %d, %zu vs %zu parameters\n", "lora",
               x->lora->rank, y->lora->rank, x->lora->n, y->lora->n);
        return 1;
    }
    int differ = compare("/lora", x->lora->params, y->lora->params, x->lora->n);
    if (x->lora->alpha != y->lora->alpha || x->lora->dropout != y->lora->dropout) {
        printf("  /%-23s DIFFER: alpha %g vs %g, dropout %g vs %g\n", "lora",
               (double)x->lora->alpha, (double)y->lora->alpha, (double)x->lora->dropout,
               (double)y->lora->dropout);
        differ = 1;
    }
    return differ | diff_adamw(a, b, "lora", x->lora->n, rc);
}

/* Every tensor of a group both files hold, in name order, as one buffer (*len floats,
 * malloc'd); NULL + *rc = 2 on a read error. */
static float *group_floats(const CkptReader *r, const char *group, char **names, int n,
                           size_t *len, int *rc) {
    char err[ERRBUF_LEN] = "", path[256];
    size_t tot = 0, k;
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "/%s/%s", group, names[i]);
        if (ckpt_read_len(r, path, &k, err) != 0) goto fail;
        tot += k;
    }
    float *buf = xalloc_floats(tot ? tot : 1);
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "/%s/%s", group, names[i]);
        if (ckpt_read_len(r, path, &k, err) != 0 || ckpt_read_f32(r, path, buf + at, k, err) != 0) {
            free(buf);
            goto fail;
        }
        at += k;
    }
    *len = tot;
    return buf;
fail:
    fprintf(stderr, "rlhf-ckpt: %s\n", err);
    *rc = 2;
    return NULL;
}

/* A group of named float tensors with no model config of its own (the LoRA critic's
 * /value_lora: adapters + value head) and its AdamW state: the same names, then every
 * value. */
static int diff_tensors(const CkptReader *a, const CkptReader *b, const char *group, int *rc) {
    char gp[96], err[ERRBUF_LEN] = "";
    snprintf(gp, sizeof gp, "/%s", group);
    int ha = ckpt_has(a, gp), hb = ckpt_has(b, gp);
    if (ha != hb) {
        printf("  /%-23s only in %s\n", group, ha ? "A" : "B");
        return 1;
    }
    if (!ha) return 0;
    char **na = NULL, **nb = NULL;
    int ca = 0, cb = 0, differ = 0;
    if (ckpt_group_names(a, group, &na, &ca, err) != 0 ||
        ckpt_group_names(b, group, &nb, &cb, err) != 0) {
        fprintf(stderr, "rlhf-ckpt: %s\n", err);
        *rc = 2;
    }
    int same = *rc == 0 && ca == cb;
    for (int i = 0; same && i < ca; i++) same = strcmp(na[i], nb[i]) == 0;
    if (*rc == 0 && !same) {
        printf("  /%-23s DIFFER in its tensors: %d vs %d\n", group, ca, cb);
        differ = 1;
    }
    if (same) {
        size_t la = 0, lb = 0;
        float *x = group_floats(a, group, na, ca, &la, rc);
        float *y = x ? group_floats(b, group, nb, cb, &lb, rc) : NULL;
        if (x && y && la != lb) {
            printf("  /%-23s DIFFER in size: %zu vs %zu values\n", group, la, lb);
            differ = 1;
        } else if (x && y) {
            differ = compare(gp, x, y, la) | diff_adamw(a, b, group, la, rc);
        }
        free(x);
        free(y);
    }
    for (int i = 0; i < ca; i++) free(na[i]);
    for (int i = 0; i < cb; i++) free(nb[i]);
    free(na);
    free(nb);
    return differ;
}

static int cmd_diff(const char *pa, const char *pb) {
    char path_a[CKPT_PATH_LEN], path_b[CKPT_PATH_LEN], err[ERRBUF_LEN] = "";
    CkptReader *a = open_any(pa, path_a, sizeof path_a), *b = a ? open_any(pb, path_b, sizeof path_b) : NULL;
    if (!a || !b) {
        ckpt_reader_free(a);
        return 2;
    }
    printf("diff %s %s\n", path_a, path_b);
    int differ = 0, compared = 0, rc = 0;
    const CkptMeta *ma = ckpt_reader_meta(a), *mb = ckpt_reader_meta(b);
    if (ma->step != mb->step) {
        printf("  step                     DIFFER: %lld vs %lld\n", (long long)ma->step,
               (long long)mb->step);
        differ = 1;
    }
    for (size_t g = 0; g < N_GROUPS && rc == 0; g++) {
        char gp[64];
        snprintf(gp, sizeof gp, "/%s", groups[g]);
        int ha = ckpt_has(a, gp), hb = ckpt_has(b, gp);
        if (ha != hb) {
            printf("  /%-23s only in %s\n", groups[g], ha ? "A" : "B");
            differ = 1;
            continue;
        }
        if (!ha) continue;
        GPT x, y;
        if (ckpt_load_model(a, groups[g], &x, err) != 0) {
            fprintf(stderr, "rlhf-ckpt: %s: %s\n", path_a, err);
            rc = 2;
            break;
        }
        if (ckpt_load_model(b, groups[g], &y, err) != 0) {
            fprintf(stderr, "rlhf-ckpt: %s: %s\n", path_b, err);
            gpt_free(&x);
            rc = 2;
            break;
        }
        if (x.num_params != y.num_params) {
            printf("  /%-23s DIFFER in size: %zu vs %zu parameters\n", groups[g], x.num_params,
                   y.num_params);
            differ = 1;
        } else {
            differ |= compare(gp, x.params, y.params, x.num_params);
            compared++;
            differ |= diff_adamw(a, b, groups[g], x.num_params, &rc);
            if (rc == 0 && g == 0) differ |= diff_lora(a, b, &x, &y, &rc);
        }
        gpt_free(&x);
        gpt_free(&y);
    }
    if (rc == 0) differ |= diff_tensors(a, b, "value_lora", &rc);
    ckpt_reader_free(a);
    ckpt_reader_free(b);
    if (rc) return rc;
    if (compared == 0) {
        fprintf(stderr, "rlhf-ckpt: no model group in common\n");
        return 2;
    }
    printf("%s\n", differ ? "checkpoints differ" : "bit-identical");
    return differ ? 1 : 0;
}

static void usage(FILE *f, const char *cmd) {
    if (!cmd || strcmp(cmd, "info") == 0)
        fprintf(f, "usage: rlhf-ckpt info CKPT.h5|RUN_DIR\n"
                   "  stage, step, models and their sizes, verification (checksums, every\n"
                   "  weight finite). Exit status: 0 good; 1 a bad checkpoint; 2 usage or I/O.\n");
    if (!cmd || strcmp(cmd, "diff") == 0)
        fprintf(f, "usage: rlhf-ckpt diff A.h5|RUN_DIR B.h5|RUN_DIR\n"
                   "  compares every model and optimizer buffer. Exit status: 0 bit-identical;\n"
                   "  1 they differ (largest difference per buffer); 2 usage or I/O error.\n");
    if (!cmd) fprintf(f, "A RUN_DIR stands for its newest good checkpoint.\n");
}

static int is_help(const char *a) { return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0; }

int main(int argc, char **argv) {
    const char *cmd = argc >= 2 && (!strcmp(argv[1], "info") || !strcmp(argv[1], "diff"))
                          ? argv[1] : NULL;
    for (int i = 1; i < argc; i++)
        if (is_help(argv[i])) {
            usage(stdout, cmd);
            return 0;
        }
    if (cmd && strcmp(cmd, "info") == 0 && argc == 3) return cmd_info(argv[2]);
    if (cmd && strcmp(cmd, "diff") == 0 && argc == 4) return cmd_diff(argv[2], argv[3]);
    if (!cmd)
        fprintf(stderr, "rlhf-ckpt: %s%s%s (see rlhf-ckpt --help)\n",
                argc < 2 ? "missing command info or diff" : "unknown command '",
                argc < 2 ? "" : argv[1], argc < 2 ? "" : "'");
    else
        fprintf(stderr, "rlhf-ckpt %s: wrong number of arguments (see rlhf-ckpt %s --help)\n",
                cmd, cmd);
    return 2;
}
