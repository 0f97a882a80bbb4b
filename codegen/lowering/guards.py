"""The checking mode's half in native code: after every kernel of a step, the guard zones
around every buffer are compared with their pattern, and the first kernel that changed
one is recorded.

The runtime owns the buffers and their zones: it writes the address of a table of zone
pointers and its length into the state that ``kc_guard_state()`` returns
(``[table, count, first bad kernel or -1]``), and reads the third word after a call.
"""

from __future__ import annotations

from llvmlite import ir

from kcompile.codegen.loops import I64, PTR, abi_function, for_reduce, i64
from kcompile.ir import abi
from kcompile.ir.buffers import GUARD_BYTE, GUARD_BYTES

GUARD_STATE = abi.GUARD_STATE.symbol
_WORD = int.from_bytes(bytes([GUARD_BYTE]) * 8, "little", signed=True)


class Guards:
    """The state, its exported getter, and the check called after each kernel."""

    def __init__(self, module: ir.Module) -> None:
        state_type = ir.ArrayType(I64, 3)
        self.state = ir.GlobalVariable(module, state_type, "kc_guard_words")
        self.state.initializer = ir.Constant(state_type, [0, 0, -1])
        self.state.linkage = "internal"
        self.state.type = PTR  # llvmlite types globals as typed pointers; the module uses opaque
        getter = abi_function(module, abi.GUARD_STATE)
        ir.IRBuilder(getter.append_basic_block("entry")).ret(self.state)
        self.check = self._check_function(module, state_type)

    def _word(self, b: ir.IRBuilder, state_type, index: int):
        return b.gep(self.state, [i64(0), i64(index)], source_etype=state_type)

    def _check_function(self, module: ir.Module, state_type) -> ir.Function:
        fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [I64]), "kc_guard_check")
        fn.linkage = "internal"
        # Called after every kernel: inlined, its loops would be optimized once per call.
        fn.attributes.add("noinline")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        table = b.inttoptr(b.load(self._word(b, state_type, 0), typ=I64), PTR)
        count = b.load(self._word(b, state_type, 1), typ=I64)
        words = i64(GUARD_BYTES // 8)
        with for_reduce(b, count, [ir.Constant(I64, 0)], "zone") as (z, acc):
            zone = b.load(b.gep(table, [z], source_etype=PTR), typ=PTR)
            with for_reduce(b, words, [acc[0]], "word") as (w, inner):
                word = b.load(b.gep(zone, [w], source_etype=I64), typ=I64)
                inner[0] = b.or_(inner[0], b.xor(word, ir.Constant(I64, _WORD)))
            acc[0] = inner[0]
        failed = self._word(b, state_type, 2)
        first = b.icmp_signed("==", b.load(failed, typ=I64), i64(-1))
        changed = b.icmp_unsigned("!=", acc[0], i64(0))
        with b.if_then(b.and_(first, changed)):
            b.store(fn.args[0], failed)
        b.ret_void()
        return fn

    def after(self, b: ir.IRBuilder, kernel_index: int) -> None:
        b.call(self.check, [i64(kernel_index)])
