"""The names every layer accepts, and what --seq-len means per task, in one module that
imports nothing (the CLI reads them for ``--help`` without loading NumPy or Numba). Cells and
the initializations they accept are in fastrnn.cells, which is as light."""
TASKS = ("adding", "copy", "order", "order8", "agreement", "text", "mnist", "file")
OPTIMIZERS = ("sgd", "adam", "rmsprop", "adagrad")
DTYPES = ("float32", "float64")
DEVICES = ("cpu", "cuda")
LOSSES = ("mse", "ce")
OUTPUTS = ("all", "last")
SCHEDULES = ("constant", "cosine", "step", "plateau")

# What T (--seq-len) is for each task, and how many steps the network reads.
SEQ_LEN_MEANING = {
    "adding": "the sequence length (reads T steps)",
    "copy": "the blank gap before the recall (reads T + 20 steps)",
    "order": "the shortest sequence (lengths T to T + T/10, as the paper's 100-110)",
    "order8": "the shortest sequence (lengths T to T + T/10, as the paper's 100-110)",
    "agreement": "the clause between subject and verb (reads T + 1 steps)",
    "text": "the BPTT chunk (reads T steps per batch, the state carried on)",
    "mnist": "fixed: 784 pixels, one per step",
    "file": "fixed by the data file (its x; a CSV series: --window)",
}

# what `fastrnn report --y` plots from each evaluation record (the last three: fastrnn/watch.py)
REPORT_YS = ("metric", "loss", "train_loss", "lr", "radius", "timescale", "grad_ratio")
