using System.Runtime.InteropServices;
using System.Text;

namespace KernelDsl.Native;

/// <summary>The outcome of probing candidate file names for one native library.</summary>
/// <param name="Handle">The loaded library, or zero when no candidate loaded.</param>
/// <param name="LoadedName">The candidate that loaded, or null.</param>
/// <param name="Trace">One line per attempt, in order, with the loader's error for each failure.</param>
internal sealed record LibraryProbeResult(nint Handle, string? LoadedName, string Trace)
{
    public bool Succeeded => Handle != 0;
}

/// <summary>
/// Loads the first candidate that the OS loader accepts and keeps a trace of every attempt, as TorchSharp
/// does, so a missing library is reported with every name that was tried and why each failed.
/// </summary>
internal static class LibraryProbe
{
    public static LibraryProbeResult Load(string what, IEnumerable<string> candidates)
    {
        var trace = new StringBuilder();
        var tried = new List<string>();
        foreach (var candidate in candidates)
        {
            tried.Add(candidate);
            trace.Append("  trying '").Append(candidate).Append("': ");
            try
            {
                // Load rather than TryLoad: its exception carries dlerror's text, which says why.
                var handle = NativeLibrary.Load(candidate);
                trace.Append("loaded").AppendLine();
                return new LibraryProbeResult(handle, candidate, Header(what, candidate, tried) + trace);
            }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
            {
                trace.Append("failed: ").Append(OneLine(e.Message)).AppendLine();
            }
        }
        return new LibraryProbeResult(0, null, Header(what, null, tried) + trace);
    }

    // The first line stands alone (callers may show only it): it names every file tried.
    private static string Header(string what, string? loaded, List<string> tried) => loaded is null
        ? $"No {what} library could be loaded (tried {string.Join(", ", tried)}).{Environment.NewLine}Attempts, in order:{Environment.NewLine}"
        : $"Loaded {what} library '{loaded}'. Attempts:{Environment.NewLine}";

    // .NET wraps dlerror's text in advice about strace and LD_DEBUG; the part after that advice says why.
    private static string OneLine(string message)
    {
        const string Advice = "environment variable:";
        var at = message.LastIndexOf(Advice, StringComparison.Ordinal);
        var reason = at < 0 ? message : message[(at + Advice.Length)..];
        return reason.ReplaceLineEndings(" ").Trim();
    }
}
