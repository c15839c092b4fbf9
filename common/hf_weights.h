/*
 * common/hf_weights.h — the weights of a Hugging Face model folder: one model.safetensors,
 * or the shards a model.safetensors.index.json lists, as one set of named tensors.
 *
 * The index is transformers' format: {"metadata": {...}, "weight_map": {tensor: shard}};
 * shard names are plain file names in the folder (no '/', no ".."), every listed shard
 * must exist and parse (safetensors.h validates each), every tensor the index names must
 * be in the shard it names, every tensor of a shard must be named by the index, and no
 * name may appear twice. Errors name the file and the tensor or field.
 *
 * All shards are read into memory at open (the files' bytes; conversion to float32 is per
 * tensor, on demand), so a model needs its file size in RAM while it is imported.
 */
#ifndef RLHF_HF_WEIGHTS_H
#define RLHF_HF_WEIGHTS_H

#include "safetensors.h"

typedef struct {
    int num_files;
    SafeTensors *files;       /* (num_files) */
    char **paths;             /* (num_files) each file's path, for messages */
    int num_tensors;          /* over all files */
    const StTensor **tensors; /* (num_tensors) */
    int *file_of;             /* (num_tensors) which file holds tensor i */
} HfWeights;

/* Open dir's model.safetensors, else its model.safetensors.index.json and shards.
 * 0, or -1 with err (w is then empty and hf_weights_free-able). */
int hf_weights_open(HfWeights *w, const char *dir, char *err);
void hf_weights_free(HfWeights *w);
/* The index of the tensor called name, or -1. */
int hf_weights_find(const HfWeights *w, const char *name);
/* Tensor i converted to float32 into out[numel] (F32/F16/BF16/F64; -1 with err else). */
int hf_weights_read_f32(const HfWeights *w, int i, float *out, char *err);
/* The file that holds tensor i. */
const char *hf_weights_path(const HfWeights *w, int i);

#endif
