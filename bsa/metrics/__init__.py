"""Metrics on waveforms: Fréchet distance (FAD), Inception Score, CLAP score, attribute accuracy.
Sees waveforms and embedders, never a LightningModule."""
