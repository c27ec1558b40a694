using System.Runtime.CompilerServices;
using GeneratorTests.Infrastructure;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace GeneratorTests.Generation;

/// <summary>The README's example declaration compiles as written and produces what the README says.</summary>
public class ReadmeTests
{
    private static string RepositoryRoot([CallerFilePath] string path = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, "..", "..", ".."));

    private static string Readme() => File.ReadAllText(Path.Combine(RepositoryRoot(), "README.md")).ReplaceLineEndings("\n");

    private static string FirstCSharpBlock(string markdown) => CSharpBlocksAfter(markdown, "").First();

    /// <summary>The ```csharp blocks after <paramref name="heading"/> (a whole line), up to the next "## " heading.</summary>
    private static IEnumerable<string> CSharpBlocksAfter(string markdown, string heading)
    {
        var from = 0;
        if (heading.Length > 0)
        {
            from = markdown.IndexOf("\n" + heading + "\n", StringComparison.Ordinal);
            Assert.True(from >= 0, $"README.md has no heading '{heading}'");
            from += heading.Length + 2;
        }
        var next = markdown.IndexOf("\n## ", from, StringComparison.Ordinal);
        var section = heading.Length > 0 && next >= 0 ? markdown[from..next] : markdown[from..];
        for (var start = section.IndexOf("```csharp\n", StringComparison.Ordinal); start >= 0; start = section.IndexOf("```csharp\n", start, StringComparison.Ordinal))
        {
            start += "```csharp\n".Length;
            var end = section.IndexOf("```", start, StringComparison.Ordinal);
            yield return section[start..end];
            start = end + 3;
        }
    }

    [Fact]
    public void The_example_declaration_generates_clean_code_with_the_documented_members()
    {
        var readme = Readme();
        var run = GeneratorHarness.RunGenerator(FirstCSharpBlock(readme));
        Assert.Empty(run.GeneratorDiagnostics);
        Assert.Empty(run.CompilationErrors);
        var launcher = run.Source("MyKernels.MyGemm.g.cs");
        Assert.Contains("public const string KernelName = \"kdsl_MyKernels_MyGemm\";", launcher);
        Assert.Contains("public const int ThreadsPerBlock = 256;", launcher);
        Assert.Contains("public const int SharedMemoryBytes = 49152;", launcher);
        Assert.Contains("public const int MinimumSm = 80;", launcher);
        Assert.Contains("global::KernelDsl.DeviceBuffer<int> c, int m, int n, int k, int lda, int ldb, int ldc)", launcher);
        var cuda = SnapshotTests.RawStringContent(run.Source("MyKernels.MyGemm.cu.g.cs"));
        Assert.Contains("const u32 v4 = kdsl_prmt(v0, v1, 0x5140u);", cuda);
        Assert.Contains("const u32 v8 = kdsl_movm_trans(v4);", cuda);
        Assert.Contains("const u32 v4 = kdsl_prmt(v0, v1, 0x5140u);", readme);
    }

    private const string VariantHeading = "## Declare your own attention variant";

    /// <summary>The implicit usings of an SDK project (the harness has none), for compiling the library's own sources.</summary>
    private const string ImplicitUsings = """
        global using System;
        global using System.Collections.Generic;
        global using System.IO;
        global using System.Linq;
        global using System.Net.Http;
        global using System.Threading;
        global using System.Threading.Tasks;
        """;

    /// <summary>
    /// src/Attention compiled with the generator into its own assembly, KernelDsl.Attention, as a user's project
    /// references it: the README's variant names its declarations with Like and calls its host API. IO/NpyFile.cs is left
    /// out: its [GeneratedRegex] needs the regex source generator, which the harness does not run, and nothing else uses it.
    /// </summary>
    private static MetadataReference AttentionLibrary() => Library.Value;

    private static readonly Lazy<MetadataReference> Library = new(CompileAttentionLibrary);

    private static MetadataReference CompileAttentionLibrary()
    {
        var root = Path.Combine(RepositoryRoot(), "src", "Attention");
        var sep = Path.DirectorySeparatorChar;
        var sources = Directory.EnumerateFiles(root, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{sep}obj{sep}", StringComparison.Ordinal) && !f.Contains($"{sep}bin{sep}", StringComparison.Ordinal))
            .Where(f => Path.GetFileName(f) != "NpyFile.cs")
            .Order(StringComparer.Ordinal)
            .Select(File.ReadAllText);
        var compilation = GeneratorHarness.Compilation([ImplicitUsings, .. sources]).WithAssemblyName("KernelDsl.Attention");
        GeneratorHarness.Driver().RunGeneratorsAndUpdateCompilation(compilation, out var library, out var diagnostics, TestContext.Current.CancellationToken);
        Assert.Empty(diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error));
        var errors = library.GetDiagnostics(TestContext.Current.CancellationToken).Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        Assert.True(errors.Count == 0, "src/Attention does not compile in the harness:\n" + string.Join("\n", errors.Take(10)));
        return library.ToMetadataReference();
    }

    [Fact]
    public void The_serving_example_compiles_against_the_library()
    {
        var block = Assert.Single(CSharpBlocksAfter(Readme(), "## Serving from a paged INT8 KV cache"));
        var compilation = GeneratorHarness.Compilation(block)
            .AddReferences(AttentionLibrary())
            .WithOptions(new CSharpCompilationOptions(OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Enable));
        var errors = compilation.GetDiagnostics(TestContext.Current.CancellationToken).Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        Assert.True(errors.Count == 0, string.Join("\n", errors));
    }

    [Fact]
    public void The_variant_example_and_its_call_compile_against_the_library_and_generate_the_CUDA_shown()
    {
        var readme = Readme();
        var blocks = CSharpBlocksAfter(readme, VariantHeading).ToList();
        Assert.True(blocks.Count >= 2, "the section should hold the declaration and the call");
        var (declaration, call) = (blocks[0], blocks[1]);

        // The user's project: the declaration, and the call as the program's top-level statements.
        var compilation = GeneratorHarness.Compilation(declaration, call)
            .AddReferences(AttentionLibrary())
            .WithOptions(new CSharpCompilationOptions(OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Enable));
        var driver = GeneratorHarness.Driver().RunGeneratorsAndUpdateCompilation(compilation, out var output, out var diagnostics, TestContext.Current.CancellationToken);
        Assert.Empty(diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error));
        var errors = output.GetDiagnostics(TestContext.Current.CancellationToken).Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        Assert.True(errors.Count == 0, string.Join("\n", errors));

        var sources = driver.GetRunResult().Results.SelectMany(r => r.GeneratedSources).ToList();
        string Generated(string hintName) => sources.Single(s => s.HintName == hintName).SourceText.ToString();
        foreach (var kernel in new[] { "Wgmma", "MmaSync" })
        {
            var cuda = SnapshotTests.RawStringContent(Generated($"MyModels.WindowSoftcap.{kernel}.cu.g.cs"));
            Assert.Contains("""
                static __device__ __forceinline__ float kdsl_score_mod(float u_score, int u_b, int u_h, int u_q, int u_k, float u_cap)
                {
                    return u_cap * kdsl_tanh_approx(u_score * (1.f / u_cap));
                }
                """.ReplaceLineEndings("\n"), cuda);
            Assert.Contains("""
                static __device__ __forceinline__ bool kdsl_mask_mod(int u_b, int u_h, int u_q, int u_k, int u_window)
                {
                    return (u_k <= u_q) && ((u_q - u_k) < u_window);
                }
                """.ReplaceLineEndings("\n"), cuda);
            Assert.Contains("xs[jt][r] = kdsl_score_mod(fmaf(xs[jt][r], sl", cuda);
            Assert.Contains("!kdsl_mask_mod(b, h, kdsl_min(row, seq_q - 1), kdsl_min(key, seq_k - 1), u_window)) xs[jt][r] = -KDSL_INF;", cuda);
            Assert.Contains("if (block_class != KDSL_BLOCK_SKIP) { kv_lo = kdsl_min(kv_lo, kb); kv_hi = kb; }", cuda);
            Assert.Contains("u_window) != KDSL_BLOCK_FULL);", cuda);
            Assert.Contains(", float cap, int window)", Generated($"MyModels.WindowSoftcap.{kernel}.g.cs"));
        }

        // Every line of the README's CUDA excerpt is a line of the MmaSync kernel's CUDA ("..." marks what it leaves out).
        var mmaSync = SnapshotTests.RawStringContent(Generated("MyModels.WindowSoftcap.MmaSync.cu.g.cs")).ReplaceLineEndings("\n").Split('\n').ToHashSet(StringComparer.Ordinal);
        var section = readme[readme.IndexOf("\n" + VariantHeading + "\n", StringComparison.Ordinal)..];
        var excerptStart = section.IndexOf("```cuda\n", StringComparison.Ordinal) + "```cuda\n".Length;
        var excerpt = section[excerptStart..section.IndexOf("```", excerptStart, StringComparison.Ordinal)].Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains(excerpt, l => l.Contains("kdsl_score_mod", StringComparison.Ordinal));
        Assert.All(excerpt.Where(l => l.Trim() != "..."), l => Assert.Contains(l, mmaSync));
    }

    [Fact]
    public void The_first_program_of_Use_it_in_your_project_compiles_with_the_variant_example_and_names_its_generated_files()
    {
        var readme = Readme();
        var declaration = CSharpBlocksAfter(readme, VariantHeading).First();
        var program = Assert.Single(CSharpBlocksAfter(readme, "## Use it in your project"));

        // `dotnet new console`: implicit usings, nullable, top-level statements; the package's library and generator.
        var compilation = GeneratorHarness.Compilation(ImplicitUsings, declaration, program)
            .AddReferences(AttentionLibrary())
            .WithOptions(new CSharpCompilationOptions(OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Enable));
        var driver = GeneratorHarness.Driver().RunGeneratorsAndUpdateCompilation(compilation, out var output, out var diagnostics, TestContext.Current.CancellationToken);
        Assert.Empty(diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error));
        var errors = output.GetDiagnostics(TestContext.Current.CancellationToken).Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        Assert.True(errors.Count == 0, string.Join("\n", errors));

        // The files the section names are the ones the generator writes.
        var hintNames = driver.GetRunResult().Results.SelectMany(r => r.GeneratedSources).Select(s => s.HintName).ToList();
        var section = readme[readme.IndexOf("\n## Use it in your project\n", StringComparison.Ordinal)..];
        Assert.Contains("`MyModels.WindowSoftcap.MmaSync.cu.g.cs`", section);
        Assert.Contains("MyModels.WindowSoftcap.MmaSync.cu.g.cs", hintNames);
        Assert.Contains("MyModels.WindowSoftcap.MmaSync.g.cs", hintNames);
        Assert.Contains("`MyKernels.MyGemm.cu.g.cs`", readme);
    }
}
