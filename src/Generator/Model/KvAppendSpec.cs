namespace KernelDsl.Generator.Model;

/// <summary>The append kernel of a paged INT8 KV cache: new tokens quantized into the pages they land in.</summary>
public sealed record KvAppendSpec : KernelSpec
{
    public required int HeadDim { get; init; }
    public required int PageSize { get; init; }
    public required Element Input { get; init; }
    public required int Threads { get; init; }

    public override string Family => "KvCacheAppend";
}
