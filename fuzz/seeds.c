/*
 * fuzz/seeds.c — writes the seed corpus of every fuzz target with the project's own
 * encoders, so the fuzzers start from inputs the real programs produce and accept.
 *
 *   build-fuzz/seeds fuzz/corpus        (bash fuzz/run.sh --seeds builds and runs it)
 *
 * fuzz_msg         one message of each type (msg_encode_*), small enough for the tiny
 *                  limits of fuzz_msg.c
 * fuzz_ckpt        HDF5 images (ckpt_writer_open_image) of a tiny policy with AdamW
 *                  state, RNG, a data cursor and a trained tokenizer; a reward model; a
 *                  policy image from ckpt_image_build
 * fuzz_bpe         tokenizers trained by bpe_train on the bundled task's corpus, saved
 *                  with bpe_save_strings, as vocab NUL merges
 * fuzz_safetensors files from safetensors_serialize_f32 (with and without metadata) and
 *                  an F16/BF16/I64 file laid out by hand
 * fuzz_config      config_to_text of the defaults and of an edited config (the configs/
 *                  files are copied by fuzz/run.sh)
 * fuzz_dataset     the first records of the SFT, preference and prompt files of
 *                  task_generate (what rlhf-task gen writes), and a judgment log
 * fuzz_label       judgment-log lines from label_record_judgment / label_record_undo,
 *                  candidates files in both modes
 * Files are small (the fuzzers mutate faster) and rewritten on every run; the output is
 * deterministic, so regenerating changes nothing unless an encoder changed.
 * Not a test: it checks nothing beyond the encoders succeeding.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bpe.h"
#include "ckpt.h"
#include "config.h"
#include "gpt.h"
#include "label.h"
#include "msg.h"
#include "rng.h"
#include "safetensors.h"
#include "task.h"
#include "util.h"

static const char *root;

static void put(const char *target, const char *name, const void *data, size_t len) {
    char dir[1024], path[1200], err[ERRBUF_LEN];
    snprintf(dir, sizeof dir, "%s/%s", root, target);
    if (file_mkdirs(dir, err) != 0) fatal("%s", err);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        fatal("cannot write %s: %s", path, strerror(errno));
    printf("  %-60s %8zu bytes\n", path, len);
}

static void put_str(const char *target, const char *name, const char *s) {
    put(target, name, s, strlen(s));
}

// ---- msgpack messages --------------------------------------------------------------

static void fill_batch(MsgBatch *b, int with_ref, int with_cat) {
    msg_batch_clear(b);
    const int32_t p0[] = {1, 2, 3}, r0[] = {4, 5}, p1[] = {7}, r1[] = {8, 9, 10, 0};
    msg_batch_append_seq(b, 11, 0, p0, 3, r0, 2);
    msg_batch_append_seq(b, 12, 1, p1, 1, r1, 4);
    for (size_t i = 0; i < b->n_resp; i++) b->logprobs[i] = -0.25f * (float)(i + 1);
    if (with_ref) {
        b->has_ref = 1;
        for (size_t i = 0; i < b->n_resp; i++) b->ref_logprobs[i] = -0.5f * (float)(i + 1);
    }
    if (with_cat) {
        b->has_categories = 1;
        b->categories[0] = 2;
        b->categories[1] = 0;
    }
    b->scores[0] = 0.75f;
    b->scores[1] = -1.5f;
    b->finished[1] = 1;
}

static void seeds_msg(void) {
    MsgBuf buf;
    MsgBatch b;
    msg_buf_init(&buf);
    msg_batch_init(&b);

    fill_batch(&b, 0, 1);
    msg_encode_score_req(&buf, 5, 3, 1, &b);
    put("fuzz_msg", "score_req.msgpack", buf.data, buf.len);

    fill_batch(&b, 1, 0);
    float *gold = msg_batch_extra(&b, "gold");
    gold[0] = 1.0f;
    gold[1] = -1.0f;
    msg_encode_score_rep(&buf, 5, &b);
    put("fuzz_msg", "score_rep.msgpack", buf.data, buf.len);

    fill_batch(&b, 1, 1);
    MsgRolloutInfo info = {.actor_rank = 2, .batch_id = 9, .micro_batch = 1,
                           .t_generate = 0.5, .t_score = 0.125, .t_total = 0.75};
    msg_encode_rollout(&buf, 3, &info, &b);
    put("fuzz_msg", "rollout.msgpack", buf.data, buf.len);

    msg_encode_weights(&buf, 4, 123456, 0xdeadbeefu, MSG_WEIGHTS_FORMAT);
    put("fuzz_msg", "weights.msgpack", buf.data, buf.len);

    msg_encode_stop(&buf, "learner finished: 100 updates");
    put("fuzz_msg", "stop.msgpack", buf.data, buf.len);

    msg_batch_free(&b);
    msg_buf_free(&buf);
}

// ---- tokenizer -----------------------------------------------------------------------

/* The bundled task's corpus (what t_sft.sh trains its tokenizer on), cut short. */
static TaskOutput task;

static void train_bpe(BPE *t, int vocab, const char *pad) {
    char err[ERRBUF_LEN];
    const char *text = task.corpus.data;
    size_t len = task.corpus.len < 6000 ? task.corpus.len : 6000;
    BPETrainConfig cfg = {.vocab_size = vocab, .min_frequency = 2, .pad_token = pad};
    if (bpe_train(t, &text, &len, 1, &cfg, err) != 0) fatal("bpe_train: %s", err);
}

static void put_bpe(const char *name, const BPE *t) {
    char *v, *m;
    bpe_save_strings(t, &v, &m);
    size_t lv = strlen(v), lm = strlen(m);
    char *both = xmalloc(lv + 1 + lm);
    memcpy(both, v, lv);
    both[lv] = '\0';
    memcpy(both + lv + 1, m, lm);
    put("fuzz_bpe", name, both, lv + 1 + lm);
    free(both);
    free(v);
    free(m);
}

static void seeds_bpe(void) {
    BPE t;
    train_bpe(&t, 257 + 24, NULL);
    put_bpe("trained_281.bin", &t);
    bpe_free(&t);
    train_bpe(&t, 258 + 8, "<|pad|>");
    put_bpe("trained_pad_266.bin", &t);
    bpe_free(&t);
}

// ---- checkpoints -----------------------------------------------------------------------

static void seeds_ckpt(void) {
    char err[ERRBUF_LEN];
    GPTConfig c = {.vocab_size = 24, .max_seq_len = 8, .n_layer = 1, .n_head = 2,
                   .n_embd = 4, .head = GPT_HEAD_LM};
    GPT m;
    gpt_init(&m, &c);
    gpt_init_weights(&m, 1);
    BPE t;
    train_bpe(&t, 257 + 4, NULL);
    char *tv, *tm;
    bpe_save_strings(&t, &tv, &tm);
    bpe_free(&t);
    CkptMeta meta = {.stage = "sft", .step = 4, .policy_version = 4, .model = c,
                     .config = "[run]\nseed = 1\n", .tok_vocab = tv, .tok_merges = tm};

    CkptWriter *w = ckpt_writer_open_image(err);
    if (!w) fatal("%s", err);
    float *mm = xcalloc(m.num_params, sizeof(float)), *vv = xcalloc(m.num_params, sizeof(float));
    for (size_t i = 0; i < m.num_params; i++) {
        mm[i] = 1e-3f * (float)i;
        vv[i] = 1e-6f * (float)i;
    }
    Rng rng;
    rng_init(&rng, 42);
    int64_t cursor[4] = {1, 0, 3, 10}; /* seed, epoch, pos, n (dataset.h) */
    if (ckpt_write_meta(w, &meta, err) || ckpt_write_model(w, "policy", &m, err) ||
        ckpt_write_adamw(w, "policy", mm, vv, m.num_params, 4, err) ||
        ckpt_write_rng(w, 0, &rng, err) || ckpt_write_i64(w, "/data/sft", cursor, 4, err))
        fatal("%s", err);
    void *img;
    size_t len;
    if (ckpt_writer_take_image(w, &img, &len, err) != 0) fatal("%s", err);
    put("fuzz_ckpt", "sft_policy_adamw_tok.h5", img, len);
    free(img);

    if (ckpt_image_build(&meta, "policy", &m, NULL, &img, &len, err) != 0) fatal("%s", err);
    put("fuzz_ckpt", "weights_broadcast.h5", img, len);
    free(img);

    GPTConfig rc = c;
    rc.head = GPT_HEAD_SCORE;
    GPT r;
    gpt_init(&r, &rc);
    gpt_init_weights(&r, 2);
    CkptMeta rmeta = {.stage = "rm", .step = 2, .policy_version = 0, .model = rc};
    w = ckpt_writer_open_image(err);
    if (!w || ckpt_write_meta(w, &rmeta, err) || ckpt_write_model(w, "reward", &r, err))
        fatal("%s", err);
    if (ckpt_writer_take_image(w, &img, &len, err) != 0) fatal("%s", err);
    put("fuzz_ckpt", "rm_reward.h5", img, len);
    free(img);

    gpt_free(&r);
    gpt_free(&m);
    free(mm);
    free(vv);
    free(tv);
    free(tm);
}

// ---- safetensors ---------------------------------------------------------------------

static void seeds_safetensors(void) {
    char err[ERRBUF_LEN];
    float a[6] = {0.5f, -1.0f, 2.0f, 0.0f, 3.25f, -0.125f}, b[3] = {1.0f, 2.0f, 3.0f};
    float s = 7.0f;
    StWrite w[3] = {{.name = "wte.weight", .ndim = 2, .shape = {3, 2}, .data = a},
                    {.name = "ln_f.bias", .ndim = 1, .shape = {3}, .data = b},
                    {.name = "scalar", .ndim = 0, .data = &s}};
    const char *kv[] = {"format", "pt"};
    unsigned char *out;
    size_t len;
    if (safetensors_serialize_f32(w, 3, kv, 1, &out, &len, err) != 0) fatal("%s", err);
    put("fuzz_safetensors", "f32_meta.safetensors", out, len);
    free(out);
    if (safetensors_serialize_f32(w, 2, NULL, 0, &out, &len, err) != 0) fatal("%s", err);
    put("fuzz_safetensors", "f32.safetensors", out, len);
    free(out);

    /* F16, BF16 and I64 tensors (what HF files of other precisions hold), by hand:
     * data laid out in the header's order, header padded to 8 bytes */
    const char *hdr = "{\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                      "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[4,8]},"
                      "\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[8,16]}}";
    size_t hl = strlen(hdr), padded = (hl + 7) / 8 * 8;
    unsigned char file[256];
    uint64_t n = padded;
    memcpy(file, &n, 8);
    memcpy(file + 8, hdr, hl);
    memset(file + 8 + hl, ' ', padded - hl);
    const uint16_t h16[2] = {0x3c00, 0xc000}, bf[2] = {0x3f80, 0xbf00}; /* 1, -2, 1, -0.5 */
    const int64_t i64 = 7;
    unsigned char *d = file + 8 + padded;
    memcpy(d, h16, 4);
    memcpy(d + 4, bf, 4);
    memcpy(d + 8, &i64, 8);
    put("fuzz_safetensors", "f16_bf16_i64.safetensors", file, 8 + padded + 16);
}

// ---- config text -----------------------------------------------------------------------

static void seeds_config(void) {
    char err[ERRBUF_LEN];
    static RlhfConfig c;
    config_defaults(&c);
    char *t = config_to_text(&c);
    put_str("fuzz_config", "defaults.ini", t);
    free(t);
    if (config_override(&c, "optim.lr=1e-4", err) || config_override(&c, "run.seed=17", err) ||
        config_override(&c, "model.preset=custom", err) ||
        config_override(&c, "model.n_layer=2", err))
        fatal("%s", err);
    t = config_to_text(&c);
    put_str("fuzz_config", "edited.ini", t);
    free(t);
    put_str("fuzz_config", "quoted.ini",
            "; comment\n[run]\nout_dir = \"runs/a b\\t\\\"x\\\"\"  # trailing\n[optim]\n"
            "lr = 3e-4\n[run]\nseed = 5\n");
}

// ---- JSONL: datasets and label logs ------------------------------------------------------

/* The first n lines of a buffer. */
static void put_lines(const char *target, const char *name, const TaskBuf *b, int n) {
    size_t len = 0;
    for (int i = 0; i < n && len < b->len; i++) {
        const char *nl = memchr(b->data + len, '\n', b->len - len);
        len = nl ? (size_t)(nl - b->data) + 1 : b->len;
    }
    put(target, name, b->data, len);
}

static void seeds_jsonl(void) {
    put_lines("fuzz_dataset", "sft.jsonl", &task.sft, 3);
    put_lines("fuzz_dataset", "prefs.jsonl", &task.prefs_train, 3);
    put_lines("fuzz_dataset", "prompts.jsonl", &task.prompts_train, 3);
    /* conversational records: every form, a bad role and an SFT without its answer */
    put_str("fuzz_dataset", "chat.jsonl",
            "{\"messages\": [{\"role\": \"system\", \"content\": \" S \"}, {\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"<think>r</think>A1\"}, {\"role\": \"user\", \"content\": \"<tool_response>x</tool_response>\"}, {\"role\": \"assistant\", \"content\": \"A2\"}]}\n"
            "{\"prompt\": [{\"role\": \"user\", \"content\": \"Q\"}], \"chosen\": [{\"role\": \"assistant\", \"content\": \"good\"}], \"rejected\": [{\"role\": \"assistant\", \"content\": \"bad\"}]}\n"
            "{\"chosen\": [{\"role\": \"user\", \"content\": \"Q\"}, {\"role\": \"assistant\", \"content\": \"c\"}], \"rejected\": [{\"role\": \"user\", \"content\": \"Q\"}, {\"role\": \"assistant\", \"content\": \"r\"}]}\n"
            "{\"prompt\": [{\"role\": \"user\", \"content\": \"\xc3\x9cn\xc3\xaf" "code \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x8e\x89\"}], \"category\": \"c\"}\n"
            "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n"
            "{\"prompt\": [], \"chosen\": [{\"role\": \"tool\", \"content\": 1}]}\n");

    /* a judgment log: A, B, tie, a second annotator, an undo; thumbs */
    LabelItem it = {.id = "q1", .prompt = "User: 2+2?\nAssistant:", .a = " 4", .b = " 5",
                    .category = "fact"};
    LabelItem it2 = {.id = NULL, .prompt = "User: hi\nAssistant:", .a = " Hello!",
                     .b = " \xc3\xa9t\xc3\xa9 \xe2\x82\xac", .category = NULL};
    char h[LABEL_HASH_ID_LEN];
    label_item_hash_id(h, LABEL_MODE_PAIR, it2.prompt, it2.a, it2.b);
    it2.id = h;
    const char *time = "2024-05-01T12:00:00Z";
    char *lines[7] = {
        label_record_judgment(&it, LABEL_MODE_PAIR, LABEL_A, "ann1", time),
        label_record_judgment(&it, LABEL_MODE_PAIR, LABEL_B, "ann2", time),
        label_record_judgment(&it2, LABEL_MODE_PAIR, LABEL_TIE, "ann1", time),
        label_record_judgment(&it2, LABEL_MODE_PAIR, LABEL_A, "ann2", time),
        label_record_undo("q1", "ann2", time),
        label_record_judgment(&it, LABEL_MODE_PAIR, LABEL_A, "ann2", time),
        label_record_judgment(&it2, LABEL_MODE_THUMBS, LABEL_UP, "ann3", time),
    };
    char log[8192] = "";
    for (int i = 0; i < 7; i++) {
        strncat(log, lines[i], sizeof log - strlen(log) - 1);
        free(lines[i]);
    }
    put_str("fuzz_label", "judgments.jsonl", log);
    put_str("fuzz_dataset", "judgments.jsonl", log);
    put_str("fuzz_label", "candidates_pair.jsonl",
            "{\"prompt\":\"User: 2+2?\\nAssistant:\",\"a\":\" 4\",\"b\":\" 5\",\"id\":7}\n"
            "{\"prompt\":\"p\",\"a\":\"x\\ty\",\"b\":\"\\u00e9\",\"category\":\"fact\"}\r\n");
    /* rankings: a ranking with a tie, a re-ranking undone, a skip; rank candidates */
    char *resp[3] = {" 4", " four", " 5"};
    LabelItem rk = {.id = "r1", .prompt = "User: 2+2?\nAssistant:", .category = "fact",
                    .resp = resp, .n_resp = 3};
    int ranks1[3] = {1, 1, 3}, ranks2[3] = {3, 2, 1};
    char *rl[5] = {
        label_record_rank(&rk, ranks1, "ann1", time),
        label_record_rank(&rk, ranks2, "ann2", time),
        label_record_undo("r1", "ann2", time),
        label_record_rank(&rk, ranks1, "ann2", time),
        label_record_judgment(&rk, LABEL_MODE_RANK, LABEL_SKIP, "ann3", time),
    };
    char rlog[8192] = "";
    for (int i = 0; i < 5; i++) {
        strncat(rlog, rl[i], sizeof rlog - strlen(rlog) - 1);
        free(rl[i]);
    }
    put_str("fuzz_label", "rankings.jsonl", rlog);
    put_str("fuzz_label", "candidates_rank.jsonl",
            "{\"prompt\":\"User: 2+2?\\nAssistant:\",\"responses\":[\" 4\",\" 5\",\" 22\"],\"id\":3}\n"
            "{\"prompt\":\"q\",\"responses\":[\"a\",\"b\",\"c\",\"d\"],\"category\":\"chat\"}\r\n");
    put_str("fuzz_label", "rankfile.jsonl",
            "{\"prompt\":\"p\",\"responses\":[\"a\",\"b\"],\"ranks\":[2,1]}\n"
            "{\"prompt\":\"q\",\"responses\":[\"a\",\"b\",\"c\"],\"ranks\":[1,1,2],"
            "\"category\":\"x\"}\n{\"prompt\":\"s\",\"responses\":[\"a\",\"b\"],\"label\":\"skip\"}\n");
    put_str("fuzz_label", "candidates_thumbs.jsonl",
            "{\"prompt\":\"User: hi\\nAssistant:\",\"response\":\" Hello!\",\"id\":\"t1\"}\n\n"
            "{\"prompt\":\"q\",\"response\":\"\\u4e2d\\u6587 wide\"}\n");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: seeds CORPUS_DIR   (writes CORPUS_DIR/<target>/...)\n");
        return 2;
    }
    root = argv[1];
    char err[ERRBUF_LEN];
    TaskSizes sizes = {.sft = 8, .prefs_train = 8, .prefs_eval = 2, .prompts_train = 4,
                       .prompts_eval = 2, .prompts_redteam = 2};
    if (task_generate(&task, 7, &sizes, err) != 0) fatal("task_generate: %s", err);
    seeds_msg();
    seeds_bpe();
    seeds_ckpt();
    seeds_safetensors();
    seeds_config();
    seeds_jsonl();
    task_output_free(&task);
    return 0;
}
