"""Acting in environments: the chunk schedule, vectorised rollouts and the evaluation harness."""
