"""The demo world: an offline face domain in which every network of the editing pipeline is trained by the
project itself (renderer in `data_tools.faces`), shipped in `editing/demo_set/`, and evaluated end to end.

Modules: `world` (batches of renders, conditioning vectors, faces of dialogues), `loop` (resumable training),
`judge` (the independent 23-way attribute classifier), `generator_train`, `encoder_train`, `clip_train`,
`identity_train` (one per network of the real pipeline), `ship` (export to the demo set and its manifest),
`evaluate` (`i2edit demo-world eval`).
"""
