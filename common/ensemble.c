/*
 * common/ensemble.c — mean - lambda * std and min over K reward-model scores (see
 * ensemble.h). Sums in double: K is small, but the scores are floats from the models.
 */
#include "ensemble.h"

#include <math.h>
#include <string.h>

int ensemble_rule_from_name(const char *name) {
    if (strcmp(name, "mean_std") == 0) return ENSEMBLE_MEAN_STD;
    if (strcmp(name, "min") == 0) return ENSEMBLE_MIN;
    return -1;
}

static double mean_of(const float *v, int k) {
    double m = 0;
    for (int i = 0; i < k; i++) m += v[i];
    return m / k;
}

double ensemble_std(const float *v, int k) {
    double m = mean_of(v, k), ss = 0;
    for (int i = 0; i < k; i++) ss += ((double)v[i] - m) * ((double)v[i] - m);
    return sqrt(ss / k);
}

double ensemble_combine(const float *v, int k, EnsembleRule rule, double lambda) {
    if (rule == ENSEMBLE_MIN) {
        double lo = v[0];
        for (int i = 1; i < k; i++)
            if (v[i] < lo) lo = v[i];
        return lo;
    }
    return mean_of(v, k) - (lambda != 0.0 ? lambda * ensemble_std(v, k) : 0.0);
}
