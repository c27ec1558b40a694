using System.CommandLine;
using Spectre.Console;

namespace KernelDsl.Cli.Commands;

/// <summary><c>kdsl cuda NAME</c>: print a variant's generated CUDA source.</summary>
internal static class CudaCommand
{
    public static Command Create()
    {
        var name = new Argument<string>("variant") { Description = "The variant's name, e.g. Int8AttentionD128TransPrmt (see 'kdsl list')." };
        var command = new Command("cuda", "Print a variant's generated CUDA C++.") { name };
        command.SetAction(parse =>
        {
            var module = ListCommand.Find(parse.GetValue(name)!)
                ?? throw new CliUsageException($"variant: no declared variant is named '{parse.GetValue(name)}' (or ends with '.{parse.GetValue(name)}'); `kdsl list` shows them.");
            AnsiConsole.Profile.Out.Writer.Write(module.CudaSource);
            return 0;
        });
        return command;
    }
}
