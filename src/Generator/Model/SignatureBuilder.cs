using System.Collections.Generic;
using KernelDsl.Generator.Helpers;

namespace KernelDsl.Generator.Model;

/// <summary>
/// Builds a <see cref="KernelSignature"/> in order: each launcher parameter with the kernel parameter made from it, in one
/// call, so the two lists cannot drift apart. A helper of the plans, not a model: the signature it builds is the value.
/// </summary>
public sealed class SignatureBuilder
{
    private readonly List<HostParameter> _host = [];
    private readonly List<KernelParameter> _kernel = [];

    /// <summary>The launcher's stream (no kernel parameter).</summary>
    public void Stream(string role) => _host.Add(new HostParameter("stream", HostKind.Stream, "", false, role));

    /// <summary>A device buffer of <paramref name="element"/>, passed to the kernel by its pointer.</summary>
    public void Buffer(string name, string element, string role, string cudaName, string cudaType, bool optional = false)
    {
        _host.Add(new HostParameter(name, HostKind.Buffer, element, optional, role));
        _kernel.Add(new KernelParameter(cudaName, cudaType, Passing.Pointer, name));
    }

    /// <summary>A scalar passed by value; with no <paramref name="cudaName"/> only the launcher has it. A C# long is a CUDA long long.</summary>
    public void Scalar(string name, string type, string role, string? cudaName, string? cudaType = null)
    {
        _host.Add(new HostParameter(name, HostKind.Scalar, type, false, role));
        if (cudaName is not null)
        {
            _kernel.Add(new KernelParameter(cudaName, cudaType ?? (type == "long" ? "long long" : type), Passing.Value, name));
        }
    }

    /// <summary>A launcher parameter the kernel does not take as it is (host spans, buffers passed another way).</summary>
    public void Host(HostParameter parameter) => _host.Add(parameter);

    /// <summary><see cref="Host(HostParameter)"/> from its parts.</summary>
    public void Host(string name, HostKind kind, string type, string role) => _host.Add(new HostParameter(name, kind, type, false, role));

    /// <summary>A kernel parameter made another way than from a launcher parameter of its own (a tensor map, an address, a null pointer).</summary>
    public void Kernel(KernelParameter parameter) => _kernel.Add(parameter);

    public KernelSignature Build() => new(_host.ToEquatableArray(), _kernel.ToEquatableArray());
}
