"""bsa: progressive distillation of text-to-audio diffusion with Balanced SNR-Aware weighting."""

__version__ = "0.1.0"
