using System.Diagnostics;

namespace KernelDsl;

/// <summary>How the module cache and the autotuner report a problem they recovered from.</summary>
internal static class Warnings
{
    /// <summary>Counts the warning, then raises <paramref name="handler"/>, or traces it when nobody listens.</summary>
    public static void Raise(object sender, EventHandler<string>? handler, ref long count, string message)
    {
        Interlocked.Increment(ref count);
        if (handler is null)
        {
            Trace.TraceWarning(message);
        }
        else
        {
            handler(sender, message);
        }
    }
}
