using System.Buffers.Binary;
using System.Text.Json;
using PageLab.Cli;

namespace PageLab.Integration.Tests;

/// <summary>The `pagelab run` command line: option parsing, usage errors, exit statuses and the stats JSON format.</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public class CliTests
{
    [Fact]
    public void Options_StopAtTheProgram_AndGuestArgumentsKeepTheirDashes()
    {
        var settings = CommandLine.ParseRun(["--stats", "--strace", "prog", "--stats", "-x", "--"])!;
        Assert.True(settings.Stats);
        Assert.True(settings.Strace);
        Assert.Equal("prog", settings.Program);
        Assert.Equal(["--stats", "-x", "--"], settings.Arguments);
    }

    [Fact]
    public void Values_MayFollowAsNextWordOrAfterEquals()
    {
        var settings = CommandLine.ParseRun([
            "--seed=5", "--allow-path", "/a", "--allow-path=/b", "--memory", "512M", "--tlb", "tiny",
            "--max-instructions=100", "--stats-json", "out.json", "--", "-prog", "x"])!;
        Assert.Equal(5UL, settings.Seed);
        Assert.Equal(["/a", "/b"], settings.AllowedPaths);
        Assert.Equal(512UL << 20, settings.MemoryBytes);
        Assert.Equal("tiny", settings.Tlb.Name);
        Assert.Equal(100, settings.MaxInstructions);
        Assert.Equal("out.json", settings.StatsJsonPath);
        Assert.Equal("-prog", settings.Program);
        Assert.Equal(["x"], settings.Arguments);
    }

    [Theory]
    [InlineData("--bogus prog", "unknown option '--bogus'")]
    [InlineData("--seed", "option --seed needs a value")]
    [InlineData("--seed x prog", "option --seed needs a non-negative integer, not 'x'")]
    [InlineData("--max-instructions 0 prog", "option --max-instructions needs a positive integer")]
    [InlineData("--memory 12Q prog", "option --memory needs a size")]
    [InlineData("--memory 2T prog", "option --memory needs a size")]
    [InlineData("--tlb pentium prog", "unknown TLB preset 'pentium'")]
    [InlineData("--stats=yes prog", "option --stats takes no value")]
    [InlineData("--stats", "no program given")]
    public void BadCommandLines_AreUsageErrors(string commandLine, string message)
    {
        var ex = Assert.Throws<UsageException>(() => CommandLine.ParseRun(commandLine.Split(' ')));
        Assert.Contains(message, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Help_ReturnsNull()
    {
        Assert.Null(CommandLine.ParseRun(["--help"]));
    }

    [Theory]
    [InlineData("4G", 4UL << 30)]
    [InlineData("3M", 4UL << 20)]
    [InlineData("1", 2UL << 20)]
    [InlineData("2097152", 2UL << 20)]
    [InlineData("1T", 1UL << 40)]
    public void MemorySizes_AreRoundedUpTo2MiB(string text, ulong bytes) => Assert.Equal(bytes, CommandLine.ParseSize("--memory", text));

    [Fact]
    public void MissingProgram_Exits127LikeAShell()
    {
        var error = new StringWriter();
        int status = RunCommand.Execute(CommandLine.ParseRun(["/nonexistent/prog"])!, error);
        Assert.Equal(127, status);
        Assert.Equal("pagelab: /nonexistent/prog: No such file or directory", error.ToString().TrimEnd());
    }

    // Guest physical memory is one address-space reservation made when the machine is built: a host that refuses it
    // (here a 40 GB `ulimit -v` against --memory 64G) gets a one-line error and EX_OSERR, not an aborted runtime.
    [Fact]
    public void MemoryTheHostRefuses_EndsInAClearError_NotACrash()
    {
        string hello = Path.Combine(RepositoryLayout.BinaryDirectory("glibc"), "hello");
        var result = GuestLauncher.RunPageLabAfter("ulimit -v 40000000; export DOTNET_GCHeapHardLimit=0x20000000",
            "run", "--memory", "64G", hello);
        Assert.Equal(RunCommand.HostRefusedMemory, result.ExitCode);
        Assert.Equal("pagelab: the host refused to reserve 68719476736 bytes of address space for guest physical memory"
            + " (errno 12); try a smaller --memory", result.Stderr.TrimEnd());
        Assert.Equal("", result.Stdout);
    }

    [Fact]
    public void NonElfProgram_Exits126WithTheReason()
    {
        string path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "#!/bin/sh\necho hi\n");
            var error = new StringWriter();
            Assert.Equal(126, RunCommand.Execute(CommandLine.ParseRun([path])!, error));
            Assert.Contains("Permission denied", error.ToString(), StringComparison.Ordinal);
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserExecute);
            error = new StringWriter();
            Assert.Equal(126, RunCommand.Execute(CommandLine.ParseRun([path])!, error));
            Assert.Contains("cannot execute: not an ELF file", error.ToString(), StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>A 12-byte program: exit_group(5), in a minimal static ELF.</summary>
    static byte[] ExitFiveElf()
    {
        byte[] code = [0xb8, 0xe7, 0, 0, 0, 0xbf, 5, 0, 0, 0, 0x0f, 0x05];
        var elf = new byte[0x1000 + code.Length];
        elf[0] = 0x7f; elf[1] = (byte)'E'; elf[2] = (byte)'L'; elf[3] = (byte)'F'; elf[4] = 2; elf[5] = 1; elf[6] = 1;
        var h = elf.AsSpan();
        BinaryPrimitives.WriteUInt16LittleEndian(h[16..], 2);
        BinaryPrimitives.WriteUInt16LittleEndian(h[18..], 62);
        BinaryPrimitives.WriteUInt32LittleEndian(h[20..], 1);
        BinaryPrimitives.WriteUInt64LittleEndian(h[24..], 0x40_1000);
        BinaryPrimitives.WriteUInt64LittleEndian(h[32..], 64);
        BinaryPrimitives.WriteUInt16LittleEndian(h[52..], 64);
        BinaryPrimitives.WriteUInt16LittleEndian(h[54..], 56);
        BinaryPrimitives.WriteUInt16LittleEndian(h[56..], 1);
        var ph = h[64..];
        BinaryPrimitives.WriteUInt32LittleEndian(ph, 1);
        BinaryPrimitives.WriteUInt32LittleEndian(ph[4..], 5);
        BinaryPrimitives.WriteUInt64LittleEndian(ph[16..], 0x40_0000);
        BinaryPrimitives.WriteUInt64LittleEndian(ph[24..], 0x40_0000);
        BinaryPrimitives.WriteUInt64LittleEndian(ph[32..], (ulong)elf.Length);
        BinaryPrimitives.WriteUInt64LittleEndian(ph[40..], (ulong)elf.Length);
        BinaryPrimitives.WriteUInt64LittleEndian(ph[48..], 0x1000);
        code.CopyTo(elf, 0x1000);
        return elf;
    }

    [Fact]
    public void StatsJson_HasTheDocumentedFields_AndTheGuestsExitStatus()
    {
        string program = Path.GetTempFileName(), json = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(program, ExitFiveElf());
            File.SetUnixFileMode(program, UnixFileMode.UserRead | UnixFileMode.UserExecute);
            var error = new StringWriter();
            int status = RunCommand.Execute(CommandLine.ParseRun(["--memory", "64M", "--tlb", "tiny", "--stats", "--stats-json", json, program])!, error);
            Assert.Equal(5, status);
            Assert.Contains("guest instructions     3", error.ToString(), StringComparison.Ordinal);

            using var document = JsonDocument.Parse(File.ReadAllText(json));
            var root = document.RootElement;
            Assert.Equal(1, root.GetProperty("schemaVersion").GetInt32());
            Assert.Equal(5, root.GetProperty("exitStatus").GetInt32());
            Assert.Equal(JsonValueKind.Null, root.GetProperty("signal").ValueKind);
            Assert.Equal(3, root.GetProperty("instructions").GetInt64());
            Assert.Equal(1, root.GetProperty("syscalls").GetProperty("byName").GetProperty("exit_group").GetInt64());
            Assert.Equal("tiny", root.GetProperty("tlb").GetProperty("preset").GetString());
            var l1i = root.GetProperty("tlb").GetProperty("levels")[0];
            // Three fetches, plus the first one again after its page fault was resolved.
            Assert.Equal(4, l1i.GetProperty("lookups").GetInt64());
            Assert.True(root.GetProperty("walks").GetProperty("bySize").GetProperty("4K").GetInt64() >= 1);
            Assert.True(root.GetProperty("faults").GetProperty("byOutcome").GetProperty("filePageMapped").GetInt64() >= 1);
            Assert.True(root.GetProperty("virtualNanoseconds").GetUInt64() > 0);
            foreach (string field in (string[])["wallSeconds", "guestMips", "invalidations", "memory"])
                Assert.True(root.TryGetProperty(field, out _), field);
        }
        finally
        {
            File.Delete(program);
            File.Delete(json);
        }
    }
}
