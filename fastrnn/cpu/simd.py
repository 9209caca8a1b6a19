"""One vector register as a Numba value, for the recurrent product's micro-kernel (product.py).

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

No bounds are checked: callers keep j + width within the row.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

REGISTER_BYTES = 32  # AVX2; on a narrower machine LLVM splits each value into two registers


class Vector(types.Type):
    def __init__(self, dtype):
        self.dtype = dtype
        self.width = REGISTER_BYTES * 8 // dtype.bitwidth
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


@intrinsic
def vzero(typingctx, arr):
    vt = Vector(arr.dtype)

    def codegen(context, builder, sig, args):
        return ir.Constant(context.get_value_type(vt), None)
    return vt(arr), codegen


@intrinsic
def vload(typingctx, row, j):
    if not (_is_row(row) and isinstance(j, types.Integer)):
        return None
    vt = Vector(row.dtype)

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(vt)
        return builder.load(_address(context, builder, sig.args[0], args[0], args[1], vty),
                            align=row.dtype.bitwidth // 8)
    return vt(row, j), codegen


@intrinsic
def vstore(typingctx, row, j, v):
    if not (_is_row(row) and isinstance(j, types.Integer) and isinstance(v, Vector) and v.dtype == row.dtype):
        return None

    def codegen(context, builder, sig, args):
        builder.store(args[2], _address(context, builder, sig.args[0], args[0], args[1], args[2].type),
                      align=row.dtype.bitwidth // 8)
        return context.get_dummy_value()
    return types.none(row, j, v), codegen


@intrinsic
def vfma(typingctx, acc, x, v):
    if not (isinstance(acc, Vector) and acc == v and isinstance(x, (types.Float, types.Integer))):
        return None

    def codegen(context, builder, sig, args):
        a, xs, y = args
        vty = a.type
        xs = context.cast(builder, xs, sig.args[1], acc.dtype)
        lanes = ir.Constant(ir.VectorType(ir.IntType(32), vty.count), [0] * vty.count)
        one = builder.insert_element(ir.Constant(vty, ir.Undefined), xs, ir.Constant(ir.IntType(32), 0))
        bx = builder.shuffle_vector(one, ir.Constant(vty, ir.Undefined), lanes)
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
