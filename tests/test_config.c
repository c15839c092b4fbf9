/*
 * tests/test_config.c — the configuration: defaults, INI parsing, overrides, every error
 * message (with file:line and the suggested key), cross-key rules, the dump/parse round
 * trip, config_diff, the model resolution, and that docs/config.md is up to date.
 *
 * `build/tests/test_config --markdown` prints the Markdown reference instead of testing
 * (that output is docs/config.md).
 */
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "rng.h"
#include "test.h"
#include "util.h"

static char err[ERRBUF_LEN];

/* Parse text on top of the defaults; returns the rc, err holds the message. */
static int parse(RlhfConfig *c, const char *text) {
    err[0] = 0;
    config_defaults(c);
    return config_parse_text(c, text, "t.ini", err);
}

#define CHECK_ERR(rc, substr)                                                                      \
    do {                                                                                           \
        CHECK_EQ_INT((rc), -1);                                                                    \
        CHECK_MSG(strstr(err, (substr)) != NULL, "message '%s' lacks '%s'", err, (substr));        \
    } while (0)

static void test_defaults(void) {
    RlhfConfig c;
    config_defaults(&c);
    CHECK_EQ_INT(c.run.seed, 1234);
    CHECK(strcmp(c.run.out_dir, "runs/default") == 0);
    CHECK(strcmp(c.run.resume, "none") == 0);
    CHECK(strcmp(c.run.bad_data, "skip") == 0);
    CHECK_NEAR(c.optim.lr, 3e-4, 0, 0);
    CHECK_NEAR(c.optim.eps, 1e-8, 0, 0);
    CHECK_EQ_INT(c.optim.batch_size, 16);
    CHECK_EQ_INT(c.ppo.epochs, 4);
    CHECK_EQ_INT(c.optim.epochs, 0);
    CHECK(c.data.shuffle == true);
    CHECK(c.rm.normalize == false);
    CHECK(strcmp(c.dpo.loss, "sigmoid") == 0);
    CHECK(strcmp(c.model.preset, "tiny") == 0);
    CHECK(strcmp(c.model.init, "") == 0);
    CHECK_EQ_INT(c.grpo.group_size, 4);
    err[0] = 0;
    CHECK_MSG(config_validate(&c, err) == 0, "defaults invalid: %s", err);
    /* every default is inside its own range and reads back through the typed parser */
    char val[CONFIG_STR_MAX + 8];
    for (int i = 0; i < config_num_keys; i++) {
        const ConfigKey *k = &config_keys[i];
        RlhfConfig d;
        config_defaults(&d);
        config_value_text(&c, k, val, sizeof val);
        char line[CONFIG_STR_MAX + 64];
        snprintf(line, sizeof line, "[%s]\n%s = %s\n", k->section, k->name, val);
        int rc = config_parse_text(&d, line, "defaults", err);
        CHECK_MSG(rc == 0, "default of %s does not parse: %s", k->key, err);
        CHECK(config_diff(&c, &d, NULL, 0) == 0);
        CHECK_MSG(config_find_key(k->key) == k, "key %s not found", k->key);
    }
    CHECK(config_find_key("optim.nope") == NULL);
}

static void test_parse(void) {
    RlhfConfig c;
    const char *text = "# a comment\n"
                       "; another comment\n"
                       "\n"
                       "[run]\r\n"
                       "seed = 7   # trailing comment\n"
                       "out_dir = \"runs/with space # not a comment\"\n"
                       "resume = auto ; comment\n"
                       "  [ optim ]  # spaced header\n"
                       "lr=1e-3\n"
                       "\tbatch_size =   32\t\n"
                       "[data]\n"
                       "shuffle = off\n"
                       "truncate_prompt = right\n"
                       "train = data/a#b.jsonl\n"
                       "[judge]\n"
                       "kind = rule\n"
                       "rule = \"say \\\"hi\\\"\\tand\\\\\"\n"
                       "[optim]\n"
                       "steps = 10\n"; /* a section may reappear */
    int rc = parse(&c, text);
    CHECK_MSG(rc == 0, "%s", err);
    CHECK_EQ_INT(c.run.seed, 7);
    CHECK(strcmp(c.run.out_dir, "runs/with space # not a comment") == 0);
    CHECK(strcmp(c.run.resume, "auto") == 0);
    CHECK_NEAR(c.optim.lr, 1e-3, 0, 0);
    CHECK_EQ_INT(c.optim.batch_size, 32);
    CHECK_EQ_INT(c.optim.steps, 10);
    CHECK(c.data.shuffle == false);
    CHECK(strcmp(c.data.truncate_prompt, "right") == 0);
    CHECK(strcmp(c.data.train, "data/a#b.jsonl") == 0); /* '#' not after blank: kept */
    CHECK(strcmp(c.judge.rule, "say \"hi\"\tand\\") == 0);
    /* untouched keys keep their defaults */
    CHECK_EQ_INT(c.optim.warmup_steps, 20);
    /* booleans in every spelling */
    const char *yes[] = {"true", "TRUE", "yes", "on", "1"}, *no[] = {"false", "No", "off", "0"};
    for (int i = 0; i < 5; i++) {
        char t[64];
        snprintf(t, sizeof t, "[rm]\nnormalize = %s\n", yes[i]);
        CHECK(parse(&c, t) == 0 && c.rm.normalize == true);
    }
    for (int i = 0; i < 4; i++) {
        char t[64];
        snprintf(t, sizeof t, "[ppo]\nwhiten = %s\n", no[i]);
        CHECK(parse(&c, t) == 0 && c.ppo.whiten == false);
    }
    /* an empty value is an empty string */
    CHECK(parse(&c, "[run]\nout_dir = \"x\"\n[model]\ninit =\n") == 0);
    CHECK(strcmp(c.model.init, "") == 0);
    /* the same key in two sections is two keys */
    CHECK(parse(&c, "[optim]\nepochs = 3\n[ppo]\nepochs = 9\n") == 0);
    CHECK_EQ_INT(c.optim.epochs, 3);
    CHECK_EQ_INT(c.ppo.epochs, 9);
}

static void test_errors(void) {
    RlhfConfig c;
    /* unknown key with the closest valid key suggested */
    CHECK_ERR(parse(&c, "[optim]\n\nlrr = 1e-3\n"),
              "t.ini:3: unknown key 'optim.lrr'; did you mean 'optim.lr'?");
    CHECK_ERR(parse(&c, "[optim]\nbatch_sise = 3\n"), "did you mean 'optim.batch_size'?");
    /* a key in the wrong section points to the right one */
    CHECK_ERR(parse(&c, "[run]\nlr = 1\n"),
              "t.ini:2: unknown key 'run.lr'; did you mean 'optim.lr'?");
    CHECK_ERR(parse(&c, "[ppo]\ngroup_size = 4\n"), "did you mean 'grpo.group_size'?");
    /* nothing close: no suggestion, a pointer to the reference */
    CHECK_ERR(parse(&c, "[optim]\nzzzzzzzzzzzz = 1\n"), "docs/config.md");
    /* unknown section */
    CHECK_ERR(parse(&c, "[optm]\nlr = 1\n"),
              "t.ini:1: unknown section [optm]; did you mean [optim]?");
    CHECK_ERR(parse(&c, "[qqqqqqqqqq]\n"), "t.ini:1: unknown section [qqqqqqqqqq]");
    /* wrong types */
    CHECK_ERR(parse(&c, "[optim]\nlr = abc\n"), "t.ini:2: optim.lr = abc: expected a number");
    CHECK_ERR(parse(&c, "[optim]\nlr = 1e-3x\n"), "optim.lr = 1e-3x: expected a number");
    CHECK_ERR(parse(&c, "[optim]\nlr = nan\n"), "optim.lr = nan: expected a finite number");
    CHECK_ERR(parse(&c, "[optim]\nlr =\n"), "optim.lr = : expected a number");
    CHECK_ERR(parse(&c, "[optim]\nbatch_size = 3.5\n"),
              "t.ini:2: optim.batch_size = 3.5: expected an integer");
    CHECK_ERR(parse(&c, "[data]\nshuffle = maybe\n"),
              "data.shuffle = maybe: expected true or false");
    CHECK_ERR(parse(&c, "[dpo]\nloss = hinge\n"),
              "dpo.loss = hinge: expected one of sigmoid|ipo|cdpo");
    /* out of range */
    CHECK_ERR(parse(&c, "[optim]\nbatch_size = 0\n"),
              "t.ini:2: optim.batch_size = 0: out of range, expected 1..16777216");
    CHECK_ERR(parse(&c, "[optim]\nbatch_size = 99999999999999999999\n"), "out of range");
    CHECK_ERR(parse(&c, "[ppo]\ngamma = 1.5\n"),
              "ppo.gamma = 1.5: out of range, expected 0.0..1.0");
    CHECK_ERR(parse(&c, "[optim]\nlr = -1\n"), "optim.lr = -1: out of range");
    /* duplicate key, also across two copies of a section */
    CHECK_ERR(parse(&c, "[optim]\nlr = 1e-3\nlr = 2e-3\n"),
              "t.ini:3: duplicate key optim.lr (already set on line 2)");
    CHECK_ERR(parse(&c, "[optim]\nlr = 1e-3\n[run]\n[optim]\nlr = 2e-3\n"),
              "t.ini:5: duplicate key");
    /* malformed lines */
    CHECK_ERR(parse(&c, "[optim]\nlr 1e-3\n"), "t.ini:2: malformed line 'lr 1e-3'");
    CHECK_ERR(parse(&c, "[optim\n"), "t.ini:1: malformed section header");
    CHECK_ERR(parse(&c, "[optim] x\n"), "t.ini:1: unexpected text after the section header");
    CHECK_ERR(parse(&c, "[optim]\n= 3\n"), "t.ini:2: malformed line: a key name is missing");
    CHECK_ERR(parse(&c, "[optim]\nl r = 3\n"), "t.ini:2: malformed key name 'l r'");
    CHECK_ERR(parse(&c, "lr = 3\n"),
              "t.ini:1: key 'lr' before any [section]; did you mean 'optim.lr'");
    CHECK_ERR(parse(&c, "[run]\nout_dir = \"abc\n"),
              "t.ini:2: run.out_dir: unterminated quoted string");
    CHECK_ERR(parse(&c, "[run]\nout_dir = \"abc\" def\n"),
              "t.ini:2: run.out_dir: unexpected text after the closing quote");
    CHECK_ERR(parse(&c, "[run]\nout_dir = \"a\\qb\"\n"), "unknown escape '\\q'");
    /* an over-long string */
    char *big = xmalloc(CONFIG_STR_MAX + 64);
    snprintf(big, CONFIG_STR_MAX + 64, "[run]\nout_dir = ");
    size_t o = strlen(big);
    for (int i = 0; i < CONFIG_STR_MAX + 5; i++) big[o++] = 'a';
    big[o] = 0;
    CHECK_ERR(parse(&c, big), "t.ini:2: run.out_dir: value longer than");
    free(big);
    /* the line number counts every line, comments and blanks included */
    CHECK_ERR(parse(&c, "# c\n\n[gen]\n; c\ntop_p = 2\n"), "t.ini:5: gen.top_p = 2: out of range");
    /* a missing file names the path */
    err[0] = 0;
    CHECK_ERR(config_load(&c, "/nonexistent/cfg.ini", 0, NULL, err), "/nonexistent/cfg.ini");
}

static void test_overrides(void) {
    const char *root = getenv("RLHF_TEST_TMP");
    char dir[400], path[512];
    snprintf(dir, sizeof dir, "%s/config-XXXXXX", root ? root : "/tmp");
    ASSERT(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/cfg.ini", dir);
    FILE *f = fopen(path, "w");
    ASSERT(f);
    fputs("[optim]\nlr = 1e-3\nbatch_size = 8\n[run]\nout_dir = runs/file\n", f);
    fclose(f);
    RlhfConfig c;
    char *ov[] = {"optim.lr=5e-4", "--run.out_dir=\"runs/cli dir\"", "data.shuffle=false"};
    err[0] = 0;
    int rc = config_load(&c, path, 3, ov, err);
    CHECK_MSG(rc == 0, "%s", err);
    CHECK_NEAR(c.optim.lr, 5e-4, 0, 0);  /* override wins */
    CHECK_EQ_INT(c.optim.batch_size, 8); /* file value kept */
    CHECK(strcmp(c.run.out_dir, "runs/cli dir") == 0);
    CHECK(c.data.shuffle == false);
    /* an override value is taken whole (no comment stripping) */
    CHECK(config_override(&c, "data.train=a #b.jsonl", err) == 0);
    CHECK(strcmp(c.data.train, "a #b.jsonl") == 0);
    /* override errors */
    CHECK_ERR(config_override(&c, "optim.lrr=1", err),
              "override 'optim.lrr=1': unknown key 'optim.lrr'; did you mean 'optim.lr'?");
    CHECK_ERR(config_override(&c, "lrr=1", err), "did you mean 'optim.lr'?");
    CHECK_ERR(config_override(&c, "optm.lr=1", err), "did you mean 'optim.lr'?");
    CHECK_ERR(config_override(&c, "optim.lr", err), "expected section.key=value");
    CHECK_ERR(config_override(&c, "=3", err), "expected section.key=value");
    CHECK_ERR(config_override(&c, "optim.lr=abc", err),
              "override 'optim.lr=abc': optim.lr = abc: expected a number");
    CHECK_ERR(config_override(&c, "ppo.epochs=0", err),
              "ppo.epochs = 0: out of range, expected 1..1000");
    /* config_set */
    CHECK(config_set(&c, "gen.top_k", "40", err) == 0 && c.gen.top_k == 40);
    CHECK_ERR(config_set(&c, "gen.topk", "40", err), "did you mean 'gen.top_k'?");
    /* a bad override in config_load is reported */
    char *bad[] = {"optim.lr=1"}; /* 1 is allowed, but then min_lr <= lr still holds */
    CHECK(config_load(&c, path, 1, bad, err) == 0);
    char *bad2[] = {"optim.min_lr=0.5", "optim.lr=0.1"};
    CHECK_ERR(config_load(&c, path, 2, bad2, err),
              "optim.min_lr (0.5) is larger than optim.lr (0.1)");
    char *bad3[] = {"ppo.learning_rate=1"};
    CHECK_ERR(config_load(&c, path, 1, bad3, err), "unknown key 'ppo.learning_rate'");
    remove(path);
    rmdir(dir);
}

static void test_validate(void) {
    RlhfConfig c;
    char *a[] = {"data.max_prompt_len=100"};
    CHECK_ERR(config_load(&c, NULL, 1, a, err), "data.max_prompt_len (100) + data.max_response_len "
                                                "(64) = 164 exceeds the model's max_seq_len 128");
    char *b[] = {"data.max_prompt_len=100", "model.max_seq_len=256"};
    CHECK(config_load(&c, NULL, 2, b, err) == 0);
    char *b2[] = {"gen.max_new_tokens=65"};
    CHECK_ERR(config_load(&c, NULL, 1, b2, err),
              "data.max_prompt_len (64) + gen.max_new_tokens (65) = 129 exceeds");
    char *d[] = {"optim.micro_batch_size=32"};
    CHECK_ERR(config_load(&c, NULL, 1, d, err),
              "optim.micro_batch_size (32) is larger than optim.batch_size (16)");
    char *e[] = {"optim.steps=0"};
    CHECK_ERR(config_load(&c, NULL, 1, e, err), "optim.steps and optim.epochs are both 0");
    char *e2[] = {"optim.steps=0", "optim.epochs=2"};
    CHECK(config_load(&c, NULL, 2, e2, err) == 0);
    char *f[] = {"ppo.minibatch=128"};
    CHECK_ERR(config_load(&c, NULL, 1, f, err),
              "ppo.minibatch (128) is larger than ppo.rollout_batch (64)");
    char *g[] = {"model.preset=custom"};
    CHECK_ERR(config_load(&c, NULL, 1, g, err), "model.preset = custom needs");
    char *h[] = {"model.n_head=5"};
    CHECK_ERR(config_load(&c, NULL, 1, h, err),
              "model: n_embd = 128 is not divisible by n_head = 5");
    char *i[] = {"judge.kind=rule"};
    CHECK_ERR(config_load(&c, NULL, 1, i, err), "judge.kind = rule needs judge.rule");
    char *j[] = {"dpo.label_smoothing=0.1"};
    CHECK_ERR(config_load(&c, NULL, 1, j, err), "only applies to dpo.loss = cdpo");
    char *k[] = {"dpo.label_smoothing=0.1", "dpo.loss=cdpo"};
    CHECK(config_load(&c, NULL, 2, k, err) == 0);
    char *l[] = {"run.resume="};
    CHECK_ERR(config_load(&c, NULL, 1, l, err), "run.resume is empty");
}

static void test_model(void) {
    RlhfConfig c;
    GPTConfig g;
    config_defaults(&c);
    CHECK(config_model(&c, 300, &g, err) == 0);
    CHECK_EQ_INT(g.n_layer, 4);
    CHECK_EQ_INT(g.n_head, 4);
    CHECK_EQ_INT(g.n_embd, 128);
    CHECK_EQ_INT(g.max_seq_len, 128);
    CHECK_EQ_INT(g.vocab_size, 300); /* 0 = from the tokenizer */
    CHECK(g.head == GPT_HEAD_LM);
    char *ov[] = {"model.preset=custom", "model.n_layer=2",       "model.n_head=2",
                  "model.n_embd=32",     "model.max_seq_len=128", "model.vocab_size=1000"};
    CHECK(config_load(&c, NULL, 6, ov, err) == 0);
    CHECK(config_model(&c, 300, &g, err) == 0);
    CHECK_EQ_INT(g.n_layer, 2);
    CHECK_EQ_INT(g.n_embd, 32);
    CHECK_EQ_INT(g.vocab_size, 1000); /* explicit wins over the tokenizer's */
    CHECK(config_override(&c, "model.preset=gpt2", err) == 0);
    CHECK(config_override(&c, "model.n_layer=0", err) == 0);
    CHECK(config_model(&c, 0, &g, err) == 0);
    CHECK_EQ_INT(g.n_layer, 12); /* from the preset */
    CHECK_EQ_INT(g.n_embd, 32);  /* still overridden */
}

/* The Llama family's keys: presets, custom sizes, the family's own rules. */
static void test_model_llama(void) {
    RlhfConfig c;
    GPTConfig g;
    char *a[] = {"model.preset=llama-tiny"};
    CHECK(config_load(&c, NULL, 1, a, err) == 0);
    CHECK(config_model(&c, 300, &g, err) == 0);
    CHECK(g.family == GPT_FAMILY_LLAMA);
    CHECK_EQ_INT(g.n_kv_head, 2);
    CHECK_EQ_INT(g.d_ff, 344);
    CHECK_EQ_INT(g.tie_embeddings, 1);
    CHECK_EQ_INT(g.vocab_size, 300);
    CHECK(config_override(&c, "model.tie_embeddings=false", err) == 0);
    CHECK(config_override(&c, "model.n_kv_head=1", err) == 0);
    CHECK(config_model(&c, 300, &g, err) == 0);
    CHECK_EQ_INT(g.tie_embeddings, 0); /* a key over the preset's value */
    CHECK_EQ_INT(g.n_kv_head, 1);
    CHECK_EQ_INT(g.d_ff, 344);
    char *b[] = {"model.preset=custom", "model.family=llama", "model.n_layer=2",
                 "model.n_head=6",      "model.n_embd=40",    "model.head_dim=8",
                 "model.d_ff=64",       "model.n_kv_head=3",  "model.qkv_bias=true",
                 "model.qk_norm=true",  "model.max_seq_len=128", "model.rope_theta=5e5"};
    CHECK(config_load(&c, NULL, 12, b, err) == 0); /* 40 % 6 != 0: head_dim given */
    CHECK(config_model(&c, 300, &g, err) == 0);
    CHECK(g.family == GPT_FAMILY_LLAMA);
    CHECK_EQ_INT(g.head_dim, 8);
    CHECK_EQ_INT(g.qkv_bias, 1);
    CHECK_EQ_INT(g.qk_norm, 1);
    CHECK_EQ_INT(g.tie_embeddings, 1); /* custom's default */
    CHECK(g.rope_theta == 5e5f);
    CHECK(g.norm_eps == 1e-5f);
    CHECK(gpt_config_validate(&g, err) == 0);
    char *d[] = {"model.preset=custom", "model.family=llama", "model.n_layer=2",
                 "model.n_head=4",      "model.n_embd=32",    "model.max_seq_len=64",
                 "model.d_ff=64",       "model.n_kv_head=3"};
    CHECK_ERR(config_load(&c, NULL, 8, d, err), "n_kv_head = 3: must be positive and divide n_head = 4");
    CHECK_ERR(config_load(&c, NULL, 6, d, err), "model.family = llama needs model.d_ff > 0");
    char *e[] = {"model.preset=custom", "model.family=llama", "model.n_layer=2",
                 "model.n_head=6",      "model.n_embd=40",    "model.max_seq_len=64",
                 "model.d_ff=64"};
    CHECK_ERR(config_load(&c, NULL, 7, e, err), "n_embd = 40 is not divisible by n_head = 6 (set head_dim)");
    char *f[] = {"model.n_kv_head=2"}; /* on the default preset, tiny (gpt2) */
    CHECK_ERR(config_load(&c, NULL, 1, f, err), "model.n_kv_head applies to the llama family only");
    char *h[] = {"model.preset=llama-tiny", "model.family=gpt2"};
    CHECK_ERR(config_load(&c, NULL, 2, h, err), "model.family = gpt2 but model.preset = llama-tiny");
    char *i[] = {"model.preset=smol"};
    CHECK(config_load(&c, NULL, 1, i, err) == 0);
    CHECK(config_model(&c, 0, &g, err) == 0);
    CHECK_EQ_INT(g.n_kv_head, 3);
    CHECK_EQ_INT(g.n_layer, 30);
}

/* A random value of the right type for every key, dumped and read back: equal. */
static void test_roundtrip(void) {
    Rng r;
    rng_init(&r, 99);
    for (int trial = 0; trial < 20; trial++) {
        RlhfConfig a, b;
        config_defaults(&a);
        char val[CONFIG_STR_MAX];
        for (int i = 0; i < config_num_keys; i++) {
            const ConfigKey *k = &config_keys[i];
            void *p = (char *)&a + k->offset;
            switch (k->type) {
            case CONFIG_INT:
                *(int *)p =
                    (int)(k->min_i + (long long)rng_below(&r, (uint64_t)(k->max_i - k->min_i) + 1));
                break;
            case CONFIG_FLOAT: {
                double u = rng_uniform_double(&r);
                double v = trial % 2 ? k->min_f + u * (k->max_f - k->min_f)
                                     : k->min_f + (k->max_f - k->min_f) * u * u * u * u * u;
                *(double *)p = v;
                break;
            }
            case CONFIG_BOOL: *(bool *)p = rng_below(&r, 2); break;
            case CONFIG_ENUM: {
                /* pick the n-th choice */
                const char *s = k->choices;
                int nch = 1;
                for (const char *q = s; *q; q++) nch += *q == '|';
                int pick = (int)rng_below(&r, (uint64_t)nch);
                for (int t = 0; t < pick; t++) s = strchr(s, '|') + 1;
                size_t len = strchr(s, '|') ? (size_t)(strchr(s, '|') - s) : strlen(s);
                memcpy(p, s, len);
                ((char *)p)[len] = 0;
                break;
            }
            case CONFIG_STR: {
                static const char alphabet[] = "ab #;=\"\\\n\t\r[]xyz/._é";
                int len = (int)rng_below(&r, 40);
                for (int t = 0; t < len; t++) val[t] = alphabet[rng_below(&r, sizeof alphabet - 1)];
                val[len] = 0;
                snprintf(p, CONFIG_STR_MAX, "%s", val);
                break;
            }
            }
        }
        char *text = config_to_text(&a);
        config_defaults(&b);
        int rc = config_parse_text(&b, text, "dump", err);
        CHECK_MSG(rc == 0, "%s\n%s", err, text);
        char diff[4096];
        int nd = config_diff(&a, &b, diff, sizeof diff);
        CHECK_MSG(nd == 0, "round trip differs in %d keys:\n%s", nd, diff);
        free(text);
    }
    /* the validated path: config_from_text of a valid config */
    RlhfConfig a, b;
    char *ov[] = {"optim.lr=0.1", "optim.min_lr=0.30000000000000004e-1", "run.out_dir=\"x y\"",
                  "gen.temperature=0.7", "rm.eval_split=0.3333333333333333"};
    CHECK(config_load(&a, NULL, 5, ov, err) == 0);
    char *text = config_to_text(&a);
    CHECK(config_from_text(&b, text, "ckpt", err) == 0);
    CHECK_EQ_INT(config_diff(&a, &b, NULL, 0), 0);
    CHECK(memcmp(&a, &b, sizeof a) == 0); /* both built from zeroed defaults */
    /* floats are written in their shortest exact form */
    CHECK(strstr(text, "lr = 0.1\n") != NULL);
    CHECK(strstr(text, "gamma = 1.0\n") != NULL);
    CHECK(strstr(text, "eps = 1e-08\n") != NULL);
    CHECK(strstr(text, "out_dir = \"x y\"\n") != NULL);
    CHECK(strstr(text, "[judge]\nkind = rm\n") != NULL);
    free(text);
}

static void test_diff(void) {
    RlhfConfig a, b;
    config_defaults(&a);
    config_defaults(&b);
    CHECK_EQ_INT(config_diff(&a, &b, NULL, 0), 0);
    CHECK(config_override(&b, "optim.lr=1e-3", err) == 0);
    CHECK(config_override(&b, "data.train=x.jsonl", err) == 0);
    CHECK(config_override(&b, "ppo.whiten=false", err) == 0);
    char buf[1024];
    CHECK_EQ_INT(config_diff(&a, &b, buf, sizeof buf), 3);
    CHECK(strstr(buf, "optim.lr: 0.0003 -> 0.001\n") != NULL);
    CHECK(strstr(buf, "data.train: \"\" -> \"x.jsonl\"\n") != NULL);
    CHECK(strstr(buf, "ppo.whiten: true -> false\n") != NULL);
    /* a tiny buffer: still counts everything, never overflows */
    char small[10];
    CHECK_EQ_INT(config_diff(&a, &b, small, sizeof small), 3);
    CHECK(strlen(small) < sizeof small);
}

static char *capture(void (*fn)(FILE *), size_t *len) {
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    ASSERT(f);
    fn(f);
    fclose(f);
    return buf;
}

static void test_help_and_docs(void) {
    size_t len;
    char *help = capture(config_print_help, &len);
    for (int i = 0; i < config_num_keys; i++)
        CHECK_MSG(strstr(help, config_keys[i].key) != NULL, "help lacks %s", config_keys[i].key);
    CHECK(strstr(help, "sigmoid|ipo|cdpo") != NULL);
    free(help);
    char *md = capture(config_write_markdown, &len);
    size_t flen = 0;
    char *file = file_read_all("docs/config.md", &flen, err);
    CHECK_MSG(file != NULL, "%s", err);
    if (file)
        CHECK_MSG(flen == len && memcmp(file, md, len) == 0,
                  "docs/config.md is out of date: run `build/tests/test_config --markdown > "
                  "docs/config.md`");
    free(file);
    free(md);
}

/* Every example config in configs/ loads and validates (tests run from the repo root). */
static void test_example_configs(void) {
    glob_t g;
    int rc = glob("configs/*.ini", 0, NULL, &g);
    CHECK_MSG(rc == 0 && g.gl_pathc >= 5, "configs/*.ini: %d files", rc == 0 ? (int)g.gl_pathc : 0);
    for (size_t i = 0; rc == 0 && i < g.gl_pathc; i++) {
        RlhfConfig c;
        err[0] = 0;
        CHECK_MSG(config_load(&c, g.gl_pathv[i], 0, NULL, err) == 0, "%s", err);
    }
    if (rc == 0) globfree(&g);
    RlhfConfig c;
    if (config_load(&c, "configs/ppo.ini", 0, NULL, err) == 0) {
        CHECK(strcmp(c.ppo.reward_ckpt, "runs/rm") == 0);
        CHECK(strcmp(c.model.init, "runs/sft") == 0);
        CHECK(strcmp(c.data.train, "data/task/prompts_train.jsonl") == 0);
    }
    if (config_load(&c, "configs/sft.ini", 0, NULL, err) == 0) {
        CHECK(strcmp(c.model.init, "") == 0);
        CHECK_EQ_INT(c.optim.steps, 600);
    }
}

/* Random mutations of a valid text: every parse returns 0 or -1 with a message, never
 * crashes (run under ASan by `make asan`), and a success still validates its ranges. */
static void test_fuzz(void) {
    RlhfConfig base;
    config_defaults(&base);
    char *text = config_to_text(&base);
    size_t n = strlen(text);
    char *buf = xmalloc(n + 1);
    Rng r;
    rng_init(&r, 2024);
    static const char junk[] = "[]=#;\"\\\n\r\t .-_0123456789eE+xyz\xff\xc3";
    int failures = 0, bad_msg = 0;
    for (int t = 0; t < 3000; t++) {
        memcpy(buf, text, n + 1);
        int edits = 1 + (int)rng_below(&r, 6);
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t)rng_below(&r, n);
            buf[at] = junk[rng_below(&r, sizeof junk - 1)];
        }
        RlhfConfig c;
        config_defaults(&c);
        err[0] = 0;
        if (config_parse_text(&c, buf, "fuzz", err) != 0) {
            failures++;
            if (strncmp(err, "fuzz", 4) != 0) bad_msg++;
        }
    }
    CHECK(failures > 100);    /* most mutations break something */
    CHECK_EQ_INT(bad_msg, 0); /* every message names the source */
    free(buf);
    free(text);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--markdown") == 0) {
        config_write_markdown(stdout);
        return 0;
    }
    TEST_RUN(test_defaults);
    TEST_RUN(test_parse);
    TEST_RUN(test_errors);
    TEST_RUN(test_overrides);
    TEST_RUN(test_validate);
    TEST_RUN(test_model);
    TEST_RUN(test_model_llama);
    TEST_RUN(test_roundtrip);
    TEST_RUN(test_diff);
    TEST_RUN(test_help_and_docs);
    TEST_RUN(test_example_configs);
    TEST_RUN(test_fuzz);
    return TEST_EXIT();
}
