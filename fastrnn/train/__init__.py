"""Training: optimizers, clipping, checkpoints and the step loop.

Calling it trains one model: ``fastrnn.train(out, **options)`` is fastrnn.api.train (options are
`fastrnn train`'s, with underscores; returns the run's summary dict).
"""


def _train(out, config=None, resume=False, progress=None, **options):
    from ..api import train

    return train(out, config, resume, progress, **options)


from ..callable import make_callable  # noqa: E402

make_callable(__name__, _train)
