using System.Reflection;
using KernelDsl;
using Xunit.Sdk;
using Xunit.v3;

// Compiled into every test project that references the runtime (tests/Directory.Build.props).
[assembly: TestFramework(typeof(KernelDsl.Testing.RequirementsTestFramework))]

namespace KernelDsl.Testing;

/// <summary>
/// Something a test needs that a machine may lack, such as a CUDA device or NVRTC; on a test method, a class or the
/// assembly. Tests whose requirement is unmet do not run: each class reports them as one skipped entry whose reason is one
/// line saying what to install or set, instead of a skip and a probe trace per test.
/// </summary>
[AttributeUsage(AttributeTargets.Assembly | AttributeTargets.Class | AttributeTargets.Method, AllowMultiple = true)]
internal abstract class RequirementAttribute : Attribute
{
    /// <summary>Why <paramref name="testCase"/> cannot run on this machine, in one line; null when it can.</summary>
    public abstract string? Unmet(IXunitTestCase testCase);
}

internal static class Requirement
{
    /// <summary>The first line of a runtime probe's reason, which says what is missing (the lines after it are the attempts).</summary>
    public static string FirstLine(string text) =>
        (text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? text).TrimEnd('.');

    /// <summary>The value of a theory row's argument <paramref name="name"/>, or null.</summary>
    public static object? Argument(IXunitTestCase testCase, string name)
    {
        var index = Array.FindIndex(testCase.TestMethod.Method.GetParameters(), p => p.Name == name);
        // A theory row's arguments live on its test case (pre-enumerated data); the method's are for delay-enumerated ones.
        var arguments = testCase is XunitTestCase { TestMethodArguments: { Length: > 0 } own } ? own : testCase.TestMethod.TestMethodArguments;
        return index >= 0 && index < arguments.Length ? arguments[index] : null;
    }
}

/// <summary>The test opens CUDA device 0. With <c>KERNELDSL_REQUIRE_GPU=1</c> it always runs, so a missing device fails it.</summary>
internal sealed class RequiresCudaDeviceAttribute : RequirementAttribute
{
    public const string RequireVariable = "KERNELDSL_REQUIRE_GPU";

    private static readonly Lazy<string?> Missing = new(() =>
    {
        if (Environment.GetEnvironmentVariable(RequireVariable) == "1")
        {
            return null;
        }
        if (!CudaDevice.TryOpen(0, out var device, out var reason))
        {
            return SkipReason(reason);
        }
        device.Dispose();
        return null;
    });

    public override string? Unmet(IXunitTestCase testCase) => Missing.Value;

    /// <summary>Why no device opens here (null when one does, or when KERNELDSL_REQUIRE_GPU=1 wants the tests to fail instead).</summary>
    public static string? MissingReason => Missing.Value;

    /// <summary>One line for CudaDevice.TryOpen's reason, whose first line says what is missing.</summary>
    public static string SkipReason(string reason) =>
        $"Needs a CUDA GPU: {Requirement.FirstLine(reason)}. Run these on a machine with an NVIDIA GPU and its driver (docs/GPU.md); " +
        $"{RequireVariable}=1 makes them fail instead.";
}

/// <summary>
/// The test compiles with NVRTC. With <c>KERNELDSL_REQUIRE_NVRTC=1</c> it always runs, so a missing NVRTC fails it.
/// <see cref="TargetArgument"/> names the test's parameter that holds its target (e.g. sm_90a), for targets that need
/// a newer NVRTC than the one at hand.
/// </summary>
internal sealed class RequiresNvrtcAttribute : RequirementAttribute
{
    private static readonly Lazy<(NvrtcCompiler? Compiler, string? Missing)> Nvrtc = new(() =>
        NvrtcCompiler.TryLoad(out var compiler, out var trace) ? (compiler, null)
        : NvrtcAvailability.IsRequired ? (null, null)
        : (null, $"Needs NVRTC: {Requirement.FirstLine(trace)}. Install it (docs/NVRTC.md; without a GPU, Debian's libnvrtc11.2) " +
                 $"or name the file in KERNELDSL_NVRTC_PATH; {NvrtcAvailability.RequireVariable}=1 makes these fail instead."));

    public string? TargetArgument { get; init; }

    public override string? Unmet(IXunitTestCase testCase)
    {
        var (compiler, missing) = Nvrtc.Value;
        if (compiler is null || TargetArgument is null)
        {
            return missing;
        }
        return Requirement.Argument(testCase, TargetArgument) is string target && compiler.Version.CannotTarget(target) is { } reason
            ? $"Needs a newer NVRTC: {reason}. Install the NVRTC of a CUDA toolkit that has it (docs/NVRTC.md) to compile them."
            : null;
    }
}

/// <summary>
/// The test needs several CUDA devices: <see cref="Count"/>, or a theory row's count in the argument named
/// <see cref="CountArgument"/>. A machine with fewer skips it, saying how many it has, even under
/// KERNELDSL_REQUIRE_GPU=1 (which makes only a machine with no device at all fail).
/// </summary>
internal sealed class RequiresCudaDevicesAttribute : RequirementAttribute
{
    private static readonly Lazy<int> Devices = new(() =>
    {
        try
        {
            return CudaDevice.Count();
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or CudaException)
        {
            return 0;
        }
    });

    public int Count { get; init; } = 2;

    public string? CountArgument { get; init; }

    public override string? Unmet(IXunitTestCase testCase)
    {
        var needed = CountArgument is not null && Requirement.Argument(testCase, CountArgument) is int count ? count : Count;
        var found = Devices.Value;
        // No device at all: the one-GPU requirement's line (and its KERNELDSL_REQUIRE_GPU=1 failure) says it.
        return found == 0 ? RequiresCudaDeviceAttribute.MissingReason
            : found >= needed ? null
            : $"Needs {needed} CUDA GPUs; this machine has {found}. Run these on a machine with {needed} or more (scripts/gpu-context-parallel).";
    }
}

/// <summary>The test loads NCCL (<see cref="Nccl"/>); without it, its class is one skipped line saying what to install or set.</summary>
internal sealed class RequiresNcclAttribute : RequirementAttribute
{
    private static readonly Lazy<string?> Missing = new(() =>
        Nccl.TryLoad(out _, out var reason) ? null : $"Needs NCCL: {Requirement.FirstLine(reason)}");

    public override string? Unmet(IXunitTestCase testCase) => Missing.Value;
}

/// <summary>
/// xunit's framework, except that test cases with an unmet <see cref="RequirementAttribute"/> are replaced, per class and
/// reason, by one skipped case that says how many did not run and why. `dotnet test` prints every skipped test, so this
/// keeps a machine without a GPU to a line or three per class instead of hundreds of identical skips.
/// </summary>
internal sealed class RequirementsTestFramework : XunitTestFramework
{
    protected override ITestFrameworkExecutor CreateExecutor(Assembly assembly) => new Executor(base.CreateExecutor(assembly));

    private sealed class Executor(ITestFrameworkExecutor inner) : ITestFrameworkExecutor, IAsyncDisposable
    {
        public ValueTask RunTestCases(IReadOnlyCollection<ITestCase> testCases, IMessageSink executionMessageSink,
            ITestFrameworkExecutionOptions executionOptions, CancellationToken? cancellationToken) =>
            inner.RunTestCases(Collapse(testCases), executionMessageSink, executionOptions, cancellationToken);

        public ValueTask DisposeAsync() => inner is IAsyncDisposable disposable ? disposable.DisposeAsync() : default;
    }

    internal static IReadOnlyCollection<ITestCase> Collapse(IReadOnlyCollection<ITestCase> testCases)
    {
        var kept = new List<ITestCase>();
        var unmet = new List<(IXunitTestCase Case, string Reason)>();
        foreach (var testCase in testCases)
        {
            // Explicit and statically skipped cases keep their own handling.
            if (testCase is IXunitTestCase { Explicit: false, SkipReason: null } xunitCase && UnmetReason(xunitCase) is { } reason)
            {
                unmet.Add((xunitCase, reason));
            }
            else
            {
                kept.Add(testCase);
            }
        }
        foreach (var group in Group(unmet.Select(u => (u.Case.TestClass.Class.FullName!, u.Case.TestMethod.Method.Name, u.Reason)).ToArray()))
        {
            var first = unmet[group.Members[0]].Case;
            kept.Add(new XunitTestCase(first.TestMethod, group.Name, first.UniqueID + ":unmet", @explicit: false, skipReason: group.Reason));
        }
        return kept;
    }

    /// <summary>
    /// The skipped entries for test cases that cannot run, one per class and reason, in first-seen order: its display name
    /// (the class, and the method when all are one method's cases, with how many did not run), and its members' indexes.
    /// </summary>
    internal static IReadOnlyList<(string Name, string Reason, int[] Members)> Group(IReadOnlyList<(string Class, string Method, string Reason)> unmet) =>
        unmet.Select((u, index) => (u, index))
            .GroupBy(x => (x.u.Class, x.u.Reason))
            .Select(g =>
            {
                var members = g.Select(x => x.index).ToArray();
                var methods = g.Select(x => x.u.Method).Distinct().ToArray();
                var name = (members.Length, methods.Length) switch
                {
                    (1, _) => $"{g.Key.Class}.{methods[0]}: not run",
                    (var n, 1) => $"{g.Key.Class}.{methods[0]}: {n} cases not run",
                    var (n, _) => $"{g.Key.Class}: {n} tests not run",
                };
                return (name, g.Key.Reason, members);
            })
            .ToArray();

    private static string? UnmetReason(IXunitTestCase testCase)
    {
        var method = testCase.TestMethod.Method;
        var type = testCase.TestClass.Class;
        return method.GetCustomAttributes<RequirementAttribute>()
            .Concat(type.GetCustomAttributes<RequirementAttribute>())
            .Concat(type.Assembly.GetCustomAttributes<RequirementAttribute>())
            .Select(r => r.Unmet(testCase))
            .FirstOrDefault(reason => reason is not null);
    }
}
