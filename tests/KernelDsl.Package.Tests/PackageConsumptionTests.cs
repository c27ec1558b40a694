using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace PackageTests;

/// <summary>
/// How users consume KernelDsl: `dotnet pack` makes one package (the runtime, plus the generator as an analyzer);
/// a fresh project outside this repository restores it from a local folder, declares a kernel, and builds —
/// and the launcher must have been generated.
/// </summary>
public class PackageConsumptionTests(ITestOutputHelper output)
{
    private static string RepositoryRoot([CallerFilePath] string path = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, "..", ".."));

    private string Dotnet(string workingDirectory, string arguments)
    {
        var start = new ProcessStartInfo("dotnet", arguments)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(TimeSpan.FromMinutes(5)), $"dotnet {arguments} timed out");
        var text = stdout.Result + stderr.Result;
        output.WriteLine($"$ dotnet {arguments}\n{text}");
        Assert.True(process.ExitCode == 0, $"dotnet {arguments} failed with {process.ExitCode}:\n{text}");
        return text;
    }

    [Fact]
    public void A_fresh_project_restores_the_package_and_gets_a_generated_launcher()
    {
        var work = Directory.CreateTempSubdirectory("kerneldsl-package-");
        try
        {
            // A unique version, so the global package cache can never hand back an older build.
            var version = $"0.1.0-test.{DateTime.UtcNow:yyyyMMddHHmmssfff}";
            var feed = Directory.CreateDirectory(Path.Combine(work.FullName, "feed")).FullName;
            Dotnet(RepositoryRoot(), $"pack src/Runtime/KernelDsl.Runtime.csproj -c Release -o \"{feed}\" -p:Version={version}");
            var package = Assert.Single(Directory.GetFiles(feed, "KernelDsl.*.nupkg"));
            using (var zip = System.IO.Compression.ZipFile.OpenRead(package))
            {
                Assert.Contains(zip.Entries, e => e.FullName == "analyzers/dotnet/cs/KernelDsl.Generator.dll");
                Assert.Contains(zip.Entries, e => e.FullName == "lib/net10.0/KernelDsl.Runtime.dll");
            }

            var app = Directory.CreateDirectory(Path.Combine(work.FullName, "app")).FullName;
            File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <packageSources>
                    <clear />
                    <add key="local" value="{feed}" />
                  </packageSources>
                </configuration>
                """);
            File.WriteAllText(Path.Combine(app, "App.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup>
                    <OutputType>Exe</OutputType>
                    <TargetFramework>net10.0</TargetFramework>
                    <Nullable>enable</Nullable>
                    <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
                    <EmitCompilerGeneratedFiles>true</EmitCompilerGeneratedFiles>
                  </PropertyGroup>
                  <ItemGroup>
                    <PackageReference Include="KernelDsl" Version="{version}" />
                  </ItemGroup>
                </Project>
                """);
            File.WriteAllText(Path.Combine(app, "Program.cs"), """
                using KernelDsl;

                System.Console.WriteLine($"{UserGemm.KernelName} {UserGemm.ThreadsPerBlock} {UserGemm.SharedMemoryBytes} {UserGemm.CudaSource.Contains("movmatrix.sync.aligned")}");

                [Int8Gemm(BlockM = 64, BlockN = 64, BlockK = 64, Warps = 4, Stages = 2, Layout = GemmLayout.NN)]
                [SmemLayout(Operand.A, Element.S8, 2, 4, 3)]
                [SmemLayout(Operand.B, Element.S8, 3, 4, 3)]
                [CopyAtom(Operand.A, CopyAtoms.Ldsm)]
                [CopyAtom(Operand.B, CopyAtoms.LdsmPrmtMovmatrix)]
                [MmaAtom(MmaAtoms.M16N8K32_S32S8S8)]
                static partial class UserGemm;
                """);

            Dotnet(app, "build -c Release");
            var generated = Directory.GetFiles(Path.Combine(app, "obj"), "UserGemm.g.cs", SearchOption.AllDirectories);
            Assert.Contains("public static void Launch(", File.ReadAllText(Assert.Single(generated)));
            var run = Dotnet(app, "run -c Release --no-build");
            Assert.Contains("kdsl_UserGemm 128 16384 True", run);
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }
}
