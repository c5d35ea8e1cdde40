"""I2Edit-format data: the dialogue simulator, CelebA-HQ attribute reader, corpus statistics, and the demo
world's face renderer. The record format itself is `dialogue.records`; this package depends on `dialogue`
(ontology and records) and never the other way round."""
