/*
 * fuzz/fuzz_hf_config.c — libFuzzer target for the Llama family's Hugging Face
 * config.json reader, common/hf_llama.h (what `rlhf-hf import` reads from a downloaded
 * model folder).
 *
 * Each input is the text of a config.json. Properties checked besides "no crash, leak, UB
 * or hang":
 *   - a rejected config has an error message that names the file ("fuzz.json");
 *   - an accepted one round-trips: hf_llama_type_of gives the model_type it was read as,
 *     hf_llama_config_build writes a config that reads back to the same GPTConfig (every
 *     field, floats bit for bit) and the same max_position_embeddings.
 * Seeds: fuzz/corpus/fuzz_hf_config/, the config.json files of tests/ref/hf_llama.
 * Not here: the weights (fuzz_safetensors) and tokenizer.json (fuzz_bpe).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "hf_llama.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_t *cfg = json_loadb((const char *)data, size, 0, NULL);
    if (!json_is_object(cfg)) {
        json_decref(cfg);
        return 0;
    }
    char err[ERRBUF_LEN] = "";
    GPTConfig c, c2;
    memset(&c, 0, sizeof c);
    memset(&c2, 0, sizeof c2);
    HfLlamaInfo info, info2;
    if (hf_llama_config_parse(cfg, "fuzz.json", &c, &info, err) != 0) {
        FUZZ_REQUIRE(strstr(err, "fuzz.json") != NULL);
    } else {
        HfLlamaType t;
        FUZZ_REQUIRE(hf_llama_type_of(&c, &t, err) == 0 && t == info.type);
        json_t *out = hf_llama_config_build(&c, t, info.max_pos, "float32");
        int rc = hf_llama_config_parse(out, "built.json", &c2, &info2, err);
        if (rc != 0) fprintf(stderr, "the built config does not read back: %s\n", err);
        FUZZ_REQUIRE(rc == 0);
        FUZZ_REQUIRE(memcmp(&c, &c2, sizeof c) == 0 && info2.max_pos == info.max_pos);
        json_decref(out);
    }
    json_decref(cfg);
    return 0;
}
