/*
 * common/chat.c — the chat templates of chat.h, written out in C: one renderer per
 * format that follows its Jinja template statement by statement (the Python string
 * operations it uses — strip, split, startswith — reproduced exactly), and the
 * recogniser behind chat.template = auto.
 */
#include "chat.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char QWEN25_SYSTEM[] = "You are Qwen, created by Alibaba Cloud. You are a helpful "
                                    "assistant.";

int chat_role_parse(const char *s, ChatRole *role) {
    static const char *names[] = {"system", "user", "assistant"};
    for (int r = 0; r < 3; r++)
        if (!strcmp(s, names[r])) {
            *role = (ChatRole)r;
            return 0;
        }
    return -1;
}

const char *chat_role_name(ChatRole r) {
    switch (r) {
    case CHAT_SYSTEM: return "system";
    case CHAT_USER: return "user";
    case CHAT_ASSISTANT: return "assistant";
    }
    return "?";
}

// ----------------------------------------------------------------------------
// templates by name

static void template_init(ChatTemplate *t, ChatFormat f, const char *name) {
    memset(t, 0, sizeof *t);
    t->format = f;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->enable_thinking = 1;
    snprintf(t->date, sizeof t->date, "%s", CHAT_DEFAULT_DATE);
}

int chat_template_from_name(ChatTemplate *t, const char *name, char *err) {
    if (!strcmp(name, "chatml")) {
        template_init(t, CHAT_CHATML, name);
    } else if (!strcmp(name, "qwen2.5")) {
        template_init(t, CHAT_CHATML, name);
        t->default_system = xstrdup(QWEN25_SYSTEM);
    } else if (!strcmp(name, "qwen3")) {
        template_init(t, CHAT_QWEN3, name);
    } else if (!strcmp(name, "llama3")) {
        template_init(t, CHAT_LLAMA3, name);
        t->date_header = 1;
    } else if (!strcmp(name, "plain")) {
        template_init(t, CHAT_PLAIN, name);
    } else {
        memset(t, 0, sizeof *t);
        return errf(err, "chat.template \"%s\" is not a template name (auto|%s)", name,
                    CHAT_TEMPLATE_NAMES);
    }
    return 0;
}

void chat_template_free(ChatTemplate *t) {
    if (!t) return;
    free(t->default_system);
    memset(t, 0, sizeof *t);
}

// ----------------------------------------------------------------------------
// recognising a Jinja template

/* The Jinja text with whitespace and the escape "\n" removed, double quotes made single
 * and message.role / message.content spelled message['role'] / message['content'], so
 * signatures match however a template is laid out. */
static char *jinja_normalise(const char *j) {
    size_t n = strlen(j);
    char *tmp = xmalloc(n + 1), *out = xmalloc(2 * n + 1);
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        char c = j[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
        if (c == '\\' && j[i + 1] == 'n') {
            i++;
            continue;
        }
        tmp[w++] = c == '"' ? '\'' : c;
    }
    tmp[w] = 0;
    size_t o = 0;
    for (size_t i = 0; i < w;) {
        if (!strncmp(tmp + i, "message.role", 12)) {
            memcpy(out + o, "message['role']", 15), o += 15, i += 12;
        } else if (!strncmp(tmp + i, "message.content", 15)) {
            memcpy(out + o, "message['content']", 18), o += 18, i += 15;
        } else {
            out[o++] = tmp[i++];
        }
    }
    out[o] = 0;
    free(tmp);
    return out;
}

/* A ChatML default system prompt: the string literal "<|im_start|>system\n TEXT
 * <|im_end|>" (TEXT not a concatenation), unescaped; NULL when there is none. */
static char *chatml_default_system(const char *j) {
    static const char open[] = "<|im_start|>system";
    for (const char *p = strstr(j, open); p; p = strstr(p + 1, open)) {
        const char *s = p + strlen(open);
        if (s[0] == '\\' && s[1] == 'n')
            s += 2;
        else if (s[0] == '\n')
            s += 1;
        else
            continue;
        if (*s == '\'' || *s == '"') continue; /* '...system\n' + messages[0]... */
        const char *e = strstr(s, "<|im_end|>");
        if (!e) return NULL;
        char *out = xmalloc((size_t)(e - s) + 1);
        size_t o = 0;
        for (const char *q = s; q < e; q++) {
            if (*q == '\\' && q + 1 < e) {
                q++;
                out[o++] = *q == 'n' ? '\n' : *q == 't' ? '\t' : *q;
            } else {
                out[o++] = *q;
            }
        }
        out[o] = 0;
        return out;
    }
    return NULL;
}

static const char CHATML_SIG[] = "'<|im_start|>'+message['role']+''+message['content']+'<|im_end|>'";
static const char LLAMA3_SIG[] = "'<|start_header_id|>'+message['role']+'<|end_header_id|>'+"
                                 "message['content']|trim+'<|eot_id|>'";

int chat_template_detect(ChatTemplate *t, const char *jinja, char *err) {
    memset(t, 0, sizeof *t);
    char *n = jinja_normalise(jinja);
    int rc = 0;
    if (strstr(n, CHATML_SIG)) {
        if (strstr(n, "reasoning_content") && strstr(n, "'<think>") && strstr(n, "</think>")) {
            template_init(t, CHAT_QWEN3, "qwen3");
        } else {
            char *sys = chatml_default_system(jinja);
            int qwen = sys && !strcmp(sys, QWEN25_SYSTEM);
            template_init(t, CHAT_CHATML, qwen ? "qwen2.5" : "chatml");
            t->default_system = sys;
        }
    } else if (strstr(n, LLAMA3_SIG) && strstr(n, "bos_token")) {
        int date = strstr(n, "CuttingKnowledgeDate:December2023") != NULL;
        template_init(t, CHAT_LLAMA3, date ? "llama3" : "llama3.0");
        t->date_header = date;
        t->always_generation = strstr(n, "add_generation_prompt") == NULL;
    } else {
        rc = errf(err,
                  "the checkpoint's chat template is not one rlhf-c recognises (ChatML as in "
                  "SmolLM2/Qwen2.5, Qwen3, Llama 3/3.1/3.2): set chat.template to one of %s "
                  "(plain = no template) to choose the rendering",
                  CHAT_TEMPLATE_NAMES);
    }
    free(n);
    return rc;
}

int chat_template_resolve(ChatTemplate *t, const char *name, const char *jinja, char *err) {
    if (strcmp(name, "auto") != 0) return chat_template_from_name(t, name, err);
    if (!jinja || !jinja[0]) {
        memset(t, 0, sizeof *t);
        return errf(err,
                    "chat.template = auto, but the model carries no chat template "
                    "(/tokenizer/chat_template of the checkpoint): set chat.template to one "
                    "of %s",
                    CHAT_TEMPLATE_NAMES);
    }
    return chat_template_detect(t, jinja, err);
}

// ----------------------------------------------------------------------------
// string pieces with Python's semantics

typedef struct {
    const char *s;
    size_t n;
} Str;

static Str str_of(const ChatMessage *m) { return (Str){m->content, m->len}; }

/* The code point of the k-byte UTF-8 sequence at p (the text is valid UTF-8: jansson
 * checked it). */
static unsigned utf8_decode(const unsigned char *p, size_t k) {
    if (k == 2) return ((p[0] & 0x1Fu) << 6) | (p[1] & 0x3Fu);
    if (k == 3) return ((p[0] & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
    if (k == 4)
        return ((p[0] & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) |
               (p[3] & 0x3Fu);
    return p[0];
}

/* The code point that ends at s[n) (n > 0), its length in *len. */
static unsigned utf8_last(const char *s, size_t n, size_t *len) {
    size_t k = 1;
    while (k < n && k < 4 && ((unsigned char)s[n - k] & 0xC0) == 0x80) k++;
    *len = k;
    return utf8_decode((const unsigned char *)s + n - k, k);
}

/* The code point that starts at s[0) (n > 0), its length in *len. */
static unsigned utf8_first(const char *s, size_t n, size_t *len) {
    unsigned char b = (unsigned char)s[0];
    size_t k = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    if (k > n) k = n;
    *len = k;
    return utf8_decode((const unsigned char *)s, k);
}

int chat_is_space(unsigned cp) {
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 ||
           cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* str.strip() */
static Str str_trim(Str a) {
    size_t l;
    while (a.n > 0 && chat_is_space(utf8_first(a.s, a.n, &l))) a.s += l, a.n -= l;
    while (a.n > 0 && chat_is_space(utf8_last(a.s, a.n, &l))) a.n -= l;
    return a;
}

/* str.lstrip('\n') / str.rstrip('\n') */
static Str str_lstrip_nl(Str a) {
    while (a.n > 0 && a.s[0] == '\n') a.s++, a.n--;
    return a;
}
static Str str_rstrip_nl(Str a) {
    while (a.n > 0 && a.s[a.n - 1] == '\n') a.n--;
    return a;
}

/* First / last occurrence of needle, or NULL. */
static const char *str_find(Str a, const char *needle) {
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= a.n; i++)
        if (!memcmp(a.s + i, needle, k)) return a.s + i;
    return NULL;
}
static const char *str_rfind(Str a, const char *needle) {
    size_t k = strlen(needle);
    for (size_t i = a.n; i >= k; i--)
        if (!memcmp(a.s + i - k, needle, k)) return a.s + i - k;
    return NULL;
}

static int str_starts(Str a, const char *p) {
    size_t k = strlen(p);
    return a.n >= k && !memcmp(a.s, p, k);
}
static int str_ends(Str a, const char *p) {
    size_t k = strlen(p);
    return a.n >= k && !memcmp(a.s + a.n - k, p, k);
}

// ----------------------------------------------------------------------------
// the output

typedef struct {
    ChatText *out;
    size_t cap;
    int span_cap;
} Out;

static void put(Out *o, const char *s, size_t n) {
    ChatText *c = o->out;
    if (c->len + n + 1 > o->cap) {
        while (c->len + n + 1 > o->cap) o->cap = o->cap ? 2 * o->cap : 256;
        c->text = xrealloc(c->text, o->cap);
    }
    if (n) memcpy(c->text + c->len, s, n);
    c->len += n;
    c->text[c->len] = 0;
}
static void puts_(Out *o, const char *s) { put(o, s, strlen(s)); }
static void put_str(Out *o, Str s) { put(o, s.s, s.n); }

static void span_add(Out *o, size_t begin) {
    ChatText *c = o->out;
    if (c->n_spans == o->span_cap) {
        o->span_cap = o->span_cap ? 2 * o->span_cap : 8;
        c->spans = xrealloc(c->spans, (size_t)o->span_cap * sizeof(ChatSpan));
    }
    c->spans[c->n_spans++] = (ChatSpan){begin, c->len};
}

// ----------------------------------------------------------------------------
// renderers

static void chatml_turn(Out *o, const char *role, Str content, int assistant) {
    puts_(o, "<|im_start|>");
    puts_(o, role);
    puts_(o, "\n");
    size_t b = o->out->len;
    put_str(o, content);
    puts_(o, "<|im_end|>");
    if (assistant) span_add(o, b);
    puts_(o, "\n");
}

static void render_chatml(Out *o, const ChatTemplate *t, const ChatMessage *m, int n, int gen) {
    if (t->default_system && m[0].role != CHAT_SYSTEM)
        chatml_turn(o, "system", (Str){t->default_system, strlen(t->default_system)}, 0);
    for (int i = 0; i < n; i++)
        chatml_turn(o, chat_role_name(m[i].role), str_of(&m[i]), m[i].role == CHAT_ASSISTANT);
    if (gen) puts_(o, "<|im_start|>assistant\n");
}

/* Qwen3's assistant turn i (see the template: reasoning split on </think>). */
static void qwen3_assistant(Out *o, Str c, int after_query, int last) {
    Str content = c, reasoning = {"", 0};
    const char *close = str_find(c, "</think>");
    if (close) {
        const char *lastc = str_rfind(c, "</think>");
        const char *tail = lastc + strlen("</think>");
        content = str_lstrip_nl((Str){tail, (size_t)(c.s + c.n - tail)});
        Str head = str_rstrip_nl((Str){c.s, (size_t)(close - c.s)});
        const char *open = str_rfind(head, "<think>");
        if (open) {
            const char *h = open + strlen("<think>");
            head = (Str){h, (size_t)(head.s + head.n - h)};
        }
        reasoning = str_lstrip_nl(head);
    }
    puts_(o, "<|im_start|>assistant\n");
    size_t b = o->out->len;
    if (after_query && (last || reasoning.n > 0)) {
        puts_(o, "<think>\n");
        put_str(o, str_lstrip_nl(str_rstrip_nl(reasoning)));
        puts_(o, "\n</think>\n\n");
        put_str(o, str_lstrip_nl(content));
    } else {
        put_str(o, content);
    }
    puts_(o, "<|im_end|>");
    span_add(o, b);
    puts_(o, "\n");
}

static void render_qwen3(Out *o, const ChatTemplate *t, const ChatMessage *m, int n, int gen) {
    /* last_query_index: the last user turn that is not a tool response */
    int last_query = n - 1;
    for (int i = n - 1; i >= 0; i--) {
        Str c = str_of(&m[i]);
        if (m[i].role == CHAT_USER &&
            !(str_starts(c, "<tool_response>") && str_ends(c, "</tool_response>"))) {
            last_query = i;
            break;
        }
    }
    for (int i = 0; i < n; i++) {
        if (m[i].role == CHAT_ASSISTANT)
            qwen3_assistant(o, str_of(&m[i]), i > last_query, i == n - 1);
        else
            chatml_turn(o, chat_role_name(m[i].role), str_of(&m[i]), 0);
    }
    if (gen) {
        puts_(o, "<|im_start|>assistant\n");
        if (!t->enable_thinking) puts_(o, "<think>\n\n</think>\n\n");
    }
}

static void llama3_turn(Out *o, const char *role, Str content, int assistant) {
    puts_(o, "<|start_header_id|>");
    puts_(o, role);
    puts_(o, "<|end_header_id|>\n\n");
    size_t b = o->out->len;
    put_str(o, str_trim(content));
    puts_(o, "<|eot_id|>");
    if (assistant) span_add(o, b);
}

static void render_llama3(Out *o, const ChatTemplate *t, const ChatMessage *m, int n, int gen) {
    puts_(o, "<|begin_of_text|>");
    int first = 0;
    if (t->date_header) {
        Str sys = {"", 0};
        if (m[0].role == CHAT_SYSTEM) sys = str_trim(str_of(&m[0])), first = 1;
        puts_(o, "<|start_header_id|>system<|end_header_id|>\n\n"
                 "Cutting Knowledge Date: December 2023\nToday Date: ");
        puts_(o, t->date);
        puts_(o, "\n\n");
        put_str(o, sys);
        puts_(o, "<|eot_id|>");
    }
    for (int i = first; i < n; i++)
        llama3_turn(o, chat_role_name(m[i].role), str_of(&m[i]), m[i].role == CHAT_ASSISTANT);
    if (gen || t->always_generation) puts_(o, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static void render_plain(Out *o, const ChatMessage *m, int n) {
    for (int i = 0; i < n; i++) {
        size_t b = o->out->len;
        put_str(o, str_of(&m[i]));
        if (m[i].role == CHAT_ASSISTANT) span_add(o, b);
    }
}

int chat_render(const ChatTemplate *t, const ChatMessage *m, int n, int add_generation_prompt,
                ChatText *out, char *err) {
    memset(out, 0, sizeof *out);
    if (n < 1) return errf(err, "a conversation needs at least one message");
    Out o = {.out = out};
    put(&o, "", 0); /* text is never NULL */
    switch (t->format) {
    case CHAT_CHATML: render_chatml(&o, t, m, n, add_generation_prompt); break;
    case CHAT_QWEN3: render_qwen3(&o, t, m, n, add_generation_prompt); break;
    case CHAT_LLAMA3: render_llama3(&o, t, m, n, add_generation_prompt); break;
    case CHAT_PLAIN: render_plain(&o, m, n); break;
    }
    return 0;
}

// ----------------------------------------------------------------------------
// tokens and loss mask

/* Room for n entries in both arrays. */
static void tok_reserve(int **ids, unsigned char **mask, size_t *cap, size_t n) {
    if (n <= *cap) return;
    size_t c = *cap ? *cap : 64;
    while (c < n) c *= 2;
    *ids = xrealloc(*ids, c * sizeof(int));
    *mask = xrealloc(*mask, c);
    *cap = c;
}

/* 1 if byte offset b lies inside an assistant span. */
static int in_span(const ChatText *c, size_t b) {
    for (int s = 0; s < c->n_spans; s++)
        if (b >= c->spans[s].begin && b < c->spans[s].end) return 1;
    return 0;
}

/* Encode each stretch between span edges on its own; its mask is its span membership. */
static size_t tokenize_pieces(const BPE *t, const ChatText *c, int **ids, unsigned char **mask,
                              size_t *cap) {
    size_t n = 0, pos = 0, pcap = 0;
    int *piece = NULL;
    while (pos < c->len) {
        size_t end = c->len; /* the next span edge after pos */
        for (int s = 0; s < c->n_spans; s++) {
            if (c->spans[s].begin > pos && c->spans[s].begin < end) end = c->spans[s].begin;
            if (c->spans[s].end > pos && c->spans[s].end < end) end = c->spans[s].end;
        }
        size_t k = bpe_encode(t, c->text + pos, end - pos, BPE_ENCODE_SPECIAL, &piece, &pcap);
        tok_reserve(ids, mask, cap, n + k);
        memcpy(*ids + n, piece, k * sizeof(int));
        memset(*mask + n, in_span(c, pos), k);
        n += k;
        pos = end;
    }
    free(piece);
    return n;
}

size_t chat_tokenize(const BPE *t, const ChatText *c, int **ids, unsigned char **mask,
                     size_t *cap) {
    size_t idcap = *cap;
    size_t n = bpe_encode(t, c->text, c->len, BPE_ENCODE_SPECIAL, ids, &idcap);
    /* bpe_encode may have grown ids past *cap: keep mask as large */
    *mask = xrealloc(*mask, idcap ? idcap : 1);
    *cap = idcap;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        (*mask)[i] = off < c->len && in_span(c, off);
        if (bpe_token_bytes(t, (*ids)[i], &len)) off += len;
    }
    if (off == c->len) return n;
    return tokenize_pieces(t, c, ids, mask, cap); /* normalisation moved the bytes */
}

int chat_eot_id(const ChatTemplate *ct, const BPE *t) {
    const char *eot = ct->format == CHAT_LLAMA3 ? "<|eot_id|>"
                      : ct->format == CHAT_PLAIN ? NULL
                                                 : "<|im_end|>";
    if (!eot) return -1;
    int *ids = NULL;
    size_t cap = 0, n = bpe_encode(t, eot, strlen(eot), BPE_ENCODE_SPECIAL, &ids, &cap);
    int id = n == 1 && bpe_is_special(t, ids[0]) ? ids[0] : -1;
    free(ids);
    return id;
}

void chat_text_free(ChatText *c) {
    if (!c) return;
    free(c->text);
    free(c->spans);
    memset(c, 0, sizeof *c);
}
