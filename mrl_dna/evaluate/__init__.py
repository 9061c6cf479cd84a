"""Benchmarks of embedders on genomes with known species: fragment -> genome retrieval (`retrieval`, its
markdown/plot in `report`), species clustering (`cluster`), fragment -> window retrieval beside aligners
(`windows`), and the held-out genome sets with alignment-checked labels (`heldout`). `mrl-dna eval` runs
`retrieval`; the scripts under scripts/bench/ run all of them. Import the module you need
(`from mrl_dna.evaluate import retrieval as ev`): this package imports nothing itself."""
