using System.CommandLine;
using Spectre.Console;

namespace KernelDsl.Cli.Commands;

/// <summary><c>kdsl cuda NAME</c>: print a variant's generated CUDA source.</summary>
internal static class CudaCommand
{
    public static Command Create()
    {
        var name = new Argument<string>("variant") { Description = "The variant's name, e.g. Int8AttentionD128TransPrmt, or a unique suffix such as SlidingWindow.D128 (see 'kdsl list')." };
        var command = new Command("cuda", "Print a variant's generated CUDA C++.") { name };
        command.SetAction(parse =>
        {
            var module = ListCommand.Resolve(parse.GetValue(name)!);
            AnsiConsole.Profile.Out.Writer.Write(module.CudaSource);
            return 0;
        });
        return command;
    }
}
