"""Commands for users beyond the pipeline's verbs: embedding a text file, checking an NPU host."""
