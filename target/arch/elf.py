"""Which architecture a file was built for, read from its ELF header.

Only the header is read: e_ident (magic, EI_CLASS, EI_DATA), e_machine and e_flags.
"""

import struct

ELF_MAGIC = b"\x7fELF"
ELFCLASS32 = 1
ELFCLASS64 = 2
ELFDATA2LSB = 1
ELFDATA2MSB = 2

EM_386 = 3
EM_ARM = 40
EM_X86_64 = 62
EM_AARCH64 = 183
EM_RISCV = 243

EF_ARM_ABI_FLOAT_HARD = 0x400

# header sizes and the offset of e_flags, per EI_CLASS
_HEADER_SIZE = {ELFCLASS32: 52, ELFCLASS64: 64}
_FLAGS_OFFSET = {ELFCLASS32: 36, ELFCLASS64: 48}
E_MACHINE_OFFSET = 18


def elf_header(path):
    """Return {"bits", "endian", "machine", "flags"} from the ELF header of path.

    Raises ValueError naming the file when it is not a complete ELF header.
    """
    with open(path, "rb") as f:
        data = f.read(64)
    return parse_header(data, path)


def parse_header(data, name="<data>"):
    if len(data) < 6:
        raise ValueError("%s: not an ELF file: only %d bytes" % (name, len(data)))
    if data[:4] != ELF_MAGIC:
        raise ValueError("%s: not an ELF file: magic %r, want %r" % (name, data[:4], ELF_MAGIC))
    elf_class, elf_data = data[4], data[5]
    if elf_class not in _HEADER_SIZE:
        raise ValueError("%s: bad ELF class %d (want 1 or 2)" % (name, elf_class))
    if elf_data not in (ELFDATA2LSB, ELFDATA2MSB):
        raise ValueError("%s: bad ELF data encoding %d (want 1 or 2)" % (name, elf_data))
    need = _HEADER_SIZE[elf_class]
    if len(data) < need:
        raise ValueError("%s: truncated ELF header: %d bytes, want %d" % (name, len(data), need))
    order = "<" if elf_data == ELFDATA2LSB else ">"
    (machine,) = struct.unpack_from(order + "H", data, E_MACHINE_OFFSET)
    (flags,) = struct.unpack_from(order + "I", data, _FLAGS_OFFSET[elf_class])
    return {
        "bits": 32 if elf_class == ELFCLASS32 else 64,
        "endian": "little" if elf_data == ELFDATA2LSB else "big",
        "machine": machine,
        "flags": flags,
    }


def arch_name(header):
    """Our name for the architecture an ELF header describes."""
    machine, bits = header["machine"], header["bits"]
    if machine == EM_X86_64:
        return "x86_64" if bits == 64 else "x32"
    if machine == EM_386:
        return "i386"
    if machine == EM_AARCH64:
        return "aarch64"
    if machine == EM_ARM:
        return "armhf" if header["flags"] & EF_ARM_ABI_FLOAT_HARD else "armel"
    if machine == EM_RISCV:
        return "riscv64" if bits == 64 else "riscv32"
    return "unknown:%d" % machine


def elf_arch(path):
    """Architecture name of the ELF file at path: x86_64, i386, aarch64, armhf, armel,
    riscv64, riscv32, x32 or unknown:<e_machine>. Raises ValueError if it is not ELF."""
    return arch_name(elf_header(path))
