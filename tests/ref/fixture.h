/*
 * tests/ref/fixture.h — reader for the reference fixtures in tests/ref/ (adamw.txt,
 * loss.txt, rl.txt), which tests/ref/gen_ref.py writes with PyTorch (autograd in
 * float64, torch.optim.AdamW) as an implementation independent of ours. Dev-time only:
 * the fixtures are committed, and no test runs Python.
 *
 * Format (text, one array per record):  <name> <count>\n<count numbers>\n
 * Numbers are printed with 17 significant digits (doubles round-trip). Inputs are
 * float32 values, so converting them to float is exact.
 *
 * Usage: RefFile f; if (ref_load(&f, "loss.txt") == 0) { const double *x =
 * ref_get(&f, "ce.lp", 15); ... } ref_free(&f). ref_load looks in $RLHF_REF_DIR, else in
 * tests/ref/ relative to the working directory (tests/run.sh runs from the repo root).
 * A missing file or array is reported on stderr and returned as -1 / NULL, so the test
 * that needs it fails (never skips silently).
 */
#ifndef RLHF_TEST_REF_FIXTURE_H
#define RLHF_TEST_REF_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char name[96];
    int n;
    double *v;
} RefArray;

typedef struct {
    int count;
    RefArray *a;
} RefFile;

static void ref_free(RefFile *f) {
    if (!f) return;
    for (int i = 0; i < f->count; i++) free(f->a[i].v);
    free(f->a);
    f->a = NULL;
    f->count = 0;
}

static int ref_load(RefFile *f, const char *file) {
    char path[1024];
    const char *dir = getenv("RLHF_REF_DIR");
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "tests/ref", file);
    f->count = 0;
    f->a = NULL;
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "fixture %s: cannot open (run from the repo root or set "
                        "RLHF_REF_DIR)\n", path);
        return -1;
    }
    char name[96];
    int n;
    while (fscanf(fp, "%95s %d", name, &n) == 2) {
        if (n < 0 || n > (1 << 24)) break;
        RefArray a;
        snprintf(a.name, sizeof a.name, "%s", name);
        a.n = n;
        a.v = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
        if (!a.v) break;
        int ok = 1;
        for (int i = 0; i < n && ok; i++) ok = fscanf(fp, "%lf", &a.v[i]) == 1;
        if (!ok) {
            free(a.v);
            fprintf(stderr, "fixture %s: array %s is truncated\n", path, name);
            fclose(fp);
            ref_free(f);
            return -1;
        }
        RefArray *na = realloc(f->a, sizeof(RefArray) * (size_t)(f->count + 1));
        if (!na) {
            free(a.v);
            break;
        }
        f->a = na;
        f->a[f->count++] = a;
    }
    int bad = !feof(fp);
    fclose(fp);
    if (bad) {
        fprintf(stderr, "fixture %s: malformed record after %d arrays\n", path, f->count);
        ref_free(f);
        return -1;
    }
    return 0;
}

/* The array called name with exactly n values (n < 0: any length), or NULL. */
static const double *ref_get(const RefFile *f, const char *name, int n) {
    for (int i = 0; i < f->count; i++) {
        if (strcmp(f->a[i].name, name) != 0) continue;
        if (n >= 0 && f->a[i].n != n) {
            fprintf(stderr, "fixture array %s has %d values, expected %d\n", name, f->a[i].n,
                    n);
            return NULL;
        }
        return f->a[i].v;
    }
    fprintf(stderr, "fixture array %s not found\n", name);
    return NULL;
}

/* Copy a fixture array into floats (the inputs are float32 values: exact). */
static void ref_to_float(float *out, const double *v, int n) {
    for (int i = 0; i < n; i++) out[i] = (float)v[i];
}

#endif
