"""TEST DOUBLE of the ais_bench package, release msit-2024-06 (not the real tool); see __main__.py."""
