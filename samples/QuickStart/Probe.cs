namespace QuickStart;

/// <summary>One line from the runtime's probe traces (which list every library tried), for a reader who only needs what to do.</summary>
internal static class Probe
{
    /// <summary>Why no CUDA device opened: CudaDevice.TryOpen's first line says what is missing.</summary>
    public static string Device(string reason) => FirstLine(reason);

    /// <summary>The NVRTC trace's last line, which says what to install.</summary>
    public static string Advice(string trace) => trace.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[^1];

    private static string FirstLine(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? text;
}
