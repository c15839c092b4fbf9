/*
 * common/ensemble.h — conservative combination of K reward models' scores of one
 * sequence (Coste et al. 2023, "Reward model ensembles help mitigate overoptimization"):
 * where the models disagree the policy is more likely exploiting one of them, so the
 * combined reward is lowered by the disagreement.
 *
 *   ENSEMBLE_MEAN_STD   mean - lambda * std  (population std over the K; lambda 0 = mean)
 *   ENSEMBLE_MIN        the lowest score (worst-case optimisation)
 *
 * K = 1 gives the one score either way. The reward server (judge.ensemble,
 * judge.ensemble_lambda) calls it per sequence after normalising every model by its own
 * /reward_norm, so that the K scores share a scale.
 */
#ifndef RLHF_ENSEMBLE_H
#define RLHF_ENSEMBLE_H

typedef enum { ENSEMBLE_MEAN_STD = 0, ENSEMBLE_MIN = 1 } EnsembleRule;

/* "mean_std" or "min"; -1 for any other name */
int ensemble_rule_from_name(const char *name);
/* The combined score of v[0..k-1] (k >= 1). */
double ensemble_combine(const float *v, int k, EnsembleRule rule, double lambda);
/* The population std of v[0..k-1] (0 for k = 1). */
double ensemble_std(const float *v, int k);

#endif
