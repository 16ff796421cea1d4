"""TEST DOUBLE of ais_bench.infer, release ais_bench-2025-master (not the real tool); see interface.py."""
