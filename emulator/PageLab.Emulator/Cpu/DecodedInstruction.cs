using System.Runtime.InteropServices;
using Iced.Intel;

namespace PageLab.Emulator.Cpu;

/// <summary>What an operand of a decoded instruction is.</summary>
internal enum OperandKind : byte
{
    None,
    Register,
    Memory,
    Immediate,
}

/// <summary>
/// One instruction decoded once by Iced and prepared for the interpreter: the handler to run and
/// the operands pre-digested into register codes, an addressing form and immediates, so executing
/// it never consults Iced again. Branch targets and RIP-relative displacements are kept relative
/// to the next instruction, so a cached page stays valid wherever it is mapped.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct DecodedInstruction
{
    /// <summary>Iced's decoding (for rare handlers that need more than the fields below, and for reports).</summary>
    public Instruction Instruction;
    /// <summary>For branches: target minus the next instruction's address. Otherwise the first immediate operand (sign-extended as the encoding says).</summary>
    public ulong Immediate;
    /// <summary>Memory operand displacement; for RIP-relative operands, relative to the next instruction.</summary>
    public long Displacement;
    public Op Op;
    public byte Length;
    /// <summary>Operand size in bytes of the first operand (1, 2, 4, 8; 16 for XMM).</summary>
    public byte Size;
    /// <summary>Operand size in bytes of the second operand (movzx/movsx sources, shift counts).</summary>
    public byte SourceSize;
    public OperandKind Kind0, Kind1, Kind2;
    /// <summary>Register codes of operands 0..2: GPR index 0..15, 16..19 for AH..BH (<see cref="Cpu.HighByteRegister"/>), or XMM index.</summary>
    public byte Reg0, Reg1, Reg2;
    /// <summary>Base register code of the memory operand: a GPR index, <see cref="Cpu.NoRegister"/>, or <see cref="Cpu.RipRegister"/>.</summary>
    public byte MemoryBase;
    public byte MemoryIndex;
    public byte MemoryScaleShift;
    /// <summary>0 = no segment base, 1 = FS, 2 = GS.</summary>
    public byte MemorySegment;
    /// <summary>True with a 0x67 prefix: the effective address is truncated to 32 bits.</summary>
    public bool AddressSize32;
    public ConditionCode Condition;
    /// <summary>The second immediate (ENTER's nesting level).</summary>
    public byte Immediate2;
    /// <summary>For x87 instructions: the handle of the compiled host routine, 0 until first executed.</summary>
    public int X87Routine;
}
