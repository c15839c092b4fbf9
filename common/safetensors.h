/*
 * common/safetensors.h — read and write the safetensors format (Hugging Face's tensor
 * file), for importing and exporting GPT-2 weights (tools/rlhf-hf.c).
 *
 * The format: an 8-byte little-endian unsigned header length N, then N bytes of a UTF-8
 * JSON object, then the data section. Each header key is a tensor name mapping to
 * {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]} with byte
 * offsets relative to the start of the data section; the optional key "__metadata__"
 * maps to an object of string -> string. Everything is validated on parse, as the
 * reference implementation does: N within the file and at most 100 MB, well-formed JSON
 * without duplicate keys, known dtypes, non-negative shapes without overflow,
 * begin <= end <= data size, (end - begin) == product(shape) * sizeof(dtype), no two
 * tensors overlapping, and the data section covered exactly (no holes, no trailing
 * bytes). Any violation is an error naming the tensor and the field.
 *
 * Reading converts F32, F16, BF16 and F64 to float32; other dtypes are parsed and
 * validated but cannot be converted (rlhf-hf skips the only ones GPT-2 files carry, the
 * attention mask buffers). Writing produces F32 (or BF16) tensors with the header keys sorted and
 * padded with spaces to a multiple of 8 bytes, data in the same sorted order, written
 * atomically (path.tmp, fsync, rename).
 *
 * Not here: sharded checkpoints (model.safetensors.index.json, common/hf_weights.h) and
 * memory mapping (the file is read whole); little-endian hosts only.
 */
#ifndef RLHF_SAFETENSORS_H
#define RLHF_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

typedef enum {
    ST_BOOL, ST_U8, ST_I8, ST_F8_E4M3, ST_F8_E5M2, ST_I16, ST_U16, ST_F16, ST_BF16,
    ST_I32, ST_U32, ST_F32, ST_F64, ST_I64, ST_U64, ST_NUM_DTYPES
} StDtype;

typedef struct {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    size_t begin, end; /* byte range in the data section */
} StTensor;

typedef struct {
    int num_tensors;
    StTensor *tensors;  /* sorted by name */
    int num_meta;
    char **meta_keys, **meta_vals;
    unsigned char *buf; /* the whole file (owned) */
    size_t len;
    const unsigned char *data; /* the data section, inside buf */
    size_t data_len;
    uint64_t header_len;
} SafeTensors;

/* Read and validate a file. 0, or -1 with err (st is then empty, safetensors_free-able). */
int safetensors_load(SafeTensors *st, const char *path, char *err);
/* Validate bytes in memory (they are copied). */
int safetensors_parse(SafeTensors *st, const void *bytes, size_t len, char *err);
void safetensors_free(SafeTensors *st); /* NULL or an empty/failed st is fine */

const StTensor *safetensors_find(const SafeTensors *st, const char *name);
/* The value of a __metadata__ key, or NULL. */
const char *safetensors_meta(const SafeTensors *st, const char *key);
/* Convert tensor t (F32/F16/BF16/F64) into out[t->numel]; -1 with err for other dtypes. */
int safetensors_read_f32(const SafeTensors *st, const StTensor *t, float *out, char *err);

const char *safetensors_dtype_name(StDtype d);
size_t safetensors_dtype_size(StDtype d);

/* One tensor to write: numel = product(shape) (1 for ndim 0) floats at data. */
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const float *data;
} StWrite;

/* Write n F32 tensors (names must be unique and not "__metadata__") and the metadata
 * pairs meta_kv[0..2*n_meta) (key, value, key, value, ...) to path atomically. */
int safetensors_write_f32(const char *path, const StWrite *t, int n, const char *const *meta_kv,
                          int n_meta, char *err);
/* The same into a malloc'd buffer. */
int safetensors_serialize_f32(const StWrite *t, int n, const char *const *meta_kv, int n_meta,
                              unsigned char **out, size_t *out_len, char *err);
/* The same two with the file's dtype: ST_F32, or ST_BF16 (each float rounded to nearest,
 * ties to even: a value that came from BF16 is written back bit for bit). */
int safetensors_write(const char *path, const StWrite *t, int n, StDtype dtype,
                      const char *const *meta_kv, int n_meta, char *err);
int safetensors_serialize(const StWrite *t, int n, StDtype dtype, const char *const *meta_kv,
                          int n_meta, unsigned char **out, size_t *out_len, char *err);

/* IEEE half and bfloat16 to float (exact: every value is representable). */
float safetensors_f16_to_f32(uint16_t h);
float safetensors_bf16_to_f32(uint16_t h);
/* float to bfloat16, rounded to nearest even (NaN stays NaN, overflow goes to inf). */
uint16_t safetensors_f32_to_bf16(float f);

#endif
