"""Sparse training inside one `fit`: callbacks that change a masked model's masks as it trains.

`schedules` says when and to what sparsity (tfmot's `ConstantSparsity` and
`PolynomialDecay`); `mask_updates` is what every such callback shares (when
masks change between compiled steps, how they and the optimizer's state are
written); `gradual` prunes on a schedule (Zhu & Gupta 2017); `dynamic`
keeps a fixed density and moves it (SET, RigL).
"""
