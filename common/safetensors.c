/*
 * common/safetensors.c — safetensors parsing (validated field by field) and F32 writing.
 * The format and the rules enforced are in safetensors.h. The header is parsed with
 * jansson (JSON_REJECT_DUPLICATES); every number is checked for range before it is used
 * as an offset, so a hostile header can make parsing fail but never read out of bounds.
 */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c reads little-endian data in place: little-endian hosts only"
#endif

// ----------------------------------------------------------------------------
// dtypes

static const struct {
    const char *name;
    size_t size;
} DTYPES[ST_NUM_DTYPES] = {
    [ST_BOOL] = {"BOOL", 1},    [ST_U8] = {"U8", 1},     [ST_I8] = {"I8", 1},
    [ST_F8_E4M3] = {"F8_E4M3", 1}, [ST_F8_E5M2] = {"F8_E5M2", 1}, [ST_I16] = {"I16", 2},
    [ST_U16] = {"U16", 2},      [ST_F16] = {"F16", 2},   [ST_BF16] = {"BF16", 2},
    [ST_I32] = {"I32", 4},      [ST_U32] = {"U32", 4},   [ST_F32] = {"F32", 4},
    [ST_F64] = {"F64", 8},      [ST_I64] = {"I64", 8},   [ST_U64] = {"U64", 8},
};

const char *safetensors_dtype_name(StDtype d) {
    return (unsigned)d < ST_NUM_DTYPES ? DTYPES[d].name : "?";
}

size_t safetensors_dtype_size(StDtype d) {
    return (unsigned)d < ST_NUM_DTYPES ? DTYPES[d].size : 0;
}

static int dtype_parse(const char *s, StDtype *out) {
    for (int i = 0; i < ST_NUM_DTYPES; i++)
        if (strcmp(s, DTYPES[i].name) == 0) {
            *out = (StDtype)i;
            return 0;
        }
    return -1;
}

float safetensors_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: man * 2^-24, renormalised */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400u));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13); /* inf, nan (payload kept) */
    } else {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float safetensors_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

// ----------------------------------------------------------------------------
// parsing

void safetensors_free(SafeTensors *st) {
    if (!st) return;
    for (int i = 0; i < st->num_tensors; i++) free(st->tensors[i].name);
    free(st->tensors);
    for (int i = 0; i < st->num_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_vals[i]);
    }
    free(st->meta_keys);
    free(st->meta_vals);
    free(st->buf);
    memset(st, 0, sizeof *st);
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const StTensor *)a)->name, ((const StTensor *)b)->name);
}

static int cmp_range(const void *a, const void *b) {
    const StTensor *x = *(const StTensor *const *)a, *y = *(const StTensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* A JSON integer in [0, max] (jansson integers are signed 64-bit). */
static int json_uint(const json_t *v, uint64_t max, uint64_t *out) {
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    if (x < 0 || (uint64_t)x > max) return -1;
    *out = (uint64_t)x;
    return 0;
}

static int parse_tensor(StTensor *t, const char *name, json_t *v, size_t data_len,
                        const char *src, char *err) {
    t->name = xstrdup(name);
    if (!json_is_object(v))
        return errf(err, "%s: tensor \"%s\": expected an object with dtype, shape, "
                         "data_offsets", src, name);
    json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"),
           *off = json_object_get(v, "data_offsets");
    if (!json_is_string(dt)) return errf(err, "%s: tensor \"%s\": no string dtype", src, name);
    if (dtype_parse(json_string_value(dt), &t->dtype) != 0)
        return errf(err, "%s: tensor \"%s\": unknown dtype \"%.32s\"", src, name,
                    json_string_value(dt));
    if (!json_is_array(sh))
        return errf(err, "%s: tensor \"%s\": shape is not an array", src, name);
    if (json_array_size(sh) > ST_MAX_DIMS)
        return errf(err, "%s: tensor \"%s\": %zu dimensions (at most %d supported)", src, name,
                    json_array_size(sh), ST_MAX_DIMS);
    t->ndim = (int)json_array_size(sh);
    uint64_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        uint64_t d;
        if (json_uint(json_array_get(sh, (size_t)i), (uint64_t)INT64_MAX, &d) != 0)
            return errf(err, "%s: tensor \"%s\": shape[%d] is not a non-negative integer", src,
                        name, i);
        t->shape[i] = (int64_t)d;
        if (d != 0 && numel > (uint64_t)SIZE_MAX / 8 / d)
            return errf(err, "%s: tensor \"%s\": shape overflows", src, name);
        numel *= d;
    }
    t->numel = (size_t)numel;
    if (!json_is_array(off) || json_array_size(off) != 2)
        return errf(err, "%s: tensor \"%s\": data_offsets is not [begin, end]", src, name);
    uint64_t b, e;
    if (json_uint(json_array_get(off, 0), (uint64_t)INT64_MAX, &b) != 0 ||
        json_uint(json_array_get(off, 1), (uint64_t)INT64_MAX, &e) != 0)
        return errf(err, "%s: tensor \"%s\": data_offsets are not non-negative integers", src,
                    name);
    if (b > e)
        return errf(err, "%s: tensor \"%s\": data_offsets [%llu, %llu] end before they begin",
                    src, name, (unsigned long long)b, (unsigned long long)e);
    if (e > data_len)
        return errf(err, "%s: tensor \"%s\": data_offsets [%llu, %llu] go beyond the %zu bytes "
                         "of data (a truncated file?)", src, name, (unsigned long long)b,
                    (unsigned long long)e, data_len);
    size_t want = t->numel * DTYPES[t->dtype].size;
    if (e - b != want)
        return errf(err, "%s: tensor \"%s\": %llu bytes in data_offsets, but shape x %s needs "
                         "%zu", src, name, (unsigned long long)(e - b), DTYPES[t->dtype].name,
                    want);
    t->begin = (size_t)b;
    t->end = (size_t)e;
    return 0;
}

static int parse_metadata(SafeTensors *st, json_t *v, const char *src, char *err) {
    if (!json_is_object(v)) return errf(err, "%s: __metadata__ is not an object", src);
    size_t n = json_object_size(v);
    st->meta_keys = xcalloc(n ? n : 1, sizeof(char *));
    st->meta_vals = xcalloc(n ? n : 1, sizeof(char *));
    const char *k;
    json_t *val;
    json_object_foreach(v, k, val) {
        if (!json_is_string(val))
            return errf(err, "%s: __metadata__[\"%s\"] is not a string", src, k);
        st->meta_keys[st->num_meta] = xstrdup(k);
        st->meta_vals[st->num_meta] = xstrdup(json_string_value(val));
        st->num_meta++;
    }
    return 0;
}

/* Validate st->buf[0..len). */
static int parse_buf(SafeTensors *st, const char *src, char *err) {
    json_t *root = NULL;
    StTensor **by_range = NULL;
    int rc = -1;
    if (st->len < 8) {
        errf(err, "%s: %zu bytes: too short for the 8-byte header length", src, st->len);
        goto fail;
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | st->buf[i];
    st->header_len = n;
    if (n > ST_MAX_HEADER) {
        errf(err, "%s: header length %llu is over the 100 MB limit (not a safetensors file?)",
             src, (unsigned long long)n);
        goto fail;
    }
    if (n > st->len - 8) {
        errf(err, "%s: header length %llu is beyond the end of the %zu-byte file (truncated?)",
             src, (unsigned long long)n, st->len);
        goto fail;
    }
    if (n < 2 || st->buf[8] != '{') {
        errf(err, "%s: the header does not start with '{' (not a safetensors file)", src);
        goto fail;
    }
    size_t bad = 0;
    if (!utf8_valid((const char *)st->buf + 8, (size_t)n, &bad)) {
        errf(err, "%s: the header is not valid UTF-8 (byte %zu)", src, (size_t)8 + bad);
        goto fail;
    }
    st->data = st->buf + 8 + n;
    st->data_len = st->len - 8 - (size_t)n;
    json_error_t jerr;
    root = json_loadb((const char *)st->buf + 8, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        errf(err, "%s: header JSON, line %d column %d: %s", src, jerr.line, jerr.column,
             jerr.text);
        goto fail;
    }
    if (!json_is_object(root)) {
        errf(err, "%s: the header is not a JSON object", src);
        goto fail;
    }
    size_t count = json_object_size(root);
    st->tensors = xcalloc(count ? count : 1, sizeof(StTensor));
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (parse_metadata(st, val, src, err) != 0) goto fail;
            continue;
        }
        if (!key[0]) {
            errf(err, "%s: a tensor has an empty name", src);
            goto fail;
        }
        if (parse_tensor(&st->tensors[st->num_tensors++], key, val, st->data_len, src, err))
            goto fail;
    }
    qsort(st->tensors, (size_t)st->num_tensors, sizeof(StTensor), cmp_name);
    /* the byte ranges must tile the data section: no overlap, no hole, nothing after */
    by_range = xcalloc((size_t)st->num_tensors + 1, sizeof *by_range);
    for (int i = 0; i < st->num_tensors; i++) by_range[i] = &st->tensors[i];
    qsort(by_range, (size_t)st->num_tensors, sizeof *by_range, cmp_range);
    size_t pos = 0;
    const StTensor *prev = NULL;
    for (int i = 0; i < st->num_tensors; i++) {
        const StTensor *t = by_range[i];
        if (t->begin == t->end) continue; /* empty tensors take no bytes */
        if (t->begin < pos) {
            errf(err, "%s: tensors \"%s\" [%zu, %zu) and \"%s\" [%zu, %zu) overlap", src,
                 prev->name, prev->begin, prev->end, t->name, t->begin, t->end);
            goto fail;
        }
        if (t->begin > pos) {
            errf(err, "%s: bytes [%zu, %zu) of the data section belong to no tensor (a hole "
                      "before \"%s\")", src, pos, t->begin, t->name);
            goto fail;
        }
        pos = t->end;
        prev = t;
    }
    if (pos != st->data_len) {
        errf(err, "%s: the tensors cover %zu bytes but the data section has %zu (trailing "
                  "bytes)", src, pos, st->data_len);
        goto fail;
    }
    rc = 0;
fail:
    free(by_range);
    json_decref(root);
    return rc;
}

int safetensors_parse(SafeTensors *st, const void *bytes, size_t len, char *err) {
    memset(st, 0, sizeof *st);
    st->buf = xmalloc(len ? len : 1);
    if (len) memcpy(st->buf, bytes, len);
    st->len = len;
    if (parse_buf(st, "<safetensors>", err) != 0) {
        safetensors_free(st);
        return -1;
    }
    return 0;
}

int safetensors_load(SafeTensors *st, const char *path, char *err) {
    memset(st, 0, sizeof *st);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return errf(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat s;
    if (fstat(fd, &s) != 0 || !S_ISREG(s.st_mode)) {
        close(fd);
        return errf(err, "%s: not a regular file", path);
    }
    size_t len = (size_t)s.st_size, got = 0;
    st->buf = xmalloc(len ? len : 1);
    while (got < len) {
        ssize_t r = read(fd, st->buf + got, len - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            errf(err, "%s: read failed after %zu of %zu bytes: %s", path, got, len,
                 r < 0 ? strerror(errno) : "unexpected end of file");
            close(fd);
            safetensors_free(st);
            return -1;
        }
        got += (size_t)r;
    }
    close(fd);
    st->len = len;
    if (parse_buf(st, path, err) != 0) {
        safetensors_free(st);
        return -1;
    }
    return 0;
}

const StTensor *safetensors_find(const SafeTensors *st, const char *name) {
    StTensor key = {.name = (char *)name};
    return bsearch(&key, st->tensors, (size_t)st->num_tensors, sizeof(StTensor), cmp_name);
}

const char *safetensors_meta(const SafeTensors *st, const char *key) {
    for (int i = 0; i < st->num_meta; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_vals[i];
    return NULL;
}

int safetensors_read_f32(const SafeTensors *st, const StTensor *t, float *out, char *err) {
    const unsigned char *p = st->data + t->begin;
    size_t n = t->numel;
    switch (t->dtype) {
    case ST_F32: memcpy(out, p, n * 4); return 0;
    case ST_F16:
    case ST_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
            out[i] = t->dtype == ST_F16 ? safetensors_f16_to_f32(h) : safetensors_bf16_to_f32(h);
        }
        return 0;
    case ST_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            out[i] = (float)d;
        }
        return 0;
    default:
        return errf(err, "tensor \"%s\": dtype %s cannot be converted to float32", t->name,
                    DTYPES[t->dtype].name);
    }
}

// ----------------------------------------------------------------------------
// writing

typedef struct {
    const StWrite *t;
    size_t numel;
} WriteItem;

static int cmp_write(const void *a, const void *b) {
    return strcmp(((const WriteItem *)a)->t->name, ((const WriteItem *)b)->t->name);
}

/* Sort and check the tensors, and build the padded header. On success *items (sorted)
 * and *header (the 8-byte length + JSON + spaces, malloc'd) are the caller's. */
static int build_header(const StWrite *t, int n, StDtype dtype, const char *const *meta_kv,
                        int n_meta, WriteItem **items_out, char **header, size_t *header_len,
                        size_t *data_len, char *err) {
    size_t es = safetensors_dtype_size(dtype);
    WriteItem *items = xcalloc((size_t)n + 1, sizeof *items);
    json_t *root = json_object();
    char *js = NULL;
    int rc = -1;
    for (int i = 0; i < n; i++) {
        if (!t[i].name || !t[i].name[0] || strcmp(t[i].name, "__metadata__") == 0) {
            errf(err, "safetensors write: tensor %d has an invalid name", i);
            goto fail;
        }
        if (t[i].ndim < 0 || t[i].ndim > ST_MAX_DIMS) {
            errf(err, "safetensors write: tensor \"%s\": ndim %d", t[i].name, t[i].ndim);
            goto fail;
        }
        size_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++) {
            if (t[i].shape[d] < 0) {
                errf(err, "safetensors write: tensor \"%s\": negative shape", t[i].name);
                goto fail;
            }
            numel *= (size_t)t[i].shape[d];
        }
        if (numel > 0 && !t[i].data) {
            errf(err, "safetensors write: tensor \"%s\": no data", t[i].name);
            goto fail;
        }
        items[i] = (WriteItem){.t = &t[i], .numel = numel};
    }
    qsort(items, (size_t)n, sizeof *items, cmp_write);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && strcmp(items[i].t->name, items[i - 1].t->name) == 0) {
            errf(err, "safetensors write: tensor \"%s\" appears twice", items[i].t->name);
            goto fail;
        }
        json_t *shape = json_array();
        for (int d = 0; d < items[i].t->ndim; d++)
            json_array_append_new(shape, json_integer((json_int_t)items[i].t->shape[d]));
        json_t *e = json_pack("{s:s, s:o, s:[I,I]}", "dtype", safetensors_dtype_name(dtype),
                              "shape", shape, "data_offsets", (json_int_t)off,
                              (json_int_t)(off + es * items[i].numel));
        if (!e || json_object_set_new(root, items[i].t->name, e) != 0) {
            errf(err, "safetensors write: tensor \"%s\": cannot build the header (not UTF-8?)",
                 items[i].t->name);
            goto fail;
        }
        off += es * items[i].numel;
    }
    if (n_meta > 0) {
        json_t *meta = json_object();
        for (int i = 0; i < n_meta; i++)
            if (json_object_set_new(meta, meta_kv[2 * i], json_string(meta_kv[2 * i + 1])) != 0) {
                json_decref(meta);
                errf(err, "safetensors write: metadata \"%s\" is not a UTF-8 string",
                     meta_kv[2 * i]);
                goto fail;
            }
        json_object_set_new(root, "__metadata__", meta);
    }
    js = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    if (!js) {
        errf(err, "safetensors write: cannot serialise the header");
        goto fail;
    }
    size_t jl = strlen(js), padded = (jl + 7) / 8 * 8;
    char *h = xmalloc(8 + padded);
    for (int i = 0; i < 8; i++) h[i] = (char)(((uint64_t)padded >> (8 * i)) & 0xff);
    memcpy(h + 8, js, jl);
    memset(h + 8 + jl, ' ', padded - jl);
    *header = h;
    *header_len = 8 + padded;
    *data_len = off;
    *items_out = items;
    items = NULL;
    rc = 0;
fail:
    free(js);
    json_decref(root);
    free(items);
    return rc;
}

uint16_t safetensors_f32_to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40); /* quiet NaN */
    /* round to nearest, ties to even: add 0x7fff plus the lowest kept bit */
    return (uint16_t)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

/* Item i's data in the file's dtype: the floats themselves for F32, else converted into
 * scratch (numel uint16 slots). */
static const void *item_bytes(const WriteItem *it, StDtype dtype, uint16_t *scratch) {
    if (dtype == ST_F32) return it->t->data;
    for (size_t k = 0; k < it->numel; k++) scratch[k] = safetensors_f32_to_bf16(it->t->data[k]);
    return scratch;
}

static size_t max_numel(const WriteItem *items, int n) {
    size_t m = 1;
    for (int i = 0; i < n; i++)
        if (items[i].numel > m) m = items[i].numel;
    return m;
}

static int check_write_dtype(StDtype dtype, char *err) {
    if (dtype != ST_F32 && dtype != ST_BF16)
        return errf(err, "safetensors write: dtype %s is not supported (F32 or BF16)",
                    safetensors_dtype_name(dtype));
    return 0;
}

int safetensors_serialize(const StWrite *t, int n, StDtype dtype, const char *const *meta_kv,
                          int n_meta, unsigned char **out, size_t *out_len, char *err) {
    WriteItem *items;
    char *header;
    size_t hl, dl, es = safetensors_dtype_size(dtype);
    if (check_write_dtype(dtype, err) != 0 ||
        build_header(t, n, dtype, meta_kv, n_meta, &items, &header, &hl, &dl, err) != 0)
        return -1;
    unsigned char *buf = xmalloc(hl + dl + 1);
    uint16_t *scratch = dtype == ST_F32 ? NULL : xmalloc(2 * max_numel(items, n));
    memcpy(buf, header, hl);
    size_t off = hl;
    for (int i = 0; i < n; i++) {
        if (items[i].numel)
            memcpy(buf + off, item_bytes(&items[i], dtype, scratch), es * items[i].numel);
        off += es * items[i].numel;
    }
    free(scratch);
    free(header);
    free(items);
    *out = buf;
    *out_len = hl + dl;
    return 0;
}

int safetensors_serialize_f32(const StWrite *t, int n, const char *const *meta_kv, int n_meta,
                              unsigned char **out, size_t *out_len, char *err) {
    return safetensors_serialize(t, n, ST_F32, meta_kv, n_meta, out, out_len, err);
}

static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

int safetensors_write(const char *path, const StWrite *t, int n, StDtype dtype,
                      const char *const *meta_kv, int n_meta, char *err) {
    WriteItem *items;
    char *header;
    size_t hl, dl, es = safetensors_dtype_size(dtype);
    if (check_write_dtype(dtype, err) != 0 ||
        build_header(t, n, dtype, meta_kv, n_meta, &items, &header, &hl, &dl, err) != 0)
        return -1;
    uint16_t *scratch = dtype == ST_F32 ? NULL : xmalloc(2 * max_numel(items, n));
    size_t plen = strlen(path);
    char *tmp = xmalloc(plen + 5);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    int rc = -1, fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        errf(err, "%s: cannot create: %s", tmp, strerror(errno));
        goto done;
    }
    int bad = write_all(fd, header, hl);
    for (int i = 0; i < n && !bad; i++)
        bad = write_all(fd, item_bytes(&items[i], dtype, scratch), es * items[i].numel);
    if (bad || fsync(fd) != 0) {
        errf(err, "%s: write failed: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto done;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        errf(err, "%s: cannot finish writing: %s", path, strerror(errno));
        unlink(tmp);
        goto done;
    }
    rc = file_sync_dir(path, err);
done:
    free(scratch);
    free(tmp);
    free(header);
    free(items);
    return rc;
}

int safetensors_write_f32(const char *path, const StWrite *t, int n, const char *const *meta_kv,
                          int n_meta, char *err) {
    return safetensors_write(path, t, n, ST_F32, meta_kv, n_meta, err);
}
