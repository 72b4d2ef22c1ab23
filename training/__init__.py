"""Sparse autoencoder trainer: see training/README.md."""
