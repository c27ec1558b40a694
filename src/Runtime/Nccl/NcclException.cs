using System.Runtime.InteropServices;
using KernelDsl.Native;

namespace KernelDsl;

/// <summary>
/// An NCCL call failed, or a communicator's work did not finish within its timeout (<see cref="NcclResult.Timeout"/>).
/// Carries the <c>ncclResult_t</c>, what was being done and, when known, the rank that saw it.
/// </summary>
public sealed class NcclException : Exception
{
    internal NcclException(NcclResult result, string operation, string? detail = null)
        : base(Compose(result, operation, detail))
    {
        Result = result;
        Operation = operation;
    }

    /// <summary>NCCL's result code.</summary>
    public NcclResult Result { get; }

    /// <summary>What the runtime was doing when the call failed, naming the rank.</summary>
    public string Operation { get; }

    /// <summary>NCCL's C name for a result, e.g. <c>ncclRemoteError</c>.</summary>
    public static string NameOf(NcclResult result) => Enum.IsDefined(result) ? "nccl" + result : $"ncclResult {(int)result}";

    /// <summary>Throws unless <paramref name="result"/> is success; <paramref name="comm"/> (when not 0) adds NCCL's last error text.</summary>
    internal static void Check(NcclResult result, string operation, nint comm = 0)
    {
        if (result != NcclResult.Success)
        {
            throw new NcclException(result, operation, LastError(comm));
        }
    }

    private static string Compose(NcclResult result, string operation, string? detail)
    {
        var description = Ask(() => NcclApi.ncclGetErrorString(result));
        var message = $"{operation} failed: {NameOf(result)} ({(int)result}){(description is null ? "" : ": " + description)}.";
        return string.IsNullOrWhiteSpace(detail) ? message : $"{message} {detail}";
    }

    /// <summary>NCCL's text for the last error (on <paramref name="comm"/>, or any when 0), if the library is loaded.</summary>
    internal static string? LastError(nint comm) => Ask(() => NcclApi.ncclGetLastError(comm));

    private static string? Ask(Func<nint> text)
    {
        if (!NativeLibraries.NcclLibrary.Succeeded)
        {
            return null;
        }
        try
        {
            var pointer = text();
            var value = pointer == 0 ? null : Marshal.PtrToStringUTF8(pointer);
            return string.IsNullOrWhiteSpace(value) ? null : value.Trim();
        }
        catch (EntryPointNotFoundException)
        {
            return null;
        }
    }
}
