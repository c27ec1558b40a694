using KernelDsl.Generator.Helpers;

namespace KernelDsl.Generator.Model;

/// <summary>The split-KV merge's interface, once: the CUDA kernel's parameters and its launcher's, from one signature.</summary>
public sealed record LseMergePlan(LseMergeSpec Spec)
{
    private const string Half = "global::System.Half";

    public KernelSignature Signature { get; } = new(
        new HostParameter[]
        {
            new("stream", HostKind.Stream, "", false, "the stream the merge runs on"),
            new("partialO", HostKind.Buffer, Half, false, "the partials' O, [partials][rows][HeadDim] f16"),
            new("partialLse", HostKind.Buffer, "float", false, "the partials' LSE, [partials][rows], natural log"),
            new("partials", HostKind.Scalar, "int", false, "partial results over disjoint key ranges"),
            new("rows", HostKind.Scalar, "long", false, "rows = B·H·S"),
            new("o", HostKind.Buffer, Half, false, "O, [rows][HeadDim] f16 (written)"),
            new("lse", HostKind.Buffer, "float", false, "LSE, [rows] (written)"),
        }.ToEquatableArray(),
        new KernelParameter[]
        {
            new("partial_o", "const u16* __restrict__", Passing.Pointer, "partialO"),
            new("partial_lse", "const float* __restrict__", Passing.Pointer, "partialLse"),
            new("O", "u16* __restrict__", Passing.Pointer, "o"),
            new("lse", "float* __restrict__", Passing.Pointer, "lse"),
            new("partials", "int", Passing.Value, "partials"),
            new("rows", "long long", Passing.Value, "rows"),
        }.ToEquatableArray());
}
