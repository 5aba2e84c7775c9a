"""Data: the embedded captioned-audio generator, AudioCaps-layout reading, the latent cache and the
DataModule over it. Independent of bsa.models: encoders arrive as callables."""
