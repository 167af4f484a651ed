"""What Linear Learner's compiled kernels share: how they are compiled, and a prefetch.

>>> import numpy as np
>>> @jit
... def first_after_prefetch(a):
...     prefetch(a, 0)
...     return a[0]
>>> float(first_after_prefetch(np.ones(4, np.float32)))
1.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
from llvmlite import ir  # type: ignore[import-untyped]
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["jit", "prefetch"]

F = TypeVar("F", bound=Callable[..., Any])

#: No GIL (the read-ahead thread parses meanwhile); numpy's error model, because Python's
#: adds a ZeroDivisionError check to every division, and loops with one do not vectorise.
_OPTIONS: dict[str, Any] = {"nogil": True, "error_model": "numpy"}


def jit(fn: F) -> F:
    """Compiled on first call and cached on disk (beside this package, else in the user's
    cache), so that only the first process on a machine pays the compilation."""
    try:
        return numba.njit(**_OPTIONS, cache=True)(fn)  # type: ignore[no-any-return]
    except RuntimeError:  # no writable cache directory anywhere: compile once per process
        return numba.njit(**_OPTIONS)(fn)  # type: ignore[no-any-return]


def _prefetch(typingctx: Any, array: Any, offset: Any) -> Any:
    """Ask the CPU to bring the cache line of element ``offset`` of the C-contiguous
    ``array`` (counted as if flat) into cache, for writing: a hint, never a fault. Rows of a
    wide table picked at random miss every cache level; asked for a few rows ahead, they
    arrive while the rows before are computed (half the time of a lazy Adam update)."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        kind = signature.args[0]
        data = context.make_array(kind)(context, builder, args[0]).data
        at = context.cast(builder, args[1], signature.args[1], types.intp)
        size = context.get_abi_sizeof(context.get_data_type(kind.dtype))
        address = builder.add(
            builder.ptrtoint(data, cgutils.intp_t), builder.mul(at, cgutils.intp_t(size))
        )
        pointer = builder.inttoptr(address, cgutils.voidptr_t)
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [cgutils.voidptr_t, i32, i32, i32])
        fn = builder.module.declare_intrinsic("llvm.prefetch", [cgutils.voidptr_t], fnty)
        builder.call(fn, [pointer, i32(1), i32(3), i32(1)])  # write, keep, data cache
        return context.get_dummy_value()

    return types.void(array, offset), codegen


prefetch = cast(Callable[[Any, Any], None], intrinsic(_prefetch))
