"""The names every layer accepts, in one module that imports nothing (the CLI reads them for
``--help`` without loading NumPy or Numba). Cells are in fastrnn.cells, which is as light."""
TASKS = ("adding", "copy", "order", "agreement", "text", "mnist")
OPTIMIZERS = ("sgd", "adam", "rmsprop", "adagrad")
INITS = ("pytorch", "xavier", "orthogonal", "irnn")
DTYPES = ("float32", "float64")
DEVICES = ("cpu", "cuda")
LOSSES = ("mse", "ce")
OUTPUTS = ("all", "last")
