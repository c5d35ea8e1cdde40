"""Weight management: the `registry` of public weights files (sources, checksums, the weights directory),
weight sets and their manifests (`weight_set`), HTTP `download`, and random-initialised `fixtures` in the
public formats for tests."""
