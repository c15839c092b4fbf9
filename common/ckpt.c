/*
 * common/ckpt.c — HDF5 checkpoints and weight images (the format is specified in ckpt.h).
 *
 * Every HDF5 call is checked with H5TRY (HDF5 itself owns the name H5CHECK), which on
 * failure writes "<what>: HDF5 says <its innermost error message> [ckpt.c:<line>]" into
 * err and jumps to the function's one cleanup label: a bad checkpoint is the user's
 * recoverable error, so nothing here aborts.
 * HDF5 is told not to print its error stack (H5Eset_auto2 in h5_quiet, called by every
 * entry point that opens a file).
 *
 * Not here: what goes into a checkpoint (the stages decide) and MPI (rank 0 writes).
 */
#include "ckpt.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h> /* the CRC's carry-less multiplies */
#define CRC_FOLD 1
#define CRC_TARGET __attribute__((target("pclmul,sse4.1")))
#endif

#include "fault.h"
#include "util.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ckpt.c checksums the in-memory bytes of little-endian datasets: little-endian hosts only"
#endif

// ----------------------------------------------------------------------------
// CRC-32 (IEEE 802.3 polynomial, reflected: the CRC of zlib, PNG and gzip). Long inputs
// are folded with carry-less multiplies (PCLMULQDQ; Gopal et al. 2009, "Fast CRC
// computation for generic polynomials using PCLMULQDQ instruction", Intel white paper):
// four 16-byte accumulators step over 64 bytes at a time, are folded into one, and the
// last 16 bytes and the tail go through the tables. Slicing by 8 (eight 256-entry
// tables, 8 bytes per step) does short inputs and hosts without the instruction; it was
// ~1.5 GB/s, a fifth of the time of writing or reading a 124M checkpoint. The folding
// functions are compiled for PCLMULQDQ whatever the build's level (x86-64-v2 and v3 do
// not include it) and run only where CPUID reports it (crc_fold_ok).

static uint32_t crc_tab[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

#if defined(CRC_FOLD)
static int crc_fold_ok; /* the CPU has PCLMULQDQ and SSE4.1 (set by crc_init) */
/* Fold constants, as 64-bit lanes: a 16-byte block is the polynomial X = H x^64 + L
 * (the reflected bit order puts H, the higher powers, in the low lane), and a carry-less
 * product of two reflected 64-bit values is x times the product of their polynomials.
 * So X x^F = x H k_h + x L k_l (mod P) for k_h = x^(F+63) mod P and k_l = x^(F-1) mod P,
 * each placed in the high 32 bits of its lane. Computed in crc_init for F = 512 (the four
 * accumulators, 64 bytes apart) and F = 128 (one block). */
static __m128i crc_k512, crc_k128;

/* x^n mod P in the reflected 32-bit form (bit i is the coefficient of x^(31 - i)) */
static uint32_t crc_xpow(int n) {
    uint32_t v = 0x80000000u; /* x^0 */
    for (int i = 0; i < n; i++) v = (v & 1) ? (v >> 1) ^ 0xEDB88320u : v >> 1;
    return v;
}
CRC_TARGET static __m128i crc_fold_consts(int F) {
    return _mm_set_epi64x((long long)((uint64_t)crc_xpow(F - 1) << 32),
                          (long long)((uint64_t)crc_xpow(F + 63) << 32));
}
CRC_TARGET static inline __m128i crc_fold(__m128i x, __m128i k) {
    return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11));
}
#endif

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_tab[0][i] = c;
    }
    for (int s = 1; s < 8; s++)
        for (int i = 0; i < 256; i++)
            crc_tab[s][i] = (crc_tab[s - 1][i] >> 8) ^ crc_tab[0][crc_tab[s - 1][i] & 0xff];
#if defined(CRC_FOLD)
    __builtin_cpu_init();
    crc_fold_ok = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
    if (crc_fold_ok) {
        crc_k512 = crc_fold_consts(512);
        crc_k128 = crc_fold_consts(128);
    }
#endif
}

/* The register form of the CRC (no inversions) of n bytes from state crc, by the tables. */
static uint32_t crc_tables(uint32_t crc, const unsigned char *p, size_t n) {
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        uint32_t lo = (uint32_t)v ^ crc, hi = (uint32_t)(v >> 32);
        crc = crc_tab[7][lo & 0xff] ^ crc_tab[6][(lo >> 8) & 0xff] ^
              crc_tab[5][(lo >> 16) & 0xff] ^ crc_tab[4][lo >> 24] ^ crc_tab[3][hi & 0xff] ^
              crc_tab[2][(hi >> 8) & 0xff] ^ crc_tab[1][(hi >> 16) & 0xff] ^
              crc_tab[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) crc = crc_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(CRC_FOLD)
/* The register form of the CRC of n >= 128 bytes from state crc, by folding. */
CRC_TARGET static uint32_t crc_folded(uint32_t crc, const unsigned char *p, size_t n) {
    /* the state enters as an xor into the first 4 bytes (the CRC is linear); the
     * folded 16 bytes are then congruent to everything before them, so the tables
     * finish from state 0 */
    __m128i a0 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)p), _mm_cvtsi32_si128((int)crc));
    __m128i a1 = _mm_loadu_si128((const __m128i *)(p + 16));
    __m128i a2 = _mm_loadu_si128((const __m128i *)(p + 32));
    __m128i a3 = _mm_loadu_si128((const __m128i *)(p + 48));
    p += 64;
    n -= 64;
    for (; n >= 64; p += 64, n -= 64) {
        a0 = _mm_xor_si128(crc_fold(a0, crc_k512), _mm_loadu_si128((const __m128i *)p));
        a1 = _mm_xor_si128(crc_fold(a1, crc_k512), _mm_loadu_si128((const __m128i *)(p + 16)));
        a2 = _mm_xor_si128(crc_fold(a2, crc_k512), _mm_loadu_si128((const __m128i *)(p + 32)));
        a3 = _mm_xor_si128(crc_fold(a3, crc_k512), _mm_loadu_si128((const __m128i *)(p + 48)));
    }
    a1 = _mm_xor_si128(crc_fold(a0, crc_k128), a1);
    a2 = _mm_xor_si128(crc_fold(a1, crc_k128), a2);
    a3 = _mm_xor_si128(crc_fold(a2, crc_k128), a3);
    for (; n >= 16; p += 16, n -= 16)
        a3 = _mm_xor_si128(crc_fold(a3, crc_k128), _mm_loadu_si128((const __m128i *)p));
    unsigned char last[16];
    _mm_storeu_si128((__m128i *)last, a3);
    crc = crc_tables(0, last, 16);
    return crc_tables(crc, p, n);
}
#endif

uint32_t ckpt_crc32(uint32_t crc, const void *data, size_t n) {
    pthread_once(&crc_once, crc_init);
    const unsigned char *p = data;
    crc = ~crc;
#if defined(CRC_FOLD)
    if (n >= 128 && crc_fold_ok) return ~crc_folded(crc, p, n);
#endif
    return ~crc_tables(crc, p, n);
}

// ----------------------------------------------------------------------------
// HDF5 error handling

/* Every ckpt.c entry point calls this before any other HDF5 call. H5dont_atexit: a file
 * whose close failed (a write error, disk full) stays in libhdf5 1.10's table, and its
 * exit-time cleanup then flushes it again and crashes in H5F__close_cb; rlhf-c closes
 * every file it writes itself (commit) or abandons it on purpose (a failed write, whose
 * .tmp is removed), so nothing is lost by skipping that cleanup. */
static pthread_once_t h5_once = PTHREAD_ONCE_INIT;
static void h5_init(void) { H5dont_atexit(); }
static void h5_quiet(void) {
    pthread_once(&h5_once, h5_init);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

typedef struct {
    char msg[200];
    int found;
} H5ErrText;

static herr_t h5_walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
    (void)n;
    H5ErrText *t = data;
    if (!t->found && e->desc && e->desc[0]) {
        snprintf(t->msg, sizeof t->msg, "%s", e->desc);
        for (char *p = t->msg; *p; p++)
            if ((unsigned char)*p < 32) *p = ' '; /* HDF5 puts newlines in some messages */
        t->found = 1;
    }
    return 0;
}

/* Format "<message>: <HDF5's innermost error> [ckpt.c:line]" into err; returns -1. */
__attribute__((format(printf, 3, 4))) static int h5_fail_at(char *err, int line,
                                                            const char *fmt, ...) {
    H5ErrText t = {.msg = "", .found = 0};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5_walk_cb, &t);
    char what[ERRBUF_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (t.found)
        return errf(err, "%s: HDF5 says \"%s\" [ckpt.c:%d]", what, t.msg, line);
    return errf(err, "%s [ckpt.c:%d]", what, line);
}
#define H5ERR(...) h5_fail_at(err, __LINE__, __VA_ARGS__)
/* Check an HDF5 call (negative hid_t/herr_t/htri_t = failure): report and goto fail. */
#define H5TRY(expr, ...)                                                                \
    do {                                                                                  \
        if ((expr) < 0) {                                                                 \
            H5ERR(__VA_ARGS__);                                                          \
            goto fail;                                                                    \
        }                                                                                 \
    } while (0)

static void h5_close_any(hid_t *id) {
    if (*id < 0) return;
    switch (H5Iget_type(*id)) {
    case H5I_FILE: H5Fclose(*id); break;
    case H5I_GROUP: H5Gclose(*id); break;
    case H5I_DATASET: H5Dclose(*id); break;
    case H5I_DATASPACE: H5Sclose(*id); break;
    case H5I_DATATYPE: H5Tclose(*id); break;
    case H5I_ATTR: H5Aclose(*id); break;
    case H5I_GENPROP_LST: H5Pclose(*id); break;
    default: break;
    }
    *id = -1;
}
#define H5DROP(id) h5_close_any(&(id))

// ----------------------------------------------------------------------------
// names

static const char *const RESERVED_ATTRS[] = {
    "format", "format_version", "stage",  "step",   "policy_version", "config",
    "vocab_size", "max_seq_len", "n_layer", "n_head", "n_embd", "head", "family",
    "n_kv_head", "head_dim", "d_ff", "qkv_bias", "qk_norm", "tie_embeddings",
    "rope_orig_max_pos", "rope_theta", "norm_eps", "rope_factor", "rope_low_freq_factor",
    "rope_high_freq_factor"};

const char *ckpt_head_name(GPTHead h) {
    switch (h) {
    case GPT_HEAD_LM: return "lm";
    case GPT_HEAD_SCORE: return "score";
    case GPT_HEAD_VALUE: return "value";
    }
    return "?";
}

int ckpt_head_parse(const char *s, GPTHead *out) {
    if (strcmp(s, "lm") == 0) *out = GPT_HEAD_LM;
    else if (strcmp(s, "score") == 0) *out = GPT_HEAD_SCORE;
    else if (strcmp(s, "value") == 0) *out = GPT_HEAD_VALUE;
    else return -1;
    return 0;
}

void ckpt_file_name(int64_t step, char *out, size_t out_len) {
    snprintf(out, out_len, "ckpt-%08" PRId64 ".h5", step);
}

/* A group or attribute name: [A-Za-z0-9_.-]+, not "." or "..". */
static int name_ok(const char *s) {
    if (!s || !*s || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.' && *p != '-') return 0;
    return strlen(s) < 128;
}

/* An absolute dataset path: "/" followed by name_ok components separated by "/". */
static int abs_path_ok(const char *path) {
    if (!path || path[0] != '/' || strlen(path) >= 512) return 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", path + 1);
    char *save = NULL;
    int parts = 0;
    for (char *tok = strtok_r(buf, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
        if (!name_ok(tok)) return 0;
        parts++;
    }
    /* no empty components ("//", trailing "/") */
    return parts > 0 && !strstr(path, "//") && path[strlen(path) - 1] != '/';
}

// ----------------------------------------------------------------------------
// property lists

/* File access: the 1.8 object format (checksummed metadata, readable by HDF5 >= 1.8),
 * strong close (closing the file closes whatever an error path left open), and for
 * images the core driver without a backing store. */
static hid_t make_fapl(int core, char *err) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5TRY(fapl, "cannot create an HDF5 file access property list");
    H5TRY(H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18),
          "cannot set the HDF5 format version bounds");
    H5TRY(H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG), "cannot set the close degree");
#if H5_VERSION_GE(1, 10, 7)
    /* No HDF5 file locks: a checkpoint is never read while written (it is renamed into
     * place when complete), and flock fails on some cluster file systems (NFS, Lustre),
     * where HDF5 would refuse to open the file at all. */
    H5TRY(H5Pset_file_locking(fapl, 0, 1), "cannot switch off HDF5 file locking");
#endif
    if (core) H5TRY(H5Pset_fapl_core(fapl, 64 << 10, 0), "cannot select the core driver");
    return fapl;
fail:
    H5DROP(fapl);
    return -1;
}

/* Object creation without modification times, so equal content gives equal bytes. */
static hid_t make_ocpl(hid_t cls, char *err) {
    hid_t p = H5Pcreate(cls);
    H5TRY(p, "cannot create an HDF5 property list");
    H5TRY(H5Pset_obj_track_times(p, 0), "cannot switch off time tracking");
    return p;
fail:
    H5DROP(p);
    return -1;
}

// ----------------------------------------------------------------------------
// attributes

static int attr_write(hid_t obj, const char *name, hid_t ftype, hid_t mtype, const void *val,
                      char *err) {
    hid_t space = -1, attr = -1;
    int rc = -1;
    H5TRY(space = H5Screate(H5S_SCALAR), "attribute %s: cannot create a dataspace", name);
    H5TRY(attr = H5Acreate2(obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT),
            "cannot create attribute %s (does it exist already?)", name);
    H5TRY(H5Awrite(attr, mtype, val), "cannot write attribute %s", name);
    rc = 0;
fail:
    H5DROP(attr);
    H5DROP(space);
    return rc;
}

static int attr_write_i64(hid_t obj, const char *name, int64_t v, char *err) {
    return attr_write(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v, err);
}

static int attr_write_f64(hid_t obj, const char *name, double v, char *err) {
    return attr_write(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v, err);
}

static int attr_write_u32(hid_t obj, const char *name, uint32_t v, char *err) {
    return attr_write(obj, name, H5T_STD_U32LE, H5T_NATIVE_UINT32, &v, err);
}

/* A fixed-length, NUL-terminated UTF-8 string type holding n bytes + NUL. */
static hid_t str_type(size_t n, char *err) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5TRY(t, "cannot create a string type");
    H5TRY(H5Tset_size(t, n + 1), "cannot size a string type of %zu bytes", n + 1);
    H5TRY(H5Tset_strpad(t, H5T_STR_NULLTERM), "cannot set string padding");
    H5TRY(H5Tset_cset(t, H5T_CSET_UTF8), "cannot set the string character set");
    return t;
fail:
    H5DROP(t);
    return -1;
}

static int attr_write_str(hid_t obj, const char *name, const char *s, char *err) {
    hid_t t = str_type(strlen(s), err);
    if (t < 0) return -1;
    int rc = attr_write(obj, name, t, t, s, err);
    H5DROP(t);
    return rc;
}

/* Open attribute `name` of obj (whose path is objname, for messages), checking it exists,
 * is a scalar (or one element) and is of the class wanted. */
static hid_t attr_open(hid_t obj, const char *src, const char *objname, const char *name,
                       H5T_class_t cls, char *err) {
    hid_t attr = -1, space = -1, type = -1;
    htri_t ex = H5Aexists(obj, name);
    H5TRY(ex, "%s: %s: cannot look up attribute %s", src, objname, name);
    if (!ex) {
        errf(err, "%s: %s: attribute '%s' is missing (the file is not a complete rlhf-c "
                  "checkpoint)", src, objname, name);
        return -1;
    }
    H5TRY(attr = H5Aopen(obj, name, H5P_DEFAULT), "%s: %s: cannot open attribute %s", src,
            objname, name);
    H5TRY(space = H5Aget_space(attr), "%s: %s: attribute %s has no dataspace", src, objname,
            name);
    hssize_t np = H5Sget_simple_extent_npoints(space);
    if (np != 1) {
        errf(err, "%s: %s: attribute '%s' has %lld elements, expected a single value", src,
             objname, name, (long long)np);
        goto fail;
    }
    H5TRY(type = H5Aget_type(attr), "%s: %s: attribute %s has no type", src, objname, name);
    if (H5Tget_class(type) != cls) {
        errf(err, "%s: %s: attribute '%s' is not %s", src, objname, name,
             cls == H5T_STRING ? "a string" : cls == H5T_FLOAT ? "a number" : "an integer");
        goto fail;
    }
    H5DROP(type);
    H5DROP(space);
    return attr;
fail:
    H5DROP(type);
    H5DROP(space);
    H5DROP(attr);
    return -1;
}

static int attr_read_i64(hid_t obj, const char *src, const char *objname, const char *name,
                         int64_t *out, char *err) {
    hid_t attr = attr_open(obj, src, objname, name, H5T_INTEGER, err);
    if (attr < 0) return -1;
    int rc = -1;
    H5TRY(H5Aread(attr, H5T_NATIVE_INT64, out), "%s: %s: cannot read attribute %s", src,
            objname, name);
    rc = 0;
fail:
    H5DROP(attr);
    return rc;
}

static int attr_read_f64(hid_t obj, const char *src, const char *objname, const char *name,
                         double *out, char *err) {
    hid_t attr = attr_open(obj, src, objname, name, H5T_FLOAT, err);
    if (attr < 0) return -1;
    int rc = -1;
    H5TRY(H5Aread(attr, H5T_NATIVE_DOUBLE, out), "%s: %s: cannot read attribute %s", src,
            objname, name);
    rc = 0;
fail:
    H5DROP(attr);
    return rc;
}

/* Read a string attribute (fixed or variable length) into a malloc'd string. */
static int attr_read_str(hid_t obj, const char *src, const char *objname, const char *name,
                         char **out, char *err) {
    hid_t attr = attr_open(obj, src, objname, name, H5T_STRING, err), ftype = -1, mtype = -1;
    if (attr < 0) return -1;
    int rc = -1;
    *out = NULL;
    H5TRY(ftype = H5Aget_type(attr), "%s: %s: attribute %s has no type", src, objname, name);
    htri_t vlen = H5Tis_variable_str(ftype);
    H5TRY(vlen, "%s: %s: attribute %s: bad string type", src, objname, name);
    if (vlen) {
        char *s = NULL;
        H5TRY(mtype = H5Tcopy(H5T_C_S1), "cannot create a string type");
        H5TRY(H5Tset_size(mtype, H5T_VARIABLE), "cannot create a string type");
        H5TRY(H5Aread(attr, mtype, &s), "%s: %s: cannot read attribute %s", src, objname,
                name);
        *out = xstrdup(s ? s : "");
        H5free_memory(s);
    } else {
        size_t n = H5Tget_size(ftype);
        if (n == 0 || n > ((size_t)1 << 30)) {
            errf(err, "%s: %s: attribute '%s' has an invalid string size %zu", src, objname,
                 name, n);
            goto fail;
        }
        H5TRY(mtype = H5Tcopy(ftype), "cannot copy a string type");
        char *s = xmalloc(n + 1);
        if (H5Aread(attr, mtype, s) < 0) {
            free(s);
            H5ERR("%s: %s: cannot read attribute %s", src, objname, name);
            goto fail;
        }
        s[n] = 0;
        *out = s;
    }
    rc = 0;
fail:
    H5DROP(mtype);
    H5DROP(ftype);
    H5DROP(attr);
    return rc;
}

// ----------------------------------------------------------------------------
// the writer

/* An image writer's memory: the core driver allocates and grows the in-memory file through
 * these callbacks, and when the file is closed its buffer is kept (not freed) and becomes
 * the image. Taking the image after H5Fclose, rather than with H5Fget_file_image on the
 * open file, matters: HDF5 1.10.8's H5Fget_file_image clears the superblock's status flags
 * in the copy without updating the superblock checksum of 1.8-format files, so such an
 * image does not reopen; it also saves one copy. The buffer is the driver's allocation,
 * up to one increment (64 KiB, zero-filled) longer than the file, which HDF5 accepts. */
typedef struct {
    void *ptr;
    size_t size;
    int stolen;
    CkptArena *arena; /* NULL: malloc'd per image; else the file lives in the arena */
} ImageOut;

/* Grow an arena to hold n bytes (by at least half its size, so that the driver's 64 KiB
 * steps do not realloc every time); 0 on allocation failure. */
static int arena_reserve(CkptArena *a, size_t n) {
    if (n <= a->cap) return 1;
    size_t cap = a->cap + a->cap / 2;
    if (cap < n) cap = n;
    void *q = realloc(a->ptr, cap);
    if (!q) return 0;
    a->ptr = q;
    a->cap = cap;
    return 1;
}

void ckpt_arena_free(CkptArena *a) {
    if (!a) return;
    free(a->ptr);
    a->ptr = NULL;
    a->cap = 0;
}

static void *out_malloc(size_t size, H5FD_file_image_op_t op, void *udata) {
    ImageOut *o = udata;
    (void)op;
    if (o->arena) {
        if (!arena_reserve(o->arena, size ? size : 1)) return NULL;
        memset(o->arena->ptr, 0, size); /* deterministic bytes, as calloc gives */
        o->ptr = o->arena->ptr;
        o->size = size;
        return o->ptr;
    }
    void *p = calloc(1, size ? size : 1);
    if (p) {
        o->ptr = p;
        o->size = size;
    }
    return p;
}

static void *out_memcpy(void *dest, const void *src, size_t size, H5FD_file_image_op_t op,
                        void *udata) {
    (void)op, (void)udata;
    return memcpy(dest, src, size);
}

static void *out_realloc(void *p, size_t size, H5FD_file_image_op_t op, void *udata) {
    ImageOut *o = udata;
    (void)op;
    /* HDF5's core driver allocates a new file with realloc(NULL, n), then grows it */
    if (o->arena && (!p || p == o->arena->ptr)) {
        size_t old = p ? o->size : 0;
        if (!arena_reserve(o->arena, size ? size : 1)) return NULL;
        if (size > old) memset((char *)o->arena->ptr + old, 0, size - old);
        o->ptr = o->arena->ptr;
        o->size = size;
        return o->ptr;
    }
    size_t old = p == o->ptr ? o->size : 0;
    void *q = realloc(p, size ? size : 1);
    if (!q) return NULL;
    if (size > old) memset((char *)q + old, 0, size - old); /* deterministic bytes */
    o->ptr = q;
    o->size = size;
    return q;
}

static herr_t out_free(void *p, H5FD_file_image_op_t op, void *udata) {
    ImageOut *o = udata;
    if (op == H5FD_FILE_IMAGE_OP_FILE_CLOSE && p == o->ptr) {
        o->stolen = 1; /* the image: kept for ckpt_writer_take_image */
        return 0;
    }
    if (o->arena && p && p == o->arena->ptr) { /* the arena outlives the image */
        if (p == o->ptr) o->ptr = NULL;
        return 0;
    }
    if (p == o->ptr) o->ptr = NULL;
    free(p);
    return 0;
}

/* Both image callback sets keep their state in the writer/reader: HDF5's copies of the
 * file-access property list share the one udata pointer, nothing to copy or free. */
static void *image_udata_copy(void *udata) { return udata; }

static herr_t image_udata_free(void *udata) {
    (void)udata;
    return 0;
}

struct CkptWriter {
    hid_t file;
    int image;
    ImageOut out; /* image writers: the in-memory file */
    int meta_written;
    char path[CKPT_PATH_LEN];     /* final path */
    char tmp[CKPT_PATH_LEN + 8];  /* path.tmp */
    int in_dir, keep_last;
    char dir[CKPT_PATH_LEN];
    char name[64]; /* dir mode: the file name inside dir */
};

static unsigned long image_counter = 0;

static CkptWriter *writer_create(const char *path, int image, CkptArena *arena, char *err) {
    h5_quiet();
    CkptWriter *w = xcalloc(1, sizeof *w);
    w->file = -1;
    w->image = image;
    w->out.arena = arena;
    hid_t fapl = -1, fcpl = -1;
    if (image) {
        snprintf(w->tmp, sizeof w->tmp, "rlhf-ckpt-image-w-%d-%lu", (int)getpid(),
                 ++image_counter);
    } else {
        if (strlen(path) + 5 >= CKPT_PATH_LEN) {
            errf(err, "%s: checkpoint path too long", path);
            goto fail;
        }
        snprintf(w->path, sizeof w->path, "%s", path);
        snprintf(w->tmp, sizeof w->tmp, "%s.tmp", path);
    }
    if ((fapl = make_fapl(image, err)) < 0) goto fail;
    if (image) {
        H5FD_file_image_callbacks_t cb = {out_malloc,     out_memcpy,     out_realloc, out_free,
                                          image_udata_copy, image_udata_free, &w->out};
        H5TRY(H5Pset_file_image_callbacks(fapl, &cb), "<image>: cannot set image callbacks");
    }
    if ((fcpl = make_ocpl(H5P_FILE_CREATE, err)) < 0) goto fail;
    H5TRY(w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, fcpl, fapl),
            "%s: cannot create the checkpoint file (is the directory writable?)",
            image ? "<image>" : w->tmp);
    H5DROP(fcpl);
    H5DROP(fapl);
    return w;
fail:
    H5DROP(fcpl);
    H5DROP(fapl);
    free(w);
    return NULL;
}

CkptWriter *ckpt_writer_open(const char *path, char *err) {
    return writer_create(path, 0, NULL, err);
}

CkptWriter *ckpt_writer_open_image(char *err) { return writer_create(NULL, 1, NULL, err); }

CkptWriter *ckpt_writer_open_image_in(CkptArena *arena, char *err) {
    ASSERT(arena);
    return writer_create(NULL, 1, arena, err);
}

CkptWriter *ckpt_writer_open_dir(const char *dir, int64_t step, int keep_last, char *err) {
    if (step < 0) {
        errf(err, "%s: checkpoint step %" PRId64 " is negative", dir, step);
        return NULL;
    }
    if (strlen(dir) + 32 >= CKPT_PATH_LEN) {
        errf(err, "%s: run directory path too long", dir);
        return NULL;
    }
    if (file_mkdirs(dir, err) != 0) return NULL;
    char name[64], path[CKPT_PATH_LEN];
    ckpt_file_name(step, name, sizeof name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    CkptWriter *w = writer_create(path, 0, NULL, err);
    if (!w) return NULL;
    w->in_dir = 1;
    w->keep_last = keep_last;
    snprintf(w->name, sizeof w->name, "%s", name);
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    return w;
}

const char *ckpt_writer_path(const CkptWriter *w) { return w->image ? "" : w->path; }

static const char *wsrc(const CkptWriter *w) { return w->image ? "<image>" : w->tmp; }

/* Create the groups leading to the last component of an absolute path. */
static int ensure_parents(CkptWriter *w, const char *path, char *err) {
    char buf[512];
    hid_t gcpl = -1, g = -1;
    int rc = -1;
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        htri_t ex = H5Lexists(w->file, buf, H5P_DEFAULT);
        H5TRY(ex, "%s: cannot look up %s", wsrc(w), buf);
        if (!ex) {
            if (gcpl < 0 && (gcpl = make_ocpl(H5P_GROUP_CREATE, err)) < 0) goto fail;
            H5TRY(g = H5Gcreate2(w->file, buf, H5P_DEFAULT, gcpl, H5P_DEFAULT),
                    "%s: cannot create group %s", wsrc(w), buf);
            H5DROP(g);
        }
        *p = '/';
    }
    rc = 0;
fail:
    H5DROP(g);
    H5DROP(gcpl);
    return rc;
}

/* Write one dataset of nbytes (ndim 0 = scalar) and its crc32 attribute. */
static int write_ds(CkptWriter *w, const char *path, hid_t ftype, hid_t mtype, int ndim,
                    const hsize_t *dims, const void *data, size_t nbytes, char *err) {
    hid_t space = -1, dcpl = -1, ds = -1;
    int rc = -1;
    if (ensure_parents(w, path, err) != 0) return -1;
    if (ndim == 0) H5TRY(space = H5Screate(H5S_SCALAR), "%s: dataspace", path);
    else H5TRY(space = H5Screate_simple(ndim, dims, NULL), "%s: dataspace", path);
    if ((dcpl = make_ocpl(H5P_DATASET_CREATE, err)) < 0) goto fail;
    H5TRY(ds = H5Dcreate2(w->file, path, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
            "%s: cannot create dataset %s (written twice?)", wsrc(w), path);
    if (nbytes > 0)
        H5TRY(H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data),
                "%s: cannot write dataset %s (disk full?)", wsrc(w), path);
    if (attr_write_u32(ds, "crc32", ckpt_crc32(0, data, nbytes), err) != 0) goto fail;
    rc = 0;
fail:
    H5DROP(ds);
    H5DROP(dcpl);
    H5DROP(space);
    return rc;
}

static int write_1d(CkptWriter *w, const char *path, hid_t ftype, hid_t mtype, size_t esize,
                    const void *data, size_t n, char *err) {
    if (!abs_path_ok(path))
        return errf(err, "%s: dataset path \"%s\" is not an absolute path of names "
                         "[A-Za-z0-9_.-]", wsrc(w), path ? path : "(null)");
    if (n > 0 && !data) return errf(err, "%s: %s: NULL data for %zu elements", wsrc(w), path, n);
    hsize_t d = n;
    return write_ds(w, path, ftype, mtype, 1, &d, data, n * esize, err);
}

int ckpt_write_f32(CkptWriter *w, const char *path, const float *data, size_t n, char *err) {
    return write_1d(w, path, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, data, n, err);
}
int ckpt_write_f64(CkptWriter *w, const char *path, const double *data, size_t n, char *err) {
    return write_1d(w, path, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 8, data, n, err);
}
int ckpt_write_i64(CkptWriter *w, const char *path, const int64_t *data, size_t n, char *err) {
    return write_1d(w, path, H5T_STD_I64LE, H5T_NATIVE_INT64, 8, data, n, err);
}
int ckpt_write_u64(CkptWriter *w, const char *path, const uint64_t *data, size_t n,
                   char *err) {
    return write_1d(w, path, H5T_STD_U64LE, H5T_NATIVE_UINT64, 8, data, n, err);
}

/* A scalar fixed-length string dataset (the tokenizer texts). */
static int write_text(CkptWriter *w, const char *path, const char *s, char *err) {
    size_t n = strlen(s);
    hid_t t = str_type(n, err);
    if (t < 0) return -1;
    int rc = write_ds(w, path, t, t, 0, NULL, s, n + 1, err);
    H5DROP(t);
    return rc;
}

/* The Llama family's fields of GPTConfig, as (attribute name, int field) and (attribute
 * name, float field) pairs: one table serves the writer and the reader. A GPT-2 checkpoint
 * has none of them and no "family" attribute (files written before the Llama family
 * existed read as GPT-2). */
#define LLAMA_INT_FIELDS(X) \
    X(n_kv_head) X(head_dim) X(d_ff) X(qkv_bias) X(qk_norm) X(tie_embeddings) \
    X(rope_orig_max_pos)
#define LLAMA_F64_FIELDS(X) \
    X(rope_theta) X(norm_eps) X(rope_factor) X(rope_low_freq_factor) X(rope_high_freq_factor)

static int write_llama_attrs(hid_t obj, const GPTConfig *c, char *err) {
#define W_INT(f) if (attr_write_i64(obj, #f, c->f, err)) return -1;
#define W_F64(f) if (attr_write_f64(obj, #f, (double)c->f, err)) return -1;
    LLAMA_INT_FIELDS(W_INT)
    LLAMA_F64_FIELDS(W_F64)
#undef W_INT
#undef W_F64
    return 0;
}

static int write_config_attrs(hid_t obj, const GPTConfig *c, char *err) {
    if (attr_write_i64(obj, "vocab_size", c->vocab_size, err) ||
        attr_write_i64(obj, "max_seq_len", c->max_seq_len, err) ||
        attr_write_i64(obj, "n_layer", c->n_layer, err) ||
        attr_write_i64(obj, "n_head", c->n_head, err) ||
        attr_write_i64(obj, "n_embd", c->n_embd, err) ||
        attr_write_str(obj, "head", ckpt_head_name(c->head), err))
        return -1;
    if (c->family == GPT_FAMILY_LLAMA &&
        (attr_write_str(obj, "family", "llama", err) || write_llama_attrs(obj, c, err)))
        return -1;
    return 0;
}

static int stage_ok(const char *s) {
    size_t n = strnlen(s, 16);
    if (n == 0 || n >= 16) return 0;
    for (size_t i = 0; i < n; i++)
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '_')
            return 0;
    return 1;
}

int ckpt_write_meta(CkptWriter *w, const CkptMeta *meta, char *err) {
    if (w->meta_written) return errf(err, "%s: ckpt_write_meta called twice", wsrc(w));
    if (!stage_ok(meta->stage))
        return errf(err, "%s: stage \"%.16s\" must be 1-15 characters [a-z0-9_]", wsrc(w),
                    meta->stage);
    if (meta->step < 0 || meta->policy_version < 0)
        return errf(err, "%s: step %" PRId64 " / policy_version %" PRId64 " must be >= 0",
                    wsrc(w), meta->step, meta->policy_version);
    char cerr[ERRBUF_LEN];
    if (gpt_config_validate(&meta->model, cerr) != 0)
        return errf(err, "%s: model config: %s", wsrc(w), cerr);
    if (attr_write_str(w->file, "format", CKPT_FORMAT, err) ||
        attr_write_i64(w->file, "format_version", CKPT_FORMAT_VERSION, err) ||
        attr_write_str(w->file, "stage", meta->stage, err) ||
        attr_write_i64(w->file, "step", meta->step, err) ||
        attr_write_i64(w->file, "policy_version", meta->policy_version, err) ||
        attr_write_str(w->file, "config", meta->config ? meta->config : "", err) ||
        write_config_attrs(w->file, &meta->model, err))
        return -1;
    if (meta->tok_vocab && write_text(w, "/tokenizer/vocab", meta->tok_vocab, err) != 0)
        return -1;
    if (meta->tok_merges && write_text(w, "/tokenizer/merges", meta->tok_merges, err) != 0)
        return -1;
    if (meta->tok_json && write_text(w, "/tokenizer/json", meta->tok_json, err) != 0)
        return -1;
    if (meta->chat_template &&
        write_text(w, "/tokenizer/chat_template", meta->chat_template, err) != 0)
        return -1;
    w->meta_written = 1;
    return 0;
}

/* A NaN or Inf never reaches a checkpoint: weights and optimizer moments are checked
 * before they are written, and the write fails (the previous checkpoint stays latest). */
static int check_finite(const CkptWriter *w, const char *path, const float *x, size_t n,
                        char *err) {
    /* blocks of 4096 tested with a branch-free OR of "exponent all ones" (vectorised; the
     * early-exit scalar loop was 7 % of writing a 124M checkpoint), then the block with a
     * hit element by element for the message */
    for (size_t i0 = 0; i0 < n; i0 += 4096) {
        size_t e = n - i0 < 4096 ? n : i0 + 4096;
        uint32_t hit = 0;
        for (size_t i = i0; i < e; i++) {
            uint32_t u;
            memcpy(&u, x + i, sizeof u);
            hit |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
        }
        if (!hit) continue;
        for (size_t i = i0; i < e; i++)
            if (!isfinite(x[i]))
                return errf(err, "%s: %s[%zu] = %g is not finite: refusing to write a "
                                 "checkpoint with it", wsrc(w), path, i, (double)x[i]);
    }
    return 0;
}

int ckpt_write_table(CkptWriter *w, const char *group, const GPTTensor *table, int n,
                     const float *buf, char *err) {
    if (!name_ok(group)) return errf(err, "%s: group name \"%s\" is invalid", wsrc(w), group);
    char path[512];
    for (int i = 0; i < n; i++) {
        const GPTTensor *t = &table[i];
        hsize_t dims[2] = {(hsize_t)t->shape[0], (hsize_t)t->shape[1]};
        snprintf(path, sizeof path, "/%s/%s", group, t->name);
        if (check_finite(w, path, buf + t->offset, t->numel, err) != 0) return -1;
        if (write_ds(w, path, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t->ndim, dims, buf + t->offset,
                     t->numel * sizeof(float), err) != 0)
            return -1;
    }
    return 0;
}

int ckpt_write_model(CkptWriter *w, const char *group, const GPT *m, char *err) {
    if (!name_ok(group)) return errf(err, "%s: group name \"%s\" is invalid", wsrc(w), group);
    char path[160];
    hid_t gcpl = -1, g = -1;
    int rc = -1;
    snprintf(path, sizeof path, "/%s", group);
    if ((gcpl = make_ocpl(H5P_GROUP_CREATE, err)) < 0) goto fail;
    H5TRY(g = H5Gcreate2(w->file, path, H5P_DEFAULT, gcpl, H5P_DEFAULT),
            "%s: cannot create group %s (written twice?)", wsrc(w), path);
    if (write_config_attrs(g, &m->config, err) != 0) goto fail;
    H5DROP(g);
    rc = ckpt_write_table(w, group, m->tensors, m->num_tensors, m->params, err);
fail:
    H5DROP(g);
    H5DROP(gcpl);
    return rc;
}

int ckpt_write_adamw(CkptWriter *w, const char *group, const float *m, const float *v,
                     size_t n, int64_t step, char *err) {
    if (!name_ok(group)) return errf(err, "%s: group name \"%s\" is invalid", wsrc(w), group);
    fault_kill_point("ckpt_data");
    char path[200];
    snprintf(path, sizeof path, "/optim/%s/m", group);
    if (check_finite(w, path, m, n, err) != 0 || ckpt_write_f32(w, path, m, n, err) != 0)
        return -1;
    snprintf(path, sizeof path, "/optim/%s/v", group);
    if (check_finite(w, path, v, n, err) != 0 || ckpt_write_f32(w, path, v, n, err) != 0)
        return -1;
    snprintf(path, sizeof path, "/optim/%s/step", group);
    return ckpt_write_i64(w, path, &step, 1, err);
}

int ckpt_write_rng(CkptWriter *w, int rank, const Rng *rng, char *err) {
    if (rank < 0) return errf(err, "%s: rng rank %d is negative", wsrc(w), rank);
    char path[64];
    snprintf(path, sizeof path, "/rng/rank%d", rank);
    return ckpt_write_u64(w, path, rng->s, RNG_STATE_WORDS, err);
}

static int attr_name_free(const CkptWriter *w, const char *name, char *err) {
    if (!name_ok(name)) return errf(err, "%s: attribute name \"%s\" is invalid", wsrc(w), name);
    for (size_t i = 0; i < sizeof RESERVED_ATTRS / sizeof RESERVED_ATTRS[0]; i++)
        if (strcmp(name, RESERVED_ATTRS[i]) == 0)
            return errf(err, "%s: attribute \"%s\" is reserved (use ckpt_write_meta)", wsrc(w),
                        name);
    return 0;
}

int ckpt_write_attr_str(CkptWriter *w, const char *name, const char *value, char *err) {
    if (attr_name_free(w, name, err) != 0) return -1;
    return attr_write_str(w->file, name, value, err);
}

int ckpt_write_attr_i64(CkptWriter *w, const char *name, int64_t value, char *err) {
    if (attr_name_free(w, name, err) != 0) return -1;
    return attr_write_i64(w->file, name, value, err);
}

void ckpt_writer_free(CkptWriter *w) {
    if (!w) return;
    if (w->file >= 0) H5Fclose(w->file);
    if (!w->image) unlink(w->tmp);
    if (!w->out.arena) free(w->out.ptr);
    free(w);
}

// ---- commit: fsync, rename, latest, keep-last-K

typedef struct {
    int64_t step;
    char name[64];
} CkptEntry;

static int entry_cmp_desc(const void *a, const void *b) {
    int64_t x = ((const CkptEntry *)a)->step, y = ((const CkptEntry *)b)->step;
    return (x < y) - (x > y);
}

/* Parse "ckpt-<digits>.h5" exactly; returns the step or -1. */
static int64_t parse_ckpt_name(const char *name) {
    if (strncmp(name, "ckpt-", 5) != 0) return -1;
    const char *p = name + 5;
    int64_t v = 0;
    int digits = 0;
    while (isdigit((unsigned char)*p)) {
        if (v > (INT64_MAX - 9) / 10) return -1;
        v = v * 10 + (*p++ - '0');
        digits++;
    }
    if (digits == 0 || strcmp(p, ".h5") != 0) return -1;
    return v;
}

/* The checkpoints of a run directory, newest step first. */
static int list_ckpts(const char *dir, CkptEntry **out, int *count, char *err) {
    DIR *d = opendir(dir);
    if (!d) return errf(err, "%s: cannot list the run directory: %s", dir, strerror(errno));
    int n = 0, cap = 16;
    CkptEntry *e = xmalloc((size_t)cap * sizeof *e);
    struct dirent *de;
    while ((de = readdir(d))) {
        int64_t s = parse_ckpt_name(de->d_name);
        if (s < 0 || strlen(de->d_name) >= sizeof e[0].name) continue;
        if (n == cap) e = xrealloc(e, (size_t)(cap *= 2) * sizeof *e);
        e[n].step = s;
        memcpy(e[n].name, de->d_name, strlen(de->d_name) + 1);
        n++;
    }
    closedir(d);
    qsort(e, (size_t)n, sizeof *e, entry_cmp_desc);
    *out = e;
    *count = n;
    return 0;
}

static int prune_dir(const char *dir, const char *keep_name, int keep_last, char *err) {
    if (keep_last <= 0) return 0;
    CkptEntry *e;
    int n;
    if (list_ckpts(dir, &e, &n, err) != 0) return -1;
    int kept = 0, rc = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(e[i].name, keep_name) == 0 || kept < keep_last) {
            kept++;
            continue;
        }
        char path[CKPT_PATH_LEN + 64];
        snprintf(path, sizeof path, "%s/%s", dir, e[i].name);
        if (unlink(path) != 0 && errno != ENOENT) {
            rc = errf(err, "%s: cannot remove an old checkpoint (keep_last = %d): %s", path,
                      keep_last, strerror(errno));
            break;
        }
    }
    free(e);
    return rc;
}

int ckpt_writer_commit(CkptWriter *w, char *err) {
    ASSERT(!w->image);
    fault_kill_point("ckpt_commit");
    if (!w->meta_written) {
        errf(err, "%s: ckpt_write_meta was never called; the checkpoint is not written",
             w->tmp);
        goto fail;
    }
    H5TRY(H5Fflush(w->file, H5F_SCOPE_GLOBAL), "%s: cannot flush (disk full?)", w->tmp);
    herr_t closed = H5Fclose(w->file);
    w->file = -1;
    H5TRY(closed, "%s: cannot close (disk full?)", w->tmp);
    int fd = open(w->tmp, O_RDONLY);
    if (fd < 0) {
        errf(err, "%s: cannot reopen for fsync: %s", w->tmp, strerror(errno));
        goto fail;
    }
    if (fsync(fd) != 0) {
        errf(err, "%s: fsync failed: %s (the previous checkpoint is untouched)", w->tmp,
             strerror(errno));
        close(fd);
        goto fail;
    }
    close(fd);
    if (rename(w->tmp, w->path) != 0) {
        errf(err, "rename %s -> %s failed: %s (the previous checkpoint is untouched)", w->tmp,
             w->path, strerror(errno));
        goto fail;
    }
    if (file_sync_dir(w->path, err) != 0) goto fail_committed;
    if (w->in_dir) {
        char latest[CKPT_PATH_LEN + 16], text[80];
        snprintf(latest, sizeof latest, "%s/latest", w->dir);
        snprintf(text, sizeof text, "%s\n", w->name);
        char lerr[ERRBUF_LEN];
        if (file_write_atomic(latest, text, strlen(text), lerr) != 0) {
            errf(err, "%s was written but %s could not be updated (%s); it still names the "
                      "previous checkpoint", w->path, latest, lerr);
            goto fail_committed;
        }
        if (prune_dir(w->dir, w->name, w->keep_last, err) != 0) goto fail_committed;
    }
    free(w);
    fault_kill_point("ckpt_saved");
    return 0;
fail:
    ckpt_writer_free(w);
    return -1;
fail_committed:
    free(w);
    return -1;
}

int ckpt_writer_take_image(CkptWriter *w, void **bytes, size_t *len, char *err) {
    ASSERT(w->image);
    int rc = -1;
    *bytes = NULL;
    *len = 0;
    if (!w->meta_written) {
        errf(err, "<image>: ckpt_write_meta was never called");
        goto fail;
    }
    herr_t closed = H5Fclose(w->file);
    w->file = -1;
    H5TRY(closed, "<image>: cannot finish the in-memory file");
    if (!w->out.stolen || !w->out.ptr) {
        errf(err, "<image>: HDF5 did not hand over the in-memory file [ckpt.c:%d]", __LINE__);
        goto fail;
    }
    *bytes = w->out.ptr;
    *len = w->out.size;
    w->out.ptr = NULL;
    rc = 0;
fail:
    ckpt_writer_free(w);
    return rc;
}

// ----------------------------------------------------------------------------
// the reader

/* Zero-copy file image callbacks (what HDF5's high-level H5LT "don't copy" mode does):
 * every allocation of the image returns the caller's buffer and every copy into it is a
 * no-op, so HDF5 reads the caller's bytes in place instead of copying a multi-hundred-MB
 * image three times (property list set, property list copy, driver open). Read-only:
 * a resize fails, which HDF5 reports as an error. */
typedef struct {
    const void *buf;
    size_t len;
} ImageRef;

static void *img_malloc(size_t size, H5FD_file_image_op_t op, void *udata) {
    const ImageRef *r = udata;
    (void)op;
    return size == r->len ? (void *)r->buf : NULL;
}

static void *img_memcpy(void *dest, const void *src, size_t size, H5FD_file_image_op_t op,
                        void *udata) {
    const ImageRef *r = udata;
    (void)op;
    return dest == r->buf && src == r->buf && size == r->len ? dest : NULL;
}

static void *img_realloc(void *p, size_t size, H5FD_file_image_op_t op, void *udata) {
    (void)p, (void)size, (void)op, (void)udata;
    return NULL;
}

static herr_t img_free(void *p, H5FD_file_image_op_t op, void *udata) {
    (void)p, (void)op, (void)udata;
    return 0;
}


struct CkptReader {
    hid_t file;
    char src[CKPT_PATH_LEN];
    CkptMeta meta;
    char *config, *vocab, *merges, *tok_json, *chat_template;
    ImageRef image; /* images: the caller's bytes, read in place */
};

static int int_field(int64_t v, const char *src, const char *obj, const char *name, int *out,
                     char *err) {
    if (v < INT_MIN || v > INT_MAX)
        return errf(err, "%s: %s: %s = %" PRId64 " is out of range", src, obj, name, v);
    *out = (int)v;
    return 0;
}

/* The family attribute ("gpt2" when absent) and, for Llama, its fields. */
static int read_family_attrs(hid_t obj, const char *src, const char *objname, GPTConfig *c,
                             char *err) {
    htri_t ex = H5Aexists(obj, "family");
    if (ex < 0) return errf(err, "%s: %s: cannot look up attribute family", src, objname);
    if (!ex) return 0;
    char *f = NULL;
    if (attr_read_str(obj, src, objname, "family", &f, err) != 0) return -1;
    int llama = strcmp(f, "llama") == 0, gpt2 = strcmp(f, "gpt2") == 0;
    if (!llama && !gpt2)
        errf(err, "%s: %s: family = \"%.32s\" is not one of gpt2, llama (a checkpoint of a "
                  "newer rlhf-c?)", src, objname, f);
    free(f);
    if (!llama) return gpt2 ? 0 : -1;
    c->family = GPT_FAMILY_LLAMA;
    int64_t v;
    double d;
#define R_INT(f) \
    if (attr_read_i64(obj, src, objname, #f, &v, err) || int_field(v, src, objname, #f, &c->f, err)) \
        return -1;
#define R_F64(f) \
    if (attr_read_f64(obj, src, objname, #f, &d, err)) return -1; \
    c->f = (float)d;
    LLAMA_INT_FIELDS(R_INT)
    LLAMA_F64_FIELDS(R_F64)
#undef R_INT
#undef R_F64
    return 0;
}

/* The model config stored as attributes of obj. */
static int read_config_attrs(hid_t obj, const char *src, const char *objname, GPTConfig *c,
                             char *err) {
    static const char *names[5] = {"vocab_size", "max_seq_len", "n_layer", "n_head", "n_embd"};
    int *slots[5] = {&c->vocab_size, &c->max_seq_len, &c->n_layer, &c->n_head, &c->n_embd};
    memset(c, 0, sizeof *c);
    for (int i = 0; i < 5; i++) {
        int64_t v;
        if (attr_read_i64(obj, src, objname, names[i], &v, err) != 0 ||
            int_field(v, src, objname, names[i], slots[i], err) != 0)
            return -1;
    }
    char *h = NULL;
    if (attr_read_str(obj, src, objname, "head", &h, err) != 0) return -1;
    int bad = ckpt_head_parse(h, &c->head);
    if (bad) errf(err, "%s: %s: head = \"%.32s\" is not one of lm, score, value", src, objname, h);
    free(h);
    if (bad) return -1;
    if (read_family_attrs(obj, src, objname, c, err) != 0) return -1;
    char cerr[ERRBUF_LEN];
    if (gpt_config_validate(c, cerr) != 0)
        return errf(err, "%s: %s: invalid model config: %s", src, objname, cerr);
    return 0;
}

static int exists_path(hid_t file, const char *path) {
    char buf[512];
    if (!path || path[0] != '/' || strlen(path) >= sizeof buf) return 0;
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (H5Lexists(file, buf, H5P_DEFAULT) <= 0) return 0;
            if (c == 0) break;
            *p = c;
        }
    }
    return 1;
}

int ckpt_has(const CkptReader *r, const char *path) { return exists_path(r->file, path); }

static const char *type_desc(hid_t t, char *buf, size_t n) {
    H5T_class_t cls = H5Tget_class(t);
    size_t sz = H5Tget_size(t);
    const char *k = cls == H5T_FLOAT     ? "float"
                    : cls == H5T_INTEGER ? (H5Tget_sign(t) == H5T_SGN_NONE ? "uint" : "int")
                    : cls == H5T_STRING  ? "string"
                                         : "non-numeric";
    snprintf(buf, n, "%s%zu", k, sz * 8);
    return buf;
}

static void dims_desc(int nd, const hsize_t *d, char *buf, size_t n) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, n - o, "(");
    for (int i = 0; i < nd && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%llu", i ? "," : "", (unsigned long long)d[i]);
    if (o < n) snprintf(buf + o, n - o, ")");
}

typedef struct {
    H5T_class_t cls;
    size_t size;
    int is_unsigned;
    hid_t mtype;
    const char *name;
} DsType;

static const DsType DS_F32 = {H5T_FLOAT, 4, 0, 0, "float32"};
static const DsType DS_F64 = {H5T_FLOAT, 8, 0, 0, "float64"};
static const DsType DS_I64 = {H5T_INTEGER, 8, 0, 0, "int64"};
static const DsType DS_U64 = {H5T_INTEGER, 8, 1, 0, "uint64"};

static hid_t ds_mtype(const DsType *t) {
    if (t->cls == H5T_FLOAT) return t->size == 4 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
    return t->is_unsigned ? H5T_NATIVE_UINT64 : H5T_NATIVE_INT64;
}

/* Check the stored crc32 attribute of ds against the n bytes just read. */
static int check_crc(hid_t ds, const char *src, const char *path, const void *data, size_t n,
                     char *err) {
    hid_t attr = attr_open(ds, src, path, "crc32", H5T_INTEGER, err);
    if (attr < 0) return -1;
    uint32_t stored = 0;
    int rc = -1;
    H5TRY(H5Aread(attr, H5T_NATIVE_UINT32, &stored), "%s: %s: cannot read crc32", src, path);
    uint32_t got = ckpt_crc32(0, data, n);
    if (got != stored) {
        errf(err, "%s: %s: checksum mismatch (stored crc32 %08x, data has %08x): the file is "
                  "corrupt; load an earlier checkpoint", src, path, stored, got);
        goto fail;
    }
    rc = 0;
fail:
    H5DROP(attr);
    return rc;
}

/* Open dataset path and check type and shape: ndim/dims if dims != NULL, else the element
 * count n (any rank). Returns the open dataset or -1. */
static hid_t open_checked(const CkptReader *r, const char *path, const DsType *ty, int ndim,
                          const hsize_t *dims, size_t n, char *err) {
    hid_t ds = -1, type = -1, space = -1;
    char a[64], b[64];
    if (!exists_path(r->file, path)) {
        errf(err, "%s: %s is missing", r->src, path);
        return -1;
    }
    H5TRY(ds = H5Dopen2(r->file, path, H5P_DEFAULT), "%s: %s is not a dataset", r->src, path);
    H5TRY(type = H5Dget_type(ds), "%s: %s: no datatype", r->src, path);
    if (H5Tget_class(type) != ty->cls || H5Tget_size(type) != ty->size ||
        (ty->cls == H5T_INTEGER && (H5Tget_sign(type) == H5T_SGN_NONE) != ty->is_unsigned) ||
        H5Tget_order(type) != H5T_ORDER_LE) {
        errf(err, "%s: %s is stored as %s, expected little-endian %s", r->src, path,
             type_desc(type, a, sizeof a), ty->name);
        goto fail;
    }
    H5TRY(space = H5Dget_space(ds), "%s: %s: no dataspace", r->src, path);
    int nd = H5Sget_simple_extent_ndims(space);
    hsize_t fd[H5S_MAX_RANK];
    H5TRY(nd, "%s: %s: bad dataspace", r->src, path);
    H5TRY(H5Sget_simple_extent_dims(space, fd, NULL), "%s: %s: bad dataspace", r->src, path);
    if (dims) {
        int same = nd == ndim;
        for (int i = 0; same && i < nd; i++) same = fd[i] == dims[i];
        if (!same) {
            dims_desc(nd, fd, a, sizeof a);
            dims_desc(ndim, dims, b, sizeof b);
            errf(err, "%s: %s has shape %s in the file, %s expected (a different model size?)",
                 r->src, path, a, b);
            goto fail;
        }
    } else {
        hssize_t np = H5Sget_simple_extent_npoints(space);
        if (np < 0 || (size_t)np != n) {
            errf(err, "%s: %s has %lld elements, %zu expected", r->src, path, (long long)np, n);
            goto fail;
        }
    }
    hsize_t stored = H5Dget_storage_size(ds);
    if (stored != (hsize_t)(n * ty->size)) {
        errf(err, "%s: %s has %llu bytes of data stored, %zu expected (an incomplete write?)",
             r->src, path, (unsigned long long)stored, n * ty->size);
        goto fail;
    }
    H5DROP(space);
    H5DROP(type);
    return ds;
fail:
    H5DROP(space);
    H5DROP(type);
    H5DROP(ds);
    return -1;
}

static int read_checked(const CkptReader *r, const char *path, const DsType *ty, int ndim,
                        const hsize_t *dims, size_t n, void *out, char *err) {
    hid_t ds = open_checked(r, path, ty, ndim, dims, n, err);
    if (ds < 0) return -1;
    int rc = -1;
    if (n > 0)
        H5TRY(H5Dread(ds, ds_mtype(ty), H5S_ALL, H5S_ALL, H5P_DEFAULT, out),
                "%s: cannot read %s (a truncated or corrupt file?)", r->src, path);
    rc = check_crc(ds, r->src, path, out, n * ty->size, err);
fail:
    H5DROP(ds);
    return rc;
}

int ckpt_read_f32(const CkptReader *r, const char *path, float *out, size_t n, char *err) {
    return read_checked(r, path, &DS_F32, 0, NULL, n, out, err);
}
int ckpt_read_f64(const CkptReader *r, const char *path, double *out, size_t n, char *err) {
    return read_checked(r, path, &DS_F64, 0, NULL, n, out, err);
}
int ckpt_read_i64(const CkptReader *r, const char *path, int64_t *out, size_t n, char *err) {
    return read_checked(r, path, &DS_I64, 0, NULL, n, out, err);
}
int ckpt_read_u64(const CkptReader *r, const char *path, uint64_t *out, size_t n, char *err) {
    return read_checked(r, path, &DS_U64, 0, NULL, n, out, err);
}

int ckpt_read_len(const CkptReader *r, const char *path, size_t *n, char *err) {
    hid_t ds = -1, space = -1;
    int rc = -1;
    if (!exists_path(r->file, path)) return errf(err, "%s: %s is missing", r->src, path);
    H5TRY(ds = H5Dopen2(r->file, path, H5P_DEFAULT), "%s: %s is not a dataset", r->src, path);
    H5TRY(space = H5Dget_space(ds), "%s: %s: no dataspace", r->src, path);
    hssize_t np = H5Sget_simple_extent_npoints(space);
    H5TRY(np, "%s: %s: bad dataspace", r->src, path);
    *n = (size_t)np;
    rc = 0;
fail:
    H5DROP(space);
    H5DROP(ds);
    return rc;
}

/* A scalar fixed-length string dataset -> malloc'd string. */
static int read_text(const CkptReader *r, const char *path, char **out, char *err) {
    hid_t ds = -1, type = -1, space = -1;
    int rc = -1;
    char *buf = NULL;
    *out = NULL;
    H5TRY(ds = H5Dopen2(r->file, path, H5P_DEFAULT), "%s: %s is not a dataset", r->src, path);
    H5TRY(type = H5Dget_type(ds), "%s: %s: no datatype", r->src, path);
    H5TRY(space = H5Dget_space(ds), "%s: %s: no dataspace", r->src, path);
    if (H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) != 0 ||
        H5Sget_simple_extent_npoints(space) != 1) {
        errf(err, "%s: %s is not a scalar fixed-length string", r->src, path);
        goto fail;
    }
    size_t n = H5Tget_size(type);
    if (n == 0 || n > ((size_t)1 << 31) || H5Dget_storage_size(ds) != n) {
        errf(err, "%s: %s: string of %zu bytes with %llu bytes stored (incomplete?)", r->src,
             path, n, (unsigned long long)H5Dget_storage_size(ds));
        goto fail;
    }
    buf = xmalloc(n + 1);
    H5TRY(H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf), "%s: cannot read %s",
            r->src, path);
    if (check_crc(ds, r->src, path, buf, n, err) != 0) goto fail;
    buf[n] = 0;
    *out = buf;
    buf = NULL;
    rc = 0;
fail:
    free(buf);
    H5DROP(space);
    H5DROP(type);
    H5DROP(ds);
    return rc;
}

/* Validate the root attributes and read the tokenizer. */
static int reader_validate(CkptReader *r, char *err) {
    char *fmt = NULL, *stage = NULL;
    int64_t ver = 0;
    int rc = -1;
    htri_t ex = H5Aexists(r->file, "format");
    H5TRY(ex, "%s: cannot read the root attributes (a corrupt file?)", r->src);
    if (!ex) {
        errf(err, "%s: not an rlhf-c checkpoint: the root has no 'format' attribute "
                  "(expected format = \"%s\")", r->src, CKPT_FORMAT);
        goto fail;
    }
    if (attr_read_str(r->file, r->src, "/", "format", &fmt, err) != 0) goto fail;
    if (strcmp(fmt, CKPT_FORMAT) != 0) {
        errf(err, "%s: not an rlhf-c checkpoint: format = \"%.64s\", expected \"%s\"", r->src,
             fmt, CKPT_FORMAT);
        goto fail;
    }
    if (attr_read_i64(r->file, r->src, "/", "format_version", &ver, err) != 0) goto fail;
    if (ver < 1 || ver > CKPT_FORMAT_VERSION) {
        errf(err, "%s: format_version %" PRId64 " is not supported: this build reads version "
                  "%d%s", r->src, ver, CKPT_FORMAT_VERSION,
             ver > CKPT_FORMAT_VERSION ? " (written by a newer rlhf-c: upgrade)" : "");
        goto fail;
    }
    if (attr_read_str(r->file, r->src, "/", "stage", &stage, err) != 0) goto fail;
    if (!stage_ok(stage)) {
        errf(err, "%s: stage = \"%.32s\" is not a stage name", r->src, stage);
        goto fail;
    }
    snprintf(r->meta.stage, sizeof r->meta.stage, "%s", stage);
    if (attr_read_i64(r->file, r->src, "/", "step", &r->meta.step, err) != 0 ||
        attr_read_i64(r->file, r->src, "/", "policy_version", &r->meta.policy_version, err) != 0)
        goto fail;
    if (r->meta.step < 0 || r->meta.policy_version < 0) {
        errf(err, "%s: negative step (%" PRId64 ") or policy_version (%" PRId64 ")", r->src,
             r->meta.step, r->meta.policy_version);
        goto fail;
    }
    if (attr_read_str(r->file, r->src, "/", "config", &r->config, err) != 0) goto fail;
    r->meta.config = r->config;
    if (read_config_attrs(r->file, r->src, "/", &r->meta.model, err) != 0) goto fail;
    if (exists_path(r->file, "/tokenizer/vocab")) {
        if (read_text(r, "/tokenizer/vocab", &r->vocab, err) != 0) goto fail;
        r->meta.tok_vocab = r->vocab;
    }
    if (exists_path(r->file, "/tokenizer/merges")) {
        if (read_text(r, "/tokenizer/merges", &r->merges, err) != 0) goto fail;
        r->meta.tok_merges = r->merges;
    }
    if (exists_path(r->file, "/tokenizer/json")) {
        if (read_text(r, "/tokenizer/json", &r->tok_json, err) != 0) goto fail;
        r->meta.tok_json = r->tok_json;
    }
    if (exists_path(r->file, "/tokenizer/chat_template")) {
        if (read_text(r, "/tokenizer/chat_template", &r->chat_template, err) != 0) goto fail;
        r->meta.chat_template = r->chat_template;
    }
    rc = 0;
fail:
    free(fmt);
    free(stage);
    return rc;
}

void ckpt_reader_free(CkptReader *r) {
    if (!r) return;
    if (r->file >= 0) H5Fclose(r->file);
    free(r->config);
    free(r->vocab);
    free(r->merges);
    free(r->tok_json);
    free(r->chat_template);
    free(r);
}

static CkptReader *reader_new(const char *src) {
    CkptReader *r = xcalloc(1, sizeof *r);
    r->file = -1;
    snprintf(r->src, sizeof r->src, "%s", src);
    return r;
}

CkptReader *ckpt_reader_open(const char *path, char *err) {
    h5_quiet();
    struct stat st;
    if (stat(path, &st) != 0) {
        errf(err, "%s: cannot open checkpoint: %s", path, strerror(errno));
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        errf(err, "%s: is a directory; give a checkpoint file (or resolve a run directory "
                  "with ckpt_resolve)", path);
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        errf(err, "%s: cannot open checkpoint: %s", path, strerror(errno));
        return NULL;
    }
    fclose(f);
    CkptReader *r = reader_new(path);
    hid_t fapl = -1;
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) {
        errf(err, "%s: not an HDF5 file (%lld bytes, no HDF5 signature): not a checkpoint, or "
                  "one truncated by a crash; use an earlier checkpoint", path,
             (long long)st.st_size);
        goto fail;
    }
    if ((fapl = make_fapl(0, err)) < 0) goto fail;
    H5TRY(r->file = H5Fopen(path, H5F_ACC_RDONLY, fapl),
            "%s: cannot open as HDF5 (truncated or corrupt; use an earlier checkpoint)", path);
    H5DROP(fapl);
    if (reader_validate(r, err) != 0) goto fail;
    return r;
fail:
    H5DROP(fapl);
    ckpt_reader_free(r);
    return NULL;
}

CkptReader *ckpt_reader_open_image(const void *bytes, size_t len, char *err) {
    h5_quiet();
    if (!bytes || len < 8) {
        errf(err, "<image>: %zu bytes is not an HDF5 image", len);
        return NULL;
    }
    CkptReader *r = reader_new("<image>");
    hid_t fapl = -1;
    char name[64];
    snprintf(name, sizeof name, "rlhf-ckpt-image-r-%d-%lu", (int)getpid(), ++image_counter);
    if ((fapl = make_fapl(1, err)) < 0) goto fail;
    r->image = (ImageRef){.buf = bytes, .len = len};
    H5FD_file_image_callbacks_t cb = {img_malloc,     img_memcpy,     img_realloc, img_free,
                                      image_udata_copy, image_udata_free, &r->image};
    H5TRY(H5Pset_file_image_callbacks(fapl, &cb), "<image>: cannot set image callbacks");
    H5TRY(H5Pset_file_image(fapl, (void *)bytes, len), "<image>: cannot attach the image");
    H5TRY(r->file = H5Fopen(name, H5F_ACC_RDONLY, fapl),
            "<image>: %zu bytes do not open as an HDF5 file (truncated or corrupt)", len);
    H5DROP(fapl);
    if (reader_validate(r, err) != 0) goto fail;
    return r;
fail:
    H5DROP(fapl);
    ckpt_reader_free(r);
    return NULL;
}

const CkptMeta *ckpt_reader_meta(const CkptReader *r) { return &r->meta; }

int ckpt_read_model_config(const CkptReader *r, const char *group, GPTConfig *out, char *err) {
    char path[160];
    hid_t g = -1;
    int rc = -1;
    if (!name_ok(group)) return errf(err, "%s: group name \"%s\" is invalid", r->src, group);
    snprintf(path, sizeof path, "/%s", group);
    if (!exists_path(r->file, path))
        return errf(err, "%s: the checkpoint has no model group %s (stage %s)", r->src, path,
                    r->meta.stage);
    H5TRY(g = H5Gopen2(r->file, path, H5P_DEFAULT), "%s: %s is not a group", r->src, path);
    rc = read_config_attrs(g, r->src, path, out, err);
fail:
    H5DROP(g);
    return rc;
}

typedef struct {
    const GPTTensor *table;
    int n;
    char extra[GPT_NAME_LEN + 8];
} ExtraScan;

static herr_t extra_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    (void)g;
    (void)info;
    ExtraScan *s = data;
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->table[i].name, name) == 0) return 0;
    snprintf(s->extra, sizeof s->extra, "%s", name);
    return 1;
}

/* Pass 1: every tensor present with its shape and fully stored, and (if exact) nothing
 * else in the group. Cheap (no data read), so a wrong file is refused before allocating
 * for it. */
static int check_table(const CkptReader *r, const char *group, const GPTTensor *table, int n,
                       int exact, char *err) {
    char path[256];
    hid_t g = -1;
    int rc = -1;
    snprintf(path, sizeof path, "/%s", group);
    if (!exists_path(r->file, path))
        return errf(err, "%s: the checkpoint has no group %s", r->src, path);
    for (int i = 0; i < n; i++) {
        const GPTTensor *t = &table[i];
        hsize_t dims[2] = {(hsize_t)t->shape[0], (hsize_t)t->shape[1]};
        snprintf(path, sizeof path, "/%s/%s", group, t->name);
        if (!exists_path(r->file, path))
            return errf(err, "%s: missing tensor %s (the model needs %d tensors in /%s)",
                        r->src, path, n, group);
        hid_t ds = open_checked(r, path, &DS_F32, t->ndim, dims, t->numel, err);
        if (ds < 0) return -1;
        H5DROP(ds);
    }
    if (!exact) return 0;
    snprintf(path, sizeof path, "/%s", group);
    H5TRY(g = H5Gopen2(r->file, path, H5P_DEFAULT), "%s: %s is not a group", r->src, path);
    ExtraScan s = {.table = table, .n = n, .extra = ""};
    herr_t it = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, extra_cb, &s);
    H5TRY(it, "%s: cannot list %s", r->src, path);
    if (it > 0) {
        errf(err, "%s: %s/%s is not a tensor of this model (a different architecture?)",
             r->src, path, s.extra);
        goto fail;
    }
    rc = 0;
fail:
    H5DROP(g);
    return rc;
}

typedef struct {
    char **names;
    int n, cap;
} NameList;

static herr_t names_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    (void)g;
    (void)info;
    NameList *l = data;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->names = xrealloc(l->names, (size_t)l->cap * sizeof *l->names);
    }
    l->names[l->n++] = xstrdup(name);
    return 0;
}

int ckpt_group_names(const CkptReader *r, const char *group, char ***names, int *n,
                     char *err) {
    char path[256];
    hid_t g = -1;
    int rc = -1;
    NameList l = {0};
    *names = NULL;
    *n = 0;
    snprintf(path, sizeof path, "/%s", group);
    if (!name_ok(group) || !exists_path(r->file, path))
        return errf(err, "%s: the checkpoint has no group %s", r->src, path);
    H5TRY(g = H5Gopen2(r->file, path, H5P_DEFAULT), "%s: %s is not a group", r->src, path);
    H5TRY(H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, names_cb, &l), "%s: cannot list %s",
          r->src, path);
    *names = l.names;
    *n = l.n;
    l.names = NULL;
    rc = 0;
fail:
    for (int i = 0; l.names && i < l.n; i++) free(l.names[i]);
    free(l.names);
    H5DROP(g);
    return rc;
}

static int read_table(const CkptReader *r, const char *group, const GPTTensor *table, int n,
                      float *buf, int exact, char *err) {
    if (!name_ok(group)) return errf(err, "%s: group name \"%s\" is invalid", r->src, group);
    if (check_table(r, group, table, n, exact, err) != 0) return -1;
    char path[256];
    for (int i = 0; i < n; i++) {
        const GPTTensor *t = &table[i];
        hsize_t dims[2] = {(hsize_t)t->shape[0], (hsize_t)t->shape[1]};
        snprintf(path, sizeof path, "/%s/%s", group, t->name);
        if (read_checked(r, path, &DS_F32, t->ndim, dims, t->numel, buf + t->offset, err) != 0)
            return -1;
    }
    return 0;
}

int ckpt_read_table(const CkptReader *r, const char *group, const GPTTensor *table, int n,
                    float *buf, char *err) {
    return read_table(r, group, table, n, buf, 0, err);
}

static int llama_diff(const GPTConfig *file, const GPTConfig *want, const char *src,
                      const char *group, char *err) {
#define D_INT(f) \
    if (file->f != want->f) \
        return errf(err, "%s: /%s: model config mismatch: %s = %d in the checkpoint, %d " \
                         "expected", src, group, #f, file->f, want->f);
#define D_F64(f) \
    if (file->f != want->f) \
        return errf(err, "%s: /%s: model config mismatch: %s = %g in the checkpoint, %g " \
                         "expected", src, group, #f, (double)file->f, (double)want->f);
    LLAMA_INT_FIELDS(D_INT)
    LLAMA_F64_FIELDS(D_F64)
#undef D_INT
#undef D_F64
    return 0;
}

static int config_diff(const GPTConfig *file, const GPTConfig *want, const char *src,
                       const char *group, char *err) {
    const char *names[5] = {"vocab_size", "max_seq_len", "n_layer", "n_head", "n_embd"};
    int a[5] = {file->vocab_size, file->max_seq_len, file->n_layer, file->n_head, file->n_embd};
    int b[5] = {want->vocab_size, want->max_seq_len, want->n_layer, want->n_head, want->n_embd};
    if (file->family != want->family)
        return errf(err, "%s: /%s: model config mismatch: family = %s in the checkpoint, %s "
                         "expected", src, group, gpt_family_name(file->family),
                    gpt_family_name(want->family));
    for (int i = 0; i < 5; i++)
        if (a[i] != b[i])
            return errf(err, "%s: /%s: model config mismatch: %s = %d in the checkpoint, %d "
                             "expected (use a config matching the checkpoint)", src, group,
                        names[i], a[i], b[i]);
    if (file->family == GPT_FAMILY_LLAMA && llama_diff(file, want, src, group, err) != 0)
        return -1;
    if (file->head != want->head)
        return errf(err, "%s: /%s: model config mismatch: head = %s in the checkpoint, %s "
                         "expected", src, group, ckpt_head_name(file->head),
                    ckpt_head_name(want->head));
    return 0;
}

int ckpt_read_model(const CkptReader *r, const char *group, GPT *m, char *err) {
    GPTConfig c;
    if (ckpt_read_model_config(r, group, &c, err) != 0) return -1;
    if (config_diff(&c, &m->config, r->src, group, err) != 0) return -1;
    return read_table(r, group, m->tensors, m->num_tensors, m->params, 1, err);
}

int ckpt_load_model(const CkptReader *r, const char *group, GPT *m, char *err) {
    GPTConfig c;
    memset(m, 0, sizeof *m);
    if (ckpt_read_model_config(r, group, &c, err) != 0) return -1;
    /* check the file holds this model before allocating for it */
    int cap = gpt_tensors_capacity(&c);
    GPTTensor *t = xcalloc((size_t)cap, sizeof *t);
    int n = gpt_tensors_build(&c, t, cap);
    int rc = check_table(r, group, t, n, 1, err);
    free(t);
    if (rc != 0) return -1;
    gpt_init(m, &c);
    if (ckpt_read_model(r, group, m, err) != 0) {
        gpt_free(m);
        memset(m, 0, sizeof *m);
        return -1;
    }
    return 0;
}

int ckpt_read_adamw(const CkptReader *r, const char *group, float *m, float *v, size_t n,
                    int64_t *step, char *err) {
    if (!name_ok(group)) return errf(err, "%s: group name \"%s\" is invalid", r->src, group);
    char path[200];
    snprintf(path, sizeof path, "/optim/%s/m", group);
    if (ckpt_read_f32(r, path, m, n, err) != 0) return -1;
    snprintf(path, sizeof path, "/optim/%s/v", group);
    if (ckpt_read_f32(r, path, v, n, err) != 0) return -1;
    snprintf(path, sizeof path, "/optim/%s/step", group);
    return ckpt_read_i64(r, path, step, 1, err);
}

int ckpt_read_rng(const CkptReader *r, int rank, Rng *rng, char *err) {
    char path[64];
    snprintf(path, sizeof path, "/rng/rank%d", rank);
    if (!exists_path(r->file, path))
        return errf(err, "%s: no RNG state for rank %d (%s missing: the checkpoint was written "
                         "by fewer ranks?)", r->src, rank, path);
    return ckpt_read_u64(r, path, rng->s, RNG_STATE_WORDS, err);
}

int ckpt_read_attr_str(const CkptReader *r, const char *name, char **out, char *err) {
    return attr_read_str(r->file, r->src, "/", name, out, err);
}

int ckpt_read_attr_i64(const CkptReader *r, const char *name, int64_t *out, char *err) {
    return attr_read_i64(r->file, r->src, "/", name, out, err);
}

// ---- verify: every dataset's checksum

typedef struct {
    const CkptReader *r;
    char *err;
    int failed;
    int count;
} VerifyState;

static herr_t verify_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    VerifyState *s = data;
    char *err = s->err;
    if (info->type != H5L_TYPE_HARD) return 0;
    hid_t o = -1, type = -1, mtype = -1, space = -1;
    void *buf = NULL;
    herr_t ret = 1; /* stop on failure */
    H5TRY(o = H5Oopen(g, name, H5P_DEFAULT), "%s: cannot open /%s", s->r->src, name);
    if (H5Iget_type(o) != H5I_DATASET) {
        ret = 0;
        goto fail;
    }
    H5TRY(type = H5Dget_type(o), "%s: /%s: no datatype", s->r->src, name);
    H5TRY(mtype = H5Tget_native_type(type, H5T_DIR_ASCEND), "%s: /%s: type", s->r->src, name);
    H5TRY(space = H5Dget_space(o), "%s: /%s: no dataspace", s->r->src, name);
    hssize_t np = H5Sget_simple_extent_npoints(space);
    size_t es = H5Tget_size(mtype);
    H5TRY(np, "%s: /%s: bad dataspace", s->r->src, name);
    size_t nbytes = (size_t)np * es;
    if (H5Dget_storage_size(o) != nbytes) {
        errf(err, "%s: /%s: %llu bytes stored, %zu expected (incomplete)", s->r->src, name,
             (unsigned long long)H5Dget_storage_size(o), nbytes);
        goto fail;
    }
    buf = xmalloc(nbytes ? nbytes : 1);
    if (nbytes)
        H5TRY(H5Dread(o, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf), "%s: cannot read /%s",
                s->r->src, name);
    char path[600];
    snprintf(path, sizeof path, "/%s", name);
    if (check_crc(o, s->r->src, path, buf, nbytes, err) != 0) goto fail;
    s->count++;
    ret = 0;
fail:
    if (ret) s->failed = 1;
    free(buf);
    H5DROP(space);
    H5DROP(mtype);
    H5DROP(type);
    H5DROP(o);
    return ret;
}

int ckpt_verify(const CkptReader *r, char *err) {
    VerifyState s = {.r = r, .err = err, .failed = 0, .count = 0};
    herr_t it = H5Lvisit(r->file, H5_INDEX_NAME, H5_ITER_INC, verify_cb, &s);
    if (s.failed) return -1;
    if (it < 0) return h5_fail_at(err, __LINE__, "%s: cannot walk the file", r->src);
    return 0;
}

// ----------------------------------------------------------------------------
// run directories

/* 0 if path opens and every checksum verifies, else -1 with err. */
static int verify_file(const char *path, char *err) {
    CkptReader *r = ckpt_reader_open(path, err);
    if (!r) return -1;
    int rc = ckpt_verify(r, err);
    ckpt_reader_free(r);
    return rc;
}

static int read_latest(const char *dir, char *name, size_t n) {
    char path[CKPT_PATH_LEN + 16], lerr[ERRBUF_LEN];
    snprintf(path, sizeof path, "%s/latest", dir);
    size_t len = 0;
    char *txt = file_read_all(path, &len, lerr);
    if (!txt) return -1;
    while (len > 0 && isspace((unsigned char)txt[len - 1])) txt[--len] = 0;
    int ok = len > 0 && len < n && !strchr(txt, '/') && parse_ckpt_name(txt) >= 0;
    if (ok) snprintf(name, n, "%s", txt);
    free(txt);
    return ok ? 0 : -1;
}

int ckpt_resolve(const char *dir_or_path, const char *which, char *out, size_t out_len,
                 char *err) {
    struct stat st;
    if (err) err[0] = 0;
    if (!which) which = "auto";
    if (stat(dir_or_path, &st) != 0)
        return errf(err, "%s: no such checkpoint or run directory: %s", dir_or_path,
                    strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        if (verify_file(dir_or_path, err) != 0) return -1;
        if (strlen(dir_or_path) >= out_len) return errf(err, "%s: path too long", dir_or_path);
        snprintf(out, out_len, "%s", dir_or_path);
        return 0;
    }
    const char *dir = dir_or_path;
    char cand[CKPT_PATH_LEN + 64], name[64];
    int is_auto = strcmp(which, "auto") == 0;
    if (!is_auto && strcmp(which, "latest") != 0) {
        char *end;
        errno = 0;
        long long step = strtoll(which, &end, 10);
        if (errno || *end || end == which || step < 0)
            return errf(err, "checkpoint selector \"%s\": expected auto, latest or a step",
                        which);
        ckpt_file_name(step, name, sizeof name);
        snprintf(cand, sizeof cand, "%s/%s", dir, name);
        if (verify_file(cand, err) != 0) return -1;
        if (strlen(cand) >= out_len) return errf(err, "%s: path too long", cand);
        snprintf(out, out_len, "%s", cand);
        return 0;
    }
    int have_latest = read_latest(dir, name, sizeof name) == 0;
    if (!is_auto) {
        if (!have_latest)
            return errf(err, "%s: no readable `latest` file naming a checkpoint", dir);
        snprintf(cand, sizeof cand, "%s/%s", dir, name);
        if (verify_file(cand, err) != 0) return -1;
        if (strlen(cand) >= out_len) return errf(err, "%s: path too long", cand);
        snprintf(out, out_len, "%s", cand);
        return 0;
    }
    /* auto: what `latest` names, then every ckpt-*.h5 newest first */
    CkptEntry *e;
    int n;
    if (list_ckpts(dir, &e, &n, err) != 0) return -1;
    if (n == 0) {
        free(e);
        return 1;
    }
    char first_err[ERRBUF_LEN] = "", skipped[ERRBUF_LEN] = "", verr[ERRBUF_LEN];
    int found = 0;
    for (int i = -1; i < n && !found; i++) {
        const char *nm;
        if (i < 0) {
            if (!have_latest) continue;
            nm = name;
        } else {
            if (have_latest && strcmp(e[i].name, name) == 0) continue;
            nm = e[i].name;
        }
        snprintf(cand, sizeof cand, "%s/%s", dir, nm);
        if (access(cand, F_OK) != 0) continue;
        if (verify_file(cand, verr) == 0) {
            found = 1;
        } else {
            if (!first_err[0]) snprintf(first_err, sizeof first_err, "%s", verr);
            size_t k = strlen(skipped);
            snprintf(skipped + k, sizeof skipped - k, "%s%s", k ? ", " : "", nm);
        }
    }
    free(e);
    if (!found)
        return errf(err, "%s: no loadable checkpoint; the newest failed with: %s", dir,
                    first_err);
    if (strlen(cand) >= out_len) return errf(err, "%s: path too long", cand);
    snprintf(out, out_len, "%s", cand);
    if (skipped[0])
        errf(err, "skipped unreadable checkpoint(s) %s; the first error: %s", skipped,
             first_err);
    return 0;
}

// ----------------------------------------------------------------------------
// weight images

int ckpt_image_build(const CkptMeta *meta, const char *group, const GPT *m, CkptArena *arena,
                     void **bytes, size_t *len, char *err) {
    *bytes = NULL;
    *len = 0;
    CkptWriter *w = arena ? ckpt_writer_open_image_in(arena, err) : ckpt_writer_open_image(err);
    if (!w) return -1;
    if (ckpt_write_meta(w, meta, err) != 0 || ckpt_write_model(w, group, m, err) != 0) {
        ckpt_writer_free(w);
        return -1;
    }
    return ckpt_writer_take_image(w, bytes, len, err);
}

int ckpt_image_load(const void *bytes, size_t len, const char *group, GPT *m,
                    CkptMeta *meta_out, char *err) {
    CkptReader *r = ckpt_reader_open_image(bytes, len, err);
    if (!r) return -1;
    int rc = ckpt_read_model(r, group, m, err);
    if (rc == 0 && meta_out) {
        *meta_out = r->meta;
        meta_out->config = meta_out->tok_vocab = meta_out->tok_merges = NULL;
        meta_out->tok_json = meta_out->chat_template = NULL;
    }
    ckpt_reader_free(r);
    return rc;
}
