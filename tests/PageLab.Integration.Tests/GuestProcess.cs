using System.Diagnostics;

namespace PageLab.Integration.Tests;

/// <summary>What a finished process printed and returned.</summary>
internal sealed record ProcessResult(int ExitCode, string Stdout, string Stderr);

/// <summary>Runs a process to completion with its output captured and a timeout.</summary>
internal static class GuestProcess
{
    /// <summary>
    /// Runs <paramref name="fileName"/> and waits for it. The timeout is only a backstop against
    /// a hang (PageLab runs are bounded by an instruction limit first): when it expires the
    /// process tree is killed and the test fails saying so, whatever the machine's speed.
    /// </summary>
    public static ProcessResult Run(string fileName, IEnumerable<string> arguments, string workingDirectory, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {fileName}.");
        process.StandardInput.Close();
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            Assert.Fail($"{fileName} {string.Join(' ', start.ArgumentList)} did not finish within {timeout.TotalSeconds} s; "
                + $"stderr so far:\n{Tail(stderr.Result)}");
        }

        process.WaitForExit();
        return new ProcessResult(process.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>The last lines of a long text, for failure messages.</summary>
    public static string Tail(string text, int lines = 20)
    {
        string[] all = text.Split('\n');
        return string.Join('\n', all.Skip(Math.Max(0, all.Length - lines)));
    }
}
