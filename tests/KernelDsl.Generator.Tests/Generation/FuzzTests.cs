using System.Text;
using GeneratorTests.Infrastructure;
using Microsoft.CodeAnalysis;

namespace GeneratorTests.Generation;

/// <summary>
/// Random declarations, valid and invalid, never crash the generator: each either yields KDSL errors and no kernel,
/// or no errors and generated code that compiles. A crash shows up as CS8785 (generator threw).
/// </summary>
public class FuzzTests(ITestOutputHelper output)
{
    private static readonly string[] Families = ["Int8Gemm", "Quantize", "FlashAttentionForward", "LseMerge", "KvCacheAppend", "PagedDecode", "KvStatistics", "KvCodes", "KvSinglePass"];
    private static readonly string[] Operands = ["A", "B", "C", "Q", "K", "V", "O"];
    private static readonly string[] Elements = ["S8", "U8", "F16", "BF16", "F32", "E4M3", "S32"];
    private static readonly string[] CopyAtoms = ["CpAsync16", "LdgSts16", "Ldsm", "LdsmTrans", "LdsmTransPrmt", "LdsmPrmtMovmatrix", "LdsmPretransposed", "Stmatrix", "Tma"];
    private static readonly string[] Mmas = ["M16N8K32_S32S8S8", "M16N8K32_S32U8S8", "M16N8K16_F32F16F16", "M16N8K32_F32E4M3E4M3", "Wgmma_M64N64K32_S32S8S8", "M16N8K16_F32BF16BF16", "Wgmma_M64N128K32_S32S8S8", "Wgmma_M64N128K32_S32U8S8_RS", "Wgmma_M64N64K32_S32U8S8_RS"];
    private static readonly string[] Sms = ["Sm75", "Sm80", "Sm86", "Sm89", "Sm90", "Sm90a"];

    private static int Pick(Random r, params int[] values) => values[r.Next(values.Length)];

    private static string Declaration(Random r, int index)
    {
        if (r.Next(3) == 0)
        {
            // A valid GEMM, mutated within the space of sensible values: most of these generate.
            var atom = CopyAtoms[r.Next(2, 7)];
            return $"[Int8Gemm(BlockM = {Pick(r, 64, 128)}, BlockN = {Pick(r, 64, 128)}, BlockK = {Pick(r, 32, 64)}, Warps = {Pick(r, 2, 4, 8)}, Stages = {Pick(r, 2, 3, 4)}, Layout = GemmLayout.{(atom == "Ldsm" ? "TN" : "NN")})]\n"
                + $"[SmemLayout(Operand.A, Element.S8, {r.Next(0, 4)}, 4, {r.Next(3, 5)})]\n[SmemLayout(Operand.B, Element.S8, {r.Next(0, 4)}, 4, {r.Next(3, 5)})]\n"
                + $"[CopyAtom(Operand.A, CopyAtoms.Ldsm)]\n[CopyAtom(Operand.B, CopyAtoms.{atom})]\n[MmaAtom(MmaAtoms.M16N8K32_S32S8S8)]\npublic static partial class Kernel{index};\n";
        }
        var family = Families[r.Next(Families.Length)];
        var parameters = family switch
        {
            "Int8Gemm" => $"BlockM = {Pick(r, 16, 32, 64, 128, 256, 48, 0, -16)}, BlockN = {Pick(r, 16, 32, 64, 128, 96)}, BlockK = {Pick(r, 32, 64, 128, 48)}, Warps = {Pick(r, 1, 2, 4, 8, 16, 3)}, Stages = {Pick(r, 1, 2, 3, 4, 9, 0)}, Layout = GemmLayout.{(r.Next(2) == 0 ? "TN" : "NN")}, Output = GemmOutput.{(r.Next(2) == 0 ? "S32" : "F16Scaled")}",
            "Quantize" => $"Input = Element.{Elements[r.Next(Elements.Length)]}, Granularity = QuantGranularity.{(r.Next(2) == 0 ? "PerRowBlock" : "PerChannel")}, BlockRows = {Pick(r, 16, 64, 128, 100, 0)}, HeadDim = {Pick(r, 64, 96, 128, 256, 100)}, SubtractChannelMean = {(r.Next(2) == 0 ? "true" : "false")}, Transposed = {(r.Next(3) == 0 ? "true" : "false")}, TransposePad = {Pick(r, 16, 64, 24)}, Threads = {Pick(r, 64, 128, 256, 100)}",
            "FlashAttentionForward" => $"HeadDim = {Pick(r, 64, 96, 128, 256, 80)}, BlockM = {Pick(r, 64, 128, 256)}, BlockN = {Pick(r, 32, 64, 128, 48)}, Warps = {Pick(r, 4, 8, 16, 3)}, Stages = {Pick(r, 1, 2, 3, 5)}, Causal = {(r.Next(2) == 0 ? "true" : "false")}, Output = Element.{Elements[r.Next(Elements.Length)]}",
            "KvCacheAppend" => $"HeadDim = {Pick(r, 64, 96, 128, 256, 100, 0)}, PageSize = {Pick(r, 16, 64, 128, 256, 24, 0)}, Input = Element.{Elements[r.Next(Elements.Length)]}, Threads = {Pick(r, 32, 128, 256, 100)}",
            "KvStatistics" => $"HeadDim = {Pick(r, 64, 96, 128, 256, 100, 0)}, SliceTokens = {Pick(r, 16, 256, 1024, 24, 0)}, Input = Element.{Elements[r.Next(Elements.Length)]}, VOutput = Element.{Elements[r.Next(Elements.Length)]}, Threads = {Pick(r, 64, 256, 1024, 100)}",
            "KvCodes" => $"HeadDim = {Pick(r, 64, 96, 128, 256, 100, 0)}, KScaleKeys = {Pick(r, 16, 64, 256, 1024, 24, 0)}, Input = Element.{Elements[r.Next(Elements.Length)]}, VOutput = Element.{Elements[r.Next(Elements.Length)]}, VTransposed = {(r.Next(2) == 0 ? "true" : "false")}, TransposePad = {Pick(r, 16, 64, 128, 24, 0)}, Threads = {Pick(r, 64, 256, 1024, 100)}",
            "KvSinglePass" => $"HeadDim = {Pick(r, 64, 96, 128, 256, 100, 0)}, SliceTokens = {Pick(r, 64, 128, 256, 512, 96, 0)}, KScaleKeys = {Pick(r, 16, 64, 128, 24, 0)}, Input = Element.{Elements[r.Next(Elements.Length)]}, VOutput = Element.{Elements[r.Next(Elements.Length)]}, VTransposed = {(r.Next(2) == 0 ? "true" : "false")}, TransposePad = {Pick(r, 16, 64, 128, 24, 0)}, Threads = {Pick(r, 64, 256, 1024, 100)}",
            "PagedDecode" => $"HeadDim = {Pick(r, 64, 128, 96, 0)}, PageSize = {Pick(r, 64, 32, 0)}, Input = Element.{Elements[r.Next(Elements.Length)]}, Warps = {Pick(r, 1, 2, 4, 8, 3, 16)}, Stages = {Pick(r, 1, 2, 3, 4, 5)}",
            _ => $"HeadDim = {Pick(r, 64, 128, 60, 0)}, Threads = {Pick(r, 32, 128, 100)}",
        };
        var text = new StringBuilder();
        text.Append($"[{family}({parameters}, Targets = new[] {{ Sm.{Sms[r.Next(Sms.Length)]}{(r.Next(2) == 0 ? ", Sm.Sm90" : "")} }})]\n");
        for (var i = r.Next(4); i > 0; i--)
        {
            text.Append($"[SmemLayout(Operand.{Operands[r.Next(Operands.Length)]}, Element.{Elements[r.Next(Elements.Length)]}, {r.Next(-1, 5)}, {r.Next(0, 6)}, {r.Next(0, 8)})]\n");
        }
        for (var i = r.Next(5); i > 0; i--)
        {
            text.Append($"[CopyAtom(Operand.{Operands[r.Next(Operands.Length)]}, CopyAtoms.{CopyAtoms[r.Next(CopyAtoms.Length)]})]\n");
        }
        for (var i = r.Next(3); i > 0; i--)
        {
            text.Append($"[MmaAtom(MmaAtoms.{Mmas[r.Next(Mmas.Length)]}{(r.Next(2) == 0 ? ", Product = MmaProduct.PV" : "")})]\n");
        }
        text.Append(r.Next(10) == 0 ? $"public static class Kernel{index} {{ }}\n" : $"public static partial class Kernel{index};\n");
        return text.ToString();
    }

    [Fact]
    public void Random_declarations_never_crash_the_generator()
    {
        var seed = Environment.TickCount;
        var random = new Random(seed);
        int valid = 0, invalid = 0;
        for (var batch = 0; batch < 40; batch++)
        {
            var declarations = Enumerable.Range(0, 10).Select(i => Declaration(random, batch * 10 + i)).ToArray();
            var source = "using KernelDsl;\nnamespace Fuzz;\n" + string.Join("\n", declarations);
            var run = GeneratorHarness.RunGenerator(source);
            var crashes = run.Output.GetDiagnostics(TestContext.Current.CancellationToken).Concat(run.GeneratorDiagnostics).Where(d => d.Id is "CS8785" or "AD0001").ToList();
            Assert.True(crashes.Count == 0, $"seed {seed}: the generator threw on\n{source}\n{string.Join("\n", crashes)}");
            for (var i = 0; i < declarations.Length; i++)
            {
                var name = $"Kernel{batch * 10 + i}";
                var errors = run.GeneratorDiagnostics.Where(d => d.Severity == DiagnosticSeverity.Error && OwnerOf(source, d) == name).ToList();
                var generated = run.Sources.Any(s => s.HintName == $"Fuzz.{name}.g.cs");
                Assert.False(errors.Count > 0 && generated, $"seed {seed}: {name} has errors but was generated:\n{declarations[i]}");
                if (errors.Count > 0) invalid++;
                if (generated) valid++;
            }
            Assert.True(run.CompilationErrors.All(e => e.Id.StartsWith("KDSL", StringComparison.Ordinal) || e.Location.SourceTree?.FilePath.EndsWith(".g.cs", StringComparison.Ordinal) != true),
                $"seed {seed}: generated code does not compile:\n{string.Join("\n", run.CompilationErrors.Where(e => e.Location.SourceTree?.FilePath.EndsWith(".g.cs", StringComparison.Ordinal) == true))}");
        }
        output.WriteLine($"seed {seed}: {valid} declarations generated, {invalid} rejected with KDSL errors");
        Assert.True(invalid > 0 && valid > 0, $"the fuzzer should produce both valid and invalid declarations ({valid} valid, {invalid} invalid)");
    }

    /// <summary>The kernel a diagnostic belongs to: the first "class KernelN" at or after its line.</summary>
    private static string OwnerOf(string source, Diagnostic diagnostic)
    {
        var lines = source.Split('\n');
        for (var line = diagnostic.Location.GetLineSpan().StartLinePosition.Line; line < lines.Length; line++)
        {
            var at = lines[line].IndexOf("class Kernel", StringComparison.Ordinal);
            if (at >= 0)
            {
                return new string(lines[line][(at + 6)..].TakeWhile(char.IsLetterOrDigit).ToArray());
            }
        }
        return "";
    }
}
