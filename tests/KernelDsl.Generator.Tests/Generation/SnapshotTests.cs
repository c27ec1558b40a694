using System.Runtime.CompilerServices;
using GeneratorTests.Infrastructure;

namespace GeneratorTests.Generation;

/// <summary>
/// The generated CUDA (as a .cu file) and C# launcher of every variant the repository declares, reviewed like code.
/// The declarations are read from the source tree, so a new variant gets a snapshot the first time it runs.
/// </summary>
public class SnapshotTests
{
    private static string RepositoryRoot([CallerFilePath] string path = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, "..", "..", ".."));

    /// <summary>Every .cs file under src/Attention and samples that declares a kernel family.</summary>
    public static TheoryData<string> DeclarationFiles() => new(DeclarationPaths());

    private static IEnumerable<string> DeclarationPaths()
    {
        var root = RepositoryRoot();
        foreach (var folder in new[] { "src/Attention", "samples" })
        {
            foreach (var file in Directory.EnumerateFiles(Path.Combine(root, folder), "*.cs", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            {
                if (file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
                {
                    continue;
                }
                var text = File.ReadAllText(file);
                var families = KernelDsl.Generator.Parsing.DeclarationReader.FamilyAttributes
                    .Select(f => "[" + f["KernelDsl.".Length..^"Attribute".Length]);
                // "[PagedDecode(" or "[PagedDecode]", not a collection expression such as "[PagedDecodeD128.With()]".
                if (families.Any(a => text.Contains(a + "(", StringComparison.Ordinal) || text.Contains(a + "]", StringComparison.Ordinal)))
                {
                    yield return Path.GetRelativePath(root, file).Replace('\\', '/');
                }
            }
        }
    }

    /// <summary>
    /// The generator's run over one declaration file, and its generated files: the file's folder comes along, so a
    /// declaration Like one in another file resolves; a sample's may be Like the library's attention kernels, so those
    /// come along too. Only this file's types' sources are returned.
    /// </summary>
    private static (GeneratorHarness.Run Run, List<Microsoft.CodeAnalysis.GeneratedSourceResult> Sources) Generate(string declarationFile)
    {
        var root = RepositoryRoot();
        var path = Path.Combine(root, declarationFile);
        var declarations = File.ReadAllText(path);
        const string Library = "src/Attention/FlashAttention";
        var others = DeclarationPaths()
            .Where(f => f != declarationFile && (Path.GetDirectoryName(f) == Path.GetDirectoryName(declarationFile) ||
                declarationFile.StartsWith("samples/", StringComparison.Ordinal) && Path.GetDirectoryName(f)!.Replace('\\', '/') == Library))
            .Select(f => File.ReadAllText(Path.Combine(root, f)));
        var run = GeneratorHarness.RunGenerator([declarations, .. others]);
        var declared = DeclaredTypes(declarations);
        // A family's kernels are nested in the family type, which this file declares.
        bool FromThisFile(string type) => declared.Contains(type) || declared.Contains(type[..Math.Max(0, type.LastIndexOf('.'))]);
        return (run, run.Sources.Where(s => s.HintName != "KernelDsl.DeclaredKernels.g.cs" && FromThisFile(TypeOf(s.HintName))).ToList());
    }

    [Theory]
    [MemberData(nameof(DeclarationFiles))]
    public void Generated_CUDA_and_launchers_match_their_snapshots(string declarationFile)
    {
        var (run, sources) = Generate(declarationFile);
        Assert.Empty(run.GeneratorDiagnostics.Where(d => d.Severity == Microsoft.CodeAnalysis.DiagnosticSeverity.Error));
        Assert.Empty(run.CompilationErrors);
        Assert.NotEmpty(sources);
        var failures = new List<string>();
        foreach (var source in sources)
        {
            var text = source.SourceText.ToString();
            var name = source.HintName.Replace(".g.cs", "", StringComparison.Ordinal);
            if (name.EndsWith(".cu", StringComparison.Ordinal))
            {
                failures.Add(Snapshot.Check(RawStringContent(text), name[..^3], "cu") ?? "");
            }
            else
            {
                failures.Add(Snapshot.Check(text, name, "cs") ?? "");
            }
        }
        Assert.Equal("", string.Join("\n", failures.Where(f => f.Length > 0)));
    }

    /// <summary>(declaration file, kernel type, target) for each kernel the samples declare and each of its targets.</summary>
    public static TheoryData<string, string, string> SampleKernelTargets()
    {
        var data = new TheoryData<string, string, string>();
        foreach (var file in DeclarationPaths().Where(f => f.StartsWith("samples/", StringComparison.Ordinal)))
        {
            foreach (var launcher in Generate(file).Sources.Where(s => !s.HintName.EndsWith(".cu.g.cs", StringComparison.Ordinal)))
            {
                var targets = System.Text.RegularExpressions.Regex.Match(launcher.SourceText.ToString(), @"Targets = \[(?<t>[^\]]*)\]").Groups["t"].Value;
                foreach (var target in targets.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                {
                    data.Add(file, TypeOf(launcher.HintName), target.Trim('"'));
                }
            }
        }
        return data;
    }

    /// <summary>
    /// The samples' kernels compile under NVRTC for each of their targets without spills, under the library's bar
    /// (<see cref="KernelDsl.Testing.SpillBar"/>): the GEMM quick start prints ptxas's report, where a spill reads as a
    /// failure. Its int8 GEMM once spilled 32 bytes on sm_90 (Int8GemmQuickStart.cs says how it was retuned).
    /// </summary>
    [Theory]
    [MemberData(nameof(SampleKernelTargets))]
    [KernelDsl.Testing.RequiresNvrtc(TargetArgument = "target")]
    public void The_samples_kernels_compile_without_spills(string declarationFile, string kernel, string target)
    {
        var compiler = KernelDsl.NvrtcAvailability.GetOrSkip(Assert.Skip);
        var cuda = RawStringContent(Generate(declarationFile).Sources.Single(s => s.HintName == kernel + ".cu.g.cs").SourceText.ToString());
        var result = compiler.Compile(new KernelDsl.NvrtcRequest(cuda, kernel, target, [], PtxasVerbose: true));
        Assert.NotEmpty(result.Kernels);
        Assert.All(result.Kernels, k => Assert.Null(KernelDsl.Testing.SpillBar.Miss(k, compiler.Version)));
    }

    [Fact]
    public void The_library_warns_only_where_it_means_to()
    {
        // src/Attention's project file turns KDSL0103 off for its own build: this is where the warning is still checked.
        // Recipe A's GEMM keeps its 2-way conflicts on purpose; any other warning in the library is a regression.
        var root = RepositoryRoot();
        var library = DeclarationPaths().Where(f => f.StartsWith("src/Attention/", StringComparison.Ordinal)).Select(f => File.ReadAllText(Path.Combine(root, f)));
        var run = GeneratorHarness.RunGenerator([.. library]);
        var warnings = run.GeneratorDiagnostics.Where(d => d.Severity >= Microsoft.CodeAnalysis.DiagnosticSeverity.Warning).ToList();
        var warning = Assert.Single(warnings);
        Assert.Equal("KDSL0103", warning.Id);
        // Int8GemmNNTransPrmt's B: 128-byte rows under Swizzle(3,4,3), read by ldmatrix.trans in natural k order.
        Assert.Contains("operand B (128-byte rows, Swizzle(3,4,3)) has 2-way bank conflicts", warning.GetMessage(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
    }

    /// <summary>The type a generated file belongs to: its hint name without ".g.cs" or ".cu.g.cs".</summary>
    private static string TypeOf(string hintName) => hintName.Replace(".cu.g.cs", "", StringComparison.Ordinal).Replace(".g.cs", "", StringComparison.Ordinal);

    /// <summary>The full names of the types a file declares, nested ones included.</summary>
    private static HashSet<string> DeclaredTypes(string text)
    {
        var tree = Microsoft.CodeAnalysis.CSharp.CSharpSyntaxTree.ParseText(text, GeneratorHarness.ParseOptions);
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var type in tree.GetRoot().DescendantNodes().OfType<Microsoft.CodeAnalysis.CSharp.Syntax.TypeDeclarationSyntax>())
        {
            var parts = type.AncestorsAndSelf().Select(n => n switch
            {
                Microsoft.CodeAnalysis.CSharp.Syntax.TypeDeclarationSyntax t => t.Identifier.Text,
                Microsoft.CodeAnalysis.CSharp.Syntax.BaseNamespaceDeclarationSyntax ns => ns.Name.ToString(),
                _ => null,
            }).Where(p => p is not null).Reverse();
            names.Add(string.Join(".", parts));
        }
        return names;
    }

    /// <summary>The text of the one raw string literal in a generated .cu.g.cs file, dedented.</summary>
    public static string RawStringContent(string generated)
    {
        var lines = generated.Split('\n');
        var open = Array.FindIndex(lines, l => l.TrimEnd().EndsWith("= \"\"\"", StringComparison.Ordinal) || l.TrimEnd().EndsWith("\"\"\"\"", StringComparison.Ordinal));
        var close = Array.FindLastIndex(lines, l => l.TrimStart().StartsWith("\"\"\"", StringComparison.Ordinal));
        var indent = lines[close].Length - lines[close].TrimStart().Length;
        return string.Join("\n", lines[(open + 1)..close].Select(l => l.Length >= indent ? l[indent..] : l.TrimStart())) + "\n";
    }
}
