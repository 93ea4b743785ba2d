using System.Diagnostics;
using PageLab.Kernel.Fs;
using PageLab.Kernel.Loader;
using PageLab.Kernel.Process;
using PageLab.Kernel.Syscalls;

namespace PageLab.Cli;

/// <summary><c>pagelab run</c>: loads the program into a fresh machine, runs it, reports.</summary>
public static class RunCommand
{
    /// <summary>Exit status when the program cannot be found (as a shell reports it).</summary>
    public const int NotFound = 127;

    /// <summary>Exit status when the emulator itself failed (sysexits' EX_SOFTWARE); a guest can never cause it.</summary>
    public const int InternalError = 70;

    /// <summary>Exit status when the host refuses the machine its memory (sysexits' EX_OSERR).</summary>
    public const int HostRefusedMemory = 71;

    /// <summary>Exit status when the program exists but cannot be executed (as a shell reports it).</summary>
    public const int CannotExecute = 126;

    public static int Execute(RunSettings settings, TextWriter error)
    {
        var run = RunGuest(settings, error, standardOutput: null);
        using var machine = run.Machine;
        if (machine is not null && (settings.Stats || settings.StatsJsonPath is not null))
        {
            var statistics = RunStatistics.Collect(machine, settings.Program, run.Outcome!, run.Wall);
            if (settings.Stats)
                error.Write(statistics.ToText());
            if (settings.StatsJsonPath is { } path)
                File.WriteAllText(path, statistics.ToJson());
        }
        return run.ExitStatus;
    }

    /// <summary>A finished guest run: the exit status a shell sees and, when the guest ran, its machine (to be disposed) and outcome.</summary>
    public sealed record GuestRun(int ExitStatus, Machine? Machine, RunOutcome? Outcome, TimeSpan Wall);

    /// <summary>
    /// Builds a machine from <paramref name="settings"/>, loads the program and runs it to the end.
    /// <paramref name="standardOutput"/> replaces the guest's stdout when given (the demo captures it).
    /// </summary>
    public static GuestRun RunGuest(RunSettings settings, TextWriter error, OpenFile? standardOutput)
    {
        if (OpenProgram(settings.Program, out var executable, out string canonical, out int status) is { } message)
        {
            error.WriteLine($"pagelab: {settings.Program}: {message}");
            return new GuestRun(status, null, null, TimeSpan.Zero);
        }

        var process = new ProcessSettings
        {
            AllowedPaths = settings.AllowedPaths,
            Seed = settings.Seed,
            Credentials = HostIdentity.Current(),
            Strace = settings.Strace ? error : null,
            KernelAbi = settings.KernelAbi,
        };
        if (standardOutput is not null)
            process = process with { StandardStreams = [process.StandardStreams[0], standardOutput, process.StandardStreams[2]] };
        var machineSettings = new MachineSettings
        {
            MemoryBytes = settings.MemoryBytes,
            NumaNodes = settings.NumaNodes,
            MemcgLimitBytes = settings.MemcgLimitBytes,
            SwapBytes = settings.SwapBytes,
            Tlb = settings.Tlb,
            MaxInstructions = settings.MaxInstructions,
            ThpKnobs = settings.ThpKnobs,
            Fragmentation = settings.FragmentationSeed is { } seed ? new PageLab.Kernel.Mm.Physical.FragmentationOptions { Seed = seed, FreePageblocksLeft = settings.FragmentationFreeBlocks } : null,
            Process = process,
        };
        var machine = new Machine(machineSettings, canonical);
        var random = new byte[16];
        new DeterministicRandom(settings.Seed ^ 0xa7_5eed).Fill(random);
        try
        {
            machine.Load(executable!, new ExecParameters
            {
                ExecFileName = settings.ArgumentZero ?? settings.Program,
                Arguments = [settings.ArgumentZero ?? settings.Program, .. settings.Arguments],
                Environment = settings.Environment is { } environment ? [.. environment] : HostEnvironment(),
                RandomBytes = random,
                Credentials = process.Credentials,
            });
        }
        catch (ElfLoadException ex)
        {
            machine.Dispose();
            error.WriteLine($"pagelab: {settings.Program}: cannot execute: {ex.Message}");
            return new GuestRun(CannotExecute, null, null, TimeSpan.Zero);
        }

        var wall = Stopwatch.StartNew();
        RunOutcome outcome;
        try
        {
            outcome = machine.Run();
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or IndexOutOfRangeException or NullReferenceException)
        {
            // A bug in the emulator, never the guest's doing: say so plainly, with where it was, and exit like EX_SOFTWARE.
            error.WriteLine($"pagelab: internal error in the emulator at guest rip 0x{machine.Cpu.Rip:x} after {machine.Cpu.InstructionsRetired} instructions: {ex}");
            machine.Dispose();
            return new GuestRun(InternalError, null, null, wall.Elapsed);
        }
        wall.Stop();
        error.Flush();
        if (outcome.Report is { } report)
            error.WriteLine(report);
        return new GuestRun(outcome.ExitStatus, machine, outcome, wall.Elapsed);
    }

    /// <summary>Opens the program read-only; null on success, else the message and exit status a shell would give.</summary>
    static string? OpenProgram(string program, out HostFile? file, out string canonical, out int status)
    {
        file = null;
        canonical = Path.GetFullPath(program);
        status = 0;
        if (Directory.Exists(program))
        {
            status = CannotExecute;
            return "Is a directory";
        }
        // execve needs execute permission (any x bit the caller holds), as the kernel checks.
        if (!OperatingSystem.IsWindows() && File.Exists(program) && (File.GetUnixFileMode(program) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) == 0)
        {
            status = CannotExecute;
            return ErrnoText.Describe(Errno.EACCES);
        }
        int result = HostFile.OpenReadOnly(program, out file);
        if (result < 0)
        {
            status = result == -(int)Errno.ENOENT ? NotFound : CannotExecute;
            return ErrnoText.Describe((Errno)(-result));
        }
        canonical = new FileInfo(canonical).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? canonical;
        return null;
    }

    /// <summary>The environment in the host's own order (from /proc/self/environ), as execve would pass it.</summary>
    static string[] HostEnvironment()
    {
        try
        {
            return [.. File.ReadAllText("/proc/self/environ").Split('\0', StringSplitOptions.RemoveEmptyEntries)];
        }
        catch (IOException)
        {
            return [.. Environment.GetEnvironmentVariables().Keys.Cast<string>().Order(StringComparer.Ordinal).Select(k => $"{k}={Environment.GetEnvironmentVariable(k)}")];
        }
    }
}
