"""Masked twins of Keras' recurrent layers and cells: LSTM, GRU, SimpleRNN, ConvLSTM.

A layer's weights live in its cell; the masks belong to the layer and are
multiplied in wherever the cell (or a backend's fused kernel, such as cuDNN)
reads them. The input kernel and the recurrent kernel are separate kinds,
`"recurrent_input"` and `"recurrent"`, so their prune rates can differ.
Wrap one in `keras.layers.Bidirectional` as you would the Keras layer. The
masked cells are for `keras.layers.RNN(cell)` and `StackedRNNCells`; there
each cell owns its masks.
"""

import keras

from keras_lottery.layers.masked_layer import MaskedLayer

_CELL_KERNELS = {"cell.kernel": "recurrent_input", "cell.recurrent_kernel": "recurrent"}


class _MaskedRecurrent(MaskedLayer):
    """Computes each `kernel * mask` once per call, not once per time step."""

    prunable_weights = _CELL_KERNELS

    def inner_loop(self, *args, **kwargs):
        with self.masked_once():
            return super().inner_loop(*args, **kwargs)


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedLSTM(_MaskedRecurrent, keras.layers.LSTM):
    """`keras.layers.LSTM` whose cell's `kernel` and `recurrent_kernel` are
    multiplied by `cell_kernel_mask` and `cell_recurrent_kernel_mask`."""


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedGRU(_MaskedRecurrent, keras.layers.GRU):
    """`keras.layers.GRU` whose cell's `kernel` and `recurrent_kernel` are
    multiplied by `cell_kernel_mask` and `cell_recurrent_kernel_mask`."""


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedSimpleRNN(_MaskedRecurrent, keras.layers.SimpleRNN):
    """`keras.layers.SimpleRNN` whose cell's `kernel` and `recurrent_kernel`
    are multiplied by `cell_kernel_mask` and `cell_recurrent_kernel_mask`."""


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedConvLSTM1D(_MaskedRecurrent, keras.layers.ConvLSTM1D):
    """`keras.layers.ConvLSTM1D` with its cell's kernels masked, as `MaskedLSTM`."""


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedConvLSTM2D(_MaskedRecurrent, keras.layers.ConvLSTM2D):
    """`keras.layers.ConvLSTM2D` with its cell's kernels masked, as `MaskedLSTM`."""


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedConvLSTM3D(_MaskedRecurrent, keras.layers.ConvLSTM3D):
    """`keras.layers.ConvLSTM3D` with its cell's kernels masked, as `MaskedLSTM`."""


_KERNELS = {"kernel": "recurrent_input", "recurrent_kernel": "recurrent"}


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedLSTMCell(MaskedLayer, keras.layers.LSTMCell):
    """`keras.layers.LSTMCell` whose `kernel` and `recurrent_kernel` are masked."""

    prunable_weights = _KERNELS


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedGRUCell(MaskedLayer, keras.layers.GRUCell):
    """`keras.layers.GRUCell` whose `kernel` and `recurrent_kernel` are masked."""

    prunable_weights = _KERNELS


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedSimpleRNNCell(MaskedLayer, keras.layers.SimpleRNNCell):
    """`keras.layers.SimpleRNNCell` whose `kernel` and `recurrent_kernel` are masked."""

    prunable_weights = _KERNELS
