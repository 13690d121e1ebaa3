"""Training of T-HMR's learned parts (HMR2.0 stays frozen): torch, imported on demand."""
