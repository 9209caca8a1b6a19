"""One vector register as a Numba value: the recurrent product's micro-kernel (product.py) and
the float32 pointwise loops of the gated cells (lstm.py, gru.py, lnlstm.py).

LLVM vectorizes a loop that sums along a contiguous axis (a dot product), but not the other
shape of a matrix product: a tile of the output kept in registers while a k loop adds
broadcast(a[i, k]) * w[k, j:j+8] into it. Written with scalars it stays scalar (64 scalar
FMAs, measured 3 GFLOP/s); written against the output array it loads and stores the tile on
every k (15 GFLOP/s: nothing tells LLVM the arrays do not overlap). So the tile is written with
this type: a value whose LLVM type is a vector of one register's width (8 float32 or 4
float64 for AVX2's 32 bytes); the k loop's accumulators become vector registers and every
update one FMA instruction.

    vwidth(arr)          lanes per register for arr's dtype (a compile-time constant)
    vzero(arr)           a register of zeros of arr's dtype
    vload(row, j)        row[j : j + width]; row a C-contiguous 1-D array, j + width <= len
    vstore(row, j, v)    row[j : j + width] = v
    vfma(acc, x, v)      acc + x * v, x a scalar broadcast to every lane
    vadd(a, b), vget(v, lane)
    + - * /              between registers, or a register and a scalar (broadcast)
    vsum(v)              the lanes' sum, as a tree of halves (the same bits on every run)
    pload(row, j), pzero(arr)   as vload and vzero, POINTWISE_BYTES wide (16 float32 lanes)
    vsplit(u0, u1, arr)  (stop, V): pload's registers cover [u0, stop) in steps of V, scalars
                         the rest; V = 16 for float32, and for any other dtype stop = u0
    tanh, sigmoid, one_like, zero_like (cells/_math.py) take these values too: float32 lanes
                         its rational tanh, the same bits as on a scalar; float64, libm per lane

So a cell's pointwise step is written once, as a function of values that are either one unit
or a register of units (lstm.py's _unit_grads, for one), and called from both loops.

Why the pointwise loops: LLVM vectorizes them itself, but on this AVX-512 machine it picks 16
lanes unrolled 4 times (its remarks: width 16, interleave 4), 64 units a pass, so a row of 32
units runs wholly in the scalar remainder loop. Written with these values the LSTM's backward
pointwise part at H = 32 took 0.8 ns a unit against 2.0 (in isolation; the kernels' own
timings are in bench/PROFILE.md). A kernel loops over values on [u0, stop) (vsplit), then
over the remaining units as scalars: float64 (stop = u0) keeps the scalar loop whole, with
libm's tanh and exp. The results do not depend on the thread count: a row kernel's units
start at 0, and the column split cuts on multiples of COL_ALIGN = 16 (config.py), so a unit
falls in the same part (registers or scalars) however many threads share the row. Each loop
reads and writes few rows: one loop over all four of the LSTM's gates and its state kept 16
row addresses live, more than the CPU's registers (its forward at H = 128 was 5% slower than
LLVM's loops).

Numba's cache does not follow these functions into the kernels that inline them: after
changing one, clear the kernels' cache (``find fastrnn -name '*.nb[ic]' -delete``).

No bounds are checked: callers keep j + width within the row.
"""
import operator

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, overload, register_jitable, register_model

from ..config import FASTMATH
from ..cells._math import Lanes, clamp, sigmoid, tanh

REGISTER_BYTES = 32  # AVX2; on a narrower machine LLVM splits each value into two registers


class Vector(Lanes):
    def __init__(self, dtype, nbytes=REGISTER_BYTES):
        self.dtype = dtype
        self.width = nbytes * 8 // dtype.bitwidth
        super().__init__(name=f"Vector({dtype} x {self.width})")


@register_model(Vector)
class _VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        lane = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(lane, fe_type.width))


def _is_row(arr):
    return isinstance(arr, types.Array) and arr.ndim == 1 and arr.layout == "C" and isinstance(arr.dtype, types.Float)


def _address(context, builder, aty, aval, j, vty):
    data = context.make_array(aty)(context, builder, aval).data
    return builder.bitcast(builder.gep(data, [j]), vty.as_pointer())


@intrinsic
def vwidth(typingctx, arr):
    width = REGISTER_BYTES * 8 // arr.dtype.bitwidth

    def codegen(context, builder, sig, args):
        return context.get_constant(types.intp, width)
    return types.intp(arr), codegen


def _zeros(nbytes):
    """A register of nbytes of zeros in arr's dtype, as an intrinsic."""
    @intrinsic
    def zeros(typingctx, arr):
        vt = Vector(arr.dtype, nbytes)

        def codegen(context, builder, sig, args):
            return ir.Constant(context.get_value_type(vt), None)
        return vt(arr), codegen
    return zeros


def _loader(nbytes):
    """row[j : j + lanes] as a register of nbytes, as an intrinsic."""
    @intrinsic
    def load(typingctx, row, j):
        if not (_is_row(row) and isinstance(j, types.Integer)):
            return None
        vt = Vector(row.dtype, nbytes)

        def codegen(context, builder, sig, args):
            vty = context.get_value_type(vt)
            return builder.load(_address(context, builder, sig.args[0], args[0], args[1], vty),
                                align=row.dtype.bitwidth // 8)
        return vt(row, j), codegen
    return load


vzero, vload = _zeros(REGISTER_BYTES), _loader(REGISTER_BYTES)


@intrinsic
def vstore(typingctx, row, j, v):
    if not (_is_row(row) and isinstance(j, types.Integer) and isinstance(v, Vector) and v.dtype == row.dtype):
        return None

    def codegen(context, builder, sig, args):
        builder.store(args[2], _address(context, builder, sig.args[0], args[0], args[1], args[2].type),
                      align=row.dtype.bitwidth // 8)
        return context.get_dummy_value()
    return types.none(row, j, v), codegen


POINTWISE_BYTES = 64  # the pointwise loops' values: one AVX-512 register, two AVX2 ones
pload, pzero = _loader(POINTWISE_BYTES), _zeros(POINTWISE_BYTES)
pstore = vstore  # stores any Vector of the row's dtype


def _splat(builder, x, vty):
    lanes = ir.Constant(ir.VectorType(ir.IntType(32), vty.count), [0] * vty.count)
    one = builder.insert_element(ir.Constant(vty, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(vty, ir.Undefined), lanes)


@intrinsic
def vfma(typingctx, acc, x, v):
    if not (isinstance(acc, Vector) and acc == v and isinstance(x, (types.Float, types.Integer))):
        return None

    def codegen(context, builder, sig, args):
        a, xs, y = args
        vty = a.type
        bx = _splat(builder, context.cast(builder, xs, sig.args[1], acc.dtype), vty)
        name = f"llvm.fmuladd.v{vty.count}f{acc.dtype.bitwidth}"  # a fused multiply-add where the CPU has one
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3), name)
        return builder.call(fn, [bx, y, a])
    return acc(acc, x, v), codegen


@intrinsic
def vadd(typingctx, a, b):
    if not (isinstance(a, Vector) and a == b):
        return None

    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], args[1])
    return a(a, b), codegen


@intrinsic
def vget(typingctx, v, lane):
    if not (isinstance(v, Vector) and isinstance(lane, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        return builder.extract_element(args[0], args[1])
    return v.dtype(v, lane), codegen


@intrinsic
def _lanes32(typingctx, arr):
    width = POINTWISE_BYTES * 8 // 32 if arr.dtype == types.float32 else 0

    def codegen(context, builder, sig, args):
        return context.get_constant(types.intp, width)
    return types.intp(arr), codegen


@register_jitable
def vsplit(u0, u1, arr):
    V = _lanes32(arr)
    if V == 0:
        return u0, 1
    return u1 - (u1 - u0) % V, V


_FLAGS = tuple(sorted(FASTMATH))  # the scalar kernels' flags (config.FASTMATH), so both round alike


def _arith(op):
    """A lane-wise operation as an intrinsic: register op register, scalar op register or
    register op scalar (the scalar cast to the lanes' dtype and broadcast). 'contract' lets
    LLVM fuse a product into the sum that takes it, as the scalar kernels' flags do."""
    @intrinsic
    def lanewise(typingctx, a, b):
        vec = a if isinstance(a, Vector) else b
        if not isinstance(vec, Vector):
            return None
        for x in (a, b):
            if not (x == vec or isinstance(x, (types.Float, types.Integer))):
                return None

        def codegen(context, builder, sig, args):
            vty = context.get_value_type(vec)
            ops = [v if t == vec else _splat(builder, context.cast(builder, v, t, vec.dtype), vty)
                   for v, t in zip(args, sig.args)]
            return getattr(builder, op)(ops[0], ops[1], flags=_FLAGS)
        return vec(a, b), codegen
    return lanewise


_vadd, _vsub, _vmul, _vdiv = _arith("fadd"), _arith("fsub"), _arith("fmul"), _arith("fdiv")


def _operator(op, fn):
    @overload(op)
    def _ov(a, b):
        if isinstance(a, Vector) or isinstance(b, Vector):
            return lambda a, b: fn(a, b)


for _op, _fn in ((operator.add, _vadd), (operator.sub, _vsub), (operator.mul, _vmul), (operator.truediv, _vdiv)):
    _operator(_op, _fn)


@intrinsic
def _clamp(typingctx, v, lo, hi):
    """min(max(v, lo), hi) lane by lane, as _math's scalar clamp: a NaN lane stays NaN."""
    if not isinstance(v, Vector):
        return None

    def codegen(context, builder, sig, args):
        vty = args[0].type
        lo_v = _splat(builder, context.cast(builder, args[1], sig.args[1], v.dtype), vty)
        hi_v = _splat(builder, context.cast(builder, args[2], sig.args[2], v.dtype), vty)
        x = builder.select(builder.fcmp_ordered("<", args[0], lo_v), lo_v, args[0])
        return builder.select(builder.fcmp_ordered(">", x, hi_v), hi_v, x)
    return v(v, lo, hi), codegen


@overload(clamp, inline="always")
def _ov_clamp(v, lo, hi):  # with it, _math's tanh and sigmoid take a register of float32
    if isinstance(v, Vector):
        return lambda v, lo, hi: _clamp(v, lo, hi)


@intrinsic
def vsum(typingctx, v):
    """The lanes' sum as a tree, halves added until one lane is left (16 lanes: 4 dependent
    adds, where a lane-by-lane chain is 15); a fixed order, so the same bits on every run."""
    if not isinstance(v, Vector):
        return None

    def codegen(context, builder, sig, args):
        x, n = args[0], v.width
        while n > 1:
            n //= 2
            lo = builder.shuffle_vector(x, x, ir.Constant(ir.VectorType(ir.IntType(32), n), list(range(n))))
            hi = builder.shuffle_vector(x, x, ir.Constant(ir.VectorType(ir.IntType(32), n), list(range(n, 2 * n))))
            x = builder.fadd(lo, hi)
        return builder.extract_element(x, ir.Constant(ir.IntType(32), 0))
    return v.dtype(v), codegen



@intrinsic
def _vset(typingctx, v, lane, x):
    if not (isinstance(v, Vector) and isinstance(lane, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        return builder.insert_element(args[0], context.cast(builder, args[2], sig.args[2], v.dtype), args[1])
    return v(v, lane, x), codegen


# float64 lanes: _math's scalar functions (libm) lane by lane. The kernels never run them
# (vsplit sends float64 to the scalar loops), but their register loops are compiled for every
# dtype, so they must type.
def _lane_by_lane(fn):
    @overload(fn)
    def _ov(v):
        if isinstance(v, Vector) and v.dtype == types.float64:
            lanes = v.width

            def impl(v):
                out = v
                for k in range(lanes):
                    out = _vset(out, k, fn(vget(v, k)))
                return out
            return impl


_lane_by_lane(tanh)
_lane_by_lane(sigmoid)
