"""Samplers over model adapters (AR with CFG + log-probs, flow SDE, MILR latent search)."""
