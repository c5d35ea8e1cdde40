"""StyleGAN2 custom ops `fused_bias_act` and `upfirdn2d`: lazy CUDA build, pure-PyTorch reference."""
