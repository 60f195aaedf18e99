"""Masks on a whole model: conversion to masked layers and back, masks in and out, density.

`conversion` makes a model prunable (a masked copy, or the model itself in
place) and strips it back; `masks` reads and writes masks and weights by
variable path; `sparsity` reports how much of a model is pruned and what is
left unmasked. Built on `keras_lottery.layers`; knows nothing of searches.
"""
