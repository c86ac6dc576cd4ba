"""Just enough ELF to put uprobes on a library's exported functions: the file offsets of named
function symbols (``.dynsym``, else ``.symtab`` of an unstripped binary with OpenSSL linked in
statically), the ``DT_NEEDED`` names, and the first bytes of a function's code.

64-bit little-endian ELF only (x86-64, aarch64: the machines the probe program is built for);
anything else raises :class:`ElfError` with one line.  The file is read, never executed or
mapped into this process as code.
"""
from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field

__all__ = ["ElfError", "ElfFile", "read_elf", "EM_X86_64", "EM_AARCH64"]

EM_X86_64, EM_AARCH64 = 62, 183
SHT_SYMTAB, SHT_DYNAMIC, SHT_DYNSYM = 2, 6, 11
STT_FUNC, STT_GNU_IFUNC = 2, 10
DT_NEEDED = 1
#: bound on what is read (a 200 MB binary is not a library we probe)
MAX_FILE = 512 << 20

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_DYN = struct.Struct("<qQ")


class ElfError(Exception):
    """Not an ELF file this module reads (one-line ``str()``)."""


@dataclass
class ElfFile:
    path: str
    machine: int
    #: function name -> file offset of its first instruction (defined functions only)
    functions: dict[str, int] = field(default_factory=dict)
    needed: list[str] = field(default_factory=list)
    #: (device, inode): one file however many paths lead to it
    identity: tuple[int, int] = (0, 0)
    _code: dict[str, bytes] = field(default_factory=dict, repr=False)

    def code(self, name: str) -> bytes:
        """The first bytes (up to 16) of function ``name``'s code (b"" if unknown)."""
        return self._code.get(name, b"")


def _cstr(blob: bytes | mmap.mmap, off: int) -> str:
    end = blob.find(b"\0", off)
    if end < 0:
        raise ElfError("unterminated string")
    return bytes(blob[off:end]).decode("utf-8", "replace")


def read_elf(path: str, wanted: frozenset[str] | set[str] | None = None) -> ElfFile:
    """Parse ``path``; keep the offsets (and the first code bytes) of the functions in
    ``wanted`` (all functions when None)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise ElfError("%s: %s" % (path, exc.strerror)) from None
    try:
        st = os.fstat(fd)
        if st.st_size < _EHDR.size or st.st_size > MAX_FILE:
            raise ElfError("%s: not an ELF library (size %d)" % (path, st.st_size))
        with mmap.mmap(fd, st.st_size, prot=mmap.PROT_READ) as m:
            out = _parse(path, m, wanted)
        out.identity = (st.st_dev, st.st_ino)
        return out
    except (struct.error, IndexError, ValueError) as exc:
        raise ElfError("%s: malformed ELF (%s)" % (path, exc)) from None
    finally:
        os.close(fd)


def _parse(path: str, m: mmap.mmap, wanted) -> ElfFile:
    (ident, _type, machine, _v, _entry, _phoff, shoff, _flags, _ehsize, _phentsize, _phnum,
     shentsize, shnum, shstrndx) = _EHDR.unpack_from(m, 0)
    if ident[:4] != b"\x7fELF":
        raise ElfError("%s: not an ELF file" % path)
    if ident[4] != 2 or ident[5] != 1:
        raise ElfError("%s: not a 64-bit little-endian ELF file" % path)
    if shoff == 0 or shnum == 0 or shentsize < _SHDR.size:
        raise ElfError("%s: no section headers" % path)
    size = len(m)
    secs = []
    for i in range(shnum):
        off = shoff + i * shentsize
        if off + _SHDR.size > size:
            raise ElfError("%s: section header %d past the end" % (path, i))
        secs.append(_SHDR.unpack_from(m, off))
    out = ElfFile(path, machine)
    by_type: dict[int, list] = {}
    for s in secs:
        by_type.setdefault(s[1], []).append(s)
    # .dynsym (exported) first; .symtab adds what a static link kept
    for sym_type in (SHT_DYNSYM, SHT_SYMTAB):
        for s in by_type.get(sym_type, ()):
            _symbols(m, s, secs, out, wanted)
    for s in by_type.get(SHT_DYNAMIC, ()):
        strtab = secs[s[6]] if s[6] < len(secs) else None
        if strtab is None:
            continue
        end = min(s[4] + s[5], size)
        for off in range(s[4], end - _DYN.size + 1, _DYN.size):
            tag, val = _DYN.unpack_from(m, off)
            if tag == 0:
                break
            if tag == DT_NEEDED and strtab[4] + val < size:
                out.needed.append(_cstr(m, strtab[4] + val))
    return out


def _symbols(m: mmap.mmap, s, secs, out: ElfFile, wanted) -> None:
    _name, _t, _f, _addr, offset, sz, link, _info, _align, entsize = s
    if link >= len(secs) or entsize < _SYM.size:
        return
    stroff = secs[link][4]
    size = len(m)
    end = min(offset + sz, size)
    for off in range(offset, end - _SYM.size + 1, entsize):
        st_name, st_info, _other, shndx, value, _ssize = _SYM.unpack_from(m, off)
        if st_info & 0xF not in (STT_FUNC, STT_GNU_IFUNC) or shndx == 0 or shndx >= len(secs):
            continue
        name = _cstr(m, stroff + st_name)
        if (wanted is not None and name not in wanted) or name in out.functions:
            continue
        sec = secs[shndx]
        addr, foff = sec[3], sec[4]
        if not addr <= value < addr + sec[5]:
            continue
        fo = value - addr + foff
        out.functions[name] = fo
        out._code[name] = bytes(m[fo:fo + 16])
