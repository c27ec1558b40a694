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
        var entries = new List<(string Name, string Arch)>();
        // Keyed by function name, and joined with the entries at the end, so the order in which a ptxas release
        // prints the blocks cannot make a spill go unseen.
        var frames = new Dictionary<string, (int Stack, int Stores, int Loads)>(StringComparer.Ordinal);
        var usage = new Dictionary<string, (int Registers, int Shared, int Constant)>(StringComparer.Ordinal);
        string? current = null;
        string? properties = null;
        foreach (var line in log.AsSpan().EnumerateLines())
        {
            var text = line.ToString();
            if (EntryLine().Match(text) is { Success: true } entry)
            {
                current = entry.Groups["name"].Value;
                entries.Add((current, entry.Groups["arch"].Value));
            }
            else if (PropertiesLine().Match(text) is { Success: true } header)
            {
                properties = header.Groups["name"].Value;
            }
            else if (StackLine().Match(text) is { Success: true } stack && properties is not null)
            {
                frames[properties] = (Number(stack, "stack"), Number(stack, "stores"), Number(stack, "loads"));
                properties = null;
            }
            else if (UsedLine().Match(text) is { Success: true } used && current is not null)
            {
                var rest = used.Groups["rest"].Value;
                usage[current] = (Number(used, "registers"), Item(SharedItem(), rest), Item(ConstantItem(), rest));
            }
        }
        // Device (non-entry) functions have properties too; only entries are reported.
        return entries.Select(entry =>
        {
            var frame = frames.GetValueOrDefault(entry.Name);
            var use = usage.GetValueOrDefault(entry.Name);
            return new PtxasKernelReport(entry.Name, entry.Arch, use.Registers, frame.Stack, frame.Stores, frame.Loads, use.Shared, use.Constant);
        }).ToList();
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
