// kdsl: the KernelDsl command line (see CliApp).
return KernelDsl.Cli.CliApp.Build().Parse(args).Invoke();
