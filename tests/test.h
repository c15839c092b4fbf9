/*
 * tests/test.h — the tiny test harness every tests/test_*.c uses.
 *
 * Each test program defines test functions, runs them with TEST_RUN(fn) from main and
 * returns TEST_EXIT(). Every CHECK that fails prints file:line and the values involved;
 * a test program exits non-zero if any check failed, and prints one summary line
 * ("test_x: N checks, M failed, K skipped"). A test that cannot run a part here (the CPU
 * lacks what it tests, ...) says so with TEST_SKIP("reason", ...), which prints
 * "SKIP: test: reason": tests/run.sh counts those lines and shows them on the suite's
 * result line; a program that skipped everything and checked nothing exits 77, which
 * tests/run.sh counts as a skipped suite. Nothing here is timed: speed lives in bench/.
 */
#ifndef RLHF_TEST_H
#define RLHF_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_checks_ = 0;
static int test_failures_ = 0;
static int test_skips_ = 0;
static const char *test_current_ = "";

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        test_checks_++;                                                                   \
        if (!(cond)) {                                                                    \
            test_failures_++;                                                             \
            fprintf(stderr, "FAIL %s:%d [%s]: %s\n", __FILE__, __LINE__, test_current_,   \
                    #cond);                                                               \
        }                                                                                 \
    } while (0)

#define CHECK_MSG(cond, ...)                                                              \
    do {                                                                                  \
        test_checks_++;                                                                   \
        if (!(cond)) {                                                                    \
            test_failures_++;                                                             \
            fprintf(stderr, "FAIL %s:%d [%s]: %s: ", __FILE__, __LINE__, test_current_,   \
                    #cond);                                                               \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                          \
        }                                                                                 \
    } while (0)

/* |a-b| <= atol + rtol*|b| */
#define CHECK_NEAR(a, b, atol, rtol)                                                      \
    do {                                                                                  \
        double a_ = (double)(a), b_ = (double)(b);                                        \
        test_checks_++;                                                                   \
        if (!(fabs(a_ - b_) <= (atol) + (rtol) * fabs(b_))) {                             \
            test_failures_++;                                                             \
            fprintf(stderr, "FAIL %s:%d [%s]: %s = %.9g, expected %s = %.9g\n", __FILE__, \
                    __LINE__, test_current_, #a, a_, #b, b_);                             \
        }                                                                                 \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                \
    do {                                                                                  \
        long long a_ = (long long)(a), b_ = (long long)(b);                               \
        test_checks_++;                                                                   \
        if (a_ != b_) {                                                                   \
            test_failures_++;                                                             \
            fprintf(stderr, "FAIL %s:%d [%s]: %s = %lld, expected %s = %lld\n", __FILE__, \
                    __LINE__, test_current_, #a, a_, #b, b_);                             \
        }                                                                                 \
    } while (0)

/* A part of the current test that cannot run here: one "SKIP: test: reason" line (the
 * format tests/run.sh counts); the caller then leaves that part out. */
#define TEST_SKIP(...)                                                                    \
    do {                                                                                  \
        test_skips_++;                                                                    \
        fprintf(stderr, "SKIP: %s: ", test_current_);                                     \
        fprintf(stderr, __VA_ARGS__);                                                     \
        fputc('\n', stderr);                                                              \
    } while (0)

#define TEST_RUN(fn)                                                                      \
    do {                                                                                  \
        int before_ = test_failures_, skips_ = test_skips_;                               \
        test_current_ = #fn;                                                              \
        fn();                                                                             \
        fprintf(stderr, "%s %s\n", test_failures_ != before_ ? "  FAIL"                   \
                                   : test_skips_ != skips_ ? "  skip" : "  ok  ", #fn);   \
    } while (0)

/* 1 on any failure; 77 (a skipped suite) when parts were skipped and nothing was checked */
#define TEST_EXIT()                                                                       \
    (fprintf(stderr, "%s: %d checks, %d failed, %d skipped\n", __FILE__, test_checks_,    \
             test_failures_, test_skips_),                                                \
     test_failures_ ? 1 : test_checks_ == 0 && test_skips_ > 0 ? 77 : 0)

#endif
