"""I2Edit-format data: schema and validator, the dialogue simulator, CelebA-HQ attribute reader,
corpus statistics, and the demo world's face renderer. Depends on `dialogue.ontology` only."""
