/*
 * tools/rlhf-tokenize.c — the byte-level BPE tokenizer (common/bpe.h) on the command line.
 *
 *   rlhf-tokenize (--vocab FILE --merges FILE | --tokenizer FILE | --ckpt CKPT) [--special]
 *       [--skip-bad]
 *       reads one JSON string per line on stdin, prints one JSON array of ids per line;
 *   rlhf-tokenize ... --decode [--skip-special]
 *       reads one JSON array of ids per line, prints one JSON string per line (a byte
 *       sequence that is not valid UTF-8, e.g. half a character, is written with U+FFFD
 *       as JavaScript's TextDecoder does);
 *   rlhf-tokenize train --vocab-size N --out DIR [--min-frequency K] [--pad-token S]
 *       [--quiet] FILE...
 *       trains on the files (each file one text) and writes DIR/vocab.json and
 *       DIR/merges.txt (GPT-2 / Hugging Face formats).
 *
 * --vocab/--merges take GPT-2's encoder.json + vocab.bpe or HF vocab.json + merges.txt;
 * --tokenizer takes a Hugging Face tokenizer.json of the byte-level BPE kind (Llama 3,
 * Qwen2/Qwen3; common/hftok.h), with its added tokens and NFC normalizer;
 * --ckpt takes an rlhf-c checkpoint file or run directory (its newest good checkpoint)
 * and uses the tokenizer stored in it (vocab + merges, or an imported model's tokenizer.json;
 * common/toksrc.h). --special encodes special-token strings in the text
 * ("<|endoftext|>"; with --tokenizer every added token marked special, "<|im_start|>",
 * "<|begin_of_text|>", ...) as their ids; otherwise they are plain text. (Added tokens
 * that are not special, e.g. Qwen3's "<think>", are always their ids, as in HF.) A bad input line is an error naming its line
 * number (exit 1); with --skip-bad it is reported on stderr, "null" is printed in its
 * place (so output lines stay aligned with input lines) and the exit status is 0.
 *
 * Not here: raw-text input (every line is JSON, so any text, newlines included, fits on
 * one line), batching across processes.
 */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "ckpt.h"
#include "hftok.h"
#include "toksrc.h"
#include "util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage:\n"
            "  rlhf-tokenize (--vocab FILE --merges FILE | --tokenizer FILE | --ckpt CKPT)\n"
            "      [--special] [--skip-bad]\n"
            "      stdin: one JSON string per line -> stdout: one JSON array of ids per line\n"
            "  rlhf-tokenize (--vocab FILE --merges FILE | --tokenizer FILE | --ckpt CKPT) --decode\n"
            "      [--skip-special] [--skip-bad]\n"
            "      stdin: one JSON array of ids per line -> stdout: one JSON string per line\n"
            "  rlhf-tokenize train --vocab-size N --out DIR [--min-frequency K] [--pad-token S]\n"
            "      [--quiet] FILE...\n"
            "      train on FILEs, write DIR/vocab.json and DIR/merges.txt\n"
            "Exit status: 0 done (bad lines reported and replaced by null with --skip-bad);\n"
            "1 a bad line (stdin:N), file or checkpoint; 2 a usage error.\n");
}

static int parse_int(const char *s, const char *what, int lo, int hi) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end != 0 || v < lo || v > hi)
        fatal("%s must be an integer in %d..%d, got \"%s\"", what, lo, hi, s);
    return (int)v;
}

static int cmd_train(int argc, char **argv) {
    BPETrainConfig cfg = {0};
    const char *out = NULL;
    const char **files = xcalloc((size_t)argc, sizeof(char *));
    int nfiles = 0;
    cfg.verbose = 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--vocab-size") && i + 1 < argc)
            cfg.vocab_size = parse_int(argv[++i], "--vocab-size", 257, BPE_MAX_VOCAB);
        else if (!strcmp(a, "--min-frequency") && i + 1 < argc)
            cfg.min_frequency = parse_int(argv[++i], "--min-frequency", 1, INT_MAX);
        else if (!strcmp(a, "--pad-token") && i + 1 < argc)
            cfg.pad_token = argv[++i];
        else if (!strcmp(a, "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(a, "--quiet"))
            cfg.verbose = 0;
        else if (a[0] == '-' && a[1] != 0)
            usage_error("rlhf-tokenize", "train: unknown option or missing value: %s", a);
        else
            files[nfiles++] = a;
    }
    if (!cfg.vocab_size || !out || nfiles == 0)
        usage_error("rlhf-tokenize", "train needs --vocab-size, --out and at least one FILE");
    char err[ERRBUF_LEN];
    BPE t;
    if (bpe_train_files(&t, files, nfiles, &cfg, err)) fatal("%s", err);
    if (t.vocab_size < cfg.vocab_size)
        fprintf(stderr,
                "rlhf-tokenize: warning: the corpus supports only %d ids (%d asked): no pair "
                "left to merge%s\n",
                t.vocab_size, cfg.vocab_size, cfg.min_frequency > 1 ? " often enough" : "");
    if (file_mkdirs(out, err)) fatal("%s", err);
    size_t n = strlen(out) + 32;
    char *vp = xmalloc(n), *mp = xmalloc(n);
    snprintf(vp, n, "%s/vocab.json", out);
    snprintf(mp, n, "%s/merges.txt", out);
    if (bpe_save_files(&t, vp, mp, err)) fatal("%s", err);
    fprintf(stderr, "rlhf-tokenize: wrote %s and %s (%d ids: 256 bytes, %d merges, eos %d, pad %d)\n",
            vp, mp, t.vocab_size, t.num_merges, t.eos_id, t.pad_id);
    free(vp);
    free(mp);
    free(files);
    bpe_free(&t);
    return 0;
}

/* Load the tokenizer stored in a checkpoint file or run directory. */
static void load_ckpt(BPE *t, const char *ckpt) {
    char err[ERRBUF_LEN], path[CKPT_PATH_LEN];
    int rc = ckpt_resolve(ckpt, "auto", path, sizeof path, err);
    if (rc < 0) fatal("%s", err);
    if (rc == 1) fatal("%s: no checkpoint in this directory", ckpt);
    CkptReader *r = ckpt_reader_open(path, err);
    if (!r) fatal("%s", err);
    const CkptMeta *m = ckpt_reader_meta(r);
    if (!toksrc_meta_has(m))
        fatal("%s: the checkpoint stores no tokenizer (/tokenizer/vocab + /tokenizer/merges "
              "or /tokenizer/json); use --vocab and --merges",
              path);
    if (toksrc_load_meta(t, NULL, m, path, err)) fatal("%s: stored tokenizer: %s", path, err);
    ckpt_reader_free(r);
}

/* Parse one line as a JSON array of ids; -1 with err. */
static int parse_ids(const char *line, size_t len, int **ids, size_t *cap, size_t *n, char *err) {
    json_error_t je;
    json_t *v = json_loadb(line, len, 0, &je);
    if (!v) return errf(err, "not JSON: %s (column %d)", je.text, je.column);
    if (!json_is_array(v)) {
        json_decref(v);
        return errf(err, "expected a JSON array of token ids");
    }
    size_t k, m = json_array_size(v);
    json_t *e;
    if (m > *cap) {
        *cap = m;
        *ids = xrealloc(*ids, m * sizeof(int));
    }
    json_array_foreach(v, k, e) {
        if (!json_is_integer(e) || json_integer_value(e) < INT_MIN ||
            json_integer_value(e) > INT_MAX) {
            json_decref(v);
            return errf(err, "element %zu is not an integer token id", k);
        }
        (*ids)[k] = (int)json_integer_value(e);
    }
    json_decref(v);
    *n = m;
    return 0;
}

static void print_ids(FILE *f, const int *ids, size_t n) {
    fputc('[', f);
    for (size_t k = 0; k < n; k++) fprintf(f, k ? ",%d" : "%d", ids[k]);
    fputs("]\n", f);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) /* any command's --help: the whole usage */
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
    if (argc >= 2 && !strcmp(argv[1], "train")) return cmd_train(argc - 2, argv + 2);
    const char *vocab = NULL, *merges = NULL, *ckpt = NULL, *hf = NULL;
    int decode = 0, skip_bad = 0;
    unsigned eflags = 0, dflags = BPE_DECODE_REPLACE_INVALID;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--vocab") && i + 1 < argc)
            vocab = argv[++i];
        else if (!strcmp(a, "--merges") && i + 1 < argc)
            merges = argv[++i];
        else if (!strcmp(a, "--tokenizer") && i + 1 < argc)
            hf = argv[++i];
        else if (!strcmp(a, "--ckpt") && i + 1 < argc)
            ckpt = argv[++i];
        else if (!strcmp(a, "--decode"))
            decode = 1;
        else if (!strcmp(a, "--special"))
            eflags |= BPE_ENCODE_SPECIAL;
        else if (!strcmp(a, "--skip-special"))
            dflags |= BPE_DECODE_SKIP_SPECIAL;
        else if (!strcmp(a, "--skip-bad"))
            skip_bad = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            usage_error("rlhf-tokenize", "unknown option or missing value: %s", a);
        }
    }
    if ((!!ckpt + !!hf + !!(vocab || merges)) != 1 || (vocab && !merges) || (merges && !vocab))
        usage_error("rlhf-tokenize", "give either --vocab and --merges, or --tokenizer, or --ckpt");
    BPE t;
    char err[ERRBUF_LEN];
    if (ckpt)
        load_ckpt(&t, ckpt);
    else if (hf) {
        if (hftok_load_file(&t, hf, err)) fatal("%s", err);
    }
    else if (bpe_load_files(&t, vocab, merges, err))
        fatal("%s", err);

    static char outbuf[1 << 16];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    char *line = NULL;
    size_t line_cap = 0, ids_cap = 0, bad = 0;
    int *ids = NULL;
    ssize_t len;
    for (long lineno = 1; (len = getline(&line, &line_cap, stdin)) >= 0; lineno++) {
        if (decode) {
            size_t n = 0, tl = 0;
            char *text = NULL;
            int rc = parse_ids(line, (size_t)len, &ids, &ids_cap, &n, err);
            if (rc == 0) rc = bpe_decode(&t, ids, n, dflags, &text, &tl, err);
            if (rc == 0) {
                json_t *s = json_stringn_nocheck(text, tl);
                char *js = json_dumps(s, JSON_ENCODE_ANY);
                ASSERT(js);
                fputs(js, stdout);
                fputc('\n', stdout);
                free(js);
                json_decref(s);
                free(text);
                continue;
            }
        } else {
            json_error_t je;
            json_t *v = json_loadb(line, (size_t)len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
            if (v && json_is_string(v)) {
                size_t n = bpe_encode(&t, json_string_value(v), json_string_length(v), eflags,
                                      &ids, &ids_cap);
                print_ids(stdout, ids, n);
                json_decref(v);
                continue;
            }
            if (v) errf(err, "expected a JSON string (one text per line)");
            else errf(err, "not JSON: %s (column %d)", je.text, je.column);
            json_decref(v);
        }
        bad++;
        fflush(stdout);
        fprintf(stderr, "rlhf-tokenize: stdin:%ld: %s\n", lineno, err);
        if (!skip_bad) {
            fprintf(stderr, "rlhf-tokenize: stopping (use --skip-bad to skip bad lines)\n");
            return 1;
        }
        fputs("null\n", stdout);
    }
    fflush(stdout);
    if (ferror(stdout)) fatal("writing stdout failed");
    if (bad) fprintf(stderr, "rlhf-tokenize: skipped %zu bad line%s\n", bad, bad == 1 ? "" : "s");
    free(line);
    free(ids);
    bpe_free(&t);
    return 0;
}
