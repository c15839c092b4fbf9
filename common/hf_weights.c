/*
 * common/hf_weights.c — a Hugging Face folder's safetensors, single file or sharded, as
 * one set of tensors (see hf_weights.h for the rules the index must follow).
 */
#include "hf_weights.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

static int path_is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Append file k's tensors to the flat list. */
static void add_file_tensors(HfWeights *w, int k) {
    const SafeTensors *st = &w->files[k];
    w->tensors =
        xrealloc(w->tensors, (size_t)(w->num_tensors + st->num_tensors) * sizeof *w->tensors);
    w->file_of =
        xrealloc(w->file_of, (size_t)(w->num_tensors + st->num_tensors) * sizeof *w->file_of);
    for (int i = 0; i < st->num_tensors; i++) {
        w->tensors[w->num_tensors] = &st->tensors[i];
        w->file_of[w->num_tensors++] = k;
    }
}

/* Load one file as file number k (the arrays are grown by the caller). */
static int load_file(HfWeights *w, int k, const char *path, char *err) {
    w->paths[k] = xstrdup(path);
    w->num_files = k + 1;
    if (safetensors_load(&w->files[k], path, err) != 0) return -1;
    add_file_tensors(w, k);
    return 0;
}

/* The shard index of name among the first n entries of names, or -1. */
static int shard_slot(char **names, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0) return i;
    return -1;
}

/* Check the weight map against the loaded shards (names[k] is file k's index name). */
static int check_map(const HfWeights *w, json_t *map, char **names, const char *ipath, char *err) {
    const char *key;
    json_t *v;
    json_object_foreach(map, key, v) {
        int k = shard_slot(names, w->num_files, json_string_value(v));
        if (!safetensors_find(&w->files[k], key))
            return errf(err, "%s: weight_map says \"%s\" is in %s, but %s has no such tensor",
                        ipath, key, json_string_value(v), w->paths[k]);
    }
    for (int i = 0; i < w->num_tensors; i++) {
        const char *name = w->tensors[i]->name;
        json_t *where = json_object_get(map, name);
        if (!where)
            return errf(err, "%s: tensor \"%s\" is not in %s's weight_map", w->paths[w->file_of[i]],
                        name, ipath);
        if (strcmp(json_string_value(where), names[w->file_of[i]]) != 0)
            return errf(err, "%s: tensor \"%s\" is also in %s (weight_map: %s)",
                        w->paths[w->file_of[i]], name, json_string_value(where), ipath);
    }
    return 0;
}

/* Validate the weight map's values and load every shard it names once. */
static int open_sharded(HfWeights *w, const char *dir, const char *ipath, char *err) {
    size_t len;
    char *text = file_read_all(ipath, &len, err);
    if (!text) return -1;
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    free(text);
    if (!root) return errf(err, "%s:%d:%d: invalid JSON: %s", ipath, je.line, je.column, je.text);
    int rc = -1;
    json_t *map = json_object_get(root, "weight_map");
    char **names = NULL;
    if (!json_is_object(map) || json_object_size(map) == 0) {
        errf(err, "%s: no \"weight_map\" object {tensor: shard file}", ipath);
        goto done;
    }
    size_t nmap = json_object_size(map);
    names = xcalloc(nmap, sizeof *names);
    w->files = xcalloc(nmap, sizeof *w->files);
    w->paths = xcalloc(nmap, sizeof *w->paths);
    const char *key;
    json_t *v;
    json_object_foreach(map, key, v) {
        const char *f = json_string_value(v);
        if (!f || !f[0] || strchr(f, '/') || strcmp(f, "..") == 0 || strcmp(f, ".") == 0) {
            errf(err, "%s: weight_map[\"%s\"] must be a file name in the folder", ipath, key);
            goto done;
        }
        if (shard_slot(names, w->num_files, f) >= 0) continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, f);
        if (!path_is_file(path)) {
            errf(err, "%s: weight_map[\"%s\"] names %s, which is missing", ipath, key, path);
            goto done;
        }
        names[w->num_files] = (char *)f;
        if (load_file(w, w->num_files, path, err) != 0) goto done;
    }
    rc = check_map(w, map, names, ipath, err);
done:
    free(names);
    json_decref(root);
    return rc;
}

/* Two files holding the same name are one tensor too many. */
static int check_unique(const HfWeights *w, char *err) {
    for (int i = 0; i < w->num_tensors; i++)
        for (int j = i + 1; j < w->num_tensors; j++)
            if (w->file_of[i] != w->file_of[j] &&
                strcmp(w->tensors[i]->name, w->tensors[j]->name) == 0)
                return errf(err, "tensor \"%s\" is in both %s and %s", w->tensors[i]->name,
                            w->paths[w->file_of[i]], w->paths[w->file_of[j]]);
    return 0;
}

int hf_weights_open(HfWeights *w, const char *dir, char *err) {
    memset(w, 0, sizeof *w);
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    int rc;
    if (path_is_file(path)) {
        w->files = xcalloc(1, sizeof *w->files);
        w->paths = xcalloc(1, sizeof *w->paths);
        rc = load_file(w, 0, path, err);
    } else {
        char ipath[4200];
        snprintf(ipath, sizeof ipath, "%s/model.safetensors.index.json", dir);
        if (!path_is_file(ipath)) {
            snprintf(ipath, sizeof ipath, "%s/pytorch_model.bin", dir);
            if (path_is_file(ipath))
                return errf(err,
                            "%s: only safetensors files are read (save the model with "
                            "safe_serialization=True)",
                            ipath);
            return errf(err, "%s: missing (and no model.safetensors.index.json)", path);
        }
        rc = open_sharded(w, dir, ipath, err);
    }
    if (rc == 0) rc = check_unique(w, err);
    if (rc != 0) hf_weights_free(w);
    return rc;
}

void hf_weights_free(HfWeights *w) {
    if (!w) return;
    for (int k = 0; k < w->num_files; k++) {
        safetensors_free(&w->files[k]);
        free(w->paths[k]);
    }
    free(w->files);
    free(w->paths);
    free(w->tensors);
    free(w->file_of);
    memset(w, 0, sizeof *w);
}

int hf_weights_find(const HfWeights *w, const char *name) {
    for (int i = 0; i < w->num_tensors; i++)
        if (strcmp(w->tensors[i]->name, name) == 0) return i;
    return -1;
}

int hf_weights_read_f32(const HfWeights *w, int i, float *out, char *err) {
    char e[ERRBUF_LEN];
    if (safetensors_read_f32(&w->files[w->file_of[i]], w->tensors[i], out, e) != 0)
        return errf(err, "%s: %s", w->paths[w->file_of[i]], e);
    return 0;
}

const char *hf_weights_path(const HfWeights *w, int i) {
    return w->paths[w->file_of[i]];
}
