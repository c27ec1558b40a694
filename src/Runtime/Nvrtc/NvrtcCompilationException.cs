using System.Text;

namespace KernelDsl;

/// <summary>NVRTC rejected a variant's source. The message names the variant and arch and quotes each error's source line.</summary>
public sealed class NvrtcCompilationException : Exception
{
    internal NvrtcCompilationException(NvrtcRequest request, string status, string log)
        : this(request, status, log, NvrtcDiagnostic.FromLog(log, request.ProgramName, request.Source))
    {
    }

    private NvrtcCompilationException(NvrtcRequest request, string status, string log, IReadOnlyList<NvrtcDiagnostic> diagnostics)
        : base(Compose(request, status, log, diagnostics))
    {
        VariantName = request.VariantName;
        Arch = request.Arch;
        Log = log;
        Diagnostics = diagnostics;
    }

    /// <summary>The variant whose source failed.</summary>
    public string VariantName { get; }

    /// <summary>The architecture it was compiled for.</summary>
    public string Arch { get; }

    /// <summary>NVRTC's raw log.</summary>
    public string Log { get; }

    /// <summary>The log's located messages, mapped to the generated source.</summary>
    public IReadOnlyList<NvrtcDiagnostic> Diagnostics { get; }

    private static string Compose(NvrtcRequest request, string status, string log, IReadOnlyList<NvrtcDiagnostic> diagnostics)
    {
        var message = new StringBuilder()
            .Append("NVRTC could not compile variant '").Append(request.VariantName).Append("' for ").Append(request.Arch)
            .Append(" (").Append(status).Append(").").AppendLine();
        foreach (var diagnostic in diagnostics)
        {
            message.AppendLine(diagnostic.Format(request.ProgramName));
        }
        return message.AppendLine("NVRTC log:").Append(log.TrimEnd()).ToString();
    }
}
