/*
 * common/ckpt.h — HDF5 checkpoints of rlhf-c: one file per checkpoint (or one in-memory
 * HDF5 image for a weight broadcast), written atomically, validated on every read.
 *
 * How it is used. A training stage writes:
 *
 *     CkptWriter *w = ckpt_writer_open_dir(run_dir, step, keep_last, err);
 *     ckpt_write_meta(w, &meta, err);                   // root attributes + tokenizer
 *     ckpt_write_model(w, "policy", &policy, err);      // /policy/<tensor>
 *     ckpt_write_adamw(w, "policy", m, v, n, t, err);   // /optim/policy/{m,v,step}
 *     ckpt_write_rng(w, rank, &rng, err);               // /rng/rank<i>
 *     ckpt_write_i64(w, "/data/sft", cursor, 2, err);   // any small named array
 *     ckpt_writer_commit(w, err);                       // fsync, rename, latest, keep-K
 *
 * (any call returning -1 leaves w usable only for ckpt_writer_free, which deletes the
 * unfinished temp file), and resumes with ckpt_resolve(run_dir, "auto", ...) +
 * ckpt_reader_open + ckpt_read_*. The learner ships weights to actors with
 * ckpt_image_build / ckpt_image_load: the same layout in an in-memory HDF5 file image,
 * read by the same validating reader.
 *
 * File layout, format_version 1 (readable with h5dump / h5py):
 *   root attributes   format = "rlhf-c" (string), format_version (int64), stage (string:
 *                     init/sft/rm/ppo/dpo/grpo/rloo), step, policy_version (int64), config
 *                     (string: the run's config text), vocab_size, max_seq_len, n_layer,
 *                     n_head, n_embd (int64) and head (string lm/score/value) of the
 *                     primary model; a Llama-family model adds family = "llama" and its
 *                     fields (n_kv_head ... rope_orig_max_pos int64, rope_theta, norm_eps,
 *                     rope_*_factor float64; no family attribute = gpt2); any extra attributes a stage adds (ckpt_write_attr_*).
 *   /tokenizer/vocab, /tokenizer/merges   scalar fixed-length strings (the vocab JSON and
 *                     merges text exactly as the caller gave them; optional). Datasets,
 *                     not attributes, because GPT-2's vocab (~1 MB) is far beyond the
 *                     64 KiB that attributes hold compactly, and so they get a checksum.
 *   /tokenizer/json, /tokenizer/chat_template   the same for a Hugging Face
 *                     tokenizer.json and the model's chat template (an imported model).
 *   /<group>/<tensor> one float32 dataset per row of the model's parameter table
 *                     (gpt.h), HF shapes and names; the group carries the model config
 *                     as attributes (same names as the root ones). Groups used by the
 *                     stages: policy, value, reward, reference.
 *   /optim/<group>/m, /optim/<group>/v   AdamW moments, ONE float32 dataset each, laid
 *                     out exactly like the parameter buffer (the table order) — the
 *                     optimizer's state is one buffer, so it is stored as one;
 *   /optim/<group>/step                  int64[1]
 *   /rng/rank<i>      uint64[4] xoshiro256** state of rank i
 *   /data/<name>, /kl_ctl, ...           small int64 / float64 / float32 arrays
 * Every dataset has an attribute crc32 (uint32): the CRC-32 (IEEE, zlib's crc32) of its
 * raw little-endian bytes; every read recomputes it, so a flipped bit in tensor data is an
 * error, not a silently different model. HDF5's own metadata (superblock v2, object
 * headers v2, B-trees) carries HDF5's checksums too, since files and images are written in
 * the 1.8 format (H5Pset_libver_bounds V18). Object modification times are not stored, so
 * the same content gives the same bytes.
 *
 * Atomicity: a file checkpoint is written to <path>.tmp, flushed, fsync'd, closed,
 * renamed to <path>, and the directory fsync'd; until the rename the previous checkpoint
 * is untouched. In a run directory checkpoints are named ckpt-<step, 8 digits>.h5, a
 * text file `latest` names the newest one (written atomically after the rename), and all
 * but the newest keep_last are removed after a successful commit.
 *
 * Errors: every function returning int returns 0 on success or -1 with a message in err
 * (ERRBUF_LEN bytes) naming the file, the object and what to do; HDF5's own error
 * printing is switched off (H5Eset_auto2) and its innermost error message is quoted in
 * ours. Nothing here aborts on bad input; only programming errors (ASSERT) abort.
 *
 * What it does not do: no parallel HDF5 (rank 0 writes; others send it their state), no
 * compression or chunking (tensors are read whole), no format migration (a file with a
 * newer format_version is refused with a message). HDF5 is not hardened against
 * deliberately crafted metadata; corruption of raw data or truncation is detected.
 */
#ifndef RLHF_CKPT_H
#define RLHF_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "gpt.h"
#include "rng.h"

#define CKPT_FORMAT "rlhf-c"
#define CKPT_FORMAT_VERSION 1
#define CKPT_PATH_LEN 4096

/* Root metadata. For writing, the pointers are borrowed (tok_vocab/tok_merges may be
 * NULL: no tokenizer stored; config may be NULL: stored as ""). For reading, the strings
 * are owned by the CkptReader and live until ckpt_reader_free. */
typedef struct {
    char stage[16];          /* init, sft, rm, ppo, dpo, grpo, rloo */
    int64_t step;
    int64_t policy_version;
    GPTConfig model;         /* the primary model's config (also stored per group) */
    const char *config;      /* the run's config text */
    const char *tok_vocab;   /* tokenizer vocab JSON text, or NULL */
    const char *tok_merges;  /* tokenizer merges text, or NULL */
    /* a Hugging Face tokenizer.json text (the tokenizer of an imported model, hftok.h),
     * or NULL; a checkpoint holds it or vocab + merges, or none */
    const char *tok_json;
    const char *chat_template; /* the model's chat template (Jinja text), or NULL */
} CkptMeta;

typedef struct CkptWriter CkptWriter;
typedef struct CkptReader CkptReader;

// ---- writing ----------------------------------------------------------------------

/* A checkpoint at exactly `path` (written as path.tmp, renamed by commit). */
CkptWriter *ckpt_writer_open(const char *path, char *err);
/* The checkpoint of `step` in run directory dir (created if missing): dir/ckpt-<step>.h5;
 * commit also rewrites dir/latest and removes all but the newest keep_last checkpoints
 * (keep_last <= 0: keep all). */
CkptWriter *ckpt_writer_open_dir(const char *dir, int64_t step, int keep_last, char *err);
/* An in-memory HDF5 file (nothing touches the disk); finish with ckpt_writer_take_image. */
CkptWriter *ckpt_writer_open_image(char *err);
/* A reusable buffer for images built again and again (the learner's weight broadcast
 * every update): the in-memory file is built in the arena, which grows as needed and is
 * kept, so a 500 MB image does not pay fresh-page faults each time. Zero it to start. */
typedef struct {
    void *ptr;
    size_t cap;
} CkptArena;
/* An image writer whose file lives in arena; ckpt_writer_take_image then returns a
 * pointer into the arena (not to be freed; valid until the arena's next image or
 * ckpt_arena_free). One writer per arena at a time. */
CkptWriter *ckpt_writer_open_image_in(CkptArena *arena, char *err);
void ckpt_arena_free(CkptArena *a);
/* Root attributes and the tokenizer. Must be called once before commit. */
int ckpt_write_meta(CkptWriter *w, const CkptMeta *meta, char *err);
/* /<group>/<name> for every row of m's parameter table, and the config as attributes. */
int ckpt_write_model(CkptWriter *w, const char *group, const GPT *m, char *err);
/* /<group>/<name> for every row of a table, from a buffer laid out by it (e.g. a
 * gradient or a second model sharing a table); no config attributes. */
int ckpt_write_table(CkptWriter *w, const char *group, const GPTTensor *table, int n,
                     const float *buf, char *err);
/* /optim/<group>/m, /v (n floats each) and /step. */
int ckpt_write_adamw(CkptWriter *w, const char *group, const float *m, const float *v,
                     size_t n, int64_t step, char *err);
/* /rng/rank<rank> */
int ckpt_write_rng(CkptWriter *w, int rank, const Rng *rng, char *err);
/* 1-D datasets at an absolute path such as "/data/sft" or "/kl_ctl"; intermediate
 * groups are created. n may be 0. */
int ckpt_write_f32(CkptWriter *w, const char *path, const float *data, size_t n, char *err);
int ckpt_write_f64(CkptWriter *w, const char *path, const double *data, size_t n, char *err);
int ckpt_write_i64(CkptWriter *w, const char *path, const int64_t *data, size_t n, char *err);
int ckpt_write_u64(CkptWriter *w, const char *path, const uint64_t *data, size_t n,
                   char *err);
/* Extra root attributes (names other than the reserved ones above). */
int ckpt_write_attr_str(CkptWriter *w, const char *name, const char *value, char *err);
int ckpt_write_attr_i64(CkptWriter *w, const char *name, int64_t value, char *err);
/* Finish a file checkpoint: flush, fsync, close, rename, fsync the directory; in dir
 * mode also `latest` and keep-last-K. Frees w in every case. On failure the temp file
 * is removed and the previous checkpoint is untouched. */
int ckpt_writer_commit(CkptWriter *w, char *err);
/* Finish an image writer: *bytes (malloc'd, caller frees; in the arena for
 * ckpt_writer_open_image_in) and *len. Frees w. */
int ckpt_writer_take_image(CkptWriter *w, void **bytes, size_t *len, char *err);
/* Abandon a writer: closes and deletes the temp file. NULL is a no-op. */
void ckpt_writer_free(CkptWriter *w);
/* The final path a file writer will commit to ("" for an image). */
const char *ckpt_writer_path(const CkptWriter *w);

// ---- reading ----------------------------------------------------------------------

/* Open and validate the root: HDF5 signature, format name, format_version, stage, step,
 * policy_version, model config. */
CkptReader *ckpt_reader_open(const char *path, char *err);
/* The same from an in-memory image. The bytes are read in place, not copied: they must
 * stay valid and unchanged until ckpt_reader_free. */
CkptReader *ckpt_reader_open_image(const void *bytes, size_t len, char *err);
void ckpt_reader_free(CkptReader *r);
const CkptMeta *ckpt_reader_meta(const CkptReader *r);
/* 1 if the object (group or dataset) at absolute path exists, else 0. */
int ckpt_has(const CkptReader *r, const char *path);
/* The model config stored on /<group>. */
int ckpt_read_model_config(const CkptReader *r, const char *group, GPTConfig *out, char *err);
/* Load /<group> into an initialised model: the stored config must equal m->config
 * (the message names the first field that differs), every tensor of m's table must be
 * present with its shape and checksum, and no other dataset may be in the group. */
int ckpt_read_model(const CkptReader *r, const char *group, GPT *m, char *err);
/* gpt_init m from /<group>'s config, then ckpt_read_model. On failure m is left freed
 * (gpt_free-able, all zero). */
int ckpt_load_model(const CkptReader *r, const char *group, GPT *m, char *err);
/* Read /<group>/<name> for every row of a table into buf (shapes and checksums checked).
 * The group may hold more tensors than the table (e.g. reading the trunk of a model whose
 * head differs); ckpt_read_model is the exact, whole-model check. */
int ckpt_read_table(const CkptReader *r, const char *group, const GPTTensor *table, int n,
                    float *buf, char *err);
int ckpt_read_adamw(const CkptReader *r, const char *group, float *m, float *v, size_t n,
                    int64_t *step, char *err);
int ckpt_read_rng(const CkptReader *r, int rank, Rng *rng, char *err);
/* Number of elements of the dataset at path (to size a buffer before reading it). */
int ckpt_read_len(const CkptReader *r, const char *path, size_t *n, char *err);
/* The names of the members of /group, sorted (malloc'd: free each and the array). */
int ckpt_group_names(const CkptReader *r, const char *group, char ***names, int *n,
                     char *err);
/* Read a dataset of exactly n elements of the given type (type and length checked). */
int ckpt_read_f32(const CkptReader *r, const char *path, float *out, size_t n, char *err);
int ckpt_read_f64(const CkptReader *r, const char *path, double *out, size_t n, char *err);
int ckpt_read_i64(const CkptReader *r, const char *path, int64_t *out, size_t n, char *err);
int ckpt_read_u64(const CkptReader *r, const char *path, uint64_t *out, size_t n, char *err);
/* Extra root attributes. *out is malloc'd (caller frees). */
int ckpt_read_attr_str(const CkptReader *r, const char *name, char **out, char *err);
int ckpt_read_attr_i64(const CkptReader *r, const char *name, int64_t *out, char *err);
/* Recompute the checksum of every dataset in the file (a full read). */
int ckpt_verify(const CkptReader *r, char *err);

// ---- run directories and images ---------------------------------------------------

/* Which checkpoint to load. dir_or_path may be a checkpoint file (returned if it opens and
 * verifies) or a run directory; `which` is "auto" (the file `latest` names, else the
 * newest by step, skipping any that does not verify), "latest" (only what `latest`
 * names) or a step number. Returns 0 with the path in out, 1 if the directory holds no
 * checkpoint at all (a fresh start), -1 with err. On 0, err is "" or a warning naming
 * the newer checkpoints that were skipped as unreadable. */
int ckpt_resolve(const char *dir_or_path, const char *which, char *out, size_t out_len,
                 char *err);
/* The file name of step's checkpoint in a run directory: "ckpt-00000042.h5". */
void ckpt_file_name(int64_t step, char *out, size_t out_len);
/* A weight broadcast: meta + /<group> of m as an HDF5 image: malloc'd bytes (caller frees), or
 * with an arena (may be NULL) bytes in the arena (see ckpt_writer_open_image_in). */
int ckpt_image_build(const CkptMeta *meta, const char *group, const GPT *m, CkptArena *arena,
                     void **bytes, size_t *len, char *err);
/* Load /<group> of an image into an initialised model of the same config; meta_out (may
 * be NULL) gets step/policy_version/stage/model (its string pointers are set to NULL). */
int ckpt_image_load(const void *bytes, size_t len, const char *group, GPT *m,
                    CkptMeta *meta_out, char *err);

/* CRC-32 (IEEE 802.3, reflected, as zlib's crc32): crc = ckpt_crc32(0, data, n), and
 * continues over several buffers when fed the previous value. */
uint32_t ckpt_crc32(uint32_t crc, const void *data, size_t n);

/* Names of heads as stored in files: "lm", "score", "value"; parse returns -1 if unknown. */
const char *ckpt_head_name(GPTHead h);
int ckpt_head_parse(const char *s, GPTHead *out);

#endif
