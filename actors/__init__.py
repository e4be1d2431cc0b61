"""Thin Ray actors (rollout, introspector, learner, weight sync, placement): arrive with the Meta-TTRL job."""
