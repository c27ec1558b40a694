using System.CommandLine;
using System.Globalization;
using Spectre.Console;

namespace KernelDsl.Cli.Commands;

/// <summary>
/// <c>kdsl plot</c>: TOPS against sequence length, one PNG per head dim, like FlashAttention's figures: each of our
/// variants (kernel-only) and each torch SDPA backend from the same run; non-causal and causal in separate files.
/// </summary>
internal static class PlotCommand
{
    public static Command Create()
    {
        var ours = new Option<FileInfo>("--ours") { Description = "kdsl bench's CSV.", Required = true };
        var sdpa = new Option<FileInfo?>("--sdpa") { Description = "bench/sdpa.py's CSV from the same run." };
        var prefix = new Option<string>("--out") { Description = "Output prefix: writes PREFIX-d64.png, PREFIX-d64-causal.png, PREFIX-d128.png, ...", DefaultValueFactory = _ => "attention" };
        var command = new Command("plot", "Plot a benchmark CSV (TOPS vs sequence length per head dim).") { ours, sdpa, prefix };
        command.SetAction(parse => Run(parse.GetValue(ours)!, parse.GetValue(sdpa), parse.GetValue(prefix)!));
        return command;
    }

    internal sealed record Point(string Series, int HeadDim, int Seq, bool Causal, double Tops);

    /// <summary>
    /// Our rows, one series per variant at its default tile. The autotuned rows become one series whatever won (the
    /// winner is in the CSV and the table); rows of further tiles ("name [tile]") stay out of the plot to keep it legible.
    /// </summary>
    internal static IReadOnlyList<Point> ReadOurs(string path) => ReadCsv(path, "--ours", "a kdsl bench CSV", ["variant", "head_dim", "seq", "causal", "kernel_tops"], r => new Point(SeriesOf(r["variant"]), int.Parse(r["head_dim"], CultureInfo.InvariantCulture),
        int.Parse(r["seq"], CultureInfo.InvariantCulture), bool.Parse(r["causal"]), double.Parse(r["kernel_tops"], CultureInfo.InvariantCulture)))
        .Where(p => p.Series.Length > 0).ToList();

    private static string SeriesOf(string variant) =>
        variant.StartsWith("u8-PV autotuned", StringComparison.Ordinal) ? "u8-PV autotuned"
        : variant.Contains(" [", StringComparison.Ordinal) ? ""
        : variant;

    internal static IReadOnlyList<Point> ReadSdpa(string path) => ReadCsv(path, "--sdpa", "a bench/sdpa.py CSV", ["backend", "head_dim", "seq", "causal", "tops"], r => new Point("torch " + r["backend"], int.Parse(r["head_dim"], CultureInfo.InvariantCulture),
        int.Parse(r["seq"], CultureInfo.InvariantCulture), bool.Parse(r["causal"]), double.Parse(r["tops"], CultureInfo.InvariantCulture)));

    /// <param name="what">What the file should be ("a kdsl bench CSV"), for the message when its header lacks <paramref name="columns"/>.</param>
    /// <param name="columns">The columns <paramref name="parse"/> reads.</param>
    /// <exception cref="CliUsageException">
    /// The header lacks a column <paramref name="parse"/> reads (the file is not <paramref name="what"/>), or a line lacks a
    /// column or holds a value that does not parse; the message names the option, file and line.
    /// </exception>
    private static List<Point> ReadCsv(string path, string option, string what, string[] columns, Func<Dictionary<string, string>, Point> parse)
    {
        // Line numbers are the file's own (1-based), blank lines included, so the message points at the right line.
        var lines = File.ReadAllLines(path).Select((text, index) => (Text: text, Number: index + 1)).Where(l => l.Text.Length > 0).ToArray();
        if (lines.Length == 0)
        {
            throw new CliUsageException($"{option}: '{path}' is empty; it needs a header line and rows.");
        }
        var header = lines[0].Text.Split(',');
        // Checked before any row, so that another file (a .npy, another tool's CSV) is named as such, its bytes never echoed.
        var missing = columns.Where(c => !header.Contains(c)).ToList();
        if (missing.Count > 0)
        {
            throw new CliUsageException($"{option}: '{path}' is not {what}: no {string.Join(", ", missing.SkipLast(1).Select(c => $"'{c}'"))}" +
                $"{(missing.Count > 1 ? " or " : "")}'{missing[^1]}' column (it needs {string.Join(", ", columns)}).");
        }
        if (header.GroupBy(h => h).FirstOrDefault(g => g.Count() > 1) is { } repeated)
        {
            throw new CliUsageException($"{option}: '{path}' line {lines[0].Number} names the column '{repeated.Key}' twice; header: {lines[0].Text}.");
        }
        return lines.Skip(1).Select(line =>
        {
            try
            {
                return parse(header.Zip(line.Text.Split(',')).ToDictionary(p => p.First, p => p.Second));
            }
            catch (Exception e) when (e is KeyNotFoundException or FormatException or OverflowException)
            {
                throw new CliUsageException($"{option}: '{path}' line {line.Number} does not parse ({e.Message}); header: {lines[0].Text}.");
            }
        }).ToList();
    }

    private static int Run(FileInfo ours, FileInfo? sdpa, string prefix)
    {
        CliApp.CheckInputFile(ours, "--ours", "the CSV kdsl bench wrote");
        if (sdpa is not null)
        {
            CliApp.CheckInputFile(sdpa, "--sdpa", "the CSV bench/sdpa.py wrote");
        }
        CliApp.CheckOutputFile(new FileInfo(prefix + "-d128.png"), "--out");
        var points = ReadOurs(ours.FullName).Concat(sdpa is null ? [] : ReadSdpa(sdpa.FullName)).ToList();
        foreach (var headDim in points.Select(p => p.HeadDim).Distinct().Order())
        {
            foreach (var causal in new[] { false, true })
            {
                var path = $"{prefix}-d{headDim}{(causal ? "-causal" : "")}.png";
                Draw(points.Where(p => p.HeadDim == headDim && p.Causal == causal).ToList(), headDim, causal, path);
                AnsiConsole.MarkupLine($"wrote {Markup.Escape(Path.GetFullPath(path))}");
            }
        }
        return 0;
    }

    internal static void Draw(IReadOnlyList<Point> points, int headDim, bool causal, string path)
    {
        var plot = new ScottPlot.Plot();
        {
            foreach (var series in points.GroupBy(p => p.Series))
            {
                var ordered = series.OrderBy(p => p.Seq).ToArray();
                var line = plot.Add.Scatter(ordered.Select(p => Math.Log2(p.Seq)).ToArray(), ordered.Select(p => p.Tops).ToArray());
                line.LegendText = series.Key;
                line.LineWidth = series.Key.StartsWith("torch", StringComparison.Ordinal) ? 1.5f : 2.5f;
            }
            plot.Title($"D = {headDim}, {(causal ? "causal" : "non-causal")}");
            var lengths = points.Select(p => p.Seq).Distinct().Order().ToArray();
            plot.Axes.Bottom.SetTicks(lengths.Select(x => Math.Log2(x)).ToArray(), lengths.Select(x => x >= 1024 ? $"{x / 1024}k" : $"{x}").ToArray());
            plot.XLabel("sequence length");
            plot.YLabel("TOPS");
            plot.Axes.SetLimitsY(0, Math.Max(1, points.Count == 0 ? 1 : points.Max(p => p.Tops)) * 1.1);
            plot.ShowLegend(ScottPlot.Alignment.LowerRight);
        }
        plot.SavePng(path, 900, 560);
    }
}
