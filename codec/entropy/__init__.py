"""Entropy models: densities for training (likelihoods) and frozen, gridded parameters for coding."""
