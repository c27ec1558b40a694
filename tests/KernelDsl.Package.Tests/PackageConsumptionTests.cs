using System.Diagnostics;
using System.Globalization;
using System.IO.Compression;
using System.Runtime.CompilerServices;
using System.Xml.Linq;

namespace PackageTests;

/// <summary>
/// How users consume KernelDsl (README, "Use it in your project"): `dotnet pack` makes two packages — KernelDsl (the
/// runtime, with the generator as an analyzer) and KernelDsl.Attention (Int8Attention, the declared variants, the CPU
/// references), which depends on it. A fresh project outside this repository references only KernelDsl.Attention from a
/// local folder, declares a GEMM and its own attention variant with a mask and a score modifier, builds, and runs: with no
/// GPU it runs the CPU int8 reference of its kernel and checks it against float64 attention with the same modifiers.
/// </summary>
public class PackageConsumptionTests(ITestOutputHelper output)
{
    private static string RepositoryRoot([CallerFilePath] string path = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, "..", ".."));

    private string Dotnet(string workingDirectory, string arguments, string? packages = null)
    {
        var start = new ProcessStartInfo("dotnet", arguments)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        if (packages is not null)
        {
            // The consumer restores into its own folder: nothing of this test lands in the user's package cache.
            start.Environment["NUGET_PACKAGES"] = packages;
        }
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(TimeSpan.FromMinutes(8)), $"dotnet {arguments} timed out");
        var text = stdout.Result + stderr.Result;
        output.WriteLine($"$ dotnet {arguments}\n{text}");
        Assert.True(process.ExitCode == 0, $"dotnet {arguments} failed with {process.ExitCode}:\n{text}");
        return text;
    }

    [Fact]
    public void A_fresh_project_references_the_attention_package_declares_its_own_variant_and_checks_it()
    {
        var work = Directory.CreateTempSubdirectory("kerneldsl-package-");
        try
        {
            // A unique version, so no package cache can ever hand back an older build.
            var version = $"0.1.0-test.{DateTime.UtcNow:yyyyMMddHHmmssfff}";
            var feed = Directory.CreateDirectory(Path.Combine(work.FullName, "feed")).FullName;
            // The README's two pack commands.
            Dotnet(RepositoryRoot(), $"pack src/Runtime -c Release -o \"{feed}\" -p:Version={version}");
            Dotnet(RepositoryRoot(), $"pack src/Attention -c Release -o \"{feed}\" -p:Version={version}");
            CheckPackages(feed, version);

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
                    <ImplicitUsings>enable</ImplicitUsings>
                    <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
                    <EmitCompilerGeneratedFiles>true</EmitCompilerGeneratedFiles>
                  </PropertyGroup>
                  <ItemGroup>
                    <!-- Only the attention package: KernelDsl, with the generator, comes with it. -->
                    <PackageReference Include="KernelDsl.Attention" Version="{version}" />
                  </ItemGroup>
                </Project>
                """);
            File.WriteAllText(Path.Combine(app, "Kernels.cs"), Kernels);
            File.WriteAllText(Path.Combine(app, "Program.cs"), Program);

            var packages = Path.Combine(work.FullName, "packages");
            Dotnet(app, "build -c Release", packages);
            var generated = Directory.GetFiles(Path.Combine(app, "obj"), "*.g.cs", SearchOption.AllDirectories).Select(Path.GetFileName).ToArray();
            // The names the README gives: <namespace>.<type>.g.cs (the launcher) and .cu.g.cs (the CUDA as a raw string).
            Assert.Contains("App.UserGemm.g.cs", generated);
            Assert.Contains("App.UserGemm.cu.g.cs", generated);
            Assert.Contains("App.WindowSoftcap.MmaSync.g.cs", generated);
            Assert.Contains("App.WindowSoftcap.MmaSync.cu.g.cs", generated);

            var run = Dotnet(app, "run -c Release --no-build", packages);
            var lines = run.Split('\n', StringSplitOptions.TrimEntries).Where(l => l.Length > 0).ToDictionary(l => l.Split(' ')[0], l => l);
            Assert.Equal("gemm kdsl_App_UserGemm 128 16384 True", lines["gemm"]);
            // The user's kernels are in the catalog beside the library's, with their modifiers and parameters.
            Assert.Equal("catalog App.WindowSoftcap.Wgmma App.WindowSoftcap.MmaSync library True registered True", lines["catalog"]);
            Assert.Equal("modifiers App.WindowSoftcap.Window App.WindowSoftcap.Softcap cap,window", lines["modifiers"]);
            Assert.Equal("cuda True True", lines["cuda"]);
            var fields = lines["error"].Split(' ');
            double Field(int i) => double.Parse(fields[i], CultureInfo.InvariantCulture);
            // Against float64 with the same modifiers: the int8 algorithm's usual error. Against float64 without them:
            // far off, so the modifiers did reach the computation.
            Assert.True(Field(1) < 3e-2, $"relative L2 against float64 {Field(1)}");
            Assert.True(Field(2) > 0.999, $"cosine against float64 {Field(2)}");
            Assert.True(Field(4) > 0.2, $"relative L2 against unmodified attention only {Field(4)}: the modifiers were not applied");
            Assert.StartsWith("engine ", lines["engine"]);
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    private static void CheckPackages(string feed, string version)
    {
        using (var runtime = ZipFile.OpenRead(Path.Combine(feed, $"KernelDsl.{version}.nupkg")))
        {
            Assert.Contains(runtime.Entries, e => e.FullName == "analyzers/dotnet/cs/KernelDsl.Generator.dll");
            Assert.Contains(runtime.Entries, e => e.FullName == "lib/net10.0/KernelDsl.Runtime.dll");
        }
        using var attention = ZipFile.OpenRead(Path.Combine(feed, $"KernelDsl.Attention.{version}.nupkg"));
        Assert.Contains(attention.Entries, e => e.FullName == "lib/net10.0/KernelDsl.Attention.dll");
        Assert.DoesNotContain(attention.Entries, e => e.FullName.StartsWith("analyzers/", StringComparison.Ordinal));
        using var nuspec = attention.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open();
        var dependencies = XDocument.Load(nuspec).Descendants().Where(e => e.Name.LocalName == "dependency").ToArray();
        // One dependency, the runtime package of the same version, with nothing excluded: its analyzer must flow.
        var dependency = Assert.Single(dependencies);
        Assert.Equal("KernelDsl", dependency.Attribute("id")?.Value);
        Assert.Equal(version, dependency.Attribute("version")?.Value);
        Assert.Null(dependency.Attribute("exclude"));
    }

    // The consumer's declarations: a GEMM from KernelDsl's attributes, and an attention variant (the README's example).
    private const string Kernels = """
        using KernelDsl;
        using KernelDsl.Attention.FlashAttention;

        namespace App;

        [Int8Gemm(BlockM = 64, BlockN = 64, BlockK = 64, Warps = 4, Stages = 2, Layout = GemmLayout.NN)]
        [SmemLayout(Operand.A, Element.S8, 2, 4, 3)]
        [SmemLayout(Operand.B, Element.S8, 3, 4, 3)]
        [CopyAtom(Operand.A, CopyAtoms.Ldsm)]
        [CopyAtom(Operand.B, CopyAtoms.LdsmPrmtMovmatrix)]
        [MmaAtom(MmaAtoms.M16N8K32_S32S8S8)]
        public static partial class UserGemm;

        /// <summary>Causal sliding window with softcapping.</summary>
        public static partial class WindowSoftcap
        {
            [MaskModifier]
            public static bool Window(int b, int h, int q, int k, int window) => k <= q && q - k < window;

            [ScoreModifier]
            public static float Softcap(float score, int b, int h, int q, int k, float cap) => cap * MathF.Tanh(score / cap);

            [FlashAttentionForward(Like = typeof(Int8AttentionD128Wgmma))] public static partial class Wgmma;
            [FlashAttentionForward(Like = typeof(Int8AttentionD128TransPrmt))] public static partial class MmaSync;
        }
        """;

    // The consumer's program: the attention API on its kernel; on a GPU through Int8Attention, else the CPU int8 reference.
    private const string Program = """
        using System.Globalization;
        using KernelDsl;
        using KernelDsl.Attention.FlashAttention;
        using KernelDsl.Attention.Quantization;
        using KernelDsl.Attention.Reference;
        using KernelDsl.Launching;
        using App;

        CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
        Console.WriteLine($"gemm {UserGemm.KernelName} {UserGemm.ThreadsPerBlock} {UserGemm.SharedMemoryBytes} {UserGemm.CudaSource.Contains("movmatrix.sync.aligned")}");
        var kernel = WindowSoftcap.MmaSync.Info;
        var mine = Int8Attention.Kernels.Where(k => k.Name.StartsWith("App.", StringComparison.Ordinal)).Select(k => k.Name);
        Console.WriteLine($"catalog {string.Join(" ", mine)} library {Int8Attention.Kernels.Contains(SlidingWindow.D128.Info)} registered {AttentionCatalog.Find(kernel.Name) == kernel}");
        Console.WriteLine($"modifiers {kernel.MaskModifier} {kernel.ScoreModifier} {string.Join(",", kernel.Parameters.Select(p => p.Name))}");
        Console.WriteLine($"cuda {kernel.Module.CudaSource.Contains("kdsl_mask_block")} {kernel.Module.CudaSource.Contains("tanh.approx.f32")}");

        const int B = 1, H = 2, S = 200, D = 128, Window = 48;
        const float Cap = 3f;
        var random = new Random(7);
        Half[] Gaussian() => Enumerable.Range(0, B * H * S * D)
            .Select(_ => (Half)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()))).ToArray();
        var (q, k, v) = (Gaussian(), Gaussian(), Gaussian());
        var shape = new AttentionShape(B, H, H, S, S, D);
        var modifiers = new AttentionModifiers(
            Score: (s, b, h, i, j) => WindowSoftcap.Softcap(s, b, h, i, j, Cap),
            Mask: (b, h, i, j) => WindowSoftcap.Window(b, h, i, j, Window));

        double[] actual;
        string engine;
        if (CudaDevice.TryOpen(0, out var device, out _))
        {
            using (device)
            using (var stream = device.CreateStream())
            using (var attention = new Int8Attention(device))
            using (DeviceBuffer<Half> dq = device.Upload<Half>(q), dk = device.Upload<Half>(k), dv = device.Upload<Half>(v), dout = device.Allocate<Half>(q.Length))
            {
                var chosen = WindowSoftcap.Wgmma.Info.RunsOn(device.ComputeCapability) ? WindowSoftcap.Wgmma.Info : kernel;
                TensorView<Half> View(DeviceBuffer<Half> x) => TensorView<Half>.Contiguous(x, B, H, S, D);
                attention.Forward(stream, chosen, View(dq), View(dk), View(dv), View(dout), new ModifierArguments().Set("window", Window).Set("cap", Cap));
                stream.Synchronize();
                actual = dout.ToArray().Select(x => (double)x).ToArray();
                engine = $"{chosen.Name} on {device.Name}";
            }
        }
        else
        {
            // The kernel's own block sizes and K-mean order: the reference then follows its rounding.
            var options = new Int8AttentionOptions
            {
                BlockM = kernel.QScaleRows, BlockN = kernel.BlockN, KScaleKeys = kernel.KScaleKeys,
                KMeanSlices = KvStatisticsD128.MeanLanes, KMeanSliceTokens = KvStatisticsD128.SliceTokens, KMeanSliceGroup = KvStatisticsD128.MeanSliceGroup,
            };
            actual = Int8AttentionReference.Forward(shape, q, k, v, options, modifiers).OutputValues();
            engine = $"CPU int8 reference of {kernel.Name}";
        }
        var error = ErrorMetrics.Compare(actual, Float64Attention.Forward(shape, q, k, v, modifiers: modifiers).Output);
        var unmodified = ErrorMetrics.Compare(actual, Float64Attention.Forward(shape, q, k, v).Output);
        Console.WriteLine($"error {error.RelativeL2:E3} {error.Cosine:F6} unmodified {unmodified.RelativeL2:E3}");
        Console.WriteLine($"engine {engine}");
        """;
}
