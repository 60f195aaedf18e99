"""Which weights to prune, from numbers: pure functions over `{variable_path: array}` dicts.

`rules` prunes by score with per-layer rates and budgets, `criteria` scores
weights after training, `planning` lays out the rounds' densities;
`saliency` scores a model's weights at initialization (SNIP, GraSP, SynFlow),
the one module here that reads a model. The names of `rules` are re-exported
here (`keras_lottery.pruning.density`).
"""

from keras_lottery.pruning.rules import *  # noqa: F401,F403
from keras_lottery.pruning.rules import __all__  # noqa: F401
