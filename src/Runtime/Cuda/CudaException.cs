using System.Runtime.InteropServices;
using KernelDsl.Native;

namespace KernelDsl;

/// <summary>A CUDA driver call failed. Carries the <c>CUresult</c>, its CUDA name and what was being done.</summary>
public sealed class CudaException : Exception
{
    internal CudaException(CuResult result, string operation, string? detail = null)
        : base(Compose(result, operation, detail))
    {
        Result = result;
        ResultName = NameOf(result);
        Operation = operation;
    }

    /// <summary>The driver's result code.</summary>
    public CuResult Result { get; }

    /// <summary>The driver's name for <see cref="Result"/>, e.g. <c>CUDA_ERROR_OUT_OF_MEMORY</c>.</summary>
    public string ResultName { get; }

    /// <summary>What the runtime was doing when the call failed.</summary>
    public string Operation { get; }

    /// <summary>Throws a <see cref="CudaException"/> unless <paramref name="result"/> is success.</summary>
    internal static void Check(CuResult result, string operation)
    {
        if (result != CuResult.Success)
        {
            throw new CudaException(result, operation);
        }
    }

    private static string Compose(CuResult result, string operation, string? detail)
    {
        var message = $"{operation} failed: {NameOf(result)} ({(int)result}): {DescriptionOf(result)}.";
        return detail is null ? message : $"{message} {detail}";
    }

    // The driver knows names and descriptions for codes newer than our enum; ask it first.
    private static string NameOf(CuResult result) =>
        Ask(CudaApi.cuGetErrorName, result) ?? (Enum.IsDefined(result) ? result.ToString() : "CUDA_ERROR_UNRECOGNIZED");

    private static string DescriptionOf(CuResult result) =>
        Ask(CudaApi.cuGetErrorString, result) ?? "no description available";

    private delegate CuResult TextQuery(CuResult result, out nint text);

    private static string? Ask(TextQuery query, CuResult result)
    {
        if (!NativeLibraries.CudaDriver.Succeeded)
        {
            return null;
        }
        try
        {
            return query(result, out var text) == CuResult.Success && text != 0 ? Marshal.PtrToStringUTF8(text) : null;
        }
        catch (EntryPointNotFoundException)
        {
            return null;
        }
    }
}
