using System.Text;
using KernelDsl.Attention.IO;

namespace CliTests;

/// <summary>
/// Every command over every bad input a newcomer was seen to give it (issue 15) and the ones found since: each is a
/// usage error, exit code 2, exactly one line on standard error naming the argument, no .NET exception text or stack
/// frame anywhere, and no output file.
/// </summary>
[Collection(CliCollection.Name)]
public class CliBadInputTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("kdsl-bad-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private string PathOf(string name) => Path.Combine(_folder, name);

    /// <summary>The case name, the argument its one line must name, and text it must hold besides (the rule or the fix).</summary>
    public static TheoryData<string, string, string> Cases => new()
    {
        // Files.
        { "missing q", "--q", "no file" },
        { "q not npy", "--q", "not a .npy file" },
        { "q truncated", "--q", "truncated" },
        { "q float32", "--q", "holds float32 ('<f4'); float16 ('<f2') is needed" },
        { "q big-endian f16", "--q", "big-endian float16" },
        { "k is a directory", "--k", "directory" },
        { "v float64", "--v", "float64" },
        // Shapes, by tensor and dimension.
        { "q 3-D", "--q", "4-D" },
        { "k S 260 vs v 257", "--k", "S = 260" },
        { "k D 64 vs q 128", "--k", "D = 64" },
        { "v B 2 vs q 1", "--v", "B = 2" },
        { "k heads do not divide q's", "--k", "H = 3" },
        { "BSHD heads do not divide", "--k", "H = 3" },
        // Output.
        { "out in a missing directory", "--out", "does not exist" },
        { "out is a directory", "--out", "is a directory" },
        { "out cannot be written", "--out", "cannot be written" },
        { "out is q", "--out", "is the file --q reads: writing O there would overwrite an input" },
        { "out is v by another path", "--out", "is the file --v reads" },
        { "out is a link to k", "--out", "is the file --k reads" },
        // Modes nothing declares.
        { "D 80", "D = 80", "declared head dims" },
        { "Movmatrix at D 64", "--v-strategy", "declared strategies" },
        { "InKernelTranspose at D 64", "--v-strategy", "declared strategies" },
        { "tile undeclared", "--tile", "declared:" },
        { "NaN in q", "--q", "NaN" },
        { "Inf in v", "--v", "±Inf" },
        { "autotune with Float16", "--autotune", "--pv" },
        { "v-strategy with Float16", "--v-strategy", "--pv Float16 has no such choice" },
        { "v-strategy with E4M3", "--v-strategy", "--pv E4M3 has no such choice" },
        { "autotune with a tile", "--autotune", "--tile" },
        { "variant with autotune", "--variant", "--autotune" },
        { "documents decrease", "--arg documents", "must never decrease (documents[i] ≤ documents[i + 1]: the modifier's parameter is [Nondecreasing]), but it decreases at index 20: documents[19] = 1, documents[20] = 0." },
        // Parsing.
        { "layout unknown", "--layout", "BSHD" },
        { "out missing", "--out", "required" },
        { "pv unknown", "--pv", "Float16" },
        // Other commands.
        { "compile arch banana", "--arch", "sm_80" },
        { "compile arch sm_70", "--arch", "sm_75" },
        { "compile arch sm_80 for wgmma only", "--arch", "sm_90" },
        { "compile only Nope", "--only", "matches no declared variant" },
        { "list format xml", "--format", "Json" },
        { "cuda unknown variant", "variant", "in its CudaSource constant" },
        { "cuda ambiguous suffix", "variant 'D128'", "is ambiguous; it matches 6 variants: Alibi.D128, CausalMask.D128, DocumentMask.D128, PrefixLm.D128, SlidingWindow.D128, Softcap.D128." },
        { "bench csv in a missing directory", "--csv", "does not exist" },
        { "bench head dim 96", "--head-dim", "64 or 128" },
        { "bench decode with variants", "--variants", "--decode and --variants cannot be used together" },
        { "bench split neighbours without decode", "--split-neighbours", "--split-neighbours applies to --decode only" },
        { "bench variants with head dim", "--head-dim", "--variants and --head-dim cannot be used together" },
        { "bench variants with quick", "--quick", "--variants and --quick cannot be used together" },
        { "bench variants with only", "--only", "--variants and --only cannot be used together" },
        { "bench quick with seq", "--quick", "--quick and --seq cannot be used together" },
        { "plot missing csv", "--ours", "no file" },
        { "plot malformed csv", "--ours", "line 2" },
        { "plot malformed csv after a blank line", "--ours", "line 3" },
        { "plot csv with a repeated column", "--ours", "'seq' twice" },
        { "plot an npy", "--ours", "is not a kdsl bench CSV: no 'variant', 'head_dim', 'seq', 'causal' or 'kernel_tops' column" },
        { "plot a variants csv", "--ours", "is not a kdsl bench CSV: no 'causal' or 'kernel_tops' column (it needs variant, head_dim, seq, causal, kernel_tops)." },
        { "plot sdpa without tops", "--sdpa", "is not a bench/sdpa.py CSV: no 'tops' column" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_bad_input_is_one_line_naming_the_argument_with_exit_code_2(string name, string argument, string rule)
    {
        var args = Arguments(name);
        var run = CliRunner.Run(args);
        Assert.True(run.Code == 2, run.ToString());
        var line = Assert.Single(run.ErrorLines);
        Assert.Contains(argument, line);
        Assert.Contains(rule, line);
        Assert.DoesNotContain("Unhandled exception", run.All);
        Assert.DoesNotContain("Exception", run.All);
        Assert.DoesNotContain("   at ", run.All);
        Assert.DoesNotMatch(@"[\p{Cc}\uFFFD]", line);  // no bytes of a binary input echoed
        Assert.False(File.Exists(PathOf("o.npy")), "no output is written");

        // --verbose adds nothing to a usage error: it is the caller's mistake, and the line says it all.
        var verbose = CliRunner.Run([.. args, "--verbose"]);
        Assert.Equal(2, verbose.Code);
        Assert.Equal(line, Assert.Single(verbose.ErrorLines));
    }

    /// <summary>Every enum option of every command, as the command tree declares it (its command's path, the option).</summary>
    public static TheoryData<string[], string> EnumOptions()
    {
        var data = new TheoryData<string[], string>();
        void Walk(System.CommandLine.Command command, string[] path)
        {
            foreach (var option in command.Options.Where(o => KernelDsl.Cli.EnumOptions.EnumType(o) is not null))
            {
                data.Add(path, option.Name);
            }
            foreach (var subcommand in command.Subcommands)
            {
                Walk(subcommand, [.. path, subcommand.Name]);
            }
        }
        Walk(KernelDsl.Cli.CliApp.Build(), []);
        return data;
    }

    [Theory]
    [MemberData(nameof(EnumOptions))]
    public void Every_enum_option_refuses_a_name_or_number_it_does_not_declare_naming_the_option_and_its_values(string[] command, string option)
    {
        var type = KernelDsl.Cli.EnumOptions.EnumType(KernelDsl.Cli.CliApp.Build().Subcommands.Single(c => c.Name == command[0]).Options.Single(o => o.Name == option))!;
        foreach (var value in new[] { "Bogus", "7" })
        {
            var run = CliRunner.Run([.. command, option, value]);
            Assert.True(run.Code == 2, run.ToString());
            var line = Assert.Single(run.ErrorLines);
            Assert.Contains($"{option}: '{value}' is not one of {string.Join(", ", Enum.GetNames(type))}.", line);
            Assert.DoesNotContain("expected type", line);
            Assert.DoesNotContain(type.Name, line.Replace($"'{value}'", ""));
        }
    }

    [Fact]
    public void An_unknown_command_is_one_line_naming_it()
    {
        var run = CliRunner.Run("frobnicate");
        Assert.Equal(2, run.Code);
        var line = Assert.Single(run.ErrorLines);
        Assert.StartsWith("Unrecognized command or argument 'frobnicate'.", line);
        Assert.DoesNotContain("Required command", line);
    }

    [Fact]
    public void An_enum_value_is_read_in_any_case_and_its_error_is_one_plain_line()
    {
        Assert.Equal(0, CliRunner.Run("list", "--format", "JSON").Code);
        var run = CliRunner.Run("list", "--format", "xml");
        Assert.Equal(2, run.Code);
        Assert.Equal("--format: 'xml' is not one of Auto, Plain, Table, Json. (`kdsl list --help` lists the options.)", Assert.Single(run.ErrorLines));
    }

    [Fact]
    public void Compile_refuses_an_arch_the_loaded_nvrtc_does_not_support_listing_those_it_does()
    {
        var nvrtc = KernelDsl.NvrtcAvailability.GetOrSkip(Assert.Skip);
        var beyond = $"sm_{Enumerable.Range(nvrtc.SupportedArchitectures.Max() + 1, 200).First(c => c % 10 == 0)}";
        var run = CliRunner.Run("compile", "--arch", beyond, "--only", "QuantizeQBlock128D64Bf16");
        Assert.True(run.Code == 2, run.ToString());
        var line = Assert.Single(run.ErrorLines);
        Assert.StartsWith($"--arch {beyond}: NVRTC {nvrtc.Version} cannot compile {beyond}: it supports ", line);
        Assert.Contains("sm_80", line);
        Assert.DoesNotContain("invalid value", run.All);
        Assert.DoesNotContain("compiled", run.Output);
    }

    private string[] Arguments(string name)
    {
        string[] Attention(string q = "q.npy", string k = "k.npy", string v = "v.npy", string o = "o.npy") =>
            ["attention", "--q", PathOf(q), "--k", PathOf(k), "--v", PathOf(v), "--out", PathOf(o), "--no-reference"];
        Tensor("q.npy", 1, 2, 33, 128);
        Tensor("k.npy", 1, 2, 33, 128);
        Tensor("v.npy", 1, 2, 33, 128);
        return name switch
        {
            "missing q" => Attention(q: "nothing.npy"),
            "q not npy" => Write("junk.npy", Encoding.ASCII.GetBytes("q,k,v\n1,2,3\n"), Attention(q: "junk.npy")),
            "q truncated" => Write("cut.npy", File.ReadAllBytes(PathOf("q.npy"))[..^100], Attention(q: "cut.npy")),
            "q float32" => Write("f32.npy", Header("<f4", [1, 2, 33, 128], 4), Attention(q: "f32.npy")),
            "q big-endian f16" => Write("be.npy", Header(">f2", [1, 2, 33, 128], 2), Attention(q: "be.npy")),
            "k is a directory" => Mkdir("dir.npy", Attention(k: "dir.npy")),
            "v float64" => Write("f64.npy", Header("<f8", [1, 2, 33, 128], 8), Attention(v: "f64.npy")),
            "q 3-D" => Tensor("q3.npy", [2, 33, 128], Attention(q: "q3.npy")),
            "k S 260 vs v 257" => Tensor("q257.npy", [1, 2, 257, 128], Tensor("k260.npy", [1, 2, 260, 128], Tensor("v257.npy", [1, 2, 257, 128],
                Attention(q: "q257.npy", k: "k260.npy", v: "v257.npy")))),
            "k D 64 vs q 128" => Tensor("k64.npy", [1, 2, 33, 64], Attention(k: "k64.npy")),
            "v B 2 vs q 1" => Tensor("v2.npy", [2, 2, 33, 128], Attention(v: "v2.npy")),
            "k heads do not divide q's" => Tensor("q4.npy", [1, 4, 33, 128], Tensor("k3.npy", [1, 3, 33, 128], Tensor("v3.npy", [1, 3, 33, 128],
                Attention(q: "q4.npy", k: "k3.npy", v: "v3.npy")))),
            "BSHD heads do not divide" => Tensor("q4.npy", [1, 33, 4, 128], Tensor("k3.npy", [1, 33, 3, 128], Tensor("v3.npy", [1, 33, 3, 128],
                [.. Attention(q: "q4.npy", k: "k3.npy", v: "v3.npy"), "--layout", "BSHD"]))),
            "out in a missing directory" => Attention(o: "no-such-folder/o.npy"),
            "out is a directory" => Mkdir("out", Attention(o: "out")),
            "out cannot be written" => [.. Attention()[..^2], "/proc/o.npy", "--no-reference"],
            "out is q" => Attention(o: "q.npy"),
            "out is v by another path" => Mkdir("sub", Attention(o: "sub/../v.npy")),
            "out is a link to k" => Link("o-link.npy", "k.npy", Attention(o: "o-link.npy")),
            "D 80" => Tensor("q80.npy", [1, 2, 33, 80], Attention(q: "q80.npy", k: "q80.npy", v: "q80.npy")),
            "Movmatrix at D 64" => Tensor("q64.npy", [1, 2, 33, 64], [.. Attention(q: "q64.npy", k: "q64.npy", v: "q64.npy"), "--v-strategy", "Movmatrix"]),
            "InKernelTranspose at D 64" => Tensor("q64.npy", [1, 2, 33, 64], [.. Attention(q: "q64.npy", k: "q64.npy", v: "q64.npy"), "--v-strategy", "InKernelTranspose"]),
            "tile undeclared" => [.. Attention(), "--tile", "256x256-w16-s9"],
            "NaN in q" => NonFinite("qnan.npy", Half.NaN, Attention(q: "qnan.npy")),
            "Inf in v" => NonFinite("vinf.npy", Half.PositiveInfinity, Attention(v: "vinf.npy")),
            "autotune with Float16" => [.. Attention(), "--autotune", "--pv", "Float16"],
            "v-strategy with Float16" => [.. Attention(), "--pv", "Float16", "--v-strategy", "Movmatrix"],
            "v-strategy with E4M3" => [.. Attention(), "--pv", "E4M3", "--v-strategy", "TransPrmt"],
            "autotune with a tile" => [.. Attention(), "--autotune", "--tile", "128x64-w8-s2"],
            "variant with autotune" => [.. Attention(), "--variant", "SlidingWindow.D128", "--arg", "window=8", "--autotune"],
            "documents decrease" => Ids("documents.npy", [.. Enumerable.Repeat(0, 10), .. Enumerable.Repeat(1, 10), .. Enumerable.Repeat(0, 5), .. Enumerable.Repeat(2, 8)],
                [.. Attention(), "--variant", "DocumentMask.D128", "--arg", "documents=@" + PathOf("documents.npy")]),
            "layout unknown" => [.. Attention(), "--layout", "BHDS"],
            "out missing" => Attention()[..^3],
            "pv unknown" => [.. Attention(), "--pv", "F16"],
            "compile arch banana" => ["compile", "--arch", "banana"],
            "compile arch sm_70" => ["compile", "--arch", "sm_70", "--only", "QuantizeQBlock128D64"],
            "compile arch sm_80 for wgmma only" => ["compile", "--arch", "sm_80", "--only", "Wgmma"],
            "compile only Nope" => ["compile", "--only", "Nope"],
            "list format xml" => ["list", "--format", "xml"],
            "cuda unknown variant" => ["cuda", "NoSuchVariant"],
            "cuda ambiguous suffix" => ["cuda", "D128"],
            "bench csv in a missing directory" => ["bench", "--csv", PathOf("no-such-folder/bench.csv")],
            "bench head dim 96" => ["bench", "--head-dim", "96"],
            "bench decode with variants" => ["bench", "--decode", "--variants"],
            "bench split neighbours without decode" => ["bench", "--split-neighbours", "--csv", PathOf("bench.csv")],
            "bench variants with head dim" => ["bench", "--variants", "--head-dim", "128", "--csv", PathOf("bench.csv")],
            "bench variants with quick" => ["bench", "--variants", "--quick", "--csv", PathOf("bench.csv")],
            "bench variants with only" => ["bench", "--variants", "--only", "WgmmaStages3", "--csv", PathOf("bench.csv")],
            "bench quick with seq" => ["bench", "--quick", "--seq", "4096", "--csv", PathOf("bench.csv")],
            "plot missing csv" => ["plot", "--ours", PathOf("nothing.csv"), "--out", PathOf("plot")],
            "plot malformed csv" => Write("bench.csv", Encoding.ASCII.GetBytes("variant,head_dim,seq,causal,kernel_tops\nx,128,many,False,1\n"),
                ["plot", "--ours", PathOf("bench.csv"), "--out", PathOf("plot")]),
            "plot malformed csv after a blank line" => Write("bench.csv", Encoding.ASCII.GetBytes("variant,head_dim,seq,causal,kernel_tops\n\nx,128,many,False,1\n"),
                ["plot", "--ours", PathOf("bench.csv"), "--out", PathOf("plot")]),
            "plot csv with a repeated column" => Write("bench.csv", Encoding.ASCII.GetBytes("variant,head_dim,seq,seq,causal,kernel_tops\nx,128,1024,1024,False,1\n"),
                ["plot", "--ours", PathOf("bench.csv"), "--out", PathOf("plot")]),
            "plot an npy" => ["plot", "--ours", PathOf("q.npy"), "--out", PathOf("plot")],
            "plot a variants csv" => Write("variants.csv", Encoding.ASCII.GetBytes("variant,seq,batch,heads,head_dim,kernel,kernel_ms,e2e_ms,kv_once_ms\ndense,4096,4,16,128,k,1.0,1.1,\n"),
                ["plot", "--ours", PathOf("variants.csv"), "--out", PathOf("plot")]),
            "plot sdpa without tops" => Write("bench.csv", Encoding.ASCII.GetBytes("variant,head_dim,seq,causal,kernel_tops\nx,128,1024,False,1\n"),
                Write("sdpa.csv", Encoding.ASCII.GetBytes("backend,head_dim,seq,causal,ms\nflash,128,1024,False,1\n"),
                    ["plot", "--ours", PathOf("bench.csv"), "--sdpa", PathOf("sdpa.csv"), "--out", PathOf("plot")])),
            _ => throw new ArgumentException($"no case '{name}'", nameof(name)),
        };
    }

    private void Tensor(string file, params int[] shape) => NpyFile.Write(PathOf(file), new Half[shape.Aggregate(1, (a, x) => a * x)], shape);

    private string[] Tensor(string file, int[] shape, string[] args)
    {
        var random = new Random(7);
        NpyFile.Write(PathOf(file), Enumerable.Range(0, shape.Aggregate(1, (a, x) => a * x)).Select(_ => (Half)(random.NextDouble() - 0.5)).ToArray(), shape);
        return args;
    }

    private string[] Ids(string file, int[] ids, string[] args)
    {
        NpyFile.Write(PathOf(file), ids, ids.Length);
        return args;
    }

    private string[] NonFinite(string file, Half value, string[] args)
    {
        var data = new Half[1 * 2 * 33 * 128];
        data[1000] = value;
        NpyFile.Write(PathOf(file), data, 1, 2, 33, 128);
        return args;
    }

    private string[] Write(string file, byte[] bytes, string[] args)
    {
        File.WriteAllBytes(PathOf(file), bytes);
        return args;
    }

    private string[] Link(string link, string target, string[] args)
    {
        File.CreateSymbolicLink(PathOf(link), PathOf(target));
        return args;
    }

    private string[] Mkdir(string folder, string[] args)
    {
        Directory.CreateDirectory(PathOf(folder));
        return args;
    }

    /// <summary>A well-formed .npy of another dtype, as numpy.save writes it (version 1.0, 64-byte aligned), zero-filled.</summary>
    private static byte[] Header(string descr, int[] shape, int elementBytes)
    {
        var header = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({string.Join(", ", shape)}), }}";
        header += new string(' ', (64 - (10 + header.Length + 1) % 64) % 64) + "\n";
        var bytes = new List<byte> { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0 };
        bytes.AddRange(BitConverter.GetBytes((ushort)header.Length));
        bytes.AddRange(Encoding.Latin1.GetBytes(header));
        bytes.AddRange(new byte[shape.Aggregate(1, (a, x) => a * x) * elementBytes]);
        return [.. bytes];
    }
}
