using PageLab.Cli;

var error = Console.Error;
if (args.Length == 0 || args[0] is "-h" or "--help")
{
    (args.Length == 0 ? error : Console.Out).WriteLine(CommandLine.Usage);
    return args.Length == 0 ? 2 : 0;
}
if (args[0] == "demo")
{
    try
    {
        return DemoCommand.Execute(args[1..], Console.Out, error);
    }
    catch (UsageException ex)
    {
        error.WriteLine($"pagelab: {ex.Message}\n\n{DemoCommand.Usage}");
        return 2;
    }
    catch (OutOfMemoryException ex)
    {
        return HostRefusedMemory(ex);
    }
}
if (args[0] != "run")
{
    error.WriteLine($"pagelab: unknown command '{args[0]}'\n\n{CommandLine.Usage}");
    return 2;
}
try
{
    var settings = CommandLine.ParseRun(args[1..]);
    if (settings is null)
    {
        Console.Out.WriteLine(CommandLine.Usage);
        return 0;
    }
    return RunCommand.Execute(settings, error);
}
catch (UsageException ex)
{
    error.WriteLine($"pagelab: {ex.Message}\n\n{CommandLine.Usage}");
    return 2;
}
catch (OutOfMemoryException ex)
{
    return HostRefusedMemory(ex);
}

// The host would not give the machine its memory (guest physical memory is one address-space reservation, refused
// under a tight `ulimit -v` or strict overcommit): say so, without a stack trace, and exit like EX_OSERR.
int HostRefusedMemory(OutOfMemoryException ex)
{
    error.WriteLine($"pagelab: {ex.Message}; try a smaller --memory");
    return RunCommand.HostRefusedMemory;
}
