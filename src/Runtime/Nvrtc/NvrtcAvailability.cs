namespace KernelDsl;

/// <summary>
/// Decides, for test suites that need NVRTC, whether to run, skip or fail: without NVRTC a test is skipped,
/// unless <c>KERNELDSL_REQUIRE_NVRTC=1</c> is set (as in CI), in which case it fails with the probe trace.
/// Framework-neutral: pass your framework's skip, e.g. <c>NvrtcAvailability.GetOrSkip(Assert.Skip)</c> in xunit v3.
/// </summary>
public static class NvrtcAvailability
{
    /// <summary>Set to <c>1</c> to turn "NVRTC missing" from a skip into a failure.</summary>
    public const string RequireVariable = "KERNELDSL_REQUIRE_NVRTC";

    /// <summary>Whether the environment demands NVRTC.</summary>
    public static bool IsRequired => Environment.GetEnvironmentVariable(RequireVariable) == "1";

    /// <summary>Whether NVRTC loads on this machine.</summary>
    public static bool IsAvailable => NvrtcCompiler.TryLoad(out _, out _);

    /// <summary>The loaded compiler; otherwise calls <paramref name="skip"/> with the probe trace, or throws when NVRTC is required.</summary>
    /// <param name="skip">Ends the test as skipped; it must not return (xunit v3's <c>Assert.Skip</c> throws).</param>
    /// <exception cref="InvalidOperationException">NVRTC is required but missing, or <paramref name="skip"/> returned.</exception>
    public static NvrtcCompiler GetOrSkip(Action<string> skip)
    {
        NvrtcCompiler.TryLoad(out var compiler, out var trace);
        return Decide(compiler, trace, IsRequired, skip);
    }

    internal static NvrtcCompiler Decide(NvrtcCompiler? compiler, string trace, bool required, Action<string> skip)
    {
        ArgumentNullException.ThrowIfNull(skip);
        if (compiler is not null)
        {
            return compiler;
        }
        if (required)
        {
            throw new InvalidOperationException($"{RequireVariable}=1 but NVRTC could not be loaded.{Environment.NewLine}{trace}");
        }
        skip($"NVRTC is not available (set {RequireVariable}=1 to fail instead).{Environment.NewLine}{trace}");
        throw new InvalidOperationException("The skip callback returned; it must end the test (e.g. xunit's Assert.Skip).");
    }
}
