"""TEST DOUBLE of the ais_bench package, release ais_bench-2025-master (not the real tool); see __main__.py."""
