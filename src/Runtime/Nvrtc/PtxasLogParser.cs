using System.Globalization;
using System.Text.RegularExpressions;

namespace KernelDsl;

/// <summary>
/// Reads ptxas's verbose report out of an NVRTC log. Per entry it prints, in order:
/// <code>
/// ptxas info    : Compiling entry function 'k' for 'sm_80'
/// ptxas info    : Function properties for k
/// ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
/// ptxas info    : Used 10 registers, 4096 bytes smem, 368 bytes cmem[0]
/// </code>
/// Newer releases add items to the "Used" line (e.g. "used 1 barriers"), so items are matched one by one.
/// </summary>
internal static partial class PtxasLogParser
{
    public static IReadOnlyList<PtxasKernelReport> Parse(string log)
    {
        var reports = new List<PtxasKernelReport>();
        var byName = new Dictionary<string, int>(StringComparer.Ordinal);
        int? current = null;
        int? properties = null;
        foreach (var line in log.AsSpan().EnumerateLines())
        {
            var text = line.ToString();
            if (EntryLine().Match(text) is { Success: true } entry)
            {
                var report = new PtxasKernelReport(entry.Groups["name"].Value, entry.Groups["arch"].Value, 0, 0, 0, 0, 0, 0);
                current = byName[report.Name] = reports.Count;
                reports.Add(report);
            }
            else if (PropertiesLine().Match(text) is { Success: true } header)
            {
                // Non-entry (device) functions get properties too; only entries are reported.
                properties = byName.TryGetValue(header.Groups["name"].Value, out var index) ? index : null;
            }
            else if (StackLine().Match(text) is { Success: true } stack && properties is { } target)
            {
                reports[target] = reports[target] with
                {
                    StackFrameBytes = Number(stack, "stack"),
                    SpillStoreBytes = Number(stack, "stores"),
                    SpillLoadBytes = Number(stack, "loads"),
                };
                properties = null;
            }
            else if (UsedLine().Match(text) is { Success: true } used && current is { } owner)
            {
                var rest = used.Groups["rest"].Value;
                reports[owner] = reports[owner] with
                {
                    Registers = Number(used, "registers"),
                    SharedMemoryBytes = Item(SharedItem(), rest),
                    ConstantMemoryBytes = Item(ConstantItem(), rest),
                };
            }
        }
        return reports;
    }

    private static int Number(Match match, string group) => int.Parse(match.Groups[group].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture);

    private static int Item(Regex item, string text) => item.Match(text) is { Success: true } match ? Number(match, "bytes") : 0;

    [GeneratedRegex(@"Compiling entry function '(?<name>[^']+)' for '(?<arch>[^']+)'", RegexOptions.CultureInvariant)]
    private static partial Regex EntryLine();

    [GeneratedRegex(@"Function properties for (?<name>\S+)", RegexOptions.CultureInvariant)]
    private static partial Regex PropertiesLine();

    [GeneratedRegex(@"(?<stack>\d+) bytes stack frame, (?<stores>\d+) bytes spill stores, (?<loads>\d+) bytes spill loads", RegexOptions.CultureInvariant)]
    private static partial Regex StackLine();

    [GeneratedRegex(@"Used (?<registers>\d+) registers(?<rest>.*)$", RegexOptions.CultureInvariant)]
    private static partial Regex UsedLine();

    [GeneratedRegex(@"(?<bytes>\d+) bytes smem", RegexOptions.CultureInvariant)]
    private static partial Regex SharedItem();

    [GeneratedRegex(@"(?<bytes>\d+) bytes cmem\[0\]", RegexOptions.CultureInvariant)]
    private static partial Regex ConstantItem();
}
