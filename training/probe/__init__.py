"""PII probes on SAE latents: offline labelled data (faker + our templates), token labels through the tokenizer's
offsets, features (raw activations, SAE codes, binarised codes), per-class logistic-regression probes, span
aggregation, a regex baseline, and the comparison report (`python -m training.probe --sae RUN_DIR`)."""
