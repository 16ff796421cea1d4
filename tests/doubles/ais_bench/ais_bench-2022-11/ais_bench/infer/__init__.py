"""TEST DOUBLE of ais_bench.infer, release ais_bench-2022-11 (not the real tool); see interface.py."""
