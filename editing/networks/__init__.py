"""The networks, each a small model file in the layout of its public checkpoint, with its loader: StyleGAN2
(`generator`, built from `stylegan_layers`; `discriminator`), the e4e encoder (`e4e`, on the IR-SE trunk of
`irse`), the identity network (`identity`), CLIP (`clip_model`), and `checkpoints`, the file readers they share."""
