using System.Globalization;
using System.Text.RegularExpressions;

namespace KernelDsl;

/// <summary>One located message from an NVRTC log, with the generated source line it points at.</summary>
/// <param name="Line">1-based line in the generated source.</param>
/// <param name="Severity"><c>error</c>, <c>warning</c> or <c>catastrophic error</c>.</param>
/// <param name="Message">The compiler's message.</param>
/// <param name="SourceLine">The text of that source line, or null when the line is outside the source.</param>
public sealed partial record NvrtcDiagnostic(int Line, string Severity, string Message, string? SourceLine)
{
    /// <summary>
    /// The messages of <paramref name="log"/> located in <paramref name="programName"/>
    /// (<c>name.cu(LINE): error: ...</c>), each paired with its line of <paramref name="source"/>.
    /// </summary>
    public static IReadOnlyList<NvrtcDiagnostic> FromLog(string log, string programName, string source)
    {
        var lines = source.ReplaceLineEndings("\n").Split('\n');
        var diagnostics = new List<NvrtcDiagnostic>();
        foreach (var logLine in log.AsSpan().EnumerateLines())
        {
            var match = Located().Match(logLine.ToString());
            if (!match.Success || match.Groups["file"].Value != programName)
            {
                continue;
            }
            var line = int.Parse(match.Groups["line"].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture);
            var text = line >= 1 && line <= lines.Length ? lines[line - 1] : null;
            diagnostics.Add(new NvrtcDiagnostic(line, match.Groups["severity"].Value, match.Groups["message"].Value, text));
        }
        return diagnostics;
    }

    /// <summary>The message as the log had it, followed by the quoted source line with its number.</summary>
    public string Format(string programName)
    {
        var head = string.Create(CultureInfo.InvariantCulture, $"{programName}({Line}): {Severity}: {Message}");
        return SourceLine is null ? head : string.Create(CultureInfo.InvariantCulture, $"{head}{Environment.NewLine}    {Line,5} | {SourceLine}");
    }

    // NVRTC writes "name.cu(12): error: ..." and, in newer releases, "name.cu(12): warning #177-D: ...".
    [GeneratedRegex(@"^(?<file>.+?)\((?<line>\d+)\): (?<severity>catastrophic error|error|warning)[^:]*: (?<message>.*)$", RegexOptions.CultureInvariant)]
    private static partial Regex Located();
}
