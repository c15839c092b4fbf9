/*
 * common/chat_record.c — message lists from a dataset line into rendered texts (see
 * chat_record.h). Messages are borrowed from the JSON object; only the rendered texts are
 * allocated.
 */
#include "chat_record.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int chat_record_is_list(const json_t *v) { return v != NULL && json_is_array(v); }

/* The messages of arr (field names it in errors) appended to m[*n..]; m has room for
 * *n + json_array_size(arr). */
static int messages_read(json_t *arr, const char *field, ChatMessage *m, int *n, char *what,
                         size_t cap) {
    if (!json_is_array(arr)) {
        snprintf(what, cap, "field \"%s\" must be a list of messages [{\"role\", \"content\"}]",
                 field);
        return -1;
    }
    if (json_array_size(arr) == 0) {
        snprintf(what, cap, "field \"%s\" is an empty list (it needs at least one message)",
                 field);
        return -1;
    }
    size_t k;
    json_t *e;
    json_array_foreach(arr, k, e) {
        json_t *role = json_object_get(e, "role"), *content = json_object_get(e, "content");
        ChatRole r;
        if (!json_is_object(e)) {
            snprintf(what, cap, "field \"%s\"[%zu] must be an object {\"role\", \"content\"}",
                     field, k);
            return -1;
        }
        if (!json_is_string(role) || chat_role_parse(json_string_value(role), &r) != 0) {
            snprintf(what, cap,
                     "field \"%s\"[%zu].role must be \"system\", \"user\" or \"assistant\"%s%s%s",
                     field, k, json_is_string(role) ? ", found \"" : " (missing or not a string)",
                     json_is_string(role) ? json_string_value(role) : "",
                     json_is_string(role) ? "\"" : "");
            return -1;
        }
        if (!json_is_string(content)) {
            snprintf(what, cap, "field \"%s\"[%zu].content must be a string", field, k);
            return -1;
        }
        m[(*n)++] = (ChatMessage){r, json_string_value(content), json_string_length(content)};
    }
    return 0;
}

static ChatMessage *messages_alloc(size_t n) { return xmalloc((n ? n : 1) * sizeof(ChatMessage)); }

int chat_record_sft(const ChatTemplate *t, json_t *messages, ChatRecord *r, char *what,
                    size_t cap) {
    memset(r, 0, sizeof *r);
    ChatMessage *m = messages_alloc(json_array_size(messages));
    int n = 0, rc = -1;
    char err[ERRBUF_LEN];
    if (messages_read(messages, "messages", m, &n, what, cap)) goto done;
    if (m[n - 1].role != CHAT_ASSISTANT) {
        snprintf(what, cap,
                 "field \"messages\": the last message is a %s turn; an SFT conversation ends "
                 "with the assistant turn to learn",
                 chat_role_name(m[n - 1].role));
        goto done;
    }
    if (chat_render(t, m, n, 0, &r->conv, err)) {
        snprintf(what, cap, "field \"messages\": %s", err);
        goto done;
    }
    size_t b = r->conv.spans[r->conv.n_spans - 1].begin;
    r->prompt = xmalloc(b + 1);
    memcpy(r->prompt, r->conv.text, b);
    r->prompt[b] = 0;
    r->response = xstrdup(r->conv.text + b);
    rc = 0;
done:
    free(m);
    if (rc) chat_record_free(r);
    return rc;
}

/* completion = render(p + c)[len(render(p, generation)):] into *out. */
static int completion(const ChatTemplate *t, const ChatMessage *all, int np, int n,
                      const ChatText *prompt, const char *field, char **out, char *what,
                      size_t cap) {
    ChatText full;
    char err[ERRBUF_LEN];
    if (chat_render(t, all, n, 0, &full, err)) {
        snprintf(what, cap, "field \"%s\": %s", field, err);
        return -1;
    }
    if (full.len < prompt->len || memcmp(full.text, prompt->text, prompt->len) != 0) {
        snprintf(what, cap,
                 "field \"%s\": chat template %s does not render the prompt with its generation "
                 "prompt as the start of prompt + %s (a %s turn right after the prompt?), so "
                 "the two cannot be split",
                 field, t->name, field, chat_role_name(all[np].role));
        chat_text_free(&full);
        return -1;
    }
    *out = xstrdup(full.text + prompt->len);
    chat_text_free(&full);
    return 0;
}

static int same_message(const ChatMessage *a, const ChatMessage *b) {
    return a->role == b->role && a->len == b->len && !memcmp(a->content, b->content, a->len);
}

int chat_record_pref(const ChatTemplate *t, json_t *prompt, json_t *chosen, json_t *rejected,
                     ChatRecord *r, char *what, size_t cap) {
    memset(r, 0, sizeof *r);
    size_t np_max = prompt ? json_array_size(prompt) : 0;
    ChatMessage *c = messages_alloc(np_max + json_array_size(chosen));
    ChatMessage *j = messages_alloc(np_max + json_array_size(rejected));
    int nc = 0, nj = 0, np = 0, rc = -1;
    ChatText p = {0};
    char err[ERRBUF_LEN];
    if (prompt) {
        if (messages_read(prompt, "prompt", c, &nc, what, cap)) goto done;
        memcpy(j, c, (size_t)nc * sizeof *c);
        nj = np = nc;
    }
    if (messages_read(chosen, "chosen", c, &nc, what, cap) ||
        messages_read(rejected, "rejected", j, &nj, what, cap))
        goto done;
    if (!prompt) { /* implicit prompt: the shared leading messages */
        while (np < nc - 1 && np < nj - 1 && same_message(&c[np], &j[np])) np++;
        if (np == 0) {
            snprintf(what, cap,
                     "fields \"chosen\" and \"rejected\" share no leading message and there is "
                     "no \"prompt\" (give \"prompt\", or start both with the same prompt turns)");
            goto done;
        }
    }
    if (chat_render(t, c, np, 1, &p, err)) {
        snprintf(what, cap, "field \"prompt\": %s", err);
        goto done;
    }
    if (completion(t, c, np, nc, &p, "chosen", &r->chosen, what, cap) ||
        completion(t, j, np, nj, &p, "rejected", &r->rejected, what, cap))
        goto done;
    r->prompt = xstrdup(p.text);
    rc = 0;
done:
    chat_text_free(&p);
    free(c);
    free(j);
    if (rc) chat_record_free(r);
    return rc;
}

int chat_record_prompt(const ChatTemplate *t, json_t *prompt, ChatRecord *r, char *what,
                       size_t cap) {
    memset(r, 0, sizeof *r);
    ChatMessage *m = messages_alloc(json_array_size(prompt));
    int n = 0, rc = -1;
    ChatText p = {0};
    char err[ERRBUF_LEN];
    if (messages_read(prompt, "prompt", m, &n, what, cap)) goto done;
    if (chat_render(t, m, n, 1, &p, err)) {
        snprintf(what, cap, "field \"prompt\": %s", err);
        goto done;
    }
    r->prompt = p.text; /* the text moves to the record */
    p.text = NULL;
    rc = 0;
done:
    chat_text_free(&p);
    free(m);
    return rc;
}

void chat_record_free(ChatRecord *r) {
    if (!r) return;
    free(r->prompt), free(r->response), free(r->chosen), free(r->rejected);
    chat_text_free(&r->conv);
    memset(r, 0, sizeof *r);
}
