"""Models: text encoders, the mel VAE, vocoders, the denoiser wrapper around diffusers' UNet."""
