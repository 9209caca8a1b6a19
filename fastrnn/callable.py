"""Let a package module answer a call: ``fastrnn.train(...)`` and ``fastrnn.compare(...)``.

`fastrnn.train` is a subpackage (the step loop, checkpoints, optimizers) and `fastrnn.compare`
a module, and Python binds a submodule to its parent's attribute on import, so top-level
functions of those names would be shadowed the moment anything imported the modules. Instead
the modules themselves are callable: their ``__call__`` is the public function (fastrnn.api),
and every submodule and name inside them stays where it is.
"""
import sys
import types


def make_callable(module_name, fn):
    """Make sys.modules[module_name] callable as fn (its help: the module's docstring)."""
    module = sys.modules[module_name]

    class CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return fn(*args, **kwargs)

    CallableModule.__call__.__doc__ = fn.__doc__
    module.__class__ = CallableModule
