/*
 * common/chat.h — chat templates rendered natively (no Jinja engine): a conversation
 * (system / user / assistant messages) becomes the text an instruct model was trained on,
 * byte for byte what transformers' apply_chat_template gives with the model's own
 * template (tests/ref/chat_templates.py checks ~50 conversations against jinja2).
 *
 * Formats (chat.template names):
 *   chatml   <|im_start|>ROLE\nCONTENT<|im_end|>\n per message; generation prompt
 *            <|im_start|>assistant\n. With a default system prompt (SmolLM2's, read
 *            from its Jinja text under auto), that system turn opens a conversation
 *            that has none.
 *   qwen2.5  chatml with Qwen2.5's default system prompt ("You are Qwen, created by
 *            Alibaba Cloud. You are a helpful assistant.").
 *   qwen3    chatml without a default system prompt; an assistant content holding
 *            "</think>" is split into reasoning and answer as Qwen3's template does:
 *            assistant turns after the last user turn render
 *            "<think>\nREASONING\n</think>\n\nANSWER" (the last one always, with an empty
 *            reasoning when it has none), earlier ones only the answer. The generation
 *            prompt adds "<think>\n\n</think>\n\n" when enable_thinking is off.
 *   llama3   <|begin_of_text|>, then a system header "Cutting Knowledge Date: December
 *            2023\nToday Date: DATE\n\n" + the (trimmed) system message, always present
 *            (Llama 3.1/3.2), then <|start_header_id|>ROLE<|end_header_id|>\n\n
 *            + trim(CONTENT) + <|eot_id|> per message; generation prompt
 *            <|start_header_id|>assistant<|end_header_id|>\n\n. Under auto a Llama 3.0
 *            template (no date header) is recognised too.
 *   plain    the contents concatenated without any markup (one user + one assistant
 *            message is exactly today's {"prompt", "response"} pair).
 * trim is Python's str.strip() (Unicode whitespace), as Jinja's trim filter.
 *
 * auto (chat_template_resolve): the checkpoint's Jinja text is recognised by signatures
 * that survive reformatting (whitespace, quote style and message.x / message['x']
 * spellings are normalised before matching): the ChatML message line, Qwen3's
 * <think>/reasoning_content handling, the Llama 3 header line and its Cutting Knowledge
 * Date line; a ChatML default system prompt is read from the template's string literal.
 * Anything else is refused with an error naming the values to set instead.
 *
 * Every rendering also gives the byte spans of the assistant turns as the model writes
 * them (content, plus the end-of-turn token <|im_end|> / <|eot_id|>; the whole
 * "<think>...</think>\n\n" block included for Qwen3) for loss masks.
 *
 * Ownership: a ChatTemplate owns its strings (chat_template_free); ChatText owns text and
 * spans (chat_text_free). Messages are borrowed. Errors: -1 with err (ERRBUF_LEN).
 */
#ifndef RLHF_CHAT_H
#define RLHF_CHAT_H

#include <stddef.h>

#include "bpe.h"

typedef enum { CHAT_PLAIN = 0, CHAT_CHATML, CHAT_QWEN3, CHAT_LLAMA3 } ChatFormat;
typedef enum { CHAT_SYSTEM = 0, CHAT_USER, CHAT_ASSISTANT } ChatRole;

#define CHAT_TEMPLATE_NAMES "chatml|qwen2.5|qwen3|llama3|plain"
#define CHAT_DEFAULT_DATE "26 Jul 2024" /* Llama 3.1/3.2's date_string default */

typedef struct {
    ChatRole role;
    const char *content; /* UTF-8, len bytes (may be empty) */
    size_t len;
} ChatMessage;

typedef struct {
    ChatFormat format;
    char name[16];        /* chatml, qwen2.5, qwen3, llama3, llama3.0, plain */
    char *default_system; /* chatml: system turn for a conversation without one, or NULL */
    int date_header;      /* llama3: the Cutting Knowledge Date system header */
    int always_generation; /* llama3: the template appends the generation prompt always */
    int enable_thinking;  /* qwen3: 0 adds an empty think block to the generation prompt */
    char date[64];        /* llama3: "Today Date: " value */
} ChatTemplate;

typedef struct {
    size_t begin, end; /* [begin, end) of ChatText.text */
} ChatSpan;

typedef struct {
    char *text; /* NUL-terminated, len bytes */
    size_t len;
    ChatSpan *spans; /* assistant turns, in order */
    int n_spans;
} ChatText;

/* "system" | "user" | "assistant" -> role (0), else -1. */
int chat_role_parse(const char *s, ChatRole *role);
const char *chat_role_name(ChatRole r);

/* A named format (CHAT_TEMPLATE_NAMES); enable_thinking on, date CHAT_DEFAULT_DATE. */
int chat_template_from_name(ChatTemplate *t, const char *name, char *err);
/* Recognise a Jinja chat template (see top). */
int chat_template_detect(ChatTemplate *t, const char *jinja, char *err);
/* name "auto" -> chat_template_detect(jinja) (jinja NULL or "" is an error that says
 * what to set); any other name -> chat_template_from_name. */
int chat_template_resolve(ChatTemplate *t, const char *name, const char *jinja, char *err);
void chat_template_free(ChatTemplate *t);

/* Render n >= 1 messages (-1 with err for n == 0). With add_generation_prompt the
 * assistant header follows (for Qwen3 with the empty think block if thinking is off). */
int chat_render(const ChatTemplate *t, const ChatMessage *m, int n, int add_generation_prompt,
                ChatText *out, char *err);
void chat_text_free(ChatText *c);

/* The token ids of a rendering and its loss mask, for training on assistant turns only.
 * Special-token strings in the text become their ids (BPE_ENCODE_SPECIAL, as transformers
 * tokenizes an applied template: <|im_start|>, <|eot_id|>, ... are single ids).
 * mask[i] = 1 when token i starts inside an assistant span (so the content and its
 * end-of-turn token). The whole text is encoded at once, as transformers does; only when
 * the tokenizer's normalisation (NFC) changes the bytes, so that token offsets no longer
 * match the text, is each stretch between span edges encoded on its own. ids and mask are
 * grown with realloc (both may start NULL with *cap 0); returns the number of tokens. */
size_t chat_tokenize(const BPE *t, const ChatText *c, int **ids, unsigned char **mask,
                     size_t *cap);

/* The template's end-of-turn token as a single id of t: <|im_end|> (chatml, qwen2.5,
 * qwen3) or <|eot_id|> (llama3), when t holds that string as one special token; -1 for
 * plain or a tokenizer without it. A chat-formatted response ends with this id (no EOS
 * after it) and generation from a chat-formatted prompt stops at it. */
int chat_eot_id(const ChatTemplate *ct, const BPE *t);

/* Python's str.isspace for one code point (Jinja's trim). */
int chat_is_space(unsigned cp);

#endif
