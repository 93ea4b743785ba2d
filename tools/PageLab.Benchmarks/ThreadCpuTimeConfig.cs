using System.Runtime.InteropServices;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Perfolizer.Horology;

namespace PageLab.Benchmarks;

/// <summary>
/// Adds a short in-process job timed by the benchmark thread's CPU time (CLOCK_THREAD_CPUTIME_ID) rather than the
/// wall clock. On a shared machine (2 cores, many processes) the wall clock also counts the time other processes
/// hold the core; the thread's CPU time does not, so this job shows what the code costs when it runs.
/// </summary>
public sealed class ThreadCpuTimeConfig : ManualConfig
{
    public ThreadCpuTimeConfig() =>
        AddJob(Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance).WithClock(new ThreadCpuClock()).WithId("ThreadCpuTime"));

    sealed class ThreadCpuClock : IClock
    {
        const int ClockThreadCpuTime = 3; // CLOCK_THREAD_CPUTIME_ID on Linux

        [StructLayout(LayoutKind.Sequential)]
        struct TimeSpec
        {
            public long Seconds;
            public long Nanoseconds;
        }

        [DllImport("libc", EntryPoint = "clock_gettime")]
        static extern int ClockGetTime(int clock, out TimeSpec time);

        public string Title => "thread CPU time";
        public bool IsAvailable => OperatingSystem.IsLinux();
        public Frequency Frequency => Frequency.GHz;

        public long GetTimestamp()
        {
            ClockGetTime(ClockThreadCpuTime, out var time);
            return time.Seconds * 1_000_000_000 + time.Nanoseconds;
        }
    }
}
