"""TEST DOUBLE of the ais_bench package, release ais_bench-2022-11 (not the real tool); see __main__.py."""
