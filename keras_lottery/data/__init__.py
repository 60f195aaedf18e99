"""Data sets of the paper and of language models: `datasets` (tfds, or a local
copy) and `text` (character- or byte-level text splits and their vocabulary).
"""
