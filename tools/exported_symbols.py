"""What a shared library exports and imports, from its dynamic symbol table (binutils' nm).

    python tools/exported_symbols.py path/to/_C.so     # prints counts, then every unexpected export
    python tools/exported_symbols.py --bindings path/to/_C.so ld_debug.txt
        # where the module's std:: references bound, from LD_DEBUG=bindings output

Used by tests/test_build.py, tools/cuda_compile_check.py and tools/gpu_smoke.sh. The module must export
its init function and nothing else (cmake/exports.map); nm's linker-defined markers (_edata, _end,
__bss_start) are symbols too and are counted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

INIT_SYMBOL = "PyInit__C"


def _nm(path: Path, *flags: str) -> list[tuple[str, str]]:
    """(type letter, mangled name) for each dynamic symbol nm lists with these flags."""
    out = subprocess.run(["nm", "-D", *flags, str(path)], check=True, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            rows.append((parts[-2], parts[-1]))
    return rows


def defined(path: Path) -> list[tuple[str, str]]:
    return _nm(path, "--defined-only")


def undefined(path: Path) -> list[tuple[str, str]]:
    return _nm(path, "--undefined-only")


def demangle(names: list[str]) -> list[str]:
    if not names:
        return []
    out = subprocess.run(["c++filt"], input="\n".join(names), check=True, capture_output=True, text=True).stdout
    return out.splitlines()


def is_std(names: list[str]) -> list[bool]:
    """Whether each symbol is libstdc++ code or data: std:: functions and objects, and the typeinfo,
    vtable or guard of a std:: class (not of a function type that merely returns one)."""
    prefixes = ("typeinfo for ", "typeinfo name for ", "vtable for ", "VTT for ", "guard variable for ")
    flags = []
    for d in demangle(names):
        rest = next((d[len(p) :] for p in prefixes if d.startswith(p)), None)
        flags.append(d.startswith("std::") if rest is None else rest.startswith("std::") and not rest.endswith(")"))
    return flags


def unexpected_exports(path: Path) -> list[str]:
    """Every defined dynamic symbol but the init function, demangled."""
    names = [name for _, name in defined(path) if name != INIT_SYMBOL]
    return demangle(names)


def summary(path: Path) -> str:
    d = [name for _, name in defined(path)]
    u = [name for _, name in undefined(path)]
    return (
        f"{len(d)} defined ({sum(is_std(d))} std::), {len(u)} imported ({sum(is_std(u))} std::), "
        f"{len(unexpected_exports(path))} exported besides {INIT_SYMBOL}"
    )


def bindings(ld_debug: str, lib: Path) -> list[tuple[str, str]]:
    """(symbol, file name of the library it bound to) for each of lib's references in LD_DEBUG=bindings output."""
    rows = []
    for line in ld_debug.splitlines():
        # "<pid>: binding file <lib> [0] to <target> [0]: normal symbol `<name>' [<version>]"
        if f"binding file {lib} " in line and "symbol `" in line:
            target = line.split(" to ", 1)[1].split(" [", 1)[0]
            rows.append((line.split("symbol `", 1)[1].split("'", 1)[0], Path(target).name))
    return rows


def std_bound_elsewhere(rows: list[tuple[str, str]]) -> tuple[int, list[tuple[str, str]]]:
    """How many std:: references bound to libstdc++, and (symbol, library) for those that bound anywhere else:
    torch's libraries export statically linked copies of some libstdc++ code (pytorch issue 109923)."""
    std = is_std([name for name, _ in rows])
    to_libstdcxx = sum(s and lib.startswith("libstdc++") for (_, lib), s in zip(rows, std))
    return to_libstdcxx, sorted({row for row, s in zip(rows, std) if s and not row[1].startswith("libstdc++")})


if __name__ == "__main__":
    if sys.argv[1] == "--bindings":
        lib = Path(sys.argv[2])
        rows = bindings(Path(sys.argv[3]).read_text(errors="replace"), lib)
        good, elsewhere = std_bound_elsewhere(rows)
        print(
            f"std:: bindings of {lib.name}: {len(rows)} references bound, "
            f"std:: to libstdc++ {good}, elsewhere {len(elsewhere)}"
        )
        for name, target in elsewhere:
            print(f"  {demangle([name])[0]} -> {target}")
    else:
        lib = Path(sys.argv[1])
        print(f"{lib.name}: {summary(lib)}")
        for name in unexpected_exports(lib):
            print(f"  exports {name}")
