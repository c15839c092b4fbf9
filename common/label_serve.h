/*
 * common/label_serve.h — `rlhf-label serve`: the labelling web page, an HTTP server
 * (libmicrohttpd) in front of the same judgment log as the terminal tool.
 *
 *   rlhf-label serve [--port N] [--bind ADDR] [--tokens FILE | --annotators A,B,...]
 *                    [--overlap K] [--mode pair|thumbs] CANDIDATES.jsonl --out PREFS.jsonl
 *
 * Judgments are the records of common/label.h, written with label_append_line (write +
 * fsync) before the response that acknowledges them, so a killed server loses nothing
 * it acknowledged and a restarted one resumes from the log. Each annotator (a name and a
 * secret token) is given items they have not judged, as in the terminal tool; with
 * --overlap K an item goes to at most K annotators (its agreement shows on /progress).
 * The routes, limits and security rules are in label_serve.c and docs/labelling.md.
 *
 * What it does not do: TLS (bind to 127.0.0.1, the default, and reach it through an ssh
 * tunnel or a reverse proxy), or share one log with a running terminal tool (the log is
 * locked, one writer at a time).
 */
#ifndef RLHF_LABEL_SERVE_H
#define RLHF_LABEL_SERVE_H

/* argv[0] is "serve". Returns the exit status: 0 after SIGINT/SIGTERM, 1 on an error,
 * 2 on a usage error. */
int label_serve_main(int argc, char **argv);

#endif
