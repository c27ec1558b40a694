using System.Runtime.CompilerServices;
using GeneratorTests.Infrastructure;

namespace GeneratorTests.Generation;

/// <summary>The README's example declaration compiles as written and produces what the README says.</summary>
public class ReadmeTests
{
    private static string Readme([CallerFilePath] string path = "") =>
        File.ReadAllText(Path.Combine(Path.GetDirectoryName(path)!, "..", "..", "..", "README.md"));

    private static string FirstCSharpBlock(string markdown)
    {
        var start = markdown.IndexOf("```csharp\n", StringComparison.Ordinal) + "```csharp\n".Length;
        return markdown[start..markdown.IndexOf("```", start, StringComparison.Ordinal)];
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
}
