"""The ELMo model itself: options, the official weights file, character ids, the PyTorch module."""
