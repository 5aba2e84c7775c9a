"""LightningModules: they orchestrate training; the math lives in bsa.diffusion."""
