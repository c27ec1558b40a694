// kdsl: the KernelDsl command line (see CliApp.Run: errors are one line, exit code 2 for usage errors).
return KernelDsl.Cli.CliApp.Run(args);
