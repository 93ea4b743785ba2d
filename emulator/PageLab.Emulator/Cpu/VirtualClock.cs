namespace PageLab.Emulator.Cpu;

/// <summary>
/// The machine's modeled time in nanoseconds (DESIGN.md point 6): retired instructions times a base
/// cost, plus the costs other parts of the model add (page walks, faults, system calls, copies).
/// It never reads host time, so the same run always sees the same clock.
/// </summary>
public sealed class VirtualClock
{
    /// <summary>A 3 GHz core retiring about one instruction per cycle: a third of a nanosecond each, rounded to the picosecond.</summary>
    public const ulong DefaultPicosecondsPerInstruction = 333;

    ulong instructions;
    ulong addedNanoseconds;

    /// <param name="picosecondsPerInstruction">Modeled cost of one retired instruction; picoseconds so that sub-nanosecond costs stay exact.</param>
    public VirtualClock(ulong picosecondsPerInstruction = DefaultPicosecondsPerInstruction) =>
        PicosecondsPerInstruction = picosecondsPerInstruction;

    /// <summary>The modeled cost of one retired instruction.</summary>
    public ulong PicosecondsPerInstruction { get; }

    /// <summary>Instructions the CPU reported as retired.</summary>
    public ulong Instructions => instructions;

    /// <summary>Nanoseconds added by <see cref="Advance"/> (walks, faults, system calls...).</summary>
    public ulong AddedNanoseconds => addedNanoseconds;

    /// <summary>Modeled nanoseconds since the machine started.</summary>
    public ulong Nanoseconds => instructions * PicosecondsPerInstruction / 1000 + addedNanoseconds;

    /// <summary>Adds a modeled cost that is not instruction execution.</summary>
    public void Advance(ulong nanoseconds) => addedNanoseconds += nanoseconds;

    /// <summary>The CPU reports retired instructions in batches (at the end of a run, before host callbacks and RDTSC).</summary>
    public void RetireInstructions(ulong count) => instructions += count;
}
