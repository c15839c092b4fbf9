/*
 * common/chat_record.h — conversational dataset records (TRL's conventions) rendered into
 * the prompt/response/chosen/rejected texts that the plain records carry, with a chat
 * template (chat.h). dataset.c calls these for a line whose fields are message lists.
 *
 *   SFT      {"messages": [msgs]}: the last message must be an assistant turn. The whole
 *            conversation is rendered (conv, with every assistant span for loss masks);
 *            prompt = the text before the last assistant content, response = the rest
 *            (that content, its end-of-turn token and what the template writes after it).
 *   PREF     {"prompt": [msgs], "chosen": [msgs], "rejected": [msgs]}, or implicit
 *            {"chosen": [conversation], "rejected": [conversation]} whose longest shared
 *            leading run of messages is the prompt. prompt = render(prompt, generation
 *            prompt on); chosen = render(prompt + chosen)[len(prompt):], the same for
 *            rejected — exactly TRL's split (the template must render the prompt as a
 *            prefix of the whole conversation, checked).
 *   PROMPT   {"prompt": [msgs]}: prompt = render(msgs, generation prompt on).
 * A message is {"role": "system"|"user"|"assistant", "content": string}; other keys are
 * ignored. Errors fill `what` with the field ("field \"messages\"[2].role: ...").
 */
#ifndef RLHF_CHAT_RECORD_H
#define RLHF_CHAT_RECORD_H

#include <stddef.h>

#include "chat.h"

struct json_t; /* jansson's */

typedef struct {
    char *prompt, *response, *chosen, *rejected; /* malloc'd, NULL when not part of the kind */
    ChatText conv;                              /* SFT: the whole rendered conversation */
} ChatRecord;

/* 1 if v is a JSON array (a message list), else 0. */
int chat_record_is_list(const struct json_t *v);

int chat_record_sft(const ChatTemplate *t, struct json_t *messages, ChatRecord *r, char *what,
                    size_t cap);
/* prompt may be NULL (implicit prompt). */
int chat_record_pref(const ChatTemplate *t, struct json_t *prompt, struct json_t *chosen,
                     struct json_t *rejected, ChatRecord *r, char *what, size_t cap);
int chat_record_prompt(const ChatTemplate *t, struct json_t *prompt, ChatRecord *r, char *what,
                       size_t cap);
void chat_record_free(ChatRecord *r);

#endif
