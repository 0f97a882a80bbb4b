"""A minimal linker-loader for the x86-64 ELF object files that codegen emits, so an
artifact built where no C compiler was found still loads with ctypes alone.

It handles what position-independent LLVM objects of kcompile contain: allocated
sections (code, constants, zeroed data) and ``R_X86_64_PC32``/``PLT32``
relocations; calls to functions defined elsewhere (the runtime's ``kc_*``, libc's
``pthread_create``, ``powf``...) go through jump stubs placed next to the code, so
every displacement stays within 32 bits. Anything else is refused with its name.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import struct
from collections.abc import Callable
from dataclasses import dataclass

SHT_RELA, SHT_NOBITS, SHT_SYMTAB = 4, 8, 2
SHF_WRITE, SHF_ALLOC = 0x1, 0x2
SHN_UNDEF, SHN_ABS = 0, 0xFFF1
STB_GLOBAL, STB_WEAK = 1, 2
R_X86_64_PC32, R_X86_64_PLT32 = 2, 4
STUB = b"\xff\x25\x00\x00\x00\x00"  # jmp [rip + 0], then the 8-byte target
SKIPPED = (".eh_frame",)  # unwinding tables: no exceptions cross this code


class ElfError(ValueError):
    """An object file this loader cannot (or will not) load."""


@dataclass
class _Section:
    name: str
    kind: int
    flags: int
    offset: int
    size: int
    link: int
    info: int
    align: int


@dataclass
class _Symbol:
    name: str
    value: int
    section: int
    binding: int


class LoadedObject:
    """An object file placed in executable memory; ``address(name)`` of a global symbol."""

    def __init__(self, data: bytes, resolve: Callable[[str], int], name: str = "object"):
        self.name = name
        sections, symbols = _parse(data, name)
        loaded = [
            i for i, s in enumerate(sections) if s.flags & SHF_ALLOC and s.name not in SKIPPED
        ]
        relocations = [s for s in sections if s.kind == SHT_RELA and s.info in loaded]
        externals = sorted(
            {
                symbols[r[1]].name
                for s in relocations
                for r in _relocations(data, s)
                if symbols[r[1]].section == SHN_UNDEF
            }
        )
        # Code, constants and stubs first (made read-only and executable), then, from a
        # page boundary on, the writable sections (the runtime's pool state).
        place, size = {}, 0
        for i in [i for i in loaded if not sections[i].flags & SHF_WRITE]:
            size = _align(size, max(sections[i].align, 1))
            place[i] = size
            size += sections[i].size
        stubs_at = _align(size, 16)
        size = code_size = stubs_at + 16 * len(externals)
        size = _align(size, mmap.PAGESIZE)
        for i in [i for i in loaded if sections[i].flags & SHF_WRITE]:
            size = _align(size, max(sections[i].align, 1))
            place[i] = size
            size += sections[i].size
        self._memory = mmap.mmap(-1, max(size, 1), prot=mmap.PROT_READ | mmap.PROT_WRITE)
        base = ctypes.addressof(ctypes.c_char.from_buffer(self._memory))
        for i in loaded:
            s = sections[i]
            if s.kind != SHT_NOBITS:
                self._memory[place[i] : place[i] + s.size] = data[s.offset : s.offset + s.size]
        stub = {}
        for k, external in enumerate(externals):
            at = stubs_at + 16 * k
            self._memory[at : at + 14] = STUB + struct.pack("<Q", resolve(external))
            stub[external] = base + at

        def value(sym: _Symbol) -> int:
            if sym.section == SHN_UNDEF:
                return stub[sym.name]
            if sym.section == SHN_ABS:
                return sym.value
            if sym.section not in place:
                raise ElfError(f"{name}: symbol {sym.name!r} is in a section that is not loaded")
            return base + place[sym.section] + sym.value

        for s in relocations:
            for where, symbol, kind, addend in _relocations(data, s):
                if kind not in (R_X86_64_PC32, R_X86_64_PLT32):
                    raise ElfError(f"{name}: relocation type {kind} is not supported")
                at = place[s.info] + where
                delta = value(symbols[symbol]) + addend - (base + at)
                if not -(2**31) <= delta < 2**31:
                    raise ElfError(f"{name}: a 32-bit displacement overflows")
                self._memory[at : at + 4] = struct.pack("<i", delta)
        self._symbols = {
            sym.name: value(sym)
            for sym in symbols
            if sym.binding in (STB_GLOBAL, STB_WEAK) and sym.section != SHN_UNDEF and sym.name
        }
        _protect(base, code_size)

    def address(self, symbol: str) -> int:
        if symbol not in self._symbols:
            raise KeyError(f"{self.name}: no symbol {symbol!r}")
        return self._symbols[symbol]

    def has(self, symbol: str) -> bool:
        return symbol in self._symbols


def system_symbol(name: str) -> int:
    """The address of a function of the C library (or libm) by name."""
    for library in _system_libraries():
        try:
            return ctypes.cast(getattr(library, name), ctypes.c_void_p).value
        except AttributeError:
            continue
    raise ElfError(f"the object code needs {name!r}, which no system library here has")


def _system_libraries() -> list[ctypes.CDLL]:
    libraries = [ctypes.CDLL(None)]
    for name in ("c", "m", "pthread"):
        path = ctypes.util.find_library(name)
        if path:
            libraries.append(ctypes.CDLL(path))
    return libraries


def _protect(address: int, size: int) -> None:
    """Make ``size`` bytes from the page-aligned ``address`` readable and executable,
    and no longer writable."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    length = _align(size, mmap.PAGESIZE)
    if libc.mprotect(address, length, mmap.PROT_READ | mmap.PROT_EXEC) != 0:
        raise OSError(ctypes.get_errno(), "mprotect refused executable memory")


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def _parse(data: bytes, name: str) -> tuple[list[_Section], list[_Symbol]]:
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ElfError(f"{name}: not a 64-bit little-endian ELF file")
    kind, machine = struct.unpack_from("<HH", data, 16)
    if kind != 1 or machine != 62:
        raise ElfError(f"{name}: not an x86-64 relocatable object (type {kind}, machine {machine})")
    (shoff,) = struct.unpack_from("<Q", data, 40)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 58)
    raw = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names = raw[shstrndx]
    sections = [
        _Section(_string(data, names[4] + r[0]), r[1], r[2], r[4], r[5], r[6], r[7], r[8])
        for r in raw
    ]
    symtab = next((s for s in sections if s.kind == SHT_SYMTAB), None)
    if symtab is None:
        raise ElfError(f"{name}: no symbol table")
    strings = sections[symtab.link].offset
    symbols = []
    for at in range(symtab.offset, symtab.offset + symtab.size, 24):
        st_name, info, _, shndx, value, _ = struct.unpack_from("<IBBHQQ", data, at)
        symbols.append(_Symbol(_string(data, strings + st_name), value, shndx, info >> 4))
    return sections, symbols


def _relocations(data: bytes, section: _Section):
    for at in range(section.offset, section.offset + section.size, 24):
        offset, info, addend = struct.unpack_from("<QQq", data, at)
        yield offset, info >> 32, info & 0xFFFFFFFF, addend


def _string(data: bytes, at: int) -> str:
    return data[at : data.index(b"\0", at)].decode()
