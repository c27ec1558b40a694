using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using KernelDsl.Native;

namespace KernelDsl;

/// <summary>
/// NVRTC, loaded from the first of <c>KERNELDSL_NVRTC_PATH</c>, libnvrtc.so.13, .12, .11.2 and libnvrtc.so
/// that loads. Compiles straight to a cubin for one real architecture; stateless and safe to share.
/// </summary>
public sealed unsafe class NvrtcCompiler : IKernelCompiler
{
    private static readonly Lazy<(NvrtcCompiler? Compiler, string Trace)> Loaded = new(LoadOnce);

    private readonly Lazy<IReadOnlyList<int>> _supportedArchitectures = new(QuerySupportedArchitectures);

    private NvrtcCompiler(string libraryName, NvrtcVersion version)
    {
        LibraryName = libraryName;
        Version = version;
    }

    /// <summary>The library file name that loaded.</summary>
    public string LibraryName { get; }

    /// <inheritdoc/>
    public NvrtcVersion Version { get; }

    /// <summary>
    /// The real architectures this NVRTC compiles for, as compute capabilities (80 for sm_80), ascending, as
    /// <c>nvrtcGetSupportedArchs</c> gives them; empty when the library lacks that entry point (before CUDA 11.2).
    /// </summary>
    public IReadOnlyList<int> SupportedArchitectures => _supportedArchitectures.Value;

    /// <summary>
    /// Why this NVRTC cannot compile for <paramref name="arch"/> (an NVRTC architecture name such as sm_80, sm_90a or
    /// sm_100f), or null when it can or nothing is known: what its version cannot target (<see cref="NvrtcVersion.CannotTarget"/>),
    /// or an architecture not among <see cref="SupportedArchitectures"/>, which the reason lists.
    /// </summary>
    public string? CannotTarget(string arch)
    {
        ArgumentNullException.ThrowIfNull(arch);
        if (Version.CannotTarget(arch) is { } reason)
        {
            return reason;
        }
        var digits = arch.StartsWith("sm_", StringComparison.Ordinal) ? new string(arch[3..].TakeWhile(char.IsAsciiDigit).ToArray()) : "";
        var supported = SupportedArchitectures;
        return supported.Count == 0 || !int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var capability) || supported.Contains(capability)
            ? null
            : $"NVRTC {Version} cannot compile {arch}: it supports {string.Join(", ", supported.Select(c => string.Create(CultureInfo.InvariantCulture, $"sm_{c}")))}";
    }

    private static IReadOnlyList<int> QuerySupportedArchitectures()
    {
        try
        {
            if (NvrtcApi.nvrtcGetNumSupportedArchs(out var count) != NvrtcStatus.Success || count <= 0)
            {
                return [];
            }
            var archs = new int[count];
            fixed (int* destination = archs)
            {
                if (NvrtcApi.nvrtcGetSupportedArchs(destination) != NvrtcStatus.Success)
                {
                    return [];
                }
            }
            return archs.Distinct().Order().ToArray();
        }
        catch (EntryPointNotFoundException)
        {
            return [];
        }
    }

    /// <summary>Loads NVRTC (once per process), or returns the trace of every name tried.</summary>
    public static bool TryLoad([NotNullWhen(true)] out NvrtcCompiler? compiler, out string trace)
    {
        (compiler, trace) = Loaded.Value;
        return compiler is not null;
    }

    /// <summary>Loads NVRTC (once per process).</summary>
    /// <exception cref="DllNotFoundException">No NVRTC library loaded; the message lists every name tried and why it failed.</exception>
    public static NvrtcCompiler Load() =>
        TryLoad(out var compiler, out var trace) ? compiler : throw new DllNotFoundException(trace);

    /// <inheritdoc/>
    public NvrtcResult Compile(NvrtcRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var options = request.EffectiveOptions();
        var clock = Stopwatch.StartNew();
        Check(NvrtcApi.nvrtcCreateProgram(out var program, request.Source, request.ProgramName, 0, 0, 0), "Creating program " + request.ProgramName);
        try
        {
            var status = CompileProgram(program, options);
            var log = ReadText(program, NvrtcApi.nvrtcGetProgramLogSize, NvrtcApi.nvrtcGetProgramLog, "Reading the log");
            if (status != NvrtcStatus.Success)
            {
                throw new NvrtcCompilationException(request, StatusName(status), log);
            }
            var cubin = ReadBytes(program, NvrtcApi.nvrtcGetCUBINSize, NvrtcApi.nvrtcGetCUBIN, "Reading the cubin");
            var ptx = request.KeepPtx ? ReadText(program, NvrtcApi.nvrtcGetPTXSize, NvrtcApi.nvrtcGetPTX, "Reading the PTX") : null;
            var kernels = request.PtxasVerbose ? PtxasLogParser.Parse(log) : [];
            return new NvrtcResult(cubin, log, kernels, ptx, clock.Elapsed);
        }
        finally
        {
            _ = NvrtcApi.nvrtcDestroyProgram(ref program);
        }
    }

    private static NvrtcStatus CompileProgram(nint program, IReadOnlyList<string> options)
    {
        var pointers = new byte*[options.Count];
        try
        {
            for (var i = 0; i < options.Count; i++)
            {
                pointers[i] = (byte*)Marshal.StringToCoTaskMemUTF8(options[i]);
            }
            fixed (byte** array = pointers)
            {
                return NvrtcApi.nvrtcCompileProgram(program, options.Count, array);
            }
        }
        finally
        {
            foreach (var pointer in pointers)
            {
                Marshal.FreeCoTaskMem((nint)pointer);
            }
        }
    }

    private delegate NvrtcStatus SizeQuery(nint program, out nuint size);
    private delegate NvrtcStatus ContentQuery(nint program, byte* destination);

    private static byte[] ReadBytes(nint program, SizeQuery size, ContentQuery content, string operation)
    {
        Check(size(program, out var length), operation);
        var bytes = new byte[(int)length];
        fixed (byte* destination = bytes)
        {
            Check(content(program, destination), operation);
        }
        return bytes;
    }

    // Text results come back NUL-terminated.
    private static string ReadText(nint program, SizeQuery size, ContentQuery content, string operation) =>
        Encoding.UTF8.GetString(ReadBytes(program, size, content, operation)).TrimEnd('\0');

    private static void Check(NvrtcStatus status, string operation)
    {
        if (status != NvrtcStatus.Success)
        {
            throw new InvalidOperationException($"{operation} failed: {StatusName(status)}.");
        }
    }

    private static string StatusName(NvrtcStatus status) =>
        Marshal.PtrToStringUTF8(NvrtcApi.nvrtcGetErrorString(status)) ?? status.ToString();

    private static (NvrtcCompiler?, string) LoadOnce()
    {
        var probe = NativeLibraries.NvrtcLibrary;
        if (!probe.Succeeded)
        {
            return (null, probe.Trace + $"Install NVRTC (libnvrtc.so.13, .12 or .11.2), or name the file in {NativeLibraries.NvrtcPathVariable}.");
        }
        try
        {
            var status = NvrtcApi.nvrtcVersion(out var major, out var minor);
            return status == NvrtcStatus.Success
                ? (new NvrtcCompiler(probe.LoadedName!, new NvrtcVersion(major, minor)), probe.Trace)
                : (null, probe.Trace + $"nvrtcVersion failed with {status}.");
        }
        catch (EntryPointNotFoundException e)
        {
            return (null, probe.Trace + $"'{probe.LoadedName}' is not NVRTC: {e.Message}");
        }
    }
}
