"""Training side of reasoner: rollout labels (labeling, records), the policy trainer, and the PRM
trainers (prm_trainer dispatches by config class to lm_prm_trainer or evidence_trainer, which share
prm_config, prm_data, prm_loop and prm_metrics)."""
