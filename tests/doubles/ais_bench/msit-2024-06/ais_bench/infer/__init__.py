"""TEST DOUBLE of ais_bench.infer, release msit-2024-06 (not the real tool); see interface.py."""
