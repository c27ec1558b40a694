// kdsl: the KernelDsl command line (see CliApp.Run: errors are one line, exit code 2 for usage errors).
// Piped output is not wrapped at Spectre's default 80 columns, so paths and sentences stay whole for grep and copy.
if (!Spectre.Console.AnsiConsole.Profile.Out.IsTerminal)
{
    Spectre.Console.AnsiConsole.Profile.Width = 10_000;
}
return KernelDsl.Cli.CliApp.Run(args);
