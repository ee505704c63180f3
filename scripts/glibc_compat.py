"""Make manylinux_2_39 extension modules load on an older glibc/libstdc++ host.

ml-metadata 1.21 and tensorflow-data-validation 1.21 ship only manylinux_2_39 wheels, but
they use just a handful of symbols newer than Debian 12 (glibc 2.36, GCC 12) provides.
For each extension module this script:

1. clears the version of every undefined symbol bound to a version the host lacks
   (``patchelf --clear-symbol-version``), so the loader resolves it by name;
2. marks those missing version needs weak (``VER_FLG_WEAK`` in ``.gnu.version_r``), so the
   loader no longer refuses the module for them;
3. links a tiny shim library that defines the few symbols absent on the host.

It does nothing on hosts that already provide the versions (the check runs first), and it
is idempotent: a patched module has no missing needs left and is skipped.

Modules are patched on a private copy that then replaces the installed file: installers
hard-link files from their cache, and patching in place would corrupt the cached wheel for
every later environment. A module that already names the shim (for instance one taken from
such a corrupted cache) gets the shim built beside it.
"""

from __future__ import annotations

import argparse
import ctypes.util
import importlib.util
import pathlib
import shutil
import struct
import subprocess
import sys

SHIM_NAME = "libusermodel_glibc_shim.so"
SHIM_SOURCE = r"""
/* Symbols that manylinux_2_39 modules import but glibc 2.36 / GCC 12 lack. */
#include <stdlib.h>
extern void _ZSt9terminatev(void) __attribute__((noreturn));     /* std::terminate() */
void __cxa_call_terminate(void *exception) { (void)exception; _ZSt9terminatev(); }
/* std::ios_base_library_init(): GCC 13 moved iostream init here; GCC 12 does it itself. */
void _ZSt21ios_base_library_initv(void) {}
/* C23 variants differ only in accepting 0b prefixes, which these modules never parse. */
long __isoc23_strtol(const char *s, char **e, int b) { return strtol(s, e, b); }
long long __isoc23_strtoll(const char *s, char **e, int b) { return strtoll(s, e, b); }
unsigned long __isoc23_strtoul(const char *s, char **e, int b) { return strtoul(s, e, b); }
unsigned long long __isoc23_strtoull(const char *s, char **e, int b) { return strtoull(s, e, b); }
"""
VER_FLG_WEAK = 0x2
# (package, extension module path inside the package)
TARGETS = [
    ("ml_metadata", "metadata_store/pywrap/metadata_store_extension.so"),
    ("tensorflow_data_validation", "pywrap/tensorflow_data_validation_extension.so"),
]


def _library_versions(name: str) -> set[str]:
    """Version definitions a host library exports (e.g. GLIBC_2.36), read from its file."""
    path = ctypes.util.find_library(name)
    found = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    for line in found.splitlines():
        if path and line.strip().startswith(path) and "x86-64" in line:
            path = line.split("=>")[-1].strip()
            break
    data = pathlib.Path(path).read_bytes()
    return {t.decode() for t in _version_tokens(data)}


def _version_tokens(data: bytes) -> set[bytes]:
    import re

    return set(re.findall(rb"(?:GLIBC|GLIBCXX|CXXABI|GCC)_[0-9.]+(?=\x00)", data))


def _sections(data: bytes) -> dict[str, tuple[int, int, int, int]]:
    """Section name -> (offset, size, link, info) for a 64-bit little-endian ELF."""
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names_off = headers[shstrndx][4]
    out = {}
    for h in headers:
        name_end = data.index(b"\0", names_off + h[0])
        out[data[names_off + h[0]:name_end].decode()] = (h[4], h[5], h[6], h[7])
    return out


def _version_needs(data: bytes):
    """Yield (file offset of the Vernaux entry, version name, flags) from .gnu.version_r."""
    secs = _sections(data)
    off, _, link, count = secs[".gnu.version_r"]
    dynstr_off = _dynstr_offset(data, link)
    entry = off
    for _ in range(count):
        _, cnt, _, aux, nxt = struct.unpack_from("<HHIII", data, entry)
        aux_off = entry + aux
        for _ in range(cnt):
            _, flags, _, name, anext = struct.unpack_from("<IHHII", data, aux_off)
            end = data.index(b"\0", dynstr_off + name)
            yield aux_off, data[dynstr_off + name:end].decode(), flags
            aux_off += anext
        entry += nxt


def _dynstr_offset(data: bytes, section_index: int) -> int:
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, = struct.unpack_from("<H", data, 0x3A)
    return struct.unpack_from("<IIQQQQIIQQ", data, shoff + section_index * shentsize)[4]


def _missing_needs(path: pathlib.Path, host: set[str]) -> list[tuple[int, str, int]]:
    data = path.read_bytes()
    return [n for n in _version_needs(data) if n[1] not in host and not n[2] & VER_FLG_WEAK]


def _undefined_symbols_with_versions(path: pathlib.Path, versions: set[str]) -> list[str]:
    dump = subprocess.run(["objdump", "-T", str(path)], capture_output=True, text=True, check=True)
    names = []
    for line in dump.stdout.splitlines():
        parts = line.split()
        if "*UND*" in parts and len(parts) >= 2:
            version = parts[-2].strip("()")
            if version in versions:
                names.append(parts[-1])
    return names


def _build_shim(dest_dir: pathlib.Path) -> pathlib.Path:
    shim = dest_dir / SHIM_NAME
    src = dest_dir / "usermodel_glibc_shim.c"
    src.write_text(SHIM_SOURCE)
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(shim), str(src), "-lstdc++"], check=True)
    src.unlink()
    return shim


def _needs_shim(path: pathlib.Path) -> bool:
    """Whether the module lists the shim among its DT_NEEDED libraries."""
    dump = subprocess.run(["objdump", "-p", str(path)], capture_output=True, text=True, check=True)
    return any(line.split()[-1:] == [SHIM_NAME] for line in dump.stdout.splitlines() if "NEEDED" in line)


def patch_module(path: pathlib.Path, host: set[str], patchelf: str) -> bool:
    """Patch one extension module; returns False when it needed nothing."""
    missing = _missing_needs(path, host)
    if not missing:
        if _needs_shim(path) and not (path.parent / SHIM_NAME).exists():
            print(f"  {path.name} was patched before: building its shim library")
            _build_shim(path.parent)
            return True
        return False
    versions = {name for _, name, _ in missing}
    print(f"  patching {path.name}: host lacks {', '.join(sorted(versions))}")
    work = path.with_name(path.name + ".patching")
    shutil.copyfile(path, work)  # a new inode: the installer's cache keeps the original
    for sym in _undefined_symbols_with_versions(work, versions):
        subprocess.run([patchelf, "--clear-symbol-version", sym, str(work)], check=True)
    data = bytearray(work.read_bytes())  # patchelf rewrote the file: re-read the offsets
    for aux_off, name, flags in _version_needs(bytes(data)):
        if name in versions:
            struct.pack_into("<H", data, aux_off + 4, flags | VER_FLG_WEAK)
    work.write_bytes(bytes(data))
    _build_shim(path.parent)
    subprocess.run([patchelf, "--add-needed", SHIM_NAME, str(work)], check=True)
    subprocess.run([patchelf, "--add-rpath", "$ORIGIN", str(work)], check=True)
    shutil.copymode(path, work)
    work.replace(path)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patchelf", default=shutil.which("patchelf") or "patchelf")
    args = parser.parse_args()
    host = _library_versions("c") | _library_versions("stdc++") | _library_versions("gcc_s")
    for package, relative in TARGETS:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            print(f"  {package}: not installed, nothing to patch")
            continue
        module = pathlib.Path(list(spec.submodule_search_locations)[0]) / relative
        changed = patch_module(module, host, args.patchelf)
        if not changed:
            print(f"  {package}: loads on this host as is")
    return 0


if __name__ == "__main__":
    sys.exit(main())
