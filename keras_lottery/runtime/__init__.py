"""What runs under everything: devices and replicas (`distribution`), compile
settings (`speed`), each backend's autodiff (`autodiff`) and evaluation outside
`model.evaluate` (`evaluation`). The package's backend-specific code lives here
and in `keras_lottery._keras` (private Keras API).
"""
