using System.Text;
using Iced.Intel;
using PageLab.Emulator.Cpu;
using PageLab.Emulator.Paging;
using static Iced.Intel.AssemblerRegisters;

namespace PageLab.Emulator.Tests.Cpu;

/// <summary>
/// The CPU counts same-page fetches and data accesses as first-level TLB hits without searching
/// the TLB each time. These tests run the same program with that shortcut and without it (an
/// attached observer turns it off, so every access is looked up as it happens) and require every
/// counter of the MMU to be identical.
/// </summary>
public sealed class CpuTlbAccountingTests
{
    sealed class NullObserver : IPagingObserver
    {
        public void OnTlbLookup(int level, ulong linear, AccessKind kind, bool hit, PageSize size) { }
        public void OnWalk(in WalkRecord walk) { }
        public void OnInvalidation(InvalidationKind kind, ulong linear, ushort pcid) { }
    }

    /// <summary>Touches 12 data pages in a pattern that hits, misses and evicts, reads then writes, crosses pages, and calls.</summary>
    static void Program(Assembler a)
    {
        var outer = a.CreateLabel();
        var inner = a.CreateLabel();
        var function = a.CreateLabel();
        var noCrossing = a.CreateLabel();
        var done = a.CreateLabel();
        a.mov(r12, 40);
        a.mov(r13, TestMachine.DataAddress);
        a.Label(ref outer);
        a.xor(ecx, ecx);
        a.Label(ref inner);
        a.mov(rax, rcx);
        a.imul(rax, rax, 5);
        a.xor(edx, edx);
        a.mov(ebx, 12);
        a.div(rbx);
        a.shl(rdx, 12);
        a.lea(rsi, __[r13 + rdx]);                    // page (5 * i) % 12
        a.lea(rax, __[rcx * 8 + 3]);
        a.mov(rdx, rax);
        a.xor(edx, edx);
        a.mov(rax, rcx);
        a.imul(rax, rax, 7);
        a.add(rax, 3);
        a.div(rbx);
        a.shl(rdx, 12);
        a.lea(rdi, __[r13 + rdx]);                    // page (7 * i + 3) % 12
        a.mov(eax, ecx);
        a.and(eax, 511);
        a.mov(r8, __qword_ptr[rsi + rax * 8]);        // read
        a.mov(r9, __qword_ptr[rdi + rax * 8]);        // read another page
        a.add(__qword_ptr[rsi + rax * 8], rcx);       // read-modify-write of the first page
        a.mov(__qword_ptr[rdi + 8], r8);              // write the second
        a.test(cl, 15);
        a.jnz(noCrossing);
        a.mov(__qword_ptr[rsi + 0xFFC], ecx);         // now and then a store crossing into the next page
        a.Label(ref noCrossing);
        a.call(function);
        a.inc(rcx);
        a.cmp(rcx, 100);
        a.jne(inner);
        a.dec(r12);
        a.jnz(outer);
        a.jmp(done);
        a.Label(ref function);
        a.push(rcx);
        a.mov(rax, __qword_ptr[rsp]);
        a.pop(rcx);
        a.ret();
        a.Label(ref done);
        a.syscall();
    }

    static string CountersOf(Mmu mmu)
    {
        var c = mmu.Counters;
        var text = new StringBuilder();
        foreach (var level in c.Levels)
            text.Append($"{level.Name}: lookups {level.Lookups} misses {level.Misses} hits {string.Join("/", level.HitsBySize)} fills {string.Join("/", level.FillsBySize)}\n");
        text.Append($"walks {c.Walks} refs {c.WalkMemoryReferences} dirty {c.DirtyBitWalks} A {c.AccessedBitsSet} D {c.DirtyBitsSet} psc {string.Join("/", c.PagingStructureCacheHits)}\n");
        return text.ToString();
    }

    /// <summary>
    /// Hits counted without a lookup, then a fault: a loop fetched from its page stores into it (read-only: the host makes
    /// it writable and the store restarts), and a loop that read a data page jumps into it (execute-disabled: the run
    /// stops). Delivering each #PF drops the page from every level, the other kind's first level too.
    /// </summary>
    static void FaultingProgram(Assembler a)
    {
        var fetchLoop = a.CreateLabel();
        var readLoop = a.CreateLabel();
        a.mov(ecx, 200);
        a.Label(ref fetchLoop);
        a.dec(ecx);
        a.jnz(fetchLoop);
        a.mov(__dword_ptr[TestMachine.CodeAddress + 0x800], eax);
        a.mov(ecx, 200);
        a.mov(rsi, TestMachine.DataAddress);
        a.Label(ref readLoop);
        a.mov(rax, __qword_ptr[rsi]);
        a.dec(ecx);
        a.jnz(readLoop);
        a.jmp(rsi);
    }

    sealed record Outcome(string Counters, long Instructions, CpuStopReason Stop, int Faults);

    static Outcome Run(TlbConfig config, bool observed, Action<Assembler> program, Action<TestMachine>? prepare)
    {
        using var machine = new TestMachine(config);
        machine.Load(program);
        prepare?.Invoke(machine);
        if (observed) machine.Mmu.Observer = new NullObserver();
        var stop = machine.Run(10_000_000);
        return new Outcome(CountersOf(machine.Mmu), machine.Cpu.InstructionsRetired, stop, machine.Faults.Count);
    }

    /// <summary>Runs the program with the shortcuts and with per-access lookups; every counter must be the same.</summary>
    static Outcome RunBothWays(string preset, Action<Assembler> program, Action<TestMachine>? prepare = null)
    {
        var config = TlbConfig.Presets[preset];
        var fast = Run(config, observed: false, program, prepare);
        var exact = Run(config, observed: true, program, prepare);
        Assert.Equal(exact.Instructions, fast.Instructions);
        Assert.Equal(exact.Counters, fast.Counters);
        return exact;
    }

    /// <summary>The code page is read-only (the host makes it writable on the store's fault), the data page execute-disabled.</summary>
    static void PrepareFaults(TestMachine machine)
    {
        machine.SetPte(TestMachine.CodeAddress, present: true, writable: false);
        machine.SetPte(TestMachine.DataAddress, present: true, executable: false);
        machine.OnFaultHandler = fault =>
        {
            if (fault.LinearAddress >> PagingConstants.PageBits != TestMachine.CodeAddress >> PagingConstants.PageBits) return false;
            machine.SetPte(TestMachine.CodeAddress, present: true);
            return true;
        };
    }

    public static TheoryData<string> Presets => new(TlbConfig.Presets.Keys);

    [Theory]
    [MemberData(nameof(Presets))]
    public void SamePageShortcuts_CountExactlyWhatPerAccessLookupsCount(string preset) =>
        Assert.Equal(CpuStopReason.StopRequested, RunBothWays(preset, Program).Stop);

    [Theory]
    [MemberData(nameof(Presets))]
    public void HitsCountedBeforeAFault_AreNotLostWhenTheFaultInvalidatesTheirPage(string preset) =>
        Assert.Equal(2, RunBothWays(preset, FaultingProgram, PrepareFaults).Faults);
}
